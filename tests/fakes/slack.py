"""A local Slack incoming webhook (and a generic JSON webhook receiver), following Slack's documented contract.

Slack incoming webhooks (api.slack.com/messaging/webhooks):
  POST /services/<team>/<bot>/<secret>, Content-Type application/json, body {"text": "...", ...}
  200 with the plain-text body `ok` when the message was posted
  400 `invalid_payload` (not JSON) or `no_text` (neither `text` nor `blocks`)
  403 `invalid_token` for a wrong secret; 404 `no_service` for an unknown or revoked webhook path
The generic receiver takes POST /hooks/<name> with any JSON body, checks `Authorization` when a token is set
(401 otherwise) and answers 204.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeSlack:
    def __init__(self, secret: str, json_token: str | None = None) -> None:
        self.secret = secret
        self.json_token = json_token
        self.messages: list[dict[str, Any]] = []  # what Slack would have posted
        self.hooks: list[dict[str, Any]] = []  # JSON bodies of the generic receiver
        self.raw: list[bytes] = []  # every request body, as received (URL and headers carry the secrets)
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.raw.append(raw)
                parts = self.path.strip("/").split("/")
                if parts[0] == "hooks" and len(parts) == 2:
                    if fake.json_token and self.headers.get("Authorization") != f"Bearer {fake.json_token}":
                        return self._answer(401, "unauthorized")
                    with fake.lock:
                        fake.hooks.append(json.loads(raw))
                    return self._answer(204, "")
                if parts[0] != "services" or len(parts) != 4:
                    return self._answer(404, "no_service")
                if parts[3] != fake.secret:
                    return self._answer(403, "invalid_token")
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._answer(400, "invalid_payload")
                if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
                    return self._answer(400, "no_text")
                with fake.lock:
                    fake.messages.append(body)
                return self._answer(200, "ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.webhook_url = f"{self.url}/services/T0001/B0001/{secret}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
