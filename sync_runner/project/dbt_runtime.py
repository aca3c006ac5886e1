"""What dbt does again in every process, done once or faster in the dbt runs dbt-studio makes.

These cost a fresh `dbt run` half a second or more around the SQL; the first four come out the same from one
process to the next while nothing they come from changes:

- **Compiled templates.** dbt compiles every macro it calls from its source once per process (Jinja parses the
  text, generates Python, compiles it): about a hundred macros, 0.15-0.2 s on a 2-core machine, for an
  incremental run of the identity stitcher. Jinja's own answer, a bytecode cache, never sees dbt's templates:
  dbt makes them with `Environment.from_string`.
- **JSON schemas.** dbt validates dbt_project.yml, the profile and the packages against JSON schemas that
  mashumaro builds from dbt's dataclasses on first use: 0.2 s per process.
- **Artifacts.** dbt writes manifest.json twice a run (after parsing and at the end) and run_results.json once
  with `json.dump`, whose streaming encoder is pure Python; `json.dumps` encodes in C, the same text 3-4 times
  as fast (25 ms against 7 ms a write for a 1.1 MB manifest).
- **Behavior flags' source.** Building the adapter names, for each of its behavior flags, the module that
  declared it, and dbt-common finds it with `inspect.stack()`, which reads the source lines of every frame on the
  stack (some fifty under dbt's command wrappers) even when the flag names its source: 51-54 ms a run for
  dbt-duckdb's two flags. The same module comes from the frames' globals without reading a file.
- **The cycle collector.** A dbt run allocates hundreds of thousands of container objects (the manifest, its
  nodes, mashumaro's generated code), so CPython's collector runs some 170 times in an incremental stitch run, three
  of them full passes that walk every object the process holds, dbt's modules included: 0.11 s a run. The
  objects that exist when the run starts are set aside for its length (`gc.freeze`) and young objects are
  collected every 10,000 allocations instead of 700; at the end both come back as they were (`gc.unfreeze`), so
  nothing set aside is kept longer than the run: 15 ms of collection a run.

Inside `run_dbt` only (a plain `dbt run` is untouched), templates and schemas are kept in
`<target>/dbt_studio_cache/`: templates as marshalled code under a hash of the source and of everything the
generated code depends on (the environment's class, code generator, extensions and syntax options; the versions
of Python, Jinja and dbt-common), schemas under a hash of the class's name and of the files that define it and
dbt-core's, dbt-common's, dbt-adapters' and mashumaro's versions of it. A changed macro, or an upgraded package,
is a new key: old code is never run for new source. A file that cannot be read is built again; a folder that
cannot be written is no cache at all. `dbt clean` removes it with the rest of target/; DBT_STUDIO_DBT_CACHE=0
turns the cache off (the artifacts are still written in one call, the same bytes, and the collector is still kept
to the run's objects).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib.util
import json
import marshal
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import CodeType
from typing import Any

FOLDER_NAME = "dbt_studio_cache"
OFF = "DBT_STUDIO_DBT_CACHE"
# modules whose files, with the class's own, decide a JSON schema: what the types are and how they become one
_SCHEMA_MODULES = ("dbt.version", "dbt_common.__about__", "dbt_common.dataclass_schema", "dbt.adapters.__about__",
                   "mashumaro.jsonschema.schema")


class _Shared:
    """The folder of the dbt run in progress, seen from every thread (dbt compiles on its model threads), the
    originals of what is patched, and this process's counts (tests read them)."""

    folder: Path | None = None
    originals: dict[str, Any] = {}
    counts = {"template_hits": 0, "template_misses": 0, "schema_hits": 0, "schema_misses": 0}


_lock = threading.Lock()


def _write(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (other threads and processes read the folder)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)


# -- templates -----------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _template_runtime() -> str:
    import dbt_common.__about__
    import jinja2

    return (f"python={sys.version} magic={importlib.util.MAGIC_NUMBER.hex()} jinja2={jinja2.__version__} "
            f"dbt-common={dbt_common.__about__.version}")


def template_key(env: Any, source: str) -> str:
    """The cache key of `source` compiled by `env`: whatever changes the generated code changes the key."""
    generator = env.code_generator_class
    options = (
        f"{type(env).__module__}.{type(env).__qualname__}", f"{generator.__module__}.{generator.__qualname__}",
        sorted(f"{type(e).__module__}.{type(e).__qualname__}" for e in env.extensions.values()),
        env.block_start_string, env.block_end_string, env.variable_start_string, env.variable_end_string,
        env.comment_start_string, env.comment_end_string, env.line_statement_prefix, env.line_comment_prefix,
        env.trim_blocks, env.lstrip_blocks, env.newline_sequence, env.keep_trailing_newline, env.optimized,
        env.is_async, repr(env.autoescape), env.finalize is not None,
    )
    digest = hashlib.sha256(repr((_template_runtime(), options)).encode())
    digest.update(source.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _compile(env: Any, source: Any, name: str | None = None, filename: str | None = None, raw: bool = False,
             defer_init: bool = False) -> Any:
    """dbt's environments' `compile`, through the cache for a template made from a string."""
    original = _Shared.originals["compile"]
    folder = _Shared.folder
    if (folder is None or raw or defer_init or filename is not None or not isinstance(source, str)
            or os.environ.get("DBT_MACRO_DEBUGGING")):  # dbt's debugging writes the generated code where it shows
        return original(env, source, name, filename, raw, defer_init)
    path = folder / "templates" / f"{template_key(env, source)}.bin"
    with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
        code = marshal.loads(path.read_bytes())
        if isinstance(code, CodeType):
            _Shared.counts["template_hits"] += 1
            return code
    code = original(env, source, name, filename, raw, defer_init)
    _write(path, marshal.dumps(code))
    _Shared.counts["template_misses"] += 1
    return code


# -- JSON schemas --------------------------------------------------------------------------------------------------

def _file_stamp(module_name: str) -> str:
    """The module's file, size and time, found without importing it when it is not imported yet."""
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None) if module is not None else None
    if not file:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(module_name)
            file = spec.origin if spec is not None else None
    if not file:
        return f"{module_name}:-"
    try:
        stat = os.stat(file)
    except OSError:
        return f"{module_name}:?"
    return f"{module_name}:{file}:{stat.st_size}:{stat.st_mtime_ns}"


