"""A fake HubSpot CRM objects API (v3 batch endpoints), following the documented contract.

  Authorization: Bearer <private-app token>, else 401 {"status": "error", "category": "INVALID_AUTHENTICATION"}
  POST /crm/v3/objects/{object}/batch/upsert {"inputs": [{"idProperty", "id", "properties", "objectWriteTraceId"}]}
      at most 100 inputs (else 400 VALIDATION_ERROR); an `email` property containing "invalid" is refused.
      All inputs fine: 200 {"status": "COMPLETE", "results": [...]}. Some refused and every input carries an
      objectWriteTraceId: 207 with `results` for the others and `errors` naming the trace ids; without trace ids
      the whole batch is refused (400) and nothing is written.
  POST .../batch/read {"idProperty", "inputs": [{"id"}], "properties"}: 200, or 207 with OBJECT_NOT_FOUND errors
  POST .../batch/archive {"inputs": [{"id": <record id>}]}: 204, no body
Records live in `objects[object][record_id] = properties` (all values strings, as HubSpot stores them).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from .api_server import Answer, FakeApi

_PATH = re.compile(r"^/crm/v3/objects/([A-Za-z0-9_-]+)/batch/(upsert|read|archive)$")


class HubSpot(FakeApi):
    def __init__(self, token: str = "pat-na1-test-token") -> None:
        self.token = token
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.ids = itertools.count(1001)
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        return headers.get("Authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> Answer:
        return 401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                     "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication"}, {}

    def records(self, object_type: str = "contacts", by: str = "email") -> dict[str, dict[str, Any]]:
        return {props[by]: props for props in self.objects.get(object_type, {}).values()}

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        match = _PATH.match(path)
        if method != "POST" or not match:
            return 404, {"status": "error", "category": "OBJECT_NOT_FOUND", "message": f"no route {path}"}, {}
        object_type, action = match.groups()
        body = json.loads(raw)
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            return 400, {"status": "error", "category": "VALIDATION_ERROR",
                         "message": f"Batch input cannot exceed 100 inputs, {len(inputs)} provided"}, {}
        store = self.objects.setdefault(object_type, {})
        return getattr(self, f"_{action}")(store, body, inputs)

    @staticmethod
    def _find(store: dict, prop: str, value: str) -> str | None:
        return next((rid for rid, props in store.items() if props.get(prop) == value), None)

    def _upsert(self, store: dict, body: dict, inputs: list) -> Answer:
        errors, good = [], []
        for item in inputs:
            props = item.get("properties") or {}
            if "invalid" in str(props.get("email", item.get("id") if item.get("idProperty") == "email" else "")):
                errors.append({"status": "error", "category": "VALIDATION_ERROR",
                               "message": f"Property values were not valid: email {props.get('email') or item['id']!r}"
                                          " is not a valid email address",
                               "context": {"objectWriteTraceId": [item.get("objectWriteTraceId")]}})
            elif not item.get("idProperty") or item.get("id") in (None, ""):
                errors.append({"status": "error", "category": "VALIDATION_ERROR", "message": "id is required",
                               "context": {"objectWriteTraceId": [item.get("objectWriteTraceId")]}})
            else:
                good.append(item)
        if errors and not all(i.get("objectWriteTraceId") for i in inputs):
            return 400, {"status": "error", "category": "VALIDATION_ERROR", "message": errors[0]["message"]}, {}
        results = []
        for item in good:
            prop, value = item["idProperty"], str(item["id"])
            rid = self._find(store, prop, value)
            new = rid is None
            if new:
                rid = str(next(self.ids))
                store[rid] = {}
            store[rid].update({k: ("" if v is None else str(v)) for k, v in item["properties"].items()})
            store[rid][prop] = value
            results.append({"id": rid, "new": new, "properties": dict(store[rid]),
                            "objectWriteTraceId": item.get("objectWriteTraceId")})
        answer = {"status": "COMPLETE", "results": results}
        if errors:
            answer.update(errors=errors, numErrors=len(errors))
            return 207, answer, {}
        return 200, answer, {}

    def _read(self, store: dict, body: dict, inputs: list) -> Answer:
        prop = body.get("idProperty") or "hs_object_id"
        results, missing = [], []
        for item in inputs:
            rid = self._find(store, prop, str(item["id"])) if prop != "hs_object_id" else item["id"]
            if rid in store:
                results.append({"id": rid, "properties": dict(store[rid])})
            else:
                missing.append(str(item["id"]))
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            answer["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                                 "message": "Could not get some objects, they may be deleted or not exist",
                                 "context": {"ids": missing}}]
            return 207, answer, {}
        return 200, answer, {}

    def _archive(self, store: dict, body: dict, inputs: list) -> Answer:
        for item in inputs:
            store.pop(str(item["id"]), None)
        return 204, None, {}
