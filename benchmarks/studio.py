"""Studio benchmark: the Customer Studio's questions vs hand-written SQL of the same questions, DuckDB, same data,
same connection (the studio's own), same run.

    python benchmarks/studio.py --users 1000000 --runs 5 [--work DIR]

Data: `sync_runner.demo.generate.generate(out, users=N, purchases_per_user=5.0)` (N users, ~20N track events),
built into DuckDB tables by the plant-store example's staging models, and its five audiences built (as in
benchmarks/audience.py; a `--work` directory of an earlier run keeps them). Questions, each timed cold (the
studio's cache cleared before every run, so the figure is macro compile + query):

- funnel: the size after each of the 6 top-level conditions of benchmarks/audience.py's audience, the total and
  the sizes of a 3-way split (each condition's set kept, then one `studio_funnel_sql` query over them);
- overlap: the 5x5 overlap matrix of the example's five built audiences;
- breakdown: the 6-condition audience's members by `geo_region`, against the whole parent;
- as a marketer works (cache cleared before the first step only): the builder's request for the draft (its
  funnel, then its first 10 members), then one condition edited (the page-view window) and the funnel asked
  again, then the breakdown of the edited draft. The studio
  keeps each condition's parent keys (macros/studio/condition_sets.sql), so the edit evaluates one condition and
  the breakdown none; both answers are checked against the one-pass macros of the same question;
- page: p95 of `GET /audiences` and `GET /builder` (no warehouse query) through the ASGI app;
- memory: the app's own is the process's resident memory once the studio has started and served its pages
  (Python, dbt, the manifest, Starlette, an idle DuckDB), before any insight question; then the resident memory
  after the questions, DuckDB's own buffers at that point (duckdb_memory()) and the peak. DuckDB keeps memory it
  freed (its allocator's caches): the difference after the questions is mostly that, not the app's, which
  tracemalloc shows: the Python memory the questions left allocated (the result cache) and their Python peak.
The hand-written SQL answers the same questions (the JSON says whether every number matched). The machine's load
average at the start and the end is in the JSON: on a shared machine the figures move with it.

The data is prepared (generated and built) in a child process, so that the generator's memory is not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit, peak_rss_mb, timed  # noqa: E402

sys.path.insert(0, str(ROOT))

AS_OF = "2026-01-01"
CONDITIONS = [
    {"column": "age", "op": "between", "value": [25, 60]},
    {"has": "stg_purchases", "having": {"agg": "sum", "column": "price", "op": ">=", "value": 100}},
    {"performed": "stg_tracks", "where": {"column": "event", "op": "=", "value": "page_viewed"},
     "within_days": 30, "times": {"op": ">=", "value": 2}},
    {"did not perform": "stg_tracks", "where": {"column": "event", "op": "=", "value": "order_completed"},
     "within_days": 14},
    {"has": "stg_subscriptions", "via": "stg_memberships",
     "where": {"column": "delivery", "op": "!=", "value": "annually"}},
    {"or": [
        {"column": "geo_region", "op": "in", "value": ["Pacific Northwest", "Southwest"]},
        {"has": "stg_purchases", "where": {"column": "used_coupon", "op": "=", "value": True}},
        {"not": {"performed": "stg_product_viewed", "within_days": 60}},
    ]},
]
SPLITS = {"groups": {"a": 45, "b": 45, "holdout": 10}, "holdout": "holdout", "salt": "bench"}
SPEC = {"parent": "stg_users", "where": {"and": CONDITIONS}, "splits": SPLITS, "as_of": AS_OF}
# the same draft with one condition edited (page views within 21 days instead of 30)
EDITED = {**SPEC, "where": {"and": [*CONDITIONS[:2], {**CONDITIONS[2], "within_days": 21}, *CONDITIONS[3:]]}}
AUDIENCES = ["fiddle_leaf_visitors", "high_value_buyers", "monthly_subscribers", "owners_of_succulents",
             "viewed_not_bought"]

FLAGS = f"""
with spend as (select user_id, sum(price) as total from stg_purchases group by user_id),
browsing as (
    select user_id, count(*) as n from stg_tracks
    where event = 'page_viewed' and timestamp >= timestamp '{AS_OF}' - interval 30 day
      and timestamp <= timestamp '{AS_OF}'
    group by user_id
),
flags as (
    select u.user_id, u.geo_region,
        coalesce(u.age between 25 and 60, false) as c1,
        coalesce(s.total >= 100, false) as c2,
        coalesce(b.n, 0) >= 2 as c3,
        not exists (select 1 from stg_tracks t where t.user_id = u.user_id and t.event = 'order_completed'
                    and t.timestamp >= timestamp '{AS_OF}' - interval 14 day
                    and t.timestamp <= timestamp '{AS_OF}') as c4,
        exists (select 1 from stg_memberships m join stg_subscriptions x on x.product_id = m.product_id
                where m.user_id = u.user_id and x.delivery <> 'annually') as c5,
        coalesce(u.geo_region in ('Pacific Northwest', 'Southwest'), false)
            or exists (select 1 from stg_purchases p where p.user_id = u.user_id and p.used_coupon = true)
            or not exists (select 1 from stg_product_viewed v where v.user_id = u.user_id
                           and v.timestamp >= timestamp '{AS_OF}' - interval 60 day
                           and v.timestamp <= timestamp '{AS_OF}') as c6,
        cast('0x' || substr(md5('bench|' || cast(u.user_id as varchar)), 1, 7) as integer) % 10000 as bucket
    from stg_users u
    left join spend s on s.user_id = u.user_id
    left join browsing b on b.user_id = u.user_id
)"""

HAND_FUNNEL = FLAGS + """
select count(*) as n0,
    sum(case when c1 then 1 else 0 end) as n1,
    sum(case when c1 and c2 then 1 else 0 end) as n2,
    sum(case when c1 and c2 and c3 then 1 else 0 end) as n3,
    sum(case when c1 and c2 and c3 and c4 then 1 else 0 end) as n4,
    sum(case when c1 and c2 and c3 and c4 and c5 then 1 else 0 end) as n5,
    sum(case when c1 and c2 and c3 and c4 and c5 and c6 then 1 else 0 end) as n6,
    sum(case when c1 and c2 and c3 and c4 and c5 and c6 and bucket < 4500 then 1 else 0 end) as s1,
    sum(case when c1 and c2 and c3 and c4 and c5 and c6 and bucket >= 4500 and bucket < 9000 then 1 else 0 end) as s2,
    sum(case when c1 and c2 and c3 and c4 and c5 and c6 and bucket >= 9000 then 1 else 0 end) as s3
