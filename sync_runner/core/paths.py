"""Where the dbt package and the plant-store example live on disk."""

from __future__ import annotations

from pathlib import Path

from sync_runner.core.errors import UserError

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def package_root() -> Path:
    """The directory holding the `dbt_studio` dbt package (its dbt_project.yml).

    The Python distribution is installed editable from a checkout (`pip install -e .`), so the dbt package is
    the checkout itself; a user project normally installs it through packages.yml instead.
    """
    if (_SOURCE_ROOT / "dbt_project.yml").is_file() and (_SOURCE_ROOT / "macros").is_dir():
        return _SOURCE_ROOT
    raise UserError(
        f"the dbt_studio dbt package was not found next to {Path(__file__).parent}: "
        "install dbt-studio from a checkout (pip install -e .)"
    )


def example_root() -> Path:
    """The plant-store example project (integration_tests/ of the checkout)."""
    path = package_root() / "integration_tests"
    if not (path / "dbt_project.yml").is_file():
        raise UserError(f"the plant-store example is missing from {path}")
    return path
