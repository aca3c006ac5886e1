"""The two-adapter harness: the plant-store example built on DuckDB and on Snowflake (a local fakesnow server).

Every warehouse-side feature is tested on both. Each project is a private copy of `integration_tests/` under
pytest's tmp dir with a generated profiles.yml, so builds never share a database file or a Snowflake database.
"""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dbt_common.tests import enable_test_caching

from sync_runner.core.redact import REDACT
from sync_runner.demo.example import copy_example, copy_project
from sync_runner.project.dbt_runtime import write_artifacts_in_one_call
from sync_runner.project.target import DbtTarget, release_dbt_duckdb, run_dbt
from sync_runner.project.warehouse import Warehouse

from helpers import ADAPTERS
from helpers.cli_process import GC_THRESHOLDS
from helpers.profiles import write_profile
from helpers.threads import studio_failures, thread_stacks


def _behavior_flag_source_from_frames() -> None:
    """Name the module that declares a dbt behaviour flag from the frames' globals, not from `inspect.stack()`.

    dbt_common labels every behaviour flag of every adapter it builds with the module that declared it, found
    with `inspect.stack()`. That resolves each frame's module by file, and for frames without one (pytest-xdist
    runs the worker under `exec`, Jinja's compiled macros) walks all of `sys.modules`; late in a worker, with
    thousands of modules imported, that was over half the worker's CPU (py-spy), and tests took 3-4 times as long
    as alone. The answer is the same: the first module on the stack that is not dbt_common's.
    """
    import sys

    from dbt_common import behavior_flags

    def source() -> str:
        frame = sys._getframe(1)
        while frame is not None:
            name = frame.f_globals.get("__name__")
            if name and name != behavior_flags.__name__:
                return str(name)
            frame = frame.f_back
        return "Unknown"

    behavior_flags.BehaviorFlagRendered._default_source = staticmethod(source)  # type: ignore[method-assign]


_behavior_flag_source_from_frames()


# dbt's artifacts written with `json.dumps` (C encoder) rather than `json.dump` (pure Python), as `run_dbt` has dbt
# write them (sync_runner/project/dbt_runtime.py): every dbt invocation writes manifest.json twice and
# run_results.json once, 25 ms a write against 7 ms on the plant store's 1.1 MB manifest, over ~500 invocations a
# run. Installed at once, for the suite's dbt calls that do not go through `run_dbt`; `tests/test_harness.py`
# holds that the two write the same text.
write_artifacts_in_one_call()


def _one_static_parse_environment() -> None:
    """Give dbt's static macro analysis one Jinja environment instead of a new one per macro.

    On every full parse dbt lists each macro's calls (`statically_extract_macro_calls`, ~1,000 macros of dbt, the
    adapters and this package), building a sandboxed environment for each even when `enable_test_caching` below
    already has the macro's parse; py-spy over the suite put the environments at ~0.8 % of its samples. The
    environment only parses there (no node, no globals set), so one serves every call; `tests/test_harness.py`
    holds that it parses every macro of this package as a new one does.
    """
    from dbt.clients import jinja_static

    made = jinja_static.get_environment
    shared = made(None, capture_macros=True)

    def get_environment(node: Any = None, capture_macros: bool = False, native: bool = False) -> Any:
        if node is None and capture_macros and not native:
            return shared
        return made(node, capture_macros=capture_macros, native=native)

    jinja_static.get_environment = get_environment  # type: ignore[assignment]


_one_static_parse_environment()


def _collect_garbage_less_often() -> None:
    """Run Python's cyclic collector about ten times less often than its defaults (700, 10, 10): GC_THRESHOLDS.

    A test worker holds several dbt projects at once (manifests, macro contexts, agate tables: millions of
    objects), and every dbt invocation allocates hundreds of thousands more (a macro context alone is ~900
    generator objects), so the default thresholds ran a full collection every few builds, each walking the
    whole heap: measured with `gc.callbacks` over the sync, audiences and identity modules (3 workers), the
    collector took 36-53 s of each worker's 129-156 s of CPU, 55-62 full collections of ~0.6 s each. With these
    thresholds: 3-9 full collections (most of them the explicit ones below and in `release()`), 14-21 s of GC in
    109-123 s of CPU (docs/testing.md has the runs). Garbage cycles live longer, which costs memory, not
    correctness: whatever needs an object gone (a DuckDB file closed) collects explicitly.
    """
    gc.set_threshold(*GC_THRESHOLDS)


_collect_garbage_less_often()

