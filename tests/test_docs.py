"""The docs cannot rot: every example in README.md and docs/*.md parses, configs pass validation, links resolve.

Each fenced block is checked by its language: YAML parses; a `dbt_studio.yml` (a `destinations:` or `dbt_cloud:`
mapping) loads through the same code `dbt-studio` uses, with the env vars it names set to dummy values; a model
meta block (`models:` with `config.meta.dbt_studio`) passes `dbt-studio validate`'s checks, laid over the
plant-store example's models it names (a block is usually an excerpt of that project); SQL parses as dbt Jinja and
names only macros and data tests the package has; `vars:` set only settings the package reads; Python and JSON
parse. Relative links point at files that exist (and at headings that exist), and so do the repository paths
the prose names. A block that is a deliberate fragment is marked by `<!-- docs-test: skip -->` on the line
before its fence. The checks are plain functions that return problems, so the negative tests below show that
each one fails on a broken example.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import click
import jinja2
import jinja2.ext
import pytest
import yaml

from sync_runner.cli import cli
from sync_runner.core.errors import UserError
from sync_runner.project.artifacts import load_manifest
from sync_runner.sync.config import (
    STUDIO_FILE,
    load_alerts,
    load_dbt_cloud,
    load_destinations,
    load_exposures_settings,
    load_safeguards,
)
from sync_runner.sync.destinations import REGISTRY
from sync_runner.sync.destinations.base import Terminal
from sync_runner.validate import validate_manifest

from helpers import package_macros

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE = ROOT / "integration_tests"
SKIP = "<!-- docs-test: skip -->"
# keys every destination reads through the base class (Destination.limits, local_path overrides)
GENERIC_OPTIONS = {"base_url", "batch_size", "max_bytes", "concurrency", "rate_per_second"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path, text: str | None = None) -> list[Block]:
    """Fenced code blocks of a Markdown page, with the language of their info string."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).splitlines()
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        indent, marker, lang = fence.groups()
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(marker):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        out.append(Block(page, i + 1, lang.lower(), "\n".join(body) + "\n", previous == SKIP))
        i = j + 1
    return out


ALL_BLOCKS = [b for page in PAGES for b in blocks_of(page)]


def _ids(blocks: list[Block]) -> list[str]:
    return [b.where for b in blocks]


def _of(*langs: str) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.lang in langs and not b.skip]


# --- YAML ----------------------------------------------------------------------------------------------------

def yaml_problems(block: Block) -> list[str]:
    try:
        yaml.safe_load(block.text)
    except yaml.YAMLError as exc:
        return [f"{block.where}: not valid YAML: {str(exc).splitlines()[0]}"]
    return []


