"""kill -9 of `dbt-studio sync` at seeded random points, then a rerun: nothing lost, nothing corrupted.

Each mode (upsert, mirror, insert) gets TRIALS trials. A trial changes the model (deleted keys, changed mapped
and unmapped values, new keys), starts the CLI sync in a fresh process (forked from a warm interpreter, see
_process.py) with small commit windows and a slowed destination, kills it with SIGKILL at a point drawn from
the trial's random generator, checks the state it left, maybe changes the model again, and reruns the sync in
this process. The kill points rotate over four phases:

  plan      inside (before a random statement) or just after the lock, the run-log start or the planning query
  delivery  after a random number of batches reached the destination (the kill lands while others are in flight)
  commit    inside the n-th commit transaction, before a random statement (BEGIN ... COMMIT), or just after it
  finish    before or after the run-log update, or the unlock

Checked against the test's own rows (a dict, the expectation), never against the runner's report:
  - right after the kill: the snapshot holds each key once, and every committed change was received by the
    destination (committed ⊆ acknowledged);
  - after the rerun: the destination equals the model (mirror), holds every model row with its current values
    (upsert; deleted keys keep their last values), or holds every key ever in the model with the values it was
    first sent with (insert); the snapshot agrees; and the rows sent twice are at most one commit window plus
    the batches that were in flight (insert mode: the duplicates a destination sees).

Replay: the seed and the trial are in every failure message; `DBT_STUDIO_FAULT_SEED=<seed>` reruns the same
sequence (`DBT_STUDIO_FAULT_TRIALS` changes the count). Kills triggered by the destination's progress land at
slightly different places each run; the others stop at the same statement every time.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from typing import Any

import pytest
from _faults import FaultProject, http_yaml, mutate, person, record_values, sink_idle, values
from _process import forked

from helpers.sync_project import MAPPINGS, PROJECT

SEED = int(os.environ.get("DBT_STUDIO_FAULT_SEED", "20261122"))
TRIALS = int(os.environ.get("DBT_STUDIO_FAULT_TRIALS", "20"))
MODES = ("upsert", "mirror", "insert")
PHASES = ("plan", "delivery", "commit", "finish")
BATCH, CONCURRENCY = 5, 2
SUMMARY: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def rig(new_project, tmp_path_factory):
    from fakes.http_sink import Sink

    tmp = tmp_path_factory.mktemp("process_faults")
    sinks = {mode: Sink() for mode in MODES}
    fp = FaultProject(new_project("duckdb", name="process_faults", source=PROJECT), tmp)
    fp.destinations(http_yaml({f"sink_{m}": s for m, s in sinks.items()}, BATCH, CONCURRENCY))
    rows = {f"u{i:03d}": person(i) for i in range(120)}
    fp.build(rows, [{"name": f"kill_{m}", "destination": f"sink_{m}", "mode": m, "mappings": MAPPINGS}
                    for m in MODES])
    with forked(fp, sinks, tmp) as server:
        yield fp, sinks, server
    if SUMMARY:
        print("\nprocess faults:", json.dumps(SUMMARY, indent=1))


def _kill_point(rng: random.Random, phase: str, planned: int, commit_rows: int) -> dict[str, Any]:
    if phase == "plan":
        macro = rng.choice(("sync_lock", "sync_run_start", "sync_plan", "sync_plan", "sync_plan"))
        return {"macro": macro, "call": 1, "statement": rng.randint(1, 6), "hold": rng.random() < 0.6}
    if phase == "commit":
        # every commit but the last takes at least `commit_rows` rows and at most a batch more
        calls = max(1, planned // (commit_rows + BATCH - 1))
        call = rng.randint(1, calls)
        # the commit's statements as the adapter sees them: 1 the first DML (BEGIN is opened for it: 2), 3-5 the
        # other DML (inside the transaction, after some of it ran), 6 COMMIT; 7: just after it returned. Killed
        # there, or a few ms later (not after what may be the last commit: the run could be over by then)
        return {"macro": "sync_commit", "call": call, "statement": rng.randint(1, 7),
                "hold": rng.random() < 0.6 or call == calls}
    macro = rng.choice(("sync_run_finish", "sync_unlock"))  # (one statement each; 2 = just after it)
    return {"macro": macro, "call": 1, "statement": rng.randint(1, 2), "hold": True}


def _planned(mode: str, acked: dict[str, Any], rows: dict[str, dict]) -> int:
    """How many plan rows the model's change makes (the test's own reckoning)."""
    new = [k for k in rows if k not in acked]
    if mode == "insert":
        return len(new)
    changed = [k for k in rows if k in acked and values(rows[k]) != acked[k]]
    gone = [k for k in acked if k not in rows] if mode == "mirror" else []
    return len(new) + len(changed) + len(gone)


@pytest.mark.parametrize("mode", MODES)
def test_kill_9_at_random_points_loses_nothing(rig, mode):
    fp, sinks, server = rig
    sink = sinks[mode]
    sync = f"kill_{mode}"
    rng = random.Random(f"{SEED}:{mode}")
    acked: dict[str, Any] = {}  # what the destination holds after the last successful run (expected)
    snap: dict[str, Any] = {}  # the snapshot it left (upsert, insert: may lack keys the destination has)
    stats: Counter[str] = Counter()
    worst_dupes, worst_bound, killed_points = 0, 10**9, []
    argv = ["sync", "-s", sync, "--project-dir", str(fp.p.root), "--profiles-dir", str(fp.p.root)]
    env = {"FAULT_SINK_TOKEN": sink.token, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    started = time.monotonic()
    for trial in range(TRIALS):
        phase = PHASES[trial % len(PHASES)]
        where = f"seed {SEED}, mode {mode}, trial {trial} ({phase}); replay: DBT_STUDIO_FAULT_SEED={SEED}"
        if trial:  # every trial has work (the first one is the initial full sync)
            fp.write_model(mutate(rng, fp.rows, f"{mode[0]}{trial}"))
        at_kill = {k: values(v) for k, v in fp.rows.items()}
        commit_rows = rng.choice((5, 10))
        commit_seconds = rng.choice((0.05, 60.0))
        planned = _planned(mode, acked, fp.rows)
        spec: dict[str, Any] = {"options": {"commit_rows": commit_rows, "commit_seconds": commit_seconds}}
        if phase != "delivery":
            spec["pause"] = _kill_point(rng, phase, planned, commit_rows)
        first_request = len(sink.requests)
        fp.release()
        sink.delay = 0.01
        child = server.start(argv, env, spec, f"{mode}_{trial}")
        if phase == "delivery":
            wanted = first_request + rng.randint(1, max(1, -(-planned // BATCH) - 2))
            deadline = time.monotonic() + 60
            while len(sink.requests) < wanted and child.alive() and time.monotonic() < deadline:
                time.sleep(0.002)
            sink.delay = 0.5  # the batches still to come hang: the kill lands mid-delivery
            time.sleep(rng.uniform(0, 0.01))
            point = f"after {len(sink.requests) - first_request} batches"
        else:
            point = child.wait_marker()
            if point and not spec["pause"].get("hold", True):
                time.sleep(rng.uniform(0, 0.015))
        outcome = child.kill9()
        assert outcome == {"signal": 9}, f"{where}: the kill did not land ({outcome}, {point})\n{child.log_text()}"
        killed_points.append(f"{phase}: {point}")
        sink_idle()
        sink.delay = 0.0
        sent_killed = sink.requests[first_request:]
        # the state the kill left: each key once; whatever was committed, the destination had acknowledged
        snapshot = fp.snapshot(sync)
        keys = Counter(k for k, _ in snapshot)
        assert not [k for k, n in keys.items() if n > 1], f"{where}: duplicated snapshot keys after the kill"
        committed = dict(snapshot)
        received = {(r["op"], str(rec["id"]), record_values(rec)) for r in sent_killed for rec in r["records"]}
        received_keys = {(op, key) for op, key, _ in received}
        for key, value in committed.items():  # what the killed run changed in the snapshot, it had delivered
            if snap.get(key) != value:
                assert ("insert", key, value) in received or ("update", key, value) in received, \
                    f"{where}: {key} committed as {value} but never acknowledged"
        for key in snap:  # a key leaves the snapshot only by a delete the destination acknowledged
            if key not in committed:
                assert ("delete", key) in received_keys, \
                    f"{where}, killed {point}: {key} left the snapshot ({len(committed)} keys), never deleted"
        stats["committed_before_kill"] += sum(1 for k, v in committed.items() if snap.get(k) != v)
        # sometimes the model changes again before the rerun (the next dbt build came first)
        if rng.random() < 0.5:
            fp.write_model(mutate(rng, fp.rows, f"{mode[0]}{trial}b", deletes=3, changes=4, inserts=4))
            stats["changed_before_rerun"] += 1
        before_rerun = dict(acked)
        report = fp.rerun(sync, commit_rows=commit_rows, commit_seconds=commit_seconds)
        assert report.status == "success", f"{where}: rerun {report.status}: {report.message}"
        now = {k: values(v) for k, v in fp.rows.items()}
        store = {k: record_values(r) for k, r in sink.store.items()}
        # the expectation, from the test's own rows
        if mode == "mirror":
            acked = dict(now)
            assert store == acked, f"{where}: the destination differs from the model: {_diff(store, acked)}"
        elif mode == "upsert":
            for key in set(store) | set(now):
                if key in now:
                    assert store.get(key) == now[key], f"{where}: {key}: {store.get(key)} != model {now[key]}"
                else:  # gone from the model: on_delete nothing leaves its last value (sent by either run)
                    assert store.get(key) in {before_rerun.get(key), at_kill.get(key)} - {None}, \
                        f"{where}: {key} gone from the model has {store.get(key)}"
            acked = dict(store)
        else:
            for key in set(store) | set(now) | set(at_kill):
                if key in before_rerun:
                    expected = {before_rerun[key]}
                elif key in committed:  # inserted by the killed run
                    expected = {committed[key]}
                elif key in now:  # sent (again) by the rerun with its current values
                    expected = {now[key]}
                else:  # only in the killed run's model: maybe delivered before the kill, then deleted
                    expected = {at_kill[key], None}
                assert store.get(key) in expected, f"{where}: {key}: {store.get(key)} not in {expected}"
            acked = dict(store)
        # the snapshot: the model (mirror); upsert, insert: also what the killed run committed of keys the model
        # lost since (never deleted), and insert keeps the values first committed
        if mode == "mirror":
            expected_snapshot = dict(now)
        elif mode == "upsert":
            expected_snapshot = {**committed, **now}
        else:
            expected_snapshot = {**now, **committed}
        snapshot = dict(fp.snapshot(sync))
        assert snapshot == expected_snapshot, f"{where}: snapshot: {_diff(snapshot, expected_snapshot)}"
        snap = expected_snapshot
        # re-sent rows: at most one commit window plus the batches in flight
        sent = Counter((r["op"], str(rec["id"])) for r in sink.requests[first_request:] for rec in r["records"])
        dupes = sum(n - 1 for n in sent.values())
        bound = commit_rows - 1 + 2 * CONCURRENCY * BATCH
        if dupes > worst_dupes or (dupes == worst_dupes and bound < worst_bound):
            worst_dupes, worst_bound = dupes, bound
        assert dupes <= bound, f"{where}: {dupes} rows sent twice, more than one commit window ({bound})"
        stats[f"phase_{phase}"] += 1
        stats["rows_resent"] += dupes
    SUMMARY[mode] = {"seed": SEED, "trials": TRIALS, "kills_landed": len(killed_points), **stats,
                     "max_resent_in_a_trial": worst_dupes, "its_bound": worst_bound,
                     "seconds": round(time.monotonic() - started, 1), "points": killed_points}


def _diff(got: dict, want: dict) -> str:
    keys = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    return "; ".join(f"{k}: {got.get(k)} != {want.get(k)}" for k in keys[:10]) + (" ..." if len(keys) > 10 else "")


@pytest.mark.parametrize("mode", ("mirror", "upsert"))
def test_changes_delivered_before_a_kill_are_resent_when_the_model_reverts(rig, mode):
    """Regression: a killed run delivered changes it never committed; the model then went back to what the
    snapshot holds. The snapshot cannot tell, so the next run must send those keys again (mirror: also delete
    a key it may have created), or the destination keeps values the model no longer has."""
    fp, sinks, server = rig
    sink, sync = sinks[mode], f"kill_{mode}"
    # whatever an earlier test left (the kill trials shrink the model: a safeguard would stop it), in step
    first = fp.rerun(sync, allow_large_changes=True)
    assert first.status == "success", first.message
    base = {k: dict(v) for k, v in fp.rows.items()}
    changed = dict(base)
    reverted_keys = sorted(base)[:6]
    for key in reverted_keys:
        changed[key] = {**base[key], "plan": "reverted-later"}
    changed["only_in_killed_run"] = person(4242)
    fp.write_model(changed)
    fp.release()
    # all of it delivered, none of it committed: the kill lands before the only commit's first statement
    child = server.start(["sync", "-s", sync, "--project-dir", str(fp.p.root), "--profiles-dir", str(fp.p.root)],
                         {"FAULT_SINK_TOKEN": sink.token},
                         {"options": {"commit_rows": 1000, "commit_seconds": 600},
                          "pause": {"macro": "sync_commit", "call": 1, "statement": 1}}, f"revert_{mode}")
    assert child.wait_marker(), child.log_text()
    assert child.kill9() == {"signal": 9}
    sink_idle()
    assert all(sink.store[k]["plan"] == "reverted-later" for k in reverted_keys)  # delivered before the kill
    fp.write_model(base)  # the model goes back to what the snapshot holds
    assert fp.rerun(sync).status == "success"
    store = {k: record_values(r) for k, r in sink.store.items() if k in base or k == "only_in_killed_run"}
    expected = {k: values(v) for k, v in base.items()}
    if mode == "upsert":  # no deletes in upsert: the row it created stays, with what it was sent
        expected["only_in_killed_run"] = values(changed["only_in_killed_run"])
    assert store == expected, _diff(store, expected)


@pytest.mark.parametrize("statement", (2, 3))
def test_a_full_resync_killed_as_its_plan_s_second_part_is_written_loses_nothing(rig, statement):
    """On DuckDB a reset plan is written a page first and the rest when delivery reads past that page (the third
    read, after the first request's rows and the rest of the first page: 1 sets the compression, 2 appends the
    rest, 3 resets it, 4 reads the page). Killed just before the rest is written (2) or just after (3), the run
    leaves what it committed of the first page; the next run (no reset: the fingerprint was recorded) sends what
    the destination may lack, and it ends equal to the model."""
    fp, sinks, server = rig
    sink, sync = sinks["mirror"], "kill_mirror"
    first = fp.rerun(sync, allow_large_changes=True)  # in step with whatever an earlier test left
    assert first.status == "success", first.message
    page = min(8, (len(fp.rows) - 1) // 10)  # more than ten pages (SPLIT_PAGES): the plan is written in two parts
    assert page >= 2, len(fp.rows)
    fp.release()
    before = len(sink.requests)
    child = server.start(["sync", "-s", sync, "--full-resync", "--project-dir", str(fp.p.root), "--profiles-dir",
                          str(fp.p.root)], {"FAULT_SINK_TOKEN": sink.token},
                         {"options": {"page_rows": page, "commit_rows": 5, "commit_seconds": 60},
                          "pause": {"macro": "sync_plan_rows", "call": 3, "statement": statement}},
                         f"second_part_{statement}")
    point = child.wait_marker()
    assert point and ("insert into" if statement == 2 else "reset force_compression") in point, child.log_text()

    def sent() -> list[str]:
        return [str(rec["id"]) for r in sink.requests[before:] for rec in r["records"]]

    # the first page's batches (at most two) were on their way when the runner read past it; they arrive meanwhile
    deadline = time.monotonic() + 30
    while len(sent()) < page and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.kill9() == {"signal": 9}
    sink_idle()
    assert sorted(sent()) == sorted(fp.rows)[:page]  # the plan's first part, its first rows by key, and only those
    snapshot = fp.snapshot(sync)
    assert len({k for k, _ in snapshot}) == len(snapshot)  # each key once
    assert {k for k, _ in snapshot} <= set(sent())  # the resync emptied it: whatever it holds was acknowledged
    assert fp.rerun(sync).status == "success"
    store = {k: record_values(r) for k, r in sink.store.items()}
    expected = {k: values(v) for k, v in fp.rows.items()}
    assert store == expected, _diff(store, expected)
    assert dict(fp.snapshot(sync)) == expected
