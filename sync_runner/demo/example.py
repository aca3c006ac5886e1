"""Working copies of the plant-store example, for the demo and for tests.

The example in the checkout installs the package with `local: ../`; a copy elsewhere gets its packages.yml
pointed at the package's absolute path so `dbt deps` installs the same code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sync_runner.core.paths import example_root, package_root

_SKIP = ("target", "dbt_packages", "logs", "syncs", ".user.yml", "package-lock.yml")


def copy_example(dest: Path | str, package_dir: Path | None = None) -> Path:
    """Copy the example into `dest` (created if needed; generated folders are left out) and return it."""
    return copy_project(example_root(), dest, package_dir)


def copy_project(src: Path, dest: Path | str, package_dir: Path | None = None) -> Path:
    """Copy a dbt project that uses the package into `dest`, pointing its packages.yml at the package."""
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name in _SKIP:
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_SKIP))
        else:
            shutil.copy2(item, target)
    package = (package_dir or package_root()).resolve()
    (dest / "packages.yml").write_text(f"packages:\n  - local: {package.as_posix()}\n", encoding="utf-8")
    return dest
