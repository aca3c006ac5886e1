"""Records the warehouse writes as JSON (macros/sync/records.sql) for a destination that sends them unchanged: the
`http` destination with its default body, on DuckDB.

The reference is the runner's own conversion, reached through the same destination with a body template that
writes the records with `tojson` (the template path never takes the warehouse's JSON): every record of every
operation must read the same, value by value and type by type, for values at the edges of each type. A few
records are also spelled out by hand.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import yaml

from sync_runner.project.compiled import CACHE_FILE

from helpers.sync_project import PROJECT, SyncProject

# column -> (SQL type, values of rows 1..5); each value is SQL
COLUMNS = {
    "big": ("bigint", ["-9223372036854775807 - 1", "9223372036854775807", "0", "null", "42"]),
    "huge": ("ubigint", ["18446744073709551615", "0", "null", "7", "1"]),
    "small": ("smallint", ["-32768", "32767", "null", "0", "5"]),
    "flag": ("boolean", ["true", "false", "null", "true", "false"]),
    "name": ("varchar", ["'plain'", "'é漢字😀 \"quoted\" back\\slash /'", "'line' || chr(10) || 'tab' || chr(9) "
                         "|| chr(1) || chr(127) || chr(8232)", "''", "null"]),
    "doc": ("json", ["'{\"a\": [1, 2]}'", "'[]'", "'\"text\"'", "null", "'1'"]),
    "uid": ("uuid", ["'00000000-0000-0000-0000-000000000001'", "null", "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                     "'12345678-1234-5678-1234-567812345678'", "null"]),
    "ratio": ("double", ["'nan'", "'inf'", "'-inf'", "-0.0", "0.1"]),
    "extreme": ("double", ["1e300", "5e-324", "100.0", "1e16", "null"]),
    "at": ("timestamp", ["'0001-01-01 00:00:00'", "'2024-06-01 08:30:00.123456'", "'9999-12-31 23:59:59.999999'",
                         "null", "'2024-02-29 00:00:00'"]),
    "day": ("date", ["'2024-02-29'", "'0001-01-01'", "'9999-12-31'", "null", "'1970-01-01'"]),
}
# the model of the same values plus types the warehouse does not write as the runner does (a decimal, a float):
# its syncs are converted by the runner whichever the destination
OTHER = {**COLUMNS, "amount": ("decimal(18, 4)", ["1.5000", "-0.0001", "null", "12345678901234.5678", "0"]),
         "weight": ("real", ["0.1", "null", "'nan'", "3.5", "-2"])}

# destination field -> column: renamed, quoted and non-ASCII names, the key first
MAPPINGS = {"id": "id", "big": "big", "huge": "huge", "small": "small", "flag": "flag", 'say "hi"': "name",
            "document": "doc", "uid": "uid", "ratio": "ratio", "extreme": "extreme", "o'clock": "at", "día": "day"}

MODEL = """\
{{{{ config(materialized='table',
           meta={{'dbt_studio': {{'primary_key': 'id', 'syncs': var('{model}_syncs', [])}}}}) }}}}

