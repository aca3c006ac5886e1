"""HTTP/1.1 for the destinations' and the alerts' requests, spoken on a socket of the standard library's.

Why not requests: it and urllib3 took 50 ms to import, a sixth of a 10k-row sync from process start, and each
request cost 0.65 ms of CPU against 0.20 ms with `http.client`. Why not `http.client` either: it imports the
`email` package to parse headers and `ssl` whatever the scheme (6-10 ms of every sync process), and parses each
answer's headers with email's feed parser. What the destinations need is small, and this module does that much
the way requests does it:

- one keep-alive connection per origin in each `Client` (a sender thread has its own); a connection the server
  closed while it sat idle is noticed before it is used again, and replaced;
- one timeout for connecting and for each read;
- answers read as RFC 9112 says: a Content-Length, chunked, or until the server closes; none for HEAD, 204 and
  304; interim 1xx answers skipped; a line over 64 KiB or over 100 headers is a broken answer;
- TLS (`ssl` imported for https:// only) verified against the CA bundle requests would use
  (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's, else the system's);
- the proxies of the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY; HTTPS through CONNECT), with
  credentials in a proxy's or the URL's user part sent as Basic authentication;
- redirects that keep the method and body (307, 308) followed, and every redirect of a GET; a 301, 302 or 303
  answer to a POST, PUT, PATCH or DELETE is returned as it is, and the destinations refuse it, where requests
  would send the records' request again as a GET without its body. A redirect to another host drops the
  `Authorization` header, as requests does.

Errors: `Dropped` when no answer came (its `kind` is the name requests gives the same failure: ConnectTimeout,
ReadTimeout, SSLError, ConnectionError), `Unsendable` for a request that cannot be made at all (a header or a
URL with a line break or a character HTTP cannot carry).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import select
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

from sync_runner import __version__
from sync_runner.core.errors import Unsendable

if TYPE_CHECKING:
    import ssl

MAX_REDIRECTS = 5
USER_AGENT = f"dbt-studio/{__version__}"
_MAX_LINE = 65536  # an answer's status line or header line, at most (http.client's bound)
_MAX_HEADERS = 100
_BODY_EXPECTED = ("POST", "PUT", "PATCH")  # sent a Content-Length of 0 when they have no body


class Dropped(Exception):
    """No answer: the connection could not be made, broke, or timed out."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


class Broken(OSError):
    """An answer that is not HTTP/1.1, or that ended before it said it would."""


