"""The plant-store example builds on both adapters and carries exactly the seeded rows through staging."""

from __future__ import annotations

import csv
import json

import pytest

from sync_runner.core.paths import example_root

from helpers.cli_process import run_cli_process
from helpers.sql_lint import unknown_functions

TABLES = ("users", "identifies", "tracks", "purchases", "product_viewed", "subscriptions", "memberships")


def seed_rows(table: str) -> int:
    with (example_root() / "seeds" / f"raw_{table}.csv").open(newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.DictReader(fh))


@pytest.mark.parametrize("table", TABLES)
def test_staging_models_carry_every_seed_row(plant_store, table):
    [(count,)] = plant_store.query(f"select count(*) from {plant_store.relation('stg_' + table)}")
    assert count == seed_rows(table) > 0


def test_primary_keys_are_unique_and_messy_emails_stay_raw(plant_store):
    users = plant_store.relation("stg_users")
    [(n, distinct)] = plant_store.query(f"select count(*), count(distinct user_id) from {users}")
    assert n == distinct
    # Staging must not clean identities: normalisation is the stitcher's job, so messy emails survive here.
    def emails(relation: str) -> set[str]:
        return {r[0] for r in plant_store.query(f"select distinct email from {relation} where email is not null")}

    staged = emails(plant_store.relation("stg_identifies"))
    assert staged == emails(plant_store.relation("raw_identifies"))
    assert any(e != e.strip().lower() for e in staged), "the seeds lost their mixed-case / padded emails"


def test_snowflake_build_uses_only_snowflake_functions(built_example):
    project = built_example("snowflake")
    assert project.sql_log, "no SQL was captured from the build"
    assert unknown_functions(project.sql_log) == []


def test_validate_lists_configured_models_of_a_built_project(plant_store):
    result = run_cli_process("validate", "--project-dir", str(plant_store.root), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "stg_users" in report["models"]
    assert report["problems"] == []


def test_parse_with_a_snowflake_profile_raises_no_deprecation(new_project):
    """dbt only runs its deprecation checks for warehouse adapters such as Snowflake: parse with a dummy one
    (no connection is made) and make every deprecation an error."""
    project = new_project("snowflake", name="parse")
    result = project.dbt("parse", "--warn-error-options", '{"error": ["Deprecations"]}', check=False)
    assert result.success, result.exception


def test_lint_flags_duckdb_only_functions():
    """The lint itself must be able to fail."""
    problems = unknown_functions(["select list_value(1, 2), regexp_matches(a, 'x') from t"])
    assert {name for name, _ in problems} == {"list_value", "regexp_matches"}
    assert unknown_functions(["select regexp_like(a, 'x'), count(*) from t group by 1"]) == []


