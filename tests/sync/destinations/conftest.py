"""The DuckDB sync project the SaaS destination tests share."""

from __future__ import annotations

import pytest

from helpers.sync_project import PROJECT, SyncProject


@pytest.fixture(scope="module")
def dp(new_project, tmp_path_factory):
    project = new_project("duckdb", name="destinations", source=PROJECT)
    return SyncProject(project, tmp_path_factory.mktemp("destinations_out"))
