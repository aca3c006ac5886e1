"""Where things live on disk: the dbt package, the plant-store example, a project's dbt_studio.yml; and how the
files the runner keeps are written."""

from __future__ import annotations

import contextlib
import os
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


CONFIG_FILE = "dbt_studio.yml"


def find_config(project_dir: Path, profiles_dir: Path | None = None) -> Path | None:
    """The project's dbt_studio.yml: in the project dir, else in the profiles dir (as profiles.yml is found)."""
    for directory in (project_dir, profiles_dir or Path(os.environ.get("DBT_PROFILES_DIR", "~/.dbt")).expanduser()):
        if (directory / CONFIG_FILE).is_file():
            return directory / CONFIG_FILE
    return None


def write_whole(path: Path, data: bytes, make_folder: bool = False) -> bool:
    """Write `data` to `path` whole or not at all, through a temporary file of this process and thread renamed into
    place (other commands, and `serve`'s threads, read and write the same folder); whether it was written. A
    folder that cannot be written (a read-only install or target dir) writes nothing and leaves nothing: what is
    kept this way is only ever a cache, made again by the next command."""
    import threading  # (here: every command imports this module, few write)

    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        return False
    return True
