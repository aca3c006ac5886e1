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

Required field: `user_id` (or the field named by `user_id_field`), mapped; `anonymous_id`, if mapped, is sent as
anonymousId. Auth: the source's write key as the HTTP basic-auth user name. `base_url` is your data plane URL
and is required.
"""

from __future__ import annotations

from typing import Any

from .base import Batch
from .segment import SegmentDestination


class RudderStackDestination(SegmentDestination):
    """Segment's batch API shape, with RudderStack's limits, traits under `context` and optional track calls."""

    type = "rudderstack"
    label = "RudderStack"
    options = {
        "write_key": "the HTTP source's write key (env_var), sent as basic auth",
        "base_url": "your data plane URL, e.g. https://yourcompanyxyz.dataplane.rudderstack.com",
        "user_id_field": "the mapped field sent as userId (default user_id); other fields become traits",
        "event": "send inserts and updates as track calls of this event (properties = fields) instead of identify",
        "batch_size": "calls per batch (default 1000; requests are also kept under 4,000 KB)",
        "concurrency": "requests in flight (default 4)",
        "rate_per_second": "request rate (default 50)",
        "timeout": "seconds per request (default 30)",
    }
    required = ("write_key", "base_url")
    max_rows = 1000
    max_bytes = 3_500_000  # of mapped fields per batch: the calls' envelopes fit in the 4,000 KB per request
    request_limit = 4_000 * 1024
    envelope = len(b'{"batch":[]}')
    default_base_url = ""

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
