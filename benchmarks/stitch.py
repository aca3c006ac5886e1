"""Identity stitching benchmark: our id_stitcher (through dbt, DuckDB) vs scipy and splink, same graph, same run.

    python benchmarks/stitch.py --persons 1000000 --runs 3

The graph follows NOTES.md: each person a random tree of ids (1-3 anonymous ids, a user id, most an email),
anonymous-only visitors, monotone chains of 50 and 500 ids (ids and times increase along the chain), and junk
hubs ('unknown', '', 'null' on ~10% of persons) that screening must drop. Each contender runs in its own
process (peak memory is its own) `--runs` times; the JSON line has medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dbt_project, emit, errors_of, median_of, peak_rss_mb, run_child, timed  # noqa: E402

JUNK = ("unknown", "", "null")


def make_graph(persons: int, out: Path, seed: int = 1) -> dict[str, int]:
    """Rows (anonymous_id, user_id, email, ts) as Parquet; each row links the ids it carries."""
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
    pq.write_table(table, out)
    return {"rows": table.num_rows, "chains_50": chains.count(50), "chains_500": chains.count(500)}


# -- contenders (each runs in its own process) -------------------------------------------------------------------

def run_ours(data: Path, work: Path) -> dict:
    from sync_runner.example import copy_project  # noqa: F401  (imported for its side effect: the package path)
    from sync_runner.invoke import DbtTarget, run_dbt

    project = work / "ours"
    where = DbtTarget(project_dir=project, profiles_dir=project, target="bench", vars={"rows": data.as_posix()})
    messages: list[str] = []

    def collect(event) -> None:
        if event.info.name == "JinjaLogInfo":
            messages.append(event.info.msg)

    seconds, result = timed(lambda: run_dbt(["run", "--full-refresh"], where, callbacks=[collect]))
    model_seconds = result.result.results[0].execution_time
    import duckdb

    con = duckdb.connect(str(project / "bench.duckdb"))
    clusters, ids = con.execute("select count(distinct main_id), count(*) from main.stitched").fetchone()
    con.close()
    rounds = next((int(m.split(" in ")[1].split()[0]) for m in messages if "converged in" in m), None)
    return {"seconds": seconds, "model_seconds": model_seconds, "rounds": rounds, "clusters": clusters, "ids": ids,
            "peak_mb": peak_rss_mb()}


def prepare_ours(work: Path) -> None:
    project = work / "ours"
    dbt_project(project, "stitch_bench", project / "bench.duckdb", {"stitched.sql": textwrap.dedent("""
        {{ config(materialized='id_stitcher') }}
        {{ dbt_studio.id_edges(sources=[{'relation': "read_parquet('" ~ var('rows') ~ "')",
                                         'name': 'rows', 'ids': ['anonymous_id', 'user_id', 'email'],
                                         'timestamp': 'ts'}]) }}
    """)})


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
    parser.add_argument("--splink-python", default=os.environ.get("SPLINK_PYTHON"),
                        help="a Python with splink installed (its own virtual environment)")
    parser.add_argument("--contender", choices=["ours", "scipy", "splink"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.contender:
        fn = {"ours": run_ours, "scipy": run_scipy, "splink": run_splink}[args.contender]
        print(json.dumps(fn(args.data, args.work)))
        return

    work = Path(tempfile.mkdtemp(prefix="stitch_bench_"))
    try:
        data = work / "rows.parquet"
        graph = make_graph(args.persons, data)
        prepare_ours(work)
        here = str(Path(__file__).resolve())
        results: dict[str, list[dict]] = {"ours": [], "scipy": [], "splink": []}
        for _ in range(args.runs):
            for name in ("ours", "scipy"):
                results[name].append(run_child([here, "--contender", name, "--data", str(data), "--work", str(work)]))
            if args.splink_python:
                results["splink"].append(run_child([here, "--contender", "splink", "--data", str(data),
                                                    "--work", str(work)], python=args.splink_python))
        ours, scipy_s = median_of(results["ours"], "seconds"), median_of(results["scipy"], "seconds")
        splink_s = median_of(results["splink"], "seconds")
        first = next((r for r in results["ours"] if "ids" in r), {})
        emit({
            "benchmark": "stitch", "persons": args.persons, "rows": graph["rows"],
            "chains_50": graph["chains_50"], "chains_500": graph["chains_500"],
            "ids": first.get("ids"), "clusters": first.get("clusters"),
            "scipy_clusters": next((r.get("clusters") for r in results["scipy"] if "clusters" in r), None),
            "splink_clusters": next((r.get("clusters") for r in results["splink"] if "clusters" in r), None),
            "rounds": first.get("rounds"),
            "ours_s": ours, "ours_model_s": median_of(results["ours"], "model_seconds"),
            "scipy_e2e_s": scipy_s, "splink_s": splink_s,
            "ours_vs_scipy": round(ours / scipy_s, 2) if ours and scipy_s else None,
            "ours_vs_splink": round(ours / splink_s, 2) if ours and splink_s else None,
            "ours_peak_mb": median_of(results["ours"], "peak_mb"),
            "scipy_peak_mb": median_of(results["scipy"], "peak_mb"),
            "splink_peak_mb": median_of(results["splink"], "peak_mb"),
            "runs": args.runs,
            "errors": errors_of(results),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
