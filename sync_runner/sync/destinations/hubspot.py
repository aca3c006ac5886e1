"""`hubspot`: CRM objects (contacts, companies, deals, custom objects) upserted by a unique id property.

Inserts, updates and clears go to `POST /crm/v3/objects/{object}/batch/upsert` (at most 100 inputs), each input
`{"idProperty": <id_property>, "id": <value>, "properties": {...}, "objectWriteTraceId": <index>}`: the trace id
turns on HubSpot's multi-status answers (207), whose `errors` name the inputs HubSpot refused, so only those are
rejected. Property values are sent as HubSpot stores them (strings; "" empties a property, so a clear empties
every mapped property but the id property). Deletes look the records up by the id property
(`batch/read`) and archive them by their record id (`batch/archive`); records HubSpot no longer has count as
deleted.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sync_runner.core.fields import Number, Option, Text, Url

from ._api import ApiDestination, api_message, refused
from .base import POSITIVE, ROWS, Batch, BatchResult, Terminal
from .values import json_default

_OBJECT = re.compile(r"^[A-Za-z0-9_-]+$")


def property_value(value: Any) -> str:
    """HubSpot's representation: strings, "" for empty, true/false, ISO dates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(json_default(value))


class HubSpotDestination(ApiDestination):
    type = "hubspot"
    options = (
        Option("access_token", Text(),
               "private-app access token (env_var), sent as Authorization: Bearer", required=True, secret=True),
        Option("object", Text(),
               "CRM object type: contacts, companies, deals, or a custom object type id", default="contacts"),
        Option("id_property", Text(),
               "unique property records are matched by; a mapped field of that name is required", default="email"),
        Option("base_url", Url(), "API root", default="https://api.hubapi.com"),
        Option("batch_size", ROWS, "inputs per request", default=100, limit=100),
        Option("concurrency", Number(integer=True, minimum=1), "requests in flight", default=4),
        Option("rate_per_second", POSITIVE, "request rate", default=10),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )
    secret_option = "access_token"

    def open(self) -> None:
        super().open()
        self.object = str(self.setting("object"))
        if not _OBJECT.match(self.object):
            raise Terminal(f"hubspot destination '{self.name}': object must be an object type name, "
                           f"not {self.object!r}")
        self.id_property = str(self.setting("id_property"))
        self.path = f"/crm/v3/objects/{self.object}/batch"

    def limits(self) -> tuple[int, int | None, int, float | None]:
        rows, size, concurrency, rate = super().limits()
        return min(rows, 100), size, concurrency, rate

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config['access_token']}"}

    def send(self, batch: Batch) -> BatchResult:
        ids, rejected = self.identified(batch, self.id_property, "HubSpot matches records by it (id_property)",
                                        property_value)
        if ids:
            send = self._archive if batch.op == "delete" else self._upsert
            rejected.update(send(batch, ids))
        return BatchResult(rejected)

    def _upsert(self, batch: Batch, ids: dict[int, str]) -> dict[int, str]:
        inputs = []
        order = list(ids)
        for i in order:
            properties = {k: property_value(v) for k, v in batch.records[i].items() if k != self.id_property}
            inputs.append({"idProperty": self.id_property, "id": ids[i], "properties": properties,
                           "objectWriteTraceId": str(i)})
        response = self.request("POST", f"{self.path}/upsert", {"inputs": inputs})
        if response.status_code not in (200, 201, 207):
            return {order[j]: reason for j, reason in refused(response, len(order)).items()}
        if response.status_code != 207:
            return {}
        body = response.json()
        rejected: dict[int, str] = {}
        unplaced = []
        for error in body.get("errors") or []:
            reason = error.get("message") or error.get("category") or "refused"
            context = error.get("context") or {}
            traces = [t for t in context.get("objectWriteTraceId") or [] if str(t).isdigit() and int(t) in ids]
            if traces:
                rejected.update({int(t): reason for t in traces})
                continue
            values = {str(v) for v in context.get("ids") or context.get(self.id_property) or []}
            placed = [i for i in order if ids[i] in values]
            rejected.update(dict.fromkeys(placed, reason))
            if not placed:
                unplaced.append(reason)
        if unplaced:  # errors HubSpot did not tie to an input: every input without a result is rejected
            done = {str((r.get("properties") or {}).get(self.id_property)) for r in body.get("results") or []}
            done |= {str(t) for r in body.get("results") or [] for t in [r.get("objectWriteTraceId")] if t}
            for i in order:
                if i not in rejected and ids[i] not in done and str(i) not in done:
                    rejected[i] = unplaced[0]
        return rejected

    def _archive(self, batch: Batch, ids: dict[int, str]) -> dict[int, str]:
        order = list(ids)
        read = self.request("POST", f"{self.path}/read", {
            "idProperty": self.id_property, "properties": [self.id_property],
            "inputs": [{"id": ids[i]} for i in order]})
        if read.status_code not in (200, 207):
            return {order[j]: reason for j, reason in refused(read, len(order)).items()}
        found: dict[str, str] = {}  # id property value -> record id
        for result in read.json().get("results") or []:
            value = (result.get("properties") or {}).get(self.id_property)
            if value is not None and result.get("id") is not None:
                found[str(value)] = str(result["id"])
        record_ids = sorted({found[ids[i]] for i in order if ids[i] in found})
        if not record_ids:  # nothing left to archive: already gone
            return {}
        archive = self.request("POST", f"{self.path}/archive", {"inputs": [{"id": r} for r in record_ids]})
        if archive.status_code in (200, 204):
            return {}
        reason = f"HTTP {archive.status_code}: {api_message(archive)}"
        return {i: reason for i in order if ids[i] in found}
