"""Identity stitching benchmark: our id_stitcher (through dbt, DuckDB) vs scipy and splink, same graph, same run.

    python benchmarks/stitch.py --persons 1000000 --runs 3

The graph follows NOTES.md: each person a random tree of ids (1-3 anonymous ids, a user id, most an email),
anonymous-only visitors, monotone chains of 50 and 500 ids (ids and times increase along the chain), and junk
hubs ('unknown', '', 'null' on ~10% of persons) that screening must drop. Each contender runs in its own
process (peak memory is its own) `--runs` times; the JSON line has medians.

Ours is measured five ways: a full build of the graph; an incremental run after appending 1% more rows (half
of them new people, half touching existing clusters: new anonymous ids of known users and links that merge two
people, with timestamps spread over the whole year, so most are older than the first build's newest row, and a
later load time), reading from its `loaded_at` watermark; the same incremental run of a model without `loaded_at`,
which reads every row (incremental_full_read_*); a full rebuild of base + appended rows, whose partition every
incremental output must equal; and the full build and incremental run again in one process that has run dbt
before (warm_*), as `dbt-studio serve` runs its schedules, without dbt's per-process start-up cost. The Snowflake
statement count is that of the same builds (full, then incremental) on fakesnow for a small graph
(`--snowflake-persons`), counted from dbt's query log.

Our runs import dbt's modules before the clock starts, as scipy's run imports its libraries (the import is reported
as ours_import_s), and read their rows through a folder whose name never changes, so dbt parses the project
partially from the second run on. `--memory-limit 8GB` runs our builds under the stitcher's DuckDB cap.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dbt_project, emit, errors_of, median_of, peak_rss_mb, run_child, timed  # noqa: E402

JUNK = ("unknown", "", "null")


BASE_LOADED_AT = 1_767_225_600  # 2026-01-01: when the graph's rows were loaded; the 1% more a day later
DELTA_LOADED_AT = BASE_LOADED_AT + 86_400


def loaded_at(rows: int, epoch_seconds: int):
    import pyarrow as pa

    return pa.array([epoch_seconds * 1_000_000] * rows, pa.timestamp("us"))


def make_graph(persons: int, out: Path, seed: int = 1) -> dict[str, int]:
    """Rows (anonymous_id, user_id, email, ts, loaded_at) as Parquet; each row links the ids it carries."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)

    def ids(prefix: str, numbers) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")

    tables = []
    p = np.arange(persons)
    identified = rng.random(persons) < 0.8
    n_anon = rng.integers(1, 4, persons)
    # anonymous id -> user id rows (anonymous-only visitors have no user id)
    owner = np.repeat(p, n_anon)
    anon = np.arange(owner.size)
    user = ids("u", owner)
    user = pc.if_else(pa.array(identified[owner]), user, pa.nulls(owner.size, pa.string()))
    ts = rng.integers(0, 86400 * 365, owner.size)
    tables.append(pa.table({"anonymous_id": ids("a", anon), "user_id": user, "email": pa.nulls(owner.size, pa.string()),
                            "ts": ts}))
    # user id -> email rows
    with_email = p[identified & (rng.random(persons) < 0.85)]
    tables.append(pa.table({"anonymous_id": pa.nulls(with_email.size, pa.string()), "user_id": ids("u", with_email),
                            "email": ids("e", with_email), "ts": rng.integers(0, 86400 * 365, with_email.size)}))
    # junk hubs on ~10% of persons
    junk_people = p[rng.random(persons) < 0.10]
    junk = pa.array([JUNK[i % 3] for i in range(junk_people.size)], pa.string())
    tables.append(pa.table({"anonymous_id": pa.nulls(junk_people.size, pa.string()), "user_id": ids("u", junk_people),
                            "email": junk, "ts": rng.integers(0, 86400 * 365, junk_people.size)}))
    # monotone chains: per 100k persons, ten of 50 ids and one of 500 (at least one of each)
    chains = [50] * max(1, persons // 10_000) + [500] * max(1, persons // 100_000)
    start = 0
    for length in chains:
        nodes = np.arange(start, start + length)
        start += length
        rows_a, rows_u = [], []
        for i in range(length - 1):  # node i (anon if even, user if odd) -- node i+1
            a, u = (nodes[i], nodes[i + 1]) if i % 2 == 0 else (nodes[i + 1], nodes[i])
            rows_a.append(a)
            rows_u.append(u)
        tables.append(pa.table({"anonymous_id": ids("ca", rows_a), "user_id": ids("cu", rows_u),
                                "email": pa.nulls(len(rows_a), pa.string()),
                                "ts": np.arange(len(rows_a)) * 60 + start * 60}))
    table = pa.concat_tables(tables)
    table = table.set_column(3, "ts", pc.cast(pc.multiply(table["ts"], 1_000_000), pa.timestamp("us")))
    table = table.append_column("loaded_at", loaded_at(table.num_rows, BASE_LOADED_AT))
    pq.write_table(table, out)
    return {"rows": table.num_rows, "chains_50": chains.count(50), "chains_500": chains.count(500)}


def make_delta(persons: int, base_rows: int, out: Path, seed: int = 2) -> dict[str, int]:
    """1% of the base's rows more: half new people (a new anonymous id and a new user id), half touching existing
    ones (a new anonymous id of a known user; every tenth also carries another person's email, merging the two
    when that person has one), timestamps uniform over the year (late rows: most are older than the base's
    newest row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = max(2, base_rows // 100)

    def ids(prefix: str, numbers) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")

    fresh = n // 2  # new people: a new anonymous id with a new user id
    people = np.arange(persons, persons + fresh)
    touching = n - fresh
    known = rng.integers(0, persons, touching)
    anon = np.arange(10**9, 10**9 + fresh + touching)  # never used by the base
    merge = rng.random(touching) < 0.1
    other = rng.integers(0, persons, touching)
    table = pa.table({
        "anonymous_id": pa.concat_arrays([ids("a", anon[:fresh]), ids("a", anon[fresh:])]),
        "user_id": pa.concat_arrays([ids("u", people), ids("u", known)]),
        "email": pa.concat_arrays([pa.nulls(fresh, pa.string()),
                                   pc.if_else(pa.array(merge), ids("e", other), pa.nulls(touching, pa.string()))]),
        "ts": pc.cast(pa.array(rng.integers(0, 86400 * 365, n) * 1_000_000), pa.timestamp("us")),
        "loaded_at": loaded_at(n, DELTA_LOADED_AT),
    })
    pq.write_table(table, out)
    return {"rows": table.num_rows, "new_people": fresh, "touching": touching, "merging": int(merge.sum())}


# -- contenders (each runs in its own process) -------------------------------------------------------------------

def run_ours(data: Path, work: Path, mode: str = "full", project_name: str = "ours",
             memory_limit: str | None = None) -> dict:
    """One dbt run of the stitcher: `full` (--full-refresh) or `incremental` (on the output a full run left),
    under `dbt_studio_stitch_duckdb_memory_limit` = `memory_limit` (None: the package's default, 40% for
    a full build and none for an incremental run; '': DuckDB's own limit)."""
    from sync_runner.demo.example import copy_project  # noqa: F401  (imported for its side effect: the package path)
    from sync_runner.project.target import DbtTarget, run_dbt

    project = work / project_name
    paths = [data.as_posix()]  # a file or a glob: DuckDB's read_parquet expands it
    cap = {} if memory_limit is None else {"dbt_studio_stitch_duckdb_memory_limit": memory_limit}
    where = DbtTarget(project_dir=project, profiles_dir=project, target="bench", vars={"rows": paths, **cap})
    messages: list[str] = []

    def collect(event) -> None:
        if event.info.name == "JinjaLogInfo":
            messages.append(event.info.msg)

    # dbt's modules are imported before the clock starts, as scipy's, numpy's and pyarrow's are for scipy: the
    # time is the build's (parse the project, read, stitch, write), not the interpreter's. Their import time is
    # reported beside it (ours_import_s).
    import_seconds, _ = timed(lambda: __import__("dbt.cli.main"))
    args = ["run", "--full-refresh"] if mode == "full" else ["run"]
    seconds, result = timed(lambda: run_dbt(args, where, callbacks=[collect]))
    model_seconds = result.result.results[0].execution_time
    import duckdb

    con = duckdb.connect(str(project / "bench.duckdb"))
    clusters, ids = con.execute("select count(distinct main_id), count(*) from main.stitched").fetchone()
    con.close()
    rounds = next((int(m.split(" in ")[1].split()[0]) for m in messages if "converged in" in m), None)
    spilled = next((int(m.split(": ")[-1].split()[0]) for m in messages if "in DuckDB temporary files" in m), None)
    return {"seconds": seconds, "model_seconds": model_seconds, "import_seconds": import_seconds, "rounds": rounds,
            "spilled_mb": spilled, "clusters": clusters, "ids": ids, "peak_mb": peak_rss_mb()}


def run_ours_warm(folder: Path, delta: Path, work: Path, project_name: str = "ours_warm",
                  warmup: Path | None = None, memory_limit: str | None = None) -> dict:
    """A full build and then an incremental run (after `delta` joins `folder`) in one process that has already
    run dbt, as `dbt-studio serve` runs its schedules: dbt's per-process cost (building its JSON schemas and
    serializers, its lazy imports, compiling the package's macros' templates) is paid by the warm-up, a build of
    the small `warmup` project, not by the timed runs. Each run still parses (partially), writes its artifacts
    and opens the database as the cold runs do: the database is closed between runs, as serve closes it after
    each job."""
    from sync_runner.demo.example import copy_project  # noqa: F401  (imported for its side effect: the package path)
    from sync_runner.project.target import DbtTarget, release_dbt_duckdb, run_dbt

    cap = {} if memory_limit is None else {"dbt_studio_stitch_duckdb_memory_limit": memory_limit}

    def target(project: Path, rows: Path) -> DbtTarget:
        return DbtTarget(project_dir=project, profiles_dir=project, target="bench",
                         vars={"rows": [(rows / "*.parquet").as_posix()], **cap})

    if warmup is not None:
        run_dbt(["run", "--full-refresh"], target(work / "warmup", warmup))
        release_dbt_duckdb()
    where = target(work / project_name, folder)
    run_dbt(["parse"], where)  # the project was parsed before, as by the schedules serve ran earlier
    full_seconds, full = timed(lambda: run_dbt(["run", "--full-refresh"], where))
    release_dbt_duckdb()  # as serve does after each job: the next run opens the file again, its buffers empty
    (folder / delta.name).symlink_to(delta)
    inc_seconds, inc = timed(lambda: run_dbt(["run"], where))
    return {"full_seconds": full_seconds, "full_model_seconds": full.result.results[0].execution_time,
            "incremental_seconds": inc_seconds, "incremental_model_seconds": inc.result.results[0].execution_time,
            "incremental_vs_full": inc_seconds / full_seconds}


MODEL = """
    {{ config(materialized='id_stitcher') }}
    {{ dbt_studio.id_edges(sources=[{'relation': "read_parquet(" ~ var('rows') ~ ")",
                                     'name': 'rows', 'ids': ['anonymous_id', 'user_id', 'email'],
                                     'timestamp': 'ts', 'loaded_at': 'loaded_at'}]) }}
"""
FULL_READ_MODEL = MODEL.replace(", 'loaded_at': 'loaded_at'", "")  # no load time: every run reads every row
# `--caps`: the caps of the package's example id graph (integration_tests), which every anonymous_id-user_id and
# user_id-email link falls under: their links are then also kept in `<model>__cap_links` and counted each run
CAPS = ", id_types={'anonymous_id': {'max_edges': {'user_id': 5}}, 'user_id': {'max_edges': {'email': 3}}}"


def with_caps(model: str) -> str:
    return model.replace("}])", "}]" + CAPS + ")")


def prepare_ours(work: Path, project_name: str = "ours", model: str = MODEL) -> None:
    project = work / project_name
    dbt_project(project, "stitch_bench", project / "bench.duckdb", {"stitched.sql": textwrap.dedent(model)})


def same_partition(first: Path, second: Path) -> bool:
    """Whether two stitched outputs hold the same identifiers in the same clusters (main_ids may differ)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"attach '{first.as_posix()}' as a (read_only); attach '{second.as_posix()}' as b (read_only)")
    pairs, left, right, only_a, only_b = con.execute("""
        select count(distinct (a.main_id, b.main_id)), count(distinct a.main_id), count(distinct b.main_id),
               count(*) filter (where b.main_id is null), count(*) filter (where a.main_id is null)
        from a.main.stitched as a
        full join b.main.stitched as b on a.id_type = b.id_type and a.id_value = b.id_value
    """).fetchone()
    con.close()
    return only_a == only_b == 0 and pairs == left == right


def snowflake_statements(persons: int, work: Path, caps: bool = False) -> dict:
    """Statements the same builds send to Snowflake (fakesnow), for a graph of `persons`: a full build, then an
    incremental run after the 1% more rows. Counted from dbt's query log (those run for the model)."""
    import csv

    import fakesnow
    import pyarrow.parquet as pq

    from sync_runner.project.target import DbtTarget, run_dbt

    project = work / "snowflake"
    data = work / "snowflake_data"
    data.mkdir(parents=True, exist_ok=True)
    graph = make_graph(persons, data / "rows_base.parquet")
    make_delta(persons, graph["rows"], data / "rows_delta.parquet")
    (project / "seeds").mkdir(parents=True, exist_ok=True)

    def seed(files: list[Path]) -> None:
        with (project / "seeds" / "stitch_rows.csv").open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["anonymous_id", "user_id", "email", "ts", "loaded_at"])
            for f in files:
                for row in pq.read_table(f).to_pylist():
                    out.writerow([row["anonymous_id"] or "", row["user_id"] or "", row["email"] or "",
                                  row["ts"].strftime("%Y-%m-%d %H:%M:%S"),
                                  row["loaded_at"].strftime("%Y-%m-%d %H:%M:%S")])

    model = (with_caps(MODEL) if caps else MODEL).replace('"read_parquet(" ~ var(\'rows\') ~ ")"', "ref('stitch_rows')")
    counts: dict[str, int] = {}
    with fakesnow.server() as conn:
        # uvicorn logs each request to stdout, where this script's one JSON line goes
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
        dbt_project(project, "stitch_bench", project / "unused.duckdb", {"stitched.sql": textwrap.dedent(model)})
        (project / "dbt_project.yml").write_text((project / "dbt_project.yml").read_text()
                                                 + "seed-paths: ['seeds']\n")
        (project / "profiles.yml").write_text(textwrap.dedent(f"""
            bench:
              target: bench
              outputs:
                bench: {{type: snowflake, account: {conn['account']}, user: {conn['user']},
                         password: {conn['password']}, host: {conn['host']}, port: {conn['port']}, protocol: http,
                         database: BENCH, warehouse: WH, schema: ANALYTICS, threads: 1}}
        """))
        where = DbtTarget(project_dir=project, profiles_dir=project, target="bench")
        for mode, files in (("full", [data / "rows_base.parquet"]),
                            ("incremental", [data / "rows_base.parquet", data / "rows_delta.parquet"])):
            seed(files)
            run_dbt(["seed", "--full-refresh"], where)
            sql: list[str] = []

            def collect(event, sql=sql) -> None:
                if event.info.name == "SQLQuery" and "model.stitch_bench.stitched" in event.data.sql:
                    sql.append(event.data.sql)

            run_dbt(["run", "-s", "stitched"] + (["--full-refresh"] if mode == "full" else []), where,
                    callbacks=[collect])
            counts[mode] = len(sql)
    return counts


def run_scipy(data: Path, work: Path) -> dict:
    """End to end: read the rows from DuckDB, screen the same junk, factorize, label, write labels back."""
    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    def go() -> tuple[int, int]:
        con = duckdb.connect(str(work / "scipy.duckdb"))
        rows = con.sql(f"select anonymous_id, user_id, email from read_parquet('{data.as_posix()}')").to_arrow_table()
        junk = pa.array(list(JUNK))
        cols = []
        for name in ("anonymous_id", "user_id", "email"):
            col = pc.utf8_trim_whitespace(rows[name])
            col = pc.utf8_lower(col) if name == "email" else col
            col = pc.if_else(pc.is_in(pc.utf8_lower(col), value_set=junk), pa.nulls(len(col), pa.string()), col)
            cols.append(pc.binary_join_element_wise(name + ":", col, ""))
        every = pa.chunked_array([c for col in cols for c in col.chunks]).dictionary_encode().combine_chunks()
        codes = pc.fill_null(every.indices, -1).to_numpy(zero_copy_only=False)
        valid = codes >= 0
        n = len(rows)
        code = [codes[i * n:(i + 1) * n] for i in range(3)]
        ok = [valid[i * n:(i + 1) * n] for i in range(3)]
        src, dst = [], []
        for i, j in ((0, 1), (0, 2), (1, 2)):
            both = ok[i] & ok[j]
            src.append(code[i][both])
            dst.append(code[j][both])
        nodes = len(every.dictionary)
        src, dst = np.concatenate(src), np.concatenate(dst)
        graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(nodes, nodes))
        count, labels = connected_components(graph, directed=False)
        used = np.unique(codes[valid])
        out = pa.table({"node": every.dictionary.take(pa.array(used)), "label": pa.array(labels[used])})
        con.register("labels_arrow", out)
        con.execute("create or replace table labels as select * from labels_arrow")
        con.close()
        return int(np.unique(labels[used]).size), int(used.size)

    seconds, (clusters, ids) = timed(go)
    return {"seconds": seconds, "clusters": clusters, "ids": ids, "peak_mb": peak_rss_mb()}


