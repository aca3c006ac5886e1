"""Safeguards on DuckDB and Snowflake (fakesnow): a plan that deletes or changes too much of what the destination
holds stops before anything is sent, says why in the run log and the failure alert, and goes through with
--allow-large-changes or a config key. The limits are computed by hand for each case."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fakes.slack import FakeSlack

from sync_runner.cli import cli

from helpers import ADAPTERS
from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, file_ops, person


@pytest.fixture(scope="module")
def slack():
    server = FakeSlack("T-safeguards")
    yield server
    server.close()


@pytest.fixture(scope="module", params=ADAPTERS)
def sp(request, new_project, tmp_path_factory, slack):
    project = new_project(request.param, name="safeguards", source=PROJECT)
    sp = SyncProject(project, tmp_path_factory.mktemp(f"safeguards_{request.param}"))
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {sp.tmp}\n"
                    f"alerts:\n  channels:\n    team: {{type: slack, url: '{slack.webhook_url}'}}\n"
                    "  rules:\n    - channels: [team]\n")
    return sp


def _runs(sp: SyncProject, sync: str) -> list[tuple]:
    """(status, error) of the sync's runs, oldest first."""
    rows = sp.state(sync, "sync_runs")
    return [(r[7], r[14]) for r in sorted((r for r in rows if r[1] == sync), key=lambda r: str(r[5]))]


def test_mirror_deletes_over_20_percent_stop_and_allow_large_changes_lets_them_through(sp, slack):
    syncs = [{"name": "mirror_out", "destination": "out", "mode": "mirror", "mappings": MAPPINGS}]
    rows = {f"u{i:03d}": person(i) for i in range(200)}
    sp.build(rows, syncs)
    assert sp.sync()["mirror_out"].status == "success"  # 200 inserts: nothing was held, nothing to measure
    slack.messages.clear()

    kept = {k: v for k, v in rows.items() if int(k[1:]) >= 50}  # 50 of 200 gone: 25% > 20% (the mirror default)
    sp.build(kept, syncs)
    report = sp.sync()["mirror_out"]
    reason = "the plan deletes 50 of the 200 rows the destination holds (25.0%), over max_delete_percent 20"
    assert report.status == "failed" and reason in report.message and report.sent == 0
    assert len(file_ops(sp.tmp, "mirror_out")) == 1  # the second run wrote nothing
    assert len(sp.state("mirror_out", "snapshot")) == 200  # and committed nothing
    assert _runs(sp, "mirror_out")[-1][0] == "failed" and reason in _runs(sp, "mirror_out")[-1][1]
    assert len(slack.messages) == 1 and reason in slack.messages[0]["text"]
    assert "sync 'mirror_out' failed" in slack.messages[0]["text"]

    plan = CliRunner().invoke(cli, ["plan", "--project-dir", str(sp.p.root), "--profiles-dir", str(sp.p.root)])
    assert "a run would stop before sending anything: " + reason in plan.output  # the dry run says so too

    sp.p.release()
    cli_run = CliRunner().invoke(cli, ["sync", "--allow-large-changes", "--project-dir", str(sp.p.root),
                                       "--profiles-dir", str(sp.p.root)])
    assert cli_run.exit_code == 0, cli_run.output
    assert sorted(k for k, r in file_ops(sp.tmp, "mirror_out")[-1].items() if r["_op"] == "delete") == sorted(
        set(rows) - set(kept))
    assert len(sp.state("mirror_out", "snapshot")) == 150
    assert "the previous run failed" in slack.messages[-1]["text"]  # and a recovery alert


def test_limits_from_config_stop_changes_and_deletes_and_a_key_lets_them_through(sp):
    rows = {f"v{i:03d}": person(i) for i in range(100)}
    base = {"name": "upsert_out", "destination": "out", "mode": "upsert", "on_delete": "delete",
            "mappings": MAPPINGS}
    guarded = [dict(base, safeguards={"max_update_percent": 10, "max_deletes": 5})]
    sp.build(rows, guarded)
    assert sp.sync()["upsert_out"].status == "success"

    changed = {k: dict(v, plan="pro") if int(k[1:]) < 11 else v for k, v in rows.items()}  # 11 of 100 > 10%
    sp.build(changed, guarded)
    report = sp.sync()["upsert_out"]
    assert report.status == "failed" and report.sent == 0
    assert "the plan changes 11 of the 100 rows the destination holds (11.0%), over max_update_percent 10" in \
        report.message

    smaller = {k: v for k, v in rows.items() if int(k[1:]) >= 6}  # 6 deletes > max_deletes 5 (and no changes)
    sp.build(smaller, guarded)
    report = sp.sync()["upsert_out"]
    assert report.status == "failed" and "the plan deletes 6 rows, over max_deletes 5" in report.message

    five = {k: v for k, v in rows.items() if int(k[1:]) >= 5}  # 5 deletes: at the limit, not over it
    sp.build(five, guarded)
    report = sp.sync()["upsert_out"]
    assert report.status == "success" and report.planned["delete"] == 5

    more = {k: dict(v, plan="pro") if int(k[1:]) < 20 else v for k, v in rows.items()}
    sp.build(more, [dict(base, safeguards={"max_update_percent": 10, "allow_large_changes": True})])
    report = sp.sync()["upsert_out"]  # v000-v004 back (inserts), v005-v019 changed: 15 of 95 held, let through
    assert report.status == "success" and (report.planned["insert"], report.planned["update"]) == (5, 15)
