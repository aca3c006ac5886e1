"""The run log: the newest runs of a project's syncs, read without loading the sync engine.

`dbt-studio status` asks for them (the studio reads them through its own long-lived warehouse). On a DuckDB
project whose statements are kept this needs neither dbt nor Arrow (the engine, the destinations' senders and
Arrow are a few hundred milliseconds of imports a person waits for).

May import: core, project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync_runner.core.paths import find_config
from sync_runner.project.artifacts import load_manifest
from sync_runner.project.compiled import CompiledSql
from sync_runner.project.target import resolve_target


def recent_runs(project_dir: Path | str, profiles_dir: Path | str | None = None, target: str | None = None,
                limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs of the run log (every state schema the project's syncs use).

    Its statements come from `sync_recent_runs_sql`, kept compiled between commands (project/compiled.py): once
    compiled, a DuckDB project answers without loading dbt.
    """
    where = resolve_target(project_dir, profiles_dir, target)
    manifest = load_manifest(where.project_dir)
    schemas_named: set[str] = set()
    for node in manifest.studio_models():  # the state schemas syncs name; their configuration is validate's job
        specs = node.studio.get("syncs") if isinstance(node.studio, dict) else None
        for spec in specs if isinstance(specs, list) else []:
            if isinstance(spec, dict) and isinstance(spec.get("state_schema"), str):
                schemas_named.add(spec["state_schema"])
    with CompiledSql(where, manifest.path, [find_config(where.project_dir, where.profiles_dir)],
                     manifest_sha256=manifest.sha256) as compiled:
        default = compiled.value("sync_default_state_schema")
        runs: list[dict[str, Any]] = []
        for schema in sorted(schemas_named | {default}):
            sql = compiled.value("sync_recent_runs_sql", state_schema=schema, limit=limit)
            recorded = compiled.existing_rows(sql["exists"], {"runs": sql["query"]})["runs"]
            if recorded is not None:
                columns, rows = recorded
                names = [c.lower() for c in columns]  # Snowflake reports unquoted names upper-cased
                runs += [dict(zip(names, row, strict=True)) for row in rows]
    runs.sort(key=lambda r: str(r.get("started_at")), reverse=True)
    return runs[:limit]

