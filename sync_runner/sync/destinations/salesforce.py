"""`salesforce`: records of one object upserted by an external id field through Bulk API 2.0 ingest jobs.

Each batch becomes one ingest job (a batch larger than one upload is split into several jobs):
`POST /services/data/vXX.X/jobs/ingest` `{"object", "operation": "upsert", "externalIdFieldName", "contentType":
"CSV", "lineEnding": "LF"}`, one `PUT .../jobs/ingest/{id}/batches` of CSV (`Content-Type: text/csv`; Salesforce
takes one upload per job, at most 150 MB once base64-encoded, so at most 100 MB of CSV), `PATCH .../{id}`
`{"state": "UploadComplete"}`, then `GET .../{id}` every `poll_interval` seconds until the job is `JobComplete`,
`Failed` or `Aborted`. The per-row results, `GET .../successfulResults/` (`sf__Id, sf__Created`, then the uploaded
columns) and `.../failedResults/` (`sf__Id, sf__Error`, then the uploaded columns), come in no particular order:
rows are matched to them by the external id value, and only rows in the successful results are acknowledged (a
job whose counts say every row was processed and none failed is acknowledged whole without reading them). A
failed result rejects its row with Salesforce's `sf__Error`; a row with no result (a job that failed part way) is
rejected as not processed, so it is sent again on the next run.

Deletes: a Bulk API 2.0 delete job takes only the `Id` column (record ids), never an external id. The destination
looks the ids up first with SOQL through the REST query resource (`GET .../query?q=SELECT Id, <ext> FROM <object>
WHERE <ext> IN (...)`, the URI kept under 8 KB of Salesforce's 16 KB, `nextRecordsUrl` pages followed), then runs
a `delete` job (soft delete: the records go to the Recycle Bin). Records Salesforce no longer has count as deleted.
`on_delete: clear` upserts the record with every field but the external id set to `#N/A` (Bulk API's null: an
empty CSV value leaves a field unchanged), so it needs the external id field mapped from the primary key. Nulls
are always sent as `#N/A`, so a value emptied in the model is emptied in Salesforce.

Errors: 429 (after `Retry-After`), 408, 5xx, timeouts are transient (a poll or result read is retried in place, so a
job is never submitted twice for one hiccup; a failure while creating or uploading aborts the job and the batch
is retried); 401 (`INVALID_SESSION_ID`) / 403 stop the sync, except a 403 `REQUEST_LIMIT_EXCEEDED` for
concurrent requests (retried); a job that cannot be created (unknown object, field that is not an external id) or
that fails on the CSV itself (`InvalidBatch`: a mapped field that does not exist) stops the sync with
Salesforce's message. A job that fails before processing anything, is aborted by someone else, or is still running
after `poll_timeout` is aborted and retried.

Auth: `access_token` (`Authorization: Bearer`) with `base_url` your instance (My Domain) URL; or `client_id` +
`client_secret` (client credentials flow of a connected app), plus `refresh_token` for the refresh token flow: the
token is fetched from `<login_url or base_url>/services/oauth2/token` and fetched again once on a 401.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sync_runner.core.errors import Unsendable
from sync_runner.core.fields import Number, Option, Text, Url

from ._api import ApiDestination
from .base import POSITIVE, ROWS, Batch, BatchResult, Terminal, Transient
from .values import json_default

if TYPE_CHECKING:
    from sync_runner.core.http_client import Response

API_VERSION = "62.0"
NULL = "#N/A"  # Bulk API 2.0: an empty value is ignored on update, #N/A sets the field to null
UPLOAD_BYTES = 100_000_000  # one upload per job: 150 MB after Salesforce's base64 conversion, 100 MB of CSV
MAX_ROWS = 100_000  # rows per job we allow (Salesforce splits a job into internal batches of 10,000 rows)
QUERY_URI_BYTES = 8_000  # REST: URI + headers at most 16,384 bytes
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_VERSION = re.compile(r"^\d+\.\d$")
_ALL_STATUSES = range(100, 600)
_CONFIG_FAILURES = ("InvalidBatch", "Field name not found", "ClientInputError", "INVALIDJOB", "ExceededQuota")


def csv_value(value: Any) -> str:
    """A value as Bulk API 2.0 CSV carries it: #N/A for null, true/false, ISO dates, JSON for nested values."""
    if value is None or value == "":
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))
    return str(json_default(value))


