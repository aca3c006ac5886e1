"""The CLI as a user meets it: version, and one-line errors instead of tracebacks."""

from __future__ import annotations

import subprocess

import pytest

import sync_runner

from helpers.cli_process import run_cli_process


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return run_cli_process(*args, cwd=cwd, timeout=300)


def test_version_prints_the_installed_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dbt-studio, version {sync_runner.__version__}"


def test_validate_outside_a_built_project_is_one_line(tmp_path):
    result = run_cli("validate", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: no dbt_project.yml in {tmp_path.resolve()}: run this in a dbt project's root, or "
                     "pass --project-dir"]
    assert "Traceback" not in result.stderr + result.stdout
    (tmp_path / "dbt_project.yml").write_text("name: p\nversion: '1.0'\nprofile: p\n", encoding="utf-8")
    result = run_cli("validate", cwd=tmp_path)
    assert result.stderr.strip().splitlines() == [
        f"error: no target/manifest.json in {tmp_path.resolve()}: run dbt build first"]


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["sync"], ["status"], ["exposures"], ["schema"]])
def test_a_command_run_inside_a_project_s_folder_names_the_project_s_root(tmp_path, command):
    (tmp_path / "dbt_project.yml").write_text("name: p\nversion: '1.0'\nprofile: p\n", encoding="utf-8")
    models = tmp_path / "models" / "marts"
    models.mkdir(parents=True)
    result = run_cli(*command, cwd=models)
    assert result.returncode == 2
    root = tmp_path.resolve()
    assert result.stderr.strip().splitlines() == [
        f"error: {models.resolve()} is inside the dbt project {root}, not its root: run this in {root}, or pass "
        f"--project-dir {root}"]


def test_generate_rejects_bad_arguments_without_traceback(tmp_path):
    result = run_cli("generate", "--users", "0", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--users" in result.stderr


def test_two_projects_in_one_process_each_get_their_own_warehouse(new_project):
    """dbt keeps one adapter per type per process; a second project must not reuse the first one's database."""
    first, second = new_project("duckdb", name="first"), new_project("duckdb", name="second")
    first.dbt("seed", "-s", "raw_subscriptions")
    second.dbt("seed", "-s", "raw_users")
    assert first.query(f"select count(*) from {first.relation('raw_subscriptions')}") == [(6,)]
    assert second.query(f"select count(*) from {second.relation('raw_users')}") == [(60,)]
    assert first.query(f"select count(*) from {first.relation('raw_subscriptions')}") == [(6,)]
