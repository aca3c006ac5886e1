"""dbt's artifacts as the runner reads them: what dbt writes loads, a broken file is one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync_runner.core.errors import UserError
from sync_runner.project.artifacts import SLIM_FILE, keep, load_manifest, load_run_results

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


def test_the_runner_s_fields_are_kept_beside_the_manifest_while_its_bytes_are_unchanged(tmp_path):
    """A command reads the kept fields instead of parsing the whole manifest, and they give the same nodes; a
    manifest whose bytes changed is read again, whatever the kept file says."""
    audience = {**MODEL, "unique_id": "model.shop.vips", "name": "vips", "patch_path": "shop://models/v.yml",
                "checksum": {"name": "sha256", "checksum": "abc"}, "columns": {"id": {"name": "id"}, "email": {}},
                "config": {"materialized": "table", "meta": {"dbt_studio_audience": {"parent": "people"}}},
                "compiled_code": "select 1", "raw_code": "select 1"}
    doc = {"metadata": {"invocation_id": "inv-1", "project_name": "shop", "adapter_type": "duckdb"},
           "nodes": {"model.shop.people": MODEL, "model.shop.vips": audience},
           "macros": {"macro.dbt.x": {"macro_sql": "{% macro x() %}{% endmacro %}"}}}
    project = write(tmp_path, "manifest.json", json.dumps(doc))
    parsed = load_manifest(project)
    kept = tmp_path / "target" / SLIM_FILE
    assert not kept.exists()  # reading writes nothing: a command keeps the copy once it did its work
    keep(parsed)
    assert kept.is_file() and "macro_sql" not in kept.read_text() and "compiled_code" not in kept.read_text()
    again = load_manifest(project)
    assert again == parsed and again.unkept is None
    assert again.nodes["model.shop.vips"].columns == ("id", "email")
    assert again.nodes["model.shop.vips"].audience == {"parent": "people"}
    assert (again.nodes["model.shop.vips"].checksum, again.nodes["model.shop.vips"].config_file) == (
        "abc", "models/v.yml")
    # the kept file is what is read while manifest.json is unchanged ...
    slim = json.loads(kept.read_text())
    slim["nodes"]["model.shop.people"]["alias"] = "from_the_kept_file"
    kept.write_text(json.dumps(slim))
    assert load_manifest(project).nodes["model.shop.people"].alias == "from_the_kept_file"
    # ... and never once it changed
    doc["nodes"]["model.shop.people"] = {**MODEL, "alias": "people_v2"}
    write(tmp_path, "manifest.json", json.dumps(doc))
    changed = load_manifest(project)
    assert changed.nodes["model.shop.people"].alias == "people_v2"
    keep(changed)
    assert json.loads(kept.read_text())["nodes"]["model.shop.people"]["alias"] == "people_v2"


def test_a_node_s_config_file_is_where_its_dbt_studio_meta_is_declared(tmp_path):
    """A sync declared in the model's SQL (`config(meta={'dbt_studio': ...})`) of a model that also has a YAML entry
    (its docs): mistakes name the SQL file, also from the kept copy. Meta in the YAML names the YAML file: with a
    `dbt_studio.audience(...)` call in the SQL, and with a config() in the SQL that the YAML overrides (a model
    that takes its syncs from a var when one is given)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "_docs.yml").write_text("version: 2\nmodels:\n  - name: people\n    description: x\n")
    for name in ("_vips.yml", "_both.yml"):
        (tmp_path / "models" / name).write_text("models: [{name: x, config: {meta: {dbt_studio: {}}}}]\n")
    in_sql = {**MODEL, "patch_path": "shop://models/_docs.yml",
              "raw_code": "{{ config(meta={'dbt_studio': {'primary_key': 'id'}}) }}\nselect 1 as id"}
    in_yml = {**MODEL, "unique_id": "model.shop.vips", "name": "vips", "original_file_path": "models/vips.sql",
              "patch_path": "shop://models/_vips.yml", "raw_code": "{{ dbt_studio.audience(parent='people') }}"}
    both = {**MODEL, "unique_id": "model.shop.both", "name": "both", "original_file_path": "models/both.sql",
            "patch_path": "shop://models/_both.yml",
            "raw_code": "{% if var('syncs', none) %}{{ config(meta={'dbt_studio': var('syncs')}) }}{% endif %}"}
    doc = {"metadata": {}, "nodes": {"model.shop.people": in_sql, "model.shop.vips": in_yml, "model.shop.both": both}}
    project = write(tmp_path, "manifest.json", json.dumps(doc))
    parsed = load_manifest(project)
    keep(parsed)
    for manifest in (parsed, load_manifest(project)):
        assert manifest.nodes["model.shop.people"].config_file == "models/p.sql"
        assert manifest.nodes["model.shop.vips"].config_file == "models/_vips.yml"
        assert manifest.nodes["model.shop.both"].config_file == "models/_both.yml"


