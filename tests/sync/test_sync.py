"""The sync engine end to end, on DuckDB and on Snowflake (fakesnow): plans computed in the warehouse, changes
delivered to real destinations (files, a DuckDB table, PostgreSQL, a local webhook that follows its contract),
state committed only for what the destination acknowledged.

Expected change sets come from a plain-Python reference of the documented semantics (`expected_ops`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import duckdb
import pytest
import yaml

from sync_runner.project.artifacts import load_manifest
from sync_runner.project.compiled import CACHE_FILE

from helpers import ADAPTERS
from helpers.cli_process import CLI, ForkedProcess, run_cli_process
from helpers.sql_lint import unknown_functions
from helpers.sync_project import COMBOS, MAPPED, MAPPINGS, PROJECT, SyncProject, file_ops, person


def expected_ops(before: dict, after: dict, mode: str, on_delete: str) -> dict[str, str]:
    """The documented semantics: only mapped columns count; insert mode sends keys never sent; update mode
    sends new keys as updates; deletes go out with on_delete delete/clear (mirror deletes by default)."""
    ops = {}
    for key, row in after.items():
        if key not in before:
            ops[key] = "update" if mode == "update" else "insert"
        elif mode != "insert" and any(row[c] != before[key][c] for c in MAPPED):
            ops[key] = "update"
    if mode != "insert" and (mode == "mirror" or on_delete != "nothing"):
        for key in before.keys() - after.keys():
            ops[key] = "clear" if on_delete == "clear" else "delete"
    return ops


@pytest.fixture(scope="module", params=ADAPTERS)
def sp(request, new_project, tmp_path_factory):
    project = new_project(request.param, name="sync", source=PROJECT)
    return SyncProject(project, tmp_path_factory.mktemp(f"sync_out_{request.param}"))


def test_cdc_matrix_sends_exactly_the_changes(sp):
    out = sp.tmp / "matrix"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    syncs = [{"name": f"m_{mode}_{on_delete}", "destination": "out", "mode": mode, "on_delete": on_delete,
              "mappings": MAPPINGS} for mode, on_delete in COMBOS]
    before = {f"u{i:02d}": person(i) for i in range(1, 9)}
    sp.build(before, syncs)
    first = sp.sync()
    assert {r.status for r in first.values()} == {"success"}
    after = {k: dict(v) for k, v in before.items() if k not in ("u01", "u02")}   # deleted
    after["u03"]["plan"] = "pro"                                                     # changed, mapped
    after["u04"]["note"] = "changed but unmapped"                                    # changed, unmapped
    after["u05"]["name"] = "New Name"                                                # changed, unmapped
    after["u06"]["score"] = None                                                     # changed to null
    after["u09"] = person(9)                                                         # new
    sp.build(after, syncs)
    second = sp.sync()
    for mode, on_delete in COMBOS:
        name = f"m_{mode}_{on_delete}"
        runs = file_ops(out, name)
        assert {k: r["_op"] for k, r in runs[0].items()} == expected_ops({}, before, mode, on_delete), name
        sent = runs[1] if len(runs) > 1 else {}
        assert {k: r["_op"] for k, r in sent.items()} == expected_ops(before, after, mode, on_delete), name
        assert second[name].acknowledged == len(sent)
        for key, record in sent.items():
            if record["_op"] in ("insert", "update"):
                assert record == {"_op": record["_op"], "_key": key, "id": key,
                                  **{c: after[key][c] for c in MAPPED}}
            elif record["_op"] == "clear":  # only the key survives a clear
                assert record == {"_op": "clear", "_key": key, "id": key, "email": None, "plan": None,
                                  "score": None}
            else:  # a delete carries what the destination last acknowledged
                assert record["email"] == before[key]["email"]
    # a third run with nothing changed sends nothing at all
    third = sp.sync()
    assert all(r.planned == {"insert": 0, "update": 0, "delete": 0, "clear": 0} for r in third.values())


def test_table_destination_ends_equal_to_the_model(sp):
    path = sp.tmp / "marts" / "mart.duckdb"  # a folder that does not exist yet
    sp.destinations(f"destinations:\n  mart:\n    type: duckdb\n    path: {path}\n    table: people\n"
                    "    key_column: id\n")
    rng = random.Random(7)
    rows = {f"u{i:03d}": person(i) for i in range(60)}
    syncs = [{"name": "mirror_mart", "destination": "mart", "mode": "mirror", "mappings": MAPPINGS}]
    for _ in range(3):
        sp.build(rows, syncs)
        assert sp.sync()["mirror_mart"].status == "success"
        assert load_manifest(sp.p.root).unkept is None  # the run kept this build's manifest fields
        con = duckdb.connect(str(path))
        got = {r[0]: r[1:] for r in con.execute("select id, email, plan, score from people").fetchall()}
        con.close()
        assert got == {k: (v["email"], v["plan"], v["score"]) for k, v in rows.items()}
        for key in rng.sample(sorted(rows), 10):
            del rows[key]
        for key in rng.sample(sorted(rows), 10):
            rows[key]["plan"] = rng.choice(["free", "pro", "team"])
        for i in range(rng.randint(1, 10)):
            rows[f"n{len(rows)}_{i}"] = person(1000 + i)


def test_mapping_change_resets_to_a_full_resync_without_deletes(sp):
    out = sp.tmp / "reset"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    rows = {f"u{i}": person(i) for i in range(5)}
    sync = {"name": "resets", "destination": "out", "mode": "mirror", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    sp.sync()
    del rows["u0"]
    sp.build(rows, [dict(sync, mappings={**MAPPINGS, "full_name": "name"})])
    report = sp.sync()["resets"]
    assert report.full_resync
    last = file_ops(out, "resets")[-1]
    assert {k: r["_op"] for k, r in last.items()} == dict.fromkeys(rows, "insert")  # no delete of u0
    assert last["u1"]["full_name"] == "Person 1"


def test_a_column_mapped_twice_in_different_case_is_read_once_and_its_state_advances(sp):
    """`score` and `SCORE` (and the key `USER_ID`, mapped as `user_id`) are one column to the warehouse: the plan
    reads it once, each field gets its value, and the commit records the run (a second run sends nothing)."""
    out = sp.tmp / "case"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    rows = {f"u{i}": person(i) for i in range(3)}
    sync = {"name": "case_twice", "destination": "out", "mappings": {
        "id": "user_id", "a": "score", "b": "SCORE", "c": "Email", "d": "email",
        "t": {"template": "{% raw %}{{ EMAIL }}/{{ Score }}{% endraw %}"}}}  # dbt renders its YAML
    sp.build(rows, [sync], primary_key="USER_ID")
    first = sp.sync()["case_twice"]
    assert (first.status, first.acknowledged) == ("success", 3), first.message
    sent = file_ops(out, "case_twice")
    assert len(sent) == 1
    assert sent[0]["u1"] == {"_op": "insert", "_key": "u1", "id": "u1", "a": 1, "b": 1, "c": "p1@mail.com",
                             "d": "p1@mail.com", "t": "p1@mail.com/1"}
    assert len(sp.state("case_twice", "snapshot")) == 3
    second = sp.sync()["case_twice"]
    assert second.status == "success" and second.planned == {"insert": 0, "update": 0, "delete": 0, "clear": 0}
    assert len(file_ops(out, "case_twice")) == 1


def test_dry_run_plans_without_changing_state(sp):
    out = sp.tmp / "dry"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    rows = {f"u{i}": person(i) for i in range(4)}
    sync = {"name": "dry", "destination": "out", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    planned = sp.sync(dry_run=True)["dry"]
    assert planned.status == "planned" and planned.planned["insert"] == 4
    assert not out.exists() or not list(out.iterdir())
    assert sp.sync(dry_run=True)["dry"].planned["insert"] == 4  # still nothing committed
    assert sp.sync()["dry"].acknowledged == 4


def test_duplicate_and_null_keys_stop_the_sync_and_change_nothing(sp, http_sink):
    http_sink.reset()
    sp.destinations(_http_yaml(http_sink))
    rows = {f"u{i}": person(i) for i in range(4)}
    sync = {"name": "dupes", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    assert sp.sync()["dupes"].status == "success"
    received = http_sink.records_received()
    rows["u1"]["plan"] = "team"
    sp.build(rows, [sync], primary_key="plan")  # many people share a plan
    report = sp.sync()["dupes"]
    assert report.status == "failed"
    assert "stopped before sending anything" in report.message and "'free'" in report.message
    assert http_sink.records_received() == received
    sp.build(rows, [sync])  # back to the real key: the change is still pending, nothing was lost
    again = sp.sync()["dupes"]
    assert again.status == "success" and again.planned["update"] == 1


def test_a_plan_the_warehouse_refuses_fails_that_sync_in_one_line_and_the_others_run(sp):
    """A mapping's cast that a value cannot take makes the warehouse refuse the plan: that sync fails before
    sending anything, in one line naming it, its model and the warehouse's own message (not a traceback that
    stops the command); the next sync of the same run still runs."""
    out = sp.tmp / "refused"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    cast = {"id": "user_id", "email": {"column": "email", "transform": [{"cast": "integer"}]}}
    syncs = [{"name": "a_refused", "destination": "out", "mode": "upsert", "mappings": cast},
             {"name": "b_fine", "destination": "out", "mode": "upsert", "mappings": MAPPINGS},
             {"name": "c_filtered", "destination": "out", "mode": "upsert", "mappings": MAPPINGS,
              "filter": {"column": "score", "op": ">", "value": "high"}}]  # score is an integer
    sp.build({f"u{i}": person(i) for i in range(3)}, syncs)
    planned = sp.sync(dry_run=True)  # `dbt-studio plan`: the same line, nothing written
    assert (planned["a_refused"].status, planned["a_refused"].problem) == ("failed", "data")
    assert planned["a_refused"].message.startswith("models/_people.yml: model 'people': sync 'a_refused': the "
                                                   "warehouse refused its plan: ")
    assert planned["b_fine"].status == "planned" and planned["b_fine"].planned["insert"] == 3
    reports = sp.sync()
    refused = reports["a_refused"]
    assert (refused.status, refused.problem, refused.planned) == ("failed", "data", {}), refused
    assert refused.message.startswith("models/_people.yml: model 'people': sync 'a_refused': the warehouse refused "
                                      "its plan: ")
    assert "p0@mail.com" in refused.message or "p1@mail.com" in refused.message or "p2@mail.com" in refused.message
    assert "\n" not in refused.message and "Traceback" not in refused.message
    assert file_ops(out, "a_refused") == []
    assert reports["b_fine"].status == "success" and len(file_ops(out, "b_fine")[0]) == 3
    assert sp.state("a_refused", "snapshot") == []
    assert refused.message.endswith("; check the transforms of its mappings against the model's values")
    filtered = reports["c_filtered"]
    assert (filtered.status, filtered.problem) == ("failed", "data"), filtered
    assert filtered.message.startswith("models/_people.yml: model 'people': sync 'c_filtered': the warehouse "
                                       "refused its plan: ")
    assert filtered.message.endswith("; check its filter against the model's values") and "high" in filtered.message


def _http_yaml(sink, token_var: str = "SINK_TOKEN", batch_size: int = 50, concurrency: int = 4) -> str:
    os.environ.setdefault(token_var, sink.token)
    return (f"destinations:\n  hook:\n    type: http\n    url: {sink.url}/records\n"
            f"    headers:\n      Authorization: \"Bearer {{{{ env_var('{token_var}') }}}}\"\n"
            f"    results_path: results\n    batch_size: {batch_size}\n    concurrency: {concurrency}\n")


def test_transient_errors_are_retried_and_rejections_retried_until_they_succeed(sp, http_sink):
    http_sink.reset()
    sp.destinations(_http_yaml(http_sink, batch_size=10))
    rows = {f"u{i:02d}": person(i) for i in range(30)}
    rows["u05"]["email"] = "invalid-address"
    rows["u17"]["email"] = "invalid-too"
    sync = {"name": "hooked", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    http_sink.fail_next(2, 429, retry_after=0.1)
    http_sink.fail_next(1, 503)
    report = sp.sync(base_delay=0.05)["hooked"]
    assert report.status == "success" and report.acknowledged == 28 and report.rejected == 2
    assert set(http_sink.store) == set(rows) - {"u05", "u17"}
    rejections = {r[0]: (r[1], r[2]) for r in sp.state("hooked", "rejections")}
    assert rejections == {"u05": ("invalid email", 1), "u17": ("invalid email", 1)}
    # the next run retries exactly the rejected rows (and they are refused again)
    report = sp.sync(base_delay=0.05)["hooked"]
    assert report.planned["insert"] == 2 and report.rejected == 2
    assert {r[0]: r[2] for r in sp.state("hooked", "rejections")} == {"u05": 2, "u17": 2}
    # fixed upstream: they go through and leave the rejections table
    rows["u05"]["email"] = "ok5@mail.com"
    rows["u17"]["email"] = "ok17@mail.com"
    sp.build(rows, [sync])
    assert sp.sync(base_delay=0.05)["hooked"].acknowledged == 2
    assert sp.state("hooked", "rejections") == []
    assert {k: v["email"] for k, v in http_sink.store.items()} == {k: v["email"] for k, v in rows.items()}
    if sp.p.adapter == "snowflake":  # plan, commit, rejections, locks and the run log all ran: lint their SQL
        statements = [q for q in sp.p.sql_log if "_dbt_studio" in q.lower()]
        assert any(" minus" in q.lower() for q in statements)
        assert unknown_functions(statements) == []


def test_a_thousand_rejected_rows_are_recorded_as_fast_as_rows_that_go_through(sp, http_sink):
    """Rejections are recorded in the same few statements whatever their number: a window that rejects 1,000 rows
    once took six statements a row (18 s for 3,000 rejected rows against 0.5 s for a sync that succeeds). The time
    is compared on DuckDB; on Snowflake (fakesnow, 20 ms a statement) a tenth of the rows checks what is recorded."""
    http_sink.reset()
    sp.destinations(_http_yaml(http_sink, batch_size=100))
    n = 2000 if sp.p.adapter == "duckdb" else 200
    rows = {f"u{i:04d}": person(i) for i in range(n)}
    refused = {k for i, k in enumerate(sorted(rows)) if i % 2}
    for k in refused:
        rows[k]["email"] = f"invalid-{k}"
    sync = {"name": "refusals", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    started = time.perf_counter()
    report = sp.sync()["refusals"]
    rejecting = time.perf_counter() - started
    assert report.acknowledged == n // 2 and report.rejected == n // 2
    assert {r[0]: (r[1], r[2]) for r in sp.state("refusals", "rejections")} == \
        {k: ("invalid email", 1) for k in refused}
    assert {r[0] for r in sp.state("refusals", "snapshot")} == set(rows) - refused == set(http_sink.store)
    started = time.perf_counter()
    again = sp.sync(full_resync=True)["refusals"]  # the same rows, none of them recorded as new rejections
    resending = time.perf_counter() - started
    assert again.rejected == n // 2 and {r[0]: r[2] for r in sp.state("refusals", "rejections")} == \
        {k: 2 for k in refused}
    for k in refused:
        rows[k]["email"] = f"{k}@mail.com"
    sp.build(rows, [sync])
    started = time.perf_counter()
    fixed = sp.sync(full_resync=True)["refusals"]
    accepted = time.perf_counter() - started
    assert fixed.acknowledged == n and fixed.rejected == 0 and sp.state("refusals", "rejections") == []
    if sp.p.adapter == "duckdb":  # the kept path; Snowflake's commit is one statement group through dbt
        assert max(rejecting, resending) < 3 * accepted + 1.0, (rejecting, resending, accepted)


def test_auth_failure_is_terminal_and_keeps_state(sp, http_sink, monkeypatch):
    http_sink.reset()
    monkeypatch.setenv("WRONG_TOKEN", "not-the-token-xyz")
    sp.destinations(_http_yaml(http_sink, token_var="WRONG_TOKEN"))
    rows = {f"u{i}": person(i) for i in range(3)}
    sync = {"name": "denied", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    report = sp.sync()["denied"]
    assert report.status == "failed" and "refused the credentials (HTTP 401)" in report.message
    assert "not-the-token-xyz" not in json.dumps(report.as_dict())
    assert sp.state("denied", "snapshot") == []
    assert sp.sync(dry_run=True)["denied"].planned["insert"] == 3


def test_postgres_destination_upserts_and_deletes(sp, postgres_dsn):
    import psycopg2

    sp.destinations(f"destinations:\n  pg:\n    type: postgres\n    dsn: \"{postgres_dsn}\"\n"
                    f"    table: people_{sp.p.adapter}\n    key_column: id\n")
    rows = {f"u{i}": person(i) for i in range(20)}
    sync = {"name": "to_pg", "destination": "pg", "mode": "mirror", "mappings": MAPPINGS}
    for change in range(2):
        sp.build(rows, [sync])
        assert sp.sync()["to_pg"].status == "success"
        with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cur:
            cur.execute(f"select id, email, plan, score from people_{sp.p.adapter}")
            got = {r[0]: r[1:] for r in cur.fetchall()}
        assert got == {k: (v["email"], v["plan"], v["score"]) for k, v in rows.items()}
        del rows[f"u{3 + change}"]
        rows[f"u{6 + change}"]["plan"] = "pro"
        rows[f"new{change}"] = person(100 + change)


def test_kill_9_during_delivery_loses_nothing(sp, http_sink):
    """The sync process is killed while a slow destination receives batches (after a random number of them);
    after a rerun the destination equals the model, with no row lost."""
    rng = random.Random(11)
    sp.destinations(_http_yaml(http_sink, batch_size=3, concurrency=1))
    rows = {f"k{i:03d}": person(i) for i in range(60)}
    sync = {"name": "killed", "destination": "hook", "mode": "mirror", "mappings": MAPPINGS}
    env = dict(os.environ, SINK_TOKEN=http_sink.token)
    args = ["sync", "--project-dir", str(sp.p.root), "--profiles-dir", str(sp.p.root)]
    # the killed run: a process of its own (forked from a warm interpreter, see helpers/cli_process.py)
    cmd = [sys.executable, "-c", CLI, *args]
    http_sink.reset()
    interrupted = 0
    for trial in range(3):
        if trial:
            for key in rng.sample(sorted(rows), 8):
                del rows[key]
            for key in rng.sample(sorted(rows), 8):
                rows[key]["plan"] = f"plan{trial}"
            for i in range(8):
                rows[f"t{trial}_{i}"] = person(500 + 10 * trial + i)
        sp.build(rows, [sync])
        sp.p.release()
        http_sink.delay = 0.1
        seen = len(http_sink.requests)
        wanted = seen + rng.randint(1, 4)
        proc = ForkedProcess(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(http_sink.requests) < wanted and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        interrupted += http_sink.store.keys() != rows.keys() or any(
            http_sink.store[k]["plan"] != rows[k]["plan"] for k in rows if k in http_sink.store)
        http_sink.delay = 0.0
        rerun = run_cli_process(*args, env=env, timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert set(http_sink.store) == set(rows), f"trial {trial}"
        assert {k: v["plan"] for k, v in http_sink.store.items()} == {k: v["plan"] for k, v in rows.items()}
    assert interrupted == 3, "every kill must land while the destination was still incomplete"


def test_one_sync_at_a_time_and_stale_locks_are_taken_over(sp):
    import socket

    out = sp.tmp / "locked"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    sync = {"name": "locked", "destination": "out", "mode": "upsert", "mappings": MAPPINGS}
    sp.build({"u1": person(1)}, [sync])
    assert sp.sync()["locked"].status == "success"  # creates the state tables
    wh = sp.p.warehouse()
    try:
        with wh.session():
            args = {"name": "locked", "state_schema": wh.call("sync_default_state_schema")}
            live = f"{socket.gethostname()}:{os.getpid()}:other-run"  # this very process: alive
            assert wh.call("sync_lock", sync=args, holder=live)[0] == live
    finally:
        wh.close()
    report = sp.sync()["locked"]
    assert report.status == "failed" and "is already running" in report.message and live in report.message
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    wh = sp.p.warehouse()
    try:
        with wh.session():
            wh.call("sync_unlock", sync=args, holder=live)
            stale = f"{socket.gethostname()}:{dead.stdout.strip()}:killed-run"  # a process that has exited
            assert wh.call("sync_lock", sync=args, holder=stale)[0] == stale
    finally:
        wh.close()
    assert sp.sync()["locked"].status == "success"


def test_models_whose_build_failed_are_skipped_and_a_later_parse_does_not_stop_syncs(sp):
    out = sp.tmp / "skips"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    sp.build({"u1": person(1)}, [{"name": "skippy", "destination": "out", "mappings": MAPPINGS}])
    path = sp.p.root / "target" / "run_results.json"
    results = json.loads(path.read_text())
    for r in results["results"]:
        if r["unique_id"].endswith(".people"):
            r["status"] = "error"
    path.write_text(json.dumps(results))
    report = sp.sync()["skippy"]
    assert report.status == "skipped" and "its last dbt build ended with status 'error'" in report.message
    assert not out.exists()
    # run_results.json of another invocation than manifest.json (as after a `dbt parse` or `dbt compile`): the
    # runner goes by the last build the package's on-run-end hook recorded: a success, with the same checksum
    results["metadata"]["invocation_id"] = "another-invocation"
    path.write_text(json.dumps(results))
    report = sp.sync()["skippy"]
    assert report.status == "success" and report.acknowledged == 1


def test_a_reset_says_how_many_rows_it_leaves_in_the_destination(sp):
    """A changed mapping resets a mirror sync: every row is sent again and nothing is deleted, so rows that left
    the model since the last sync stay in the destination. plan and sync say how many (counted in the warehouse
    before the snapshot is emptied); the next plan has nothing to say."""
    out = sp.tmp / "left_behind"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    rows = {f"l{i}": person(i) for i in range(5)}
    sync = {"name": "left_behind", "destination": "out", "mode": "mirror", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    first = sp.sync(select=("left_behind",))["left_behind"]
    assert first.status == "success" and not first.message  # a first run leaves nothing behind
    del rows["l1"], rows["l3"]
    changed = {**sync, "mappings": {**MAPPINGS, "full_name": "name"}}  # a new field: another fingerprint
    sp.build(rows, [changed])
    said = ("2 row(s) that left the model since the last sync stay in 'out': this run is a full resync (a first run "
            "after a change of the sync's primary key, mappings or mode, or --full-resync), which deletes nothing")
    plan = sp.sync(select=("left_behind",), dry_run=True)["left_behind"]
    assert plan.full_resync and plan.planned == {"insert": 3, "update": 0, "delete": 0, "clear": 0}
    assert plan.message.startswith(said), plan.message
    run = sp.sync(select=("left_behind",))["left_behind"]
    assert (run.status, run.acknowledged, run.message) == ("success", 3, plan.message)
    assert {r["_op"] for r in file_ops(out, "left_behind")[-1].values()} == {"insert"}
    again = sp.sync(select=("left_behind",), dry_run=True)["left_behind"]
    assert not again.message and sum(again.planned.values()) == 0


def test_a_run_whose_every_new_record_is_refused_fails_and_one_that_only_retries_them_does_not(sp, http_sink):
    """Nothing delivered is not "success": a run whose destination refused every record, new ones among them, is
    failed (exit 1, the failure alert), saying why. A later run that only retries those keys, refused again, is a
    success with its rejected count (it is no new failure: it would fail every quiet night); a new refused key
    fails it again, and once the data is fixed everything goes through."""
    from sync_runner.sync.engine import exit_code

    http_sink.reset()
    sp.destinations(_http_yaml(http_sink, batch_size=5))
    rows = {f"r{i}": person(i, email=f"invalid-{i}") for i in range(3)}
    sync = {"name": "refused", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    first = sp.sync(select=("refused",))["refused"]
    assert (first.status, first.acknowledged, first.rejected) == ("failed", 0, 3)
    assert first.message == ("'hook' refused every record it was sent (3, e.g. 'invalid email'; each is in "
                             "refused__rejections with its reason): they are sent again on the next run")
    assert exit_code([first]) == 1
    assert sorted(r[0] for r in sp.state("refused", "rejections")) == ["r0", "r1", "r2"]
    retried = sp.sync(select=("refused",))["refused"]  # the same keys, refused again
    assert (retried.status, retried.acknowledged, retried.rejected) == ("success", 0, 3)
    rows["r3"] = person(3, email="invalid-3")
    sp.build(rows, [sync])
    assert sp.sync(select=("refused",))["refused"].status == "failed"  # a new key refused
    fixed = {k: person(int(k[1:])) for k in rows}
    sp.build(fixed, [sync])
    done = sp.sync(select=("refused",))["refused"]
    assert (done.status, done.acknowledged, done.rejected) == ("success", 4, 0)
    assert sp.state("refused", "rejections") == []


def test_a_run_that_commits_everything_empties_its_plan(sp, http_sink):
    http_sink.reset()
    sp.destinations(_http_yaml(http_sink, batch_size=5))
    rows = {f"s{i}": person(i) for i in range(12)}
    sync = {"name": "settles", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    assert sp.sync(select=("settles",))["settles"].status == "success"
    assert sp.state("settles", "plan") == []  # nothing of it is in doubt any more
    rows["s1"]["plan"] = "pro"
    sp.build(rows, [sync])
    http_sink.fail_next(2, 503)  # both attempts of the next run fail: its plan stays, for the run after it
    report = sp.sync(select=("settles",), max_attempts=2, base_delay=0.01)["settles"]
    assert report.status == "failed"
    assert [r[2] for r in sp.state("settles", "plan")] == ["s1"]
    assert sp.sync(select=("settles",))["settles"].acknowledged == 1
    assert sp.state("settles", "plan") == [] and http_sink.store["s1"]["plan"] == "pro"


def test_a_commit_the_warehouse_refuses_fails_the_run_in_one_line_and_the_next_run_sends_again(sp, http_sink):
    """The destination acknowledged every row, then the warehouse refused the commit (here a state table was
    renamed away while the rows were on the wire): the run is reported failed with one line that says so, and not
    a traceback; the run log has it; nothing of the state advanced; once the table is back the next run sends the
    same rows again and succeeds."""
    http_sink.reset()
    sp.destinations(_http_yaml(http_sink, batch_size=5))
    rows = {f"c{i:02d}": person(i) for i in range(12)}
    sync = {"name": "unrecorded", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    changelog = sp.state_relation("unrecorded", "sync_changelog")
    away = changelog.replace("sync_changelog", "sync_changelog_away")

    assert sp.sync(select=("unrecorded",))["unrecorded"].status == "success"  # the state tables exist
    rows["c01"]["plan"] = "pro"
    sp.build(rows, [sync])
    sp.p.release()
    http_sink.reset()
    renamed: list[bool] = []

    def away_once() -> None:
        if not renamed:
            renamed.append(True)
            sp.rename_table(changelog, away)

    snapshot = sorted(sp.state("unrecorded", "snapshot"))
    sp.p.release()
    http_sink.on_post = away_once
    try:
        report = sp.sync(select=("unrecorded",))["unrecorded"]
    finally:
        http_sink.on_post = None
    assert renamed and report.status == "failed"
    assert report.acknowledged == 1 and http_sink.store["c01"]["plan"] == "pro"
    assert report.message.startswith("sync 'unrecorded': 1 row(s) acknowledged by 'hook' could not be recorded "
                                     "in the warehouse: "), report.message
    assert report.message.endswith("the sync state did not advance, so the next run sends them again")
    assert "\n" not in report.message and "Traceback" not in report.message
    runs = {r[0]: r for r in sp.state("unrecorded", "sync_runs")}
    assert (runs[report.run_id][7], runs[report.run_id][14]) == ("failed", report.message)
    assert sp.state("unrecorded", "sync_locks") == []
    assert sorted(sp.state("unrecorded", "snapshot")) == snapshot
    sp.p.release()
    sp.rename_table(away, changelog)
    http_sink.reset()
    again = sp.sync(select=("unrecorded",))["unrecorded"]
    assert (again.status, again.acknowledged) == ("success", 1)  # the same row again
    assert list(http_sink.store) == ["c01"] and http_sink.store["c01"]["plan"] == "pro"


def test_commit_windows_record_each_row_once_and_a_refused_one_mid_run_stops_the_run(sp, http_sink):
    """Commit windows of 10 rows (batches of 5): every acknowledged row is recorded once. When the warehouse refuses
    a window mid-run (its changelog renamed away after the fourth request), the run fails with the one line and the
    windows before it stay recorded, whole; the next run sends exactly the rows that were not recorded, ending with
    the destination equal to the model."""
    http_sink.reset()
    sp.destinations(_http_yaml(http_sink, batch_size=5, concurrency=2))
    rows = {f"w{i:02d}": person(i) for i in range(60)}
    sync = {"name": "windowed", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    report = sp.sync(select=("windowed",), commit_rows=10)["windowed"]
    assert (report.status, report.acknowledged) == ("success", 60), report.message
    changelog = sp.state_relation("windowed", "sync_changelog")
    logged = sp.p.query(f"select _key, count(*) from {changelog} where sync_name = 'windowed' group by _key")
    assert sorted(logged) == [(k, 1) for k in sorted(rows)]
    assert sorted(r[0] for r in sp.state("windowed", "snapshot")) == sorted(rows)

    for key in rows:
        rows[key]["plan"] = "moved"
    sp.build(rows, [sync])
    sp.p.release()
    http_sink.reset()
    away = changelog.replace("sync_changelog", "sync_changelog_away")
    posts: list[int] = []

    def away_after_four() -> None:
        posts.append(1)
        if len(posts) == 5:
            sp.rename_table(changelog, away)

    http_sink.on_post = away_after_four
    try:
        failed = sp.sync(select=("windowed",), commit_rows=10)["windowed"]
    finally:
        http_sink.on_post = None
    assert failed.status == "failed" and "could not be recorded in the warehouse" in failed.message, failed.message
    assert "\n" not in failed.message and "Traceback" not in failed.message
    recorded = {k for k, *values in sp.state("windowed", "snapshot") if "moved" in values}
    assert len(recorded) < 60 and len(recorded) % 10 == 0  # whole windows, those committed before the refusal
    sp.p.release()
    sp.rename_table(away, changelog)
    http_sink.reset()
    again = sp.sync(select=("windowed",), commit_rows=10)["windowed"]
    assert again.status == "success", again.message
    assert {r["id"] for body in http_sink.requests for r in body["records"]} == set(rows) - recorded
    assert {k: v["plan"] for k, v in http_sink.store.items()} == dict.fromkeys(set(rows) - recorded, "moved")


def test_a_sync_asks_once_which_state_tables_exist_and_creates_the_missing_ones(sp):
    """Preparing a sync's state is one metadata query for its five tables, and the plan's probe one for its three
    (on Snowflake each query is a round trip); a state table dropped since is created again, and when none is
    missing nothing is created."""
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {sp.tmp / 'prepared'}\n")
    sync = {"name": "prepared", "destination": "out", "mode": "upsert", "mappings": MAPPINGS}
    sp.build({f"u{i}": person(i) for i in range(3)}, [sync])
    assert sp.sync()["prepared"].status == "success"
    sp.p.execute(f"drop table {sp.state_relation('prepared', 'sync_locks')}")
    asked_before = len(sp.p.sql_log)
    assert sp.sync()["prepared"].status == "success"
    assert sp.state("prepared", "sync_locks") == []  # there again, and the run's lock released
    if sp.p.adapter == "snowflake":  # (DuckDB runs kept SQL: `create table if not exists` each, no query)
        asked = [q.lower() for q in sp.p.sql_log[asked_before:] if "information_schema.tables" in q.lower()
                 and "sync_locks" in q.lower()]
        started = [q for q in sp.p.sql_log[asked_before:] if q.lower().startswith("insert into")
                   and ".sync_runs " in q.lower()]
        assert len(asked) == len(started) == 1  # one per run
        assert all(f"'{t}'" in q for q in asked for t in ("sync_runs", "sync_changelog", "sync_configs",
                                                          "sync_locks", "prepared__rejections"))
        # the plan's probe: whether the recorded fingerprint, the snapshot and the last plan exist, one query
        probed = [q.lower() for q in sp.p.sql_log[asked_before:] if "information_schema.tables" in q.lower()
                  and "prepared__snapshot" in q.lower()]
        assert len(probed) == len(started) and all("'prepared__plan'" in q and "'sync_configs'" in q for q in probed)
        # a run with every state table in place creates nothing, not even the schema (one round trip less)
        steady = len(sp.p.sql_log)
        assert sp.sync()["prepared"].status == "success"
        assert not [q for q in sp.p.sql_log[steady:] if q.lower().startswith(("create schema", "create table"))]


def test_templates_written_in_dbt_studio_yml_reach_the_destination_as_written(sp, http_sink, monkeypatch):
    """Only env_var calls are filled in when dbt_studio.yml is read: a body_template with loops and a url template
    (here next to an env_var in the same value) are the http destination's to render, per batch."""
    http_sink.reset()
    monkeypatch.setenv("TPL_SINK_URL", http_sink.url)
    monkeypatch.setenv("TPL_SINK_TOKEN", http_sink.token)
    body = ('{"op": "{{ op }}", "records": [{% for r in records %}{"id": {{ r.id | tojson }}, '
            '"email": {{ r.email | tojson }}, "tag": {{ (op ~ \':\' ~ r.plan) | tojson }}}'
            '{{ "," if not loop.last }}{% endfor %}]}')
    hook = {"type": "http", "url": "{{ env_var('TPL_SINK_URL') }}/records?op={{ op }}",
            "headers": {"Authorization": "Bearer {{ env_var('TPL_SINK_TOKEN') }}"}, "body_template": body,
            "results_path": "results"}
    sp.destinations(yaml.safe_dump({"destinations": {"hook": hook}}))
    rows = {f"u{i:02d}": person(i) for i in range(12)}
    sp.build(rows, [{"name": "templated", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}])
    report = sp.sync()["templated"]
    assert report.status == "success" and report.acknowledged == len(rows), report.message
    assert http_sink.store == {k: {"id": k, "email": v["email"], "tag": f"insert:{v['plan']}"}
                               for k, v in rows.items()}
    assert {r["op"] for r in http_sink.requests} == {"insert"}


