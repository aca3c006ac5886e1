"""The studio's warehouse side: one connection for the app's life, every query from a package macro.

Why one worker thread: dbt adapters keep their connection per thread, and DuckDB connections are not safe to use
from two threads at once. The worker opens the warehouse once, keeps a session open, and runs what the web
handlers submit, one at a time. A handler waits for its result up to a timeout; a newer request with the same
`key` (the builder's funnel after another click) cancels an older one that has not started and interrupts one that
is running (DuckDB), so a stale query never delays the fresh one.

Results are cached by the compiled SQL: the same question asked twice runs once, until the next build (a newer
manifest.json / run_results.json) clears the cache.

Why the worker lets go of a DuckDB file when idle: DuckDB lets one process at a time open its file, and a studio
left open in a browser tab would otherwise hold it for days, so the engineer's `dbt build` in a terminal, a
`dbt-studio serve` schedule or `dbt-studio status` would fail with a lock error. After `release_after` seconds
without a question the worker closes the database; the next question opens it again (tens of milliseconds) in a
new session, so the condition sets kept in the old one are evaluated again when next needed.
"""

from __future__ import annotations

import gc
import json
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_runner.core.errors import UserError
from sync_runner.core.redact import REDACT
from sync_runner.project.target import DbtTarget, connection_closed, release_dbt_duckdb

# How many times a question runs when its connection is closed under it (see Worker._reconnect): more than once,
# since another warehouse of the process may open its own DuckDB file again while the question runs the second time
_ATTEMPTS = 3


class QueryTimeout(UserError):
    """A warehouse query ran longer than the studio's per-query timeout."""


class Cancelled(UserError):
    """A newer request with the same key replaced this one."""


@dataclass(frozen=True)
class Table:
    """Rows of one query, JSON-friendly (values as Python scalars)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


@dataclass
class _Task:
    key: str | None
    fn: Callable[[Any], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False
    started: bool = False


def _clean(value: Any) -> Any:
    """A warehouse value as something JSON and templates can show (Decimal, dates, bytes)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    try:
        number = float(value)
        return int(number) if number.is_integer() and "." not in str(value) else number
    except (TypeError, ValueError):
        return str(value)


