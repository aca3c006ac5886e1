"""SQL compiled from the package's macros, kept between commands while nothing it came from has changed.

Loading dbt (imports, the project and profile, an adapter, the macros) costs seconds on every command, and most
commands run statements whose text depends only on the project, not on the data. Macros that *return* SQL
(e.g. `sync_recent_runs_sql`) are compiled once through dbt and their results kept in
`<target dir>/dbt_studio_compiled.json` under a fingerprint of everything that can change them:

- the macro files of the root project and of every installed package (their dbt_project.yml included, so a
  package version is part of it), and the versions of dbt-studio, dbt-core, the adapters and the drivers;
- manifest.json, dbt_project.yml, packages.yml, profiles.yml, dbt_studio.yml (the sync config), the target,
  the vars, and the values of the env vars those files name.

Any difference gives another fingerprint and the whole cache is dropped: old SQL never runs. The SQL still comes
only from the macros; this module only remembers what they returned. On DuckDB (a plain file profile) the kept
statements run on a `duckdb` connection of their own, so such a command never imports dbt; other profiles run
them through the dbt adapter (`Warehouse`). Statements kept for every run of a sync take the values that change
from run to run (a run id, counts, acknowledged ranges) as bind parameters (macro `sync_parameter`), bound by the
driver: only the direct connection runs those.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sync_runner.core import yaml_text
from sync_runner.core.errors import UserError
from sync_runner.core.installed import versions
from sync_runner.core.paths import write_whole
from sync_runner.project.target import DbtTarget, from_warehouse, missing_duckdb_file, unreachable

CACHE_FILE = "dbt_studio_compiled.json"
Rows = tuple[list[str], list[tuple[Any, ...]]]  # a statement's column names and rows
_DISTRIBUTIONS = ("dbt-studio", "dbt-core", "dbt-adapters", "dbt-duckdb", "dbt-snowflake", "duckdb",
                  "snowflake-connector-python")
_ENV_VAR = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")
# DuckDB profile keys that change what a plain `duckdb.connect(path)` would see: such profiles go through dbt
_DUCKDB_EXTRAS = ("extensions", "settings", "attach", "plugins", "filesystems", "secrets", "remote",
                  "config_options", "module_paths", "use_credential_provider", "flights", "is_ducklake",
                  "motherduck_token")


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml_text.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml_text.Invalid):
        return {}
    return data if isinstance(data, dict) else {}


def _sql_files(project: Path) -> list[Path]:
    """The macro and generic-test files of one dbt project (its macro-paths and test-paths, as dbt reads them)."""
    config = _yaml(project / "dbt_project.yml")
    folders = [*(config.get("macro-paths", ["macros"]) or []), *(config.get("test-paths", ["tests"]) or [])]
    files: list[Path] = []
    seen: set[str] = set()
    for folder in folders:
        for root, dirs, names in os.walk(project / str(folder), followlinks=True):
            real = os.path.realpath(root)
            if real in seen:  # a symlink back into a folder already read
                dirs.clear()
                continue
            seen.add(real)
            files += [Path(root) / n for n in names if n.endswith(".sql")]
    return sorted(files)


def fingerprint(where: DbtTarget, manifest_path: Path, extra_files: Sequence[Path | None] = (),
                manifest_sha256: str | None = None) -> str:
    """A digest of every input that can change what the package's macros compile to (see the module doc).
    `manifest_sha256`: the SHA-256 of the manifest's bytes when the caller already has it (`Manifest.sha256`,
    the bytes it read): a real project's manifest is tens of megabytes, not worth hashing twice."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes, sha256: str | None = None) -> None:
        digest.update(label.encode() + b"\0" + (bytes.fromhex(sha256) if sha256 else hashlib.sha256(data).digest()))

    project = where.project_dir
    add("versions", json.dumps(versions(_DISTRIBUTIONS)).encode())
    add("target", json.dumps([str(project), str(where.profiles_dir), where.target, where.vars],
                             sort_keys=True, default=str).encode())
    texts: list[str] = []
    config_files = [project / "dbt_project.yml", project / "packages.yml", project / "dependencies.yml",
                    project / "package-lock.yml", manifest_path,
                    (where.profiles_dir or project) / "profiles.yml", *(f for f in extra_files if f)]
    packages_dir = project / str(_yaml(project / "dbt_project.yml").get("packages-install-path") or "dbt_packages")
    projects = [project] + (sorted(p for p in packages_dir.iterdir() if p.is_dir()) if packages_dir.is_dir() else [])
    for dbt_project in projects:
        config_files.append(dbt_project / "dbt_project.yml")
        for path in _sql_files(dbt_project):
            add(str(path), path.read_bytes())
    for path in config_files:
        if path == manifest_path and manifest_sha256:
            add(str(path), b"", manifest_sha256)
            continue
        data = path.read_bytes() if path.is_file() else b"<missing>"
        add(str(path), data)
        if path.suffix == ".yml":
            texts.append(data.decode("utf-8", "replace"))
    names = sorted({name for text in texts for name in _ENV_VAR.findall(text)})
    add("env", json.dumps({n: os.environ.get(n) for n in names}).encode())
    return digest.hexdigest()


