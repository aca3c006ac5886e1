"""dbt's macro namespaces built with fewer Python calls, for the test harness (installed by conftest).

Every node dbt compiles or runs, and every adapter macro a materialization calls (drop, rename, get columns), gets
a context of its own holding a generator for each of the ~900 macros of dbt, the adapter and the packages: 168
contexts a plant-store build, a sixth of its CPU. dbt makes each generator through three `__init__`s, files it
through two methods, then copies the namespace into the context key by key through `Mapping.__getitem__`, which
searches five dicts for each key. `build_namespace` here makes the same generators (same class, same attributes)
in the same dicts, in the same order; `to_dict` copies the namespace in one `update` from a dict merged in the
namespace's own search order (the first dict that has a key wins). `tests/test_harness.py` compares the contexts
both build.
"""

from __future__ import annotations

from typing import Any

from dbt.clients.jinja import MacroGenerator
from dbt.context.macros import MacroNamespace, MacroNamespaceBuilder
from dbt.context.manifest import ManifestContext
from dbt.exceptions import DuplicateMacroNameError
from dbt.include.global_project import PROJECT_NAME as GLOBAL_PROJECT_NAME

ORIGINAL_BUILD = MacroNamespaceBuilder.build_namespace
ORIGINAL_TO_DICT = ManifestContext.to_dict


def build_namespace(self: Any, macros_by_package: dict[str, dict[str, Any]], ctx: dict[str, Any]) -> Any:
    """MacroNamespaceBuilder.build_namespace, the same result."""
    new = object.__new__
    node, stack = self.node, self.thread_ctx
    internal, search, root = self.internal_package_names, self.search_package, self.root_package
    for package in macros_by_package.values():
        for macro in package.values():
            generator = new(MacroGenerator)
            generator.__dict__ = {"context": ctx, "macro": macro, "node": node, "stack": stack}  # what the three
            # __init__s set, in their order
            name, owner = macro.name, macro.package_name
            hierarchy = self.internal_packages if owner in internal else self.packages
            namespace = hierarchy.get(owner)
            if namespace is None:
                namespace = hierarchy[owner] = {}
            if name in namespace:
                raise DuplicateMacroNameError(macro, macro, owner)  # (as dbt names them)
            namespace[name] = generator
            if owner in internal:
                continue
            if owner == search:
                self.locals[name] = generator
            elif owner == root:
                self.globals[name] = generator
    global_project_namespace: dict[str, Any] = {}
    for package_name in reversed(self.internal_package_names_order):
        if package_name in self.internal_packages:
            global_project_namespace.update(self.internal_packages[package_name])
    return MacroNamespace(global_namespace=self.globals, local_namespace=self.locals,
                          global_project_namespace=global_project_namespace, packages=self.packages)


def flat(namespace: Any) -> dict[str, Any]:
    """The namespace as one dict: what `namespace[key]` answers for each of its keys."""
    merged = dict(namespace.global_project_namespace)  # last in the search order: first here, overwritten
    merged[GLOBAL_PROJECT_NAME] = namespace.global_project_namespace
    merged.update(namespace.packages)
    merged.update(namespace.global_namespace)
    merged.update(namespace.local_namespace)
    return merged


def install() -> None:
    def to_dict(self: Any) -> dict[str, Any]:
        if type(self.namespace) is not MacroNamespace:  # (dbt's unit tests' namespace: dbt's own way)
            return ORIGINAL_TO_DICT(self)
        dct = super(ManifestContext, self).to_dict()
        dct.update(flat(self.namespace))
        return dct

    MacroNamespaceBuilder.build_namespace = build_namespace  # type: ignore[method-assign]
    ManifestContext.to_dict = to_dict  # type: ignore[method-assign]
