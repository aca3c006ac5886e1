"""Change-data-capture benchmark: our warehouse-side plan (EXCEPT against the acknowledged snapshot, one
statement set in DuckDB) vs the diff-file approach (pull old and new as Arrow, diff by key with a per-row hash
in Python), same data, same run.

    python benchmarks/cdc.py --rows 5000000 --runs 3

The model has N rows x 20 columns; the new version updates 1%, deletes 0.5% and inserts 1%. Both sides must
find exactly the same inserts, updates and deletes; we also report how many rows leave the warehouse. Ours plans
as `dbt-studio sync` does: in its session settings (DuckDB's memory limit) and from the settled state a run that
committed everything leaves (its plan emptied).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dbt_project, emit, errors_of, median_of, peak_rss_mb, run_child, timed  # noqa: E402

COLUMNS = 20


def _column_sql(version: int) -> str:
    """19 value columns; version 2 changes every column of 1% of the rows (ids divisible by 100)."""
    parts = []
    for c in range(1, COLUMNS):
        changed = f"case when {version} = 2 and i % 100 = 0 then 'changed' else '' end"
        if c % 3 == 0:
            bump = f"case when {version} = 2 and i % 100 = 0 then 1 else 0 end"
            parts.append(f"(hash(i * {c}) % 100000)::bigint + ({bump}) as c{c}")
        elif c % 3 == 1:
            parts.append(f"'value-' || (hash(i + {c}) % 1000000)::varchar || {changed} as c{c}")
        else:
            parts.append(f"((hash(i - {c}) % 1000000) / 7.0)::double as c{c}")
    return ",\n    ".join(parts)


def prepare(work: Path, rows: int) -> None:
    """A dbt project on DuckDB whose state schema holds the acknowledged snapshot of version 1."""
    import duckdb

    from sync_runner.project.warehouse import Warehouse

    project = work / "project"
    where = dbt_project(project, "cdc_bench", work / "bench.duckdb")
    con = duckdb.connect(str(work / "bench.duckdb"))
    for version in (1, 2):
        deleted = "" if version == 1 else "where i % 200 <> 1"
        extra = rows // 100 if version == 2 else 0
        con.execute(f"""
            create or replace table model_v{version} as
            select i::varchar as id,
                   {_column_sql(version)}
            from range({rows + extra}) as t(i)
            {deleted}
        """)
        if version == 1:
            con.execute(f"delete from model_v1 where id::bigint >= {rows}")
    con.close()
    wh = Warehouse(where)
    sync = sync_args()
    model = wh.relation("bench", "main", "model_v1")
    with wh.session():
        wh.call("sync_prepare", sync=sync)
        counts = wh.call("sync_plan", sync=sync, source=model)
        wh.call("sync_commit", sync=sync, run_id="setup", acked=[[1, counts["insert"]]])
        wh.call("sync_record_fingerprint", sync=sync)
        wh.call("sync_plan_settled", sync=sync)  # what a sync that committed everything leaves
    wh.close()


def sync_args() -> dict:
    return {"name": "bench", "state_schema": "main_dbt_studio", "key_columns": ["id"],
            "columns": [f"c{c}" for c in range(1, COLUMNS)], "mode": "mirror", "on_delete": "delete",
            "fingerprint": "bench"}


def run_ours(work: Path) -> dict:
    from sync_runner.project.target import DbtTarget
    from sync_runner.project.warehouse import Warehouse

    project = work / "project"
    wh = Warehouse(DbtTarget(project, project, "bench"))
    model = wh.relation("bench", "main", "model_v2")
    with wh.session():
        wh.call("sync_session_start")  # as `dbt-studio sync` plans: under the package's DuckDB memory limit
        seconds, counts = timed(lambda: wh.call("sync_plan", sync=sync_args(), source=model))
        wh.call("sync_plan_settled", sync=sync_args())  # the next run starts from a settled state again
    wh.close()
    changed = counts["insert"] + counts["update"] + counts["delete"]
    return {"seconds": seconds, "insert": counts["insert"], "update": counts["update"], "delete": counts["delete"],
            "rows_out": changed, "peak_mb": peak_rss_mb()}


def run_diff_file(work: Path) -> dict:
    """Pull both versions whole, hash each row, compare by key."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    def go() -> dict:
        con = duckdb.connect(str(work / "bench.duckdb"), read_only=True)
        cols = ", ".join(f"c{c}" for c in range(1, COLUMNS))
        old = con.sql(f"select _key as id, {cols} from main_dbt_studio.bench__snapshot").to_arrow_table()
        new = con.sql(f"select id, {cols} from main.model_v2").to_arrow_table()
        con.close()

        def hashed(table: pa.Table) -> dict[str, int]:
            columns = [table.column(f"c{c}").to_numpy(zero_copy_only=False) for c in range(1, COLUMNS)]
            keys = table.column("id").to_pylist()
            digests = np.zeros(len(keys), dtype=np.uint64)
            for col in columns:
                digests = digests * np.uint64(1099511628211) ^ np.array([hash(v) for v in col], dtype=np.int64).view(
                    np.uint64)
            return dict(zip(keys, digests.tolist(), strict=True))

        a, b = hashed(old), hashed(new)
        inserts = sum(1 for k in b if k not in a)
        updates = sum(1 for k, h in b.items() if k in a and a[k] != h)
        deletes = sum(1 for k in a if k not in b)
        return {"insert": inserts, "update": updates, "delete": deletes, "rows_out": old.num_rows + new.num_rows}

    seconds, out = timed(go)
    return {"seconds": seconds, **out, "peak_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--contender", choices=["prepare", "ours", "diff_file"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender == "prepare":  # in a child: dbt-duckdb keeps the database file open
        prepare(args.work, args.rows)
        print(json.dumps({"prepared": True}))
        return
    if args.contender:
        print(json.dumps({"ours": run_ours, "diff_file": run_diff_file}[args.contender](args.work)))
        return
    work = Path(tempfile.mkdtemp(prefix="cdc_bench_"))
    try:
        here = str(Path(__file__).resolve())
        prepared = run_child([here, "--contender", "prepare", "--work", str(work), "--rows", str(args.rows)])
        if "error" in prepared:
            raise SystemExit(f"setup failed: {prepared['error']}")
        results: dict[str, list[dict]] = {"ours": [], "diff_file": []}
        for _ in range(args.runs):
            for name in results:
                results[name].append(run_child([here, "--contender", name, "--work", str(work)]))
        first = {name: next((r for r in runs if "insert" in r), {}) for name, runs in results.items()}
        ours, theirs = median_of(results["ours"], "seconds"), median_of(results["diff_file"], "seconds")
        same = all(first["ours"].get(k) == first["diff_file"].get(k) for k in ("insert", "update", "delete"))
        emit({
            "benchmark": "cdc", "rows": args.rows, "columns": COLUMNS,
            "inserts": first["ours"].get("insert"), "updates": first["ours"].get("update"),
            "deletes": first["ours"].get("delete"), "same_changes": same,
            "ours_s": ours, "diff_file_s": theirs,
            "ours_vs_diff_file": round(ours / theirs, 3) if ours and theirs else None,
            "ours_rows_out_of_warehouse": first["ours"].get("rows_out"),
            "diff_file_rows_out_of_warehouse": first["diff_file"].get("rows_out"),
            "ours_peak_mb": median_of(results["ours"], "peak_mb"),
            "diff_file_peak_mb": median_of(results["diff_file"], "peak_mb"), "runs": args.runs,
            "errors": errors_of(results),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