# dbt's own caches for test suites (what dbt's `dbt.tests` fixtures switch on): the Jinja parse of a macro, the
# blocks of a file and a macro's calls, each keyed on the exact text. Every test project is a fresh copy and many
# builds pass new `--vars`, so dbt parses every macro of dbt, the adapter and this package again each time: with
# these, text it has parsed once in this process is not parsed again (a changed file is new text).
enable_test_caching()


def _dbt_events_built_without_the_json_parser() -> None:
    """dbt fills every event's protobuf message with json_format.ParseDict (pure Python, ~3,000 calls a build);
    `helpers.event_messages` builds the same messages with a name table per message type
    (tests/test_harness.py compares them)."""
    from helpers import event_messages

    event_messages.install()


_dbt_events_built_without_the_json_parser()


def _macro_namespaces_built_with_fewer_calls() -> None:
    """dbt gives every node and every adapter macro call a context with a generator for each of ~900 macros, a
    sixth of a build's CPU; `helpers.macro_namespace` builds the same namespaces with fewer Python calls
    (tests/test_harness.py compares the contexts)."""
    from helpers import macro_namespace

    macro_namespace.install()


_macro_namespaces_built_with_fewer_calls()

# dbt's debug log file (logs/dbt.log): every event of every invocation formatted and written, 6-8 % of a build's
# CPU (measured: 1.60-1.94 s a plant-store build without it against 1.72-2.06 s with it, runs side by side), and no
# test reads it but the secrets test, which keeps it (tests/reliability/test_secrets.py, `_dbt_log_file_on`).
os.environ.setdefault("DBT_LOG_LEVEL_FILE", "none")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A studio test that fails has every thread's stack and its page's text in its report, taken as it failed: a
    page that waited in vain for an answer (split sizes awaited 20 s where they take 1, seen in a few loaded runs,
    with the studio's warehouse thread idle) shows what the page said and where each thread was."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "serve/studio/" in item.nodeid:
        report.sections.append(("every thread as the test failed", thread_stacks()))
        failures = studio_failures()
        if failures:  # where the studio's last questions failed (a page shows one line)
            report.sections.append(("the studio's last failed questions", failures))
        page = getattr(item, "funcargs", {}).get("page")
        if page is not None:  # what the page said (an error line where an answer was awaited)
            try:
                text = page.evaluate("document.body.innerText")
            except Exception as exc:  # a page already closed or crashed says so instead
                text = f"(the page could not be read: {exc})"
            report.sections.append((f"the page as the test failed: {page.url}", str(text)[:4000]))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): one worker more than the cores this process may use. The tests wait on
    fakesnow, PostgreSQL, local destination servers and the CLI processes they start, so a worker per core left
    the cores idle part of the time (2 cores: 2 workers 9 min 3 s, 3 workers 8 min 1 s, same tree)."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; macOS has none
    cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return cores + 1


class Project:
    """A dbt project copy bound to one adapter, with helpers to run dbt and read tables in tests."""

    def __init__(self, root: Path, adapter: str) -> None:
        self.root = root
        self.adapter = adapter
        self.where = DbtTarget(project_dir=root, profiles_dir=root, target=adapter)
        self.sql_log: list[str] = []
        self.messages: list[str] = []
        self._manifest: tuple[tuple[int, int, int], Any] | None = None

    def _collect(self, event: Any) -> None:
        if event.info.name == "SQLQuery":
            self.sql_log.append(event.data.sql)
        elif event.info.name == "JinjaLogInfo":
            self.messages.append(event.info.msg)

    def dbt(self, *args: str, check: bool = True, vars: dict[str, Any] | None = None) -> Any:
        where = self.where if vars is None else DbtTarget(self.root, self.root, self.adapter, vars)
        return run_dbt(list(args), where, check=check, callbacks=[self._collect])

    def warehouse(self) -> Warehouse:
        return Warehouse(self.where)

    def release(self) -> None:
        """Let another process open the database: dbt-duckdb keeps its file open between invocations. Its
        environment is closed here rather than left to the collector (a full collection per call was a fifth of
        the kill -9 trials' time)."""
        if self.adapter == "duckdb":
            release_dbt_duckdb()

    def query(self, sql: str) -> list[tuple]:
        """Rows of a test query (plain SELECTs only: the SQL under test lives in the package)."""
        wh = self.warehouse()
        try:
            with wh.session():
                _, table = wh.adapter.execute(sql, fetch=True)
                return [tuple(row.values()) for row in table.rows]
        finally:
            wh.close()

    def execute(self, sql: str) -> None:
        """Change a built table's rows in place (a test that only needs other data, without a dbt build)."""
        wh = self.warehouse()
        try:
            with wh.session():
                wh.adapter.execute(sql)
                wh.adapter.commit_if_has_connection()
        finally:
            wh.close()

    def manifest(self) -> Any:
        """The project's manifest.json, read again only when the file changed (a build writes a new one): tests
        ask for relations many times between builds, and each read parsed the whole file."""
        from sync_runner.project.artifacts import load_manifest

        stat = (self.root / "target" / "manifest.json").stat()
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._manifest is None or self._manifest[0] != key:
            self._manifest = (key, load_manifest(self.root))
        return self._manifest[1]

    def relation(self, name: str, suffix: str = "") -> str:
        """The fully qualified relation of a model or seed (plus `suffix`: its side tables, e.g. '__id_changes')."""
        node = self.manifest().by_name(name)
        assert node is not None and node.relation_name, f"{name} is not in the manifest"
        if not suffix:
            return node.relation_name
        wh = self.warehouse()
        try:
            return str(wh.relation(node.database, node.schema, node.alias + suffix))
        finally:
            wh.close()


