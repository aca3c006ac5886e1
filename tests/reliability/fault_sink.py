"""A webhook that misbehaves on purpose, and keeps an exact ledger of what it acknowledged.

Contract (the `http` destination configured with `results_path: results`):
  POST /<stream>, header `Authorization: Bearer <token>` (else 401)
  body {"op": "insert"|"update"|"delete"|"clear", "records": [{"id": ..., ...}, ...]}
  200 {"results": [{"id": ..., "error": null | "reason"}, ...]}: one result per record, in order; a record
      whose `email` contains "invalid" is refused with `REJECT_REASON` (crafted to break naive SQL quoting)

Each stream (the URL path) has its own fault script: `script(n, keys) -> Fault | None` for its n-th request
(1-based, in arrival order), called with keys=None before the body is read (only `reset_body` is taken from
that call) and again with the batch's keys. Faults:
  status        answer that HTTP status (429 / 500 / 503 / 401 / 404), with an optional Retry-After header
  timeout       read the body, say nothing for `seconds` (longer than the client's timeout), close
  reset_body    read only part of the body, then reset the connection (RST)
  reset_answer  read the whole body, apply nothing, reset the connection before answering
  lost_ack      read and apply the records (the destination has them), then reset before answering: the
                client never learns of it, so it must send them again (at least once)
  slow          wait `seconds`, then answer normally
  echo          answer `status` with an error that quotes the request's URL and Authorization header back (as
                some APIs do): a secret in either must not reach a log, a report or a state table

The ledger is the independent expectation of the tests: `acked[stream]` maps each key to the record the server
acknowledged to the client (a 200 whose body was written and flushed), deletes and clears included, in order;
`rejected[stream]` the (key, reason) it refused, in order; `store[stream]` what the destination holds (lost acks
included).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from fakes.http_sink import JsonHandler

REJECT_REASON = "invalid email: it's \\'); drop table x; --"


@dataclass(frozen=True)
class Fault:
    kind: str  # status | timeout | reset_body | reset_answer | lost_ack | slow | echo
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0


Script = Callable[[int, list[str] | None], Fault | None]  # (n-th request, its keys or None before reading)


class FaultSink:
    def __init__(self, token: str = "fault-sink-token") -> None:
        self.token = token
        self.lock = threading.Lock()
        self.scripts: dict[str, Script] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.log: dict[str, list[dict[str, Any]]] = defaultdict(list)  # every request: time, outcome, keys
        self.acked: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)  # (op, key, record)
        self.rejected: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.store: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        sink = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real APIs: resets hit pooled connections too

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer"
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def do_POST(self) -> None:  # noqa: N802
                stream = urlsplit(self.path).path.strip("/")  # the query string is not part of it
                length = int(self.headers.get("Content-Length", 0))
                with sink.lock:
                    sink.counts[stream] += 1
                    n = sink.counts[stream]
                    script = sink.scripts.get(stream)
                if self.headers.get("Authorization") != f"Bearer {sink.token}":
                    self.rfile.read(length)
                    sink._note(stream, n, "401", None)
                    return self._answer(401, {"error": "unauthorized"})
                early = script(n, None) if script is not None else None
                if early is not None and early.kind == "reset_body":
                    self.rfile.read(max(1, length // 2))  # part of the body, then the connection is gone
                    sink._note(stream, n, "reset_body", None)
                    return self._reset()
                body = json.loads(self.rfile.read(length))
                keys = [str(r.get("id")) for r in body.get("records", [])]
                fault = script(n, keys) if script is not None else None
                if fault is not None:
                    if fault.kind == "status":
                        sink._note(stream, n, str(fault.status), keys)
                        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                        return self._answer(fault.status, {"error": "fault injected"}, headers)
                    if fault.kind == "timeout":
                        sink._note(stream, n, "timeout", keys)
                        time.sleep(fault.seconds)
                        return self._reset()
                    if fault.kind == "echo":
                        sink._note(stream, n, f"echo {fault.status}", keys)
                        auth = self.headers.get("Authorization")
                        return self._answer(fault.status, {"error": f"refused {self.path} (Authorization: {auth})"})
                    if fault.kind in ("reset_answer", "reset_body"):
                        sink._note(stream, n, fault.kind, keys)
                        return self._reset()
                    if fault.kind == "slow":
                        time.sleep(fault.seconds)
                results, pending = sink._apply(stream, body)
                if fault is not None and fault.kind == "lost_ack":
                    sink._note(stream, n, "lost_ack", keys)
                    return self._reset()
                # an acknowledgement counts once its answer was written to the client
                with sink.lock:
                    try:
                        self._answer(200, {"results": results})
                    except OSError:
                        sink._note_locked(stream, n, "write failed", keys)
                        return
                    sink._note_locked(stream, n, "200", keys)
                    for op, key, record, error in pending:
                        if error:
                            sink.rejected[stream].append((key, error))
                        else:
                            sink.acked[stream].append((op, key, record))

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def _note(self, stream: str, n: int, outcome: str, keys: list[str] | None) -> None:
        with self.lock:
            self._note_locked(stream, n, outcome, keys)

    def _note_locked(self, stream: str, n: int, outcome: str, keys: list[str] | None) -> None:
        self.log[stream].append({"n": n, "at": time.monotonic(), "outcome": outcome, "keys": keys})

    def _apply(self, stream: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple]]:
        """Apply the accepted records to the store; return the per-record results and (op, key, record, error)."""
        results, pending = [], []
        with self.lock:
            store = self.store[stream]
            for record in body.get("records", []):
                key = str(record["id"])
                if "invalid" in str(record.get("email") or ""):
                    results.append({"id": record.get("id"), "error": REJECT_REASON})
                    pending.append((body["op"], key, record, REJECT_REASON))
                    continue
                if body["op"] == "delete":
                    store.pop(key, None)
                elif body["op"] == "clear":
                    store[key] = {k: (v if k == "id" else None) for k, v in record.items()}
                else:
                    store[key] = record
                results.append({"id": record.get("id"), "error": None})
                pending.append((body["op"], key, record, None))
        return results, pending

    # -- for the tests -------------------------------------------------------------------------------------------

    def script(self, stream: str, script: Script | None) -> None:
        with self.lock:
            if script is None:
                self.scripts.pop(stream, None)
            else:
                self.scripts[stream] = script

    def acknowledged(self, stream: str, since: int = 0) -> dict[str, tuple[str, dict[str, Any]]]:
        """key -> (op, record) of the last acknowledgement of each key (from the `since`-th ack on)."""
        with self.lock:
            return {key: (op, record) for op, key, record in self.acked[stream][since:]}

    def marks(self, stream: str) -> tuple[int, int]:
        """Where the ledgers of a stream stand now: pass to `acknowledged` / `refused` to see one run's part."""
        with self.lock:
            return len(self.acked[stream]), len(self.rejected[stream])

    def acked_entries(self, stream: str, since: int = 0) -> list[tuple[str, str, dict[str, Any]]]:
        with self.lock:
            return list(self.acked[stream][since:])

    def refused(self, stream: str, since: int = 0) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.rejected[stream][since:])

    def outcomes(self, stream: str) -> list[str]:
        with self.lock:
            return [entry["outcome"] for entry in self.log[stream]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(token_var: str) -> Iterator[FaultSink]:
    """A FaultSink whose token is in the env var `token_var` (the destinations' config reads it with env_var) for
    as long as it runs; the variable's earlier value comes back after."""
    server = FaultSink()
    saved = os.environ.get(token_var)
    os.environ[token_var] = server.token
    try:
        yield server
    finally:
        server.close()
        if saved is None:
            os.environ.pop(token_var, None)
        else:
            os.environ[token_var] = saved
