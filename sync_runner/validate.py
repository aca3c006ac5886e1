"""Checks of `config.meta.dbt_studio` on every model, reported as one line each naming file and model.

Validation runs against the manifest, before anything touches the warehouse or a destination, so a mistake is
found in seconds and changes nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import Manifest, Node
from .errors import UserError

MODEL_TYPES = ("parent", "related", "event")


@dataclass(frozen=True)
class Problem:
    file: str
    model: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"meta.dbt_studio.{self.key}" if self.key else "meta.dbt_studio"
        return f"{self.file}: model '{self.model}': {where}: {self.message}"


def _column_list(value: Any) -> list[str] | None:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    return None


def _check_columns(node: Node, key: str, names: list[str]) -> list[str]:
    """Columns a key names that the model's documented columns lack (only when it documents any)."""
    if not node.columns:
        return []
    known = {c.lower() for c in node.columns}
    return [n for n in names if n.lower() not in known]


def _primary_key(node: Node, value: Any) -> list[str]:
    cols = _column_list(value)
    if cols is None:
        return ["must be a column name or a non-empty list of column names"]
    missing = _check_columns(node, "primary_key", cols)
    return [f"unknown column '{c}' (documented columns: {', '.join(node.columns)})" for c in missing]


def _labels(node: Node, value: Any) -> list[str]:
    if isinstance(value, dict):
        bad = set(value) - {"primary", "secondary"}
        if bad:
            return [f"unknown label kind(s) {sorted(bad)}; use 'primary' and 'secondary'"]
        cols = [v for v in value.values() if isinstance(v, str)]
        if len(cols) != len(value):
            return ["each label must be a column name"]
    else:
        cols = _column_list(value)
        if cols is None or len(cols) > 2:
            return ["must be [primary, secondary] column names or {primary: col, secondary: col}"]
    return [f"unknown column '{c}'" for c in _check_columns(node, "labels", cols)]


def _model_type(node: Node, value: Any) -> list[str]:
    return [] if value in MODEL_TYPES else [f"must be one of {', '.join(MODEL_TYPES)}, not {value!r}"]


def _timestamp(node: Node, value: Any) -> list[str]:
    if not isinstance(value, str) or not value:
        return ["must be a column name"]
    return [f"unknown column '{c}'" for c in _check_columns(node, "timestamp", [value])]


def _list_of_mappings(node: Node, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return ["must be a list of mappings"]
    return []


KEY_CHECKS: dict[str, Callable[[Node, Any], list[str]]] = {
    "primary_key": _primary_key,
    "labels": _labels,
    "model_type": _model_type,
    "timestamp": _timestamp,
    "relationships": _list_of_mappings,
    "syncs": _list_of_mappings,
}


def validate_node(node: Node) -> list[Problem]:
    studio = node.studio
    if not isinstance(studio, dict):
        return [Problem(node.config_file, node.name, "", "must be a mapping")]
    problems = []
    for key, value in studio.items():
        check = KEY_CHECKS.get(key)
        if check is None:
            close = difflib.get_close_matches(str(key), KEY_CHECKS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(KEY_CHECKS))}"
            problems.append(Problem(node.config_file, node.name, str(key), f"unknown key{hint}"))
            continue
        problems += [Problem(node.config_file, node.name, key, msg) for msg in check(node, value)]
    return problems


def _schema_problems(manifest: Manifest) -> list[tuple[str, str, str, str]]:
    from .audience import schema_problems

    return schema_problems(manifest)


def validate_manifest(manifest: Manifest, project_dir: Path | None = None,
                      profiles_dir: Path | None = None) -> list[Problem]:
    """Problems of every model's meta, and of its syncs against the destinations of dbt_studio.yml."""
    from .config import find_config, load_destinations, sync_problems

    problems: list[Problem] = []
    for node in manifest.studio_models():
        problems += validate_node(node)
    problems += [Problem(*p) for p in _schema_problems(manifest)]  # relationships across models (audience.py)
    if project_dir is None or not any(n.studio.get("syncs") for n in manifest.studio_models()):
        return problems
    try:
        destinations = load_destinations(project_dir, profiles_dir)
    except UserError as exc:
        config = find_config(project_dir, profiles_dir)
        return [*problems, Problem(str(config or "dbt_studio.yml"), "-", "destinations", str(exc))]
    for node in manifest.studio_models():
        problems += [Problem(node.config_file, node.name, key, message)
                     for key, message in sync_problems(node, destinations)]
    return problems
