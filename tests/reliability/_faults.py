"""Shared pieces of the process / warehouse / concurrency fault tests: a sync project whose model rows the test
owns (a Python dict, the independent expectation), written straight into the model's table between runs, and
readers of the state tables.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, person

__all__ = ["MAPPINGS", "PROJECT", "FaultProject", "Row", "StatementFault", "http_yaml", "mutate", "person", "sink_idle"]

Row = tuple[Any, Any, Any]  # the tracked (mapped) values of a person: email, plan, score
COLUMNS = ("user_id", "name", "email", "plan", "score", "note")


def values(row: dict[str, Any]) -> Row:
    return (row["email"], row["plan"], row["score"])


def record_values(record: dict[str, Any]) -> Row:
    return (record.get("email"), record.get("plan"), record.get("score"))


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class FaultProject(SyncProject):
    """The sync test project, built once; the model's rows are then replaced in place between runs (a rebuild
    costs seconds per trial). `rows` is the test's own copy: the expectation every check compares with."""

    def __init__(self, project, tmp: Path) -> None:
        super().__init__(project, tmp)
        self.rows: dict[str, dict[str, Any]] = {}
        self._runner: Any = None
        self._all_syncs: list[Any] = []
        self._model: str | None = None
        self._state: str | None = None

    def build(self, rows: dict[str, dict], syncs: list[dict], primary_key="user_id") -> None:
        super().build(rows, syncs, primary_key)
        self.rows = {k: dict(v) for k, v in rows.items()}
        self._model = self.p.relation("people")

    @property
    def runner(self):
        """One runner for the module, built once (building one parses the project's macros: seconds)."""
        from sync_runner.sync.engine import Options, SyncRunner

        if self._runner is None:
            self._runner = SyncRunner(self.p.where, Options())
            self._all_syncs = list(self._runner.syncs)
        return self._runner

    @property
    def wh(self):
        """The runner's warehouse serves the test's own reads too (dbt-duckdb shares one database handle per
        process: two adapters taking turns on it trip over each other's closes)."""
        return self.runner.warehouse

    def rerun(self, sync: str, **options):
        """One in-process run of `sync`: the library, as `dbt-studio sync -s <sync>` runs it."""
        from sync_runner.sync.engine import Options

        runner = self.runner
        runner.syncs = [s for s in self._all_syncs if s.name == sync]
        runner.options = Options(select=(sync,), **options)
        try:
            return {r.sync: r for r in runner.run()}[sync]
        finally:
            runner.close()

    def release(self) -> None:
        """Let another process open the warehouse (DuckDB allows one writer process): close every connection
        of this process and the DuckDB database itself."""
        if self._runner is not None:
            self._runner.close()
        self.p.release()

    def execute(self, statements: list[str]) -> None:
        with self.wh.session():
            for sql in statements:
                self.wh.adapter.execute(sql, auto_begin=True)
            self.wh.adapter.commit_if_has_connection()

    def fetch(self, sql: str) -> list[tuple]:
        with self.wh.session():
            _, table = self.wh.adapter.execute(sql, fetch=True)
            return [tuple(row.values()) for row in table.rows]

    def write_model(self, rows: dict[str, dict[str, Any]]) -> None:
        """Replace the model's rows (one transaction) and remember them as the expectation."""
        assert self._model, "build first"
        inserts = ", ".join("(" + ", ".join(_literal(key if c == "user_id" else row[c]) for c in COLUMNS) + ")"
                            for key, row in sorted(rows.items()))
        statements = [f"delete from {self._model}"]
        if rows:
            statements.append(f"insert into {self._model} ({', '.join(COLUMNS)}) values {inserts}")
        self.execute(statements)
        self.rows = {k: dict(v) for k, v in rows.items()}

    def state_relation(self, table: str) -> str:
        if self._state is None:
            with self.wh.session():
                schema = self.wh.call("sync_default_state_schema")
            db = self.fetch("select current_database()")[0][0]
            self._state = str(self.wh.relation(db, schema, "X")).rsplit(".", 1)[0]
        return f"{self._state}.{table}"

    def snapshot(self, sync: str) -> list[tuple]:
        """(key, email, plan, score) rows of the sync's snapshot, duplicates kept (they would be corruption);
        none before the first plan made the table."""
        from dbt_common.exceptions import DbtRuntimeError

        try:
            rows = self.fetch(f"select _key, email, plan, score from {self.state_relation(sync + '__snapshot')}")
        except DbtRuntimeError as exc:
            if "does not exist" not in str(exc):
                raise
            return []
        return [(r[0], (r[1], r[2], r[3])) for r in rows]

    def table(self, name: str) -> list[tuple]:
        return sorted(self.fetch(f"select * from {self.state_relation(name)}"), key=repr)