from flags
"""

HAND_BREAKDOWN = FLAGS + """
select cast(geo_region as varchar) as value, count(*) as parent_rows,
    sum(case when c1 and c2 and c3 and c4 and c5 and c6 then 1 else 0 end) as members
from flags
group by geo_region
order by members desc, parent_rows desc, value
limit 20
"""


def hand_overlap() -> str:
    joins = "\n".join(f"left join (select distinct user_id from {a}) a{i} on a{i}.user_id = u.user_id"
                      for i, a in enumerate(AUDIENCES, 1))
    flags = ", ".join(f"case when a{i}.user_id is not null then 1 else 0 end as f{i}"
                      for i in range(1, len(AUDIENCES) + 1))
    sums = ["count(*) as n0"] + [f"sum(f{i} * f{j}) as o{i}_{j}" if i != j else f"sum(f{i}) as o{i}_{i}"
                                 for i in range(1, 6) for j in range(i, 6)]
    return f"select {', '.join(sums)}\nfrom (select {flags}\nfrom stg_users u\n{joins}) as flags"


def prepare(work: Path, users: int) -> Path:
    from sync_runner.demo.example import copy_example
    from sync_runner.demo.generate import generate

    project = work / "project"
    if (project / "bench.duckdb").is_file() and (project / "target" / "manifest.json").is_file():
        return project
    copy_example(project)
    config = (project / "dbt_project.yml").read_text(encoding="utf-8")
    (project / "dbt_project.yml").write_text(config.replace("      +materialized: view", "      +materialized: table"),
                                             encoding="utf-8")
    generate(project / "data", users=users, purchases_per_user=5.0)
    for args in (("deps",), ("run", "-s", "path:models/staging"), ("build", "-s", "path:models/audiences")):
        dbt(project, *args)
    return project


def dbt(project: Path, *args: str) -> None:
    cmd = [str(Path(sys.executable).parent / "dbt"), *args, "--project-dir", str(project), "--profiles-dir",
           str(project), "--target", "duckdb", "--vars", f"{{raw_data_dir: '{(project / 'data').as_posix()}'}}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "DO_NOT_TRACK": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed:\n{proc.stdout[-3000:]}")


def rss_mb() -> float:
    """Resident memory of this process now (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", type=Path, default=None, help="Working directory (kept; reused when prepared).")
    ap.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="studio_bench_"))
    os.environ["DBT_STUDIO_DUCKDB_PATH"] = str(work / "project" / "bench.duckdb")
    if args.prepare_only:
        prepare(work, args.users)
        return
    load_start = os.getloadavg()
    subprocess.run([sys.executable, __file__, "--prepare-only", "--users", str(args.users), "--work", str(work)],
                   check=True)
    project = work / "project"

    from starlette.testclient import TestClient

    from sync_runner.project.target import DbtTarget
    from sync_runner.serve.studio.app import Settings, Studio, build_app

    settings = Settings(DbtTarget(project, project, "duckdb"), allowed_hosts=("testserver",), query_timeout=600)
    start_rss = rss_mb()
    studio = Studio(settings)
    queries = studio.queries
    client = TestClient(build_app(settings, studio))
    client.get("/audiences")
    page_times = []
    for i in range(200):
        url = "/audiences" if i % 2 == 0 else "/builder"
        t0 = time.perf_counter()
        assert client.get(url).status_code == 200
        page_times.append(time.perf_counter() - t0)
    page_times.sort()
    app_rss = rss_mb()

    def hand(sql: str) -> tuple:
        return queries.worker.submit(lambda w: w.fetch(sql), timeout=600).rows

    def cold(fn):
        queries.clear_cache()
        return fn()

    results: dict[str, list[float]] = {k: [] for k in ("funnel", "funnel_hand", "overlap", "overlap_hand",
                                                       "breakdown", "breakdown_hand", "funnel_edit",
                                                       "breakdown_warm", "builder_request")}
    answers = {}
    trees = [{"in audience": a} for a in AUDIENCES]
    for _ in range(args.runs):
        t, answers["funnel"] = timed(lambda: cold(lambda: queries.funnel(SPEC, key="bench")))
        results["funnel"].append(t)
        t, answers["funnel_hand"] = timed(lambda: hand(HAND_FUNNEL))
        results["funnel_hand"].append(t)
        t, answers["overlap"] = timed(lambda: cold(lambda: queries.overlap("stg_users", trees)))
        results["overlap"].append(t)
        t, answers["overlap_hand"] = timed(lambda: hand(hand_overlap()))
        results["overlap_hand"].append(t)
        t, answers["breakdown"] = timed(lambda: cold(lambda: queries.breakdown(SPEC, "geo_region")))
        results["breakdown"].append(t)
        t, answers["breakdown_hand"] = timed(lambda: hand(HAND_BREAKDOWN))
        results["breakdown_hand"].append(t)
        # as a marketer works: the builder's request for a draft (its funnel, then its first members), then one
        # condition edited, then a breakdown of the edit
        t, _ = timed(lambda: cold(lambda: (queries.funnel(SPEC, key="bench"), queries.members(SPEC))))
        results["builder_request"].append(t)
        t, answers["funnel_edit"] = timed(lambda: queries.funnel(EDITED, key="bench"))
        results["funnel_edit"].append(t)
        t, answers["breakdown_warm"] = timed(lambda: queries.breakdown(EDITED, "geo_region"))
        results["breakdown_warm"].append(t)

    f, fh = answers["funnel"], answers["funnel_hand"][0]
    funnel_same = [f["total"], *f["steps"], *f["splits"].values()] == [int(v) for v in fh]
    o, oh = answers["overlap"], answers["overlap_hand"][0]
    flat = [o["total"]] + [o["matrix"][i][j] for i in range(5) for j in range(i, 5)]
    overlap_same = flat == [int(v) for v in oh]
    breakdown_same = [tuple(r) for r in answers["breakdown"].rows] == [
        (r[0], int(r[1]), int(r[2])) for r in answers["breakdown_hand"]]

    # the edited draft's answers from the one-pass macros (no kept sets), asked directly
    nodes = queries.worker.submit(queries._nodes_with_columns, timeout=600)
    one_pass = hand(queries.worker.submit(lambda w: w.call("studio_funnel_sql", nodes=nodes, spec=EDITED)))[0]
    e = answers["funnel_edit"]
    edit_same = [e["total"], *e["steps"], *e["splits"].values()] == [int(v) for v in one_pass]
    one_pass = hand(queries.worker.submit(lambda w: w.call("studio_breakdown_sql", nodes=nodes, spec=EDITED,
                                                           column="geo_region", limit=20)))
    breakdown_edit_same = [tuple(r) for r in answers["breakdown_warm"].rows] == [tuple(r) for r in one_pass]

    duckdb_mb = float(hand("select coalesce(sum(memory_usage_bytes), 0) / 1048576.0 from duckdb_memory()")[0][0])
    rss_after = rss_mb()
    # what the questions leave in the app's Python memory (the result cache), and their Python peak
    tracemalloc.start()
    queries.clear_cache()
    queries.funnel(SPEC, key="bench")
    queries.overlap("stg_users", trees)
    queries.breakdown(SPEC, "geo_region")
    client.get("/audiences")
    py_kept, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    counts = dict(hand("select 'users', count(*) from stg_users union all select 'tracks', count(*) from stg_tracks"))
    studio.close()

    def med(key: str) -> float:
        return round(statistics.median(results[key]), 3)

    emit({
        "benchmark": "studio", "users": args.users, "rows": counts, "runs": args.runs,
        "funnel_6_conditions_with_splits_s": med("funnel"), "funnel_hand_sql_s": med("funnel_hand"),
        "overlap_5_audiences_s": med("overlap"), "overlap_hand_sql_s": med("overlap_hand"),
        "breakdown_s": med("breakdown"), "breakdown_hand_sql_s": med("breakdown_hand"),
        "builder_request_funnel_and_members_s": med("builder_request"),
        "funnel_after_one_edit_s": med("funnel_edit"), "breakdown_of_the_edited_draft_s": med("breakdown_warm"),
        "page_p95_ms": round(page_times[int(len(page_times) * 0.95) - 1] * 1000, 1),
        "page_median_ms": round(statistics.median(page_times) * 1000, 1),
        "app_memory_mb": round(app_rss, 1), "rss_before_studio_mb": round(start_rss, 1),
        "rss_after_questions_mb": round(rss_after, 1), "duckdb_memory_mb": round(duckdb_mb, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "questions_python_kept_mb": round(py_kept / 1048576, 2),
        "questions_python_peak_mb": round(py_peak / 1048576, 2),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "same_answers": {"funnel": funnel_same, "overlap": overlap_same, "breakdown": breakdown_same,
                         "funnel_after_edit": edit_same, "breakdown_of_edit": breakdown_edit_same},
        "audience_size": f["size"], "funnel_steps": f["steps"],
    })


if __name__ == "__main__":
    main()
