"""A fake RudderStack data plane HTTP API (`POST /v1/batch`), following the documented contract.

  Authorization: Basic base64(<write key>:), else 401 "Invalid Write Key" (text/plain, as the gateway answers)
  body {"batch": [{"type": "identify" | "track", "userId"?, "anonymousId"?, "context": {"traits"}, "event"?,
      "properties"?, "messageId"}]}: a request over 4,000 KB is refused with 413 "Request size exceeds max limit";
      a call over 32 KB (the documented limit per call) with 400; bad JSON with 400 "Invalid JSON"; a call with
      neither userId nor anonymousId with 400 "Request neither has anonymousId nor userId" (the whole batch)
  otherwise 200 "OK": calls are applied (identify merges context.traits into the profile, a null trait kept as
      null; track appends (event, properties) to the user's events); a messageId seen before is ignored.
Profiles live in `profiles[userId] = traits`, track calls in `events[userId] = [(event, properties)]`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .api_server import Answer, FakeApi


class RudderStack(FakeApi):
    def __init__(self, write_key: str = "rs-write-key-test") -> None:
        self.write_key = write_key
        self.profiles: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[tuple[str, dict]]] = {}
        self.message_ids: set[str] = set()
        self.calls = 0
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        expected = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return headers.get("Authorization") == f"Basic {expected}"

    def unauthorized(self) -> Answer:
        return 401, "Invalid Write Key", {}

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if method != "POST" or path != "/v1/batch":
            return 404, "Source does not accept webhook events", {}
        if len(raw) > 4_000 * 1024:
            return 413, "Request size exceeds max limit", {}
        try:
            calls = json.loads(raw)["batch"]
            assert isinstance(calls, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            return 400, "Invalid JSON", {}
        for call in calls:
            size = len(json.dumps(call, separators=(",", ":"), ensure_ascii=False).encode())
            if size > 32_000:
                return 400, f"Event of {size} bytes exceeds the 32KB limit per event", {}
            if not call.get("userId") and not call.get("anonymousId"):
                return 400, "Request neither has anonymousId nor userId", {}
        for call in calls:
            self.calls += 1
            if call.get("messageId") in self.message_ids:
                continue
            self.message_ids.add(call.get("messageId"))
            user = call.get("userId") or call.get("anonymousId")
            if call.get("type") == "identify":
                self.profiles.setdefault(user, {}).update((call.get("context") or {}).get("traits") or {})
            elif call.get("type") == "track":
                self.events.setdefault(user, []).append((call.get("event"), call.get("properties") or {}))
        return 200, "OK", {}
