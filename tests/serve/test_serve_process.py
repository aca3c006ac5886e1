"""`dbt-studio serve` as its own process, stopped the way a service manager stops it (SIGTERM): the job that runs
finishes, the process says it stopped in one line and exits 0, with no warning (multiprocessing's resource tracker
warned of a leaked semaphore when the signal killed the process after dbt had run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import free_port
from helpers.cli_process import CLI
from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, person

SCHEDULE = "schedules:\n  - name: every_minute\n    cron: '* * * * *'\n    syncs: people_out\n"
CLOUD = "dbt_cloud:\n  account_id: 70403\n"


@pytest.fixture(scope="module")
def sp(new_project, tmp_path_factory):
    sp = SyncProject(new_project("duckdb", name="serve_process", source=PROJECT), tmp_path_factory.mktemp("out"))
    sp.destinations(f"destinations:\n  out: {{type: file, path: {sp.tmp}}}\n")
    sp.build({"u1": person(1), "u2": person(2)}, [{"name": "people_out", "destination": "out", "mappings": MAPPINGS}])
    return sp


def _serve_until_the_job_ran(sp: SyncProject, config: str) -> tuple[int, list[str], str]:
    """Start serve with `config` after dbt_studio.yml's destinations (the schedule's slot is due: the state file
    says the last one ran in 2020), wait for the job's line and, with webhooks, for /healthz; then SIGTERM.
    (exit code, stderr lines, stdout)."""
    root = sp.p.root
    (root / "dbt_studio.yml").write_text(f"destinations:\n  out: {{type: file, path: {sp.tmp}}}\n{config}",
                                         encoding="utf-8")
    (root / "target" / "dbt_studio_schedules.json").write_text(
        json.dumps({"every_minute": "2020-01-01T00:00:00+00:00"}), encoding="utf-8")
    sp.p.release()
    port = free_port()
    env = {**os.environ, "DBT_CLOUD_API_TOKEN": "token", "DBT_CLOUD_WEBHOOK_SECRET": "secret"}
    process = subprocess.Popen([sys.executable, "-c", CLI, "serve", "--project-dir", str(root), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        wanted = ["(slot ", "Application startup complete"] if "dbt_cloud" in config else ["(slot "]
        while not all(any(w in line for line in lines) for w in wanted):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(10)
    return code, [line.rstrip("\n") for line in lines], process.stdout.read()


@pytest.mark.parametrize("config", [SCHEDULE, SCHEDULE + CLOUD], ids=["schedules", "schedules and webhooks"])
def test_sigterm_stops_serve_cleanly(sp, config):
    code, err, out = _serve_until_the_job_ran(sp, config)
    assert code == 0, err
    [job] = [line for line in err if "(slot " in line]
    assert job.endswith("): people_out success"), err
    assert err[-1] == "dbt-studio serve: stopped (SIGTERM)", err
    assert not [line for line in err if "arning" in line or "leaked" in line or "Traceback" in line], err
    assert out == ""


def test_a_scheduler_that_is_stopping_starts_no_other_job(sp):
    """After SIGTERM the job that runs finishes, and no other due slot starts one (the next start runs it)."""
    from sync_runner.serve.schedules import Scheduler, load_schedules, project_job, state_path

    root = sp.p.root
    (root / "dbt_studio.yml").write_text(f"destinations:\n  out: {{type: file, path: {sp.tmp}}}\n{SCHEDULE}",
                                         encoding="utf-8")
    due = {"every_minute": "2020-01-01T00:00:00+00:00"}
    state_path(root).write_text(json.dumps(due), encoding="utf-8")
    stop = threading.Event()
    stop.set()
    scheduler = Scheduler(load_schedules(root, root), state_path(root), project_job(root, root, None))
    assert scheduler.tick(stop) == []
    assert json.loads(state_path(root).read_text(encoding="utf-8")) == due  # the slot is still due
