"""project/dbt_runtime.py: dbt's compiled templates and JSON schemas kept between runs never run old code for new
source, dbt's artifacts are written with the same text as dbt writes them, and the collector's settings during a
run are undone after it."""

from __future__ import annotations

import datetime
import decimal
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import jinja2
import pytest

from sync_runner.project import dbt_runtime
from sync_runner.project.target import DbtTarget, run_dbt


def _project(root: Path, greeting: str) -> DbtTarget:
    """A dbt project of one macro and one table model that calls it, on its own DuckDB file."""
    (root / "macros").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "dbt_project.yml").write_text(
        "name: cached\nversion: '1.0'\nconfig-version: 2\nprofile: cached\n", encoding="utf-8")
    (root / "profiles.yml").write_text(textwrap.dedent(f"""\
        cached:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: "{(root / 'warehouse.duckdb').as_posix()}"
              threads: 1
        """), encoding="utf-8")
    (root / "macros" / "greet.sql").write_text(
        "{% macro greet(name) %}'" + greeting + ", ' || {{ name }}{% endmacro %}\n", encoding="utf-8")
    (root / "models" / "greeting.sql").write_text(
        "{{ config(materialized='table') }}\nselect {{ greet(\"'world'\") }} as text\n", encoding="utf-8")
    return DbtTarget(project_dir=root, profiles_dir=root)


def _greeting(root: Path) -> str:
    from sync_runner.project.target import release_dbt_duckdb

    release_dbt_duckdb()
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("select text from main.greeting").fetchone()[0]


def _templates(root: Path) -> list[Path]:
    return sorted((root / "target" / dbt_runtime.FOLDER_NAME / "templates").glob("*.bin"))


def test_a_new_process_reads_the_templates_an_earlier_one_compiled(tmp_path):
    _project(tmp_path, "hello")
    first = _in_a_new_process(tmp_path, "run", "run")  # a first build and a rebuild: each has macros of its own
    kept = _templates(tmp_path)
    assert first["success"] and kept and first["template_misses"] >= len(kept)
    second = _in_a_new_process(tmp_path, "run")
    assert second["success"] and second["template_misses"] == 0 and second["template_hits"] >= len(kept) // 2
    assert _greeting(tmp_path) == "hello, world"


def test_a_changed_macro_is_compiled_again_never_run_from_the_old_code(tmp_path):
    where = _project(tmp_path, "hello")
    run_dbt(["run"], where)
    before = dbt_runtime.counts()["template_misses"]
    _project(tmp_path, "bonjour")
    run_dbt(["run"], where)
    assert _greeting(tmp_path) == "bonjour, world"
    assert dbt_runtime.counts()["template_misses"] > before


def test_unreadable_kept_templates_are_compiled_again(tmp_path):
    where = _project(tmp_path, "hello")
    run_dbt(["run"], where)
    for path in _templates(tmp_path):
        path.write_bytes(b"not marshalled code")
    before = dbt_runtime.counts()["template_misses"]
    run_dbt(["run"], where)
    assert _greeting(tmp_path) == "hello, world"
    assert dbt_runtime.counts()["template_misses"] > before


def test_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(dbt_runtime.OFF, "0")
    run_dbt(["run"], _project(tmp_path, "hello"))
    assert _greeting(tmp_path) == "hello, world"
    assert not (tmp_path / "target" / dbt_runtime.FOLDER_NAME).exists()


def test_the_same_source_in_a_native_environment_is_another_template():
    from dbt_common.clients.jinja import get_environment

    source = "{{ 1 + 1 }}"
    text, native = get_environment(), get_environment(native=True)
    assert dbt_runtime.template_key(text, source) == dbt_runtime.template_key(get_environment(), source)
    assert dbt_runtime.template_key(text, source) != dbt_runtime.template_key(native, source)
    assert dbt_runtime.template_key(text, source) != dbt_runtime.template_key(text, source + " ")


