"""The declared schema: every configuration surface refuses unknown keys (with a did-you-mean), wrong types, enums,
ranges, unquoted ratios and bad URLs, in one line naming file, model and key, with exit 2 — and changes nothing.

The project is a hand-written manifest.json (the subset of dbt's artifact that `validate` reads) plus a
dbt_studio.yml, so each case is one mutation of a known-good configuration; the expected lines are written out in
full here, not derived from the code under test.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync_runner.core.fields import closest
from sync_runner.project.artifacts import load_manifest

from helpers import package_macros
from helpers.cli import run_cli as cli_in_process

USERS_META = {
    "model_type": "parent", "primary_key": "user_id", "labels": ["email", "name"],
    "relationships": [{"name": "events", "to": "stg_events", "cardinality": "1:many", "join": {"user_id": "user_id"}}],
    "syncs": [{"name": "users_to_crm", "destination": "crm", "mode": "upsert",
               "mappings": {"email": "email", "name": "name"}}],
}
EVENTS_META = {"model_type": "event", "timestamp": "ts"}
AUDIENCE = {
    "parent": "stg_users", "columns": ["email"], "as_of": None,
    "where": {"and": [{"column": "email", "op": "is not null"},
                      {"performed": "stg_events", "within_days": 30, "times": {"op": ">=", "value": 2}}]},
    "traits": [{"name": "events_30d", "related": "stg_events", "agg": "count"}],
    "splits": {"groups": {"treatment": 90, "holdout": 10}, "holdout": "holdout", "salt": "s"},
}
STUDIO_YML = {"destinations": {
    "crm": {"type": "http", "url": "https://crm.example.com/contacts", "batch_size": 500, "timeout": 10,
            "body_template": '{"op": "{{ op }}", "people": {{ records | tojson }}}'},
    "braze_eu": {"type": "braze", "api_key": "{{ env_var('BRAZE_KEY', 'k') }}",
                 "base_url": "https://rest.fra-01.braze.eu"},
}}


def node(name: str, columns: list[str], meta: dict[str, Any], patch: bool = True) -> dict[str, Any]:
    return {"unique_id": f"model.p.{name}", "name": name, "resource_type": "model", "package_name": "p",
            "original_file_path": f"models/{name}.sql", "patch_path": "p://models/_models.yml" if patch else None,
            "relation_name": f'"db"."main"."{name}"', "schema": "main", "alias": name,
            "columns": {c: {"name": c} for c in columns}, "config": {"materialized": "table", "meta": meta}}


def manifest(users: dict[str, Any], events: dict[str, Any], audience: dict[str, Any]) -> dict[str, Any]:
    nodes = [node("stg_users", ["user_id", "email", "name"], {"dbt_studio": users}),
             node("stg_events", ["user_id", "ts", "kind"], {"dbt_studio": events}),
             node("vip", ["user_id", "email"], {"dbt_studio_audience": audience}, patch=False)]
    return {"metadata": {"invocation_id": "x", "project_name": "p", "adapter_type": "duckdb"},
            "nodes": {n["unique_id"]: n for n in nodes}, "macros": package_macros()}


def at(document: Any, path: str) -> tuple[Any, str | int]:
    """The container and key of a dotted path with [i] indexes (e.g. `where.and[1].within_days`)."""
    parts: list[str | int] = []
    for part in path.split("."):
        name, *indexes = part.replace("]", "").split("[")
        parts += ([name] if name else []) + [int(i) for i in indexes]
    for part in parts[:-1]:
        document = document[part]
    return document, parts[-1]


def mutate(document: Any, path: str, value: Any) -> None:
    """Set `path` to `value`; with ("rename", path of an existing key), that key is renamed to `path`'s last key."""
    if isinstance(value, tuple):
        container, key = at(document, value[1])
        container[path.rsplit(".", 1)[-1].split("[")[0]] = container.pop(key)
    else:
        container, key = at(document, path)
        container[key] = value


