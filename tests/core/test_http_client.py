"""The destinations' and alerts' HTTP client (sync_runner/core/http_client.py) against real local servers: kept-alive
connections, answers, timeouts, requests that cannot be made, redirects, credentials in the URL, TLS verified
against the CA bundle, and the environment's proxies (plain HTTP and CONNECT)."""

from __future__ import annotations

import base64
import json
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sync_runner.core import http_client
from sync_runner.core.errors import Unsendable
from sync_runner.core.http_client import Client, Dropped, post_form


class _Server:
    """An HTTP/1.1 server on 127.0.0.1 that records what it gets and answers as `answer` says."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[dict] = []
        self.connections = 0
        self.answer = lambda handler: (200, {"Content-Type": "application/json"}, b'{"ok": true}')
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                    "raw": self.headers.items(), "body": body})
                status, headers, content = server.answer(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_CONNECT = _any  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def no_proxies(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_requests_share_one_kept_alive_connection(server, no_proxies):
    client = Client()
    for i in range(5):
        response = client.request("POST", f"{server.url}/records?i={i}", b'{"a": 1}',
                                  {"Content-Type": "application/json"}, timeout=5)
        assert response.status_code == 200 and response.json() == {"ok": True}
    assert server.connections == 1
    assert [s["path"] for s in server.seen] == [f"/records?i={i}" for i in range(5)]
    assert all(s["body"] == b'{"a": 1}' and s["headers"]["Content-Type"] == "application/json" for s in server.seen)
    assert server.seen[0]["headers"]["User-Agent"].startswith("dbt-studio/")


def test_a_connection_the_server_closed_while_idle_is_replaced_before_it_is_used(server, no_proxies):
    def close_after(handler):
        handler.close_connection = True  # closes once it answered, without saying so in a header
        return 200, {}, b"done"

    server.answer = close_after
    client = Client()
    assert client.request("GET", server.url + "/a", timeout=5).text == "done"
    time.sleep(0.2)  # the server's close reaches the client's socket
    assert client.request("GET", server.url + "/b", timeout=5).text == "done"
    assert server.connections == 2 and [s["path"] for s in server.seen] == ["/a", "/b"]


def test_an_answer_is_read_as_requests_reads_it(server, no_proxies):
    server.answer = lambda h: (422, {"Content-Type": "text/plain; charset=latin-1", "X-Thing": "v"},
                               "café".encode("latin-1"))
    response = Client().request("POST", server.url + "/x", b"{}", timeout=5)
    assert (response.status_code, response.reason, response.ok) == (422, "Unprocessable Entity", False)
    assert response.headers.get("x-thing") == "v" and response.text == "café"
    with pytest.raises(ValueError):
        response.json()
    assert (response.request.method, response.request.url, response.request.body) == ("POST", server.url + "/x",
                                                                                      b"{}")
    server.answer = lambda h: (200, {}, json.dumps({"é": 1}).encode())  # no charset named: UTF-8
    assert Client().request("GET", server.url, timeout=5).json() == {"é": 1}


def test_a_chunked_answer_and_one_that_ends_with_the_connection_are_read_whole(raw, no_proxies):
    """Answers without a Content-Length, as APIs behind proxies often send them: chunked (HTTP/1.1), and an
    HTTP/1.0 body that ends when the server closes the connection."""
    server = raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n",
                 b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"b\": 2}")
    client = Client()
    assert client.request("GET", server.url, timeout=5).json() == {"a": 1}
    assert client.request("GET", server.url, timeout=5).json() == {"b": 2}
    assert server.connections == 1  # the chunked answer kept it alive, the HTTP/1.0 one ended it


def _listening() -> tuple[socket.socket, str]:
    """A socket listening on 127.0.0.1, and its http:// URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


