"""Start-up benchmark: each command's time from process start on the DuckDB demo, and syncs against drt by size.

    python benchmarks/startup.py --runs 5 --sync-rows 10000,200000,1000000 --drt-python /path/to/drt-venv/bin/python

Commands: `dbt-studio <command>` run as a user runs it, in the demo project (`dbt-studio demo`, built afresh in a
temporary folder, so the package installed into it is this tree's; `--demo-dir` reuses a demo built there before,
or builds it there), each in a fresh process: the time is from spawning the process to its
exit (interpreter start, imports, dbt when it is needed, the work, the output). The first run of each command
after the setup is reported apart (`cold_s`: it may compile and keep SQL, see docs/sync.md); the medians are of
the `--runs` runs after it. `cpu_s` is the process's user + system time, which a busy machine inflates less
than the wall time. `sync` runs on the demo after its own syncs ran, so it has nothing to send.

Syncs: `benchmarks/sync.py --rows N --runs R` at each size of `--sync-rows` (our http destination against drt
1.2.1's rest_api, same rows, same local sink, interleaved runs), reporting the rows/s ratio of the syncs
(`ours_vs_drt`), the same ratio from each process's start (`ours_vs_drt_from_start`: interpreter start and
imports included) and our time to the first batch from process start. One JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import byte_compile_package, emit  # noqa: E402

COMMANDS = {"version": ["--version"], "schema": ["schema"], "validate": ["validate"], "status": ["status"],
            "plan": ["plan"], "sync_nothing_to_send": ["sync"]}
TARGETS_S = {"schema": 0.5, "status": 1.5, "validate": 1.5, "plan": 1.5, "sync_nothing_to_send": 1.5}


def timed_command(cli: str, args: list[str], cwd: Path) -> dict:
    """Wall time from spawn to exit and the child's CPU time of one `dbt-studio` command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = {"s": wall, "cpu_s": cpu}
    if proc.returncode != 0:
        out["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    return out


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path,
                        help="a demo to reuse (built there if missing); default: a fresh one, removed after")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command (after one cold run)")
    parser.add_argument("--sync-rows", default="10000,200000,1000000", help="sizes of the drt comparison ('' none)")
    parser.add_argument("--sync-runs", type=int, default=3)
    parser.add_argument("--drt-python", default=os.environ.get("DRT_PYTHON"),
                        help="a Python with drt-core installed (its own virtual environment)")
    args = parser.parse_args()

    scratch = None if args.demo_dir else Path(tempfile.mkdtemp(prefix="dbt_studio_startup_"))
    try:
        measure(args, (args.demo_dir or scratch / "dbt-studio-demo").resolve())
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def measure(args: argparse.Namespace, demo: Path) -> None:
    cli = str(Path(sys.executable).parent / "dbt-studio")
    out: dict = {"benchmark": "startup", "runs": args.runs, "cpus": os.cpu_count(),
                 "loadavg_1m_at_start": round(os.getloadavg()[0], 2), **byte_compile_package()}
    if not (demo / "target" / "manifest.json").is_file():
        demo.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([cli, "demo", "--dir", str(demo)], check=True, capture_output=True, timeout=1800)
    commands: dict[str, dict] = {}
    for name, command in COMMANDS.items():
        cold = timed_command(cli, command, demo)
        runs = [timed_command(cli, command, demo) for _ in range(args.runs)]
        commands[name] = {"median_s": median([r["s"] for r in runs]),
                          "cpu_s": median([r["cpu_s"] for r in runs]),
                          "cold_s": round(cold["s"], 3),
                          "errors": [r["error"] for r in [cold, *runs] if "error" in r] or None}
    out["commands"] = commands

    syncs = []
    here = Path(__file__).resolve().parent / "sync.py"
    for rows in [int(r) for r in args.sync_rows.split(",") if r.strip()]:
        command = [sys.executable, str(here), "--rows", str(rows), "--runs", str(args.sync_runs)]
        if args.drt_python:
            command += ["--drt-python", args.drt_python]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=7200)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if not lines:
            syncs.append({"rows": rows, "error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]})
            continue
        result = json.loads(lines[-1])
        syncs.append({key: result.get(key) for key in (
            "rows", "ours_rows_s", "drt_rows_s", "ours_vs_drt", "ours_vs_drt_from_start", "ours_s_from_start",
            "drt_s_from_start", "ours_first_batch_from_start_s", "ours_first_batch_s", "all_delivered_exactly",
            "drt_version", "errors")})
    out["syncs"] = syncs
    out["targets"] = {
        **{f"{name}_le_{limit}s": (commands[name]["median_s"] or 1e9) <= limit for name, limit in TARGETS_S.items()},
        "first_batch_le_1s": all((s.get("ours_first_batch_from_start_s") or 1e9) <= 1 for s in syncs) if syncs
        else None,
        "ours_vs_drt_ge_3_every_size": all((s.get("ours_vs_drt_from_start") or 0) >= 3 for s in syncs) if syncs
        else None,
    }
    out["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    emit(out)


if __name__ == "__main__":
    main()
