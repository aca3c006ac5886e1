"""Delivery's value conversion and batching, against plain-Python references."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import pyarrow as pa
import pytest

from sync_runner.core.mapping import Template
from sync_runner.sync.delivery import _python_values, deliver, make_batches, plan_pages, records_page
from sync_runner.sync.destinations.base import Batch, BatchResult, Destination, JsonRecords
from sync_runner.sync.destinations.values import dumps_records


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


def _value(i: int) -> str:
    """Row i's value: some of them not ASCII (a record's size is its bytes in UTF-8)."""
    return ("é" if i % 5 == 0 else "x") * (i % 7)


def _plan(ops: list[str], as_json: bool = False) -> pa.RecordBatch:
    """Plan rows with one column `v`; `as_json`: as sync_plan_records_sql pages them, each record as its JSON
    text's UTF-8 bytes."""
    n = len(ops)
    values = [_value(i) for i in range(n)]
    last = {"_json_record": [f'{{"value":"{v}"}}'.encode() for v in values]} if as_json else {"v": values}
    return pa.record_batch({"_seq": list(range(1, n + 1)), "_op": ops, "_key": [f"k{i}" for i in range(n)], **last})


@pytest.mark.parametrize("read", ["converted", "written_as_json", "written_as_json_read_as_rows"])
def test_batches_are_runs_of_one_op_within_row_and_byte_limits(read):
    """The same batches whichever way the page was read: converted by the runner, written as JSON by the warehouse
    and read as Arrow, or read as rows (records_page, a plan of one page)."""
    rng = random.Random(3)
    ops = sorted(rng.choice(["insert", "update", "delete"]) for _ in range(500))
    as_json = read != "converted"
    for max_rows, max_bytes in ((7, None), (50, None), (1000, None), (10, 60), (100, 200), (20, 16)):
        oversize: list[int] = []
        page = _plan(ops, as_json)
        pages = [records_page(page.schema.names, list(zip(*page.to_pydict().values(), strict=True)))] \
            if read == "written_as_json_read_as_rows" else [page]
        batches = list(make_batches(pages, {"value": "v"}, max_rows, max_bytes,
                                    lambda seq, _reason, out=oversize: out.append(seq), json_records=as_json))
        seen = [s for b in batches for s in b.seqs]
        assert sorted(seen + oversize) == list(range(1, 501)) and len(seen) == len(set(seen))
        for b in batches:
            assert len(b.seqs) <= max_rows and {ops[s - 1] for s in b.seqs} == {b.op}
            assert isinstance(b.records, JsonRecords) == as_json
            assert list(b.records) == [{"value": _value(s - 1)} for s in b.seqs]
            assert json.loads(dumps_records(b.records)) == list(b.records)
            assert b.keys == [f"k{s - 1}" for s in b.seqs]
            if max_bytes:
                assert sum(len(f'{{"value":"{r["value"]}"}}'.encode()) + 1 for r in b.records) <= max_bytes
        # a reference cut: consecutive rows of one op, a new batch when the op changes or a limit is reached
        expected, size = [[]], 0
        for i, op in enumerate(ops):
            record = len(f'{{"value":"{_value(i)}"}}'.encode()) + 1
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


def test_each_batch_is_converted_as_it_is_cut():
    """Without a byte limit a batch's rows become records when it is cut, not the whole page first: the first
    request can leave before the rest of a 50,000-row page is read. A template that fails on row 1,501 shows it:
    the first batch comes out, the failure only when the batch holding that row is cut."""
    n = 3000
    page = pa.record_batch({"_seq": list(range(1, n + 1)), "_op": ["insert"] * n,
                            "_key": [f"k{i}" for i in range(n)],
                            "v": [None if i == 1500 else f"v{i}" for i in range(n)]})
    batches = make_batches([page], {"value": "v"}, 1000, None, lambda *_: None,
                           templates={"shout": Template("{{ v.upper() }}")})
    first = next(batches)
    assert first.seqs == list(range(1, 1001))
    assert first.records[:2] == [{"value": "v0", "shout": "V0"}, {"value": "v1", "shout": "V1"}]
    with pytest.raises(jinja2.UndefinedError):
        next(batches)


class _Ledger(Destination):
    """A destination of this test's own: it only notes what it was sent (concurrency 4)."""

    type = "ledger"

    def open(self) -> None:
        self.sent: list[list[int]] = []

    def limits(self) -> tuple[int, int | None, int, float | None]:
        return 10, None, 4, None

    def send(self, batch: Batch) -> BatchResult:
        self.sent.append(batch.seqs)
        return BatchResult()