def schema_key(cls: type) -> str:
    """The cache key of `cls`'s JSON schema: its name, and the files that define it and its bases, dbt-core's,
    dbt-common's and dbt-adapters' versions and mashumaro's schema builder (an upgrade rewrites them)."""
    modules = sorted({c.__module__ for c in cls.__mro__ if c.__module__ != "builtins"} | set(_SCHEMA_MODULES))
    stamp = [sys.version, f"{cls.__module__}.{cls.__qualname__}", *(_file_stamp(m) for m in modules)]
    return hashlib.sha256(repr(stamp).encode()).hexdigest()


def _json_schema(cls: type) -> Any:
    """dbt's `dbtClassMixin.json_schema`, through the cache."""
    memory: dict[type, Any] = _Shared.originals["schemas"]
    if cls in memory:
        return memory[cls]
    folder = _Shared.folder
    if folder is None:
        schema = _Shared.originals["json_schema"].__func__(cls)
    else:
        path = folder / "schemas" / f"{schema_key(cls)}.json"
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(schema, dict):
                raise ValueError(path)
            _Shared.counts["schema_hits"] += 1
        except (OSError, ValueError):
            schema = _Shared.originals["json_schema"].__func__(cls)
            _write(path, json.dumps(schema).encode())
            _Shared.counts["schema_misses"] += 1
    memory[cls] = schema
    return schema


# -- artifacts ---------------------------------------------------------------------------------------------------

def write_artifacts_in_one_call() -> None:
    """Make dbt write its JSON artifacts with `json.dumps` (C encoder) instead of `json.dump`: the same text."""
    from dbt.artifacts.schemas import base
    from dbt.artifacts.schemas.run.v5 import run
    from dbt_common.clients.system import make_directory
    from dbt_common.utils.encoding import JSONEncoder

    def write_json(path: str, data: dict[str, Any]) -> bool:
        make_directory(os.path.dirname(path))
        text = json.dumps(data, cls=JSONEncoder)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return True

    base.write_json = run.write_json = write_json


# -- behavior flags ------------------------------------------------------------------------------------------------

def _calling_module() -> str:
    """What dbt-common's `BehaviorFlagRendered._default_source` returns, the first module on the stack other than
    dbt_common.behavior_flags (the one that declared the flag), read from each frame's globals instead of from
    `inspect.stack()`, which reads every frame's source lines first."""
    from dbt_common import behavior_flags

    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if isinstance(name, str) and name != behavior_flags.__name__:
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return "Unknown"


def name_flag_sources_from_frames() -> None:
    """Make dbt-common name a behavior flag's declaring module from the frames' globals (see the module doc)."""
    from dbt_common.behavior_flags import BehaviorFlagRendered

    _Shared.originals.setdefault("default_source", BehaviorFlagRendered.__dict__["_default_source"])
    BehaviorFlagRendered._default_source = staticmethod(_calling_module)  # type: ignore[method-assign]


# -- the cycle collector -------------------------------------------------------------------------------------------

YOUNG_THRESHOLD = 10_000  # allocations between collections of the youngest generation during a run (CPython: 700)


@contextlib.contextmanager
def collector_on_the_runs_objects() -> Iterator[None]:
    """While the block runs, the collector leaves alone the objects that existed before it (`gc.freeze`) and
    collects young objects every YOUNG_THRESHOLD allocations; afterwards both are as they were, so a cycle that
    became garbage during the block is collected by the next pass (see the module doc)."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(YOUNG_THRESHOLD, threshold[0]), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


# -- switching it on -----------------------------------------------------------------------------------------------

def _install() -> None:
    with _lock:
        if _Shared.originals:
            return
        from dbt_common.clients.jinja import MacroFuzzEnvironment
        from dbt_common.dataclass_schema import dbtClassMixin

        _Shared.originals.update(compile=MacroFuzzEnvironment.compile,
                                 json_schema=dbtClassMixin.__dict__["json_schema"], schemas={})
        MacroFuzzEnvironment.compile = _compile  # type: ignore[method-assign,assignment]
        dbtClassMixin.json_schema = classmethod(_json_schema)  # type: ignore[method-assign,assignment]
        write_artifacts_in_one_call()
        name_flag_sources_from_frames()


def enabled() -> bool:
    return os.environ.get(OFF, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def speedups(target_dir: Path) -> Iterator[None]:
    """Keep dbt's compiled templates and JSON schemas in `target_dir` while the block runs (`run_dbt` runs one
    dbt command at a time, so one folder is in use at once), write its artifacts in one call, name behavior
    flags' sources from the frames and keep the cycle collector to the run's own objects."""
    _install()
    with collector_on_the_runs_objects():
        if not enabled():
            yield
            return
        previous, _Shared.folder = _Shared.folder, target_dir / FOLDER_NAME
        try:
            yield
        finally:
            _Shared.folder = previous


def counts() -> dict[str, int]:
    """Templates and schemas read from the cache (hits) and built into it (misses) in this process so far."""
    return dict(_Shared.counts)