def test_a_schema_s_and_a_serializer_s_keys_change_with_the_file_that_defines_the_class(tmp_path, monkeypatch):
    """Both keys follow the class's file; a serializer's also follows how it is built (pack or unpack, format)."""
    from mashumaro.core.meta.code.builder import CodeBuilder

    module = tmp_path / "kept_class_module.py"
    code = ("from dataclasses import dataclass\nfrom dbt_common.dataclass_schema import dbtClassMixin\n\n"
            "@dataclass\nclass Thing(dbtClassMixin):\n    name: str\n")
    module.write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    try:
        first = importlib.import_module("kept_class_module")
        schema = dbt_runtime.schema_key(first.Thing)
        serializer = dbt_runtime.serializer_key(CodeBuilder(first.Thing), "pack")
        assert schema == dbt_runtime.schema_key(first.Thing)
        assert serializer == dbt_runtime.serializer_key(CodeBuilder(first.Thing), "pack")
        assert serializer != dbt_runtime.serializer_key(CodeBuilder(first.Thing), "unpack")
        assert serializer != dbt_runtime.serializer_key(CodeBuilder(first.Thing, format_name="msgpack"), "pack")
        module.write_text(code + "    size: int = 0\n", encoding="utf-8")
        second = importlib.reload(first)
        assert dbt_runtime.schema_key(second.Thing) != schema
        assert dbt_runtime.serializer_key(CodeBuilder(second.Thing), "pack") != serializer
    finally:
        sys.modules.pop("kept_class_module", None)


_RUN = """
import json, sys
from pathlib import Path
from sync_runner.project import dbt_runtime
from sync_runner.project.target import DbtTarget, run_dbt
root = Path(sys.argv[1])
for command in sys.argv[2:]:
    result = run_dbt([command], DbtTarget(project_dir=root, profiles_dir=root), check=False)
print(json.dumps({"success": result.success, "error": str(result.exception or ""), **dbt_runtime.counts()}))
"""


