"""HTTP/1.1 for the destinations' and the alerts' requests, on the standard library's `http.client`.

Why not requests: it and urllib3 took 50 ms to import, a sixth of a 10k-row sync from process start, and each
request cost 0.65 ms of CPU against 0.20 ms here (a 150 KB POST to a local server, 300 of them): at 1M rows that
is 1,000 requests and half a second of the interpreter the senders share. What the destinations need is small,
and this module does that much the way requests does it:

- one keep-alive connection per origin in each `Client` (a sender thread has its own); a connection the server
  closed while it sat idle is noticed before it is used again, and replaced;
- one timeout for connecting and for each read;
- TLS verified against the CA bundle requests would use (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's, else
  the system's);
- the proxies of the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY; HTTPS through CONNECT), with
  credentials in a proxy's or the URL's user part sent as Basic authentication;
- redirects that keep the method and body (307, 308) followed, and every redirect of a GET; a 301, 302 or 303
  answer to a POST, PUT, PATCH or DELETE is returned as it is, and the destinations refuse it, where requests
  would send the records' request again as a GET without its body. A redirect to another host drops the
  `Authorization` header, as requests does.

Errors: `Dropped` when no answer came (its `kind` is the name requests gives the same failure: ConnectTimeout,
ReadTimeout, SSLError, ConnectionError), `Unsendable` for a request that cannot be made at all.
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import os
import select
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from sync_runner import __version__
from sync_runner.core.errors import Unsendable

MAX_REDIRECTS = 5
USER_AGENT = f"dbt-studio/{__version__}"


class Dropped(Exception):
    """No answer: the connection could not be made, broke, or timed out."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass(frozen=True)
