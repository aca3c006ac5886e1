"""profiles.yml for a test project copy: a DuckDB file inside the copy, or its own database on the fakesnow server."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

_db_counter = itertools.count(1)


def write_profile(root: Path, adapter: str, snowflake: dict[str, Any] | None) -> None:
    if adapter == "duckdb":
        output = f"""
            type: duckdb
            path: "{(root / 'target' / 'warehouse.duckdb').as_posix()}"
            schema: main
            threads: 2
        """
    else:
        assert snowflake is not None
        output = f"""
            type: snowflake
            account: {snowflake['account']}
            user: {snowflake['user']}
            password: {snowflake['password']}
            host: {snowflake['host']}
            port: {snowflake['port']}
            protocol: http
            database: DB{next(_db_counter)}
            warehouse: COMPUTE_WH
            schema: ANALYTICS
            threads: 1
            connect_retries: 0
        """
    profile = f"plant_store:\n  target: {adapter}\n  outputs:\n    {adapter}:\n"
    profile += textwrap.indent(textwrap.dedent(output).strip(), "      ") + "\n"
    (root / "profiles.yml").write_text(profile, encoding="utf-8")