def test_a_syncs_time_is_its_own_not_the_commands_start_up(sp, monkeypatch):
    """The `time` of each sync (SyncReport.seconds) runs from its plan to its commit: the command's start-up
    (loading dbt, connecting, compiling the SQL it keeps) is not in it. The warehouse login is made slow here
    (dbt's adapter registration sleeps, as a Snowflake SSO login can take seconds): the command then takes at
    least that long, and the syncs' times, which do not overlap, add up to no more than the rest of it."""
    import dbt.adapters.factory as factory

    delay = 3.0
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {sp.tmp / 'timed'}\n")
    rows = {f"u{i}": person(i) for i in range(3)}
    sp.build(rows, [{"name": f"timed_{n}", "destination": "out", "mode": "upsert", "mappings": MAPPINGS}
                    for n in (1, 2)])
    assert {r.status for r in sp.sync().values()} == {"success"}

    register = factory.register_adapter

    def slow_login(*args, **kwargs):
        time.sleep(delay)
        return register(*args, **kwargs)

    monkeypatch.setattr(factory, "register_adapter", slow_login)
    # nothing kept: the command compiles its SQL (through a slow adapter) on its way, inside the first sync
    (sp.p.root / "target" / CACHE_FILE).unlink(missing_ok=True)
    began = time.monotonic()
    reports = sp.sync()
    total = time.monotonic() - began
    assert {name: (r.status, sum(r.planned.values())) for name, r in reports.items()} == {
        "timed_1": ("success", 0), "timed_2": ("success", 0)}  # nothing to send: a sync of 0 rows
    assert total >= delay  # the command did start up slowly ...
    assert all(0 < r.seconds < delay for r in reports.values()), {n: r.seconds for n, r in reports.items()}
    assert sum(r.seconds for r in reports.values()) <= total - delay  # ... and no sync's time holds it


