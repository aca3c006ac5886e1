"""Helpers shared by the test modules (never import one test module from another)."""

ADAPTERS = ("duckdb", "snowflake")  # every warehouse-side feature is tested on both


def package_macros() -> dict:
    """The `macros` entry a manifest.json written by hand needs for `dbt-studio validate`: the package's macros
    validate runs (the schema's rules, an audience's references) as dbt records them (their source under
    `macro_sql`), read from this checkout."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return {f"macro.dbt_studio.{Path(path).stem}_file": {"package_name": "dbt_studio", "original_file_path": path,
                                                         "macro_sql": (root / path).read_text(encoding="utf-8")}
            for path in ("macros/schema/schema.sql", "macros/audiences/_check_references.sql",
                         "macros/utils/_keys.sql")}


def free_port() -> int:
    """A TCP port of 127.0.0.1 free now, for a server a test starts (uvicorn, `dbt-studio studio`, `serve`)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
