"""Schedules with a clock the test moves: real syncs (and a real dbt build) of a DuckDB project, run by the
scheduler of `dbt-studio serve`; a restart (a new scheduler on the same state file) runs a missed slot once and
never runs a slot twice. Expected runs are worked out by hand from the cron expressions."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from sync_runner.core.errors import UserError
from sync_runner.serve.schedules import Scheduler, load_schedules, project_job, state_path

from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, person


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sp(new_project, tmp_path_factory):
    project = new_project("duckdb", name="schedules", source=PROJECT)
    sp = SyncProject(project, tmp_path_factory.mktemp("schedules_out"))
    sp.destinations(f"""\
destinations:
  out: {{type: file, path: {sp.tmp}}}
schedules:
  - name: hourly_sync
    cron: "0 * * * *"
    syncs: people_out
  - name: nightly_build
    cron: "30 2 * * *"          # 02:30 in Berlin (UTC+1 in November) is 01:30 UTC
    timezone: Europe/Berlin
    select: "+people"
""")
    sp.build({"u1": person(1), "u2": person(2)}, [{"name": "people_out", "destination": "out", "mappings": MAPPINGS}])
    assert sp.sync()["people_out"].status == "success"  # a first run by hand: the run log exists
    return sp


def _sync_runs(sp: SyncProject) -> int:
    return len([r for r in sp.state("people_out", "sync_runs") if r[1] == "people_out"])


def test_slots_run_once_in_order_and_a_restart_runs_a_missed_slot_once(sp):
    root = sp.p.root
    schedules = load_schedules(root, root)
    assert [(s.name, s.syncs, s.select, s.timezone) for s in schedules] == [
        ("hourly_sync", ("people_out",), (), "UTC"), ("nightly_build", (), ("+people",), "Europe/Berlin")]
    state = state_path(root)
    state.unlink(missing_ok=True)
    now = [at(0, 7)]
    job = project_job(root, root, None)

    def scheduler() -> Scheduler:  # a new one each time is a restart: only the state file carries over
        return Scheduler(schedules, state, job, clock=lambda: now[0])

    first = scheduler()
    assert first.tick() == []  # first seen: waits for the next slot
    assert json.loads(state.read_text()) == {"hourly_sync": at(0, 0).isoformat(),
                                             "nightly_build": at(1, 30).replace(day=29).isoformat()}
    before = _sync_runs(sp)
    now[0] = at(0, 59)
    assert first.tick() == []
    now[0] = at(1, 0)
    ran = first.tick()
    assert [(r.schedule, r.slot) for r in ran] == [("hourly_sync", at(1, 0))]
    assert ran[0].outcome == "people_out success" and _sync_runs(sp) == before + 1
    now[0] = at(1, 10)
    assert first.tick() == []  # the same slot again: nothing

    now[0] = at(1, 31)  # the nightly build's slot (02:30 Berlin)
    sp.p.release()
    ran = first.tick()
    assert [(r.schedule, r.slot, r.outcome) for r in ran] == [("nightly_build", at(1, 30), "people_out success")]
    assert _sync_runs(sp) == before + 2

    # down from 01:31 to 04:10: the hourly slots 02:00, 03:00 and 04:00 were missed -> one run, for 04:00
    now[0] = at(4, 10)
    sp.p.release()
    restarted = scheduler()
    assert [(r.schedule, r.slot) for r in restarted.tick()] == [("hourly_sync", at(4, 0))]
    assert _sync_runs(sp) == before + 3
    again = scheduler()  # another restart in the same slot: it already ran
    assert again.tick() == []
    assert _sync_runs(sp) == before + 3
    now[0] = at(4, 0).replace(hour=5)
    assert [r.schedule for r in again.tick()] == ["hourly_sync"]
    assert again.seconds_to_next() == 3600.0  # the next hourly slot; the nightly one is 20 h 30 min away


def test_other_processes_can_open_the_database_between_jobs(sp):
    """dbt-duckdb keeps a database open for the life of the process that ran dbt, and serve lives for days: after
    each job the file is let go, so a `dbt build` by hand, the studio or `dbt-studio status` can open it."""
    root = sp.p.root
    sp.p.release()
    job = project_job(root, root, None)
    database = root / "target" / "warehouse.duckdb"
    opened = f"import duckdb; duckdb.connect({str(database)!r}).close()"
    for schedule in load_schedules(root, root):  # the sync-only job and the build-and-sync job
        assert job(schedule) == "people_out success"
        other = subprocess.run([sys.executable, "-c", opened], capture_output=True, text=True)
        assert other.returncode == 0, other.stderr[-500:]


def test_bad_schedules_are_one_line_errors(sp):
    yml = sp.p.root / "dbt_studio.yml"
    good = yml.read_text()
    try:
        for broken, message in (
            (good.replace('cron: "0 * * * *"', 'cron: "61 * * * *"'), "schedules[0].cron: not a cron expression"),
            (good.replace("syncs: people_out", "sync: people_out"),
             "schedules[0].sync: unknown key 'sync' (did you mean 'syncs'?)"),
            (good.replace("timezone: Europe/Berlin", "timezone: Mars/Olympus"),
             "schedules[1].timezone: unknown time zone 'Mars/Olympus'"),
            (good.replace("    syncs: people_out\n", ""), "schedules[0]: give either select"),
        ):
            yml.write_text(broken)
            with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]").replace(
                    "(", r"\(").replace(")", r"\)").replace("?", r"\?")):
                load_schedules(sp.p.root, sp.p.root)
    finally:
        yml.write_text(good)


def test_a_job_waits_for_a_duckdb_file_another_process_holds(sp):
    """The studio or a `dbt build` by hand may hold the DuckDB file when a slot comes: the job is tried again a few
    times, runs once the file is free, and if it never is, fails with the reason."""
    root = sp.p.root
    before = _sync_runs(sp)
    sp.p.release()  # this process lets go of the file, as serve does between jobs
    database = root / "target" / "warehouse.duckdb"

    def holder(until: str) -> subprocess.Popen:
        """A process that opens the file (waiting for it if need be), says so, and holds it `until`."""
        code = ("import duckdb, sys, time\n"
                "while True:\n"
                f"    try: con = duckdb.connect({str(database)!r}); break\n"
                "    except duckdb.IOException: time.sleep(0.05)\n"
                f"print('held', flush=True)\n{until}\n")
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        ready = threading.Timer(30, proc.kill)  # a file this process never lets go of fails the test, not CI
        ready.start()
        line = proc.stdout.readline().strip()
        ready.cancel()
        assert line == "held", "the holder never got the file"
        return proc

    sync_only = next(s for s in load_schedules(root, root) if s.syncs)
    forever = holder("sys.stdin.read()")
    try:
        outcome = project_job(root, root, None, lock_waits=(0.1, 0.1))(sync_only)
    finally:
        forever.stdin.close()
        forever.wait(10)
    assert outcome.startswith("people_out failed: cannot use the warehouse") and "Conflicting lock" in outcome
    briefly = holder("time.sleep(1.5)")
    started = time.monotonic()
    assert project_job(root, root, None, lock_waits=(0.5, 1.0, 2.0, 4.0))(sync_only) == "people_out success"
    assert time.monotonic() - started >= 1.0 and briefly.wait(10) == 0
    assert _sync_runs(sp) == before + 1  # the tries that found the file held recorded nothing; the last one ran
