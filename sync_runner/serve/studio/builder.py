"""What the builder sends, checked before any macro sees it.

The declared configuration schema (`sync_runner.project.declared`) owns the rules of an audience: known keys
(with a did-you-mean), operators, aggregates, value types, splits adding up to 100; and the package's
`_check_audience_references` macro owns what its names refer to (relationships, columns), as in `dbt compile`.
This module adds only what a web form needs on top, before either runs: every identifier a plain identifier (a
column name can never carry SQL, whatever the model documents), every model name a model of this project, and
every value a plain value (a list where the operator takes one). The error names the path in the tree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any, NoReturn

from sync_runner.core.errors import UserError
from sync_runner.project.declared import audience_problems

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
LIST_OPS = ("in", "not in", "between")
DAYS_OPS = ("within last days", "more than days ago")
MODEL_KEYS = ("has", "has not", "performed", "did not perform", "in audience", "not in audience", "via")
SPEC_KEYS = {"parent", "where", "columns", "traits", "splits", "as_of", "name"}
Disabled = Callable[[Any], str | None]  # what a message says of a disabled model (Catalog.disabled), else None


def _enabled(name: Any) -> str | None:
    return None


def _fail(path: str, message: str) -> NoReturn:
    raise UserError(f"{path}: {message}")


def check_name(path: str, value: Any) -> None:
    """A column name a query will carry: a plain identifier, whatever the catalog says."""
    if not isinstance(value, str) or not IDENT.match(value):
        _fail(path, f"{value!r} is not a column name (letters, digits and _)")


def _scalar(path: str, value: Any) -> None:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        _fail(path, f"a value must be a string, number, true/false or null, not {type(value).__name__}")


def _model(path: str, name: Any, models: set[str], disabled: Disabled) -> None:
    for n in name if isinstance(name, list) else [name]:
        if isinstance(n, str) and n not in models and (phrase := disabled(n)):
            _fail(path, phrase)
        if not isinstance(n, str) or n not in models:
            near = difflib.get_close_matches(str(n), sorted(models), n=1)
            _fail(path, f"unknown model {n!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))


def _value(path: str, node: dict[str, Any]) -> None:
    """The value of a comparison ({op, value}): a list of plain values for in / not in / between, a number for the
    relative windows (as the compiler needs: a number written as text fails the build), else one plain value."""
    op, value = node.get("op", "="), node.get("value")
    if op in LIST_OPS:
        if not isinstance(value, list) or (op == "between" and len(value) != 2):
            _fail(path, f"{op!r} needs a list of values" + (" [low, high]" if op == "between" else ""))
        for i, v in enumerate(value):
            _scalar(f"{path}.value[{i}]", v)
    elif op in DAYS_OPS and (isinstance(value, bool) or not isinstance(value, (int, float))):
        _fail(path, f"{op!r} needs a number of days, not {value!r}")
    else:
        _scalar(f"{path}.value", value)


def _check_tree(node: dict[str, Any], models: set[str], path: str, disabled: Disabled) -> None:
    """Identifiers, model names and values of a tree whose shape the declared schema has passed."""
    for group in ("and", "or"):
        for i, child in enumerate(node.get(group) or []):
            _check_tree(child, models, f"{path}.{group}[{i}]", disabled)
    if "not" in node:
        _check_tree(node["not"], models, f"{path}.not", disabled)
    if "column" in node:
        check_name(f"{path}.column", node["column"])
        _value(path, node)
    for key in MODEL_KEYS:
        if key in node:
            _model(f"{path}.{key}", node[key], models, disabled)
    if isinstance(node.get("where"), dict):
        _check_tree(node["where"], models, f"{path}.where", disabled)
    having = node.get("having")
    for i, h in enumerate(having if isinstance(having, list) else [having] if having else []):
        if h.get("column") is not None:
            check_name(f"{path}.having[{i}].column", h["column"])
        _value(f"{path}.having[{i}]", h)
    for key in ("times", "first", "last"):
        if isinstance(node.get(key), dict):
            _value(f"{path}.{key}", node[key])


def check_spec(spec: Any, models: set[str], parents: set[str], disabled: Disabled = _enabled) -> dict[str, Any]:
    """The builder's audience ({parent, where, columns, traits, splits, as_of}) checked; returns it. A model
    name that is no model of `models` is said to be disabled when `disabled` says so (else unknown)."""
    if not isinstance(spec, dict):
        _fail("audience", "expected an object")
    for key in sorted(set(spec) - SPEC_KEYS):
        near = difflib.get_close_matches(key, sorted(SPEC_KEYS), n=1)
        _fail("audience", f"unknown key {key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    problems = audience_problems({k: v for k, v in spec.items() if k != "name"})
    if problems:
        path, message = problems[0]
        _fail(path or "audience", message)
    if spec.get("parent") not in parents:
        if spec.get("parent") not in models and (phrase := disabled(spec.get("parent"))):
            _fail("parent", phrase)
        _fail("parent", f"{spec.get('parent')!r} is not a parent model (parents: {', '.join(sorted(parents))})")
    if spec.get("where") is not None:
        _check_tree(spec["where"], models, "where", disabled)
    for i, column in enumerate(spec.get("columns") or []):
        check_name(f"columns[{i}]", column)
    for i, trait in enumerate(spec.get("traits") or []):
        check_name(f"traits[{i}].name", trait.get("name"))
        _model(f"traits[{i}].related", trait.get("related"), models, disabled)
        for key in ("column", "order_by"):
            if trait.get(key) is not None:
                check_name(f"traits[{i}].{key}", trait[key])
        if trait.get("via") is not None:
            _model(f"traits[{i}].via", trait["via"], models, disabled)
        if trait.get("where") is not None:
            _check_tree(trait["where"], models, f"traits[{i}].where", disabled)
    splits = spec.get("splits") or {}
    if splits.get("column") is not None:
        check_name("splits.column", splits["column"])
    _scalar("splits.salt", splits.get("salt"))
    return spec


def conditions(where: Any) -> list[Any]:
    """The top-level conditions of a tree (the funnel's steps): the children of a top-level `and`, else itself."""
    if where is None:
        return []
    if isinstance(where, dict) and list(where) == ["and"]:
        return list(where["and"])
    return [where]
