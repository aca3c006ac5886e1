"""`dbt-studio build`: dbt build with the user's arguments, then only the syncs of models that this build made.

The project is tests/projects/sync plus a second model, `fragile`, whose SQL breaks when the var `break_fragile`
is true, so one build can succeed for `people` and fail for `fragile`.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from sync_runner.sync.orchestrate import build_and_sync

from helpers.cli_process import run_cli_process
from helpers.sync_project import MAPPINGS, PROJECT, add_fragile_model, dbt_vars, file_ops


@pytest.fixture(scope="module")
def project(new_project, tmp_path_factory):
    p = new_project("duckdb", name="orchestrate", source=PROJECT)
    p.out = tmp_path_factory.mktemp("orchestrate_out")
    add_fragile_model(p.root, p.out)
    return p


def cli(project, *args: str) -> subprocess.CompletedProcess:
    project.release()
    return run_cli_process(*args, timeout=300, env=dict(os.environ), cwd=project.root)


def test_build_syncs_only_the_models_that_built(project):
    result = cli(project, "build", "--profiles-dir", str(project.root), "--vars",
                 dbt_vars(break_fragile=True), "--json")
    assert result.returncode == 1, result.stderr  # dbt failed for one model
    report = json.loads(result.stdout)  # dbt's own output went to stderr
    assert report["dbt"]["success"] is False
    assert report["dbt"]["not_built"] == {"model.sync_tests.fragile": "error"}
    assert "model.sync_tests.people" in report["dbt"]["built"]
    syncs = {r["sync"]: r for r in report["syncs"]}
    assert (syncs["people_out"]["status"], syncs["people_out"]["acknowledged"]) == ("success", 1)
    assert syncs["fragile_out"]["status"] == "skipped"
    assert ("its last dbt build ended with status 'error': fix it, then run dbt build -s fragile"
            in syncs["fragile_out"]["message"])
    assert len(file_ops(project.out, "people_out")) == 1 and not file_ops(project.out, "fragile_out")
    assert "Binder Error" in result.stderr or "no_such_column" in result.stderr


def test_a_selected_build_leaves_the_other_syncs_alone(project):
    # dbt's own -s passes through; `people` is not built, so its sync does not run even though it has changes
    report = build_and_sync(["-s", "fragile", "--vars", dbt_vars()], project.root, project.root, quiet=True)
    assert report.exit_code == 0 and report.dbt_success, report.as_dict()
    assert [(r.sync, r.status, r.acknowledged) for r in report.syncs] == [("fragile_out", "success", 1)]
    assert len(file_ops(project.out, "fragile_out")) == 1 and len(file_ops(project.out, "people_out")) == 1


def test_a_build_that_fails_before_running_syncs_nothing(project):
    before = sorted(project.out.iterdir())
    report = build_and_sync(["--vars", "{not yaml: ["], project.root, project.root, quiet=True)
    assert report.dbt_success is False and report.exit_code == 1
    assert report.syncs == [] and "no run results" in report.sync_error  # the old run_results.json is not reused
    assert sorted(project.out.iterdir()) == before


def test_a_sync_configuration_error_exits_2(project):
    bad = json.dumps({"syncs": [{"name": "nowhere_out", "destination": "nowhere", "mappings": MAPPINGS}]})
    report = build_and_sync(["-s", "people", "--vars", bad], project.root, project.root, quiet=True)
    assert report.dbt_success and report.exit_code == 2
    [skipped] = report.syncs  # skipped with the mistake, in the run log
    assert skipped.status == "skipped" and "unknown destination 'nowhere'" in skipped.message
