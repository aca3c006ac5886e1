"""`postgres`: upsert (INSERT ... ON CONFLICT) and delete by key into a PostgreSQL table."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from sync_runner.core.fields import Option, Text

from ._table import TableDestination, quote
from .base import Batch, BatchResult, Terminal, Transient
from .values import clean, json_default

if TYPE_CHECKING:
    import pyarrow as pa


def pg_type(kind: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind):
        return "bigint"
    if pa.types.is_floating(kind):
        return "double precision"
    if pa.types.is_decimal(kind):
        return "numeric"
    if pa.types.is_timestamp(kind):
        return "timestamptz" if kind.tz else "timestamp"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    return "jsonb"


class PostgresDestination(TableDestination):
    type = "postgres"
    options = (
        Option("dsn", Text(), "libpq connection string (the password through env_var)"),
        Option("base_url", Text(), "replaces dsn (tests)"),
        Option("table", Text(), "table name (created from the first batch)", required=True),
        Option("schema", Text(), "schema", default="public"),
        Option("key_column", Text(), "column holding the primary key", default="_key"),
    )
    max_rows = 5_000
    wants_table = True
    concurrency = 2

    def open(self) -> None:
        try:
            import psycopg2
        except ImportError:  # pragma: no cover - depends on the install
            raise Terminal("destination type 'postgres' needs psycopg2: pip install 'dbt-studio[postgres]'") from None
        self.psycopg2 = psycopg2
        self._configure_table()
        self.dsn = str(self.config.get("base_url") or self.config.get("dsn") or "")
        self._local = threading.local()
        self._created = False
        self._create_lock = threading.Lock()
        self._connection().close()
        self._local.conn = None

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self.psycopg2.connect(self.dsn, connect_timeout=10)
            except self.psycopg2.OperationalError as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
                if "password" in message or "authentication" in message or "role" in message:
                    raise Terminal(f"destination '{self.name}' refused the credentials: {message}") from None
                raise Transient(f"{self.name}: {message}") from None
            self._local.conn = conn
        return conn

    def _ensure_table(self, cur: Any, table: pa.Table) -> None:
        with self._create_lock:
            if self._created:
                return
            columns = ", ".join(f"{quote(f.name)} {pg_type(f.type)}" for f in table.schema if f.name != self.key)
            cur.execute(f"create schema if not exists {quote(self.schema)}")
            cur.execute(f"create table if not exists {self.qualified} "
                        f"({quote(self.key)} text primary key{', ' + columns if columns else ''})")
            self._created = True

    def send(self, batch: Batch) -> BatchResult:
        from psycopg2.extras import execute_values

        conn = self._connection()
        fields = [c for c in batch.typed().column_names if c != self.key]
        try:
            with conn, conn.cursor() as cur:
                self._ensure_table(cur, batch.typed())
                if batch.op == "delete":
                    cur.execute(f"delete from {self.qualified} where {quote(self.key)} = any(%s)", (batch.keys,))
                elif batch.op == "clear":
                    sets = ", ".join(f"{quote(c)} = null" for c in fields) or f"{quote(self.key)} = {quote(self.key)}"
                    cur.execute(f"update {self.qualified} set {sets} where {quote(self.key)} = any(%s)", (batch.keys,))
                else:
                    kinds = {f.name: pg_type(f.type) for f in batch.typed().schema}
                    rows = [[key] + [self._value(record.get(c), kinds[c]) for c in fields]
                            for key, record in zip(batch.keys, batch.records, strict=True)]
                    names = ", ".join(quote(c) for c in [self.key, *fields])
                    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in fields)
                    conflict = f"do update set {updates}" if updates else "do nothing"
                    execute_values(cur, f"insert into {self.qualified} ({names}) values %s "
                                        f"on conflict ({quote(self.key)}) {conflict}", rows, page_size=1000)
        except self.psycopg2.OperationalError as exc:
            self._local.conn = None
            raise Transient(f"{self.name}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
        return BatchResult()

    @staticmethod
    def _value(value: Any, kind: str) -> Any:
        value = clean(value)
        if kind == "jsonb" and value is not None:
            return json.dumps(value, default=json_default)
        return value

    def close(self, success: bool) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            conn.close()
