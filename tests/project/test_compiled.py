"""The compiled-SQL cache (sync_runner/project/compiled.py): a command that finds its statements compiled runs
them without dbt (DuckDB) or without compiling (Snowflake), and a changed macro, package version, manifest, project
or sync config never runs the old SQL. On DuckDB and on Snowflake (fakesnow)."""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync_runner.project.artifacts import load_manifest
from sync_runner.project.compiled import CACHE_FILE, CompiledSql, fingerprint
from sync_runner.sync.config import find_config
from sync_runner.sync.engine import Options, SyncRunner
from sync_runner.sync.runs import recent_runs

from helpers import ADAPTERS
from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, file_ops, person

OVERRIDE = """
{% macro default__sync_recent_runs_sql(state_schema, limit=20) %}
    {%- set runs = api.Relation.create(database=target.database, schema=state_schema, identifier='sync_runs') -%}
    {{ return({'exists': dbt_studio._relation_exists_sql(runs),
               'query': 'select sync_name, 42 as overridden from ' ~ runs ~ ' limit 1'}) }}
{% endmacro %}
"""


@pytest.fixture(scope="module", params=ADAPTERS)
def sp(request, new_project, tmp_path_factory):
    project = new_project(request.param, name="compiled", source=PROJECT)
    sp = SyncProject(project, tmp_path_factory.mktemp(f"compiled_{request.param}"))
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {sp.tmp}\n")
    sp.build({i: person(i) for i in range(1, 4)},
             [{"name": "to_files", "destination": "out", "mode": "upsert", "mappings": MAPPINGS}])
    for _ in range(2):
        assert sp.sync()["to_files"].status == "success"
    return sp


def compiled_sql(sp) -> CompiledSql:
    where = sp.p.where
    return CompiledSql(where, load_manifest(where.project_dir).path, [find_config(where.project_dir)],
                       connect=sp.p.warehouse)


def runs(sp) -> list[dict]:
    sp.p.release()
    return recent_runs(sp.p.root, sp.p.root, sp.p.adapter)


def test_compiled_once_then_reused_without_dbt(sp):
    (sp.p.root / "target" / CACHE_FILE).unlink(missing_ok=True)
    first = runs(sp)
    assert [r["sync_name"] for r in first] == ["to_files", "to_files"]
    assert [r["status"] for r in first] == ["success", "success"] and first[0]["acknowledged"] == 0
    assert first[1]["acknowledged"] == 3 and first[1]["planned_inserts"] == 3
    assert (sp.p.root / "target" / CACHE_FILE).is_file()

    compiled = compiled_sql(sp)
    try:
        default = compiled.value("sync_default_state_schema")
        sql = compiled.value("sync_recent_runs_sql", state_schema=default, limit=20)
        assert compiled.compiled == []  # nothing compiled: both came from the cache
        # DuckDB runs the kept SQL on its own connection: no dbt adapter was built
        assert compiled.direct is (sp.p.adapter == "duckdb")
        sp.p.release()
        _, rows = compiled.rows(sql["query"])
        assert len(rows) == 2
    finally:
        compiled.close()
    assert runs(sp) == first


@contextlib.contextmanager
def root_macro_override(sp, filename: str) -> Iterator[Path]:
    """A macro file of the root project that dispatch searches before the package (written by the caller), and
    both gone afterwards."""
    project_file = sp.p.root / "dbt_project.yml"
    original = project_file.read_text()
    macro = sp.p.root / "macros" / filename
    macro.parent.mkdir(exist_ok=True)
    try:
        project_file.write_text(original + "\ndispatch:\n  - macro_namespace: dbt_studio\n"
                                f"    search_order: ['{_project_name(original)}', 'dbt_studio']\n")
        yield macro
    finally:
        macro.unlink(missing_ok=True)
        project_file.write_text(original)


def test_a_changed_macro_never_runs_the_old_sql(sp):
    runs(sp)  # compiled and cached
    with root_macro_override(sp, "override_recent_runs.sql") as macro:
        # the root project's macros win dispatch: the same call now compiles to other SQL
        macro.write_text(OVERRIDE)
        changed = runs(sp)
        assert changed == [{"sync_name": "to_files", "overridden": 42}]
        macro.write_text(OVERRIDE.replace("42 as overridden", "43 as overridden"))
        assert runs(sp) == [{"sync_name": "to_files", "overridden": 43}]  # an edit of the same file
    assert [r["sync_name"] for r in runs(sp)] == ["to_files", "to_files"]


