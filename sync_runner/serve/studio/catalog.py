"""The studio's view of the dbt project: models, the schema graph, audiences and syncs, from the artifacts.

Read again whenever manifest.json or run_results.json changes (a build, in the studio or outside it); `generation`
is what the query cache keys its lifetime on.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from sync_runner.audiences.schema import manifest_nodes, read_manifest, schema_graph
from sync_runner.core.errors import UserError
from sync_runner.project.artifacts import load_manifest

from .files import AudienceFile, NotEditable, model_paths, parse_audience, yaml_description

ENABLE = "enable it (remove its enabled: false) and build the project again"


@dataclass(frozen=True)
class AudienceInfo:
    name: str
    parent: str
    spec: dict[str, Any]  # as compiled (manifest), with as_of resolved
    sql_path: Path | None
    yml_path: Path | None
    description: str  # as its YAML file says now (the manifest's, as of the last build, when the file cannot tell)
    last_build: dict[str, Any] | None  # {status, completed_at, execution_time} from run_results.json
    syncs: tuple[str, ...]


class Catalog:
    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir.resolve()
        self._stamp: Any = None
        self._nodes: dict[str, dict[str, Any]] = {}
        self._raw: dict[str, dict[str, Any]] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._children: dict[str, list[str]] = {}
        self._files: dict[str, str] = {}  # unique_id -> original_file_path, of everything that may refer to a model
        self._gone: set[str] = set()  # audiences the studio renamed or deleted since the manifest was written
        self._renamed: dict[str, AudienceInfo] = {}  # new name -> an audience the studio renamed since then
        self._disabled: dict[str, str] | None = None  # name -> what messages say of it (read when first asked)
        # the studio's routes run in a thread pool: one thread reads the artifacts again after a build while the
        # others go on with the fields they hold (a refresh replaces each whole; forget() changes _gone and
        # _renamed in place, under the same lock)
        self._lock = threading.RLock()

    @property
    def target(self) -> Path:
        return self.project_dir / "target"

    def generation(self) -> tuple[float, float]:
        """Changes with every dbt invocation that writes artifacts."""
        stamps = []
        for name in ("manifest.json", "run_results.json"):
            path = self.target / name
            stamps.append(path.stat().st_mtime if path.exists() else 0.0)
        return stamps[0], stamps[1]

    def _refresh(self) -> None:
        stamp = self.generation()
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:  # another thread read them meanwhile
                return
            data = read_manifest(self.project_dir)  # parsed once for the nodes and the fields below
            self._nodes = manifest_nodes(data)
            self._raw = {raw["name"]: raw for raw in (data.get("nodes") or {}).values()
                         if raw.get("resource_type") == "model"}
            self._children = {k: list(v) for k, v in (data.get("child_map") or {}).items()}
            files: dict[str, str] = {}
            for section in ("nodes", "exposures", "metrics", "semantic_models", "saved_queries"):
                for uid, raw in (data.get(section) or {}).items():
                    attached = raw.get("attached_node") or ""
                    # a test declared on a model: it moves (or goes) with that model's entry
                    files[uid] = "@" + attached if attached else str(raw.get("original_file_path") or uid)
            self._files = files
            self._gone = set()
            self._renamed = {}
            self._disabled = None
            results: dict[str, dict[str, Any]] = {}
            path = self.target / "run_results.json"
            if path.exists():
                run = json.loads(path.read_text(encoding="utf-8"))
                finished = (run.get("metadata") or {}).get("generated_at")
                for r in run.get("results") or []:
                    results[r.get("unique_id")] = {"status": r.get("status"), "completed_at": finished,
                                                   "execution_time": r.get("execution_time")}
            self._results = results
            self._stamp = stamp

    def nodes(self) -> dict[str, dict[str, Any]]:
        self._refresh()
        return self._nodes

    def raw(self, name: str) -> dict[str, Any] | None:
        self._refresh()
        return self._raw.get(name)

    def disabled(self, name: Any) -> str | None:
        """"model 'x' is disabled (enabled: false, models/x.sql); enable it ..." when `name` is a model (seed,
        snapshot) the manifest keeps under "disabled" (Manifest.disabled_phrase), else None."""
        phrase = self.disabled_phrases().get(name) if isinstance(name, str) else None
        return f"{phrase}; {ENABLE}" if phrase else None

    def disabled_phrases(self) -> dict[str, str]:
        """Every disabled model's phrase by name (what the package's macros say of a relationship to one). The
        manifest is read for them once a build, when first asked."""
        self._refresh()
        with self._lock:
            if self._disabled is None:
                self._disabled = load_manifest(self.project_dir).disabled_phrases()
            return self._disabled

    def unknown_model(self, name: Any) -> str:
        """Why `name` is no model of the studio: disabled (and how to enable it), or unknown."""
        return self.disabled(name) or f"unknown model {name!r}"

    def graph(self) -> Any:
        return schema_graph(self.nodes())

    def parents(self) -> list[str]:
        return self.graph().parents()

    def models(self) -> set[str]:
        return set(self.nodes())

    def audiences(self) -> list[AudienceInfo]:
        out = []
        for name, node in sorted(self.nodes().items()):
            spec = node.get("audience")
            if not spec or name in self._gone:
                continue
            raw = self._raw.get(name) or {}
            root = self.project_dir
            sql = raw.get("original_file_path")
            patch = (raw.get("patch_path") or "").split("://", 1)[-1]
            syncs = tuple(s.get("name", "") for s in (node["meta"].get("syncs") or []) if isinstance(s, dict))
            yml_path = (root / patch) if patch else None
            current = yaml_description(yml_path, name)
            out.append(AudienceInfo(
                name=name, parent=spec.get("parent", ""), spec=spec,
                sql_path=(root / sql) if sql and raw.get("package_name") == self.project_name() else None,
                yml_path=yml_path, description=raw.get("description") or "" if current is None else current,
                last_build=self._results.get(str(node.get("unique_id"))), syncs=syncs,
            ))
        return out

    def audience(self, name: str) -> AudienceInfo:
        """Audience `name` of the listing, or one the studio renamed to `name` since the last build."""
        self._refresh()
        if name in self._renamed:
            return self._renamed[name]
        for a in self.audiences():
            if a.name == name:
                return a
        raise UserError(self.disabled(name) or
                        f"no audience model {name!r} in the project (build it once so the manifest knows it)")

    def referrers(self, name: str) -> list[str]:
        """What the manifest knows to refer to model `name` (models, exposures, tests of other models), by file;
        the tests declared on the model itself are not counted (they go with its YAML entry)."""
        uid = str(self.nodes().get(name, {}).get("unique_id") or "")
        out = []
        for child in self._children.get(uid, []):
            file = self._files.get(child, child)
            if file == "@" + uid:
                continue
            said = f"a test of {file[1:].rsplit('.', 1)[-1]}" if file.startswith("@") else file
            if said not in out:
                out.append(said)
        return out

    def forget(self, name: str, renamed: tuple[str, Path, Path | None] | None = None) -> None:
        """Leave audience `name` out of the listings until the next build writes a manifest (its file was renamed
        or deleted by the studio). `renamed`: its new name, file and YAML file, under which it is found (to open,
        rename again or delete) before the build that lists it."""
        with self._lock:
            info = self.audience(name)
            self._gone.add(name)
            self._renamed.pop(name, None)
            if renamed is not None:
                new_name, sql_path, yml_path = renamed
                self._renamed[new_name] = replace(info, name=new_name, sql_path=sql_path, yml_path=yml_path,
                                                  last_build=None)

    def taken(self, own: Path | None = None) -> dict[str, str]:
        """The names a new or renamed audience cannot take, as the project's files are now, each with the file
        that holds it (what a refusal names): every model of the manifest but this project's audiences whose file
        is no longer where the last build found it (renamed or deleted since, by the studio or by hand), and the
        name of every .sql file under the model paths (a disabled model, an audience saved or renamed since the
        build), in lower case: the warehouse folds unquoted names, so a new `customers` would build onto a
        hand-written `Customers` model's relation (and the studio's names are lower case). `own`: the file the
        caller is about to write, whose existence it checks itself."""
        self._refresh()
        project, names = self.project_name(), {}
        for name, node in self._nodes.items():
            raw = self._raw.get(name) or {}
            file = raw.get("original_file_path")
            package = raw.get("package_name")
            if node.get("audience") and file and package == project and not (self.project_dir / file).is_file():
                continue
            names[name.lower()] = str(file or name) if package == project else f"package {package}"
        mine = own.resolve() if own is not None else None
        root = self.project_dir
        for folder in model_paths(self.project_dir):
            for path in (folder.rglob("*.sql") if folder.is_dir() else ()):
                if path.resolve() != mine:  # the file as it is named in the project (a link's own name and place)
                    names[path.stem.lower()] = path.relative_to(root).as_posix() if path.is_relative_to(root) \
                        else str(path)  # a model path that links outside the project
        return names

    def open_file(self, name: str) -> AudienceFile:
        info = self.audience(name)
        if info.sql_path is None:
            raise NotEditable(f"{name} belongs to a package, not to this project")
        return parse_audience(info.sql_path)

    def project_name(self) -> str | None:
        data = yaml.safe_load((self.project_dir / "dbt_project.yml").read_text(encoding="utf-8")) or {}
        return data.get("name")

    def folders(self) -> list[Path]:
        """Folders an audience may be saved in: those holding audiences first, then the model paths."""
        seen: list[Path] = []
        for a in self.audiences():
            if a.sql_path is not None and a.sql_path.parent.resolve() not in seen:
                seen.append(a.sql_path.parent.resolve())
        for root in model_paths(self.project_dir):
            if root not in seen:
                seen.append(root)
        return seen

    def relation_parts(self, name: str) -> tuple[str | None, str, str]:
        raw = self.raw(name) or {}
        return raw.get("database"), raw.get("schema", ""), raw.get("alias") or name
