"""Delivery's value conversion and batching, against plain-Python references."""

from __future__ import annotations

import datetime as dt
import math
import random
from zoneinfo import ZoneInfo

import pyarrow as pa

from sync_runner.sync.delivery import _python_values, make_batches


def test_timestamps_become_rfc3339_text_like_python_isoformat():
    instants = [dt.datetime(2024, 3, 1, 10, 34, 56, 789000, tzinfo=dt.timezone.utc),
                dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc), None]
    for zone in ("UTC", "America/New_York", "Asia/Kolkata", "+02:00"):
        column = pa.array(instants, pa.timestamp("us", tz=zone))
        tz = dt.timezone(dt.timedelta(hours=2)) if zone == "+02:00" else ZoneInfo(zone)
        expected = [None if t is None else t.astimezone(tz).isoformat(timespec="microseconds").replace("+00:00", "Z")
                    for t in instants]
        assert _python_values(column) == expected, zone
    naive = pa.array([dt.datetime(2024, 2, 29, 8, 0, 1, 500)], pa.timestamp("us"))
    assert _python_values(naive) == ["2024-02-29T08:00:01.000500"]
    assert _python_values(pa.array([dt.date(2024, 2, 29), None])) == ["2024-02-29", None]
    assert _python_values(pa.array([1.5, math.nan, math.inf, None])) == [1.5, None, None, None]


def _plan(ops: list[str]) -> pa.RecordBatch:
    n = len(ops)
    return pa.record_batch({"_seq": list(range(1, n + 1)), "_op": ops, "_key": [f"k{i}" for i in range(n)],
                            "v": [("x" * (i % 7)) for i in range(n)]})


def test_batches_are_runs_of_one_op_within_row_and_byte_limits():
    rng = random.Random(3)
    ops = sorted(rng.choice(["insert", "update", "delete"]) for _ in range(500))
    for max_rows, max_bytes in ((7, None), (50, None), (1000, None), (10, 60), (100, 200), (20, 16)):
        oversize: list[int] = []
        batches = list(make_batches([_plan(ops)], {"value": "v"}, max_rows, max_bytes,
                                    lambda seq, _reason, out=oversize: out.append(seq)))
        seen = [s for b in batches for s in b.seqs]
        assert sorted(seen + oversize) == list(range(1, 501)) and len(seen) == len(set(seen))
        for b in batches:
            assert len(b.seqs) <= max_rows and {ops[s - 1] for s in b.seqs} == {b.op}
            assert b.records == [{"value": "x" * ((s - 1) % 7)} for s in b.seqs]
            assert b.keys == [f"k{s - 1}" for s in b.seqs]
            if max_bytes:
                assert sum(len(f'{{"value":"{r["value"]}"}}') + 1 for r in b.records) <= max_bytes
        # a reference cut: consecutive rows of one op, a new batch when the op changes or a limit is reached
        expected, size = [[]], 0
        for i, op in enumerate(ops):
            record = len(f'{{"value":"{"x" * (i % 7)}"}}') + 1
            if max_bytes and record > max_bytes:  # never sent: rejected as over the limit
                assert i + 1 in oversize
                continue
            if expected[-1] and (op != ops[expected[-1][0] - 1] or len(expected[-1]) >= max_rows
                                 or (max_bytes and size + record > max_bytes)):
                expected.append([])
                size = 0
            expected[-1].append(i + 1)
            size += record
        assert [b.seqs for b in batches] == expected