class _RawServer:
    """A server on one port that answers the n-th request with the n-th of `answers` (raw bytes, or None to close
    the connection), on as many connections as the client opens, and records each request's raw bytes."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers, self.requests, self.connections = list(answers), [], 0
        self.listener, self.url = _listening()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.answers:
                    request = self._request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)

    @staticmethod
    def _request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def raw():
    made = []

    def make(*answers: bytes | None) -> _RawServer:
        made.append(_RawServer(list(answers)))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_the_request_is_written_as_http_1_1_says(raw, no_proxies):
    server = raw(*[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"] * 3)
    client = Client()
    client.request("POST", server.url + "/in?a=1", b'{"x": 1}', {"Content-Type": "application/json"}, timeout=5)
    client.request("POST", server.url + "/empty", None, timeout=5)
    client.request("GET", server.url, headers={"Host": "api.example.test"}, timeout=5)
    first, empty, get = server.requests
    port = server.url.rsplit(":", 1)[1]
    assert first.split(b"\r\n") == [
        b"POST /in?a=1 HTTP/1.1", f"Host: 127.0.0.1:{port}".encode(), b"Accept-Encoding: identity",
        f"User-Agent: {http_client.USER_AGENT}".encode(), b"Accept: */*", b"Content-Type: application/json",
        b"Content-Length: 8", b"", b'{"x": 1}']
    assert b"\r\nContent-Length: 0\r\n" in empty  # a POST without a body says so
    assert [line for line in get.split(b"\r\n") if line.lower().startswith(b"host:")] == [b"Host: api.example.test"]
    assert get.startswith(b"GET / HTTP/1.1\r\n") and b"Content-Length" not in get
    assert server.connections == 1


def test_answers_are_read_by_their_length_their_chunks_or_the_connections_end(raw, no_proxies):
    server = raw(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Long: a\r\n b\r\n\r\nok",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",  # no body, whatever the length says
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",  # (a HEAD: the length of what a GET would get)
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nSet-Thing: 1\r\nset-thing: 2\r\n\r\nnew")
    client = Client()
    first = client.request("POST", server.url, b"{}", timeout=5)
    assert (first.status_code, first.text, first.headers["x-long"]) == (200, "ok", "a b")
    assert client.request("DELETE", server.url, timeout=5).content == b""
    assert client.request("HEAD", server.url, timeout=5).content == b""
    assert client.request("GET", server.url, timeout=5).text == "abc"
    assert client.request("GET", server.url, timeout=5).text == "last"  # and the connection is closed
    again = client.request("GET", server.url, timeout=5)
    assert again.headers.get_all("SET-THING") == ["1", "2"] and again.headers["Set-Thing"] == "1"
    assert dict(again.headers) == {"Content-Length": "3", "Set-Thing": "1"}
    assert server.connections == 2


@pytest.mark.parametrize("answer, said", [
    (None, "the server closed the connection without an answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "the answer ended after 5 of its 10 bytes"),
    (b"SMTP ready\r\n\r\n", "not an HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "a Content-Length of 'ten'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "a chunk size of"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 101 + b"\r\n", "more than 100 headers"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n", "a header line over 64 KiB"),
])
def test_a_broken_answer_is_a_dropped_connection(answer, said, raw, no_proxies):
    server = raw(answer)
    client = Client()
    with pytest.raises(Dropped, match=said) as caught:
        client.request("POST", server.url + "/x", b"{}", timeout=5)
    assert caught.value.kind == "ConnectionError" and str(caught.value).startswith(
        f"ConnectionError: POST {server.url}/x: {said}")
    assert not client._connections or all(c.sock is None for c in client._connections.values())


def test_an_http_request_loads_neither_tls_nor_http_client_nor_email():
    """What a sync process imports for an http:// destination: the client, a socket, and no more."""
    code = ("import sys, socket, threading\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
            "def serve():\n"
            "    c, _ = s.accept(); c.recv(65536); c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n')\n"
            "threading.Thread(target=serve, daemon=True).start()\n"
            "from sync_runner.core.http_client import Client\n"
            "r = Client().request('POST', f'http://127.0.0.1:{s.getsockname()[1]}/', b'{}', timeout=5)\n"
            "print(r.status_code, sorted(m for m in ('ssl', 'http.client', 'email', 'encodings.idna', 'requests')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "200 []", out.stderr


def test_every_answer_reaches_the_response_hook(server, no_proxies):
    got = []
    Client(on_response=got.append).request("PUT", server.url + "/h", b"body", {"Authorization": "x"}, timeout=5)
    assert [(r.status_code, r.request.method, r.request.body, r.request.headers["Authorization"]) for r in got] == [
        (200, "PUT", b"body", "x")]


def test_no_answer_is_dropped_with_the_kind_requests_names(server, no_proxies):
    def slow(handler):
        time.sleep(1.0)
        return 200, {}, b""

    server.answer = slow
    with pytest.raises(Dropped) as caught:
        Client().request("GET", server.url, timeout=0.2)
    assert caught.value.kind == "ReadTimeout"
    with socket.socket() as spare:  # a port nothing listens on
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    with pytest.raises(Dropped) as caught:
        Client().request("GET", f"http://127.0.0.1:{port}/", timeout=2)
    assert caught.value.kind == "ConnectionError"


@pytest.mark.parametrize("url, headers", [
    ("ftp://example.com/x", {}),
    ("http:///no-host", {}),
    ("example.com/records", {}),
    ("http://127.0.0.1:notaport/", {}),
    ("{server}/", {"X-Bad": "line\r\nbreak"}),
    ("{server}/", {"X Bad": "a space in the name"}),
    ("{server}/", {"X-Name": "not latin-1: \u2603"}),
    ("{server}/a path", {}),
])
def test_a_request_that_cannot_be_made_is_unsendable(url, headers, server, no_proxies):
    with pytest.raises(Unsendable):
        Client().request("POST", url.format(server=server.url), b"{}", headers, timeout=1)
    assert not server.seen


def test_a_header_that_cannot_be_sent_is_named_without_its_value(server, no_proxies):
    with pytest.raises(Unsendable, match="the header 'X-Token' holds a character outside Latin-1") as caught:
        Client().request("POST", server.url, b"{}", {"X-Token": "s3cr\u2603t"}, timeout=1)
    assert "s3cr" not in str(caught.value) and "\u2603" not in str(caught.value) and not server.seen


def test_redirects_that_keep_the_body_are_followed_and_others_of_a_post_are_returned(server, no_proxies):
    def route(handler):
        if handler.path == "/old":
            return 307, {"Location": "/new"}, b""
        if handler.path == "/moved":
            return 302, {"Location": "/new"}, b""
        if handler.path == "/loop":
            return 308, {"Location": "/loop"}, b""
        return 200, {}, b"here"

    server.answer = route
    client = Client()
    response = client.request("POST", server.url + "/old", b"records", timeout=5)
    assert response.text == "here" and response.url == server.url + "/new"
    assert [(s["method"], s["path"], s["body"]) for s in server.seen] == [("POST", "/old", b"records"),
                                                                         ("POST", "/new", b"records")]
    assert client.request("POST", server.url + "/moved", b"records", timeout=5).status_code == 302
    assert client.request("GET", server.url + "/moved", timeout=5).text == "here"
    with pytest.raises(Dropped) as caught:
        client.request("POST", server.url + "/loop", b"x", timeout=5)
    assert caught.value.kind == "TooManyRedirects"


def test_a_redirect_to_another_host_drops_the_authorization(server, no_proxies):
    other = _Server()
    try:
        server.answer = lambda h: {"/away": (307, {"Location": other.url + "/there"}, b""),
                                   "/same": (307, {"Location": "/here"}, b"")}.get(h.path, (200, {}, b""))
        other.answer = lambda h: (200, {}, b"")
        client = Client()
        client.request("POST", server.url + "/away", b"x", {"Authorization": "Bearer t", "X-Trace": "1"}, timeout=5)
        client.request("POST", server.url + "/same", b"x", {"Authorization": "Bearer t"}, timeout=5)
        there = other.seen[0]["headers"]
        assert "Authorization" not in there and there["X-Trace"] == "1"
        assert [s["headers"].get("Authorization") for s in server.seen] == ["Bearer t", "Bearer t", "Bearer t"]
    finally:
        other.close()


def test_a_header_given_in_any_case_replaces_the_clients_own(server, no_proxies):
    Client().request("GET", server.url, headers={"accept": "text/csv", "user-agent": "mine"}, timeout=5)
    raw = server.seen[0]["raw"]
    assert [v for k, v in raw if k.lower() == "accept"] == ["text/csv"]
    assert [v for k, v in raw if k.lower() == "user-agent"] == ["mine"]


def test_credentials_in_the_url_are_sent_as_basic_authentication(server, no_proxies):
    Client().request("GET", f"http://user%40x:p%3Ass@127.0.0.1:{server.port}/", timeout=5)
    assert server.seen[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"user@x:p:ss").decode()


def test_a_form_post_is_url_encoded(server, no_proxies):
    post_form(server.url + "/token", {"grant_type": "refresh_token", "refresh_token": "a b&c"}, timeout=5)
    seen = server.seen[0]
    assert seen["body"] == b"grant_type=refresh_token&refresh_token=a+b%26c"
    assert seen["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


# -- TLS and proxies ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (made by the openssl command)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    s = _Server(tls=context)
    yield s
    s.close()


@pytest.fixture
def fresh_tls():
    http_client._tls.cache_clear()
    yield
    http_client._tls.cache_clear()


def test_tls_is_verified_against_the_ca_bundle(tls_server, certificate, monkeypatch, no_proxies, fresh_tls):
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.raises(Dropped) as caught:  # certifi's bundle does not know this certificate
        Client().request("GET", tls_server.url, timeout=5)
    assert caught.value.kind == "SSLError" and not tls_server.seen
    http_client._tls.cache_clear()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    client = Client()
    for _ in range(3):
        assert client.request("GET", tls_server.url + "/secure", timeout=5).json() == {"ok": True}
    assert [s["path"] for s in tls_server.seen] == ["/secure"] * 3
    assert tls_server.connections == 1  # kept alive (TLS 1.3 session tickets and all); the refused one never got in


class _Proxy:
    """A forward proxy on 127.0.0.1: a plain-HTTP request is answered by the proxy itself (what it got is kept); a
    CONNECT is tunnelled to the host it names."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str | None]] = []  # (request line, Proxy-Authorization)
        self.sock, self.url = _listening()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            text, _, rest = head.partition(b"\r\n\r\n")
            lines = text.decode().split("\r\n")
            auth = next((ln.split(":", 1)[1].strip() for ln in lines[1:]
                         if ln.lower().startswith("proxy-authorization:")), None)
            self.lines.append((lines[0], auth))
            method, target, _ = lines[0].split(" ")
            if method != "CONNECT":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nvia proxy")
                return
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                ends = [conn, upstream]
                while True:
                    readable, _, _ = select.select(ends, [], [], 5)
                    if not readable:
                        return
                    for end in readable:
                        data = end.recv(65536)
                        if not data:
                            return
                        (upstream if end is conn else conn).sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy():
    p = _Proxy()
    yield p
    p.close()


def test_the_environments_proxies_are_used_unless_no_proxy_names_the_host(server, proxy, monkeypatch, no_proxies):
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://me:s%3Acret@"))
    response = Client().request("POST", "http://api.example.test:8080/records?a=1", b"{}", timeout=5)
    assert response.text == "via proxy"
    assert proxy.lines == [("POST http://api.example.test:8080/records?a=1 HTTP/1.1",
                            "Basic " + base64.b64encode(b"me:s:cret").decode())]
    monkeypatch.setenv("no_proxy", "localhost, .test,127.0.0.1")  # a domain, a host
    assert Client().request("GET", server.url + "/direct", timeout=5).json() == {"ok": True}
    with pytest.raises(Dropped):  # api.example.test is bypassed too: straight to a host that does not resolve
        Client().request("GET", "http://api.example.test:8080/", timeout=2)
    assert len(proxy.lines) == 1 and [s["path"] for s in server.seen] == ["/direct"]


@pytest.mark.parametrize("value", ["socks5://127.0.0.1:1080", "https://user:pw@proxy.example:443"])
def test_a_proxy_that_is_not_plain_http_is_refused_without_its_credentials(value, server, monkeypatch, no_proxies):
    monkeypatch.setenv("HTTP_PROXY", value)
    with pytest.raises(Unsendable, match="give it as http://host:port") as caught:
        Client().request("GET", server.url, timeout=2)
    assert "pw" not in str(caught.value) and not server.seen


def test_https_goes_through_the_proxy_in_a_connect_tunnel(tls_server, certificate, proxy, monkeypatch, no_proxies,
                                                          fresh_tls):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    monkeypatch.setenv("https_proxy", proxy.url)
    client = Client()
    for _ in range(2):
        assert client.request("POST", tls_server.url + "/tunnelled", b"{}", timeout=5).json() == {"ok": True}
    assert proxy.lines == [(f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1", None)]  # one tunnel, kept alive
    assert [s["path"] for s in tls_server.seen] == ["/tunnelled", "/tunnelled"]
