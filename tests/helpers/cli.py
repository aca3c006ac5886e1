"""`dbt-studio` run in the test's process, as a user's shell would run it: exit code, stdout and stderr."""

from __future__ import annotations

import sys
import warnings

import pytest

from sync_runner.cli import main


def run_cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `dbt-studio <args>`; an exception that escapes main() fails the test."""
    monkeypatch.setattr(sys, "argv", ["dbt-studio", *args])
    capsys.readouterr()
    try:
        with warnings.catch_warnings():  # fakesnow's own note on its Arrow path (a Snowflake server has none)
            warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