def run_splink(data: Path, work: Path) -> dict:
    """splink's connected components (DuckDB backend) on the same screened edges."""
    import duckdb
    from splink import DuckDBAPI
    from splink.internals.connected_components import solve_connected_components

    con = duckdb.connect(str(work / "splink.duckdb"))
    junk = ", ".join(f"'{j}'" for j in JUNK)
    def node(column: str, value: str) -> str:
        return f"case when lower({value}) in ({junk}) then null else '{column}:' || {value} end"

    con.execute(f"""
        create or replace table rows_ as
        select {node('anonymous_id', 'trim(anonymous_id)')} as a,
               {node('user_id', 'trim(user_id)')} as u,
               {node('email', 'lower(trim(email))')} as e
        from read_parquet('{data.as_posix()}')
    """)
    con.execute("""
        create or replace table edges_ as
        select a as node_id_l, u as node_id_r from rows_ where a is not null and u is not null
        union all select a, e from rows_ where a is not null and e is not null
        union all select u, e from rows_ where u is not null and e is not null
    """)
    con.execute("""
        create or replace table nodes_ as
        select distinct node_id from (select a as node_id from rows_ union all select u from rows_
                                      union all select e from rows_) where node_id is not null
    """)
    db_api = DuckDBAPI(connection=con)
    nodes = db_api.table_to_splink_dataframe("nodes_", "nodes_")
    edges = db_api.table_to_splink_dataframe("edges_", "edges_")

    def go():
        out = solve_connected_components(nodes, edges, "node_id", "node_id_l", "node_id_r", db_api, None)
        return con.execute(f"select count(distinct cluster_id), count(*) from {out.physical_name}").fetchone()

    seconds, (clusters, ids) = timed(go)
    return {"seconds": seconds, "clusters": clusters, "ids": ids, "peak_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--caps", action="store_true", help="the id graph with max_edges caps (the example project's)")
    parser.add_argument("--memory-limit", default=None,
                        help="our builds under dbt_studio_stitch_duckdb_memory_limit, e.g. 4GB, or '' for DuckDB's "
                             "own limit (default: the package's: 40%% on full builds, none on incremental runs)")
    parser.add_argument("--snowflake-persons", type=int, default=2_000,
                        help="graph size of the Snowflake (fakesnow) statement count; 0 skips it")
    parser.add_argument("--splink-python", default=os.environ.get("SPLINK_PYTHON"),
                        help="a Python with splink installed (its own virtual environment)")
    parser.add_argument("--contender", choices=["ours", "ours_incremental", "ours_warm", "scipy", "splink"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--delta", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--project", default="ours", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.contender:
        if args.contender == "ours_warm":
            print(json.dumps(run_ours_warm(args.data, args.delta, args.work, args.project, args.warmup,
                                           args.memory_limit)))
        elif args.contender in ("ours", "ours_incremental"):
            mode = "full" if args.contender == "ours" else "incremental"
            print(json.dumps(run_ours(args.data, args.work, mode, args.project, args.memory_limit)))
        else:
            fn = {"scipy": run_scipy, "splink": run_splink}[args.contender]
            print(json.dumps(fn(args.data, args.work)))
        return

    work = Path(tempfile.mkdtemp(prefix="stitch_bench_"))
    try:
        base = work / "rows_base.parquet"
        graph = make_graph(args.persons, base)
        delta_file = work / "rows_delta.parquet"
        delta = make_delta(args.persons, graph["rows"], delta_file)
        capped = with_caps if args.caps else (lambda model: model)
        for name in ("ours", "ours_rebuild"):
            prepare_ours(work, name, capped(MODEL))
        prepare_ours(work, "ours_full_read", capped(FULL_READ_MODEL))
        prepare_ours(work, "ours_warm", capped(MODEL))
        prepare_ours(work, "warmup", capped(MODEL))
        warmup_rows = work / "warmup_rows"
        warmup_rows.mkdir()
        make_graph(1_000, warmup_rows / "rows.parquet")
        here = str(Path(__file__).resolve())

        def feed(project: str, files: list[Path]) -> Path:
            """The project's rows as one folder holding `files`: its `rows` var never changes, so from the second
            run on dbt parses the project partially, as a scheduled run of an unchanged project does."""
            folder = work / f"{project}_rows"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            for f in files:
                (folder / f.name).symlink_to(f)
            return folder / "*.parquet"

        def child(contender: str, data: Path, project: str = "ours") -> dict:
            cap = [] if args.memory_limit is None else ["--memory-limit", args.memory_limit]
            return run_child([here, "--contender", contender, "--data", str(data), "--work", str(work),
                              "--project", project, *cap])

        results: dict[str, list[dict]] = {"ours": [], "ours_incremental": [], "ours_full_read": [],
                                          "ours_incremental_full_read": [], "ours_rebuild": [], "ours_warm": [],
                                          "scipy": [], "splink": []}
        equal, equal_full_read, equal_warm = [], [], []
        for run in range(args.runs):
            results["ours"].append(child("ours", feed("ours", [base])))
            results["scipy"].append(child("scipy", base))
            results["ours_incremental"].append(child("ours_incremental", feed("ours", [base, delta_file])))
            results["ours_full_read"].append(child("ours", feed("ours_full_read", [base]), "ours_full_read"))
            results["ours_incremental_full_read"].append(
                child("ours_incremental", feed("ours_full_read", [base, delta_file]), "ours_full_read"))
            if run == 0:  # the full rebuild of base + delta the incremental outputs must equal
                results["ours_rebuild"].append(child("ours", feed("ours_rebuild", [base, delta_file]), "ours_rebuild"))
                rebuilt = work / "ours_rebuild" / "bench.duckdb"
                equal.append(same_partition(work / "ours" / "bench.duckdb", rebuilt))
                equal_full_read.append(same_partition(work / "ours_full_read" / "bench.duckdb", rebuilt))
            cap = [] if args.memory_limit is None else ["--memory-limit", args.memory_limit]
            warm_rows = feed("ours_warm", [base]).parent
            results["ours_warm"].append(run_child([here, "--contender", "ours_warm", "--data", str(warm_rows),
                                                   "--delta", str(delta_file), "--work", str(work),
                                                   "--project", "ours_warm", "--warmup", str(warmup_rows), *cap]))
            if run == 0:
                equal_warm.append(same_partition(work / "ours_warm" / "bench.duckdb", rebuilt))
            if args.splink_python:
                results["splink"].append(run_child([here, "--contender", "splink", "--data", str(base),
                                                    "--work", str(work)], python=args.splink_python))
        statements = snowflake_statements(args.snowflake_persons, work, args.caps) if args.snowflake_persons else {}
        ours, scipy_s = median_of(results["ours"], "seconds"), median_of(results["scipy"], "seconds")
        inc = median_of(results["ours_incremental"], "seconds")
        inc_full_read = median_of(results["ours_incremental_full_read"], "seconds")
        splink_s = median_of(results["splink"], "seconds")
        ours_peak, scipy_peak = median_of(results["ours"], "peak_mb"), median_of(results["scipy"], "peak_mb")
        first = next((r for r in results["ours"] if "ids" in r), {})
        emit({
            "benchmark": "stitch", "persons": args.persons, "caps": args.caps, "rows": graph["rows"],
            "chains_50": graph["chains_50"], "chains_500": graph["chains_500"],
            "ids": first.get("ids"), "clusters": first.get("clusters"),
            "scipy_clusters": next((r.get("clusters") for r in results["scipy"] if "clusters" in r), None),
            "splink_clusters": next((r.get("clusters") for r in results["splink"] if "clusters" in r), None),
            "rounds": first.get("rounds"),
            "ours_s": ours, "ours_model_s": median_of(results["ours"], "model_seconds"),
            "ours_import_s": median_of(results["ours"], "import_seconds"),
            "scipy_e2e_s": scipy_s, "splink_s": splink_s,
            "ours_vs_scipy": round(ours / scipy_s, 2) if ours and scipy_s else None,
            "ours_vs_splink": round(ours / splink_s, 2) if ours and splink_s else None,
            "ours_peak_mb": ours_peak, "scipy_peak_mb": scipy_peak, "ours_spilled_mb": first.get("spilled_mb"),
            "peak_vs_scipy": round(ours_peak / scipy_peak, 2) if ours_peak and scipy_peak else None,
            "splink_peak_mb": median_of(results["splink"], "peak_mb"),
            "delta_rows": delta["rows"], "delta_new_people": delta["new_people"],
            "delta_touching": delta["touching"], "delta_merging": delta["merging"],
            "incremental_s": inc, "incremental_model_s": median_of(results["ours_incremental"], "model_seconds"),
            "incremental_peak_mb": median_of(results["ours_incremental"], "peak_mb"),
            "incremental_vs_full": round(inc / ours, 3) if inc and ours else None,
            "incremental_full_read_s": inc_full_read,
            "incremental_full_read_model_s": median_of(results["ours_incremental_full_read"], "model_seconds"),
            "incremental_full_read_vs_full": round(inc_full_read / ours, 3) if inc_full_read and ours else None,
            "incremental_full_read_equals_rebuild": all(equal_full_read) if equal_full_read else None,
            "warm_full_s": median_of(results["ours_warm"], "full_seconds"),
            "warm_full_model_s": median_of(results["ours_warm"], "full_model_seconds"),
            "warm_incremental_s": median_of(results["ours_warm"], "incremental_seconds"),
            "warm_incremental_model_s": median_of(results["ours_warm"], "incremental_model_seconds"),
            "warm_incremental_vs_full": median_of(results["ours_warm"], "incremental_vs_full"),
            "warm_incremental_equals_rebuild": all(equal_warm) if equal_warm else None,
            "rebuild_s": median_of(results["ours_rebuild"], "seconds"),
            "incremental_equals_rebuild": all(equal) if equal else None,
            "snowflake_persons": args.snowflake_persons or None,
            "snowflake_statements_full": statements.get("full"),
            "snowflake_statements_incremental": statements.get("incremental"),
            "splink": None if args.splink_python else "not run: splink is not a dependency (pass --splink-python)",
            "runs": args.runs,
            "memory_limit": ("default (40% full builds)" if args.memory_limit is None
                             else args.memory_limit or "DuckDB's own"),
            "errors": errors_of(results),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
