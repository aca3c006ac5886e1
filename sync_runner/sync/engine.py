"""Running syncs: plan in the warehouse, deliver, commit what the destination acknowledged.

The warehouse does the diffing (package macros, EXCEPT / MINUS against the acknowledged snapshot); this
module streams the plan, hands batches to the destination and commits acknowledged plan rows every few
batches, so a crash re-sends at most one commit window and loses nothing.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync_runner import __version__
from sync_runner.core.errors import Unsendable, UserError
from sync_runner.core.fields import closest
from sync_runner.core.mapping import Template
from sync_runner.core.redact import REDACT
from sync_runner.project.artifacts import Manifest, RunResults, keep, load_manifest, load_run_results
from sync_runner.project.compiled import CompiledSql
from sync_runner.project.target import (
    DbtTarget,
    WarehouseUnusable,
    built_for_another_target,
    default_target,
    error_line,
    from_warehouse,
    resolve_target,
    unreachable,
)
from sync_runner.project.versions import PackageVersionError, check_versions
from sync_runner.project.warehouse import Warehouse, connect, warehouse_refusal
from sync_runner.sync.alerts import RunFacts, dispatch
from sync_runner.sync.config import (
    ConfigProblem,
    SyncConfig,
    Unusable,
    disabled_sync,
    find_config,
    load_alerts,
    load_destinations,
    load_safeguards,
    load_syncs,
    unusable_syncs,
)
from sync_runner.sync.delivery import Outcome, deliver, json_fields, make_batches, plan_pages, records_page
from sync_runner.sync.destinations import REGISTRY, Terminal, Transient
from sync_runner.sync.destinations.base import Batch, BatchResult
from sync_runner.sync.destinations.capture import capped
from sync_runner.sync.destinations.values import dumps, dumps_records
from sync_runner.sync.safeguards import limits_for, stop_reason
from sync_runner.sync.state import DbtSteps, KeptSteps, Steps, decide, key_problems, left_behind_rows

if TYPE_CHECKING:
    pass

LOCK_TTL = timedelta(hours=6)
_ORPHANED: set[str] = set()  # locks of this process's runs whose unlock failed (e.g. the warehouse went away)


@dataclass
class SyncReport:
    """What one sync did in this run: what the CLI prints, the run log records and alerts tell (mutable: filled in
    as the run goes)."""

    sync: str
    model: str
    destination: str
    status: str = "pending"  # success | failed | skipped | planned
    planned: dict[str, int] = field(default_factory=dict)
    full_resync: bool = False
    sent: int = 0
    acknowledged: int = 0
    rejected: int = 0
    failed_rows: int = 0
    seconds: float = 0.0
    message: str = ""
    sample: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    alerts: list[str] = field(default_factory=list)  # one line per alert: sent, or why it was not delivered
    # why it failed or was skipped: "config" (a mistake in the project: exit 2) or "data" (exit 1), else ""
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (REDACT(v) if isinstance(v, str) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Options:
    """How a command runs the syncs (selection, full resync, dry run, commit window, retries, paging): the CLI's
    flags, and what tests and benchmarks set directly."""

    select: tuple[str, ...] = ()
    full_resync: bool = False
    dry_run: bool = False
    commit_rows: int = 50_000  # a commit window: at most this many rows ...
    commit_seconds: float = 5.0  # ... or this long, whichever comes first
    batch_rows: int | None = None
    max_attempts: int = 6
    base_delay: float = 0.5
    page_rows: int = 50_000  # plan rows fetched from the warehouse at a time (a reset plan's first part on DuckDB)
    # where manifest.json and run_results.json are read from (default <project_dir>/target; e.g. the artifacts
    # of a dbt Cloud run downloaded elsewhere)
    artifacts_dir: str | None = None
    # sync only models that are in run_results.json (built by that invocation); those that failed or were
    # skipped there are reported as skipped, those it did not build are left out
    only_built: bool = False
    # let plans through that a safeguard would stop (mass deletes or changes): --allow-large-changes
    allow_large_changes: bool = False
    # the record debugger for every selected sync (as `debug: true` on a sync): --debug
    debug: bool = False
    # a test sync: plan, send and commit only these primary keys (as text; parts of a composite key joined by |)
    keys: tuple[str, ...] = ()


Progress = Callable[[str, int, int], None]  # (sync name, rows done, rows planned)


class SyncConfigError(UserError):
    """A mistake in one sync's configuration found when it runs (a mapping to a column the relation lacks): that
    sync fails, the others run, and the command exits 2."""


class SyncDataError(UserError):
    """The model's rows cannot be synced as they are (null or duplicated primary keys, a value a cast of its
    mappings cannot take): that sync fails, exit 1."""

    exit_code = 1


def _is_glob(term: str) -> bool:
    return any(c in term for c in "*?[")


def _selected(sync: SyncConfig | Unusable, select: tuple[str, ...]) -> bool:
    if not select:
        return True
    return any(fnmatch.fnmatch(sync.name, s) or fnmatch.fnmatch(sync.model.name, s) for s in select)


BUILD_COMMANDS = ("build", "run")


def _build_verdicts(manifest: Manifest, results: RunResults | None, builds: dict[str, list[str]],
                    nodes: list[Any]) -> dict[str, tuple[str, str]]:
    """unique_id -> (status, why) for the synced models that must not sync now ("skipped": their last build did
    not succeed; "failed": their definition changed since it was built).

    manifest.json is the newest parse (`dbt parse` / `dbt compile` rewrite it); a model's last build is read
    from run_results.json when that file is the same invocation's build, else from the builds the package's
    on-run-end hook records (macros/sync/builds.sql), whose checksum must still be the manifest's."""
    same = (results is not None and results.command in BUILD_COMMANDS
            and (not manifest.invocation_id or manifest.invocation_id == results.invocation_id))
    out: dict[str, tuple[str, str]] = {}
    for node in nodes:
        result = results.results.get(node.unique_id) if same and results is not None else None
        if result is not None:
            if result.status not in ("success", "pass"):
                out[node.unique_id] = ("skipped", _unbuilt(node.name, result.status))
            continue
        record = builds.get(node.unique_id)
        if record is None:
            continue  # never recorded: the relation check says whether it exists
        checksum, status, _ = record
        if node.checksum and checksum and checksum != node.checksum:
            out[node.unique_id] = ("failed", f"its definition ({node.original_file_path}) changed since it was last "
                                             f"built: run dbt build -s {node.name}")
        elif status not in ("success", "pass"):
            out[node.unique_id] = ("skipped", _unbuilt(node.name, status))
    return out


