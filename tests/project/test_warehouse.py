"""The warehouse connection: the macros of manifest.json are used only when nothing they were parsed from changed
since (else the macro files are parsed, as dbt does), macros parsed in this process are reused only while every file
they came from is unchanged, and a sync's DuckDB session runs under the package's memory limit, which the profile
can override and which is lifted when the sync ends."""

from __future__ import annotations

import os

import duckdb
import pytest

from sync_runner.project.target import DbtTarget
from sync_runner.project.warehouse import Warehouse, _macro_files, _macros_of, warehouse_refusal
from sync_runner.sync.engine import Options, SyncRunner

from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, person


@pytest.fixture(scope="module")
def wp(new_project, tmp_path_factory):
    project = SyncProject(new_project("duckdb", name="warehouse", source=PROJECT), tmp_path_factory.mktemp("wh"))
    project.destinations(f"destinations:\n  out:\n    type: file\n    path: {project.tmp / 'out'}\n")
    project.build({f"u{i}": person(i) for i in range(3)},
                  [{"name": "people", "destination": "out", "mode": "upsert", "mappings": MAPPINGS}])
    return project


def _macros(wp: SyncProject, manifest=None):
    wh = Warehouse(wp.p.where)
    try:
        return _macros_of(manifest or wp.p.root / "target" / "manifest.json", _macro_files(wh.config)[0],
                          wh.adapter.type())
    finally:
        wh.close()


def _touch_back(path, seconds):
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + seconds))


def test_macros_come_from_the_manifest_until_a_macro_file_changes(wp):
    macros = _macros(wp)
    assert macros is not None
    assert "macro.dbt_studio.sync_plan" in macros.macros and "macro.dbt.run_query" in macros.macros
    manifest = wp.p.root / "target" / "manifest.json"
    own = wp.p.root / "macros" / "later.sql"
    own.parent.mkdir(exist_ok=True)
    own.write_text("{% macro later() %}select 1{% endmacro %}\n")
    try:
        _touch_back(own, 5)  # written after the manifest: it is not in it
        assert _macros(wp) is None
    finally:
        own.unlink()
    assert _macros(wp) is not None
    # a package's macro edited after the build
    package_file = next((wp.p.root / "dbt_packages" / "dbt_studio" / "macros").rglob("*.sql"))
    before = package_file.stat().st_mtime
    _touch_back(package_file, manifest.stat().st_mtime - before + 5)
    try:
        assert _macros(wp) is None
    finally:
        os.utime(package_file, (before, before))
    assert _macros(wp) is not None


def test_a_manifest_of_another_adapter_or_dbt_version_is_not_used(wp, tmp_path):
    import json

    data = json.loads((wp.p.root / "target" / "manifest.json").read_text())
    for key, value in (("adapter_type", "snowflake"), ("dbt_version", "0.0.1")):
        changed = json.loads(json.dumps(data))
        changed["metadata"][key] = value
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(changed))
        _touch_back(path, 5)
        assert _macros(wp, path) is None, key
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    _touch_back(broken, 5)
    assert _macros(wp, broken) is None


def _parsed(wp: SyncProject) -> object:
    wh = Warehouse(wp.p.where)  # no manifest: macros parsed, or this process's parse of the same files reused
    try:
        return wh.manifest
    finally:
        wh.close()


def _sql_of(manifest, name: str) -> str | None:
    found = [m.macro_sql for m in manifest.macros.values() if m.name == name]
    return found[0] if found else None


