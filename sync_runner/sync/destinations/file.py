"""`file`: every change of a run into one file (JSONL, CSV or Parquet), renamed into place when the run ends.

A file is only there once complete, so state is committed after the rename: a crash leaves a temporary file
behind and no state change, and the next run writes the same changes again.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sync_runner.core.fields import Choice, Option, Text

from .base import Batch, BatchResult, Destination, Terminal
from .values import json_default

FORMATS = ("jsonl", "csv", "parquet")


class FileDestination(Destination):
    type = "file"
    options = (
        Option("path", Text(), "directory to write into, relative to the project (created if missing)",
               required=True),
        Option("format", Choice(("jsonl", "csv", "parquet")), "the file format", default="jsonl"),
        Option("base_url", Text(), "replaces path (tests)"),
    )
    max_rows = 50_000
    concurrency = 1
    commits_on_close = True
    wants_table = True  # csv and parquet are written from typed Arrow

    def open(self) -> None:
        fmt = self.setting("format")
        if fmt not in FORMATS:
            raise Terminal(f"destination '{self.name}': format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.directory = self.local_path(self.config.get("base_url") or self.config["path"])
        self.directory.mkdir(parents=True, exist_ok=True)
        self.final = self.directory / f"{self.sync_name}-{self.run_id}.{fmt}"
        self.partial = self.directory / f".{self.final.name}.partial"
        self.fmt = fmt
        self._writer: Any = None
        self._fh: Any = None

    def send(self, batch: Batch) -> BatchResult:
        if self.fmt == "jsonl":
            if self._fh is None:
                self._fh = self.partial.open("w", encoding="utf-8")
            for record, key in zip(batch.records, batch.keys, strict=True):
                line = {"_op": batch.op, "_key": key, **record}
                self._fh.write(json.dumps(line, default=json_default, ensure_ascii=False) + "\n")
            return BatchResult()
        import pyarrow as pa  # (loaded by now: a table destination's pages are read as Arrow)

        typed = batch.typed()
        table = typed.append_column("_op", pa.array([batch.op] * typed.num_rows, pa.string()))
        table = table.append_column("_key", pa.array(batch.keys, pa.string()))
        if self.fmt == "csv":
            if self._writer is None:
                import pyarrow.csv as pacsv

                self._writer = pacsv.CSVWriter(str(self.partial), table.schema)
            self._writer.write_table(table.cast(self._writer.schema) if table.schema != self._writer.schema else table)
        else:
            if self._writer is None:
                import pyarrow.parquet as pq  # only a parquet sync pays for importing it

                self._writer = pq.ParquetWriter(str(self.partial), table.schema)
            self._writer.write_table(table.cast(self._writer.schema) if table.schema != self._writer.schema else table)
        return BatchResult()

    def close(self, success: bool) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        if self._writer is not None:
            self._writer.close()
        if not self.partial.exists():
            return
        if success:
            os.replace(self.partial, self.final)
        else:
            self.partial.unlink(missing_ok=True)
