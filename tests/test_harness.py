"""What `tests/conftest.py` changes in dbt to make the suite faster leaves dbt's results as they were."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[1]


class _HasDict:
    def to_dict(self, omit_none: bool = True) -> dict:
        return {"kept": 1} if omit_none else {"kept": 1, "none": None}


def test_artifacts_are_written_with_the_same_text_as_dbt_writes_them(tmp_path):
    from dbt.artifacts.schemas import base
    from dbt.artifacts.schemas.run.v5 import run
    from dbt_common.clients import system

    assert base.write_json is run.write_json is not system.write_json  # the harness's writer is in place
    doc = {"metadata": {"generated_at": datetime.datetime(2026, 12, 2, 20, 0, 1, 123456),
                        "day": datetime.date(2026, 1, 2)},
           "nodes": {"model.x.é": {"rate": decimal.Decimal("1.25"), "f": 0.1 + 0.2, "big": 10**20, "t": True,
                                   "n": None, "s": 'quote " and \\ and \u2028 and 🌱', "l": [1, 2.5, "x"]}},
           "undefined": jinja2.Undefined(), "error": ValueError("boom"), "obj": _HasDict(), "empty": {}}
    base.write_json(str(tmp_path / "new" / "manifest.json"), doc)
    system.write_json(str(tmp_path / "dbt" / "manifest.json"), doc)
    assert (tmp_path / "new" / "manifest.json").read_bytes() == (tmp_path / "dbt" / "manifest.json").read_bytes()


def test_the_shared_static_parse_environment_parses_every_macro_as_a_new_one():
    from dbt.clients import jinja_static
    from dbt_common.clients.jinja import get_environment

    shared = jinja_static.get_environment(None, capture_macros=True)
    assert shared is jinja_static.get_environment(None, capture_macros=True)
    sources = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "macros").rglob("*.sql"))]
    assert len(sources) > 30
    for source in sources:
        assert shared.parse(source) == get_environment(None, capture_macros=True).parse(source)
