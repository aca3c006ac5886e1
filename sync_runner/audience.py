"""The Customer Studio schema and audience insights, from the manifest and through the package's macros.

* `load_nodes` reads every model's `config.meta.dbt_studio`, documented columns (with their meta), relation and
  audience spec (`config.meta.dbt_studio_audience`, recorded by `dbt_studio.audience`) from manifest.json;
* `schema_graph` turns it into parents and relationships (declared ones and their reverse sides, through ones);
  `render_text` / `render_mermaid` print it; `schema_problems` checks it (one line per problem, naming the model);
* `preview` asks the warehouse (macro `audience_preview`) for an audience's size after each top-level condition
  and a few members by their labels. No SQL is written here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import Manifest
from .errors import UserError
from .invoke import DbtTarget

CARDINALITIES = ("1:1", "1:many", "many:1")
FLIP = {"1:1": "1:1", "1:many": "many:1", "many:1": "1:many"}


@dataclass(frozen=True)
class Relationship:
    name: str
    source: str
    to: str
    cardinality: str  # seen from `source`; "many:many" for through relationships
    pairs: tuple[tuple[str, str], ...] = ()
    through: str | None = None
    merge_columns: Any = None
    declared: bool = True


@dataclass
class SchemaGraph:
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> dbt_studio meta
    relationships: list[Relationship] = field(default_factory=list)

    def of(self, model: str) -> list[Relationship]:
        return [r for r in self.relationships if r.source == model]

    def parents(self) -> list[str]:
        return sorted(n for n, m in self.models.items() if m.get("model_type") == "parent")


def load_nodes(project_dir: Path | str, target_path: str = "target") -> dict[str, dict[str, Any]]:
    """Every model of manifest.json as the `audience_preview` macro wants it (name -> meta, columns, relation...)."""
    path = Path(project_dir).resolve() / target_path / "manifest.json"
    if not path.is_file():
        raise UserError(f"no {target_path}/manifest.json in {Path(project_dir).resolve()}: run dbt build first")
    data = json.loads(path.read_text(encoding="utf-8"))
    nodes: dict[str, dict[str, Any]] = {}
    for raw in (data.get("nodes") or {}).values():
        if raw.get("resource_type") != "model":
            continue
        meta = (raw.get("config") or {}).get("meta") or raw.get("meta") or {}
        column_meta = {}
        for name, column in (raw.get("columns") or {}).items():
            cmeta = ((column.get("config") or {}).get("meta") or column.get("meta") or {}).get("dbt_studio") or {}
            column_meta[name.lower()] = cmeta
        nodes[raw["name"]] = {
            "meta": meta.get("dbt_studio") or {},
            "audience": meta.get("dbt_studio_audience"),
            "columns": list(column_meta),
            "column_meta": column_meta,
            "relation": raw.get("relation_name"),
            "unique_id": raw.get("unique_id"),
            "file": raw.get("patch_path", "").split("://", 1)[-1] or raw.get("original_file_path", ""),
        }
    return nodes


def _pairs(join: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(join, dict):
        return tuple((str(a), str(b)) for a, b in join.items())
    return ()


def schema_graph(nodes: dict[str, dict[str, Any]]) -> SchemaGraph:
    """Declared relationships, their reverse sides (unless the other model declares its own), then through ones."""
    graph = SchemaGraph({n: v["meta"] for n, v in nodes.items() if v["meta"]})
    declared = []
    for name, meta in graph.models.items():
        for rel in meta.get("relationships") or []:
            if isinstance(rel, dict) and rel.get("to") in nodes and not rel.get("through"):
                declared.append(Relationship(str(rel.get("name") or rel["to"]), name, rel["to"],
                                             str(rel.get("cardinality")), _pairs(rel.get("join")),
                                             merge_columns=rel.get("merge_columns")))
    graph.relationships += declared
    for rel in declared:
        if not any(r.source == rel.to and r.to == rel.source for r in declared):
            graph.relationships.append(Relationship(rel.source, rel.to, rel.source, FLIP.get(rel.cardinality, "?"),
                                                    tuple((b, a) for a, b in rel.pairs), declared=False))
    for name, meta in graph.models.items():
        for rel in meta.get("relationships") or []:
            if isinstance(rel, dict) and rel.get("through"):
                graph.relationships.append(Relationship(str(rel.get("name") or rel.get("to")), name,
                                                        str(rel.get("to")), "many:many", through=str(rel["through"])))
    return graph


def schema_problems(manifest: Manifest) -> list[tuple[str, str, str, str]]:
    """(file, model, key, message) for every relationship that cannot work: unknown models or columns, bad
    cardinality, merge_columns against the cardinality rules, through relationships without their two hops."""
    models = {n.name: n for n in manifest.models()}
    problems = []

    def unknown_columns(model: str, columns: list[str]) -> list[str]:
        known = {c.lower() for c in models[model].columns}
        return [c for c in columns if known and c.lower() not in known]

    studio_models = [n for n in manifest.studio_models() if isinstance(n.studio, dict)]  # validate_node: the rest
    direct: set[tuple[str, str]] = set()
    for node in studio_models:
        for rel in node.studio.get("relationships") or []:
            if isinstance(rel, dict) and rel.get("to") in models and not rel.get("through"):
                direct |= {(node.name, rel["to"]), (rel["to"], node.name)}
    for node in studio_models:
        rels = node.studio.get("relationships")
        if not isinstance(rels, list):
            continue
        for i, rel in enumerate(rels):
            if not isinstance(rel, dict):
                continue
            key = f"relationships[{i}]"
            to = rel.get("to")

            def add(message: str, key: str = key, node: Any = node) -> None:
                problems.append((node.config_file, node.name, key, message))

            unknown_keys = set(rel) - {"name", "to", "cardinality", "join", "merge_columns", "through"}
            if unknown_keys:
                add(f"unknown key(s) {sorted(unknown_keys)}")
            if to not in models:
                add(f"unknown model {to!r}")
                continue
            if rel.get("through"):
                via = rel["through"]
                if via not in models:
                    add(f"through: unknown model {via!r}")
                elif (node.name, via) not in direct or (via, to) not in direct:
                    add(f"through {via!r} needs direct relationships {node.name} -> {via} and {via} -> {to}")
                continue
            cardinality = str(rel.get("cardinality"))
            if cardinality not in CARDINALITIES:
                add(f"cardinality must be one of {', '.join(CARDINALITIES)}, not {rel.get('cardinality')!r}")
            pairs = _pairs(rel.get("join"))
            if not pairs:
                add(f"join must map this model's columns to {to}'s columns, e.g. {{user_id: user_id}}")
            for column in unknown_columns(node.name, [a for a, _ in pairs]):
                add(f"join: unknown column {column!r} of {node.name}")
            for column in unknown_columns(to, [b for _, b in pairs]):
                add(f"join: unknown column {column!r} of {to}")
            merge = rel.get("merge_columns")
            if merge:
                if cardinality == "1:many":
                    add(f"merge_columns: {to} is on the many side of 1:many; columns merge only from the one "
                        f"side onto the many side (declare the merge on {to})")
                elif merge is not True:
                    columns = [merge] if isinstance(merge, str) else list(merge) if isinstance(merge, list) else []
                    for column in unknown_columns(to, columns):
                        add(f"merge_columns: unknown column {column!r} of {to}")
        if node.studio.get("model_type") == "event" and not node.studio.get("timestamp"):
            problems.append((node.config_file, node.name, "timestamp", "an event model needs a timestamp column"))
    return problems


def _pairs_text(rel: Relationship) -> str:
    return ", ".join(f"{a} = {b}" for a, b in rel.pairs)


def _walk(graph: SchemaGraph, model: str, depth: int, seen: set[str], throughs: list, lines: list[str]) -> None:
    for rel in sorted(graph.of(model), key=lambda r: r.to):
        if rel.through is not None:
            throughs.append((depth, rel))
            continue
        if rel.to in seen:
            continue
        seen.add(rel.to)
        target = graph.models.get(rel.to, {})
        kind = target.get("model_type") or "model"
        if target.get("timestamp"):
            kind += f", timestamp {target['timestamp']}"
        merged = "  [merges its columns]" if rel.merge_columns else ""
        lines.append(f"{'  ' * depth}-> {rel.to} ({kind})  {rel.name}: {rel.cardinality} on {_pairs_text(rel)}{merged}")
        _walk(graph, rel.to, depth + 1, seen, throughs, lines)


def render_text(graph: SchemaGraph) -> str:
    """Each parent, then every model reachable from it with the relationship that leads there."""
    lines: list[str] = []
    for parent in graph.parents() or sorted(graph.models):
        meta = graph.models[parent]
        lines.append(f"{parent}  (parent; primary key {meta.get('primary_key')}; labels {meta.get('labels')})")
        seen = {parent}
        throughs: list[tuple[int, Relationship]] = []
        _walk(graph, parent, 1, seen, throughs, lines)
        for depth, rel in throughs:
            lines.append(f"{'  ' * depth}=> {rel.to}  {rel.name}: many:many through {rel.through} (from {rel.source})")
        lines.append("")
    return "\n".join(lines).rstrip()


def render_mermaid(graph: SchemaGraph) -> str:
    """A Mermaid erDiagram: one edge per relationship pair (declared side), through relationships dotted."""
    marks = {"1:1": "||--||", "1:many": "||--o{", "many:1": "}o--||"}
    lines = ["erDiagram"]
    for name in sorted(graph.models):
        meta = graph.models[name]
        lines.append(f"    {name} {{")
        lines.append(f"        string model_type \"{meta.get('model_type') or 'model'}\"")
        lines.append("    }")
    for rel in graph.relationships:
        if not rel.declared:
            continue
        if rel.through:
            lines.append(f"    {rel.source} }}o..o{{ {rel.to} : \"{rel.name} (through {rel.through})\"")
        else:
            lines.append(f"    {rel.source} {marks.get(rel.cardinality, '||--||')} {rel.to} : "
                         f"\"{rel.name}: {_pairs_text(rel)}\"")
    return "\n".join(lines)


def describe(node: Any) -> str:
    """A short text of one condition (for previews)."""
    if not isinstance(node, dict):
        return str(node)
    for kind in ("and", "or"):
        if kind in node:
            return "(" + f" {kind} ".join(describe(c) for c in node[kind]) + ")"
    if "not" in node:
        return f"not {describe(node['not'])}"
    if "column" in node:
        value = "" if node.get("op") in ("is null", "is not null") else f" {json.dumps(node.get('value'))}"
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
                text += f" between {node['between'][0]} and {node['between'][1]}"
            for key in ("times", "first", "last"):
                if isinstance(node.get(key), dict):
                    text += f" {key} {node[key].get('op')} {node[key].get('value')}"
            having = node.get("having")
            for h in [having] if isinstance(having, dict) else having or []:
                agg = f"{h.get('agg', 'count')}({h.get('column') or '*'})"
                text += f" having {agg} {h.get('op', '>=')} {h.get('value')}"
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
    node = nodes.get(name)
    if node is None:
        raise UserError(f"no model {name!r} in {where.project_dir}/target/manifest.json")
    spec = node.get("audience")
    if not spec:
        raise UserError(f"model {name!r} is not an audience (its SQL must call dbt_studio.audience)")
    cond = spec.get("where")
    conditions = [] if cond is None else cond["and"] if isinstance(cond, dict) and list(cond) == ["and"] else [cond]
    from .warehouse import Warehouse

    warehouse = Warehouse(where)
    try:
        out = warehouse.call("audience_preview", nodes=nodes, name=name, limit=limit)
    finally:
        warehouse.close()
    return Preview(
        name=name, parent=spec["parent"], total=int(out["total"]),
        steps=tuple((describe(c), int(n)) for c, n in zip(conditions, out["sizes"], strict=True)),
        labels=tuple(out["labels"]), members=tuple(tuple(m) for m in out["members"]),
        split_sizes=tuple((str(g), int(n)) for g, n in out["split_sizes"]),
    )
