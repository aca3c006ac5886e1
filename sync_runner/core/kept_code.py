"""The methods of this package's dataclasses made from kept compiled code instead of compiled again per process.

`dataclasses` writes each method it generates (`__init__`, `__repr__`, `__eq__`, `__hash__`, a frozen class's
`__setattr__` and `__delattr__`) as source text and compiles it, every time a class is made: the 36 dataclasses
made when the sync engine is imported cost 25-29 ms of every command's start on Python 3.11, 87 % of it in
`compile`. Here the compiled code of each text is kept in `sync_runner/__pycache__/dataclasses.<tag>.marshal`,
next to the interpreter's own bytecode and under the same rules, and reused while the text is the same: executing
the same code object in the same namespaces is what executing the text does (it is compiled as `exec` compiles
it, without this module's `__future__` flags).

- Only classes of this package are kept (the text's module is ours); any other class is made as before.
- The text is the key: a class with other fields or annotations is another text, and old code is never run for
  it (default values are not in the text: `dataclasses` passes them to the code it compiled). The file is read only by
  the Python that wrote it (its `sys.version` heads the file); a file that cannot be read is no cache at all.
- The file is written like a bytecode file: not when PYTHONDONTWRITEBYTECODE is set (sys.dont_write_bytecode) or
  the folder cannot be written, whole, through a temporary file renamed into place, once per process at exit
  and only when the process compiled a text the file did not hold. It holds what earlier processes kept too, up
  to MAX_KEPT texts (the package makes about 300); past that, only this process's.
- DBT_STUDIO_KEPT_CODE=0 turns it off: every class is compiled as `dataclasses` does it.
"""

from __future__ import annotations

import atexit
import builtins
import dataclasses
import marshal
import os
import sys
from pathlib import Path
from types import CodeType
from typing import Any

from sync_runner.core.paths import write_whole

PACKAGE = __name__.split(".")[0]
MAX_KEPT = 3000  # texts in the file: past it (old versions of classes piling up), the file keeps this process's
FILE = Path(__file__).resolve().parent.parent / "__pycache__" / f"dataclasses.{sys.implementation.cache_tag}.marshal"

_codes: dict[str, CodeType] = {}
_compiled_here = False


def _exec(source: Any, globals_: dict[str, Any] | None = None, locals_: Any = None) -> None:
    """`exec` as `dataclasses` calls it, with a kept code object for a text generated for one of our classes."""
    global _compiled_here
    module = str((globals_ or {}).get("__name__", ""))
    if isinstance(source, str) and (module == PACKAGE or module.startswith(PACKAGE + ".")):
        code = _codes.get(source)
        if code is None:
            code = _codes[source] = compile(source, "<string>", "exec", dont_inherit=True)
            _compiled_here = True
        source = code
    # (no globals: `dataclasses`' own, which a call of exec written in dataclasses.py would have used)
    builtins.exec(source, vars(dataclasses) if globals_ is None else globals_, locals_)


def _load(path: Path) -> dict[str, CodeType]:
    try:
        version, codes = marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if version != sys.version or not isinstance(codes, dict):
        return {}
    return {k: v for k, v in codes.items() if isinstance(k, str) and isinstance(v, CodeType)}


def save(path: Path = FILE) -> bool:
    """Write the kept code if this process compiled a text the file did not hold; whether it wrote."""
    if not _compiled_here or sys.dont_write_bytecode:
        return False
    kept = {**_load(path), **_codes}
    # (a read-only install writes nothing: no cache, as for bytecode files)
    return write_whole(path, marshal.dumps((sys.version, kept if len(kept) <= MAX_KEPT else _codes)),
                       make_folder=True)


def install() -> None:
    """Make this package's dataclasses from kept code from now on in this process (once; sync_runner/__init__)."""
    if getattr(dataclasses, "exec", None) is _exec or os.environ.get("DBT_STUDIO_KEPT_CODE") == "0":
        return
    _codes.update(_load(FILE))
    dataclasses.exec = _exec  # type: ignore[attr-defined]  # (looked up in the module before the builtin)
    atexit.register(save)
