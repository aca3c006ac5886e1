"""The warehouse fails while a commit runs: the state is fully committed or untouched, never half, and the next
run makes the destination equal the model. On DuckDB and on Snowflake (fakesnow).

Each case changes the model (new, changed and deleted keys, and two new keys with an address the destination
refuses, so the commit also writes rejections), then runs the sync with one commit window (the whole plan) and
makes the warehouse fail at the case's statement of that commit (_faults.StatementFault): before it reaches
the warehouse or after it ran there, as a blip (that statement only) or for good (every later statement of
the run fails too). Afterwards every state table the commit writes (snapshot, changelog, rejections) is
compared with two expectations computed here from the test's own rows: untouched (as before the run) or fully
committed (every acknowledged change applied once, the refused keys recorded once); anything else is a half
commit. Then the lock must be free and a rerun must make the destination and the snapshot equal the model.
A kill -9 inside the commit transaction is the `commit` phase of test_process_faults.py.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from typing import Any

import pytest
from _faults import FaultProject, StatementFault, http_yaml, mutate, person, record_values, values

from helpers import ADAPTERS
from helpers.sync_project import MAPPINGS, PROJECT

SEED = int(os.environ.get("DBT_STUDIO_FAULT_SEED", "20261122"))
SYNC = "wh_mirror"
# the commit's statements: snapshot delete, snapshot insert, changelog insert, rejections delete, rejections
# update, rejections insert, as the adapter runs them: DuckDB 1 the first DML (2: the BEGIN dbt opens for it),
# 3-7 the others, 8 COMMIT; Snowflake 1 ROLLBACK (of a failed earlier attempt), 2 BEGIN, 3-8 the DML, 9 COMMIT
CASES = {"duckdb": 16, "snowflake": 8}
SUMMARY: dict[str, Any] = {}


@pytest.fixture(scope="module", params=ADAPTERS)
def wrig(request, new_project, tmp_path_factory):
    from fakes.http_sink import Sink

    adapter = request.param
    sink = Sink()
    fp = FaultProject(new_project(adapter, name="warehouse_faults", source=PROJECT),
                      tmp_path_factory.mktemp(f"warehouse_faults_{adapter}"))
    fp.destinations(http_yaml({"wh_sink": sink}, batch_size=5, concurrency=1))
    fp.build({f"w{i:03d}": person(i) for i in range(40)},
             [{"name": SYNC, "destination": "wh_sink", "mode": "mirror", "mappings": MAPPINGS}])
    assert fp.rerun(SYNC).status == "success"
    yield fp, sink
    fp.release()
    sink.close()
    if SUMMARY:
        print("\nwarehouse faults:", json.dumps(SUMMARY, indent=1))


def _changelog(fp: FaultProject) -> Counter:
    return Counter((r[0], r[1], r[2]) for r in fp.fetch(
        f"select run_id, _key, op from {fp.state_relation('sync_changelog')} where sync_name = '{SYNC}'"))


def rejections(fp: FaultProject, keys: set[str]) -> dict[str, tuple]:
    rows = fp.fetch(f"select _key, reason, attempts from {fp.state_relation(SYNC + '__rejections')}")
    return {r[0]: (r[1], int(r[2])) for r in rows if r[0] in keys}


def test_commit_is_all_or_nothing_when_the_warehouse_fails(wrig):
    fp, sink = wrig
    adapter = fp.p.adapter
    rng = random.Random(f"{SEED}:warehouse:{adapter}")
    outcomes: Counter[str] = Counter()
    for case in range(CASES[adapter]):
        # DuckDB: each of the 8 statements, before then after; Snowflake: BEGIN .. COMMIT (2 .. 9), alternating
        statement = case % 8 + 1 if adapter == "duckdb" else case + 2
        when = ("before", "after")[(case // 8) % 2] if adapter == "duckdb" else ("before", "after")[case % 2]
        # Snowflake: blips only. When the connection is gone for good, Snowflake rolls back the open transaction
        # of a session that ends; the fake keeps it open (and its row locks), so that case is not emulated.
        down = rng.random() < 0.5 if adapter == "duckdb" else False
        where = f"{adapter}, seed {SEED}, case {case}: statement {statement} {when}, {'down' if down else 'blip'}"
        # the state before: the last run succeeded, so the snapshot is the model (checked, not assumed)
        before = {k: values(v) for k, v in fp.rows.items()}
        assert dict(fp.snapshot(SYNC)) == before, where
        changelog_before = _changelog(fp)
        rows = mutate(rng, fp.rows, f"w{case}", deletes=3, changes=4, unmapped=2, inserts=5)
        bad = {f"bad{case}_{i}" for i in range(2)}
        for key in bad:
            rows[key] = person(900 + case, email=f"invalid-{key}")
        fp.write_model(rows)
        model = {k: values(v) for k, v in rows.items()}
        good = {k: v for k, v in model.items() if k not in bad}
        ops = {k: "insert" for k in good if k not in before}
        ops.update({k: "update" for k in good if k in before and good[k] != before[k]})
        ops.update({k: "delete" for k in before if k not in model})

        with StatementFault("sync_commit", 1, statement, when=when, down=down) as fault:
            try:
                report = fp.rerun(SYNC, commit_rows=100_000, commit_seconds=600)
                result = f"{report.status}: {report.message}"
            except Exception as exc:  # noqa: BLE001  (the warehouse error propagates: that is allowed)
                result = f"raised {type(exc).__name__}"
        fp.release()  # what a new process would see
        assert fault.fired, f"{where}: the commit had fewer statements ({result})"

        snapshot = fp.snapshot(SYNC)
        assert len(snapshot) == len(dict(snapshot)), f"{where}: duplicated snapshot keys"
        new_log = _changelog(fp) - changelog_before
        logged = {(key, op) for (_, key, op) in new_log}
        assert all(n == 1 for n in new_log.values()), f"{where}: changelog rows written twice"
        refused = rejections(fp, bad)
        untouched = dict(snapshot) == before and not new_log and not refused
        committed = (dict(snapshot) == good and logged == set(ops.items()) and len({r for r, _, _ in new_log}) == 1
                     and refused == {k: ("invalid email", 1) for k in bad})
        assert untouched or committed, (
            f"{where}: half a commit ({result}; {fault.log}): snapshot {'==' if dict(snapshot) == before else '!='}"
            f" before, {'==' if dict(snapshot) == good else '!='} committed; changelog {len(new_log)} new rows of"
            f" {len(ops)}; rejections {refused}")
        outcomes[f"{'committed' if committed else 'untouched'} ({'down' if down else 'blip'})"] += 1
        locks = fp.fetch(f"select holder from {fp.state_relation('sync_locks')} where sync_name = '{SYNC}'")

        # the next run (the warehouse is back) repairs everything
        report = fp.rerun(SYNC)
        assert report.status == "success", f"{where}: rerun {report.status}: {report.message} (locks {locks})"
        store = {k: record_values(r) for k, r in sink.store.items()}
        assert store == good, f"{where}: destination != model"
        assert dict(fp.snapshot(SYNC)) == good, f"{where}: snapshot != model"
        assert rejections(fp, bad) == {k: ("invalid email", 2 if committed else 1) for k in bad}, where
        rows = {k: v for k, v in rows.items() if k not in bad}  # the bad keys leave the model again
        fp.write_model(rows)
        assert fp.rerun(SYNC).status == "success", where
    SUMMARY[adapter] = {"seed": SEED, "cases": CASES[adapter], **outcomes}
