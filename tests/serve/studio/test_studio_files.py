"""Audience files: the formatter's output read back by Jinja itself gives the same arguments, whatever the values
(quotes, `{{ }}`, `--`, backslashes, unicode); the reader gives back what the formatter wrote; unchanged saves keep
every byte; names and paths are confined to the model paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_runner.core.errors import UserError
from sync_runner.core.paths import example_root
from sync_runner.serve.studio.files import (
    Expr,
    NotEditable,
    check_name,
    format_call,
    parse_audience,
    render_file,
    save_audience,
    set_yaml_description,
)

from helpers.studio_projects import HOSTILE

EXAMPLE_AUDIENCES = sorted((example_root() / "models" / "audiences").glob("*.sql"))


def jinja_reads(text: str) -> dict:
    """What Jinja (as dbt runs it) passes to dbt_studio.audience when it renders `text`."""
    seen = {}

    class Package:
        @staticmethod
        def audience(**kwargs):
            seen.update(kwargs)
            return "select 1"

    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    out = env.from_string(text).render(dbt_studio=Package(), var=lambda name, default=None: default)
    assert "select 1" in out
    return seen


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=12),
                    st.sampled_from(HOSTILE), st.floats(allow_nan=False, allow_infinity=False, width=32))
leaf = st.fixed_dictionaries({"column": st.sampled_from(["region", "age", "email"]),
                              "op": st.sampled_from(["=", "in", "between", "contains"]),
                              "value": st.one_of(scalars, st.lists(scalars, max_size=3))})
related = st.fixed_dictionaries({"has": st.sampled_from(["orders", "plans"])},
                                optional={"where": leaf, "having": st.fixed_dictionaries(
                                    {"agg": st.just("sum"), "column": st.just("amount"), "op": st.just(">="),
                                     "value": st.integers(0, 500)})})
trees = st.recursive(st.one_of(leaf, related),
                     lambda kids: st.one_of(st.fixed_dictionaries({"and": st.lists(kids, max_size=4)}),
                                            st.fixed_dictionaries({"or": st.lists(kids, max_size=3)}),
                                            st.fixed_dictionaries({"not": kids})), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(where=trees, salt=st.text(max_size=20), description=st.text(max_size=30))
def test_formatted_calls_read_back_the_same_in_jinja_and_in_the_reader(tmp_path_factory, where, salt, description):
    arguments = {"parent": "users", "where": where, "splits": {"groups": {"a": 90, "holdout": 10},
                                                               "holdout": "holdout", "salt": salt},
                 "as_of": Expr("var('as_of', '2026-01-01')")}
    text = render_file(arguments, None, description)
    assert jinja_reads(text) == {**arguments, "as_of": "2026-01-01"}
    path = tmp_path_factory.mktemp("fmt") / "a.sql"
    path.write_text(text, encoding="utf-8")
    parsed = parse_audience(path)
    assert parsed.arguments == arguments
    assert render_file(parsed.arguments, parsed) == text  # formatting is stable
    assert all(len(line) <= 120 for line in text.splitlines() if "'" not in line)


@pytest.mark.parametrize("path", EXAMPLE_AUDIENCES, ids=[p.stem for p in EXAMPLE_AUDIENCES])
def test_every_example_audience_reads_and_saves_unchanged_byte_for_byte(tmp_path, path):
    project = tmp_path / "p"
    shutil.copytree(example_root(), project, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs"))
    target = project / "models" / "audiences" / path.name
    before = target.read_bytes()
    try:
        opened = parse_audience(target)
    except NotEditable:
        assert "dbt_studio.audience(" not in path.read_text()  # only non-audience models are refused
        return
    result = save_audience(project, target.parent, path.stem, dict(opened.arguments), original=opened,
                           overwrite=False)
    assert result.changed is False and target.read_bytes() == before
    # the reader's arguments are what Jinja passes to the macro
    assert jinja_reads(opened.text) == {k: ("2026-01-01" if isinstance(v, Expr) else v)
                                        for k, v in opened.arguments.items()}
    # an edit rewrites only the call, keeping the comment above it
    edited = dict(opened.arguments, columns=["geo_region"])
    save_audience(project, target.parent, path.stem, edited, original=opened, overwrite=False)
    text = target.read_text()
    assert text.startswith(opened.prefix) and parse_audience(target).arguments == edited


def test_names_and_paths_are_confined_to_the_model_paths(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(example_root(), project, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs"))
    folder = project / "models" / "audiences"
    args = {"parent": "stg_users", "where": {"column": "age", "op": ">", "value": 30}}
    for bad in ("../escape", "a/b", "Upper", "", "x" * 80, "a.b", "..", "évian"):
        with pytest.raises(UserError):
            check_name(bad)
        with pytest.raises(UserError):
            save_audience(project, folder, bad, args, original=None, overwrite=True)
    for outside in (project, project / "macros", tmp_path, project / "models" / ".." / "seeds"):
        with pytest.raises(UserError, match="outside the project's model paths"):
            save_audience(project, outside, "fine_name", args, original=None, overwrite=True)
    link = project / "models" / "link"
    link.symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UserError, match="outside"):
        save_audience(project, link, "fine_name", args, original=None, overwrite=True)
    assert not (tmp_path / "fine_name.sql").exists()
    # no overwrite without confirmation, no taking another model's name
    existing = folder / "high_value_buyers.sql"
    before = existing.read_bytes()
    with pytest.raises(UserError, match="confirm"):
        save_audience(project, folder, "high_value_buyers", args, original=None, overwrite=False)
    with pytest.raises(UserError, match=r"already exists in the project \(models/staging/stg_users.sql\)"):
        save_audience(project, folder, "stg_users", args, original=None, overwrite=True,
                      taken={"stg_users": "models/staging/stg_users.sql"})
    assert existing.read_bytes() == before
    written = save_audience(project, folder, "new_one", args, original=None, overwrite=False,
                            description="{{ exec('rm -rf /') }} -- it's", primary_key=["user_id"])
    assert written.created and written.sql_path == (folder / "new_one.sql").resolve()
    import yaml

    entry = yaml.safe_load(Path(written.yml_path).read_text())["models"][0]
    assert jinja2.Environment().from_string(entry["description"]).render() == "{{ exec('rm -rf /') }} -- it's"
    assert entry["config"] == {"meta": {"dbt_studio": {"primary_key": "user_id"}}}


def test_a_file_the_builder_cannot_edit_is_refused_in_one_line(tmp_path):
    path = tmp_path / "x.sql"
    for text in ("select 1", "{{ dbt_studio.audience('users') }}",
                 "{{ dbt_studio.audience(parent='users', where=my_tree ~ 'x') }}",
                 "{{ dbt_studio.audience(**spec) }}"):
        path.write_text(text)
        with pytest.raises(NotEditable) as info:
            parse_audience(path)
        assert "\n" not in str(info.value) and "x.sql" in str(info.value)
    path.write_text("{{ dbt_studio.audience(parent='users', as_of=var('d')) }}")
    assert parse_audience(path).arguments == {"parent": "users", "as_of": Expr("var('d')")}
    assert format_call({"parent": "users"}) == "{{ dbt_studio.audience(\n    parent='users',\n) }}"


def test_the_wheel_ships_every_template_and_vendored_file():
    """pyproject's package-data globs cover every file under templates/ and static/ (no CDN, no Node at install)."""
    import fnmatch

    import tomllib

    root = Path(__file__).resolve().parents[3]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "sync_runner.serve.studio"]
    studio = root / "sync_runner" / "serve" / "studio"
    files = [p.relative_to(studio).as_posix() for d in ("templates", "static") for p in (studio / d).iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)
    assert {"static/htmx.min.js", "static/uPlot.iife.min.js", "static/uPlot.min.css"} <= set(files)


