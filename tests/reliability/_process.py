"""Killable `dbt-studio sync` processes for the process-fault tests.

A *fork server* (this file run as a script) imports dbt, the adapters and `sync_runner` once; each sync to be
killed is a fresh process forked from it that runs the real CLI (`sync_runner.cli.main` with
`sync --project-dir ...`), so a trial costs the sync itself rather than two seconds of imports. The test sends
the child SIGKILL (kill -9) and the server reports how it died.

The child can be told where to stop, by a `pause` spec: `{"macro": "sync_commit", "call": 2, "statement": 3,
"hold": true}` means "in the 2nd call of the package macro `sync_commit`, just before its 3rd SQL statement"
(BEGIN / COMMIT included); a statement number past the macro's last one means "just after the macro returned".
A sync that runs from kept SQL (sync/state.py `KeptSteps`, DuckDB) makes the same steps without dbt: each of its
steps counts as a call of the macro it stands for (KEPT_STEPS) and each statement it runs on its own connection
as a statement of that call.
The child writes a marker file there and, with `hold`, waits to be killed; without it, it goes on and the test
kills it a few random milliseconds later (somewhere inside the next statements). Nothing of the engine is
replaced: the hooks only observe `Warehouse.call` and the adapter's `add_query`. The commit window of the CLI
run comes from `options` (the CLI has no flags for it). `warm` has the server parse the project's macros once
(dbt's parse, seconds under load), which its children then reuse.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
# KeptSteps' methods -> the macro whose statements each runs
KEPT_STEPS = {"prepare": "sync_prepare", "lock": "sync_lock", "unlock": "sync_unlock",
              "last_status": "sync_last_status", "prune_changelog": "sync_prune_changelog",
              "run_start": "sync_run_start", "plan": "sync_plan", "record_fingerprint": "sync_record_fingerprint",
              "commit": "sync_commit", "plan_settled": "sync_plan_settled", "run_finish": "sync_run_finish",
              "page": "sync_plan_rows"}  # (a page read past a plan's first part writes its second part first)


# -- the test side ------------------------------------------------------------------------------------------------

class ForkServer:
    """A warm Python process that forks `dbt-studio sync` children on request."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.proc = subprocess.Popen([sys.executable, str(HERE), "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self._read() == {"ready": True}

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server died (exit {self.proc.wait()})")
        return json.loads(line)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def warm(self, project_dir: Path) -> None:
        """Load what every sync of this project loads first (adapter, schemas, macros), so children skip it."""
        assert self._ask({"op": "warm", "project_dir": str(project_dir)}) == {"warm": True}

    def start(self, argv: list[str], env: dict[str, str], spec: dict[str, Any], name: str) -> Child:
        marker = self.log_dir / f"{name}.marker"
        log = self.log_dir / f"{name}.log"
        marker.unlink(missing_ok=True)
        pid = self._ask({"op": "start", "argv": argv, "env": env, "spec": {**spec, "marker": str(marker)},
                         "log": str(log)})["pid"]
        return Child(self, pid, marker, log)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


class Child:
    def __init__(self, server: ForkServer, pid: int, marker: Path, log: Path) -> None:
        self.server, self.pid, self.marker, self.log = server, pid, marker, log
        self.outcome: dict[str, Any] | None = None

    def alive(self) -> bool:
        if self.outcome is not None:
            return False
        try:  # a zombie (exited, not yet reaped by the server) still answers kill 0: ask /proc
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state != "Z"

    def wait_marker(self, timeout: float = 60.0) -> str | None:
        """The marker's text once the child reached its pause point; None if it ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.marker.exists():
                return self.marker.read_text()
            if not self.alive():
                return self.marker.read_text() if self.marker.exists() else None
            time.sleep(0.002)
        raise TimeoutError(f"child {self.pid} neither reached its pause point nor ended in {timeout} s")

    def kill9(self) -> dict[str, Any]:
        """SIGKILL the child; how it ended: {"signal": 9} when the kill landed, {"code": n} when it had exited."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        return self.wait()

    def wait(self) -> dict[str, Any]:
        if self.outcome is None:
            self.outcome = self.server._ask({"op": "wait", "pid": self.pid})
        return self.outcome

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# -- the child side ------------------------------------------------------------------------------------------------

