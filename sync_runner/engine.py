"""Running syncs: plan in the warehouse, deliver, commit what the destination acknowledged.

The warehouse does the diffing (package macros, EXCEPT / MINUS against the acknowledged snapshot); this
module streams the plan, hands batches to the destination and commits acknowledged plan rows every few
batches, so a crash re-sends at most one commit window and loses nothing.
"""

from __future__ import annotations

import fnmatch
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from .artifacts import Manifest, RunResults, load_manifest, load_run_results
from .config import REDACT, SyncConfig, load_destinations, load_syncs
from .delivery import Outcome, deliver, make_batches
from .destinations import REGISTRY, Terminal, Transient
from .errors import UserError
from .invoke import DbtTarget
from .warehouse import Warehouse

LOCK_TTL = timedelta(hours=6)
_ORPHANED: set[str] = set()  # locks of this process's runs whose unlock failed (e.g. the warehouse went away)


@dataclass
class SyncReport:
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

    def as_dict(self) -> dict[str, Any]:
        return {k: (REDACT(v) if isinstance(v, str) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Options:
    select: tuple[str, ...] = ()
    full_resync: bool = False
    dry_run: bool = False
    commit_rows: int = 50_000  # a commit window: at most this many rows ...
    commit_seconds: float = 5.0  # ... or this long, whichever comes first
    batch_rows: int | None = None
    max_attempts: int = 6
    base_delay: float = 0.5
    page_rows: int = 50_000  # plan rows fetched from the warehouse at a time
    # where manifest.json and run_results.json are read from (default <project_dir>/target; e.g. the artifacts
    # of a dbt Cloud run downloaded elsewhere)
    artifacts_dir: str | None = None
    # sync only models that are in run_results.json (built by that invocation); those that failed or were
    # skipped there are reported as skipped, those it did not build are left out
    only_built: bool = False


Progress = Callable[[str, int, int], None]  # (sync name, rows done, rows planned)


def _selected(sync: SyncConfig, select: tuple[str, ...]) -> bool:
    if not select:
        return True
    return any(fnmatch.fnmatch(sync.name, s) or fnmatch.fnmatch(sync.model.name, s) for s in select)


def _skips(manifest: Manifest, results: RunResults | None) -> dict[str, str]:
    """Models whose last build did not succeed: unique_id -> why."""
    if results is None:
        return {}
    if manifest.invocation_id and results.invocation_id and manifest.invocation_id != results.invocation_id:
        raise UserError(f"{results.path} is from another dbt invocation than {manifest.path}: run dbt build again")
    return {uid: f"its last build {r.status}" for uid, r in results.results.items()
            if r.status not in ("success", "pass")}


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
        self.destinations = load_destinations(where.project_dir, where.profiles_dir)
        self.syncs = [s for s in load_syncs(self.manifest, self.destinations) if _selected(s, options.select)]
        if options.select and not self.syncs:
            raise UserError(f"no sync matches {' '.join(options.select)} in {self.manifest.path}")
        if options.only_built and self.results is not None:
            self.syncs = [s for s in self.syncs if s.model.unique_id in self.results.results]
        self.skips = _skips(self.manifest, self.results)
        self._warehouse: Warehouse | None = None
        self._session_changed = False

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            warehouse = connect(self.where, self.manifest.path)
            try:
                with warehouse.session():  # e.g. DuckDB's memory limit for planning (macros/sync/session.sql)
                    self._session_changed = bool(warehouse.call("sync_session_start"))
            except Exception as exc:  # a var the warehouse cannot take, e.g. a memory limit of 'a lot'
                warehouse.close()
                first = next((line.strip() for line in str(exc).splitlines() if line.strip()), exc.__class__.__name__)
                raise UserError(f"the warehouse refused the sync session's settings (var "
                                f"dbt_studio_sync_duckdb_memory_limit): {REDACT(first)}") from None
            self._warehouse = warehouse
        return self._warehouse

    def close(self) -> None:
        if self._warehouse is not None:
            try:
                if self._session_changed:
                    with self._warehouse.session():
                        self._warehouse.call("sync_session_end", changed=True)
            finally:
                self._warehouse.close()

    def run(self) -> list[SyncReport]:
        reports = []
        for sync in self.syncs:
            report = SyncReport(sync.name, sync.model.name, sync.destination.name)
            started = time.monotonic()
            skip = self.skips.get(sync.model.unique_id)
            if skip:
                report.status, report.message = "skipped", f"model '{sync.model.name}' not synced: {skip}"
            else:
                try:
                    self._run_one(sync, report)
                except Terminal as exc:
                    report.status, report.message = "failed", REDACT(exc)
                except UserError as exc:
                    report.status, report.message = "failed", REDACT(exc)
            report.seconds = round(time.monotonic() - started, 3)
            reports.append(report)
        return reports

    # -- one sync ------------------------------------------------------------------------------------------------

    def _run_one(self, sync: SyncConfig, report: SyncReport) -> None:
        wh = self.warehouse
        node = sync.model
        relation = wh.relation(node.database, node.schema, node.alias)
        with wh.session():
            state_schema = sync.state_schema or wh.call("sync_default_state_schema")
            args = sync.macro_args(state_schema)
            columns = {c.lower(): c for c in wh.call("relation_columns", relation=relation, lower=False)}
            if not columns:
                raise UserError(f"model '{node.name}' has no relation {relation} in the warehouse: run dbt build first")
            missing = [c for c in (*sync.key_columns, *sync.columns) if c.lower() not in columns]
            if missing:
                raise UserError(f"{node.config_file}: model '{node.name}': sync '{sync.name}' maps unknown "
                                f"column(s) {', '.join(missing)} (the model has: {', '.join(sorted(columns))})")
            # the macros quote every column, so they get each one's name as the warehouse stores it
            args["key_columns"] = [columns[c.lower()] for c in sync.key_columns]
            args["columns"] = [columns[c.lower()] for c in sync.columns]
            if not self.options.dry_run:
                wh.call("sync_prepare", sync=args)
            keys = wh.call("sync_check_keys", sync=args, source=relation)
            if keys["nulls"] or keys["duplicates"]:
                parts = []
                if keys["nulls"]:
                    parts.append(f"{keys['nulls']} row(s) with a null primary key")
                if keys["duplicates"]:
                    examples = ", ".join(repr(e) for e in keys["examples"])
                    parts.append(f"{keys['duplicates']} duplicated key(s), e.g. {examples}")
                raise UserError(f"sync '{sync.name}' stopped before sending anything: model '{node.name}' has "
                                f"{' and '.join(parts)} in primary_key {', '.join(sync.key_columns)}")
            if self.options.dry_run:
                counts = wh.call("sync_plan", sync=args, source=relation, full_resync=self.options.full_resync,
                                 dry_run=True)
                report.planned = {k: int(counts[k]) for k in ("insert", "update", "delete", "clear")}
                report.full_resync = bool(counts["reset"])
                report.sample = counts["sample"]
                report.status = "planned"
                return
            run_id = uuid.uuid4().hex[:16]
            report.run_id = run_id
            holder = f"{socket.gethostname()}:{os.getpid()}:{run_id}"
            self._lock(sync, args, holder)
            try:
                wh.call("sync_prune_changelog", sync=args)
                wh.call("sync_run_start", sync=args, run_id=run_id, model=node.name,
                        destination=sync.destination.name, full_resync=self.options.full_resync)
                error = None
                try:
                    counts = wh.call("sync_plan", sync=args, source=relation, full_resync=self.options.full_resync)
                    report.planned = {k: int(counts[k]) for k in ("insert", "update", "delete", "clear")}
                    report.full_resync = bool(counts["reset"])
                    if report.full_resync:  # the snapshot now tracks this fingerprint: what gets acknowledged
                        wh.call("sync_record_fingerprint", sync=args)  # counts even if the run fails later
                    self._deliver(sync, args, run_id, report)
                except (Terminal, UserError) as exc:
                    error = REDACT(exc)
                    raise
                except Exception as exc:  # a bug: the run log must still say the run failed
                    error = REDACT(f"{exc.__class__.__name__}: {exc}")
                    raise
                finally:
                    status = "failed" if error or report.failed_rows else "success"
                    report.status = status
                    if error:
                        report.message = error
                    elif report.failed_rows:
                        report.message = (f"{report.failed_rows} row(s) not delivered after retries "
                                          f"({report.message}): they are sent again on the next run")
                    wh.call("sync_run_finish", sync=args, run_id=run_id, status=status, counts=report.planned,
                            acknowledged=report.acknowledged, rejected=report.rejected, error=report.message or None)
                if report.status == "success":  # every planned row committed: nothing of this plan is in doubt
                    wh.call("sync_plan_settled", sync=args)
            finally:
                try:
                    wh.call("sync_unlock", sync=args, holder=holder)
                except Exception:
                    _ORPHANED.add(holder)
                    raise

    def _pages(self, args: dict[str, Any], total: int) -> Iterator[pa.RecordBatch]:
        """The plan in pages of `page_rows`, each fetched whole: memory stays bounded by the page size."""
        page = self.options.page_rows
        for first in range(1, total + 1, page):
            sql = self.warehouse.call("sync_plan_rows_sql", sync=args, first_seq=first, last_seq=first + page - 1)
            yield from self.warehouse.fetch_arrow(sql).to_batches()

    def _lock(self, sync: SyncConfig, args: dict[str, Any], holder: str) -> None:
        wh = self.warehouse
        current, acquired_at = wh.call("sync_lock", sync=args, holder=holder)
        if current != holder and current is not None and _lock_is_stale(current, acquired_at or ""):
            current, acquired_at = wh.call("sync_lock", sync=args, holder=holder, steal_from=current)
        if current != holder:
            wh.call("sync_unlock", sync=args, holder=holder)  # a row of ours that lost a race to another's
            raise UserError(f"sync '{sync.name}' is already running ({current}, since {acquired_at}); "
                            "wait for it to finish")

    def _deliver(self, sync: SyncConfig, args: dict[str, Any], run_id: str, report: SyncReport) -> None:
        wh = self.warehouse
        cls = REGISTRY[sync.destination.type]
        destination = cls(sync.destination.name, sync.destination.options, sync.name, run_id, self.where.project_dir)
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

        def commit() -> None:
            if window["acked"] or window["rejected"]:
                wh.call("sync_commit", sync=args, run_id=run_id, acked=_ranges(window["acked"]),
                        rejected=window["rejected"])
                window["acked"], window["rejected"] = [], []
            last_commit[0] = time.monotonic()

        def oversize(seq: int, reason: str) -> None:
            window["rejected"].append([seq, reason])
            report.rejected += 1

        def on_outcome(outcome: Outcome) -> None:
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
            if self.progress:
                self.progress(sync.name, report.sent, total)
            due = (len(window["acked"]) >= self.options.commit_rows
                   or time.monotonic() - last_commit[0] >= self.options.commit_seconds)
            if due and not destination.commits_on_close:
                commit()

        success = False
        try:
            stream = self._pages(args, total)
            deliver(destination, make_batches(stream, dict(sync.mappings), max_rows, max_bytes, oversize,
                                              sync.key_columns, with_table=destination.wants_table),
                    on_outcome, self.options.max_attempts, self.options.base_delay)
            success = True
        finally:
            destination.close(success)
            # what was acknowledged is committed even when the run fails later, unless the destination
            # only makes it durable on a successful close
            if success or not destination.commits_on_close:
                commit()


def connect(where: DbtTarget, manifest_path: Path | None = None) -> Warehouse:
    """The warehouse of the profile, with a one-line error when it cannot be reached or opened."""
    try:
        warehouse = Warehouse(where, manifest_path)
        with warehouse.session():
            warehouse.call("sync_default_state_schema")
        return warehouse
    except UserError:
        raise
    except Exception as exc:  # the adapter's own errors: bad profile, locked file, unreachable host
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), exc.__class__.__name__)
        raise UserError(f"cannot use the warehouse of {where.project_dir} (target {where.target or 'default'}): "
                        f"{REDACT(first)}") from None


