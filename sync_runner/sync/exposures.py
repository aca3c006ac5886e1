"""Syncs as dbt exposures: one `application` exposure per sync, so dbt's lineage and docs show where data goes.

`dbt-studio exposures --write` writes them into one YAML file of the project (default
models/dbt_studio_exposures.yml); `--check` says whether that file is current (for CI). Each exposure depends on
the synced model, names the destination in its label and, when the destination has a URL that holds no secret,
links to it. With the file in place, `dbt ls -s +exposure:<sync>` lists what the sync depends on and
`dbt-studio build -s +exposure:<sync>` builds exactly that and runs that sync.

The file must be the same wherever it is generated (a laptop with the secrets, CI without them), so destinations
are read with env vars as placeholders: a URL that holds one is left out, never filled in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from sync_runner.core.errors import DbtFailed, UserError
from sync_runner.project.artifacts import load_manifest
from sync_runner.project.target import DbtTarget, run_dbt
from sync_runner.sync.config import (
    SECRET_PLACEHOLDER,
    DestinationConfig,
    SyncConfig,
    load_destinations,
    load_exposures_settings,
    load_syncs,
)

HEADER = ("# Written by `dbt-studio exposures --write`: one exposure per dbt-studio sync. Do not edit by hand; run it\n"
          "# again after changing syncs (`dbt-studio exposures --check` fails while this file is stale).\n")


def destination_url(destination: DestinationConfig) -> str | None:
    """The destination's http(s) URL without credentials, query or fragment; None when it has none or when any
    part of it comes from an env var."""
    for key in ("url", "base_url"):
        value = destination.options.get(key)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            continue
        if SECRET_PLACEHOLDER.split("{")[0] in value or "{{" in value:
            return None
        parts = urlsplit(value)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return None


def exposure(sync: SyncConfig, owner: Mapping[str, Any]) -> dict[str, Any]:
    d = sync.destination
    out: dict[str, Any] = {
        "name": sync.name,
        "label": f"{d.name} ({d.type})",
        "type": "application",
        "description": f"dbt-studio sync of `{sync.model.name}` to the {d.type} destination `{d.name}` "
                       f"({sync.mode} mode, {len(sync.mappings)} mapped fields).",
    }
    url = destination_url(d)
    if url:
        out["url"] = url
    out["depends_on"] = [f"ref('{sync.model.name}')"]
    out["owner"] = dict(owner)
    return out


def render(syncs: Sequence[SyncConfig], owner: Mapping[str, Any]) -> str:
    """The exposures file's text: one exposure per sync, by name."""
    names = [s.name for s in syncs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"sync name(s) {', '.join(twice)} are used by more than one model: an exposure needs "
                        "a unique name")
    body = {"version": 2, "exposures": [exposure(s, owner) for s in sorted(syncs, key=lambda s: s.name)]}
    return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120)


@dataclass(frozen=True)
class ExposuresFile:
    path: Path
    text: str  # what it should hold

    @property
    def current(self) -> bool:
        return self.path.is_file() and self.path.read_text(encoding="utf-8") == self.text


def _parse(where: DbtTarget, path: Path) -> None:
    """`dbt parse` for a fresh manifest. An exposures file that refers to a model that is gone makes dbt fail:
    then parse once more without it (it is about to be rewritten)."""
    try:
        run_dbt(["parse"], where)
        return
    except DbtFailed:
        if not path.is_file():
            raise
    aside = path.with_name(path.name + ".parsing")
    path.rename(aside)
    try:
        run_dbt(["parse"], where)
    finally:
        aside.rename(path)


def exposures_file(where: DbtTarget, parse: bool = True) -> ExposuresFile:
    """What the project's exposures file should hold, from the syncs in a freshly parsed manifest."""
    settings = load_exposures_settings(where.project_dir, where.profiles_dir)
    path = where.project_dir / str(settings["path"])
    if parse:
        _parse(where, path)
    manifest = load_manifest(where.project_dir)
    destinations = load_destinations(where.project_dir, where.profiles_dir, placeholders=True)
    return ExposuresFile(path, render(load_syncs(manifest, destinations), settings["owner"]))
