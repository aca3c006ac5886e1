"""`dbt-studio serve`: sync after every successful dbt Cloud job run, driven by dbt Cloud's webhooks.

Starlette (routing, requests, JSON responses) on uvicorn (the ASGI server): both are small, widely used and
actively maintained, and already in the dependency tree through fakesnow[server]. The web part is thin on
purpose; the work happens in `Service`, on one worker thread:

  POST /webhooks/dbt-cloud   verify the hex HMAC-SHA256 of the raw body (header `Authorization`) with the
                             webhook secret, dedupe on `eventId`, answer 202 at once and queue the run
  GET  /healthz              liveness and queue length
  GET  /runs                 the recent webhook-triggered runs and their outcome

For `job.run.completed` of a configured job that succeeded (`runStatusCode` 10 / `runStatus` "Success") the
worker downloads that run's manifest.json and run_results.json from the Admin API v2 into a per-run
directory and syncs the models that succeeded in that run, against the local checkout and profile. One run is
processed at a time, so a sync name never runs twice at once here (the engine's lock guards other processes).
Secrets (webhook secret, service token) go through REDACT and never reach a log line, a response or /runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import queue
import shutil
import threading
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sync_runner.core.errors import UserError
from sync_runner.core.redact import REDACT
from sync_runner.project.target import resolve_target
from sync_runner.sync.config import DbtCloudConfig, load_dbt_cloud
from sync_runner.sync.engine import Options, SyncReport, run_syncs

log = logging.getLogger("dbt_studio.server")

WEBHOOK_PATH = "/webhooks/dbt-cloud"
SUCCESS_CODE = 10
ARTIFACTS = ("manifest.json", "run_results.json")
MAX_BODY = 1_000_000
SEEN_EVENTS = 10_000
KEPT_RUNS = 200
KEPT_RUN_DIRS = 50

SyncFn = Callable[..., list[SyncReport]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Settings:
    project_dir: Path
    profiles_dir: Path | None
    target: str | None
    cloud: DbtCloudConfig
    runs_dir: Path  # one sub-directory of downloaded artifacts per dbt Cloud run
    download_timeout: float = 30.0


def load_settings(project_dir: Path | str = ".", profiles_dir: Path | str | None = None,
                  target: str | None = None, runs_dir: Path | str | None = None) -> Settings:
    where = resolve_target(project_dir, profiles_dir, target)
    project_dir, profiles = where.project_dir, where.profiles_dir
    if not (project_dir / "dbt_project.yml").is_file():
        raise UserError(f"{project_dir} is not a dbt project (no dbt_project.yml): pass --project-dir")
    cloud = load_dbt_cloud(project_dir, profiles)
    runs = Path(runs_dir).resolve() if runs_dir else project_dir / "target" / "dbt_cloud_runs"
    return Settings(project_dir, profiles, target, cloud, runs)


@dataclass
class RunRecord:
    """One webhook and what came of it (what /runs lists)."""

    event_id: str
    event_type: str
    account_id: str
    job_id: str
    run_id: str
    run_status: str
    received_at: str = field(default_factory=_now)
    status: str = "queued"  # queued | downloading | syncing | success | failed | ignored
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    syncs: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(REDACT(json.dumps(self.__dict__, default=str)))


def _id(value: Any) -> str | None:
    """A dbt Cloud numeric id as text, or None when it is not one."""
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    return text if text.isdigit() else None


class Service:
    """Verifies, dedupes and queues webhooks; one worker thread downloads artifacts and runs syncs."""

    def __init__(self, settings: Settings, sync_fn: SyncFn = run_syncs) -> None:
        self.settings = settings
        self.sync_fn = sync_fn
        self._secret = settings.cloud.webhook_secret.encode()
        self._queue: queue.Queue[RunRecord | None] = queue.Queue()
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._runs: deque[RunRecord] = deque(maxlen=KEPT_RUNS)
        self._worker: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="dbt-studio-sync-worker", daemon=True)
            self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._queue.put(None)
            self._worker.join(timeout)
        self._worker = None

    # -- the webhook --------------------------------------------------------------------------------------------

    def verify(self, body: bytes, signature: str | None) -> bool:
        if not signature:
            return False
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest().encode()
        return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8", "replace"))

    def receive(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """A verified webhook's JSON: (HTTP status, answer)."""
        if not isinstance(payload, dict):
            return 400, {"error": "expected a JSON object"}
        event_id = payload.get("eventId")
        data = payload.get("data")
        if not isinstance(event_id, str) or not event_id.strip() or not isinstance(data, dict):
            return 400, {"error": "expected a dbt Cloud webhook: eventId and data"}
        event_type = str(payload.get("eventType") or "")
        account_id, job_id = _id(data.get("accountId", payload.get("accountId"))), _id(data.get("jobId"))
        run_id = _id(data.get("runId"))
        if event_type.startswith("job.run.") and not (account_id and job_id and run_id):
            return 400, {"error": "data.accountId, data.jobId and data.runId must be numeric ids"}
        record = RunRecord(event_id, event_type, account_id or "", job_id or "", run_id or "",
                           str(data.get("runStatus") or ""))
        with self._lock:
            if event_id in self._seen:
                log.info("event %s: a replay, already received", REDACT(event_id))
                return 200, {"status": "duplicate", "event_id": event_id}
            self._seen[event_id] = None
            while len(self._seen) > SEEN_EVENTS:
                self._seen.popitem(last=False)
            reason = self._ignore_reason(record, data)
            if reason:
                record.status, record.message = "ignored", reason
                record.finished_at = record.received_at
            self._runs.append(record)
        if reason:
            log.info("event %s (%s, job %s, run %s): ignored: %s", REDACT(event_id), event_type, record.job_id,
                     record.run_id, reason)
            return 200, {"status": "ignored", "event_id": event_id, "reason": reason}
        self._queue.put(record)
        log.info("event %s: job %s run %s succeeded: queued", REDACT(event_id), record.job_id, record.run_id)
        return 202, {"status": "queued", "event_id": event_id, "run_id": record.run_id}

    def _ignore_reason(self, record: RunRecord, data: dict[str, Any]) -> str:
        cloud = self.settings.cloud
        if record.event_type != "job.run.completed":
            return f"event type '{record.event_type}' does not trigger syncs (only job.run.completed)"
        if record.account_id != cloud.account_id:
            return f"account {record.account_id} is not the configured account"
        if cloud.job_ids and record.job_id not in cloud.job_ids:
            return f"job {record.job_id} is not one of the configured job_ids"
        code = data.get("runStatusCode")
        succeeded = str(code) == str(SUCCESS_CODE) if code is not None else record.run_status.lower() == "success"
        if not succeeded:
            return f"run {record.run_id} ended '{record.run_status or code}': nothing is synced"
        return ""

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            records = list(self._runs)[::-1][:limit]
            return [r.as_dict() for r in records]

    # -- the worker ---------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            record = self._queue.get()
            try:
                if record is None:
                    return
                self._process(record)
            finally:
                self._queue.task_done()

    def _process(self, record: RunRecord) -> None:
        s = self.settings
        record.started_at = _now()
        try:
            record.status = "downloading"
            run_dir = s.runs_dir / f"run_{record.run_id}"
            self._download(record.run_id, run_dir)
            record.status = "syncing"
            options = Options(artifacts_dir=str(run_dir), only_built=True)
            reports = self.sync_fn(s.project_dir, s.profiles_dir, s.target, options)
            record.syncs = [{k: v for k, v in r.as_dict().items() if k != "sample"} for r in reports]
            failed = [r.sync for r in reports if r.status == "failed"]
            record.status = "failed" if failed else "success"
            record.message = (f"sync(s) failed: {', '.join(failed)}" if failed
                              else f"{sum(r.status == 'success' for r in reports)} sync(s) ran, "
                                   f"{sum(r.status == 'skipped' for r in reports)} skipped")
        except UserError as exc:
            record.status, record.message = "failed", REDACT(exc)
        except Exception as exc:  # a bug or an unexpected library error: recorded, the worker keeps going
            record.status, record.message = "failed", f"{exc.__class__.__name__}: {REDACT(exc)}"
            log.error("run %s: unexpected error\n%s", record.run_id, REDACT(traceback.format_exc()))
        finally:
            record.finished_at = _now()
            self._prune()
        log.info("run %s (job %s): %s: %s", record.run_id, record.job_id, record.status, REDACT(record.message))

    def _download(self, run_id: str, run_dir: Path) -> None:
        """The run's artifacts from the Admin API v2, each written whole (temporary file, then renamed)."""
        import requests

        cloud = self.settings.cloud
        run_dir.mkdir(parents=True, exist_ok=True)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {cloud.token}"
        try:
            for name in ARTIFACTS:
                url = f"{cloud.base_url}/api/v2/accounts/{cloud.account_id}/runs/{run_id}/artifacts/{name}"
                try:
                    response = session.get(url, timeout=self.settings.download_timeout)
                except requests.RequestException as exc:
                    raise UserError(f"cannot download {name} of run {run_id} from {cloud.base_url}: "
                                    f"{exc.__class__.__name__}") from None
                if response.status_code != 200:
                    hint = {401: " (check the service token)", 403: " (the token lacks access to this account)",
                            404: " (no such run or artifact; was docs/artifact generation on?)"}
                    raise UserError(f"cannot download {name} of run {run_id} from {cloud.base_url}: "
                                    f"HTTP {response.status_code}{hint.get(response.status_code, '')}")
                try:
                    json.loads(response.content)
                except ValueError:
                    raise UserError(f"{name} of run {run_id} from {cloud.base_url} is not JSON") from None
                partial = run_dir / f".{name}.partial"
                partial.write_bytes(response.content)
                partial.replace(run_dir / name)
        finally:
            session.close()

    def _prune(self) -> None:
        runs_dir = self.settings.runs_dir
        if not runs_dir.is_dir():
            return
        dirs = sorted((d for d in runs_dir.iterdir() if d.is_dir() and d.name.startswith("run_")),
                      key=lambda d: d.stat().st_mtime)
        for old in dirs[:-KEPT_RUN_DIRS]:
            shutil.rmtree(old, ignore_errors=True)


