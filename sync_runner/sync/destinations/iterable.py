"""`iterable`: user profiles in an Iterable project through its REST API.

Inserts, updates and clears go to `POST /api/users/bulkUpdate` as `{"users": [{"email", "userId", "dataFields":
{...}, "preferUserId"}]}`, at most 1,000 users and 4 MB per request (a batch is split by size); a clear sends
every mapped data field as null. Iterable answers 200 with `successCount`, `failCount` and `failedUpdates`
(`invalidEmails`, `invalidUserIds`, `notFoundEmails`, `forgottenUserIds`, `conflictEmails`, `invalidDataEmails`...
each a list of the emails or userIds it refused): those users are rejected with the list's name as the reason,
the others are acknowledged; failures Iterable counts without naming the user acknowledge nothing of the request.
A 400 (`{"msg", "code": "BadJsonBody"...}`) or 413 rejects the request. Deletes go to `DELETE
/api/users/byUserId/{userId}` (or `DELETE /api/users/{email}` when no userId is mapped), one request per user,
paced at `delete_rate_per_second`; a user Iterable no longer has (400 "User does not exist", or a 404 saying
so) counts as deleted.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sync_runner.core.fields import Number, Option, Text, Url
from sync_runner.core.ratelimit import RateLimiter

from ._api import ApiDestination, api_message, dumps
from .base import POSITIVE, ROWS, Batch, BatchResult, Terminal

if TYPE_CHECKING:
    from sync_runner.core.http_client import Response

USER_LIMIT = 1000
REQUEST_LIMIT = 4_000_000
IDS = ("email", "userId")
FAILURES = {  # failedUpdates lists -> what they mean
    "invalidEmails": "invalid email", "invalidUserIds": "invalid userId",
    "notFoundEmails": "user not found", "notFoundUserIds": "user not found",
    "forgottenEmails": "user forgotten (GDPR)", "forgottenUserIds": "user forgotten (GDPR)",
    "conflictEmails": "email and userId belong to different users",
    "conflictUserIds": "email and userId belong to different users",
    "invalidDataEmails": "invalid data fields", "invalidDataUserIds": "invalid data fields",
}


def iterable_message(response: Response) -> str:
    """Iterable's reason: `{"msg": ..., "code": ...}`, else what the shared helper finds."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("msg"):
        text = str(body["msg"]) + (f" ({body['code']})" if body.get("code") else "")
        return " ".join(text.split())[:300]
    return api_message(response)


