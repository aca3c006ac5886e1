"""The declared schema as a graph: parents, related and event models and the relationships between them.

* `load_nodes` reads every model's `config.meta.dbt_studio`, documented columns (with their meta), relation and
  audience spec (`config.meta.dbt_studio_audience`, recorded by `dbt_studio.audience`) from manifest.json;
* `schema_graph` turns it into parents and relationships (declared ones and their reverse sides, through ones);
* `schema_problems` checks it (one line per problem, naming the model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from sync_runner.core.errors import UserError
from sync_runner.project.artifacts import Manifest
from sync_runner.project.package_macros import CompilerError, PackageMacros

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
    return manifest_nodes(read_manifest(project_dir, target_path))


def read_manifest(project_dir: Path | str, target_path: str = "target") -> dict[str, Any]:
    """manifest.json as parsed JSON; one line when the project was never built."""
    path = Path(project_dir).resolve() / target_path / "manifest.json"
    if not path.is_file():
        raise UserError(f"no {target_path}/manifest.json in {Path(project_dir).resolve()}: run dbt build first")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def manifest_nodes(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`load_nodes` of a manifest already parsed (the studio reads other fields of the same file)."""
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
            "database": raw.get("database"),
            "schema_name": raw.get("schema"),
            "identifier": raw.get("alias") or raw.get("name"),
            "file": (raw.get("patch_path") or "").split("://", 1)[-1] or raw.get("original_file_path", ""),
            "sql_file": raw.get("original_file_path", ""),  # where an audience's arguments are written
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


def manifest_json(manifest: Manifest) -> dict[str, Any]:
    """The whole of the manifest.json a Manifest was loaded from (the checks below read its macros and nodes)."""
    data: dict[str, Any] = json.loads(manifest.path.read_text(encoding="utf-8"))
    return data


def _manifest_nodes(manifest: Manifest, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifest's models as the macros want them, with the relation's columns where validate read them
    (Manifest.with_columns)."""
    nodes = manifest_nodes(data)
    for node in manifest.models():
        if node.columns_source == "warehouse" and node.name in nodes:
            nodes[node.name].update(columns=[c.lower() for c in node.columns], columns_source="warehouse",
                                    column_types=dict(node.column_types))
        elif node.columns_source == "unread" and node.name in nodes:  # the messages say why the docs stood in
            nodes[node.name].update(columns_source="unread")
    return nodes


def _rules(manifest: Manifest, data: dict[str, Any]) -> PackageMacros:
    """The package's schema rules and audience reference checks (one set for both checks: compiled once, and its
    code kept beside the manifest)."""
    return PackageMacros(data, "macros/schema/schema.sql", "macros/audiences/_check_references.sql",
                         "macros/utils/_keys.sql",
                         folder=manifest.path.parent)


def schema_problems(manifest: Manifest, data: dict[str, Any] | None = None,
                    skip: frozenset[str] = frozenset()) -> list[tuple[str, str, str]]:
    """(file, model, message) for every schema rule the declarations break, as the package's `_schema` macro
    finds them at compile time: validate runs that macro itself (the one owner of the rules; see
    sync_runner/project/package_macros.py), so both say the same. `data`: manifest_json(manifest), when the
    caller already parsed it (validate parses it once for both checks). `skip`: models whose own meta is not
    well-formed (validate has said why): their declarations are left out, and so are the relationships of the
    other models that lead to them or through them, so that nothing is said twice or guessed from a broken block."""
    data = manifest_json(manifest) if data is None else data
    nodes = _manifest_nodes(manifest, data)
    if skip:
        nodes = {name: node | {"meta": _without(node["meta"], skip) if name not in skip else {}}
                 for name, node in nodes.items()}
    problems: list[dict[str, str]] = []
    try:
        _rules(manifest, data).call("_schema", nodes, problems, manifest.disabled_phrases())
    except (CompilerError, jinja2.TemplateError, TypeError, AttributeError, KeyError) as exc:
        # declarations the rules cannot read at all (validate checks their keys and types first)
        return [(str(manifest.path), "-", f"the schema declarations cannot be read: {exc}")]
    return [(nodes.get(p["model"], {}).get("file", ""), p["model"], p["message"]) for p in problems]


def _without(meta: Any, skip: frozenset[str]) -> Any:
    """A well-formed meta block without its relationships to or through the models in `skip`."""
    rels = meta.get("relationships") if isinstance(meta, dict) else None
    if not isinstance(rels, list):
        return meta
    kept = [r for r in rels if not (isinstance(r, dict) and (r.get("to") in skip or r.get("through") in skip))]
    return meta | {"relationships": kept}


def audience_reference_problems(manifest: Manifest,
                                data: dict[str, Any] | None = None) -> list[tuple[str, str, str, str]]:
    """(file, audience, key path, message) for every reference of an audience's recorded arguments that does
    not resolve: parent, models and relationships reached, columns read (the relation's where it is built), other
    audiences. The package's `_check_audience_references` macro finds them, as `dbt compile` does (which stops at
    the first). Call it on a schema without problems (`schema_problems`); `data` as there."""
    if not manifest.audience_models():
        return []
    data = manifest_json(manifest) if data is None else data
    nodes = _manifest_nodes(manifest, data)
    macros = _rules(manifest, data)
    schema = macros.call("_schema", nodes, [], manifest.disabled_phrases())
    out: list[tuple[str, str, str, str]] = []
    for node in manifest.audience_models():
        if not isinstance(node.audience, dict):
            continue
        raw = data["nodes"].get(node.unique_id) or {}
        depends_on = (raw["depends_on"] or {}).get("nodes") or [] if "depends_on" in raw else None  # dbt writes it
        found: list[dict[str, str]] = []
        try:
            macros.call("_check_audience_references", schema, node.name, node.audience, found, depends_on)
        except (CompilerError, jinja2.TemplateError, TypeError, AttributeError, KeyError) as exc:
            found.append({"key": "", "message": f"the audience's arguments cannot be read: {exc}"})
        out += [(node.original_file_path, node.name, p["key"], p["message"]) for p in found]
    return out
