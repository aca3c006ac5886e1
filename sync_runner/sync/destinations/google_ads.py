"""`google_ads_customer_match`: members of a Google Ads Customer Match user list, through the Google Ads API's
REST interface (OfflineUserDataJobService; no client library).

Each batch is one offline user data job on the list:
  1. `POST /{version}/customers/{customer_id}/offlineUserDataJobs:create` `{"job": {"type":
     "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {"userList": "customers/{cid}/userLists/{id}",
     "consent"?: {"adUserData", "adPersonalization"}}}}` (consent from `ad_user_data_consent` /
     `ad_personalization_consent`, for users in the EEA)
  2. `POST /{version}/{job}:addOperations` `{"enablePartialFailure": true, "operations": [{"create" | "remove":
     {"userIdentifiers": [{"hashedEmail": ...}, {"hashedPhoneNumber": ...}]}}]}`: one operation per record, at
     most 100,000 identifiers per request (Google's limit; a larger job is sent in several requests). Operations
     Google refuses come back in `partialFailureError.details[].errors[]`, located by
     `location.fieldPathElements[0].index`: those records are rejected with Google's message and error code.
  3. `POST /{version}/{job}:run`, then `GET /{version}/{operation name}` every `poll_interval` seconds until the
     long-running operation is `done` (an `error` there, or still running after `poll_timeout`, is retried as a
     new job: adding and removing are idempotent). Records are acknowledged only when the job has run.
Inserts and updates are `create` operations, deletes `remove` operations with the identifiers Google last
acknowledged.

Fields: `email` (trimmed, lowercased) and `phone` (E.164 with its `+`; `default_country_code` for national
numbers), hashed with SHA-256 here (`_identifiers`; a 64-hex value passes through as a hash). Map at least one;
any other field is a configuration error. A record whose identifier is invalid after normalisation, or that has
none, is rejected before anything is sent.

Headers: `Authorization: Bearer <OAuth access token>`, `developer-token`, and `login-customer-id` when the list
is reached through a manager account. The access token comes from `access_token`, or is obtained at the start
of the run from `refresh_token` + `client_id` + `client_secret` (`token_url`, default Google's). 401
UNAUTHENTICATED and 403 PERMISSION_DENIED stop the sync, as does a job Google will not create (400: a wrong
user list, customer data terms not accepted); 429 RESOURCE_EXHAUSTED (after `Retry-After` or the error's
`retryDelay`), 409 ABORTED (concurrent modification of the list) and 5xx are retried; a refused
`addOperations` request (400) rejects its records with Google's reason.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from sync_runner.core.fields import Choice, Number, Option, Text, Url

from . import _identifiers as ids
from ._api import ApiDestination, api_message
from .base import CALLING_CODE, POSITIVE, ROWS, Batch, BatchResult, Terminal, Transient

if TYPE_CHECKING:
    from sync_runner.core.http_client import Response

IDENTIFIERS_PER_REQUEST = 100_000
ROWS_PER_JOB = 100_000
VERSION = "v26"
TOKEN_URL = "https://oauth2.googleapis.com/token"
FIELDS = {"email": "hashedEmail", "phone": "hashedPhoneNumber"}


def _failure_errors(status: Any) -> list[dict]:
    """The GoogleAdsFailure errors of a google.rpc.Status (partialFailureError, or an error body's `error`)."""
    errors: list[dict] = []
    for detail in (status or {}).get("details") or []:
        if isinstance(detail, dict):
            errors.extend(e for e in detail.get("errors") or [] if isinstance(e, dict))
    return errors


def _reason(error: dict) -> str:
    code = error.get("errorCode") or {}
    enum = next(iter(code.values()), "") if isinstance(code, dict) and code else ""
    message = " ".join(str(error.get("message") or "refused by Google Ads").split())
    return f"{message} ({enum})" if enum else message


def google_message(response: Response) -> str:
    """Google's reasons for a refused request (the GoogleAdsFailure errors, with their codes), on one line."""
    try:
        errors = _failure_errors(response.json().get("error"))
    except (ValueError, AttributeError):
        errors = []
    return "; ".join(_reason(e) for e in errors[:3])[:300] if errors else api_message(response)


class GoogleAdsCustomerMatchDestination(ApiDestination):
    type = "google_ads_customer_match"
    modes = ("insert", "upsert", "mirror")
    on_delete = ("nothing", "delete")
    options = (
        Option("customer_id", Text(),
               "the Google Ads account that owns the user list (digits, dashes allowed)", required=True),
        Option("user_list_id", Text(), "the Customer Match user list id", required=True),
        Option("developer_token", Text(),
               "developer token (env_var), sent as the developer-token header", required=True, secret=True),
        Option("access_token", Text(),
               "OAuth 2 access token (env_var) with the adwords scope; or the three keys below", secret=True),
        Option("refresh_token", Text(),
               "OAuth 2 refresh token (env_var), exchanged for an access token at the start of the run", secret=True),
        Option("client_id", Text(), "OAuth 2 client id (with refresh_token)"),
        Option("client_secret", Text(), "OAuth 2 client secret (env_var, with refresh_token)", secret=True),
        Option("login_customer_id", Text(), "the manager account the credentials reach the customer through"),
        Option("ad_user_data_consent", Choice(("GRANTED", "DENIED")),
               "GRANTED or DENIED: the job's consent for ad user data (EEA users; optional)"),
        Option("ad_personalization_consent", Choice(("GRANTED", "DENIED")),
               "GRANTED or DENIED: the job's consent for ad personalization"),
        Option("api_version", Text(), "Google Ads API version", default=VERSION),
        Option("default_country_code", CALLING_CODE,
               "calling code put in front of phone numbers written without + or 00 (e.g. 1, 44)"),
        Option("base_url", Url(), "API root", default="https://googleads.googleapis.com"),
        Option("token_url", Url(), "OAuth token endpoint", default=TOKEN_URL),
        Option("batch_size", ROWS,
               "records per job (requests hold at most 100,000 identifiers)", default=100000, limit=100000),
        Option("poll_interval", POSITIVE, "seconds between checks of a running job", default=5),
        Option("poll_timeout", POSITIVE, "seconds to wait for a job before sending it again", default=1800),
        Option("concurrency", Number(integer=True, minimum=1), "jobs in flight", default=1),
        Option("rate_per_second", POSITIVE, "jobs started per second", default=1),
        Option("timeout", POSITIVE, "seconds per request", default=60),
    )

    def open(self) -> None:
        super().open()
        cfg = self.config
        self.timeout = float(self.setting("timeout"))
        for key in self.required:
            if not cfg.get(key):
                raise Terminal(f"{self.type} destination '{self.name}' needs '{key}'")
        self.customer = re.sub(r"[\s-]", "", str(cfg["customer_id"]))
        self.login = re.sub(r"[\s-]", "", str(cfg.get("login_customer_id") or "")) or None
        self.user_list = f"customers/{self.customer}/userLists/{str(cfg['user_list_id']).strip()}"
        self.version = str(self.setting("api_version")).strip("/")
        self.consent = {}
        for key, field in (("ad_user_data_consent", "adUserData"), ("ad_personalization_consent", "adPersonalization")):
            value = str(cfg.get(key) or "").strip().upper()
            if value and value not in ("GRANTED", "DENIED"):
                raise Terminal(f"{self.type} destination '{self.name}': {key} must be GRANTED or DENIED, not {value!r}")
            if value:
                self.consent[field] = value
        self.poll_interval = float(self.setting("poll_interval"))
        self.poll_timeout = float(self.setting("poll_timeout"))
        try:
            default = cfg.get("default_country_code")
            self.country = ids.country_code(default) if default not in (None, "") else None
        except ValueError as exc:
            raise Terminal(f"{self.type} destination '{self.name}': {exc}") from None
        if cfg.get("access_token"):
            self.token = str(cfg["access_token"])
        elif cfg.get("refresh_token") and cfg.get("client_id") and cfg.get("client_secret"):
            self.token = self._refresh()
        else:
            raise Terminal(f"{self.type} destination '{self.name}' needs 'access_token', or 'refresh_token' with "
                           "'client_id' and 'client_secret' (e.g. \"{{ env_var('GOOGLE_ADS_REFRESH_TOKEN') }}\")")

    def _refresh(self) -> str:
        from sync_runner.core.http_client import Dropped, post_form

        cfg = self.config
        url = str(self.setting("token_url"))
        form = {"grant_type": "refresh_token", "refresh_token": str(cfg["refresh_token"]),
                "client_id": str(cfg["client_id"]), "client_secret": str(cfg["client_secret"])}
        try:
            response = post_form(url, form, self.timeout)
        except Dropped as exc:
            raise Terminal(f"{self.type} destination '{self.name}': token endpoint unreachable ({exc.kind})") from None
        try:
            token = response.json().get("access_token") if response.ok else None
        except ValueError:
            token = None
        if not token:
            raise Terminal(f"{self.type} destination '{self.name}' could not refresh its OAuth token (HTTP "
                           f"{response.status_code}: {api_message(response, 200)})")
        return str(token)

    def limits(self) -> tuple[int, int | None, int, float | None]:
        rows, size, concurrency, rate = super().limits()
        return min(rows, ROWS_PER_JOB), size, concurrency, rate

    def auth(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "developer-token": str(self.config["developer_token"])}
        if self.login:
            headers["login-customer-id"] = self.login
        return headers

    def retry_after(self, response: Response) -> float | None:
        delay = super().retry_after(response)
        if delay is not None:
            return delay
        try:  # RESOURCE_EXHAUSTED names its delay in quotaErrorDetails.retryDelay, e.g. "30s"
            for error in _failure_errors(response.json().get("error")):
                text = str(((error.get("details") or {}).get("quotaErrorDetails") or {}).get("retryDelay") or "")
                if text.endswith("s") and text[:-1].replace(".", "", 1).isdigit():
                    return float(text[:-1])
        except (ValueError, AttributeError):
            pass
        return None

    def user_data(self, record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        identifiers = []
        for field in fields:
            value = record.get(field)
            if not ids.present(value):
                continue
            hashed = ids.hashed_email(value) if field == "email" else ids.hashed_phone(value, self.country)
            identifiers.append({FIELDS[field]: hashed})
        if not identifiers:
            raise ids.InvalidIdentifier(f"no {' or '.join(fields)}: Google Ads cannot match the person")
        return {"userIdentifiers": identifiers}

    def send(self, batch: Batch) -> BatchResult:
        if not batch.records:
            return BatchResult()
        fields = ids.mapped_identifiers(self, batch, FIELDS, "Customer Match")
        verb = "remove" if batch.op == "delete" else "create"
        rejected: dict[int, str] = {}
        operations: list[tuple[int, dict[str, Any]]] = []
        for i, record in enumerate(batch.records):
            try:
                operations.append((i, {verb: self.user_data(record, fields)}))
            except ids.InvalidIdentifier as exc:
                rejected[i] = str(exc)
        if operations:
            rejected.update(self._job(operations))
        return BatchResult(rejected)

    def _call(self, path: str, body: Any) -> Response:
        response = self.request("POST", f"/{self.version}/{path}", body)
        if response.status_code == 409:  # ABORTED: concurrent modification of the list, worth retrying
            raise Transient(f"{self.name}: HTTP 409 on {path}: {api_message(response, 120)}", 5.0)
        return response

    def _job(self, operations: list[tuple[int, dict[str, Any]]]) -> dict[int, str]:
        metadata: dict[str, Any] = {"userList": self.user_list}
        if self.consent:
            metadata["consent"] = self.consent
        response = self._call(f"customers/{self.customer}/offlineUserDataJobs:create",
                              {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata}})
        if response.status_code != 200:
            raise Terminal(f"{self.type} destination '{self.name}': Google Ads refused to create a job on "
                           f"{self.user_list} (HTTP {response.status_code}: {google_message(response)})")
        job = response.json()["resourceName"]
        rejected: dict[int, str] = {}
        for chunk in self._chunks(operations):
            rejected.update(self._add(job, chunk))
        if len(rejected) == len(operations):
            return rejected  # nothing left to run
        response = self._call(f"{job}:run", {})
        if response.status_code != 200:
            reason = f"HTTP {response.status_code}: {google_message(response)}"
            return {**{i: reason for i, _ in operations}, **rejected}
        self._wait(job, response.json()["name"])
        return rejected

    @staticmethod
    def _chunks(operations: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
        chunks: list[list[tuple[int, dict[str, Any]]]] = [[]]
        count = 0
        for item in operations:
            size = len(next(iter(item[1].values()))["userIdentifiers"])
            if chunks[-1] and count + size > IDENTIFIERS_PER_REQUEST:
                chunks.append([])
                count = 0
            chunks[-1].append(item)
            count += size
        return chunks

    def _add(self, job: str, chunk: list[tuple[int, dict[str, Any]]]) -> dict[int, str]:
        response = self._call(f"{job}:addOperations",
                              {"enablePartialFailure": True, "operations": [op for _, op in chunk]})
        if response.status_code != 200:
            reason = f"HTTP {response.status_code}: {google_message(response)}"
            return {i: reason for i, _ in chunk}
        failure = response.json().get("partialFailureError")
        if not failure:
            return {}
        rejected: dict[int, str] = {}
        unplaced: list[str] = []
        for error in _failure_errors(failure):
            elements = ((error.get("location") or {}).get("fieldPathElements") or [{}])
            index = elements[0].get("index") if elements[0].get("fieldName") == "operations" else None
            if isinstance(index, int) and 0 <= index < len(chunk):
                rejected.setdefault(chunk[index][0], _reason(error))
            else:
                unplaced.append(_reason(error))
        if unplaced or not rejected:  # failures Google did not tie to an operation: none of the chunk is acknowledged
            reason = unplaced[0] if unplaced else " ".join(str(failure.get("message") or "partial failure").split())
            rejected.update({i: reason for i, _ in chunk if i not in rejected})
        return rejected

    def _wait(self, job: str, operation: str) -> None:
        deadline = time.monotonic() + self.poll_timeout
        while True:
            response = self.request("GET", f"/{self.version}/{operation}")
            if response.status_code != 200:
                raise Transient(f"{self.name}: HTTP {response.status_code} polling job {job}: "
                                f"{google_message(response)}")
            answer = response.json()
            if answer.get("done"):
                if answer.get("error"):
                    raise Transient(f"{self.name}: job {job} failed ({answer['error'].get('message', 'no reason')})")
                return
            if time.monotonic() > deadline:
                raise Transient(f"{self.name}: job {job} still running after {self.poll_timeout:.0f} s")
            time.sleep(self.poll_interval)
