"""`klaviyo`: profiles upserted through Klaviyo's Bulk Import Profiles jobs.

Each batch becomes one job, `POST /api/profile-bulk-import-jobs` (JSON:API, at most 10,000 profiles and 5 MB;
a larger batch is split), with the `revision` header. Klaviyo processes a job asynchronously: the destination
polls `GET /api/profile-bulk-import-jobs/{id}` until the job is complete, then, when `failed_count` is not zero,
reads `GET .../{id}/import-errors` (following `links.next`) and rejects the profiles named there (by
`source.pointer`, else by the identifiers of `original_payload`) with Klaviyo's `detail` (failures it does not
tie to a profile reject the whole job, so nothing unconfirmed is acknowledged). A job that is
cancelled, or still running after `poll_timeout` seconds, is sent again (the import is an upsert).

Fields: `email`, `phone_number`, `external_id`, `first_name`, `last_name`, `organization`, `title`, `image` are
profile attributes; every other mapped field is a custom property. A profile needs one of email, phone_number
or external_id (else it is rejected before anything is sent). The bulk import cannot clear a field (null values
are ignored by Klaviyo), and profiles are not deleted through it: only `on_delete: nothing` is supported, and a
value that becomes null in the model is left as it was in Klaviyo. `list_id` also adds the profiles to a list.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

import time
from typing import Any

from sync_runner.core.fields import Number, Option, Text, Url

from ._api import ApiDestination, dumps, refused
from .base import POSITIVE, ROWS, Batch, BatchResult, Transient

ATTRIBUTES = ("email", "phone_number", "external_id", "first_name", "last_name", "organization", "title", "image")
IDENTIFIERS = ("email", "phone_number", "external_id")
JOB_PROFILES = 10_000
JOB_BYTES = 5_000_000
REVISION = "2024-10-15"


class KlaviyoDestination(ApiDestination):
    type = "klaviyo"
    modes = ("insert", "update", "upsert")
    on_delete = ("nothing",)
    options = (
        Option("api_key", Text(),
               "private API key (env_var), sent as Authorization: Klaviyo-API-Key", required=True, secret=True),
        Option("list_id", Text(), "also add the imported profiles to this list"),
        Option("revision", Text(), "API revision header", default=REVISION),
        Option("base_url", Url(), "API root", default="https://a.klaviyo.com"),
        Option("batch_size", ROWS, "profiles per import job", default=10000, limit=10000),
        Option("poll_interval", POSITIVE, "seconds between job status checks", default=2),
        Option("poll_timeout", POSITIVE, "seconds to wait for a job before sending it again", default=600),
        Option("concurrency", Number(integer=True, minimum=1), "jobs in flight", default=2),
        Option("rate_per_second", POSITIVE, "jobs started per second", default=2),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )
    max_bytes = 4_000_000  # of mapped fields: the JSON:API envelope fits in Klaviyo's 5 MB
    secret_option = "api_key"

    def open(self) -> None:
        super().open()
        self.revision = str(self.setting("revision"))
        self.poll_interval = float(self.setting("poll_interval"))
        self.poll_timeout = float(self.setting("poll_timeout"))
        self.list_id = self.config.get("list_id")

    def limits(self) -> tuple[int, int | None, int, float | None]:
        rows, size, concurrency, rate = super().limits()
        return min(rows, JOB_PROFILES), size, concurrency, rate

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Klaviyo-API-Key {self.config['api_key']}", "revision": self.revision,
                "Accept": "application/vnd.api+json"}

    @staticmethod
    def profile(record: dict[str, Any]) -> dict[str, Any]:
        attributes = {k: v for k, v in record.items() if k in ATTRIBUTES and v is not None}
        properties = {k: v for k, v in record.items() if k not in ATTRIBUTES and v is not None}
        if properties:
            attributes["properties"] = properties
        return {"type": "profile", "attributes": attributes}

    def send(self, batch: Batch) -> BatchResult:
        if batch.records and not any(k in batch.records[0] for k in IDENTIFIERS):
            self.require_field(batch, "email", "or phone_number / external_id: Klaviyo identifies profiles by them")
        rejected: dict[int, str] = {}
        jobs: list[list[tuple[int, bytes]]] = [[]]
        size = 0
        for i, record in enumerate(batch.records):
            if not any(record.get(k) not in (None, "") for k in IDENTIFIERS):
                rejected[i] = "no email, phone_number or external_id: Klaviyo cannot identify the profile"
                continue
            encoded = dumps(self.profile(record))
            if jobs[-1] and (len(jobs[-1]) >= JOB_PROFILES or size + len(encoded) + 1 > JOB_BYTES - 1000):
                jobs.append([])
                size = 0
            jobs[-1].append((i, encoded))
            size += len(encoded) + 1
        for job in jobs:
            if job:
                rejected.update(self._import(batch, job))
        return BatchResult(rejected)

    def _import(self, batch: Batch, job: list[tuple[int, bytes]]) -> dict[int, str]:
        relationships = (b',"relationships":{"lists":{"data":[' + dumps({"type": "list", "id": str(self.list_id)})
                         + b"]}}") if self.list_id else b""
        body = (b'{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":['
                + b",".join(p for _, p in job) + b"]}}" + relationships + b"}}")
        response = self.request("POST", "/api/profile-bulk-import-jobs", body,
                                headers={"Content-Type": "application/vnd.api+json"})
        if response.status_code not in (200, 201, 202):
            return {job[j][0]: reason for j, reason in refused(response, len(job)).items()}
        job_id = response.json()["data"]["id"]
        attributes = self._wait(job_id)
        failed = int(attributes.get("failed_count") or 0)
        if not failed:
            return {}
        rejected = self._errors(batch, job, job_id)
        if len(rejected) < failed:  # failures Klaviyo did not tie to a profile: none of the rest is acknowledged
            reason = (f"Klaviyo reported {failed} failed profile(s) in import job {job_id} without saying which; "
                      "sent again on the next run")
            rejected.update({i: reason for i, _ in job if i not in rejected})
        return rejected

    def _wait(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.poll_timeout
        while True:
            response = self.request("GET", f"/api/profile-bulk-import-jobs/{job_id}")
            attributes = (response.json().get("data") or {}).get("attributes") or {} if response.ok else {}
            status = attributes.get("status")
            if status == "complete":
                return attributes
            if status == "cancelled":
                raise Transient(f"{self.name}: Klaviyo cancelled import job {job_id}")
            if time.monotonic() > deadline:
                raise Transient(f"{self.name}: import job {job_id} still {status} after {self.poll_timeout:.0f} s")
            time.sleep(self.poll_interval)

    def _errors(self, batch: Batch, job: list[tuple[int, bytes]], job_id: str) -> dict[int, str]:
        by_identifier: dict[tuple[str, str], int] = {}
        for i, _ in job:
            for k in IDENTIFIERS:
                if batch.records[i].get(k) not in (None, ""):
                    by_identifier.setdefault((k, str(batch.records[i][k])), i)
        rejected: dict[int, str] = {}
        path: str | None = f"/api/profile-bulk-import-jobs/{job_id}/import-errors"
        while path:
            response = self.request("GET", path)
            document = response.json() if response.ok else {}
            for error in document.get("data") or []:
                attrs = error.get("attributes") or {}
                reason = str(attrs.get("detail") or attrs.get("title") or attrs.get("code") or "refused by Klaviyo")
                pointer = str((attrs.get("source") or {}).get("pointer") or "")
                index = pointer.rsplit("/", 1)[-1]
                if pointer.startswith("/data/attributes/profiles/data/") and index.isdigit() and int(index) < len(job):
                    rejected[job[int(index)][0]] = reason
                    continue
                original = (attrs.get("original_payload") or {})
                original = original.get("attributes", original) if isinstance(original, dict) else {}
                for k in IDENTIFIERS:
                    if (k, str(original.get(k))) in by_identifier:
                        rejected[by_identifier[(k, str(original.get(k)))]] = reason
                        break
            next_url = (document.get("links") or {}).get("next")
            path = next_url[len(self.base_url):] if next_url and next_url.startswith(self.base_url) else None
        return rejected
