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

from ._api import CallListDestination, refused
from .base import Batch


class SegmentDestination(CallListDestination):
    type = "segment"
    label = "Segment"
    request_limit = 500_000
    envelope = len(b'{"batch":[],"sentAt":"2026-01-01T00:00:00.000000Z"}')
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
        self.identifier = str(self.config.get("user_id_field", "user_id"))

    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.config['write_key']}:".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def call(self, batch: Batch, i: int) -> dict[str, Any]:
        record = batch.records[i]
        call: dict[str, Any] = {"type": "identify", "userId": str(record[self.identifier]),
                                "messageId": f"{self.sync_name}-{self.run_id}-{batch.op}-{batch.keys[i]}",
                                "traits": {k: v for k, v in record.items()
                                           if k not in (self.identifier, "anonymous_id")}}
        if record.get("anonymous_id") is not None:
            call["anonymousId"] = str(record["anonymous_id"])
        return call

    def body(self, calls: list[bytes]) -> bytes:
        sent_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        return b'{"batch":[' + b",".join(calls) + b'],"sentAt":"' + sent_at + b'"}'

    def post(self, chunk: list[tuple[int, bytes]]) -> dict[int, str]:
        response = self.request("POST", "/v1/batch", self.body([encoded for _, encoded in chunk]))
        if response.status_code == 200:
            return {}
        return {chunk[j][0]: reason for j, reason in refused(response, len(chunk)).items()}
