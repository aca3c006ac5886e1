"""Destination faults: timeouts, 5xx, 429 storms (with and without Retry-After), connections reset mid-body and
before the answer, acknowledgements lost on the wire, per-record refusals, a slow server, credentials revoked
mid-run. Each sync finishes or fails cleanly, and the committed state equals exactly what the destination
acknowledged: the `<sync>__snapshot`, `<sync>__rejections`, `sync_changelog` and `sync_runs` tables are compared
with the fault server's own ledger (tests/reliability/fault_sink.py), never with the runner's report alone. A
clean rerun then sends exactly what was not acknowledged, and the destination ends equal to the model.
"""

from __future__ import annotations

import os
import random

import pytest
from fault_sink import REJECT_REASON, Fault, FaultSink, serving
from state_reader import StateReader

from helpers.sync_project import PROJECT, SyncProject, person

MAPPINGS = {"id": "user_id", "email": "email", "plan": "plan", "score": "score"}
TOKEN_VAR = "FAULT_SINK_TOKEN"
CLIENT_TIMEOUT = 0.5  # the destination's `timeout`; a `timeout` fault stays silent for longer
OPTIONS = {"base_delay": 0.02, "max_attempts": 5, "commit_rows": 6, "commit_seconds": 60.0}


def _every(kind: str, requests: set[int], **fault) -> callable:
    return lambda n, keys: Fault(kind, **fault) if n in requests else None


def _on_key(key: str, fault: Fault):
    """The batch holding `key` always fails this way (its keys are only known once the body is read)."""
    return lambda n, keys: fault if keys is not None and key in keys else None


def _revoked_after(ok: int):
    """The first `ok` requests are slow but accepted; from then on the token is refused (401)."""
    return lambda n, keys: Fault("slow", seconds=0.3) if n <= ok else Fault("status", status=401)


def _mixed(seed: int):
    rng = random.Random(seed)
    kinds = [Fault("status", status=500), Fault("status", status=503), Fault("status", status=429),
             Fault("status", status=429, retry_after=0.05), Fault("timeout", seconds=CLIENT_TIMEOUT * 2),
             Fault("reset_body"), Fault("reset_answer"), Fault("lost_ack"), Fault("slow", seconds=0.05)]
    chosen: dict[int, Fault | None] = {}

    def script(n: int, keys: list[str] | None) -> Fault | None:
        if n not in chosen:
            chosen[n] = rng.choice(kinds) if rng.random() < 0.45 else None
        return chosen[n]

    return script


MIXED_TRIALS = 4

# scenario -> (fault script, what the run must end as: "success", "failed" or "either" when random)
SCENARIOS = {
    "timeouts": (_every("timeout", {2, 5}, seconds=CLIENT_TIMEOUT * 2.5), "success"),
    "http_5xx": (lambda n, keys: Fault("status", status=500 if n % 2 else 503) if n <= 5 else None, "success"),
    "storm_429_retry_after": (_every("status", set(range(1, 9)), status=429, retry_after=0.15), "success"),
    "storm_429_bare": (_every("status", set(range(1, 9)), status=429), "success"),
    "reset_mid_body": (_every("reset_body", {1, 3, 4}), "success"),
    "reset_before_answer": (_every("reset_answer", {2, 3, 6}), "success"),
    "lost_ack": (_every("lost_ack", {1, 4}), "success"),
    "partial_records": (None, "success"),  # only the per-record refusals every stream sees
    "slow_server": (_every("slow", set(range(1, 100)), seconds=0.15), "success"),
    "retries_exhausted": (_on_key("u09", Fault("status", status=503)), "failed"),
    "auth_revoked": (_revoked_after(3), "failed"),
    "mixed_random": (_mixed(7), "either"),
}


def _rows(phase: int) -> dict[str, dict]:
    rows = {f"u{i:02d}": person(i) for i in range(40)}
    rows["u05"]["email"] = "invalid-5"
    rows["u17"]["email"] = "invalid-17"
    if phase >= 1:  # deletes, updates, inserts, and one refused record fixed upstream
        for i in (1, 8, 22, 30, 31):
            del rows[f"u{i:02d}"]
        for i in (2, 9, 12, 25, 33, 39):
            rows[f"u{i:02d}"]["plan"] = "pro"
        for i in range(40, 44):
            rows[f"u{i:02d}"] = person(i)
        rows["u05"]["email"] = "fixed5@mail.com"
    return rows


def _values(row: dict) -> tuple:
    return (row["email"], row["plan"], None if row["score"] in (None, "") else int(row["score"]))