def test_a_reset_plan_written_in_two_parts_holds_the_plan_written_whole(sp):
    """A reset plan (a first sync, a full resync) may be written in two parts, its first rows and then the rest
    (sync_plan_write_parts_sql; the runner does so on DuckDB, docs/sync.md). The first part is that many of the
    whole plan's rows numbered from 1, the two together are the whole plan's rows numbered 1..n, the second part's
    numbered by key, and the counts are the whole plan's, for each mode and with a filter and --keys."""
    from sync_runner.sync.engine import Options, SyncRunner

    rows = {f"u{i:03d}": person(i) for i in range(23)}
    syncs = [{"name": f"parts_{mode}", "destination": "out", "mode": mode, "mappings": MAPPINGS}
             for mode in ("upsert", "update", "insert", "mirror")]
    syncs.append({"name": "parts_filtered", "destination": "out", "mode": "upsert", "mappings": MAPPINGS,
                  "filter": {"column": "score", "op": ">", "value": 5}})
    sp.destinations("destinations:\n  out:\n    type: file\n    path: out\n")
    sp.build(rows, syncs)
    database = sp.p.query("select current_database()")[0][0]
    runner = SyncRunner(sp.p.where, Options())
    try:
        wh = runner.warehouse
        with wh.session():
            state_schema = wh.call("sync_default_state_schema")
            for sync in runner.syncs:
                for keys in ([], ["u007", "u011", "u019", "u010", "u015"]):
                    args = {**sync.macro_args(state_schema), "only_keys": keys}
                    source = sync.model.relation_name
                    plan = wh.relation(database, state_schema, f"{sync.name}__plan")
                    wh.call("sync_prepare", sync=args)

                    def plan_rows(plan: str = str(plan)) -> list[tuple]:
                        _, table = wh.adapter.execute(f"select * from {plan} order by _seq", fetch=True)
                        return [tuple(r.values()) for r in table.rows]

                    whole = wh.compile("sync_plan_write_sql", sync=args, source=source, reset=True, previous=False)
                    for sql in whole["statements"]:
                        wh.adapter.execute(sql)
                    expected = plan_rows()
                    _, counted = wh.adapter.execute(whole["counts"], fetch=True)
                    counts = sorted(tuple(r.values()) for r in counted.rows)
                    where = f"{sync.name}, keys {keys}"
                    assert len(expected) == (len(keys) if keys else sum(n for _, n in counts)) > 3, where
                    assert [r[0] for r in expected] == list(range(1, len(expected) + 1)), where
                    parts = wh.compile("sync_plan_write_parts_sql", sync=args, source=source, first_rows=3)
                    if sp.p.adapter == "duckdb":  # each plan write uncompressed, as the whole plan's (docs/sync.md)
                        for key in ("first", "rest", "whole"):
                            assert [q for q in parts[key] if "force_compression" in q] == [
                                "set force_compression = 'uncompressed'", "reset force_compression"], key
                    for sql in parts["reset"]:
                        wh.adapter.execute(sql)
                    _, counted = wh.adapter.execute(parts["counts"], fetch=True)
                    assert sorted(tuple(r.values()) for r in counted.rows) == counts, where
                    for sql in parts["first"]:
                        wh.adapter.execute(sql)
                    first = plan_rows()
                    assert [r[0] for r in first] == [1, 2, 3], where
                    assert {r[1:] for r in first} <= {r[1:] for r in expected}, where
                    for sql in parts["rest"]:
                        wh.adapter.execute(sql)
                    written = plan_rows()
                    assert [r[0] for r in written] == list(range(1, len(expected) + 1)), where
                    assert sorted(r[1:] for r in written) == sorted(r[1:] for r in expected), where
                    assert written[:3] == first, where  # the first part as it was sent
                    keys = [r[2] for r in written[3:]]  # a plan row is _seq, _op, _key, the columns
                    assert keys == sorted(keys), where  # the second part numbered by key
                    for sql in parts["whole"]:
                        wh.adapter.execute(sql)
                    assert plan_rows() == expected, where
    finally:
        runner.close()
    sp.p.release()