def test_changed_inputs_change_the_fingerprint(sp, tmp_path):
    """Each input of the key: a package's version, the manifest, the sync config, the profile's env vars."""
    where = sp.p.where
    manifest = load_manifest(where.project_dir).path
    config = find_config(where.project_dir)
    assert config is not None
    before = fingerprint(where, manifest, [config])
    assert fingerprint(where, manifest, [config]) == before  # stable while nothing changes
    # the manifest's digest as the caller read it counts as hashing its bytes again
    assert fingerprint(where, manifest, [config], hashlib.sha256(manifest.read_bytes()).hexdigest()) == before
    assert fingerprint(where, manifest, [config], load_manifest(where.project_dir).sha256) == before
    assert fingerprint(where, manifest, [config], hashlib.sha256(b"another manifest").hexdigest()) != before

    package = sp.p.root / "dbt_packages" / "zz_other"
    package.mkdir(parents=True)
    try:
        (package / "dbt_project.yml").write_text("name: zz_other\nversion: '1.0.0'\nconfig-version: 2\n")
        with_package = fingerprint(where, manifest, [config])
        (package / "dbt_project.yml").write_text("name: zz_other\nversion: '1.0.1'\nconfig-version: 2\n")
        assert len({before, with_package, fingerprint(where, manifest, [config])}) == 3
    finally:
        for path in sorted(package.rglob("*"), reverse=True):
            path.unlink()
        package.rmdir()
    assert fingerprint(where, manifest, [config]) == before

    for path, edit in ((manifest, lambda t: t.replace('"metadata": {', '"metadata": {"x": 1, ', 1)),
                       (config, lambda t: t + "\n# another destination would go here\n")):
        original = path.read_text()
        path.write_text(edit(original))
        try:
            assert fingerprint(where, manifest, [config]) != before, path.name
        finally:
            path.write_text(original)
    assert fingerprint(where, manifest, [config]) == before


def test_reads_of_tables_that_may_not_exist(sp):
    """existing_rows: a read of a table that is there gives its rows, of one that is not None, a probe ([], [])
    or None; a read that fails while its table exists raises its own error. On DuckDB's own connection the reads
    run first and the tables are listed only when one fails (a listing that cannot run is never asked); through
    Snowflake's adapter the listing runs first."""
    def calls(c: CompiledSql) -> dict:
        schema = c.value("sync_default_state_schema")
        db = sp.p.query("select current_database()")[0][0]
        runs, gone = ({"database": db, "schema": schema, "identifier": name} for name in ("sync_runs", "no_such"))
        return {"exists": c.value("_relations_exist_sql", relations=[runs, gone]),
                "exists_runs": c.value("_relations_exist_sql", relations=[runs]),
                "exists_gone": c.value("_relations_exist_sql", relations=[gone])}

    first = compiled_sql(sp)
    try:
        sql = calls(first)  # compiled through dbt, kept
    finally:
        first.close()
    sp.p.release()
    c = compiled_sql(sp)
    try:
        assert calls(c) == sql and c.compiled == [] and c.direct is (sp.p.adapter == "duckdb")
        names = {"runs": "sync_runs", "gone": "no_such", "runs_probe": "sync_runs", "gone_probe": "no_such",
                 "bad": "sync_runs"}
        runs_table = sp.state_relation("to_files", "sync_runs")
        sql = {**sql, "runs": f"select count(*) from {runs_table}",
               "gone": f"select count(*) from {runs_table.replace('sync_runs', 'no_such')}"}
        recorded = len(sp.p.query(f"select * from {runs_table}"))
        assert recorded >= 2
        got = c.existing_rows(sql["exists"], {"runs": sql["runs"], "gone": sql["gone"]}, names,
                              probes={"runs_probe": sql["runs"], "gone_probe": sql["gone"]})
        assert {k: None if v is None else v[1] for k, v in got.items()} == {
            "runs": [(recorded,)], "gone": None, "runs_probe": [], "gone_probe": None}
        # the one-table form: any row of the listing means the read's table exists
        assert c.existing_rows(sql["exists_gone"], {"gone": sql["gone"]}) == {"gone": None}
        assert c.existing_rows(sql["exists_runs"], {"runs": sql["runs"]})["runs"][1] == [(recorded,)]
        with pytest.raises(Exception, match="(?i)no_such_column"):
            c.existing_rows(sql["exists"], {"bad": sql["runs"].replace("count(*)", "no_such_column")}, names)
        unlistable = "select table_name from no_such_catalog_listing"
        if sp.p.adapter == "duckdb":  # every read ran: the listing was never asked
            assert c.existing_rows(unlistable, {"runs": sql["runs"]}, names)["runs"][1] == [(recorded,)]
        else:
            with pytest.raises(Exception, match="(?i)no_such_catalog_listing"):
                c.existing_rows(unlistable, {"runs": sql["runs"]}, names)
    finally:
        c.close()