class Expectation:
    """The state a sync must have, derived from the fault server's ledger alone."""

    def __init__(self) -> None:
        self.snapshot: dict[str, tuple] = {}
        self.rejections: dict[str, tuple[str, int]] = {}
        self.runs = 0

    def apply(self, acked: list[tuple[str, str, dict]], refused: list[tuple[str, str]], reset: bool = False) -> None:
        if reset:  # a full resync starts from an empty snapshot
            self.snapshot = {}
        for op, key, record in acked:
            if op in ("insert", "update"):
                self.snapshot[key] = (record["email"], record["plan"], record["score"])
            else:
                self.snapshot.pop(key, None)
            self.rejections.pop(key, None)
        for key, reason in refused:
            attempts = self.rejections.get(key, ("", 0))[1]
            self.rejections[key] = (reason, attempts + 1)

    def pending(self, rows: dict[str, dict], full_resync: bool = False) -> set[str]:
        """Keys the next run must send: changed or never acknowledged, and acknowledged keys gone (mirror); a
        full resync sends every row and deletes nothing."""
        if full_resync:
            return set(rows)
        changed = {k for k, row in rows.items() if self.snapshot.get(k) != _values(row)}
        return changed | (self.snapshot.keys() - rows.keys())


@pytest.fixture(scope="module")
def sink():
    with serving(TOKEN_VAR) as server:
        yield server


def _project(new_project, tmp_path_factory, sink: FaultSink, adapter: str, names) -> SyncProject:
    sp = SyncProject(new_project(adapter, name="faults", source=PROJECT), tmp_path_factory.mktemp(f"faults_{adapter}"))
    yaml = ["destinations:"]
    for name in names:
        yaml += [f"  d_{name}:", "    type: http", f"    url: {sink.url}/{name}",
                 f"    headers: {{Authorization: \"Bearer {{{{ env_var('{TOKEN_VAR}') }}}}\"}}",
                 "    results_path: results", "    batch_size: 4", "    concurrency: 2",
                 f"    timeout: {CLIENT_TIMEOUT}"]
    sp.destinations("\n".join(yaml) + "\n")
    sp.syncs = [{"name": f"f_{name}", "destination": f"d_{name}", "mode": "mirror", "mappings": MAPPINGS}
                for name in names]
    return sp


@pytest.fixture(scope="module")
def fp(new_project, tmp_path_factory, sink):
    return _project(new_project, tmp_path_factory, sink, "duckdb", SCENARIOS)


class Reader(StateReader):
    def state(self, sync: str, run_id: str) -> dict:
        snapshot = {r[0]: (r[1], r[2], None if r[3] is None else int(r[3]))
                    for r in self.rows(f"select _key, email, plan, score from {self.table(sync + '__snapshot')}")}
        rejections = {r[0]: (r[1], int(r[2])) for r in
                      self.rows(f"select _key, reason, attempts from {self.table(sync + '__rejections')}")}
        changelog = sorted((r[0], r[1]) for r in self.rows(
            f"select _key, op from {self.table('sync_changelog')} where run_id = '{run_id}'"))
        [run] = self.rows(f"select status, acknowledged, rejected, error from {self.table('sync_runs')} "
                          f"where run_id = '{run_id}'")
        return {"snapshot": snapshot, "rejections": rejections, "changelog": changelog, "run": run}


def _run_and_check(sp: SyncProject, sink: FaultSink, expectations: dict[str, Expectation], rows: dict,
                   outcomes: dict[str, str], tally: dict, full_resync: bool = False) -> None:
    """One run of every scenario's sync (each against its own faulty stream), then every check."""
    pending = {name: expect.pending(rows, full_resync) for name, expect in expectations.items()}
    marks = {name: (*sink.marks(name), len(sink.log[name])) for name in expectations}
    reports = sp.sync(select=tuple(f"f_{name}" for name in expectations), full_resync=full_resync, **OPTIONS)
    with Reader(sp.p) as reader:
        for name, expect in expectations.items():
            report = reports[f"f_{name}"]
            acked_mark, refused_mark, seen = marks[name]
            acked, refused = sink.acked_entries(name, acked_mark), sink.refused(name, refused_mark)
            sent_keys = {k for entry in sink.log[name][seen:] for k in entry["keys"] or ()}
            state = reader.state(f"f_{name}", report.run_id)
            # only the first run and asked-for full resyncs start over: not a run after a failed one
            assert report.full_resync == (full_resync or expect.runs == 0), name
            expect.runs += 1
            expect.apply(acked, refused, reset=report.full_resync)
            # the committed state is exactly what the server acknowledged
            assert state["snapshot"] == expect.snapshot, name
            assert state["rejections"] == expect.rejections, name
            assert state["changelog"] == sorted((key, op) for op, key, _ in acked), name
            assert state["run"][1:3] == (len(acked), len(refused)) == (report.acknowledged, report.rejected), name
            # only what was pending was sent; the run fails cleanly exactly when something was not delivered
            assert sent_keys <= pending[name], name
            undelivered = pending[name] - {k for _, k, _ in acked} - {k for k, _ in refused}
            outcome = outcomes[name]
            if outcome != "either":
                assert report.status == outcome, (name, report.message)
            assert (report.status == "failed") == bool(undelivered) or "refused the credentials" in report.message
            assert state["run"][0] == report.status and (state["run"][3] or "") == report.message, name
            assert all(reason == REJECT_REASON for _, reason in refused)
            assert "Traceback" not in report.message and "\n" not in report.message
            tally.setdefault(name, []).append(report.status)


