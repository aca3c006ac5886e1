"""The reference the declared schema publishes: the JSON Schemas under schemas/ and the tables of the docs.

Both are generated from the same Surface objects `dbt-studio validate` checks against, and committed; tests keep
the committed files equal to what this module generates, so the docs and the editors' schemas cannot drift from
the validator. Regenerate after changing a surface:

    python -c "from sync_runner.reference import write; write('.')"

A docs page holds a generated table between `<!-- declared:NAME -->` and `<!-- /declared -->`; NAME is a key of
`tables()`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sync_runner.core.errors import UserError
from sync_runner.core.fields import Choice, Number, markdown_table
from sync_runner.project import declared
from sync_runner.sync.alerts import CHANNELS
from sync_runner.sync.config import (
    ALERTS,
    DBT_CLOUD,
    EXPOSURES,
    PROJECT_ALERT_RULE,
    SCHEDULE,
    STUDIO_FILE,
    file_schema,
)
from sync_runner.sync.destinations import REGISTRY

PAGES = ("docs/configuration.md", "docs/destinations.md", "docs/audiences.md", "docs/operations.md")
KEY_MACROS = {  # generated file -> (macro, surfaces): the declared keys the macros check at compile time
    "macros/audiences/_keys.sql": ("_audience_keys", ("and", "or", "not", "property", "related", "event", "membership",
                                                      "comparison", "time_comparison", "having", "trait", "splits")),
    "macros/identity/_keys.sql": ("_identity_keys", ("id_source", "id_type")),
}
_BLOCK = re.compile(r"(<!-- declared:([\w:.-]+) -->\n)(.*?)(<!-- /declared -->)", re.S)


def tables() -> dict[str, str]:
    """Every generated docs table by name."""
    out = {name: markdown_table(surface.fields) for name, surface in declared.SURFACES.items()}
    out["dbt_studio_yml"] = markdown_table(STUDIO_FILE.fields)
    out["dbt_cloud"] = markdown_table(DBT_CLOUD.fields)
    out["alerts"] = markdown_table(ALERTS.fields)
    out["exposures"] = markdown_table(EXPOSURES.fields)
    out["schedule"] = markdown_table(SCHEDULE.fields)
    out["alert_rule_project"] = markdown_table(PROJECT_ALERT_RULE.fields)
    for name, surface in CHANNELS.items():
        out[f"alert_channel:{name}"] = markdown_table(surface.fields)
    for name, cls in REGISTRY.items():
        out[f"destination:{name}"] = markdown_table(cls.surface().fields, with_limit=True)
    return out


def json_schemas() -> dict[str, dict[str, Any]]:
    """schemas/<file name> -> the JSON Schema it holds."""
    return {"dbt_studio.schema.json": file_schema(), "meta.schema.json": declared.json_schema()}


def keys_macro(path: str) -> str:
    """A generated macro file of KEY_MACROS: the keys, titles and choices (the values a key of a fixed set takes)
    of some surfaces as the package's Jinja reads them (e.g. `dbt_studio._audience_keys()`), so an unknown key or
    value in a macro argument fails `dbt compile` with the message `dbt-studio validate` gives for the same
    surface."""
    macro, names = KEY_MACROS[path]
    lines: list[str] = []

    def wrapped(head: str, items: list[str], tail: str) -> None:
        """`head` + the items, comma-separated, + `tail`, broken before an item that would pass 120 characters."""
        line = head
        for i, item in enumerate(items):
            piece = item + (", " if i < len(items) - 1 else tail)
            if len(line) + len(piece.rstrip()) > 120:
                lines.append(line.rstrip())
                line = " " * len(head)
            line += piece
        lines.append(line)

    for surface in (declared.SURFACES[name] for name in names):
        choices = [(f.name, f.kind.values) for f in surface.fields if isinstance(f.kind, Choice)]
        numbers = [(f.name, f.kind) for f in surface.fields if isinstance(f.kind, Number)]
        head = f"        {surface.name!r}: {{'title': {surface.title!r}, 'keys': ["
        wrapped(head, [repr(k) for k in surface.keys], "]," if choices or numbers else "]},")
        for i, (name, values) in enumerate(choices):
            start = "            'choices': {" if i == 0 else "                        "
            end = ("]}," if numbers else "]}},") if i == len(choices) - 1 else "],"
            wrapped(f"{start}{name!r}: [", [repr(v) for v in values], end)
        for i, (name, kind) in enumerate(numbers):  # [integer, minimum, above, maximum, validate's message]
            start = "            'numbers': {" if i == 0 else "                        "
            message = f"must be an {kind.text()}" if kind.integer else f"must be a {kind.text()}"
            wrapped(f"{start}{name!r}: [", [repr(v) for v in (kind.integer, kind.minimum, kind.above, kind.maximum,
                                                             message)],
                    "]}}," if i == len(numbers) - 1 else "],")
    return ("{#- Generated from sync_runner/project/declared.py by sync_runner/reference.py: do not edit. -#}\n"
            f"{{% macro {macro}() %}}\n    {{{{ return({{\n" + "\n".join(lines) + "\n    }) }}\n{% endmacro %}\n")


def render(text: str, where: str = "docs") -> str:
    """`text` with every generated block replaced by its current table."""
    known = tables()

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in known:
            raise UserError(f"{where}: unknown generated block '{name}' (known: {', '.join(sorted(known))})")
        return f"{match.group(1)}{known[name]}\n{match.group(4)}"

    return _BLOCK.sub(fill, text)


def schema_text(name: str) -> str:
    return json.dumps(json_schemas()[name], indent=2, ensure_ascii=False) + "\n"


def write(root: Path | str) -> list[Path]:
    """Regenerate the docs tables and schemas/ under the repository `root`; the files that changed."""
    root = Path(root)
    changed = []
    for page in PAGES:
        path = root / page
        text = path.read_text(encoding="utf-8")
        new = render(text, page)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    for name in KEY_MACROS:
        path = root / name
        if not path.is_file() or path.read_text(encoding="utf-8") != keys_macro(name):
            path.write_text(keys_macro(name), encoding="utf-8")
            changed.append(path)
    (root / "schemas").mkdir(exist_ok=True)
    for name in json_schemas():
        path = root / "schemas" / name
        new = schema_text(name)
        if not path.is_file() or path.read_text(encoding="utf-8") != new:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed
