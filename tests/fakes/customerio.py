"""A fake Customer.io Track API v2 (`POST /api/v2/batch`), following the documented contract.

  Authorization: Basic base64(<site id>:<API key>), else 401 {"meta": {"error": "Unauthorized request"}}
  body {"batch": [{"type": "person", "identifiers": {"id" | "email": ...}, "action": "identify" | "delete",
      "attributes": {...}}]}: a request over 500 KB is refused with 413 (the documented limit; the status is what
      a proxy in front of the API answers), an operation over 32 KB, bad JSON or no `batch` array with 400
      {"meta": {"error": ...}}
  otherwise 200 {} when every operation was applied, or 207 {"errors": [{"batch_index", "reason", "field",
      "message"}]} for the refused ones, the others applied. Refused, as Customer.io documents for identify
      calls: no identifier, an empty id, more than 300 attributes, an attribute name over 150 bytes, an
      attribute value over 1,000 bytes ("value for attribute 'X' cannot be longer than 1000 bytes").
  identify merges attributes into the person (created if new); an attribute sent as "" or null is removed;
  delete removes the person (a person that does not exist is not an error).
People live in `people[<identifier value>] = attributes`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .api_server import Answer, FakeApi


class CustomerIo(FakeApi):
    def __init__(self, site_id: str = "cio-site-test", api_key: str = "cio-track-key-test") -> None:
        self.site_id = site_id
        self.api_key = api_key
        self.people: dict[str, dict[str, Any]] = {}
        self.operations = 0
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        expected = base64.b64encode(f"{self.site_id}:{self.api_key}".encode()).decode()
        return headers.get("Authorization") == f"Basic {expected}"

    def unauthorized(self) -> Answer:
        return 401, {"meta": {"error": "Unauthorized request"}}, {}

    @staticmethod
    def _problem(item: Any) -> tuple[str, str, str] | None:
        """(reason, field, message) when Customer.io refuses the operation, else None."""
        if not isinstance(item, dict) or item.get("type") != "person":
            return "invalid", "type", "type must be person"
        identifiers = item.get("identifiers") or {}
        if not isinstance(identifiers, dict) or not any(k in identifiers for k in ("id", "email", "cio_id")):
            return "required", "identifiers", "identifiers must contain id, email or cio_id"
        if "id" in identifiers and str(identifiers["id"]) == "":
            return "invalid", "identifiers.id", "id attribute cannot be an empty string"
        if item.get("action") not in ("identify", "delete"):
            return "invalid", "action", f"unsupported action {item.get('action')!r}"
        attributes = item.get("attributes") or {}
        if len(attributes) > 300:
            return "invalid", "attributes", "cannot identify more than 300 attributes in one request"
        for name, value in attributes.items():
            if len(name.encode()) > 150:
                return "invalid", "attributes", "attribute name cannot be longer than 150 bytes"
            if len(json.dumps(value).encode() if not isinstance(value, str) else value.encode()) > 1000:
                return "invalid", f"attributes.{name}", f"value for attribute '{name}' cannot be longer than 1000 bytes"
        return None

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if method != "POST" or path != "/api/v2/batch":
            return 404, {"meta": {"error": f"no route {method} {path}"}}, {}
        if len(raw) > 500_000:
            return 413, {"meta": {"error": f"request of {len(raw)} bytes is over the 500kb limit"}}, {}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"meta": {"error": "invalid JSON"}}, {}
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list):
            return 400, {"meta": {"error": "batch must be an array"}}, {}
        for item in batch:
            size = len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode())
            if size > 32_000:
                return 400, {"meta": {"error": f"an operation of {size} bytes is over the 32kb limit"}}, {}
        errors = []
        for index, item in enumerate(batch):
            self.operations += 1
            problem = self._problem(item)
            if problem:
                reason, field, message = problem
                errors.append({"batch_index": index, "reason": reason, "field": field, "message": message})
                continue
            key = str(next(iter(item["identifiers"].values())))
            if item["action"] == "delete":
                self.people.pop(key, None)
                continue
            person = self.people.setdefault(key, {})
            for name, value in (item.get("attributes") or {}).items():
                if value is None or value == "":
                    person.pop(name, None)
                else:
                    person[name] = value
        if errors:
            return 207, {"errors": errors}, {}
        return 200, {}, {}
