"""Declared configuration: the field and type machinery every configuration surface is written in.

A surface (a model's `config.meta.dbt_studio`, a sync, an audience condition, `dbt_studio.yml`, a destination
type's options, ...) is a `Surface`: a tuple of `Field`s, each with a `Kind` (its type, enum or range), help text,
default, and whether it is required or a secret. The surfaces themselves live where they belong
(sync_runner/project/declared.py, each destination class, sync_runner/sync/config.py); everything that reads
them comes from here, so validation, defaults, listings, docs tables and the JSON Schema cannot drift apart:

* `Surface.problems` refuses unknown keys (with a did-you-mean), missing required keys, wrong types, enums and
  ranges, as (key path, message) pairs that callers turn into one line naming file, model and key;
* `Kind.json` / `Surface.json` give the published JSON Schema that YAML language servers complete against;
* `markdown_table` gives the reference tables of the docs.

The did-you-mean is `closest`: case-insensitive edit distance of at most 2 (or a third of the word). It is the same
rule as the package's `dbt_studio._closest` macro, so a key misspelled in a macro argument gets the same hint at
compile time as in `dbt-studio validate`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Problems = list[tuple[str, str]]  # (key path, message)


def closest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The choice nearest to `word`: case-insensitive Levenshtein distance <= max(2, len(word) // 3)."""
    best, best_distance = None, 999
    for choice in choices:
        distance = _edit_distance(word.lower(), choice.lower())
        if distance < best_distance:
            best, best_distance = choice, distance
    return best if best_distance <= max(2, len(word) // 3) else None


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i]
        for j in range(1, len(b) + 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1])))
        previous = current
    return previous[len(b)]


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def templated(value: Any) -> bool:
    """A string that `dbt_studio.yml`'s env_var rendering fills in: its type is only known after rendering."""
    return isinstance(value, str) and "{{" in value


# ---------------------------------------------------------------------------------------------------------- kinds


class Kind:
    """A value's type. `problems` checks a value, `json` gives its JSON Schema, `text` its docs type column."""

    def problems(self, value: Any, path: str) -> Problems:
        raise NotImplementedError

    def json(self) -> dict[str, Any]:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Kind):
    """A non-empty string (`pattern`: a regex it must match in full; `what` describes it)."""

    what: str = "a string"
    pattern: str | None = None

    def problems(self, value: Any, path: str) -> Problems:
        if not isinstance(value, str) or not value.strip():
            return [(path, f"must be {self.what}, not {_shown(value)}")]
        if self.pattern and not templated(value) and not re.fullmatch(self.pattern, value):
            return [(path, f"must be {self.what}, not {_shown(value)}")]
        return []

    def json(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, **({"pattern": f"^(?:{self.pattern})$"} if self.pattern else {})}

    def text(self) -> str:
        return "string" if self.what == "a string" else self.what.removeprefix("a ").removeprefix("an ")


@dataclass(frozen=True)
class Number(Kind):
    """An integer (`integer=True`) or a number, within [minimum, maximum] (`above`: strictly above minimum)."""

    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False

    def _range(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.above else '>='} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        return " and ".join(parts)

    def text(self) -> str:
        base = "integer" if self.integer else "number"
        return f"{base} {self._range()}".strip()

    def problems(self, value: Any, path: str) -> Problems:
        if templated(value):
            return []
        wanted = (int,) if self.integer else (int, float)
        bad = (not isinstance(value, wanted) or isinstance(value, bool)
               or (self.minimum is not None and (value <= self.minimum if self.above else value < self.minimum))
               or (self.maximum is not None and value > self.maximum))
        return [(path, f"must be an {self.text()}" if self.text().startswith("integer")
                 else f"must be a {self.text()}")] if bad else []

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.minimum is not None:
            out["exclusiveMinimum" if self.above else "minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return {"anyOf": [out, _TEMPLATE]}


_TEMPLATE = {"type": "string", "pattern": r"\{\{"}  # a value env_var fills in


def with_value(message: str, value: Any) -> str:
    return f"{message}, not {_shown(value)}"


@dataclass(frozen=True)
class Boolean(Kind):
    """true or false (or an env_var template that renders to one)."""

    def problems(self, value: Any, path: str) -> Problems:
        return [] if isinstance(value, bool) or templated(value) else [(path, with_value("must be true or false",
                                                                                            value))]

    def json(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "boolean"}, _TEMPLATE]}

    def text(self) -> str:
        return "boolean"