def _unbuilt(model: str, status: str) -> str:
    return f"its last dbt build ended with status '{status}': fix it, then run dbt build -s {model}"


def _unrecorded(sync: SyncConfig, report: SyncReport, exc: BaseException, stopped: BaseException | None) -> str:
    """Why a run whose destination acknowledged rows did not record them: the warehouse refused the commit (it went
    away, a state table was dropped). Nothing of the commit is kept (it is one transaction), so the state is as
    before the run and the next run sends the same rows again."""
    after = f" (after delivery stopped: {error_line(stopped)})" if isinstance(stopped, Exception) else ""
    return (f"sync '{sync.name}': {report.acknowledged} row(s) acknowledged by '{sync.destination.name}' could not "
            f"be recorded in the warehouse{after}: {REDACT(error_line(exc))}; the sync state did not advance, so the "
            "next run sends them again")


def _refused_all(report: SyncReport, waiting: int) -> bool:
    """Whether the destination refused every record of a run that sent more rows than the keys already waiting in
    the sync's rejections (`waiting`), i.e. it refused new ones too: a failure. A run that only retried keys refused
    before, and was refused again, stays a success with its rejected count (else a quiet night with two bad emails
    would fail and alert every night). Keys waiting that left the model can hide a failure, never invent one."""
    sent = sum(report.planned.values())
    return bool(report.rejected) and not report.acknowledged and not report.failed_rows and sent > waiting


def _deletes(sync: SyncConfig) -> bool:
    """Whether the sync's plans delete (or clear) rows that leave the model."""
    return sync.mode != "insert" and (sync.mode == "mirror" or sync.on_delete != "nothing")


def _left_behind(sync: SyncConfig, rows: int | None) -> str:
    """The line for the rows a reset plan does not delete ("" when there are none): a full resync sends every row
    and deletes nothing, so rows that left the model since the last sync would stay in the destination unsaid."""
    if not rows:
        return ""
    return (f"{rows} row(s) that left the model since the last sync stay in '{sync.destination.name}': this run is a "
            "full resync (a first run after a change of the sync's primary key, mappings or mode, or --full-resync), "
            "which deletes nothing; remove them there, or sync before such a change (docs/sync.md)")


def _as_sent(sync: SyncConfig, sample: dict[str, Any]) -> dict[str, Any]:
    """A plan's sample under the fields the destination gets (`external_id`, not the model's `main_id` nor the
    plan's `dbt_studio_f1_email`), after `_op` and `_key`: what a user checks before a first sync. A column mapped
    to two fields shows under both; a template field is rendered as it is sent, so it is not in the sample."""
    where = {str(c).lower(): i for i, c in enumerate(sample.get("columns") or [])}
    picks = [(c, where[c]) for c in ("_op", "_key") if c in where]
    picks += [(f.dest, where[f.tracked.lower()]) for f in sync.fields  # in the mapping's order
              if f.template is None and f.tracked and f.tracked.lower() in where]
    return {"columns": [name for name, _ in picks], "rows": [[row[i] for _, i in picks] for row in sample["rows"]]}


def _failure(report: SyncReport, exc: BaseException) -> str:
    """The failed run's message: the error, with what the run's last steps noted about it (_noted)."""
    error = REDACT(exc)
    return report.message if report.message.startswith(error) else error


def _note(message: str, what: str, why: str) -> str:
    return f"{message} ({what}: {REDACT(why)})" if message else f"{what}: {REDACT(why)}"


def _noted(report: SyncReport, what: str, step: Callable[[], None]) -> None:
    """Run a bookkeeping step of a run that is over; if the warehouse refuses it, the report says so (`what`)
    instead of a traceback replacing the run's outcome. A bug of ours still raises."""
    try:
        step()
    except Exception as exc:
        if not from_warehouse(exc):
            raise
        report.message = _note(report.message, what, error_line(exc))


def _lock_is_stale(holder: str, acquired_at: str) -> bool:
    if holder in _ORPHANED:  # this process is alive but that run is over
        return True
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    try:
        return datetime.now() - datetime.fromisoformat(acquired_at[:26]) > LOCK_TTL
    except ValueError:
        return False


