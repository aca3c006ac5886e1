"""Which versions of which distributions are installed, without importlib.metadata.

A kept command fingerprints the versions of dbt-studio, dbt and the drivers (project/compiled.py) and of PyYAML
(core/yaml_text.py) on every run, before it does anything else.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Sequence


def versions(names: Sequence[str]) -> dict[str, str]:
    """The installed version of each distribution ("-" when it is not installed), read from the names of the
    `<name>-<version>.dist-info` folders on sys.path: one listing per path entry, where importlib.metadata
    parses each distribution's METADATA (7 lookups took 6-13 ms, the largest share of a kept command's own
    work). The first folder of a name wins, as for imports. importlib.metadata (15 ms to import) is asked
    only of a name the listing cannot settle: one with an egg-info install, or any name when a sys.path entry
    could not be listed (a zip file); a name with neither is not installed."""
    wanted = {_normalized(n): n for n in names}
    found: dict[str, str] = {}
    eggs: set[str] = set()
    unlisted = False
    for entry in sys.path:
        try:
            listed = os.listdir(entry or ".")
        except OSError:  # a zip file, a path hook's name, a folder gone
            unlisted = unlisted or os.path.isfile(entry)
            continue
        for item in listed:
            stem, dot, suffix = item.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info", "egg", "egg-link"):
                continue
            name, _, release = stem.partition("-")
            key = _normalized(name)
            if key not in wanted or wanted[key] in found:
                continue
            if suffix == "dist-info" and release:
                found[wanted[key]] = release
            else:
                eggs.add(key)
    for name in names:
        if name in found:
            continue
        found[name] = "-"
        if unlisted or _normalized(name) in eggs:
            from importlib import metadata

            with contextlib.suppress(metadata.PackageNotFoundError):
                found[name] = metadata.version(name)
    return {name: found[name] for name in names}


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (dbt-core, dbt_core and DBT.Core are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()
