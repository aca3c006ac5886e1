"""The package's own Jinja macros, run in Python from the copy dbt recorded in manifest.json.

`dbt-studio validate` must give the answer `dbt compile` gives, and it runs without a warehouse connection (only
target/manifest.json). Rather than a second copy of rules that live in a macro, it runs that macro: dbt records each
macro's source (`macro_sql`) in the manifest, exactly as the project compiled it, and the macros used this way are
plain Jinja with dbt's two additions this host provides — `{{ return(value) }}` and
`exceptions.raise_compiler_error(message)` — plus the `dbt_studio.` namespace for calls between them. Macros that
need an adapter, `ref` or the graph cannot run here; only pure ones are meant to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jinja2

from sync_runner.core.errors import UserError

PACKAGE = "dbt_studio"


class CompilerError(Exception):
    """What `exceptions.raise_compiler_error` raised inside a macro."""


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def _return(value: Any) -> None:
    raise _Return(value)


def _raise_compiler_error(message: str) -> None:
    raise CompilerError(message)


class _Exceptions:
    raise_compiler_error = staticmethod(_raise_compiler_error)


class PackageMacros:
    """The dbt_studio macros of the given macro files, callable as `macros.call("_schema", nodes, [])`."""

    def __init__(self, manifest: Mapping[str, Any], *files: str) -> None:
        sources = []
        for file in files:
            found = [m.get("macro_sql") or "" for m in (manifest.get("macros") or {}).values()
                     if m.get("package_name") == PACKAGE and str(m.get("original_file_path", "")).endswith(file)]
            if not found:
                raise UserError(f"manifest.json has no macros of {PACKAGE}'s {file}: run dbt deps, then dbt parse")
            sources += found
        env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
        env.globals.update({"return": _return, "exceptions": _Exceptions(), "execute": False, PACKAGE: self})
        template = env.from_string("\n".join(sources))
        context = template.new_context()
        for _ in template.root_render_func(context):  # defines the macros (a module would hide the `_private` ones)
            pass
        self._macros: dict[str, Any] = dict(context.vars)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__") or name not in self.__dict__.get("_macros", {}):
            raise AttributeError(name)
        macro = self._macros[name]

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return macro(*args, **kwargs)
            except _Return as returned:
                return returned.value

        return call

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, name)(*args, **kwargs)
