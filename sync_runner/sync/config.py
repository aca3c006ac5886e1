"""Sync and destination configuration, validated once at the edge.

Destinations live in `dbt_studio.yml` next to dbt_project.yml (or in the profiles dir); values may use
`{{ env_var('NAME') }}` (and `env_var('NAME', 'default')`), as in dbt. Every value that came from an env var is
a secret: it is remembered by the `Redactor` and never printed. Syncs live on models, in
`config.meta.dbt_studio.syncs`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sync_runner.core import yaml_text
from sync_runner.core.errors import UserError
from sync_runner.core.fields import (
    AnyOf,
    Field,
    ListOf,
    MapOf,
    Number,
    Record,
    Surface,
    Text,
    Url,
    closest,
    join_path,
    json_document,
    unknown_key,
)
from sync_runner.core.mapping import MappedField, parse_fields
from sync_runner.core.paths import CONFIG_FILE, find_config
from sync_runner.core.redact import REDACT
from sync_runner.project.artifacts import Manifest, Node
from sync_runner.project.declared import ALERT_RULE, MODEL_META, SAFEGUARDS, SYNC
from sync_runner.sync.alerts import CHANNELS, AlertsConfig, Channel, ChannelKind, Rule, make_rule, unknown_channels
from sync_runner.sync.destinations import REGISTRY
from sync_runner.sync.destinations.base import MODES, ON_DELETE, Destination

ENV_NAME = Text("an env var name", r"[A-Za-z_][A-Za-z0-9_]*")
JOB_ID = AnyOf((Number(integer=True, minimum=1), Text("digits", r"\d+")), "a job id (an integer)")
DBT_CLOUD = Surface("dbt_cloud", "dbt_cloud", (
    Field("account_id", AnyOf(JOB_ID.kinds, "an integer"), "your dbt Cloud account id", required=True),
    Field("job_ids", ListOf(JOB_ID, single=True), "the jobs whose successful runs are synced (empty: every job of the "
          "account)"),
    Field("base_url", Url(), "your access URL", default="https://cloud.getdbt.com"),
    Field("token_env", ENV_NAME, "the env var that holds a service token", default="DBT_CLOUD_API_TOKEN"),
    Field("webhook_secret_env", ENV_NAME, "the env var that holds the webhook secret",
          default="DBT_CLOUD_WEBHOOK_SECRET"),
))
DESTINATION = Surface("destination", "a destination", (
    Field("type", Text("a destination type"), f"one of: {', '.join(REGISTRY)}", required=True),
))
PROJECT_ALERT_RULE = Surface("alert_rule_project", "a project alert rule", (
    *ALERT_RULE.fields,
    Field("syncs", ListOf(Text("a sync name or glob"), min_items=1, single=True),
          "the sync names or globs the rule applies to", default="*"),
))
ALERTS = Surface("alerts", "alerts", (
    Field("channels", MapOf(ChannelKind(), "a mapping {name: channel}"), "alert channels by name: a type "
          f"({', '.join(CHANNELS)}) and its keys"),
    Field("rules", ListOf(Record(PROJECT_ALERT_RULE)), "rules for the whole project: events and channels"),
))
SCHEDULE = Surface("schedule", "a schedule", (
    Field("name", Text("lower-case letters, digits and _", r"[a-z][a-z0-9_]{0,62}"), "the schedule's name "
          "(its last run slot is kept under it)", required=True),
    Field("cron", Text("a cron expression"), "when it runs: minute hour day-of-month month day-of-week",
          required=True),
    Field("select", ListOf(Text("a dbt selector"), min_items=1, single=True), "dbt selectors: runs "
          "`dbt-studio build -s <select>` (a build, then the syncs of what it built)"),
    Field("syncs", ListOf(Text("a sync name or glob"), min_items=1, single=True), "sync names or globs: runs "
          "`dbt-studio sync -s <syncs>` (syncs only, no build)"),
    Field("timezone", Text("an IANA time zone"), "the time zone the cron expression is read in", default="UTC"),
))
EXPOSURES_PATH = "models/dbt_studio_exposures.yml"
EXPOSURE_OWNER = Surface("exposure_owner", "an exposure owner", (
    Field("name", Text(), "the owner's name"),
    Field("email", Text("an email address"), "the owner's email"),
))
EXPOSURES = Surface("exposures", "exposures", (
    Field("path", Text("a path in the project"), "the YAML file `dbt-studio exposures --write` writes (default: "
          f"{EXPOSURES_PATH})"),
    Field("owner", Record(EXPOSURE_OWNER), "the owner of every sync's exposure (dbt requires a name or an email)",
          default={"name": "dbt-studio"}),
))
STUDIO_FILE = Surface("dbt_studio_yml", CONFIG_FILE, (
    Field("destinations", MapOf(Record(DESTINATION), "a mapping {name: {type, options...}}"),
          "destinations by name: a type and its options"),
    Field("dbt_cloud", Record(DBT_CLOUD), "the dbt Cloud jobs whose runs `dbt-studio serve` syncs after"),
    Field("alerts", Record(ALERTS), "alert channels and project-wide alert rules (docs/operations.md)"),
    Field("safeguards", Record(SAFEGUARDS), "the project's limits on a sync's deletes and changes "
          "(docs/operations.md)"),
    Field("exposures", Record(EXPOSURES), "where `dbt-studio exposures` writes one dbt exposure per sync, and their "
          "owner (docs/operations.md)"),
    Field("schedules", ListOf(Record(SCHEDULE)), "what `dbt-studio serve` runs on a cron schedule "
          "(docs/operations.md)"),
))


def file_schema() -> dict[str, Any]:
    """The JSON Schema of dbt_studio.yml: each destination is checked against its type's options."""
    by_type = {f"destination_{name}": cls.surface() for name, cls in REGISTRY.items()}
    defs = {s.name: s for s in (DBT_CLOUD, DESTINATION, *by_type.values(), ALERTS, PROJECT_ALERT_RULE,
                                EXPOSURES, EXPOSURE_OWNER, SCHEDULE, *CHANNELS.values())}
    schema = json_document(STUDIO_FILE, f"{CONFIG_FILE} (dbt-studio)", defs)
    # `type` picks the options (if/then, so that an editor names the one unknown or wrong key)
    branches = []
    for name in by_type:
        typed = schema["$defs"][name]
        typed["properties"] = {"type": {"const": name.removeprefix("destination_")}, **typed["properties"]}
        typed["required"] = ["type", *typed.get("required", [])]
        branches.append({"if": {"properties": {"type": {"const": name.removeprefix("destination_")}}},
                         "then": {"$ref": f"#/$defs/{name}"}})
    schema["$defs"]["destination"] = {"type": "object", "required": ["type"],
                                      "properties": {"type": {"enum": list(REGISTRY)}}, "allOf": branches}
    return schema


