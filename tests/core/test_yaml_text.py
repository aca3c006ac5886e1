"""YAML read with libyaml's parser and kept parsed (sync_runner/core/yaml_text.py): the values and the errors
PyYAML's own parser gives, never a stale value, and a command whose files did not change never imports PyYAML."""

from __future__ import annotations

import marshal
import math
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from sync_runner.core import yaml_text

TEXTS = [
    "destinations:\n  crm:\n    type: http\n    url: \"{{ env_var('CRM_URL') }}\"\n    headers: {A: b}\n",
    "a: &x {k: [1, 2.5, yes, no, ~, 0o17, 0x1f, 1_000, .inf]}\nb: *x\n'quoted': \"é\\t\"\n",
    "- 1\n- [a, b]\n- {c: null}\n",
    "",
    "just text",
]


DOCUMENTS = [
    "name: shop\nversion: '1.0'\nprofile: shop\nmodel-paths: [models, marts]\n",
    "a: 1\nb: 1.5\nc: true\nd: no\ne: null\nf: ~\ng: 2024-06-01\nh: 2024-06-01 08:30:00\ni: 0o17\nj: 0x1F\n",
    "base: &base {type: http, url: 'https://x.example.com'}\nhook:\n  <<: *base\n  batch_size: 500\n",
    "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\nquoted: \"é漢字 \\u00e9 \\t\"\n",
    "- 1\n- [2, 3]\n- {k: v}\n- '{{ env_var(\"TOKEN\") }}'\n",
    "",
    "just a string",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_the_values_are_pyyamls(text):
    assert yaml_text.safe_load(text) == yaml.safe_load(text)
    assert type(yaml_text.safe_load(text)) is type(yaml.safe_load(text))


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a:\n  b: 1\n   c: 2\n", "a: b: c\n", "key: 'open\n",
                                  "!!python/object:os.system x\n"])
def test_an_error_is_pyyamls(text):
    with pytest.raises(yaml.YAMLError) as expected:
        yaml.safe_load(text)
    with pytest.raises(yaml_text.Invalid) as got:
        yaml_text.safe_load(text)
    assert str(got.value) == str(expected.value)
    for part in ("problem", "context"):
        assert getattr(got.value, part) == getattr(expected.value, part, None)


def test_libyaml_parses_when_pyyaml_has_it(monkeypatch):
    """(The speed is the point: with libyaml the C loader is the one used.)"""
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    used = []
    monkeypatch.setattr(yaml, "load", lambda text, Loader: used.append(Loader) or {"x": 1})
    assert yaml_text.safe_load("x: 1\n") == {"x": 1} and used == [yaml.CSafeLoader]


def another_command(kept) -> None:
    """What the next command sees: the kept file as written, nothing of this process's keeper."""
    yaml_text.keep_in(None)
    yaml_text.keep_in(kept.parent)


@pytest.fixture
def kept(tmp_path):
    yaml_text.keep_in(tmp_path)
    yield tmp_path / yaml_text.KEPT_FILE
    yaml_text.keep_in(None)


@pytest.mark.parametrize("text", TEXTS)
def test_a_kept_text_reads_as_pyyaml_parses_it_and_each_read_is_a_fresh_copy(text, kept):
    expected = yaml.safe_load(text)
    first = yaml_text.safe_load(text)
    assert first == expected
    yaml_text.flush()
    if isinstance(expected, (dict, list)):  # kept: written, and read back from the file by another keeper
        assert kept.is_file()
        another_command(kept)
        again = yaml_text.safe_load(text)
        assert again == expected and again is not first
        if isinstance(again, dict):
            again.clear()  # a caller that changes what it got changes nothing kept
        assert yaml_text.safe_load(text) == expected


def test_values_marshal_cannot_hold_exactly_are_parsed_every_time(kept):
    dated = yaml_text.safe_load("when: 2026-12-05\n")
    assert str(dated["when"]) == "2026-12-05"
    nan = yaml_text.safe_load("x: .nan\n")
    assert math.isnan(nan["x"])
    yaml_text.flush()
    assert not kept.exists()