class SyncRunner:
    """One project, one warehouse connection, any number of syncs."""

    def __init__(self, where: DbtTarget, options: Options = Options(), progress: Progress | None = None) -> None:
        self.where = where
        self.options = options
        self.progress = progress
        artifacts = options.artifacts_dir or "target"  # an absolute directory replaces <project_dir>/target
        self.manifest = load_manifest(where.project_dir, artifacts)
        try:
            self.results: RunResults | None = load_run_results(where.project_dir, artifacts)
        except UserError:
            if options.only_built:
                raise
            self.results = None
        broken: dict[str, ConfigProblem] = {}  # destinations that cannot be configured: their syncs are skipped
        self.destinations = load_destinations(where.project_dir, where.profiles_dir, broken=broken)
        self.alerts = load_alerts(where.project_dir, where.profiles_dir)
        self.safeguards = load_safeguards(where.project_dir, where.profiles_dir)
        mistaken: list[Unusable] = []  # the syncs of a model whose meta.dbt_studio has a mistake: skipped
        every: list[SyncConfig | Unusable] = [
            *load_syncs(self.manifest, self.destinations, self.alerts, broken, unusable=mistaken),
            *[u for u in unusable_syncs(self.manifest, broken) if u.model.unique_id not in
              {m.model.unique_id for m in mistaken}], *mistaken]
        self.syncs = [s for s in every if isinstance(s, SyncConfig) and _selected(s, options.select)]
        self.unusable = [u for u in every if isinstance(u, Unusable) and _selected(u, options.select)]
        if options.select and not self.syncs and not self.unusable:
            disabled = disabled_sync(self.manifest, options.select)
            if disabled is not None:
                raise UserError(disabled)
            names = sorted({s.name for s in every} | {s.model.name for s in every})
            guesses = [g for g in (closest(term, names) for term in options.select if not _is_glob(term)) if g]
            hint = f" (did you mean {', '.join(repr(g) for g in dict.fromkeys(guesses))}?)" if guesses else ""
            raise UserError(f"no sync matches {' '.join(options.select)} in {self.manifest.path}{hint}")
        picked: list[SyncConfig | Unusable] = [*self.syncs, *self.unusable]
        chosen = sorted({s.name for s in picked})
        if options.keys and len(chosen) != 1:  # (none is "no sync matches" above)
            raise UserError(f"--keys sends a test sync of one sync: -s {' '.join(options.select)} selects "
                            f"{len(chosen)} ({', '.join(chosen)}); select one by its name")
        if options.only_built and self.results is not None:
            built = self.results.results
            self.syncs = [s for s in self.syncs if s.model.unique_id in built]
            self.unusable = [u for u in self.unusable if u.model.unique_id in built]
        self.skips: dict[str, tuple[str, str]] = {}
        self._warehouse: Warehouse | None = None
        self._session_changed = False
        self._session_end: list[str] = []  # what the direct connection runs before it closes (sync_session_end_sql)
        self._previous: dict[str, str | None] = {}  # sync -> status of its run before this one (the run log's)
        self._refusals: dict[str, str] = {}  # sync -> the first reason its destination refused a record for
        self._compiled: CompiledSql | None = None
        self._compiler: Warehouse | None = None  # built only to compile kept SQL on a miss (never connects)
        # seconds spent starting up (connecting, loading the kept SQL) whenever it happens: a sync's `time` leaves
        # it out, so a first sync that connects lazily does not look slow
        self._startup = 0.0

    @property
    def warehouse(self) -> Warehouse:
        """dbt's connection, made on first use (and from then on every statement of this process goes through it:
        one way into a DuckDB file per process)."""
        if self._warehouse is None:
            began = time.monotonic()
            if self._compiled is not None:
                self._compiled.drop_direct()
            warehouse = connect(self.where, self.manifest.path, reuse=self._compiler)
            self._compiler = None
            try:
                with warehouse.session():  # e.g. DuckDB's memory limit for planning (macros/sync/session.sql)
                    self._session_changed = bool(warehouse.call("sync_session_start"))
            except Exception as exc:  # a var the warehouse cannot take, e.g. a memory limit of 'a lot'
                warehouse.close()
                raise _refused_session(exc) from None
            self._warehouse = warehouse
            self._startup += time.monotonic() - began
        return self._warehouse

    def _spent_starting(self) -> float:
        """Seconds spent so far connecting and compiling SQL the cache did not hold: the command's start-up, left
        out of each sync's own time (a first sync that compiles lazily does not look slow)."""
        return self._startup + (self._compiled.compile_seconds if self._compiled is not None else 0.0)

    def _compile_with(self) -> Warehouse:
        """The dbt adapter that compiles a macro the cache does not hold: the runner's connection when it has one,
        else one built to compile only (it never opens dbt's connection, so a DuckDB file stays the direct
        connection's)."""
        if self._warehouse is not None:
            return self._warehouse
        if self._compiler is None:
            try:
                self._compiler = Warehouse(self.where, self.manifest.path)
            except Exception as exc:  # a bad profile: the one line connect() gives
                if isinstance(exc, UserError) or not from_warehouse(exc):
                    raise
                raise unreachable(self.where, exc) from None
        return self._compiler

    def compiled(self) -> CompiledSql:
        """The package's SQL kept compiled between commands (project/compiled.py). On a DuckDB file a sync runs
        it on a connection of its own, under the session's settings (KeptSteps), without loading dbt once it
        is kept; elsewhere the same statements run through the dbt adapter."""
        if self._compiled is None:
            began = time.monotonic()
            compiled = CompiledSql(self.where, self.manifest.path,
                                   [find_config(self.where.project_dir, self.where.profiles_dir)],
                                   connect=self._compile_with, close_warehouse=False,
                                   direct=self._warehouse is None, compile_only=True,
                                   manifest_sha256=self.manifest.sha256)
            self._compiled = compiled
            session = compiled.value("sync_session_sql")
            if compiled.direct:  # a dbt-backed warehouse runs sync_session_start itself
                self._session_end = list(compiled.value("sync_session_end_sql"))
                for sql in session:
                    try:
                        compiled.rows(sql)
                    except UserError:
                        raise
                    except Exception as exc:  # a var the warehouse cannot take, e.g. a memory limit of 'a lot'
                        raise _refused_session(exc) from None
            self._startup += time.monotonic() - began - compiled.compile_seconds  # (those count apart)
        return self._compiled

    def _built_for_another_target(self) -> str:
        return built_for_another_target(self.where)

    def _steps(self, debug: bool = False) -> Steps:
        """How this run's state steps run: from kept SQL on the direct connection while dbt is not loaded and the
        record debugger is off (its captures are written by dbt), else through dbt."""
        if self._warehouse is None and not debug:
            compiled = self.compiled()
            if compiled.direct:
                return KeptSteps(compiled)
        return DbtSteps(self.warehouse)

    def close(self) -> None:
        keep(self.manifest)  # the run is done: the next command reads the manifest's kept fields
        if self._compiled is not None:
            try:
                self._end_direct_session(self._compiled)
            finally:
                self._compiled.close()
        if self._compiler is not None:
            self._compiler.close()
        if self._warehouse is not None:
            try:
                if self._session_changed:
                    with self._warehouse.session():
                        self._warehouse.call("sync_session_end", changed=True)
            finally:
                self._warehouse.close()

    def _end_direct_session(self, compiled: CompiledSql) -> None:
        """Undo the direct connection's session settings before it closes: on DuckDB they are the database's, and
        a connection to the same file elsewhere in this process (dbt's, which `serve` and `dbt-studio build` keep
        between invocations) would otherwise build its models under the sync's memory cap. Never opens a
        connection to do it; an error here must not replace the run's own outcome (the connection closes next)."""
        if not (self._session_end and compiled.direct and compiled.connected):
            return
        with contextlib.suppress(Exception):
            for sql in self._session_end:
                compiled.rows(sql)

    def run(self) -> list[SyncReport]:
        reports = []
        try:  # connecting (when it is needed) is the command's start-up, not any sync's time
            default_schema, builds = self._start()
        except PackageVersionError:  # not one sync's problem: the command stops with one line
            raise
        except UserError as exc:  # a profile at fault is the project's configuration (exit 2), else a failed run
            problem = "config" if isinstance(exc, WarehouseUnusable) and exc.profile else ""
            return [SyncReport(s.name, s.model.name, s.destination.name, "failed", message=REDACT(exc),
                               problem=problem) for s in self.syncs] + [self._unusable(u) for u in self.unusable]
        models = list({s.model.unique_id: s.model for s in self.syncs}.values())
        results = self.results
        if results is not None and results.target and results.target != (self.where.target
                                                                          or default_target(self.where)):
            results = None  # run_results.json of a build of another target says nothing of this target's relations
        self.skips = _build_verdicts(self.manifest, results, builds, models)
        for sync in self.syncs:
            report = SyncReport(sync.name, sync.model.name, sync.destination.name)
            started, startup = time.monotonic(), self._spent_starting()
            verdict = self.skips.get(sync.model.unique_id)
            if verdict:
                report.status, report.message = verdict[0], f"{sync.model.label} not synced: {verdict[1]}"
            else:
                try:
                    self._run_one(sync, report)
                except Terminal as exc:
                    report.status, report.message = "failed", _failure(report, exc)
                except SyncConfigError as exc:
                    report.status, report.message, report.problem = "failed", _failure(report, exc), "config"
                except SyncDataError as exc:
                    report.status, report.message, report.problem = "failed", _failure(report, exc), "data"
                except UserError as exc:  # a safeguard, a lock held by another run, a model not built yet
                    report.status, report.message = "failed", _failure(report, exc)
                except Unsendable as exc:  # e.g. a URL without an http(s) scheme
                    report.status, report.message = "failed", _request_failure(sync.destination.name, exc)
                if report.status in ("success", "planned") and not report.message:
                    report.message = _keys_left_out(self.options.keys, report.planned)
            report.seconds = round(time.monotonic() - started - (self._spent_starting() - startup), 3)  # its own
            if not report.run_id and report.status in ("failed", "skipped") and not self.options.dry_run:
                self._log_stopped(sync.name, sync.model.name, sync.destination.name, sync.mode,
                                  sync.state_schema or default_schema, report)
            if report.status in ("success", "failed") and not self.options.dry_run:  # a plan tells no one
                self._alert(sync, report)
            reports.append(report)
        for unusable in self.unusable:
            report = self._unusable(unusable)
            if not self.options.dry_run:
                self._log_stopped(unusable.name, unusable.model.name, unusable.destination, unusable.mode,
                                  unusable.state_schema or default_schema, report)
            reports.append(report)
        return reports

    def _start(self) -> tuple[str, dict[str, Any]]:
        """The default state schema and the recorded builds (macros/sync/builds.sql), after the version check,
        from kept SQL (on a DuckDB file dbt is not loaded once it is kept). The version check of a kept run is the
        cached `dbt_studio_version`: the cache's fingerprint covers the package's files and dbt-studio's version."""
        c = self.compiled()
        if not c.direct or self.options.debug:  # connect() checked the versions
            wh = self.warehouse
            with wh.session():
                default_schema = wh.call("sync_default_state_schema")
                return default_schema, {} if self.options.only_built else wh.call("sync_model_builds")
        check_versions(__version__, self._package_version(c))
        default_schema = str(c.value("sync_default_state_schema"))
        builds: dict[str, Any] = {}
        if not self.options.only_built:
            sql = c.value("sync_model_builds_sql")
            recorded = c.existing_rows(sql["exists"], {"builds": sql["query"]})["builds"]
            builds = {str(r[0]): [r[1], r[2], r[3]] for r in recorded[1]} if recorded is not None else {}
        return default_schema, builds

    def _package_version(self, c: CompiledSql) -> str | None:
        """The installed package's release (dbt_studio_version, kept), or None when the package predates it."""
        try:
            return str(c.value("dbt_studio_version"))
        except UserError:
            raise
        except Exception:
            if "macro.dbt_studio.dbt_studio_version" not in self._compile_with().manifest.macros:
                return None
            raise

    @staticmethod
    def _unusable(unusable: Unusable) -> SyncReport:
        return SyncReport(unusable.name, unusable.model.name, unusable.destination, "skipped",
                          message=f"not run: {REDACT(unusable.reason)}", problem="config")

    def _log_stopped(self, name: str, model: str, destination: str, mode: str, state_schema: str,
                     report: SyncReport) -> None:
        """A run that stopped before sending (or was skipped) is in the run log with its reason, like any other:
        `dbt-studio status` shows it. A name that cannot name state tables is not logged (validate reports it)."""
        if not name or not name.replace("_", "a").isalnum() or not name[0].isalpha() or name.lower() != name:
            return
        args = {"name": name, "state_schema": state_schema, "mode": mode}
        run_id = uuid.uuid4().hex[:16]
        try:
            steps = self._steps()
            with steps.session():
                steps.prepare(args)
                steps.run_start(args, run_id, model, destination, self.options.full_resync)
                steps.run_finish(args, run_id, report.status, report.planned, 0, 0, report.message or None)
            report.run_id = run_id
        except Exception as exc:  # the warehouse went away: the report still says what happened
            report.message += f" (not recorded in the run log: {REDACT(error_line(exc))})"

    def _alert(self, sync: SyncConfig, report: SyncReport) -> None:
        """Tell the channels of the rules that match this run; never fails the sync (see sync/alerts.py)."""
        if not (sync.alerts or self.alerts.rules):
            return
        facts = RunFacts(sync=sync.name, model=sync.model.name, destination=sync.destination.name,
                         status=report.status, planned=dict(report.planned), sent=report.sent,
                         acknowledged=report.acknowledged, rejected=report.rejected, seconds=report.seconds,
                         reason=report.message, run_id=report.run_id,
                         previous_status=self._previous.get(sync.name), kind=sync.model.resource_type)
        report.alerts = dispatch(self.alerts, facts, sync.alerts)

    # -- one sync ------------------------------------------------------------------------------------------------

    def _run_one(self, sync: SyncConfig, report: SyncReport) -> None:
        if self.options.dry_run and sync.model.relation_name:
            args = self._preview(sync, report)
            reason = self._safeguard(sync, args, report, self._steps())
            if reason:
                report.message = f"a run would stop before sending anything: {reason}"
            return
        debug = self.options.debug or sync.debug
        steps = self._steps(debug)
        node = sync.model
        source = steps.source(node.database, node.schema, node.alias, node.relation_name or "")
        with steps.session():
            state_schema = sync.state_schema or str(self.compiled().value("sync_default_state_schema"))
            args = sync.macro_args(state_schema)
            stored = steps.stored_columns(source, node.database, node.schema, node.alias)
            args = _with_stored_names(sync, args, stored, self._built_for_another_target)
            args["only_keys"] = list(self.options.keys)
            steps.fit_session(source, node.materialized)
            if not self.options.dry_run:
                steps.prepare(args)
            with _plan_refusals(sync):  # the check reads the sync's rows: its filter can be refused too
                _check_keys(sync, steps.key_problems(args, source))
            if self.options.dry_run:  # a model without a relation name (the kept preview needs one)
                with _plan_refusals(sync):
                    counts = self.warehouse.call("sync_plan", sync=args, source=source,
                                                 full_resync=self.options.full_resync, dry_run=True,
                                                 left_behind=_deletes(sync))
                report.planned = {k: int(counts[k]) for k in ("insert", "update", "delete", "clear")}
                report.full_resync = bool(counts["reset"])
                report.sample = _as_sent(sync, counts["sample"])
                report.status = "planned"
                report.message = _left_behind(sync, counts.get("left_behind"))
                reason = self._safeguard(sync, args, report, steps)
                if reason:
                    report.message = f"a run would stop before sending anything: {reason}"
                return
            run_id = uuid.uuid4().hex[:16]
            report.run_id = run_id
            holder = f"{socket.gethostname()}:{os.getpid()}:{run_id}"
            self._lock(sync, args, holder, steps)
            try:
                self._previous[sync.name] = steps.last_status(args)
                steps.prune_changelog(args)
                steps.run_start(args, run_id, node.name, sync.destination.name, self.options.full_resync)
                error = None
                behind: int | None = None
                waiting = 0
                try:
                    with _plan_refusals(sync):
                        counts = steps.plan(args, source, self.options.full_resync,
                                            first_rows=self.options.page_rows, left_behind=_deletes(sync))
                    behind = counts.get("left_behind")
                    report.planned = {k: int(counts[k]) for k in ("insert", "update", "delete", "clear")}
                    report.full_resync = bool(counts["reset"])
                    reason = self._safeguard(sync, args, report, steps)
                    if reason:
                        steps.plan_settled(args)  # nothing of this plan was sent
                        raise UserError(f"sync '{sync.name}' stopped before sending anything: {reason} (let it "
                                        "through with --allow-large-changes, or with safeguards in dbt_studio.yml "
                                        "or on the sync)")
                    if report.full_resync:  # the snapshot now tracks this fingerprint: what gets acknowledged
                        steps.record_fingerprint(args)  # counts even if the run fails later
                    if debug:
                        wh = self.warehouse
                        wh.call("sync_debug_prepare", sync=args)
                        wh.call("sync_debug_prune", sync=args, days=sync.debug_days)
                        wh.call("sync_debug_planned", sync=args, run_id=run_id)
                    # keys refused before and waiting to be sent again: a run refused only those is no new failure
                    waiting = steps.refused_rows(args) if sum(report.planned.values()) else 0
                    self._deliver(sync, args, run_id, report, steps, debug)
                except (Terminal, UserError) as exc:
                    error = REDACT(exc)
                    raise
                except Unsendable as exc:
                    error = _request_failure(sync.destination.name, exc)
                    raise
                except Exception as exc:  # a bug: the run log must still say the run failed
                    error = REDACT(f"{exc.__class__.__name__}: {exc}")
                    raise
                finally:
                    refused = _refused_all(report, waiting)
                    status = "failed" if error or report.failed_rows or refused else "success"
                    report.status = status
                    if error:
                        report.message = error
                    elif report.failed_rows:
                        report.message = (f"{report.failed_rows} row(s) not delivered after retries "
                                          f"({report.message}): they are sent again on the next run")
                    elif refused:
                        report.message = (f"'{sync.destination.name}' refused every record it was sent "
                                          f"({report.rejected}, e.g. {self._refusals.get(sync.name, '')!r}; each is "
                                          f"in {sync.name}__rejections with its reason): they are sent again on the "
                                          "next run")
                    elif behind:
                        report.message = _left_behind(sync, behind)
                    _noted(report, "not recorded in the run log", lambda: steps.run_finish(
                        args, run_id, status, report.planned, report.acknowledged, report.rejected,
                        report.message or None))
                if report.status == "success":  # every planned row committed: nothing of this plan is in doubt
                    _noted(report, "the plan is emptied by the next run", lambda: steps.plan_settled(args))
            finally:
                try:
                    steps.unlock(args, holder)
                except Exception as exc:
                    _ORPHANED.add(holder)
                    if not from_warehouse(exc):
                        raise
                    report.message = _note(report.message, "the lock is taken over by the next run",
                                           error_line(exc))

    def _safeguard(self, sync: SyncConfig, args: dict[str, Any], report: SyncReport, steps: Steps) -> str | None:
        """Why this plan must not be sent (sync/safeguards.py), or None. A full resync never deletes: not checked."""
        if self.options.allow_large_changes or report.full_resync:
            return None
        limits = limits_for(self.safeguards, sync.safeguards, sync.mode)
        if limits.allow_large_changes or (limits.max_deletes is None and limits.max_delete_percent is None
                                          and limits.max_update_percent is None):
            return None
        return stop_reason(limits, report.planned, steps.snapshot_rows(args))

    def _preview(self, sync: SyncConfig, report: SyncReport) -> dict[str, Any]:
        """A dry run from kept SQL: the same macros as sync_plan(dry_run=true), run statement by statement (the
        probe, then sync_plan_decision, then the preview's counts and sample)."""
        c = self.compiled()
        node = sync.model
        source = node.relation_name
        state_schema = sync.state_schema or c.value("sync_default_state_schema")
        where = {"database": node.database, "schema": node.schema, "identifier": node.alias}
        stored = c.relation_columns(where)
        args = _with_stored_names(sync, sync.macro_args(state_schema), [r[0] for r in stored],
                                  self._built_for_another_target)
        args["only_keys"] = list(self.options.keys)
        with _plan_refusals(sync):
            _, problems = c.rows(c.value("sync_check_keys_sql", sync=args, source=source))
        _check_keys(sync, key_problems(problems))
        decided = decide(c, args, self.options.full_resync)
        with _plan_refusals(sync):
            behind = left_behind_rows(c, args, source, decided) if _deletes(sync) else None
        preview = c.value("sync_plan_preview_sql", sync=args, source=source, reset=decided["reset"],
                          previous=decided["previous"])
        counts = {"insert": 0, "update": 0, "delete": 0, "clear": 0}
        with _plan_refusals(sync):
            counts.update({str(op): int(n) for op, n in c.rows(preview["counts"])[1]})
            columns, rows = c.rows(preview["sample"])
        report.planned = counts
        report.full_resync = bool(decided["reset"])
        report.sample = _as_sent(sync, {"columns": columns, "rows": [list(r) for r in rows]})
        report.status = "planned"
        report.message = _left_behind(sync, behind)
        return args

    def _lock(self, sync: SyncConfig, args: dict[str, Any], holder: str, steps: Steps) -> None:
        current, acquired_at = steps.lock(args, holder)
        if current != holder and current is not None and _lock_is_stale(current, acquired_at or ""):
            current, acquired_at = steps.lock(args, holder, steal_from=current)
        if current != holder:
            steps.unlock(args, holder)  # a row of ours that lost a race to another's
            raise UserError(f"sync '{sync.name}' is already running ({current}, since {acquired_at}); "
                            "wait for it to finish")

    def _deliver(self, sync: SyncConfig, args: dict[str, Any], run_id: str, report: SyncReport, steps: Steps,
                 debug: bool = False) -> None:
        cls = REGISTRY[sync.destination.type]
        destination = cls(sync.destination.name, {**sync.destination.options, **sync.options}, sync.name, run_id,
                          self.where.project_dir)  # the sync's own options over dbt_studio.yml's
        try:
            destination.open()
            max_rows, max_bytes, _, _ = destination.limits()
        except Transient as exc:  # unreachable before anything was sent: this sync fails, the next run tries again
            raise Terminal(str(exc)) from None
        except (TypeError, ValueError) as exc:  # e.g. a timeout or batch_size that is not a number
            raise Terminal(f"destination '{sync.destination.name}': a config value is not valid ({exc})") from None
        if self.options.batch_rows:
            max_rows = min(max_rows, self.options.batch_rows)
        total = sum(report.planned.values())
        window: dict[str, list] = {"acked": [], "rejected": []}
        last_commit = [time.monotonic()]

        captures = _Captures(sync, args, run_id, self.warehouse) if debug else None

        def commit() -> None:
            if captures is not None:
                captures.flush()  # before the commit: the history reads sent, acknowledged, then committed
            if window["acked"] or window["rejected"]:
                steps.commit(args, run_id, _ranges(window["acked"]), window["rejected"])
                window["acked"], window["rejected"] = [], []
            last_commit[0] = time.monotonic()

        def oversize(seq: int, reason: str) -> None:
            window["rejected"].append([seq, reason])
            report.rejected += 1

        def on_outcome(outcome: Outcome) -> None:
            if captures is not None:
                captures.outcome(outcome)
            report.sent += len(outcome.batch.seqs)
            if outcome.failed:
                report.failed_rows += len(outcome.batch.seqs)
                report.message = REDACT(outcome.failed)  # the last reason, for the one-line summary
            acked = outcome.acked
            report.acknowledged += len(acked)
            report.rejected += len(outcome.rejected)
            # rejected rows are recorded (with reason and attempts) through the same commit
            window["acked"].extend(acked)
            window["acked"].extend(seq for seq, _ in outcome.rejected)
            # a destination may quote the request (URL, headers) in its reason: no secret reaches the state tables
            window["rejected"].extend([seq, REDACT(reason)] for seq, reason in outcome.rejected)
            if outcome.rejected:
                self._refusals.setdefault(sync.name, REDACT(outcome.rejected[0][1]))
            if self.progress:
                self.progress(sync.name, report.sent, total)
            due = (len(window["acked"]) >= self.options.commit_rows
                   or time.monotonic() - last_commit[0] >= self.options.commit_seconds)
            if due and not destination.commits_on_close:
                commit()

        sources = {f.dest: f.tracked for f in sync.fields if f.template is None}
        templates = {f.dest: Template(f.template) for f in sync.fields if f.template is not None}
        # how the warehouse writes the records in JSON, for a destination that sends them as they are (below)
        fields: list[list[Any]] | None = None

        def read(first: int, last: int) -> Any:
            """A page as Arrow, or, for JSON records of a plan of one page at most, as rows. Rows cost more to
            convert (a 50k-row page: 80-95 ms against Arrow's 40-45 ms, at 200k rows a sync took 1.32 s against
            1.17 s) but need no Arrow: DuckDB's Arrow layer is 30-35 ms of imports and pyarrow's first allocation
            can wait on the kernel (10-25 ms where transparent huge pages are on madvise, as Ubuntu ships them),
            which was a sixth of a 10k-row sync (a 50k-row one took 0.47 s against 0.51 s)."""
            with _plan_refusals(sync):  # a plan written in parts (state.py) writes its second part here
                if fields is not None and total <= self.options.page_rows:
                    return records_page(*steps.records(args, first, last, fields))
                return steps.page(args, first, last, fields)

        success = False
        stopped: BaseException | None = None  # what stopped delivery, if anything did
        try:  # the destination is open: from here it is closed, and what it acknowledged committed, whatever fails
            if total and destination.sends_json_records() and not templates and steps.writes_json(args):
                fields = json_fields(steps.plan_kinds(args), sources, sync.key_columns)
            stream = plan_pages(read, total, self.options.page_rows, first_rows=max_rows)
            deliver(destination, make_batches(stream, sources, max_rows, max_bytes, oversize, sync.key_columns,
                                              with_table=destination.wants_table, templates=templates,
                                              json_records=fields is not None),
                    on_outcome, self.options.max_attempts, self.options.base_delay,
                    captures.observe if captures is not None else None)
            success = True
        except BaseException as exc:
            stopped = exc
            raise
        finally:
            destination.close(success)
            # what was acknowledged is committed even when the run fails later, unless the destination
            # only makes it durable on a successful close
            if success or not destination.commits_on_close:
                try:
                    commit()
                except Exception as exc:
                    if not from_warehouse(exc):
                        raise
                    raise UserError(_unrecorded(sync, report, exc, stopped)) from None
            elif captures is not None:
                captures.flush()


