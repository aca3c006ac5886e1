"""Syncs as dbt exposures: `dbt-studio exposures --write` then dbt itself reads them (`dbt ls -s +exposure:x`
lists the synced model's upstream), `--check` fails once the syncs change, and `dbt-studio build -s
+exposure:x` builds that upstream and runs exactly that sync — on DuckDB and Snowflake (fakesnow)."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner

from sync_runner.cli import cli

from helpers import ADAPTERS
from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, file_ops, person

SECRET = "exposures-SECRET-31c9"


@pytest.fixture(scope="module", params=ADAPTERS)
def sp(request, new_project, tmp_path_factory):
    os.environ["EXPOSURES_KEY"] = SECRET
    project = new_project(request.param, name="exposures", source=PROJECT)
    sp = SyncProject(project, tmp_path_factory.mktemp(f"exposures_{request.param}"))
    sp.destinations(f"""\
destinations:
  files:
    type: file
    path: {sp.tmp}
  crm:
    type: http
    url: https://user:pw@crm.example.com:8443/api/records?team=growth
    headers: {{Authorization: "Bearer {{{{ env_var('EXPOSURES_KEY') }}}}"}}
  keyed:
    type: http
    url: "https://hooks.example.com/in?key={{{{ env_var('EXPOSURES_KEY') }}}}"
exposures:
  owner: {{name: Growth data team, email: growth-data@example.com}}
""")
    return sp


def _cli(sp: SyncProject, *args: str):
    sp.p.release()
    return CliRunner().invoke(cli, [*args, "--project-dir", str(sp.p.root), "--profiles-dir", str(sp.p.root)])


def test_write_check_and_dbt_reads_the_exposures(sp):
    syncs = [{"name": "people_files", "destination": "files", "mappings": MAPPINGS},
             {"name": "people_crm", "destination": "crm", "mode": "mirror", "mappings": MAPPINGS},
             {"name": "people_keyed", "destination": "keyed", "mappings": {"id": "user_id"}}]
    sp.build({"u1": person(1), "u2": person(2)}, syncs)
    path = sp.p.root / "models" / "dbt_studio_exposures.yml"
    path.unlink(missing_ok=True)

    assert _cli(sp, "exposures", "--check").exit_code == 1  # no file yet
    written = _cli(sp, "exposures", "--write")
    assert written.exit_code == 0 and "wrote" in written.output, written.output
    owner = {"name": "Growth data team", "email": "growth-data@example.com"}
    expected = [
        {"name": "people_crm", "label": "crm (http)", "type": "application",
         "description": "dbt-studio sync of `people` to the http destination `crm` (mirror mode, 4 mapped fields).",
         "url": "https://crm.example.com:8443/api/records", "depends_on": ["ref('people')"], "owner": owner},
        {"name": "people_files", "label": "files (file)", "type": "application",
         "description": "dbt-studio sync of `people` to the file destination `files` (upsert mode, 4 mapped "
                        "fields).", "depends_on": ["ref('people')"], "owner": owner},
        {"name": "people_keyed", "label": "keyed (http)", "type": "application",  # its URL holds a secret: no url
         "description": "dbt-studio sync of `people` to the http destination `keyed` (upsert mode, 1 mapped "
                        "fields).", "depends_on": ["ref('people')"], "owner": owner},
    ]
    text = path.read_text()
    assert yaml.safe_load(text) == {"version": 2, "exposures": expected}
    assert SECRET not in text and "pw" not in text and "team=growth" not in text

    assert _cli(sp, "exposures", "--check").exit_code == 0
    del os.environ["EXPOSURES_KEY"]  # CI without the secrets gets the same file
    try:
        assert _cli(sp, "exposures", "--check").exit_code == 0
    finally:
        os.environ["EXPOSURES_KEY"] = SECRET

    listed = sp.p.dbt("ls", "-s", "+exposure:people_files", "--output", "name").result
    assert sorted(listed) == ["people", "people_files", "people_rows"]

    # a sync more: the file is stale until written again
    sp.declare([*syncs, {"name": "people_more", "destination": "files", "mappings": MAPPINGS}])
    stale = _cli(sp, "exposures", "--check")
    assert stale.exit_code == 1 and "stale" in stale.output
    assert _cli(sp, "exposures", "--write").exit_code == 0
    assert "people_more" in [e["name"] for e in yaml.safe_load(path.read_text())["exposures"]]

    # build exactly the exposure's upstream, then only its sync (not the model's three others)
    built = _cli(sp, "build", "-s", "+exposure:people_files", "--json")
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout[built.stdout.index("{"):])  # stdout alone: a library's warning goes to stderr
    assert sorted(u.split(".")[-1] for u in report["dbt"]["built"]) == ["people", "people_rows"]
    assert [r["sync"] for r in report["syncs"]] == ["people_files"]
    assert report["syncs"][0]["status"] == "success"
    assert len(file_ops(sp.tmp, "people_files")) == 1 and not file_ops(sp.tmp, "people_more")
