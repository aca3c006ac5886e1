"""packages.yml for real: the package installed by `dbt deps` from a git repository at a tag, as users do.

The repository is a local bare one (file://) made from this checkout's dbt files, so the test is offline; the
project is a fresh one with a tiny model synced to a `file` destination by `dbt-studio sync`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

from sync_runner.core.paths import package_root
from sync_runner.project.target import DbtTarget, run_dbt

from helpers.cli_process import run_cli_process
from helpers.profiles import write_profile

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
    result = run_cli_process("sync", "--json", "--project-dir", str(root), timeout=300, env=dict(os.environ),
                             cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    [report] = json.loads(result.stdout)["syncs"]
    assert (report["sync"], report["status"], report["acknowledged"]) == ("vips_to_files", "success", 2)
    [out] = sorted((root / "syncs").glob("vips_to_files-*.jsonl"))
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["email"] for r in records) == ["ada@example.com", "grace@example.com"]


def _release(package: Path, tag: str, version: str | None) -> None:
    """Tag another release of the package in its work tree: its version macro says `version` (None: an older
    release that had no version macro)."""
    macro = package / "macros" / "utils" / "version.sql"
    if version is None:
        macro.unlink()
    else:
        text = macro.read_text(encoding="utf-8")
        assert "return('0.1.0')" in text
        macro.write_text(text.replace("return('0.1.0')", f"return('{version}')"), encoding="utf-8")
        project = package / "dbt_project.yml"
        project.write_text(project.read_text(encoding="utf-8").replace('version: "0.1.0"', f'version: "{version}"'),
                           encoding="utf-8")
    git("add", "-A", ".", cwd=package)
    git("commit", "-q", "-m", f"release {tag}", cwd=package)
    git("tag", tag, cwd=package)


def _warehouse_contents(root: Path) -> dict[str, list[tuple]]:
    """Every table of the project's DuckDB file with its rows (what a refused command must leave as it was)."""
    import duckdb
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    DuckDBConnectionManager.close_all_connections()
    con = duckdb.connect(str(root / "target" / "warehouse.duckdb"), read_only=True)
    try:
        tables = con.execute("select table_schema, table_name from information_schema.tables "
                             "order by 1, 2").fetchall()
        return {f"{s}.{t}": sorted(map(repr, con.execute(f'select * from "{s}"."{t}"').fetchall()))
                for s, t in tables}
    finally:
        con.close()


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli_process(*args, "--project-dir", str(root), timeout=300, env=dict(os.environ), cwd=root)


def test_a_package_of_another_release_is_named_in_one_line_and_changes_nothing(tmp_path):
    """The runner (dbt-studio 0.1.0 here) and the package installed by packages.yml release together: with another
    release installed, `sync` and `plan` print one line naming both versions and what to do, exit 2 (a
    configuration error) and change nothing; a package without the version macro (older than the check) is
    named the same way; pinning the matching release makes them work again."""
    from sync_runner import __version__

    assert __version__.split("+")[0] == "0.1.0", "the runner under test is this checkout, installed"
    repository = package_repository(tmp_path)
    work = tmp_path / "dbt-studio"
    git("checkout", "-q", "v0.1.0", cwd=work)
    git("checkout", "-q", "-b", "next", cwd=work)
    _release(work, "v0.2.0", "0.2.0")
    git("checkout", "-q", "-b", "old", "v0.1.0", cwd=work)
    _release(work, "v0.0.9", None)
    git("push", "-q", "--tags", str(repository), cwd=work)
    root = new_user_project(tmp_path, repository)
    packages = root / "packages.yml"
    where = DbtTarget(root, root, "duckdb")

    for tag, expected in (("v0.2.0", "dbt-studio 0.1.0 runs with the dbt_studio package 0.2.0 installed by "
                                     "packages.yml: pin the package to 0.1.0 (or install dbt-studio==0.2.0) "
                                     "and run dbt deps"),
                          ("v0.0.9", "the dbt_studio package installed by packages.yml is older than dbt-studio "
                                     "0.1.0 (it has no dbt_studio_version macro): pin the package to 0.1.0 and "
                                     "run dbt deps")):
        packages.write_text(f'packages:\n  - git: "{repository.as_uri()}"\n    revision: {tag}\n', encoding="utf-8")
        run_dbt(["deps"], where)
        run_dbt(["build"], where)
        before = _warehouse_contents(root)
        for command in ("sync", "plan"):
            result = _cli(root, command)
            assert result.returncode == 2, (command, tag, result.stdout, result.stderr)
            assert result.stderr.splitlines() == [f"error: {expected}"], (command, tag, result.stderr)
            assert result.stdout == ""
        assert _warehouse_contents(root) == before  # no state schema, run log or snapshot written
        assert not (root / "syncs").exists()

    packages.write_text(f'packages:\n  - git: "{repository.as_uri()}"\n    revision: v0.1.0\n', encoding="utf-8")
    run_dbt(["deps"], where)
    run_dbt(["parse"], where)  # the model is unchanged since its last build: no rebuild is needed
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    DuckDBConnectionManager.close_all_connections()
    planned = _cli(root, "plan", "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    [report] = json.loads(planned.stdout)["syncs"]
    assert (report["sync"], report["status"], report["planned"]["insert"]) == ("vips_to_files", "planned", 2)


def test_the_runner_its_installed_metadata_and_the_package_say_one_version():
    """`sync_runner.__version__` is the one written version: pip's metadata is built from it (pyproject's
    `attr:`), and the dbt package's dbt_project.yml and version macro, which the runner compares with its own at
    every connect, must say the same."""
    from importlib.metadata import version

    import yaml

    import sync_runner

    root = package_root()
    assert version("dbt-studio") == sync_runner.__version__
    project = yaml.safe_load((root / "dbt_project.yml").read_text(encoding="utf-8"))
    assert project["version"] == sync_runner.__version__
    macro = (root / "macros" / "utils" / "version.sql").read_text(encoding="utf-8")
    assert f"return('{sync_runner.__version__}')" in macro