def _ranges(seqs: list[int]) -> list[list[int]]:
    """[3, 4, 5, 9] -> [[3, 5], [9, 9]]"""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def run_syncs(project_dir: Path | str, profiles_dir: Path | str | None = None, target: str | None = None,
              options: Options = Options(), progress: Progress | None = None) -> list[SyncReport]:
    project_dir = Path(project_dir).resolve()
    where = DbtTarget(project_dir, Path(profiles_dir).resolve() if profiles_dir else _profiles_dir(project_dir),
                      target)
    runner = SyncRunner(where, options, progress)
    try:
        return runner.run()
    finally:
        runner.close()


def _profiles_dir(project_dir: Path) -> Path | None:
    if (project_dir / "profiles.yml").is_file():
        return project_dir
    env = os.environ.get("DBT_PROFILES_DIR")
    return Path(env) if env else Path("~/.dbt").expanduser()


def recent_runs(project_dir: Path | str, profiles_dir: Path | str | None = None, target: str | None = None,
                limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs of the run log (every state schema the project's syncs use)."""
    project_dir = Path(project_dir).resolve()
    where = DbtTarget(project_dir, Path(profiles_dir).resolve() if profiles_dir else _profiles_dir(project_dir),
                      target)
    manifest = load_manifest(project_dir)
    destinations = load_destinations(project_dir, where.profiles_dir)
    syncs = load_syncs(manifest, destinations)
    warehouse = connect(where)
    try:
        with warehouse.session():
            default = warehouse.call("sync_default_state_schema")
            schemas = sorted({s.state_schema or default for s in syncs} or {default})
            runs: list[dict[str, Any]] = []
            for schema in schemas:
                result = warehouse.call("sync_recent_runs", state_schema=schema, limit=limit)
                runs += [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
    finally:
        warehouse.close()
    runs.sort(key=lambda r: str(r.get("started_at")), reverse=True)
    return runs[:limit]
