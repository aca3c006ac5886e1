"""`dbt-studio demo`: the plant store, end to end, on an embedded DuckDB file.

A newcomer's first contact: it must work with nothing but the package installed, say what it is doing while it
works, and end with something to look at — built models, then an audience synced to local files, then a week
later (the audience's `as_of` moved on) a second build and sync that sends only the changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sync_runner.demo.example import copy_example
from sync_runner.demo.generate import REFERENCE_TIME, generate
from sync_runner.project.artifacts import load_manifest, load_run_results
from sync_runner.project.target import DbtTarget, run_dbt
from sync_runner.project.warehouse import Warehouse
from sync_runner.sync.engine import Options, SyncReport, run_syncs

STEPS = 6


@dataclass(frozen=True)
class BuiltRelation:
    name: str
    resource_type: str
    relation_name: str
    rows: int


@dataclass(frozen=True)
class DemoReport:
    directory: Path
    generated: dict[str, int]
    built: tuple[BuiltRelation, ...]
    syncs: tuple[SyncReport, ...]
    resyncs: tuple[SyncReport, ...]
    seconds: float


def run_demo(directory: Path | str, users: int = 10_000, seed: int = 42,
             echo: Callable[[str], None] = print) -> DemoReport:
    started = time.monotonic()
    project = copy_example(directory)
    echo(f"[1/{STEPS}] plant-store example copied to {project}")

    data_dir = project / "data"

    def progress(done: int, total: int) -> None:
        echo(f"      generated {done:,} / {total:,} users")

    generated = generate(data_dir, users=users, seed=seed, progress=progress)
    echo(f"[2/{STEPS}] generated {sum(generated.values()):,} rows of messy plant-store data in {data_dir}")

    as_of = REFERENCE_TIME.date()
    where = DbtTarget(project_dir=project, profiles_dir=project, target="duckdb",
                      vars={"raw_data_dir": data_dir.as_posix(), "as_of": as_of.isoformat()})
    run_dbt(["deps"], where)
    echo(f"[3/{STEPS}] dbt deps: installed dbt_studio")
    # the fixed seeds are for tests; generated Parquet replaces them here
    run_dbt(["build", "--exclude", "resource_type:seed"], where, quiet=False)
    echo(f"[4/{STEPS}] dbt build done")
    built = _row_counts(project, where)

    syncs = tuple(run_syncs(project, project, "duckdb"))
    echo(f"[5/{STEPS}] synced: " + ", ".join(f"{r.sync} sent {r.acknowledged:,} rows" for r in syncs))

    later = as_of + timedelta(days=7)
    where = DbtTarget(project, project, "duckdb", {"raw_data_dir": data_dir.as_posix(), "as_of": later.isoformat()})
    run_dbt(["build", "--exclude", "resource_type:seed", "--select", "audiences"], where)
    resyncs = tuple(run_syncs(project, project, "duckdb", Options()))
    echo(f"[6/{STEPS}] a week later (as_of {later}): " + ", ".join(
        f"{r.sync} sent only the changes: {r.planned.get('insert', 0):,} added, "
        f"{r.planned.get('update', 0):,} changed, {r.planned.get('delete', 0):,} removed" for r in resyncs))
    return DemoReport(project, generated, built, syncs, resyncs, time.monotonic() - started)


def _row_counts(project: Path, where: DbtTarget) -> tuple[BuiltRelation, ...]:
    manifest = load_manifest(project)
    results = load_run_results(project)
    built = []
    for uid, result in results.results.items():
        node = manifest.nodes.get(uid)
        if node is not None and result.status == "success" and node.relation_name:
            built.append(node)
    warehouse = Warehouse(where)
    try:
        relations = [n.relation_name for n in built]
        counts = dict(warehouse.call("row_counts", relations=relations)) if relations else {}
    finally:
        warehouse.close()
    return tuple(BuiltRelation(n.name, n.resource_type, n.relation_name or "", int(counts.get(n.relation_name, 0)))
                 for n in sorted(built, key=lambda n: (n.resource_type, n.name)))


