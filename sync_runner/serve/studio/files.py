"""Audience files as an engineer writes them: one `dbt_studio.audience(...)` call in a `.sql` model, and its YAML.

Reading: the call's arguments are Jinja literals, which (apart from `true` / `false` / `none`) are Python literals,
so Python's own parser reads them, with positions. An argument that is not a literal (`as_of=var('as_of')`) is
kept as its source text (`Expr`) and written back as is. Writing: `format_call` prints the arguments the way the
example project does (one argument a line, short dicts inline, long ones broken per key). Saving an audience whose
arguments did not change keeps the file's bytes: the text is only regenerated when something changed.

Every path is checked to stay inside the project's model paths; names are plain identifiers.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sync_runner.core.errors import UserError

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CALL = re.compile(r"\{\{-?\s*dbt_studio\.audience\s*\(")
ARG_ORDER = ("parent", "where", "columns", "traits", "splits", "as_of")
WIDTH = 116
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # written as \xNN: Jinja and Python read them back


@dataclass(frozen=True)
class Expr:
    """A Jinja expression of the file that is not a literal (kept as written)."""

    source: str


@dataclass(frozen=True)
class AudienceFile:
    path: Path
    text: str
    prefix: str  # everything before `{{`
    suffix: str  # everything after `}}`
    arguments: dict[str, Any]  # name -> literal value or Expr

    @property
    def digest(self) -> str:
        return digest_of(self.text)


def digest_of(text: str) -> str:
    """The fingerprint of an audience file's text the builder sends back to save over it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class NotEditable(UserError):
    """The file is not one `dbt_studio.audience(...)` call with literal arguments the builder can edit."""


def _literal(node: ast.AST, source: str) -> Any:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
        return node.value
    if isinstance(node, ast.Name) and node.id in ("true", "false", "none", "True", "False", "None"):
        return {"true": True, "false": False, "none": None}[node.id.lower()]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, source) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values, strict=True):
            key = _literal(k, source) if k is not None else None
            if not isinstance(key, str):
                raise ValueError("dict keys must be strings")
            value = _literal(v, source)
            if isinstance(value, Expr):
                raise ValueError("an expression inside a literal")
            out[key] = value
        return out
    segment = ast.get_source_segment(source, node)
    if segment is None:
        raise ValueError("unreadable argument")
    return Expr(segment)


def parse_audience(path: Path) -> AudienceFile:
    """The audience call of a model file, or NotEditable naming the file."""
    text = path.read_text(encoding="utf-8")
    match = CALL.search(text)
    if match is None:
        raise NotEditable(f"{path.name}: no dbt_studio.audience(...) call")
    start = match.start()
    inner_start = match.start() + (3 if text.startswith("{{-", start) else 2)
    for end in (m.start() for m in re.finditer(r"-?\}\}", text[inner_start:])):
        expression = text[inner_start:inner_start + end]
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError:
            continue
        call = tree.body
        if not (isinstance(call, ast.Call) and ast.unparse(call.func) == "dbt_studio.audience"):
            break
        if call.args:
            raise NotEditable(f"{path.name}: pass the audience's arguments by name (parent=..., where=...)")
        source = expression.strip()
        arguments = {}
        for kw in call.keywords:
            if kw.arg is None:
                raise NotEditable(f"{path.name}: **arguments are not editable in the studio")
            try:
                arguments[kw.arg] = _literal(kw.value, source)
            except ValueError as exc:
                raise NotEditable(f"{path.name}: argument {kw.arg!r}: {exc}") from None
        close = text.index("}}", inner_start + end) + 2
        rest = text[close:]
        if CALL.search(rest):
            raise NotEditable(f"{path.name}: more than one dbt_studio.audience(...) call")
        return AudienceFile(path, text, text[:start], rest, arguments)
    raise NotEditable(f"{path.name}: the dbt_studio.audience(...) call is not made of literals the studio can read")


# -- writing ------------------------------------------------------------------------------------------------------


def jinja_literal(value: Any) -> str:
    """`value` as a Jinja literal on one line (Jinja reads strings with Python's escapes)."""
    if isinstance(value, Expr):
        return value.source
    if value is None:
        return "none"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            raise UserError(f"not a finite number: {value}")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return "'" + _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped) + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jinja_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{jinja_literal(str(k))}: {jinja_literal(v)}" for k, v in value.items()) + "}"
    raise UserError(f"cannot write a {type(value).__name__} into an audience file")