def option_problems(spec: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    """Problems of one destination's raw (unrendered) options against its type's declared options."""
    cls = REGISTRY[spec["type"]]
    options = {k: _unraw(v) for k, v in spec.items() if k != "type"}
    problems = cls.surface().problems(options, where)
    # base_url points a destination at another host (tests, regions, proxies) and stands in for credentials
    return [(k, m) for k, m in problems if not (m.startswith("missing (") and "base_url" in options)]

@dataclass(frozen=True)
class DestinationConfig:
    """A destination of dbt_studio.yml: its name, type and options (env_var already rendered)."""

    name: str
    type: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class SyncConfig:
    """One sync of one model; `mappings` is {destination field: model column or field spec} (core/mapping.py)."""

    name: str
    model: Node
    destination: DestinationConfig
    mode: str
    on_delete: str
    key_columns: tuple[str, ...]
    mappings: Mapping[str, Any]
    state_schema: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    alerts: tuple[Rule, ...] = ()  # the sync's own alert rules (the project's come from dbt_studio.yml)
    safeguards: Mapping[str, Any] = field(default_factory=dict)  # the sync's own limits (over the project's)
    debug: bool = False  # keep each batch's request and response and each record's history (sync_debug)
    debug_days: int = 7  # how long those are kept

    @property
    def fields(self) -> tuple[MappedField, ...]:
        return parse_fields(self.mappings)
    include_holdout: bool = False  # audience syncs leave the holdout group out unless this is true
    split_groups: tuple[str, ...] = ()  # only these split groups of an audience (default: every group)
    filter: Any = None  # a condition tree over the model's columns (the audience property syntax)
    audience_splits: Mapping[str, Any] | None = None  # the model's `splits` when it is a dbt_studio.audience

    @property
    def columns(self) -> tuple[str, ...]:
        """The model columns the mappings read, each once, in a stable order."""
        return _once(c for f in self.fields for c in f.columns)

    @property
    def tracked(self) -> tuple[str, ...]:
        """The plan's columns, each once, in a stable order: model columns mapped as they are or read by a template,
        and one column per computed field (a transform or a constant)."""
        plain = _once(c for f in self.fields if not f.computed for c in f.columns)
        return (*plain, *(f.tracked for f in self.fields if f.computed))

    @property
    def fingerprint(self) -> str:
        """Changes when the primary key, the mappings or the mode change: the snapshot is then reset."""
        payload = json.dumps([list(self.key_columns), sorted(self.mappings.items()), self.mode], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def macro_args(self, state_schema: str) -> dict[str, Any]:
        return {"name": self.name, "state_schema": state_schema, "key_columns": list(self.key_columns),
                "columns": list(self.tracked), "mode": self.mode, "on_delete": self.on_delete,
                "fingerprint": self.fingerprint,
                "computed": {f.tracked: f.macro_spec() for f in self.fields if f.computed},
                "rows": self.row_selection()}

    def row_selection(self) -> dict[str, Any]:
        """Which of the model's rows the sync sends (macros/sync/rows.sql): the `filter` tree, the split groups
        asked for, and no holdout unless `include_holdout`. A row that leaves the selection is a delete."""
        splits = self.audience_splits or {}
        holdout = splits.get("holdout")
        return {"filter": self.filter,
                "split_column": str(splits.get("column") or "split_group") if self.split_groups else None,
                "split_groups": list(self.split_groups),
                "holdout_column": "is_holdout" if holdout and not self.include_holdout else None}

    def selection_columns(self) -> tuple[str, ...]:
        """The model columns the row selection reads (checked against the relation like the mapped ones)."""
        rows = self.row_selection()
        out = [c for c in (rows["split_column"], rows["holdout_column"]) if c]
        return (*out, *filter_columns(self.filter))


def _once(columns: Iterable[str]) -> tuple[str, ...]:
    """Column names each once ignoring case, as the warehouse resolves them (`order_total` and `ORDER_TOTAL` are
    one column, read once however many fields it is mapped to), sorted; the first spelling in sort order stays."""
    out: dict[str, str] = {}
    for column in sorted(set(columns)):
        out.setdefault(column.lower(), column)
    return tuple(sorted(out.values(), key=str.lower))


class ConfigProblem(UserError):
    """A mistake at one key of a configuration file: printed as `<file>: <key>: <message>` (each named once)."""

    def __init__(self, file: Path | str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file, self.key, self.message = str(file), key, message


class _MissingEnv(Exception):
    """An env var a value needs is not set: `_render` names the key that needs it."""


# operators that compare the column with values as the column's type (a word cannot be a number's value)
COMPARISON_OPS = ("=", "!=", "<>", "<", "<=", ">", ">=", "in", "not in", "between")
FILTER_OPS = (*COMPARISON_OPS, "contains", "starts with", "ends with", "is null", "is not null")


# what every column check made against the YAML docs because the warehouse could not be read says (here and in the
# package's `_columns_phrase`): validate reports those as warnings, the docs of a built model may be stale
UNREAD_COLUMNS = "the warehouse could not be read, see the note"


def columns_phrase(node: Node) -> str:
    """Says which columns a column check used: the relation's, or the YAML docs (before the first build)."""
    if node.columns_source == "warehouse":
        return f"columns of the relation {node.relation_name or node.name}"
    if node.columns_source == "unread":
        return f"documented columns (YAML; {UNREAD_COLUMNS})"
    return "documented columns (YAML; the relation is not built yet)"


def _audience_splits(node: Node) -> dict[str, Any] | None:
    splits = (node.audience or {}).get("splits") if isinstance(node.audience, dict) else None
    return splits if isinstance(splits, dict) else None


def filter_columns(tree: Any) -> list[str]:
    """Every column a filter tree names, in order."""
    return [c["column"] for _, c in filter_conditions(tree) if isinstance(c["column"], str)]


def filter_conditions(tree: Any, key: str = "filter") -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, condition) of each `{column, op, value}` of a filter tree, keyed as its problems are."""
    if not isinstance(tree, dict):
        return
    if "column" in tree:  # a condition is a leaf
        yield key, tree
        return
    if isinstance(tree.get("not"), dict):
        yield from filter_conditions(tree["not"], f"{key}.not")
    for kind in ("and", "or"):
        children = tree.get(kind)
        for i, child in enumerate(children if isinstance(children, list) else []):
            yield from filter_conditions(child, f"{key}.{kind}[{i}]")


def _words_for_numbers(node: Node, tree: Any, key: str) -> list[tuple[str, str]]:
    """A condition that compares a number column with a word ('high', not '42'), which the warehouse would refuse
    when the sync plans: said by key before any SQL runs, as audiences' conditions are."""
    problems = []
    for where, condition in filter_conditions(tree, key):
        column = condition.get("column")
        if not isinstance(column, str) or column.lower() not in node.number_columns:
            continue
        if str(condition.get("op", "=")).lower() not in COMPARISON_OPS:
            continue
        value = condition.get("value")
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and not _is_number_text(v):
                problems.append((f"{where}.value", f"'{v}' is not a number, and column '{column}' of model "
                                                   f"'{node.name}' is {node.column_types.get(column.lower())}"))
                break
    return problems


def _is_number_text(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def _filter_problems(tree: Any, key: str) -> list[tuple[str, str]]:
    if not isinstance(tree, dict) or len({"and", "or", "not", "column"} & set(tree)) != 1:
        return [(key, "must be a condition: {column, op, value}, or {and: [...]}, {or: [...]}, {not: {...}}")]
    if "column" in tree:
        unknown = set(tree) - {"column", "op", "value"}
        if unknown:
            return [(key, f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (a condition has column, op, value)")]
        if not isinstance(tree["column"], str) or not tree["column"]:
            return [(f"{key}.column", "must be a column name")]
        op = str(tree.get("op", "=")).lower()
        if op not in FILTER_OPS:
            return [(f"{key}.op", f"unknown operator {tree.get('op')!r} (known: {', '.join(FILTER_OPS)})")]
        value = tree.get("value")
        if op in ("in", "not in") and not isinstance(value, list):
            return [(f"{key}.value", f"'{op}' needs a list of values")]
        if op == "between" and not (isinstance(value, list) and len(value) == 2):
            return [(f"{key}.value", "'between' needs [low, high]")]
        return []
    if "not" in tree:
        if len(tree) != 1:
            return [(key, "a 'not' condition has no other key")]
        return _filter_problems(tree["not"], f"{key}.not")
    kind = "and" if "and" in tree else "or"
    if len(tree) != 1 or not isinstance(tree[kind], list):
        return [(key, f"'{kind}' takes a list of conditions and no other key")]
    return [p for i, child in enumerate(tree[kind]) for p in _filter_problems(child, f"{key}.{kind}[{i}]")]


def row_selection_problems(node: Node, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems of a sync's `split_groups` and `filter` against the model (keys relative to the sync; their types
    are the declared SYNC surface's)."""
    problems: list[tuple[str, str]] = []
    groups = spec.get("split_groups")
    if isinstance(groups, list) and all(isinstance(g, str) for g in groups):
        known = list((_audience_splits(node) or {}).get("groups") or {})
        if not known:
            problems.append(("split_groups", f"{node.label} is not an audience with splits"))
        for g in groups if known else []:
            if g not in known:
                close = closest(g, known)
                hint = f"; did you mean '{close}'?" if close else ""
                problems.append(("split_groups", f"unknown split group '{g}' (groups: {', '.join(known)}){hint}"))
    if "filter" in spec:
        structure = _filter_problems(spec["filter"], "filter")
        problems += structure or _words_for_numbers(node, spec["filter"], "filter")
    return problems


_ENV_VAR = re.compile(r"""\{\{-?\s*env_var\(\s*(['"])(\w+)\1\s*(?:,\s*(['"])(.*?)\3\s*)?\)\s*-?\}\}""")
_RAW = re.compile(r"\{%-?\s*(?:end)?raw\s*-?%\}")


def _render(value: Any, env: Callable[[str, str | None], str], path: Path, key: str) -> Any:
    """Fill in every `{{ env_var('NAME') }}` / `{{ env_var('NAME', 'default') }}` of a value, and nothing else.

    Values may hold templates of their own (the http destination's `body_template` and `url` are Jinja2 rendered
    per batch with `op`, `records`, ...), so the file is not rendered as a template: only the env_var calls are
    replaced. `{% raw %}` / `{% endraw %}` markers, which that rendering once needed around such templates, are
    dropped so older files keep working.
    """
    if isinstance(value, str):
        if "env_var" in value:
            try:
                value = _ENV_VAR.sub(lambda m: env(m.group(2), m.group(4)), value)
            except _MissingEnv as exc:
                raise ConfigProblem(path, key, f"env var '{exc}' is not set") from None
            if re.search(r"\{\{[^}]*env_var", value):
                raise ConfigProblem(path, key, "only {{ env_var('NAME') }} or {{ env_var('NAME', 'default') }} is "
                                               "filled in here")
        return _RAW.sub("", value)
    if isinstance(value, dict):
        return {k: _render(v, env, path, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, env, path, key) for v in value]
    return value


def _unraw(value: Any) -> Any:
    if isinstance(value, str):
        return _RAW.sub("", value)
    if isinstance(value, dict):
        return {k: _unraw(v) for k, v in value.items()}
    return [_unraw(v) for v in value] if isinstance(value, list) else value


SECRET_PLACEHOLDER = "<env_var {}>"  # what an env var reads as where no secret may be used (exposures)


def _env(path: Path, placeholders: bool = False) -> Callable[[str, str | None], str]:
    def env_var(name: str, default: str | None = None) -> str:
        if placeholders:
            return SECRET_PLACEHOLDER.format(name)
        if name in os.environ:
            value = os.environ[name]
        elif default is not None:
            value = str(default)
        else:
            raise _MissingEnv(name)
        REDACT.add(value)
        return value

    return env_var


def _yaml_where(exc: yaml_text.Invalid) -> str:
    """Where a YAML file stops parsing and why: " at line 3, column 2: expected <block end>, but found '<block
    mapping start>' (while parsing a block mapping)"; PyYAML's first line alone says only the context."""
    mark = getattr(exc, "problem_mark", None)
    problem, context = getattr(exc, "problem", None), getattr(exc, "context", None)
    if mark is None or not problem:
        return f" ({str(exc).splitlines()[0]})"
    return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")


def _read_config(path: Path) -> dict[str, Any]:
    """dbt_studio.yml as parsed YAML (not rendered), its top-level keys checked against `STUDIO_FILE`. Kept parsed
    (core/yaml_text.py) only when it is the project's own: one found in the profiles dir (~/.dbt) is kept out of the
    project's target dir, as profiles.yml is, since tokens may be written in it."""
    own = (path.parent / "dbt_project.yml").is_file()
    try:
        raw = yaml_text.safe_load(path.read_text(encoding="utf-8"), keep=own) or {}
    except yaml_text.Invalid as exc:
        raise UserError(f"{path}: not valid YAML{_yaml_where(exc)}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping ({', '.join(STUDIO_FILE.keys)})")
    for key in raw:
        if key not in STUDIO_FILE.keys:
            raise UserError(f"{path}: {key}: {unknown_key(str(key), STUDIO_FILE.keys, CONFIG_FILE)}")
    return raw


def load_alerts(project_dir: Path, profiles_dir: Path | None = None) -> AlertsConfig:
    """The `alerts:` block: channels (secrets through env_var, remembered by REDACT) and project-wide rules."""
    path = find_config(project_dir, profiles_dir)
    block = _read_config(path).get("alerts") if path is not None else None
    if path is None or block is None:
        return AlertsConfig()
    problems = ALERTS.problems(_unraw(block), "alerts")
    if not problems:
        channels = block.get("channels") or {}
        for i, rule in enumerate(block.get("rules") or []):
            problems += unknown_channels(rule, channels, f"alerts.rules[{i}]")
    if problems:
        key, message = problems[0]
        raise UserError(f"{path}: {key}: {message}")
    rendered = _render(block, _env(path), path, "alerts")
    return AlertsConfig({str(n): Channel(str(n), spec["type"], {k: v for k, v in spec.items() if k != "type"})
                         for n, spec in (rendered.get("channels") or {}).items()},
                        tuple(make_rule(r) for r in rendered.get("rules") or []))


def load_exposures_settings(project_dir: Path, profiles_dir: Path | None = None) -> dict[str, Any]:
    """The `exposures:` block with its defaults (path, owner)."""
    path = find_config(project_dir, profiles_dir)
    block = (_read_config(path).get("exposures") if path is not None else None) or {}
    problems = EXPOSURES.problems(block, "exposures")
    if problems:
        key, message = problems[0]
        raise UserError(f"{path}: {key}: {message}")
    return {"path": EXPOSURES_PATH, **EXPOSURES.defaults(), **block}


def has_block(project_dir: Path, profiles_dir: Path | None, key: str) -> bool:
    """Whether dbt_studio.yml has a top-level `key` (e.g. dbt_cloud: serve runs the webhook service then)."""
    path = find_config(project_dir, profiles_dir)
    return path is not None and _read_config(path).get(key) is not None


def load_schedules_block(project_dir: Path, profiles_dir: Path | None = None) -> tuple[Path | None, list[Any]]:
    """The raw `schedules:` list (checked against its declared keys) and the file it came from."""
    path = find_config(project_dir, profiles_dir)
    block = (_read_config(path).get("schedules") if path is not None else None) or []
    problems = STUDIO_FILE.fields_by_name["schedules"].kind.problems(block, "schedules")
    if problems:
        key, message = problems[0]
        raise UserError(f"{path}: {key}: {message}")
    return path, list(block)


def load_safeguards(project_dir: Path, profiles_dir: Path | None = None) -> dict[str, Any]:
    """The project's `safeguards:` block (each sync's own keys go over it)."""
    path = find_config(project_dir, profiles_dir)
    block = _read_config(path).get("safeguards") if path is not None else None
    if path is None or block is None:
        return {}
    problems = SAFEGUARDS.problems(block, "safeguards")
    if problems:
        key, message = problems[0]
        raise UserError(f"{path}: {key}: {message}")
    return dict(block)


def load_destinations(project_dir: Path, profiles_dir: Path | None = None, placeholders: bool = False,
                      broken: dict[str, ConfigProblem] | None = None) -> dict[str, DestinationConfig]:
    """Destinations by name. `placeholders`: env vars are not read; each reads as SECRET_PLACEHOLDER (for output
    that must be the same with or without the secrets, and hold none: exposures). A destination that cannot be
    configured (an unset env var, an option its type refuses) raises ConfigProblem, unless `broken` is given: it
    then gets `name -> the problem` and the others still load, so that only the syncs that use it fail (a file
    that is not valid YAML still raises)."""
    path = find_config(project_dir, profiles_dir)
    if path is None:
        return {}
    raw = _read_config(path)
    if not isinstance(raw.get("destinations", {}), dict):
        raise UserError(f"{path}: expected a mapping with a 'destinations' mapping")
    env = _env(path, placeholders)
    out = {}
    for name, spec in (raw.get("destinations") or {}).items():
        try:
            out[str(name)] = _destination(path, str(name), spec, env)
        except ConfigProblem as exc:
            if broken is None:
                raise
            broken[str(name)] = exc
    return out


def _destination(path: Path, name: str, spec: Any, env: Callable[[str, str | None], str]) -> DestinationConfig:
    where = f"destinations.{name}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigProblem(path, where, f"needs a 'type' ({', '.join(sorted(REGISTRY))})")
    if spec["type"] not in REGISTRY:
        close = closest(str(spec["type"]), list(REGISTRY))
        hint = f" (did you mean '{close}'?)" if close else ""
        raise ConfigProblem(path, where, f"unknown type '{spec['type']}'{hint}; known types: "
                                         f"{', '.join(sorted(REGISTRY))}")
    problems = option_problems(spec, where)
    if problems:
        key, message = problems[0]
        raise ConfigProblem(path, key, message)
    options = _render({k: v for k, v in spec.items() if k != "type"}, env, path, where)
    return DestinationConfig(name, str(spec["type"]), options)


@dataclass(frozen=True)
class DbtCloudConfig:
    """The `dbt_cloud:` block of dbt_studio.yml: which jobs' runs the webhook server syncs after."""

    account_id: str
    job_ids: tuple[str, ...]
    base_url: str
    token: str = field(repr=False)  # the service token, read from the env var `token_env`
    webhook_secret: str = field(repr=False)  # from the env var `webhook_secret_env`


def load_dbt_cloud(project_dir: Path, profiles_dir: Path | None = None,
                   environ: Mapping[str, str] | None = None) -> DbtCloudConfig:
    """Parse the `dbt_cloud:` block; every secret comes from an env var and goes to REDACT."""
    environ = os.environ if environ is None else environ
    path = find_config(project_dir, profiles_dir)
    if path is None:
        raise UserError(f"no {CONFIG_FILE} in {project_dir}: add a dbt_cloud block (account_id, job_ids, token_env)")
    block = _read_config(path).get("dbt_cloud")
    if not isinstance(block, dict):
        raise UserError(f"{path}: needs a 'dbt_cloud' mapping (account_id, job_ids, base_url, token_env)")
    problems = DBT_CLOUD.problems(block, "dbt_cloud")
    if problems:
        key, message = problems[0]
        if key in ("dbt_cloud.token", "dbt_cloud.secret", "dbt_cloud.webhook_secret"):
            message += " (secrets only through env vars: token_env / webhook_secret_env name one)"
        raise UserError(f"{path}: {key}: {message}")
    account = block["account_id"]
    jobs = block.get("job_ids") or []
    if not isinstance(jobs, list):
        jobs = [jobs]
    base_url = str(block.get("base_url") or DBT_CLOUD.defaults()["base_url"]).rstrip("/")
    secrets = {}
    for key in ("token_env", "webhook_secret_env"):
        name = str(block.get(key) or DBT_CLOUD.defaults()[key])
        value = environ.get(name, "")
        if not value:
            raise UserError(f"{path}: dbt_cloud.{key}: env var '{name}' is not set")
        REDACT.add(value)
        secrets[key] = value
    return DbtCloudConfig(str(account).strip(), tuple(str(j).strip() for j in jobs), base_url,
                          secrets["token_env"], secrets["webhook_secret_env"])


def sync_problems(node: Node, destinations: Mapping[str, DestinationConfig] | None,
                  alerts: AlertsConfig | None = None, broken: Mapping[str, ConfigProblem] | None = None,
                  check_columns: bool = True) -> list[tuple[str, str]]:
    """(key, message) for each problem of the model's syncs; empty when all is well.

    The shape of each sync (keys, types, enums) is the declared `SYNC` surface; what needs dbt_studio.yml or the
    model's columns is checked here: the destination exists and takes the mode, mapped and filtered columns exist
    (`node.columns`: the relation's, or the YAML docs before the first build; not checked when `check_columns` is
    false: the runner checks them against the relation itself), split groups exist.
    `destinations` None: without dbt_studio.yml, the destinations are not checked; with `alerts`, the channels the
    sync's alert rules name are. A sync of a destination in `broken` (one that dbt_studio.yml names but that
    cannot be configured) is not a problem of the model."""
    broken = broken or {}
    problems: list[tuple[str, str]] = []
    studio = node.studio
    if not isinstance(studio, dict):
        return [("", "must be a mapping (primary_key, syncs, ...)")]
    syncs = studio.get("syncs")
    if not syncs:
        return problems
    if not isinstance(syncs, list):
        return [("syncs", "must be a list of syncs (name, destination, mode, mappings)")]
    pk = studio.get("primary_key")
    if not pk:
        problems.append(("primary_key", "a model with syncs needs a primary_key"))
    else:
        problems += MODEL_META.fields_by_name["primary_key"].kind.problems(pk, "primary_key")
    columns = {c.lower() for c in node.columns} if check_columns else set()
    seen = set()
    for i, spec in enumerate(syncs):
        key = f"syncs[{i}]"
        if not isinstance(spec, dict):
            problems.append((key, "must be a mapping"))
            continue
        problems += SYNC.problems(spec, key)
        if node.materialized == "ephemeral":
            problems.append((key, f"sync '{spec.get('name')}' cannot run: {node.label} is ephemeral, so dbt "
                                  "builds no relation to read; materialize it as a table or a view, or sync a "
                                  "model that selects from it"))
        if alerts is not None and isinstance(spec.get("alerts"), list):
            for i, rule in enumerate(spec["alerts"]):
                if isinstance(rule, dict):
                    problems += unknown_channels(rule, alerts.channels, f"{key}.alerts[{i}]")
        problems += [(f"{key}.{k}", m) for k, m in row_selection_problems(node, spec)]
        name = spec.get("name")
        if name in seen:
            problems.append((f"{key}.name", f"duplicate sync name '{name}'"))
        seen.add(name)
        dest = spec.get("destination")
        if destinations is None or isinstance(dest, str) and dest in broken:
            pass  # a broken destination is reported once, against dbt_studio.yml
        elif dest not in destinations:
            known = ", ".join(sorted(destinations)) or f"none: add destinations to {CONFIG_FILE}"
            problems.append((f"{key}.destination", f"unknown destination '{dest}' (known: {known})"))
        mode = spec.get("mode", "upsert")
        on_delete = spec.get("on_delete", "delete" if mode == "mirror" else "nothing")
        if destinations is not None and isinstance(dest, str) and dest in destinations:
            cls = REGISTRY[destinations[dest].type]
            if isinstance(spec.get("options"), dict):
                problems += sync_option_problems(cls, spec["options"], f"{key}.options")
            if mode in MODES and mode not in cls.modes:
                problems.append((f"{key}.mode", f"destination type '{cls.type}' does not support mode '{mode}'"))
            if on_delete in ON_DELETE and on_delete not in cls.on_delete:
                problems.append((f"{key}.on_delete", f"destination type '{cls.type}' does not support '{on_delete}'"))
        mappings = spec.get("mappings")
        if isinstance(mappings, dict) and columns:
            for field_name, spec_value in mappings.items():
                if isinstance(spec_value, str):
                    read, where = [spec_value], f"{key}.mappings.{field_name}"
                elif isinstance(spec_value, dict) and isinstance(spec_value.get("column"), str):
                    read, where = [spec_value["column"]], f"{key}.mappings.{field_name}.column"
                elif isinstance(spec_value, dict) and isinstance(spec_value.get("template"), str) and not problems:
                    read, where = list(parse_fields({field_name: spec_value})[0].columns), \
                        f"{key}.mappings.{field_name}.template"
                else:
                    continue
                for column in read:
                    if column.lower() not in columns:
                        problems.append((where, f"unknown column '{column}' of {node.label} "
                                                f"({columns_phrase(node)}: {', '.join(node.columns)})"))
        for column in filter_columns(spec.get("filter")) if columns else []:
            if column.lower() not in columns:
                problems.append((f"{key}.filter", f"unknown column '{column}' of {node.label} "
                                                  f"({columns_phrase(node)}: {', '.join(node.columns)})"))
    return problems


def node_label(node: Node) -> str:
    """A model as dbt selects it: `order_facts.v2` for a version of a versioned model, else its name."""
    return node.unique_id.split(".", 2)[-1]


def shared_sync_names(nodes: Iterable[Node]) -> list[tuple[Node, str, str]]:
    """(node, key, message) once for each sync name that more than one model declares (syncs in a versioned model's
    own config are declared by each of its versions): a sync's name names its state, which they would share. Said
    at the first of them; a name twice in one model is `sync_problems`'."""
    users: dict[str, list[tuple[Node, int]]] = {}
    for node in sorted(nodes, key=lambda n: n.unique_id):
        syncs = node.studio.get("syncs") if isinstance(node.studio, dict) else None
        for i, spec in enumerate(syncs if isinstance(syncs, list) else []):
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                users.setdefault(spec["name"], []).append((node, i))
    out = []
    for name, declared in users.items():
        labels = list(dict.fromkeys(node_label(n) for n, _ in declared))
        if len(labels) < 2:
            continue
        node, i = declared[0]
        if len({n.name for n, _ in declared}) == 1:  # the versions of one model
            fix = ("give each version's sync its own name in that version's config (versions: - v: ... config: "
                   "meta: dbt_studio: syncs), or declare the sync on one version only")
        else:
            fix = "give each model's sync its own name"
        out.append((node, f"syncs[{i}].name", f"sync name '{name}' is declared by more than one model "
                                              f"({', '.join(labels)}), and it names one sync's state: {fix}"))
    return out


def sync_option_problems(cls: type[Destination], options: Mapping[str, Any], path: str) -> list[tuple[str, str]]:
    """A sync's `options`: its destination type's own keys (declared with the type), over dbt_studio.yml's for this
    sync only. Secrets are refused there: a model's YAML ends up in manifest.json, so they stay in dbt_studio.yml."""
    surface = cls.surface()
    secrets = {f.name for f in surface.fields if f.secret}
    overridable = Surface(surface.name, surface.title,
                          tuple(replace(f, required=False) for f in surface.fields if not f.secret))
    problems = [(join_path(path, str(k)), f"is a secret of a {cls.type} destination: set it in {CONFIG_FILE} with "
                                          "env_var, not in a model's YAML") for k in options if k in secrets]
    return problems + overridable.problems({k: v for k, v in options.items() if k not in secrets}, path)


@dataclass(frozen=True)
class Unusable:
    """A sync whose destination cannot be configured, or whose model's meta.dbt_studio has a mistake: it is skipped,
    with the reason, and the others run."""

    name: str
    model: Node
    destination: str
    mode: str
    state_schema: str | None
    reason: ConfigProblem


def unusable_syncs(manifest: Manifest, broken: Mapping[str, ConfigProblem]) -> list[Unusable]:
    """The syncs that use a destination of `broken`, in model order."""
    out = []
    for node in manifest.studio_models():
        syncs = node.studio.get("syncs") if isinstance(node.studio, dict) else None
        for spec in syncs if isinstance(syncs, list) else []:
            if isinstance(spec, dict) and isinstance(spec.get("destination"), str) and spec["destination"] in broken:
                out.append(Unusable(str(spec.get("name")), node, spec["destination"], str(spec.get("mode", "upsert")),
                                    spec.get("state_schema"), broken[spec["destination"]]))
    return out


def _unusable_of(node: Node, problem: ConfigProblem) -> list[Unusable]:
    """The syncs of a model whose meta.dbt_studio has a mistake, as far as they can be told apart (a sync with a
    name); when none can, one entry named after the model (not a sync name: the run log does not record it)."""
    studio = node.studio if isinstance(node.studio, dict) else {}
    specs = studio.get("syncs")
    named = [spec for spec in (specs if isinstance(specs, list) else [])
             if isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"]]
    if not named:
        return [Unusable(f"{node.name} (meta.dbt_studio)", node, "", "upsert", None, problem)]
    return [Unusable(spec["name"], node, str(spec.get("destination") or ""), str(spec.get("mode") or "upsert"),
                     spec["state_schema"] if isinstance(spec.get("state_schema"), str) else None, problem)
            for spec in named]


def disabled_sync(manifest: Manifest, terms: Sequence[str]) -> str | None:
    """The one line for a sync name or model name (glob) in `terms` that only a disabled model, seed or snapshot
    declares (`enabled: false`: dbt keeps it under the manifest's "disabled" key and builds nothing to read), e.g.
    "models/_people.yml: sync 'people_crm': model 'people' is disabled (enabled: false, models/people.sql);
    enable it or remove the sync"; None when no term names one."""
    for name, node in sorted(manifest.disabled.items()):
        studio = node.studio if isinstance(node.studio, dict) else {}
        syncs = studio.get("syncs")
        names = [str(spec.get("name")) for spec in (syncs if isinstance(syncs, list) else [])
                 if isinstance(spec, dict) and spec.get("name")]
        for term in terms:
            hit = [n for n in names if fnmatch.fnmatch(n, term)] or (names if fnmatch.fnmatch(name, term) else [])
            if hit and manifest.disabled_phrase(name):
                why = manifest.unknown_model(name, "enable it or remove the sync")
                return f"{node.config_file}: sync '{hit[0]}': {why}"
    return None


def load_syncs(manifest: Manifest, destinations: Mapping[str, DestinationConfig],
               alerts: AlertsConfig | None = None,
               broken: Mapping[str, ConfigProblem] | None = None,
               unusable: list[Unusable] | None = None) -> list[SyncConfig]:
    """All syncs of the project but those of `broken` destinations; raises UserError naming the first problem of a
    model's meta.dbt_studio, unless `unusable` is given: then that model's syncs are added there (each skipped with
    the problem, in the run log) and the other models' syncs still run, as a broken destination skips only its own
    syncs. A nightly `dbt-studio sync` stopped by one typo stopped every sync, and left nothing in the run log."""
    broken = broken or {}
    out = []
    mistaken: set[str] = set()
    for node in manifest.studio_models():
        problems = sync_problems(node, destinations, alerts, broken, check_columns=False)
        if problems:
            key, message = problems[0]
            problem = ConfigProblem(node.config_file, f"{node.label}: meta.dbt_studio{'.' + key if key else ''}",
                                    message)
            if unusable is None:
                raise UserError(str(problem))
            unusable.extend(_unusable_of(node, problem))
            mistaken.add(node.unique_id)
    for node, key, message in shared_sync_names(manifest.studio_models())[:1]:
        raise UserError(f"{node.config_file}: {node.label}: meta.dbt_studio.{key}: {message}")
    for node in manifest.studio_models():
        if node.unique_id in mistaken:
            continue
        pk = node.studio.get("primary_key")
        key_columns = (pk,) if isinstance(pk, str) else tuple(pk or ())
        for spec in node.studio.get("syncs") or []:
            if spec["destination"] in broken:
                continue
            mode = spec.get("mode", "upsert")
            out.append(SyncConfig(
                name=spec["name"], model=node, destination=destinations[spec["destination"]], mode=mode,
                on_delete=spec.get("on_delete", "delete" if mode == "mirror" else "nothing"),
                key_columns=key_columns, mappings=dict(spec["mappings"]), state_schema=spec.get("state_schema"),
                options=dict(spec.get("options") or {}),
                alerts=tuple(make_rule(r) for r in spec.get("alerts") or []),
                safeguards=dict(spec.get("safeguards") or {}), debug=bool(spec.get("debug", False)),
                debug_days=int(spec.get("debug_days", 7)),
                include_holdout=bool(spec.get("include_holdout", False)),
                split_groups=tuple(spec.get("split_groups") or ()), filter=spec.get("filter"),
                audience_splits=_audience_splits(node),
            ))
    return out