def test_a_relations_columns_read_on_its_own_equal_the_catalogs(sp):
    """relation_columns: on DuckDB's own connection DESCRIBE of the one relation, equal to what
    information_schema says (relation_columns_sql: names, types as text, whether a number) for every kind of
    column and a quoted mixed-case name, and nothing for a relation that does not exist; the same on Snowflake."""
    db = sp.p.query("select current_database()")[0][0]
    schema = sp.p.query("select current_schema()")[0][0]
    odd = '"Odd Table"'
    kinds = ("id integer, \"Mixed Name\" varchar, price decimal(18,3), ratio double, seen timestamp, day date, "
             "flag boolean, big bigint")
    if sp.p.adapter == "duckdb":
        kinds += ", tags varchar[], info struct(x integer, y varchar), seen_tz timestamp with time zone, h hugeint"
    sp.p.execute(f"create or replace table {odd} ({kinds})")
    try:
        relations = [{"database": db, "schema": schema, "identifier": name}
                     for name in ("Odd Table", "people", "no_such_relation")]
        first = compiled_sql(sp)
        try:
            for relation in relations:  # compiled through dbt, kept
                first.relation_columns(relation)
        finally:
            first.close()
        sp.p.release()
        c = compiled_sql(sp)
        try:
            assert c.direct is (sp.p.adapter == "duckdb")
            # DuckDB reads each relation on its own (DESCRIBE); Snowflake has only the portable query
            assert (c.value("relation_columns_read_sql", relation=relations[0]) is None) is (sp.p.adapter != "duckdb")
            for relation in relations:
                portable = c.rows(c.value("relation_columns_sql", relation=relation))[1]
                assert c.relation_columns(relation) == portable, relation
            assert c.compiled == []
            odd_columns = c.relation_columns(relations[0])
            assert [r[0].lower() for r in odd_columns][:3] == ["id", "mixed name", "price"]
            assert [bool(r[2]) for r in odd_columns][:4] == [True, False, True, True]
            assert c.relation_columns(relations[2]) == []
        finally:
            c.close()
    finally:
        sp.p.execute(f"drop table if exists {odd}")


# DuckDB only: the direct connection is DuckDB's (Snowflake's pages come through dbt's adapter)
@pytest.mark.parametrize("sp", ["duckdb"], indirect=True)
def test_a_page_read_on_the_direct_connection_comes_in_one_record_batch(sp):
    """arrow() hands a page's rows over as one record batch (up to DuckDB's row group, 122,880 rows), however many
    threads DuckDB sorted them with, and without the copy of the DB-API result."""
    sp.p.execute("create or replace table paged as select i, md5(i::varchar) as h from range(200000) t(i)")
    first = compiled_sql(sp)
    try:
        first.value("sync_default_state_schema")  # kept: the next instance runs on its own connection
    finally:
        first.close()
    sp.p.release()
    c = compiled_sql(sp)
    try:
        c.value("sync_default_state_schema")
        assert c.direct
        sql = "select i, h from paged where i between $first and $last order by h"
        page = c.arrow(sql, {"first": 1000, "last": 100999})  # a page within one of DuckDB's row groups
        assert page.num_rows == 100000 and len(page.to_batches()) == 1
        assert page.column("i").to_pylist() == sorted(range(1000, 101000), key=lambda i: hashlib.md5(
            str(i).encode()).hexdigest())
        assert len(c.arrow("select * from paged where i < 50000 order by h desc").to_batches()) == 1
    finally:
        c.close()
        sp.p.execute("drop table if exists paged")