def test_macros_parsed_in_this_process_are_reused_until_any_file_changes(wp):
    own = wp.p.root / "macros" / "answer.sql"
    own.parent.mkdir(exist_ok=True)
    own.write_text("{% macro answer() %}one{% endmacro %}\n")
    try:
        parsed = _parsed(wp)
        assert "one" in _sql_of(parsed, "answer") and _parsed(wp) is parsed
        # same size, same timestamp: only the contents differ
        stat = own.stat()
        own.write_text("{% macro answer() %}two{% endmacro %}\n")
        os.utime(own, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        reparsed = _parsed(wp)
        assert reparsed is not parsed and "two" in _sql_of(reparsed, "answer")
        # a new file
        (own.parent / "other.sql").write_text("{% macro other() %}3{% endmacro %}\n")
        assert _sql_of(_parsed(wp), "other") is not None
    finally:
        own.unlink()
        (own.parent / "other.sql").unlink(missing_ok=True)
    assert _sql_of(_parsed(wp), "answer") is None


PROBE = """\
{% macro probe(run) -%}
    {%- if run %}{% call statement('probed', fetch_result=True) %}select 42 as answer{% endcall %}{% endif -%}
    {{ return((load_result('probed') or {}).get('data')) }}
{%- endmacro %}
{% macro marked() %}{{ return(marker is defined) }}{% endmacro %}
"""


def test_each_macro_call_starts_as_on_a_new_context(wp):
    """A warehouse builds each macro's dbt context once and reuses it (dbt builds thousands of objects per call);
    what one call left in it — a statement's result, a caller's override — must not reach the next."""
    own = wp.p.root / "macros" / "probe.sql"
    own.parent.mkdir(exist_ok=True)
    own.write_text(PROBE)
    wh = Warehouse(wp.p.where)
    try:
        with wh.session():
            run = wh.adapter.execute_macro
            assert [tuple(r) for r in run("probe", kwargs={"run": True}, needs_conn=True)] == [(42,)]
            assert run("probe", kwargs={"run": False}) is None  # no result before its own statement
            assert run("marked", context_override={"marker": 1}) is True
            assert run("marked") is False
    finally:
        wh.close()
        own.unlink()


def _memory_limit(runner: SyncRunner) -> str:
    with runner.warehouse.session():
        _, table = runner.warehouse.adapter.execute("select current_setting('memory_limit')", fetch=True)
        return str(table.rows[0][0])


def test_a_sync_session_caps_duckdb_memory_and_lifts_the_cap_at_the_end(wp):
    runner = SyncRunner(wp.p.where, Options())
    try:
        capped = _memory_limit(runner)
        assert capped.replace(" ", "") in ("488.2MiB", "512.0MB", "512MB"), capped
        report = runner.run()[0]
        assert report.status == "success" and report.acknowledged == 3
    finally:
        runner.close()
    wh = Warehouse(wp.p.where)
    try:
        with wh.session():
            _, table = wh.adapter.execute("select current_setting('memory_limit')", fetch=True)
            default = str(table.rows[0][0])
    finally:
        wh.close()
    assert default != capped  # reset to DuckDB's own default (80% of RAM)

    # the var changes the cap; '' keeps DuckDB's default
    for value, expect_capped in (("1GB", True), ("", False)):
        where = DbtTarget(wp.p.root, wp.p.root, None, {"dbt_studio_sync_duckdb_memory_limit": value})
        runner = SyncRunner(where, Options())
        try:
            got = _memory_limit(runner)
        finally:
            runner.close()
        assert (got != default) is expect_capped, (value, got)

    # a value DuckDB cannot take fails the sync with one line naming the var, nothing planned
    where = DbtTarget(wp.p.root, wp.p.root, None, {"dbt_studio_sync_duckdb_memory_limit": "a lot"})
    runner = SyncRunner(where, Options())
    try:
        report = runner.run()[0]
    finally:
        runner.close()
    assert report.status == "failed" and "dbt_studio_sync_duckdb_memory_limit" in report.message
    assert "\n" not in report.message and report.planned == {}

    # a memory_limit in the profile's settings wins
    profile = wp.p.root / "profiles.yml"
    original = profile.read_text()
    profile.write_text(original.replace("threads: 2", "threads: 2\n      settings: {memory_limit: 300MB}"))
    try:
        runner = SyncRunner(wp.p.where, Options())
        try:
            got = _memory_limit(runner)
        finally:
            runner.close()
    finally:
        profile.write_text(original)
    assert got.replace(" ", "") in ("286.1MiB", "300.0MB"), got


def _compression_statements(wp: SyncProject) -> list[str]:
    """The statements of a plan write and of the session's end that touch `force_compression`, as the runner
    compiles them for the project's sync."""
    runner = SyncRunner(wp.p.where, Options())
    try:
        sync = runner.syncs[0]
        wh = runner.warehouse
        write = wh.compile("sync_plan_write_sql", sync=sync.macro_args("main_dbt_studio"),
                           source=sync.model.relation_name, reset=True, previous=False)
        statements = [*write["statements"], *wh.compile("sync_session_end_sql")]
    finally:
        runner.close()
    return [sql for sql in statements if "force_compression" in sql]


def test_a_profile_s_own_force_compression_is_left_as_the_profile_set_it(wp):
    """A sync writes its DuckDB plan uncompressed and resets the setting after it and when its session ends (the
    database's default), unless the profile sets `force_compression` itself: then the sync neither changes nor
    resets it, and a sync under that profile succeeds with the setting as the profile made it."""
    assert _compression_statements(wp) == ["set force_compression = 'uncompressed'", "reset force_compression",
                                           "reset force_compression"]
    profile = wp.p.root / "profiles.yml"
    original = profile.read_text()
    profile.write_text(original.replace("threads: 2", "threads: 2\n      settings: {force_compression: bitpacking}"))
    try:
        assert _compression_statements(wp) == []
        runner = SyncRunner(wp.p.where, Options(full_resync=True))
        try:
            report = runner.run()[0]
            with runner.warehouse.session():
                _, table = runner.warehouse.adapter.execute("select current_setting('force_compression')", fetch=True)
        finally:
            runner.close()
    finally:
        profile.write_text(original)
        wp.p.release()
    assert report.status == "success" and report.planned["insert"] == 3, report
    assert str(table.rows[0][0]).lower() == "bitpacking"


def _raised(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001  (the error itself is what the test reads)
        return exc
    raise AssertionError("nothing raised")


def test_a_refused_statement_is_told_from_a_failing_warehouse_and_from_a_bug(tmp_path):
    """warehouse_refusal: DuckDB's own errors, raised for real, as the direct connection and dbt-duckdb pass them
    on (dbt-duckdb raises DbtRuntimeError from the driver's; dbt-snowflake a DbtDatabaseError with the message)."""
    import duckdb
    from dbt_common.exceptions import DbtDatabaseError, DbtRuntimeError

    con = duckdb.connect()
    try:
        conversion = _raised(lambda: con.execute("select cast('p0@mail.com' as integer)").fetchall())
        unknown = _raised(lambda: con.execute("select no_such_column from range(1)").fetchall())
    finally:
        con.close()
    io = _raised(lambda: duckdb.connect(str(tmp_path / "missing" / "dir" / "x.duckdb")))
    assert isinstance(io, duckdb.IOException) and isinstance(conversion, duckdb.ConversionException)

    def through_dbt(error):
        def wrap():
            raise DbtRuntimeError(str(error)) from error
        return _raised(wrap)

    line = warehouse_refusal(conversion)
    assert line is not None and line.startswith("Conversion Error: Could not convert string 'p0@mail.com'")
    assert warehouse_refusal(through_dbt(conversion)) == line
    assert "no_such_column" in (warehouse_refusal(unknown) or "")
    assert warehouse_refusal(io) is None and warehouse_refusal(through_dbt(io)) is None  # the warehouse's failure
    assert warehouse_refusal(DbtDatabaseError("100035 (22007): Numeric value 'high' is not recognized")) == (
        "100035 (22007): Numeric value 'high' is not recognized")
    assert warehouse_refusal(ValueError("a bug")) is None
    assert warehouse_refusal(through_dbt(ValueError("a bug"))) is None


def test_a_session_opens_a_relative_duckdb_path_in_the_project_and_leaves_the_working_directory_alone(
        tmp_path, monkeypatch):
    """A profile's relative DuckDB path is the project's file, and the process's working directory stays where it
    was for as long as the session lasts: `run_dbt` in another thread (a `dbt deps`) reads it meanwhile."""
    from sync_runner.project.target import release_dbt_duckdb

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "dbt_project.yml").write_text("name: rel\nversion: '1.0'\nconfig-version: 2\nprofile: rel\n",
                                             encoding="utf-8")
    (project / "profiles.yml").write_text(
        "rel:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: rel.duckdb\n      threads: 1\n",
        encoding="utf-8")
    with duckdb.connect(str(project / "rel.duckdb")) as con:  # what a dbt build made
        con.execute("create table built as select 42 as answer")
    monkeypatch.chdir(elsewhere)
    release_dbt_duckdb()
    wh = Warehouse(DbtTarget(project, project))
    try:
        with wh.session():
            assert wh.fetch_arrow("select answer from built").column("answer").to_pylist() == [42]
            assert os.getcwd() == str(elsewhere)
            wh.fetch_arrow("create table kept as select 1 as x")
            wh.adapter.commit_if_has_connection()
        assert os.getcwd() == str(elsewhere)
    finally:
        wh.close()
        release_dbt_duckdb()
    assert (project / "rel.duckdb").is_file() and not (elsewhere / "rel.duckdb").exists()


def test_a_duckdb_file_that_is_gone_is_said_to_be_gone_and_not_made_again(wp, capsys, monkeypatch):
    """DuckDB makes the file it is asked to open: after a `dbt clean` (or a profile path moved) the commands read an
    empty warehouse made on the spot and spoke of relations that do not exist. Now each says the file is not there
    in one line, and none makes it."""
    from helpers.cli import run_cli

    database = wp.p.root / "target" / "warehouse.duckdb"
    wp.p.release()
    database.rename(database.with_suffix(".away"))
    root = str(wp.p.root)
    try:
        gone = f"the DuckDB file {database} does not exist; run dbt build to make it"
        code, _, err = run_cli(capsys, monkeypatch, "status", "--project-dir", root, "--profiles-dir", root)
        assert code == 1 and gone in err and len(err.strip().splitlines()) == 1, err  # a failed run, as plan's
        for command in ("plan", "sync"):
            code, out, err = run_cli(capsys, monkeypatch, command, "--project-dir", root, "--profiles-dir", root)
            assert code == 1 and f"people: cannot use the warehouse of {root}" in err and gone in err, (out, err)
        code, out, err = run_cli(capsys, monkeypatch, "validate", "--project-dir", root, "--profiles-dir", root)
        assert gone in out + err
        wh = Warehouse(wp.p.where)
        try:
            with pytest.raises(Exception, match="does not exist; run dbt build"):
                wh.call("sync_default_state_schema")
        finally:
            wh.close()
        assert not database.exists()
    finally:
        wp.p.release()
        database.with_suffix(".away").rename(database)
    assert wp.sync()["people"].status == "success"


def test_a_duckdb_path_in_the_home_folder_is_the_file_there(tmp_path, monkeypatch):
    """`path: ~/shop.duckdb` is a file in the home folder (DuckDB expands the ~), not one missing from the project."""
    from sync_runner.project.target import release_dbt_duckdb

    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with duckdb.connect(str(home / "shop.duckdb")) as con:
        con.execute("create table built as select 7 as answer")
    (project / "dbt_project.yml").write_text("name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n",
                                             encoding="utf-8")
    (project / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: ~/shop.duckdb\n      threads: 1\n",
        encoding="utf-8")
    release_dbt_duckdb()
    wh = Warehouse(DbtTarget(project, project))
    try:
        with wh.session():
            assert wh.fetch_arrow("select answer from built").column("answer").to_pylist() == [7]
    finally:
        wh.close()
        release_dbt_duckdb()