class Sent:
    """A request as it was sent (what the record debugger shows)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None


@dataclass(frozen=True)
class Response:
    """An answer: its status, headers (case-insensitive) and body, and the request it answers."""

    status_code: int
    reason: str
    headers: http.client.HTTPMessage
    content: bytes
    url: str
    request: Sent

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        """The body as text, in the charset the answer names (UTF-8 when it names none)."""
        charset = self.headers.get_content_charset() or "utf-8"
        try:
            return self.content.decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return json.loads(self.content)


class Client:
    """Requests over kept-alive connections, one per origin. Not shared between threads: each sender has one."""

    def __init__(self, on_response: Callable[[Response], Any] | None = None) -> None:
        self.on_response = on_response
        self._connections: dict[tuple[str, str, int, str | None], http.client.HTTPConnection] = {}

    def request(self, method: str, url: str, data: bytes | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 30.0) -> Response:
        method = method.upper()
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._once(method, url, data, headers or {}, timeout)
            except Dropped as exc:  # said with the request it was (a secret in the URL is the caller's to redact)
                raise Dropped(exc.kind, f"{method} {url}: {exc.detail}") from exc.__cause__
            if self.on_response is not None:
                self.on_response(response)
            location = response.headers.get("Location")
            follow = response.status_code in (307, 308) or (
                response.status_code in (301, 302, 303) and method in ("GET", "HEAD"))
            if not (location and follow):
                return response
            target = urljoin(url, location)
            if _origin(target) != _origin(url):  # credentials are for the host they were written for
                headers = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
            url = target
        raise Dropped("TooManyRedirects", f"more than {MAX_REDIRECTS} redirects from {url}")

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _once(self, method: str, url: str, data: bytes | None, headers: Mapping[str, str],
              timeout: float) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise Unsendable(f"cannot send to '{url}': the URL needs http:// or https:// and a host")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:  # a port that is not a number
            raise Unsendable(f"cannot send to '{url}': {exc}") from None
        host = parts.hostname
        proxy = _proxy_for(scheme, host, port)
        given = {k.lower() for k in headers}  # (names are case-insensitive: a header given as `accept` replaces ours)
        sent = {**{k: v for k, v in (("User-Agent", USER_AGENT), ("Accept", "*/*")) if k.lower() not in given},
                **headers}
        if parts.username is not None and "authorization" not in given:
            sent["Authorization"] = _basic(unquote(parts.username), unquote(parts.password or ""))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if proxy is not None and scheme == "http":  # a plain-HTTP proxy is sent the whole URL
            target = f"http://{parts.netloc.rpartition('@')[2]}{target}"
            if proxy.username is not None:
                sent["Proxy-Authorization"] = _basic(unquote(proxy.username), unquote(proxy.password or ""))
        connection = self._connection(scheme, host, port, proxy, timeout)
        try:
            connection.request(method, target, body=data, headers=sent)
        except ValueError as exc:  # http.client refuses a header or a URL with a line break in it
            connection.close()
            raise Unsendable(f"cannot send to '{url}': {exc}") from None
        except TimeoutError as exc:
            connection.close()
            raise Dropped("ReadTimeout", f"the request was not taken within {timeout:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise Dropped("ConnectionError", f"{exc.__class__.__name__} {exc}".strip()) from exc
        try:
            answer = connection.getresponse()
            content = answer.read()
        except TimeoutError as exc:
            connection.close()
            raise Dropped("ReadTimeout", f"no answer within {timeout:g} s") from exc
        except ssl.SSLError as exc:
            connection.close()
            raise Dropped("SSLError", str(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise Dropped("ConnectionError", f"{exc.__class__.__name__} {exc}".strip()) from exc
        request = Sent(method, url, sent, data)
        return Response(answer.status, answer.reason, answer.headers, content, url, request)

    def _connection(self, scheme: str, host: str, port: int, proxy: Any, timeout: float
                    ) -> http.client.HTTPConnection:
        key = (scheme, host, port, proxy.geturl() if proxy is not None else None)
        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and _dropped(connection.sock):
            connection.close()  # the server closed it while it sat idle: the next request connects afresh
        if connection is None:
            connection = self._connections[key] = _new_connection(scheme, host, port, proxy, timeout)
        connection.timeout = timeout
        if connection.sock is None:
            try:
                connection.connect()
            except TimeoutError as exc:
                raise Dropped("ConnectTimeout", f"no connection within {timeout:g} s") from exc
            except ssl.SSLError as exc:
                connection.close()
                raise Dropped("SSLError", str(exc)) from exc
            except OSError as exc:
                connection.close()
                raise Dropped("ConnectionError", f"{exc.strerror or exc}") from exc
        sock = connection.sock
        if sock is not None:  # (a kept connection may have been made with another timeout)
            sock.settimeout(timeout)
        return connection


def post_form(url: str, form: Mapping[str, str], timeout: float) -> Response:
    """One form-encoded POST on a connection of its own: an OAuth token request."""
    from urllib.parse import urlencode

    client = Client()
    try:
        return client.request("POST", url, urlencode(form).encode("ascii"), timeout=timeout, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    finally:
        client.close()


def _new_connection(scheme: str, host: str, port: int, proxy: Any, timeout: float) -> http.client.HTTPConnection:
    if proxy is None:
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls())
        return http.client.HTTPConnection(host, port, timeout=timeout)
    proxy_port = proxy.port or (443 if proxy.scheme == "https" else 80)
    if scheme == "http":
        return http.client.HTTPConnection(proxy.hostname, proxy_port, timeout=timeout)
    connection = http.client.HTTPSConnection(proxy.hostname, proxy_port, timeout=timeout, context=_tls())
    tunnel = {}
    if proxy.username is not None:
        tunnel["Proxy-Authorization"] = _basic(unquote(proxy.username), unquote(proxy.password or ""))
    connection.set_tunnel(host, port, headers=tunnel)
    return connection


def _dropped(sock: socket.socket) -> bool:
    """Whether a kept-alive connection can no longer be used: readable while no request is out means the server
    closed it (or sent what no request asked for)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    try:
        return parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:  # a port that is not a number: the request itself will say so
        return parts.scheme.lower(), parts.hostname, None


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _proxy_for(scheme: str, host: str, port: int) -> Any:
    """The environment's proxy for a URL (urlsplit of it), or None: none set, or NO_PROXY names the host. Read as
    urllib reads them (a lower-case name over its upper-case one; NO_PROXY of '*', or of hosts and domains, with
    or without a port), without importing urllib.request (10 ms). The proxy itself is spoken to in plain HTTP
    (an HTTPS destination's requests go through it in a CONNECT tunnel): a proxy URL of another scheme is refused
    rather than tried."""
    url = _env(f"{scheme}_proxy") or _env("all_proxy")
    if not url or _bypassed(host, port, _env("no_proxy")):
        return None
    proxy = urlsplit(url if "://" in url else f"http://{url}")
    if proxy.scheme.lower() != "http" or not proxy.hostname:
        raise Unsendable(f"the proxy set for {scheme}:// in the environment ({scheme.upper()}_PROXY or ALL_PROXY) "
                         f"is a {proxy.scheme}:// URL: give it as http://host:port")
    return proxy


def _env(name: str) -> str:
    return os.environ.get(name) or os.environ.get(name.upper()) or ""


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        if not entry:
            continue
        name, _, only_port = entry.lstrip(".").partition(":")
        if only_port and only_port != str(port):
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


@functools.cache
def _tls() -> ssl.SSLContext:
    """Certificates verified against the bundle requests would use, made once per process (loading a bundle of
    150 certificates takes milliseconds)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        try:
            import certifi
        except ImportError:
            bundle = None
        else:
            bundle = certifi.where()
    return ssl.create_default_context(cafile=bundle)