def csv_line(values: Iterable[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(list(values))
    return out.getvalue().encode("utf-8")


def sf_message(response: Response, limit: int = 300) -> str:
    """Salesforce's reason on one line: errors are a JSON array of {errorCode, message}."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        body = [body]
    text = ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        code = first.get("errorCode") or first.get("error") or ""
        message = first.get("message") or first.get("error_description") or ""
        text = f"{code}: {message}" if code and message else str(code or message)
    text = text or response.text or response.reason or ""
    return " ".join(text.split())[:limit]


def sf_error_code(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode") or "")
    return ""


def soql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r") + "'"


class SalesforceDestination(ApiDestination):
    type = "salesforce"
    modes = ("insert", "upsert", "mirror")
    on_delete = ("nothing", "clear", "delete")
    options = (
        Option("object", Text(), "sObject API name, e.g. Contact, Account, Person__c", required=True),
        Option("external_id_field", Text(),
               "External ID field records are upserted and deleted by, e.g. External_Id__c; a mapped field of that "
               "name is required", required=True),
        Option("base_url", Url(), "your instance URL, e.g. https://yourcompany.my.salesforce.com"),
        Option("access_token", Text(), "OAuth access token (env_var), sent as Authorization: Bearer", secret=True),
        Option("client_id", Text(), "connected app consumer key: get the token by the client credentials flow instead"),
        Option("client_secret", Text(), "connected app consumer secret (env_var)", secret=True),
        Option("refresh_token", Text(),
               "with client_id / client_secret: use the refresh token flow (env_var)", secret=True),
        Option("login_url", Url(), "where /services/oauth2/token is"),
        Option("api_version", Text(), "REST API version", default=API_VERSION),
        Option("batch_size", ROWS, "rows per ingest job", default=10000, limit=100000),
        Option("max_bytes", Number(integer=True, minimum=1), "bytes of records per job", default=10000000),
        Option("poll_interval", POSITIVE, "seconds between job status checks", default=5),
        Option("poll_timeout", POSITIVE,
               "seconds to wait for a job before aborting and sending it again", default=1200),
        Option("concurrency", Number(integer=True, minimum=1), "jobs in flight", default=2),
        Option("rate_per_second", POSITIVE, "jobs started per second (each job is 5+ API requests)", default=1),
        Option("timeout", POSITIVE, "seconds per request", default=60),
    )

    def open(self) -> None:
        super().open()
        cfg = self.config
        self.timeout = float(self.setting("timeout"))
        for key in ("object", "external_id_field"):
            value = str(cfg.get(key) or "")
            if not _NAME.match(value):
                raise Terminal(f"salesforce destination '{self.name}' needs '{key}' as an API name "
                               f"(e.g. {'Contact' if key == 'object' else 'External_Id__c'}), not {value!r}")
        self.object = str(cfg["object"])
        self.ext = str(cfg["external_id_field"])
        version = str(self.setting("api_version")).lstrip("v")
        if not _VERSION.match(version):
            raise Terminal(f"salesforce destination '{self.name}': api_version must look like {API_VERSION}, "
                           f"not {version!r}")
        self.api = f"/services/data/v{version}"
        self.poll_interval = float(self.setting("poll_interval"))
        self.poll_timeout = float(self.setting("poll_timeout"))
        self._token_lock = threading.Lock()
        self.token = str(cfg.get("access_token") or "")
        self.can_login = bool(cfg.get("client_id") and cfg.get("client_secret"))
        if not self.token and not self.can_login:
            raise Terminal(f"salesforce destination '{self.name}' needs 'access_token' "
                           "(e.g. \"{{ env_var('SALESFORCE_ACCESS_TOKEN') }}\"), or 'client_id' and 'client_secret'")
        if not self.token:
            self._login()

    def limits(self) -> tuple[int, int | None, int, float | None]:
        rows, size, concurrency, rate = super().limits()
        return min(rows, MAX_ROWS), min(size or UPLOAD_BYTES, UPLOAD_BYTES), concurrency, rate

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def _login(self, stale: str | None = None) -> None:
        """Get an access token by the client credentials (or refresh token) flow; once per stale token."""
        with self._token_lock:
            if stale is not None and self.token != stale:
                return  # another worker already got a new one
            cfg = self.config
            form = {"client_id": str(cfg["client_id"]), "client_secret": str(cfg["client_secret"])}
            if cfg.get("refresh_token"):
                form.update(grant_type="refresh_token", refresh_token=str(cfg["refresh_token"]))
            else:
                form["grant_type"] = "client_credentials"
            url = str(cfg.get("login_url") or self.base_url).rstrip("/") + "/services/oauth2/token"
            from sync_runner.core.http_client import Dropped, post_form

            try:
                response = post_form(url, form, self.timeout)
            except Dropped as exc:
                raise Terminal(f"salesforce destination '{self.name}': could not reach {url} for an access token "
                               f"({exc.kind})") from None
            if response.status_code != 200 or "access_token" not in (body := _json(response) or {}):
                raise Terminal(f"salesforce destination '{self.name}' could not get an access token (HTTP "
                               f"{response.status_code}: {sf_message(response, 200)})")
            self.token = str(body["access_token"])

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                ok_statuses: Iterable[int] = ()) -> Response:
        """One request, with Salesforce's errors mapped: Transient (429, 408, 5xx, concurrent-request limit),
        Terminal (401 / 403 / 404), anything else returned."""
        ok = set(ok_statuses)
        token = self.token
        response = super().request(method, path, body, headers, ok_statuses=_ALL_STATUSES)
        if response.status_code == 401 and self.can_login and 401 not in ok:
            self._login(stale=token)
            response = super().request(method, path, body, headers, ok_statuses=_ALL_STATUSES)
        status = response.status_code
        if status in ok:
            return response
        where = f"{method} {path.split('?')[0]}"
        if status in (408, 429) or status >= 500:
            raise Transient(f"{self.name}: HTTP {status} on {where}: {sf_message(response, 120)}",
                            self.retry_after(response))
        if status == 403 and sf_error_code(response) == "REQUEST_LIMIT_EXCEEDED":
            message = sf_message(response, 200)
            if "TotalRequests" in message:  # the org's rolling 24-hour API allocation: retrying today cannot help
                raise Terminal(f"salesforce destination '{self.name}': the org's API request allocation is used "
                               f"up (HTTP 403: {message})")
            raise Transient(f"{self.name}: HTTP 403 on {where}: {message}", self.retry_after(response))
        if status in (401, 403):
            raise Terminal(f"salesforce destination '{self.name}' refused the credentials (HTTP {status}: "
                           f"{sf_message(response, 200)})")
        if status == 404:
            raise Terminal(f"salesforce destination '{self.name}': {where} answered 404 ({sf_message(response, 200)})")
        return response

    def _read(self, path: str, what: str) -> Response:
        """A GET that is safe to repeat (job status, results, query pages): transient errors are retried here, so
        a hiccup while waiting never makes the runner submit the job again."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.request("GET", path, headers={"Accept": "application/json, text/csv"})
            except Transient as exc:
                if attempt >= 6:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else min(30.0, 0.2 * 2 ** attempt)
                time.sleep(min(delay, 60.0))
                continue
            if response.status_code != 200:
                raise Terminal(f"salesforce destination '{self.name}': reading {what} answered HTTP "
                               f"{response.status_code} ({sf_message(response, 200)})")
            return response

    # -- batches -------------------------------------------------------------------------------------------------

    def send(self, batch: Batch) -> BatchResult:
        ids, rejected = self.identified(
            batch, self.ext, "the External ID field Salesforce upserts and deletes by",
            lambda value: csv_value(value) if str(value).strip() else "")
        if ids:
            send = self._delete if batch.op == "delete" else self._upsert
            rejected.update(send(batch, ids))
        return BatchResult(rejected)

    def _upsert(self, batch: Batch, ids: dict[int, str]) -> dict[int, str]:
        columns = list(batch.records[0])
        header = csv_line(columns)
        jobs: list[list[tuple[int, bytes]]] = [[]]
        size = len(header)
        for i in ids:
            line = csv_line(csv_value(batch.records[i].get(c)) for c in columns)
            if jobs[-1] and size + len(line) > UPLOAD_BYTES:
                jobs.append([])
                size = len(header)
            jobs[-1].append((i, line))
            size += len(line)
        rejected: dict[int, str] = {}
        for job in jobs:
            rejected.update(self._run_job("upsert", header, job, {i: ids[i] for i, _ in job}, self.ext))
        return rejected

    def _delete(self, batch: Batch, ids: dict[int, str]) -> dict[int, str]:
        found = self._lookup(sorted(set(ids.values())))
        by_record: dict[str, list[int]] = {}
        for i, value in ids.items():
            for record_id in found.get(value) or []:
                by_record.setdefault(record_id, []).append(i)
        if not by_record:  # nothing left to delete: already gone
            return {}
        record_ids = list(by_record)
        lines = [(n, csv_line([record_id])) for n, record_id in enumerate(record_ids)]
        failed = self._run_job("delete", csv_line(["Id"]), lines, dict(enumerate(record_ids)), "Id",
                               gone_is_success=True)
        rejected: dict[int, str] = {}
        for n, reason in failed.items():
            for i in by_record[record_ids[n]]:
                rejected.setdefault(i, reason)
        return rejected

    def _lookup(self, values: list[str]) -> dict[str, list[str]]:
        """Record ids by external id value, by SOQL queries whose URI stays within Salesforce's limit."""
        found: dict[str, list[str]] = {}
        start = f"SELECT Id, {self.ext} FROM {self.object} WHERE {self.ext} IN ("
        chunks: list[list[str]] = [[]]
        size = len(self.api) + 10 + len(urllib.parse.quote(start + ")", safe=""))
        for value in values:
            quoted = len(urllib.parse.quote(soql_string(value) + ",", safe=""))
            if chunks[-1] and size + quoted > QUERY_URI_BYTES:
                chunks.append([])
                size = len(self.api) + 10 + len(urllib.parse.quote(start + ")", safe=""))
            chunks[-1].append(value)
            size += quoted
        wanted = set(values)
        folded = {v.casefold(): v for v in values}
        for chunk in chunks:
            soql = start + ",".join(soql_string(v) for v in chunk) + ")"
            path: str | None = f"{self.api}/query?q={urllib.parse.quote(soql, safe='')}"
            while path:
                response = self._read(path, "the ids of the records to delete")
                body = response.json()
                for record in body.get("records") or []:
                    value = str(record.get(self.ext))
                    if value not in wanted:  # External IDs are case-insensitive unless marked case-sensitive
                        value = folded.get(value.casefold(), value)
                    if value in wanted and record.get("Id"):
                        found.setdefault(value, []).append(str(record["Id"]))
                path = None if body.get("done", True) else body.get("nextRecordsUrl")
        return found

    # -- one ingest job ------------------------------------------------------------------------------------------

    def _run_job(self, operation: str, header: bytes, lines: list[tuple[int, bytes]], keys: dict[int, str],
                 key_column: str, gone_is_success: bool = False) -> dict[int, str]:
        """Create, upload, close and wait for one job; return the rejected rows (by the caller's index)."""
        spec = {"object": self.object, "operation": operation, "contentType": "CSV", "lineEnding": "LF",
                "columnDelimiter": "COMMA"}
        if operation == "upsert":
            spec["externalIdFieldName"] = self.ext
        jobs = f"{self.api}/jobs/ingest"
        created = self.request("POST", jobs, spec, ok_statuses=(200, 201))
        if created.status_code not in (200, 201):
            raise Terminal(f"salesforce destination '{self.name}': Salesforce refused to create the {operation} job "
                           f"on {self.object} (HTTP {created.status_code}: {sf_message(created, 200)})")
        job_id = str(created.json()["id"])
        try:
            data = header + b"".join(line for _, line in lines)
            upload = self.request("PUT", f"{jobs}/{job_id}/batches", data,
                                  headers={"Content-Type": "text/csv", "Accept": "application/json"},
                                  ok_statuses=(200, 201))
            if upload.status_code not in (200, 201):  # refused upload (too large, bad CSV): every row rejected
                self._abort(job_id)
                reason = f"HTTP {upload.status_code}: {sf_message(upload)}"
                return dict.fromkeys((i for i, _ in lines), reason)
            closed = self.request("PATCH", f"{jobs}/{job_id}", {"state": "UploadComplete"}, ok_statuses=(200,))
            if closed.status_code != 200:
                self._abort(job_id)
                raise Terminal(f"salesforce destination '{self.name}': Salesforce did not accept job {job_id} "
                               f"(HTTP {closed.status_code}: {sf_message(closed, 200)})")
        except Transient:
            self._abort(job_id)
            raise
        try:
            info = self._wait(job_id)
        except Transient:  # the rows are sent again as a new job: this one must not apply them later
            self._abort(job_id)
            raise
        state = info.get("state")
        message = " ".join(str(info.get("errorMessage") or "").split())[:300]
        if state == "Aborted":
            raise Transient(f"{self.name}: Salesforce job {job_id} was aborted")
        if state == "Failed" and not info.get("numberRecordsProcessed"):
            if any(marker in message for marker in _CONFIG_FAILURES):
                raise Terminal(f"salesforce destination '{self.name}': Salesforce failed {operation} job {job_id} "
                               f"on {self.object}: {message}")
            raise Transient(f"{self.name}: Salesforce job {job_id} failed before processing any row: {message}")
        processed, failed = int(info.get("numberRecordsProcessed") or 0), int(info.get("numberRecordsFailed") or 0)
        if state == "JobComplete" and processed == len(lines) and not failed:
            return {}  # every row processed, none failed: no need to spend two API requests on the results
        positions: dict[str, list[int]] = {}
        for i, _ in lines:
            positions.setdefault(keys[i], []).append(i)
        done: set[int] = set()
        rejected: dict[int, str] = {}
        for kind in ("successfulResults", "failedResults"):
            text = self._read(f"{jobs}/{job_id}/{kind}/", f"the {kind} of job {job_id}").content.decode("utf-8-sig")
            for row in csv.DictReader(io.StringIO(text, newline="")):
                waiting = positions.get(row.get(key_column) or "")
                if not waiting:
                    continue
                i = waiting.pop(0)
                done.add(i)
                if kind == "failedResults":
                    reason = " ".join(str(row.get("sf__Error") or "refused by Salesforce").split())
                    if not (gone_is_success and reason.startswith("ENTITY_IS_DELETED")):
                        rejected[i] = reason
        if len(done) < len(lines):
            reason = (f"not processed: Salesforce job {job_id} failed ({message}); sent again on the next run"
                      if state == "Failed" else f"no result for this row in Salesforce job {job_id}; sent again "
                      "on the next run")
            rejected.update({i: reason for i, _ in lines if i not in done})
        return rejected

    def _wait(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.poll_timeout
        while True:
            info = self._read(f"{self.api}/jobs/ingest/{job_id}", f"the state of job {job_id}").json()
            if info.get("state") in ("JobComplete", "Failed", "Aborted"):
                return info
            if time.monotonic() > deadline:
                raise Transient(f"{self.name}: Salesforce job {job_id} still {info.get('state')} after "
                                f"{self.poll_timeout:.0f} s; aborted, sent again")
            time.sleep(self.poll_interval)

    def _abort(self, job_id: str) -> None:
        """Best effort: an open or unfinished job should not linger (or apply later) once we send the rows again."""
        with contextlib.suppress(Transient, Terminal, Unsendable):
            self.request("PATCH", f"{self.api}/jobs/ingest/{job_id}", {"state": "Aborted"}, ok_statuses=_ALL_STATUSES)


def _json(response: Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
