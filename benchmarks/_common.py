"""Helpers shared by the benchmarks: medians over runs, peak memory of a child, one JSON line out.

A contender's process imports this module too, and its time from process start counts every import: modules only
the driver uses (subprocess, statistics, resource) are imported in the functions that use them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
SPAWNED_AT = "DBT_STUDIO_BENCH_SPAWNED_AT"


def byte_compile_package() -> dict[str, Any]:
    """Byte-compile `sync_runner` as installing a wheel does, so that no contender process compiles it from source.

    From a checkout (`pip install -e .`) Python writes each module's bytecode on first import, unless
    PYTHONDONTWRITEBYTECODE is set, as it is on these machines: then every timed process of ours compiled the
    package again (about 50 ms of a 10k-row sync from process start), while drt, installed as a wheel, was
    compiled once by pip. The dataclasses' kept code (sync_runner/core/kept_code.py), which a user's first command
    writes beside the bytecode, is written the same way: by one process that imports every module of the package
    with PYTHONDONTWRITEBYTECODE unset. Returns what the JSON line reports about it."""
    import compileall
    import subprocess

    import sync_runner
    from sync_runner.core import kept_code

    compileall.compile_dir(str(Path(sync_runner.__file__).parent), quiet=1)
    every_module = ("import importlib, pkgutil, sync_runner\n"
                    "for m in pkgutil.walk_packages(sync_runner.__path__, 'sync_runner.'):\n"
                    "    try:\n        importlib.import_module(m.name)\n    except Exception:\n        pass\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", every_module], env=env, capture_output=True, timeout=300)
    return {"package_byte_compiled": True, "dataclass_code_kept": kept_code.FILE.is_file(),
            "pythondontwritebytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))}


def since_spawn() -> float | None:
    """Seconds since this process was spawned by run_child (interpreter start and imports included)."""
    spawned = os.environ.get(SPAWNED_AT)
    return time.time() - float(spawned) if spawned else None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far.

    On Linux, VmHWM of /proc/self/status: the peak of this program's own memory. ru_maxrss is not that in a
    child started by `run_child`: Linux carries the parent's resident size at the fork over the exec, so a child
    of a parent holding 1.3 GB (the generated graph) reported at least 1.3 GB whatever it used itself."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_child(args: list[str], python: str | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run one contender in a fresh interpreter (so its peak memory is its own) and parse its JSON line.

    The child finds the wall-clock time it was spawned at in SPAWNED_AT, to report times from process start."""
    env = {**os.environ, SPAWNED_AT: repr(time.time())}
    import subprocess

    proc = subprocess.run([python or sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": " | ".join(tail)[:500]}
    return json.loads(lines[-1])


def median_of(results: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in results if key in r and r[key] is not None]
    import statistics

    return round(statistics.median(values), 3) if values else None


def emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, sort_keys=False), flush=True)


def errors_of(results: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Each contender's failed runs (their last lines of output), for the JSON line."""
    return {name: [r["error"] for r in runs if "error" in r] for name, runs in results.items()
            if any("error" in r for r in runs)}


def dbt_project(project: Path, name: str, database: Path, models: dict[str, str] | None = None,
                duckdb_settings: dict[str, str] | None = None) -> Any:
    """A throwaway dbt project on DuckDB that installs this package with `local:`, `dbt deps` already run.

    Returns its `DbtTarget` (target `bench`). `models` maps file names under models/ to their SQL.
    """
    import textwrap

    from sync_runner.core.paths import package_root
    from sync_runner.project.target import DbtTarget, run_dbt

    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(f"name: {name}\nversion: '1.0'\nconfig-version: 2\n"
                                             "profile: bench\nmodel-paths: ['models']\n")
    (project / "packages.yml").write_text(f"packages:\n  - local: {package_root().as_posix()}\n")
    settings = ", settings: {" + ", ".join(f"{k}: '{v}'" for k, v in duckdb_settings.items()) + "}" \
        if duckdb_settings else ""
    (project / "profiles.yml").write_text(textwrap.dedent(f"""
        bench:
          target: bench
          outputs:
            bench: {{type: duckdb, path: "{database.as_posix()}", threads: 2{settings}}}
    """))
    for file_name, sql in (models or {}).items():
        (project / "models" / file_name).write_text(sql)
    where = DbtTarget(project_dir=project, profiles_dir=project, target="bench")
    run_dbt(["deps"], where)
    return where
