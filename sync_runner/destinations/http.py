"""`http`: a generic webhook — JSON per batch or per row, rendered by a Jinja2 body template.

Per-record results can be read from the response body (`results_path`), so an API that answers 200 with some
records refused is handled like the leaders' APIs: those records are rejected with the API's reason, the
rest are acknowledged.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import jinja2
import requests

from .base import Batch, BatchResult, Destination, Terminal, Transient
from .values import dumps

_ENV = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
_ENV.filters["tojson"] = lambda value: dumps(value).decode("utf-8")


def retry_after(response: requests.Response) -> float | None:
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


def classify(response: requests.Response, destination: str) -> None:
    """Raise Transient / Terminal for responses that are not a success."""
    status = response.status_code
    if status == 429 or status >= 500 or status == 408:
        raise Transient(f"{destination}: HTTP {status}", retry_after(response))
    if status in (401, 403):
        raise Terminal(f"destination '{destination}' refused the credentials (HTTP {status})")
    if status == 404 and response.request is not None and response.request.method != "DELETE":
        raise Terminal(f"destination '{destination}': {response.request.method} {response.url} answered 404")


class HttpDestination(Destination):
    type = "http"
    options = {
        "url": "endpoint (a Jinja2 template with op and, in row mode, key and record)",
        "base_url": "replaces the scheme, host and port of url (tests, regions, proxies)",
        "method": "HTTP method (default POST); delete_method for deletes (default: method)",
        "headers": "dict of headers (use env_var for secrets)",
        "format": "batch (default: one request per batch) | row (one request per record)",
        "body_template": "Jinja2 template of the body; gets op, records, keys (batch) or record, key (row)",
        "results_path": "dotted path to a per-record results list in the response",
        "error_field": "field of a per-record result that holds its error (default: error)",
        "batch_size": "records per request (default 1000)",
        "concurrency": "requests in flight (default 4)",
        "rate_per_second": "request rate limit",
        "timeout": "seconds per request (default 30)",
    }
    required = ("url",)
    max_rows = 1000

    def open(self) -> None:
        self._local = threading.local()
        self.method = str(self.config.get("method", "POST")).upper()
        self.delete_method = str(self.config.get("delete_method", self.method)).upper()
        self.row_mode = self.config.get("format", "batch") == "row"
        if self.config.get("format", "batch") not in ("batch", "row"):
            raise Terminal(f"destination '{self.name}': format must be batch or row")
        url = str(self.config["url"])
        if self.config.get("base_url"):
            from urllib.parse import urlsplit, urlunsplit

            base, parts = urlsplit(str(self.config["base_url"])), urlsplit(url)
            url = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))
        try:
            self.url = _ENV.from_string(url)
            default = ("{{ record | tojson }}" if self.row_mode
                       else '{"op": "{{ op }}", "records": {{ records | tojson }}}')
            self.templated = "body_template" in self.config
            self.body = _ENV.from_string(str(self.config.get("body_template", default)))
        except jinja2.TemplateError as exc:
            raise Terminal(f"destination '{self.name}': bad template: {exc}") from None
        self.headers = {"Content-Type": "application/json", **{str(k): str(v) for k, v in
                                                                (self.config.get("headers") or {}).items()}}
        self.timeout = float(self.config.get("timeout", 30))

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:  # one keep-alive session per worker thread, not one client per batch
            session = self._local.session = requests.Session()
        return session

    def _request(self, op: str, body: str | bytes, **context: Any) -> requests.Response:
        method = self.delete_method if op == "delete" else self.method
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        try:
            response = self._session().request(method, self.url.render(op=op, **context), data=data,
                                               headers=self.headers, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise Transient(f"{self.name}: {exc.__class__.__name__}") from None
        classify(response, self.name)
        return response

    def _rejections(self, response: requests.Response, count: int) -> dict[int, str]:
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
        field = str(self.config.get("error_field", "error"))
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
            else:  # the default body, without a round trip of the records' JSON through a str
                body = b'{"op":"%s","records":%s}' % (batch.op.encode(), dumps(batch.records))
            response = self._request(batch.op, body)
            return BatchResult(self._rejections(response, len(batch.records)))
        rejected = {}
        for i, (record, key) in enumerate(zip(batch.records, batch.keys, strict=True)):
            response = self._request(batch.op, self.body.render(op=batch.op, record=record, key=key),
                                     record=record, key=key)
            if self._rejections(response, 1):
                rejected[i] = self._rejections(response, 1)[0]
        return BatchResult(rejected)
