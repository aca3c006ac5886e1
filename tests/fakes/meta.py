"""A fake Meta Marketing API for customer-file Custom Audiences, following the documented contract.

  POST   /{version}/{audience_id}/users   add people
  DELETE /{version}/{audience_id}/users   remove people
      JSON body {"session": {"session_id": int, "batch_seq": int >= 1, "last_batch_flag": bool, ...},
      "payload": {"schema": "EMAIL_SHA256" | ["EMAIL", "PHONE", ...], "is_raw"?: bool, "data": [...]},
      "access_token"} (the guide marks `session` required: without a valid one, 400 code 100)
      (a single-key schema takes a list of hashes, a list schema a list of rows, one value per key).
      200 {"audience_id", "session_id", "num_received", "num_invalid_entries", "invalid_entry_samples":
      {entry: reason}}: an entry is invalid when a value is not 64 lowercase hex (or ""), a row has the wrong
      length or no value at all, or a hash is in `refused` (people Meta will not take, for the tests).
  Errors are Graph errors {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}, HTTP 400:
      a bad access_token 190 (OAuthException), more than 10,000 rows 100, a wrong schema 100, an unknown
      audience 100 / subcode 33; `throttle(n)` answers the next n requests with 80003 (custom audience
      throttling), HTTP 400 as Graph does; `fail_next` 429s carry Retry-After.
Members live in `audiences[audience_id]` as a set of (schema key, hash) pairs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .api_server import Answer, FakeApi

HEX64 = re.compile(r"^[0-9a-f]{64}$")
KEYS = {"EMAIL", "PHONE", "FN", "LN", "ZIP", "CT", "ST", "COUNTRY", "DOBY", "GEN", "EXTERN_ID", "MADID"}
SINGLE = {"EMAIL_SHA256": "EMAIL", "PHONE_SHA256": "PHONE"}


def graph_error(message: str, code: int, subcode: int | None = None, kind: str = "OAuthException") -> dict:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGh123"}
    if subcode:
        error["error_subcode"] = subcode
    return {"error": error}


class Meta(FakeApi):
    LIMIT = 10_000

    def __init__(self, access_token: str = "EAAB-meta-system-user-token", audiences=("23850000000000001",)) -> None:
        self.access_token = access_token
        self.audiences: dict[str, set[tuple[str, str]]] = {a: set() for a in audiences}
        self.refused: set[str] = set()
        self.throttled = 0
        self.bodies: list[dict] = []
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        return True  # the token is in the body: checked in route, after throttling faults like Graph

    def throttle(self, count: int) -> None:
        with self.lock:
            self.throttled += count

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) != 3 or parts[2] != "users" or method not in ("POST", "DELETE") \
                or not re.match(r"^v\d+\.0$", parts[0]):
            return 400, graph_error(f"Unknown path components: /{'/'.join(parts[1:])}", 2500), {}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, graph_error("(#100) Invalid JSON", 100), {}
        if body.get("access_token") != self.access_token:
            return 400, graph_error("Invalid OAuth access token - Cannot parse access token", 190), {}
        if self.throttled:
            self.throttled -= 1
            return 400, graph_error("There have been too many calls for this ad-account. Wait a bit and try again.",
                                    80003, 2446079), {}
        audience = self.audiences.get(parts[1])
        if audience is None:
            return 400, graph_error(f"Unsupported post request. Object with ID '{parts[1]}' does not exist, cannot "
                                    "be loaded due to missing permissions, or does not support this operation",
                                    100, 33, "GraphMethodException"), {}
        session = body.get("session")
        if not isinstance(session, dict) or not isinstance(session.get("session_id"), int) \
                or not isinstance(session.get("batch_seq"), int) or session["batch_seq"] < 1 \
                or not isinstance(session.get("last_batch_flag"), bool):
            return 400, graph_error("(#100) The parameter session is required: session_id, batch_seq, "
                                    "last_batch_flag", 100), {}
        payload = body.get("payload")
        if isinstance(payload, str):
            payload = json.loads(payload)
        if not isinstance(payload, dict) or "schema" not in payload or not isinstance(payload.get("data"), list):
            return 400, graph_error("(#100) The parameter payload is required with schema and data", 100), {}
        schema, data = payload["schema"], payload["data"]
        if len(data) > self.LIMIT:
            return 400, graph_error(f"(#100) Too many users in this batch: {len(data)}, the limit is 10000", 100), {}
        if isinstance(schema, str):
            if schema not in SINGLE:
                return 400, graph_error(f"(#100) Invalid schema {schema}", 100), {}
            keys, rows = [SINGLE[schema]], [[v] for v in data]
        else:
            if not schema or any(k not in KEYS for k in schema) or len(set(schema)) != len(schema):
                return 400, graph_error(f"(#100) Invalid schema {schema}", 100), {}
            keys, rows = list(schema), data
        self.bodies.append({"method": method, "schema": schema, "rows": len(data)})
        invalid: dict[str, str] = {}
        count = 0
        for row in rows:
            if not isinstance(row, list) or len(row) != len(keys):
                count += 1
                invalid[json.dumps(row)[:80]] = "Row does not match the schema"
                continue
            bad = [v for v in row if not isinstance(v, str) or (v and not HEX64.match(v))]
            refused = [v for v in row if v in self.refused]
            if bad or refused or not any(row):
                count += 1
                entry = str((bad or refused or [""])[0])
                invalid[entry] = ("Invalid hash format: expected SHA-256 lowercase hex" if bad else
                                  "Entry refused by Meta" if refused else "Empty row")
                continue
            pairs = {(k, v) for k, v in zip(keys, row, strict=True) if v}
            if method == "POST":
                audience.update(pairs)
            else:
                audience.difference_update(pairs)
        return 200, {"audience_id": parts[1], "session_id": str(session["session_id"]), "num_received": len(rows),
                     "num_invalid_entries": count, "invalid_entry_samples": invalid}, {}
