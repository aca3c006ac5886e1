"""Checks of `config.meta.dbt_studio` on every model, reported as one line each naming file and model.

Validation runs against the manifest, before anything touches the warehouse or a destination, so a mistake is
found in seconds and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sync_runner.core import yaml_text
from sync_runner.core.errors import UserError
from sync_runner.project.artifacts import RELATION_TYPES, Manifest, Node
from sync_runner.project.declared import MODEL_META, audience_problems
from sync_runner.project.target import DbtTarget


@dataclass(frozen=True)
class Problem:
    file: str
    model: str
    key: str
    message: str
    block: str = "meta.dbt_studio"  # or dbt_studio.audience: the arguments of the audience macro
    kind: str = "model"  # the node's resource type, for the text: model, snapshot or seed (not in --json)
    # "error": certainly wrong (exit 2); "warning": said, but the exit code does not count it (--json: "warnings")
    severity: str = "error"

    def __str__(self) -> str:
        if not self.model:  # a problem of a file that is not a model's (dbt_studio.yml): file and key, once each
            return f"{self.file}: {self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"
        where = f"{self.block}.{self.key}" if self.key else self.block
        return f"{self.file}: {self.kind or 'model'} '{self.model}': {where + ': ' if where else ''}{self.message}"


def validate_node(node: Node) -> list[Problem]:
    """The model's meta against the declared schema (keys, types, enums), then its columns; and the arguments
    of `dbt_studio.audience` if the model is an audience."""
    studio = node.studio
    if not isinstance(studio, dict):
        return [Problem(node.config_file, node.name, "", "must be a mapping", kind=node.resource_type)]
    # syncs are checked by sync_problems, against dbt_studio.yml's destinations too
    found = [(k, m) for k, m in MODEL_META.problems(studio) if not k.startswith("syncs")]
    problems = [Problem(node.config_file, node.name, key, message, kind=node.resource_type) for key, message in found]
    if node.audience is not None:
        problems += [Problem(node.original_file_path, node.name, key, message, "dbt_studio.audience")
                     for key, message in audience_problems(node.audience)]
    return problems


def _schema_problems(manifest: Manifest, checked: set[str], broken: set[str]) -> list[Problem]:
    """The schema's rules across models, from the package's `_schema` macro itself (the same answer as dbt's
    compile): which models, columns and hops exist, merge sides, event timestamps; then what each audience's
    arguments refer to, from `_check_audience_references` (models, relationships, columns, other audiences),
    except for the audiences in `checked`, whose arguments already broke the declared schema (one line a
    mistake: a misspelled `colum` is not also a missing column). The models in `broken` have a meta block that
    broke the declared schema: the rules run on the others, without the relationships that lead to or through a
    broken one (its own line already stands for it)."""
    from sync_runner.audiences.schema import audience_reference_problems, manifest_json, schema_problems

    data = manifest_json(manifest)  # (the whole file: parsed once for both checks)
    problems = [Problem(file, model, "", message, "")
                for file, model, message in schema_problems(manifest, data, frozenset(broken))]
    if problems or broken:  # references are resolved through a schema that holds together
        return problems
    return [Problem(file, model, key, message, "dbt_studio.audience")
            for file, model, key, message in audience_reference_problems(manifest, data) if model not in checked]


def _var_problems(manifest: Manifest, project_dir: Path) -> list[Problem]:
    """Package vars (`dbt_studio_*` in dbt_project.yml's `vars`, at the top or under a project's name) that the
    package does not have, or whose default is a whole number and whose value is not: dbt passes any var through,
    so a misspelled `dbt_studio_as_off` left audiences counting back from now without a word. The names and
    defaults are the package's own (`dbt_studio.defaults()`, run from the manifest)."""
    from sync_runner.audiences.schema import manifest_json
    from sync_runner.core.fields import closest
    from sync_runner.project.package_macros import PackageMacros

    path = project_dir / "dbt_project.yml"
    try:
        project = yaml_text.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml_text.Invalid):  # dbt reads it first and says what is wrong with it
        return []
    variables = project.get("vars") if isinstance(project, dict) else None
    if not isinstance(variables, dict):
        return []
    found = [(str(k), f"vars.{k}", v) for k, v in variables.items()]
    found += [(str(k), f"vars.{scope}.{k}", v) for scope, inner in variables.items() if isinstance(inner, dict)
              for k, v in inner.items()]
    found = [(name, key, value) for name, key, value in found if name.startswith("dbt_studio_")]
    if not found:
        return []
    defaults = PackageMacros(manifest_json(manifest), "macros/utils/defaults.sql",
                             folder=manifest.path.parent).call("default__defaults")
    known = sorted(f"dbt_studio_{name}" for name in defaults)
    problems = []
    for name, key, value in found:
        default = defaults.get(name.removeprefix("dbt_studio_"), None) if name in known else None
        if name not in known:
            guess = closest(name, known)
            message = f"unknown package var '{name}'" + (f" (did you mean '{guess}'?)" if guess else
                                                         f"; the package's vars: {', '.join(known)}")
        elif isinstance(default, int) and not isinstance(default, bool) and not (
                isinstance(value, int) and not isinstance(value, bool) or str(value).strip().isdigit()):
            message = f"is {value!r}, not a whole number (default {default})"
        else:
            continue
        problems.append(Problem(path.name, "", key, message, ""))
    return problems


