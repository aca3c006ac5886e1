"""`dbt-studio <args>` as its own process, forked from a warm one: what `python -c "from sync_runner.cli import
main; main()"` does, without paying for the imports each time.

Tests that run the CLI as users do (exit code, stdout, stderr, files left behind) spent over half of those
processes' CPU importing dbt, the adapters and the runner again (py-spy over the whole suite: a tenth of its CPU).
A *CLI server* (this file run as a script) imports them once and starts no thread; each call forks a child of it
that sets the caller's environment, working directory and arguments, points its stdout and stderr at files, runs
`sync_runner.cli.main()` and exits the way the interpreter would (exit code, traceback on stderr, atexit
handlers). Nothing the tests did in their own process reaches the child: the server has only imported modules.
One server per test process, started on first use. Import-time behaviour (what a command imports, how long it
takes) is tested with real interpreters elsewhere (tests/test_layering.py, benchmarks/startup.py).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

_SERVER: subprocess.Popen[str] | None = None
# the cyclic collector's thresholds of every test process: the workers (conftest) and the CLI servers (below);
# why and what they measured: conftest's `_collect_garbage_less_often`
GC_THRESHOLDS = (5000, 20, 1000)


def _server() -> subprocess.Popen[str]:
    global _SERVER
    if _SERVER is None or _SERVER.poll() is not None:
        _SERVER = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, bufsize=1)
        assert _SERVER.stdout is not None
        ready = _SERVER.stdout.readline()
        if json.loads(ready or "{}") != {"ready": True}:
            raise RuntimeError(f"the CLI server did not start (exit {_SERVER.wait()})")
    return _SERVER


@atexit.register
def _stop() -> None:
    if _SERVER is not None and _SERVER.poll() is None:
        _SERVER.kill()
        _SERVER.wait()


def run_cli_process(*args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None,
                    timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Like `subprocess.run([python, -c, "from sync_runner.cli import main; main()", *args], capture_output=True,
    text=True, env=env, cwd=cwd, timeout=timeout)`; `env` None inherits this process's environment."""
    server = _server()
    assert server.stdin is not None and server.stdout is not None
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        request = {"argv": list(args), "env": dict(os.environ if env is None else env),
                   "cwd": str(cwd if cwd is not None else os.getcwd()), "stdout": str(out), "stderr": str(err)}
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        pid = json.loads(server.stdout.readline())["pid"]
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):  # it ended as the time ran out
                os.kill(pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            code = json.loads(server.stdout.readline())["code"]
        finally:
            timer.cancel()
        if expired.is_set():
            raise subprocess.TimeoutExpired(["dbt-studio", *args], timeout)
        return subprocess.CompletedProcess(["dbt-studio", *args], code, out.read_text(encoding="utf-8"),
                                           err.read_text(encoding="utf-8"))


# -- the server side ----------------------------------------------------------------------------------------------

def _child(request: dict[str, Any]) -> int:
    """What the interpreter does for `python -c "from sync_runner.cli import main; main()" <argv>`."""
    import traceback

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = ["-c", *request["argv"]]
    code = 0
    try:
        from sync_runner.cli import main

        main()
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - the interpreter prints any other exception and exits 1
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    return code


def import_the_cli() -> None:
    """What the commands import, loaded once by a server that forks them (here and the process-fault tests'); none
    of these imports starts a thread, so forking is safe. Then tell the test side the server is ready."""
    import dbt.adapters.duckdb  # noqa: F401
    import dbt.adapters.snowflake  # noqa: F401
    import dbt.adapters.sql.connections  # noqa: F401
    from dbt.cli.main import dbtRunner  # noqa: F401
    from dbt.config.runtime import RuntimeConfig  # noqa: F401
    from dbt.parser.manifest import ManifestLoader  # noqa: F401

    import sync_runner.cli  # noqa: F401
    import sync_runner.sync.destinations  # noqa: F401
    import sync_runner.sync.engine  # noqa: F401

    _build_dbt_json_schemas()
    # collect as seldom as the test workers do, and never scan again what was imported
    gc.set_threshold(*GC_THRESHOLDS)
    gc.collect()
    gc.freeze()
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()


def _build_dbt_json_schemas() -> None:
    """dbt validates dbt_project.yml, profiles.yml, packages.yml and selectors.yml against JSON schemas that it
    builds from its dataclasses on first use in a process (cached after); every forked command built them again:
    a twentieth of those processes' CPU (py-spy over the suite). Built here once, the children inherit them."""
    from dbt.adapters.duckdb.credentials import DuckDBCredentials
    from dbt.adapters.snowflake.connections import SnowflakeCredentials
    from dbt.contracts.project import PackageConfig, ProfileConfig, ProjectFlags
    from dbt.contracts.project import Project as ProjectContract
    from dbt.contracts.selection import SelectorFile

    for contract in (ProjectContract, ProjectFlags, ProfileConfig, PackageConfig, SelectorFile, DuckDBCredentials,
                     SnowflakeCredentials):
        contract.json_schema()


def serve() -> None:
    import_the_cli()
    protocol = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                code = _child(request)
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        protocol.write(json.dumps({"pid": pid}) + "\n")
        protocol.flush()
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        protocol.write(json.dumps({"code": code}) + "\n")
        protocol.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        sys.path[0] = ""  # as for `python -c`: the working directory, not this folder
        serve()
