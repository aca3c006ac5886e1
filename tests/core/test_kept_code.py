"""The package's dataclasses made from kept compiled code (sync_runner/core/kept_code.py): the same classes as
`dataclasses` makes from source, kept across processes, never reused for another text, and only ours."""

from __future__ import annotations

import builtins
import dataclasses
import inspect
import marshal
import os
import subprocess
import sys
import types
import uuid
from pathlib import Path

import pytest

from sync_runner.core import kept_code

PROBE = '''
from __future__ import annotations
from dataclasses import dataclass, field

@dataclass(frozen=True)
class Probe:
    """A class of every shape the package uses: frozen, defaults, a factory, a field left out of repr."""
    name: str
    COUNT: int = 3
    tags: list[str] = field(default_factory=list)
    secret: str = field(default="", repr=False)
'''


def _made(module: str, count: str = "count") -> type:
    """`Probe`, made in a new module of that name (as importing a module of ours makes its classes), with its
    second field named `count`."""
    namespace = types.ModuleType(module)
    sys.modules[module] = namespace
    try:
        builtins.exec(PROBE.replace("COUNT", count), namespace.__dict__)
    finally:
        del sys.modules[module]
    return namespace.Probe


def test_a_class_made_from_kept_code_is_the_class_made_from_source(monkeypatch):
    assert dataclasses.exec is kept_code._exec  # installed by the package's import  # type: ignore[attr-defined]
    kept = _made("sync_runner._probe")
    kept_again = _made("sync_runner._probe")  # the second is made from the code the first compiled
    monkeypatch.setattr(dataclasses, "exec", builtins.exec)
    plain = _made("sync_runner._probe")
    for cls in (kept, kept_again):
        assert str(inspect.signature(cls)) == str(inspect.signature(plain))
        # annotations as `dataclasses` makes them (objects, not this test's or kept_code's postponed strings)
        assert inspect.signature(cls.__init__).parameters["count"].annotation == \
            inspect.signature(plain.__init__).parameters["count"].annotation
        a, b = cls("x", 2, ["t"], "s"), plain("x", 2, ["t"], "s")
        assert repr(a) == repr(b) == "Probe(name='x', count=2, tags=['t'])"
        assert (a == cls("x", 2, ["t"], "s"), a == cls("y")) == (b == plain("x", 2, ["t"], "s"), b == plain("y"))
        assert cls("x").count == plain("x").count == 3 and cls("x").tags == [] and cls("x").tags is not cls("x").tags
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.name = "changed"  # type: ignore[misc]
        assert hash(cls("x", 2, ("t",))) == hash(cls("x", 2, ("t",)))  # type: ignore[arg-type]


def test_only_the_packages_classes_are_kept():
    before = dict(kept_code._codes)
    _made("another_package.models")
    assert kept_code._codes == before
    _made("sync_runner._probe_only", count=f"n_{uuid.uuid4().hex}")  # a field never named so: a new text
    assert len(kept_code._codes) > len(before)


READ_AND_MAKE = '''
import sys
from pathlib import Path
from sync_runner.core import kept_code
import atexit
atexit.unregister(kept_code.save)  # (this process writes only where the test says, below)
compiled = []
kept_code.compile = lambda *a, **k: compiled.append(1) or compile(*a, **k)
kept_code._codes.clear()
kept_code._codes.update(kept_code._load(Path(sys.argv[1])))
from dataclasses import dataclass
import types
module = types.ModuleType("sync_runner._probe_process"); sys.modules[module.__name__] = module
exec(sys.argv[2], module.__dict__)
print(len(compiled), module.Probe("x", 7), kept_code.save(Path(sys.argv[1])), sep="|")
'''


def test_code_is_kept_across_processes_and_a_changed_class_is_compiled_again(tmp_path):
    kept = tmp_path / "dataclasses.marshal"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(count: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", READ_AND_MAKE, str(kept), PROBE.replace("COUNT", count)],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().split("|")

    compiled, made, saved = run("count")
    assert int(compiled) >= 4 and (made, saved) == ("Probe(name='x', count=7, tags=[])", "True") and kept.is_file()
    assert run("count") == ["0", made, "False"]  # every method from the file: nothing compiled or written
    compiled, made, saved = run("total")  # a renamed field: other texts (__init__, __repr__, __eq__...) compiled
    assert int(compiled) >= 3 and (made, saved) == ("Probe(name='x', total=7, tags=[])", "True")
    assert run("count")[0] == run("total")[0] == "0"  # both kept, each for its own text


def test_a_file_another_python_wrote_or_a_damaged_one_is_no_cache(tmp_path):
    other = tmp_path / "other.marshal"
    other.write_bytes(marshal.dumps(("2.7.18 (default)", {"def f(): pass": compile("pass", "<string>", "exec")})))
    damaged = tmp_path / "damaged.marshal"
    damaged.write_bytes(b"\x00not marshal")
    assert kept_code._load(other) == {} and kept_code._load(damaged) == {}
    assert kept_code._load(tmp_path / "missing.marshal") == {}


def test_nothing_is_written_where_bytecode_would_not_be(tmp_path, monkeypatch):
    monkeypatch.setattr(kept_code, "_compiled_here", True)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert not kept_code.save(tmp_path / "a.marshal") and not (tmp_path / "a.marshal").exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):  # (root writes anywhere: a path under a file cannot be written by anyone)
            target = tmp_path / "a_file" / "a.marshal"
            (tmp_path / "a_file").write_text("")
        else:
            target = read_only / "a.marshal"
        assert not kept_code.save(target) and not target.exists()
    finally:
        read_only.chmod(0o700)
    assert kept_code.save(tmp_path / "b.marshal") and kept_code._load(tmp_path / "b.marshal")


def test_the_file_stops_growing_past_its_bound(tmp_path, monkeypatch):
    """Texts of classes that changed since stay in the file; past MAX_KEPT only this process's are written."""
    path = tmp_path / "kept.marshal"
    stale = {f"def old_{i}(): pass": compile("pass", "<string>", "exec") for i in range(5)}
    path.write_bytes(marshal.dumps((sys.version, stale)))
    monkeypatch.setattr(kept_code, "_compiled_here", True)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert kept_code.save(path) and set(kept_code._load(path)) == set(stale) | set(kept_code._codes)
    monkeypatch.setattr(kept_code, "MAX_KEPT", len(kept_code._codes) + 2)
    assert kept_code.save(path) and set(kept_code._load(path)) == set(kept_code._codes)


def test_it_can_be_turned_off():
    told = "import dataclasses, sync_runner; print(hasattr(dataclasses, 'exec'))"
    done = subprocess.run([sys.executable, "-c", told], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DBT_STUDIO_KEPT_CODE": "0"})
    assert done.stdout.split() == ["False"], done.stderr
    assert Path(kept_code.FILE).parent.name == "__pycache__"


def test_without_globals_the_text_runs_in_dataclasses_namespace_as_dataclasses_exec_would():
    namespace: dict = {}
    kept_code._exec("where = __name__", None, namespace)
    assert namespace["where"] == "dataclasses"
