"""What the SaaS destinations (HubSpot, Braze, Segment, Klaviyo, Mailchimp) share: one keep-alive HTTP client
per worker thread, a `base_url` override, errors mapped the same way everywhere.

429, 408, 5xx, timeouts and dropped connections raise `Transient` (with the API's `Retry-After`, or a
rate-limit reset header, as the delay); 401 / 403 / 404 raise `Terminal` with the API's own one-line reason; any
other answer goes back to the destination, which turns a refused batch or per-record errors into rejections.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from sync_runner.sync.destinations import capture

from .base import Batch, BatchResult, Destination, Terminal, Transient
from .values import dumps

if TYPE_CHECKING:
    from sync_runner.core.http_client import Client, Response


def api_message(response: Response, limit: int = 300) -> str:
    """The API's own reason for a refused request, on one line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    text = ""
    if isinstance(body, dict):
        for key in ("message", "detail", "error", "title", "errors"):
            value = body.get(key)
            if isinstance(value, list) and value:
                value = value[0]
            if isinstance(value, dict):
                value = value.get("detail") or value.get("message") or value.get("title") or json.dumps(value)
            if value:
                text = str(value)
                break
    text = text or response.text or response.reason or ""
    return " ".join(text.split())[:limit]


class ApiDestination(Destination):
    """Base of the SaaS destinations: subclasses declare `base_url` (with its default) and implement `auth()` and
    `send()`."""

    secret_option: ClassVar[str] = ""  # the config key that holds the credential
    reset_header: ClassVar[str | None] = None  # a header with the epoch second the rate limit resets at

    def open(self) -> None:
        self._local = threading.local()
        if self.secret_option and not self.config.get(self.secret_option):
            raise Terminal(f"{self.type} destination '{self.name}' needs '{self.secret_option}' "
                           f"(e.g. \"{{{{ env_var('{self.secret_option.upper()}') }}}}\")")
        base = self.setting("base_url")
        if not base:
            raise Terminal(f"{self.type} destination '{self.name}' needs 'base_url' (the API endpoint of your account)")
        self.base_url = str(base).rstrip("/")
        self.timeout = float(self.setting("timeout"))

    def auth(self) -> dict[str, str]:
        """Headers that authenticate a request."""
        return {}

    def _client(self) -> Client:
        from sync_runner.core.http_client import Client

        client: Client | None = getattr(self._local, "client", None)
        if client is None:  # one keep-alive client per worker thread
            client = self._local.client = Client(on_response=capture.record)  # the record debugger's view
        return client

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                ok_statuses: Iterable[int] = ()) -> Response:
        """Send one request; raise Transient / Terminal as the answer says, return any other answer."""
        from sync_runner.core.http_client import Dropped

        all_headers = {"Content-Type": "application/json", "Accept": "application/json", **self.auth(),
                       **(headers or {})}
        data = body if isinstance(body, bytes) or body is None else dumps(body)  # bytes: already encoded
        try:
            response = self._client().request(method, self.base_url + path, data=data, headers=all_headers,
                                              timeout=self.timeout)
        except Dropped as exc:
            raise Transient(f"{self.name}: {exc.kind} on {method} {path}") from None
        status = response.status_code
        if status in ok_statuses:
            return response
        if 300 <= status < 400:  # one the client does not follow: it would send the records' request as a GET
            raise Terminal(f"{self.type} destination '{self.name}': {method} {self.base_url}{path} answered "
                           f"{status}, a redirect to {response.headers.get('Location')}")
        if status in (408, 429) or status >= 500:
            raise Transient(f"{self.name}: HTTP {status} on {method} {path}: {api_message(response, 120)}",
                            self.retry_after(response))
        if status in (401, 403):
            raise Terminal(f"{self.type} destination '{self.name}' refused the credentials (HTTP {status}: "
                           f"{api_message(response, 200)})")
        if status == 404:  # a wrong object type, list id or endpoint: retrying or rejecting rows cannot fix it
            raise Terminal(f"{self.type} destination '{self.name}': {method} {self.base_url}{path} answered 404 "
                           f"({api_message(response, 200)})")
        return response

    def retry_after(self, response: Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
        if self.reset_header and response.headers.get(self.reset_header):
            try:
                return max(0.0, min(60.0, float(response.headers[self.reset_header]) - time.time()))
            except ValueError:
                return None
        return None

    def require_field(self, batch: Batch, field: str, what: str) -> None:
        """A field the API needs must be mapped at all: its absence is a configuration error, not a rejection."""
        if batch.records and field not in batch.records[0]:
            raise Terminal(f"{self.type} destination '{self.name}': sync '{self.sync_name}' must map the field "
                           f"'{field}' ({what}); it maps {', '.join(batch.records[0]) or 'nothing'}")

    def identified(self, batch: Batch, field: str, why: str,
                   convert: Callable[[Any], str] = str) -> tuple[dict[int, str], dict[int, str]]:
        """Each record's identifier as the API takes it (`convert`), and the records without one, rejected: the
        field must be mapped at all (else Terminal), and a clear needs it mapped from the primary key, since a
        clear empties every other field."""
        self.require_field(batch, field, why)
        ids: dict[int, str] = {}
        rejected: dict[int, str] = {}
        for i, record in enumerate(batch.records):
            value = record.get(field)
            text = "" if value is None else convert(value)
            if text.strip():
                ids[i] = text
            elif batch.op == "clear":
                rejected[i] = f"on_delete clear needs {field} mapped from the primary key"
            else:
                rejected[i] = f"empty {field}: {why}"
        return ids, rejected


def refused(response: Response, count: int) -> dict[int, str]:
    """A whole batch refused (400, 413, 422...): every record rejected with the API's reason."""
    reason = f"HTTP {response.status_code}: {api_message(response)}"
    return dict.fromkeys(range(count), reason)


class CallListDestination(ApiDestination):
    """APIs whose request is a JSON list of calls, one per record (Segment, RudderStack, Customer.io).

    Each record is encoded once; a record without its identifier, or whose call is over `call_limit` bytes, is
    rejected before anything is sent; the others go out in requests of at most `request_limit` bytes. Subclasses
    set `identifier` in `open()` and implement `call()` (one record's call) and `post()` (one request).
    """

    label: ClassVar[str] = ""  # the API's name in reasons ("Segment")
    call_name: ClassVar[str] = "call"
    needs: ClassVar[str] = "a userId"  # what a record without its identifier lacks, in its rejection reason
    call_limit: ClassVar[int] = 32_000
    request_limit: ClassVar[int] = 500_000
    envelope: ClassVar[int] = len(b'{"batch":[]}')  # bytes of a request around its calls
    identifier: str = ""

    def call(self, batch: Batch, i: int) -> dict[str, Any]:
        raise NotImplementedError

    def post(self, chunk: list[tuple[int, bytes]]) -> dict[int, str]:
        """Send one request of (record index, encoded call); return the rejected record indexes with reasons."""
        raise NotImplementedError

    def send(self, batch: Batch) -> BatchResult:
        ids, rejected = self.identified(batch, self.identifier, f"{self.label} needs {self.needs}")
        calls: list[tuple[int, bytes]] = []
        for i in ids:
            encoded = dumps(self.call(batch, i))
            if len(encoded) > self.call_limit:
                rejected[i] = (f"{batch.op} {self.call_name} of {len(encoded)} bytes is over {self.label}'s "
                               f"{self.call_limit // 1000} KB limit per {self.call_name}")
                continue
            calls.append((i, encoded))
        chunk: list[tuple[int, bytes]] = []
        size = self.envelope
        for item in calls:
            if chunk and size + len(item[1]) + 1 > self.request_limit:
                rejected.update(self.post(chunk))
                chunk, size = [], self.envelope
            chunk.append(item)
            size += len(item[1]) + 1
        if chunk:
            rejected.update(self.post(chunk))
        return BatchResult(rejected)
