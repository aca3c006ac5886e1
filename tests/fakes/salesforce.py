"""A fake Salesforce org for Bulk API 2.0 ingest jobs and REST SOQL queries, following the documented contract.

  Authorization: Bearer <access token>, else 401 [{"message": "Session expired or invalid", "errorCode":
      "INVALID_SESSION_ID"}]; errors are JSON arrays of {errorCode, message}
  POST /services/oauth2/token (form: client_credentials, or refresh_token): {"access_token", "instance_url", ...};
      wrong client -> 400 {"error": "invalid_client", "error_description": ...}
  POST /services/data/vXX.X/jobs/ingest {object, operation, externalIdFieldName (upsert: an External ID field of
      the object), contentType: CSV, lineEnding: LF|CRLF}: 200 with the job, state Open, contentUrl
  PUT  .../jobs/ingest/{id}/batches with Content-Type text/csv, only while the job is Open (else 400): 201;
      more than `upload_limit` bytes once base64-encoded (150 MB) -> 413. One upload per job: closing a job with
      several uploads -> 400 "Found multiple contents"
  PATCH .../jobs/ingest/{id} {state: UploadComplete | Aborted}: 200 with the job
  GET  .../jobs/ingest/{id}: UploadComplete, then InProgress, then JobComplete (the data is applied then) with
      numberRecordsProcessed / numberRecordsFailed; Failed with errorMessage when the CSV is wrong (line ending,
      unknown field, no external id column, anything but Id in a delete job) -- "InvalidBatch : ..."
  GET  .../jobs/ingest/{id}/successfulResults/ and /failedResults/ (text/csv, every field quoted, rows in no
      particular order): "sf__Id","sf__Created" | "sf__Id","sf__Error", then the uploaded columns
  GET  .../query?q=SELECT Id, <ext> FROM <object> WHERE <ext> IN ('a', ...): {totalSize, done, records,
      nextRecordsUrl} pages of `query_page` records; a URI over 16,384 bytes -> 414
CSV semantics: an empty value leaves a field as it is, #N/A sets it to null (the field is removed here); External
ID values match case-insensitively. A record whose Email contains "invalid" fails with INVALID_EMAIL_ADDRESS.
Deleting a deleted record fails with ENTITY_IS_DELETED. Records live in `records[object][Id] = {field: value}`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import re
import threading
import time
import urllib.parse
from collections import deque
from typing import Any

from .api_server import Answer, FakeApi

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
CONTACT_FIELDS = {"Id", "Email", "FirstName", "LastName", "Plan__c", "Score__c", "External_Id__c", "Note__c"}


def _error(code: str, message: str) -> list[dict[str, str]]:
    return [{"errorCode": code, "message": message}]


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


class Salesforce(FakeApi):
    text_content_type = "text/csv; charset=UTF-8"  # job results

    def __init__(self, token: str = "00DFAKE000000001!AQ0AQFakeAccessToken") -> None:
        self.token = token
        self.client_id, self.client_secret = "3MVG9FakeConsumerKey", "FakeConsumerSecret"
        self.refresh_token = "5Aep861FakeRefreshToken"
        self.objects: dict[str, dict[str, set[str]]] = {
            "Contact": {"fields": set(CONTACT_FIELDS), "external_ids": {"External_Id__c"}},
            "Person__c": {"fields": set(CONTACT_FIELDS), "external_ids": {"External_Id__c"}}}
        self.records: dict[str, dict[str, dict[str, str]]] = {name: {} for name in self.objects}
        self.deleted: set[str] = set()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.cursors: dict[str, list[dict]] = {}
        self.ids = itertools.count(1)
        self.upload_limit = 150 * 1024 * 1024  # bytes after base64
        self.query_page = 2000
        self.polls = 2  # status checks a job stays UploadComplete / InProgress
        self.fail_job: tuple[int, str] | None = None  # the next job fails after this many rows, with this message
        self.token_requests = 0
        self.get_faults: deque[tuple[int, dict[str, str]]] = deque()  # faults only GETs (polls, results) meet
        self.state_lock = threading.RLock()
        super().__init__()

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids):012d}AAA"[:18].ljust(18, "A")

    def dispatch(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if path == "/services/oauth2/token" and method == "POST":
            return self._oauth(raw)
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, _error("INVALID_SESSION_ID", "Session expired or invalid"), {}
        with self.lock:
            fault = self.faults.popleft() if self.faults else None
            if fault is None and method == "GET" and self.get_faults:
                fault = self.get_faults.popleft()
            if fault:
                if fault[0] == 403:  # the org's rolling 24-hour API request allocation
                    return 403, _error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), fault[1]
                code = "REQUEST_LIMIT_EXCEEDED" if fault[0] == 429 else "SERVER_UNAVAILABLE"
                return fault[0], _error(code, "fault injected by the test"), fault[1]
            self.requests.append({"method": method, "path": path, "size": len(raw),
                                  "content_type": headers.get("Content-Type", "")})
        with self.state_lock:
            return self.route(method, path, headers, raw)

    def _oauth(self, raw: bytes) -> Answer:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
        self.token_requests += 1
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return 400, {"error": "invalid_client", "error_description": "invalid client credentials"}, {}
        grant = form.get("grant_type")
        if grant == "refresh_token" and form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant", "error_description": "expired access/refresh token"}, {}
        if grant not in ("client_credentials", "refresh_token"):
            return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, {}
        return 200, {"access_token": self.token, "instance_url": self.url, "token_type": "Bearer",
                     "issued_at": str(int(time.time() * 1000)), "signature": "fake"}, {}

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        match = re.match(r"^/services/data/v(\d+\.\d)/(.*)$", path)
        if not match:
            return 404, _error("NOT_FOUND", "The requested resource does not exist"), {}
        version, rest = match.groups()
        route, _, query = rest.partition("?")
        parts = route.rstrip("/").split("/")
        if parts[:2] == ["jobs", "ingest"]:
            if len(parts) == 2 and method == "POST":
                return self._create(version, headers, raw)
            job = self.jobs.get(parts[2]) if len(parts) > 2 else None
            if job is None:
                return 404, _error("NOT_FOUND", "The requested resource does not exist"), {}
            if len(parts) == 3 and method == "GET":
                return self._status(job)
            if len(parts) == 3 and method == "PATCH":
                return self._patch(job, raw)
            if parts[3:] == ["batches"] and method == "PUT":
                return self._upload(job, headers, raw)
            if len(parts) == 4 and parts[3] in ("successfulResults", "failedResults") and method == "GET":
                return self._results(job, parts[3])
        if parts[0] == "query" and method == "GET":
            if len(path) > 16_384:
                return 414, _error("URI_TOO_LONG", "URI Too Long"), {}
            if len(parts) == 2:
                return self._page(version, parts[1])
            return self._query(version, urllib.parse.parse_qs(query).get("q", [""])[0])
        return 404, _error("NOT_FOUND", f"no route {method} {path}"), {}

    # -- ingest jobs -----------------------------------------------------------------------------------------------

    def _info(self, job: dict) -> dict[str, Any]:
        info = {k: job[k] for k in ("id", "operation", "object", "state", "contentType", "lineEnding",
                                    "columnDelimiter", "apiVersion", "concurrencyMode", "createdDate")}
        if job.get("externalIdFieldName"):
            info["externalIdFieldName"] = job["externalIdFieldName"]
        if job["state"] == "Open":
            info["contentUrl"] = f"services/data/v{job['apiVersion']}/jobs/ingest/{job['id']}/batches"
        if job["state"] in ("JobComplete", "Failed"):
            info.update(numberRecordsProcessed=job["processed"], numberRecordsFailed=len(job["failed"]),
                        retries=0, totalProcessingTime=10)
        if job.get("errorMessage"):
            info["errorMessage"] = job["errorMessage"]
        return info

    def _create(self, version: str, headers: Any, raw: bytes) -> Answer:
        if not headers.get("Content-Type", "").startswith("application/json"):
            return 400, _error("INVALIDJOB", "The job definition must be JSON (Content-Type: application/json)"), {}
        try:
            spec = json.loads(raw)
        except ValueError:
            return 400, _error("JSON_PARSER_ERROR", "The request body is not valid JSON"), {}
        obj, operation = spec.get("object"), spec.get("operation")
        if obj not in self.objects:
            return 400, _error("INVALIDJOB", f"Unable to find object: {obj}"), {}
        if operation not in OPERATIONS:
            return 400, _error("INVALIDJOB", f"Invalid operation: {operation}"), {}
        if spec.get("contentType", "CSV") != "CSV" or spec.get("lineEnding", "LF") not in ("LF", "CRLF") or \
                spec.get("columnDelimiter", "COMMA") != "COMMA":
            return 400, _error("INVALIDJOB", "contentType must be CSV, lineEnding LF or CRLF"), {}
        ext = spec.get("externalIdFieldName")
        if operation == "upsert" and ext not in self.objects[obj]["external_ids"]:
            return 400, _error("INVALIDJOB", f"External ID field {ext} is not an External ID field of {obj}"
                               if ext else "externalIdFieldName is required for upsert"), {}
        job_id = self._id("750")
        self.jobs[job_id] = {
            "id": job_id, "operation": operation, "object": obj, "externalIdFieldName": ext, "state": "Open",
            "contentType": "CSV", "lineEnding": spec.get("lineEnding", "LF"), "columnDelimiter": "COMMA",
            "apiVersion": version, "concurrencyMode": "Parallel", "createdDate": "2026-11-22T00:00:00.000+0000",
            "uploads": [], "polls": 0, "processed": 0, "success": [], "failed": [], "header": []}
        return 200, self._info(self.jobs[job_id]), {}

    def _upload(self, job: dict, headers: Any, raw: bytes) -> Answer:
        if headers.get("Content-Type", "").split(";")[0].strip() != "text/csv":
            return 400, _error("INVALIDJOB", "Job data must be uploaded with Content-Type: text/csv"), {}
        if job["state"] != "Open":
            return 400, _error("INVALIDJOB", f"Job {job['id']} is not open for data upload: {job['state']}"), {}
        if (len(raw) + 2) // 3 * 4 > self.upload_limit:
            return 413, _error("EXCEEDED_MAX_SIZE", "Job data exceeds the maximum size of 150 MB "
                               "(after base64 encoding)"), {}
        job["uploads"].append(raw)
        return 201, None, {}

    def _patch(self, job: dict, raw: bytes) -> Answer:
        state = (json.loads(raw or b"{}") or {}).get("state")
        if state == "UploadComplete":
            if job["state"] != "Open":
                return 400, _error("INVALIDJOB", f"Job {job['id']} is not Open: {job['state']}"), {}
            if len(job["uploads"]) > 1:
                return 400, _error("INVALIDJOB", f"Found multiple contents for job: <{job['id']}>, please 'Close' "
                                   "/ 'Abort' / 'Delete' the current Job then create a new Job"), {}
            if not job["uploads"]:
                return 400, _error("INVALIDJOB", f"No data uploaded for job {job['id']}"), {}
            job["state"] = "UploadComplete"
        elif state == "Aborted":
            if job["state"] not in ("Open", "UploadComplete", "InProgress"):
                return 400, _error("INVALIDJOB", f"Job {job['id']} cannot be aborted: {job['state']}"), {}
            job["state"] = "Aborted"
        else:
            return 400, _error("INVALIDJOB", f"Invalid state: {state}"), {}
        return 200, self._info(job), {}

    def _status(self, job: dict) -> Answer:
        if job["state"] in ("UploadComplete", "InProgress"):
            job["polls"] += 1
            if job["polls"] > self.polls:
                self._process(job)
            elif job["polls"] > 1:
                job["state"] = "InProgress"
        return 200, self._info(job), {}

    def _results(self, job: dict, kind: str) -> Answer:
        if job["state"] not in ("JobComplete", "Failed"):
            return 400, _error("INVALIDJOB", f"Job {job['id']} is not complete: {job['state']}"), {}
        rows = list(job["success" if kind == "successfulResults" else "failed"])
        random.Random(job["id"]).shuffle(rows)  # results come in no particular order
        head = ["sf__Id", "sf__Created" if kind == "successfulResults" else "sf__Error"] + job["header"]
        return 200, _csv([head] + rows), {}

    def _fail(self, job: dict, message: str) -> None:
        job.update(state="Failed", errorMessage=message)

    def _process(self, job: dict) -> None:
        text = job["uploads"][0].decode("utf-8")
        if job["lineEnding"] == "LF" and "\r\n" in text:
            return self._fail(job, "ClientInputError : LineEnding is invalid on user data. Current LineEnding "
                                   "setting is LF")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, rows = rows[0], rows[1:]
        job["header"] = header
        fields = self.objects[job["object"]]["fields"]
        if job["operation"] in ("delete", "hardDelete"):
            if header != ["Id"]:
                return self._fail(job, "InvalidBatch : InvalidBatch : a delete job takes only the Id column")
        else:
            unknown = [h for h in header if h not in fields]
            if unknown:
                return self._fail(job, f"InvalidBatch : InvalidBatch : Field name not found : {unknown[0]}")
            ext = job["externalIdFieldName"]
            if job["operation"] == "upsert" and ext not in header:
                return self._fail(job, f"InvalidBatch : InvalidBatch : Field name not provided: {ext}")
        limit, message = self.fail_job if self.fail_job else (len(rows), "")
        self.fail_job = None
        for row in rows[:limit]:
            record = dict(zip(header, row, strict=True))
            if job["operation"] in ("delete", "hardDelete"):
                self._delete_row(job, row, record["Id"])
            else:
                self._upsert_row(job, row, record)
            job["processed"] += 1
        if limit < len(rows):
            self._fail(job, message)
        else:
            job["state"] = "JobComplete"

    def _upsert_row(self, job: dict, row: list[str], record: dict[str, str]) -> None:
        ext = job["externalIdFieldName"]
        value = record.get(ext, "")
        if value in ("", "#N/A"):
            job["failed"].append(["", f"MISSING_ARGUMENT:{ext} not specified:--"] + row)
            return
        email = record.get("Email", "")
        if "invalid" in email:
            job["failed"].append(["", f"INVALID_EMAIL_ADDRESS:Email: invalid email address: {email}:Email --"] + row)
            return
        table = self.records[job["object"]]
        record_id = next((i for i, r in table.items() if str(r.get(ext, "")).casefold() == value.casefold()), None)
        created = record_id is None
        if created:
            record_id = self._id("003")
            table[record_id] = {}
        stored = table[record_id]
        for k, v in record.items():
            if v == "#N/A":
                stored.pop(k, None)
            elif v != "":  # an empty value leaves the field as it is
                stored[k] = v
        job["success"].append([record_id, "true" if created else "false"] + row)

    def _delete_row(self, job: dict, row: list[str], record_id: str) -> None:
        table = self.records[job["object"]]
        if record_id in table:
            del table[record_id]
            self.deleted.add(record_id)
            job["success"].append([record_id, "false"] + row)
        elif record_id in self.deleted:
            job["failed"].append([record_id, "ENTITY_IS_DELETED:entity is deleted:--"] + row)
        else:
            job["failed"].append([record_id, "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--"] + row)

    # -- SOQL ------------------------------------------------------------------------------------------------------

    def _query(self, version: str, soql: str) -> Answer:
        match = re.fullmatch(r"SELECT Id, (\w+) FROM (\w+) WHERE (\w+) IN \((.*)\)", soql, re.S)
        if not match or match.group(1) != match.group(3) or match.group(2) not in self.objects:
            return 400, _error("MALFORMED_QUERY", f"unexpected query: {soql[:200]}"), {}
        field, obj, _, values = match.groups()
        if field not in self.objects[obj]["fields"]:
            return 400, _error("INVALID_FIELD", f"No such column '{field}' on entity '{obj}'"), {}
        literals = re.findall(r"'((?:\\.|[^'\\])*)'", values)
        if len(",".join(f"'{v}'" for v in literals)) != len(values):
            return 400, _error("MALFORMED_QUERY", "unexpected IN list"), {}
        wanted = {re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), v).casefold()
                  for v in literals}
        found = [{"attributes": {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{record_id}"},
                  "Id": record_id, field: record.get(field)}
                 for record_id, record in self.records[obj].items()
                 if str(record.get(field, "")).casefold() in wanted]
        cursor = self._id("01g")
        self.cursors[cursor] = found
        return self._page(version, f"{cursor}-0")

    def _page(self, version: str, locator: str) -> Answer:
        cursor, _, offset = locator.rpartition("-")
        found = self.cursors.get(cursor)
        if found is None or not offset.isdigit():
            return 400, _error("INVALID_QUERY_LOCATOR", "invalid query locator"), {}
        start = int(offset)
        page = found[start:start + self.query_page]
        body: dict[str, Any] = {"totalSize": len(found), "done": start + self.query_page >= len(found),
                                "records": page}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{start + self.query_page}"
        return 200, body, {}

    # -- for the tests ---------------------------------------------------------------------------------------------

    def by_external_id(self, obj: str = "Contact", field: str = "External_Id__c") -> dict[str, dict[str, str]]:
        return {r[field]: {k: v for k, v in r.items() if k != field} for r in self.records[obj].values()}