SHARED_YAML = """version: 2

# several audiences documented in one file, as the example does
models:
  - name: first_one
    description: The first.   # a comment that stays
    config:
      meta: {dbt_studio: {primary_key: user_id}}
  - name: second_one
    description: |
      A block description
      over two lines.
    columns:
      - name: user_id
  - name: third_one
    columns: [{name: user_id}]
  - {name: fourth_one, description: 'flow style'}
  - name: fifth_one
"""


@pytest.mark.parametrize("name, old, new, text", [
    ("first_one", "The first.", "Changed: it's #1 -- {{ x }} é 🌱",
     "    description: The first.   # a comment that stays"),
    ("second_one", "A block description\nover two lines.\n", "Now one line", "    description: |\n"
     "      A block description\n      over two lines.\n"),
    ("third_one", None, "Added\nover two lines", "  - name: third_one\n"),
    ("fourth_one", "flow style", "still flow", "  - {name: fourth_one, description: 'flow style'}"),
    ("fifth_one", None, "at the end", "  - name: fifth_one\n"),
])
def test_a_description_in_a_shared_yaml_file_is_rewritten_in_place(tmp_path, name, old, new, text):
    models = tmp_path / "models"
    models.mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: p\n", encoding="utf-8")
    path = models / "_audiences.yml"
    path.write_text(SHARED_YAML, encoding="utf-8")
    assert text in SHARED_YAML
    assert set_yaml_description(tmp_path, path, name, new) is True
    after = path.read_text(encoding="utf-8")
    # every byte before and after the rewritten entry's text is as it was
    start = SHARED_YAML.index(text)
    end = start + len(text)
    assert after[:start] == SHARED_YAML[:start]
    assert after[len(after) - (len(SHARED_YAML) - end):] == SHARED_YAML[end:]
    data, before = yaml.safe_load(after), yaml.safe_load(SHARED_YAML)
    for got, was in zip(data["models"], before["models"], strict=True):
        if got["name"] != name:
            assert got == was
            continue
        assert was.get("description") == old
        assert {k: v for k, v in got.items() if k != "description"} == \
            {k: v for k, v in was.items() if k != "description"}
        # dbt renders descriptions as Jinja: the text comes back as typed
        assert jinja2.Environment().from_string(got["description"]).render() == new


def test_a_description_of_a_model_without_an_entry_writes_nothing(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: p\n", encoding="utf-8")
    path = models / "_audiences.yml"
    path.write_text(SHARED_YAML, encoding="utf-8")
    assert set_yaml_description(tmp_path, path, "sixth_one", "x") is False
    assert path.read_text(encoding="utf-8") == SHARED_YAML
    with pytest.raises(UserError, match="outside"):
        set_yaml_description(tmp_path, tmp_path / "elsewhere.yml", "first_one", "x")
