"""`rudderstack`: identify (or track) calls through the RudderStack HTTP API of your data plane (`POST /v1/batch`).

Each record becomes `{"type": "identify", "userId": <user_id>, "context": {"traits": {<other fields>}},
"messageId": ...}` (RudderStack's HTTP API carries identify traits in `context.traits`); with `event` set, inserts
and updates are sent as `{"type": "track", "event": <event>, "userId", "properties": {<other fields>}}` instead.
The messageId is stable within a run (sync, run, key, op), so a batch retried after a timeout can be deduplicated.
A request carries at most 4,000 KB (the data plane's `maxReqSizeInKB`; it answers 413 "Request size exceeds max
limit" above it) and each call at most 32 KB (RudderStack's documented limit per call): a call over 32 KB is
rejected with its size, and a batch is split into requests under 4,000 KB. A clear is an identify call with every
trait null. The HTTP API has no delete (user deletion is RudderStack's separate regulation API), so
`on_delete: delete` is refused.

The data plane answers 200 "OK" to a whole batch and has no per-call errors; 400 (bad JSON, a call with neither
userId nor anonymousId) or 413 rejects the request with its reason; 401 ("Invalid Write Key") / 403 stop the sync;
404 ("Source is disabled") stops it too.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

from typing import Any

from sync_runner.core.fields import Number, Option, Text, Url

from .base import POSITIVE, ROWS, Batch
from .segment import SegmentDestination


class RudderStackDestination(SegmentDestination):
    """Segment's batch API shape, with RudderStack's limits, traits under `context` and optional track calls."""

    type = "rudderstack"
    label = "RudderStack"
    options = (
        Option("write_key", Text(),
               "the HTTP source's write key (env_var), sent as basic auth", required=True, secret=True),
        Option("base_url", Url(),
               "your data plane URL, e.g. https://yourcompanyxyz.dataplane.rudderstack.com", required=True),
        Option("user_id_field", Text(),
               "the mapped field sent as userId; other fields become traits", default="user_id"),
        Option("event", Text(),
               "send inserts and updates as track calls of this event (properties = fields) instead of identify"),
        Option("batch_size", ROWS, "calls per batch (requests are also kept under 4,000 KB)", default=1000),
        Option("concurrency", Number(integer=True, minimum=1), "requests in flight", default=4),
        Option("rate_per_second", POSITIVE, "request rate", default=50),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )
    max_bytes = 3_500_000  # of mapped fields per batch: the calls' envelopes fit in the 4,000 KB per request
    request_limit = 4_000 * 1024
    envelope = len(b'{"batch":[]}')

    def open(self) -> None:
        super().open()
        self.event = str(self.config["event"]) if self.config.get("event") else None

    def call(self, batch: Batch, i: int) -> dict[str, Any]:
        record = batch.records[i]
        fields = {k: v for k, v in record.items() if k not in (self.identifier, "anonymous_id")}
        call: dict[str, Any] = {"userId": str(record[self.identifier]),
                                "messageId": f"{self.sync_name}-{self.run_id}-{batch.op}-{batch.keys[i]}"}
        if self.event and batch.op in ("insert", "update"):
            call.update({"type": "track", "event": self.event, "properties": fields})
        else:
            call.update({"type": "identify", "context": {"traits": fields}})
        if record.get("anonymous_id") is not None:
            call["anonymousId"] = str(record["anonymous_id"])
        return call

    def body(self, calls: list[bytes]) -> bytes:
        return b'{"batch":[' + b",".join(calls) + b"]}"
