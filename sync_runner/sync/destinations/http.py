"""`http`: a generic webhook — JSON per batch or per row, rendered by a Jinja2 body template.

Per-record results can be read from the response body (`results_path`), so an API that answers 200 with some
records refused is handled like the leaders' APIs: those records are rejected with the API's reason, the
rest are acknowledged.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sync_runner.core.fields import Choice, MapOf, Number, Option, Text, Url
from sync_runner.sync.destinations import capture

from .base import POSITIVE, ROWS, Batch, BatchResult, Destination, Terminal, Transient
from .values import dumps, dumps_records

if TYPE_CHECKING:
    from sync_runner.core.http_client import Client, Response

METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")


class _Renders(Protocol):
    def render(self, **context: Any) -> str: ...


class _Plain:
    """A URL or body without Jinja syntax: what Jinja would render it to (its newlines as \\n, one trailing newline
    dropped), whatever the context, without importing or running Jinja per request."""

    def __init__(self, text: str) -> None:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.text = text[:-1] if text.endswith("\n") else text

    def render(self, **_context: Any) -> str:
        return self.text


class _DefaultBody:
    """The default batch body, {"op": ..., "records": [...]}, written without Jinja or a round trip through a str."""

    @staticmethod
    def encode(op: str, records: Sequence[dict[str, Any]]) -> bytes:
        return b'{"op":"%s","records":%s}' % (op.encode(), dumps_records(records))

    def render(self, **context: Any) -> str:
        return self.encode(context["op"], context["records"]).decode("utf-8")


@functools.cache
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
    env.filters["tojson"] = lambda value: dumps(value).decode("utf-8")
    return env


def _template(text: str, destination: str) -> _Renders:
    if not any(mark in text for mark in ("{{", "{%", "{#")):
        return _Plain(text)
    import jinja2

    try:
        template: _Renders = _env().from_string(text)
        return template
    except jinja2.TemplateError as exc:
        raise Terminal(f"destination '{destination}': bad template: {exc}") from None


def retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def dig(document: Any, path: str) -> Any:
    """`a.b.0.c` into nested JSON; None when absent."""
    for part in path.split(".") if path else []:
        if isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        elif isinstance(document, dict):
            document = document.get(part)
        else:
            return None
    return document


def classify(response: Response, destination: str) -> None:
    """Raise Transient / Terminal for responses that are not a success."""
    status = response.status_code
    if status == 429 or status >= 500 or status == 408:
        raise Transient(f"{destination}: HTTP {status}", retry_after(response))
    if status in (401, 403):
        raise Terminal(f"destination '{destination}' refused the credentials (HTTP {status})")
    if 300 <= status < 400:  # one the client does not follow: it would send the records' request as a GET
        raise Terminal(f"destination '{destination}': {response.request.method} {response.url} answered {status}, "
                       f"a redirect to {response.headers.get('Location')}: set url to the address it points to")
    if status == 404 and response.request.method != "DELETE":
        raise Terminal(f"destination '{destination}': {response.request.method} {response.url} answered 404")


class HttpDestination(Destination):
    type = "http"
    options = (
        Option("url", Url(), "the endpoint; a Jinja2 template that gets op and, in row mode, key and record "
               "(e.g. https://api.example.com/contacts/{{ key }})", required=True),
        Option("base_url", Url(), "replaces the scheme, host and port of url (tests, regions, proxies)"),
        Option("method", Choice(METHODS), "the HTTP method", default="POST"),
        Option("delete_method", Choice(METHODS), "the HTTP method of deletes (default: method)"),
        Option("headers", MapOf(Text(), "a mapping {header: value}"),
               "headers (Content-Type: application/json is added); secrets through env_var"),
        Option("format", Choice(("batch", "row")),
               "batch: one request per batch; row: one request per record", default="batch"),
        Option("body_template", Text(), "a Jinja2 template of the body: it gets op, records, keys (batch) or op, "
               "record, key (row); the tojson filter writes JSON (default: {\"op\": ..., \"records\": [...]})"),
        Option("results_path", Text(), "dotted path (a.b.0.c) to a per-record results list in a 2xx response: an "
               "entry whose error_field is set rejects that record (by its index field if present, else by "
               "position) with that reason; the rest are acknowledged"),
        Option("error_field", Text(), "field of a per-record result that holds its error", default="error"),
        Option("batch_size", ROWS, "records per request", default=1000),
        Option("concurrency", Number(integer=True, minimum=1), "requests in flight", default=4),
        Option("rate_per_second", POSITIVE, "request rate limit"),
        Option("timeout", POSITIVE, "seconds per request", default=30),
    )

    def open(self) -> None:
        self._local = threading.local()
        self.method = str(self.setting("method")).upper()
        self.delete_method = str(self.config.get("delete_method") or self.method).upper()
        self.row_mode = self.setting("format") == "row"
        if self.setting("format") not in ("batch", "row"):
            raise Terminal(f"destination '{self.name}': format must be batch or row")
        url = str(self.config["url"])
        if self.config.get("base_url"):
            from urllib.parse import urlsplit, urlunsplit

            base, parts = urlsplit(str(self.config["base_url"])), urlsplit(url)
            url = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))
        self.url = _template(url, self.name)
        self.templated = "body_template" in self.config
        default = "{{ record | tojson }}" if self.row_mode else None
        body = self.config.get("body_template", default)
        self.body: _Renders = _DefaultBody() if body is None else _template(str(body), self.name)
        self.headers = {"Content-Type": "application/json", **{str(k): str(v) for k, v in
                                                                (self.config.get("headers") or {}).items()}}
        self.timeout = float(self.setting("timeout"))

    def sends_json_records(self) -> bool:
        return not self.row_mode and not self.templated  # the default body: {"op": ..., "records": [...]}

    def _client(self) -> Client:
        from sync_runner.core.http_client import Client

        client: Client | None = getattr(self._local, "client", None)
        if client is None:  # one keep-alive client per worker thread
            client = self._local.client = Client(on_response=capture.record)  # the record debugger's view
        return client

    def _request(self, op: str, body: str | bytes, **context: Any) -> Response:
        from sync_runner.core.http_client import Dropped

        method = self.delete_method if op == "delete" else self.method
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        try:
            response = self._client().request(method, self.url.render(op=op, **context), data=data,
                                              headers=self.headers, timeout=self.timeout)
        except Dropped as exc:
            raise Transient(f"{self.name}: {exc.kind}") from None
        classify(response, self.name)
        return response

    def _rejections(self, response: Response, count: int) -> dict[int, str]:
        if 400 <= response.status_code < 500:
            reason = f"HTTP {response.status_code}: {response.text[:300]}"
            return dict.fromkeys(range(count), reason)
        path = self.config.get("results_path")
        if not path:
            return {}
        try:
            results = dig(response.json(), str(path))
        except ValueError:
            return {}
        field = str(self.setting("error_field"))
        rejected = {}
        for i, item in enumerate(results or []):
            error = item.get(field) if isinstance(item, dict) else None
            if error and i < count:
                index = item.get("index", i) if isinstance(item, dict) else i
                rejected[int(index)] = error if isinstance(error, str) else json.dumps(error, default=str)
        return rejected

    def send(self, batch: Batch) -> BatchResult:
        if not self.row_mode:
            if self.templated:
                body: str | bytes = self.body.render(op=batch.op, records=batch.records, keys=batch.keys)
            else:
                body = _DefaultBody.encode(batch.op, batch.records)
            response = self._request(batch.op, body)
            return BatchResult(self._rejections(response, len(batch.seqs)))
        rejected = {}
        for i, (record, key) in enumerate(zip(batch.records, batch.keys, strict=True)):
            response = self._request(batch.op, self.body.render(op=batch.op, record=record, key=key),
                                     record=record, key=key)
            if self._rejections(response, 1):
                rejected[i] = self._rejections(response, 1)[0]
        return BatchResult(rejected)