def test_a_changed_var_recompiles(sp):
    """A project var the macros read (the state schema's suffix) changes what they return."""
    runs(sp)
    project_file = sp.p.root / "dbt_project.yml"
    original = project_file.read_text()
    try:
        project_file.write_text(original + "\nvars:\n  dbt_studio_state_schema_suffix: _elsewhere\n")
        assert runs(sp) == []  # no run log in that schema yet: the new schema was asked, not the cached one
        compiled = compiled_sql(sp)
        try:
            assert compiled.value("sync_default_state_schema").lower().endswith("_elsewhere")
        finally:
            compiled.close()
    finally:
        project_file.write_text(original)
    assert len(runs(sp)) == 2


def _project_name(dbt_project_yml: str) -> str:
    return next(line.split(":", 1)[1].strip().strip("'\"") for line in dbt_project_yml.splitlines()
                if line.startswith("name:"))


def plan(sp, **options) -> tuple[dict, bool, list[str]]:
    """One dry run through SyncRunner: (planned counts, full resync?, sample ops), whether it ran without dbt,
    and what it compiled."""
    sp.p.release()
    runner = SyncRunner(sp.p.where, Options(dry_run=True, **options))
    try:
        report = runner.run()[0]
        compiled = runner.compiled()
        assert report.status == "planned", report.message
        ops = sorted({row[report.sample["columns"].index(_column(report.sample["columns"], "_op"))]
                      for row in report.sample["rows"]})
        return (report.planned, report.full_resync, ops), compiled.direct, list(compiled.compiled)
    finally:
        runner.close()


def _column(columns: list[str], name: str) -> str:
    return next(c for c in columns if c.lower() == name)


def test_plan_runs_kept_sql_and_matches_the_sync(sp):
    """A dry run from kept SQL plans exactly what the sync then sends; a changed mapping resets it."""
    syncs = [{"name": "to_files", "destination": "out", "mode": "upsert", "on_delete": "delete",
              "mappings": MAPPINGS}]
    sp.build({i: person(i) for i in range(1, 6)}, syncs)
    assert sp.sync()["to_files"].status == "success"
    rows = {i: person(i) for i in range(1, 6) if i != 3}
    rows[1] = person(1, plan="pro")
    rows[2] = person(2, score=99)
    rows[4] = person(4, note="unmapped: not a change")
    rows[7] = person(7)
    sp.build(rows, syncs)
    expected = ({"insert": 1, "update": 2, "delete": 1, "clear": 0}, False, ["delete", "insert", "update"])

    (sp.p.root / "target" / CACHE_FILE).unlink(missing_ok=True)
    first, _, compiled_first = plan(sp)
    assert first == expected and "sync_plan_preview_sql" in compiled_first
    second, direct, compiled_second = plan(sp)
    assert second == expected and compiled_second == []  # every statement came from the cache
    # (a sync that deletes has safeguard limits by default: the snapshot's size is read from kept SQL too)
    assert direct is (sp.p.adapter == "duckdb")  # no dbt adapter was built for it

    report = sp.sync()["to_files"]
    assert (report.status, report.planned) == ("success", expected[0])
    nothing = {"insert": 0, "update": 0, "delete": 0, "clear": 0}
    assert plan(sp)[0] == (nothing, False, [])

    # nothing to send: on DuckDB the run is logged from kept SQL without dbt (once its statement is compiled too);
    # Snowflake runs it through dbt
    logged = len(runs(sp))
    for _ in range(2):
        sp.p.release()
        runner = SyncRunner(sp.p.where, Options())
        try:
            report = runner.run()[0]
            direct = runner.compiled().direct
        finally:
            runner.close()
        assert (report.status, report.planned, report.sent) == ("success", nothing, 0)
    assert direct is (sp.p.adapter == "duckdb")  # Snowflake runs it through dbt
    latest = runs(sp)
    assert len(latest) == logged + 2 and latest[0]["status"] == "success"
    assert (latest[0]["planned_inserts"], latest[0]["acknowledged"], len(latest[0]["run_id"])) == (0, 0, 16)

    # a changed mapping (the manifest changes): a full resync of every row, never the old plan's SQL
    sp.build(rows, [{**syncs[0], "mappings": {**MAPPINGS, "email_copy": "email"}}])
    changed, _, recompiled = plan(sp)
    assert changed == ({"insert": 5, "update": 0, "delete": 0, "clear": 0}, True, ["insert"])
    assert "sync_plan_preview_sql" in recompiled  # compiled again: the manifest is part of the fingerprint
    assert plan(sp, full_resync=True)[0][1] is True


