"""Which rows a sync sends: holdouts left out by default (`include_holdout: true` sends them), `split_groups`, and a
`filter` over the model's columns (the audience property syntax). The selection is applied in the warehouse
plan, so a row that leaves it is a delete per `on_delete`.

Expected change sets come from a plain-Python reference: select the rows, then diff by key on the mapped columns.
"""

from __future__ import annotations

import csv

import pytest

from helpers import ADAPTERS
from helpers.sync_project import COLUMNS, MAPPED, MAPPINGS, PROJECT, SyncProject, file_ops, person

SPLITS = {"groups": {"treatment": 60, "control": 30, "holdout": 10}, "holdout": "holdout"}

# a model shaped like a dbt_studio.audience with splits: the split columns and the spec the macro records in meta
SELECTED_SQL = """\
{{ config(materialized='table', meta={
    'dbt_studio': {'primary_key': 'user_id', 'syncs': var('rows_syncs', [])},
    'dbt_studio_audience': {'parent': 'people', 'splits': SPLITS}}) }}

select
    user_id, email, plan, score,
    case when score % 10 = 9 then 'holdout' when score % 3 = 0 then 'control' else 'treatment' end as split_group,
    coalesce(score % 10 = 9, false) as is_holdout
from {{ ref('people_rows') }}
""".replace("SPLITS", repr(SPLITS))

SYNCS = [
    {"name": "default_rows", "mode": "upsert", "on_delete": "delete"},
    {"name": "with_holdout", "mode": "upsert", "on_delete": "delete", "include_holdout": True},
    {"name": "treatment_pro", "mode": "upsert", "on_delete": "delete", "split_groups": ["treatment"],
     "filter": {"and": [{"column": "plan", "op": "=", "value": "pro"}, {"column": "score", "op": ">=", "value": 5}]}},
    {"name": "not_free_clear", "mode": "mirror", "on_delete": "clear",
     "filter": {"not": {"column": "plan", "op": "in", "value": ["free"]}}},
    {"name": "groups_kept", "mode": "upsert", "on_delete": "nothing", "split_groups": ["control", "holdout"],
     "include_holdout": True, "filter": {"or": [{"column": "email", "op": "ends with", "value": "@shop.com"},
                                                {"column": "score", "op": "<", "value": 4}]}},
]


def split_group(row: dict) -> str:
    score = row["score"]
    if score is not None and score % 10 == 9:
        return "holdout"
    if score is not None and score % 3 == 0:
        return "control"
    return "treatment"


def matches(tree: dict, row: dict) -> bool:
    """The filter over one row; a comparison with NULL is false, also under `not` (the macro's null-safe leaves)."""
    if "and" in tree:
        return all(matches(c, row) for c in tree["and"])
    if "or" in tree:
        return any(matches(c, row) for c in tree["or"])
    if "not" in tree:
        return not matches(tree["not"], row)
    value, op, wanted = row[tree["column"]], tree["op"], tree["value"]
    if value is None:
        return False
    return {"=": lambda: value == wanted, ">=": lambda: value >= wanted, "<": lambda: value < wanted,
            "in": lambda: value in wanted, "ends with": lambda: str(value).endswith(wanted)}[op]()


def selected(rows: dict[str, dict], sync: dict) -> dict[str, dict]:
    out = {}
    for key, row in rows.items():
        group = split_group(row)
        if group == "holdout" and not sync.get("include_holdout"):
            continue
        if "split_groups" in sync and group not in sync["split_groups"]:
            continue
        if "filter" in sync and not matches(sync["filter"], row):
            continue
        out[key] = row
    return out


def reference_ops(before: dict, after: dict, sync: dict) -> dict[str, str]:
    ops = {}
    for key, row in after.items():
        if key not in before:
            ops[key] = "insert"
        elif any(row[c] != before[key][c] for c in MAPPED):
            ops[key] = "update"
    if sync["mode"] == "mirror" or sync["on_delete"] != "nothing":
        for key in before.keys() - after.keys():
            ops[key] = "clear" if sync["on_delete"] == "clear" else "delete"
    return ops


def rows_v1() -> dict[str, dict]:
    rows = {}
    for i in range(1, 25):
        rows[f"u{i:02d}"] = person(i, plan=("pro" if i % 2 else "free"),
                                   email=f"p{i}@{'shop.com' if i % 4 == 0 else 'mail.com'}")
    rows["u13"]["plan"] = None  # a null in a filtered column: out of `plan = pro`, in `not plan in (free)`
    return rows