class Worker:
    """One thread that owns the warehouse connection (see the module docstring)."""

    def __init__(self, where: DbtTarget, manifest_path: Path | None = None,
                 release_after: float | None = None) -> None:
        """`release_after`: seconds without a question after which a DuckDB file is let go (None: kept open)."""
        self.where = where
        self.manifest_path = manifest_path
        self.release_after = release_after
        self.idle_releases = 0  # how many times the file was let go for being idle
        self.failures: deque[str] = deque(maxlen=10)  # the last questions that failed, with their tracebacks
        self._queue: queue.Queue[_Task | None] = queue.Queue()
        self._keys: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._running: _Task | None = None
        self._cursor: Any = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.adapter_type = ""
        self._session: Any = None
        self.warehouse: Any = None  # opened by the thread; None while it cannot be opened again after a job
        self.epoch = 0  # counts the sessions opened: what a session kept (temporary tables) ends with it
        self._thread = threading.Thread(target=self._loop, name="studio-warehouse", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    # -- the thread ---------------------------------------------------------------------------------------------

    def _open(self) -> Any:
        from sync_runner.project.warehouse import Warehouse

        return Warehouse(self.where, self.manifest_path)

    def _loop(self) -> None:
        try:
            self.warehouse = self._open()
            self.adapter_type = self.warehouse.adapter_type
        except BaseException as exc:  # reported to the constructor's caller
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            task = self._next()
            if task is None:
                self._let_go()
                return
            if task.fn is _RELEASE:
                self._released(task)
                continue
            try:
                self._ensure_session()
            except Exception as exc:  # the warehouse cannot be opened now (a profile edited meanwhile, a held file):
                self._failed(exc, "opening a session")
                self._finish(task, exc)  # this question says why; the thread lives on for the next one
                continue
            self._run(task)

    def _next(self) -> _Task | None:
        """The next task; while a DuckDB session is open, waiting at most `release_after` seconds for it before
        letting go of the file (and then waiting as long as it takes)."""
        if self.release_after is None or self.adapter_type != "duckdb" or self._session is None:
            return self._queue.get()
        try:
            return self._queue.get(timeout=self.release_after)
        except queue.Empty:
            self.idle_releases += 1  # counted first: whoever sees the file free sees the count that freed it
            self._let_go()
            return self._queue.get()

    def _let_go(self) -> None:
        """End the session and close this warehouse's connections and, when dbt-duckdb still holds it, its
        database, so another process can open the file. A connection already gone (an adapter's error handler
        closed it) has nothing left to let go of: an error closing it must not end the thread, which every later
        question waits on."""
        with suppress(Exception):
            self._end_session()
        credentials = None
        if self.warehouse is not None:
            credentials = self.warehouse.adapter.config.credentials
            with suppress(Exception):
                self.warehouse.close()
        if self.adapter_type == "duckdb":  # dbt-duckdb keeps the database open between connections: ours, if
            with suppress(Exception):  # no other warehouse of the process has opened its own since
                release_dbt_duckdb(credentials)
        self._cursor = None
        gc.collect()  # DuckDB closes its file when the last object that holds the database is gone

    def _ensure_session(self) -> None:
        """A session on this thread: the first one, or a new one when something let go of the connection (an
        adapter's error handler, another adapter registered in this process)."""
        if self._session is not None and self._connected():
            return
        with suppress(Exception):  # ending a session whose connection is gone may fail (a rollback on it): it is
            self._end_session()  # replaced all the same
        if self.warehouse is None:  # reopening after a job failed: once more, for this question
            self.warehouse = self._open()
        self._session = self.warehouse.session()
        self._session.__enter__()
        self.epoch += 1

    def _reconnect(self) -> None:
        """A new session on a new connection, after the old one was closed under the worker. dbt-duckdb keeps one
        database per process: whatever closes it (another warehouse of the process opening its own file, a `serve`
        job letting go of this one) closes this thread's connection too, which dbt still holds as open, so every
        question failed with "Connection already closed!" until the studio went idle. Its own database is let go
        of too (when it is still dbt-duckdb's): the next connection opens a new one, rather than a cursor of one
        that may be closed under dbt-duckdb itself."""
        self._let_go()
        self._ensure_session()

    def _end_session(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.__exit__(None, None, None)

    def recover(self) -> None:
        """After a statement failed (or was interrupted): roll back the transaction it aborted (DuckDB refuses every
        later statement of an aborted transaction, so one bad value typed in the builder broke every question
        after it) and start a new epoch, since what that transaction kept (temporary tables) is gone with it."""
        with suppress(Exception):  # nothing open to roll back: nothing to recover
            self.warehouse.adapter.connections.rollback_if_open()
        self.epoch += 1

    def _connected(self) -> bool:
        if self.warehouse is None:
            return False
        try:
            self.warehouse.adapter.connections.get_thread_connection()
        except Exception:
            return False
        return True

    def _run(self, task: _Task) -> None:
        with self._lock:
            if task.cancelled:
                task.error = Cancelled("replaced by a newer request")
                task.done.set()
                return
            task.started = True
            self._running = task
        try:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    task.result = task.fn(self)
                    break
                except Exception as exc:
                    self._failed(exc, f"attempt {attempt} of {_ATTEMPTS}")
                    closed = connection_closed(exc) or not self._connected()
                    if task.cancelled or not closed or attempt == _ATTEMPTS:
                        self.recover()
                        raise
                    self._reconnect()  # the connection went away under the task: again, on a new one
        except BaseException as exc:
            task.error = exc
        finally:
            self._finish(task, task.error)

    def _failed(self, exc: BaseException, when: str) -> None:
        """Keep the last failures with their tracebacks (redacted): a page shows one line, and whoever finds a
        question failing (a test's report, a debugger) needs where it failed."""
        trace = "".join(traceback.format_exception(exc))
        self.failures.append(REDACT(f"{time.strftime('%H:%M:%S')} {when}: {trace}"))

    def _finish(self, task: _Task, error: BaseException | None) -> None:
        """Hand `task` its outcome and forget it."""
        task.error = Cancelled("replaced by a newer request") if error is not None and task.cancelled else error
        with self._lock:
            self._running = None
            self._cursor = None
            if task.key is not None and self._keys.get(task.key) is task:
                del self._keys[task.key]
        task.done.set()

    def _released(self, task: _Task) -> None:
        """Close every connection (a dbt build in another process needs DuckDB's file), wait, then reopen. A
        warehouse that cannot be opened again (its profile edited meanwhile) is opened by the next question, which
        says why if it still cannot."""
        try:
            self._let_go()
        finally:
            task.done.set()
        task.result.wait()  # the event the releasing job sets when it is done
        try:
            self.warehouse = self._open()
        except Exception:
            self.warehouse = None

    # -- the callers' side --------------------------------------------------------------------------------------

    def submit(self, fn: Callable[[Worker], Any], key: str | None = None, timeout: float = 30.0) -> Any:
        task = _Task(key, fn)
        with self._lock:
            if key is not None:
                older = self._keys.get(key)
                if older is not None:
                    older.cancelled = True
                    if self._running is older:
                        self._interrupt()
                self._keys[key] = task
        self._queue.put(task)
        if not task.done.wait(timeout):
            with self._lock:
                task.cancelled = True
                if self._running is task:
                    self._interrupt()
            task.done.wait(10)
            raise QueryTimeout(f"the warehouse query took longer than {timeout:g}s (stopped)")
        if task.error is not None:
            raise task.error
        return task.result

    def _interrupt(self) -> None:
        """Stop the running statement where the driver can (DuckDB's interrupt); elsewhere it runs to its end
        and its result is dropped."""
        cursor = self._cursor
        for target in (cursor, getattr(cursor, "_cursor", None), getattr(cursor, "cursor", None)):
            stop = getattr(target, "interrupt", None)
            if callable(stop):
                stop()
                return

    @contextmanager
    def released(self) -> Iterator[None]:
        """Hold no connection while the block runs (a `dbt build` / `dbt-studio sync` subprocess)."""
        finished = threading.Event()
        task = _Task(None, _RELEASE, result=finished)
        self._queue.put(task)
        while not task.done.wait(1.0):
            if not self._thread.is_alive():  # never wait forever on a thread that is gone
                raise RuntimeError("the studio's warehouse thread has stopped")
        try:
            yield
        finally:
            finished.set()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)

    # -- used inside the thread ---------------------------------------------------------------------------------

    def call(self, macro: str, **kwargs: Any) -> Any:
        return self.warehouse.call(macro, **kwargs)

    def fetch(self, sql: str) -> Table:
        handle = self.warehouse.adapter.connections.get_thread_connection().handle
        cursor = handle.cursor()
        with self._lock:
            self._cursor = cursor
        # the cursor is not closed: dbt-duckdb hands out the connection's one cursor (closing it closes the
        # connection); Snowflake's cursors are let go with their results
        cursor.execute(sql)
        rows = cursor.fetchall()
        names = tuple(str(d[0]).lower() for d in cursor.description)
        return Table(names, tuple(tuple(_clean(v) for v in r) for r in rows))


    def execute(self, sql: str) -> None:
        """A statement that returns no rows (a condition set kept, or dropped)."""
        handle = self.warehouse.adapter.connections.get_thread_connection().handle
        cursor = handle.cursor()
        with self._lock:
            self._cursor = cursor
        cursor.execute(sql)


def _RELEASE(_: Worker) -> None:  # noqa: N802 - a marker, never called
    """Marks the task that releases the connection."""


class Queries:
    """The studio's questions to the warehouse, each a package macro compiled then run (and cached)."""

    def __init__(self, where: DbtTarget, nodes: Callable[[], dict[str, dict[str, Any]]],
                 generation: Callable[[], Any], timeout: float = 30.0, release_after: float | None = None,
                 disabled: Callable[[], dict[str, str]] = dict) -> None:
        """`disabled`: the project's disabled models by name, with what messages say of each (Catalog)."""
        self.worker = Worker(where, where.project_dir / "target" / "manifest.json", release_after)
        self.nodes = nodes
        self.disabled = disabled
        self.generation = generation
        self.timeout = timeout
        self._cache: dict[str, Table] = {}
        self._cache_generation: Any = None
        self._compiled_nodes: dict[str, dict[str, Any]] | None = None
        self._nodes_generation: Any = None
        # condition sets kept in the session: compiled SQL -> temporary table, oldest first (condition_sets.sql)
        self._sets: dict[str, str] = {}
        self._sets_key: tuple[Any, int] | None = None
        self.max_sets = 48
        self.stats = {"queries": 0, "cache_hits": 0, "sets_kept": 0, "sets_reused": 0, "sets_lost": 0}

    @property
    def adapter_type(self) -> str:
        return self.worker.adapter_type

    def _cached(self, sql: str) -> Table | None:
        generation = self.generation()
        if generation != self._cache_generation:
            self._cache.clear()
            self._cache_generation = generation
        return self._cache.get(sql)

    def clear_cache(self) -> None:
        """Forget every cached answer and drop the kept condition sets (the benchmark times cold questions)."""
        self._cache.clear()
        self.worker.submit(self._drop_sets, timeout=self.timeout)

    def kept_sets(self) -> list[str]:
        """The temporary tables of the kept condition sets, least recently used first."""
        return list(self._sets.values())

    def _drop_sets(self, worker: Worker) -> None:
        if self._sets_key is not None and self._sets_key[1] == worker.epoch:  # else they ended with their session
            for name in self._sets.values():
                worker.execute(worker.call("studio_drop_sql", name=name))
        self._sets.clear()

    def _condition_sets(self, worker: Worker, spec: dict[str, Any]) -> list[str]:
        """The kept set of each top-level condition of `spec`, evaluating only those not kept yet: after an edit,
        the one that changed. Sets are named after their SQL, dropped at the next build (or when the session they
        live in ends) and, past `max_sets`, oldest first."""
        from hashlib import sha1

        key = (self.generation(), worker.epoch)
        if key != self._sets_key:
            self._drop_sets(worker)
            self._sets_key = key
        names = []
        for sql in worker.call("studio_condition_sets_sql", nodes=self._nodes_with_columns(worker), spec=spec,
                               disabled=self.disabled()):
            name = self._sets.pop(sql, None)  # popped and put back: the dict's order is the order of use
            if name is None:
                name = f"dbt_studio_set_{sha1(sql.encode('utf-8')).hexdigest()[:16]}"
                worker.execute(worker.call("studio_keep_sql", name=name, sql=sql))
                self.stats["sets_kept"] += 1
            else:
                self.stats["sets_reused"] += 1
            self._sets[sql] = name
            names.append(name)
        while len(self._sets) > self.max_sets:
            oldest = next(iter(self._sets))
            if self._sets[oldest] in names:
                break
            worker.execute(worker.call("studio_drop_sql", name=self._sets.pop(oldest)))
        return names

    def compiled(self) -> list[str]:
        """The SQL of every cached question (tests lint it as Snowflake SQL)."""
        return list(self._cache)

    def _nodes_with_columns(self, worker: Worker) -> dict[str, dict[str, Any]]:
        """The manifest's nodes, each with the columns its relation has (`actual`), read once per build by the
        package (studio_model_columns): a compile then runs no metadata query of its own."""
        generation = self.generation()
        if self._compiled_nodes is None or generation != self._nodes_generation:
            nodes = self.nodes()
            columns = worker.call("studio_model_columns", nodes=nodes, disabled=self.disabled()) or {}
            self._compiled_nodes = {name: {**node, "actual": list(columns.get(name) or [])}
                                    for name, node in nodes.items()}
            self._nodes_generation = generation
        return self._compiled_nodes

    def ask(self, macro: str, key: str | None = None, **kwargs: Any) -> Table:
        """Compile `macro` (it returns SQL) and run it; cached by the SQL. A question about a draft (`spec`)
        reads the kept sets of its conditions."""

        def job(worker: Worker) -> tuple[str, Table | None]:
            try:
                return answer(worker)
            except Exception as exc:
                if macro not in _READS_SETS or not self._names_a_kept_set(exc):
                    raise
                # a kept set is gone though its session looked alive: evaluate every set again, once
                self.stats["sets_lost"] += 1
                worker.recover()
                return answer(worker)

        def answer(worker: Worker) -> tuple[str, Table | None]:
            if macro in _READS_SETS:
                kwargs["sets"] = self._condition_sets(worker, kwargs["spec"])
            if "nodes" in _NEEDS_NODES.get(macro, ()):
                sql = worker.call(macro, nodes=self._nodes_with_columns(worker), disabled=self.disabled(), **kwargs)
            else:
                sql = worker.call(macro, **kwargs)
            if sql is None:
                return "", None
            hit = self._cached(sql)
            if hit is not None:
                self.stats["cache_hits"] += 1
                return sql, hit
            self.stats["queries"] += 1
            table = worker.fetch(sql)
            self._cache[sql] = table
            return sql, table

        _, table = self.worker.submit(job, key=key, timeout=self.timeout)
        return table if table is not None else Table((), ())

    def _names_a_kept_set(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return any(name.lower() in text for name in self._sets.values())

    def call(self, macro: str, **kwargs: Any) -> Any:
        """A macro that runs its own query (the sync run log's readers)."""
        return self.worker.submit(lambda w: w.call(macro, **kwargs), timeout=self.timeout)

    def adapter_call(self, fn: Callable[[Any], Any]) -> Any:
        """Something of the adapter itself (columns of a relation) on the worker's connection."""
        return self.worker.submit(lambda w: fn(w.warehouse), timeout=self.timeout)

    def close(self) -> None:
        self.worker.close()

    # -- the questions ------------------------------------------------------------------------------------------

    def funnel(self, spec: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """{'total', 'steps': [size after condition 1, after 1 and 2, ...], 'splits': {group: members}}."""
        table = self.ask("studio_funnel_sql", key=key, spec=spec)
        row = dict(zip(table.columns, table.rows[0], strict=True))
        steps = []
        i = 1
        while f"n{i}" in row:
            steps.append(int(row[f"n{i}"] or 0))
            i += 1
        groups = list((spec.get("splits") or {}).get("groups") or {})
        splits = {g: int(row[f"s{j}"] or 0) for j, g in enumerate(groups, 1)}
        total = int(row["n0"] or 0)
        return {"total": total, "steps": steps, "size": steps[-1] if steps else total, "splits": splits}

    def members(self, spec: dict[str, Any], limit: int = 10, key: str | None = None) -> Table:
        return self.ask("studio_members_sql", key=key, spec=spec, limit=limit)

    def overlap(self, parent: str, trees: list[Any], as_of: Any = None, key: str | None = None) -> dict[str, Any]:
        """{'total', 'matrix': n x n (matrix[i][j] = rows in both i and j; the diagonal: sizes)}."""
        table = self.ask("studio_overlap_sql", key=key, parent=parent, trees=trees, as_of=as_of)
        row = dict(zip(table.columns, table.rows[0], strict=True))
        n = len(trees)
        matrix = [[0] * n for _ in range(n)]
        for i in range(n):
            for j in range(i, n):
                matrix[i][j] = matrix[j][i] = int(row[f"o{i + 1}_{j + 1}"] or 0)
        return {"total": int(row["n0"] or 0), "matrix": matrix}

    def breakdown(self, spec: dict[str, Any], column: str, limit: int = 20, key: str | None = None) -> Table:
        return self.ask("studio_breakdown_sql", key=key, spec=spec, column=column, limit=limit)

    def values(self, relation: str, column: str, limit: int = 20) -> Table:
        return self.ask("studio_values_sql", relation=relation, column=column, limit=limit)

    def sample(self, relation: str, limit: int = 3) -> Table:
        return self.ask("studio_sample_sql", relation=relation, limit=limit)

    def size_history(self) -> Table:
        return self.ask("studio_size_history_sql")

    def columns(self, relation_name: str, database: str | None, schema: str, identifier: str) -> list[tuple[str, str]]:
        """(name, type) of a relation as the warehouse has it."""

        def get(warehouse: Any) -> list[tuple[str, str]]:
            relation = warehouse.relation(database, schema, identifier)
            return [(c.name.lower(), str(c.data_type)) for c in warehouse.adapter.get_columns_in_relation(relation)]

        return self.adapter_call(get)


_READS_SETS = ("studio_funnel_sql", "studio_members_sql", "studio_breakdown_sql")
_NEEDS_NODES = {
    "studio_funnel_sql": ("nodes",),
    "studio_members_sql": ("nodes",),
    "studio_overlap_sql": ("nodes",),
    "studio_breakdown_sql": ("nodes",),
}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
