"""A sync test project (tests/projects/sync) whose rows each test writes, and the syncs it runs.

Shared by the sync, destination, webhook and reliability tests.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import yaml

from sync_runner.sync.engine import Options, run_syncs

PROJECT = Path(__file__).resolve().parents[1] / "projects" / "sync"
COLUMNS = ("user_id", "name", "email", "plan", "score", "note")
MAPPED = ("email", "plan", "score")  # `name` and `note` are never mapped
MAPPINGS = {"id": "user_id", "email": "email", "plan": "plan", "score": "score"}
COMBOS = [("insert", "nothing"), ("update", "nothing"), ("update", "clear"), ("update", "delete"),
          ("upsert", "nothing"), ("upsert", "clear"), ("upsert", "delete"), ("mirror", "delete"), ("mirror", "clear")]


class SyncProject:
    def __init__(self, project, tmp: Path) -> None:
        self.p = project
        self.tmp = tmp

    def destinations(self, yaml_text: str) -> None:
        (self.p.root / "dbt_studio.yml").write_text(yaml_text, encoding="utf-8")

    def add_prod_target(self, path: Path) -> None:
        """A second DuckDB target, `prod`, in the project's profile, whose warehouse is the file at `path`."""
        profile = self.p.root / "profiles.yml"
        output = (f"    prod:\n      type: duckdb\n      path: \"{path.as_posix()}\"\n"
                  "      schema: main\n      threads: 1\n")
        profile.write_text(profile.read_text(encoding="utf-8") + output, encoding="utf-8")

    def build(self, rows: dict[str, dict], syncs: list[dict], primary_key="user_id") -> None:
        with (self.p.root / "seeds" / "people_rows.csv").open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(COLUMNS)
            for key in sorted(rows):
                out.writerow([key] + ["" if rows[key][c] is None else rows[key][c] for c in COLUMNS[1:]])
        self.declare(syncs, primary_key)
        self.p.dbt("build")

    def declare(self, syncs: list[dict], primary_key="user_id") -> None:
        """The model's syncs, in its YAML entry: dbt's partial parse then re-reads this one file, where a new
        `--vars` would re-parse the whole project (seconds per build)."""
        meta = {"dbt_studio": {"primary_key": primary_key, "syncs": syncs}}
        entry = {"version": 2, "models": [{"name": "people", "config": {"meta": meta}}]}
        (self.p.root / "models" / "_people.yml").write_text(json.dumps(entry, indent=1), encoding="utf-8")

    def sync(self, **options) -> dict:
        """Run the project's syncs; the SQL they run is kept in the project's sql_log (for the Snowflake lint)."""
        from dbt_common.events.event_manager_client import get_event_manager

        manager = get_event_manager()
        added = self.p._collect not in manager.callbacks  # dbt's last invocation may have left it registered
        if added:
            manager.callbacks.append(self.p._collect)
        try:
            reports = run_syncs(self.p.root, self.p.root, options=Options(**options))
        finally:
            if added:
                manager.callbacks.remove(self.p._collect)
        return {r.sync: r for r in reports}

    def rename_table(self, source: str, target: str) -> None:
        """`alter table <source> rename to <target's name>` as another client would: on DuckDB through the file's
        database in this process (the one a running sync uses: one instance per file in a process), on Snowflake in
        a session of its own (not dbt's adapter, which the sync is using)."""
        sql = f"alter table {source} rename to {target.rsplit('.', 1)[1]}"
        if self.p.adapter == "duckdb":
            with duckdb.connect(str(self.p.root / "target" / "warehouse.duckdb")) as con:
                con.execute(sql)
            return
        import snowflake.connector

        output = yaml.safe_load((self.p.root / "profiles.yml").read_text())["plant_store"]["outputs"]["snowflake"]
        keys = ("account", "user", "password", "host", "port", "protocol", "database", "warehouse", "schema")
        with snowflake.connector.connect(**{k: output[k] for k in keys}) as con:
            con.cursor().execute(sql)

    def state(self, sync: str, table: str) -> list[tuple]:
        return self.p.query(f"select * from {self.state_relation(sync, table)}")

    def state_relation(self, sync: str, table: str) -> str:
        wh = self.p.warehouse()
        try:
            with wh.session():
                schema = wh.call("sync_default_state_schema")
            db = self.p.query("select current_database()")[0][0]
            own = table in ("snapshot", "rejections", "plan")  # the sync's own tables; the others are shared
            return str(wh.relation(db, schema, f"{sync}__{table}" if own else table))
        finally:
            wh.close()


def person(i: int, **over) -> dict:
    row = {"name": f"Person {i}", "email": f"p{i}@mail.com", "plan": "free", "score": i, "note": "n"}
    row.update(over)
    return row


def file_ops(directory: Path, sync: str) -> list[dict[str, dict]]:
    """The records each run of a sync wrote, oldest first: {key: record}."""
    runs = []
    for path in sorted(directory.glob(f"{sync}-*.jsonl"), key=lambda p: p.stat().st_mtime_ns):
        runs.append({r["_key"]: r for r in map(json.loads, path.read_text().splitlines())})
    return runs


FRAGILE_SQL = """\
{{ config(materialized='table', meta={'dbt_studio': {'primary_key': 'user_id', 'syncs': [
    {'name': 'fragile_out', 'destination': 'out', 'mappings': {'id': 'user_id', 'email': 'email'}}]}}) }}

select user_id, email{% if var('break_fragile', false) %}, no_such_column{% endif %} from {{ ref('people_rows') }}
"""
PEOPLE_SYNC = [{"name": "people_out", "destination": "out", "mode": "upsert", "mappings": MAPPINGS}]


def add_fragile_model(root: Path, out: Path) -> None:
    """A second synced model that fails to build when `break_fragile` is true, and a file destination `out`."""
    (root / "models" / "fragile.sql").write_text(FRAGILE_SQL, encoding="utf-8")
    (root / "dbt_studio.yml").write_text(f"destinations:\n  out:\n    type: file\n    path: {out}\n",
                                         encoding="utf-8")


def dbt_vars(**extra) -> str:
    return json.dumps({"syncs": PEOPLE_SYNC, **extra})
