"""Another process holding a DuckDB file open: what a `dbt build` in a terminal, a long sync or a second studio
does to every other process that wants the file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """import duckdb, sys, time
deadline = time.monotonic() + {wait}
while True:
    try:
        con = duckdb.connect({path!r})
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
print('held', flush=True)
sys.stdin.read()
"""


@contextmanager
def duckdb_held(database: Path, wait: float = 30.0) -> Iterator[subprocess.Popen]:
    """A process that opens `database` (waiting up to `wait` s for it to be free: a studio lets go of it when
    idle) and holds it until the block ends; yields the process (its `pid` is what DuckDB's refusal names)."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD.format(wait=wait, path=str(database))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
