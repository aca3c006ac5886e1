"""Destinations by type name: `dbt_studio.yml` says `type: http`, this registry gives the class.

Every module of this package is imported and each `Destination` subclass with a `type` is registered, so a new
destination is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Batch, BatchResult, Destination, Terminal, Transient


def _registry() -> dict[str, type[Destination]]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    found: dict[str, type[Destination]] = {}
    pending = list(Destination.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.type and cls.__module__.startswith(__name__):
            found[cls.type] = cls
    return dict(sorted(found.items()))


REGISTRY: dict[str, type[Destination]] = _registry()

__all__ = ["REGISTRY", "Batch", "BatchResult", "Destination", "Terminal", "Transient"]
