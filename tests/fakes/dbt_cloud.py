"""A local stand-in for the dbt Cloud Admin API v2, serving run artifacts.

Contract (the part `dbt-studio serve` uses):
  GET /api/v2/accounts/{account_id}/runs/{run_id}/artifacts/{path}
      header `Authorization: Token <service token>` (else 401); unknown account, run or artifact: 404
      200 with the artifact's bytes
Tests put artifacts with `add_run(run_id, directory)` (manifest.json and run_results.json of a real build), can
make a run answer a given status (`fail[run_id] = 500`), and read back every request in `requests`.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_PATH = re.compile(r"^/api/v2/accounts/(\d+)/runs/(\d+)/artifacts/([\w./-]+)$")


class DbtCloud:
    def __init__(self, account_id: str, token: str) -> None:
        self.account_id = account_id
        self.token = token
        self.runs: dict[str, dict[str, bytes]] = {}
        self.fail: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                with cloud.lock:
                    cloud.requests.append({"path": path, "authorization": self.headers.get("Authorization")})
                if self.headers.get("Authorization") != f"Token {cloud.token}":
                    return self._answer(401, b'{"status": {"code": 401, "is_success": false}}')
                match = _PATH.match(path)
                if not match or match.group(1) != cloud.account_id:
                    return self._answer(404, b'{"status": {"code": 404, "is_success": false}}')
                run_id, name = match.group(2), match.group(3)
                if run_id in cloud.fail:
                    return self._answer(cloud.fail[run_id], b'{"status": {"is_success": false}}')
                artifact = cloud.runs.get(run_id, {}).get(name)
                if artifact is None:
                    return self._answer(404, b'{"status": {"code": 404, "user_message": "not found"}}')
                return self._answer(200, artifact)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_run(self, run_id: str, directory: Path, names: tuple[str, ...] = ("manifest.json", "run_results.json")):
        self.runs[str(run_id)] = {name: (directory / name).read_bytes() for name in names}

    def artifact_requests(self, run_id: str) -> list[str]:
        with self.lock:
            return [r["path"] for r in self.requests if f"/runs/{run_id}/" in r["path"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
