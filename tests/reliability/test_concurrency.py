"""Syncs at the same time, as separate `dbt-studio sync` processes (forked from a warm interpreter, see
_process.py), on DuckDB and on Snowflake (fakesnow).

  - The same sync twice: the second process refuses with a one-line reason and changes nothing; the first
    finishes, and the state is as if it had run alone. Snowflake: the sync's lock ("is already running").
    DuckDB: the database file admits one process at a time, so the second cannot open it ("cannot use the
    warehouse ... lock"), which refuses every second process, whatever it syncs.
  - Both started at the same instant: one runs, the other refuses; nothing is corrupted and the next run is
    clean.
  - Two different syncs at once (Snowflake): both complete, each destination equals its model.
Everything is checked against the test's own rows and what the fake destinations received.
"""

from __future__ import annotations

import random
import time

import pytest
from _faults import FaultProject, http_yaml, mutate, person, record_values, values
from _process import ForkServer, forked

from helpers import ADAPTERS
from helpers.sync_project import MAPPINGS, PROJECT

REFUSED = {"snowflake": "is already running", "duckdb": "cannot use the warehouse"}


@pytest.fixture(scope="module", params=ADAPTERS)
def crig(request, new_project, tmp_path_factory):
    from fakes.http_sink import Sink

    adapter = request.param
    tmp = tmp_path_factory.mktemp(f"concurrency_{adapter}")
    sinks = {"same": Sink(), "other": Sink()}
    fp = FaultProject(new_project(adapter, name="concurrency", source=PROJECT), tmp)
    fp.destinations(http_yaml({f"sink_{name}": sink for name, sink in sinks.items()}, 5, 1))
    fp.build({f"c{i:03d}": person(i) for i in range(50)},
             [{"name": name, "destination": f"sink_{name}", "mode": "mirror", "mappings": MAPPINGS}
              for name in sinks])
    with forked(fp, sinks, tmp) as server:
        yield fp, sinks, server


def _start(fp: FaultProject, server: ForkServer, sync: str, sink, name: str):
    argv = ["sync", "-s", sync, "--project-dir", str(fp.p.root), "--profiles-dir", str(fp.p.root)]
    return server.start(argv, {"FAULT_SINK_TOKEN": sink.token}, {}, name)


def _check_in_step(fp: FaultProject, sync: str, sink) -> None:
    """Destination and snapshot equal the model, the snapshot has each key once, the lock is free."""
    model = {k: values(v) for k, v in fp.rows.items()}
    assert {k: record_values(r) for k, r in sink.store.items()} == model, f"{sync}: destination != model"
    snapshot = fp.snapshot(sync)
    assert len(snapshot) == len(dict(snapshot)) and dict(snapshot) == model, f"{sync}: snapshot != model"
    assert fp.fetch(f"select holder from {fp.state_relation('sync_locks')} where sync_name = '{sync}'") == []


def test_the_same_sync_twice_at_once_the_second_refuses(crig):
    fp, sinks, server = crig
    adapter = fp.p.adapter
    sink = sinks["same"]
    for round_, together in enumerate((False, True)):
        fp.write_model(mutate(random.Random(round_), fp.rows, f"s{round_}"))
        runs_before = fp.fetch(f"select count(*) from {fp.state_relation('sync_runs')} where sync_name = 'same'"
                               ) if round_ else [(0,)]
        fp.release()
        # slow delivery (12 requests of 5 rows, 0.5 s each) until one of the two runs ends: the first holds the lock
        # however long the second takes to start (at 0.1 s a request, a slow hour let the first end before the
        # second asked for the lock, and both ran)
        sink.delay = 0.5
        first = _start(fp, server, "same", sink, f"same_{round_}_a")
        if not together:  # the second starts once the first is delivering
            deadline = time.monotonic() + 60
            while not sink.requests and first.alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert first.alive(), first.log_text()
        second = _start(fp, server, "same", sink, f"same_{round_}_b")
        children = {"a": first, "b": second}
        outcomes = {"a": None, "b": None}
        while any(v is None for v in outcomes.values()):
            for key, child in children.items():
                if outcomes[key] is None and not child.alive():
                    outcomes[key] = (child.wait(), child.log_text())
                    sink.delay = 0.0  # one run is over: the other need not wait any longer
            time.sleep(0.01)
        ok = [k for k, (o, _) in outcomes.items() if o == {"code": 0}]
        refused = [k for k, (o, log) in outcomes.items() if o != {"code": 0} and REFUSED[adapter] in log]
        assert len(ok) == 1 and len(refused) == 1, f"round {round_}: {outcomes}"
        (_, log), winner = outcomes[refused[0]], children[ok[0]].pid
        # the refusal came while the other run was still going: it names that run's process as the holder (the
        # sync's lock is `host:pid:run_id` until the run ends; DuckDB's file lock names the PID that holds it).
        # (Which process exits first says nothing: the refused one still closes its connection and prints.)
        holder = f":{winner}:" if adapter == "snowflake" else f"(PID {winner})"
        assert holder in log, f"round {round_}: the refusal does not name the running process {winner}: {log}"
        assert len([line for line in log.splitlines() if REFUSED[adapter] in line]) == 1, log
        if adapter == "snowflake":  # the lock names who holds it
            assert "wait for it to finish" in log
        assert "Traceback" not in log, log
        # the state is what the one run made: in step with the model, one more run logged, the lock free
        _check_in_step(fp, "same", sink)
        runs = fp.fetch(f"select count(*) from {fp.state_relation('sync_runs')} where sync_name = 'same'")
        assert runs[0][0] == runs_before[0][0] + 1
        # and the next run has nothing left to do
        report = fp.rerun("same")
        assert report.status == "success" and sum(report.planned.values()) == 0, report.message


def test_two_different_syncs_at_once(crig):
    fp, sinks, server = crig
    adapter = fp.p.adapter
    fp.write_model(mutate(random.Random(7), fp.rows, "d"))
    for sink in sinks.values():
        sink.delay = 0.05
    fp.release()
    children = {name: _start(fp, server, name, sinks[name], f"diff_{name}") for name in sinks}
    overlapped = False
    while any(c.alive() for c in children.values()):
        overlapped |= all(c.alive() for c in children.values()) and all(s.requests for s in sinks.values())
        time.sleep(0.005)
    for sink in sinks.values():
        sink.delay = 0.0
    outcomes = {name: c.wait() for name, c in children.items()}
    if adapter == "duckdb":  # one process at a time on a DuckDB file: the other is refused, then runs alone
        refused = [n for n, c in children.items() if REFUSED["duckdb"] in c.log_text()]
        assert len(refused) == 1 and outcomes[refused[0]] == {"code": 1}, outcomes  # 1: a sync failed
        assert fp.rerun(refused[0]).status == "success"
    else:
        assert outcomes == {name: {"code": 0} for name in sinks}, {n: c.log_text() for n, c in children.items()}
        assert overlapped, "the two syncs did not run at the same time"
    for name, sink in sinks.items():
        _check_in_step(fp, name, sink)
