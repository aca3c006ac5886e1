"""Sync benchmark: our `http` destination vs drt's `rest_api` destination, same rows, same local sink, same run.

    python benchmarks/sync.py --rows 1000000 --runs 3 --drt-python /tmp/drtenv/bin/python
    python benchmarks/sync.py --rows 0 --memory-rows 10000000          # only the 10M-row peak-memory run

Setup (not timed): a dbt project on DuckDB that installs this package (`local:`), a table model of `--rows`
rows x 10 columns (ids, strings, ints, floats, a boolean, timestamps) with one upsert sync of all 10 columns
to an `http` destination (batches of 1,000, `--concurrency` requests in flight), built once. The sink is an
asyncio HTTP/1.1 server in its own process on 127.0.0.1 (keep-alive, 200 at once) that counts the records of
each POSTed batch (`--sink-count marker`: occurrences of the `"id":` key, exact for these records; `json`:
parses every body) and reports totals and its own CPU time at GET /stats, so every run is checked to have
delivered exactly N records and the sink's headroom is measured (records per sink CPU second).

Ours: `run_syncs(..., Options(full_resync=True))` in a fresh process, end to end (plan in the warehouse,
paging, batching, JSON, HTTP, commits): every run sends all N rows. drt (`drt-core`, in its own virtual
environment: `--drt-python` or DRT_PYTHON) runs `drt run` in a fresh process on a copy of the same table (its
own DuckDB file; install it with `pip install "drt-core[duckdb]==1.2.1"` — without the extra every drt run fails
and the sink counts 0 records), `rest_api` destination in batch mode, 1,000 rows per request, mode full, no rate limit.
Each contender runs `--runs` times, interleaved; the JSON line has medians. `--memory-rows M` rebuilds the
model with M rows at the end and reports the peak RSS of one sync of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import byte_compile_package, dbt_project, emit, median_of, peak_rss_mb, run_child, since_spawn  # noqa: E402

SYNC = "bench_http"
MARKER = b'"id":'
# destination field -> model column (a few renamed, as a real mapping would)
MAPPINGS = {"id": "user_id", "external_id": "external_id", "email": "email", "plan": "plan", "age": "age",
            "ltv": "lifetime_value", "score": "score", "active": "is_active", "created_at": "created_at",
            "last_seen_at": "last_seen_at"}

MODEL_SQL = """
{{ config(materialized='table', meta={'dbt_studio': {'primary_key': 'user_id', 'syncs': [
    {'name': '%(sync)s', 'destination': 'sink', 'mode': 'upsert', 'mappings': %(mappings)s}]}}) }}

select
    i as user_id,
    'ext-' || lpad(cast(i as varchar), 10, '0') as external_id,
    'person' || cast(i as varchar) || '@example.com' as email,
    (['free', 'pro', 'team', 'enterprise'])[1 + cast(i %% 4 as integer)] as plan,
    cast(18 + (i * 7919) %% 70 as integer) as age,
    cast((i %% 100000) * 1.25 as double) as lifetime_value,
    cast(((i * 31) %% 10000) / 97.0 as double) as score,
    i %% 3 = 0 as is_active,
    timestamp '2023-01-01 00:00:00' + to_seconds(cast(i %% 31536000 as bigint)) as created_at,
    timestamp '2024-06-01 08:30:00' + to_seconds(cast((i * 13) %% 8640000 as bigint)) as last_seen_at