class _Captures:
    """The record debugger's rows of one run, collected on the sender threads and written with each commit.

    Every text is redacted (REDACT: the values of env vars, e.g. tokens in a URL or a body) and size-capped before
    it is kept; HTTP headers that carry credentials were masked when captured (destinations/capture.py)."""

    def __init__(self, sync: SyncConfig, args: dict[str, Any], run_id: str, warehouse: Warehouse) -> None:
        self.sync, self.args, self.run_id, self.warehouse = sync, args, run_id, warehouse
        self.rows: list[list[Any]] = []
        self.lock = threading.Lock()

    def observe(self, batch: Batch, attempt: int, exchanges: list[dict[str, str]], result: BatchResult | None,
                error: str | None) -> None:
        first = batch.seqs[0]
        if exchanges:
            request = "\n\n".join(e["request"] for e in exchanges)
            response = "\n\n".join(e["response"] for e in exchanges)
        else:  # a warehouse, file or table destination: the records it was handed, and what it said
            sent = b'{"op":%s,"records":%s}' % (dumps(batch.op), dumps_records(batch.records))
            request = sent.decode("utf-8", "replace")
            response = error or dumps({"rejected": {batch.keys[i]: r for i, r in (result.rejected.items()
                                                                                  if result else [])}}).decode()
        rows = [[None, batch.op, "batch", first, attempt, error and REDACT(error), None,
                 REDACT(capped(request)), REDACT(capped(response))]]
        for key, record in zip(batch.keys, batch.records, strict=True):
            rows.append([key, batch.op, "sent", first, attempt, None,
                         REDACT(capped(dumps(record).decode("utf-8", "replace"), 4_096)), None, None])
        with self.lock:
            self.rows += rows

    def outcome(self, outcome: Outcome) -> None:
        batch = outcome.batch
        reasons = {seq: reason for seq, reason in outcome.rejected}
        rows = []
        for seq, key in zip(batch.seqs, batch.keys, strict=True):
            if outcome.failed:
                event, reason = "failed", outcome.failed
            elif seq in reasons:
                event, reason = "rejected", reasons[seq]
            else:
                event, reason = "acknowledged", None
            rows.append([key, batch.op, event, batch.seqs[0], None, reason and REDACT(reason), None, None, None])
        with self.lock:
            self.rows += rows

    def flush(self) -> None:
        with self.lock:
            rows, self.rows = self.rows, []
        if rows:
            self.warehouse.call("sync_debug_write", sync=self.args, run_id=self.run_id, rows=rows)


