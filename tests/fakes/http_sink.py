"""A local webhook that follows a documented batch contract, for the `http` destination.

Contract (what the tests configure the destination for):
  POST /records, header `Authorization: Bearer <token>` (else 401)
  body {"op": "insert"|"update"|"delete"|"clear", "records": [{"id": ..., ...}, ...]}
  at most `max_records` records (else 413) and `max_bytes` bytes (else 413)
  200 {"results": [{"id": ..., "error": null | "reason"}, ...]}: one result per record, in order;
      a record whose `email` contains "invalid" is refused with "invalid email"
  faults on demand: the next N requests answer 429 (with or without Retry-After) or 500, or are delayed
The sink applies accepted records to `store` (id -> record), like the destination's database would.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON (shared by the fake webhooks)."""

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class Sink:
    def __init__(self, token: str = "secret-token", max_records: int = 100, max_bytes: int = 1_000_000) -> None:
        self.token = token
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.store: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults: deque[tuple[int, float | None]] = deque()
        self.delay = 0.0
        self.on_post: Callable[[], None] | None = None  # called as each POST arrives (a test's side effect)
        self.reject_once: dict[str, str] = {}  # record id -> the reason it is refused with, the first time only
        self.lock = threading.Lock()
        sink = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if sink.delay:
                    time.sleep(sink.delay)
                if sink.on_post is not None:
                    sink.on_post()
                if self.headers.get("Authorization") != f"Bearer {sink.token}":
                    return self._answer(401, {"error": "unauthorized"})
                with sink.lock:
                    fault = sink.faults.popleft() if sink.faults else None
                if fault:
                    status, retry_after = fault
                    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                    return self._answer(status, {"error": "try later"}, headers)
                if len(raw) > sink.max_bytes:
                    return self._answer(413, {"error": "payload too large"})
                body = json.loads(raw)
                records = body.get("records", [])
                if len(records) > sink.max_records:
                    return self._answer(413, {"error": f"at most {sink.max_records} records"})
                results = []
                with sink.lock:
                    sink.requests.append(body)
                    for record in records:
                        if "invalid" in str(record.get("email") or ""):
                            results.append({"id": record.get("id"), "error": "invalid email"})
                            continue
                        if str(record.get("id")) in sink.reject_once:  # refused once, accepted when sent again
                            results.append({"id": record.get("id"), "error": sink.reject_once.pop(str(record["id"]))})
                            continue
                        key = str(record["id"])
                        if body["op"] == "delete":
                            sink.store.pop(key, None)
                        elif body["op"] == "clear":
                            sink.store[key] = {k: (v if k == "id" else None) for k, v in record.items()}
                        else:
                            sink.store[key] = record
                        results.append({"id": record.get("id"), "error": None})
                return self._answer(200, {"results": results})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail_next(self, count: int, status: int = 429, retry_after: float | None = None) -> None:
        with self.lock:
            self.faults.extend([(status, retry_after)] * count)

    def reset(self) -> None:
        with self.lock:
            self.store.clear()
            self.requests.clear()
            self.faults.clear()
            self.delay = 0.0
            self.on_post = None
            self.reject_once.clear()

    def records_received(self) -> int:
        return sum(len(r.get("records", [])) for r in self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
