"""The record debugger's view of the wire: the HTTP requests a destination makes while one batch is sent.

Destinations that talk HTTP install `record` as the response hook of their clients (core/http_client.py); the
delivery thread sending a batch with the debugger on opens `capturing()` around `send`, and gets each request and
its response as text.
Credentials never reach the capture: headers that carry them are replaced with `***` here, and the caller
redacts every secret value (REDACT) before anything is stored.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_TEXT = 16_384  # characters kept of each request and response body
_SECRET_HEADER = re.compile(r"auth|key|token|secret|signature|cookie|password", re.I)
_local = threading.local()


@contextmanager
def capturing() -> Iterator[list[dict[str, str]]]:
    """Collect this thread's HTTP exchanges while the block runs."""
    exchanges: list[dict[str, str]] = []
    _local.exchanges = exchanges
    try:
        yield exchanges
    finally:
        _local.exchanges = None


def capped(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters cut]"


def _headers(headers: Any) -> str:
    return "\n".join(f"{k}: {'***' if _SECRET_HEADER.search(k) else v}" for k, v in dict(headers).items())


def record(response: Any, *args: Any, **kwargs: Any) -> Any:
    """A response hook (`Client(on_response=record)`): keeps the exchange when the current thread is capturing."""
    exchanges = getattr(_local, "exchanges", None)
    if exchanges is not None:
        request = response.request
        body = request.body or b""
        body_text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        exchanges.append({
            "request": capped(f"{request.method} {request.url}\n{_headers(request.headers)}\n\n{body_text}"),
            "response": capped(f"HTTP {response.status_code}\n{_headers(response.headers)}\n\n{response.text}"),
        })
    return response
