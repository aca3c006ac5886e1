"""Long work started from the studio (`dbt build -s <audience>`, `dbt-studio sync -s <sync>`, a plan), each a
child process whose output the pages stream line by line.

Why a child process: dbt keeps adapters process-wide and resets them per invocation, which would close the
studio's own connection, and DuckDB lets one process at a time open its file; so the studio's worker lets go of
its connection while a job runs (`Worker.released`) and takes it back after. Output goes through the project's
redaction before anyone sees it. One job at a time.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_runner.core.errors import UserError
from sync_runner.core.redact import REDACT
from sync_runner.project.target import DbtTarget

_ids = itertools.count(1)


@dataclass
class Job:
    id: int
    kind: str  # build | sync | plan
    subject: str
    command: list[str]
    lines: list[str] = field(default_factory=list)
    status: str = "queued"  # queued | running | succeeded | failed
    returncode: int | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed")


def dbt_command(where: DbtTarget, *args: str) -> list[str]:
    """`dbt <args>` in a child process, with dbt's per-process work kept between jobs (target.dbt_cli)."""
    return [sys.executable, "-c", "from sync_runner.project.target import dbt_cli; dbt_cli()", *args, *where.args()]


def studio_command(where: DbtTarget, *args: str) -> list[str]:
    return [sys.executable, "-c", "from sync_runner.cli import main; main()", *args, *where.args()]


class Jobs:
    def __init__(self, release: Callable[[], AbstractContextManager[None]],
                 after: Callable[[Job], None] = lambda job: None,
                 spawn: Callable[..., Any] = subprocess.Popen) -> None:
        """`spawn`: how a job's process starts, called as `subprocess.Popen` is (the test suite forks jobs from an
        interpreter that has imported dbt already: tests/helpers/cli_process.py)."""
        self.release = release
        self.after = after
        self.spawn = spawn
        self.jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def running(self) -> Job | None:
        return next((j for j in self.jobs.values() if not j.done), None)

    def start(self, kind: str, subject: str, command: list[str], cwd: Path) -> Job:
        with self._lock:
            busy = self.running()
            if busy is not None:
                raise UserError(f"{busy.kind} {busy.subject} is still running; wait for it to finish")
            job = Job(next(_ids), kind, subject, command)
            self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, cwd), name=f"studio-job-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job, cwd: Path) -> None:
        # dbt colours its lines unless told in its own words (it does not read NO_COLOR): a page shows no ANSI codes
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DBT_STUDIO_PROGRESS": "lines", "NO_COLOR": "1",
               "DBT_USE_COLORS": "false"}
        try:
            with self.release():
                job.status = "running"
                proc = self.spawn(job.command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
                assert proc.stdout is not None
                for line in proc.stdout:
                    job.lines.append(REDACT(line.rstrip("\n")))
                job.returncode = proc.wait()
            job.status = "succeeded" if job.returncode == 0 else "failed"
        except Exception as exc:  # reported on the job's page
            job.lines.append(REDACT(f"error: {exc}"))
            job.status = "failed"
        finally:
            job.finished = time.time()
            try:
                self.after(job)
            finally:
                if not job.done:
                    job.status = "failed"

    def wait(self, job: Job, timeout: float = 300) -> Job:
        end = time.time() + timeout
        while not job.done and time.time() < end:
            time.sleep(0.05)
        return job