class IterableDestination(ApiDestination):
    type = "iterable"
    options = (
        Option("api_key", Text(),
               "server-side API key (env_var), sent as the Api-Key header", required=True, secret=True),
        Option("base_url", Url(), "API root (EU projects: https://api.eu.iterable.com)", default="https://api.iterable.com"),
        Option("batch_size", ROWS,
               "users per bulkUpdate request (requests are also kept under 4 MB)", default=1000, limit=1000),
        Option("concurrency", Number(integer=True, minimum=1), "requests in flight", default=2),
        Option("rate_per_second", POSITIVE, "bulkUpdate request rate", default=5),
        Option("delete_rate_per_second", POSITIVE, "user deletions per second (one request per user)", default=5),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )
    max_bytes = 3_500_000  # of mapped fields per batch: the users' envelopes fit in the 4 MB per request
    secret_option = "api_key"

    def open(self) -> None:
        super().open()
        rate = float(self.setting("delete_rate_per_second"))
        self._delete_pace = RateLimiter(rate if rate > 0 else None)  # deletes go one request per user

    def limits(self) -> tuple[int, int | None, int, float | None]:
        rows, size, concurrency, rate = super().limits()
        return min(rows, USER_LIMIT), size, concurrency, rate

    def auth(self) -> dict[str, str]:
        return {"Api-Key": str(self.config["api_key"])}

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                ok_statuses: Iterable[int] = ()) -> Response:
        # 401 / 403 are terminal as everywhere, with Iterable's reason read from its `msg`
        response = super().request(method, path, body, headers, ok_statuses=(*ok_statuses, 401, 403))
        if response.status_code in (401, 403):
            raise Terminal(f"iterable destination '{self.name}' refused the credentials "
                           f"(HTTP {response.status_code}: {iterable_message(response)})")
        return response

    def send(self, batch: Batch) -> BatchResult:
        if batch.records and not any(field in batch.records[0] for field in IDS):
            raise Terminal(f"iterable destination '{self.name}': sync '{self.sync_name}' must map 'email' or "
                           f"'userId' (Iterable identifies users by them); it maps "
                           f"{', '.join(batch.records[0]) or 'nothing'}")
        rejected: dict[int, str] = {}
        ids: dict[int, dict[str, str]] = {}
        for i, record in enumerate(batch.records):
            found = {k: str(record[k]).strip() for k in IDS if record.get(k) is not None and str(record[k]).strip()}
            if found:
                ids[i] = found
            else:
                rejected[i] = ("on_delete clear needs email or userId mapped from the primary key"
                               if batch.op == "clear" else "no email or userId: Iterable identifies users by them")
        if ids:
            rejected.update(self._delete(ids) if batch.op == "delete" else self._update(batch, ids))
        return BatchResult(rejected)

    # -- bulkUpdate --------------------------------------------------------------------------------------------

    def _update(self, batch: Batch, ids: dict[int, dict[str, str]]) -> dict[int, str]:
        rejected: dict[int, str] = {}
        users: list[tuple[int, bytes]] = []
        for i, found in ids.items():
            user: dict[str, Any] = dict(found)
            user["dataFields"] = {k: v for k, v in batch.records[i].items() if k not in IDS}
            if "userId" in found:
                user["preferUserId"] = True
            users.append((i, dumps(user)))
        envelope = len(b'{"users":[]}')
        chunk: list[tuple[int, bytes]] = []
        size = envelope
        for item in users:
            if chunk and (size + len(item[1]) + 1 > REQUEST_LIMIT or len(chunk) >= USER_LIMIT):
                rejected.update(self._bulk_update(chunk, ids))
                chunk, size = [], envelope
            chunk.append(item)
            size += len(item[1]) + 1
        if chunk:
            rejected.update(self._bulk_update(chunk, ids))
        return rejected

    def _bulk_update(self, chunk: list[tuple[int, bytes]], ids: dict[int, dict[str, str]]) -> dict[int, str]:
        body = b'{"users":[' + b",".join(encoded for _, encoded in chunk) + b"]}"
        response = self.request("POST", "/api/users/bulkUpdate", body)
        if response.status_code != 200:
            reason = f"HTTP {response.status_code}: {iterable_message(response)}"
            return {i: reason for i, _ in chunk}
        try:
            answer = response.json() or {}
        except ValueError:
            answer = {}
        by_id: dict[tuple[str, str], list[int]] = {}
        for i, _ in chunk:
            for field, value in ids[i].items():
                by_id.setdefault((field, value.lower() if field == "email" else value), []).append(i)
        rejected: dict[int, str] = {}
        failed = dict(answer.get("failedUpdates") or {})
        for name in ("invalidEmails", "invalidUserIds"):  # also listed at the top level of the answer
            failed.setdefault(name, answer.get(name) or [])
        for name, values in failed.items():
            field = "email" if name.endswith("Emails") else "userId"
            for value in values or []:
                key = (field, str(value).lower() if field == "email" else str(value))
                for i in by_id.get(key, []):
                    rejected.setdefault(i, f"failedUpdates.{name} ({FAILURES.get(name, 'refused')}): {value}")
        fail_count = answer.get("failCount") or 0
        if isinstance(fail_count, int) and fail_count > len(rejected):
            # failures Iterable counted without naming the user: none of the rest is acknowledged
            reason = f"Iterable reported {fail_count} failed updates in this request without naming every user"
            rejected.update({i: reason for i, _ in chunk if i not in rejected})
        return rejected

    # -- deletes -----------------------------------------------------------------------------------------------

    def _delete(self, ids: dict[int, dict[str, str]]) -> dict[int, str]:
        rejected: dict[int, str] = {}
        for i, found in ids.items():
            path = (f"/api/users/byUserId/{quote(found['userId'], safe='')}" if "userId" in found
                    else f"/api/users/{quote(found['email'], safe='')}")
            self._delete_pace.wait()
            response = self.request("DELETE", path, ok_statuses=(400, 404))
            if response.status_code == 200:
                continue
            message = iterable_message(response)
            if response.status_code in (400, 404) and ("does not exist" in message.lower()
                                                       or "not found" in message.lower()):
                continue  # already gone
            if response.status_code == 404:  # not Iterable saying the user is unknown: a wrong base_url
                raise Terminal(f"iterable destination '{self.name}': DELETE {self.base_url}{path.rsplit('/', 1)[0]}/"
                               f"... answered 404 ({message})")
            rejected[i] = f"HTTP {response.status_code}: {message}"
        return rejected