@dataclass(frozen=True)
class Choice(Kind):
    """One of `values`. A ratio like `1:1` written unquoted reads as a sexagesimal integer in YAML 1.1 (61)."""

    values: tuple[Any, ...]

    def problems(self, value: Any, path: str) -> Problems:
        if value in self.values and not isinstance(value, bool) or templated(value):
            return []
        message = with_value(f"must be one of {', '.join(map(str, self.values))}", value)
        ratio = _sexagesimal(value)
        if ratio is not None and any(isinstance(v, str) and ":" in v for v in self.values):
            message += f" (YAML reads an unquoted {ratio} as the number {value}: quote it, \"{ratio}\")"
        return [(path, message)]

    def json(self) -> dict[str, Any]:
        return {"enum": list(self.values)}

    def text(self) -> str:
        return " \\| ".join(f"`{v}`" for v in self.values)


def _sexagesimal(value: Any) -> str | None:
    """`1:1` for 61: what YAML 1.1 made of an unquoted a:b with b < 60, if that is what it was."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 60:
        return f"{value // 60}:{value % 60}"
    return None


@dataclass(frozen=True)
class Url(Kind):
    """An http or https URL (it may hold `{{ ... }}` templates after its scheme and host)."""

    def problems(self, value: Any, path: str) -> Problems:
        if not isinstance(value, str) or not value:
            return [(path, with_value("must be an http or https URL", value))]
        if value.lstrip().startswith("{{"):
            return []
        match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://[^/\s]+", value)
        if not match:
            return [(path, with_value("must be an http or https URL (scheme://host/...)", value))]
        if match.group(1).lower() not in ("http", "https"):
            return [(path, f"bad scheme '{match.group(1)}' in {_shown(value)}: use http or https")]
        return []

    def json(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^(https?://[^/\s]+|\{\{)"}

    def text(self) -> str:
        return "http(s) URL"


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of one kind of item (or, with `single`, one such item alone)."""

    item: Kind
    min_items: int = 0
    single: bool = False  # a single item is accepted too (`primary_key: id` or `[id, region]`)

    def problems(self, value: Any, path: str) -> Problems:
        if self.single and not isinstance(value, list):
            return self.item.problems(value, path)
        if not isinstance(value, list) or len(value) < self.min_items:
            need = f" of at least {self.min_items}" if self.min_items > 1 else ""
            return [(path, with_value(f"must be a list{need} of {self.item.text()}", value))]
        out: Problems = []
        for i, item in enumerate(value):
            out += self.item.problems(item, join_path(path, i))
        return out

    def json(self) -> dict[str, Any]:
        listed: dict[str, Any] = {"type": "array", "items": self.item.json()}
        if self.min_items:
            listed["minItems"] = self.min_items
        return {"anyOf": [self.item.json(), listed]} if self.single else listed

    def text(self) -> str:
        return f"{self.item.text()} or list" if self.single else f"list of {self.item.text()}"


@dataclass(frozen=True)
class MapOf(Kind):
    """A mapping with free keys (column names, header names, group names) and values of one kind."""

    value: Kind
    what: str = "a mapping"
    min_items: int = 0

    def problems(self, value: Any, path: str) -> Problems:
        if not isinstance(value, dict) or len(value) < self.min_items:
            return [(path, with_value(f"must be {self.what}", value))]
        out: Problems = []
        for key, item in value.items():
            out += self.value.problems(item, join_path(path, str(key)))
        return out

    def json(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": self.value.json(),
                **({"minProperties": self.min_items} if self.min_items else {})}

    def text(self) -> str:
        return "mapping"


@dataclass(frozen=True)
class AnyOf(Kind):
    """A value that is one of several kinds; `what` names them in the error."""

    kinds: tuple[Kind, ...]
    what: str

    def problems(self, value: Any, path: str) -> Problems:
        results = [k.problems(value, path) for k in self.kinds]
        if any(not r for r in results):
            return []
        nested = [r for r in results if r and r[0][0] != path]  # it had the right shape; say what is wrong inside
        return nested[0] if nested else [(path, with_value(f"must be {self.what}", value))]

    def json(self) -> dict[str, Any]:
        return {"anyOf": [k.json() for k in self.kinds]}

    def text(self) -> str:
        return self.what.removeprefix("a ").removeprefix("an ")