from range(cast({{ var('rows', 1000) }} as bigint)) as t(i)
"""


# -- the sink (its own process) -----------------------------------------------------------------------------------

def serve_sink(count_mode: str) -> None:
    """HTTP/1.1 keep-alive server: POST counts records, GET /stats reports totals (GET /reset also zeroes)."""
    import asyncio  # here and in SinkProcess.get, not at the top: the contenders' times from process start count
    # every import of this script (35-50 ms for these two, which neither contender uses)

    stats = {"requests": 0, "records": 0, "bytes": 0, "bad": 0}

    def count(body: bytes) -> int:
        if count_mode == "json":
            return len(json.loads(body)["records"])
        return body.count(MARKER)

    async def read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path = lines[0].split(b" ")[:2]
                length, chunked, close = 0, False, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding":
                        chunked = b"chunked" in value.lower()
                    elif name == b"connection":
                        close = value.strip().lower() == b"close"
                body = await read_chunked(reader) if chunked else (await reader.readexactly(length) if length else b"")
                if method == b"POST":
                    try:
                        stats["records"] += count(body)
                    except (ValueError, KeyError, TypeError):
                        stats["bad"] += 1
                    stats["requests"] += 1
                    stats["bytes"] += len(body)
                    payload = b'{"ok": true}'
                else:
                    payload = json.dumps({**stats, "cpu_s": time.process_time()}).encode()
                    if path.startswith(b"/reset"):
                        stats.update(requests=0, records=0, bytes=0, bad=0)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(payload), payload))
                if close:
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class SinkProcess:
    def __init__(self, count_mode: str) -> None:
        import subprocess  # (the driver's: a contender's time from process start counts this script's imports)

        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--contender", "sink",
                                      "--sink-count", count_mode], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{json.loads(self.proc.stdout.readline())['port']}"

    def get(self, path: str) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# -- setup -------------------------------------------------------------------------------------------------------

def prepare_ours(work: Path, rows: int, sink_url: str, concurrency: int, memory_limit: str | None = None) -> float:
    """Write the dbt project, dbt deps, dbt build; returns the build's seconds. (In a child process: dbt-duckdb
    keeps the database open in the process that ran dbt, which would lock the contenders out.)"""
    project = work / "ours"
    (project).mkdir(parents=True, exist_ok=True)
    (project / "dbt_studio.yml").write_text(
        f"destinations:\n  sink:\n    type: http\n    url: {sink_url}/records\n"
        f"    batch_size: 1000\n    concurrency: {concurrency}\n")
    dbt_project(project, "sync_bench", project / "bench.duckdb",
                {"bench_rows.sql": MODEL_SQL % {"sync": SYNC, "mappings": repr(MAPPINGS)}},
                {"memory_limit": memory_limit} if memory_limit else None)
    return build(work, rows)


def build(work: Path, rows: int) -> float:
    from sync_runner.project.target import DbtTarget, run_dbt

    project = work / "ours"
    started = time.perf_counter()
    run_dbt(["build"], DbtTarget(project_dir=project, profiles_dir=project, vars={"rows": rows}))
    return time.perf_counter() - started


def prepare_drt(work: Path, sink_url: str) -> None:
    """drt's project: the same table copied into its own DuckDB file, a rest_api sync to the same sink."""
    import duckdb

    project, home = work / "drt", work / "drt_home"
    (project / "syncs").mkdir(parents=True, exist_ok=True)
    (home / ".drt").mkdir(parents=True, exist_ok=True)
    copy = project / "drt.duckdb"
    con = duckdb.connect(str(copy))
    con.execute(f"attach '{(work / 'ours' / 'bench.duckdb').as_posix()}' as src (read_only)")
    con.execute("create or replace table main.bench_rows as select * from src.main.bench_rows")
    con.close()
    (home / ".drt" / "profiles.yml").write_text(f"bench:\n  type: duckdb\n  database: {copy.as_posix()}\n")
    (project / "drt_project.yml").write_text("name: sync_bench\nversion: '0.1'\nprofile: bench\n")
    renames = {src: dest for dest, src in MAPPINGS.items() if src != dest}
    (project / "syncs" / f"{SYNC}.yml").write_text(json.dumps({
        "name": SYNC,
        "model": "ref('bench_rows')",
        "destination": {
            "type": "rest_api", "url": f"{sink_url}/records", "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body_mode": "batch", "max_records_per_request": 1000,
            "batch_template": '{"op": "upsert", "records": {{ rows | tojson_safe }}}',
        },
        "sync": {"mode": "full", "batch_size": 1000, "rate_limit": {"requests_per_second": 0},
                 "field_mappings": renames},
    }, indent=2))  # JSON is YAML


# -- contenders (each runs in its own process) -------------------------------------------------------------------

def run_ours(work: Path) -> dict:
    from sync_runner.sync.engine import Options, run_syncs

    project = work / "ours"
    first: list[float] = []
    first_from_start: list[float | None] = []

    def progress(_name: str, _done: int, _total: int) -> None:
        if not first:
            first.append(time.perf_counter())
            first_from_start.append(since_spawn())

    started = time.perf_counter()
    reports = run_syncs(project, project, options=Options(full_resync=True), progress=progress)
    seconds = time.perf_counter() - started
    report = reports[0]
    return {"seconds": seconds, "status": report.status, "message": report.message, "sent": report.sent,
            "acknowledged": report.acknowledged, "planned": sum(report.planned.values()),
            "first_batch_s": (first[0] - started) if first else None, "peak_mb": peak_rss_mb(),
            "first_batch_from_start_s": first_from_start[0] if first_from_start else None,
            "seconds_from_start": since_spawn()}


