"""Delivering plan rows: batches within a destination's row and byte limits, sent concurrently within its rate
limit, transient errors retried with exponential backoff and Retry-After, per-record rejections collected.

Memory stays bounded: Arrow record batches are read from the warehouse as they are needed and at most
`2 × concurrency` request batches are in flight.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sync_runner.core.mapping import Template
from sync_runner.core.ratelimit import RateLimiter
from sync_runner.core.workers import Job, Workers
from sync_runner.sync.destinations.base import Batch, BatchResult, Destination, JsonRecords, Terminal, Transient
from sync_runner.sync.destinations.capture import capturing
from sync_runner.sync.destinations.values import dumps

if TYPE_CHECKING:  # Arrow is imported where a page is read as Arrow: a sync read as rows never loads it
    import pyarrow as pa


@dataclass
class Outcome:
    """What happened to one batch: acknowledged seqs, rejected (seq, reason), or failed after retries."""

    batch: Batch
    rejected: list[tuple[int, str]] = field(default_factory=list)
    failed: str | None = None

    @property
    def acked(self) -> list[int]:
        if self.failed:
            return []
        bad = {seq for seq, _ in self.rejected}
        return [s for s in self.batch.seqs if s not in bad]


def _record_size(record: dict[str, Any]) -> int:
    return len(dumps(record)) + 1


def _python_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """A column's values ready for JSON, converted in Arrow rather than value by value in Python: NaN and
    infinities become null, timestamps ISO 8601 text (with the offset when the column has a time zone)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_floating(kind):
        bad = pc.or_(pc.is_nan(column), pc.is_inf(column))
        column = pc.if_else(bad, pa.scalar(None, kind), column)
    elif pa.types.is_timestamp(kind):
        # a cast to text is ~40x faster than strftime; it writes a space where ISO 8601 has a T, and offsets
        # without the colon RFC 3339 parsers (Java, Go) insist on
        column = pc.utf8_replace_slice(pc.cast(column, pa.string()), start=10, stop=11, replacement="T")
        if kind.tz:
            column = pc.replace_substring_regex(column, pattern=r"([+-]\d\d)(\d\d)$", replacement=r"\1:\2")
    elif pa.types.is_date(kind):
        column = pc.cast(column, pa.string())
    return column.to_pylist()


def json_fields(kinds: Mapping[str, str | None], mappings: Mapping[str, str], key_columns: tuple[str, ...]
                ) -> list[list[Any]] | None:
    """The `fields` of sync_plan_records_sql (macros/sync/records.sql): each mapped field with its plan column and
    how the warehouse writes its values so that they read as `_python_values` gives them, from each plan column's
    kind (`kinds`: the column's name -> sync_json_kinds' answer for its type). None when a mapped column is of a
    type the warehouse does not write that way (decimals, lists, structs, time zones, other timestamp units...):
    the runner then converts the rows itself."""
    columns = {name.lower(): name for name in kinds}
    keys = {k.lower() for k in key_columns}
    out: list[list[Any]] = []
    for dest, source in mappings.items():
        column = columns.get(source.lower())
        if column is None or kinds[column] is None:
            return None
        out.append([dest, column, kinds[column], source.lower() in keys])
    return out


def plan_pages(read: Callable[[int, int], pa.Table | _Page], total: int, page_rows: int,
               first_rows: int = 0) -> Iterator[pa.RecordBatch | _Page]:
    """Plan rows 1..`total` read `page_rows` at a time (`read(first_seq, last_seq)`), each page fetched whole:
    memory stays bounded by the page size. The first `first_rows` (one request's worth) are read on their own, so
    the first request leaves once its own rows are read, not a whole page's (at a million rows, the first page's
    50,000 records written as JSON took about 80 ms before the first request). The rest of the first page is the
    second read, and pages stay aligned on `page_rows` after it: a plan written in parts (state.py: its first
    page, then the rest when a read goes past it) writes its rest while the first page's requests are out.
    A page read as Arrow comes as one record batch, one read as rows (records_page) as it is."""
    for first in range(1, total + 1, page_rows):
        last = first + page_rows - 1
        if first == 1 and 0 < first_rows < min(page_rows, total):
            yield from _whole(read(1, first_rows))
            first = first_rows + 1
        yield from _whole(read(first, last))