@dataclass(frozen=True)
class Anything(Kind):
    """Any value: for keys checked elsewhere (a filter tree) or passed through as they are (a constant)."""

    what: str = "any value"

    def problems(self, value: Any, path: str) -> Problems:
        return []

    def json(self) -> dict[str, Any]:
        return {}

    def text(self) -> str:
        return self.what


@dataclass(frozen=True)
class Record(Kind):
    """A nested mapping with declared keys (a `Surface`)."""

    surface: Surface

    def problems(self, value: Any, path: str) -> Problems:
        return self.surface.problems(value, path)

    def json(self) -> dict[str, Any]:
        return {"$ref": f"#/$defs/{self.surface.name}"}

    def text(self) -> str:
        return self.surface.title


@dataclass(frozen=True)
class Field:
    """One key of a surface. `limit` is a hard maximum the other side enforces (a destination's batch size)."""

    name: str
    kind: Kind
    help: str
    required: bool = False
    default: Any = None
    secret: bool = False
    limit: float | None = None


Option = Field  # a destination option is a field of the destination type's surface


@dataclass(frozen=True)
class Surface:
    """A mapping with declared keys. `check` adds rules across keys (e.g. insert mode never deletes)."""

    name: str
    title: str
    fields: tuple[Field, ...]
    check: Callable[[Mapping[str, Any], str], Problems] | None = field(default=None, compare=False)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def fields_by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    def problems(self, value: Any, path: str = "") -> Problems:
        if not isinstance(value, dict):
            return [(path, with_value(f"must be a mapping ({self.title})", value))]
        out: Problems = []
        meant = set()  # required keys an unknown key was a misspelling of: named once, as the unknown key
        for key in value:
            if key not in self.keys:
                out.append((join_path(path, str(key)), unknown_key(str(key), self.keys, self.title)))
                meant.add(closest(str(key), list(self.keys)))
        for f in self.fields:
            if f.name in value:
                found = f.kind.problems(value[f.name], join_path(path, f.name))
                item = value[f.name]
                if not found and f.limit is not None and isinstance(item, (int, float)) and item > f.limit:
                    found = [(join_path(path, f.name), f"must be at most {f.limit:,g} (the destination's limit)")]
                out += found
            elif f.required and f.name not in meant:
                out.append((join_path(path, f.name), f"missing (required: {f.help})"))
        if self.check is not None and not out:
            out += self.check(value, path)
        return out

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields if f.default is not None}

    def json(self) -> dict[str, Any]:
        properties = {}
        for f in self.fields:
            prop = dict(f.kind.json())
            prop["description"] = f.help + (" (secret: use env_var)" if f.secret else "")
            if f.default is not None:
                prop["default"] = f.default
            properties[f.name] = prop
        out: dict[str, Any] = {"type": "object", "title": self.title, "properties": properties,
                               "additionalProperties": False}
        required = [f.name for f in self.fields if f.required]
        if required:
            out["required"] = required
        return out


def unknown_key(key: str, known: tuple[str, ...] | list[str], what: str) -> str:
    """The one message for an unknown key (the package's `dbt_studio._check_keys` macro says the same)."""
    close = closest(key, list(known))
    hint = f"did you mean '{close}'?" if close else f"keys of {what}: {', '.join(known)}"
    return f"unknown key '{key}' ({hint})"


def markdown_table(fields: tuple[Field, ...], with_limit: bool = False) -> str:
    """The reference table of a surface for the docs (generated; tests/test_declared.py keeps the docs equal)."""
    head = ["key", "type", "default", "help"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for f in fields:
        default = "required" if f.required else ("-" if f.default is None else f"`{_yaml_scalar(f.default)}`")
        notes = f.help + (" Secret: use `env_var`." if f.secret else "")
        if with_limit and f.limit is not None:
            notes += f" At most {f.limit:,g}."
        notes = notes.replace("|", "\\|")
        lines.append(f"| `{f.name}` | {f.kind.text()} | {default} | {notes} |")
    return "\n".join(lines)


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)




def json_document(root: Surface, title: str, defs: Mapping[str, Surface],
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A JSON Schema (2020-12) document: `root` at the top, the surfaces it refers to in $defs."""
    out: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title}
    out.update({k: v for k, v in root.json().items() if k != "title"})
    out["$defs"] = {name: s.json() for name, s in sorted(defs.items())}
    out["$defs"].update(extra or {})
    return out
