"""`duckdb`: upsert and delete by key into a table of a DuckDB database file (a local mart or a test double
for any table destination)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sync_runner.core.fields import Option, Text

from ._table import TableDestination, quote
from .base import Batch, BatchResult

if TYPE_CHECKING:
    import pyarrow as pa


class DuckDBDestination(TableDestination):
    type = "duckdb"
    options = (
        Option("path", Text(), "database file, relative to the project (created if missing)", required=True),
        Option("table", Text(), "table name (created from the first batch)", required=True),
        Option("schema", Text(), "schema", default="main"),
        Option("key_column", Text(), "column holding the primary key", default="_key"),
        Option("base_url", Text(), "replaces path (tests)"),
    )
    max_rows = 50_000
    wants_table = True
    concurrency = 1

    def open(self) -> None:
        import duckdb

        self._configure_table()
        path = self.local_path(self.config.get("base_url") or self.config["path"])
        path.parent.mkdir(parents=True, exist_ok=True)  # the file is created if missing, so is its folder
        self.con = duckdb.connect(str(path))
        self.con.execute(f"create schema if not exists {quote(self.schema)}")
        self._lock = threading.Lock()

    def _ensure_table(self, table: pa.Table) -> None:
        self.con.register("_dbt_studio_batch", table)
        columns = self.con.execute("describe select * from _dbt_studio_batch").fetchall()
        body = ", ".join(f"{quote(name)} {kind}" for name, kind, *_ in columns if name != self.key)
        self.con.execute(f"create table if not exists {self.qualified} "
                         f"({quote(self.key)} varchar primary key{', ' + body if body else ''})")

    def send(self, batch: Batch) -> BatchResult:
        import pyarrow as pa  # (a sync has it loaded: the runner's pages are Arrow)

        table = batch.typed()
        if self.key in table.column_names:
            table = table.drop_columns([self.key])
        table = table.add_column(0, self.key, pa.array(batch.keys, pa.string()))
        with self._lock:
            self._ensure_table(table)
            self.con.register("_dbt_studio_batch", table)
            if batch.op == "delete":
                self.con.execute(f"delete from {self.qualified} where {quote(self.key)} in "
                                 f"(select {quote(self.key)} from _dbt_studio_batch)")
            elif batch.op == "clear":
                fields = [c for c in table.column_names if c != self.key]
                sets = ", ".join(f"{quote(c)} = null" for c in fields) or f"{quote(self.key)} = {quote(self.key)}"
                self.con.execute(f"update {self.qualified} set {sets} where {quote(self.key)} in "
                                 f"(select {quote(self.key)} from _dbt_studio_batch)")
            else:
                names = ", ".join(quote(c) for c in table.column_names)
                self.con.execute(f"insert or replace into {self.qualified} ({names}) "
                                 f"select {names} from _dbt_studio_batch")
            self.con.unregister("_dbt_studio_batch")
        return BatchResult()

    def close(self, success: bool) -> None:
        self.con.close()
