"""The published reference stays the declared schema's: the docs tables and schemas/*.json equal what
sync_runner/reference.py generates, and the JSON Schemas accept the example project and refuse the mistakes
`dbt-studio validate` refuses."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from sync_runner.cli import cli
from sync_runner.reference import KEY_MACROS, PAGES, json_schemas, keys_macro, render, schema_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "integration_tests"
REGENERATE = 'python -c "from sync_runner.reference import write; write(\'.\')"'


@pytest.mark.parametrize("page", PAGES)
def test_docs_tables_are_the_generated_ones(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    assert "<!-- declared:" in text
    assert render(text, page) == text, f"{page} lags the declared schema: run {REGENERATE}"


@pytest.mark.parametrize("name", sorted(json_schemas()))
def test_committed_schemas_are_the_generated_ones(name: str) -> None:
    path = ROOT / "schemas" / name
    assert path.read_text(encoding="utf-8") == schema_text(name), f"{path} lags: run {REGENERATE}"
    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", sorted(KEY_MACROS))
def test_the_compile_time_keys_are_the_declared_ones(path: str) -> None:
    assert (ROOT / path).read_text(encoding="utf-8") == keys_macro(path), f"{path} lags: run {REGENERATE}"


def test_the_cli_prints_the_committed_schemas() -> None:
    for choice, name in (("dbt_studio.yml", "dbt_studio.schema.json"), ("meta", "meta.schema.json")):
        result = CliRunner().invoke(cli, ["schema", "--json-schema", choice])
        assert result.exit_code == 0 and result.output == (ROOT / "schemas" / name).read_text(encoding="utf-8")


def errors(schema: str, document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(json_schemas()[schema])
    return sorted(e.message for e in validator.iter_errors(document))


def test_the_example_project_passes() -> None:
    assert errors("dbt_studio.schema.json", yaml.safe_load((EXAMPLE / "dbt_studio.yml").read_text())) == []
    files = sorted((EXAMPLE / "models").rglob("*.yml"))
    assert files and any("dbt_studio" in f.read_text() for f in files)
    for path in files:
        assert errors("meta.schema.json", yaml.safe_load(path.read_text())) == [], path


STUDIO = {"destinations": {
    "crm": {"type": "http", "url": "https://crm.example.com/c", "batch_size": "{{ env_var('BS') }}",
            "headers": {"Authorization": "Bearer {{ env_var('CRM_TOKEN') }}"}},
    "hub": {"type": "hubspot", "access_token": "{{ env_var('HUBSPOT_TOKEN') }}", "batch_size": 100},
}, "dbt_cloud": {"account_id": 12, "job_ids": [3, "4"]}}


@pytest.mark.parametrize(("path", "value", "message"), [
    (("destinations", "crm", "batchsize"), 5, "Additional properties are not allowed ('batchsize' was unexpected)"),
    (("destinations", "crm", "url"), "htp://crm.example.com/c", "'htp://crm.example.com/c' does not match"),
    (("destinations", "crm", "timeout"), "soon", "'soon' is not valid under any of the given schemas"),
    (("destinations", "crm", "format"), "rows", "'rows' is not one of ['batch', 'row']"),
    (("destinations", "hub", "type"), "hubspt", "'hubspt' is not one of"),
    (("destinations", "hub", "access_tokn"), "x", "'access_token' is a required property"),
    (("dbt_cloud", "token"), "dbtc_x", "Additional properties are not allowed ('token' was unexpected)"),
    (("destination",), {}, "Additional properties are not allowed ('destination' was unexpected)"),
])
def test_the_file_schema_refuses_what_validate_refuses(path: tuple[str, ...], value: Any, message: str) -> None:
    assert errors("dbt_studio.schema.json", STUDIO) == []
    document = copy.deepcopy(STUDIO)
    target = document
    for key in path[:-1]:
        target = target[key]
    if path[-1] == "access_tokn":
        target.pop("access_token")
    target[path[-1]] = value
    assert any(message in e for e in errors("dbt_studio.schema.json", document)), errors("dbt_studio.schema.json",
                                                                                         document)


MODELS = {"version": 2, "models": [{"name": "stg_users", "description": "anything dbt takes stays open",
                                    "config": {"materialized": "table", "meta": {"dbt_studio": {
                                        "model_type": "parent", "primary_key": "user_id",
                                        "relationships": [{"to": "stg_orders", "cardinality": "1:many",
                                                           "join": {"user_id": "user_id"}}],
                                        "syncs": [{"name": "users", "destination": "crm",
                                                   "mappings": {"email": "email"}}]}}},
                                    "columns": [{"name": "region", "tests": ["not_null"],
                                                 "config": {"meta": {"dbt_studio": {"suggestions": True}}}}]}]}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("model_typ", "parent", "Additional properties are not allowed ('model_typ' was unexpected)"),
    ("model_type", "parnt", "'parnt' is not one of ['parent', 'related', 'event']"),
    ("relationships", [{"to": "stg_orders", "cardinality": 61, "join": {"user_id": "user_id"}}],
     "61 is not one of ['1:1', '1:many', 'many:1']"),
    ("syncs", [{"name": "users", "destination": "crm", "mode": "sometimes", "mappings": {"a": "b"}}],
     "'sometimes' is not one of ['insert', 'update', 'upsert', 'mirror']"),
    ("syncs", [{"name": "Users CRM", "destination": "crm", "mappings": {"a": "b"}}], "'Users CRM' does not match"),
])
def test_the_meta_schema_refuses_what_validate_refuses(key: str, value: Any, message: str) -> None:
    assert errors("meta.schema.json", MODELS) == []
    document = copy.deepcopy(MODELS)
    document["models"][0]["config"]["meta"]["dbt_studio"][key] = value
    assert any(message in e for e in errors("meta.schema.json", document)), errors("meta.schema.json", document)
