"""What dbt does again in every process, done once or faster in the dbt runs dbt-studio makes.

These cost a fresh `dbt run` half a second or more around the SQL; all but the last come out the same from one
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
- **Serializers.** mashumaro generates the Python code that reads and writes each of dbt's classes the first time
  a process needs it (dbt asks for it lazily): about 120 builds, 0.18 s, in a fresh incremental stitch run, for
  reading the partial-parse file and the project and for writing manifest.json. What a build executes (each piece
  of generated code, and the attributes it sets on the class: a field's serialization strategy, a lambda from a
  field's metadata) is kept as compiled code with the names of everything its namespaces hold, and replayed by
  the next process; a build that holds something that cannot be named in another process (a class defined in a
  function, a strategy object with state) is not kept.
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

Inside `run_dbt` only (a plain `dbt run` is untouched), templates, schemas and serializers are kept in
`<target>/dbt_studio_cache/`: templates as marshalled code under a hash of the source and of everything the
generated code depends on (the environment's class, code generator, extensions and syntax options; the versions
of Python, Jinja and dbt-common), schemas under a hash of the class's name and of the files that define it and
dbt-core's, dbt-common's, dbt-adapters' and mashumaro's versions of it, serializers under a hash of the class,
every argument of the build, and the files of the class, its bases and mashumaro's code generators, with the
files of every module their namespaces name checked again before a replay. A changed macro or class, or an
upgraded package, is a new key: old code is never run for new source. A file that cannot be read is built again;
a folder that cannot be written is no cache at all. `dbt clean` removes it with the rest of target/;
DBT_STUDIO_DBT_CACHE=0 turns the cache off (the artifacts are still written in one call, the same bytes, and the
collector is still kept to the run's objects).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from types import CodeType, MethodType, ModuleType
from typing import Any

from sync_runner.core.paths import write_whole

FOLDER_NAME = "dbt_studio_cache"
OFF = "DBT_STUDIO_DBT_CACHE"
# modules whose files, with the class's own, decide a JSON schema: what the types are and how they become one
_SCHEMA_MODULES = ("dbt.version", "dbt_common.__about__", "dbt_common.dataclass_schema", "dbt.adapters.__about__",
                   "mashumaro.jsonschema.schema")


class _Shared:
    """The folder of the dbt run in progress, seen from every thread (dbt compiles on its model threads), the
    originals of what is patched, and this process's counts (tests read them)."""

    folder: Path | None = None
    installed = False
    originals: dict[str, Any] = {}
    stamps: dict[str, str] = {}  # module files seen in the dbt run in progress
    counts = {"template_hits": 0, "template_misses": 0, "schema_hits": 0, "schema_misses": 0,
              "serializer_hits": 0, "serializer_misses": 0, "serializer_unkept": 0}


_lock = threading.Lock()


