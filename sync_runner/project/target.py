"""Which dbt project a command runs against, and running dbt commands in-process through dbtRunner.

dbtRunner is not safe to run twice at once in one process, so every invocation goes through `run_dbt`, which
holds a lock; the working directory is switched for the call because dbt-duckdb resolves relative database
paths against it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync_runner.core import yaml_text
from sync_runner.core.errors import DbtFailed, UserError
from sync_runner.core.redact import REDACT
from sync_runner.project.artifacts import load_run_results
from sync_runner.project.dbt_runtime import speedups

# dbtRunner, dbt's adapter registry and the working directory are process-wide: one user at a time (reentrant: a
# connection opened inside a dbt call takes it again)
DBT_LOCK = threading.RLock()


@dataclass(frozen=True)
class DbtTarget:
    """Which dbt project, profile directory and target a command runs against."""

    project_dir: Path
    profiles_dir: Path | None = None
    target: str | None = None
    vars: dict[str, Any] | None = None

    def args(self) -> list[str]:
        out = ["--project-dir", str(self.project_dir)]
        if self.profiles_dir is not None:
            out += ["--profiles-dir", str(self.profiles_dir)]
        if self.target:
            out += ["--target", self.target]
        return out


def resolve_target(project_dir: Path | str = ".", profiles_dir: Path | str | None = None, target: str | None = None,
                   vars: dict[str, Any] | None = None) -> DbtTarget:
    """The one rule for which project, profiles dir and target a command runs against.

    As in dbt: an explicit profiles dir wins; else the project's own profiles.yml if it has one; else
    DBT_PROFILES_DIR; else ~/.dbt. Paths are made absolute because commands switch the working directory.
    """
    project = Path(project_dir).resolve()
    if profiles_dir is not None:
        profiles: Path = Path(profiles_dir).resolve()
    elif (project / "profiles.yml").is_file():
        profiles = project
    elif os.environ.get("DBT_PROFILES_DIR"):
        profiles = Path(os.environ["DBT_PROFILES_DIR"]).resolve()
    else:
        profiles = Path("~/.dbt").expanduser()
    return DbtTarget(project, profiles, target, vars)


HELD_ELSEWHERE = "Conflicting lock is held"  # DuckDB's words for a file another process has open
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
_WAREHOUSE_MODULES = ("duckdb", "_duckdb", "dbt", "dbt_common", "dbt_adapters", "snowflake", "psycopg2", "agate")


def from_warehouse(exc: BaseException) -> bool:
    """Whether `exc` was raised by the warehouse's side: the driver (duckdb, the Snowflake connector), dbt and its
    adapter (a bad profile, a compilation error), or the operating system (a file, a socket). Anything else is a
    bug of ours and must keep its traceback: turning it into "cannot use the warehouse" would send the user
    looking for a problem in their profile that is not there."""
    if isinstance(exc, OSError):
        return True
    return any(kind.__module__.split(".")[0] in _WAREHOUSE_MODULES for kind in type(exc).__mro__[:-2])


# The headers dbt puts on a line of their own above the message (and at the end of a line that nests another one)
_DBT_HEADERS = ("Runtime Error", "Compilation Error", "Database Error", "Parsing Error", "Validation Error")


def error_line(exc: BaseException) -> str:
    """The one line of an error that says what is wrong: dbt's headers ("Runtime Error") skipped, a line that ends
    where a nested error begins ("... invalid: Runtime Error") joined with that error's own line, and a profiles.yml
    that does not parse followed by where."""
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and line not in _DBT_HEADERS and not line.startswith("---")]
    if not lines:
        return exc.__class__.__name__
    first, rest = lines[0], lines[1:]
    for header in _DBT_HEADERS:
        if first.endswith(": " + header) and rest:
            return f"{first[:-len(header)]}{rest[0]}"
    if first.endswith(":") and rest:
        items = [line[2:] for line in itertools.takewhile(lambda line: line.startswith("- "), rest)]
        return f"{first} {', '.join(items) if items else rest[0]}"
    if "profiles.yml" in first and rest and rest[0].startswith("Syntax error"):
        return f"{first} {rest[0]}"
    return first


def held_elsewhere(exc: BaseException) -> str | None:
    """"another process (PID 2258, python3.11) has the DuckDB file open" when `exc` is DuckDB refusing a file
    another process holds, else None: words a person can act on, where DuckDB's line is a path, a lock and a
    link."""
    line = error_line(exc)
    if HELD_ELSEWHERE not in line:
        return None
    holder = _HOLDER.search(line)
    who = f"another process (PID {holder['pid']}, {Path(holder['program']).name})" if holder else "another process"
    return f"{who} has the DuckDB file open"


def connection_closed(exc: BaseException) -> bool:
    """Whether `exc`, or what it wraps, is DuckDB saying the connection was closed under the statement (dbt-duckdb
    keeps one database per process, and whatever closes it closes every connection to it)."""
    seen: BaseException | None = exc
    while seen is not None:
        kind = type(seen)
        if kind.__name__ == "ConnectionException" and kind.__module__.split(".")[0] in ("duckdb", "_duckdb"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class WarehouseUnusable(UserError):
    """The warehouse of the profile cannot be used. Every command exits the same way for it (docs/cli.md, exit
    codes): 2 when the profile is at fault (dbt cannot read it or refuses it: an unknown adapter type or target, a
    missing env var, a key of the wrong type, a setting the warehouse refuses), 1 when what the profile describes
    could not be reached or opened this time (a host that does not answer or refuses the login, a DuckDB file
    another process holds or that no build made): a failed run, which an orchestrator may retry."""

    def __init__(self, message: str, profile: bool) -> None:
        super().__init__(message)
        self.profile = profile
        self.exit_code = 2 if profile else 1


# errors of reaching or opening the warehouse, not of the profile (the class names of the drivers and of dbt)
_NOT_REACHED = ("IOException", "FailedToConnectError", "OperationalError", "InterfaceError")


def _profile_at_fault(exc: BaseException) -> bool:
    if isinstance(exc, OSError):  # a socket, a file
        return False
    return not any(kind.__name__ in _NOT_REACHED for kind in type(exc).__mro__)


def unreachable(where: DbtTarget, exc: BaseException) -> WarehouseUnusable:
    """The one line for a warehouse that cannot be reached or opened (a bad profile, a locked file, a host that
    does not answer): what the driver or dbt says is wrong, redacted, after the project and target it was for;
    its exit code says whether the profile is at fault (see WarehouseUnusable)."""
    reason = error_line(exc)
    if held_elsewhere(exc):  # what the user can do about it, which DuckDB's line does not say
        reason += (" (another process has the DuckDB file open; run this again once it is done: a `dbt-studio "
                   "studio` lets go of the file after 3 s without a query, by default)")
    return WarehouseUnusable(f"cannot use the warehouse of {where.project_dir} ({target_label(where)}): "
                             f"{REDACT(reason)}", profile=_profile_at_fault(exc))


def default_target(where: DbtTarget) -> str | None:
    """The target a run without --target uses (DBT_TARGET, else the profile's `target:`), or None when that cannot
    be known without dbt (a templated value, an unreadable file)."""
    if os.environ.get("DBT_TARGET"):
        return os.environ["DBT_TARGET"]
    try:
        profile = yaml_text.safe_load((where.project_dir / "dbt_project.yml").read_text(encoding="utf-8"))["profile"]
        profiles = yaml_text.safe_load(((where.profiles_dir or where.project_dir) / "profiles.yml").read_text(
            encoding="utf-8"), keep=False)  # (a password may be written in it)
        name = profiles[os.environ.get("DBT_PROFILE") or profile]["target"]
    except (OSError, yaml_text.Invalid, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and "{" not in name else None


def target_label(where: DbtTarget) -> str:
    """"target prod" for a line about a run's warehouse: the target it uses, named ("target default" only when the
    profile's default cannot be read; it said "default" and dbt's own lines said "dev" for the same run)."""
    return f"target {where.target or default_target(where) or 'default'}"


def built_for_another_target(where: DbtTarget) -> str:
    """What to do when the last dbt command (target/run_results.json) ran with a --target other than this run's:
    the manifest names that target's relations, which this target's warehouse does not have. "" when it did not
    (a `--target dev` when dev is the profile's default is the same target), or nobody can tell."""
    try:
        last = load_run_results(where.project_dir).target
    except UserError:
        return ""
    this = where.target or default_target(where)
    if not last or not this or last == this:
        return ""
    named = f"--target {where.target}" if where.target else f"the profile's default target ({this})"
    return (f"the last dbt command (target/run_results.json) ran with --target {last} and this run uses {named}: "
            f"pass --target {last}, or build this target first")


def missing_duckdb_file(where: DbtTarget, path: str) -> WarehouseUnusable | None:
    """The error for a DuckDB profile whose file is not there, else None. DuckDB creates a file it is asked to open,
    so a read of a warehouse that was deleted (`dbt clean`, a moved profile path) made an empty one, and every line
    after it was about relations that do not exist; dbt-studio reads what dbt built and never makes the file."""
    if not path or path == ":memory:" or path.startswith(("md:", "motherduck:")) or "://" in path:
        return None
    file = Path(path).expanduser()  # DuckDB opens `~/x.duckdb` in the home folder
    file = file if file.is_absolute() else where.project_dir / file
    if file.exists():
        return None
    fix = (built_for_another_target(where)
           or "run dbt build to make it (dbt-studio does not create an empty warehouse)")
    return WarehouseUnusable(REDACT(f"cannot use the warehouse of {where.project_dir} ({target_label(where)}): "
                                    f"the DuckDB file {file} does not exist; {fix}"),  # (a path may be an env var's)
                             profile=False)


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_dbt(command: Sequence[str], where: DbtTarget, *, quiet: bool = True, check: bool = True,
            callbacks: Sequence[Callable[[Any], None]] = ()) -> Any:
    """Run one dbt command (e.g. ``["build", "-s", "stg_users"]``) and return dbtRunner's result.

    ``callbacks`` receive every dbt event (tests use them to collect the SQL that ran). Raises DbtFailed when
    ``check`` and the command did not succeed; dbt has printed its own errors by then.
    """
    from dbt.cli.main import dbtRunner

    args = [command[0], *where.args()]
    if command[0] not in ("deps", "clean", "debug") and where.vars:
        args += ["--vars", json.dumps(where.vars)]
    args += list(command[1:])
    flags = ["--quiet"] if quiet else []
    # --quiet still prints errors; --no-use-colors keeps captured output readable.
    flags += ["--no-use-colors", "--no-send-anonymous-usage-stats"]
    with DBT_LOCK, working_directory(where.project_dir), speedups(dbt_target_dir(where.project_dir, args)):
        result = dbtRunner(callbacks=list(callbacks)).invoke(flags + args)
    if check and not result.success:
        detail = f": {result.exception}" if result.exception else ""
        raise DbtFailed(f"dbt {command[0]} failed in {where.project_dir}{detail}")
    return result


def dbt_cli(argv: Sequence[str] | None = None) -> None:
    """dbt's own command line (`dbt <argv>`, exiting with dbt's code), with dbt's per-process work kept as
    `run_dbt` keeps it (project/dbt_runtime.py): the studio's jobs run `dbt build` in a child process through
    this, so a click on Build does not compile dbt's and the package's templates again each time."""
    from dbt.cli.main import cli

    args = list(sys.argv[1:] if argv is None else argv)
    project = next((v for flag, v in itertools.pairwise(args) if flag == "--project-dir"), None)
    project = project or next((a.split("=", 1)[1] for a in args if a.startswith("--project-dir=")), None)
    with speedups(dbt_target_dir(Path(project or os.getcwd()).resolve(), args)):
        cli.main(args, prog_name="dbt")


def dbt_target_dir(project_dir: Path, dbt_args: Sequence[str] = ()) -> Path:
    """Where a dbt command writes its artifacts: --target-path, DBT_TARGET_PATH, else target/ (relative ones
    under the project)."""
    value = os.environ.get("DBT_TARGET_PATH") or "target"
    args = list(dbt_args)
    for i, arg in enumerate(args):
        if arg == "--target-path" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--target-path="):
            value = arg.split("=", 1)[1]
    path = Path(value)
    return path if path.is_absolute() else Path(project_dir) / path


def release_dbt_duckdb(credentials: Any = None) -> None:
    """Close the DuckDB database dbt opened in this process, so other processes can open the file.

    dbt-duckdb keeps its database open (and its file locked) after an invocation returns, for as long as the
    process lives. A one-shot command exits soon after, but `dbt-studio serve` runs for days: between its jobs
    a `dbt build` by hand, the studio or `dbt-studio status` must be able to open the file. The next
    invocation opens it again. Nothing to do when dbt-duckdb was never imported.

    With `credentials`, only the database those credentials opened: dbt-duckdb keeps one database per process,
    so when another warehouse of the process has opened its own file since, this one's is already closed, and
    closing the current one would pull the connection from under whoever uses it now (a second studio in the
    process going idle closed the first one's database mid-question)."""
    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is None:
        return
    manager = connections.DuckDBConnectionManager
    with DBT_LOCK:
        if credentials is not None and (manager._ENV is None or manager._ENV.creds != credentials):
            return
        if manager._ENV is not None:
            manager._ENV.close()
        manager.close_all_connections()
