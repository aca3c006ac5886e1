"""`meta_custom_audience`: members of a Meta (Facebook / Instagram) customer-file Custom Audience, through the
Marketing API.

Inserts and updates add people (`POST /{version}/{audience_id}/users`), deletes remove them (`DELETE` of the same
path), with the JSON body `{"session": {...}, "payload": {"schema": ["EMAIL", "PHONE"], "is_raw": true, "data":
[[<sha256>, <sha256>], ...]}, "access_token": ...}` (each request its own session: a random `session_id`,
`batch_seq` 1, `last_batch_flag` true): one row per record, a column per mapped identifier ("" when the
record has none), at most 10,000 rows per request (Meta's documented limit; a larger `batch_size` is capped).
A delete carries the identifiers Meta last acknowledged, so the removal hashes exactly what was added.

Fields: `email` (trimmed, lowercased) and `phone` (E.164 digits without the `+`; `default_country_code` for
national numbers), hashed with SHA-256 here (see `_identifiers`: a 64-hex value passes through as a hash).
Map at least one; any other field is a configuration error. A record whose identifier is invalid after
normalisation, or that has none, is rejected before anything is sent.

Answers: 200 `{audience_id, session_id, num_received, num_invalid_entries, invalid_entry_samples: {entry:
reason}}`: the rows named by the samples are rejected with Meta's reason; invalid entries Meta does not name
reject every row of that request (nothing unconfirmed is acknowledged; adds and removes are idempotent, so the
next run sends them again). Errors `{"error": {message, type, code, error_subcode, fbtrace_id}}`: throttling
(codes 4, 17, 32, 613, 80003 and the other 800xx, 1, 2, or `is_transient`) is retried; an invalid or expired
token (190, 102), missing permissions (10, 200-299) and an audience that does not exist or is blocked
(100 / subcode 33, 1713230) stop the sync; any other error rejects the request's rows with Meta's reason.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sync_runner.core.fields import Number, Option, Text, Url

from . import _identifiers as ids
from ._api import ApiDestination, api_message
from .base import CALLING_CODE, POSITIVE, ROWS, Batch, BatchResult, Terminal, Transient

if TYPE_CHECKING:
    from sync_runner.core.http_client import Response

ROWS_PER_REQUEST = 10_000
VERSION = "v25.0"
SCHEMA = {"email": "EMAIL", "phone": "PHONE"}
THROTTLED = {1, 2, 4, 17, 32, 341, 613}
AUTH = {102, 190, 10, 294}


class MetaCustomAudienceDestination(ApiDestination):
    type = "meta_custom_audience"
    modes = ("insert", "upsert", "mirror")
    on_delete = ("nothing", "delete")
    options = (
        Option("access_token", Text(),
               "system-user access token (env_var) with ads_management on the ad account", required=True, secret=True),
        Option("audience_id", Text(), "the customer-file Custom Audience id", required=True),
        Option("api_version", Text(), "Graph API version", default=VERSION),
        Option("default_country_code", CALLING_CODE,
               "calling code put in front of phone numbers written without + or 00 (e.g. 1, 44)"),
        Option("base_url", Url(), "API root", default="https://graph.facebook.com"),
        Option("batch_size", ROWS, "rows per request", default=10000, limit=10000),
        Option("concurrency", Number(integer=True, minimum=1), "requests in flight", default=2),
        Option("rate_per_second", POSITIVE,
               "request rate (Meta throttles by an ad-account score, errors 17 / 80003)", default=5),
        Option("timeout", POSITIVE, "seconds per request", default=60),
    )
    secret_option = "access_token"

    def open(self) -> None:
        super().open()
        self.timeout = float(self.setting("timeout"))
        if not self.config.get("audience_id"):
            raise Terminal(f"{self.type} destination '{self.name}' needs 'audience_id' (the Custom Audience id)")
        self.audience = str(self.config["audience_id"]).strip()
        self.version = str(self.setting("api_version")).strip("/")
        try:
            default = self.config.get("default_country_code")
            self.country = ids.country_code(default) if default not in (None, "") else None
        except ValueError as exc:
            raise Terminal(f"{self.type} destination '{self.name}': {exc}") from None

    def limits(self) -> tuple[int, int | None, int, float | None]:
        rows, size, concurrency, rate = super().limits()
        return min(rows, ROWS_PER_REQUEST), size, concurrency, rate

    def hashes(self, record: dict[str, Any], fields: list[str]) -> list[str]:
        """The row for one record, in schema order ("" for a missing identifier); InvalidIdentifier if bad."""
        row = []
        for field in fields:
            value = record.get(field)
            if not ids.present(value):
                row.append("")
            elif field == "email":
                row.append(ids.hashed_email(value))
            else:
                row.append(ids.hashed_phone(value, self.country, plus=False))
        if not any(row):
            raise ids.InvalidIdentifier(f"no {' or '.join(fields)}: Meta cannot match the person")
        return row

    def send(self, batch: Batch) -> BatchResult:
        if not batch.records:
            return BatchResult()
        fields = ids.mapped_identifiers(self, batch, SCHEMA, "Meta")
        rejected: dict[int, str] = {}
        rows: list[tuple[int, list[str]]] = []
        for i, record in enumerate(batch.records):
            try:
                rows.append((i, self.hashes(record, fields)))
            except ids.InvalidIdentifier as exc:
                rejected[i] = str(exc)
        if rows:
            rejected.update(self._users("DELETE" if batch.op == "delete" else "POST", fields, rows))
        return BatchResult(rejected)

    def _users(self, method: str, fields: list[str], rows: list[tuple[int, list[str]]]) -> dict[int, str]:
        body = {"session": {"session_id": secrets.randbits(62) + 1, "batch_seq": 1, "last_batch_flag": True,
                            "estimated_num_total": len(rows)},  # each request is a whole upload session
                "payload": {"schema": [SCHEMA[f] for f in fields], "is_raw": True,
                            "data": [row for _, row in rows]},
                "access_token": str(self.config["access_token"])}
        response = self.request(method, f"/{self.version}/{self.audience}/users", body)
        if response.status_code != 200:
            reason = self._error(response)
            return {i: reason for i, _ in rows}
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        invalid = int(answer.get("num_invalid_entries") or 0)
        if not invalid:
            return {}
        samples = answer.get("invalid_entry_samples") or {}
        if isinstance(samples, list):
            samples = dict.fromkeys(map(str, samples), "invalid entry")
        rejected: dict[int, str] = {}
        for i, row in rows:
            for value in row:
                if value and value in samples:
                    rejected[i] = f"Meta: {samples[value] or 'invalid entry'}"
                    break
        if len(rejected) < invalid:  # invalid entries Meta did not name: acknowledge nothing of this request
            reason = (f"Meta reported {invalid} invalid entr{'y' if invalid == 1 else 'ies'} in a request of "
                      f"{len(rows)} without naming all of them; sent again on the next run")
            rejected.update({i: reason for i, _ in rows if i not in rejected})
        return rejected

    def _error(self, response: Response) -> str:
        """Raise for throttling, credentials and a wrong audience; return the reason to reject the rows with."""
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        code = error.get("code")
        subcode = error.get("error_subcode")
        message = api_message(response, 200)
        detail = f"Meta error {code}{f'/{subcode}' if subcode else ''}: {message}"
        if code in THROTTLED or (isinstance(code, int) and 80000 <= code < 81000) or error.get("is_transient"):
            raise Transient(f"{self.name}: {detail}", self.retry_after(response))
        if code in AUTH or (isinstance(code, int) and 200 <= code < 300):
            raise Terminal(f"{self.type} destination '{self.name}' refused the credentials ({detail})")
        if (code == 100 and subcode == 33) or subcode == 1713230:
            raise Terminal(f"{self.type} destination '{self.name}': audience {self.audience} cannot be updated "
                           f"({detail})")
        return f"HTTP {response.status_code}: {detail}"
