"""`mailchimp`: members of a Mailchimp audience (list) through the Marketing API 3.0.

Inserts, updates and clears go to `POST /3.0/lists/{list_id}` (batch subscribe, at most 500 members) as
`{"members": [{"email_address", "status", "merge_fields": {...}}], "update_existing": true}`. Mailchimp answers
200 with `errors: [{"email_address", "error", "error_code"}]` for the members it refused: those are rejected with
its reason, the others are acknowledged. Mapped fields other than `email_address`, `status`, `language` and
`vip` are merge fields, named by their merge tag (e.g. `FNAME: first_name`); an empty value is sent as "" (which
empties the merge field), so a clear empties every merge field. Deletes archive the member
(`DELETE /3.0/lists/{list_id}/members/{md5 of the lower-cased email}`, one request per member; a member
Mailchimp no longer has counts as archived).

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from sync_runner.core.fields import Boolean, Number, Option, Text, Url

from ._api import ApiDestination, api_message, refused
from .base import POSITIVE, ROWS, Batch, BatchResult, Terminal
from .values import json_default

MEMBER_FIELDS = ("email_address", "status", "language", "vip")
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")


def merge_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return value
    return json_default(value)


class MailchimpDestination(ApiDestination):
    type = "mailchimp"
    options = (
        Option("api_key", Text(), "API key (env_var), <key>-<dc>; sent as basic auth", required=True, secret=True),
        Option("list_id", Text(), "the audience (list) id", required=True),
        Option("status", Text(), "status of members when no status field is mapped", default="subscribed"),
        Option("update_existing", Boolean(), "update members already in the audience", default=True),
        Option("base_url", Url(), "API root (default: https://<dc>.api.mailchimp.com from the key's suffix)"),
        Option("batch_size", ROWS, "members per request", default=500, limit=500),
        Option("concurrency", Number(integer=True, minimum=1),
               "requests in flight (Mailchimp allows 10 connections)", default=4),
        Option("rate_per_second", POSITIVE, "request rate", default=10),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )
    secret_option = "api_key"

    def open(self) -> None:
        key = str(self.config.get("api_key") or "")
        if not self.config.get("base_url") and "-" in key:
            self.config["base_url"] = f"https://{key.rsplit('-', 1)[1]}.api.mailchimp.com"
        super().open()
        self.list_id = str(self.config.get("list_id") or "")
        if not re.match(r"^[A-Za-z0-9]+$", self.list_id):
            raise Terminal(f"mailchimp destination '{self.name}' needs 'list_id' (the audience id), "
                           f"not {self.list_id!r}")
        self.status = str(self.setting("status"))
        if self.status not in STATUSES:
            raise Terminal(f"mailchimp destination '{self.name}': status must be one of {', '.join(STATUSES)}")
        self.update_existing = bool(self.setting("update_existing"))

    def limits(self) -> tuple[int, int | None, int, float | None]:
        rows, size, concurrency, rate = super().limits()
        return min(rows, 500), size, concurrency, rate

    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"dbt-studio:{self.config['api_key']}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def send(self, batch: Batch) -> BatchResult:
        emails, rejected = self.identified(batch, "email_address", "Mailchimp identifies members by it",
                                           lambda value: str(value).strip())
        if emails:
            rejected.update(self._archive(emails) if batch.op == "delete" else self._upsert(batch, emails))
        return BatchResult(rejected)

    def _upsert(self, batch: Batch, emails: dict[int, str]) -> dict[int, str]:
        order = list(emails)
        members = []
        for i in order:
            record = batch.records[i]
            member: dict[str, Any] = {"email_address": emails[i], "status": record.get("status") or self.status}
            for k in ("language", "vip"):
                if record.get(k) is not None:
                    member[k] = record[k]
            merge = {k: merge_value(v) for k, v in record.items() if k not in MEMBER_FIELDS}
            if merge:
                member["merge_fields"] = merge
            members.append(member)
        response = self.request("POST", f"/3.0/lists/{self.list_id}",
                                {"members": members, "update_existing": self.update_existing})
        if response.status_code != 200:
            return {order[j]: reason for j, reason in refused(response, len(order)).items()}
        by_email: dict[str, list[int]] = {}
        for i in order:
            by_email.setdefault(emails[i].lower(), []).append(i)
        rejected: dict[int, str] = {}
        for error in response.json().get("errors") or []:
            reason = str(error.get("error") or error.get("error_code") or "refused by Mailchimp")
            if error.get("error_code"):
                reason = f"{reason} ({error['error_code']})"
            for i in by_email.get(str(error.get("email_address") or "").lower(), []):
                rejected[i] = reason
        return rejected

    def _archive(self, emails: dict[int, str]) -> dict[int, str]:
        rejected: dict[int, str] = {}
        for i, email in emails.items():
            digest = hashlib.md5(email.lower().encode("utf-8")).hexdigest()  # noqa: S324 (Mailchimp's member id)
            response = self.request("DELETE", f"/3.0/lists/{self.list_id}/members/{digest}", ok_statuses=(404,))
            if response.status_code not in (200, 204, 404):
                rejected[i] = f"HTTP {response.status_code}: {api_message(response)}"
        return rejected
