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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from sync_runner.core.errors import UserError

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CALL = re.compile(r"\{\{-?\s*dbt_studio\.audience\s*\(")
ARG_ORDER = ("parent", "where", "columns", "traits", "splits", "as_of")
WIDTH = 116
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # written as \xNN: Jinja and Python read them back

_NONE: Mapping[str, str] = MappingProxyType({})  # no name taken


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
            if key in out:  # Jinja keeps the last one: a group (or any key) given twice would silently vanish
                raise ValueError(f"key {key!r} is given twice")
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
                  primary_key: list[str] | None = None, taken: Mapping[str, str] = _NONE) -> SaveResult:
    """Write `<folder>/<name>.sql` (and `<name>.yml` for a new audience).

    `original`: the file the builder opened (None for a new audience). Refuses a path outside the model paths, an
    existing file that is not the opened one unless `overwrite`, and a name another model of the project has.
    """
    check_name(name)
    sql_path = confined(project_dir, folder / f"{name}.sql")
    is_same = original is not None and original.path.resolve() == sql_path
    if not is_same and name in taken:  # a model of the project (its file here or elsewhere) is never overwritten
        raise UserError(f"a model named {name!r} already exists in the project ({taken[name]}); pick another name")
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
        _write_yaml(yml_path, yaml_entry(name, description, primary_key or []))
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
    _write_yaml(path, new_text)
    return True


# -- keys given twice ---------------------------------------------------------------------------------------------


class RepeatedKeys(dict[str, Any]):
    """A JSON object that named some key more than once (`repeated`); it holds the last value of each, as
    `json.loads` does, so that the request is refused rather than read with a key silently dropped."""

    repeated: tuple[str, ...] = ()