def create_app(service: Service, max_body: int = MAX_BODY):
    """The Starlette app; starts the worker on startup and stops it on shutdown."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def webhook(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return JSONResponse({"error": "body too large"}, status_code=413)
        if not service.verify(body, request.headers.get("authorization")):
            log.warning("webhook refused: missing or wrong signature")
            return JSONResponse({"error": "missing or invalid signature"}, status_code=401)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"error": "body is not valid JSON"}, status_code=400)
        status, answer = service.receive(payload)
        return JSONResponse(json.loads(REDACT(json.dumps(answer))), status_code=status)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "queued": service._queue.qsize()})

    async def runs(request: Request) -> JSONResponse:
        raw = request.query_params.get("limit", "50")
        limit = int(raw) if raw.isdigit() else 50
        return JSONResponse({"runs": service.runs(limit)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        service.start()
        try:
            yield
        finally:
            service.stop()

    return Starlette(routes=[Route(WEBHOOK_PATH, webhook, methods=["POST"]), Route("/healthz", healthz),
                             Route("/runs", runs)], lifespan=lifespan)


def serve(host: str, port: int, project_dir: Path | str = ".", profiles_dir: Path | str | None = None,
          target: str | None = None) -> None:
    import uvicorn

    settings = load_settings(project_dir, profiles_dir, target)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cloud = settings.cloud
    log.info("dbt Cloud account %s, jobs %s; syncing %s (target %s); webhooks on http://%s:%s%s",
             cloud.account_id, ", ".join(cloud.job_ids) or "all", settings.project_dir, settings.target or "default",
             host, port, WEBHOOK_PATH)
    uvicorn.run(create_app(Service(settings)), host=host, port=port, log_level="info")