M = "models/_models.yml: model 'stg_users': meta.dbt_studio."
A = "models/vip.sql: model 'vip': dbt_studio.audience."
Y = "<yml>: destinations."
CASES = [
    # (surface, path to change, new value or ("rename", new key), the one line)
    ("users", "model_typ", ("rename", "model_type"),
     M + "model_typ: unknown key 'model_typ' (did you mean 'model_type'?)"),
    ("users", "model_type", "parnt", M + "model_type: must be one of parent, related, event, not 'parnt'"),
    ("users", "labels", 5, M + "labels: must be [primary, secondary] column names or {primary: column, secondary: "
                              "column}, not 5"),
    ("users", "primary_key", ["user_id", 7], M + "primary_key[1]: must be a column name, not 7"),
    ("users", "relationships[0].cardinality", 61,
     M + "relationships[0].cardinality: must be one of 1:1, 1:many, many:1, not 61 (YAML reads an unquoted 1:1 as "
         "the number 61: quote it, \"1:1\")"),
    ("users", "relationships[0].cardnality", ("rename", "relationships[0].cardinality"),
     M + "relationships[0].cardnality: unknown key 'cardnality' (did you mean 'cardinality'?)"),
    ("users", "relationships[0].join", ["user_id"],
     M + "relationships[0].join: must be a mapping {this model's column: the other model's column}, not ['user_id']"),
    ("users", "syncs[0].mode", "sometimes",
     M + "syncs[0].mode: must be one of insert, update, upsert, mirror, not 'sometimes'"),
    ("users", "syncs[0].mapping", ("rename", "syncs[0].mappings"),
     M + "syncs[0].mapping: unknown key 'mapping' (did you mean 'mappings'?)"),
    ("users", "syncs[0].name", "Users CRM",
     M + "syncs[0].name: must be lower-case letters, digits and _ (it names state tables), not 'Users CRM'"),
    ("events", "max_round", 60, "models/_models.yml: model 'stg_events': meta.dbt_studio.max_round: unknown key "
                                "'max_round' (did you mean 'max_rounds'?)"),
    ("events", "lookback_hours", -1, "models/_models.yml: model 'stg_events': meta.dbt_studio.lookback_hours: "
                                     "must be an integer >= 0"),
    ("events", "timestamp", 3, "models/_models.yml: model 'stg_events': meta.dbt_studio.timestamp: "
                               "must be a column name, not 3"),
    ("audience", "where.and[1].within_day", ("rename", "where.and[1].within_days"),
     A + "where.and[1].within_day: unknown key 'within_day' (did you mean 'within_days'?)"),
    ("audience", "where.and[1].within_days", -3, A + "where.and[1].within_days: must be a number > 0"),
    ("audience", "where.and[0].op", "~=", A + "where.and[0].op: must be one of =, !=, <>, <, <=, >, >=, in, not in, "
                                            "between, contains, starts with, ends with, is null, is not null, within "
                                            "last days, more than days ago, before, after, not '~='"),
    ("audience", "where.and[0]", {"colum": "email"},
     A + "where.and[0]: unknown condition with keys colum (a condition has one of: and, or, not, column, has, "
         "has not, performed, did not perform, in audience, not in audience)"),
    ("audience", "traits[0].agg", "median", A + "traits[0].agg: must be one of count, sum, avg, min, max, first, "
                                              "last, most_frequent, not 'median'"),
    ("audience", "splits.groups.treatment", 95, A + "splits.groups: percentages add up to 105, not 100"),
    ("yml", "destinations.crm.batchsize", ("rename", "destinations.crm.batch_size"),
     Y + "crm.batchsize: unknown key 'batchsize' (did you mean 'batch_size'?)"),
    ("yml", "destinations.crm.url", "htp://crm.example.com/contacts",
     Y + "crm.url: bad scheme 'htp' in 'htp://crm.example.com/contacts': use http or https"),
    ("yml", "destinations.crm.url", "crm.example.com/contacts",
     Y + "crm.url: must be an http or https URL (scheme://host/...), not 'crm.example.com/contacts'"),
    ("yml", "destinations.crm.timeout", "soon", Y + "crm.timeout: must be a number > 0"),
    ("yml", "destinations.crm.batch_size", 0, Y + "crm.batch_size: must be an integer >= 1"),
    ("yml", "destinations.braze_eu.batch_size", 500, Y + "braze_eu.batch_size: must be at most 75 (the destination's "
                                                         "limit)"),
    ("yml", "destinations.crm.headers", ["Authorization"],
     Y + "crm.headers: must be a mapping {header: value}, not ['Authorization']"),
    ("yml", "destination", ("rename", "destinations"),
     "<yml>: destination: unknown key 'destination' (did you mean 'destinations'?)"),
]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from sync_runner.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def write_project(root: Path, users: Any, events: Any, audience: Any, studio: Any) -> None:
    (root / "target").mkdir(parents=True, exist_ok=True)
    (root / "target" / "manifest.json").write_text(json.dumps(manifest(users, events, audience)))
    (root / "dbt_studio.yml").write_text(yaml.safe_dump(studio, sort_keys=False))


