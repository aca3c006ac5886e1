"""dbt's artifacts as the runner reads them: what dbt writes loads, a broken file is one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync_runner.core.errors import UserError
from sync_runner.project.artifacts import load_manifest, load_run_results

MODEL = {"unique_id": "model.shop.people", "resource_type": "model", "name": "people", "package_name": "shop",
         "original_file_path": "models/p.sql", "database": "db", "schema": "main", "alias": "people",
         "relation_name": '"db"."main"."people"',
         "config": {"meta": {"dbt_studio": {"primary_key": "id"}}}}


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "target").mkdir(exist_ok=True)
    (tmp_path / "target" / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_the_manifest_loads_as_plain_json_reads_it(tmp_path):
    doc = {"metadata": {"invocation_id": "inv-1", "project_name": "shop", "adapter_type": "duckdb"},
           "nodes": {"model.shop.people": MODEL, "test.shop.x": {"resource_type": "test"}}}
    manifest = load_manifest(write(tmp_path, "manifest.json", json.dumps(doc)))
    assert (manifest.invocation_id, manifest.project_name, manifest.adapter_type) == ("inv-1", "shop", "duckdb")
    assert list(manifest.nodes) == ["model.shop.people"]
    assert manifest.nodes["model.shop.people"].relation_name == '"db"."main"."people"'


def test_what_orjson_refuses_and_dbt_may_write_still_loads(tmp_path):
    """Python's json writes NaN for a float('nan') in a model's meta and any integer size; orjson refuses both."""
    model = {**MODEL, "config": {"meta": {"score": float("nan"), "big": 2 ** 70}}}
    text = json.dumps({"metadata": {}, "nodes": {"model.shop.people": model}})
    assert "NaN" in text
    manifest = load_manifest(write(tmp_path, "manifest.json", text))
    assert list(manifest.nodes) == ["model.shop.people"]


@pytest.mark.parametrize("text", ['{"metadata": {', "\xff not json", "[1, 2]"])
def test_a_broken_artifact_is_one_line_naming_the_file(tmp_path, text):
    path = write(tmp_path, "run_results.json", text)
    with pytest.raises(UserError) as caught:
        load_run_results(path)
    message = str(caught.value)
    assert message.startswith(str(tmp_path.resolve() / "target" / "run_results.json") + ": not a")
    assert "\n" not in message