def run_drt(work: Path) -> dict:
    """`drt run --select bench_http` in this (drt's) interpreter."""
    os.environ.update(HOME=str(work / "drt_home"), DO_NOT_TRACK="1", DRT_TELEMETRY="0")
    os.chdir(work / "drt")
    from importlib.metadata import version

    from drt.cli.main import app

    started = time.perf_counter()
    code = 0
    try:
        app(["run", "--select", SYNC], standalone_mode=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "exit_code": code, "version": version("drt-core"), "peak_mb": peak_rss_mb(),
            "seconds_from_start": since_spawn()}


# -- driver ------------------------------------------------------------------------------------------------------

def measured(result: dict, sink: dict, sink_before: dict, rows: int) -> dict:
    """Add what the sink saw to a contender's result; rows/s only when exactly `rows` records arrived."""
    out = dict(result)
    out["delivered"] = sink["records"]
    out["requests"] = sink["requests"]
    cpu = sink["cpu_s"] - sink_before["cpu_s"]
    out["sink_rows_per_cpu_s"] = round(sink["records"] / cpu) if cpu > 0 else None
    if "error" not in out and out.get("status", "success") != "success":
        out["error"] = f"sync {out['status']}: {out.get('message')}"
    if "error" not in out and out.get("exit_code"):
        out["error"] = f"drt exited with {out['exit_code']}"
    if "error" not in out and sink["records"] == rows and not sink["bad"]:
        out["rows_s"] = rows / out["seconds"]
        if out.get("first_batch_s"):
            out["delivery_rows_s"] = rows / (out["seconds"] - out["first_batch_s"])
    elif "error" not in out:
        out["error"] = f"sink received {sink['records']} of {rows} records ({sink['bad']} unreadable bodies)"
    return out


def _ratio(results: dict[str, list[dict]], key: str) -> float | None:
    """drt's median time over ours (how many times faster we are), over runs that delivered every row."""
    ours = median_of([r for r in results["ours"] if "rows_s" in r], key)
    drt = median_of([r for r in results["drt"] if "rows_s" in r], key)
    return round(drt / ours, 2) if ours and drt else None