@pytest.fixture(scope="session")
def snowflake_server() -> Iterator[dict[str, Any]]:
    import fakesnow
    from fakesnow.transforms import stage

    with fakesnow.server() as conn:
        yield conn
    shutil.rmtree(stage.LOCAL_BUCKET_PATH, ignore_errors=True)  # fakesnow makes it on import and leaves it in /tmp


@pytest.fixture(scope="session")
def new_project(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """A factory: a fresh copy of the example for an adapter, with `dbt deps` already run."""

    def make(adapter: str, name: str = "plant_store", source: Path | None = None) -> Project:
        """`source`: another test project (tests/projects/<x>) instead of the plant-store example."""
        snowflake = request.getfixturevalue("snowflake_server") if adapter == "snowflake" else None
        dest = tmp_path_factory.mktemp(f"{name}_{adapter}")
        root = copy_project(source, dest) if source else copy_example(dest)
        write_profile(root, adapter, snowflake)
        project = Project(root, adapter)
        project.dbt("deps")
        return project

    return make


@pytest.fixture(scope="session")
def built_example(new_project):
    """A factory: the plant-store example built (`dbt build`) from its fixed seeds, once per adapter."""
    built: dict[str, Project] = {}

    def get(adapter: str) -> Project:
        if adapter not in built:
            project = new_project(adapter)
            project.dbt("build")
            built[adapter] = project
        return built[adapter]

    return get


@pytest.fixture(scope="session", params=ADAPTERS)
def plant_store(request: pytest.FixtureRequest, built_example) -> Project:
    """The built plant-store example, once on each adapter."""
    return built_example(request.param)


@pytest.fixture(scope="module", autouse=True)
def _earlier_modules_objects_out_of_gc() -> None:
    """Collect what earlier test modules left, then move every object still alive out of the collector's reach.

    A worker keeps every session-scoped project (manifests, adapters, agate tables) alive, so its heap grows over
    the suite and each full collection (Python's own, and `release()`'s) walks all of it. Frozen objects are never
    scanned again (measured: the suite took 16.6 min without this, 13.7 min with it). This runs before a module's
    own fixtures, so what a module makes stays collectable: the studio counts on a collection to close a DuckDB
    file whose last holder is in a reference cycle. A frozen cycle that dies later is not
    reclaimed, which costs memory (a worker stayed under 1.3 GB), not correctness.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _no_dbt_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


@pytest.fixture(autouse=True)
def _secrets_of_this_test_only() -> Iterator[None]:
    """The redactor is process-wide (a long-lived `serve` keeps every secret it has seen); in a test worker that
    would let one test's env_var values (a sink URL, say) mask text another test expects to read in clear."""
    kept = set(REDACT.secrets)
    yield
    REDACT.secrets = kept


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A real PostgreSQL server on loopback, started for the session (installed by .ci/run from Debian)."""
    import glob
    import shutil
    import socket
    import subprocess

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):  # the test setup installs it from Debian
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], capture_output=True, env=env)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed and could not be installed: apt-get install -y postgresql")
    bindir = Path(found[-1]).parent
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="dbt-studio-pg-"))  # not under pytest's 0700 tmp: postgres must reach it
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(data, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "server.log"), "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def http_sink():
    from fakes.http_sink import Sink

    sink = Sink()
    yield sink
    sink.close()
