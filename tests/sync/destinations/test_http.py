"""The `http` destination's templates: a URL and body rendered per record in row mode, a plain URL sent as
written, a broken template refused before anything is sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jinja2
import pyarrow as pa
import pytest
from fakes.http_sink import JsonHandler

from sync_runner.sync.destinations.base import Batch, Terminal
from sync_runner.sync.destinations.http import HttpDestination, _template


@pytest.fixture()
def hook() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    """A local endpoint that notes each request (method, path, JSON body) and answers 200; /kept and /moved
    redirect to /in (307 and 302)."""
    seen: list[tuple[str, str, Any]] = []

    class Handler(JsonHandler):
        def _note(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.command, self.path, json.loads(body) if body else None))
            moved = {"/kept": 307, "/moved": 302}.get(self.path)
            self._answer(moved or 200, {}, {"Location": "/in"} if moved else None)

        do_POST = do_PUT = do_DELETE = _note  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _batch(op: str) -> Batch:
    return Batch(op, ["7", "8"], [1, 2], [{"id": 7, "email": "a@x.com"}, {"id": 8, "email": "b@x.com"}],
                 pa.table({}))


def _open(config: dict[str, Any]) -> HttpDestination:
    destination = HttpDestination("hook", config, "people_hook", "run1", Path("."))
    destination.open()
    return destination


def test_row_mode_renders_the_url_and_body_of_each_record(hook):
    url, seen = hook
    destination = _open({"url": url + "/contacts/{{ key }}?op={{ op }}", "format": "row", "method": "PUT",
                         "delete_method": "DELETE", "body_template": '{"address": {{ record.email | tojson }}}'})
    destination.send(_batch("upsert"))
    destination.send(_batch("delete"))
    assert seen == [("PUT", "/contacts/7?op=upsert", {"address": "a@x.com"}),
                    ("PUT", "/contacts/8?op=upsert", {"address": "b@x.com"}),
                    ("DELETE", "/contacts/7?op=delete", {"address": "a@x.com"}),
                    ("DELETE", "/contacts/8?op=delete", {"address": "b@x.com"})]


def test_a_plain_url_is_sent_as_written_with_the_default_bodies(hook):
    url, seen = hook
    _open({"url": url + "/in?a=1&b=x"}).send(_batch("insert"))
    _open({"url": url + "/one", "format": "row"}).send(_batch("update"))
    assert seen == [("POST", "/in?a=1&b=x", {"op": "insert", "records": [{"id": 7, "email": "a@x.com"},
                                                                           {"id": 8, "email": "b@x.com"}]}),
                    ("POST", "/one", {"id": 7, "email": "a@x.com"}), ("POST", "/one", {"id": 8, "email": "b@x.com"})]


def test_a_redirect_that_keeps_the_records_is_followed_and_one_that_would_drop_them_is_refused(hook):
    url, seen = hook
    _open({"url": url + "/kept"}).send(_batch("insert"))
    records = {"op": "insert", "records": [{"id": 7, "email": "a@x.com"}, {"id": 8, "email": "b@x.com"}]}
    assert seen == [("POST", "/kept", records), ("POST", "/in", records)]
    with pytest.raises(Terminal, match=r"POST .*/moved answered 302, a redirect to /in: set url to the address"):
        _open({"url": url + "/moved"}).send(_batch("insert"))  # a 302 to a POST: the next request would be a GET
    assert len(seen) == 3


@pytest.mark.parametrize("config", [{"url": "https://e.com/{{ key"}, {"url": "https://e.com/{% if %}"},
                                    {"url": "https://e.com", "body_template": "{{ records | tojson }"}])
def test_a_broken_template_is_refused_when_the_destination_opens(config):
    with pytest.raises(Terminal, match="destination 'hook': bad template"):
        _open(config)


@pytest.mark.parametrize("text", ["https://e.com/a\n", "a\n\n", "a\r\nb\r\n", "x\ry", "plain", "\n", "{ a: 1 }"])
def test_text_without_jinja_renders_as_jinja_would(text):
    """Plain text skips Jinja: it must come out exactly as Jinja renders it (newlines, the trailing one)."""
    jinja = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
    assert _template(text, "hook").render(op="insert", key="k") == jinja.from_string(text).render()
