"""The house rules of sync_runner's imports: they run one way, every module imports on its own, and no module
reaches for another module's private names.

Layers, lowest first (a module may import lower layers, and modules of its own package in the same layer):

    core  <  project, sync.destinations, sync.alerts, sync.safeguards  <  audiences, sync.config, sync.delivery,
          sync.state  <  sync.engine, sync.exposures, sync.runs  <  sync.orchestrate  <  validate, reference, serve,
          demo  <  cli

The package itself (sync_runner/__init__.py) imports only core: what must hold before any module of it is
imported (core/kept_code.py, which the package's dataclasses are made with).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sync_runner"

# The longest matching prefix decides a module's layer.
LAYERS = {
    "sync_runner": 0,
    "sync_runner.core": 0,
    "sync_runner.project": 1,
    "sync_runner.sync.destinations": 1,
    "sync_runner.sync.alerts": 1,
    "sync_runner.sync.safeguards": 1,
    "sync_runner.audiences": 2,
    "sync_runner.sync.config": 2,
    "sync_runner.sync.delivery": 2,
    "sync_runner.sync.state": 2,
    "sync_runner.sync.engine": 3,
    "sync_runner.sync.exposures": 3,
    "sync_runner.sync.runs": 3,
    "sync_runner.sync.orchestrate": 4,
    "sync_runner.validate": 5,
    "sync_runner.reference": 5,
    "sync_runner.serve": 5,
    "sync_runner.demo": 5,
    "sync_runner.cli": 6,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def home(module: str) -> str:
    """The LAYERS key a module belongs to."""
    return max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)


def layer(module: str) -> int:
    return LAYERS[home(module)]


def imports_of(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of sync_runner that runs, lazy ones included
    (imports under `if TYPE_CHECKING:` are for annotations only)."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(
        block.test) for stmt in block.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if id(node) in type_only:  # never runs: annotations only, so no cycle at import time
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "sync_runner"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "sync_runner":
                out.append((target, [a.name for a in node.names], node.lineno))
    return out


def resolve(target: str, name: str, known: dict[str, Path]) -> str:
    """`from pkg import name` imports the submodule pkg.name when there is one."""
    return f"{target}.{name}" if f"{target}.{name}" in known else target


def edges() -> list[tuple[str, str, list[str], int]]:
    known = modules()
    out = []
    for module, path in known.items():
        for target, names, line in imports_of(module, path):
            for name in names or [""]:
                out.append((module, resolve(target, name, known) if name else target, [name] if name else [], line))
    return out


def test_the_layer_map_names_every_module():
    assert all(home(m) for m in modules())


def test_imports_run_one_way():
    wrong = []
    for module, target, _names, line in edges():
        if target == module or target == "sync_runner":
            continue
        if module == "sync_runner" and home(target) == "sync_runner.core":  # the package's own start (docstring)
            continue
        same_package = home(module) == home(target)
        if layer(target) > layer(module) or (layer(target) == layer(module) and not same_package):
            wrong.append(f"{module}:{line} imports {target} (layer {layer(target)} from layer {layer(module)})")
    assert wrong == []


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for module, target, _names, _line in edges():
        if target != module:
            graph.setdefault(module, set()).add(target)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else nxt)
            elif not state.get(nxt):
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [node])
    assert cycles == []


def test_no_module_imports_another_modules_private_names():
    """A package's private submodules (destinations/_api.py) serve that package only; private names none."""
    private = []
    for module, target, names, line in edges():
        parent = module.rsplit(".", 1)[0]
        for name in names:
            own_submodule = target.rsplit(".", 1)[0] == parent and target.endswith("." + name)
            if name.startswith("_") and not name.startswith("__") and target != module and not own_submodule:
                private.append(f"{module}:{line} takes {name} from {target}")
            elif target.rsplit(".", 1)[-1].startswith("_") and target.rsplit(".", 1)[0] != parent:
                private.append(f"{module}:{line} imports the private module {target} of another package")
    assert private == []


def test_the_rules_catch_a_wrong_import(tmp_path):
    """The checks above would see an upward import and a private one (they read the same AST shapes)."""
    path = tmp_path / "engine.py"
    path.write_text("from sync_runner.cli import main\nfrom ..project.target import _private\n", encoding="utf-8")
    found = imports_of("sync_runner.sync.engine", path)
    assert ("sync_runner.cli", ["main"], 1) in found and ("sync_runner.project.target", ["_private"], 2) in found
    assert layer("sync_runner.cli") > layer("sync_runner.sync.engine")


@pytest.mark.parametrize("chunk", range(4))
def test_every_module_imports_alone_in_a_fresh_interpreter(chunk):
    """Run alone, no module depends on another having been imported first (an import cycle shows up here)."""
    names = sorted(modules())[chunk::4]

    def load(name: str) -> tuple[str, int, str]:
        run = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT)
        lines = run.stderr.strip().splitlines()
        return name, run.returncode, lines[-1] if lines else ""

    with ThreadPoolExecutor(2) as pool:
        failed = [f"{n}: {err}" for n, rc, err in pool.map(load, names) if rc]
    assert failed == []
