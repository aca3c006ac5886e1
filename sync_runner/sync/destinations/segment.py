"""`segment`: identify calls through Segment's HTTP Tracking API (`POST /v1/batch`).

Each record becomes `{"type": "identify", "userId": <user_id>, "traits": {<other fields>}, "messageId": ...}`;
the messageId is stable within a run (sync, run, key, op), so a batch retried after a timeout is deduplicated by
Segment. A batch request carries at most 500 KB and each call at most 32 KB (Segment's documented limits): a
record whose call is over 32 KB is rejected with its size, and a batch is split into requests under 500 KB. A
clear sends every trait as null. Segment has no delete in this API (user deletion is a separate regulation
workflow), so `on_delete: delete` is refused.

Segment answers 200 to every well-formed request, even when it later drops a call, so there are no per-record
errors to read; 400 (a payload too large, bad JSON) rejects the batch with Segment's reason.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, ClassVar

from sync_runner.core.fields import Number, Option, Text, Url

from ._api import CallListDestination, refused
from .base import POSITIVE, ROWS, Batch


class SegmentDestination(CallListDestination):
    type = "segment"
    label = "Segment"
    request_limit = 500_000
    envelope = len(b'{"batch":[],"sentAt":"2026-01-01T00:00:00.000000Z"}')
    modes = ("insert", "update", "upsert", "mirror")
    on_delete = ("nothing", "clear")
    options: ClassVar[tuple[Option, ...]] = (
        Option("write_key", Text(),
               "the HTTP API source's write key (env_var), sent as basic auth", required=True, secret=True),
        Option("base_url", Url(), "API root (EU workspaces: https://events.eu1.segmentapis.com)", default="https://api.segment.io"),
        Option("user_id_field", Text(),
               "the mapped field sent as userId; other fields become traits", default="user_id"),
        Option("batch_size", ROWS, "calls per batch (requests are also kept under 500 KB)", default=500),
        Option("concurrency", Number(integer=True, minimum=1), "requests in flight", default=4),
        Option("rate_per_second", POSITIVE, "request rate", default=50),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )
    max_bytes = 400_000  # of mapped fields per batch: the calls' envelopes fit in Segment's 500 KB
    secret_option = "write_key"

    def open(self) -> None:
        super().open()
        self.identifier = str(self.setting("user_id_field"))

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
