"""The common part of the fake SaaS APIs: a ThreadingHTTPServer in a thread, request log, faults on demand.

A subclass implements `route(method, path, headers, raw) -> (status, body, headers)` following the API's
documented contract; this class checks nothing itself except that faults queued with `fail_next` come first
(after authentication, like the real APIs' rate limiters).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any, dict[str, str]]


class FakeApi:
    text_content_type = "text/plain; charset=utf-8"  # of answers given as str or bytes (JSON otherwise)

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: deque[tuple[int, dict[str, str]]] = deque()
        self.delay = 0.0
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                if api.delay:
                    time.sleep(api.delay)
                status, body, headers = api.dispatch(self.command, self.path, self.headers, raw)
                if body is None:
                    data, kind = b"", None
                elif isinstance(body, str | bytes):  # an API that answers text (CSV, "OK")
                    data, kind = body.encode() if isinstance(body, str) else body, api.text_content_type
                else:
                    data, kind = json.dumps(body).encode(), "application/json"
                self.send_response(status)
                if kind:
                    self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def authorized(self, headers: Any) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Answer:
        return 401, {"message": "unauthorized"}, {}

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        raise NotImplementedError

    def dispatch(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if not self.authorized(headers):
            return self.unauthorized()
        with self.lock:
            fault = self.faults.popleft() if self.faults else None
        if fault:
            return fault[0], {"message": "fault injected by the test"}, fault[1]
        with self.lock:
            self.requests.append({"method": method, "path": path, "size": len(raw)})
            return self.route(method, path, headers, raw)

    def fail_next(self, count: int, status: int = 429, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.faults.extend([(status, headers or {})] * count)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
