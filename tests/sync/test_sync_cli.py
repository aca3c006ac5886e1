"""`dbt-studio sync / plan / status / validate` as a user runs them: output, exit codes, one-line errors, and
no secret in any output."""

from __future__ import annotations

import csv
import json
import os
import subprocess

import duckdb
import pytest

from helpers.cli_process import run_cli_process
from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, file_ops, person

SECRET = "sk-live-6c1f-SECRET-9d2e"


def cli(project, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    project.release()
    return run_cli_process(*args, "--project-dir", str(project.root), timeout=300,
                           env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def sp(new_project, tmp_path_factory):
    return SyncProject(new_project("duckdb", name="sync_cli", source=PROJECT), tmp_path_factory.mktemp("cli_out"))


def test_plan_sync_status_round_trip(sp):
    out = sp.tmp / "files"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    rows = {f"u{i}": person(i) for i in range(5)}
    sp.build(rows, [{"name": "to_files", "destination": "out", "mode": "mirror", "mappings": MAPPINGS}])

    plan = cli(sp.p, "plan")
    assert plan.returncode == 0, plan.stderr
    header = next(line for line in plan.stdout.splitlines() if line.startswith("sync"))
    assert header.split() == ["sync", "model", "destination", "status", "adds", "changes", "deletes"]
    assert "to_files  people  out" in plan.stdout and "planned" in plan.stdout
    assert "p0@mail.com" in plan.stdout  # the sample

    synced = cli(sp.p, "sync", "--json")
    assert synced.returncode == 0, synced.stderr
    [report] = json.loads(synced.stdout)["syncs"]
    assert (report["status"], report["acknowledged"], report["planned"]["insert"]) == ("success", 5, 5)

    status = cli(sp.p, "status", "--json")
    assert status.returncode == 0, status.stderr
    runs = json.loads(status.stdout)
    assert runs[0]["sync_name"] == "to_files" and runs[0]["status"] == "success" and runs[0]["acknowledged"] == 5


def test_validate_names_file_model_and_key_for_each_problem(sp):
    sp.destinations("destinations:\n  out:\n    type: file\n    path: out\n")
    rows = {f"u{i}": person(i) for i in range(2)}
    sp.build(rows, [{"name": "ok_sync", "destination": "nowhere", "mode": "upsert", "mappings": MAPPINGS},
                    {"name": "Bad Name", "destination": "out", "mode": "sometimes", "mappings": MAPPINGS}])
    result = cli(sp.p, "validate")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "error: models/_people.yml: model 'people': meta.dbt_studio.syncs[0].destination: unknown destination " \
           "'nowhere' (known: out)" in errors
    assert any("syncs[1].name" in e for e in errors) and any("syncs[1].mode" in e for e in errors)
    assert "Traceback" not in result.stderr


def test_unknown_column_in_a_mapping_fails_before_sending(sp):
    sp.destinations("destinations:\n  out:\n    type: file\n    path: out_unknown\n")
    sp.build({"u1": person(1)}, [{"name": "typo", "destination": "out", "mappings": {"mail": "emial"}}])
    result = cli(sp.p, "sync")
    assert result.returncode == 2  # a mistake in the configuration, not in the data
    assert "sync 'typo' maps unknown column 'emial' (did you mean 'email'?)" in result.stderr
    status = cli(sp.p, "status", "--json")  # the run that stopped before sending is in the run log
    assert [(r["sync_name"], r["status"]) for r in json.loads(status.stdout)][:1] == [("typo", "failed")]
    assert "emial" in json.loads(status.stdout)[0]["error"]
    assert not (sp.p.root / "out_unknown").exists()


def test_a_mistake_in_one_model_s_syncs_skips_them_and_the_other_models_syncs_run(new_project, tmp_path):
    """One typo in one model's meta.dbt_studio used to stop every sync of the project with one error line, and the
    run log still showed the last runs as successes: a nightly sync stopped silently. Now that model's syncs are
    skipped with the mistake (exit 2, in the run log) and the other models' syncs run."""
    project = new_project("duckdb", name="one_typo", source=PROJECT)
    sp = SyncProject(project, tmp_path)
    out = tmp_path / "files"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    (project.root / "models" / "people_too.sql").write_text("select * from {{ ref('people_rows') }}\n")
    sp.build({f"u{i}": person(i) for i in range(3)}, [])

    def declare(mode: str) -> None:
        meta = [("people", "typo_sync", mode), ("people_too", "good_sync", "upsert")]
        models = [{"name": name, "config": {"meta": {"dbt_studio": {"primary_key": "user_id", "syncs": [
            {"name": sync, "destination": "out", "mode": m, "mappings": MAPPINGS}]}}}} for name, sync, m in meta]
        (project.root / "models" / "_people.yml").write_text(json.dumps({"version": 2, "models": models}))
        project.dbt("parse")

    declare("upsert")
    assert cli(project, "sync").returncode == 0
    declare("mirorr")
    with (project.root / "seeds" / "people_rows.csv").open("a", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([[f"u{i}", f"Person {i}", f"p{i}@mail.com", "free", i, "n"] for i in (3, 4)])
    project.dbt("build")
    result = cli(project, "sync")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "typo_sync: not run: models/_people.yml: model 'people': meta.dbt_studio.syncs[0].mode: "), lines
    assert "mirorr" in lines[0] and "Traceback" not in result.stdout + result.stderr
    assert {k: r["_op"] for k, r in file_ops(out, "good_sync")[-1].items()} == {"u3": "insert", "u4": "insert"}
    runs = json.loads(cli(project, "status", "--json").stdout)
    assert (runs[0]["sync_name"], runs[0]["status"]) in {("typo_sync", "skipped"), ("good_sync", "success")}
    latest = {}
    for run in runs:  # newest first
        latest.setdefault(run["sync_name"], run)
    assert latest["typo_sync"]["status"] == "skipped" and "mirorr" in latest["typo_sync"]["error"]
    assert latest["good_sync"]["status"] == "success"


def test_missing_env_var_is_a_one_line_error(sp):
    sp.destinations("destinations:\n  hook:\n    type: http\n    url: http://127.0.0.1:9/x\n"
                    "    headers: {Authorization: \"{{ env_var('NOT_SET_ANYWHERE') }}\"}\n")
    sp.build({"u1": person(1)}, [{"name": "needs_env", "destination": "hook", "mappings": MAPPINGS}])
    result = cli(sp.p, "sync")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [  # the sync is skipped, naming the file and the key once
        f"needs_env: not run: {sp.p.root / 'dbt_studio.yml'}: destinations.hook.headers.Authorization: "
        "env var 'NOT_SET_ANYWHERE' is not set"]
    assert "Traceback" not in result.stdout + result.stderr


def test_no_command_prints_a_secret(sp, http_sink):
    http_sink.reset()
    url = f"{http_sink.url}/records?key={{{{ env_var('SK') }}}}"
    sp.destinations(f"destinations:\n  hook:\n    type: http\n    url: {url}\n"
                    "    headers: {Authorization: \"Bearer {{ env_var('SK') }}\"}\n    timeout: 5\n")
    sp.build({f"u{i}": person(i) for i in range(3)},
             [{"name": "leaky", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS}])
    env = {"SK": SECRET}
    outputs = []
    for args in (["validate"], ["plan"], ["plan", "--json"], ["sync"], ["sync", "--json"], ["status"],
                 ["status", "--json"]):
        result = cli(sp.p, *args, env=env)
        outputs.append(result.stdout + result.stderr)
    assert all(SECRET not in text for text in outputs)
    assert "refused the credentials (HTTP 401)" in outputs[3]  # the sink wants its own token: a real failure path


ORDER_FACTS_YML = """\
version: 2
models:
  - name: order_facts
    latest_version: 2
    config:
      meta:
        dbt_studio:
          primary_key: user_id
          syncs: [{name: facts_to_files, destination: out, mappings: {id: user_id, email: email}}]
    versions:
      - v: 1
      - v: 2
"""
ORDER_FACTS_EACH_YML = """\
version: 2
models:
  - name: order_facts
    latest_version: 2
    versions:
      - v: 1
        config: {meta: {dbt_studio: {primary_key: user_id, syncs: [
          {name: facts_v1, destination: out, mappings: {id: user_id}}]}}}
      - v: 2
        config: {meta: {dbt_studio: {primary_key: user_id, syncs: [
          {name: facts_v2, destination: out, mappings: {id: user_id, email: email}}]}}}
"""
EPHEMERAL_SQL = """\
{{ config(materialized='ephemeral', meta={'dbt_studio': {'primary_key': 'user_id', 'syncs': [
    {'name': 'eph_out', 'destination': 'out', 'mappings': {'id': 'user_id', 'email': 'email'}}]}}) }}
select * from {{ ref('people_rows') }}
"""


def _refused_everywhere(sp, out, expected: str, skipped: str | None = None) -> None:
    """validate, plan and sync each stop at the same one line, exit 2, and nothing reaches the destination
    (`skipped`: the sync that plan and sync skip with that line, when the mistake is its model's own)."""
    for command in ("validate", "plan", "sync"):
        result = cli(sp.p, command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        line = f"{skipped}: not run: {expected}" if skipped and command != "validate" else f"error: {expected}"
        assert [line for line in result.stderr.splitlines() if line.strip()] == [line], command
    assert not out.exists()


def test_a_sync_that_every_version_of_a_model_declares_is_refused_by_name(sp):
    """Syncs in a versioned model's own config are each version's: one sync name, one state, run once per version.
    validate, plan and sync refuse it, naming the sync and the versions, and say how to fix it."""
    out = sp.tmp / "versions"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    models = sp.p.root / "models"
    files = {models / "order_facts_v1.sql": "select * from {{ ref('people_rows') }}\n",
             models / "order_facts_v2.sql": "select * from {{ ref('people_rows') }}\n",
             models / "_order_facts.yml": ORDER_FACTS_YML}
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    try:
        sp.build({f"u{i}": person(i) for i in range(3)}, [])
        _refused_everywhere(sp, out, "models/_order_facts.yml: model 'order_facts': meta.dbt_studio.syncs[0].name: "
                                     "sync name 'facts_to_files' is declared by more than one model (order_facts.v1, "
                                     "order_facts.v2), and it names one sync's state: give each version's sync its "
                                     "own name in that version's config (versions: - v: ... config: meta: "
                                     "dbt_studio: syncs), or declare the sync on one version only")
        (models / "_order_facts.yml").write_text(ORDER_FACTS_EACH_YML, encoding="utf-8")  # the fix the line gives
        sp.p.dbt("build")
        synced = cli(sp.p, "sync", "--json")
        assert synced.returncode == 0, synced.stderr
        reports = {r["sync"]: (r["status"], r["acknowledged"]) for r in json.loads(synced.stdout)["syncs"]}
        assert reports == {"facts_v1": ("success", 3), "facts_v2": ("success", 3)}
    finally:
        for path in files:
            path.unlink()


def test_a_sync_on_an_ephemeral_model_is_refused_before_it_runs(sp):
    """dbt builds no relation for an ephemeral model: its sync could never read one."""
    out = sp.tmp / "ephemeral"
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    model = sp.p.root / "models" / "eph_people.sql"
    model.write_text(EPHEMERAL_SQL, encoding="utf-8")
    try:
        sp.build({f"u{i}": person(i) for i in range(3)}, [])
        _refused_everywhere(sp, out, "models/eph_people.sql: model 'eph_people': meta.dbt_studio.syncs[0]: sync "
                                     "'eph_out' cannot run: model 'eph_people' is ephemeral, so dbt builds no "
                                     "relation to read; materialize it as a table or a view, or sync a model that "
                                     "selects from it", skipped="eph_out")
    finally:
        model.unlink()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_status_refuses_a_limit_below_one_as_a_usage_error(sp, limit):
    result = cli(sp.p, "status", "--limit", limit)
    assert (result.returncode, result.stdout) == (2, "")
    assert f"Invalid value for '--limit': {limit} is not in the range x>=1." in result.stderr
    assert "Traceback" not in result.stderr and "warehouse" not in result.stderr


def test_a_plan_on_the_default_target_after_a_build_of_another_says_which_target_was_built(new_project, tmp_path):
    """The manifest of a `dbt build --target prod` names prod's relations; a plain `plan` runs on the profile's
    default target, whose warehouse has none of them: the line says which target was built and what to pass."""
    from sync_runner.project.target import DbtTarget, run_dbt

    project = new_project("duckdb", name="other_target", source=PROJECT)
    sp = SyncProject(project, tmp_path)
    sp.add_prod_target(project.root / "target" / "prod.duckdb")
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {tmp_path / 'files'}\n")
    sp.declare([{"name": "to_files", "destination": "out", "mode": "mirror", "mappings": MAPPINGS}])
    run_dbt(["build"], DbtTarget(project.root, project.root, "prod"))
    project.release()

    hint = ("the last dbt command (target/run_results.json) ran with --target prod and this run uses the profile's "
            "default target (duckdb): pass --target prod, or build this target first")
    default = project.root / "target" / "warehouse.duckdb"
    plan = cli(project, "plan")  # the default target's DuckDB file was never made
    assert plan.returncode == 1 and "failed" in plan.stdout
    assert plan.stderr.strip().splitlines() == [
        f"to_files: cannot use the warehouse of {project.root} (target duckdb): the DuckDB file {default} does not "
        f"exist; {hint}"]
    assert not default.exists()
    duckdb.connect(str(default)).close()  # a default target that has a warehouse, without these relations
    plan = cli(project, "plan")
    assert plan.returncode == 1 and "failed" in plan.stdout
    assert plan.stderr.strip().splitlines() == [
        f"to_files: model 'people' has no relation \"prod\".\"main\".\"people\" in the warehouse: {hint}"]
    on_prod = cli(project, "plan", "--target", "prod")
    assert on_prod.returncode == 0, on_prod.stderr


def test_a_failed_build_of_another_target_does_not_stop_this_target_s_syncs(new_project, tmp_path):
    """run_results.json of a `dbt build --target prod` that failed says nothing of the default target, whose build
    succeeded: a plain `plan` plans, and `--target prod` says why prod's sync is not run."""
    from sync_runner.project.target import DbtTarget, run_dbt

    project = new_project("duckdb", name="other_target_failed", source=PROJECT)
    sp = SyncProject(project, tmp_path)
    (project.root / "target" / "prod").mkdir(parents=True)  # the same file name: the same relation names
    sp.add_prod_target(project.root / "target" / "prod" / "warehouse.duckdb")
    model = project.root / "models" / "people.sql"  # prod's build of the model fails, the default target's does not
    model.write_text(model.read_text(encoding="utf-8") + "\n{% if target.name == 'prod' %}where no_such_column"
                     "{% endif %}\n", encoding="utf-8")
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {tmp_path / 'files'}\n")
    sp.build({f"u{i}": person(i) for i in range(3)},
             [{"name": "to_files", "destination": "out", "mode": "mirror", "mappings": MAPPINGS}])
    assert not run_dbt(["build"], DbtTarget(project.root, project.root, "prod"), check=False).success
    project.release()

    plan = cli(project, "plan")
    assert plan.returncode == 0 and "to_files" in plan.stdout and "planned" in plan.stdout, (plan.stdout, plan.stderr)
    on_prod = cli(project, "plan", "--target", "prod")
    assert on_prod.returncode == 0 and "skipped" in on_prod.stdout, (on_prod.stdout, on_prod.stderr)
    assert "model 'people' not synced: its last dbt build ended with status 'error'" in on_prod.stdout


def _snapshot_yaml(mappings: dict | None = None) -> str:
    """The snapshot of docs/sync.md, declared in YAML, with a sync of its current rows."""
    sync = {"name": "current_people", "destination": "out", "mode": "mirror", "mappings": mappings or MAPPINGS,
            "filter": {"column": "dbt_valid_to", "op": "is null"}}
    snapshot = {"name": "people_history", "relation": "ref('people')",
                "config": {"unique_key": "user_id", "strategy": "check", "check_cols": "all",
                           "meta": {"dbt_studio": {"primary_key": "user_id", "syncs": [sync]}}}}
    return json.dumps({"snapshots": [snapshot]}, indent=1)


def test_a_snapshot_s_current_rows_are_synced_like_a_model_s(new_project, tmp_path):
    """A sync declared on a snapshot: its current rows (the filter) go out, and a change a later snapshot records
    is one update; validate, plan and sync all see it."""
    from fakes.slack import FakeSlack

    project = new_project("duckdb", name="snapshot_sync", source=PROJECT)
    sp = SyncProject(project, tmp_path)
    (project.root / "snapshots").mkdir()
    (project.root / "snapshots" / "people_history.yml").write_text(_snapshot_yaml(), encoding="utf-8")
    hooks = FakeSlack("unused")
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {tmp_path / 'files'}\n"
                    f"alerts:\n  channels:\n    ops: {{type: webhook, url: {hooks.url}/hooks/ops}}\n"
                    "  rules:\n    - channels: [ops]\n")
    sp.build({f"u{i}": person(i) for i in range(4)}, [])

    assert cli(project, "validate").returncode == 0
    first = cli(project, "sync", "-s", "current_people", "--json")
    assert first.returncode == 0, first.stderr
    [report] = json.loads(first.stdout)["syncs"]
    assert (report["model"], report["planned"]["insert"], report["acknowledged"]) == ("people_history", 4, 4)

    rows = sp.p.root / "seeds" / "people_rows.csv"
    rows.write_text(rows.read_text(encoding="utf-8").replace("p2@mail.com,free", "p2@mail.com,pro"), encoding="utf-8")
    second = cli(project, "build", "--json")  # the snapshot records u2's new plan: 5 rows of history
    assert second.returncode == 0, second.stderr
    [report] = json.loads(second.stdout)["syncs"]
    assert report["sync"] == "current_people" and report["status"] == "success"
    assert report["planned"] == {"insert": 0, "update": 1, "delete": 0, "clear": 0}
    assert file_ops(tmp_path / "files", "current_people")[-1]["u2"]["plan"] == "pro"

    # a mistake in its sync is named as the snapshot's, not a model's, in validate, plan and sync alike
    (project.root / "snapshots" / "people_history.yml").write_text(
        _snapshot_yaml({**MAPPINGS, "email": "emial"}), encoding="utf-8")
    project.dbt("parse")
    where = "snapshots/people_history.yml: snapshot 'people_history': "
    checked = cli(project, "validate")
    assert checked.returncode == 2 and f"error: {where}meta.dbt_studio.syncs[0].mappings.email: unknown column " \
        "'emial' of snapshot 'people_history' (columns of the relation " in checked.stderr, checked.stderr
    for command in ("plan", "sync"):
        done = cli(project, command, "-s", "current_people")
        assert done.returncode == 2 and f"{where}sync 'current_people' maps unknown column 'emial' (did you mean " \
            "'email'?)" in done.stdout + done.stderr, done.stdout + done.stderr
        assert "model 'people_history'" not in done.stdout + done.stderr
    assert "model 'people_history'" not in checked.stdout + checked.stderr
    # and in the failure alert of the sync (a plan is a dry run: it alerts no one)
    hooks.close()
    assert len(hooks.hooks) == 1
    for alert in hooks.hooks:
        assert (alert["event"], alert["sync"], alert["model"]) == ("failure", "current_people", "people_history")
        assert alert["text"].splitlines()[:2] == ["dbt-studio: sync 'current_people' failed",
                                                  "snapshot 'people_history' -> destination 'out'"]


DISABLED_SQL = """\
{{ config(enabled=false, meta={'dbt_studio': {'primary_key': 'user_id', 'syncs': [
    {'name': 'old_out', 'destination': 'out', 'mappings': {'id': 'user_id', 'email': 'email'}}]}}) }}
select user_id, email from {{ ref('people_rows') }}
"""


def test_validate_warns_that_the_syncs_of_a_disabled_model_never_run(new_project, tmp_path):
    """A model switched off with `enabled: false` keeps its syncs in its config, and dbt keeps the model under the
    manifest's "disabled" key: nothing built it, so its syncs silently never ran. validate says so, once, naming
    file, model and syncs, as a warning (disabling a model can be meant): the exit code stays 0."""
    project = new_project("duckdb", name="disabled_syncs", source=PROJECT)
    sp = SyncProject(project, tmp_path)
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {tmp_path / 'files'}\n")
    (project.root / "models" / "old_people.sql").write_text(DISABLED_SQL, encoding="utf-8")
    sp.build({f"u{i}": person(i) for i in range(2)}, [])

    checked = cli(project, "validate")
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.splitlines() == [
        "warning: models/old_people.sql: model 'old_people': meta.dbt_studio.syncs: the model is disabled "
        "(enabled: false), so dbt never builds it and its syncs (old_out) never run: enable it, or remove them"]
    assert "0 problem(s), 1 warning(s)" in checked.stdout
    as_json = json.loads(cli(project, "validate", "--json").stdout)
    assert as_json["problems"] == [] and [w["model"] for w in as_json["warnings"]] == ["old_people"]


BROKEN_PROFILE = """\
plant_store:
  target: duckdb
  outputs:
    duckdb:
      type: duckbd
      path: "{path}"
"""


ENV_PROFILE = """\
plant_store:
  target: duckdb
  outputs:
    duckdb:
      type: duckdb
      path: "{path}"
      threads: "{{{{ env_var('STUDIO_SYNC_THREADS') | as_number }}}}"
"""


def test_a_profile_error_met_only_when_a_kept_sync_needs_dbt_exits_2(sp, tmp_path):
    """A sync whose SQL is kept opens the DuckDB file without dbt, so a profile dbt cannot read (an env var it
    needs, gone since the last run) is met only when a run needs dbt again (here a test sync of a few keys): that
    is the user's configuration all the same, exit 2, in one line naming the env var, without a traceback."""
    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {sp.tmp / 'mid_files'}\n")
    sp.build({f"u{i}": person(i) for i in range(3)},
             [{"name": "to_files", "destination": "out", "mode": "mirror", "mappings": MAPPINGS}])
    profiles = tmp_path / "env_profile"
    profiles.mkdir()
    database = sp.p.root / "target" / "warehouse.duckdb"
    (profiles / "profiles.yml").write_text(ENV_PROFILE.format(path=database.as_posix()), encoding="utf-8")
    first = cli(sp.p, "sync", "--profiles-dir", str(profiles), env={"STUDIO_SYNC_THREADS": "1"})
    assert first.returncode == 0, first.stderr
    assert "STUDIO_SYNC_THREADS" not in os.environ
    later = cli(sp.p, "sync", "-s", "to_files", "--keys", "u1", "--profiles-dir", str(profiles))
    assert later.returncode == 2, (later.stdout, later.stderr)
    assert "STUDIO_SYNC_THREADS" in later.stderr and "Traceback" not in later.stderr, later.stderr


def test_a_broken_profile_exits_2_and_a_warehouse_that_cannot_be_opened_exits_1_in_every_command(sp, tmp_path):
    """One rule for every command (docs/cli.md): a profile dbt cannot read or refuses is the user's configuration,
    exit 2; a warehouse the profile describes that cannot be opened this time (a DuckDB file another process holds)
    is a failed run, exit 1. Each says so in one line naming the project and target, without a traceback. validate
    says the profile's error as an error, and a warehouse it cannot open as a note (it checks the YAML docs
    instead: exit 0 when nothing certain is wrong); schema reads only the manifest and no profile."""
    from helpers.held_file import duckdb_held

    sp.destinations(f"destinations:\n  out:\n    type: file\n    path: {sp.tmp / 'files'}\n")
    sp.build({f"u{i}": person(i) for i in range(2)},
             [{"name": "to_files", "destination": "out", "mode": "mirror", "mappings": MAPPINGS}])
    database = sp.p.root / "target" / "warehouse.duckdb"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "profiles.yml").write_text(BROKEN_PROFILE.format(path=database.as_posix()), encoding="utf-8")
    reason = (f"cannot use the warehouse of {sp.p.root} (target duckdb): Credentials in profile \"plant_store\", "
              "target \"duckdb\" invalid: Could not find adapter type duckbd!")
    for command in ("plan", "sync", "status"):
        result = cli(sp.p, command, "--profiles-dir", str(broken))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert reason in result.stderr and "Traceback" not in result.stderr, (command, result.stderr)
    checked = cli(sp.p, "validate", "--profiles-dir", str(broken))
    assert checked.returncode == 2 and checked.stderr.splitlines() == [f"error: {broken}/profiles.yml: {reason}"]
    schema = cli(sp.p, "schema")
    assert schema.returncode == 0 and "people" in schema.stdout and schema.stderr == ""

    sp.p.release()
    with duckdb_held(database):
        for command in ("plan", "sync", "status"):
            result = cli(sp.p, command)
            assert result.returncode == 1, (command, result.stdout, result.stderr)
            assert f"cannot use the warehouse of {sp.p.root} (target duckdb): IO Error" in result.stderr
            assert "Traceback" not in result.stderr
        checked = cli(sp.p, "validate")
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    assert "note: columns checked against the YAML docs only (what they miss is a warning): cannot use the " \
        "warehouse of" in checked.stdout


def test_a_destination_per_target_through_dbt_s_own_jinja(new_project, tmp_path):
    """docs/sync.md, destinations per target: dbt renders a sync's `destination` in the model's YAML with the target
    of the build (`"crm_{{ target.name }}"`), and dbt_studio.yml declares one destination per target; each target's
    build and sync send to its own destination, and validate checks the name the manifest holds."""
    from sync_runner.project.target import DbtTarget, run_dbt

    project = new_project("duckdb", name="per_target", source=PROJECT)
    sp = SyncProject(project, tmp_path)
    sp.add_prod_target(project.root / "target" / "prod.duckdb")
    sp.destinations(f"destinations:\n  files_duckdb: {{type: file, path: {tmp_path / 'dev'}}}\n"
                    f"  files_prod: {{type: file, path: {tmp_path / 'prod'}}}\n")
    sp.build({f"u{i}": person(i) for i in range(3)},
             [{"name": "to_files", "destination": "files_{{ target.name }}", "mode": "mirror", "mappings": MAPPINGS}])
    dev = cli(project, "sync", "--json")
    assert dev.returncode == 0, dev.stderr
    assert [r["destination"] for r in json.loads(dev.stdout)["syncs"]] == ["files_duckdb"]
    assert list(file_ops(tmp_path / "dev", "to_files")[-1]) == ["u0", "u1", "u2"]

    run_dbt(["build"], DbtTarget(project.root, project.root, "prod"))
    project.release()
    assert cli(project, "validate", "--target", "prod").returncode == 0
    on_prod = cli(project, "sync", "--target", "prod", "--json")
    assert on_prod.returncode == 0, on_prod.stderr
    assert [r["destination"] for r in json.loads(on_prod.stdout)["syncs"]] == ["files_prod"]
    assert list(file_ops(tmp_path / "prod", "to_files")[-1]) == ["u0", "u1", "u2"]
    assert len(file_ops(tmp_path / "dev", "to_files")) == 1  # the dev destination got nothing more