{rows}
"""


def _model_sql(columns: dict[str, tuple[str, list[str]]], changed: bool) -> str:
    """Rows 1..5 (row 2 dropped and row 4's values changed when `changed`)."""
    selects = []
    for row in range(5):
        if changed and row == 1:
            continue
        values = [f"cast({row + 1} as integer) as id"]
        for column, (kind, cells) in columns.items():
            cell = cells[row]
            if changed and row == 3 and kind.startswith(("bigint", "smallint")):
                cell = "-1"
            values.append(f"cast({cell} as {kind}) as {column}")
        selects.append("select " + ", ".join(values))
    return "\nunion all\n".join(selects)


def _syncs(model: str, mappings: dict[str, str]) -> list[dict]:
    """The same sync twice: the default body, and a template that writes it through the runner's conversion."""
    return [{"name": f"{model}_{how}", "destination": f"hook_{how}", "mode": "mirror", "on_delete": "clear",
             "mappings": mappings} for how in ("json", "python")]


@pytest.fixture(scope="module")
def typed(new_project, tmp_path_factory):
    project = new_project("duckdb", name="records_json", source=PROJECT)
    return SyncProject(project, tmp_path_factory.mktemp("records_json"))


def _bodies(sink, how: str) -> list[dict]:
    """The bodies one sync posted: the template's carry `"how": "python"`, the default body has no such key."""
    return [body for body in sink.requests if body.get("how", "json") == how]


def _received(sink, how: str) -> list[tuple[str, str]]:
    """(op, each record as canonical JSON) of one sync, sorted."""
    return sorted((body["op"], json.dumps(r, sort_keys=True)) for body in _bodies(sink, how) for r in body["records"])


def _run(typed: SyncProject, sink, changed: bool, model: str, columns: dict, page_rows: int = 50_000) -> None:
    """Build `model` of `columns` and run both its syncs; every column is mapped (MAPPINGS' names, else its own).
    A plan of one page at most is read as rows, a longer one (`page_rows` below the plan's rows) as Arrow."""
    (typed.p.root / "models" / f"{model}.sql").write_text(
        MODEL.format(model=model, rows=_model_sql(columns, changed)), encoding="utf-8")
    named = {col: dest for dest, col in MAPPINGS.items()}
    mappings = {"id": "id", **{named.get(col, col): col for col in columns}}
    typed.p.dbt("build", "-s", model, vars={f"{model}_syncs": _syncs(model, mappings)})
    sink.reset()
    reports = typed.sync(select=(f"{model}_json", f"{model}_python"), page_rows=page_rows)
    assert all(r.status == "success" for r in reports.values()), [r.message for r in reports.values()]


def _destinations(typed: SyncProject, sink) -> None:
    hook = {"type": "http", "url": f"{sink.url}/records", "batch_size": 2, "results_path": "results",
            "headers": {"Authorization": f"Bearer {sink.token}"}}
    typed.destinations(yaml.safe_dump({"destinations": {
        "hook_json": hook,
        "hook_python": {**hook, "body_template":
                        '{"how": "python", "op": {{ op | tojson }}, "records": {{ records | tojson }}}'}}}))


def _kept_fields(typed: SyncProject, sync: str) -> list:
    """The fields the kept SQL wrote a sync's records as JSON with (none when the runner converted them)."""
    entries = json.loads((typed.p.root / "target" / CACHE_FILE).read_text(encoding="utf-8"))["entries"]
    calls = [json.loads(call) for call in entries]
    return [c[1]["fields"] for c in calls if c[0] == "sync_plan_records_sql" and c[1]["sync"]["name"] == sync
            and c[1]["fields"]]


@pytest.mark.parametrize(("model", "page_rows"), [("typed_values", 50_000), ("typed_values_paged", 2)],
                         ids=["read-as-rows", "read-as-arrow"])
def test_the_warehouse_writes_each_record_as_the_runner_would(typed, http_sink, model, page_rows):
    _destinations(typed, http_sink)
    for changed in (False, True):  # a first full send, then an update, a clear and rows left alone
        _run(typed, http_sink, changed, model, COLUMNS, page_rows)
        assert _received(http_sink, "json") == _received(http_sink, "python")
        records = {r["id"]: (body["op"], r) for body in _bodies(http_sink, "json") for r in body["records"]}
        if not changed:
            assert len(records) == 5 and {op for op, _ in records.values()} == {"insert"}
            assert records[1][1] == {
                "id": 1, "big": -9223372036854775808, "huge": 18446744073709551615, "small": -32768, "flag": True,
                'say "hi"': "plain", "document": '{"a": [1, 2]}', "uid": "00000000-0000-0000-0000-000000000001",
                "ratio": None, "extreme": 1e300, "o'clock": "0001-01-01T00:00:00.000000", "día": "2024-02-29"}
            assert records[2][1]["ratio"] is None and records[3][1]["ratio"] is None  # infinities
            assert records[2][1]['say "hi"'] == 'é漢字😀 "quoted" back\\slash /'
            assert records[2][1]["o'clock"] == "2024-06-01T08:30:00.123456"
            assert records[3][1]["document"] == '"text"' and records[3][1]["día"] == "9999-12-31"
        else:
            assert {k: op for k, (op, _) in records.items()} == {2: "clear", 4: "update"}
            assert records[2][1] == {field: (2 if field == "id" else None) for field in MAPPINGS}
            assert records[4][1]["big"] == -1 and records[4][1]["small"] == -1
    assert [f[2] for f in _kept_fields(typed, f"{model}_json")[0]] == [
        "value", "value", "value", "value", "value", "text", "text", "text", "float", "float", "timestamp", "date"]
    assert not _kept_fields(typed, f"{model}_python")  # a body template: the runner converts


def test_a_type_the_warehouse_does_not_write_as_the_runner_does_is_converted_by_the_runner(typed, http_sink):
    _destinations(typed, http_sink)
    _run(typed, http_sink, False, "typed_other", OTHER)
    assert _received(http_sink, "json") == _received(http_sink, "python")
    records = {r["id"]: r for body in _bodies(http_sink, "json") for r in body["records"]}
    assert records[1]["amount"] == 1.5 and records[4]["amount"] == "12345678901234.5678"  # exact digits as text
    assert records[1]["weight"] == pytest.approx(0.1) and records[3]["weight"] is None
    assert not _kept_fields(typed, "typed_other_json")


# one value of each DuckDB type (a column whose type DuckDB cannot make here is left out)
TYPES = ["tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint", "uinteger", "ubigint",
         "uhugeint", "boolean", "varchar", "json", "uuid", "blob", "bit", "float", "double", "decimal(18, 4)",
         "decimal(38, 0)", "date", "time", "timetz", "timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns",
         "timestamptz", "interval", "integer[]", "integer[3]", "struct(a integer)", "map(varchar, integer)",
         "enum('a', 'b')", "union(n integer, s varchar)", "varint", "varchar collate nocase"]


def _arrow_kind(kind: pa.DataType) -> str | None:
    """The reference: what the runner writes exactly as the warehouse does, by the Arrow type it reads."""
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return "value"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_float64(kind):
        return "float"
    if pa.types.is_timestamp(kind) and kind.unit == "us" and kind.tz is None:
        return "timestamp"
    if pa.types.is_date32(kind):
        return "date"
    return None


def test_each_type_gets_the_kind_its_arrow_type_would(typed):
    """sync_json_kinds decides from a plan column's stored type (read without a page, without Arrow) what the
    runner would decide from the Arrow type DuckDB hands the column over as: otherwise a plan read as rows and
    one read as Arrow could write the same record two ways."""
    import duckdb

    con = duckdb.connect()
    made = []
    for i, kind in enumerate(TYPES):
        try:
            con.execute(f"create table t{i} as select cast(null as {kind}) as c")
        except duckdb.Error:
            continue
        made.append(i)
    assert len(made) >= 30  # (the few a DuckDB version lacks aside)
    stored = [con.execute(f"select column_type from (describe t{i})").fetchall()[0][0] for i in made]
    expected = [_arrow_kind(con.sql(f"select * from t{i}").to_arrow_table().schema.field(0).type) for i in made]
    typed.p.dbt("debug")  # (opens the project's warehouse file, which the macro's compilation wants)
    wh = typed.p.warehouse()
    try:
        kinds = wh.compile("sync_json_kinds", data_types=stored)
    finally:
        wh.close()
    assert dict(zip(stored, kinds, strict=True)) == dict(zip(stored, expected, strict=True))
    assert {k for k in kinds if k} == {"value", "text", "float", "timestamp", "date"}


# `dbt-studio sync -s <sync>` in a process of its own; then whether DuckDB's Python package and Arrow were imported
SYNC_AND_TELL = """
import sys
from sync_runner.cli import main
project, sync = sys.argv[1], sys.argv[2]
sys.argv = ["dbt-studio", "sync", "-s", sync, "--project-dir", project, "--profiles-dir", project]
try:
    main()
    print("EXIT 0")
except SystemExit as exc:
    print("EXIT", exc.code)
print("DUCKDB_PACKAGE", "duckdb" in sys.modules, "CORE", "_duckdb" in sys.modules, "ARROW", "pyarrow" in sys.modules,
      "REQUESTS", "requests" in sys.modules)
"""


def test_a_plan_of_one_page_is_sent_without_duckdbs_arrow_layer(typed, http_sink):
    """A kept sync whose plan fits in one page reads its records as rows on DuckDB's compiled core: neither the
    `duckdb` package (its relation API and Arrow, 30-35 ms of imports) nor pyarrow (with numpy, about 100 ms) is
    imported, nor requests (the destinations send with http.client), and the records are those the runner's own
    conversion gives."""
    import subprocess
    import sys

    _destinations(typed, http_sink)
    _run(typed, http_sink, False, "typed_light", COLUMNS)  # a first run and a second keep the statements
    light = typed.p.relation("typed_light")  # the rows change, the project does not: the statements stay kept
    typed.p.execute(f"update {light} set big = 1 where id = 5")
    assert typed.sync(select=("typed_light_json", "typed_light_python"))["typed_light_json"].acknowledged == 1
    typed.p.execute(f"update {light} set big = -1, small = -1 where id = 4")
    typed.p.execute(f"delete from {light} where id = 2")
    typed.p.release()
    http_sink.reset()
    for sync in ("typed_light_json", "typed_light_python"):
        done = subprocess.run([sys.executable, "-c", SYNC_AND_TELL, str(typed.p.root), sync],
                              capture_output=True, text=True, timeout=300)
        assert "EXIT 0" in done.stdout, done.stdout + done.stderr
        if sync == "typed_light_json":
            assert "DUCKDB_PACKAGE False CORE True ARROW False REQUESTS False" in done.stdout, done.stdout
    assert _received(http_sink, "json") == _received(http_sink, "python")
    assert sorted(op for op, _ in _received(http_sink, "json")) == ["clear", "update"]