def _whole(page: pa.Table | _Page) -> list[pa.RecordBatch] | list[_Page]:
    """An Arrow page as one record batch: requests are cut within a batch, so a page the warehouse returned in
    chunks (DuckDB cuts at each thread's share, or at 122,880 rows) would send a short request at every seam. A
    page read as rows is one piece already; an empty page of either kind is none."""
    if isinstance(page, _Page):
        return [page] if page.ops else []
    return page.combine_chunks().to_batches() if page.num_rows else []


def records_page(names: list[str], values: list[tuple[Any, ...]]) -> _Page:
    """A page of sync_plan_records_sql read as rows: the same lists _Page.read_json takes from Arrow (each
    record as its UTF-8 bytes, and their sizes), with neither Arrow nor DuckDB's Arrow layer loaded (see the
    engine's `_deliver`)."""
    lower = {name.lower(): i for i, name in enumerate(names)}
    op, key, seq, text = (lower[name] for name in ("_op", "_key", "_seq", "_json_record"))
    texts = [row[text] for row in values]
    return _Page([row[op] for row in values], [str(row[key]) for row in values], [row[seq] for row in values],
                 JsonRecords(texts), None, [len(t) for t in texts])


def _runs(ops: list[str], max_rows: int) -> Iterator[tuple[int, int]]:
    """[start, end) slices of consecutive rows of one op, at most `max_rows` long (the plan is sorted by op)."""
    start = 0
    for _, group in itertools.groupby(ops):
        end = start + sum(1 for _ in group)
        for lo in range(start, end, max_rows):
            yield lo, min(end, lo + max_rows)
        start = end


def make_batches(batches: Iterable[pa.RecordBatch | _Page], mappings: dict[str, str], max_rows: int,
                 max_bytes: int | None, on_oversize: Callable[[int, str], None],
                 key_columns: tuple[str, ...] = (), with_table: bool = False,
                 templates: Mapping[str, Template] | None = None, json_records: bool = False) -> Iterator[Batch]:
    """Group plan rows into request batches of one op each, never over `max_rows` or `max_bytes`.

    Records carry the mapped fields. A delete carries the values the destination last acknowledged (so it
    can find the record by any identifier it knows, e.g. an email for an ad audience); a clear carries
    only the fields mapped from the primary key, the others null. A single record over `max_bytes` cannot
    be sent at all: it is reported to `on_oversize` (a per-record rejection) instead of failing the sync.
    Records are built a page at a time from whole columns, and without a byte limit batches are slices of
    the page (no per-row work beyond building each record); the typed Arrow table of a batch is only cut
    out for destinations that load tables (`with_table`). A batch never spans two pages.
    `templates` are fields rendered from the row's columns (core/mapping.py), after the mapped ones; a table
    destination gets them as JSON text. With `json_records` the pages are sync_plan_records_sql's: each row's
    record is already its JSON text (`_json_record`), and batches carry JsonRecords; such a page may come read
    as rows already (records_page), and is then only cut.
    """
    dests = list(mappings)
    sources = [src.lower() for src in mappings.values()]
    key_names = {k.lower() for k in key_columns}
    key_positions = [i for i, src in enumerate(sources) if src in key_names]

    def read(rb: pa.RecordBatch) -> _Page:
        if json_records:
            return _Page.read_json(rb)
        return _Page.read(rb, dests, sources, key_positions, with_table, templates or {})

    for rb in batches:
        if isinstance(rb, _Page):  # read as rows (records_page): converted already
            page = rb
        elif not max_bytes:  # each batch converted as it is cut: the first request leaves before the page is read
            ops = rb.column([name.lower() for name in rb.schema.names].index("_op")).to_pylist()
            for lo, hi in _runs(ops, max_rows):
                yield read(rb.slice(lo, hi - lo)).cut(slice(0, hi - lo))
            continue
        else:
            page = read(rb)
        if not max_bytes:
            for lo, hi in _runs(page.ops, max_rows):
                yield page.cut(slice(lo, hi))
            continue
        rows: list[int] = []
        size = 0
        for i, op in enumerate(page.ops):
            record_size = page.sizes[i] + 1 if page.sizes is not None else _record_size(page.records[i])
            if record_size > max_bytes:
                on_oversize(page.seqs[i], f"record of {record_size} bytes is over the destination's limit of "
                                          f"{max_bytes} bytes")
                continue
            if rows and (op != page.ops[rows[0]] or len(rows) >= max_rows or size + record_size > max_bytes):
                yield page.cut(rows)
                rows, size = [], 0
            rows.append(i)
            size += record_size
        if rows:
            yield page.cut(rows)


