"""The declared schema of the project's configuration surfaces: model meta (`config.meta.dbt_studio`: model type,
keys, labels, relationships, syncs), column meta, audience condition trees, traits and splits, entity-feature
inputs and vars, id sources and id types.

Written as data in the machinery of sync_runner/core/fields.py; `dbt-studio validate`, the JSON Schema in
schemas/meta.schema.json and the tables of docs/configuration.md and docs/audiences.md all read it.
The `dbt_studio.yml` surface and destination options are next to the code that loads them
(sync_runner/sync/config.py and each destination class).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync_runner.core.fields import (
    AnyOf,
    Anything,
    Boolean,
    Choice,
    Field,
    Kind,
    ListOf,
    MapOf,
    Number,
    Problems,
    Record,
    Surface,
    Text,
    join_path,
    json_document,
    with_value,
)
from sync_runner.core.mapping import STEP_HELP, spec_problems, step_problems

# ------------------------------------------------------------------------------------------------ model meta

COLUMN = Text("a column name")
COLUMNS = ListOf(COLUMN, min_items=1, single=True)
MODEL = Text("a model name")
CARDINALITIES = ("1:1", "1:many", "many:1")
MODEL_TYPES = ("parent", "related", "event")


def _relationship_rules(rel: Mapping[str, Any], path: str) -> Problems:
    """A through relationship names no join of its own (a direct one needs cardinality and join: the package's
    `_schema` macro says so, as it checks every rule across models)."""
    extra = [k for k in ("cardinality", "join", "merge_columns") if k in rel]
    if rel.get("through") and extra:
        return [(join_path(path, extra[0]), "a through relationship takes only name, to and through")]
    return []


RELATIONSHIP = Surface("relationship", "a relationship", (
    Field("name", Text("a name"), "the relationship's name in audience trees (default: the other model's name)"),
    Field("to", MODEL, "the related model", required=True),
    Field("cardinality", Choice(CARDINALITIES),
          "seen from this model; quote it in YAML ('1:1'): unquoted, YAML 1.1 reads it as the number 61"),
    Field("join", MapOf(COLUMN, "a mapping {this model's column: the other model's column}", min_items=1),
          "join-key pairs, all of which must match, e.g. {user_id: user_id}"),
    Field("merge_columns", AnyOf((Boolean(), COLUMNS), "true or a list of column names"),
          "columns of the other model merged onto this one (true: all); only from the one side of a relationship"),
    Field("through", MODEL, "a many-to-many relationship through this model (two direct relationships)"),
), _relationship_rules)

LABEL_KINDS = Surface("labels", "labels", (Field("primary", COLUMN, "the main label column"),
                                           Field("secondary", COLUMN, "a second label column")))
LABELS = AnyOf((ListOf(COLUMN, min_items=1, single=True), Record(LABEL_KINDS)),
               "[primary, secondary] column names or {primary: column, secondary: column}")

SYNC_NAME = r"[a-z][a-z0-9_]{0,62}"
SYNC_MODES = ("insert", "update", "upsert", "mirror")
ON_DELETE = ("nothing", "clear", "delete")


class TransformStep(Kind):
    """One transform of a mapped field: a step name or {step: argument} (sync_runner/core/mapping.py)."""

    def problems(self, value: Any, path: str) -> Problems:
        return step_problems(value, path)

    def json(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string"}, {"type": "object", "minProperties": 1, "maxProperties": 1}]}

    def text(self) -> str:
        return "a transform"


MAPPED_FIELD = Surface("mapped_field", "a mapped field", (
    Field("column", COLUMN, "the model column the field is made of"),
    Field("transform", ListOf(TransformStep(), single=True), f"applied in order, in the warehouse: {STEP_HELP}"),
    Field("value", Anything(), "a constant sent as this field"),
    Field("template", Text("a Jinja2 template"), "Jinja2 over the row's columns, rendered at delivery; text that "
          "parses as JSON is sent as that value (e.g. a nested object)"),
), spec_problems)
MAPPING = AnyOf((COLUMN, Record(MAPPED_FIELD)), "a column name or {column, transform} | {value} | {template}")


def _sync_rules(spec: Mapping[str, Any], path: str) -> Problems:
    mode = spec.get("mode", "upsert")
    if mode == "insert" and spec.get("on_delete", "nothing") != "nothing":
        return [(join_path(path, "on_delete"), "insert mode never deletes: use on_delete: nothing")]
    return []


CHANNEL_NAMES = ListOf(Text("a channel name"), min_items=1, single=True)
ALERT_RULE = Surface("alert_rule", "an alert rule", (
    Field("channels", CHANNEL_NAMES, "channel names from alerts.channels of dbt_studio.yml", required=True),
    Field("on_failure", Boolean(), "alert when a run fails (a safeguard stop included)", default=True),
    Field("on_recovery", Boolean(), "alert on the first successful run after a failed one", default=True),
    Field("rejected_percent", Number(minimum=0), "alert when more than this % of the rows sent were rejected "
          "(default: off)"),
    Field("slower_than_seconds", Number(minimum=0), "alert when a run takes longer than this (default: off)"),
))

PERCENT = Number(minimum=0, maximum=100)
SAFEGUARDS = Surface("safeguards", "safeguards", (
    Field("max_deletes", Number(integer=True, minimum=0), "stop when the plan deletes (or clears) more rows than "
          "this (default: off)"),
    Field("max_delete_percent", PERCENT, "stop when the plan deletes more than this % of the rows the destination "
          "holds (default: 20 for mirror syncs, else off)"),
    Field("max_update_percent", PERCENT, "stop when the plan changes more than this % of the rows the destination "
          "holds (default: off)"),
    Field("min_rows", Number(integer=True, minimum=0), "the % limits apply once the destination holds this many "
          "rows", default=100),
    Field("allow_large_changes", Boolean(), "let every plan through (as --allow-large-changes does for one run)",
          default=False),
))

SYNC = Surface("sync", "a sync", (
    Field("name", Text("lower-case letters, digits and _ (it names state tables)", SYNC_NAME),
          "the sync's name (lower-case letters, digits, _; it names the state tables)", required=True),
    Field("destination", Text("a destination name"), "a destination of dbt_studio.yml", required=True),
    Field("mode", Choice(SYNC_MODES), "insert: only new keys; update: only known keys; upsert: both; "
          "mirror: also delete rows that left the model", default="upsert"),
    Field("on_delete", Choice(ON_DELETE), "what a row that left the model does at the destination "
          "(default: delete in mirror mode, else nothing)"),
    Field("mappings", MapOf(MAPPING, "a mapping {destination field: model column or field spec}", min_items=1),
          "destination field: a model column, or {column, transform}, {value} or {template} (docs/sync.md)",
          required=True),
    Field("state_schema", Text("a schema name"), "where this sync's state tables live "
          "(default: <target schema>_dbt_studio)"),
    Field("options", MapOf(Anything(), "a mapping {option: value}"), "the destination's options for this sync "
          "only (e.g. a list id, batch_size): its type's keys, over dbt_studio.yml's; no secrets"),
    Field("debug", Boolean(), "the record debugger: keep each batch's request and response and each record's "
          "history in the state schema (`dbt-studio debug <sync> --key K`)", default=False),
    Field("debug_days", Number(integer=True, minimum=1), "days the debugger's captures are kept", default=7),
    Field("alerts", ListOf(Record(ALERT_RULE)), "the sync's own alert rules, added to the project's "
          "(docs/operations.md)"),
    Field("safeguards", Record(SAFEGUARDS), "limits on deletes and changes, key by key over the project's "
          "(docs/operations.md)"),
    Field("include_holdout", Boolean(), "an audience's holdout group is left out of its syncs; true sends it too",
          default=False),
    Field("split_groups", ListOf(Text("a split group name"), min_items=1),
          "only these split groups of the audience (default: every group)"),
    Field("filter", Anything("a condition over the model's columns: {column, op, value}, and / or / not"),
          "only the rows where it holds are synced; a row that leaves it is a delete per on_delete"),
), _sync_rules)


MODEL_META = Surface("meta", "meta.dbt_studio", (
    Field("model_type", Choice(MODEL_TYPES), "parent (the entities audiences are made of), related or event"),
    Field("primary_key", COLUMNS, "the column(s) that identify a row (required for parents and synced models)"),
    Field("labels", LABELS, "columns that name a row in previews: [primary, secondary]"),
    Field("timestamp", COLUMN, "the event time column (required for event models)"),
    Field("relationships", ListOf(Record(RELATIONSHIP)), "relationships to other models"),
    Field("syncs", ListOf(Record(SYNC)), "syncs of this model to destinations"),
    Field("max_rounds", Number(integer=True, minimum=1),
          "id_stitcher models: round cap of connected components (default: var dbt_studio_stitch_max_rounds)"),
    Field("lookback_hours", Number(integer=True, minimum=0),
          "id_stitcher models, opt-in: incremental runs read only rows newer than the last run's newest timestamp "
          "minus these hours (for sources whose timestamps follow load order)"),
))  # the rules across models and columns (events have a timestamp, ...) are macros/schema/schema.sql's

COLUMN_META = Surface("column_meta", "a column's meta.dbt_studio", (
    Field("suggestions", Boolean(), "offer this column's most frequent values in the audience builder",
          default=False),
))

# -------------------------------------------------------------------------------------------- audience trees

OPERATORS = ("=", "!=", "<>", "<", "<=", ">", ">=", "in", "not in", "between", "contains", "starts with",
             "ends with", "is null", "is not null", "within last days", "more than days ago", "before", "after")
TIME_OPERATORS = ("before", "after", "within last days", "more than days ago")
AGGREGATES = ("count", "sum", "avg", "min", "max")
TRAIT_AGGREGATES = (*AGGREGATES, "first", "last", "most_frequent")
PATH = ListOf(MODEL, min_items=1, single=True)
DAYS = Number(minimum=0, above=True)


class Condition(Kind):
    """A node of an audience condition tree: its kind is the key it has (and, or, not, column, has, ...)."""

    def problems(self, value: Any, path: str) -> Problems:
        if not isinstance(value, dict):
            return [(path, with_value("a condition must be a mapping", value))]
        for keys, surface in CONDITIONS:
            if any(k in value for k in keys):
                present = [k for k in keys if k in value]
                if len(present) > 1:
                    return [(path, f"a condition takes one of {', '.join(present)}")]
                return surface.problems(value, path)
        known = ", ".join(k for keys, _ in CONDITIONS for k in keys)
        listed = ", ".join(map(str, value))
        return [(path, f"unknown condition with keys {listed} (a condition has one of: {known})")]

    def json(self) -> dict[str, Any]:
        return {"$ref": "#/$defs/condition"}

    def text(self) -> str:
        return "condition"


CONDITION = Condition()
COMPARISON = Surface("comparison", "a comparison", (
    Field("op", Choice(OPERATORS), "the operator", default=">="),
    Field("value", Anything(), "what to compare with"),
))
TIME_COMPARISON = Surface("time_comparison", "a first / last time comparison", (
    Field("op", Choice(TIME_OPERATORS), "the operator", required=True),
    Field("value", Anything(), "a timestamp, or a number of days"),
))
HAVING = Surface("having", "an aggregate condition", (
    Field("agg", Choice(AGGREGATES), "the aggregate", default="count"),
    Field("column", COLUMN, "the aggregated column of the related model (count: optional)"),
    Field("op", Choice(OPERATORS), "the operator", default=">="),
    Field("value", Anything(), "what to compare the aggregate with"),
))


def _one_of_kind(keys: tuple[str, ...], body: tuple[Field, ...], name: str, title: str) -> Surface:
    """A condition whose kind is one of `keys` (e.g. has / has not), each naming its model(s), plus `body`."""
    named = tuple(Field(k, MODEL if "audience" in k else PATH, f"the model(s) of the {title}") for k in keys)
    return Surface(name, title, named + body)


GROUP_AND = Surface("and", "an and group", (Field("and", ListOf(CONDITION), "all of these conditions"),))
GROUP_OR = Surface("or", "an or group", (Field("or", ListOf(CONDITION), "any of these conditions"),))
NEGATION = Surface("not", "a not", (Field("not", CONDITION, "the condition that must not hold"),))
PROPERTY = Surface("property", "a property condition", (
    Field("column", COLUMN, "a column of the parent (or of the related rows in a where)"),
    Field("op", Choice(OPERATORS), "the operator", default="="),
    Field("value", Anything(), "the value (a list for in / not in / between, days for the relative ops)"),
))
VIA = Field("via", PATH, "a model the path passes through (so that dbt records the dependency)")
RELATED = _one_of_kind(("has", "has not"), (
    Field("where", CONDITION, "a condition on the related rows"),
    Field("having", ListOf(Record(HAVING), single=True), "aggregate conditions over the matching rows (has only)"),
    VIA,
), "related", "related-model condition")
EVENT = _one_of_kind(("performed", "did not perform"), (
    Field("where", CONDITION, "a condition on the events"),
    Field("within_days", DAYS, "only events in the last N days before as_of"),
    Field("between", ListOf(Anything("timestamp"), min_items=2), "only events in [start, end)"),
    Field("times", AnyOf((Number(integer=True, minimum=0), Record(COMPARISON)),
                         "a number or {op, value}"), "how many events (a number: at least that many)"),
    Field("first", Record(TIME_COMPARISON), "when the first event happened"),
    Field("last", Record(TIME_COMPARISON), "when the last event happened"),
    VIA,
), "event", "event condition")
MEMBERSHIP = _one_of_kind(("in audience", "not in audience"), (), "membership", "audience membership")

CONDITIONS: tuple[tuple[tuple[str, ...], Surface], ...] = (
    (("and",), GROUP_AND), (("or",), GROUP_OR), (("not",), NEGATION), (("column",), PROPERTY),
    (("has", "has not"), RELATED), (("performed", "did not perform"), EVENT),
    (("in audience", "not in audience"), MEMBERSHIP),
)

TRAIT = Surface("trait", "a trait", (
    Field("name", Text("a column name"), "the trait's column", required=True),
    Field("related", PATH, "the related model (or a path of models)", required=True),
    Field("agg", Choice(TRAIT_AGGREGATES), "the aggregate", default="count"),
    Field("column", COLUMN, "the aggregated column (count: optional)"),
    Field("where", CONDITION, "a condition on the related rows"),
    Field("order_by", COLUMN, "first / last: the order (default: the model's timestamp)"),
    VIA,
))


def _split_rules(splits: Mapping[str, Any], path: str) -> Problems:
    groups = splits.get("groups") or {}
    out: Problems = []
    if splits.get("holdout") is not None and splits["holdout"] not in groups:
        out.append((join_path(path, "holdout"), f"'{splits['holdout']}' is not one of the groups"))
    total = sum(groups.values())
    if round(total * 100) != 10000:
        out.append((join_path(path, "groups"), f"percentages add up to {total:g}, not 100"))
    return out


SPLITS = Surface("splits", "splits", (
    Field("groups", MapOf(Number(minimum=0, maximum=100), "a mapping {group: percent}", min_items=1),
          "group name: percent of the audience (adding up to 100)", required=True),
    Field("holdout", Text("a group name"), "the group kept out of syncs and marked is_holdout"),
    Field("salt", Text("a string"), "changes the assignment (one salt, one split)"),
    Field("column", COLUMN, "the output column of the group", default="split_group"),
), _split_rules)

AUDIENCE = Surface("audience", "dbt_studio.audience", (
    Field("parent", MODEL, "the parent model", required=True),
    Field("where", AnyOf((CONDITION, Anything()), "a condition"), "the condition tree"),
    Field("columns", AnyOf((ListOf(COLUMN), Anything()), "a list of column names"),
          "parent columns to keep (default: all)"),
    Field("traits", AnyOf((ListOf(Record(TRAIT)), Anything()), "a list of traits"), "computed traits"),
    Field("splits", AnyOf((Record(SPLITS), Anything()), "splits"), "split groups and a holdout"),
    Field("as_of", Anything("timestamp"), "the time relative conditions count from (default: now)"),
))


def audience_problems(spec: Any, path: str = "") -> Problems:
    """Problems of an audience spec (the arguments `dbt_studio.audience` records), None values left out."""
    if not isinstance(spec, dict):
        return [(path, with_value("must be a mapping", spec))]
    out: Problems = []
    if spec.get("where") is not None:
        out += CONDITION.problems(spec["where"], join_path(path, "where"))
    if spec.get("columns") is not None:
        out += ListOf(COLUMN).problems(spec["columns"], join_path(path, "columns"))
    if spec.get("traits"):
        out += ListOf(Record(TRAIT)).problems(spec["traits"], join_path(path, "traits"))
    if spec.get("splits"):
        out += SPLITS.problems(spec["splits"], join_path(path, "splits"))
    return out


# ------------------------------------------------------------------------------------- features and identity

FEATURE_INPUT = Surface("feature_input", "an input", (
    Field("relation", Anything("relation"), "ref() of the model (every input but a grouped one)"),
    Field("ids", AnyOf((ListOf(COLUMN), MapOf(Text("a column or SQL"))), "a list or mapping"),
          "id columns named after their id type, or {id_type: column or SQL} (every input but a grouped one)"),
    Field("timestamp", Text("a column or SQL"), "the row's time (needed for window_days and as_of)"),
    Field("normalize", MapOf(Text("SQL")), "{id_type: SQL with {{ value }}}, as the stitcher normalises"),
    Field("from", Text("an input name"), "grouped inputs: the input listed before this one whose rows are grouped"),
    Field("group_by", ListOf(COLUMN, single=True), "grouped inputs: the columns grouped by, per person"),
    Field("columns", MapOf(Text("aggregate SQL")), "grouped inputs: {name: aggregate SQL} over each group's rows"),
))

ENTITY_VAR = Surface("entity_var", "an entity var", (
    Field("name", Text("a plain name", r"[A-Za-z_][A-Za-z0-9_]*"), "the var's column", required=True),
    Field("kind", Choice(("entity", "input", "derived", "identifier")),
          "entity (with from), derived (without), input, or identifier (with id_type)"),
    Field("select", Text("SQL"), "an aggregate (entity), a column expression (input) or SQL over earlier vars "
          "(derived); identifier vars have none"),
    Field("from", Text("an input name"), "the input an entity or input var reads"),
    Field("where", Text("SQL"), "only rows matching this condition"),
    Field("window_days", DAYS, "only rows of the last N days before as_of (entity vars)"),
    Field("order_by", ListOf(Text("SQL"), single=True), "first_value / last_value order (or a window's)"),
    Field("partition_by", ListOf(Text("SQL"), single=True), "input vars: the window's partition"),
    Field("default", Anything("SQL literal"), "the value for entities without matching rows"),
    Field("id_type", Text("an id type"), "identifier vars: the id type of the id graph to take a value of"),
    Field("pick", Choice(("most_recent", "first_seen", "most_frequent")),
          "identifier vars: which of the person's ids (default most_recent)"),
))

ID_TYPE = Surface("id_type", "an id type", (
    Field("normalize", Text("SQL"), "SQL over {{ value }}, e.g. lower(trim({{ value }}))"),
    Field("blocklist", ListOf(Text("a value")), "values that are never identifiers, compared lower-cased "
          "(replaces the dbt_studio_stitch_blocklist var's list for this id type)"),
    Field("blocklist_regex", ListOf(Text("a regex")), "patterns of values that are never identifiers "
          "(replaces the dbt_studio_stitch_blocklist_regex var's list for this id type)"),
    Field("include", ListOf(Text("a value")), "keep only these values"),
    Field("exclude", ListOf(Text("a value")), "drop these values"),
    Field("include_regex", ListOf(Text("a regex")), "keep only values matching one of these"),
    Field("exclude_regex", ListOf(Text("a regex")), "drop values matching one of these"),
    Field("max_edges", MapOf(Number(integer=True, minimum=1), "a mapping {other id type: count}"),
          "an id linked to more than N ids of the other type links none of them"),
))

ID_SOURCE = Surface("id_source", "an id source", (
    Field("relation", Anything("relation"), "ref() of the model", required=True),
    Field("ids", AnyOf((ListOf(COLUMN), MapOf(Text("a column or SQL"))), "a list or mapping"),
          "id columns named after their id type, or {id_type: column or SQL}", required=True),
    Field("timestamp", Text("a column or SQL"), "when the row was seen"),
    Field("loaded_at", Text("a column or SQL"), "when the row was loaded into the warehouse (e.g. _loaded_at): "
          "incremental runs read only rows loaded after the newest one the last run read"),
    Field("name", Text("a name"), "the source's name in the audit tables"),
    Field("trust", ListOf(Text("an id type")), "id types of this source allowed to link (default: all)"),
))

# Every surface by name, for the docs and the JSON Schema's $defs.
SURFACES: dict[str, Surface] = {s.name: s for s in (
    MODEL_META, RELATIONSHIP, LABEL_KINDS, SYNC, MAPPED_FIELD, ALERT_RULE, SAFEGUARDS, COLUMN_META, COMPARISON,
    TIME_COMPARISON, HAVING, GROUP_AND, GROUP_OR, NEGATION, PROPERTY, RELATED, EVENT, MEMBERSHIP, TRAIT, SPLITS,
    AUDIENCE, FEATURE_INPUT, ENTITY_VAR, ID_TYPE, ID_SOURCE)}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of dbt properties files (models/*.yml) as far as dbt-studio reads them: each model's
    `config.meta.dbt_studio` (or `meta.dbt_studio`) and each column's; every other key is dbt's and left open."""
    def meta_of(ref: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"dbt_studio": {"$ref": ref}}}

    def with_meta(ref: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"type": "object", "properties": {"config": {"type": "object", "properties": {"meta": meta_of(ref)}},
                                                 "meta": meta_of(ref), **(extra or {})}}

    column = with_meta("#/$defs/column_meta")
    model = with_meta("#/$defs/meta", {"columns": {"type": "array", "items": column}})
    conditions = {"condition": {"anyOf": [{"$ref": f"#/$defs/{s.name}"} for _, s in CONDITIONS]}}
    root = Surface("properties", "dbt properties file", ())
    out = json_document(root, "dbt properties file: the dbt_studio meta blocks (dbt-studio)", SURFACES, conditions)
    out.pop("additionalProperties")
    out["properties"] = {"models": {"type": "array", "items": model}}
    return out
