"""Records the warehouse writes as JSON (macros/sync/records.sql) for a destination that sends them unchanged: the
`http` destination with its default body, on DuckDB.

The reference is the runner's own conversion, reached through the same destination with a body template that
writes the records with `tojson` (the template path never takes the warehouse's JSON): every record of every
operation must read the same, value by value and type by type, for values at the edges of each type. A few
records are also spelled out by hand.
"""

from __future__ import annotations

import json

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


def _run(typed: SyncProject, sink, changed: bool, model: str, columns: dict) -> None:
    """Build `model` of `columns` and run both its syncs; every column is mapped (MAPPINGS' names, else its own)."""
    (typed.p.root / "models" / f"{model}.sql").write_text(
        MODEL.format(model=model, rows=_model_sql(columns, changed)), encoding="utf-8")
    named = {col: dest for dest, col in MAPPINGS.items()}
    mappings = {"id": "id", **{named.get(col, col): col for col in columns}}
    typed.p.dbt("build", "-s", model, vars={f"{model}_syncs": _syncs(model, mappings)})
    sink.reset()
    reports = typed.sync(select=(f"{model}_json", f"{model}_python"))
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


def test_the_warehouse_writes_each_record_as_the_runner_would(typed, http_sink):
    _destinations(typed, http_sink)
    for changed in (False, True):  # a first full send, then an update, a clear and rows left alone
        _run(typed, http_sink, changed, "typed_values", COLUMNS)
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
    assert [f[2] for f in _kept_fields(typed, "typed_values_json")[0]] == [
        "value", "value", "value", "value", "value", "text", "text", "text", "float", "float", "timestamp", "date"]
    assert not _kept_fields(typed, "typed_values_python")  # a body template: the runner converts


def test_a_type_the_warehouse_does_not_write_as_the_runner_does_is_converted_by_the_runner(typed, http_sink):
    _destinations(typed, http_sink)
    _run(typed, http_sink, False, "typed_other", OTHER)
    assert _received(http_sink, "json") == _received(http_sink, "python")
    records = {r["id"]: r for body in _bodies(http_sink, "json") for r in body["records"]}
    assert records[1]["amount"] == 1.5 and records[4]["amount"] == "12345678901234.5678"  # exact digits as text
    assert records[1]["weight"] == pytest.approx(0.1) and records[3]["weight"] is None
    assert not _kept_fields(typed, "typed_other_json")
