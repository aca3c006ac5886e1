"""The schema graph as text for a terminal (`dbt-studio schema`) or as a Mermaid diagram (`--mermaid`)."""

from __future__ import annotations

from sync_runner.audiences.schema import Relationship, SchemaGraph


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
