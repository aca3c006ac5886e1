"""`customerio`: people in a Customer.io (Journeys) workspace through the Track API v2 batch endpoint.

Every operation goes to `POST /api/v2/batch` as `{"batch": [<entity operation>, ...]}`: an insert, update or clear
is `{"type": "person", "identifiers": {"id": ...}, "action": "identify", "attributes": {...}}`, a delete is the
same without attributes and with `"action": "delete"`. Customer.io takes at most 500 KB per request and 32 KB per
operation: an operation over 32 KB is rejected with its size before anything is sent, and a batch is split into
requests under 500 KB. An empty value is sent as "" (Customer.io removes an attribute whose value is empty), so a
clear removes every mapped attribute.

Customer.io answers 200 when every operation was accepted and 207 with `{"errors": [{"batch_index", "reason",
"field", "message"}]}` for the operations it refused (an attribute value over 1,000 bytes, more than 300
attributes...): those are rejected with its message, the others are acknowledged. A 400 (bad JSON) or 413 (a
request too large) rejects the whole request. 401 / 403 stop the sync.

Options, required fields, modes and caveats, for users: docs/destinations.md.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sync_runner.core.fields import Choice, Number, Option, Text, Url

from ._api import CallListDestination, api_message
from .base import POSITIVE, ROWS, Batch, Terminal

if TYPE_CHECKING:
    from sync_runner.core.http_client import Response

IDENTIFIERS = ("id", "email")


def cio_message(response: Response) -> str:
    """Customer.io's reason: `{"meta": {"error": ...}}` on the Track API, else what the shared helper finds."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("meta"), dict) and body["meta"].get("error"):
        return " ".join(str(body["meta"]["error"]).split())[:300]
    return api_message(response)


class CustomerIoDestination(CallListDestination):
    type = "customerio"
    label = "Customer.io"
    call_name = "operation"
    needs = "it to identify a person"
    request_limit = 500_000
    options = (
        Option("site_id", Text(), "Track API site id (env_var), the basic-auth user name", required=True, secret=True),
        Option("api_key", Text(), "Track API key (env_var), the basic-auth password", required=True, secret=True),
        Option("identifier", Choice(("id", "email")), "the mapped field that identifies a person", default="id"),
        Option("base_url", Url(), "Track API root (EU: https://track-eu.customer.io)", default="https://track.customer.io"),
        Option("batch_size", ROWS, "operations per batch (requests are also kept under 500 KB)", default=1000),
        Option("concurrency", Number(integer=True, minimum=1), "requests in flight", default=4),
        Option("rate_per_second", POSITIVE,
               "request rate (Customer.io's fair use is 100 requests/s per workspace)", default=50),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )
    max_bytes = 400_000  # of mapped fields per batch: the operations' envelopes fit in the 500 KB per request
    secret_option = "api_key"

    def open(self) -> None:
        if not self.config.get("site_id"):
            raise Terminal(f"customerio destination '{self.name}' needs 'site_id' "
                           "(e.g. \"{{ env_var('CUSTOMERIO_SITE_ID') }}\")")
        super().open()
        self.identifier = str(self.setting("identifier"))
        if self.identifier not in IDENTIFIERS:
            raise Terminal(f"customerio destination '{self.name}': identifier must be id or email, "
                           f"not {self.identifier!r}")

    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.config['site_id']}:{self.config['api_key']}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                ok_statuses: Iterable[int] = ()) -> Response:
        # 401 / 403 are terminal as everywhere, with Customer.io's reason read from its `meta.error`
        response = super().request(method, path, body, headers, ok_statuses=(*ok_statuses, 401, 403))
        if response.status_code in (401, 403):
            raise Terminal(f"customerio destination '{self.name}' refused the credentials "
                           f"(HTTP {response.status_code}: {cio_message(response)})")
        return response

    def call(self, batch: Batch, i: int) -> dict[str, Any]:
        record = batch.records[i]
        operation: dict[str, Any] = {"type": "person", "identifiers": {self.identifier: str(record[self.identifier])}}
        if batch.op == "delete":
            operation["action"] = "delete"
            return operation
        operation["action"] = "identify"
        operation["attributes"] = {k: ("" if v is None else v) for k, v in record.items() if k != self.identifier}
        return operation

    def post(self, chunk: list[tuple[int, bytes]]) -> dict[int, str]:
        body = b'{"batch":[' + b",".join(encoded for _, encoded in chunk) + b"]}"
        response = self.request("POST", "/api/v2/batch", body)
        status = response.status_code
        if status not in (200, 207):
            reason = f"HTTP {status}: {cio_message(response)}"
            return {i: reason for i, _ in chunk}
        try:
            errors = (response.json() or {}).get("errors") or []
        except ValueError:
            errors = []
        rejected: dict[int, str] = {}
        unplaced = []
        for error in errors:
            if not isinstance(error, dict):
                unplaced.append(str(error))
                continue
            reason = str(error.get("message") or error.get("reason") or "refused by Customer.io")
            if error.get("field") and str(error["field"]) not in reason:
                reason = f"{error['field']}: {reason}"
            index = error.get("batch_index")
            if isinstance(index, int) and 0 <= index < len(chunk):
                rejected[chunk[index][0]] = reason
            else:
                unplaced.append(reason)
        if unplaced:  # an error Customer.io did not tie to an operation: none of the rest is acknowledged
            rejected.update({i: unplaced[0] for i, _ in chunk if i not in rejected})
        return rejected
