"""What each destination field of a sync is made of: a model column, a transformed column, a constant or a template.

A sync's `mappings` are `{destination field: spec}`. A spec is a model column (`email: email`, as always) or one of

    {column: email, transform: [trim, lower, sha256]}   the column, transformed in the warehouse
    {value: 'newsletter'}                               a constant, selected in the warehouse
    {template: '{"city": {{ city | tojson }}}'}         Jinja2 over the row's columns, rendered at delivery

Transforms and constants are SQL (macros/sync/transforms.sql) in the columns the plan tracks, so change capture
compares the value that is sent: a change that a transform hides (an email that only changed case, under `lower`)
sends nothing. A template cannot be SQL (it builds nested objects of any shape, with loops and filters), so it is
rendered in Python at delivery; the plan tracks the columns it reads, so a change to one of them sends the record
again even when the rendered value comes out the same. A template's text that parses as JSON is sent as that JSON
value (an object, a list, a number); other text is sent as a string.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sync_runner.core.fields import closest

if TYPE_CHECKING:
    import jinja2.sandbox

Problems = list[tuple[str, str]]

CASTS = ("string", "integer", "number", "boolean", "date", "timestamp")
# strftime codes a date_format may use; the Snowflake macro translates each to its TO_CHAR element
DATE_CODES = {"Y": "YYYY", "y": "YY", "m": "MM", "d": "DD", "H": "HH24", "M": "MI", "S": "SS", "%": "%"}
# step -> (what its argument is, whether it needs one); a step without an argument is written as a bare name
STEPS: dict[str, tuple[str, bool]] = {
    "trim": ("", False),
    "lower": ("", False),
    "upper": ("", False),
    "email": ("", False),
    "phone": ("the default country calling code, e.g. 44", False),
    "sha256": ("", False),
    "mask": ("how many trailing characters stay visible", False),
    "cast": (f"one of {', '.join(CASTS)}", True),
    "date_format": (f"a strftime format using %{', %'.join(c for c in DATE_CODES if c != '%')}", True),
}
STEP_HELP = ("trim, lower, upper, email (trim + lower-case), phone or {phone: <default country code>} (E.164), "
             "sha256 (lower-case hex), mask or {mask: <visible trailing characters>}, {cast: <type>}, "
             "{date_format: '<strftime>'}")


@dataclass(frozen=True)
class Step:
    """One transform of a field spec (a name and its argument), applied in order."""

    name: str
    arg: Any = None


@dataclass(frozen=True)
class MappedField:
    """One destination field. `tracked` is the plan column that carries it (set by `tracked_fields`)."""

    dest: str
    column: str | None = None
    steps: tuple[Step, ...] = ()
    constant: bool = False
    value: Any = None
    template: str | None = None
    tracked: str = ""

    @property
    def computed(self) -> bool:
        """Computed in the warehouse (a transform or a constant): its plan column is not a model column."""
        return self.constant or bool(self.steps)

    @property
    def columns(self) -> tuple[str, ...]:
        """The model columns this field reads."""
        if self.template is not None:
            return template_columns(self.template)
        return (self.column,) if self.column else ()

    def macro_spec(self) -> dict[str, Any]:
        """What macros/sync/transforms.sql needs to compute the field."""
        if self.constant:
            return {"value": self.value}
        return {"column": self.column, "transform": [{"name": s.name, "arg": s.arg} for s in self.steps]}


def step_problems(item: Any, path: str) -> Problems:
    """Problems of one transform step: a step name, or a one-key mapping {step: argument}."""
    if isinstance(item, str):
        name, arg, bare = item, None, True
    elif isinstance(item, dict) and len(item) == 1:
        name, arg = next(iter(item.items()))
        bare = False
    else:
        return [(path, f"must be a transform ({STEP_HELP}), not {item!r}")]
    if name not in STEPS:
        close = closest(str(name), list(STEPS))
        hint = f"did you mean '{close}'?" if close else f"transforms: {', '.join(STEPS)}"
        return [(path, f"unknown transform '{name}' ({hint})")]
    what, needs_arg = STEPS[name]
    if bare:
        return [(path, f"{name} needs an argument: {{{name}: {what}}}")] if needs_arg else []
    if not what:
        return [(path, f"{name} takes no argument: write it as {name}")]
    if name == "cast" and arg not in CASTS:
        return [(path, f"cast must be one of {', '.join(CASTS)}, not {arg!r}")]
    if name == "mask" and (not isinstance(arg, int) or isinstance(arg, bool) or arg < 0):
        return [(path, f"mask takes a number of visible trailing characters (0 or more), not {arg!r}")]
    if name == "phone" and not re.fullmatch(r"\+?[1-9]\d{0,2}", str(arg).strip()):
        return [(path, f"phone takes a country calling code such as 1 or 44, not {arg!r}")]
    if name == "date_format":
        codes = re.findall(r"%(.)", str(arg)) if isinstance(arg, str) else None
        bad = [c for c in codes or [] if c not in DATE_CODES]
        if not isinstance(arg, str) or not arg or bad:
            return [(path, f"date_format takes {what}, not {arg!r}")]
    return []


def spec_problems(spec: Mapping[str, Any], path: str) -> Problems:
    """Rules across a field spec's keys (its keys and their types are the declared MAPPED_FIELD surface)."""
    given = [k for k in ("column", "value", "template") if k in spec]
    if len(given) != 1:
        # named at .column: a problem at the spec's own path would read as "not a column name or a spec"
        return [(f"{path}.column", "needs exactly one of column, value or template"
                 + (f" (has {', '.join(given)})" if given else ""))]
    if "transform" in spec and "column" not in spec:
        return [(f"{path}.transform", "transforms apply to a column: add column, or drop transform")]
    if "template" in spec:
        import jinja2

        try:
            names = template_columns(str(spec["template"]))
        except jinja2.TemplateSyntaxError as exc:
            return [(f"{path}.template", f"not a valid Jinja2 template ({exc.message}, line {exc.lineno})")]
        if not names:
            return [(f"{path}.template", "reads no column (a constant is written {value: ...})")]
    return []


