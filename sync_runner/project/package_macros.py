"""The package's own Jinja macros, run in Python from the copy dbt recorded in manifest.json.

`dbt-studio validate` must give the answer `dbt compile` gives, and it runs without a warehouse connection (only
target/manifest.json). Rather than a second copy of rules that live in a macro, it runs that macro: dbt records each
macro's source (`macro_sql`) in the manifest, exactly as the project compiled it, and the macros used this way are
plain Jinja with dbt's two additions this host provides — `{{ return(value) }}` and
`exceptions.raise_compiler_error(message)` — plus the `dbt_studio.` namespace for calls between them. Macros that
need an adapter, `ref` or the graph cannot run here; only pure ones are meant to.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache

from sync_runner.core.errors import UserError
from sync_runner.core.paths import write_whole

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


# Compiled code waiting to be written (path -> Jinja's bytecode file): see `_KeptCode` and `keep_compiled`.
_PENDING: dict[Path, bytes] = {}


class _KeptCode(jinja2.BytecodeCache):
    """The macros' compiled Python code, kept in the project's target dir between commands.

    Compiling the schema rules' Jinja took 70-110 ms of each `validate`; loading the code Jinja compiled takes a
    few. Jinja itself checks a kept file before using it: the checksum of the exact source (the macros as this
    manifest records them), its own bytecode format and Python's version; anything else compiles afresh, so old
    code never runs. New code is not written when compiled but when the command that compiled it has done its
    work (`keep_compiled`): a `validate` that finds problems changes no file."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def _path(self, bucket: jinja2.bccache.Bucket) -> Path | None:
        return None if self.folder is None else self.folder / f"dbt_studio_macros_{bucket.key}.jinja"

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        path = self._path(bucket)
        if path is None:
            return
        blob = _PENDING.get(path)
        if blob is None:
            try:
                blob = path.read_bytes()
            except OSError:
                return
        try:
            bucket.load_bytecode(io.BytesIO(blob))
        except Exception:  # a truncated or foreign file (Jinja checks the header, not the rest): compile afresh
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        path = self._path(bucket)
        if path is not None:
            out = io.BytesIO()
            bucket.write_bytecode(out)
            _PENDING[path] = out.getvalue()


def keep_compiled(folder: Path) -> None:
    """Write the code of the macros this process compiled for the project whose target dir is `folder`, once a
    command has done its work (a read-only target dir keeps nothing: the next command compiles again)."""
    for path in [p for p in _PENDING if p.parent == folder]:
        write_whole(path, _PENDING.pop(path))


class PackageMacros:
    """The dbt_studio macros of the given macro files, callable as `macros.call("_schema", nodes, [])`.

    `folder` (the project's target dir) keeps their compiled code between commands (`_KeptCode`)."""

    def __init__(self, manifest: Mapping[str, Any], *files: str, folder: Path | None = None) -> None:
        sources = []
        for file in files:
            found = [m.get("macro_sql") or "" for m in (manifest.get("macros") or {}).values()
                     if m.get("package_name") == PACKAGE and str(m.get("original_file_path", "")).endswith(file)]
            if not found:
                raise UserError(f"manifest.json has no macros of {PACKAGE}'s {file}: run dbt deps, then dbt parse")
            sources += found
        # the name keys the kept code; Jinja's version is in it as its compiled code may change between releases
        name = f"{PACKAGE}:{'+'.join(files)}@jinja-{jinja2.__version__}"
        env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
                                 loader=jinja2.DictLoader({name: "\n".join(sources)}),
                                 bytecode_cache=_KeptCode(folder), auto_reload=False)
        env.globals.update({"return": _return, "exceptions": _Exceptions(), "execute": False, PACKAGE: self})
        template = env.get_template(name)
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
