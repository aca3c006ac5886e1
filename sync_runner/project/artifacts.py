"""Typed, tolerant readers of dbt's manifest.json and run_results.json.

Plain JSON plus small accessors on purpose: dbt's own artifact classes are strict about schema versions and
break when a user's dbt is newer or older than ours; we only need a handful of fields. Every command reads the
manifest first, and a real project's runs to tens of megabytes, so it is parsed with orjson (2.5x faster than
`json` on the demo's 1.1 MB), falling back to `json` for what orjson refuses and dbt may write (NaN, integers
beyond 64 bits).

Most of a manifest is what the runner never reads (every macro of dbt and the packages, compiled code, docs), so
the fields it does read are kept beside it in `dbt_studio_manifest.json` under the SHA-256 of manifest.json's
bytes: while those bytes are unchanged a command reads that instead (on the demo, 0.6 ms to hash and a few KB to
parse instead of 1 MB). Any change to manifest.json gives another digest and a fresh read; the kept file is only
ever a copy of fields of the manifest it names, and it names which fields it holds (a copy written by a release
that read other fields is parsed afresh). It is written by `keep()` once a command has done its work (a
sync run, a validation without problems), so a command refused for bad input leaves the project as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from sync_runner.core import yaml_text
from sync_runner.core.errors import UserError
from sync_runner.core.fields import closest
from sync_runner.core.paths import write_whole

RELATION_TYPES = ("model", "seed", "snapshot")  # the nodes dbt builds a relation for, which syncs can read


@dataclass(frozen=True)
class Node:
    """A model or seed as the manifest describes it."""

    unique_id: str
    name: str
    resource_type: str
    package_name: str
    original_file_path: str
    patch_path: str | None
    relation_name: str | None
    database: str | None
    schema: str
    alias: str
    materialized: str | None
    columns: tuple[str, ...]
    studio: dict[str, Any] = field(default_factory=dict)
    audience: Any = None  # the arguments `dbt_studio.audience` recorded (config.meta.dbt_studio_audience)
    checksum: str | None = None  # of the node's definition: tells whether it changed since it was built
    # where `columns` came from: "documented" (the YAML docs) or "warehouse" (the relation, see with_columns)
    columns_source: str = "documented"  # "warehouse", "documented" (not built yet) or "unread" (Manifest.unread)
    column_types: dict[str, str] = field(default_factory=dict)  # lower-case name -> the relation's type
    number_columns: frozenset[str] = frozenset()  # lower-case names of its number-typed columns (the package's rule)
    meta_in_sql: bool = False  # its SQL declares a dbt_studio meta key in a config() call

    @property
    def label(self) -> str:
        """How messages name it: "model 'people'", "snapshot 'people_history'", "seed 'plans'"."""
        return f"{self.resource_type or 'model'} '{self.name}'"

    @property
    def config_file(self) -> str:
        """The file a user edits to change this node's dbt_studio meta: its SQL when the meta is declared in the
        model's own `config(meta={'dbt_studio': ...})`, else its YAML patch if it has one, else its SQL. (A model
        with both pointed at the YAML file for a mistake made in the SQL.)"""
        if self.patch_path and not self.meta_in_sql:
            return self.patch_path.split("://", 1)[-1]
        return self.original_file_path


@dataclass(frozen=True)
class Manifest:
    """The fields of manifest.json the runner reads (read from the kept copy while manifest.json's bytes are
    unchanged)."""

    path: Path
    invocation_id: str | None
    project_name: str | None
    adapter_type: str | None
    nodes: dict[str, Node]
    # name -> a model, seed or snapshot dbt keeps under "disabled" (enabled: false): not built, so nothing can read it
    disabled: dict[str, Node] = field(default_factory=dict)
    # the runner's fields of a freshly parsed manifest, for `keep()` to write beside it (None: nothing to keep)
    unkept: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    sha256: str | None = field(default=None, compare=False, repr=False)  # of the bytes these fields came from

    def models(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.resource_type == "model"]

    def studio_models(self) -> list[Node]:
        """Models, snapshots and seeds that carry `config.meta.dbt_studio`, in name order: each is a relation a
        sync can read (a snapshot's current rows, with a `filter` on `dbt_valid_to is null`)."""
        return sorted((n for n in self.nodes.values() if n.studio and n.resource_type in RELATION_TYPES),
                      key=lambda n: n.name)

    def audience_models(self) -> list[Node]:
        """Models built by `dbt_studio.audience`, in name order."""
        return sorted((n for n in self.models() if n.audience is not None), key=lambda n: n.name)

    def with_columns(self, columns: dict[str, list[tuple[str, str, bool]]]) -> Manifest:
        """This manifest with the given nodes' columns (unique_id -> (name, type, is a number) in order) taken from
        the warehouse: the relation is the truth for columns; YAML docs only stand in for models not built yet."""
        nodes = {uid: replace(n, columns=tuple(name for name, _, _ in columns[uid]), columns_source="warehouse",
                              column_types={name.lower(): str(kind) for name, kind, _ in columns[uid]},
                              number_columns=frozenset(name.lower() for name, _, num in columns[uid] if num))
                 if columns.get(uid) else n
                 for uid, n in self.nodes.items()}
        return replace(self, nodes=nodes)

    def unread(self) -> Manifest:
        """This manifest when the warehouse could not be read: the YAML docs stand in for every model's columns,
        and a check that used them says so (not "not built yet": the relation may well be built)."""
        return replace(self, nodes={uid: replace(n, columns_source="unread") for uid, n in self.nodes.items()})

    def by_name(self, name: str) -> Node | None:
        for node in self.nodes.values():
            if node.resource_type in RELATION_TYPES and node.name == name:
                return node
        return None

    def disabled_phrase(self, name: str) -> str | None:
        """"model 'orders' is disabled (enabled: false, models/orders.sql)" when `name` is a model, seed or
        snapshot dbt keeps under the manifest's "disabled" key and no enabled node has that name; else None."""
        node = self.disabled.get(name)
        if node is None or self.by_name(name) is not None:
            return None
        where = f", {node.original_file_path}" if node.original_file_path else ""
        return f"{node.resource_type} '{name}' is disabled (enabled: false{where})"

    def disabled_phrases(self) -> dict[str, str]:
        """name -> `disabled_phrase(name)` for every disabled node: what the package's schema macros say of a
        name that no enabled model has (the `disabled` argument of `_schema`)."""
        return {name: phrase for name in self.disabled if (phrase := self.disabled_phrase(name))}

    def unknown_model(self, name: str, remedy: str = "") -> str:
        """Why `name` resolves to no node a sync, audience or the declared schema can use, in a phrase: it is
        disabled (with where, and `remedy`, e.g. "enable it or remove the sync"), or it is unknown (with a
        did-you-mean among the enabled models, seeds and snapshots)."""
        phrase = self.disabled_phrase(name)
        if phrase is not None:
            return phrase + (f"; {remedy}" if remedy else "")
        guess = closest(name, sorted({n.name for n in self.nodes.values() if n.resource_type in RELATION_TYPES}))
        return f"unknown model '{name}'" + (f" (did you mean '{guess}'?)" if guess else "")


@dataclass(frozen=True)
class RunResult:
    """One node's result in run_results.json."""

    unique_id: str
    status: str
    relation_name: str | None
    message: str | None


@dataclass(frozen=True)
class RunResults:
    """run_results.json of the last dbt command: which nodes it built, and for which target."""

    path: Path
    invocation_id: str | None
    command: str | None
    results: dict[str, RunResult]
    target: str | None = None  # the --target the command ran with (None: the profile's default)


def _read_bytes(path: Path, what: str, project_dir: Path) -> bytes:
    if not path.is_file():
        raise UserError(f"no target/{what} in {project_dir}: run dbt build first")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: not a readable dbt artifact ({exc.__class__.__name__}: {exc})") from None


def _read_json(path: Path, what: str, project_dir: Path) -> dict[str, Any]:
    return _parse_json(_read_bytes(path, what, project_dir), path)


def _parse_json(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable dbt artifact ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a dbt artifact (expected a JSON object)")
    return data


def _node(raw: dict[str, Any]) -> Node:
    config = raw.get("config") or {}
    meta = config.get("meta") or raw.get("meta") or {}
    studio = meta.get("dbt_studio") if isinstance(meta, dict) else None
    return Node(
        unique_id=raw["unique_id"],
        name=raw.get("name", ""),
        resource_type=raw.get("resource_type", ""),
        package_name=raw.get("package_name", ""),
        original_file_path=raw.get("original_file_path", ""),
        patch_path=raw.get("patch_path"),
        relation_name=raw.get("relation_name"),
        database=raw.get("database"),
        schema=raw.get("schema", ""),
        alias=raw.get("alias") or raw.get("name", ""),
        materialized=config.get("materialized"),
        columns=tuple((raw.get("columns") or {}).keys()),
        studio=studio if studio is not None else {},
        audience=meta.get("dbt_studio_audience") if isinstance(meta, dict) else None,
        checksum=(raw.get("checksum") or {}).get("checksum") if isinstance(raw.get("checksum"), dict) else None,
        meta_in_sql=bool(raw.get("meta_in_sql")),
    )


SLIM_FILE = "dbt_studio_manifest.json"
_NODE_KEYS = ("unique_id", "name", "resource_type", "package_name", "original_file_path", "patch_path",
              "relation_name", "database", "schema", "alias", "meta", "checksum")
_CONFIG_KEYS = ("materialized", "meta")
# which fields a kept copy holds: a copy written by a release that read other fields is not this one's to use
_LAYOUT = ",".join(_NODE_KEYS) + ";" + ",".join(_CONFIG_KEYS) + ";columns;disabled;meta_in_sql"
# a dbt_studio key written in a model's SQL, as in `config(meta={'dbt_studio': {...}})` (not dbt_studio_audience,
# nor a `dbt_studio.audience(...)` macro call)
_META_IN_SQL = re.compile(r"""['"]dbt_studio['"]\s*:""")


def _slim_node(raw: dict[str, Any]) -> dict[str, Any]:
    """The fields of a manifest node that `_node` reads, and nothing else."""
    config = raw.get("config") or {}
    slim = {k: raw[k] for k in _NODE_KEYS if k in raw}
    slim["config"] = {k: config[k] for k in _CONFIG_KEYS if k in config}
    slim["columns"] = dict.fromkeys(raw.get("columns") or {}, None)
    return slim


def _meta_in_sql(raw: dict[str, Any], project_dir: Path, texts: dict[Path, str]) -> bool:
    """Whether a node's dbt_studio meta comes from its SQL's config() rather than its YAML patch: its SQL writes a
    dbt_studio key and its YAML file does not mention dbt_studio (a config() behind an `if` the YAML overrides, as
    in a model that takes its syncs from a var, stays the YAML's). `texts`: the YAML files read so far."""
    if not _META_IN_SQL.search(str(raw.get("raw_code") or "")):
        return False
    patch = raw.get("patch_path")
    if not patch:
        return True
    path = project_dir / str(patch).split("://", 1)[-1]
    if path not in texts:
        try:
            texts[path] = path.read_text(encoding="utf-8")
        except OSError:  # a package's file, or one moved since: leave it to the YAML patch
            texts[path] = "dbt_studio"
    return "dbt_studio" not in texts[path]


def _slim_manifest(path: Path, project_dir: Path) -> tuple[dict[str, Any], bool]:
    """The runner's fields of manifest.json, and whether they came from the copy kept under the digest of its
    bytes (see the module doc)."""
    raw = _read_bytes(path, "manifest.json", project_dir)
    digest = hashlib.sha256(raw).hexdigest()
    with contextlib.suppress(OSError, ValueError):
        slim = orjson.loads((path.parent / SLIM_FILE).read_bytes())
        if isinstance(slim, dict) and slim.get("sha256") == digest and slim.get("layout") == _LAYOUT:
            return slim, True
    data = _parse_json(raw, path)
    metadata = data.get("metadata") or {}
    nodes: dict[str, dict[str, Any]] = {}
    texts: dict[Path, str] = {}
    for uid, node in (data.get("nodes") or {}).items():
        if isinstance(node, dict) and node.get("resource_type") in RELATION_TYPES:
            nodes[uid] = _slim_node(node)
            if _meta_in_sql(node, project_dir, texts):
                nodes[uid]["meta_in_sql"] = True
    return {"sha256": digest, "layout": _LAYOUT,
            "metadata": {k: metadata.get(k) for k in ("invocation_id", "project_name", "adapter_type")},
            "nodes": nodes, "disabled": _slim_disabled(data.get("disabled"))}, False


def _slim_disabled(disabled: Any) -> dict[str, dict[str, Any]]:
    """The models, seeds and snapshots of the manifest's "disabled" key (unique_id -> a list of the node's
    disabled definitions; the first is enough to say where it is), slim as `_slim_node` makes them."""
    out = {}
    for uid, versions in (disabled if isinstance(disabled, dict) else {}).items():
        first = versions[0] if isinstance(versions, list) and versions else None
        if isinstance(first, dict) and first.get("resource_type") in RELATION_TYPES and first.get("name"):
            out[uid] = _slim_node({"unique_id": uid, **first})
    return out


_PROJECT_FILES = (".sql", ".yml", ".yaml")


def edited_after_manifest(project_dir: Path | str, target_path: str = "target") -> list[str]:
    """The project's model files (.sql, .yml under its model paths, and dbt_project.yml) changed after
    target/manifest.json was written, relative to the project: the runner reads dbt's manifest, so a sync key
    edited since the last `dbt parse` is not what it runs. Empty when there is no manifest (that is said
    elsewhere) or nothing changed; a stat per file, no parsing beyond dbt_project.yml's `model-paths`."""
    root = Path(project_dir).resolve()
    try:
        written = (root / target_path / "manifest.json").stat().st_mtime
    except OSError:
        return []
    paths = ["models"]
    with contextlib.suppress(OSError, yaml_text.Invalid, AttributeError):
        project = yaml_text.safe_load((root / "dbt_project.yml").read_text(encoding="utf-8")) or {}
        configured = project.get("model-paths") or project.get("source-paths")
        if isinstance(configured, list) and all(isinstance(p, str) for p in configured):
            paths = configured
    changed = []
    for file in [root / "dbt_project.yml", *(f for p in paths for f in (root / p).rglob("*")
                                            if f.suffix in _PROJECT_FILES)]:
        with contextlib.suppress(OSError):
            if file.stat().st_mtime > written:
                changed.append(file.relative_to(root).as_posix())
    return sorted(changed)


def load_manifest(project_dir: Path | str, target_path: str = "target") -> Manifest:
    """Read `<project_dir>/<target_path>/manifest.json`; a one-line UserError when it is missing."""
    project_dir = Path(project_dir).resolve()
    path = project_dir / target_path / "manifest.json"
    yaml_text.keep_in(path.parent)  # the project's YAML files are kept parsed beside it, as its fields are
    slim, kept = _slim_manifest(path, project_dir)
    metadata = slim["metadata"]
    return Manifest(
        path=path,
        invocation_id=metadata.get("invocation_id"),
        project_name=metadata.get("project_name"),
        adapter_type=metadata.get("adapter_type"),
        nodes={uid: _node(raw) for uid, raw in slim["nodes"].items()},
        disabled={(node := _node(raw)).name: node for raw in (slim.get("disabled") or {}).values()},
        unkept=None if kept else slim,
        sha256=slim["sha256"],
    )


def keep(manifest: Manifest) -> None:
    """Write the runner's fields of a freshly parsed manifest beside it, for the next command to read instead.
    Only a copy that reads back exactly is kept (a NaN or a huge integer in some meta would not); a read-only
    target dir keeps nothing (the next command parses again). The YAML texts the command parsed are kept too
    (core/yaml_text.py)."""
    yaml_text.flush()
    if manifest.unkept is None:
        return
    try:
        blob = orjson.dumps(manifest.unkept)
        if orjson.loads(blob) != manifest.unkept:
            return
    except (TypeError, ValueError):
        return
    write_whole(manifest.path.parent / SLIM_FILE, blob)


def load_run_results(project_dir: Path | str, target_path: str = "target") -> RunResults:
    project_dir = Path(project_dir).resolve()
    path = project_dir / target_path / "run_results.json"
    data = _read_json(path, "run_results.json", project_dir)
    metadata = data.get("metadata") or {}
    results = {}
    for raw in data.get("results") or []:
        if isinstance(raw, dict) and raw.get("unique_id"):
            results[raw["unique_id"]] = RunResult(
                unique_id=raw["unique_id"],
                status=str(raw.get("status", "")),
                relation_name=raw.get("relation_name"),
                message=raw.get("message"),
            )
    args = data.get("args") or {}
    target = args.get("target")
    return RunResults(path=path, invocation_id=metadata.get("invocation_id"), command=args.get("which"),
                      results=results, target=target if isinstance(target, str) and target else None)
