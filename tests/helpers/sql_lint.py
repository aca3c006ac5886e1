"""A lint for Snowflake SQL: fakesnow runs on DuckDB and accepts DuckDB-only functions, so a green fakesnow run
does not prove the SQL would run on Snowflake. Every statement a Snowflake build ran is parsed with sqlglot's
Snowflake dialect; a function sqlglot does not know as a Snowflake function (an `Anonymous` node) fails the
lint unless it is a real Snowflake function sqlglot merely leaves unparsed (the allowlist).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

# Real Snowflake functions that sqlglot parses as Anonymous.
SNOWFLAKE_ONLY_ALLOWLIST = frozenset({
    "current_account", "current_role", "current_warehouse", "current_session", "last_query_id",
    "system$typeof", "array_construct", "object_construct", "hash_agg", "regexp_like", "booland_agg",
    "boolor_agg", "md5_hex", "sha2_hex", "to_varchar", "array_size", "timestampadd", "timestampdiff",
})


def unknown_functions(statements: list[str]) -> list[tuple[str, str]]:
    """(function name, statement head) for every function Snowflake lacks; empty when all is well."""
    problems = []
    for sql in statements:
        if "%s" in sql:
            continue  # dbt's seed loader: bound parameters, and the event text is cut short for long batches
        try:
            trees = sqlglot.parse(sql, read="snowflake")
        except sqlglot.errors.ParseError as exc:
            problems.append(("<parse error>", f"{exc}".splitlines()[0] + " in: " + sql[:200]))
            continue
        for tree in trees:
            if tree is None:
                continue
            for node in tree.find_all(exp.Anonymous):
                name = str(node.name).lower()
                if name not in SNOWFLAKE_ONLY_ALLOWLIST:
                    problems.append((name, " ".join(sql.split())[:200]))
    return problems