def _disabled_syncs(manifest: Manifest) -> list[Problem]:
    """A warning for each disabled model, snapshot or seed (enabled: false, under the manifest's "disabled" key)
    that declares syncs: dbt never builds it, so its syncs never run, and nothing else says so."""
    problems = []
    for name, node in sorted(manifest.disabled.items()):
        syncs = node.studio.get("syncs") if isinstance(node.studio, dict) else None
        phrase = manifest.disabled_phrase(name)
        if not syncs or phrase is None:  # an enabled node of that name (another version, another target) runs
            continue
        names = [str(s.get("name")) for s in syncs if isinstance(s, dict) and s.get("name")] if isinstance(
            syncs, list) else []
        which = f" ({', '.join(names)})" if names else ""
        problems.append(Problem(node.config_file, node.name, "syncs",
                                f"the {node.resource_type or 'model'} is disabled (enabled: false), so dbt never "
                                f"builds it and its syncs{which} never run: enable it, or remove them",
                                kind=node.resource_type, severity="warning"))
    return problems


def validate_manifest(manifest: Manifest, project_dir: Path | None = None,
                      profiles_dir: Path | None = None) -> list[Problem]:
    """Problems of every model's meta, and of its syncs against the destinations of dbt_studio.yml. A column
    that the YAML docs of a model miss when the warehouse could not be read (Manifest.unread) is a warning: the
    relation may well have it (docs go stale), so only what is certain counts as an error."""
    from sync_runner.sync.config import UNREAD_COLUMNS

    return [replace(p, severity="warning") if UNREAD_COLUMNS in p.message else p
            for p in _validate_manifest(manifest, project_dir, profiles_dir)]