@dataclass
class _Page:
    """One page of plan rows as Python lists (and, for table destinations, typed Arrow; None for the others)."""

    ops: list[str]
    keys: list[str]
    seqs: list[int]
    records: list[dict[str, Any]] | JsonRecords
    typed: pa.Table | None
    sizes: list[int] | None = None  # each record's bytes of JSON, when the warehouse wrote it

    @classmethod
    def read_json(cls, rb: pa.RecordBatch) -> _Page:
        """A page of sync_plan_records_sql: the records are the warehouse's JSON texts."""
        import pyarrow as pa
        import pyarrow.compute as pc

        lower = {name.lower(): i for i, name in enumerate(rb.schema.names)}
        texts = rb.column(lower["_json_record"])
        return cls(rb.column(lower["_op"]).to_pylist(), pc.cast(rb.column(lower["_key"]), pa.string()).to_pylist(),
                   rb.column(lower["_seq"]).to_pylist(), JsonRecords(texts.to_pylist()), None,
                   pc.binary_length(texts).to_pylist())

    @classmethod
    def read(cls, rb: pa.RecordBatch, dests: list[str], sources: list[str], key_positions: list[int],
             with_table: bool, templates: Mapping[str, Template]) -> _Page:
        import pyarrow as pa
        import pyarrow.compute as pc

        lower = {name.lower(): i for i, name in enumerate(rb.schema.names)}
        typed = (pa.Table.from_batches([rb]).select([lower[s] for s in sources]).rename_columns(dests)
                 if with_table else None)
        ops = rb.column(lower["_op"]).to_pylist()
        values = [_python_values(rb.column(lower[s])) for s in sources]
        records = ([dict(zip(dests, row, strict=True)) for row in zip(*values, strict=True)] if values
                   else [{} for _ in ops])
        for dest, template in templates.items():
            read = {name: _python_values(rb.column(lower[name.lower()])) for name in template.columns}
            for i, record in enumerate(records):
                record[dest] = template.render({name: column[i] for name, column in read.items()})
            if typed is not None:
                typed = typed.append_column(dest, pa.array([None if r[dest] is None else dumps(r[dest]).decode()
                                                             for r in records], pa.string()))
        for i, op in enumerate(ops):
            if op == "clear":  # only the fields mapped from the primary key, the others null
                records[i] = dict.fromkeys([*dests, *templates])
                for k in key_positions:
                    records[i][dests[k]] = values[k][i]
        return cls(ops, pc.cast(rb.column(lower["_key"]), pa.string()).to_pylist(),
                   rb.column(lower["_seq"]).to_pylist(), records, typed)

    def cut(self, rows: list[int] | slice) -> Batch:
        """The batch of these rows (all of one op)."""
        if isinstance(rows, slice):
            return Batch(self.ops[rows.start], self.keys[rows], self.seqs[rows], self.records[rows],
                         None if self.typed is None else self.typed.slice(rows.start, rows.stop - rows.start))
        records = self.records
        return Batch(self.ops[rows[0]], [self.keys[i] for i in rows], [self.seqs[i] for i in rows],
                     JsonRecords([records.texts[i] for i in rows]) if isinstance(records, JsonRecords)
                     else [records[i] for i in rows],
                     None if self.typed is None else self.typed.take(rows))


