"""`dbt-studio demo`: the plant store, end to end, on an embedded DuckDB file.

A newcomer's first contact: it must work with nothing but the package installed, say what it is doing while it
works, and end with something to look at.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .artifacts import load_manifest, load_run_results
from .example import copy_example
from .generate import generate
from .invoke import DbtTarget, run_dbt
from .warehouse import Warehouse


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
    seconds: float


def run_demo(directory: Path | str, users: int = 10_000, seed: int = 42,
             echo: Callable[[str], None] = print) -> DemoReport:
    started = time.monotonic()
    project = copy_example(directory)
    echo(f"[1/4] plant-store example copied to {project}")

    data_dir = project / "data"

    def progress(done: int, total: int) -> None:
        echo(f"      generated {done:,} / {total:,} users")

    generated = generate(data_dir, users=users, seed=seed, progress=progress)
    echo(f"[2/4] generated {sum(generated.values()):,} rows of messy plant-store data in {data_dir}")

    where = DbtTarget(project_dir=project, profiles_dir=project, target="duckdb",
                      vars={"raw_data_dir": data_dir.as_posix()})
    run_dbt(["deps"], where)
    echo("[3/4] dbt deps: installed dbt_studio")
    # the fixed seeds are for tests; generated Parquet replaces them here
    run_dbt(["build", "--exclude", "resource_type:seed"], where, quiet=False)
    echo("[4/4] dbt build done")

    manifest = load_manifest(project)
    results = load_run_results(project)
    built = []
    names = []
    for uid, result in results.results.items():
        node = manifest.nodes.get(uid)
        if node is None or result.status != "success" or not node.relation_name:
            continue
        names.append((node, node.relation_name))
    warehouse = Warehouse(where)
    try:
        counts = dict(warehouse.call("row_counts", relations=[r for _, r in names])) if names else {}
    finally:
        warehouse.close()
    for node, relation in sorted(names, key=lambda x: (x[0].resource_type, x[0].name)):
        built.append(BuiltRelation(node.name, node.resource_type, relation, int(counts.get(relation, 0))))
    return DemoReport(project, generated, tuple(built), time.monotonic() - started)