def _in_a_new_process(root: Path, *commands: str, **env: str) -> dict:
    """Run dbt commands through `run_dbt` in a new Python process: the last one's success and error, and the
    process's cache counts."""
    proc = subprocess.run([sys.executable, "-c", _RUN, str(root), *commands], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_new_process_reads_the_json_schemas_and_still_refuses_a_bad_project(tmp_path):
    _project(tmp_path, "hello")
    first = _in_a_new_process(tmp_path, "parse")
    assert first["success"] and first["schema_misses"] > 0 and first["schema_hits"] == 0
    second = _in_a_new_process(tmp_path, "parse")
    assert second["success"] and second["schema_hits"] > 0 and second["schema_misses"] == 0

    project = tmp_path / "dbt_project.yml"
    project.write_text(project.read_text(encoding="utf-8") + "query-comment: [1, 2]\n", encoding="utf-8")
    cached = _in_a_new_process(tmp_path, "parse")
    uncached = _in_a_new_process(tmp_path, "parse", **{dbt_runtime.OFF: "0"})
    assert not cached["success"] and cached["schema_hits"] > 0
    assert cached["error"] and cached["error"] == uncached["error"]


def _artifacts(root: Path) -> tuple[dict, list]:
    """manifest.json without what differs between any two runs (when, which invocation), and each result's node
    and status from run_results.json."""
    manifest = json.loads((root / "target" / "manifest.json").read_text(encoding="utf-8"))
    for key in ("generated_at", "invocation_id", "invocation_started_at"):
        manifest["metadata"].pop(key, None)
    results = json.loads((root / "target" / "run_results.json").read_text(encoding="utf-8"))
    return manifest, [(r["unique_id"], r["status"]) for r in results["results"]]


def test_a_new_process_replays_the_serializers_an_earlier_one_built_and_writes_the_same_artifacts(tmp_path):
    """mashumaro's generated serializers (the partial-parse read, manifest.json) are kept by one process and
    replayed by the next, which reads the partial-parse file and writes the same manifest.json as a process that
    builds them (kept) and one that never keeps anything (cache off)."""
    _project(tmp_path, "hello")
    first = _in_a_new_process(tmp_path, "run", "run")  # the second run reads the partial-parse file
    assert first["success"] and first["serializer_misses"] > 0
    kept = sorted((tmp_path / "target" / dbt_runtime.FOLDER_NAME / "serializers").glob("*.bin"))
    assert len(kept) == first["serializer_misses"]
    built = _artifacts(tmp_path)
    second = _in_a_new_process(tmp_path, "run")
    assert second["success"] and second["serializer_misses"] == 0 and second["serializer_hits"] >= len(kept) // 2
    assert _artifacts(tmp_path) == built
    uncached = _in_a_new_process(tmp_path, "run", **{dbt_runtime.OFF: "0"})
    assert uncached["success"] and uncached["serializer_hits"] == uncached["serializer_misses"] == 0
    assert _artifacts(tmp_path) == built
    assert _greeting(tmp_path) == "hello, world"


_SERIALIZED = """
import datetime, enum, json, sys
from dataclasses import dataclass, field
from typing import Literal, Optional
from dbt_common.dataclass_schema import dbtClassMixin
from mashumaro.types import SerializationStrategy
from sync_runner.project import dbt_runtime

class Kind(str, enum.Enum):
    MODEL = "model"
    SEED = "seed"

@dataclass
class Inner(dbtClassMixin):
    when: datetime.datetime
    flag: bool = False

@dataclass
class Outer(dbtClassMixin):
    name: str
    kind: Literal[Kind.MODEL]
    inner: Inner
    inners: list[Inner] = field(default_factory=list)
    maybe: Optional[int] = None
    cached: Optional[dict] = field(default=None, metadata={"serialize": lambda x: None, "deserialize": lambda x: None})

class Scaled(SerializationStrategy):
    def __init__(self, factor):
        self.factor = factor

    def serialize(self, value):
        return value * self.factor

    def deserialize(self, value):
        return value / self.factor

@dataclass
class Priced(dbtClassMixin):
    price: float = field(metadata={"serialization_strategy": Scaled(100)})

def local_class():
    @dataclass
    class Local(dbtClassMixin):
        size: int
    return Local

folder = sys.argv[1]
with dbt_runtime.speedups(__import__("pathlib").Path(folder)):
    outer = Outer("a", Kind.MODEL, Inner(datetime.datetime(2026, 12, 4, 23, 59, 1), True),
                  [Inner(datetime.datetime(2026, 1, 2))], 7, {"dropped": 1})
    as_dict = outer.to_dict(omit_none=False)
    back = Outer.from_dict(json.loads(json.dumps(as_dict)))
    packed = outer.to_msgpack()
    unpacked = Outer.from_msgpack(packed)
    local = local_class()(3).to_dict()
    priced = [Priced(1.5).to_dict(), repr(Priced.from_dict({"price": 250}))]
print(json.dumps({"dict": as_dict, "back": repr(back), "packed": packed.hex(), "unpacked": repr(unpacked),
                  "local": local, "priced": priced, **dbt_runtime.counts()}))
"""


def _serialized(folder: Path, **env: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _SERIALIZED, str(folder)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_replayed_serializers_give_what_mashumaro_s_own_give(tmp_path):
    """A class with what dbt's classes carry (datetime and bool strategies, a Literal of an enum, nested and listed
    dataclasses, a field whose metadata holds lambdas) serializes and reads back the same in a process that
    replays kept serializers as in one that builds them and one with the cache off; a class defined inside a
    function, or one whose field has a strategy object with state, cannot be named in another process and is
    never kept."""
    folder = tmp_path / "target"
    built = _serialized(folder)
    assert built["serializer_misses"] > 0 and built["serializer_hits"] == 0
    kept = list((folder / dbt_runtime.FOLDER_NAME / "serializers").glob("*.bin"))
    replayed = _serialized(folder)
    assert replayed["serializer_hits"] == len(kept) == built["serializer_misses"] > 0
    assert replayed["serializer_misses"] == 0 and replayed["serializer_unkept"] == built["serializer_unkept"] > 0
    off = _serialized(folder, **{dbt_runtime.OFF: "0"})
    assert off["serializer_hits"] == off["serializer_misses"] == off["serializer_unkept"] == 0
    fields = ("dict", "back", "packed", "unpacked", "local", "priced")
    assert {k: replayed[k] for k in fields} == {k: built[k] for k in fields} == {k: off[k] for k in fields}
    assert built["dict"]["inner"] == {"when": "2026-12-04T23:59:01Z", "flag": True}
    assert built["dict"]["cached"] is None and "cached=None" in built["back"]
    assert built["priced"] == [{"price": 150.0}, "Priced(price=2.5)"]  # a strategy with state: built each time


def test_unreadable_kept_serializers_are_built_again(tmp_path):
    folder = tmp_path / "target"
    built = _serialized(folder)
    for kept in (folder / dbt_runtime.FOLDER_NAME / "serializers").glob("*.bin"):
        kept.write_bytes(b"not marshal data")
    again = _serialized(folder)
    assert again["serializer_hits"] == 0 and again["serializer_misses"] == built["serializer_misses"]
    assert again["dict"] == built["dict"] and again["unpacked"] == built["unpacked"]


def test_every_speedup_is_installed_after_one_was_installed_on_its_own(tmp_path):
    """Installing one piece by itself (as the behavior-flag test does) does not keep `run_dbt` from installing the
    rest: in a new process that does it first, a run still compiles templates and builds serializers into the
    cache."""
    _project(tmp_path, "hello")
    code = ("import json, sys\nfrom pathlib import Path\nfrom sync_runner.project import dbt_runtime\n"
            "from sync_runner.project.target import DbtTarget, run_dbt\n"
            "dbt_runtime.name_flag_sources_from_frames()\n"
            "root = Path(sys.argv[1])\nrun_dbt(['run'], DbtTarget(project_dir=root, profiles_dir=root))\n"
            "print(json.dumps(dbt_runtime.counts()))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["template_misses"] > 0 and counts["serializer_misses"] > 0 and counts["schema_misses"] > 0


class _HasDict:
    def to_dict(self, omit_none: bool = True) -> dict:
        return {"kept": 1} if omit_none else {"kept": 1, "none": None}


def test_artifacts_are_written_with_the_same_text_as_dbt_writes_them(tmp_path):
    from dbt.artifacts.schemas import base
    from dbt.artifacts.schemas.run.v5 import run
    from dbt_common.clients import system

    dbt_runtime.write_artifacts_in_one_call()
    assert base.write_json is run.write_json is not system.write_json
    doc = {"metadata": {"generated_at": datetime.datetime(2026, 12, 2, 20, 0, 1, 123456),
                        "day": datetime.date(2026, 1, 2)},
           "nodes": {"model.x.é": {"rate": decimal.Decimal("1.25"), "f": 0.1 + 0.2, "big": 10**20, "t": True,
                                   "n": None, "s": 'quote " and \\ and \u2028 and 🌱', "l": [1, 2.5, "x"]}},
           "undefined": jinja2.Undefined(), "error": ValueError("boom"), "obj": _HasDict(), "empty": {}}
    base.write_json(str(tmp_path / "new" / "manifest.json"), doc)
    system.write_json(str(tmp_path / "dbt" / "manifest.json"), doc)
    assert (tmp_path / "new" / "manifest.json").read_bytes() == (tmp_path / "dbt" / "manifest.json").read_bytes()


def test_a_behavior_flag_s_source_is_the_module_dbt_common_would_name(tmp_path, monkeypatch):
    """A flag without a `source` is named after the module that declared it: read from the frames' globals, the
    same module dbt-common's own lookup (`inspect.stack()`) names, for a module of its own file and for this one."""
    from dbt_common.behavior_flags import BehaviorFlagRendered

    dbt_runtime.name_flag_sources_from_frames()
    original = dbt_runtime._Shared.originals["default_source"].__func__
    (tmp_path / "declaring_adapter.py").write_text(textwrap.dedent("""
        from dbt_common.behavior_flags import BehaviorFlagRendered

        def rendered(flag):
            return BehaviorFlagRendered(flag, {})

        def named_by(lookup):
            return lookup()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import declaring_adapter

    flag = {"name": "some_flag", "default": False, "description": "what it changes"}
    assert declaring_adapter.rendered(flag)._behavior_change_event.flag_source == "declaring_adapter"
    assert BehaviorFlagRendered(flag, {})._behavior_change_event.flag_source == __name__
    assert declaring_adapter.named_by(original) == declaring_adapter.named_by(dbt_runtime._calling_module) == (
        "declaring_adapter")
    assert BehaviorFlagRendered(dict(flag, source="dbt-duckdb"), {})._behavior_change_event.flag_source == (
        "dbt-duckdb")


class _Cycle:
    """An object in a reference cycle: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_during_a_run_the_collector_leaves_older_objects_alone_and_afterwards_collects_them(tmp_path):
    """While dbt runs, what existed before is frozen and young objects are collected every YOUNG_THRESHOLD
    allocations; after it, nothing is frozen, the thresholds are the process's own, and a cycle that was garbage
    when the run began is collected by the next pass: the run never keeps an object alive."""
    import gc
    import weakref

    where = _project(tmp_path, "hello")
    threshold = gc.get_threshold()
    gc.disable()  # until the run has begun, so no pass collects the cycle before it (the first run installs things)
    try:
        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage
        thresholds: set[tuple[int, int, int]] = set()
        frozen: list[int] = []

        def look(event) -> None:
            gc.enable()  # the run has begun: from here only the freeze keeps the cycle from a pass
            thresholds.add(gc.get_threshold())
            if event.info.name in ("NodeStart", "NodeFinished"):  # counting frozen objects walks them all: twice
                frozen.append(gc.get_freeze_count())

        run_dbt(["run"], where, callbacks=[look])
    finally:
        gc.enable()
    assert len(frozen) == 2 and all(count > 0 for count in frozen)
    assert thresholds == {(dbt_runtime.YOUNG_THRESHOLD, *threshold[1:])}
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold
    assert gone() is not None  # nothing has collected it yet (a pass during the run would have, unfrozen)
    gc.collect()
    assert gone() is None
    assert _greeting(tmp_path) == "hello, world"


@pytest.fixture(autouse=True)
def _dbt_lets_go_of_the_files():
    yield
    from sync_runner.project.target import release_dbt_duckdb

    release_dbt_duckdb()
