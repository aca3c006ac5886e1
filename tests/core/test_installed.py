"""Installed versions read from sys.path (sync_runner/core/installed.py), as importlib.metadata reads them."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

from sync_runner.core.installed import versions
from sync_runner.project.compiled import _DISTRIBUTIONS


def test_installed_versions_are_read_as_importlib_metadata_reads_them(tmp_path, monkeypatch):
    """The versions (in the compiled SQL's fingerprint, in the kept YAML's keys) come from the dist-info folders'
    names; each equals what importlib.metadata says, a distribution that is not installed reads "-", and a folder
    earlier on sys.path wins (as imports do)."""
    def expected(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    names = (*_DISTRIBUTIONS, "surely-not-installed-dist")
    assert versions(names) == {name: expected(name) for name in names}
    assert versions(names)["dbt-core"] != "-" and versions(names)["surely-not-installed-dist"] == "-"
    (tmp_path / "DuckDB-9.9.9.dist-info").mkdir()  # another spelling of the same name
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert versions(names)["duckdb"] == "9.9.9"
    # an egg-info install names no version the listing can read: importlib.metadata reads its PKG-INFO
    egg = tmp_path / "Shiny_Dist-2.0.1-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: shiny-dist\nVersion: 2.0.1\n")
    assert versions(("shiny-dist", "surely-not-installed-dist")) == {"shiny-dist": "2.0.1",
                                                                      "surely-not-installed-dist": "-"}
    # a sys.path entry that cannot be listed (a zip of packages) may hold any distribution: importlib.metadata
    # is asked, and reads what the zip holds
    import zipfile

    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as bundle:
        bundle.writestr("zipped_dist-3.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped-dist\n"
                                                              "Version: 3.1\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "bundle.zip"), *sys.path])
    assert versions(("zipped-dist",)) == {"zipped-dist": "3.1"}
