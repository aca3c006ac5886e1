"""The registry of destination types: every class the package's modules define, each module imported only when
its type is read."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import sync_runner.sync.destinations as package
from sync_runner.sync.destinations import REGISTRY, Destination


def _defined_by_the_modules() -> dict[str, type[Destination]]:
    """Every Destination subclass with a type that a module of the package defines: each module imported, then
    the subclasses walked (the reference the registry's table must equal)."""
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    found: dict[str, type[Destination]] = {}
    pending = list(Destination.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.type and cls.__module__.startswith(package.__name__ + "."):
            assert cls.type not in found, f"two classes of type {cls.type}"
            found[cls.type] = cls
    return found


def test_the_registry_holds_every_type_the_modules_define():
    defined = _defined_by_the_modules()
    assert len(defined) == 15
    assert dict(REGISTRY.items()) == defined
    assert list(REGISTRY) == sorted(defined)
    assert "http" in REGISTRY and "hubspt" not in REGISTRY and 3 not in REGISTRY and ["http"] not in REGISTRY
    assert REGISTRY.get("hubspt") is None


READ_ONE = """
import sys
from sync_runner.sync.destinations import REGISTRY
names = list(REGISTRY)
cls = REGISTRY["file"]
prefix = "sync_runner.sync.destinations."
print(cls.type, len(names), ",".join(sorted(m[len(prefix):] for m in sys.modules if m.startswith(prefix))))
"""


def test_reading_a_type_imports_its_module_and_no_other():
    done = subprocess.run([sys.executable, "-c", READ_ONE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["file", "15", "base,file,values"]  # the shared modules it uses and its own
