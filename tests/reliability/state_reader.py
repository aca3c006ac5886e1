"""The sync state tables of a test project, read through one warehouse connection (a connection per query
would cost a second each)."""

from __future__ import annotations

from typing import Any


class StateReader:
    def __init__(self, project: Any) -> None:
        self.wh = project.warehouse()

    def __enter__(self) -> StateReader:
        self.session = self.wh.session()
        self.session.__enter__()
        self.schema = self.wh.call("sync_default_state_schema")
        self.db = self.rows("select current_database()")[0][0]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.session.__exit__(*exc)
        self.wh.close()

    def rows(self, sql: str) -> list[tuple]:
        _, table = self.wh.adapter.execute(sql, fetch=True)
        return [tuple(row.values()) for row in table.rows]

    def table(self, name: str) -> str:
        return str(self.wh.relation(self.db, self.schema, name))

    def everything(self, sync: str) -> dict[str, list[tuple]]:
        """Every state table a sync touches, sorted, for before/after comparisons."""
        out = {}
        for name in (f"{sync}__snapshot", f"{sync}__rejections", "sync_runs", "sync_changelog", "sync_configs",
                     "sync_locks"):
            out[name] = sorted(map(repr, self.rows(f"select * from {self.table(name)}")))
        return out