CHECK_KEYS = """
{% macro default__sync_check_keys_sql(sync, source) -%}
select 'null' as problem, cast(null as {{ dbt.type_string() }}) as example, NULLS as n
{%- endmacro %}
"""

RUN_FINISH = """
{% macro default__sync_run_finish_sql(sync, run_id, status, planned_inserts, planned_updates, planned_deletes,
                                      acknowledged, rejected, error) %}
    {{ return(dbt_studio.default__sync_run_finish_sql(sync, run_id, "'STATUS'", planned_inserts, planned_updates,
                                                      planned_deletes, acknowledged, rejected, error)) }}
{% endmacro %}
"""


def kept(runner: SyncRunner) -> bool:
    """Whether the run's statements all came from the cache and ran without dbt (DuckDB's direct connection)."""
    compiled = runner.compiled()
    return compiled.direct and not compiled.compiled


def dry_run(sp) -> tuple[str, str, bool]:
    """One dry run of the only sync: its status and message, and whether it ran from kept SQL alone."""
    sp.p.release()
    runner = SyncRunner(sp.p.where, Options(dry_run=True))
    try:
        report = runner.run()[0]
        return report.status, report.message, kept(runner)
    finally:
        runner.close()


def no_op_sync(sp) -> tuple[str, bool]:
    sp.p.release()
    runner = SyncRunner(sp.p.where, Options())
    try:
        report = runner.run()[0]
        return report.status, kept(runner)
    finally:
        runner.close()


def no_op_syncs_until_kept(sp) -> list[str]:
    """No-op syncs until one runs from kept SQL alone (DuckDB; at most 3 more after the first compiles what it
    needs) or, on Snowflake, once: the run log's status of each, oldest first."""
    logged = len(runs(sp))
    for _ in range(4):
        status, direct = no_op_sync(sp)
        assert status == "success"
        if direct or sp.p.adapter != "duckdb":
            break
    assert direct is (sp.p.adapter == "duckdb")
    latest = runs(sp)
    return [r["status"] for r in reversed(latest[:len(latest) - logged])]


def test_plan_and_a_no_op_sync_never_run_old_sql(sp):
    """The kept dry run and no-op run after each input of the fingerprint changes: a macro of the root project
    (an edit of the same file too), the sync config, a package's version. Each change compiles again; none runs the
    statement compiled before it."""
    sp.build({i: person(i) for i in range(1, 4)},
             [{"name": "to_files", "destination": "out", "mode": "upsert", "mappings": MAPPINGS}])
    assert sp.sync()["to_files"].status == "success"
    duckdb = sp.p.adapter == "duckdb"
    assert set(no_op_syncs_until_kept(sp)) == {"success"}
    assert dry_run(sp)[:2] == ("planned", "")  # a dry run's own statements (the preview) compile once
    assert dry_run(sp) == ("planned", "", duckdb)

    with root_macro_override(sp, "override_plan.sql") as macro:
        for nulls in (7, 8):  # the override, then an edit of the same file
            macro.write_text(CHECK_KEYS.replace("NULLS", str(nulls)))
            status, message, direct = dry_run(sp)
            assert status == "failed" and f"{nulls} row(s) with a null primary key" in message, message
            assert not direct
            assert dry_run(sp) == (status, message, duckdb)  # from the cache the second time
        for label in ("kept_one", "kept_two"):  # never the label of the SQL kept before
            macro.write_text(RUN_FINISH.replace("STATUS", label))
            statuses = no_op_syncs_until_kept(sp)  # the first one compiles again, the later ones are kept
            assert set(statuses) == {label}, statuses
    assert dry_run(sp) == ("planned", "", False)  # the override is gone: compiled again
    assert set(no_op_syncs_until_kept(sp)) == {"success"}

    config = find_config(sp.p.root)
    assert config is not None
    text = config.read_text()
    try:
        config.write_text(text + "\n# edited\n")
        assert dry_run(sp) == ("planned", "", False)  # the sync config changed: compiled again through dbt
        assert dry_run(sp) == ("planned", "", duckdb)
    finally:
        config.write_text(text)

    package = sp.p.root / "dbt_packages" / "zz_other"
    package.mkdir(parents=True)
    try:
        for version in ("1.0.0", "1.0.1"):
            (package / "dbt_project.yml").write_text(f"name: zz_other\nversion: '{version}'\nconfig-version: 2\n")
            assert dry_run(sp) == ("planned", "", False)  # another package version: compiled again
            assert dry_run(sp) == ("planned", "", duckdb)
    finally:
        (package / "dbt_project.yml").unlink()
        package.rmdir()


