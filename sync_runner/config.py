"""Sync and destination configuration, validated once at the edge.

Destinations live in `dbt_studio.yml` next to dbt_project.yml (or in the profiles dir); values may use
`{{ env_var('NAME') }}` (and `env_var('NAME', 'default')`), as in dbt. Every value that came from an env var is
a secret: it is remembered by the `Redactor` and never printed. Syncs live on models, in
`config.meta.dbt_studio.syncs`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from .artifacts import Manifest, Node
from .destinations import REGISTRY
from .destinations.base import MODES, ON_DELETE
from .errors import UserError

CONFIG_FILE = "dbt_studio.yml"
_SYNC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Redactor:
    """Replaces every known secret in text with '****'."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def add(self, value: str) -> None:
        if value and len(value) >= 3:
            self.secrets.add(value)

    def __call__(self, text: Any) -> str:
        out = str(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            out = out.replace(secret, "****")
        return out


REDACT = Redactor()


@dataclass(frozen=True)
class DestinationConfig:
    name: str
    type: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class SyncConfig:
    """One sync of one model; `mappings` is {destination field: model column}."""

    name: str
    model: Node
    destination: DestinationConfig
    mode: str
    on_delete: str
    key_columns: tuple[str, ...]
    mappings: Mapping[str, str]
    state_schema: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """Tracked model columns: the mapped ones, each once, in a stable order."""
        return tuple(sorted(set(self.mappings.values()), key=str.lower))

    @property
    def fingerprint(self) -> str:
        """Changes when the primary key, the mappings or the mode change: the snapshot is then reset."""
        payload = json.dumps([list(self.key_columns), sorted(self.mappings.items()), self.mode], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def macro_args(self, state_schema: str) -> dict[str, Any]:
        return {"name": self.name, "state_schema": state_schema, "key_columns": list(self.key_columns),
                "columns": list(self.columns), "mode": self.mode, "on_delete": self.on_delete,
                "fingerprint": self.fingerprint}


def _render(value: Any, env: jinja2.Environment, where: str) -> Any:
    if isinstance(value, str) and "{{" in value:
        try:
            return env.from_string(value).render()
        except jinja2.TemplateError as exc:
            raise UserError(f"{where}: {REDACT(exc)}") from None
    if isinstance(value, dict):
        return {k: _render(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, env, where) for v in value]
    return value


def _env(path: Path) -> jinja2.Environment:
    def env_var(name: str, default: str | None = None) -> str:
        if name in os.environ:
            value = os.environ[name]
        elif default is not None:
            value = str(default)
        else:
            raise UserError(f"{path}: env var '{name}' is not set")
        REDACT.add(value)
        return value

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals["env_var"] = env_var
    return env


def find_config(project_dir: Path, profiles_dir: Path | None = None) -> Path | None:
    for directory in (project_dir, profiles_dir or Path(os.environ.get("DBT_PROFILES_DIR", "~/.dbt")).expanduser()):
        if (directory / CONFIG_FILE).is_file():
            return directory / CONFIG_FILE
    return None


def load_destinations(project_dir: Path, profiles_dir: Path | None = None) -> dict[str, DestinationConfig]:
    path = find_config(project_dir, profiles_dir)
    if path is None:
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("destinations", {}), dict):
        raise UserError(f"{path}: expected a mapping with a 'destinations' mapping")
    env = _env(path)
    out = {}
    for name, spec in (raw.get("destinations") or {}).items():
        where = f"{path}: destinations.{name}"
        if not isinstance(spec, dict) or "type" not in spec:
            raise UserError(f"{where}: needs a 'type' ({', '.join(sorted(REGISTRY))})")
        if spec["type"] not in REGISTRY:
            raise UserError(f"{where}: unknown type '{spec['type']}'; known types: {', '.join(sorted(REGISTRY))}")
        options = _render({k: v for k, v in spec.items() if k != "type"}, env, where)
        missing = [k for k in REGISTRY[spec["type"]].required if k not in options and "base_url" not in options]
        if missing:
            raise UserError(f"{where}: missing {', '.join(missing)}")
        out[str(name)] = DestinationConfig(str(name), str(spec["type"]), options)
    return out


@dataclass(frozen=True)
class DbtCloudConfig:
    """The `dbt_cloud:` block of dbt_studio.yml: which jobs' runs the webhook server syncs after."""

    account_id: str
    job_ids: tuple[str, ...]
    base_url: str
    token: str = field(repr=False)  # the service token, read from the env var `token_env`
    webhook_secret: str = field(repr=False)  # from the env var `webhook_secret_env`


DBT_CLOUD_KEYS = {"account_id": "an integer", "job_ids": "a list of job ids (empty: every job of the account)",
                  "base_url": "your access URL (default https://cloud.getdbt.com)",
                  "token_env": "the env var name of a service token (default DBT_CLOUD_API_TOKEN)",
                  "webhook_secret_env": "the env var name of the webhook secret (default DBT_CLOUD_WEBHOOK_SECRET)"}


def load_dbt_cloud(project_dir: Path, profiles_dir: Path | None = None,
                   environ: Mapping[str, str] | None = None) -> DbtCloudConfig:
    """Parse the `dbt_cloud:` block; every secret comes from an env var and goes to REDACT."""
    environ = os.environ if environ is None else environ
    path = find_config(project_dir, profiles_dir)
    if path is None:
        raise UserError(f"no {CONFIG_FILE} in {project_dir}: add a dbt_cloud block (account_id, job_ids, token_env)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    block = raw.get("dbt_cloud") if isinstance(raw, dict) else None
    if not isinstance(block, dict):
        raise UserError(f"{path}: needs a 'dbt_cloud' mapping (account_id, job_ids, base_url, token_env)")
    unknown = sorted(set(block) - set(DBT_CLOUD_KEYS))
    if unknown:
        hint = " (secrets only through env vars: token_env names one)" if {"token", "secret"} & set(unknown) else ""
        raise UserError(f"{path}: dbt_cloud: unknown key(s) {', '.join(map(str, unknown))}{hint}; "
                        f"known: {', '.join(DBT_CLOUD_KEYS)}")
    account = block.get("account_id")
    if not isinstance(account, (int, str)) or not str(account).strip().isdigit():
        raise UserError(f"{path}: dbt_cloud.account_id: must be {DBT_CLOUD_KEYS['account_id']}, not {account!r}")
    jobs = block.get("job_ids") or []
    if isinstance(jobs, (int, str)):
        jobs = [jobs]
    if not isinstance(jobs, list) or not all(str(j).strip().isdigit() for j in jobs):
        raise UserError(f"{path}: dbt_cloud.job_ids: must be {DBT_CLOUD_KEYS['job_ids']}, not {jobs!r}")
    base_url = str(block.get("base_url") or "https://cloud.getdbt.com").rstrip("/")
    if not base_url.startswith(("https://", "http://")):
        raise UserError(f"{path}: dbt_cloud.base_url: must be an http(s) URL, not {base_url!r}")
    secrets = {}
    for key, default in (("token_env", "DBT_CLOUD_API_TOKEN"), ("webhook_secret_env", "DBT_CLOUD_WEBHOOK_SECRET")):
        name = str(block.get(key) or default)
        value = environ.get(name, "")
        if not value:
            raise UserError(f"{path}: dbt_cloud.{key}: env var '{name}' is not set")
        REDACT.add(value)
        secrets[key] = value
    return DbtCloudConfig(str(account).strip(), tuple(str(j).strip() for j in jobs), base_url,
                          secrets["token_env"], secrets["webhook_secret_env"])


def sync_problems(node: Node, destinations: Mapping[str, DestinationConfig]) -> list[tuple[str, str]]:
    """(key, message) for each problem of the model's syncs; empty when all is well."""
    problems: list[tuple[str, str]] = []
    studio = node.studio
    if not isinstance(studio, dict):
        return [("", "must be a mapping (primary_key, syncs, ...)")]
    syncs = studio.get("syncs")
    if not syncs:
        return problems
    if not isinstance(syncs, list):
        return [("syncs", "must be a list of syncs (name, destination, mode, mappings)")]
    pk = studio.get("primary_key")
    if not pk:
        problems.append(("primary_key", "a model with syncs needs a primary_key"))
    elif not (isinstance(pk, str) or isinstance(pk, list) and all(isinstance(c, str) and c for c in pk)):
        problems.append(("primary_key", f"must be a column name or a list of column names, not {pk!r}"))
    columns = {c.lower() for c in node.columns}
    seen = set()
    for i, spec in enumerate(syncs if isinstance(syncs, list) else []):
        key = f"syncs[{i}]"
        if not isinstance(spec, dict):
            problems.append((key, "must be a mapping"))
            continue
        name = spec.get("name")
        if not isinstance(name, str) or not _SYNC_NAME.match(name):
            problems.append((f"{key}.name", "must be lower-case letters, digits and _ (it names state tables)"))
        elif name in seen:
            problems.append((f"{key}.name", f"duplicate sync name '{name}'"))
        seen.add(name)
        unknown = set(spec) - {"name", "destination", "mode", "on_delete", "mappings", "state_schema", "options"}
        if unknown:
            problems.append((key, f"unknown key(s) {', '.join(sorted(unknown))}"))
        dest = spec.get("destination")
        if dest not in destinations:
            known = ", ".join(sorted(destinations)) or f"none: add destinations to {CONFIG_FILE}"
            problems.append((f"{key}.destination", f"unknown destination '{dest}' (known: {known})"))
        mode = spec.get("mode", "upsert")
        on_delete = spec.get("on_delete", "delete" if mode == "mirror" else "nothing")
        if mode not in MODES:
            problems.append((f"{key}.mode", f"must be one of {', '.join(MODES)}, not {mode!r}"))
        if on_delete not in ON_DELETE:
            problems.append((f"{key}.on_delete", f"must be one of {', '.join(ON_DELETE)}, not {on_delete!r}"))
        if mode == "insert" and on_delete != "nothing":
            problems.append((f"{key}.on_delete", "insert mode never deletes: use on_delete: nothing"))
        if dest in destinations:
            cls = REGISTRY[destinations[dest].type]
            if mode in MODES and mode not in cls.modes:
                problems.append((f"{key}.mode", f"destination type '{cls.type}' does not support mode '{mode}'"))
            if on_delete in ON_DELETE and on_delete not in cls.on_delete:
                problems.append((f"{key}.on_delete", f"destination type '{cls.type}' does not support '{on_delete}'"))
        mappings = spec.get("mappings")
        if not isinstance(mappings, dict) or not mappings or not all(isinstance(v, str) for v in mappings.values()):
            problems.append((f"{key}.mappings", "must map destination fields to model columns: {field: column}"))
        elif columns:
            for field_name, column in mappings.items():
                if column.lower() not in columns:
                    problems.append((f"{key}.mappings.{field_name}",
                                     f"unknown column '{column}' of model '{node.name}' "
                                     f"(columns: {', '.join(node.columns)})"))
    return problems


def load_syncs(manifest: Manifest, destinations: Mapping[str, DestinationConfig]) -> list[SyncConfig]:
    """All syncs of the project; raises UserError naming the first problem."""
    out = []
    for node in manifest.studio_models():
        problems = sync_problems(node, destinations)
        if problems:
            key, message = problems[0]
            where = f"meta.dbt_studio.{key}" if key else "meta.dbt_studio"
            raise UserError(f"{node.config_file}: model '{node.name}': {where}: {message}")
        pk = node.studio.get("primary_key")
        key_columns = (pk,) if isinstance(pk, str) else tuple(pk or ())
        for spec in node.studio.get("syncs") or []:
            mode = spec.get("mode", "upsert")
            out.append(SyncConfig(
                name=spec["name"], model=node, destination=destinations[spec["destination"]], mode=mode,
                on_delete=spec.get("on_delete", "delete" if mode == "mirror" else "nothing"),
                key_columns=key_columns, mappings=dict(spec["mappings"]), state_schema=spec.get("state_schema"),
                options=dict(spec.get("options") or {}),
            ))
    return out