def _keys_left_out(keys: tuple[str, ...], planned: dict[str, int]) -> str:
    """A test sync's note when some of its `--keys` had nothing to send ("" when every key was planned): the plan
    holds a key only when its row changed since the last sync, or left the model."""
    left = len(keys) - sum(planned.values())
    if not keys or left <= 0:
        return ""
    which = f"none of the {len(keys)} --keys had anything" if left == len(keys) else \
        f"{left} of the {len(keys)} --keys had nothing"
    return (f"{which} to send: a key is planned only when its row changed "
            "since the last sync or left the model (check the key's spelling and type, e.g. 42 not 42.0; "
            "--full-resync sends unchanged rows again)")


@contextlib.contextmanager
def _plan_refusals(sync: SyncConfig) -> Iterator[None]:
    """A statement of the sync's plan (or its preview) that the warehouse refuses fails that sync with one line:
    its rows do not fit what its mappings ask of them (most often a cast a value cannot take), which is the
    user's to fix, not a bug that stops the command with a traceback."""
    try:
        yield
    except Exception as exc:
        refused = warehouse_refusal(exc)
        if refused is None:
            raise
        asks = [what for what, present in (("the transforms of its mappings", any(f.computed for f in sync.fields)),
                                           ("its filter", sync.filter is not None)) if present]
        hint = f"; check {' and '.join(asks)} against the model's values" if asks else ""
        raise SyncDataError(f"{sync.model.config_file}: {sync.model.label}: sync '{sync.name}': the warehouse "
                            f"refused its plan: {REDACT(refused)}{hint}") from None