def test_validate_reads_the_relations_columns_from_kept_sql(sp):
    """`dbt-studio validate`'s columns (names and types) are the relation's, as dbt's adapter lists them; on DuckDB
    from kept SQL without dbt once compiled. The SQL is kept, the columns are read live: a column added later is
    seen."""
    from sync_runner.validate import relation_columns

    where = sp.p.where
    manifest = load_manifest(where.project_dir)
    node = manifest.studio_models()[0]

    def adapter_columns() -> list[tuple[str, str, bool]]:
        wh = sp.p.warehouse()
        try:
            with wh.session():
                relation = wh.relation(node.database, node.schema, node.alias)
                names = wh.call("relation_columns", relation=relation, lower=False)
                [pairs] = wh.call("relations_columns", relations=[relation], with_types=True)
        finally:
            wh.close()
            sp.p.release()
        assert [name for name, _, _ in pairs] == names
        return [(str(name), str(kind), bool(number)) for name, kind, number in pairs]

    expected = adapter_columns()  # names and types as dbt's adapter lists them
    assert {number for *_, number in expected} == {True, False}  # (the package's number rule, from its macro)
    (sp.p.root / "target" / CACHE_FILE).unlink(missing_ok=True)
    sp.p.release()
    assert relation_columns(manifest, where)[node.unique_id] == expected
    assert relation_columns(manifest, where)[node.unique_id] == expected
    if sp.p.adapter == "duckdb":
        compiled = compiled_sql(sp)
        try:
            compiled.value("relation_columns_sql",
                           relation={"database": node.database, "schema": node.schema, "identifier": node.alias})
            assert compiled.compiled == [] and compiled.direct  # kept by the first validate
        finally:
            compiled.close()
        sp.p.query(f"alter table {node.relation_name} add column added_later integer")
        sp.p.release()
        try:
            assert relation_columns(manifest, where)[node.unique_id] == [*expected, ("added_later", "INTEGER", True)]
        finally:
            sp.p.query(f"alter table {node.relation_name} drop column added_later")
            sp.p.release()


# `dbt-studio <command>` in a process of its own; then which of the heavy modules it imported and what Jinja compiled
COMMAND_AND_TELL = """
import sys
import jinja2
compiled = []
compile_ = jinja2.Environment.compile
jinja2.Environment.compile = lambda self, source, name=None, *a, **k: compiled.append(name) or compile_(
    self, source, name, *a, **k)
from sync_runner.cli import main
project = sys.argv[1]
sys.argv = ["dbt-studio", sys.argv[2], "--project-dir", project, "--profiles-dir", project]
try:
    main()
    print("EXIT 0")
except SystemExit as exc:
    print("EXIT", exc.code)
WATCHED = ("dbt.adapters", "pyarrow", "requests", "sync_runner.sync.engine", "yaml")
print("LOADED", sorted({m.split(".")[0] + (".engine" if m == "sync_runner.sync.engine" else "")
                        for m in sys.modules if m.startswith(WATCHED)}))
print("COMPILED", [name for name in compiled if str(name).startswith("dbt_studio:")])  # the rules (not dbt's own)
"""


def test_a_kept_validate_or_status_loads_neither_dbt_nor_arrow_nor_the_engine(sp):
    """Once a validation without problems kept its SQL and the schema rules' compiled code, the next `dbt-studio
    validate` runs the rules without compiling their Jinja; on DuckDB it also reads the columns on its own
    connection and the destinations' options without importing dbt's adapters, Arrow, requests, the sync
    engine or PyYAML (the project's YAML is kept parsed), and so does a kept `dbt-studio status`."""
    import subprocess

    sp.build({i: person(i) for i in range(1, 3)}, [{"name": "checked", "destination": "out", "mode": "upsert",
                                                     "mappings": MAPPINGS}])
    sp.p.release()
    told = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", COMMAND_AND_TELL, str(sp.p.root), "validate"],
                              capture_output=True, text=True, timeout=300)
        assert "EXIT 0" in done.stdout, done.stdout + done.stderr
        told.append(done.stdout)
    assert "COMPILED []" not in told[0]  # the first compiles the rules (and keeps their code)
    assert "COMPILED []" in told[1], told[1]
    if sp.p.adapter == "duckdb":  # (Snowflake reads the columns through dbt's adapter)
        assert "LOADED []" in told[1], told[1]
        # `dbt-studio status` reads the run log without the engine either, once its statements are kept
        assert sp.sync()["checked"].status == "success"
        sp.p.release()
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", COMMAND_AND_TELL, str(sp.p.root), "status"],
                                  capture_output=True, text=True, timeout=300)
            assert "EXIT 0" in done.stdout and "checked" in done.stdout, done.stdout + done.stderr
        assert "LOADED []" in done.stdout, done.stdout