def _converge(sp: SyncProject, sink: FaultSink, expectations: dict[str, Expectation], rows: dict,
              tally: dict) -> None:
    """No more faults: one clean run sends exactly what is pending and the destination equals the model."""
    for name in expectations:
        sink.script(name, None)
    _run_and_check(sp, sink, expectations, rows, dict.fromkeys(expectations, "success"), tally)
    refused_now = {k for k, row in rows.items() if "invalid" in row["email"]}
    for name, expect in expectations.items():
        assert expect.snapshot == {k: _values(r) for k, r in rows.items() if k not in refused_now}, name
        store = sink.store[name]
        assert {k: (r["email"], r["plan"], r["score"]) for k, r in store.items() if k in rows} == expect.snapshot
        assert set(store) - set(rows) == set(), f"{name}: deleted rows still at the destination"
        assert set(expect.rejections) == refused_now


def _two_phases(sp: SyncProject, sink: FaultSink, names, tally: dict) -> tuple[dict[str, Expectation], dict]:
    """Each scenario's fault on a first sync (all inserts), a clean rerun; then on a sync of deletes, updates and
    inserts, and a clean rerun."""
    expectations = {name: Expectation() for name in names}
    for phase in (0, 1):
        rows = _rows(phase)
        sp.build(rows, sp.syncs)
        for name in names:
            script = SCENARIOS[name][0]
            sink.script(name, script if phase == 0 else _rephase(script, name, sink))
        _run_and_check(sp, sink, expectations, rows, {name: SCENARIOS[name][1] for name in names}, tally)
        _converge(sp, sink, expectations, rows, tally)
    return expectations, rows


def _write_tally(sink: FaultSink, tally: dict, label: str) -> None:
    if os.environ.get("RELIABILITY_TALLY"):
        with open(os.environ["RELIABILITY_TALLY"], "a", encoding="utf-8") as fh:
            fh.writelines(f"{label} {k}: {v} requests={len(sink.log[k])} outcomes={_count(sink.outcomes(k))}\n"
                          for k, v in tally.items())


def test_every_fault_ends_with_state_equal_to_what_was_acknowledged(fp, sink):
    tally: dict[str, list[str]] = {}
    expectations, rows = _two_phases(fp, sink, SCENARIOS, tally)
    # more trials of random faults: full resyncs (every row again) of the mixed scenario, each a new fault draw
    mixed = {"mixed_random": expectations["mixed_random"]}
    for trial in range(MIXED_TRIALS):
        offset = sink.counts["mixed_random"]
        draw = _mixed(100 + trial)
        sink.script("mixed_random", lambda n, keys, draw=draw, offset=offset: draw(n - offset, keys))
        _run_and_check(fp, sink, mixed, rows, {"mixed_random": "either"}, tally, full_resync=True)
        _converge(fp, sink, mixed, rows, tally)
    # the Retry-After of a 429 is honoured: a batch is not sent again before it
    log = sink.log["storm_429_retry_after"]
    for i, entry in enumerate(log):
        if entry["outcome"] == "429":
            again = next(e for e in log[i + 1:] if e["keys"] == entry["keys"])
            assert again["at"] - entry["at"] >= 0.15 * 0.95
    # every fault kind was actually met
    met = {o for name in SCENARIOS for o in sink.outcomes(name)}
    assert {"timeout", "500", "503", "429", "reset_body", "reset_answer", "lost_ack", "401", "200"} <= met
    _write_tally(sink, tally, "duckdb")


# the commit of acknowledged ranges and rejections is warehouse SQL: the faults that leave partial state run on
# Snowflake (fakesnow) too
SNOWFLAKE_SCENARIOS = ("lost_ack", "retries_exhausted", "auth_revoked", "mixed_random")


def test_partial_acknowledgements_commit_exactly_on_snowflake(new_project, tmp_path_factory, sink):
    server = FaultSink(token=sink.token)
    try:
        sp = _project(new_project, tmp_path_factory, server, "snowflake", SNOWFLAKE_SCENARIOS)
        tally: dict[str, list[str]] = {}
        _two_phases(sp, server, SNOWFLAKE_SCENARIOS, tally)
        assert {"lost_ack", "503", "401"} <= {o for name in SNOWFLAKE_SCENARIOS for o in server.outcomes(name)}
        _write_tally(server, tally, "snowflake")
    finally:
        server.close()


def _count(outcomes: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in outcomes:
        out[o] = out.get(o, 0) + 1
    return out


def _rephase(script, name: str, sink: FaultSink):
    """The same script again, counted from this phase's first request."""
    if script is None:
        return None
    offset = sink.counts[name]
    fresh = SCENARIOS[name][0] if name != "mixed_random" else _mixed(8)
    return lambda n, keys: fresh(n - offset, keys)
