"""Renaming and deleting an audience's files, the description its YAML file holds now, keys given twice and the
text of a condition, called directly on small projects in a temporary folder (no warehouse, no build): what the
studio's rename / delete / save routes and its funnel rely on. The same in a real browser is in
test_studio_browser.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from sync_runner.audiences.preview import describe
from sync_runner.core.errors import UserError
from sync_runner.serve.studio.files import (
    NotEditable,
    delete_audience,
    json_object,
    parse_audience,
    refuse_repeated_keys,
    rename_audience,
    set_yaml_description,
    yaml_description,
)

CALL = "{#- a comment that stays -#}\n{{ dbt_studio.audience(\n    parent='users',\n) }}\n"
SHARED = """version: 2

# the audiences of this folder
models:
  - name: first_one
    description: The first.   # a comment that stays
    config:
      meta: {dbt_studio: {primary_key: user_id}}
  - name: second_one
    description: The second.
  - name: third_one
    description: "{{ '{' }}{ x }} is text"
"""
OWN = "version: 2\nmodels:\n- name: own_one\n  description: Its own file.\n  config:\n    meta:\n      dbt_studio:\n" \
      "        primary_key: user_id\n"


def project(tmp_path: Path) -> Path:
    """models/audiences/: first_one, second_one, third_one (documented in one _audiences.yml), own_one (its own
    own_one.yml), and uses_second, which refers to second_one."""
    (tmp_path / "dbt_project.yml").write_text("name: p\n", encoding="utf-8")
    folder = tmp_path / "models" / "audiences"
    folder.mkdir(parents=True)
    for name in ("first_one", "second_one", "third_one", "own_one"):
        (folder / f"{name}.sql").write_text(CALL, encoding="utf-8")
    (folder / "uses_second.sql").write_text(
        "{{ dbt_studio.audience(parent='users', where={'not in audience': 'second_one'}) }}\n", encoding="utf-8")
    (folder / "_audiences.yml").write_text(SHARED, encoding="utf-8")
    (folder / "own_one.yml").write_text(OWN, encoding="utf-8")
    return folder


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_rename_moves_the_file_and_renames_its_yaml_entry_in_place(tmp_path):
    folder = project(tmp_path)
    moved = rename_audience(tmp_path, folder / "first_one.sql", folder / "_audiences.yml", "first_one", "renamed")
    assert moved.sql_path == (folder / "renamed.sql").resolve() and moved.yml_path == folder / "_audiences.yml"
    assert not (folder / "first_one.sql").exists() and (folder / "renamed.sql").read_text() == CALL
    # one line of the shared file changed: the entry's name; comments and the other entries stay
    assert (folder / "_audiences.yml").read_text() == SHARED.replace("- name: first_one", "- name: renamed")
    # an audience documented in its own <name>.yml: that file moves too
    moved = rename_audience(tmp_path, folder / "own_one.sql", folder / "own_one.yml", "own_one", "own_two")
    assert moved.yml_path == (folder / "own_two.yml").resolve() and not (folder / "own_one.yml").exists()
    assert (folder / "own_two.yml").read_text() == OWN.replace("own_one", "own_two")
    assert (folder / "own_two.sql").read_text() == CALL and not (folder / "own_one.sql").exists()


@pytest.mark.parametrize("name, new_name, taken, referred_by, message", [
    ("first_one", "Bad-Name", (), (), "audience name 'Bad-Name': use lower-case letters"),
    ("first_one", "first_one", (), (), "first_one: the new name is the same as the old one; nothing renamed"),
    ("first_one", "stg_users", {"stg_users": "package shop"}, (),
     "first_one: a model named 'stg_users' already exists in the project (package shop); pick another name"),
    ("first_one", "third_one", (), (), "first_one: models/audiences/third_one.sql exists; pick another name"),
    ("second_one", "fine_name", (), (), "second_one: models/audiences/uses_second.sql refers to it; change that "
                                        "first (nothing renamed)"),
    ("first_one", "fine_name", (), ["models/exposures.yml"], "first_one: models/exposures.yml refers to it"),
    ("gone_one", "fine_name", (), (), "gone_one: models/audiences/gone_one.sql is not there"),
])
def test_a_refused_rename_says_why_in_one_line_and_changes_nothing(tmp_path, name, new_name, taken, referred_by,
                                                                   message):
    folder = project(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(UserError) as refused:
        rename_audience(tmp_path, folder / f"{name}.sql", folder / "_audiences.yml", name, new_name,
                        taken=dict(taken), referred_by=list(referred_by))
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert snapshot(tmp_path) == before


def test_a_delete_removes_the_file_and_its_yaml_entry_and_refuses_what_is_referred_to(tmp_path):
    folder = project(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match=r"^second_one: models/audiences/uses_second.sql refers to it; change that "
                                        r"first \(nothing deleted\)$"):
        delete_audience(tmp_path, folder / "second_one.sql", folder / "_audiences.yml", "second_one")
    with pytest.raises(UserError, match=r"^first_one: a test of orders refers to it"):
        delete_audience(tmp_path, folder / "first_one.sql", folder / "_audiences.yml", "first_one",
                        referred_by=["a test of orders"])
    assert snapshot(tmp_path) == before
    gone = delete_audience(tmp_path, folder / "first_one.sql", folder / "_audiences.yml", "first_one")
    assert not gone.sql_path.exists() and gone.yml_path == folder / "_audiences.yml"
    entry = SHARED[SHARED.index("  - name: first_one"):SHARED.index("  - name: second_one")]
    assert (folder / "_audiences.yml").read_text() == SHARED.replace(entry, "")
    # the last entry of a file, then an audience with a file of its own: the file goes with it
    delete_audience(tmp_path, folder / "third_one.sql", folder / "_audiences.yml", "third_one")
    assert [m["name"] for m in yaml.safe_load((folder / "_audiences.yml").read_text())["models"]] == ["second_one"]
    gone = delete_audience(tmp_path, folder / "own_one.sql", folder / "own_one.yml", "own_one")
    assert gone.yml_removed and not (folder / "own_one.yml").exists() and not (folder / "own_one.sql").exists()
    with pytest.raises(UserError, match="outside the project's model paths"):
        delete_audience(tmp_path, tmp_path / "dbt_project.yml", None, "dbt_project")


def test_the_description_is_the_yaml_file_s_as_it_is_now(tmp_path):
    folder = project(tmp_path)
    path = folder / "_audiences.yml"
    assert yaml_description(path, "first_one") == "The first."
    assert yaml_description(path, "third_one") == "{{ x }} is text"  # as the studio wrote it: dbt renders this
    assert yaml_description(path, "nobody") is None and yaml_description(None, "first_one") is None
    path.write_text(SHARED.replace("The first.", "Changed on disk"), encoding="utf-8")
    assert yaml_description(path, "first_one") == "Changed on disk"
    path.write_text(SHARED.replace("The first.", "\"{{ doc('first') }}\""), encoding="utf-8")
    assert yaml_description(path, "first_one") is None  # Jinja of its own: only the manifest knows the text


def test_a_key_given_twice_is_refused_naming_the_file_and_the_group(tmp_path):
    body = json.loads('{"splits": {"groups": {"email": 90, "email": 10}, "holdout": "email"}, "parent": "users"}',
                      object_pairs_hook=json_object)
    with pytest.raises(UserError) as refused:
        refuse_repeated_keys(body, "models/audiences/x.sql")
    assert str(refused.value) == "models/audiences/x.sql: splits: two groups named 'email'; rename one of them " \
                                 "(nothing saved)"
    refuse_repeated_keys(json.loads('{"splits": {"groups": {"a": 50, "b": 50}}}', object_pairs_hook=json_object),
                         "x.sql")
    # a hand-written file that names a group twice (Jinja would keep the last one) is not opened for editing
    path = tmp_path / "twice.sql"
    path.write_text("{{ dbt_studio.audience(parent='users', splits={'groups': {'a': 50, 'a': 50}}) }}")
    with pytest.raises(NotEditable, match=r"^twice.sql: argument 'splits': key 'a' is given twice$"):
        parse_audience(path)


def test_a_condition_s_text_is_plain_text_escaped_by_no_one():
    text = describe({"column": "geo_region", "op": "in", "value": ["Tom & Jerry's", 'say "café" <b>', None, 3]})
    assert text == 'geo_region in ["Tom & Jerry\'s", "say "café" <b>", null, 3]'
    window = {"performed": "views", "between": ["2020-01-01", "2021-01-01"], "times": {"op": ">=", "value": 2}}
    assert describe(window) == 'performed views between "2020-01-01" and "2021-01-01" times >= 2'


def test_a_yaml_file_documenting_many_audiences_is_parsed_once_per_version(tmp_path, monkeypatch):
    """The audiences listing asks each audience's description of the YAML file that documents it: a file that
    documents 200 of them was parsed 200 times a listing (25 s, see docs/studio.md). It is parsed once per version
    of the file (mtime, size, inode); an edit on disk, and the studio's own writes, are read again."""
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: p\n", encoding="utf-8")
    path = folder / "_audiences.yml"
    names = [f"audience_{i:02d}" for i in range(50)]
    path.write_text("version: 2\nmodels:\n" + "".join(f"  - name: {n}\n    description: About {n}.\n"
                                                      for n in names), encoding="utf-8")
    parsed: list[str] = []
    load = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text: parsed.append(text) or load(text))

    def listing():
        return [yaml_description(path, n) for n in names]

    assert listing() == [f"About {n}." for n in names] and len(parsed) == 1
    assert listing() == [f"About {n}." for n in names] and len(parsed) == 1
    path.write_text(path.read_text(encoding="utf-8").replace("About audience_07.", "Edited."), encoding="utf-8")
    assert listing()[7] == "Edited." and len(parsed) == 2
    before = path.stat()
    assert set_yaml_description(tmp_path, path, "audience_08", "Tuned audience_08.")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as written in the same tick: the same version
    assert path.stat().st_size == before.st_size and path.stat().st_ino == before.st_ino
    assert listing()[7:9] == ["Edited.", "Tuned audience_08."]
