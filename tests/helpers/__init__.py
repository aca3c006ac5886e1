"""Helpers shared by the test modules (never import one test module from another)."""

ADAPTERS = ("duckdb", "snowflake")  # every warehouse-side feature is tested on both


def package_macros() -> dict:
    """The `macros` entry a manifest.json written by hand needs for `dbt-studio validate`: the package's schema
    macros as dbt records them (their source under `macro_sql`), read from this checkout."""
    from pathlib import Path

    path = "macros/schema/schema.sql"
    text = (Path(__file__).resolve().parents[2] / path).read_text(encoding="utf-8")
    return {"macro.dbt_studio.schema_file": {"package_name": "dbt_studio", "original_file_path": path,
                                             "macro_sql": text}}
