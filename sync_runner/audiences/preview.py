"""Audience previews: the size after each top-level condition, split sizes and a few members by their labels.

Every number comes from the warehouse through the package's `audience_preview` macro; no SQL is written here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sync_runner.audiences.schema import load_nodes
from sync_runner.core.errors import UserError
from sync_runner.core.redact import REDACT
from sync_runner.project.artifacts import load_manifest
from sync_runner.project.target import DbtTarget
from sync_runner.project.warehouse import compiler_message, connect, warehouse_refusal


def shown(value: Any) -> str:
    """A value as a reader sees it in a condition's text: strings in double quotes and as written (no JSON or HTML
    escapes: whoever displays the text escapes it for its medium, once), lists in brackets."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return str(value)


def describe(node: Any) -> str:
    """A short text of one condition (for previews): plain text, escaped by whoever displays it."""
    if not isinstance(node, dict):
        return str(node)
    for kind in ("and", "or"):
        if kind in node:
            return "(" + f" {kind} ".join(describe(c) for c in node[kind]) + ")"
    if "not" in node:
        return f"not {describe(node['not'])}"
    if "column" in node:
        value = "" if node.get("op") in ("is null", "is not null") else f" {shown(node.get('value'))}"
        return f"{node['column']} {node.get('op', '=')}{value}"
    for kind in ("has", "has not", "performed", "did not perform", "in audience", "not in audience"):
        if kind in node:
            target = node[kind] if isinstance(node[kind], str) else " -> ".join(node[kind])
            text = f"{kind} {target}"
            if node.get("where") is not None:
                text += f" where {describe(node['where'])}"
            if node.get("within_days") is not None:
                text += f" within {node['within_days']} days"
            if node.get("between") is not None:
                text += f" between {shown(node['between'][0])} and {shown(node['between'][1])}"
            for key in ("times", "first", "last"):
                if isinstance(node.get(key), dict):
                    text += f" {key} {node[key].get('op')} {shown(node[key].get('value'))}"
            having = node.get("having")
            for h in [having] if isinstance(having, dict) else having or []:
                agg = f"{h.get('agg', 'count')}({h.get('column') or '*'})"
                text += f" having {agg} {h.get('op', '>=')} {shown(h.get('value'))}"
            return text
    return json.dumps(node)


@dataclass(frozen=True)
class Preview:
    name: str
    parent: str
    total: int  # parent rows
    steps: tuple[tuple[str, int], ...]  # (condition, size after it and all before it)
    labels: tuple[str, ...]
    members: tuple[tuple[Any, ...], ...]
    split_sizes: tuple[tuple[str, int], ...]

    @property
    def size(self) -> int:
        return self.steps[-1][1] if self.steps else self.total


def preview(where: DbtTarget, name: str, limit: int = 5) -> Preview:
    nodes = load_nodes(where.project_dir)
    disabled = load_manifest(where.project_dir).disabled_phrases()  # what the messages say of a disabled model
    node = nodes.get(name)
    if node is None:
        if name in disabled:
            raise UserError(f"audience preview {name}: {disabled[name]}; enable it to preview it")
        raise UserError(f"no model {name!r} in {where.project_dir}/target/manifest.json")
    spec = node.get("audience")
    if not spec:
        raise UserError(f"model {name!r} is not an audience (its SQL must call dbt_studio.audience)")
    cond = spec.get("where")
    conditions = [] if cond is None else cond["and"] if isinstance(cond, dict) and list(cond) == ["and"] else [cond]
    warehouse = connect(where)  # a bad profile, a locked file, an unreachable host: the one line sync and status give
    try:
        out = warehouse.call("audience_preview", nodes=nodes, name=name, limit=limit, disabled=disabled)
    except Exception as exc:
        message = compiler_message(exc)
        if message is None:
            refused = warehouse_refusal(exc)  # e.g. a condition's value the column's type cannot take
            if refused is None:
                raise
            raise UserError(f"{node.get('sql_file') or node.get('file') or name}: model '{name}': the warehouse "
                            f"refused its preview: {REDACT(refused)}") from None
        own = message.startswith(f"dbt_studio: audience '{name}': ")  # a mistake in the audience's own arguments
        file = node.get("sql_file") if own else node.get("file")
        raise UserError(f"{file or name}: model '{name}': {message}") from None
    finally:
        warehouse.close()
    return Preview(
        name=name, parent=spec["parent"], total=int(out["total"]),
        steps=tuple((describe(c), int(n)) for c, n in zip(conditions, out["sizes"], strict=True)),
        labels=tuple(out["labels"]), members=tuple(tuple(m) for m in out["members"]),
        split_sizes=tuple((str(g), int(n)) for g, n in out["split_sizes"]),
    )
