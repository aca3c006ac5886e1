"""What the SaaS destination tests share: the YAML of a destinations file, state rows read straight from DuckDB,
a later day of changes, and batches built by hand."""

from __future__ import annotations

import json

from helpers.sync_project import SyncProject, person

NO_CHANGES = {"insert": 0, "update": 0, "delete": 0, "clear": 0}


def destinations_yaml(destinations: dict[str, dict]) -> str:
    lines = ["destinations:"]
    for name, spec in destinations.items():
        lines.append(f"  {name}:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in spec.items()]
    return "\n".join(lines) + "\n"


def state_rows(dp: SyncProject, sync: str, table: str) -> list[tuple]:
    """A state table read straight from the DuckDB file (SyncProject.state opens the adapter three times)."""
    import duckdb

    con = duckdb.connect(str(dp.p.root / "target" / "warehouse.duckdb"))
    try:
        return con.execute(f"select * from main_dbt_studio.{sync}__{table}").fetchall()
    finally:
        con.close()


def rejections_of(dp: SyncProject, sync: str) -> dict[str, tuple[str, int]]:
    return {r[0]: (r[1], r[2]) for r in state_rows(dp, sync, "rejections")}


def changed(rows: dict[str, dict]) -> dict[str, dict]:
    """A later day: 5 people gone, 4 with a new plan, one score emptied, 3 new."""
    after = {k: dict(v) for k, v in rows.items()}
    for key in sorted(after)[10:15]:
        del after[key]
    for key in sorted(after)[20:24]:
        after[key]["plan"] = "pro"
    after[sorted(after)[30]]["score"] = None
    for i in range(3):
        after[f"n{i}"] = person(900 + i)
    return after


def batch_of(op: str, records: list[dict]):
    import pyarrow as pa

    from sync_runner.sync.destinations import Batch

    return Batch(op, [str(i) for i in range(len(records))], list(range(len(records))), records, pa.table({}))