# the record debugger's callback: (batch, attempt, HTTP exchanges, the result or None, the error or None)
Observer = Callable[[Batch, int, list[dict[str, str]], BatchResult | None, str | None], None]


def send_with_retries(destination: Destination, batch: Batch, limiter: RateLimiter, max_attempts: int,
                      base_delay: float, stop: threading.Event, observe: Observer | None = None) -> Outcome:
    attempt = 0
    while True:
        attempt += 1
        limiter.wait()
        empty: list[dict[str, str]] = []
        capture: AbstractContextManager[list[dict[str, str]]] = (capturing() if observe is not None
                                                                  else nullcontext(empty))
        try:
            with capture as exchanges:
                try:
                    result: BatchResult = destination.send(batch)
                except (Transient, Terminal) as exc:
                    if observe:
                        observe(batch, attempt, exchanges, None, str(exc))
                    raise
            if observe:
                observe(batch, attempt, exchanges, result, None)
        except Transient as exc:
            if attempt >= max_attempts or stop.is_set():
                return Outcome(batch, failed=f"{exc} (after {attempt} attempts)")
            delay = exc.retry_after if exc.retry_after is not None else base_delay * (2 ** (attempt - 1))
            delay = min(delay, 60.0) * (1.0 if exc.retry_after is not None else random.uniform(0.8, 1.2))
            stop.wait(delay)
            continue
        rejected = [(batch.seqs[i], reason) for i, reason in sorted(result.rejected.items()) if i < len(batch.seqs)]
        return Outcome(batch, rejected=rejected)


def deliver(destination: Destination, batches: Iterable[Batch], on_outcome: Callable[[Outcome], None],
            max_attempts: int = 6, base_delay: float = 0.5, observe: Observer | None = None) -> None:
    """Send every batch; call `on_outcome` (in this thread) as each finishes. A Terminal error propagates once the
    outcomes of the batches already on the wire were handed over too, so what they got acknowledged is committed."""
    _, _, concurrency, rate = destination.limits()
    limiter = RateLimiter(rate)
    stop = threading.Event()
    in_flight: set[Job] = set()

    def settle(jobs: list[Job], raising: bool = True) -> None:
        """Hand over the outcome of each of `jobs` (waiting for it); the first Terminal error stops the
        others from retrying and is raised once they all were handed over."""
        error: Terminal | None = None
        for job in jobs:
            in_flight.discard(job)
            if job.cancelled():
                continue
            try:
                outcome = job.result()
            except Terminal as exc:
                stop.set()
                for other in in_flight:
                    other.cancel()  # not started yet: never sent
                error = error or exc
                continue
            on_outcome(outcome)
        if error is not None and raising:
            settle(list(in_flight), raising=False)  # those already sending finish; another Terminal adds nothing
            raise error

    def wind_down() -> None:
        """Nothing more is sent: the batches not started are cancelled, and what those on the wire got
        acknowledged is handed over (the pool waits for them anyway), so that it is committed (a Terminal error
        of theirs adds nothing to the error on its way)."""
        stop.set()
        for job in in_flight:
            job.cancel()
        settle(list(in_flight), raising=False)

    def cut() -> Iterator[Batch]:
        """The batches; when making the next one fails (a page the warehouse refused, e.g. the second part of a
        plan written in two), delivery winds down before the error goes on. Errors of settle and on_outcome are
        not caught here: they were handled where they arose."""
        iterator = iter(batches)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception:
                wind_down()
                raise
            yield batch

    with Workers(concurrency, "dbt-studio-send") as pool:
        try:
            for batch in cut():
                settle([f for f in in_flight if f.done()])  # progress and commits as batches finish, not later
                while len(in_flight) >= 2 * max(1, concurrency):
                    settle(pool.wait_any(in_flight))
                in_flight.add(pool.submit(send_with_retries, destination, batch, limiter, max_attempts,
                                          base_delay, stop, observe))
            settle(list(in_flight))
        except KeyboardInterrupt:  # Ctrl-C (a second one stops at once)
            wind_down()
            raise
