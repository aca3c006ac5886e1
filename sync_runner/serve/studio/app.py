"""`dbt-studio studio`: the Customer Studio web app, a thin Starlette shell over the studio's library modules.

Pages are server-rendered Jinja2 templates; htmx (vendored) swaps partials and polls job logs, uPlot (vendored)
draws the time series, and builder.js (ours, no build step) edits the condition tree and asks the JSON routes for
the funnel as it changes. Every warehouse question goes through `Queries` (package macros, one connection).

Security: on 127.0.0.1 (the default) the app answers local requests only (Host header checked, against DNS
rebinding); on any other interface every request needs the token (DBT_STUDIO_TOKEN or one generated and printed
once), by `?token=` once (it becomes a cookie), the cookie, or `Authorization: Bearer`. Every POST needs the CSRF
token of the session (double-submit: a SameSite=Strict cookie and the X-CSRF-Token header or `csrf` field).
"""

from __future__ import annotations

import difflib
import hmac
import json
import secrets
import subprocess
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sync_runner.core.errors import UserError
from sync_runner.core.redact import REDACT
from sync_runner.project.target import DbtTarget, held_elsewhere
from sync_runner.sync.config import load_destinations, load_syncs

from . import builder, pages
from .catalog import Catalog
from .files import NotEditable, check_name, json_object, save_audience
from .jobs import Job, Jobs, dbt_command, studio_command
from .queries import Cancelled, Queries, QueryTimeout

HERE = Path(__file__).parent
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class Settings:
    where: DbtTarget
    host: str = "127.0.0.1"
    port: int = 8581
    token: str | None = None  # required on every request when set
    allowed_hosts: tuple[str, ...] = ()
    query_timeout: float = 30.0
    release_after: float | None = 3.0  # seconds without a query before a DuckDB file is let go (queries.py)
    csrf_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class Studio:
    """The app's state: the project catalog, the warehouse queries, the jobs."""

    def __init__(self, settings: Settings, spawn: Callable[..., Any] = subprocess.Popen) -> None:
        """`spawn`: how the jobs' processes start (see `Jobs`)."""
        self.settings = settings
        self.catalog = Catalog(settings.where.project_dir)
        self.catalog.nodes()  # a missing manifest is a one-line error before the server starts
        self.queries = Queries(settings.where, self.catalog.nodes, self.catalog.generation, settings.query_timeout,
                               settings.release_after, disabled=self.catalog.disabled_phrases)
        self.jobs = Jobs(self.queries.worker.released, spawn=spawn)
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"]))
        self.templates.filters["redact"] = REDACT
        self.templates.globals["tojson"] = lambda v: json.dumps(v, default=str)
        self._columns: dict[tuple[Any, str], list[tuple[str, str]]] = {}
        self.editing = threading.Lock()  # one save, rename or delete of the project's files at a time

    def close(self) -> None:
        self.queries.close()

    def render(self, request: Request, template: str, **context: Any) -> HTMLResponse:
        csrf = request.scope.get("studio.csrf", "")
        html = self.templates.get_template(template).render(request=request, csrf=csrf, **context)
        return HTMLResponse(html)

    # -- project facts ------------------------------------------------------------------------------------------

    def columns(self, model: str) -> list[tuple[str, str]]:
        """(name, type) from the warehouse (the truth), else the documented columns with no type."""
        key = (self.catalog.generation(), model)
        if key not in self._columns:
            node = self.catalog.nodes().get(model)
            if node is None:
                raise UserError(self.catalog.unknown_model(model))
            database, schema, identifier = self.catalog.relation_parts(model)
            try:
                found = self.queries.columns(node["relation"], database, schema, identifier)
            except (QueryTimeout, Cancelled):
                raise
            except Exception:
                found = []
            self._columns[key] = found or [(c, "") for c in node["columns"]]
        return self._columns[key]

    def syncs(self) -> tuple[list[Any], str | None]:
        """The project's syncs, or none and the one-line reason the configuration cannot be read."""
        from sync_runner.project.artifacts import load_manifest

        try:
            manifest = load_manifest(self.settings.where.project_dir)
            destinations = load_destinations(self.settings.where.project_dir, self.settings.where.profiles_dir)
            return load_syncs(manifest, destinations), None
        except UserError as exc:
            return [], REDACT(str(exc))


