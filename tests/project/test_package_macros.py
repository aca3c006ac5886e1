"""The package's macros run in Python (`validate`'s schema rules): their compiled code is kept between commands,
never used once their source changed, and written only when the command that compiled it asks."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from sync_runner.project.package_macros import PackageMacros, keep_compiled

FILE = "macros/schema/rules.sql"


def manifest(message: str) -> dict:
    """A manifest whose dbt_studio macro file FILE records one rule that reports `message`."""
    sql = ("{% macro _rule(problems) %}{% do problems.append(dbt_studio._say()) %}{% endmacro %}\n"
           f"{{% macro _say() %}}{{{{ return({message!r}) }}}}{{% endmacro %}}")
    return {"macros": {"macro.dbt_studio._rule": {"package_name": "dbt_studio", "original_file_path": FILE,
                                                  "macro_sql": sql}}}


def said(data: dict, folder: Path | None) -> list[str]:
    problems: list[str] = []
    PackageMacros(data, FILE, folder=folder).call("_rule", problems)
    return problems


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates Jinja compiles from source (a kept code file that is used compiles nothing)."""
    names: list[str] = []
    compile_ = jinja2.Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):
        names.append(str(name))
        return compile_(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return names


def kept_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("dbt_studio_macros_*.jinja"))


def test_the_code_is_written_only_when_kept_and_then_used_instead_of_compiling(tmp_path: Path, compiles) -> None:
    assert said(manifest("one"), tmp_path) == ["one"]
    assert len(compiles) == 1
    assert kept_files(tmp_path) == []  # nothing written by compiling: a refused command changes no file
    assert said(manifest("one"), tmp_path) == ["one"]  # the same process: the code waiting to be written
    assert len(compiles) == 1
    keep_compiled(tmp_path)
    [kept] = kept_files(tmp_path)
    assert said(manifest("one"), tmp_path) == ["one"]
    assert len(compiles) == 1  # read from the file
    keep_compiled(tmp_path)
    assert kept_files(tmp_path) == [kept]


def test_a_changed_source_compiles_again_and_runs_the_new_macro(tmp_path: Path, compiles) -> None:
    said(manifest("one"), tmp_path)
    keep_compiled(tmp_path)
    assert said(manifest("two"), tmp_path) == ["two"]  # same files, same name: only the source differs
    assert len(compiles) == 2
    keep_compiled(tmp_path)
    assert said(manifest("two"), tmp_path) == ["two"]
    assert said(manifest("one"), tmp_path) == ["one"]  # never the code of another source
    assert len(compiles) == 3


def test_a_damaged_or_foreign_kept_file_is_compiled_over(tmp_path: Path, compiles) -> None:
    said(manifest("one"), tmp_path)
    keep_compiled(tmp_path)
    [kept] = kept_files(tmp_path)
    good = kept.read_bytes()
    for damaged in (b"", b"not jinja bytecode", good[:20]):
        kept.write_bytes(damaged)
        assert said(manifest("one"), tmp_path) == ["one"]
        keep_compiled(tmp_path)  # the code compiled over it replaces it
        assert kept.read_bytes() == good
    assert len(compiles) == 4
    assert said(manifest("one"), tmp_path) == ["one"]
    assert len(compiles) == 4


def test_only_the_given_project_s_code_is_written(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    said(manifest("one"), first)
    said(manifest("one"), second)
    keep_compiled(second)
    assert kept_files(first) == [] and len(kept_files(second)) == 1
    keep_compiled(first)
    assert len(kept_files(first)) == 1


def test_without_a_folder_nothing_is_kept(tmp_path: Path, compiles) -> None:
    assert said(manifest("one"), None) == said(manifest("one"), None) == ["one"]
    assert len(compiles) == 2
    keep_compiled(tmp_path)
    assert kept_files(tmp_path) == []