def test_the_good_project_validates(tmp_path: Path) -> None:
    write_project(tmp_path, USERS_META, EVENTS_META, AUDIENCE, STUDIO_YML)
    result = run_cli("validate", "--project-dir", str(tmp_path), "--profiles-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("2 model(s) with dbt_studio config, 0 problem(s)")
    # a validation without problems keeps the manifest's fields for the next command (the mistakes below do not)
    assert load_manifest(tmp_path).unkept is None
    assert len(list((tmp_path / "target").glob("dbt_studio_macros_*.jinja"))) == 1  # the rules' compiled code


def test_each_mistake_is_one_line_exit_2_and_changes_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    """Every case through the CLI's `main()` in this process (a process each took 1.8 s, mostly imports), the first
    also as its own process, as users run it; the files are byte-equal afterwards."""
    failures = []
    for i, (surface, path, value, expected) in enumerate(CASES):
        documents = {"users": copy.deepcopy(USERS_META), "events": copy.deepcopy(EVENTS_META),
                     "audience": copy.deepcopy(AUDIENCE), "yml": copy.deepcopy(STUDIO_YML)}
        mutate(documents[surface], path, value)
        root = tmp_path / f"case{i}"
        write_project(root, documents["users"], documents["events"], documents["audience"], documents["yml"])
        before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        args = ("validate", "--project-dir", str(root), "--profiles-dir", str(root))
        runs = [cli_in_process(capsys, monkeypatch, *args)]
        if i == 0:
            process = run_cli(*args)
            runs.append((process.returncode, process.stdout, process.stderr))
        after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        want = "error: " + expected.replace("<yml>", str(root.resolve() / "dbt_studio.yml"))
        for code, _, stderr in runs:
            errors = [line for line in stderr.splitlines() if line.strip()]
            if code != 2 or errors != [want] or before != after or "Traceback" in stderr:
                failures.append((expected, code, errors))
    assert failures == []


@pytest.mark.parametrize(("word", "choices", "expected"), [
    ("within_day", ["within_days", "where", "times"], "within_days"),
    ("batchsize", ["batch_size", "concurrency"], "batch_size"),
    ("window_day", ["window_days", "where", "order_by"], "window_days"),
    ("CARDINALITY", ["cardinality", "join"], "cardinality"),
    ("colour", ["name", "to"], None),
    ("x", ["to", "join"], "to"),  # distance 2 is always close enough
])
def test_closest_is_edit_distance_with_a_third_of_the_word(word: str, choices: list[str], expected: str | None):
    assert closest(word, choices) == expected


def test_validate_parses_the_manifest_once_for_both_schema_checks(tmp_path: Path, monkeypatch) -> None:
    """validate runs the schema's rules, then the audiences' references, each over manifest.json in full (its
    macros and nodes): one parse serves both, and each validate reads the file as it is then."""
    from sync_runner.validate import validate_manifest

    write_project(tmp_path, USERS_META, EVENTS_META, AUDIENCE, STUDIO_YML)
    path = (tmp_path / "target" / "manifest.json").resolve()
    reads: list[str] = []

    def counting(name: str) -> None:
        real = getattr(Path, name)

        def counted(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self == path:
                reads.append(name)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, counted)

    counting("read_bytes")
    counting("read_text")
    first = load_manifest(tmp_path)
    reads.clear()
    assert validate_manifest(first) == []
    assert len(reads) == 1
    broken = copy.deepcopy(AUDIENCE)
    broken["columns"] = ["email", "phone"]  # no such column on stg_users
    write_project(tmp_path, USERS_META, EVENTS_META, broken, STUDIO_YML)
    second = load_manifest(tmp_path)
    reads.clear()
    [problem] = validate_manifest(second)
    assert (problem.model, problem.key) == ("vip", "columns[1]") and "phone" in problem.message
    assert len(reads) == 1


def test_a_broken_meta_and_a_missing_model_elsewhere_are_both_said_in_one_run(tmp_path: Path, capsys,
                                                                               monkeypatch) -> None:
    """The rules across models ran only once no model's meta had a problem, so a user fixed one batch and then met
    the next. Now they run on the models whose meta is well-formed: stg_events' own mistake and stg_users'
    relationship to a model that does not exist come in one run; stg_users' relationship to the broken
    stg_events says nothing (stg_events' own line stands for it)."""
    events = {**EVENTS_META, "timestamp": 3}
    users = copy.deepcopy(USERS_META)
    users["relationships"].append({"name": "orders", "to": "orders", "cardinality": "1:many",
                                   "join": {"user_id": "user_id"}})
    write_project(tmp_path, users, events, AUDIENCE, STUDIO_YML)
    code, _, err = cli_in_process(capsys, monkeypatch, "validate", "--project-dir", str(tmp_path),
                                  "--profiles-dir", str(tmp_path))
    assert code == 2
    assert [line for line in err.splitlines() if line.strip()] == [
        "error: models/_models.yml: model 'stg_events': meta.dbt_studio.timestamp: must be a column name, not 3",
        "error: models/_models.yml: model 'stg_users': relationship 'orders': unknown model 'orders'"]
