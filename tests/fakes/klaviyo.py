"""A fake Klaviyo Bulk Import Profiles API, following the documented contract.

  Authorization: Klaviyo-API-Key <private key>, else 401 with JSON:API errors; a `revision` header is required
  POST /api/profile-bulk-import-jobs {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles":
      {"data": [{"type": "profile", "attributes": {...}}]}}, "relationships"?: {"lists": ...}}}: at most 10,000
      profiles (else 400) and 5 MB (else 413); 202 with the job {"status": "queued"}
  GET /api/profile-bulk-import-jobs/{id}: "queued", then "processing", then "complete" with total_count,
      completed_count, failed_count (the job is applied when it completes)
  GET /api/profile-bulk-import-jobs/{id}/import-errors: 2 per page, links.next; a profile without email /
      phone_number / external_id or whose email contains "invalid" fails with a JSON:API error whose
      source.pointer names it
Null values are ignored (the bulk import cannot clear a field). Profiles live in `profiles[email] = attributes`
(custom properties merged under "properties"); `lists[list_id]` holds the emails added to each list.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from .api_server import Answer, FakeApi


def _errors(status: int, code: str, title: str, detail: str) -> dict:
    return {"errors": [{"id": "e1", "status": status, "code": code, "title": title, "detail": detail,
                        "source": {"pointer": "/data/"}}]}


class Klaviyo(FakeApi):
    PAGE = 2

    def __init__(self, api_key: str = "pk_test_klaviyo") -> None:
        self.api_key = api_key
        self.profiles: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, set[str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.anonymous_errors = False  # import errors without source.pointer and original_payload
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        return headers.get("Authorization") == f"Klaviyo-API-Key {self.api_key}"

    def unauthorized(self) -> Answer:
        return 401, _errors(401, "not_authenticated", "Authentication credentials were not provided.",
                            "Missing or invalid private key."), {}

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if not headers.get("revision"):
            return 400, _errors(400, "invalid", "Invalid input.", "The revision header is required."), {}
        if method == "POST" and path == "/api/profile-bulk-import-jobs":
            return self._create(raw)
        parts = path.split("?")[0].strip("/").split("/")
        if method == "GET" and parts[:2] == ["api", "profile-bulk-import-jobs"] and len(parts) >= 3:
            job = self.jobs.get(parts[2])
            if job is None:
                return 404, _errors(404, "not_found", "Not found.", f"job {parts[2]} does not exist"), {}
            if len(parts) == 3:
                return self._status(job)
            if parts[3:] == ["import-errors"]:
                page = int(path.split("page=")[1]) if "page=" in path else 0
                items = job["errors"][page * self.PAGE:(page + 1) * self.PAGE]
                links = {"self": f"{self.url}{path}"}
                if (page + 1) * self.PAGE < len(job["errors"]):
                    links["next"] = f"{self.url}/api/profile-bulk-import-jobs/{job['id']}/import-errors?page={page + 1}"
                return 200, {"data": items, "links": links}, {}
        return 404, _errors(404, "not_found", "Not found.", f"no route {method} {path}"), {}

    def _create(self, raw: bytes) -> Answer:
        if len(raw) > 5 * 1024 * 1024:
            return 413, _errors(413, "payload_too_large", "Payload too large.", "The payload is over 5 MB."), {}
        body = json.loads(raw)
        data = body["data"]
        if data.get("type") != "profile-bulk-import-job":
            return 400, _errors(400, "invalid", "Invalid input.", "data.type must be profile-bulk-import-job"), {}
        profiles = data["attributes"]["profiles"]["data"]
        if len(profiles) > 10_000:
            return 400, _errors(400, "invalid", "Invalid input.", "at most 10000 profiles per job"), {}
        lists = [item["id"] for item in ((data.get("relationships") or {}).get("lists") or {}).get("data") or []]
        job_id = f"job{next(self.ids)}"
        self.jobs[job_id] = {"id": job_id, "profiles": profiles, "lists": lists, "polls": 0, "errors": []}
        return 202, {"data": {"type": "profile-bulk-import-job", "id": job_id,
                              "attributes": {"status": "queued", "total_count": len(profiles)}}}, {}

    def _status(self, job: dict) -> Answer:
        job["polls"] += 1
        if job["polls"] == 1:
            status = "queued"
        elif job["polls"] == 2:
            status = "processing"
        else:
            status = "complete"
            if job["polls"] == 3:
                self._apply(job)
        failed = len(job["errors"])
        attributes = {"status": status, "total_count": len(job["profiles"])}
        if status == "complete":
            attributes.update(completed_count=len(job["profiles"]) - failed, failed_count=failed)
        return 200, {"data": {"type": "profile-bulk-import-job", "id": job["id"], "attributes": attributes}}, {}

    def _apply(self, job: dict) -> None:
        for index, profile in enumerate(job["profiles"]):
            attrs = profile.get("attributes") or {}
            detail = None
            if not any(attrs.get(k) for k in ("email", "phone_number", "external_id")):
                detail = "One of email, phone_number or external_id is required."
            elif "invalid" in str(attrs.get("email") or ""):
                detail = f"Invalid email address {attrs['email']!r}."
            if detail:
                error = {"code": "invalid", "title": "Invalid input.", "detail": detail}
                if not self.anonymous_errors:
                    error.update(source={"pointer": f"/data/attributes/profiles/data/{index}"},
                                 original_payload=attrs)
                job["errors"].append({"type": "import-error", "id": f"{job['id']}-{index}", "attributes": error})
                continue
            key = attrs.get("email") or attrs.get("external_id") or attrs.get("phone_number")
            stored = self.profiles.setdefault(key, {})
            for k, v in attrs.items():
                if k == "properties":
                    stored.setdefault("properties", {}).update({pk: pv for pk, pv in v.items() if pv is not None})
                elif v is not None:
                    stored[k] = v
            for list_id in job["lists"]:
                self.lists.setdefault(list_id, set()).add(key)
