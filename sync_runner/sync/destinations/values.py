"""Turning warehouse values into what JSON APIs can carry."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from typing import TYPE_CHECKING, Any

import orjson

from .base import JsonRecords

if TYPE_CHECKING:
    from collections.abc import Sequence


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for values JSON has no type for."""
    if isinstance(value, decimal.Decimal):
        as_float = float(value)  # a number when it round-trips exactly, else the exact digits as a string
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def clean(value: Any) -> Any:
    """NaN and infinities become null: JSON cannot carry them and most APIs reject them."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def dumps(document: Any) -> bytes:
    """Compact UTF-8 JSON. orjson encodes a batch of records about ten times faster than `json` — on the
    sender threads that share the GIL with the page reader this is most of a sync's CPU; `json` takes over
    for what orjson refuses (integers beyond 64 bits, non-string keys)."""
    try:
        return orjson.dumps(document, default=json_default)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(document, default=json_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dumps_records(records: Sequence[dict[str, Any]]) -> bytes:
    """Records as one JSON array: the warehouse's texts joined when it wrote them (destinations/base.py,
    JsonRecords), else `dumps`."""
    return records.json() if isinstance(records, JsonRecords) else dumps(list(records))
