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

import base64
from typing import Any

from ._api import ApiDestination, dumps, refused
from .base import Batch, BatchResult

REQUEST_LIMIT = 4_000 * 1024
CALL_LIMIT = 32_000


class RudderStackDestination(ApiDestination):
    type = "rudderstack"
    modes = ("insert", "update", "upsert", "mirror")
    on_delete = ("nothing", "clear")
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
    concurrency = 4
    rate_per_second = 50.0
    secret_option = "write_key"

    def open(self) -> None:
        super().open()
        self.user_id_field = str(self.config.get("user_id_field", "user_id"))
        self.event = str(self.config["event"]) if self.config.get("event") else None

    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.config['write_key']}:".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def _call(self, batch: Batch, i: int) -> dict[str, Any]:
        record = batch.records[i]
        fields = {k: v for k, v in record.items() if k not in (self.user_id_field, "anonymous_id")}
        call: dict[str, Any] = {"userId": str(record[self.user_id_field]),
                                "messageId": f"{self.sync_name}-{self.run_id}-{batch.op}-{batch.keys[i]}"}
        if self.event and batch.op in ("insert", "update"):
            call.update({"type": "track", "event": self.event, "properties": fields})
        else:
            call.update({"type": "identify", "context": {"traits": fields}})
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
                               if batch.op == "clear" else f"empty {self.user_id_field}: RudderStack needs a userId")
                continue
            encoded = dumps(self._call(batch, i))
            if len(encoded) > CALL_LIMIT:
                rejected[i] = f"{batch.op} call of {len(encoded)} bytes is over RudderStack's 32 KB limit per call"
                continue
            calls.append((i, encoded))
        envelope = len(b'{"batch":[]}')
        chunk: list[tuple[int, bytes]] = []
        size = envelope
        for item in calls:
            if chunk and size + len(item[1]) + 1 > REQUEST_LIMIT:
                rejected.update(self._post(chunk))
                chunk, size = [], envelope
            chunk.append(item)
            size += len(item[1]) + 1
        if chunk:
            rejected.update(self._post(chunk))
        return BatchResult(rejected)

    def _post(self, chunk: list[tuple[int, bytes]]) -> dict[int, str]:
        body = b'{"batch":[' + b",".join(encoded for _, encoded in chunk) + b"]}"
        response = self.request("POST", "/v1/batch", body)
        if response.status_code == 200:
            return {}
        return {chunk[j][0]: reason for j, reason in refused(response, len(chunk)).items()}
