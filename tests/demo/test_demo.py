"""`dbt-studio demo` end to end on a small data set: it builds, syncs an audience, and a week later sends
exactly the audience's changes."""

from __future__ import annotations

import json

import duckdb

from sync_runner.demo.run import run_demo


def test_demo_builds_syncs_and_resyncs_only_the_changes(tmp_path):
    lines: list[str] = []
    report = run_demo(tmp_path / "demo", users=600, seed=3, echo=lines.append)
    built = {b.name: b.rows for b in report.built}
    assert built["stg_users"] == 600 and built["user_id_stitcher"] > 600
    [first] = report.syncs
    [second] = report.resyncs
    assert first.status == second.status == "success"
    files = sorted((report.directory / "syncs").glob("retarget_to_files-*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    assert len(files) == 2
    before = {r["_key"] for r in map(json.loads, files[0].read_text().splitlines())}
    con = duckdb.connect(str(report.directory / "target" / "plant_store.duckdb"))
    members = con.execute("select user_id, is_holdout from main.viewed_not_bought").fetchall()
    con.close()
    after = {user for user, holdout in members if not holdout}  # audience syncs leave the holdout out
    assert any(holdout for _, holdout in members) and after
    assert 0 < len(before) == first.acknowledged < built["viewed_not_bought"]  # the first build's holdout stayed
    sent = {r["_key"]: r["_op"] for r in map(json.loads, files[1].read_text().splitlines())}
    assert sent == {**dict.fromkeys(before - after, "delete"), **dict.fromkeys(after - before, "insert")}
    assert any(line.startswith("[6/6]") for line in lines)
