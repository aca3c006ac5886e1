"""A fake Google Ads API (REST) for Customer Match through OfflineUserDataJobService, following the documented
contract.

  Headers: `Authorization: Bearer <token>` (else 401 UNAUTHENTICATED), `developer-token` (else 401, a wrong one
      403), `login-customer-id` when `manager` is set (else 403 PERMISSION_DENIED USER_PERMISSION_DENIED)
  POST /{version}/customers/{cid}/offlineUserDataJobs:create {"job": {"type": "CUSTOMER_MATCH_USER_LIST",
      "customerMatchUserListMetadata": {"userList": "customers/{cid}/userLists/{id}", "consent"?: {"adUserData",
      "adPersonalization": GRANTED | DENIED | UNSPECIFIED}}}}: 200 {"resourceName"}; an unknown list is 400
      INVALID_ARGUMENT (offlineUserDataJobError INVALID_USER_LIST_ID), a bad consent value 400
  POST /{version}/{job}:addOperations {"enablePartialFailure", "operations": [{"create" | "remove":
      {"userIdentifiers": [{"hashedEmail" | "hashedPhoneNumber": <64 lowercase hex>}]}}]}: more than 100,000
      identifiers in the request, or 20 in one operation, is 400 INVALID_ARGUMENT (TOO_MANY_USER_IDENTIFIERS);
      a bad hash (INVALID_SHA256_FORMAT) or a hash in `refused` fails its operation: with partial failure on,
      200 {"partialFailureError": {"code": 3, "message", "details": [{"@type": ...GoogleAdsFailure, "errors":
      [{"errorCode", "message", "location": {"fieldPathElements": [{"fieldName": "operations", "index": i},
      ...]}}]}]}} and the other operations are kept; off, the whole request is 400
  POST /{version}/{job}:run: 200 {"name": "customers/{cid}/operations/{id}"}; a job already run is 400
  GET  /{version}/customers/{cid}/operations/{id}: not done on the first poll, then {"done": true} and the job's
      kept operations are applied to the list (`fail_job` makes the next job end with an `error`)
  `quota_next(n)` answers 429 RESOURCE_EXHAUSTED with a retryDelay in the body; `fail_next` 429s carry
      Retry-After. A job running on a list while another is created answers 409 ABORTED (CONCURRENT_MODIFICATION).
Members live in `lists[user_list resource]` as a set of ("hashedEmail" | "hashedPhoneNumber", hash) pairs.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.parse
from typing import Any

from .api_server import Answer, FakeApi

HEX64 = re.compile(r"^[0-9a-f]{64}$")
FAILURE = "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure"


def status_error(http: int, status: str, message: str, errors: list[dict] | None = None) -> dict:
    error: dict[str, Any] = {"code": http, "message": message, "status": status}
    if errors:
        error["details"] = [{"@type": FAILURE, "errors": errors, "requestId": "req-fake-1"}]
    return {"error": error}


class GoogleAds(FakeApi):
    IDENTIFIERS_LIMIT = 100_000
    PER_OPERATION = 20

    def __init__(self, token: str = "ya29.google-ads-access-token", developer_token: str = "dev-token-abc",
                 customer: str = "1234567890", lists=("555",), manager: str | None = None) -> None:
        self.token = token
        self.developer_token = developer_token
        self.customer = customer
        self.manager = manager
        self.lists: dict[str, set[tuple[str, str]]] = {f"customers/{customer}/userLists/{i}": set() for i in lists}
        self.refused: set[str] = set()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, str] = {}
        self.ids = itertools.count(1)
        self.quota_faults = 0
        self.fail_jobs = 0
        self.identifiers_sent: list[int] = []
        self.refresh = {"client_id": "cid.apps.googleusercontent.com", "client_secret": "shh",
                        "refresh_token": "1//refresh-token"}
        super().__init__()

    def dispatch(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if path == "/token":  # the OAuth token endpoint, form-encoded
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            if form.get("grant_type") == "refresh_token" and all(form.get(k) == v for k, v in self.refresh.items()):
                return 200, {"access_token": self.token, "expires_in": 3599, "token_type": "Bearer"}, {}
            return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, {}
        return super().dispatch(method, path, headers, raw)

    def authorized(self, headers: Any) -> bool:
        return headers.get("Authorization") == f"Bearer {self.token}" and bool(headers.get("developer-token"))

    def unauthorized(self) -> Answer:
        return 401, status_error(401, "UNAUTHENTICATED", "Request is missing required authentication credential. "
                                 "Expected OAuth 2 access token, login cookie or other valid authentication "
                                 "credential.", [{"errorCode": {"authenticationError": "NOT_ADS_USER"},
                                                  "message": "User in the cookie is not a valid Ads user."}]), {}

    def quota_next(self, count: int) -> None:
        with self.lock:
            self.quota_faults += count

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if headers.get("developer-token") != self.developer_token:
            return 403, status_error(403, "PERMISSION_DENIED", "The developer token is not approved.",
                                     [{"errorCode": {"authorizationError": "DEVELOPER_TOKEN_NOT_APPROVED"},
                                       "message": "The developer token is not approved."}]), {}
        if self.manager and headers.get("login-customer-id") != self.manager:
            return 403, status_error(403, "PERMISSION_DENIED", "The caller does not have permission",
                                     [{"errorCode": {"authorizationError": "USER_PERMISSION_DENIED"},
                                       "message": "User doesn't have permission to access customer. Note: If "
                                                  "you're accessing a client customer, the manager's customer id "
                                                  "must be set in the 'login-customer-id' header."}]), {}
        if self.quota_faults:
            self.quota_faults -= 1
            return 429, status_error(429, "RESOURCE_EXHAUSTED", "Too many requests. Retry in 0.1 seconds.",
                                     [{"errorCode": {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"},
                                       "message": "Too many requests. Retry in 0.1 seconds.",
                                       "details": {"quotaErrorDetails": {"rateScope": "ACCOUNT",
                                                                         "rateName": "Requests per service per "
                                                                                     "method",
                                                                         "retryDelay": "0.1s"}}}]), {}
        match = re.match(r"^/(v\d+)/(.+?)(?::(create|addOperations|run))?$", path)
        if not match:
            return 404, status_error(404, "NOT_FOUND", f"no route {method} {path}"), {}
        resource, verb = match.group(2), match.group(3)
        body = json.loads(raw) if raw else {}
        if method == "POST" and verb == "create" and resource == f"customers/{self.customer}/offlineUserDataJobs":
            return self._create(body)
        if method == "POST" and verb in ("addOperations", "run") and resource in self.jobs:
            return self._add(self.jobs[resource], body) if verb == "addOperations" else self._run(self.jobs[resource])
        if method == "GET" and resource in self.operations:
            return self._poll(resource)
        return 404, status_error(404, "NOT_FOUND", f"Requested entity was not found: {resource}"), {}

    def _create(self, body: dict) -> Answer:
        job = body.get("job") or {}
        user_list = (job.get("customerMatchUserListMetadata") or {}).get("userList")
        consent = (job.get("customerMatchUserListMetadata") or {}).get("consent") or {}
        if set(consent) - {"adUserData", "adPersonalization"} or \
                set(consent.values()) - {"GRANTED", "DENIED", "UNSPECIFIED"}:
            return 400, status_error(400, "INVALID_ARGUMENT", f"Invalid value in consent: {consent}"), {}
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST" or user_list not in self.lists:
            return 400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                     [{"errorCode": {"offlineUserDataJobError": "INVALID_USER_LIST_ID"},
                                       "message": f"The user list {user_list} is not a valid Customer Match list.",
                                       "location": {"fieldPathElements": [{"fieldName": "job"}]}}]), {}
        if any(j["list"] == user_list and j["status"] == "RUNNING" for j in self.jobs.values()):
            return 409, status_error(409, "ABORTED", "Multiple requests were attempting to modify the same "
                                     "resource at once. Retry the request.",
                                     [{"errorCode": {"databaseError": "CONCURRENT_MODIFICATION"},
                                       "message": "Multiple requests were attempting to modify the same resource "
                                                  "at once. Retry the request."}]), {}
        name = f"customers/{self.customer}/offlineUserDataJobs/{next(self.ids)}"
        self.jobs[name] = {"list": user_list, "status": "PENDING", "operations": [], "polls": 0,
                           "fail": self.fail_jobs > 0, "consent": consent}
        self.fail_jobs = max(0, self.fail_jobs - 1)
        return 200, {"resourceName": name}, {}

    def _add(self, job: dict, body: dict) -> Answer:
        if job["status"] != "PENDING":
            return 400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                     [{"errorCode": {"offlineUserDataJobError": "INVALID_JOB_STATUS"},
                                       "message": "The job is not in PENDING status."}]), {}
        operations = body.get("operations") or []
        total = sum(len((next(iter(op.values()), {}) or {}).get("userIdentifiers") or []) for op in operations)
        self.identifiers_sent.append(total)
        if total > self.IDENTIFIERS_LIMIT:
            return 400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                     [{"errorCode": {"offlineUserDataJobError": "TOO_MANY_USER_IDENTIFIERS"},
                                       "message": "Maximum number of user identifiers allowed per request is "
                                                  "100,000 and per operation is 20."}]), {}
        errors, kept = [], []
        for index, op in enumerate(operations):
            problem = self._check(op)
            if problem:
                code, message, field = problem
                errors.append({"errorCode": {"offlineUserDataJobError": code}, "message": message,
                               "location": {"fieldPathElements": [{"fieldName": "operations", "index": index},
                                                                  {"fieldName": next(iter(op), "create")},
                                                                  *([{"fieldName": field}] if field else [])]}})
            else:
                kept.append(op)
        if errors and not body.get("enablePartialFailure"):
            return 400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", errors), {}
        job["operations"].extend(kept)
        if not errors:
            return 200, {}, {}
        return 200, {"partialFailureError": {"code": 3, "message": f"{errors[0]['message']}, at operations[...]",
                                             "details": [{"@type": FAILURE, "errors": errors}]}}, {}

    def _check(self, op: dict) -> tuple[str, str, str | None] | None:
        if len(op) != 1 or next(iter(op)) not in ("create", "remove"):
            return "INVALID_OPERATION", "An operation must be one of create or remove.", None
        identifiers = (next(iter(op.values())) or {}).get("userIdentifiers") or []
        if not identifiers:
            return "MISSING_USER_IDENTIFIER", "User identifiers are required.", "user_identifiers"
        if len(identifiers) > self.PER_OPERATION:
            return "TOO_MANY_USER_IDENTIFIERS", "At most 20 user identifiers per operation.", "user_identifiers"
        for ident in identifiers:
            if len(ident) != 1 or next(iter(ident)) not in ("hashedEmail", "hashedPhoneNumber"):
                return "UNSUPPORTED_USER_IDENTIFIER", f"Unsupported identifier {list(ident)}.", "user_identifiers"
            (kind, value), = ident.items()
            if not isinstance(value, str) or not HEX64.match(value):
                return "INVALID_SHA256_FORMAT", "The SHA256 encoded value is malformed.", kind
            if value in self.refused:
                return "INVALID_USER_IDENTIFIER", "The user identifier was refused (test).", kind
        return None

    def _run(self, job: dict) -> Answer:
        if job["status"] != "PENDING":
            return 400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                     [{"errorCode": {"offlineUserDataJobError": "INVALID_JOB_STATUS"},
                                       "message": "The job has already been run."}]), {}
        job["status"] = "RUNNING"
        name = f"customers/{self.customer}/operations/{next(self.ids)}"
        self.operations[name] = next(k for k, v in self.jobs.items() if v is job)
        return 200, {"name": name, "metadata": {"@type": "type.googleapis.com/google.ads.googleads.v26.resources."
                                                         "OfflineUserDataJobMetadata"}}, {}

    def _poll(self, name: str) -> Answer:
        job = self.jobs[self.operations[name]]
        job["polls"] += 1
        if job["polls"] < 2:
            return 200, {"name": name, "done": False}, {}
        if job["status"] == "RUNNING":
            job["status"] = "FAILED" if job["fail"] else "SUCCESS"
            if not job["fail"]:
                members = self.lists[job["list"]]
                for op in job["operations"]:
                    verb, data = next(iter(op.items()))
                    pairs = {next(iter(i.items())) for i in data["userIdentifiers"]}
                    if verb == "create":
                        members.update(pairs)
                    else:
                        members.difference_update(pairs)
        answer: dict[str, Any] = {"name": name, "done": True}
        if job["status"] == "FAILED":
            answer["error"] = {"code": 13, "message": "Internal error encountered while processing the job."}
        return 200, answer, {}
