"""YAML read with libyaml's parser when PyYAML has it, PyYAML's own otherwise; what was read is kept by its text.

A kept command reads five or six small YAML files on every run (dbt_project.yml, packages.yml, dbt_studio.yml,
sometimes profiles.yml) before it does anything: PyYAML's pure-Python parser took 1.4 ms for the benchmark
project's five files, libyaml's 0.2 ms, and real projects' files are longer. Both build the values with the same
safe constructor and resolver, so they are the same values. A text libyaml refuses is parsed again by PyYAML's
parser, whose error (and its line, column and wording) is the one users are told, as `Invalid`.

Importing PyYAML takes 10-13 ms (its resolver and reader compile their patterns), a twentieth of a 10k-row sync
from process start, for files that seldom change. So a command that was told where to keep them (`keep_in`, the
project's target dir) keeps what each text parsed to, by the text's SHA-256 and the version of PyYAML that
parsed it, in `dbt_studio_yaml.marshal`, and imports PyYAML only for a text it has not seen. Kept values are
what PyYAML built (only those marshal writes and reads back equal: no dates), and every read of a kept text is a
fresh copy, as a parse is. Texts are kept as parsed, never rendered: `env_var` calls are still calls there.
A profiles.yml text is never kept (`keep=False`): it may hold a password written in it; nor is a dbt_studio.yml
found in the profiles dir (sync/config.py). The file is written when the command has done its work (`flush`),
never by one refused for bad input.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import marshal
from pathlib import Path
from typing import Any

from sync_runner.core.installed import versions
from sync_runner.core.paths import write_whole

KEPT_FILE = "dbt_studio_yaml.marshal"
MAX_KEPT = 64  # texts kept in one file: those the command that writes it read, then the newest others


class Invalid(ValueError):
    """A text that is not YAML: PyYAML's error, with where (`problem_mark`) and why (`problem`, `context`)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.problem_mark = getattr(error, "problem_mark", None)
        self.problem: str | None = getattr(error, "problem", None)
        self.context: str | None = getattr(error, "context", None)


class _Kept:
    """The values of the texts read in one directory: loaded on first use, written by `flush()`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / KEPT_FILE
        self.blobs: dict[str, bytes] | None = None  # key -> marshal of the value
        self.used: dict[str, None] = {}  # the keys this process read or added, in order
        self.added = False

    def get(self, key: str) -> Any:
        if self.blobs is None:
            self.blobs = {}
            with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
                loaded = marshal.loads(self.path.read_bytes())
                if isinstance(loaded, dict):
                    self.blobs = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, bytes)}
        blob = self.blobs.get(key)
        if blob is None:
            raise KeyError(key)
        self.used[key] = None
        return marshal.loads(blob)

    def add(self, key: str, value: Any) -> None:
        try:
            blob = marshal.dumps(value)
            if marshal.loads(blob) != value:  # (a NaN is never equal to itself: such a text is parsed each time)
                return
        except ValueError:  # a value marshal cannot write (a date)
            return
        assert self.blobs is not None  # (get() ran first)
        self.blobs.pop(key, None)
        self.blobs[key] = blob
        self.used[key] = None
        self.added = True

    def write(self) -> None:
        if not self.added or self.blobs is None:
            return
        self.added = False
        others = [k for k in self.blobs if k not in self.used]  # oldest first
        keys = [*others[max(0, len(others) + len(self.used) - MAX_KEPT):], *self.used][-MAX_KEPT:]
        self.blobs = {k: self.blobs[k] for k in keys}  # (a long `serve` of many edits holds no more than the file)
        self.used = {k: None for k in self.used if k in self.blobs}
        write_whole(self.path, marshal.dumps(self.blobs))  # (a read-only target dir: the next command parses again)


_kept: _Kept | None = None


def keep_in(directory: Path | None) -> None:
    """Keep what texts parse to in `directory` (a project's target dir, which is not made if it is not there)
    from now on in this process; None keeps nothing. Another directory than the one kept in drops what was added
    there and not flushed; the same one changes nothing."""
    global _kept
    if _kept is not None and directory is not None and _kept.path == directory / KEPT_FILE:
        return
    _kept = _Kept(directory) if directory is not None and directory.is_dir() else None


def flush() -> None:
    """Write the texts parsed since the last flush to the kept file: once a command has done its work
    (project/artifacts.py `keep`), so a command refused for bad input leaves the project as it was."""
    if _kept is not None:
        _kept.write()


def safe_load(text: str, keep: bool = True) -> Any:
    """`yaml.safe_load(text)`, from the kept values when this text was read before; `Invalid` when it is not YAML."""
    if not keep or _kept is None:
        return _parse(text)
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() + "/" + _pyyaml_version()
    try:
        return _kept.get(key)
    except KeyError:
        pass
    value = _parse(text)
    _kept.add(key, value)
    return value


def _parse(text: str) -> Any:
    import yaml  # (10-13 ms: only for a text not kept)

    fast: Any = getattr(yaml, "CSafeLoader", None)  # absent when PyYAML was built without libyaml
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # (the safe constructor, in C)
        except yaml.YAMLError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise Invalid(exc) from None


@functools.cache
def _pyyaml_version() -> str:
    """PyYAML's version as installed, read without importing it: a kept value is only taken from the PyYAML that
    made it."""
    return versions(["PyYAML"])["PyYAML"]
