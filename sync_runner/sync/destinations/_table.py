"""What the table destinations (DuckDB, PostgreSQL) share: where the table is, and safe identifiers."""

from __future__ import annotations

import re

from .base import Destination, Terminal

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class TableDestination(Destination):
    """A destination that upserts and deletes by key in one table (its `schema` default differs per database)."""

    def _configure_table(self) -> None:
        self.table_name = str(self.config["table"])
        self.schema = str(self.setting("schema"))
        self.key = str(self.setting("key_column"))
        for label, value in (("table", self.table_name), ("schema", self.schema), ("key_column", self.key)):
            if not _IDENT.match(value):  # names are quoted too; this keeps config mistakes readable
                raise Terminal(f"destination '{self.name}': {label} {value!r} is not a plain identifier")
        self.qualified = f"{quote(self.schema)}.{quote(self.table_name)}"
