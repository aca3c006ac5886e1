"""project/target.py: which errors are the warehouse's (one line for the user) and which are bugs (a traceback)."""

from __future__ import annotations

import duckdb
import pytest
from dbt_common.exceptions import CompilationError, DbtRuntimeError

from sync_runner.core.redact import REDACT
from sync_runner.project.target import DbtTarget, from_warehouse, unreachable


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