def _validate_manifest(manifest: Manifest, project_dir: Path | None,
                       profiles_dir: Path | None) -> list[Problem]:
    from sync_runner.sync.config import (
        ConfigProblem,
        find_config,
        load_alerts,
        load_destinations,
        shared_sync_names,
        sync_problems,
    )

    problems: list[Problem] = []
    nodes = {n.unique_id: n for n in (*manifest.studio_models(), *manifest.audience_models())}
    for node in sorted(nodes.values(), key=lambda n: n.name):
        problems += validate_node(node)
    # the rules across models read well-formed meta: those of the other models are checked all the same
    problems += _schema_problems(manifest, {p.model for p in problems if p.block == "dbt_studio.audience"},
                                 {p.model for p in problems if p.block == "meta.dbt_studio"})
    if project_dir is not None:
        problems += _var_problems(manifest, project_dir)
    problems += _disabled_syncs(manifest)
    if not any(n.studio.get("syncs") for n in manifest.studio_models() if isinstance(n.studio, dict)):
        return problems
    problems += [Problem(node.config_file, node.name, key, message, kind=node.resource_type)
                 for node, key, message in shared_sync_names(manifest.studio_models())]
    if project_dir is None:  # no dbt_studio.yml to check the destinations against: the syncs' shape only
        problems += [Problem(node.config_file, node.name, key, message, kind=node.resource_type)
                     for node in manifest.studio_models() for key, message in sync_problems(node, None)]
        return list(dict.fromkeys(problems))
    broken: dict[str, ConfigProblem] = {}
    try:
        destinations = load_destinations(project_dir, profiles_dir, broken=broken)
    except ConfigProblem as exc:  # the file as a whole
        return [*problems, Problem(exc.file, "", exc.key, exc.message, "")]
    except UserError as exc:  # not YAML, not a mapping: the message names the file
        config = find_config(project_dir, profiles_dir)
        return [*problems, Problem(str(config or "dbt_studio.yml"), "", "", str(exc).removeprefix(f"{config}: "), "")]
    problems += [Problem(p.file, "", p.key, p.message, "") for p in broken.values()]
    try:
        alerts = load_alerts(project_dir, profiles_dir)
    except UserError as exc:
        config = find_config(project_dir, profiles_dir)
        return [*problems, Problem(str(config or "dbt_studio.yml"), "", "", str(exc), "")]
    for node in manifest.studio_models():
        problems += [Problem(node.config_file, node.name, key, message, kind=node.resource_type)
                     for key, message in sync_problems(node, destinations, alerts, broken)]
    return list(dict.fromkeys(problems))  # a primary key both the meta and the syncs need is named once


def relation_columns(manifest: Manifest, where: DbtTarget) -> dict[str, list[tuple[str, str, bool]]]:
    """unique_id -> the columns of the relation of every model the dbt_studio configuration names, for those
    built, as (name, type, whether the package counts the type a number): the warehouse is the truth for columns.
    Raises UserError when the warehouse cannot be used.

    On DuckDB each relation's columns come from `relation_columns_sql`, kept compiled between commands
    (project/compiled.py): once compiled, validate runs without loading dbt. Other profiles ask dbt's adapter."""
    from sync_runner import __version__
    from sync_runner.core.paths import find_config
    from sync_runner.project.compiled import CompiledSql
    from sync_runner.project.versions import check_versions

    names = set()
    for node in manifest.studio_models():
        names.add(node.name)
        rels = node.studio.get("relationships") if isinstance(node.studio, dict) else None
        for rel in rels if isinstance(rels, list) else []:
            if isinstance(rel, dict):
                names |= {str(rel.get("to")), str(rel.get("through"))}
    nodes = [n for n in manifest.nodes.values() if n.resource_type in RELATION_TYPES and n.name in names]
    with CompiledSql(where, manifest.path, [find_config(where.project_dir, where.profiles_dir)],
                     manifest_sha256=manifest.sha256) as compiled:
        if not (compiled.direct or compiled.warehouse.adapter_type == "duckdb"):  # names as dbt's adapter lists them
            warehouse = compiled.warehouse
            with warehouse.session():
                relations = {n.unique_id: warehouse.relation(n.database, n.schema, n.alias) for n in nodes}
                found = warehouse.call("relations_columns", relations=list(relations.values()), with_types=True)
            return {uid: [(str(n), str(t), bool(num)) for n, t, num in found[i]] for i, uid in enumerate(relations)
                    if found[i]}
        check_versions(__version__, compiled.value("dbt_studio_version"))  # connect() checks it on a miss
        out: dict[str, list[tuple[str, str, bool]]] = {}
        for node in nodes:
            relation = {"database": node.database, "schema": node.schema, "identifier": node.alias}
            rows = compiled.relation_columns(relation)
            if rows:
                out[node.unique_id] = [(str(r[0]), str(r[1]), bool(r[2])) for r in rows]
        return out