def rows_v2(v1: dict[str, dict]) -> dict[str, dict]:
    rows = {k: dict(v) for k, v in v1.items() if k not in ("u02", "u07")}  # deleted
    rows["u05"]["plan"] = "free"        # leaves `plan = pro` and enters `plan in (free)`
    rows["u11"]["score"] = 19           # moves into the holdout group (19 % 10 = 9)
    rows["u09"]["score"] = 8            # leaves the holdout (treatment now)
    rows["u15"]["email"] = "new15@mail.com"  # a mapped change inside the selection
    rows["u13"]["plan"] = "pro"         # from null into `plan = pro`
    rows["u30"] = person(30, plan="pro", email="p30@shop.com")  # new, control
    rows["u31"] = person(31, plan="pro")  # new, treatment
    return rows


@pytest.fixture(scope="module", params=ADAPTERS)
def sp(request, new_project, tmp_path_factory):
    project = new_project(request.param, name="sync_rows", source=PROJECT)
    (project.root / "models" / "selected.sql").write_text(SELECTED_SQL, encoding="utf-8")
    return SyncProject(project, tmp_path_factory.mktemp(f"rows_out_{request.param}"))


def _build(sp: SyncProject, rows: dict[str, dict], syncs: list[dict]) -> None:
    with (sp.p.root / "seeds" / "people_rows.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for key in sorted(rows):
            out.writerow([key] + ["" if rows[key][c] is None else rows[key][c] for c in COLUMNS[1:]])
    sp.p.dbt("build", vars={"syncs": [], "rows_syncs": syncs})


def test_holdouts_split_groups_and_filters_against_a_reference(sp):
    out = sp.tmp / "files"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    syncs = [{**s, "destination": "out", "mappings": MAPPINGS} for s in SYNCS]
    v1 = rows_v1()
    _build(sp, v1, syncs)
    planned = sp.sync(select=("selected",), dry_run=True)
    first = sp.sync(select=("selected",))
    assert {r.status for r in first.values()} == {"success"}, {k: r.message for k, r in first.items()}
    v2 = rows_v2(v1)
    _build(sp, v2, syncs)
    second = sp.sync(select=("selected",))
    assert {r.status for r in second.values()} == {"success"}, {k: r.message for k, r in second.items()}

    for sync in SYNCS:
        runs = file_ops(out, sync["name"])
        want_first = selected(v1, sync)
        assert planned[sync["name"]].planned["insert"] == len(want_first), sync["name"]
        assert {k: r["_op"] for k, r in runs[0].items()} == dict.fromkeys(want_first, "insert"), sync["name"]
        want = reference_ops(want_first, selected(v2, sync), sync)
        got = {k: r["_op"] for k, r in runs[1].items()} if len(runs) > 1 else {}
        assert got == want, sync["name"]
        for key, op in want.items():  # the values sent are the model's current ones
            if op in ("insert", "update"):
                assert (runs[1][key]["email"], runs[1][key]["plan"]) == (v2[key]["email"], v2[key]["plan"])
    # the cases the data was made for did happen
    default = {k: r["_op"] for k, r in file_ops(out, "default_rows")[1].items()}
    assert default["u11"] == "delete" and default["u09"] == "insert"  # into and out of the holdout
    pro = {k: r["_op"] for k, r in file_ops(out, "treatment_pro")[1].items()}
    assert pro["u05"] == "delete" and pro["u13"] == "insert"  # left the filter / entered it from null
    assert {k: r["_op"] for k, r in file_ops(out, "not_free_clear")[1].items()}["u05"] == "clear"


def test_a_selection_over_a_missing_column_or_group_is_a_configuration_error(sp):
    out = sp.tmp / "bad"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    bad = [{"name": "bad_filter", "destination": "out", "mappings": MAPPINGS,
            "filter": {"column": "plann", "op": "=", "value": "pro"}}]
    _build(sp, rows_v1(), bad)
    report = sp.sync(select=("bad_filter",))["bad_filter"]
    assert (report.status, report.problem) == ("failed", "config")
    assert "selects rows by unknown column 'plann'" in report.message
    assert not out.exists()