def json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for request bodies: a plain dict, or a RepeatedKeys naming the keys given twice."""
    out: dict[str, Any] = {}
    repeated = []
    for key, value in pairs:
        if key in out and key not in repeated:
            repeated.append(key)
        out[key] = value
    if not repeated:
        return out
    marked = RepeatedKeys(out)
    marked.repeated = tuple(repeated)
    return marked


def refuse_repeated_keys(value: Any, file: str, path: str = "") -> None:
    """UserError naming `file` and the key when an object of `value` (read with `json_object`) gave a key twice:
    a split group renamed to the name of another one, say."""
    if isinstance(value, RepeatedKeys):
        key = value.repeated[0]
        if path == "splits.groups":
            raise UserError(f"{file}: splits: two groups named {key!r}; rename one of them (nothing saved)")
        raise UserError(f"{file}: {path or 'arguments'}: key {key!r} is given twice (nothing saved)")
    if isinstance(value, dict):
        for k, v in value.items():
            refuse_repeated_keys(v, file, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            refuse_repeated_keys(v, file, f"{path}[{i}]")


# -- descriptions, renames and deletions --------------------------------------------------------------------------


def _unescape_jinja_text(text: str) -> str | None:
    """The text `_escape_jinja_text` was given, or None when `text` holds Jinja of its own (dbt renders it: the
    file's text is not what a reader sees)."""
    plain = text.replace("{{ '{' }}", "{")
    if any(s in text.replace("{{ '{' }}", "") for s in ("{{", "{%", "{#")):
        return None
    return plain


def _model_entries(text: str, path: Path) -> tuple[Any, Any]:
    """(the YAML node of `models:`, the parsed file) of a properties file, or UserError naming it."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path.name}: not readable as YAML ({exc.__class__.__name__})") from exc
    if isinstance(root, yaml.MappingNode):
        for key, models in root.value:
            if key.value == "models" and isinstance(models, yaml.SequenceNode):
                return models, data
    return None, data


def _entry_of(models: Any, name: str) -> Any:
    return next((m for m in (models.value if models is not None else []) if isinstance(m, yaml.MappingNode)
                 and any(k.value == "name" and v.value == name for k, v in m.value)), None)


# a YAML file's model descriptions, by path: (its version (mtime_ns, size, inode), name -> description or None)
_DESCRIPTIONS: dict[Path, tuple[tuple[int, int, int], dict[str, str | None]]] = {}


def _descriptions(path: Path) -> dict[str, str | None] | None:
    """name -> the description of each model entry of the YAML file `path` ("" for none, None for Jinja of its
    own), parsed once per version of the file: a listing of 200 audiences documented in one file parsed it 200
    times (25 s). None when the file cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    kept = _DESCRIPTIONS.get(path)
    if kept is not None and kept[0] == version:
        return kept[1]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    found: dict[str, str | None] = {}
    for model in (data or {}).get("models") or [] if isinstance(data, dict) else []:
        if isinstance(model, dict) and isinstance(model.get("name"), str) and model["name"] not in found:
            description = model.get("description")
            found[model["name"]] = _unescape_jinja_text(description) if isinstance(description, str) else ""
    _DESCRIPTIONS[path] = (version, found)
    return found


def _write_yaml(path: Path, text: str | None) -> None:
    """Write (or, for None, remove) a YAML file the studio changes; the descriptions read so far are read again."""
    if text is None:
        path.unlink()
    else:
        path.write_text(text, encoding="utf-8")
    _DESCRIPTIONS.clear()


def yaml_description(path: Path | None, name: str) -> str | None:
    """The description model `name` has in the YAML file `path` as it is now on disk (the manifest's is as of the
    last build), "" when its entry has none; None when the file or the entry is missing, or the description is
    Jinja that dbt renders (then only the manifest knows the text)."""
    found = _descriptions(path) if path is not None else None
    return None if found is None else found.get(name)


_REFERENCE = r"(?:\bref\s*\(\s*|['\"](?:not )?in audience['\"]\s*:\s*)['\"]{name}['\"]"


def referring_files(project_dir: Path, name: str, own: Path) -> list[str]:
    """Model files of the project (other than `own`) whose text refers to model `name` (`ref('name')`, or an
    audience tree's `in audience` / `not in audience`), relative to the project: those the manifest does not
    know yet too (saved, not built)."""
    pattern = re.compile(_REFERENCE.format(name=re.escape(name)))
    root = project_dir.resolve()
    found = []
    for folder in model_paths(project_dir):
        for path in sorted(folder.rglob("*.sql")) if folder.is_dir() else []:
            if path.resolve() == own.resolve() or not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if pattern.search(text):
                found.append(str(path.resolve().relative_to(root)))
    return found


def _refuse_referred(name: str, what: str, referred_by: list[str]) -> None:
    referred_by = list(dict.fromkeys(referred_by))  # the manifest and the files name the same file
    if referred_by:
        more = f" (and {len(referred_by) - 1} more)" if len(referred_by) > 1 else ""
        raise UserError(f"{name}: {referred_by[0]}{more} refers to it; change that first ({what})")


@dataclass(frozen=True)
class Moved:
    sql_path: Path  # the audience's file now (for a deletion: the file that was removed)
    yml_path: Path | None  # the YAML file that documents it now (None: none, or removed with it)
    yml_removed: bool = False


def _yaml_without(text: str, path: Path, name: str) -> str | None:
    """`text` with model `name`'s entry taken out of `models:` in place (every other byte kept), or None when the
    file documents nothing else and can go. UserError when that cannot be done in place."""
    models, data = _model_entries(text, path)
    entry = _entry_of(models, name)
    if entry is None:
        raise UserError(f"{path.name}: no entry for {name}")
    others = [m for m in data["models"] if not (isinstance(m, dict) and m.get("name") == name)]
    if _documents_only(text, name):
        return None
    if models.flow_style or not others:
        raise UserError(f"{path.name}: the entry of {name} cannot be taken out in place; remove it by hand")
    items = models.value
    i = items.index(entry)
    start = text.rfind("\n", 0, entry.start_mark.index) + 1
    if i + 1 < len(items):
        end = text.rfind("\n", 0, items[i + 1].start_mark.index) + 1
    else:
        end = entry.end_mark.index
        end = end if end == 0 or text[end - 1] == "\n" else text.find("\n", end) + 1 or len(text)
    new_text = text[:start] + text[end:]
    expected = {**data, "models": others}
    try:
        ok = yaml.safe_load(new_text) == expected
    except yaml.YAMLError:
        ok = False
    if not ok:
        raise UserError(f"{path.name}: the entry of {name} could not be taken out in place; remove it by hand")
    return new_text


def _documents_only(text: str, name: str) -> bool:
    """The YAML file documents model `name` and nothing else (its own file, as the studio writes one)."""
    data = yaml.safe_load(text)
    return isinstance(data, dict) and set(data) <= {"version", "models"} and \
        [m.get("name") if isinstance(m, dict) else None for m in data.get("models") or []] == [name]


def _yaml_renamed(text: str, path: Path, name: str, new_name: str) -> str:
    """`text` with model `name`'s entry named `new_name`, in place (every other byte kept)."""
    models, data = _model_entries(text, path)
    entry = _entry_of(models, name)
    if entry is None:
        raise UserError(f"{path.name}: no entry for {name}")
    node = next(v for k, v in entry.value if k.value == "name")
    new_text = text[:node.start_mark.index] + new_name + text[node.end_mark.index:]
    for model in data["models"]:
        if isinstance(model, dict) and model.get("name") == name:
            model["name"] = new_name
    if yaml.safe_load(new_text) != data:
        raise UserError(f"{path.name}: the entry of {name} could not be renamed in place; nothing renamed")
    return new_text


def rename_audience(project_dir: Path, sql_path: Path, yml_path: Path | None, name: str, new_name: str, *,
                    taken: Mapping[str, str] = _NONE, referred_by: list[str] | None = None) -> Moved:
    """Rename audience `name` (its file `sql_path`, documented in `yml_path` if any) to `new_name`: the file moves
    to `<new_name>.sql` in the same folder and its YAML entry is renamed in place (a `<name>.yml` that documents
    it alone moves to `<new_name>.yml`). `new_name` is checked like a new audience's name and must be no model of
    the project (`taken`) nor an existing file. Refused when something refers to the audience (`referred_by`: what
    the manifest knows; the project's model files are read too). Everything is checked before anything is
    written; a refusal changes nothing."""
    check_name(new_name)
    sql_path = confined(project_dir, sql_path)
    root = project_dir.resolve()
    if not sql_path.is_file():
        raise UserError(f"{name}: {sql_path.relative_to(root)} is not there (renamed or deleted since the last "
                        "build?); nothing renamed")
    if new_name == name:
        raise UserError(f"{name}: the new name is the same as the old one; nothing renamed")
    if new_name in taken:
        raise UserError(f"{name}: a model named {new_name!r} already exists in the project ({taken[new_name]}); "
                        "pick another name")
    target = confined(project_dir, sql_path.parent / f"{new_name}.sql")
    if target.exists():
        raise UserError(f"{name}: {target.relative_to(root)} exists; pick another name")
    _refuse_referred(name, "nothing renamed", list(referred_by or []) + referring_files(project_dir, name, sql_path))
    new_yml, yml_text = None, None
    if yml_path is not None and yml_path.is_file():
        yml_path = confined(project_dir, yml_path)
        yml_text = _yaml_renamed(yml_path.read_text(encoding="utf-8"), yml_path, name, new_name)
        new_yml = yml_path
        if yml_path.name in (f"{name}.yml", f"{name}.yaml") and _documents_only(yml_text, new_name):
            new_yml = confined(project_dir, yml_path.with_name(f"{new_name}{yml_path.suffix}"))
            if new_yml.exists():
                raise UserError(f"{name}: {new_yml.relative_to(root)} exists; pick another name")
    sql_path.rename(target)
    if yml_path is not None and new_yml is not None and yml_text is not None:
        _write_yaml(new_yml, yml_text)
        if new_yml != yml_path:
            _write_yaml(yml_path, None)
    return Moved(target, new_yml)


def delete_audience(project_dir: Path, sql_path: Path, yml_path: Path | None, name: str, *,
                    referred_by: list[str] | None = None) -> Moved:
    """Delete audience `name`: its file `sql_path`, and its entry in `yml_path` (taken out in place; the whole
    file when it documents nothing else). Refused when something refers to it (as `rename_audience`); a refusal
    changes nothing. Its table stays in the warehouse until dropped there."""
    sql_path = confined(project_dir, sql_path)
    root = project_dir.resolve()
    if not sql_path.is_file():
        raise UserError(f"{name}: {sql_path.relative_to(root)} is not there (renamed or deleted since the last "
                        "build?); nothing deleted")
    _refuse_referred(name, "nothing deleted", list(referred_by or []) + referring_files(project_dir, name, sql_path))
    yml_text = None
    if yml_path is not None and yml_path.is_file():
        yml_path = confined(project_dir, yml_path)
        yml_text = _yaml_without(yml_path.read_text(encoding="utf-8"), yml_path, name)
    else:
        yml_path = None
    sql_path.unlink()
    if yml_path is not None:
        _write_yaml(yml_path, yml_text)
        if yml_text is None:
            return Moved(sql_path, None, yml_removed=True)
    return Moved(sql_path, yml_path)
