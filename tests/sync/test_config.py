"""A sync's `filter` checked against the model's column types before any SQL runs (validate): a number column
compared with a word is named by key, as an audience's condition is; what the warehouse casts ('42') passes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sync_runner.project.artifacts import Node
from sync_runner.sync.config import filter_columns, row_selection_problems

PEOPLE = Node(unique_id="model.p.people", name="people", resource_type="model", package_name="p",
              original_file_path="models/people.sql", patch_path=None, relation_name="people", database="db",
              schema="main", alias="people", materialized="table", columns=("id", "score", "plan", "signed_up"),
              columns_source="warehouse",
              column_types={"id": "VARCHAR", "score": "DECIMAL(38,2)", "plan": "VARCHAR", "signed_up": "TIMESTAMP"},
              number_columns=frozenset({"score"}))


@pytest.mark.parametrize(("tree", "expected"), [
    ({"column": "score", "op": ">=", "value": 100}, []),
    ({"column": "score", "op": ">=", "value": "42.5"}, []),  # the warehouse casts it
    ({"column": "plan", "op": "=", "value": "pro"}, []),  # a text column
    ({"column": "score", "op": "is null"}, []),
    ({"column": "score", "op": "contains", "value": "9"}, []),  # text operators are not comparisons of numbers
    ({"column": "SCORE", "op": "=", "value": "high"},
     [("filter.value", "'high' is not a number, and column 'SCORE' of model 'people' is DECIMAL(38,2)")]),
    ({"and": [{"column": "plan", "op": "=", "value": "pro"},
              {"not": {"column": "score", "op": "in", "value": [1, "two", "three"]}}]},
     [("filter.and[1].not.value", "'two' is not a number, and column 'score' of model 'people' is DECIMAL(38,2)")]),
    ({"or": [{"column": "score", "op": "between", "value": ["low", 5]}]},
     [("filter.or[0].value", "'low' is not a number, and column 'score' of model 'people' is DECIMAL(38,2)")]),
])
def test_a_number_column_compared_with_a_word_is_named_by_key(tree: dict[str, Any], expected: list) -> None:
    assert row_selection_problems(PEOPLE, {"filter": tree}) == expected


def test_without_the_relation_s_types_nothing_is_guessed() -> None:
    """A model not built yet (or a sync that did not read types) has no number columns: the warehouse decides."""
    unbuilt = replace(PEOPLE, number_columns=frozenset(), column_types={})
    assert row_selection_problems(unbuilt, {"filter": {"column": "score", "op": ">", "value": "high"}}) == []


def test_a_malformed_filter_is_reported_for_its_shape_only() -> None:
    problems = row_selection_problems(PEOPLE, {"filter": {"column": "score", "op": "~", "value": "high"}})
    assert problems == [("filter.op", "unknown operator '~' (known: =, !=, <>, <, <=, >, >=, in, not in, between, "
                                      "contains, starts with, ends with, is null, is not null)")]


def test_the_columns_a_filter_names_are_its_conditions_columns_in_order() -> None:
    tree = {"and": [{"column": "plan", "op": "=", "value": "pro"},
                    {"not": {"or": [{"column": "score", "op": ">", "value": 1}, {"column": "id", "op": "is null"}]}},
                    {"column": "signed_up", "op": ">", "value": "2024-01-01",
                     "and": [{"column": "stray", "op": "=", "value": 1}]}]}  # a condition is a leaf
    assert filter_columns(tree) == ["plan", "score", "id", "signed_up"]


def test_only_the_projects_own_dbt_studio_yml_is_kept_parsed_in_its_target_dir(tmp_path, monkeypatch) -> None:
    """A dbt_studio.yml in the profiles dir (beside profiles.yml, out of the repository, perhaps with a token written
    in it) is read as always, but never copied into the project's target dir; the project's own one is kept."""
    from sync_runner.core import yaml_text
    from sync_runner.sync.config import load_destinations

    project, profiles = tmp_path / "project", tmp_path / "dot_dbt"
    (project / "target").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    profiles.mkdir()
    (profiles / "dbt_studio.yml").write_text(
        "destinations:\n  hook: {type: http, url: 'https://x.example.com', headers: {Authorization: Bearer s3cr3t}}\n")
    kept = project / "target" / yaml_text.KEPT_FILE
    yaml_text.keep_in(project / "target")
    try:
        assert load_destinations(project, profiles)["hook"].options["headers"] == {"Authorization": "Bearer s3cr3t"}
        yaml_text.flush()
        assert not kept.exists()
        (project / "dbt_studio.yml").write_text((profiles / "dbt_studio.yml").read_text())  # the project's own
        assert load_destinations(project, profiles)["hook"].type == "http"
        yaml_text.flush()
        assert kept.is_file()
    finally:
        yaml_text.keep_in(None)
