"""`segment`: identify calls through Segment's HTTP Tracking API (`POST /v1/batch`).

Each record becomes `{"type": "identify", "userId": <user_id>, "traits": {<other fields>}, "messageId": ...}`;
the messageId is stable within a run (sync, run, key, op), so a batch retried after a timeout is deduplicated by
Segment. A batch request carries at most 500 KB and each call at most 32 KB (Segment's documented limits): a
record whose call is over 32 KB is rejected with its size, and a batch is split into requests under 500 KB. A
clear sends every trait as null. Segment has no delete in this API (user deletion is a separate regulation
workflow), so `on_delete: delete` is refused.

Segment answers 200 to every well-formed request, even when it later drops a call, so there are no per-record
errors to read; 400 (a payload too large, bad JSON) rejects the batch with Segment's reason. Note that a wrong
write key may also be answered with 200: check events arrive in the source's debugger once.

Required field: `user_id` (or the field named by `user_id_field`), mapped; `anonymous_id`, if mapped, is sent
as anonymousId. Auth: the source's write key, as the HTTP basic-auth user name.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from ._api import ApiDestination, dumps, refused
from .base import Batch, BatchResult

BATCH_LIMIT = 500_000
CALL_LIMIT = 32_000


class SegmentDestination(ApiDestination):
    type = "segment"
    modes = ("insert", "update", "upsert", "mirror")
    on_delete = ("nothing", "clear")
    options = {
        "write_key": "the HTTP API source's write key (env_var), sent as basic auth",
        "base_url": "API root (default https://api.segment.io; EU workspaces: https://events.eu1.segmentapis.com)",
        "user_id_field": "the mapped field sent as userId (default user_id); other fields become traits",
        "batch_size": "calls per batch (default 500; requests are also kept under 500 KB)",
        "concurrency": "requests in flight (default 4)",
        "rate_per_second": "request rate (default 50)",
        "timeout": "seconds per request (default 30)",
    }
    required = ("write_key",)
    max_rows = 500
    max_bytes = 400_000  # of mapped fields per batch: the calls' envelopes fit in Segment's 500 KB
    concurrency = 4
    rate_per_second = 50.0
    default_base_url = "https://api.segment.io"
    secret_option = "write_key"

    def open(self) -> None:
        super().open()
        self.user_id_field = str(self.config.get("user_id_field", "user_id"))

    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.config['write_key']}:".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def _call(self, batch: Batch, i: int) -> dict[str, Any]:
        record = batch.records[i]
        call: dict[str, Any] = {"type": "identify", "userId": str(record[self.user_id_field]),
                                "messageId": f"{self.sync_name}-{self.run_id}-{batch.op}-{batch.keys[i]}",
                                "traits": {k: v for k, v in record.items()
                                           if k not in (self.user_id_field, "anonymous_id")}}
        if record.get("anonymous_id") is not None:
            call["anonymousId"] = str(record["anonymous_id"])
        return call

    def send(self, batch: Batch) -> BatchResult:
        self.require_field(batch, self.user_id_field, "sent as userId")
        rejected: dict[int, str] = {}
        calls: list[tuple[int, bytes]] = []
        for i, record in enumerate(batch.records):
            if record.get(self.user_id_field) is None or str(record[self.user_id_field]).strip() == "":
                rejected[i] = (f"on_delete clear needs {self.user_id_field} mapped from the primary key"
                               if batch.op == "clear" else f"empty {self.user_id_field}: Segment needs a userId")
                continue
            encoded = dumps(self._call(batch, i))
            if len(encoded) > CALL_LIMIT:
                rejected[i] = f"identify call of {len(encoded)} bytes is over Segment's 32 KB limit per call"
                continue
            calls.append((i, encoded))
        sent_at = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z").encode()
        envelope = len(b'{"batch":[],"sentAt":""}') + len(sent_at)
        chunk: list[tuple[int, bytes]] = []
        size = envelope
        for item in calls:
            if chunk and size + len(item[1]) + 1 > BATCH_LIMIT:
                rejected.update(self._post(chunk, sent_at))
                chunk, size = [], envelope
            chunk.append(item)
            size += len(item[1]) + 1
        if chunk:
            rejected.update(self._post(chunk, sent_at))
        return BatchResult(rejected)

    def _post(self, chunk: list[tuple[int, bytes]], sent_at: bytes) -> dict[int, str]:
        body = b'{"batch":[' + b",".join(c for _, c in chunk) + b'],"sentAt":"' + sent_at + b'"}'
        response = self.request("POST", "/v1/batch", body)
        if response.status_code == 200:
            return {}
        return {chunk[j][0]: reason for j, reason in refused(response, len(chunk)).items()}