def test_outcomes_are_handed_over_as_batches_finish_not_when_the_window_fills():
    """Progress and commit windows follow the destination: a batch's outcome reaches the caller at the next batch
    after it finished, though fewer than 2 × concurrency (8) batches are in flight."""
    ledger = _Ledger("ledger", {}, "s", "run", Path("."))
    ledger.open()
    seen: list[list[int]] = []
    at_sixth: list[list[list[int]]] = []

    def batches():
        for i in range(6):
            if i == 5:
                at_sixth.append(list(seen))
            yield Batch("insert", [f"k{i}"], [i + 1], [{"i": i}], pa.table({}))
            deadline = time.monotonic() + 5
            while len(ledger.sent) <= i and time.monotonic() < deadline:  # this batch reached the destination
                time.sleep(0.01)
            time.sleep(0.05)

    deliver(ledger, batches(), lambda outcome: seen.append(outcome.batch.seqs))
    assert at_sixth and at_sixth[0][:1] == [[1]]  # handed over while the batches were still being cut
    assert sorted(seen) == [[1], [2], [3], [4], [5], [6]]


class _SlowLedger(_Ledger):
    """Acknowledges each batch a moment after it arrives: batches are still on the wire when the next is cut."""

    def send(self, batch: Batch) -> BatchResult:
        time.sleep(0.2)
        return super().send(batch)


@pytest.mark.parametrize("stop", [RuntimeError("Conversion Error: could not convert string 'forty' to INT32"),
                                  KeyboardInterrupt()], ids=["a_page_refused", "ctrl_c"])
def test_when_the_batches_stop_nothing_more_is_sent_and_what_was_acknowledged_is_handed_over(stop):
    """When cutting the next batch fails (the warehouse refuses a page: the second part of a plan written in two)
    or Ctrl-C comes, the error goes on, but only after the outcomes of the batches already sent were handed over
    (so the caller commits what the destination acknowledged, and an insert-only destination does not get those
    rows twice from the next run), and nothing is sent after it."""
    ledger = _SlowLedger("ledger", {}, "s", "run", Path("."))
    ledger.open()
    seen: list[list[int]] = []

    def batches():
        for i in range(3):
            yield Batch("insert", [f"k{i}"], [i + 1], [{"i": i}], pa.table({}))
        raise stop

    with pytest.raises(type(stop)):
        deliver(ledger, batches(), lambda outcome: seen.append(outcome.batch.seqs))
    assert sorted(ledger.sent) == [[1], [2], [3]]  # all three reached the destination, nothing after them
    assert sorted(seen) == sorted(ledger.sent)  # and each acknowledgement was handed over before the error


def test_plan_pages_read_the_plan_a_page_at_a_time_and_the_first_request_s_rows_on_their_own():
    """Every plan row once, in order, a page of `page_rows` per read, but the first `first_rows` are read alone,
    then the rest of the first page: later pages stay aligned, so a plan's second part is written when the third
    read asks past the first page (a plan of no more rows than `first_rows` is read whole). A page the warehouse
    returns in chunks is one record batch: requests are cut within one, never at a chunk's seam."""
    reads: list[tuple[int, int]] = []
    plan = {"rows": 0}

    def read(first: int, last: int) -> pa.Table:
        reads.append((first, last))
        seqs = list(range(first, min(last, plan["rows"]) + 1))
        half = len(seqs) // 2  # in two chunks, as DuckDB returns a page sorted by two threads
        schema = pa.schema([("_seq", pa.int64()), ("_op", pa.string())])
        return pa.Table.from_batches([pa.record_batch([part, ["insert"] * len(part)], schema=schema)
                                      for part in (seqs[:half], seqs[half:])])

    whole = [(1, 1000), (1001, 2000), (2001, 3000)]
    for total, first_rows, expected in ((2500, 0, whole), (2500, 1000, whole), (2500, 3000, whole),
                                        (2500, 300, [(1, 300), (301, 1000), (1001, 2000), (2001, 3000)]),
                                        (300, 300, [(1, 1000)]), (200, 300, [(1, 1000)]),
                                        (301, 300, [(1, 300), (301, 1000)])):
        reads.clear()
        plan["rows"] = total
        pages = list(plan_pages(read, total, 1000, first_rows))
        assert reads == expected, (total, first_rows)
        assert len(pages) == len(expected)  # each read one record batch, whatever its chunks
        assert [s for p in pages for s in p.column("_seq").to_pylist()] == list(range(1, total + 1))


def test_plan_pages_read_as_rows_come_as_they_were_read_and_an_empty_one_not_at_all():
    """A page read as rows (records_page, a plan of one page of JSON records) is one piece already, cut by the
    same ranges as an Arrow page; a read that finds fewer rows than asked gives those, and one that finds none
    gives nothing to cut."""
    names = ["_seq", "_op", "_key", "_json_record"]

    def read(first: int, last: int):
        seqs = range(first, min(last, 1500) + 1)  # 1,600 rows were planned, 1,500 are there
        return records_page(names, [(s, "insert", f"k{s}", f'{{"n":{s}}}'.encode()) for s in seqs])

    pages = list(plan_pages(read, 1600, 1000, 1000))
    assert [p.seqs[0] for p in pages] == [1, 1001]
    assert [s for p in pages for s in p.seqs] == list(range(1, 1501))
    assert list(plan_pages(lambda _first, _last: records_page(names, []), 10, 1000)) == []
