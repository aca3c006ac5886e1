"""`dbt-studio <args>` as its own process, forked from a warm one: what `python -c "from sync_runner.cli import
main; main()"` does, without paying for the imports each time.

Tests that run the CLI as users do (exit code, stdout, stderr, files left behind) spent over half of those
processes' CPU importing dbt, the adapters and the runner again (py-spy over the whole suite: a tenth of its CPU).
A *CLI server* (this file run as a script) imports them once and starts no thread; each call forks a child of it
that sets the caller's environment, working directory and arguments, points its stdout and stderr at files (or a
named pipe), runs the command's code (`sync_runner.cli.main()`, or `dbt.cli.main.cli()` for the studio's builds)
and exits the way the interpreter would (exit code, traceback on stderr, atexit handlers). Nothing the tests did
in their own process reaches the child: the server has only imported modules. A server serves one call at a time;
a test process starts one on first use and another only while all of its servers are busy (a studio job running
while the test runs a command). Import-time behaviour (what a command imports, how long it takes) is tested with
real interpreters elsewhere (tests/test_layering.py, benchmarks/startup.py).
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

CLI = "from sync_runner.cli import main; main()"  # what `dbt-studio` runs
_IDLE: list[subprocess.Popen[str]] = []  # servers no caller is using
_ALL: list[subprocess.Popen[str]] = []
_POOL = threading.Lock()
# the cyclic collector's thresholds of every test process: the workers (conftest) and the CLI servers (below);
# why and what they measured: conftest's `_collect_garbage_less_often`
GC_THRESHOLDS = (5000, 20, 1000)


def _take_server() -> subprocess.Popen[str]:
    """A server for one call: an idle one, or a new one when every server is busy (a studio job running while the
    test runs a command)."""
    with _POOL:
        while _IDLE:
            server = _IDLE.pop()
            if server.poll() is None:
                return server
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)
    assert server.stdout is not None
    ready = server.stdout.readline()
    if json.loads(ready or "{}") != {"ready": True}:
        raise RuntimeError(f"the CLI server did not start (exit {server.wait()})")
    with _POOL:
        _ALL.append(server)
    return server


def _give_back(server: subprocess.Popen[str]) -> None:
    with _POOL:
        _IDLE.append(server)


@atexit.register
def _stop() -> None:
    for server in _ALL:
        if server.poll() is None:
            server.kill()
            server.wait()


def _start(server: subprocess.Popen[str], request: dict[str, Any]) -> int:
    """Send a request; the child's pid."""
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(json.dumps(request) + "\n")
    server.stdin.flush()
    return int(json.loads(server.stdout.readline())["pid"])


def _outcome(server: subprocess.Popen[str]) -> int:
    """The child's exit code, as Popen gives it (-N for a signal), once it ended."""
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line:
        raise RuntimeError(f"the CLI server died (exit {server.wait()})")
    return int(json.loads(line)["code"])


def run_cli_process(*args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None,
                    timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Like `subprocess.run([python, -c, "from sync_runner.cli import main; main()", *args], capture_output=True,
    text=True, env=env, cwd=cwd, timeout=timeout)`; `env` None inherits this process's environment."""
    server = _take_server()
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        request = {"argv": list(args), "env": dict(os.environ if env is None else env),
                   "cwd": str(cwd if cwd is not None else os.getcwd()), "stdout": str(out), "stderr": str(err)}
        pid = _start(server, request)
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):  # it ended as the time ran out
                os.kill(pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            code = _outcome(server)
        finally:
            timer.cancel()
        _give_back(server)
        if expired.is_set():
            raise subprocess.TimeoutExpired(["dbt-studio", *args], timeout)
        return subprocess.CompletedProcess(["dbt-studio", *args], code, out.read_text(encoding="utf-8"),
                                           err.read_text(encoding="utf-8"))


class ForkedProcess:
    """`subprocess.Popen(command, ...)` for a `[python, "-c", code, *args]` command, forked from a warm server:
    what the studio's jobs and the kill -9 tests start. Output: `stdout=PIPE` (text lines, read as the child
    writes them: a named pipe) with `stderr=STDOUT`, or DEVNULL for either. Its own process as Popen's is: its
    pid takes signals, its exit code (or -signal) is its own."""

    def __init__(self, command: list[str], cwd: str | Path | None = None, env: dict[str, str] | None = None,
                 stdout: int | None = None, stderr: int | None = None, text: bool = False,
                 bufsize: int = -1) -> None:
        if command[:2] != [sys.executable, "-c"]:
            raise ValueError(f"not a `python -c` command: {command[:2]}")
        if stdout not in (subprocess.PIPE, subprocess.DEVNULL) or stderr not in (subprocess.STDOUT,
                                                                                 subprocess.DEVNULL):
            raise ValueError("stdout PIPE or DEVNULL, stderr STDOUT or DEVNULL")
        if stdout == subprocess.PIPE and not text:
            raise ValueError("a pipe is read as text")
        del bufsize  # (lines come as written: the child's streams follow PYTHONUNBUFFERED as the interpreter's do)
        self.args = command
        self.returncode: int | None = None
        self.stdout: Any = None
        self._lost: RuntimeError | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="forked-")
        out = os.devnull
        if stdout == subprocess.PIPE:
            out = str(Path(self._tmp.name) / "stdout")
            os.mkfifo(out)
        self._server = _take_server()
        self.pid = _start(self._server, {
            "code": command[2], "argv": command[3:], "env": dict(os.environ if env is None else env),
            "cwd": str(cwd if cwd is not None else os.getcwd()), "stdout": out,
            "stderr": "&1" if stderr == subprocess.STDOUT else os.devnull})
        if stdout == subprocess.PIPE:  # (the child opens its end first thing: this returns as it does)
            self.stdout = open(out, encoding="utf-8")  # noqa: SIM115 - closed by wait()
        self._ended = threading.Thread(target=self._wait_for_the_end, daemon=True)
        self._ended.start()

    def _wait_for_the_end(self) -> None:
        try:
            self.returncode = _outcome(self._server)
        except RuntimeError as exc:  # the server died: wait() says so
            self._lost = exc
            return
        _give_back(self._server)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._ended.join(timeout)
        if self._lost is not None:
            raise self._lost
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        if self.stdout is not None:
            self.stdout.close()
        self._tmp.cleanup()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


# -- the server side ----------------------------------------------------------------------------------------------

def _child(request: dict[str, Any]) -> int:
    """What the interpreter does for `python -c <code> <argv>` (`code`: the CLI's unless the request names one)."""
    import builtins
    import io
    import traceback

    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):  # first: a named pipe's reader waits for it
        if path == "&1":
            os.dup2(1, 2)
            continue
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # new streams, as the interpreter makes them for files and pipes: stdout in blocks and stderr by lines, or both
    # written through with PYTHONUNBUFFERED (the server's own follow the worker's environment, not the request's)
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        raw = io.FileIO(fd, "w", closefd=False)
        setattr(sys, name, io.TextIOWrapper(raw if unbuffered else io.BufferedWriter(raw), encoding=old.encoding,
                                            errors=old.errors, line_buffering=not unbuffered and fd == 2,
                                            write_through=unbuffered))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = ["-c", *request["argv"]]
    code = 0
    try:
        exec(compile(request.get("code", CLI), "<string>", "exec"),  # noqa: S102 - what `python -c` does
             {"__name__": "__main__", "__builtins__": builtins})
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