def install_hooks(spec: dict[str, Any]) -> None:
    """Small commit windows for the CLI run, and the pause point (observing calls only)."""
    import functools

    from dbt.adapters.sql.connections import SQLConnectionManager

    import sync_runner.sync.engine as engine
    from sync_runner.project.compiled import CompiledSql
    from sync_runner.project.warehouse import Warehouse
    from sync_runner.sync.state import KeptSteps

    if spec.get("options"):
        engine.Options = functools.partial(engine.Options, **spec["options"])
    pause = spec.get("pause")
    if not pause:
        return
    marker = Path(spec["marker"])
    calls: Counter[str] = Counter()
    now: dict[str, Any] = {"macro": None, "call": 0, "statement": 0}

    def hit(where: str) -> None:
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(where)
        tmp.rename(marker)
        if pause.get("hold", True):
            while True:  # wait for the kill; the delivery threads go on meanwhile, as they would
                time.sleep(60)

    def targeted() -> bool:
        return now["macro"] == pause["macro"] and now["call"] == pause["call"]

    original_call = Warehouse.call
    original_add_query = SQLConnectionManager.add_query
    original_execute = CompiledSql._execute

    def observed(macro: str, run: Any) -> Any:
        if now["macro"] is not None:
            return run()
        calls[macro] += 1
        now.update(macro=macro, call=calls[macro], statement=0)
        try:
            result = run()
            if targeted() and now["statement"] < pause["statement"]:
                hit(f"after {macro} #{now['call']} ({now['statement']} statements)")
            return result
        finally:
            now["macro"] = None

    def statement(sql: str) -> None:
        if now["macro"] is not None:
            now["statement"] += 1
            if targeted() and now["statement"] == pause["statement"]:
                first = " ".join(sql.split())[:80]
                hit(f"in {now['macro']} #{now['call']} before statement {now['statement']}: {first}")

    def call(self: Warehouse, macro: str, **kwargs: Any) -> Any:
        return observed(macro, lambda: original_call(self, macro, **kwargs))

    def add_query(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        statement(sql)
        return original_add_query(self, sql, *args, **kwargs)

    def execute(self: Any, sql: str, params: Any = None, **kwargs: Any) -> Any:
        statement(sql)
        return original_execute(self, sql, params, **kwargs)

    def kept_step(name: str, macro: str) -> Any:
        original = getattr(KeptSteps, name)

        @functools.wraps(original)
        def step(self: Any, *args: Any, **kwargs: Any) -> Any:
            return observed(macro, lambda: original(self, *args, **kwargs))
        return step

    Warehouse.call = call  # type: ignore[method-assign]
    SQLConnectionManager.add_query = add_query  # type: ignore[method-assign]
    CompiledSql._execute = execute  # type: ignore[method-assign]
    for name, macro in KEPT_STEPS.items():
        setattr(KeptSteps, name, kept_step(name, macro))


def _child(request: dict[str, Any]) -> int:
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.update(request["env"])
    install_hooks(request["spec"])
    from sync_runner.cli import main

    sys.argv = ["dbt-studio", *request["argv"]]
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _remember_macros() -> None:
    """dbt parses every macro of the project and its packages for each adapter it builds (seconds); the
    children of a warm server reuse the parse of the same project (the files do not change during a test)."""
    from dbt.parser.manifest import ManifestLoader

    if getattr(ManifestLoader, "_remembered", None) is not None:
        return
    load = ManifestLoader.load_macros.__func__
    cache: dict[str, Any] = {}

    def load_macros(cls, root_config, macro_hook, base_macros_only=False):
        key = f"{root_config.project_root}:{base_macros_only}"
        if key not in cache:
            cache[key] = load(cls, root_config, macro_hook, base_macros_only)
        return cache[key]

    ManifestLoader.load_macros = classmethod(load_macros)
    ManifestLoader._remembered = cache


def serve() -> None:
    import traceback

    from helpers.cli_process import import_the_cli

    import_the_cli()
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                code = 3
                try:
                    code = _child(request)
                except BaseException:  # noqa: BLE001
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            reply: dict[str, Any] = {"pid": pid}
        elif request["op"] == "warm":
            from sync_runner.project.target import DbtTarget
            from sync_runner.project.warehouse import Warehouse

            root = Path(request["project_dir"])
            _remember_macros()
            Warehouse(DbtTarget(root, root, None))  # builds the adapter and loads macros; opens no connection
            reply = {"warm": True}
        else:
            _, status = os.waitpid(request["pid"], 0)
            reply = ({"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
                     else {"code": os.WEXITSTATUS(status)})
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        sys.path.insert(0, str(HERE.parents[1]))  # tests/, for helpers
        serve()


@contextlib.contextmanager
def forked(fp: Any, sinks: dict[str, Any], tmp: Path) -> Iterator[ForkServer]:
    """A ForkServer warmed on the built project; on the way out it, the project's adapter and the sinks close."""
    fp.release()
    server = ForkServer(tmp)
    server.warm(fp.p.root)
    try:
        yield server
    finally:
        server.close()
        fp.release()
        for sink in sinks.values():
            sink.close()
