"""packages.yml for real: the package installed by `dbt deps` from a git repository at a tag, as users do.

The repository is a local bare one (file://) made from this checkout's dbt files, so the test is offline; the
project is a fresh one with a tiny model synced to a `file` destination by `dbt-studio sync`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from sync_runner.invoke import DbtTarget, run_dbt
from sync_runner.paths import package_root

from conftest import write_profile

GIT_ENV = {"GIT_AUTHOR_NAME": "dbt-studio tests", "GIT_AUTHOR_EMAIL": "tests@example.com",
           "GIT_COMMITTER_NAME": "dbt-studio tests", "GIT_COMMITTER_EMAIL": "tests@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(cwd)}  # no user or system git config
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def package_repository(tmp: Path) -> Path:
    """A bare git repository of the package's dbt files, tagged v0.1.0."""
    source = package_root()
    work = tmp / "dbt-studio"
    work.mkdir()
    shutil.copy2(source / "dbt_project.yml", work / "dbt_project.yml")
    shutil.copytree(source / "macros", work / "macros")
    if (source / "models").is_dir() and any(p.is_file() for p in (source / "models").rglob("*")):
        shutil.copytree(source / "models", work / "models")
    git("init", "-q", "-b", "main", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "dbt-studio package", cwd=work)
    git("tag", "v0.1.0", cwd=work)
    # a later commit on main: dbt deps must install the tag, not the branch head
    (work / "macros" / "after_the_tag.sql").write_text("{% macro after_the_tag() %}{% endmacro %}\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "after the tag", cwd=work)
    bare = tmp / "dbt-studio.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp)
    return bare


def new_user_project(tmp: Path, repository: Path) -> Path:
    root = tmp / "shop"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(textwrap.dedent("""\
        name: shop
        version: "1.0.0"
        config-version: 2
        profile: plant_store
        model-paths: ["models"]
        """), encoding="utf-8")
    (root / "packages.yml").write_text(textwrap.dedent(f"""\
        packages:
          - git: "{repository.as_uri()}"
            revision: v0.1.0
        """), encoding="utf-8")
    (root / "models" / "vip_customers.sql").write_text(textwrap.dedent("""\
        {{ config(materialized='table', meta={'dbt_studio': {'primary_key': 'customer_id', 'syncs': [
            {'name': 'vips_to_files', 'destination': 'files', 'mode': 'mirror',
             'mappings': {'external_id': 'customer_id', 'email': 'email'}}]}}) }}

        select * from (values (1, 'ada@example.com'), (2, 'grace@example.com')) as t(customer_id, email)
        """), encoding="utf-8")
    (root / "dbt_studio.yml").write_text("destinations:\n  files:\n    type: file\n    path: syncs\n",
                                         encoding="utf-8")
    write_profile(root, "duckdb", None)
    return root


def test_the_package_installs_from_a_git_tag_and_syncs(tmp_path):
    repository = package_repository(tmp_path)
    root = new_user_project(tmp_path, repository)
    where = DbtTarget(root, root, "duckdb")

    run_dbt(["deps"], where)
    installed = root / "dbt_packages" / "dbt_studio"
    assert (installed / "dbt_project.yml").is_file() and (installed / "macros" / "sync").is_dir()
    assert not (installed / "macros" / "after_the_tag.sql").exists()
    lock = (root / "package-lock.yml").read_text(encoding="utf-8")
    assert repository.as_uri() in lock and git("rev-parse", "v0.1.0^{commit}", cwd=repository) in lock

    run_dbt(["build"], where)
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    DuckDBConnectionManager.close_all_connections()  # let the CLI process open the database file
    result = subprocess.run([sys.executable, "-c", "from sync_runner.cli import main; main()", "sync", "--json",
                             "--project-dir", str(root)], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ), cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    [report] = json.loads(result.stdout)["syncs"]
    assert (report["sync"], report["status"], report["acknowledged"]) == ("vips_to_files", "success", 2)
    [out] = sorted((root / "syncs").glob("vips_to_files-*.jsonl"))
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["email"] for r in records) == ["ada@example.com", "grace@example.com"]