def mutate(rng: random.Random, rows: dict[str, dict[str, Any]], tag: str, deletes: int = 6, changes: int = 8,
           unmapped: int = 3, inserts: int = 15) -> dict[str, dict[str, Any]]:
    """A new version of the model: some keys deleted, some mapped values changed (to null too), some unmapped
    columns changed (which sends nothing), new keys."""
    rows = {k: dict(v) for k, v in rows.items()}
    keys = sorted(rows)
    for key in rng.sample(keys, min(deletes, len(keys) // 4)):
        del rows[key]
    keys = sorted(rows)
    for key in rng.sample(keys, min(changes, len(keys))):
        column = rng.choice(("email", "plan", "score", "score_null"))
        if column == "email":
            rows[key]["email"] = f"{key}.{tag}@mail.com"
        elif column == "plan":
            rows[key]["plan"] = f"plan_{tag}"
        elif column == "score":
            rows[key]["score"] = (rows[key]["score"] or 0) + 1
        else:
            rows[key]["score"] = None if rows[key]["score"] is not None else 7
    for key in rng.sample(sorted(rows), min(unmapped, len(rows))):
        rows[key]["note"] = f"note {tag}"
    for i in range(inserts):
        rows[f"n{tag}_{i:02d}"] = person(1000 + i, email=f"n{tag}_{i}@mail.com")
    return rows


def http_yaml(sinks: dict[str, Any], batch_size: int, concurrency: int) -> str:
    """One `http` destination per sink (all with the sink's token through env_var)."""
    out = "destinations:\n"
    for name, sink in sinks.items():
        os.environ["FAULT_SINK_TOKEN"] = sink.token
        out += (f"  {name}:\n    type: http\n    url: {sink.url}/records\n"
                "    headers:\n      Authorization: \"Bearer {{ env_var('FAULT_SINK_TOKEN') }}\"\n"
                f"    results_path: results\n    batch_size: {batch_size}\n    concurrency: {concurrency}\n"
                "    timeout: 10\n")
    return out


def sink_idle(timeout: float = 10.0) -> None:
    """Wait until no fake-server handler thread is still working on a request (of a killed client, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any("process_request" in t.name for t in threading.enumerate() if t.is_alive()):
            return
        time.sleep(0.005)


class StatementFault:
    """The warehouse fails while a package macro runs: from the `statement`-th SQL statement of the `call`-th
    call of `macro` on, statements fail the way a dropped connection makes them fail (an error raised by the
    driver, through the adapter's own error handling). `when`: "before" — the statement never reaches the
    warehouse; "after" — it ran there and the answer was lost. `down`: every later statement fails too (the
    warehouse stays unreachable for the rest of the run); otherwise only that one fails (a blip).

    Only observation points are wrapped (`Warehouse.call`, the adapter's `add_query`); the failing statement
    is a real one that the warehouse rejects, so the adapter's error path (rollbacks included) runs as is."""

    FAIL_SQL = "select * from dbt_studio_fault_injection.connection_dropped"

    def __init__(self, macro: str, call: int, statement: int, when: str = "before", down: bool = True) -> None:
        self.macro, self.call_no, self.statement, self.when, self.down = macro, call, statement, when, down
        self.fired = False
        self.is_down = False
        self.log: list[str] = []

    def __enter__(self) -> StatementFault:
        from dbt.adapters.sql.connections import SQLConnectionManager

        from sync_runner.project.warehouse import Warehouse

        fault = self
        calls: Counter[str] = Counter()
        now: dict[str, Any] = {"macro": None, "call": 0, "statement": 0}
        self._originals = (Warehouse.call, SQLConnectionManager.add_query)
        original_call, original_add_query = self._originals

        def call(wh: Any, macro: str, **kwargs: Any) -> Any:
            if now["macro"] is not None:
                return original_call(wh, macro, **kwargs)
            calls[macro] += 1
            now.update(macro=macro, call=calls[macro], statement=0)
            try:
                return original_call(wh, macro, **kwargs)
            finally:
                now["macro"] = None

        def add_query(manager: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
            if fault.is_down:
                fault.log.append(f"refused: {' '.join(sql.split())[:60]}")
                return original_add_query(manager, fault.FAIL_SQL, *args, **kwargs)
            if now["macro"] is not None:
                now["statement"] += 1
                if (not fault.fired and now["macro"] == fault.macro and now["call"] == fault.call_no
                        and now["statement"] == fault.statement):
                    fault.fired = True
                    fault.is_down = fault.down
                    fault.log.append(f"{fault.when}: {' '.join(sql.split())[:60]}")
                    if fault.when == "after":
                        original_add_query(manager, sql, *args, **kwargs)
                    return original_add_query(manager, fault.FAIL_SQL, *args, **kwargs)
            return original_add_query(manager, sql, *args, **kwargs)

        Warehouse.call = call  # type: ignore[method-assign]
        SQLConnectionManager.add_query = add_query  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        from dbt.adapters.sql.connections import SQLConnectionManager

        from sync_runner.project.warehouse import Warehouse

        Warehouse.call, SQLConnectionManager.add_query = self._originals  # type: ignore[method-assign]
        self.is_down = False
