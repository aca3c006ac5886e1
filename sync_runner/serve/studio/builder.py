"""What the builder sends, checked before any macro sees it.

The declared configuration schema (`sync_runner.project.declared`) owns the rules of an audience: known keys
(with a did-you-mean), operators, aggregates, value types, splits adding up to 100. This module adds what a web
form needs on top: every identifier a plain identifier (a column name can never carry SQL, whatever the model
documents) and every model name a model of this project. The error names the path in the tree.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, NoReturn

from sync_runner.core.errors import UserError
from sync_runner.project.declared import audience_problems

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
OPS = ("=", "!=", "<>", "<", "<=", ">", ">=", "in", "not in", "between", "contains", "starts with", "ends with",
       "is null", "is not null", "within last days", "more than days ago", "before", "after")
TIME_OPS = ("before", "after", "within last days", "more than days ago")
AGGS = ("count", "sum", "avg", "min", "max")
TRAIT_AGGS = (*AGGS, "first", "last", "most_frequent")
RELATED = ("has", "has not")
EVENTS = ("performed", "did not perform")
MEMBERSHIP = ("in audience", "not in audience")
KEYS = {
    "column": {"column", "op", "value"},
    "related": {"has", "has not", "via", "where", "having"},
    "event": {"performed", "did not perform", "via", "where", "within_days", "between", "times", "first", "last"},
    "membership": {"in audience", "not in audience"},
}
SPEC_KEYS = {"parent", "where", "columns", "traits", "splits", "as_of", "name"}
TRAIT_KEYS = {"name", "related", "via", "agg", "column", "where", "order_by"}
SPLIT_KEYS = {"groups", "holdout", "salt", "column"}


def _fail(path: str, message: str) -> NoReturn:
    raise UserError(f"{path}: {message}")


def _unknown(path: str, keys: set[str], known: set[str]) -> None:
    for key in sorted(keys - known):
        near = difflib.get_close_matches(key, sorted(known), n=1)
        _fail(path, f"unknown key {key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))


def _ident(path: str, value: Any) -> None:
    if not isinstance(value, str) or not IDENT.match(value):
        _fail(path, f"{value!r} is not a column name (letters, digits and _)")


def _scalar(path: str, value: Any) -> None:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        _fail(path, f"a value must be a string, number, true/false or null, not {type(value).__name__}")


def _model(path: str, name: Any, models: set[str]) -> None:
    names = name if isinstance(name, list) else [name]
    for n in names:
        if not isinstance(n, str) or n not in models:
            near = difflib.get_close_matches(str(n), sorted(models), n=1)
            _fail(path, f"unknown model {n!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))


def _compare(path: str, node: dict[str, Any], ops: tuple[str, ...] = OPS) -> None:
    op = node.get("op", "=")
    if op not in ops:
        _fail(path, f"unknown operator {op!r} (known: {', '.join(ops)})")
    value = node.get("value")
    if op in ("in", "not in", "between"):
        if not isinstance(value, list):
            _fail(path, f"{op!r} needs a list of values")
        for i, v in enumerate(value):
            _scalar(f"{path}.value[{i}]", v)
    else:
        _scalar(f"{path}.value", value)


def check_tree(node: Any, models: set[str], path: str = "where") -> None:
    """Raise UserError naming the first problem of a condition tree."""
    if not isinstance(node, dict) or not node:
        _fail(path, "a condition must be a mapping")
    keys = set(node)
    for group in ("and", "or"):
        if group in node:
            if keys != {group} or not isinstance(node[group], list):
                _fail(path, f"'{group}' takes a list of conditions and nothing else")
            for i, child in enumerate(node[group]):
                check_tree(child, models, f"{path}.{group}[{i}]")
            return
    if "not" in node:
        if keys != {"not"}:
            _fail(path, "'not' takes one condition and nothing else")
        check_tree(node["not"], models, f"{path}.not")
        return
    if "column" in node:
        _unknown(path, keys, KEYS["column"])
        _ident(f"{path}.column", node["column"])
        _compare(path, node)
        return
    kind = next((k for k, names in (("related", RELATED), ("event", EVENTS), ("membership", MEMBERSHIP))
                 if any(n in node for n in names)), None)
    if kind is None:
        _fail(path, f"unknown condition {sorted(keys)} (and / or / not, column, has / has not, performed / did not "
                    "perform, in audience / not in audience)")
    _unknown(path, keys, KEYS[kind])
    target_key = next(k for k in node if k in (*RELATED, *EVENTS, *MEMBERSHIP))
    _model(f"{path}.{target_key}", node[target_key], models)
    if "via" in node:
        _model(f"{path}.via", node["via"], models)
    if node.get("where") is not None:
        check_tree(node["where"], models, f"{path}.where")
    if kind == "related" and node.get("having") is not None:
        having = node["having"] if isinstance(node["having"], list) else [node["having"]]
        for i, h in enumerate(having):
            hp = f"{path}.having[{i}]"
            if not isinstance(h, dict):
                _fail(hp, "a having is {agg, column, op, value}")
            _unknown(hp, set(h), {"agg", "column", "op", "value"})
            if h.get("agg", "count") not in AGGS:
                _fail(hp, f"unknown aggregate {h.get('agg')!r} ({', '.join(AGGS)})")
            if h.get("column") is not None:
                _ident(f"{hp}.column", h["column"])
            _compare(hp, h, ("=", "!=", "<", "<=", ">", ">="))
    if kind == "event":
        days = node.get("within_days")
        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 0):
            _fail(f"{path}.within_days", "a number of days")
        between = node.get("between")
        if between is not None and (not isinstance(between, list) or len(between) != 2):
            _fail(f"{path}.between", "[start, end]")
        for key, ops in (("times", ("=", "!=", "<", "<=", ">", ">=")), ("first", TIME_OPS), ("last", TIME_OPS)):
            spec = node.get(key)
            if key == "times" and isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
                continue  # `times: 3` is short for at least 3 (the declared schema's rule)
            if spec is not None:
                if not isinstance(spec, dict):
                    _fail(f"{path}.{key}", "{op, value}" + (" or a number" if key == "times" else ""))
                _unknown(f"{path}.{key}", set(spec), {"op", "value"})
                _compare(f"{path}.{key}", spec, ops)


def check_spec(spec: Any, models: set[str], parents: set[str]) -> dict[str, Any]:
    """The builder's audience ({parent, where, columns, traits, splits, as_of}) checked; returns it."""
    if not isinstance(spec, dict):
        _fail("audience", "expected an object")
    problems = audience_problems({k: v for k, v in spec.items() if k != "name"})
    if problems:
        path, message = problems[0]
        _fail(path or "audience", message)
    _unknown("audience", set(spec), SPEC_KEYS)
    if spec.get("parent") not in parents:
        _fail("parent", f"{spec.get('parent')!r} is not a parent model (parents: {', '.join(sorted(parents))})")
    if spec.get("where") is not None:
        check_tree(spec["where"], models)
    for i, column in enumerate(spec.get("columns") or []):
        _ident(f"columns[{i}]", column)
    for i, trait in enumerate(spec.get("traits") or []):
        tp = f"traits[{i}]"
        if not isinstance(trait, dict):
            _fail(tp, "a trait is {name, related, agg, column, where, order_by}")
        _unknown(tp, set(trait), TRAIT_KEYS)
        _ident(f"{tp}.name", trait.get("name"))
        _model(f"{tp}.related", trait.get("related"), models)
        if trait.get("agg", "count") not in TRAIT_AGGS:
            _fail(f"{tp}.agg", f"unknown aggregate {trait.get('agg')!r} ({', '.join(TRAIT_AGGS)})")
        for key in ("column", "order_by"):
            if trait.get(key) is not None:
                _ident(f"{tp}.{key}", trait[key])
        if trait.get("where") is not None:
            check_tree(trait["where"], models, f"{tp}.where")
    splits = spec.get("splits")
    if splits is not None:
        if not isinstance(splits, dict):
            _fail("splits", "{groups: {name: percent}, holdout, salt}")
        _unknown("splits", set(splits), SPLIT_KEYS)
        groups = splits.get("groups")
        if not isinstance(groups, dict) or not groups:
            _fail("splits.groups", "{name: percent, ...}")
        for g, pct in groups.items():
            if not isinstance(g, str) or not g:
                _fail("splits.groups", "group names are text")
            if not isinstance(pct, (int, float)) or isinstance(pct, bool) or pct < 0:
                _fail(f"splits.groups.{g}", "a percentage")
        if abs(sum(groups.values()) - 100) > 1e-9:
            _fail("splits.groups", f"percentages add up to {sum(groups.values()):g}, not 100")
        if splits.get("holdout") is not None and splits["holdout"] not in groups:
            _fail("splits.holdout", f"{splits['holdout']!r} is not one of the groups")
        if splits.get("column") is not None:
            _ident("splits.column", splits["column"])
        _scalar("splits.salt", splits.get("salt"))
    return spec


def conditions(where: Any) -> list[Any]:
    """The top-level conditions of a tree (the funnel's steps): the children of a top-level `and`, else itself."""
    if where is None:
        return []
    if isinstance(where, dict) and list(where) == ["and"]:
        return list(where["and"])
    return [where]