def _refused_session(exc: BaseException) -> UserError:
    return UserError(f"the warehouse refused the sync session's settings (var dbt_studio_sync_duckdb_memory_limit): "
                     f"{REDACT(error_line(exc))}")


def _request_failure(destination: str, exc: Exception) -> str:
    """A request that could not be made at all (a bad URL or scheme, a bad header): one line, no traceback."""
    return REDACT(f"destination '{destination}': the request could not be sent ({exc.__class__.__name__}: "
                  f"{error_line(exc)})")


def _stored_names(rows: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """The row selection with every column as the warehouse stores it (the macros quote them)."""

    def tree(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "column" in node:
            return {**node, "column": columns.get(str(node["column"]).lower(), node["column"])}
        return {k: [tree(c) for c in v] if isinstance(v, list) else tree(v) for k, v in node.items()}

    out = dict(rows)
    out["filter"] = tree(rows.get("filter"))
    for key in ("split_column", "holdout_column"):
        if out.get(key):
            out[key] = columns.get(out[key].lower(), out[key])
    return out


def _with_stored_names(sync: SyncConfig, args: dict[str, Any], stored: list[str],
                       other_target: Callable[[], str] = lambda: "") -> dict[str, Any]:
    """The sync's macro arguments with each key, mapped, computed and selection column named as the warehouse
    stores it (the macros quote every column), as the full run's checks do; one line when one is missing
    (`other_target`: what to say when the last dbt command built another target, asked only then: it reads
    run_results.json)."""
    node = sync.model
    relation = node.relation_name or node.alias
    columns = {c.lower(): c for c in stored}
    if not columns:
        raise UserError(f"{node.label} has no relation {relation} in the warehouse: "
                        f"{other_target() or 'run dbt build first'}")
    listing = f"columns of {relation}: {', '.join(sorted(columns))}"
    missing = [c for c in (*sync.key_columns, *sync.columns) if c.lower() not in columns]
    if missing:
        raise SyncConfigError(f"{node.config_file}: {node.label}: sync '{sync.name}' maps "
                              f"{_unknown_columns(missing, columns)} ({listing})")
    unread = [c for c in sync.selection_columns() if c.lower() not in columns]
    if unread:
        raise SyncConfigError(f"{node.config_file}: {node.label}: sync '{sync.name}' selects rows by "
                              f"{_unknown_columns(unread, columns)} ({listing})")
    computed = {name: dict(spec) for name, spec in args["computed"].items()}
    for spec in computed.values():  # a transform's source column, as stored
        if spec.get("column"):
            spec["column"] = columns[spec["column"].lower()]
    return {**args, "key_columns": [columns[c.lower()] for c in sync.key_columns], "computed": computed,
            "columns": [c if c in computed else columns[c.lower()] for c in sync.tracked],
            "rows": _stored_names(args["rows"], columns)}


def _unknown_columns(names: list[str], columns: dict[str, str]) -> str:
    """'unknown column 'emial' (did you mean 'email'?)', one clause per name, for the one-line error. The
    suggestion is written as the listing of the columns writes it (lower case: names match whatever their case,
    and Snowflake stores unquoted names upper-cased)."""
    parts = []
    for name in names:
        close = closest(name.lower(), list(columns))
        parts.append(f"unknown column '{name}'" + (f" (did you mean '{close}'?)" if close else ""))
    return ", ".join(parts)


def _check_keys(sync: SyncConfig, keys: dict[str, Any]) -> None:
    if keys["nulls"] or keys["duplicates"]:
        parts = []
        if keys["nulls"]:
            parts.append(f"{keys['nulls']} row(s) with a null primary key")
        if keys["duplicates"]:
            examples = ", ".join(repr(e) for e in keys["examples"])
            parts.append(f"{keys['duplicates']} duplicated key(s), e.g. {examples}")
        raise SyncDataError(f"sync '{sync.name}' stopped before sending anything: {sync.model.label} has "
                        f"{' and '.join(parts)} in primary_key {', '.join(sync.key_columns)}")


def _ranges(seqs: list[int]) -> list[list[int]]:
    """[3, 4, 5, 9] -> [[3, 5], [9, 9]]"""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def exit_code(reports: list[SyncReport]) -> int:
    """2 when a sync failed or was skipped for a mistake in the project's configuration, 1 when one failed for its
    data, its destination or its build, else 0."""
    if any(r.problem == "config" and r.status in ("failed", "skipped") for r in reports):
        return 2
    return 1 if any(r.status == "failed" for r in reports) else 0


def run_syncs(project_dir: Path | str, profiles_dir: Path | str | None = None, target: str | None = None,
              options: Options = Options(), progress: Progress | None = None) -> list[SyncReport]:
    where = resolve_target(project_dir, profiles_dir, target)
    runner = SyncRunner(where, options, progress)
    try:
        return runner.run()
    finally:
        runner.close()


HISTORY_COLUMNS = ("at", "run_id", "event", "op", "batch", "attempt", "reason", "payload", "request", "response")


def record_history(project_dir: Path | str, profiles_dir: Path | str | None, target: str | None, sync_name: str,
                   key: str) -> list[dict[str, Any]]:
    """One record's history in one sync, oldest first (macro `sync_record_history`): what the debugger captured
    (planned, sent with its payload and its batch's request and response, acknowledged, rejected and why,
    failed), each acknowledged change the changelog holds, and a rejection still open."""
    where = resolve_target(project_dir, profiles_dir, target)
    manifest = load_manifest(where.project_dir)
    destinations = load_destinations(where.project_dir, where.profiles_dir)
    syncs = {s.name: s for s in load_syncs(manifest, destinations)}
    if sync_name not in syncs:
        disabled = disabled_sync(manifest, [sync_name])
        if disabled is not None:
            raise UserError(disabled)
        close = closest(sync_name, list(syncs))
        hint = f" (did you mean '{close}'?)" if close else f" (syncs: {', '.join(sorted(syncs)) or 'none'})"
        raise UserError(f"no sync named '{sync_name}' in {manifest.path}{hint}")
    sync = syncs[sync_name]
    warehouse = connect(where, manifest.path)
    try:
        with warehouse.session():
            args = sync.macro_args(sync.state_schema or warehouse.call("sync_default_state_schema"))
            rows = warehouse.call("sync_record_history", sync=args, key=key)
    finally:
        warehouse.close()
    return [{c: (REDACT(v) if isinstance(v, str) else v) for c, v in zip(HISTORY_COLUMNS, row, strict=True)}
            for row in rows]
