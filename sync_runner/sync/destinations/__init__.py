"""Destinations by type name: `dbt_studio.yml` says `type: http`, this registry gives the class.

Each type lives in one module of this package, imported the first time its type is asked for: a sync to one
destination does not import the other fourteen (importing them all was 30 ms of every command's start).
`_MODULES` names each type's module; a test checks it against the classes every module of the package defines,
so a new destination is its module and its line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from .base import Batch, BatchResult, Destination, Terminal, Transient

_MODULES = {  # type -> module
    "braze": "braze",
    "customerio": "customerio",
    "duckdb": "duckdb_table",
    "file": "file",
    "google_ads_customer_match": "google_ads",
    "http": "http",
    "hubspot": "hubspot",
    "iterable": "iterable",
    "klaviyo": "klaviyo",
    "mailchimp": "mailchimp",
    "meta_custom_audience": "meta_audience",
    "postgres": "postgres",
    "rudderstack": "rudderstack",
    "salesforce": "salesforce",
    "segment": "segment",
}


class _Registry(Mapping[str, type[Destination]]):
    """The destination classes by type, in the order of their names; a class is imported when it is read."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Destination]] = {}

    def __getitem__(self, name: str) -> type[Destination]:
        cls = self._classes.get(name)
        if cls is None:
            module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
            cls = next(c for c in vars(module).values()
                       if isinstance(c, type) and issubclass(c, Destination) and c.type == name)
            self._classes[name] = cls
        return cls

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in _MODULES  # (a list from YAML is no type, not a TypeError)

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


REGISTRY: Mapping[str, type[Destination]] = _Registry()

__all__ = ["REGISTRY", "Batch", "BatchResult", "Destination", "Terminal", "Transient"]
