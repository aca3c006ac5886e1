"""The house style of the package's Jinja-SQL (docs/macros-style.md), checked on every macro and model file.

No formatter for Jinja-SQL fits these macros (sqlfmt 0.32 fails to parse three of them and re-indents the SQL
that macros return, which changes the compiled SQL), so the rules a reader relies on are checked here:
lines of at most 120 characters, every public macro dispatched through `adapter.dispatch('<name>', 'dbt_studio')`,
and a `default__` implementation for every dispatched name. Each rule is also run on a bad sample, so the checks
are known to catch what they are meant to catch.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 120
ADAPTERS = ("default", "duckdb", "snowflake", "postgres", "bigquery", "redshift", "databricks", "spark")

BLOCK = re.compile(r"\{%-?\s*(macro|test)\s+(\w+)\s*\((.*?)\{%-?\s*end(?:macro|test)\s*-?%\}", re.S)
DISPATCH = re.compile(r"adapter\.dispatch\(\s*'(\w+)'\s*,\s*'dbt_studio'\s*\)")


def files(*folders: str, suffixes: tuple[str, ...] = (".sql", ".yml")) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*")) if p.suffix in suffixes]


def long_lines(text: str) -> list[int]:
    """Line numbers of lines longer than LIMIT."""
    return [n for n, line in enumerate(text.splitlines(), 1) if len(line) > LIMIT]


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(kind, name, body) of every `{% macro %}` / `{% test %}` block."""
    return [(m.group(1), m.group(2), m.group(0)) for m in BLOCK.finditer(text)]


def is_implementation(name: str) -> bool:
    """`default__x`, `duckdb__x`, `snowflake___x` (of a private x), ...: what adapter.dispatch finds."""
    return any(name.startswith(adapter + "__") for adapter in ADAPTERS)


def undispatched(text: str) -> list[str]:
    """Public macros (and generic tests) whose body does not go through adapter.dispatch of their own name."""
    out = []
    for kind, name, body in blocks(text):
        if name.startswith("_") or is_implementation(name):
            continue
        dispatched = "test_" + name if kind == "test" else name
        if dispatched not in DISPATCH.findall(body):
            out.append(name)
    return out


def missing_defaults(texts: list[str]) -> list[str]:
    """Dispatched names with no `default__<name>` anywhere."""
    defined = {name for text in texts for _, name, _ in blocks(text)}
    dispatched = {name for text in texts for name in DISPATCH.findall(text)}
    return sorted(name for name in dispatched if "default__" + name not in defined)


# -- the checks catch what they should ----------------------------------------------------------------------------

BAD = """
{% macro sync_things(sync) %}
    {%- do run_query('delete from x') -%}
{% endmacro %}

{% macro other(x) %}
    {{ return(adapter.dispatch('other', 'dbt_studio')(x)) }}
{% endmacro %}

{% macro duckdb__other(x) %}{{ return(x) }}{% endmacro %}

{% macro _helper(x) %}{{ return(x) }}{% endmacro %}

{% test unchecked(model) %}
select 1 {{ 'x' * 130 }}
{% endtest %}
"""


def test_the_checks_catch_a_bad_file():
    assert undispatched(BAD) == ["sync_things", "unchecked"]
    assert missing_defaults([BAD]) == ["other"]
    assert long_lines(BAD) == []  # the Jinja expression is short; only the source line length counts
    assert long_lines(BAD.replace("{{ 'x' * 130 }}", "x" * 130)) == [15]


def test_the_checks_pass_a_good_file():
    good = """
{% macro sync_things(sync) %}
    {{ return(adapter.dispatch('sync_things', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_things(sync) %}
    {%- do run_query('delete from x') -%}
{% endmacro %}

{% test checked(model) %}
    {{ return(adapter.dispatch('test_checked', 'dbt_studio')(model)) }}
{% endtest %}

{% macro default__test_checked(model) %}select 1{% endmacro %}
"""
    assert undispatched(good) == [] and missing_defaults([good]) == [] and long_lines(good) == []


# -- the package ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", files("macros", "models"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_line_over_120_characters(path: Path):
    assert long_lines(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", files("macros", suffixes=(".sql",)), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_public_macro_dispatches(path: Path):
    assert undispatched(path.read_text(encoding="utf-8")) == []


def test_every_dispatched_name_has_a_default():
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "macros").rglob("*.sql"))]
    assert missing_defaults(texts) == []
    assert len(texts) > 20 and sum(len(DISPATCH.findall(t)) for t in texts) > 40  # the scan really read the package
