"""The warehouse steps of one sync run (macros/sync): state tables, run log, lock, plan, pages and commits.

Two ways to run the same macros' SQL, chosen per run by the engine:

- `DbtSteps` calls each macro through the dbt adapter (any profile; the record debugger's writes need it);
- `KeptSteps` runs their statements kept compiled between commands (project/compiled.py) on a DuckDB file's own
  connection, so a sync that sends rows never loads dbt once its SQL is kept. The values that change from run to
  run are bind parameters (macro `sync_parameter`); everything else is part of the kept text. A commit is kept
  in two shapes: one statement group per acknowledged range, leaving out the rejected rows, and one that records
  the rejected rows, bound as two lists; all run in one transaction, so a window of any shape runs from two kept
  compilations and its statements do not grow with the rows it rejected.

Both answer in the same terms (dicts of counts, lists of column names), so the engine reads one way.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol

from sync_runner.project.compiled import CompiledSql, Rows
from sync_runner.project.warehouse import Warehouse

if TYPE_CHECKING:  # (annotations: a page read as rows needs no Arrow)
    import pyarrow as pa

OPS = ("insert", "update", "delete", "clear")
# A reset plan is written in two parts (KeptSteps.plan) only above this many pages: the second part sorts the rows
# again and delivery waits while it is written, which at 200k rows (4 pages) cost more than the first request
# gained (2.45-2.95 s against 1.85-2.52 s a sync, five runs each); at 1M (20 pages) the first request left about
# 0.5 s sooner and the whole sync's time stayed within the runs' spread.
SPLIT_PAGES = 10


class Steps(Protocol):
    def session(self) -> contextlib.AbstractContextManager[Any]: ...
    def source(self, database: str | None, schema: str, identifier: str, relation_name: str) -> Any: ...
    def stored_columns(self, source: Any, database: str | None, schema: str, identifier: str) -> list[str]: ...
    def fit_session(self, source: Any, materialized: str | None) -> None: ...
    def key_problems(self, args: dict[str, Any], source: Any) -> dict[str, Any]: ...
    def prepare(self, args: dict[str, Any]) -> None: ...
    def lock(self, args: dict[str, Any], holder: str, steal_from: str | None = None
             ) -> tuple[str | None, str | None]: ...
    def unlock(self, args: dict[str, Any], holder: str) -> None: ...
    def last_status(self, args: dict[str, Any]) -> str | None: ...
    def prune_changelog(self, args: dict[str, Any]) -> None: ...
    def run_start(self, args: dict[str, Any], run_id: str, model: str, destination: str,
                  full_resync: bool) -> None: ...
    def plan(self, args: dict[str, Any], source: Any, full_resync: bool,
             first_rows: int | None = None, left_behind: bool = False) -> dict[str, Any]: ...
    def plan_settled(self, args: dict[str, Any]) -> None: ...
    def record_fingerprint(self, args: dict[str, Any]) -> None: ...
    def run_finish(self, args: dict[str, Any], run_id: str, status: str, counts: dict[str, int],
                   acknowledged: int, rejected: int, error: str | None) -> None: ...
    def commit(self, args: dict[str, Any], run_id: str, acked: list[list[int]],
               rejected: list[list[Any]]) -> None: ...
    def page(self, args: dict[str, Any], first_seq: int, last_seq: int,
             fields: list[list[Any]] | None = None) -> pa.Table: ...
    def records(self, args: dict[str, Any], first_seq: int, last_seq: int, fields: list[list[Any]]) -> Rows: ...
    def writes_json(self, args: dict[str, Any]) -> bool: ...
    def plan_kinds(self, args: dict[str, Any]) -> dict[str, str | None]: ...
    def snapshot_rows(self, args: dict[str, Any]) -> int: ...
    def refused_rows(self, args: dict[str, Any]) -> int: ...


class DbtSteps:
    """Each step is the macro itself, run by dbt (macros return Python values)."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.wh = warehouse

    def session(self) -> contextlib.AbstractContextManager[Any]:
        return self.wh.session()

    def source(self, database: str | None, schema: str, identifier: str, relation_name: str) -> Any:
        return self.wh.relation(database, schema, identifier)

    def stored_columns(self, source: Any, database: str | None, schema: str, identifier: str) -> list[str]:
        return list(self.wh.call("relation_columns", relation=source, lower=False))

    def fit_session(self, source: Any, materialized: str | None) -> None:
        """Nothing: dbt's connection is the profile's (sync_model_session_sql is for the runner's own)."""

    def key_problems(self, args: dict[str, Any], source: Any) -> dict[str, Any]:
        return dict(self.wh.call("sync_check_keys", sync=args, source=source))

    def prepare(self, args: dict[str, Any]) -> None:
        self.wh.call("sync_prepare", sync=args)

    def lock(self, args: dict[str, Any], holder: str, steal_from: str | None = None) -> tuple[str | None, str | None]:
        current, acquired_at = self.wh.call("sync_lock", sync=args, holder=holder, steal_from=steal_from)
        return current, acquired_at

    def unlock(self, args: dict[str, Any], holder: str) -> None:
        self.wh.call("sync_unlock", sync=args, holder=holder)

    def last_status(self, args: dict[str, Any]) -> str | None:
        status = self.wh.call("sync_last_status", sync=args)
        return None if status is None else str(status)

    def prune_changelog(self, args: dict[str, Any]) -> None:
        self.wh.call("sync_prune_changelog", sync=args)

    def run_start(self, args: dict[str, Any], run_id: str, model: str, destination: str, full_resync: bool) -> None:
        self.wh.call("sync_run_start", sync=args, run_id=run_id, model=model, destination=destination,
                     full_resync=full_resync)

    def plan(self, args: dict[str, Any], source: Any, full_resync: bool,
             first_rows: int | None = None, left_behind: bool = False) -> dict[str, Any]:
        """sync_plan, the whole plan written before the first page is read (`first_rows`: see KeptSteps)."""
        return dict(self.wh.call("sync_plan", sync=args, source=source, full_resync=full_resync,
                                 left_behind=left_behind))

    def plan_settled(self, args: dict[str, Any]) -> None:
        self.wh.call("sync_plan_settled", sync=args)

    def record_fingerprint(self, args: dict[str, Any]) -> None:
        self.wh.call("sync_record_fingerprint", sync=args)

    def run_finish(self, args: dict[str, Any], run_id: str, status: str, counts: dict[str, int], acknowledged: int,
                   rejected: int, error: str | None) -> None:
        self.wh.call("sync_run_finish", sync=args, run_id=run_id, status=status, counts=counts,
                     acknowledged=acknowledged, rejected=rejected, error=error)

    def commit(self, args: dict[str, Any], run_id: str, acked: list[list[int]], rejected: list[list[Any]]) -> None:
        self.wh.call("sync_commit", sync=args, run_id=run_id, acked=acked, rejected=rejected)

    def page(self, args: dict[str, Any], first_seq: int, last_seq: int,
             fields: list[list[Any]] | None = None) -> pa.Table:
        if fields is not None:  # the records as JSON (sync_plan_records_sql)
            return self.wh.fetch_arrow(self.wh.call("sync_plan_records_sql", sync=args, fields=fields,
                                                    first_seq=first_seq, last_seq=last_seq))
        return self.wh.fetch_arrow(self.wh.call("sync_plan_rows_sql", sync=args, first_seq=first_seq,
                                                last_seq=last_seq))

    def records(self, args: dict[str, Any], first_seq: int, last_seq: int, fields: list[list[Any]]) -> Rows:
        table = self.page(args, first_seq, last_seq, fields)
        return list(table.column_names), [tuple(r.values()) for r in table.to_pylist()]

    def writes_json(self, args: dict[str, Any]) -> bool:
        return self.wh.call("sync_plan_records_sql", sync=args, fields=[], first_seq=1, last_seq=0) is not None

    def plan_kinds(self, args: dict[str, Any]) -> dict[str, str | None]:
        """(The columns' query is fetched as the pages are: dbt's own metadata query would leave a transaction
        open on the connection, which the commit then joins.)"""
        plan = self.wh.call("sync_plan_relation", sync=args)
        sql = (self.wh.call("relation_columns_read_sql", relation=plan)
               or self.wh.call("relation_columns_sql", relation=plan))
        table = self.wh.fetch_arrow(sql)
        columns = [(str(n), str(t)) for n, t in zip(table.column(0).to_pylist(), table.column(1).to_pylist(),
                                                     strict=True)]
        return _kinds(columns, self.wh.call("sync_json_kinds", data_types=[t for _, t in columns]))

    def snapshot_rows(self, args: dict[str, Any]) -> int:
        return int(self.wh.call("sync_snapshot_rows", sync=args))

    def refused_rows(self, args: dict[str, Any]) -> int:
        return int(self.wh.call("sync_refused_rows", sync=args))