def _pretty(value: Any, indent: int, room: int) -> str:
    """One line when it fits in `room`, else one item a line (lists) / one key a line (dicts)."""
    flat = jinja_literal(value)
    if len(flat) <= room or not isinstance(value, (list, dict)) or not value:
        return flat
    pad = " " * (indent + 4)
    if isinstance(value, list):
        items = [_pretty(v, indent + 4, WIDTH - indent - 5) for v in value]
        return "[\n" + ",\n".join(pad + i for i in items) + ",\n" + " " * indent + "]"
    items = []
    for k, v in value.items():
        head = f"{jinja_literal(str(k))}: "
        items.append(pad + head + _pretty(v, indent + 4, WIDTH - indent - 5 - len(head)))
    return "{\n" + ",\n".join(items) + ",\n" + " " * indent + "}"


def format_call(arguments: dict[str, Any]) -> str:
    """The `{{ dbt_studio.audience(...) }}` text of `arguments`, in the usual argument order."""
    names = [n for n in ARG_ORDER if n in arguments] + [n for n in arguments if n not in ARG_ORDER]
    lines = []
    for name in names:
        head = f"    {name}="
        lines.append(head + _pretty(arguments[name], 4, WIDTH - len(head) - 1) + ",")
    return "{{ dbt_studio.audience(\n" + "\n".join(lines) + "\n) }}"


def render_file(arguments: dict[str, Any], previous: AudienceFile | None, comment: str | None = None) -> str:
    """The whole file: the previous file's text around the call kept, or a short comment for a new one."""
    if previous is not None:
        return previous.prefix + format_call(arguments) + previous.suffix
    head = ""
    if comment:
        safe = comment.replace("#}", "# }").replace("{#", "{ #").strip()
        head = "{#- " + " ".join(safe.split()) + " -#}\n"
    return head + format_call(arguments) + "\n"


