"""Delivering plan rows: batches within a destination's row and byte limits, sent concurrently within its rate
limit, transient errors retried with exponential backoff and Retry-After, per-record rejections collected.

Memory stays bounded: Arrow record batches are read from the warehouse as they are needed and at most
`2 × concurrency` request batches are in flight.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .destinations.base import Batch, BatchResult, Destination, Terminal, Transient
from .destinations.values import clean, json_default


@dataclass
class Outcome:
    """What happened to one batch: acknowledged seqs, rejected (seq, reason), or failed after retries."""

    batch: Batch
    rejected: list[tuple[int, str]] = field(default_factory=list)
    failed: str | None = None
    attempts: int = 1

    @property
    def acked(self) -> list[int]:
        if self.failed:
            return []
        bad = {seq for seq, _ in self.rejected}
        return [s for s in self.batch.seqs if s not in bad]


class RateLimiter:
    """A token bucket shared by the worker threads."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if start > now:
            time.sleep(start - now)


def _record_size(record: dict[str, Any]) -> int:
    return len(json.dumps(record, default=json_default, ensure_ascii=False).encode("utf-8")) + 1


def make_batches(batches: Iterable[pa.RecordBatch], mappings: dict[str, str], max_rows: int,
                 max_bytes: int | None, on_oversize: Callable[[int, str], None],
                 key_columns: tuple[str, ...] = ()) -> Iterator[Batch]:
    """Group plan rows into request batches of one op each, never over `max_rows` or `max_bytes`.

    Records carry the mapped fields. A delete carries the values the destination last acknowledged (so it
    can find the record by any identifier it knows, e.g. an email for an ad audience); a clear carries
    only the fields mapped from the primary key, the others null. A single record over `max_bytes` cannot
    be sent at all: it is reported to `on_oversize` (a per-record rejection) instead of failing the sync.
    """
    fields = list(mappings.items())
    keys_lower = {k.lower() for k in key_columns}
    types: dict[str, pa.DataType] = {}
    pending: dict[str, Any] = {"op": None, "seqs": [], "keys": [], "records": [], "size": 0}

    def flush() -> Iterator[Batch]:
        if pending["seqs"]:
            records = pending["records"]
            table = pa.table({dest: pa.array([r.get(dest) for r in records], type=types[src.lower()])
                              for dest, src in fields})
            yield Batch(pending["op"], pending["keys"], pending["seqs"], records, table)
        pending.update({"seqs": [], "keys": [], "records": [], "size": 0})

    for rb in batches:
        lower = {name.lower(): i for i, name in enumerate(rb.schema.names)}
        types.update({src.lower(): rb.schema.field(lower[src.lower()]).type for _, src in fields})
        seqs, ops, keys = (rb.column(lower[c]).to_pylist() for c in ("_seq", "_op", "_key"))
        columns = {src.lower(): rb.column(lower[src.lower()]).to_pylist() for _, src in fields}
        for i, seq in enumerate(seqs):
            op = ops[i]
            record: dict[str, Any] = {dest: clean(columns[src.lower()][i]) for dest, src in fields}
            if op == "clear":
                record = {dest: (v if src.lower() in keys_lower else None)
                          for (dest, src), v in zip(fields, record.values(), strict=True)}
            size = _record_size(record) if max_bytes else 0
            if max_bytes and size > max_bytes:
                on_oversize(int(seq), f"record of {size} bytes is over the destination's limit of {max_bytes} bytes")
                continue
            full = len(pending["seqs"]) >= max_rows or (max_bytes and pending["size"] + size > max_bytes)
            if op != pending["op"] or full:
                yield from flush()
                pending["op"] = op
            pending["seqs"].append(int(seq))
            pending["keys"].append(str(keys[i]))
            pending["records"].append(record)
            pending["size"] += size
    yield from flush()


def send_with_retries(destination: Destination, batch: Batch, limiter: RateLimiter, max_attempts: int,
                      base_delay: float, stop: threading.Event) -> Outcome:
    attempt = 0
    while True:
        attempt += 1
        limiter.wait()
        try:
            result: BatchResult = destination.send(batch)
        except Transient as exc:
            if attempt >= max_attempts or stop.is_set():
                return Outcome(batch, failed=f"{exc} (after {attempt} attempts)", attempts=attempt)
            delay = exc.retry_after if exc.retry_after is not None else base_delay * (2 ** (attempt - 1))
            delay = min(delay, 60.0) * (1.0 if exc.retry_after is not None else random.uniform(0.8, 1.2))
            stop.wait(delay)
            continue
        rejected = [(batch.seqs[i], reason) for i, reason in sorted(result.rejected.items()) if i < len(batch.seqs)]
        return Outcome(batch, rejected=rejected, attempts=attempt)


def deliver(destination: Destination, batches: Iterable[Batch], on_outcome: Callable[[Outcome], None],
            max_attempts: int = 6, base_delay: float = 0.5) -> None:
    """Send every batch; call `on_outcome` (in this thread) as each finishes. Terminal errors propagate."""
    _, _, concurrency, rate = destination.limits()
    limiter = RateLimiter(rate)
    stop = threading.Event()
    in_flight: set[Future] = set()
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="dbt-studio-send") as pool:
        try:
            for batch in batches:
                while len(in_flight) >= 2 * max(1, concurrency):
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        on_outcome(future.result())
                in_flight.add(pool.submit(send_with_retries, destination, batch, limiter, max_attempts,
                                          base_delay, stop))
            for future in list(in_flight):
                on_outcome(future.result())
                in_flight.discard(future)
        except (Terminal, KeyboardInterrupt):
            stop.set()
            for future in in_flight:
                future.cancel()
            raise