@pytest.mark.parametrize("kept", ["not json", "[]", '{"sha256": "0"}', "another release's layout"])
def test_a_kept_file_that_does_not_match_is_ignored(tmp_path, kept):
    text = json.dumps({"metadata": {}, "nodes": {"model.shop.people": MODEL}})
    project = write(tmp_path, "manifest.json", text)
    if kept == "another release's layout":  # the same manifest's digest, kept by a release that read other fields
        keep(load_manifest(project))
        slim = json.loads((tmp_path / "target" / SLIM_FILE).read_text())
        slim["layout"] = slim["layout"].replace("relation_name,", "")
        del slim["nodes"]["model.shop.people"]["relation_name"]
        kept = json.dumps(slim)
    write(tmp_path, SLIM_FILE, kept)
    manifest = load_manifest(project)
    assert list(manifest.nodes) == ["model.shop.people"] and manifest.unkept is not None
    assert manifest.nodes["model.shop.people"].relation_name == '"db"."main"."people"'


def test_a_manifest_orjson_would_change_is_not_kept(tmp_path):
    """A NaN in a meta would come back as null from a kept copy: such a manifest is parsed every time."""
    model = {**MODEL, "config": {"meta": {"dbt_studio": {"primary_key": "id", "weight": float("nan")}}}}
    project = write(tmp_path, "manifest.json", json.dumps({"metadata": {}, "nodes": {"model.shop.people": model}}))
    for _ in range(2):
        manifest = load_manifest(project)
        weight = manifest.nodes["model.shop.people"].studio["weight"]
        assert weight != weight  # NaN, not None
        keep(manifest)
    assert not (tmp_path / "target" / SLIM_FILE).exists()


@pytest.mark.parametrize("text", ['{"metadata": {', "\xff not json", "[1, 2]"])
def test_a_broken_artifact_is_one_line_naming_the_file(tmp_path, text):
    path = write(tmp_path, "run_results.json", text)
    with pytest.raises(UserError) as caught:
        load_run_results(path)
    message = str(caught.value)
    assert message.startswith(str(tmp_path.resolve() / "target" / "run_results.json") + ": not a")
    assert "\n" not in message


def test_a_disabled_node_is_named_disabled_with_its_file_also_from_the_kept_copy(tmp_path):
    """dbt keeps `enabled: false` nodes under the manifest's "disabled" key (unique_id -> its definitions): a name
    that only a disabled node has is "disabled (enabled: false, <file>)", not unknown, read fresh and kept."""
    snapshot = {**MODEL, "unique_id": "snapshot.shop.people_history", "name": "people_history",
                "resource_type": "snapshot", "original_file_path": "snapshots/people_history.sql"}
    doc = {"metadata": {}, "nodes": {"model.shop.people": MODEL},
           "disabled": {"model.shop.orders": [{**MODEL, "name": "orders", "original_file_path": "models/orders.sql"}],
                        "snapshot.shop.people_history": [snapshot],
                        "test.shop.t": [{"resource_type": "test", "name": "t"}]}}
    root = write(tmp_path, "manifest.json", json.dumps(doc))
    for _ in range(2):  # parsed, then from the copy kept beside it
        manifest = load_manifest(root)
        assert sorted(manifest.disabled) == ["orders", "people_history"]
        assert manifest.unknown_model("orders", "enable it or remove the sync") == (
            "model 'orders' is disabled (enabled: false, models/orders.sql); enable it or remove the sync")
        assert manifest.disabled_phrase("people_history") == (
            "snapshot 'people_history' is disabled (enabled: false, snapshots/people_history.sql)")
        assert manifest.unknown_model("peple") == "unknown model 'peple' (did you mean 'people'?)"
        assert manifest.disabled_phrase("people") is None
        keep(manifest)
    assert (root / "target" / SLIM_FILE).is_file()
