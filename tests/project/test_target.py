"""project/target.py: which errors are the warehouse's (one line for the user) and which are bugs (a traceback)."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest
from dbt_common.exceptions import CompilationError, DbtRuntimeError

from sync_runner.core.redact import REDACT
from sync_runner.project.target import DbtTarget, connection_closed, from_warehouse, held_elsewhere, unreachable

from helpers.held_file import duckdb_held


@pytest.mark.parametrize("exc", [
    duckdb.IOException('Could not set lock on file "x.duckdb": Conflicting lock is held'),
    duckdb.CatalogException("Table with name t does not exist"),
    DbtRuntimeError("Could not find profile named 'shop'"),
    CompilationError("'dbt_studio' is undefined"),
    ConnectionRefusedError(111, "Connection refused"),
    PermissionError(13, "Permission denied"),
])
def test_errors_of_the_driver_dbt_or_the_system_are_the_warehouses(exc):
    assert from_warehouse(exc)


@pytest.mark.parametrize("exc", [KeyError("main_id"), IndexError("list index out of range"),
                                 AttributeError("'NoneType' object has no attribute 'name'"), TypeError("x"),
                                 RuntimeError("no direct connection"), ValueError("bad")])
def test_errors_of_our_own_code_are_not(exc):
    assert not from_warehouse(exc)


def test_the_warehouse_error_is_one_redacted_line_naming_project_and_target(tmp_path):
    REDACT.add("s3cret-pw")  # as a value read with env_var is
    where = DbtTarget(project_dir=tmp_path, profiles_dir=tmp_path, target="prod")
    error = unreachable(where, duckdb.IOException("login failed for s3cret-pw\nsecond line"))
    assert str(error) == f"cannot use the warehouse of {tmp_path} (target prod): login failed for ****"


GOOD_PROFILE = """\
shop:
  target: dev
  outputs:
    dev: {type: duckdb, path: "target/shop.duckdb"}
    ci: {type: duckdb, path: "target/ci.duckdb"}
"""


@pytest.mark.parametrize(("profile", "target", "reason"), [
    (GOOD_PROFILE.replace("type: duckdb, path: \"target/shop", "type: duckbd, path: \"target/shop"), "dev",
     'Credentials in profile "shop", target "dev" invalid: Could not find adapter type duckbd!'),
    (GOOD_PROFILE.replace("target: dev", "target: prod"), "prod",
     "The profile 'shop' does not have a target named 'prod'. The valid target names for this profile are: dev, ci"),
    ("shop:\n  target: dev\n  outputs: [\n", "default",
     "dbt encountered an error while trying to read your profiles.yml file. Syntax error near line 4"),
], ids=["unknown adapter", "unknown target", "not YAML"])
def test_a_bad_profile_is_said_in_dbt_s_words_not_its_header(tmp_path, profile, target, reason):
    """dbt's errors start with a header line ("Runtime Error") and nest another error's header at the end of a
    line: the one line names what is wrong, after the target it is for, by name (the profile's default target's
    name when there is no --target; "default" only when profiles.yml cannot be read)."""
    from sync_runner.project.warehouse import Warehouse

    (tmp_path / "dbt_project.yml").write_text("name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n")
    (tmp_path / "profiles.yml").write_text(profile)
    where = DbtTarget(project_dir=tmp_path, profiles_dir=tmp_path, target=None)
    with pytest.raises(Exception) as raised:
        Warehouse(where)
    assert from_warehouse(raised.value)
    assert str(unreachable(where, raised.value)) == (
        f"cannot use the warehouse of {tmp_path} (target {target}): {reason}")


def test_a_file_another_process_holds_says_what_to_do(tmp_path):
    where = DbtTarget(project_dir=tmp_path, profiles_dir=tmp_path, target=None)
    held = duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held in '
                              "/usr/bin/python3 (PID 4242). See also https://duckdb.org/docs/current/connect/concurrency")
    line = str(unreachable(where, held))
    assert line.startswith(f"cannot use the warehouse of {tmp_path} (target default): IO Error: Could not set lock")
    assert "(PID 4242)" in line and line.endswith("lets go of the file after 3 s without a query, by default)")
    assert "\n" not in line


def test_who_holds_a_duckdb_file_in_words_a_person_can_act_on(tmp_path):
    """The studio says who holds the file (the PID and the program's name, not its path), read from DuckDB's own
    refusal; any other error is not a held file."""
    database = tmp_path / "w.duckdb"
    with duckdb_held(database) as holder, pytest.raises(duckdb.IOException) as raised:
        duckdb.connect(str(database))
    program = Path(sys.executable).resolve().name  # DuckDB names the executable the link leads to
    assert held_elsewhere(raised.value) == f"another process (PID {holder.pid}, {program}) has the DuckDB file open"
    assert held_elsewhere(duckdb.CatalogException("Table with name people does not exist!")) is None
    assert held_elsewhere(duckdb.IOException('Could not set lock on file "x": Conflicting lock is held')) == \
        "another process has the DuckDB file open"


def test_a_duckdb_connection_closed_under_a_statement_is_told_apart_through_what_wraps_it():
    con = duckdb.connect()
    cursor = con.cursor()
    con.close()  # what closing dbt-duckdb's one database does to every connection to it
    with pytest.raises(duckdb.Error) as closed:
        cursor.execute("select 1")
    try:
        raise DbtRuntimeError(str(closed.value)) from closed.value  # as dbt-duckdb's handler wraps it
    except DbtRuntimeError as wrapped:
        assert connection_closed(closed.value) and connection_closed(wrapped)
    assert not connection_closed(DbtRuntimeError("Connection already closed!"))  # the words alone are not enough
    assert not connection_closed(duckdb.CatalogException("Table with name t does not exist"))