def equal_arguments(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same arguments (order of keyword arguments and of dict keys aside; 1 and 1.0 differ)."""

    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return ("d", tuple(sorted((k, norm(x)) for k, x in v.items())))
        if isinstance(v, (list, tuple)):
            return ("l", tuple(norm(x) for x in v))
        return (type(v).__name__, v)

    return norm(a) == norm(b)


# -- paths --------------------------------------------------------------------------------------------------------


def model_paths(project_dir: Path) -> list[Path]:
    """The project's model paths (dbt_project.yml `model-paths`, default models/), resolved."""
    data = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    paths = data.get("model-paths") or data.get("source-paths") or ["models"]
    return [(project_dir / str(p)).resolve() for p in paths]


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise UserError(f"audience name {name!r}: use lower-case letters, digits and _ (a letter or _ first, "
                        "at most 63 characters)")
    return name


def confined(project_dir: Path, path: Path) -> Path:
    """`path` resolved, or UserError when it is outside every model path of the project."""
    resolved = path.resolve()
    for root in model_paths(project_dir):
        if resolved.is_relative_to(root) and resolved != root:
            return resolved
    raise UserError(f"{path}: outside the project's model paths; the studio writes only there")


@dataclass(frozen=True)
class SaveResult:
    sql_path: Path
    yml_path: Path | None
    changed: bool  # False: nothing was written (the audience did not change)
    created: bool
    digest: str  # of the file as it now is on disk (the builder's next save is checked against it)


def _escape_jinja_text(text: str) -> str:
    """Text that dbt renders as Jinja (YAML descriptions) with every `{` written as an expression, so that a
    value holding `{{ }}` stays text."""
    return text.replace("{", "{{ '{' }}") if any(s in text for s in ("{{", "{%", "{#")) else text


def yaml_entry(name: str, description: str | None, primary_key: list[str]) -> str:
    entry: dict[str, Any] = {"name": name}
    if description:
        entry["description"] = _escape_jinja_text(description)
    entry["config"] = {"meta": {"dbt_studio": {"primary_key": primary_key[0] if len(primary_key) == 1
                                               else primary_key}}}
    return yaml.safe_dump({"version": 2, "models": [entry]}, sort_keys=False, allow_unicode=True, width=WIDTH)


def save_audience(project_dir: Path, folder: Path, name: str, arguments: dict[str, Any], *,
                  original: AudienceFile | None, overwrite: bool, description: str | None = None,
                  primary_key: list[str] | None = None, taken: Set[str] = frozenset()) -> SaveResult:
    """Write `<folder>/<name>.sql` (and `<name>.yml` for a new audience).

    `original`: the file the builder opened (None for a new audience). Refuses a path outside the model paths, an
    existing file that is not the opened one unless `overwrite`, and a name another model of the project has.
    """
    check_name(name)
    sql_path = confined(project_dir, folder / f"{name}.sql")
    is_same = original is not None and original.path.resolve() == sql_path
    if not is_same and name in taken:  # a model of the project (its file here or elsewhere) is never overwritten
        raise UserError(f"a model named {name!r} already exists in the project; pick another name")
    if sql_path.exists() and not is_same and not overwrite:
        raise UserError(f"{sql_path.relative_to(project_dir.resolve())} exists: confirm to overwrite it")
    if is_same and original is not None and sql_path.read_text(encoding="utf-8") != original.text:
        raise UserError(f"{sql_path.name} changed on disk since it was opened: open it again")
    if is_same and original is not None and equal_arguments(original.arguments, arguments):
        return SaveResult(sql_path, None, changed=False, created=False, digest=original.digest)
    text = render_file(arguments, original if is_same else None, description)
    sql_path.parent.mkdir(parents=True, exist_ok=True)
    created = not sql_path.exists()
    yml_path = None
    if created:  # an overwritten model keeps its YAML entry, wherever it is
        yml_path = confined(project_dir, folder / f"{name}.yml")
        if yml_path.exists() and not overwrite:
            raise UserError(f"{yml_path.relative_to(project_dir.resolve())} exists: confirm to overwrite it")
        yml_path.write_text(yaml_entry(name, description, primary_key or []), encoding="utf-8")
    sql_path.write_text(text, encoding="utf-8")
    return SaveResult(sql_path, yml_path, changed=True, created=created, digest=digest_of(text))


def confine_folder(project_dir: Path, options: list[Path], folder: str | None) -> Path:
    """The folder to save into: the first the studio offers by default, else `folder` relative to the project,
    which must stay inside it."""
    root = project_dir.resolve()
    if not folder:
        return options[0]
    path = confined(root, root / folder / "x.sql").parent
    if path.is_file():
        raise UserError(f"{folder}: not a folder")
    return path


def _yaml_scalar(text: str) -> str:
    """`text` as one line of YAML: plain when YAML reads it back as the same string, else double-quoted (JSON's
    escapes are YAML's), so that the line fits any indentation."""
    dumped = yaml.safe_dump({"d": text}, width=1 << 30, allow_unicode=True, default_flow_style=False)
    value = dumped[3:].rstrip("\n")
    if "\n" in value or value.startswith(("|", ">")) or yaml.safe_load(value) != text:
        return json.dumps(text, ensure_ascii=False)
    return value


def set_yaml_description(project_dir: Path, path: Path, name: str, description: str) -> bool:
    """Give model `name` the `description` in the YAML file `path` that may document several models, rewriting
    only that entry's `description` value (or adding the key after its `name`): every other byte of the file
    stays as it was, comments included. Returns False when the file has no entry for `name` or already says
    that description (nothing written).
    The result is read back and must differ from the file only in that description, else nothing is written."""
    path = confined(project_dir, path)
    text = path.read_text(encoding="utf-8")
    value = _yaml_scalar(_escape_jinja_text(description))
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise UserError(f"{path.name}: not readable as YAML ({exc.__class__.__name__}); description not saved") \
            from exc
    entry = None
    if isinstance(root, yaml.MappingNode):
        for key, models in root.value:
            if key.value == "models" and isinstance(models, yaml.SequenceNode):
                entry = next((m for m in models.value if isinstance(m, yaml.MappingNode) and any(
                    k.value == "name" and v.value == name for k, v in m.value)), None)
    if entry is None:
        return False
    expected = yaml.safe_load(text)
    for model in expected["models"]:
        if isinstance(model, dict) and model.get("name") == name:
            if (model.get("description") or "") == _escape_jinja_text(description):
                return False
            model["description"] = _escape_jinja_text(description)
    pairs = {k.value: (k, v) for k, v in entry.value}
    if "description" in pairs:
        node = pairs["description"][1]
        old = text[node.start_mark.index:node.end_mark.index]
        tail = old[len(old.rstrip()):]  # a block scalar ends after its line breaks: keep them
        new_text = text[:node.start_mark.index] + value + tail + text[node.end_mark.index:]
    else:
        key, node = pairs["name"]
        at = node.end_mark.index
        if entry.flow_style:
            new_text = text[:at] + ", description: " + value + text[at:]
        else:
            line_end = text.find("\n", at)
            line_end = len(text) if line_end < 0 else line_end
            new_text = text[:line_end] + "\n" + " " * key.start_mark.column + "description: " + value \
                + text[line_end:]
    if yaml.safe_load(new_text) != expected:
        raise UserError(f"{path.name}: the description of {name} could not be rewritten in place; not saved")
    path.write_text(new_text, encoding="utf-8")
    return True