# -- security -----------------------------------------------------------------------------------------------------


class Guard:
    """Token (off-localhost), Host check (localhost) and CSRF (every POST), as ASGI middleware."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _csrf_token(self) -> str:
        return self.settings.csrf_secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        host = (request.headers.get("host") or "").rsplit(":", 1)[0] if "]" not in request.headers.get(
            "host", "") else request.headers.get("host", "").rsplit("]", 1)[0] + "]"
        allowed = set(self.settings.allowed_hosts) | set(LOCAL_HOSTS) | {self.settings.host}
        if self.settings.token is None and host not in allowed:
            await PlainTextResponse("unknown host", status_code=403)(scope, receive, send)
            return
        set_cookie = None
        if self.settings.token is not None:
            given = request.cookies.get("studio_token") or request.query_params.get("token") or ""
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:]
            if not hmac.compare_digest(given.encode(), self.settings.token.encode()):
                await PlainTextResponse("a token is required (see the studio's start-up output)",
                                        status_code=401)(scope, receive, send)
                return
            if request.query_params.get("token"):
                set_cookie = ("studio_token", self.settings.token)
        csrf = self._csrf_token()
        scope["studio.csrf"] = csrf
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            sent = request.headers.get("x-csrf-token", "")
            cookie = request.cookies.get("studio_csrf", "")
            if not (sent and hmac.compare_digest(sent, csrf) and hmac.compare_digest(cookie, csrf)):
                await PlainTextResponse("missing or wrong CSRF token", status_code=403)(scope, receive, send)
                return
            origin = request.headers.get("origin")
            if origin and origin.split("://", 1)[-1].rsplit(":", 1)[0] not in allowed | {host}:
                await PlainTextResponse("cross-origin request refused", status_code=403)(scope, receive, send)
                return

        async def send_with_cookies(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                cookies = [("studio_csrf", csrf)] + ([set_cookie] if set_cookie else [])
                for name, value in cookies:
                    headers.append((b"set-cookie", f"{name}={value}; Path=/; SameSite=Strict; HttpOnly".encode()))
                headers.append((b"x-frame-options", b"DENY"))
                headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookies)


# -- routes -------------------------------------------------------------------------------------------------------


def _error(exc: Exception, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": REDACT(str(exc))}, status_code=status)


def _question_error(exc: Exception) -> JSONResponse:
    """How a warehouse question of the builder failed: replaced by a newer one (409), too slow (504), the DuckDB
    file held by another process (503), the user's mistake (400), or the compiler's own error (dbt's
    CompilationError) in one line."""
    if held_elsewhere(exc):
        return _error(Exception(pages.one_line(exc)), 503)
    if isinstance(exc, Cancelled):
        return _error(exc, 409)
    if isinstance(exc, QueryTimeout):
        return _error(exc, 504)
    if isinstance(exc, UserError):
        return _error(exc)
    return _error(Exception(pages.one_line(exc)))


def _with_body(handler: Callable[[Request, bytes], Response]) -> Callable[[Request], Awaitable[Response]]:
    """A route whose handler blocks (a warehouse question waits for the studio's one connection, a save writes
    files): the body is read on the event loop, the handler runs in Starlette's thread pool. On the loop, one slow
    funnel held every other request, the pages and their static files included, until it answered."""
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        return await run_in_threadpool(handler, request, body)

    return endpoint


def _json(request: Request, raw: bytes, *keys: str) -> dict[str, Any]:
    """The request's JSON object, whose keys must be among `keys` (a key the route does not read is refused, not
    ignored: a typo such as `confrim` would otherwise do something else than asked)."""
    try:  # a key given twice is kept as such (files.json_object), for the save to refuse it, not read it
        body = json.loads(raw, object_pairs_hook=json_object)
    except ValueError:
        raise UserError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    for key in body:
        if key not in keys:
            near = difflib.get_close_matches(str(key), keys, n=1)
            raise UserError(f"{request.url.path}: unknown key {key!r} in the request body"
                            + (f" (did you mean {near[0]!r}?)" if near else "")
                            + f"; allowed: {', '.join(keys)}")
    return body


def build_app(settings: Settings, studio: Studio | None = None) -> Starlette:
    studio = studio or Studio(settings)

    def checked(spec: Any) -> dict[str, Any]:
        return builder.check_spec(spec, studio.catalog.models(), set(studio.catalog.parents()),
                                  studio.catalog.disabled)

    async def home(request: Request) -> Response:
        return RedirectResponse("/audiences", status_code=302)

    def schema_page(request: Request) -> Response:
        graph = studio.catalog.graph()
        return studio.render(request, "schema.html", page="schema", svg=pages.schema_svg(graph),
                             models=pages.schema_models(studio.catalog.nodes(), graph))

    def schema_model(request: Request) -> Response:
        name = request.path_params["name"]
        node = studio.catalog.nodes().get(name)
        if node is None:
            return PlainTextResponse(studio.catalog.unknown_model(name), status_code=404)
        columns = studio.columns(name)
        try:
            sample = studio.queries.sample(node["relation"]).dicts()
        except Exception as exc:  # a model not built yet: the page says so
            sample, error = [], REDACT(str(exc)).splitlines()[0]
        else:
            error = ""
        return studio.render(request, "_model_columns.html", name=name, columns=columns, sample=sample,
                             error=error)

    def audiences_page(request: Request) -> Response:
        return studio.render(request, "audiences.html", page="audiences", audiences=studio.catalog.audiences())

    def audiences_sizes(request: Request) -> Response:
        rows = pages.audience_sizes(studio)
        return studio.render(request, "_audience_sizes.html", rows=rows)

    def builder_page(request: Request) -> Response:
        name = request.query_params.get("audience")
        # an audience being edited is one of the Audiences; "New audience" is the builder on a blank draft
        return studio.render(request, "builder.html", page="audiences" if name else "builder", audience=name or "")

    def api_schema(request: Request) -> Response:
        return JSONResponse(pages.builder_schema(studio))

    def api_audience(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            info = studio.catalog.audience(name)
            opened = studio.catalog.open_file(name)
        except NotEditable as exc:
            return JSONResponse({"name": name, "editable": False, "error": str(exc)})
        except UserError as exc:
            return _error(exc, 404)
        except OSError as exc:  # the manifest's file renamed or deleted since the last build
            path, root = Path(str(exc.filename or "its file")), settings.where.project_dir.resolve()
            shown = path.relative_to(root) if path.is_relative_to(root) else path.name
            return _error(Exception(f"{name}: cannot read {shown} ({exc.strerror or 'unreadable'}); renamed or "
                                    "deleted since the last build? build the project again"), 404)
        return JSONResponse(pages.opened_audience(studio, info, opened))

    @_with_body
    def api_funnel(request: Request, raw: bytes) -> Response:
        try:
            body = _json(request, raw, "spec", "session", "limit")
            spec = checked(body.get("spec"))
            key = f"funnel:{body.get('session', '')}"
            funnel = studio.queries.funnel(spec, key=key)
            members = studio.queries.members(spec, int(body.get("limit") or 10), key=f"members:{body.get('session')}")
        except Exception as exc:
            return _question_error(exc)
        steps = [{"condition": builder_describe(c), "size": n}
                 for c, n in zip(builder.conditions(spec.get("where")), funnel["steps"], strict=True)]
        return JSONResponse({**funnel, "steps": steps, "members": {"columns": list(members.columns),
                                                                   "rows": [list(r) for r in members.rows]}})

    @_with_body
    def api_overlap(request: Request, raw: bytes) -> Response:
        try:
            body = _json(request, raw, "spec", "others", "label", "session")
            result = pages.overlap(studio, body, checked)
        except Exception as exc:
            return _question_error(exc)
        return JSONResponse(result)

    @_with_body
    def api_breakdown(request: Request, raw: bytes) -> Response:
        try:
            body = _json(request, raw, "spec", "column", "limit", "session")
            spec = checked(body.get("spec"))
            column = body.get("column")
            builder.check_name("column", column)
            table = studio.queries.breakdown(spec, str(column), int(body.get("limit") or 20),
                                             key=f"breakdown:{body.get('session', '')}")
        except Exception as exc:
            return _question_error(exc)
        return JSONResponse({"rows": table.dicts()})

    def api_values(request: Request) -> Response:
        model = request.query_params.get("model", "")
        column = request.query_params.get("column", "")
        node = studio.catalog.nodes().get(model)
        try:
            if node is None:
                raise UserError(studio.catalog.unknown_model(model))
            if column.lower() not in {c for c, _ in studio.columns(model)}:
                raise UserError(f"unknown column {column!r} of {model}")
            table = studio.queries.values(node["relation"], column)
        except Exception as exc:
            return _question_error(exc)
        return JSONResponse({"values": [{"value": r[0], "occurrences": r[1]} for r in table.rows]})

    @_with_body
    def api_save(request: Request, raw: bytes) -> Response:
        try:
            body = _json(request, raw, "name", "folder", "arguments", "description", "opened", "digest", "as_of",
                         "overwrite")
            with studio.editing:
                return JSONResponse(pages.save(studio, body, checked))
        except UserError as exc:
            return _error(exc, 409 if "confirm to overwrite" in str(exc) else 400)

    @_with_body
    def api_manage(request: Request, raw: bytes) -> Response:
        """Rename (`{"new_name": ...}`) or delete (`{"confirm": true}`) an audience of the project."""
        action = pages.rename if request.url.path.endswith("/rename") else pages.delete
        name = request.path_params["name"]
        try:
            studio.catalog.audience(check_name(name))
        except UserError as exc:
            return _error(exc, 404)
        try:
            keys = ("new_name",) if action is pages.rename else ("confirm",)
            body = _json(request, raw, *keys)
            with studio.editing:
                return JSONResponse(action(studio, name, body))
        except UserError as exc:
            return _error(exc)

    async def favicon(request: Request) -> Response:
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    @_with_body
    def api_build(request: Request, raw: bytes) -> Response:
        try:
            body = _json(request, raw, "name", "new")
            name = check_name(body.get("name"))
            if name not in studio.catalog.models() and not body.get("new"):
                raise UserError(studio.catalog.unknown_model(name))
            job = studio.jobs.start("build", name, dbt_command(settings.where, "build", "-s", name),
                                    settings.where.project_dir)
        except UserError as exc:
            return _error(exc)
        return JSONResponse({"job": job.id, "url": f"/jobs/{job.id}"})

    def job_page(request: Request) -> Response:
        job = studio.jobs.jobs.get(int(request.path_params["id"]))
        if job is None:
            return PlainTextResponse("no such job", status_code=404)
        return studio.render(request, "job.html", page="job", job=job)

    def job_log(request: Request) -> Response:
        job = studio.jobs.jobs.get(int(request.path_params["id"]))
        if job is None:
            return PlainTextResponse("no such job", status_code=404)
        if request.query_params.get("format") == "json":
            return JSONResponse(job_json(job))
        return studio.render(request, "_job_log.html", job=job)

    def syncs_page(request: Request) -> Response:
        syncs, problem = studio.syncs()
        return studio.render(request, "syncs.html", page="syncs", syncs=syncs, problem=problem)

    def syncs_runs(request: Request) -> Response:
        runs, error = pages.recent_runs(studio, limit=200)
        return studio.render(request, "_runs.html", runs=runs[:50], error=error, sync=None)

    def sync_page(request: Request) -> Response:
        name = request.path_params["name"]
        syncs, problem = studio.syncs()
        sync = next((s for s in syncs if s.name == name), None)
        if sync is None:
            return PlainTextResponse(problem or "no such sync", status_code=404)
        return studio.render(request, "sync.html", page="syncs", sync=sync)

    def sync_details(request: Request) -> Response:
        name = request.path_params["name"]
        syncs, _ = studio.syncs()
        sync = next((s for s in syncs if s.name == name), None)
        if sync is None:
            return PlainTextResponse("no such sync", status_code=404)
        runs, error = pages.recent_runs(studio, limit=500, sync=name)
        rejections = pages.rejections(studio, sync)
        return studio.render(request, "_sync_details.html", sync=sync, runs=runs, error=error,
                             rejections=rejections)

    def sync_job(request: Request) -> Response:
        name = request.path_params["name"]
        kind = request.path_params["kind"]
        syncs, _ = studio.syncs()
        if not any(s.name == name for s in syncs) or kind not in ("run", "plan"):
            return PlainTextResponse("no such sync", status_code=404)
        args = ("sync", "-s", name) if kind == "run" else ("plan", "-s", name)
        try:
            job = studio.jobs.start("sync" if kind == "run" else "plan", name, studio_command(settings.where, *args),
                                    settings.where.project_dir)
        except UserError as exc:
            return _error(exc, 409)
        if request.headers.get("hx-request"):
            return studio.render(request, "_job_log.html", job=job)
        return JSONResponse({"job": job.id, "url": f"/jobs/{job.id}"})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "adapter": studio.queries.adapter_type, **studio.queries.stats})

    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/schema", schema_page),
        Route("/schema/{name}", schema_model),
        Route("/audiences", audiences_page),
        Route("/audiences/sizes", audiences_sizes),
        Route("/builder", builder_page),
        Route("/api/schema", api_schema),
        Route("/api/audience/{name}", api_audience),
        Route("/api/funnel", api_funnel, methods=["POST"]),
        Route("/api/overlap", api_overlap, methods=["POST"]),
        Route("/api/breakdown", api_breakdown, methods=["POST"]),
        Route("/api/values", api_values),
        Route("/api/save", api_save, methods=["POST"]),
        Route("/api/build", api_build, methods=["POST"]),
        Route("/api/audience/{name}/rename", api_manage, methods=["POST"]),
        Route("/api/audience/{name}/delete", api_manage, methods=["POST"]),
        Route("/favicon.ico", favicon),
        Route("/jobs/{id:int}", job_page),
        Route("/jobs/{id:int}/log", job_log),
        Route("/syncs", syncs_page),
        Route("/syncs/runs", syncs_runs),
        Route("/syncs/{name}", sync_page),
        Route("/syncs/{name}/details", sync_details),
        Route("/syncs/{name}/{kind}", sync_job, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.studio = studio
    app.add_middleware(Guard, settings=settings)
    return app


def builder_describe(node: Any) -> str:
    from sync_runner.audiences.preview import describe

    return describe(node)


def job_json(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "subject": job.subject, "status": job.status,
            "returncode": job.returncode, "lines": job.lines}


def serve(settings: Settings) -> None:
    """Run the studio until interrupted (uvicorn)."""
    import uvicorn

    if settings.host not in LOCAL_HOSTS and settings.token is None:
        settings.token = secrets.token_urlsafe(24)
        print(f"Studio token (required off localhost; shown once): {settings.token}", flush=True)
    studio = Studio(settings)
    app = build_app(settings, studio)
    url = f"http://{settings.host}:{settings.port}/"
    print(f"dbt-studio studio: {url}  (project {settings.where.project_dir}; Ctrl+C stops)", flush=True)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        studio.close()


__all__ = ["Settings", "Studio", "build_app", "serve", "save_audience"]