# `dbt-studio sync` in a process of its own; then whether any of dbt's adapter machinery was imported
SYNC_AND_TELL = """
import sys
from sync_runner.cli import main
project = sys.argv[1]
sys.argv = ["dbt-studio", "sync", "--project-dir", project, "--profiles-dir", project]  # the profile's target
try:
    main()
    print("EXIT 0")
except SystemExit as exc:
    print("EXIT", exc.code)
print("DBT_LOADED", any(m.startswith(("dbt.adapters", "dbt.config")) for m in sys.modules))
"""


def test_a_sync_that_sends_rows_runs_from_kept_sql(sp):
    """Once its statements are kept, a DuckDB sync that sends rows (lock, run log, plan, pages, commit) runs them
    on its own connection and never imports dbt's adapters; it sends and commits what the documented semantics
    say. Snowflake runs the same macros through dbt."""
    import subprocess

    syncs = [{"name": "to_files", "destination": "out", "mode": "upsert", "on_delete": "delete",
              "mappings": MAPPINGS}]
    sp.build({i: person(i) for i in range(1, 5)}, syncs)
    assert sp.sync()["to_files"].status == "success"  # a first run: a reset plan
    people = sp.p.relation("people")
    sp.p.execute(f"update {people} set plan = 'team' where user_id = 3")
    assert sp.sync()["to_files"].acknowledged == 1  # an incremental plan: what the cache lacked is compiled now
    sp.p.execute(f"update {people} set plan = 'pro' where user_id = 1")
    sp.p.execute(f"delete from {people} where user_id = 2")
    sp.p.execute(f"insert into {people} (user_id, name, email, plan, score, note) "
                 "values (5, 'Person 5', 'p5@mail.com', 'free', 5, 'n')")
    sp.p.release()
    if sp.p.adapter == "duckdb":
        done = subprocess.run([sys.executable, "-c", SYNC_AND_TELL, str(sp.p.root)], capture_output=True,
                              text=True, timeout=300)
        assert "EXIT 0" in done.stdout and "DBT_LOADED False" in done.stdout, done.stdout + done.stderr
    else:
        runner = SyncRunner(sp.p.where, Options())
        try:
            assert runner.run()[0].status == "success"
            assert not runner.compiled().direct  # through dbt
        finally:
            runner.close()
    sent = file_ops(sp.tmp, "to_files")[-1]
    assert {k: r["_op"] for k, r in sent.items()} == {"1": "update", "2": "delete", "5": "insert"}
    assert sent["1"]["plan"] == "pro" and sent["5"]["email"] == "p5@mail.com"
    latest = runs(sp)[0]
    assert (latest["status"], latest["planned_inserts"], latest["planned_updates"], latest["planned_deletes"],
            latest["acknowledged"]) == ("success", 1, 1, 1, 3)
    assert sorted(str(r[0]) for r in sp.state("to_files", "snapshot")) == ["1", "3", "4", "5"]


def test_a_bug_inside_a_block_of_kept_sql_keeps_its_traceback(sp):
    """Only the warehouse's own errors become "cannot use the warehouse": a bug in the code using the block leaves
    as itself, so nobody goes looking for a problem in a profile that has none."""
    with pytest.raises(KeyError, match="no_such_field"), compiled_sql(sp) as compiled:
        compiled.value("sync_default_state_schema")
        {}["no_such_field"]
    warehouse_error = "(?i)^cannot use the warehouse of .*: .*no_such_table"
    with pytest.raises(Exception, match=warehouse_error), compiled_sql(sp) as compiled:
        compiled.rows("select * from no_such_table")