def _write(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (other threads and processes read the folder)."""
    write_whole(path, data, make_folder=True)


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


# -- serializers ---------------------------------------------------------------------------------------------------

# mashumaro's code generators and dbt's version modules: their files, with the class's own, decide a serializer's code
_SERIALIZER_MODULES = ("mashumaro.core.meta.code.builder", "mashumaro.core.meta.types.common",
                       "mashumaro.core.meta.types.pack", "mashumaro.core.meta.types.unpack", "dbt.version",
                       "dbt_common.__about__", "dbt_common.dataclass_schema", "dbt.adapters.__about__")
_MISSING = object()
_recording = threading.local()  # the serializer being built on this thread: what its builders execute


def _reference(value: Any, builder: Any = None) -> tuple[Any, ...] | None:
    """How to find `value` again in another process: the class (or attribute holder) of the build being kept, a
    module by name, a class or function by module and qualified name (only if that finds this very object), a
    plain constant as itself; None when neither. The build's own class is named through its builder because
    mashumaro builds some classes (dbt-duckdb's credentials) while their module runs, before the name is bound."""
    if builder is not None:
        for attribute in ("cls", "attrs"):
            if value is getattr(builder, attribute):
                return ("builder", attribute)
    if value is None or isinstance(value, (bool, int, float, str)):
        return ("value", value)
    if isinstance(value, ModuleType):
        return ("module", value.__name__)
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        with contextlib.suppress(Exception):
            if _resolve(("object", module, qualname)) is value:
                return ("object", module, qualname)
    return None


def _resolve(reference: tuple[Any, ...], builder: Any = None) -> Any:
    kind = reference[0]
    if kind == "value":
        return reference[1]
    if kind == "builder":
        return getattr(builder, reference[1])
    module = sys.modules.get(reference[1]) or importlib.import_module(reference[1])
    if kind == "module":
        return module
    found: Any = module
    for part in reference[2].split("."):
        found = getattr(found, part)
    return found


def _run_stamp(module_name: str) -> str:
    """`_file_stamp`, looked up once per module in a dbt run (a run's serializers name the same few dozen modules
    over a thousand times); each run starts afresh, so a file changed between runs is seen."""
    stamps = _Shared.stamps
    if _Shared.folder is None:  # not inside a run
        return _file_stamp(module_name)
    if module_name not in stamps:
        stamps[module_name] = _file_stamp(module_name)
    return stamps[module_name]


def _named_for_good(cls: type) -> bool:
    """Whether `cls`'s module and qualified name can only mean this class: they find it, or its module is running
    and has not bound the name yet (the class is being built as the module defines it)."""
    if "<" in cls.__qualname__:
        return False
    module = sys.modules.get(cls.__module__)
    if module is None:
        return False
    try:
        return _resolve(("object", cls.__module__, cls.__qualname__)) is cls
    except AttributeError:
        return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def serializer_key(builder: Any, kind: str) -> str | None:
    """The cache key of what mashumaro's CodeBuilder `builder` generates for `kind` ("pack" or "unpack"): the
    class, every argument the builder was made with, and the files of the class, its bases and mashumaro's code
    generators; None when an argument cannot be named across processes (then it is built as usual)."""
    if builder.get_config().debug or not _named_for_good(builder.cls):
        return None
    arguments = [["nailed" if builder.is_nailed else builder.attrs], list(builder.initial_type_args),
                 [builder.dialect], [builder.default_dialect], [builder.allow_postponed_evaluation],
                 [builder.format_name], [builder.decoder], [builder.encoder],
                 [part for item in sorted(builder.encoder_kwargs.items()) for part in item]]
    named: list[Any] = [("class", builder.cls.__module__, builder.cls.__qualname__)]
    for values in arguments:  # one list per argument, so that no two builds' arguments read the same
        references = [_reference(value) for value in values]
        if None in references:
            return None
        named.append(references)
    modules = sorted({c.__module__ for c in builder.cls.__mro__ if c.__module__ != "builtins"}
                     | set(_SERIALIZER_MODULES))
    stamp = [sys.version, kind, named, *(_run_stamp(m) for m in modules)]
    return hashlib.sha256(repr(stamp).encode()).hexdigest()


def _exec(source: Any, globals_: dict[str, Any], locals_: dict[str, Any] | None = None) -> None:
    """`exec` as mashumaro's code generators see it: while a serializer is recorded on this thread, each piece of
    generated code is compiled here and kept with the namespaces it ran in, in order."""
    steps = getattr(_recording, "steps", None)
    if steps is None or locals_ is None or not isinstance(source, str):
        if steps is not None:
            steps.append(("unkeepable",))  # a form this module does not know how to replay
        exec(source, globals_, locals_)
        return
    code = compile(source, "<string>", "exec")
    steps.append((code, globals_, locals_, dict(locals_)))
    exec(code, globals_, locals_)


def _setattr(target: Any, name: str, value: Any) -> None:
    """`setattr` as mashumaro's code generators see it: while a serializer is recorded on this thread, the
    attributes they set on a class (a field's serialization strategy, which the generated code calls) are kept."""
    steps = getattr(_recording, "steps", None)
    if steps is not None:
        steps.append(("setattr", target, name, value))
    setattr(target, name, value)


def _attribute_value(value: Any, target: Any, builder: Any) -> tuple[Any, ...] | None:
    """An attribute a generator set on `target`, named for another process: a module-level object, a function
    in the metadata of one of the class's fields (dbt's `deserialize` lambdas), a staticmethod of either, or a
    method of a strategy object that holds no state (dbt's datetime and bool strategies), made again there."""
    if isinstance(value, staticmethod):
        inner = _attribute_value(value.__func__, target, builder)
        return None if inner is None else ("static", inner)
    owner_reference = _reference(target, builder)
    if isinstance(target, type) and dataclasses.is_dataclass(target) and owner_reference is not None:
        for field in dataclasses.fields(target):
            for key, held in field.metadata.items():
                if held is value and isinstance(key, str):
                    return ("field_metadata", owner_reference, field.name, key)
    if isinstance(value, MethodType):
        owner = value.__self__
        kind = _reference(type(owner))
        stateless = not getattr(owner, "__dict__", {}) and not getattr(type(owner), "__slots__", ())
        if kind is not None and kind[0] == "object" and stateless and type(owner).__init__ is object.__init__:
            return ("method", kind, value.__name__)
        return None
    return _reference(value, builder)


def _made_again(value: tuple[Any, ...], builder: Any) -> Any:
    if value[0] == "static":
        return staticmethod(_made_again(value[1], builder))
    if value[0] == "method":
        kind = _resolve(value[1])
        return getattr(object.__new__(kind), value[2])
    if value[0] == "field_metadata":
        owner = _resolve(value[1], builder)
        return next(f for f in dataclasses.fields(owner) if f.name == value[2]).metadata[value[3]]
    return _resolve(value, builder)


def _modules_named(reference: tuple[Any, ...]) -> set[str]:
    """The modules a reference or an attribute value (which may nest one) finds its object in."""
    if reference[0] in ("module", "object"):
        return {reference[1]}
    return set().union(*(_modules_named(part) for part in reference[1:] if isinstance(part, tuple)))


def _transcript(steps: list[tuple[Any, ...]], builder: Any) -> list[Any] | None:
    """What replaying `steps` in another process needs, as marshal can write it: the attributes set on classes and
    the files of the modules they name; each step's code and the index of its builder; per builder the names its
    globals and the locals it started with hold (beyond the code generator module's own globals), with the files
    of their modules. None when one cannot be named again."""
    from mashumaro.core.meta.code import builder as code_builder

    base = vars(code_builder)
    builders: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    index: dict[int, int] = {}
    order = []
    attributes = []
    attribute_modules: set[str] = set()
    for step in steps:
        if step[0] == "unkeepable":
            return None
        if step[0] == "setattr":
            _, target, name, value = step
            named = (_reference(target, builder), name, _attribute_value(value, target, builder))
            if named[0] is None or named[2] is None:
                return None
            attributes.append(named)
            attribute_modules.update(_modules_named(named[0]) | _modules_named(named[2]))
            continue
        code, globals_, locals_, locals_first = step
        if id(locals_) not in index:
            index[id(locals_)] = len(builders)
            builders.append((globals_, locals_first, {}))
        started_with, needed = builders[index[id(locals_)]][1:]
        for name in code.co_names:  # names the code's top level reads or writes; the builder's own are locals
            if name in started_with and name not in needed:
                needed[name] = started_with[name]
        order.append((code, index[id(locals_)]))
    named_builders = []
    for globals_, _, needed in builders:
        named_globals: dict[str, Any] = {}
        named_locals: dict[str, Any] = {}
        modules: set[str] = set()
        for source, target in ((((n, v) for n, v in globals_.items() if base.get(n, _MISSING) is not v),
                                named_globals), (needed.items(), named_locals)):
            for name, value in source:
                reference = _reference(value, builder)
                if reference is None:
                    return None
                target[name] = reference
                if reference[0] not in ("value", "builder"):
                    modules.add(reference[1])
        named_builders.append((named_globals, named_locals, {m: _run_stamp(m) for m in sorted(modules)}))
    return [attributes, {m: _run_stamp(m) for m in sorted(attribute_modules)}, order, named_builders]


def _replay(path: Path, builder: Any) -> bool:
    """Run a kept transcript: every namespace is found again and every module file is as it was, or nothing runs."""
    from mashumaro.core.meta.code import builder as code_builder

    try:
        named_attributes, attribute_stamps, order, named_builders = marshal.loads(path.read_bytes())
        if any(_run_stamp(module) != stamp for module, stamp in attribute_stamps.items()):
            return False
        attributes = [(_resolve(target, builder), name, _made_again(value, builder))
                      for target, name, value in named_attributes]
        namespaces = []
        for named_globals, named_locals, stamps in named_builders:
            if any(_run_stamp(module) != stamp for module, stamp in stamps.items()):
                return False
            globals_ = dict(vars(code_builder))
            globals_.update({name: _resolve(reference, builder) for name, reference in named_globals.items()})
            locals_ = {name: _resolve(reference, builder) for name, reference in named_locals.items()}
            namespaces.append((globals_, locals_))
        steps = [(code, namespaces[i]) for code, i in order if isinstance(code, CodeType)]
        if len(steps) != len(order):
            return False
    except Exception:  # unreadable, from another layout, or a name that is gone: built as usual
        return False
    try:
        for target, name, value in attributes:
            setattr(target, name, value)
        for code, (globals_, locals_) in steps:
            exec(code, globals_, locals_)
    except Exception:  # whatever it set is set again by the build that follows
        return False
    return True


def _serializer_builder(kind: str) -> Any:
    """CodeBuilder.add_pack_method or add_unpack_method through the cache."""
    original = _Shared.originals[f"add_{kind}_method"]

    def build(self: Any) -> None:
        folder = _Shared.folder
        if folder is None or getattr(_recording, "steps", None) is not None:
            original(self)  # no cache, or a builder inside one being recorded: part of its transcript
            return
        try:
            key = serializer_key(self, kind)
        except Exception:  # a mashumaro whose builders look otherwise: built as usual, never kept
            key = None
        if key is None:
            original(self)
            _Shared.counts["serializer_unkept"] += 1
            return
        path = folder / "serializers" / f"{key}.bin"
        if path.is_file() and _replay(path, self):
            _Shared.counts["serializer_hits"] += 1
            return
        _recording.steps = []
        try:
            original(self)
            steps = _recording.steps
        finally:
            _recording.steps = None
        try:
            transcript = _transcript(steps, self)
        except Exception:  # what cannot be named is never kept
            transcript = None
        if transcript is None:  # something it set cannot be found again in another process
            _Shared.counts["serializer_unkept"] += 1
            return
        _write(path, marshal.dumps(transcript))
        _Shared.counts["serializer_misses"] += 1

    return build


def keep_serializers() -> None:
    """Route mashumaro's serializer builds through the cache (see the module doc); a mashumaro without these modules
    and methods is left as it is, and a build whose builder looks otherwise is built as usual."""
    try:
        from mashumaro.core.meta.code import builder as code_builder
        from mashumaro.core.meta.types import common, pack, unpack

        for kind in ("pack", "unpack"):
            getattr(code_builder.CodeBuilder, f"add_{kind}_method")
    except (ImportError, AttributeError):
        return

    for kind in ("pack", "unpack"):
        _Shared.originals.setdefault(f"add_{kind}_method", getattr(code_builder.CodeBuilder, f"add_{kind}_method"))
        setattr(code_builder.CodeBuilder, f"add_{kind}_method", _serializer_builder(kind))
    for module in (code_builder, common, pack, unpack):
        module.exec = _exec  # type: ignore[attr-defined]  # shadows the builtin in these modules only
    for module in (common, pack, unpack):
        module.setattr = _setattr  # type: ignore[attr-defined]


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
        if _Shared.installed:  # not `originals`: one piece may have been installed on its own before
            return
        from dbt_common.clients.jinja import MacroFuzzEnvironment
        from dbt_common.dataclass_schema import dbtClassMixin

        _Shared.originals.update(compile=MacroFuzzEnvironment.compile,
                                 json_schema=dbtClassMixin.__dict__["json_schema"], schemas={})
        MacroFuzzEnvironment.compile = _compile  # type: ignore[method-assign,assignment]
        dbtClassMixin.json_schema = classmethod(_json_schema)  # type: ignore[method-assign,assignment]
        write_artifacts_in_one_call()
        name_flag_sources_from_frames()
        keep_serializers()
        _Shared.installed = True


def enabled() -> bool:
    return os.environ.get(OFF, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def speedups(target_dir: Path) -> Iterator[None]:
    """Keep dbt's compiled templates, JSON schemas and serializers in `target_dir` while the block runs (`run_dbt`
    runs one dbt command at a time, so one folder is in use at once), write its artifacts in one call, name
    behavior flags' sources from the frames and keep the cycle collector to the run's own objects."""
    _install()
    with collector_on_the_runs_objects():
        if not enabled():
            yield
            return
        previous, _Shared.folder = _Shared.folder, target_dir / FOLDER_NAME
        try:
            yield
        finally:
            _Shared.folder, _Shared.stamps = previous, {}


def counts() -> dict[str, int]:
    """Templates, schemas and serializers read from the cache (hits) and built into it (misses) in this process
    so far, and serializers built that cannot be kept (unkept)."""
    return dict(_Shared.counts)