def test_a_changed_text_or_another_pyyaml_is_parsed_afresh(kept):
    assert yaml_text.safe_load("a: 1\n") == {"a": 1}
    assert yaml_text.safe_load("a: 2\n") == {"a": 2}
    yaml_text.flush()
    blobs = marshal.loads(kept.read_bytes())
    assert len(blobs) == 2 and all(k.endswith("/" + yaml.__version__) for k in blobs)
    # the same text kept by another PyYAML, with another value: never taken
    other = {k.rsplit("/", 1)[0] + "/0.1": marshal.dumps({"a": "stale"}) for k in blobs}
    kept.write_bytes(marshal.dumps(other))
    another_command(kept)
    assert yaml_text.safe_load("a: 1\n") == {"a": 1}


def test_a_text_that_is_not_yaml_is_invalid_with_where_and_why_and_nothing_is_kept(kept):
    with pytest.raises(yaml_text.Invalid) as caught:
        yaml_text.safe_load("a: [1, 2\nb: 3\n")
    assert caught.value.problem_mark.line == 1 and caught.value.problem
    yaml_text.flush()
    assert not kept.exists()


def test_what_is_not_to_be_kept_is_not_and_a_damaged_file_is_parsed_past(kept):
    assert yaml_text.safe_load("dev:\n  password: hunter2\n", keep=False) == {"dev": {"password": "hunter2"}}
    yaml_text.flush()
    assert not kept.exists()
    kept.write_bytes(b"not marshal")
    another_command(kept)
    assert yaml_text.safe_load("b: 1\n") == {"b": 1}
    yaml_text.flush()
    assert b"hunter2" not in kept.read_bytes() and len(marshal.loads(kept.read_bytes())) == 1


def test_no_target_dir_or_one_that_cannot_be_written_keeps_nothing(tmp_path):
    yaml_text.keep_in(tmp_path / "missing")
    try:
        assert yaml_text.safe_load("a: 1\n") == {"a": 1}
        yaml_text.flush()
        assert not (tmp_path / "missing").exists()
        taken = tmp_path / "taken"
        (taken / yaml_text.KEPT_FILE).mkdir(parents=True)  # a name nothing can be written to (not even as root)
        yaml_text.keep_in(taken)
        assert yaml_text.safe_load("a: 1\n") == {"a": 1}
        yaml_text.flush()
        assert os.listdir(taken) == [yaml_text.KEPT_FILE] and (taken / yaml_text.KEPT_FILE).is_dir()
    finally:
        yaml_text.keep_in(None)


def test_the_same_directory_again_is_the_same_keeper(kept):
    yaml_text.safe_load("a: 1\n")
    yaml_text.keep_in(kept.parent)  # (e.g. the manifest loaded twice by one command)
    yaml_text.flush()
    assert len(marshal.loads(kept.read_bytes())) == 1


def test_the_file_holds_the_texts_read_last(kept, monkeypatch):
    monkeypatch.setattr(yaml_text, "MAX_KEPT", 4)
    for i in range(3):
        yaml_text.safe_load(f"old{i}: 1\n")
    yaml_text.flush()
    another_command(kept)  # another command: it reads four texts, three of them new
    yaml_text.safe_load("old2: 1\n")
    for i in range(3):
        yaml_text.safe_load(f"new{i}: 1\n")
    yaml_text.flush()
    held = {next(iter(marshal.loads(b))) for b in marshal.loads(kept.read_bytes()).values()}
    assert held == {"old2", "new0", "new1", "new2"}
    assert set(yaml_text._kept.blobs) == set(marshal.loads(kept.read_bytes()))  # and no more in memory (serve)


def test_a_command_whose_files_did_not_change_does_not_import_pyyaml(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "dbt_studio.yml").write_text("destinations:\n  out: {type: file, path: out}\n")
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from sync_runner.core import yaml_text
        yaml_text.keep_in(Path({str(tmp_path / 'target')!r}))
        value = yaml_text.safe_load(Path({str(tmp_path / 'dbt_studio.yml')!r}).read_text())
        yaml_text.flush()
        print(value, 'yaml' in sys.modules)
    """)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60) for _ in "ab"]
    assert [r.stdout.strip() for r in runs] == ["{'destinations': {'out': {'type': 'file', 'path': 'out'}}} True",
                                                "{'destinations': {'out': {'type': 'file', 'path': 'out'}}} False"]