@functools.cache
def _env() -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    """Jinja is imported when a sync has a template, not by every command (about 15 ms of start-up)."""
    import jinja2.sandbox

    return jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def template_columns(template: str) -> tuple[str, ...]:
    """The columns a template reads: its undeclared variables, sorted."""
    import jinja2.meta

    return tuple(sorted(jinja2.meta.find_undeclared_variables(_env().parse(template)), key=str.lower))


def parse_fields(mappings: Mapping[str, Any]) -> tuple[MappedField, ...]:
    """The fields of validated mappings, each with the plan column that carries it.

    A plain column travels in its own plan column (so a sync written before transforms existed keeps its state);
    a computed field gets a column of its own named after its position and destination field.
    """
    out = []
    for i, (dest, spec) in enumerate(mappings.items()):
        if isinstance(spec, str):
            out.append(MappedField(dest, column=spec, tracked=spec))
        elif "template" in spec:
            out.append(MappedField(dest, template=str(spec["template"])))
        elif "value" in spec:
            out.append(MappedField(dest, constant=True, value=spec["value"], tracked=_tracked_name(i, dest)))
        else:
            steps = tuple(_step(s) for s in spec.get("transform") or [])
            column = str(spec["column"])
            out.append(MappedField(dest, column=column, steps=steps, tracked=_tracked_name(i, dest) if steps
                                   else column))
    return tuple(out)


def _step(item: Any) -> Step:
    if isinstance(item, str):
        return Step(item)
    name, arg = next(iter(item.items()))
    if name == "phone":
        arg = str(arg).strip().lstrip("+")
    return Step(name, arg)


def _tracked_name(position: int, dest: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", dest.lower()).strip("_")[:40]
    return f"dbt_studio_f{position}_{slug}"


class Template:
    """A field's template, compiled once per sync (sandboxed: a template reads the row, nothing else)."""

    def __init__(self, text: str) -> None:
        self.columns = template_columns(text)
        self._template = _env().from_string(text)

    def render(self, row: Mapping[str, Any]) -> Any:
        text = self._template.render(**row)
        try:
            return json.loads(text)
        except ValueError:
            return text
