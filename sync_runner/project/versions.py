"""The runner and the dbt package release together: which releases meet, and the one line when they do not."""

from __future__ import annotations

from sync_runner.core.errors import UserError


class PackageVersionError(UserError):
    """The dbt package installed by packages.yml is another release than the runner: every command that uses the
    warehouse stops with this one line (exit 2) before any sync, as every sync would need the other macros."""


def check_versions(runner: str, package: str | None) -> None:
    """The runner and the dbt package release together: a mismatch is named in one line."""
    if package is None:
        raise PackageVersionError(f"the dbt_studio package installed by packages.yml is older than dbt-studio "
                                  f"{runner} (it has no dbt_studio_version macro): pin the package to {runner} and "
                                  "run dbt deps")
    if package.split("+")[0] != runner.split("+")[0]:
        raise PackageVersionError(f"dbt-studio {runner} runs with the dbt_studio package {package} installed by "
                                  f"packages.yml: pin the package to {runner} (or install dbt-studio=={package}) "
                                  "and run dbt deps")