# DuckDB only: Snowflake writes the plan in one statement (its statements are its cost)
@pytest.mark.parametrize("sp", ["duckdb"], indirect=True)
def test_a_first_sync_on_duckdb_sends_every_row_once_from_a_plan_written_in_parts(sp, http_sink):
    """On DuckDB a reset plan of more than ten pages is written a page first, the rest when the runner reads past
    it (a smaller one whole): either way every row reaches the destination once, the snapshot holds them all, and
    the report the whole plan's count."""
    http_sink.reset()
    sp.destinations(_http_yaml(http_sink, batch_size=4, concurrency=2))
    rows = {f"u{i:03d}": person(i) for i in range(41)}
    sync = {"name": "in_parts", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    sp.build(rows, [sync])
    sp.p.release()
    for full_resync, page_rows in ((False, 3), (True, 3), (True, 5)):  # a first sync, full resyncs; 41 > 10 x 3
        http_sink.reset()
        report = sp.sync(full_resync=full_resync, page_rows=page_rows)["in_parts"]
        assert (report.status, report.planned["insert"], report.sent, report.acknowledged) == (
            "success", 41, 41, 41), report
        sent = [record["id"] for request in http_sink.requests for record in request["records"]]
        assert sorted(sent) == sorted(rows)  # each row once
        assert {k: v["email"] for k, v in http_sink.store.items()} == {k: v["email"] for k, v in rows.items()}
        assert sorted(r[0] for r in sp.state("in_parts", "snapshot")) == sorted(rows)
        assert sp.state("in_parts", "plan") == []  # settled


# DuckDB only: Snowflake writes the plan in one statement (its statements are its cost)
@pytest.mark.parametrize("sp", ["duckdb"], indirect=True)
def test_a_value_the_second_part_of_a_plan_refuses_fails_the_sync_in_one_line(sp, http_sink):
    """A plan in two parts and a value a mapping's cast refuses on its last key: DuckDB computes the first part only
    for its first rows, and a reset plan's counts read no value, so the refusal comes from the second part after
    the first part went out. The sync fails with the same one line as a plan refused whole, at most the first part
    was sent, and the snapshot holds what the destination acknowledged for it."""
    http_sink.reset()
    sp.destinations(_http_yaml(http_sink, batch_size=4, concurrency=2))
    rows = {f"u{i:03d}": person(i, note=str(i)) for i in range(41)}
    rows["u040"]["note"] = "forty"  # the last key: beyond the first part
    sync = {"name": "late_refusal", "destination": "hook", "mode": "upsert",
            "mappings": {**MAPPINGS, "note": {"column": "note", "transform": [{"cast": "integer"}]}}}
    sp.build(rows, [sync])
    sp.p.release()
    report = sp.sync(page_rows=3, max_attempts=1)["late_refusal"]
    assert (report.status, report.problem) == ("failed", "data"), report
    assert report.message.startswith("models/_people.yml: model 'people': sync 'late_refusal': the warehouse "
                                     "refused its plan: Conversion Error"), report.message
    assert report.message.endswith("check the transforms of its mappings against the model's values")
    assert "\n" not in report.message and "Traceback" not in report.message
    assert report.sent == report.acknowledged == len(http_sink.store) == 3  # the first part (a page) went out
    assert sorted(r[0] for r in sp.state("late_refusal", "snapshot")) == sorted(http_sink.store)


def _range_model(sp: SyncProject, name: str, rows: int, syncs: list[dict], materialized: str = "view") -> tuple:
    """A model `name` of `rows` generated people, its `syncs` declared in a YAML file of its own (both files,
    for the test to remove)."""
    model = sp.p.root / "models" / f"{name}.sql"
    declared = sp.p.root / "models" / f"_{name}.yml"
    model.write_text(f"{{{{ config(materialized='{materialized}') }}}}\n"
                     f"select 'm' || i as user_id, 'm' || i || '@x.com' as email, 'pro' as plan, i % 97 as score "
                     f"from range({rows}) as t(i)", encoding="utf-8")
    meta = {"dbt_studio": {"primary_key": "user_id", "syncs": syncs}}
    declared.write_text(json.dumps({"version": 2, "models": [{"name": name, "config": {"meta": meta}}]}),
                        encoding="utf-8")
    return model, declared


def _same_database(sp: SyncProject) -> duckdb.DuckDBPyConnection:
    """A connection to the project's DuckDB database in this process: DuckDB opens one database per file in a
    process, so this is the one the runner's own connection uses, and its settings are the runner's."""
    database = sp.p.query("select path from duckdb_databases() where database_name = current_database()")[0][0]
    sp.p.release()
    return duckdb.connect(database)


def test_a_model_of_one_row_group_is_synced_on_one_duckdb_thread(sp):
    """DuckDB shares a query's work between its threads by row group (122,880 rows): a sync whose model is a table
    of one row group or fewer runs on one thread (the others would only hand work to each other), a larger
    table's and a view's (never counted: that would run its query) on DuckDB's default. The setting belongs to the
    whole database, so it is DuckDB's default again when the sync ends, and a profile that sets `threads` itself
    keeps its own."""
    from sync_runner.sync.engine import Options, run_syncs

    if sp.p.adapter != "duckdb":  # the runner fits no session of a warehouse it does not open itself
        wh = sp.p.warehouse()
        try:
            assert wh.compile("sync_model_session_sql", source="people", materialized="table") is None
        finally:
            wh.close()
        return
    rows = 123_000  # one row group and a little more
    syncs = {"small_one_thread": "people", "large_default_threads": "more_people", "view_default_threads": "few"}
    sync = {"destination": "out", "mode": "upsert", "mappings": MAPPINGS}
    model, declared = _range_model(sp, "more_people", rows, [{"name": "large_default_threads", **sync}], "table")
    view, view_declared = _range_model(sp, "few", 3, [{"name": "view_default_threads", **sync}])
    try:
        sp.destinations(f"destinations:\n  out: {{type: file, path: {sp.tmp}}}\n")
        sp.build({f"u{i}": person(i) for i in range(5)}, [{"name": "small_one_thread", **sync}])
        sp.p.release()
        held = _same_database(sp)
        try:
            [(default,)] = held.execute("select current_setting('threads')").fetchall()
            seen: dict[str, set[int]] = {}

            def progress(name: str, _done: int, _total: int) -> None:
                [(threads,)] = held.execute("select current_setting('threads')").fetchall()
                seen.setdefault(name, set()).add(int(threads))

            for name, table in syncs.items():
                reports = run_syncs(sp.p.root, sp.p.root, options=Options(select=(name,)), progress=progress)
                expected = {"people": 5, "few": 3}.get(table, rows)
                assert reports[0].status == "success" and reports[0].acknowledged == expected, reports
                assert held.execute("select current_setting('threads')").fetchall() == [(default,)]
            assert seen == {"small_one_thread": {1}, "large_default_threads": {int(default)},
                            "view_default_threads": {int(default)}}, seen
            assert int(default) > 1  # (else the two would read the same)
        finally:
            held.close()

        profile = sp.p.root / "profiles.yml"
        original = profile.read_text()
        profile.write_text(original.replace("threads: 2", "threads: 2\n      settings: {threads: 3}"))
        try:
            wh = sp.p.warehouse()
            try:
                assert wh.compile("sync_model_session_sql", source="people", materialized="table") is None
                assert "reset threads" not in wh.compile("sync_session_end_sql")
            finally:
                wh.close()
        finally:
            profile.write_text(original)
    finally:
        for path in (model, declared, view, view_declared):
            path.unlink()
        sp.declare([])
        sp.p.release()


# DuckDB only: a DuckDB storage setting; Snowflake plans are written as any table
@pytest.mark.parametrize("sp", ["duckdb"], indirect=True)
def test_duckdb_writes_the_plan_uncompressed_and_resets_the_setting(sp):
    """DuckDB writes a large plan uncompressed (compressing it was most of the write, docs/sync.md). Its settings
    belong to the whole database, so a connection sharing it in the same process (dbt's, in `serve` or
    `dbt-studio build`) must find them as they were after the sync: the compression back at DuckDB's default, the
    sync's memory cap lifted, also after a plan write that failed half way."""
    rows = 130_000  # more than one row group (122,880 rows): DuckDB writes those straight to the file
    sync = {"name": "many_uncompressed", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}
    # its plan write fails after the compression was set: no email casts to an integer
    failing = {"name": "many_failing", "destination": "hook", "mode": "upsert",
               "mappings": {"id": "user_id", "email": {"column": "email", "transform": [{"cast": "integer"}]}}}
    model, declared = _range_model(sp, "many_people", rows, [sync, failing])
    try:
        # nothing listens there: the run fails after its plan is written, so the plan stays to be looked at
        sp.destinations("destinations:\n  hook:\n    type: http\n    url: http://127.0.0.1:9/records\n")
        sp.declare([])  # the syncs earlier tests declared on `people` name destinations not listed here
        sp.p.dbt("build", "-s", "many_people")
        sp.p.release()
        held = _same_database(sp)
        try:
            [(memory_before,)] = held.execute("select current_setting('memory_limit')").fetchall()
            report = sp.sync(select=("many_uncompressed",), max_attempts=1, base_delay=0.01)["many_uncompressed"]
            assert report.status == "failed" and report.planned["insert"] == rows, report
            plan = sp.state_relation("many_uncompressed", "plan")
            assert held.execute(f"select count(*) from {plan}").fetchone()[0] == rows
            kinds = {k for (k,) in held.execute(f"select distinct compression from pragma_storage_info('{plan}') "
                                                "where segment_type <> 'VALIDITY'").fetchall()}
            assert kinds == {"Uncompressed"}, kinds
            assert held.execute("select current_setting('force_compression')").fetchone()[0] == "auto"
            assert held.execute("select current_setting('memory_limit')").fetchone()[0] == memory_before

            report = sp.sync(select=("many_failing",), max_attempts=1, base_delay=0.01)["many_failing"]
            assert report.status == "failed" and report.problem == "data", report
            assert report.message.startswith("models/_many_people.yml: model 'many_people': sync 'many_failing': "
                                              "the warehouse refused its plan: Conversion Error: Could not convert "
                                              "string"), report.message
            assert report.message.endswith("check the transforms of its mappings against the model's values")
            assert "\n" not in report.message and report.planned == {}, report
            assert held.execute("select current_setting('force_compression')").fetchone()[0] == "auto"
            assert held.execute("select current_setting('memory_limit')").fetchone()[0] == memory_before
            # the same through dbt's connection (the record debugger runs the steps through dbt)
            debugged = sp.sync(select=("many_failing",), debug=True, max_attempts=1)["many_failing"]
            assert (debugged.status, debugged.problem, debugged.message) == ("failed", "data", report.message)
            assert held.execute("select current_setting('force_compression')").fetchone()[0] == "auto"
            assert held.execute("select current_setting('memory_limit')").fetchone()[0] == memory_before
        finally:
            held.close()
    finally:
        model.unlink()
        declared.unlink()
        sp.p.release()
