"""`braze`: user profiles through the REST API of your Braze instance.

Inserts, updates and clears go to `POST /users/track` as `{"attributes": [...]}`, at most 75 attribute objects
per request, each `{"external_id": ..., <attribute>: <value>, ...}`; a clear sends every mapped attribute as null
(Braze removes an attribute set to null). Braze answers 201 (or 200) with `{"message": "success", "errors":
[{"type": <reason>, "input_array": "attributes", "index": <i>}]}`: those objects are rejected with Braze's reason,
the rest are acknowledged; a fatal 400 (`message` not "success") rejects the batch. Deletes go to
`POST /users/delete` `{"external_ids": [...]}` (at most 50 per request: a batch is split).

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

from typing import Any

from sync_runner.core.fields import Number, Option, Text, Url

from ._api import ApiDestination, api_message, refused
from .base import POSITIVE, ROWS, Batch, BatchResult

TRACK_LIMIT = 75
DELETE_LIMIT = 50


class BrazeDestination(ApiDestination):
    type = "braze"
    options = (
        Option("api_key", Text(),
               "REST API key (env_var) with users.track / users.delete, sent as Authorization: "
               "Bearer", required=True, secret=True),
        Option("base_url", Url(), "your instance's REST endpoint, e.g. https://rest.iad-01.braze.com", required=True),
        Option("batch_size", ROWS, "attribute objects per request", default=75, limit=75),
        Option("concurrency", Number(integer=True, minimum=1), "requests in flight", default=4),
        Option("rate_per_second", POSITIVE,
               "request rate (Braze allows 3,000 /users/track requests per 3 s)", default=100),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )
    secret_option = "api_key"
    reset_header = "X-RateLimit-Reset"

    def limits(self) -> tuple[int, int | None, int, float | None]:
        rows, size, concurrency, rate = super().limits()
        return min(rows, TRACK_LIMIT), size, concurrency, rate

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config['api_key']}"}

    def send(self, batch: Batch) -> BatchResult:
        ids, rejected = self.identified(batch, "external_id", "Braze identifies users by it")
        if ids:
            rejected.update(self._delete(ids) if batch.op == "delete" else self._track(batch, ids))
        return BatchResult(rejected)

    def _track(self, batch: Batch, ids: dict[int, str]) -> dict[int, str]:
        order = list(ids)
        attributes: list[dict[str, Any]] = []
        for i in order:
            record = batch.records[i]
            attributes.append({**{k: v for k, v in record.items() if k != "external_id"}, "external_id": ids[i]})
        response = self.request("POST", "/users/track", {"attributes": attributes})
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code not in (200, 201) or body.get("message") != "success":
            return {order[j]: reason for j, reason in refused(response, len(order)).items()}
        rejected: dict[int, str] = {}
        unplaced = []
        for error in body.get("errors") or []:
            if isinstance(error, dict) and error.get("input_array", "attributes") != "attributes":
                continue
            reason = (str(error.get("type") or error.get("message") or "refused by Braze") if isinstance(error, dict)
                      else str(error))
            index = error.get("index") if isinstance(error, dict) else None
            if isinstance(index, int) and 0 <= index < len(order):
                rejected[order[index]] = reason
            else:
                unplaced.append(reason)
        if unplaced:  # an error Braze did not tie to an object: none of the rest is acknowledged
            rejected.update({i: unplaced[0] for i in order if i not in rejected})
        return rejected

    def _delete(self, ids: dict[int, str]) -> dict[int, str]:
        order = list(ids)
        rejected: dict[int, str] = {}
        for start in range(0, len(order), DELETE_LIMIT):
            chunk = order[start:start + DELETE_LIMIT]
            response = self.request("POST", "/users/delete", {"external_ids": [ids[i] for i in chunk]})
            if response.status_code not in (200, 201, 202):
                reason = f"HTTP {response.status_code}: {api_message(response)}"
                rejected.update(dict.fromkeys(chunk, reason))
        return rejected
