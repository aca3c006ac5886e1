"""A fake Braze REST API (/users/track attributes, /users/delete), following the documented contract.

  Authorization: Bearer <REST API key>, else 401 {"message": "Invalid API key: ..."}
  POST /users/track {"attributes": [{"external_id": ..., <attribute>: <value>}]}: at most 75 attribute objects
      (else 400 {"message": ...}); 201 {"message": "success", "attributes_processed": n, "errors": [{"type",
      "input_array": "attributes", "index"}]} where an object without external_id, or whose `email` contains
      "invalid", is refused and the others are applied (an attribute set to null is removed)
  POST /users/delete {"external_ids": [...]}: at most 50 (else 400); 201 {"deleted": n, "message": "success"}
  429 faults carry Retry-After or X-RateLimit-Reset (epoch seconds), as the test asks.
Profiles live in `users[external_id] = attributes`.
"""

from __future__ import annotations

import json
from typing import Any

from .api_server import Answer, FakeApi


class Braze(FakeApi):
    def __init__(self, api_key: str = "braze-rest-key-test") -> None:
        self.api_key = api_key
        self.users: dict[str, dict[str, Any]] = {}
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        return headers.get("Authorization") == f"Bearer {self.api_key}"

    def unauthorized(self) -> Answer:
        return 401, {"message": "Invalid API key: the key is not valid for this instance"}, {}

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if method != "POST" or path not in ("/users/track", "/users/delete"):
            return 404, {"message": f"no route {method} {path}"}, {}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"message": "Invalid JSON in request body"}, {}
        if path == "/users/delete":
            ids = body.get("external_ids") or []
            if len(ids) > 50:
                return 400, {"message": f"'external_ids' can contain at most 50 ids, received {len(ids)}"}, {}
            deleted = sum(self.users.pop(str(i), None) is not None for i in ids)
            return 201, {"deleted": deleted, "message": "success"}, {}
        attributes = body.get("attributes") or []
        if len(attributes) > 75:
            return 400, {"message": f"'attributes' can contain at most 75 objects, received {len(attributes)}"}, {}
        errors = []
        for index, item in enumerate(attributes):
            if not item.get("external_id"):
                errors.append({"type": "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required",
                               "input_array": "attributes", "index": index})
                continue
            if "invalid" in str(item.get("email") or ""):
                errors.append({"type": f"Invalid email address {item['email']!r}", "input_array": "attributes",
                               "index": index})
                continue
            profile = self.users.setdefault(str(item["external_id"]), {})
            for k, v in item.items():
                if k == "external_id":
                    continue
                if v is None:
                    profile.pop(k, None)
                else:
                    profile[k] = v
        answer: dict[str, Any] = {"message": "success", "attributes_processed": len(attributes) - len(errors)}
        if errors:
            answer["errors"] = errors
        return 201, answer, {}
