"""A fake Segment HTTP Tracking API (`POST /v1/batch`), following the documented contract.

  Authorization: Basic base64(<write key>:), else 401 (the real API may also answer 200 to a wrong key)
  body {"batch": [{"type": "identify", "userId", "traits", "messageId", ...}], "sentAt"}: at most 500 KB per
      request and 32 KB per call, else 400 {"success": false, "message": ...}; bad JSON: 400
  otherwise always 200 {"success": true}: calls are applied (traits merged into the profile; a messageId seen
      before is ignored, as Segment deduplicates)
Profiles live in `profiles[userId] = traits`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .api_server import Answer, FakeApi


class Segment(FakeApi):
    def __init__(self, write_key: str = "seg-write-key-test") -> None:
        self.write_key = write_key
        self.profiles: dict[str, dict[str, Any]] = {}
        self.message_ids: set[str] = set()
        self.calls = 0
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        expected = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return headers.get("Authorization") == f"Basic {expected}"

    def unauthorized(self) -> Answer:
        return 401, {"success": False, "message": "Invalid write key"}, {}

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if method != "POST" or path != "/v1/batch":
            return 404, {"success": False, "message": f"no route {method} {path}"}, {}
        if len(raw) > 500_000:
            return 400, {"success": False, "message": f"request of {len(raw)} bytes is over 500 KB"}, {}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"success": False, "message": "invalid JSON"}, {}
        calls = body.get("batch") or []
        for call in calls:
            size = len(json.dumps(call, separators=(",", ":")).encode())
            if size > 32_000:
                return 400, {"success": False, "message": f"a call of {size} bytes is over 32 KB"}, {}
        for call in calls:
            self.calls += 1
            if call.get("messageId") in self.message_ids:
                continue
            self.message_ids.add(call.get("messageId"))
            if call.get("type") == "identify" and call.get("userId"):
                self.profiles.setdefault(call["userId"], {}).update(call.get("traits") or {})
        return 200, {"success": True}, {}