class Headers(Mapping[str, str]):
    """An answer's headers, looked up in any case; a name sent more than once reads as its first value."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._first: dict[str, tuple[str, str]] = {}  # lower-case name -> (name as sent, first value)
        for name, value in pairs:
            self._first.setdefault(name.lower(), (name, value))

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._first.values())

    def __len__(self) -> int:
        return len(self._first)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def get_all(self, name: str) -> list[str]:
        """Every value of a name sent more than once, in order."""
        return [v for n, v in self._pairs if n.lower() == name.lower()]

    def get_content_charset(self) -> str | None:
        """The `charset` of the Content-Type, lower-cased, or None."""
        for parameter in (self.get("Content-Type") or "").split(";")[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset":
                return value.strip().strip('"').lower() or None
        return None


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
    headers: Headers
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
        self._connections: dict[tuple[str, str, int, str | None], _Connection] = {}

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
        try:
            head = _request_head(method, target, _authority(host, port, scheme), sent, data)
        except ValueError as exc:  # a line break in a header, a character HTTP cannot carry
            raise Unsendable(f"cannot send to '{url}': {exc}") from None
        connection = self._connection(scheme, host, port, proxy, timeout)
        sock = connection.sock
        assert sock is not None  # (connected by _connection)
        try:
            sock.sendall(head + data if data else head)
        except TimeoutError as exc:
            connection.close()
            raise Dropped("ReadTimeout", f"the request was not taken within {timeout:g} s") from exc
        except OSError as exc:
            connection.close()
            raise Dropped("ConnectionError", _said(exc)) from exc
        try:
            status, reason, answer_headers, content, keep = _read_answer(sock, method)
        except TimeoutError as exc:
            connection.close()
            raise Dropped("ReadTimeout", f"no answer within {timeout:g} s") from exc
        except OSError as exc:
            connection.close()
            if _tls_error(exc):
                raise Dropped("SSLError", str(exc)) from exc
            raise Dropped("ConnectionError", _said(exc)) from exc
        if not keep:
            connection.close()
        return Response(status, reason, answer_headers, content, url, Sent(method, url, sent, data))

    def _connection(self, scheme: str, host: str, port: int, proxy: Any, timeout: float) -> _Connection:
        key = (scheme, host, port, proxy.geturl() if proxy is not None else None)
        connection = self._connections.get(key)
        if connection is None:
            connection = self._connections[key] = _Connection(scheme, host, port, proxy)
        elif connection.sock is not None and _dropped(connection.sock):
            connection.close()  # the server closed it while it sat idle: the next request connects afresh
        if connection.sock is None:
            try:
                connection.open(timeout)
            except TimeoutError as exc:
                raise Dropped("ConnectTimeout", f"no connection within {timeout:g} s") from exc
            except OSError as exc:
                if _tls_error(exc):
                    raise Dropped("SSLError", str(exc)) from exc
                raise Dropped("ConnectionError", f"{exc.strerror or exc}") from exc
        else:  # (a kept connection may have been made with another timeout)
            connection.sock.settimeout(timeout)
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


class _Connection:
    """One socket to one origin, or to the proxy that reaches it (an https:// origin through a CONNECT tunnel)."""

    def __init__(self, scheme: str, host: str, port: int, proxy: Any) -> None:
        self.scheme, self.host, self.port, self.proxy = scheme, host, port, proxy
        self.sock: socket.socket | None = None

    def open(self, timeout: float) -> None:
        if self.proxy is not None:
            address = (_ascii_host(self.proxy.hostname), self.proxy.port or 80)
        else:
            address = (_ascii_host(self.host), self.port)
        sock = socket.create_connection(address, timeout)  # type: ignore[arg-type]  # (bytes: no IDNA codec)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request leaves whole, now
            if self.scheme == "https":
                if self.proxy is not None:
                    self._tunnel(sock)
                sock = _tls().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def _tunnel(self, sock: socket.socket) -> None:
        authority = _authority(self.host, self.port, "")
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if self.proxy.username is not None:
            lines.append("Proxy-Authorization: " + _basic(unquote(self.proxy.username),
                                                          unquote(self.proxy.password or "")))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        with sock.makefile("rb") as reader:
            status, reason, _, _ = _read_head(reader)
        if status != 200:
            raise OSError(f"Tunnel connection failed: {status} {reason}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _ascii_host(host: str) -> str | bytes:
    """A host name as getaddrinfo takes it: ASCII as bytes (a str is encoded with the IDNA codec, whose import
    takes 1.5 ms), others as they are."""
    return host.encode("ascii") if host.isascii() else host


def _authority(host: str, port: int, scheme: str) -> str:
    """`host[:port]` as the Host header and CONNECT write it: the port only when it is not the scheme's own."""
    name = host if host.isascii() else host.encode("idna").decode("ascii")
    name = f"[{name}]" if ":" in name else name
    return name if port == {"http": 80, "https": 443}.get(scheme) else f"{name}:{port}"


def _request_head(method: str, target: str, authority: str, headers: Mapping[str, str], body: bytes | None
                  ) -> bytes:
    """The request line and headers, with Host, and Content-Length for a body (or for a POST, PUT or PATCH without
    one); ValueError for what cannot be written in them."""
    if any(c <= " " or c == "\x7f" for c in target) or not target.isascii():
        raise ValueError("the URL's path or query holds a space, a control character or a non-ASCII character")
    given = {k.lower() for k in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {authority}")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity")  # (bodies are read as they come: never compressed)
    for name, value in headers.items():
        value = str(value)
        if not name or any(c <= " " or c in ":\x7f" for c in name) or "\r" in value or "\n" in value:
            raise ValueError(f"the header {name!r} holds a line break or a character a header name cannot have")
        if not f"{name}{value}".isascii():
            try:
                f"{name}{value}".encode("latin-1")
            except UnicodeEncodeError:  # (the header is named, never its value: it may be a secret)
                raise ValueError(f"the header {name!r} holds a character outside Latin-1") from None
        lines.append(f"{name}: {value}")
    if "content-length" not in given and "transfer-encoding" not in given:
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method in _BODY_EXPECTED:
            lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_answer(sock: socket.socket, method: str) -> tuple[int, str, Headers, bytes, bool]:
    """Status, reason, headers, body, and whether the connection may carry another request."""
    with sock.makefile("rb") as reader:
        while True:
            status, reason, version, headers = _read_head(reader)
            if not 100 <= status < 200 or status == 101:
                break  # (interim answers, e.g. 100 Continue, come before the real one)
        tokens = {t.strip().lower() for t in ",".join(headers.get_all("Connection")).split(",")}
        keep = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
        coding = [t.strip().lower() for t in ",".join(headers.get_all("Transfer-Encoding")).split(",") if t.strip()]
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif coding and coding[-1] == "chunked":
            body = _read_chunked(reader)
        elif "Content-Length" in headers:
            try:
                length = int(headers["Content-Length"])
            except ValueError:
                raise Broken(f"a Content-Length of {headers['Content-Length']!r}") from None
            body = _read_exactly(reader, length)
        else:  # the body ends with the connection
            body = reader.read()
            keep = False
    return status, reason, headers, body, keep


def _read_head(reader: IO[bytes]) -> tuple[int, str, str, Headers]:
    line = reader.readline(_MAX_LINE + 1)
    if not line:
        raise Broken("the server closed the connection without an answer")
    if len(line) > _MAX_LINE:
        raise Broken("a status line over 64 KiB")
    version, _, rest = line.decode("latin-1").strip().partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
        raise Broken(f"not an HTTP answer: {line[:80]!r}")
    pairs: list[tuple[str, str]] = []
    while True:
        line = reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise Broken("a header line over 64 KiB")
        if line in (b"\r\n", b"\n", b""):
            break
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and pairs:  # a folded line continues the header before it
            pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if colon:
            pairs.append((name.strip(), value.strip()))
        if len(pairs) > _MAX_HEADERS:
            raise Broken(f"more than {_MAX_HEADERS} headers")
    return int(code), reason.strip(), version, Headers(pairs)


def _read_exactly(reader: IO[bytes], length: int) -> bytes:
    data = reader.read(length)
    if len(data) < length:
        raise Broken(f"the answer ended after {len(data)} of its {length} bytes")
    return data


def _read_chunked(reader: IO[bytes]) -> bytes:
    chunks = []
    while True:
        line = reader.readline(_MAX_LINE + 1)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise Broken(f"a chunk size of {line[:20]!r}") from None
        if size == 0:
            break
        chunks.append(_read_exactly(reader, size))
        reader.readline(_MAX_LINE + 1)  # the chunk's line end
    while reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):  # trailers
        pass
    return b"".join(chunks)


def _said(exc: OSError) -> str:
    """What went wrong, in a few words: a broken answer as it is said, else the error's name and text
    (`ConnectionResetError [Errno 104] Connection reset by peer`)."""
    return str(exc) if isinstance(exc, Broken) else f"{exc.__class__.__name__} {exc}".strip()


def _tls_error(exc: BaseException) -> bool:
    ssl = sys.modules.get("ssl")  # (not imported unless some request was https://)
    return ssl is not None and isinstance(exc, ssl.SSLError)


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
    import ssl

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        try:
            import certifi
        except ImportError:
            bundle = None
        else:
            bundle = certifi.where()
    return ssl.create_default_context(cafile=bundle)