class CompiledSql:
    """Values of SQL-returning macros for one project, from the cache when its fingerprint still matches.

    `connect` builds the dbt-backed `Warehouse` on a miss (it is only built then, or to run statements on a
    profile without a direct path; by default the profile's, with the package's version checked, as `connect` in
    project/warehouse.py does); `close()` closes it unless `close_warehouse` is false (the caller's).
    With `compile_only`, the warehouse built on a miss only compiles (dbt's connection is never opened, so the
    direct connection stays the one way into the file) and statements keep running directly.
    `compiled` lists the macros compiled through dbt by this instance.
    """

    def __init__(self, where: DbtTarget, manifest_path: Path, extra_files: Sequence[Path | None] = (),
                 connect: Callable[[], Any] | None = None, close_warehouse: bool = True,
                 direct: bool = True, compile_only: bool = False, manifest_sha256: str | None = None) -> None:
        self.where = where
        self.path = manifest_path.parent / CACHE_FILE
        self.key = fingerprint(where, manifest_path, extra_files, manifest_sha256)
        self._connect = connect
        self._manifest_path = manifest_path
        self._close_warehouse = close_warehouse
        self._warehouse: Any = None
        self._duckdb: Any = None
        self.compiled: list[str] = []
        self.compile_seconds = 0.0  # spent compiling misses through dbt (building the adapter included)
        stored = self._load()
        self._entries: dict[str, Any] = stored.get("entries", {}) if stored.get("key") == self.key else {}
        self._direct: dict[str, Any] | None = stored.get("direct") if stored.get("key") == self.key else None
        self._allow_direct = direct  # false when the caller already holds a dbt connection to the same database
        self._compile_only = compile_only
        self._dirty = False

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def warehouse(self) -> Any:
        if self._warehouse is None:
            if not self._compile_only:
                self.drop_direct()
            if self._connect is None:  # (imported here: a command whose SQL is kept never loads dbt's adapter)
                from sync_runner.project.warehouse import connect

                self._warehouse = connect(self.where, self._manifest_path)
            else:
                self._warehouse = self._connect()
            self._direct = _direct_spec(self._warehouse)
            self._dirty = True
        return self._warehouse

    def holds(self, macro: str, **kwargs: Any) -> bool:
        """Whether the value of that call is kept (value() would not compile)."""
        return json.dumps([macro, kwargs], sort_keys=True, default=str) in self._entries

    def value(self, macro: str, **kwargs: Any) -> Any:
        """What `dbt_studio.<macro>(**kwargs)` returns (it must only build SQL, never run any)."""
        call = json.dumps([macro, kwargs], sort_keys=True, default=str)
        if call not in self._entries:
            began = time.monotonic()
            result = self.warehouse.compile(macro, **kwargs)
            self._entries[call] = json.loads(json.dumps(result, default=str))
            self.compiled.append(macro)
            self._dirty = True
            self.compile_seconds += time.monotonic() - began
        return self._entries[call]

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Rows:
        """Column names and rows of one statement compiled by a macro (`params`: its bind parameters, direct
        connection only)."""
        if self.direct:
            cursor = self._execute(sql, params)
            return [d[0] for d in cursor.description or ()], [tuple(r) for r in cursor.fetchall()]
        if params:
            raise RuntimeError("bind parameters need the direct connection")
        table = self.warehouse.fetch_arrow(sql)
        return list(table.column_names), [tuple(r.values()) for r in table.to_pylist()]

    def existing_rows(self, exists: str, reads: Mapping[str, str], names: Mapping[str, str] | None = None,
                      probes: Mapping[str, str] = MappingProxyType({})) -> dict[str, Rows | None]:
        """rows() of each of `reads` whose table exists, None where it does not; each of `probes` (a statement
        that runs only when its table exists) gives ([], []) or None. `exists` lists the tables that exist (by
        `names[name]`, lower-cased; without `names`, any row means the one table of the one read exists).

        On the direct connection the reads run first and `exists` only when one fails: the first catalog listing
        of a DuckDB process builds every system view (about 10 ms), a read of a table that is there takes well
        under one. A read that fails while its table exists raises its own error, never reads as a missing table.
        Elsewhere `exists` runs first (one metadata round trip instead of a failed read per missing table) and
        the probes are not run: the listing answered them."""
        def listed() -> Callable[[str], bool]:
            rows = self.rows(exists)[1]
            found = {str(r[0]).lower() for r in rows}
            return (lambda name: names[name] in found) if names is not None else (lambda _name: bool(rows))

        out: dict[str, Rows | None] = {}
        if self.direct:
            failed: dict[str, Exception] = {}
            for name, sql in [*reads.items(), *probes.items()]:
                try:
                    answer = self.rows(sql)
                except Exception as exc:  # (the driver's error: a missing table, or a real one raised below)
                    failed[name] = exc
                    continue
                out[name] = ([], []) if name in probes else answer
            if failed:
                there = listed()
                for name, error in failed.items():
                    if there(name):
                        raise error
                    out[name] = None
            return out
        there = listed()
        for name, sql in reads.items():
            out[name] = self.rows(sql) if there(name) else None
        for name in probes:
            out[name] = ([], []) if there(name) else None
        return out

    def relation_columns(self, relation: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """relation_columns_sql's rows (column_name, data_type, is_number; none when the relation does not
        exist), on the direct connection from relation_columns_read_sql when the adapter has it (DESCRIBE of
        the one relation instead of a catalog listing) and it runs. (Its value is kept on every path, so the
        next command, direct once this one compiled through dbt, finds it.)"""
        read = self.value("relation_columns_read_sql", relation=relation)
        if read and self.direct:
            try:
                return self.rows(read)[1]
            except Exception:  # not there (or not readable): the portable query says which
                pass
        return self.rows(self.value("relation_columns_sql", relation=relation))[1]

    def arrow(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        """All rows of one query as an Arrow table, on the direct connection: through DuckDB's relation API,
        which hands the rows over in one record batch up to a row group (122,880 rows) without a copy, where the
        DB-API result copies them and cuts a page into a batch per thread that sorted it (requests were cut at
        those seams too: 204 requests of at most 1,000 records for 200,000 rows). The cursor stays referenced
        until the rows are read: DuckDB closes a relation whose cursor was collected. (The relation API is the
        `duckdb` package's, which adds it to every connection of its compiled core: see duckdb_driver.)"""
        import duckdb  # noqa: F401

        cursor = self._connection().cursor()
        relation = cursor.sql(sql, params=params) if params else cursor.sql(sql)
        return relation.to_arrow_table()

    def transaction(self, statements: Sequence[tuple[str, dict[str, Any]]], begin: str, commit: str,
                    rollback: str) -> None:
        """Run statements all or nothing on the direct connection (the transaction's words from a macro), on a
        cursor of their own: another thread's reads (the plan's pages) never run inside the transaction."""
        cursor = self._connection().cursor()
        try:
            self._execute(begin, on=cursor)
            try:
                for sql, params in statements:
                    self._execute(sql, params, on=cursor)
            except BaseException:
                self._execute(rollback, on=cursor)
                raise
            self._execute(commit, on=cursor)
        finally:
            cursor.close()

    def _connection(self) -> Any:
        if not self.direct or self._direct is None:
            raise RuntimeError("no direct connection")
        if self._duckdb is None:
            driver = duckdb_driver()
            missing = missing_duckdb_file(self.where, self._direct["path"])
            if missing is not None:
                raise missing
            try:
                self._duckdb = driver.connect(self._direct["path"])
            except driver.Error as exc:  # e.g. another process holds the file: one line, as dbt's path gives
                raise unreachable(self.where, exc) from None
        return self._duckdb

    def _execute(self, sql: str, params: dict[str, Any] | None = None, on: Any = None) -> Any:
        """One statement on `on` (a cursor of a transaction), else on a cursor of its own: a DuckDB cursor is a
        connection of its own, so statements of several threads (delivery, commits) never share a result."""
        cursor = on if on is not None else self._connection().cursor()
        return cursor.execute(sql, params) if params else cursor.execute(sql)

    @property
    def connected(self) -> bool:
        """Whether the direct connection is open."""
        return self._duckdb is not None

    @property
    def direct(self) -> bool:
        """Whether statements run without dbt (a DuckDB file profile whose connection was recorded)."""
        compiling = self._warehouse is None or self._compile_only
        return (self._allow_direct and compiling and self._direct is not None
                and self._direct.get("type") == "duckdb")

    def drop_direct(self) -> None:
        """Close the direct connection and run every later statement through the warehouse: dbt-duckdb opens the
        file its own way, and one process gets one way into a DuckDB file."""
        self._allow_direct = False
        if self._duckdb is not None:
            self._duckdb.close()
            self._duckdb = None

    def __enter__(self) -> CompiledSql:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """Close; an error of the warehouse's side (a locked file, a host that does not answer, a bad profile)
        leaves as the one line connect() gives, a UserError as it is, anything else (a bug) with its traceback."""
        self.close()
        if isinstance(exc, Exception) and not isinstance(exc, UserError) and from_warehouse(exc):
            raise unreachable(self.where, exc) from None

    def close(self) -> None:
        if self._dirty:
            payload = {"key": self.key, "direct": self._direct, "entries": self._entries}
            # (a read-only target dir: the next command compiles again)
            write_whole(self.path, json.dumps(payload, sort_keys=True).encode("utf-8"))
            self._dirty = False
        if self._duckdb is not None:
            self._duckdb.close()
            self._duckdb = None
        if self._warehouse is not None:
            if self._close_warehouse:
                self._warehouse.close()
            self._warehouse = None


def duckdb_driver() -> Any:
    """The module the direct connection is opened with: DuckDB's compiled core (`_duckdb`, DuckDB 1.4 and later)
    when it is there, else the `duckdb` package. The core has the connection, its statements, bind parameters,
    rows and errors, all a kept command runs; the package adds the relation API and Arrow over it in Python, 30-35
    ms of imports (DuckDB 2.0: its own dataclasses and 77 modules), a fifth of a 10k-row sync. It is imported
    where Arrow is read (CompiledSql.arrow); importing it later changes nothing for a connection already open."""
    try:
        return importlib.import_module("_duckdb")
    except ImportError:  # an older DuckDB: the package is its only way in
        return importlib.import_module("duckdb")


def _direct_spec(warehouse: Any) -> dict[str, Any] | None:
    """How to open the same database without dbt: only for a DuckDB file with no extras (extensions, attached
    databases, settings, plugins...), which a plain `duckdb.connect(path)` opens exactly as dbt-duckdb does."""
    credentials = warehouse.adapter.config.credentials
    if warehouse.adapter_type != "duckdb" or any(getattr(credentials, k, None) for k in _DUCKDB_EXTRAS):
        return None
    path = str(getattr(credentials, "path", "") or "")
    if not path or path == ":memory:" or path.startswith(("md:", "motherduck:")) or "://" in path:
        return None
    return {"type": "duckdb", "path": str((warehouse.where.project_dir / path).resolve())}
