"""dbt's events built without protobuf's JSON parser, for the test harness (installed by conftest).

Every dbt event fills its protobuf message from its keyword arguments with `google.protobuf.json_format.ParseDict`,
and `fire_event` does it again for the envelope: about 3,000 calls a `dbt build` of the plant store, a tenth of
the build's CPU, because that parser is Python code that rebuilds a name table of the message's fields on every
call. `parse_dict` does the same for the shapes dbt's events use (scalars, sub-messages, string maps, repeated
strings or messages) with one table per message type, and hands anything else to ParseDict itself: enums, bytes,
32-bit floats out of range, oneofs of several fields, JSON names, well-known types (Struct, Timestamp: ParseDict
fills that sub-message), a value of another type than the field's. Any exception on the way also goes back to
ParseDict, on a cleared message, so a mistake raises ParseDict's own error. `tests/test_harness.py` holds that
both give the same messages.
"""

from __future__ import annotations

import sys
from typing import Any

from google.protobuf import descriptor as _d
from google.protobuf import json_format
from google.protobuf.internal import type_checkers

_ORIGINAL = json_format.ParseDict
_INTS = {_d.FieldDescriptor.CPPTYPE_INT32, _d.FieldDescriptor.CPPTYPE_INT64,
         _d.FieldDescriptor.CPPTYPE_UINT32, _d.FieldDescriptor.CPPTYPE_UINT64}
_UNPAIRED_SURROGATE = json_format._UNPAIRED_SURROGATE_PATTERN  # what ParseDict rejects in a string
_FINITE = (-sys.float_info.max, sys.float_info.max)  # (NaN compares false: refused too)
_FLOAT32 = (type_checkers._FLOAT_MIN, type_checkers._FLOAT_MAX)


class _Unhandled(Exception):
    """A shape `parse_dict` leaves to ParseDict."""


_PLANS: dict[Any, dict[str, tuple[str, Any]]] = {}


def _plan(message_descriptor: Any) -> dict[str, tuple[str, Any]]:
    """Field name -> (kind, field) for the fields `parse_dict` fills itself."""
    plan = _PLANS.get(message_descriptor)
    if plan is not None:
        return plan
    json_names = {f.json_name: f for f in message_descriptor.fields}
    plan = {}
    for field in message_descriptor.fields:
        oneof = field.containing_oneof  # (proto3 `optional`: a oneof of its own, nothing to check)
        if json_names.get(field.name, field) is not field or (oneof is not None and (
                len(oneof.fields) > 1 or oneof.name in message_descriptor.fields_by_name)):
            continue  # ParseDict would resolve the name to another field, or check the oneof
        cpp, repeated = field.cpp_type, field.is_repeated
        if cpp == _d.FieldDescriptor.CPPTYPE_MESSAGE:
            entry = field.message_type
            if entry.GetOptions().map_entry:
                key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
                if key.type == value.type == _d.FieldDescriptor.TYPE_STRING:
                    plan[field.name] = ("map_str", field)
            elif entry.full_name.startswith("google.protobuf."):  # well-known types (Struct, Timestamp, ...)
                if not repeated and entry.full_name != "google.protobuf.Value":
                    plan[field.name] = ("known", field)
            else:
                plan[field.name] = ("messages" if repeated else "message", field)
        elif field.type == _d.FieldDescriptor.TYPE_STRING:
            plan[field.name] = ("strings" if repeated else "str", field)
        elif repeated:
            continue
        elif cpp in _INTS:
            plan[field.name] = ("int", field)
        elif cpp == _d.FieldDescriptor.CPPTYPE_DOUBLE:
            plan[field.name] = ("double", field)
        elif cpp == _d.FieldDescriptor.CPPTYPE_FLOAT:
            plan[field.name] = ("float", field)
        elif cpp == _d.FieldDescriptor.CPPTYPE_BOOL:
            plan[field.name] = ("bool", field)
    _PLANS[message_descriptor] = plan
    return plan


def _text(value: Any) -> str:
    """A string ParseDict takes as it is (dbt passes str enums too: ParseDict sets those unchanged as well)."""
    if not isinstance(value, str) or (not value.isascii() and _UNPAIRED_SURROGATE.search(value)):
        raise _Unhandled
    return value


def _fill(js: Any, message: Any, depth: int = 1) -> None:
    if type(js) is not dict or depth >= 100:  # (ParseDict's default depth limit)
        raise _Unhandled
    plan = _plan(message.DESCRIPTOR)
    for name, value in js.items():
        kind, field = plan.get(name) or (None, None)
        if kind is None:
            raise _Unhandled
        if value is None:  # ParseDict clears the field: a new message has nothing to clear
            continue
        if kind == "str":
            setattr(message, name, _text(value))
        elif kind == "message":
            sub = getattr(message, name)
            sub.SetInParent()
            _fill(value, sub, depth + 1)
        elif kind == "int":
            if type(value) is not int:
                raise _Unhandled
            setattr(message, name, value)
        elif kind == "bool":
            if type(value) is not bool:
                raise _Unhandled
            setattr(message, name, value)
        elif kind == "double":
            if type(value) is int:
                value = float(value)
            if type(value) is not float or not _FINITE[0] <= value <= _FINITE[1]:
                raise _Unhandled
            setattr(message, name, value)
        elif kind == "float":  # 32 bits: ParseDict refuses what does not fit
            if type(value) is not float or not _FLOAT32[0] <= value <= _FLOAT32[1]:
                raise _Unhandled
            setattr(message, name, value)
        elif kind == "map_str":
            if type(value) is not dict:
                raise _Unhandled
            target = getattr(message, name)
            for k, v in value.items():
                target[_text(k)] = _text(v)
        elif kind == "strings":
            if type(value) not in (list, tuple):
                raise _Unhandled
            getattr(message, name).extend([_text(v) for v in value])
        elif kind == "messages":
            if type(value) not in (list, tuple):
                raise _Unhandled
            repeated = getattr(message, name)
            for item in value:
                _fill(item, repeated.add(), depth + 1)
        else:  # a well-known type: ParseDict's own rules for it
            sub = getattr(message, name)
            sub.SetInParent()
            _ORIGINAL(value, sub)


def parse_dict(js_dict: Any, message: Any, ignore_unknown_fields: bool = False, descriptor_pool: Any = None,
               max_recursion_depth: int = 100) -> Any:
    """ParseDict's result for `message` (a new message, as dbt passes), built without its JSON parser where the
    shape allows."""
    if ignore_unknown_fields or descriptor_pool is not None or max_recursion_depth != 100 \
            or message.DESCRIPTOR.full_name.startswith("google.protobuf.") or message.ListFields():
        return _ORIGINAL(js_dict, message, ignore_unknown_fields, descriptor_pool, max_recursion_depth)
    try:
        _fill(js_dict, message)
        return message
    except Exception:  # noqa: BLE001 - ParseDict decides, and raises its own error
        message.Clear()
        return _ORIGINAL(js_dict, message)


def install() -> None:
    """Build dbt's events with `parse_dict` (the name dbt_common's event base types call)."""
    from dbt_common.events import base_types

    base_types.ParseDict = parse_dict  # type: ignore[assignment]
