"""Audience benchmark: our compiled audience model vs a hand-written SQL equivalent, same data, same run, DuckDB.

    python benchmarks/audience.py --users 1000000 --runs 3

Data: `sync_runner.demo.generate.generate(out, users=N, purchases_per_user=5.0)` (N users, ~20N track events, ~5N
purchases, ~5N product views), built into DuckDB tables by the plant-store example's staging models. The audience
has six conditions — a property, has-with-aggregate, an event count within 30 days, did not perform, a through
relation (users -> memberships -> subscriptions) and a nested or — written once as `dbt_studio.audience(...)` and
once by hand. Both run as `create table ... as` on one DuckDB connection, alternating, `--runs` times; the JSON
line has medians, both results' sizes (they must be equal) and the end-to-end `dbt run` of our model.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit, timed  # noqa: E402

sys.path.insert(0, str(ROOT))

AS_OF = "2026-01-01"

AUDIENCE = """{{ dbt_studio.audience(
    parent='stg_users',
    where={'and': [
        {'column': 'age', 'op': 'between', 'value': [25, 60]},
        {'has': 'stg_purchases', 'having': {'agg': 'sum', 'column': 'price', 'op': '>=', 'value': 100}},
        {'performed': 'stg_tracks', 'where': {'column': 'event', 'op': '=', 'value': 'page_viewed'},
         'within_days': 30, 'times': {'op': '>=', 'value': 2}},
        {'did not perform': 'stg_tracks', 'where': {'column': 'event', 'op': '=', 'value': 'order_completed'},
         'within_days': 14},
        {'has': 'stg_subscriptions', 'via': 'stg_memberships',
         'where': {'column': 'delivery', 'op': '!=', 'value': 'annually'}},
        {'or': [
            {'column': 'geo_region', 'op': 'in', 'value': ['Pacific Northwest', 'Southwest']},
            {'has': 'stg_purchases', 'where': {'column': 'used_coupon', 'op': '=', 'value': true}},
            {'not': {'performed': 'stg_product_viewed', 'within_days': 60}},
        ]},
    ]},
    columns=['geo_region', 'age'],
    as_of='""" + AS_OF + """',
) }}
"""

HAND = f"""
with spend as (
    select user_id from stg_purchases group by user_id having sum(price) >= 100
),
browsing as (
    select user_id from stg_tracks
    where event = 'page_viewed'
      and timestamp >= timestamp '{AS_OF}' - interval 30 day and timestamp <= timestamp '{AS_OF}'
    group by user_id having count(*) >= 2
)
select u.user_id, u.name, u.email, u.geo_region, u.age
from stg_users u
join spend s on s.user_id = u.user_id
join browsing b on b.user_id = u.user_id
where u.age between 25 and 60
  and not exists (
      select 1 from stg_tracks t
      where t.user_id = u.user_id and t.event = 'order_completed'
        and t.timestamp >= timestamp '{AS_OF}' - interval 14 day and t.timestamp <= timestamp '{AS_OF}')
  and exists (
      select 1 from stg_memberships m join stg_subscriptions x on x.product_id = m.product_id
      where m.user_id = u.user_id and x.delivery <> 'annually')
  and (u.geo_region in ('Pacific Northwest', 'Southwest')
       or exists (select 1 from stg_purchases p where p.user_id = u.user_id and p.used_coupon = true)
       or not exists (select 1 from stg_product_viewed v where v.user_id = u.user_id
                      and v.timestamp >= timestamp '{AS_OF}' - interval 60 day
                      and v.timestamp <= timestamp '{AS_OF}'))
"""


def dbt(project: Path, *args: str) -> float:
    exe = Path(sys.executable).parent / "dbt"
    cmd = [str(exe), *args, "--project-dir", str(project), "--profiles-dir", str(project), "--target", "duckdb",
           "--vars", f"{{raw_data_dir: '{(project / 'data').as_posix()}'}}"]
    seconds, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True,
                                                 env={"DO_NOT_TRACK": "1", "PATH": "/usr/bin:/bin",
                                                      "DBT_STUDIO_DUCKDB_PATH": str(project / "bench.duckdb")}))
    if proc.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None, help="Working directory (default: a temporary one).")
    args = ap.parse_args()

    import duckdb

    from sync_runner.demo.example import copy_example
    from sync_runner.demo.generate import generate

    work = args.work or Path(tempfile.mkdtemp(prefix="audience_bench_"))
    reuse = args.work is not None and (work / "project" / "bench.duckdb").is_file()
    project = work / "project"
    gen_seconds = staging_seconds = None
    if not reuse:  # a --work directory of an earlier run keeps its data and staging tables
        copy_example(project)
        # staging as tables, so both contenders read the same DuckDB tables (not Parquet)
        config = (project / "dbt_project.yml").read_text(encoding="utf-8")
        (project / "dbt_project.yml").write_text(
            config.replace("      +materialized: view", "      +materialized: table"), encoding="utf-8")
        gen_seconds, _ = timed(lambda: generate(project / "data", users=args.users, purchases_per_user=5.0))
        dbt(project, "deps")
        staging_seconds = dbt(project, "run", "-s", "path:models/staging")
    (project / "models" / "audiences" / "bench_audience.sql").write_text(AUDIENCE, encoding="utf-8")
    ours_e2e = [dbt(project, "run", "-s", "bench_audience") for _ in range(args.runs)]
    compiled = next((project / "target" / "compiled").rglob("bench_audience.sql")).read_text(encoding="utf-8")

    con = duckdb.connect(str(project / "bench.duckdb"))
    counts = {t: con.execute(f"select count(*) from stg_{t}").fetchone()[0]
              for t in ("users", "tracks", "purchases", "product_viewed", "memberships")}
    ours, hand = [], []
    for _ in range(args.runs):
        ours.append(timed(lambda: con.execute(f"create or replace table bench_ours as {compiled}"))[0])
        hand.append(timed(lambda: con.execute(f"create or replace table bench_hand as {HAND}"))[0])
    size_ours = con.execute("select count(*) from bench_ours").fetchone()[0]
    size_hand = con.execute("select count(*) from bench_hand").fetchone()[0]
    differ = con.execute("select count(*) from (select user_id from bench_ours except select user_id from bench_hand"
                         " union all select user_id from bench_hand except select user_id from bench_ours)"
                         ).fetchone()[0]
    con.close()
    emit({
        "benchmark": "audience", "users": args.users, "rows": counts, "runs": args.runs,
        "ours_sql_s": round(statistics.median(ours), 3), "hand_sql_s": round(statistics.median(hand), 3),
        "ratio": round(statistics.median(ours) / statistics.median(hand), 3),
        "ours_dbt_run_s": round(statistics.median(ours_e2e), 3),
        "audience_size": size_ours, "hand_size": size_hand, "same_members": differ == 0 and size_ours == size_hand,
        "generate_s": gen_seconds and round(gen_seconds, 1),
        "staging_build_s": staging_seconds and round(staging_seconds, 1),
    })
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