def contend(sink: SinkProcess, here: str, name: str, work: Path, rows: int, python: str | None = None) -> dict:
    before = sink.get("/reset")
    result = run_child([here, "--contender", name, "--work", str(work)], python=python)
    return measured(result, sink.get("/reset"), before, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the timed syncs (0: skip them)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight of our http destination")
    parser.add_argument("--memory-rows", type=int, default=0, help="also sync this many rows once, for peak RSS")
    parser.add_argument("--sink-count", choices=["marker", "json"], default="marker",
                        help="how the sink counts records: count the id key (cheap) or parse the JSON")
    parser.add_argument("--duckdb-memory-limit", help="DuckDB's memory_limit in our profile (default: DuckDB's own, "
                        "80%% of RAM), e.g. 512MB")
    parser.add_argument("--drt-python", default=os.environ.get("DRT_PYTHON"),
                        help="a Python with drt-core installed (its own virtual environment)")
    parser.add_argument("--contender", choices=["ours", "drt", "sink", "setup", "build", "copy"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sink-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.contender == "sink":
        serve_sink(args.sink_count)
        return
    if args.contender in ("ours", "drt"):
        print(json.dumps({"ours": run_ours, "drt": run_drt}[args.contender](args.work), default=str))
        return
    if args.contender == "setup":
        print(json.dumps({"build_s": prepare_ours(args.work, args.rows, args.sink_url, args.concurrency,
                                                  args.duckdb_memory_limit)}))
        return
    if args.contender == "build":
        print(json.dumps({"build_s": build(args.work, args.rows)}))
        return
    if args.contender == "copy":
        prepare_drt(args.work, args.sink_url)
        print("{}")
        return

    here = str(Path(__file__).resolve())
    drt_python = args.drt_python if args.drt_python and Path(args.drt_python).exists() else None
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="sync_bench_"))
    sink = SinkProcess(args.sink_count)
    results: dict[str, list[dict]] = {"ours": [], "drt": []}
    out: dict = {"benchmark": "sync", "rows": args.rows, "columns": len(MAPPINGS), "batch_size": 1000,
                 "concurrency": args.concurrency, "runs": args.runs, "sink_count": args.sink_count,
                 "duckdb_memory_limit": args.duckdb_memory_limit,
                 "cpus": os.cpu_count(), "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
                 **byte_compile_package()}
    try:
        common = ["--work", str(work), "--sink-url", sink.url, "--concurrency", str(args.concurrency)]
        if args.duckdb_memory_limit:
            common += ["--duckdb-memory-limit", args.duckdb_memory_limit]
        setup = run_child([here, "--contender", "setup", "--rows", str(args.rows or 1000), *common])
        if "error" in setup:
            raise SystemExit(f"setup failed: {setup['error']}")
        if args.rows:
            out["build_s"] = round(setup["build_s"], 3)
            if drt_python:
                copied = run_child([here, "--contender", "copy", *common])
                if "error" in copied:
                    raise SystemExit(f"drt setup failed: {copied['error']}")
            for _ in range(args.runs):
                results["ours"].append(contend(sink, here, "ours", work, args.rows))
                if drt_python:
                    results["drt"].append(contend(sink, here, "drt", work, args.rows, python=drt_python))
            ours_rs, drt_rs = median_of(results["ours"], "rows_s"), median_of(results["drt"], "rows_s")
            out.update({
                "ours_rows_s": round(ours_rs) if ours_rs else None,
                "ours_s": median_of(results["ours"], "seconds"),
                "ours_first_batch_s": median_of(results["ours"], "first_batch_s"),
                "ours_first_batch_from_start_s": median_of(results["ours"], "first_batch_from_start_s"),
                "ours_s_from_start": median_of(results["ours"], "seconds_from_start"),
                "drt_s_from_start": median_of(results["drt"], "seconds_from_start"),
                "ours_after_first_batch_rows_s": round(median_of(results["ours"], "delivery_rows_s") or 0) or None,
                "ours_peak_mb": median_of(results["ours"], "peak_mb"),
                "drt_rows_s": round(drt_rs) if drt_rs else None,
                "drt_s": median_of(results["drt"], "seconds"),
                "drt_peak_mb": median_of(results["drt"], "peak_mb"),
                "drt_version": next((r.get("version") for r in results["drt"] if r.get("version")), None),
                "ours_vs_drt": round(ours_rs / drt_rs, 2) if ours_rs and drt_rs else None,
                # the same ratio with each process's interpreter start and imports counted (what a user waits)
                "ours_vs_drt_from_start": _ratio(results, "seconds_from_start"),
                "drt_note": None if drt_python else "drt not run: pass --drt-python or set DRT_PYTHON",
                "sink_rows_per_cpu_s": min((r["sink_rows_per_cpu_s"] for v in results.values() for r in v
                                            if r.get("sink_rows_per_cpu_s")), default=None),
                "all_delivered_exactly": all(r.get("delivered") == args.rows for v in results.values() for r in v),
            })
        if args.memory_rows:
            built = run_child([here, "--contender", "build", "--rows", str(args.memory_rows), *common])
            mem = contend(sink, here, "ours", work, args.memory_rows) if "error" not in built else built
            out["memory"] = {"rows": args.memory_rows, "build_s": round(built.get("build_s", 0), 3),
                             "seconds": round(mem["seconds"], 3) if "seconds" in mem else None,
                             "rows_s": round(mem["rows_s"]) if mem.get("rows_s") else None,
                             "peak_mb": mem.get("peak_mb"), "delivered": mem.get("delivered"),
                             "error": mem.get("error")}
        out["targets"] = {
            "ours_rows_s_ge_50k": out["ours_rows_s"] >= 50_000 if out.get("ours_rows_s") else None,
            "ours_vs_drt_ge_3": out["ours_vs_drt"] >= 3 if out.get("ours_vs_drt") else None,
            "memory_peak_lt_1gb": out["memory"]["peak_mb"] < 1024 if out.get("memory", {}).get("peak_mb") else None,
        }
        out["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
        out["errors"] = {k: [r["error"] for r in v if "error" in r] for k, v in results.items()
                         if any("error" in r for r in v)}
        emit(out)
    finally:
        sink.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
