"""Schedules for teams without an orchestrator: `dbt-studio serve` runs the `schedules:` of dbt_studio.yml.

Each schedule is a cron expression (read by cronsim, healthchecks.io's maintained cron library) in a time zone,
and either dbt selectors (`select:` -> `dbt-studio build -s ...`: a build, then the syncs of what it built) or
sync names (`syncs:` -> `dbt-studio sync -s ...`). Jobs run one at a time on one thread, so a sync never runs
twice at once here (the engine's warehouse lock guards other processes).

Restarts: the last slot of each schedule is kept in target/dbt_studio_schedules.json, written before the job runs.
After a restart a schedule whose latest slot is newer than the kept one runs once (missed slots collapse into
one run), and a slot that already started never runs again, even if the process died during it: the next slot
picks up whatever that run left, as syncs are incremental. A schedule seen for the first time waits for its
next slot. The clock is a function the caller passes, so tests move time themselves.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from sync_runner.core.errors import UserError
from sync_runner.core.redact import REDACT
from sync_runner.sync.config import load_schedules_block

log = logging.getLogger("dbt_studio.schedules")

STATE_FILE = "dbt_studio_schedules.json"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    select: tuple[str, ...] = ()  # dbt selectors: build, then sync what was built
    syncs: tuple[str, ...] = ()  # sync names or globs: sync only
    timezone: str = "UTC"

    def latest_slot(self, now: datetime) -> datetime:
        """The latest time <= now the cron expression names (in UTC)."""
        local = now.astimezone(ZoneInfo(self.timezone))
        return next(CronSim(self.cron, local + timedelta(seconds=1), reverse=True)).astimezone(timezone.utc)

    def next_slot(self, now: datetime) -> datetime:
        local = now.astimezone(ZoneInfo(self.timezone))
        return next(CronSim(self.cron, local)).astimezone(timezone.utc)


def _items(value: object) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value or ())  # type: ignore[attr-defined]


def load_schedules(project_dir: Path, profiles_dir: Path | None = None) -> list[Schedule]:
    """The `schedules:` of dbt_studio.yml, each checked: its keys (declared), its cron expression and time zone,
    one of select / syncs, and a unique name."""
    path, block = load_schedules_block(project_dir, profiles_dir)
    out: list[Schedule] = []
    for i, spec in enumerate(block):
        where = f"{path}: schedules[{i}]"
        if ("select" in spec) == ("syncs" in spec):
            raise UserError(f"{where}: give either select (dbt selectors: build and sync) or syncs (sync only)")
        try:
            ZoneInfo(str(spec.get("timezone", "UTC")))
        except (ZoneInfoNotFoundError, ValueError):
            raise UserError(f"{where}.timezone: unknown time zone {spec.get('timezone')!r}") from None
        try:
            next(CronSim(str(spec["cron"]), datetime(2000, 1, 1)))
        except (CronSimError, StopIteration) as exc:
            raise UserError(f"{where}.cron: not a cron expression ({exc}): {spec['cron']!r}") from None
        if any(s.name == spec["name"] for s in out):
            raise UserError(f"{where}.name: duplicate schedule name '{spec['name']}'")
        out.append(Schedule(spec["name"], str(spec["cron"]), _items(spec.get("select")), _items(spec.get("syncs")),
                            str(spec.get("timezone", "UTC"))))
    return out


@dataclass(frozen=True)
class Ran:
    schedule: str
    slot: datetime
    outcome: str  # one line: what the job did, or why it failed


class Scheduler:
    """Runs due schedules, one at a time, at most once per slot, across restarts (the state file)."""

    def __init__(self, schedules: Sequence[Schedule], state_path: Path, job: Callable[[Schedule], str],
                 clock: Clock = utc_now) -> None:
        self.schedules = list(schedules)
        self.state_path = state_path
        self.job = job
        self.clock = clock
        self.history: list[Ran] = []

    def _state(self) -> dict[str, str]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, str]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.state_path)  # atomic: a crash leaves the old state or the new one

    def tick(self, stop: threading.Event | None = None) -> list[Ran]:
        """Run every schedule whose latest slot has not run yet (none once `stop` is set); returns what ran."""
        ran = []
        for schedule in self.schedules:
            if stop is not None and stop.is_set():  # serve is stopping: the job that ran was the last
                break
            now = self.clock()
            slot = schedule.latest_slot(now)
            state = self._state()
            last = state.get(schedule.name)
            if last is not None and datetime.fromisoformat(last) >= slot:
                continue
            state[schedule.name] = slot.isoformat()
            self._save(state)  # claimed before it runs: a slot never runs twice
            if last is None:
                log.info("schedule '%s': first seen; next run at %s", schedule.name, schedule.next_slot(now))
                continue
            try:
                outcome = self.job(schedule)
            except Exception as exc:  # noqa: BLE001 - one failed job never stops the scheduler
                outcome = REDACT(f"failed: {exc.__class__.__name__}: {exc}")
            log.info("schedule '%s' (slot %s): %s", schedule.name, slot.isoformat(), outcome)
            ran.append(Ran(schedule.name, slot, outcome))
        self.history += ran
        return ran

    def seconds_to_next(self) -> float:
        now = self.clock()
        if not self.schedules:
            return 3600.0
        return max(0.0, min((s.next_slot(now) - now).total_seconds() for s in self.schedules))

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick(stop)
            stop.wait(min(self.seconds_to_next() + 0.5, 3600.0))


# Seconds between tries of a job that found its DuckDB file held by another process: about half a minute in all.
LOCK_WAITS = (1.0, 2.0, 4.0, 8.0, 15.0)


def project_job(project_dir: Path, profiles_dir: Path | None, target: str | None,
                lock_waits: Sequence[float] = LOCK_WAITS) -> Callable[[Schedule], str]:
    """What a schedule does in a project: `dbt-studio build -s <select>` or `dbt-studio sync -s <syncs>`.

    A DuckDB file is open to one process at a time, and the studio or a `dbt build` by hand may hold it when a slot
    comes. Such a job did nothing (dbt and the syncs open the file before any work), so it is tried again after
    each of `lock_waits` before its slot is given up as failed."""
    import time

    from sync_runner.project.target import HELD_ELSEWHERE, release_dbt_duckdb
    from sync_runner.sync.engine import Options, run_syncs
    from sync_runner.sync.orchestrate import build_and_sync

    def once(schedule: Schedule) -> str:
        try:
            if schedule.select:
                report = build_and_sync(["-s", *schedule.select], project_dir, profiles_dir, target, quiet=True)
                reports, error = report.syncs, report.dbt_error or report.sync_error
            else:
                reports, error = run_syncs(project_dir, profiles_dir, target, Options(select=schedule.syncs)), ""
        finally:
            release_dbt_duckdb()  # serve lives for days: other processes open the DuckDB file between jobs
        parts = [f"{r.sync} {r.status}" + (f": {r.message}" if r.status != "success" and r.message else "")
                 for r in reports] or ["nothing to sync"]
        return REDACT("; ".join(parts) + (f"; {error}" if error else ""))

    def job(schedule: Schedule) -> str:
        outcome = once(schedule)
        for wait in lock_waits:
            if HELD_ELSEWHERE not in outcome:
                break
            log.info("schedule '%s': the DuckDB file is held by another process; trying again in %gs",
                     schedule.name, wait)
            time.sleep(wait)
            outcome = once(schedule)
        return outcome

    return job


def state_path(project_dir: Path) -> Path:
    return project_dir / "target" / STATE_FILE