def studio_file_problems(block: Block, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A dbt_studio.yml block, loaded as the CLI loads it (env vars it names set to dummy values)."""
    doc = yaml.safe_load(block.text)
    if not isinstance(doc, dict) or not (set(STUDIO_FILE.keys) & set(doc)) or "version" in doc:
        return []  # (a dbt properties file has a version: e.g. the exposures dbt-studio writes)
    for name in re.findall(r"env_var\(\s*['\"](\w+)['\"]", block.text):
        monkeypatch.setenv(name, f"dummy-{name.lower()}")
    if isinstance(doc.get("dbt_cloud"), dict):
        for key, default in (("token_env", "DBT_CLOUD_API_TOKEN"), ("webhook_secret_env", "DBT_CLOUD_WEBHOOK_SECRET")):
            monkeypatch.setenv(str(doc["dbt_cloud"].get(key) or default), "dummy-secret")
    (tmp / "dbt_studio.yml").write_text(block.text, encoding="utf-8")
    problems = []
    try:
        if "destinations" in doc:
            for name, config in load_destinations(tmp, tmp).items():
                known = {o.name for o in REGISTRY[config.type].surface().fields} | GENERIC_OPTIONS
                problems += [f"{block.where}: destinations.{name}: '{key}' is not an option of type "
                             f"'{config.type}' (options: {', '.join(sorted(known))})"
                             for key in config.options if key not in known]
            problems += [f"{block.where}: destinations.{name}: {problem}"
                         for name, config in load_destinations(tmp, tmp).items() if config.type == "http"
                         for problem in _http_template_problems(name, config.options, tmp)]
        if "dbt_cloud" in doc:
            load_dbt_cloud(tmp, tmp)
        if "alerts" in doc:
            load_alerts(tmp, tmp)
        if "safeguards" in doc:
            load_safeguards(tmp, tmp)
        if "exposures" in doc:
            load_exposures_settings(tmp, tmp)
        if "schedules" in doc:
            from sync_runner.serve.schedules import load_schedules

            load_schedules(tmp, tmp)
    except UserError as exc:
        problems.append(f"{block.where}: {exc}")
    return problems


class _AnyRecord(dict):
    """A record that has every field a template asks for."""

    def __missing__(self, key: str) -> str:
        return f"value of {key}"


def _http_template_problems(name: str, options: dict[str, Any], tmp: Path) -> list[str]:
    """The http destination's url and body templates, opened as the runner opens them and rendered for a record."""
    destination = REGISTRY["http"](name, options, "docs_sync", "run", tmp)
    try:
        destination.open()
        record = _AnyRecord()
        context = {"op": "insert", "key": "key-1", "record": record, "records": [record], "keys": ["key-1"]}
        destination.url.render(**context)
        body = destination.body.render(**context)
    except (Terminal, jinja2.TemplateError) as exc:
        return [str(exc)]
    try:
        json.loads(body)
    except ValueError:
        return [f"body_template does not render to JSON: {body[:80]!r}"]
    return []


def _example_models() -> dict[str, dict[str, Any]]:
    """The plant-store example's models: name -> {meta, columns}, from its YAML files and SQL file names."""
    models: dict[str, dict[str, Any]] = {p.stem: {"meta": {}, "columns": []}
                                         for p in (EXAMPLE / "models").rglob("*.sql")}
    for path in (EXAMPLE / "models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models") or []:
            entry = models.setdefault(model["name"], {"meta": {}, "columns": []})
            entry["meta"] = ((model.get("config") or {}).get("meta")) or {}
            entry["columns"] = [c["name"] for c in model.get("columns") or []]
    return models


def _is_meta_block(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("models"), list) and any(
        isinstance(m, dict) and "dbt_studio" in (((m.get("config") or {}).get("meta")) or {}) for m in doc["models"])


def meta_problems(block: Block, tmp: Path, destinations_yml: str) -> list[str]:
    """A model meta block through `dbt-studio validate`'s checks, laid over the example's models.

    The block's models replace the example's models of the same name (their meta; documented columns are the
    block's plus the example's, as a block is usually an excerpt); the destinations are the example's and the docs' own.
    """
    doc = yaml.safe_load(block.text)
    if not _is_meta_block(doc):
        return []
    models = _example_models()
    for model in doc["models"]:
        entry = models.setdefault(model["name"], {"meta": {}, "columns": []})
        entry["meta"] = ((model.get("config") or {}).get("meta")) or {}
        listed = [c["name"] for c in model.get("columns") or []]
        entry["columns"] = listed + [c for c in entry["columns"] if c not in listed]
    shown = {m["name"] for m in doc["models"]}
    nodes = {}
    for name, entry in models.items():
        uid = f"model.docs_example.{name}"
        nodes[uid] = {"unique_id": uid, "name": name, "resource_type": "model", "package_name": "docs_example",
                      "original_file_path": f"models/{name}.sql",
                      "patch_path": f"docs://{block.where}" if name in shown else f"example://models/{name}.yml",
                      "config": {"meta": entry["meta"], "materialized": "table"}, "schema": "main",
                      "columns": {c: {"name": c} for c in entry["columns"]}}
    (tmp / "target").mkdir(exist_ok=True)
    manifest = {"metadata": {}, "nodes": nodes, "macros": package_macros()}
    (tmp / "target" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (tmp / "dbt_studio.yml").write_text(destinations_yml, encoding="utf-8")
    try:
        problems = validate_manifest(load_manifest(tmp), tmp, tmp)
    except UserError as exc:
        return [f"{block.where}: {exc}"]
    return [str(p) for p in problems]


def _docs_destinations(monkeypatch: pytest.MonkeyPatch) -> str:
    """One dbt_studio.yml with the example's destinations and every destination (and alert channel) the docs
    define."""
    merged = dict(yaml.safe_load((EXAMPLE / "dbt_studio.yml").read_text(encoding="utf-8"))["destinations"])
    channels: dict[str, Any] = {}
    for block in _of("yaml", "yml"):
        doc = yaml.safe_load(block.text)
        if isinstance(doc, dict) and isinstance(doc.get("destinations"), dict):
            merged.update(doc["destinations"])
        if isinstance(doc, dict) and isinstance(doc.get("alerts"), dict):
            channels.update(doc["alerts"].get("channels") or {})
        if isinstance(doc, dict) and ("destinations" in doc or "alerts" in doc):
            for name in re.findall(r"env_var\(\s*['\"](\w+)['\"]", block.text):
                monkeypatch.setenv(name, f"dummy-{name.lower()}")
    return yaml.safe_dump({"destinations": merged, "alerts": {"channels": channels}}, sort_keys=False)


@cache
def _package_settings() -> set[str]:
    """The `dbt_studio_*` vars the package reads: the keys of its defaults macro, and vars read directly."""
    names = set()
    for path in (ROOT / "macros").rglob("*.sql"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"var\(\s*['\"](dbt_studio_\w+)['\"]", text))
        for body in re.findall(r"{%-?\s*macro\s+default__defaults\(.*?{%-?\s*endmacro", text, flags=re.S):
            names |= {f"dbt_studio_{key}" for key in re.findall(r"'(\w+)'\s*:", body)}
    return names


def vars_problems(block: Block, known: set[str]) -> list[str]:
    """A `vars:` block may only set `dbt_studio_*` vars the package reads."""
    doc = yaml.safe_load(block.text)
    if not isinstance(doc, dict) or not isinstance(doc.get("vars"), dict):
        return []
    return [f"{block.where}: vars.{name}: the package has no such setting" for name in doc["vars"]
            if str(name).startswith("dbt_studio_") and name not in known]


# --- SQL / Jinja ---------------------------------------------------------------------------------------------

def _dbt_env() -> jinja2.Environment:
    """Jinja as dbt configures it: `do` and loop controls; `{{ config(...) }}` and `ref()` are plain calls."""
    return jinja2.Environment(extensions=[jinja2.ext.do, jinja2.ext.loopcontrols])


@cache
def _package_names() -> set[str]:
    """Public macros and data tests of the package (what `dbt_studio.<name>` may refer to)."""
    names = set()
    for path in (ROOT / "macros").rglob("*.sql"):
        names |= set(re.findall(r"{%-?\s*(?:macro|test)\s+(\w+)", path.read_text(encoding="utf-8")))
    return {n for n in names if not n.startswith("_")}


@cache
def _signatures() -> dict[str, tuple[list[str], int]]:
    """Public macro -> (its parameter names, how many have no default), read from `{% macro name(...) %}`."""
    out = {}
    for path in (ROOT / "macros").rglob("*.sql"):
        for name, params in re.findall(r"{%-?\s*macro\s+(\w+)\((.*?)\)\s*-?%}", path.read_text(encoding="utf-8"),
                                       flags=re.S):
            if name.startswith("_"):
                continue
            args = ast.parse(f"def {name}({params}): pass").body[0].args  # Jinja's signature syntax is Python's
            names = [a.arg for a in args.args]
            out[name] = (names, len(names) - len(args.defaults))
    return out


def sql_problems(block: Block, known: set[str]) -> list[str]:
    """The block parses as dbt Jinja, and each `dbt_studio.<macro>(...)` call names a macro with those arguments."""
    try:
        tree = _dbt_env().parse(block.text)
    except jinja2.TemplateSyntaxError as exc:
        return [f"{block.where}: Jinja does not parse (line {exc.lineno} of the block): {exc.message}"]
    problems, signatures = [], _signatures()
    for call in tree.find_all(jinja2.nodes.Call):
        target = call.node
        if not (isinstance(target, jinja2.nodes.Getattr) and isinstance(target.node, jinja2.nodes.Name)
                and target.node.name == "dbt_studio"):
            continue
        name = target.attr
        if name not in known or name not in signatures:
            problems.append(f"{block.where}: dbt_studio.{name} is not a macro of the package")
            continue
        params, required = signatures[name]
        given = params[:len(call.args)] + [kw.key for kw in call.kwargs]
        problems += [f"{block.where}: dbt_studio.{name}() has no argument '{kw.key}' ({', '.join(params)})"
                     for kw in call.kwargs if kw.key not in params]
        problems += [f"{block.where}: dbt_studio.{name}() needs '{p}'" for p in params[:required] if p not in given]
    return problems


def _data_tests(doc: Any) -> list[str]:
    """Names listed under `data_tests:` / `tests:` anywhere in a YAML document."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("data_tests", "tests") and isinstance(value, list):
                found += [next(iter(t)) if isinstance(t, dict) else str(t) for t in value if t]
            else:
                found += _data_tests(value)
    elif isinstance(doc, list):
        for item in doc:
            found += _data_tests(item)
    return found


def data_test_problems(block: Block, known: set[str]) -> list[str]:
    """A `dbt_studio.<test>` named in a YAML block's data tests must exist."""
    names = [t.split(".", 1)[1] for t in _data_tests(yaml.safe_load(block.text)) if t.startswith("dbt_studio.")]
    return [f"{block.where}: data test dbt_studio.{name} does not exist" for name in names if name not in known]


# --- links ---------------------------------------------------------------------------------------------------

def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, seen = set(), {}
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        slug = _slug(line.lstrip("#"))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def link_problems(page: Path, text: str | None = None) -> list[str]:
    text = page.read_text(encoding="utf-8") if text is None else text
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are examples, not links
    problems = []
    here = page.relative_to(ROOT)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append(f"{here}: link to {target}: {path} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{here}: link to {target}: no heading '#{anchor}' in {path or page.name}")
    return problems


REPO_PATH = re.compile(r"(?<![\w/.<-])((?:tests|integration_tests|benchmarks|sync_runner|macros|docs|models)"
                       r"/[\w./-]*\w/?)")


def path_problems(page: Path, text: str | None = None) -> list[str]:
    """Repository paths the prose names in backticks (`tests/...`, `macros/...`, ...) exist; `models/...` may also
    be the example project's (the demo is a copy of it)."""
    text = page.read_text(encoding="utf-8") if text is None else text
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    here = page.relative_to(ROOT)
    return [f"{here}: `{path}` does not exist" for span in re.findall(r"`([^`\n]+)`", text)
            for path in REPO_PATH.findall(span) if not (ROOT / path).exists() and not (EXAMPLE / path).exists()]


# --- the docs as they are ------------------------------------------------------------------------------------

def test_pages_have_examples() -> None:
    """The extraction finds the blocks (a parser that found none would make every test below pass vacuously)."""
    langs = [b.lang for b in ALL_BLOCKS]
    assert langs.count("yaml") >= 10 and langs.count("sql") >= 4, langs
    assert sum(b.skip for b in ALL_BLOCKS) <= 3, [b.where for b in ALL_BLOCKS if b.skip]


@pytest.mark.parametrize("block", _of("yaml", "yml"), ids=_ids(_of("yaml", "yml")))
def test_yaml_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert yaml_problems(block) == []
    assert studio_file_problems(block, tmp_path, monkeypatch) == []
    assert data_test_problems(block, _package_names()) == []
    assert vars_problems(block, _package_settings()) == []
    if _is_meta_block(yaml.safe_load(block.text)):
        assert meta_problems(block, tmp_path, _docs_destinations(monkeypatch)) == []


@pytest.mark.parametrize("block", _of("sql"), ids=_ids(_of("sql")))
def test_sql_block(block: Block) -> None:
    assert sql_problems(block, _package_names()) == []


@pytest.mark.parametrize("block", _of("python"), ids=_ids(_of("python")))
def test_python_block(block: Block) -> None:
    ast.parse(block.text)


@pytest.mark.parametrize("block", _of("json"), ids=_ids(_of("json")))
def test_json_block(block: Block) -> None:
    json.loads(block.text)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_links(page: Path) -> None:
    assert link_problems(page) == []
    assert path_problems(page) == []


def destination_doc_problems(page_text: str) -> list[str]:
    """Every destination type has a row or a section of the destinations page naming each of its own options."""
    problems = []
    for name, cls in sorted(REGISTRY.items()):
        rows = [line for line in page_text.splitlines() if re.match(rf"^\| `{name}`", line)]
        sections = re.findall(rf"^## [^\n]*\b{name}\b[^\n]*\n(.*?)(?=^## |\Z)", page_text, flags=re.S | re.M)
        text = "\n".join(rows + sections)
        if not text:
            problems.append(f"docs/destinations.md: no row or section for destination type '{name}'")
            continue
        problems += [f"docs/destinations.md: destination type '{name}': option '{key}' is not documented"
                     for key in [o.name for o in cls.options]
                     if key not in GENERIC_OPTIONS | {"timeout"} and f"`{key}`" not in text]
    return problems


def test_every_destination_option_is_documented() -> None:
    assert destination_doc_problems((ROOT / "docs" / "destinations.md").read_text(encoding="utf-8")) == []


def cli_doc_problems(cli_page: str, all_docs: str) -> list[str]:
    """Every command has its row in docs/cli.md, and every long option of it is named somewhere in the docs."""
    def commands(group: click.Group, prefix: str):
        for name, command in sorted(group.commands.items()):
            if isinstance(command, click.Group):
                yield from commands(command, f"{prefix} {name}")
            else:
                yield f"{prefix} {name}", command

    problems = []
    for path, command in commands(cli, "dbt-studio"):
        if not re.search(rf"^\| `{re.escape(path)}[ `]", cli_page, flags=re.M):
            problems.append(f"docs/cli.md: no row for `{path}`")
        problems += [f"docs: option {option} of `{path}` is not documented"
                     for param in command.params if isinstance(param, click.Option)
                     for option in param.opts if option.startswith("--") and option not in all_docs]
    return problems


def test_every_command_and_option_is_documented() -> None:
    all_docs = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    assert cli_doc_problems((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"), all_docs) == []


def test_quickstart_keeps_its_two_lines() -> None:
    """CI runs line 2 of the first code block under `## Quickstart` (.ci/run): the block must stay as it is."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1]
    first = blocks_of(ROOT / "README.md", quickstart)[0]
    assert first.text.splitlines() == [
        "pip install -c constraints.txt -e . && dbt-studio demo",
        "pip install -c constraints.txt -e '.[test]' && pytest",
    ]


def test_readme_is_a_front_page() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


# --- each check fails on a broken example --------------------------------------------------------------------

def _block(lang: str, text: str) -> Block:
    return Block(ROOT / "docs" / "example.md", 1, lang, text, False)


def test_checks_catch_broken_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    known = _package_names()
    assert yaml_problems(_block("yaml", "models:\n  - name: x\n   config: {}\n"))
    assert sql_problems(_block("sql", "{{ dbt_studio.audience(parent='stg_users', where={'and': [}) }}\n"), known)
    assert sql_problems(_block("sql", "{{ dbt_studio.audiense(parent='stg_users') }}\n"), known)
    assert sql_problems(_block("sql", "{{ dbt_studio.audience(parent='stg_users', wher={}) }}\n"), known)
    assert sql_problems(_block("sql", "{{ dbt_studio.entity_features(id_graph=ref('g'), inputs={}) }}\n"), known)
    assert not sql_problems(_block("sql", "{{ config(materialized='table') }}\n"
                                          "{{ dbt_studio.audience('stg_users', where={'not': {}}) }}\n"), known)
    assert data_test_problems(_block("yaml", "data_tests: [dbt_studio.one_main_id_per_idd]\n"), known)
    settings = _package_settings()
    assert {"dbt_studio_stitch_max_rounds", "dbt_studio_sync_duckdb_memory_limit", "dbt_studio_as_of"} <= settings
    assert vars_problems(_block("yaml", "vars: {dbt_studio_stitch_max_round: 3}\n"), settings)

    (tmp_path / "a").mkdir()
    assert studio_file_problems(_block("yaml", "destinations:\n  x: {type: htp, url: 'https://e.com'}\n"),
                                tmp_path / "a", monkeypatch)
    assert studio_file_problems(_block("yaml", "destinations:\n  x: {type: http}\n"), tmp_path / "a", monkeypatch)
    assert studio_file_problems(_block("yaml", "destinations:\n  x: {type: file, path: s, batchsize: 5}\n"),
                                tmp_path / "a", monkeypatch)
    assert studio_file_problems(_block("yaml", "dbt_cloud: {account_id: 1, job_ids: [2], token: abc}\n"),
                                tmp_path / "a", monkeypatch)
    bad_body = "destinations:\n  x: {type: http, url: 'https://e.com', body_template: '{\"a\": {{ record.a }'}\n"
    assert studio_file_problems(_block("yaml", bad_body), tmp_path / "a", monkeypatch)
    not_json = "destinations:\n  x: {type: http, url: 'https://e.com', body_template: '{\"a\": {{ record.a }}}'}\n"
    assert studio_file_problems(_block("yaml", not_json), tmp_path / "a", monkeypatch)
    ok = "destinations:\n  x: {type: http, url: 'https://e.com', headers: {A: \"{{ env_var('DOCS_T') }}\"}}\n"
    assert not studio_file_problems(_block("yaml", ok), tmp_path / "a", monkeypatch)

    destinations = _docs_destinations(monkeypatch)
    meta = ("models:\n  - name: stg_users\n    config:\n      meta:\n        dbt_studio:\n          {}\n")
    for broken in ("model_typ: parent",  # unknown key
                   "relationships: [{to: stg_purchases, cardinality: 61, join: {user_id: user_id}}]",
                   "relationships: [{to: stg_purchase, cardinality: '1:many', join: {user_id: user_id}}]",
                   "primary_key: user_idd",  # not a documented column of stg_users
                   "{primary_key: user_id, syncs: [{name: s, destination: nowhere, mappings: {id: user_id}}]}"):
        (tmp_path / "b").mkdir(exist_ok=True)
        assert meta_problems(_block("yaml", meta.format(broken)), tmp_path / "b", destinations), broken
    fine = meta.format("{primary_key: user_id, syncs: [{name: s, destination: local_files, mappings: {id: user_id}}]}")
    assert not meta_problems(_block("yaml", fine), tmp_path / "b", destinations)

    documented = (ROOT / "docs" / "destinations.md").read_text(encoding="utf-8")
    assert destination_doc_problems(documented.replace("`token_url`", "token url"))
    assert destination_doc_problems(re.sub(r"^\| `klaviyo` \|.*$", "", documented, flags=re.M))

    cli_page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert cli_doc_problems(re.sub(r"^\| `dbt-studio status.*$", "", cli_page, flags=re.M), cli_page)
    assert cli_doc_problems(cli_page, cli_page.replace("--full-resync", "full resync"))

    page = ROOT / "docs" / "example.md"
    assert link_problems(page, "see [x](nowhere.md) and [y](sync.md#no-such-heading)\n") == [
        "docs/example.md: link to nowhere.md: nowhere.md does not exist",
        "docs/example.md: link to sync.md#no-such-heading: no heading '#no-such-heading' in sync.md"]
    assert not link_problems(page, "see [x](sync.md#state-tables) and [r](../README.md)\n")

    assert path_problems(page, "run `pytest tests/test_sync.py` and read `macros/sync/plan.sql`\n") == [
        "docs/example.md: `tests/test_sync.py` does not exist"]

    skipped = blocks_of(page, f"text\n\n{SKIP}\n```yaml\na: [\n```\n")
    assert skipped[0].skip and yaml_problems(skipped[0])  # marked, and still broken: the mark only skips it