class KeptSteps:
    """Each step is the statements its `*_sql` macro returned, kept compiled, run on the direct connection."""

    def __init__(self, compiled: CompiledSql) -> None:
        self.c = compiled
        self._bind: dict[str, str] = {}
        self._rest: dict[str, tuple[int, list[str]]] = {}  # a sync's plan rows still to write: (after seq, statements)

    def _p(self, name: str) -> str:
        """The bind parameter `name` as the driver spells it (macro sync_parameter, kept like the rest)."""
        if name not in self._bind:
            self._bind[name] = str(self.c.value("sync_parameter", name=name)).strip()
        return self._bind[name]

    def _bound(self, sql: str, values: dict[str, Any]) -> dict[str, Any]:
        """The values whose parameters the statement has (the driver refuses others; an override of a macro may
        have replaced a parameter with a constant)."""
        return {name: value for name, value in values.items() if self._p(name) in sql}

    def _run(self, sql: str, **values: Any) -> list[tuple[Any, ...]]:
        return self.c.rows(sql, self._bound(sql, values))[1]

    def session(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def source(self, database: str | None, schema: str, identifier: str, relation_name: str) -> Any:
        return relation_name

    def stored_columns(self, source: Any, database: str | None, schema: str, identifier: str) -> list[str]:
        relation = {"database": database, "schema": schema, "identifier": identifier}
        return [str(r[0]) for r in self.c.relation_columns(relation)]

    def fit_session(self, source: Any, materialized: str | None) -> None:
        """The session's settings for this sync's model (sync_model_session_sql: on DuckDB, one thread for a
        table of one row group or fewer), before anything reads the model."""
        fit = self.c.value("sync_model_session_sql", source=source, materialized=materialized)
        if fit:
            rows = int(self._run(fit["count"])[0][0])
            for sql in fit["small" if rows <= int(fit["up_to"]) else "other"]:
                self.c.rows(sql)

    def key_problems(self, args: dict[str, Any], source: Any) -> dict[str, Any]:
        return key_problems(self.c.rows(self.c.value("sync_check_keys_sql", sync=args, source=source))[1])

    def prepare(self, args: dict[str, Any]) -> None:
        for sql in self.c.value("sync_prepare_sql", sync=args):
            self.c.rows(sql)

    def lock(self, args: dict[str, Any], holder: str, steal_from: str | None = None) -> tuple[str | None, str | None]:
        sql = self.c.value("sync_lock_sql", sync=args, holder=self._p("holder"),
                           steal_from=self._p("steal_from") if steal_from else None)
        if steal_from:
            self._run(sql["steal"], steal_from=steal_from)
        self._run(sql["take"], holder=holder)
        rows = self.c.rows(sql["holder"])[1]
        return (str(rows[0][0]), str(rows[0][1])) if rows else (None, None)

    def unlock(self, args: dict[str, Any], holder: str) -> None:
        self._run(self.c.value("sync_unlock_sql", sync=args, holder=self._p("holder")), holder=holder)

    def last_status(self, args: dict[str, Any]) -> str | None:
        rows = self.c.rows(self.c.value("sync_last_status_sql", sync=args))[1]
        return str(rows[0][0]) if rows else None

    def prune_changelog(self, args: dict[str, Any]) -> None:
        self.c.rows(self.c.value("sync_prune_changelog_sql", sync=args))

    def run_start(self, args: dict[str, Any], run_id: str, model: str, destination: str, full_resync: bool) -> None:
        names = ("run_id", "model", "destination", "full_resync")
        sql = self.c.value("sync_run_start_sql", sync=args, **{n: self._p(n) for n in names})
        self._run(sql, run_id=run_id, model=model, destination=destination, full_resync=bool(full_resync))

    def plan(self, args: dict[str, Any], source: Any, full_resync: bool,
             first_rows: int | None = None, left_behind: bool = False) -> dict[str, Any]:
        """sync_plan's steps: the probe, the decision (a macro of plain values, kept per answer), the writes.

        With `first_rows`, a reset plan (every row of the model sent) of more than SPLIT_PAGES pages is written in
        two parts (sync_plan_write_parts_sql): its first `first_rows` rows now, the others when a page past them is
        read, so the first request leaves without waiting for the whole plan. With `left_behind`, a reset plan
        also counts the rows it does not delete, before the snapshot is emptied (`left_behind`)."""
        c = self.c
        answers = [{"full_resync": f, "known_fingerprint": k, "snapshot_exists": e, "plan_has_rows": r}
                   for f in (False, True) for k in (None, args["fingerprint"], "") for e in (False, True)
                   for r in (False, True)]
        if not all(c.holds("sync_plan_decision", sync=args, **a) for a in answers):  # kept for every answer
            for answer in answers:
                decision = c.value("sync_plan_decision", sync=args, **answer)
                c.value("sync_plan_write_sql", sync=args, source=source, reset=decision["reset"],
                        previous=decision["previous"])
            c.value("sync_plan_write_parts_sql", sync=args, source=source, first_rows=self._p("first_rows"))
        decided = decide(c, args, full_resync)
        behind = left_behind_rows(c, args, source, decided) if left_behind else None
        if decided["reset"] and first_rows:
            counts = self._plan_in_parts(args, source, first_rows)
        else:
            write = c.value("sync_plan_write_sql", sync=args, source=source, reset=decided["reset"],
                            previous=decided["previous"])
            for sql in write["statements"]:
                c.rows(sql)
            counts = dict.fromkeys(OPS, 0)
            counts.update({str(op): int(n) for op, n in c.rows(write["counts"])[1]})
            counts["reset"] = bool(decided["reset"])
        if behind is not None:
            counts["left_behind"] = behind
        return counts

    def _plan_in_parts(self, args: dict[str, Any], source: Any, first_rows: int) -> dict[str, Any]:
        """A reset plan of more than SPLIT_PAGES times `first_rows` rows in two parts, a smaller one whole."""
        parts = self.c.value("sync_plan_write_parts_sql", sync=args, source=source, first_rows=self._p("first_rows"))
        for sql in parts["reset"]:
            self._run(sql)
        counts: dict[str, Any] = dict.fromkeys(OPS, 0)
        counts.update({str(op): int(n) for op, n in self._run(parts["counts"])})
        counts["reset"] = True
        split = sum(counts[op] for op in OPS) > SPLIT_PAGES * first_rows
        for sql in parts["first" if split else "whole"]:
            self._run(sql, first_rows=first_rows)
        if split:
            self._rest[args["name"]] = (first_rows, list(parts["rest"]))
        return counts

    def plan_settled(self, args: dict[str, Any]) -> None:
        self.c.rows(self.c.value("sync_plan_settled_sql", sync=args))

    def record_fingerprint(self, args: dict[str, Any]) -> None:
        for sql in self.c.value("sync_record_fingerprint_sql", sync=args):
            self.c.rows(sql)

    def run_finish(self, args: dict[str, Any], run_id: str, status: str, counts: dict[str, int], acknowledged: int,
                   rejected: int, error: str | None) -> None:
        names = ("run_id", "status", "planned_inserts", "planned_updates", "planned_deletes", "acknowledged",
                 "rejected", "error")
        sql = self.c.value("sync_run_finish_sql", sync=args, **{n: self._p(n) for n in names})
        self._run(sql, run_id=run_id, status=status, planned_inserts=int(counts.get("insert", 0)),
                  planned_updates=int(counts.get("update", 0)),
                  planned_deletes=int(counts.get("delete", 0)) + int(counts.get("clear", 0)),
                  acknowledged=int(acknowledged), rejected=int(rejected), error=error)

    def commit(self, args: dict[str, Any], run_id: str, acked: list[list[int]], rejected: list[list[Any]]) -> None:
        """sync_commit as pieces of two kept shapes in one transaction: each acknowledged range without the
        rejected rows, then the rejected rows recorded; the rejected rows are two bound lists
        (sync_listed_rejections), so a window costs the same few statements whatever it rejected."""
        if not acked and not rejected:
            return
        run = self._p("run_id")
        listed = self.c.value("sync_listed_rejections", seqs=self._p("refused_seqs"),
                              reasons=self._p("refused_reasons"))
        by_range = self.c.value("sync_commit_sql", sync=args, run_id=run, rejected=listed, record_rejected=False,
                                acked=[[self._p("first_seq"), self._p("last_seq")]])
        recorded = self.c.value("sync_commit_sql", sync=args, run_id=run, acked=[], rejected=listed)
        refused = {"refused_seqs": [int(seq) for seq, _ in rejected],
                   "refused_reasons": [str(reason) for _, reason in rejected]}
        statements: list[tuple[str, dict[str, Any]]] = []
        for first, last in acked:
            statements += [(sql, self._bound(sql, {"run_id": run_id, "first_seq": int(first), "last_seq": int(last),
                                                   **refused})) for sql in by_range]
        if rejected:
            statements += [(sql, self._bound(sql, {"run_id": run_id, **refused})) for sql in recorded]
        words = self.c.value("sync_transaction_sql")
        self.c.transaction(statements, words["begin"], words["commit"], words["rollback"])

    def page(self, args: dict[str, Any], first_seq: int, last_seq: int,
             fields: list[list[Any]] | None = None) -> pa.Table:
        """Plan rows first_seq..last_seq as Arrow (with `fields`, as JSON records: sync_plan_records_sql)."""
        sql, bound = self._page_sql(args, first_seq, last_seq, fields)
        table: pa.Table = self.c.arrow(sql, bound)
        return table

    def records(self, args: dict[str, Any], first_seq: int, last_seq: int, fields: list[list[Any]]) -> Rows:
        """The same JSON records as rows, without Arrow (see the engine's `_deliver` for when)."""
        return self.c.rows(*self._page_sql(args, first_seq, last_seq, fields))

    def _page_sql(self, args: dict[str, Any], first_seq: int, last_seq: int,
                  fields: list[list[Any]] | None) -> tuple[str, dict[str, Any]]:
        """A page's statement and its values; a plan written in parts gets its other rows first when they are
        asked for (in the thread that reads pages and commits, so no commit runs while they are written)."""
        pending = self._rest.get(args["name"])
        if pending is not None and last_seq > pending[0]:
            del self._rest[args["name"]]
            for statement in pending[1]:
                self._run(statement, first_rows=pending[0])
        bounds = {"first_seq": self._p("first_seq"), "last_seq": self._p("last_seq")}
        sql = (self.c.value("sync_plan_records_sql", sync=args, fields=fields, **bounds) if fields is not None
               else self.c.value("sync_plan_rows_sql", sync=args, **bounds))
        return sql, self._bound(sql, {"first_seq": first_seq, "last_seq": last_seq})

    def writes_json(self, args: dict[str, Any]) -> bool:
        """Whether this warehouse writes a page's records as JSON (sync_plan_records_sql is not none here)."""
        return self.c.value("sync_plan_records_sql", sync=args, fields=[], first_seq=self._p("first_seq"),
                            last_seq=self._p("last_seq")) is not None

    def plan_kinds(self, args: dict[str, Any]) -> dict[str, str | None]:
        """The kind sync_plan_records_sql writes each plan column as (none: the runner converts it), from the
        plan's stored types: DESCRIBE reads them without a page, and without DuckDB's Arrow layer."""
        columns = [(str(r[0]), str(r[1])) for r in self.c.relation_columns(self.c.value("sync_plan_relation",
                                                                                         sync=args))]
        return _kinds(columns, self.c.value("sync_json_kinds", data_types=[t for _, t in columns]))

    def snapshot_rows(self, args: dict[str, Any]) -> int:
        sql = self.c.value("sync_snapshot_rows_sql", sync=args)
        counted = self.c.existing_rows(sql["exists"], {"count": sql["query"]})["count"]
        return int(counted[1][0][0]) if counted is not None else 0

    def refused_rows(self, args: dict[str, Any]) -> int:
        return int(self.c.rows(self.c.value("sync_refused_rows_sql", sync=args))[1][0][0])


def decide(c: CompiledSql, args: dict[str, Any], full_resync: bool) -> dict[str, Any]:
    """sync_plan_decision on the answers of sync_plan_probe_sql's reads, from kept SQL (a run, a dry run).

    The decision compares the recorded fingerprint with the sync's for equality only, so any other recorded value
    is passed as '': the decision stays kept across a sync's runs (a first run, a reset, after a success or a
    failure) instead of compiling once per fingerprint."""
    probe = c.value("sync_plan_probe_sql", sync=args)
    got = c.existing_rows(probe["tables"], {"configs": probe["fingerprint"], "plan": probe["plan_rows"]},
                          probe["names"], probes={"snapshot": probe["snapshot_probe"]})
    known = None
    if got["configs"] is not None:
        rows = got["configs"][1]
        known = None if not rows else (rows[0][0] if rows[0][0] == args["fingerprint"] else "")
    plan_has_rows = got["plan"] is not None and bool(got["plan"][1])
    snapshot_exists = got["snapshot"] is not None
    decided = dict(c.value("sync_plan_decision", sync=args, full_resync=full_resync, known_fingerprint=known,
                           snapshot_exists=snapshot_exists, plan_has_rows=plan_has_rows))
    return {**decided, "snapshot_exists": snapshot_exists}


def left_behind_rows(c: CompiledSql, args: dict[str, Any], source: Any, decided: dict[str, Any]) -> int | None:
    """How many rows the destination holds that a reset plan (decided) does not delete (sync_left_behind_sql), or
    None when the plan is not a reset or there is no snapshot to ask."""
    if not (decided["reset"] and decided["snapshot_exists"]):
        return None
    return int(c.rows(c.value("sync_left_behind_sql", sync=args, source=source))[1][0][0])


def key_problems(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """sync_check_keys's answer from the rows of sync_check_keys_sql: (problem, example, n)."""
    out: dict[str, Any] = {"nulls": 0, "duplicates": 0, "examples": []}
    for problem, example, n in rows:
        if problem == "null":
            out["nulls"] = int(n)
        else:
            out["duplicates"] += 1
            if len(out["examples"]) < 5:
                out["examples"].append(example)
    return out


def _kinds(columns: list[tuple[str, str]], kinds: list[str | None]) -> dict[str, str | None]:
    """Each plan column's kind (sync_json_kinds' answer for its type, in the same order)."""
    return {name: kind for (name, _), kind in zip(columns, kinds, strict=True)}
