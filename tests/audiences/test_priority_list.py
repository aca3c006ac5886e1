"""Priority lists (`dbt_studio.priority_list`) against a plain-Python reference, on DuckDB and Snowflake (fakesnow).

Three overlapping audiences of the audience test project are built; the reference computes each audience's members
with the plain-Python evaluator (helpers/audience_reference.py) and gives each member the first audience in the
list that holds them. The priority list model must hold exactly those (member, audience, position) rows, carry the
columns all the audiences share, and sync like any model.
"""

from __future__ import annotations

import json

import pytest

from sync_runner.sync.engine import Options, run_syncs

from helpers import ADAPTERS
from helpers.audience_reference import PROJECT, Evaluator, make_data, read_back, write_seeds
from helpers.sql_lint import unknown_functions
from helpers.sync_project import file_ops

AUDIENCES = {
    "pl_north": {"column": "region", "op": "=", "value": "North"},
    "pl_buyers": {"has": "orders"},
    "pl_older": {"column": "age", "op": ">", "value": 40},
}
ORDER = ["pl_buyers", "pl_north", "pl_older"]


def _audience(where: dict, columns: list[str]) -> str:
    return (f"{{{{ dbt_studio.audience(parent='users', where={json.dumps(where)}, "
            f"columns={json.dumps(columns)}) }}}}\n")


@pytest.fixture(scope="module", params=ADAPTERS)
def built(request, new_project, tmp_path_factory):
    project = new_project(request.param, name="priority", source=PROJECT)
    write_seeds(project.root, make_data())
    models = project.root / "models" / "generated"
    models.mkdir(exist_ok=True)
    # the audiences share user_id, name, email (the parent's key and labels) and region; pl_older adds age
    for name, where in AUDIENCES.items():
        (models / f"{name}.sql").write_text(_audience(where, ["region"] + (["age"] if name == "pl_older" else [])),
                                            encoding="utf-8")
    out = tmp_path_factory.mktemp(f"priority_out_{request.param}")
    (project.root / "dbt_studio.yml").write_text(f"destinations:\n  out:\n    type: file\n    path: {out}\n",
                                                 encoding="utf-8")
    sync = {"primary_key": "user_id", "syncs": [{"name": "campaign_out", "destination": "out",
                                                  "mappings": {"id": "user_id", "email": "email",
                                                               "campaign": "audience"}}]}
    (models / "campaign.sql").write_text(
        f"{{{{ config(meta={{'dbt_studio': {json.dumps(sync)}}}) }}}}\n"
        f"{{{{ dbt_studio.priority_list({json.dumps(ORDER)}) }}}}\n", encoding="utf-8")
    (models / "campaign_renamed.sql").write_text(
        f"{{{{ dbt_studio.priority_list({json.dumps(ORDER[::-1])}, key='user_id', columns=['email'], "
        "audience_column='segment') }}\n", encoding="utf-8")
    project.dbt("build")
    return project, out


def expected(project, order: list[str]) -> dict[str, tuple[str, int]]:
    ev = Evaluator(read_back(project))
    members = {name: ev.audience(AUDIENCES[name]) for name in order}
    out: dict[str, tuple[str, int]] = {}
    for position, name in enumerate(order, start=1):
        for user in members[name]:
            out.setdefault(user, (name, position))
    return out


def test_each_member_is_in_the_first_audience_that_holds_them(built):
    project, _ = built
    want = expected(project, ORDER)
    assert len({a for a, _ in want.values()}) == 3  # every audience keeps someone: the test is not trivial
    rows = project.query(f"select user_id, audience, audience_priority from {project.relation('campaign')}")
    got = {r[0]: (r[1], int(r[2])) for r in rows}
    assert len(rows) == len(got)  # one row per member
    assert got == want
    wh = project.warehouse()
    try:
        with wh.session():
            _, table = wh.adapter.execute(f"select * from {project.relation('campaign')}", fetch=True, limit=1)
            names = [c.lower() for c in table.column_names]
    finally:
        wh.close()
    # the shared columns (region is in all three; age only in pl_older), then the two the list adds
    assert names == ["user_id", "name", "email", "region", "audience", "audience_priority"]
    if project.adapter == "snowflake":
        assert unknown_functions(project.sql_log) == []


def test_key_columns_and_the_audience_column_can_be_named(built):
    project, _ = built
    want = expected(project, ORDER[::-1])
    rows = project.query(f"select user_id, email, segment, audience_priority "
                         f"from {project.relation('campaign_renamed')}")
    assert {r[0]: (r[2], int(r[3])) for r in rows} == want


def test_a_priority_list_syncs_like_any_model(built):
    project, out = built
    reports = run_syncs(project.root, project.root, options=Options(select=("campaign_out",)))
    assert [r.status for r in reports] == ["success"], reports[0].message
    sent = file_ops(out, "campaign_out")[-1]
    want = expected(project, ORDER)
    assert {k: r["campaign"] for k, r in sent.items()} == {k: a for k, (a, _) in want.items()}
