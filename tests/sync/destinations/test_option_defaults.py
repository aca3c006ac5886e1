"""Each destination option's default is declared once, with the option (`Option(..., default=...)`): validation,
the docs tables, `dbt-studio destinations` and the run all read that one. A destination that re-stated a default in
code (`config.get("timeout", 60)` next to `default=30`) would behave one way with the option absent and another
with the documented default written out; these tests open every destination type both ways and compare what it
resolved, and read the destination modules for such re-stated defaults.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from sync_runner.sync.destinations import REGISTRY
from sync_runner.sync.destinations.base import Destination

FAR = "http://127.0.0.1:9"  # never contacted: opening these types sends no request

# The required options of each type, with values that open() accepts (no request is sent: tokens are given).
MINIMAL: dict[str, dict[str, Any]] = {
    "braze": {"api_key": "k", "base_url": FAR},
    "customerio": {"site_id": "s", "api_key": "k"},
    "duckdb": {"path": "destination.duckdb", "table": "people"},
    "file": {"path": "out/files"},
    "google_ads_customer_match": {"customer_id": "123-456-7890", "user_list_id": "42", "developer_token": "d",
                                  "access_token": "t"},
    "http": {"url": f"{FAR}/records"},
    "hubspot": {"access_token": "t"},
    "iterable": {"api_key": "k"},
    "klaviyo": {"api_key": "k"},
    "mailchimp": {"api_key": "k-us6", "list_id": "abc123"},
    "meta_custom_audience": {"access_token": "t", "audience_id": "42"},
    "postgres": {"table": "people"},  # + the test server's dsn
    "rudderstack": {"write_key": "w", "base_url": FAR},
    "salesforce": {"object": "Contact", "external_id_field": "External_Id__c", "base_url": FAR,
                   "access_token": "t"},
    "segment": {"write_key": "w"},
}


def _plain(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool, type(None), Path)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return False


def _resolved(cls: type[Destination], config: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """What an opened destination settled on: its plain attributes, those of its own helpers (a rate limiter's
    interval; not the time its next request is due) and its delivery limits."""
    destination = cls("dest", config, "defaults_sync", "run1", base_dir)
    destination.open()
    try:
        state: dict[str, Any] = {"limits": destination.limits()}
        for name, value in vars(destination).items():
            if name == "config":
                continue  # what was written, not what was resolved
            if _plain(value):
                state[name] = value
            elif type(value).__module__.startswith("sync_runner"):
                state[name] = {k: v for k, v in vars(value).items() if _plain(v) and not k.startswith("next")}
        return state
    finally:
        destination.close(False)


def test_every_type_resolves_an_absent_option_to_its_declared_default(tmp_path, postgres_dsn):
    assert set(MINIMAL) == set(REGISTRY), "add the new destination type's required options to MINIMAL"
    for name, cls in sorted(REGISTRY.items()):
        minimal = {**MINIMAL[name], **({"dsn": postgres_dsn} if name == "postgres" else {})}
        defaults = {f.name: f.default for f in cls.surface().fields if f.default is not None and f.name not in minimal}
        assert defaults, f"{name} declares no default"
        absent = _resolved(cls, minimal, tmp_path)
        written = _resolved(cls, {**minimal, **defaults}, tmp_path)
        assert absent == written, f"{name}: an absent option does not behave as its declared default"
        fields = cls.surface().fields_by_name
        caps = [fields[k].default for k in ("batch_size", "max_bytes", "concurrency", "rate_per_second")]
        assert absent["limits"][1:] == tuple(caps[1:]), name  # what `dbt-studio destinations` lists
        assert absent["limits"][0] == caps[0], name


def _restated_defaults(path: Path, declared: set[str]) -> list[str]:
    """`<x>.get("option", default)` and `<x>.get("option") or default` on a destination's config, for options
    that declare a default."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def option_get(node: ast.AST) -> str | None:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in declared
                and ast.unparse(node.func.value) in ("self.config", "cfg", "config")):
            return str(node.args[0].value)
        return None

    for node in ast.walk(tree):
        name = option_get(node)
        if name and len(node.args) > 1:  # type: ignore[attr-defined]
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and option_get(node.values[0]):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_destination_restates_a_declared_default_in_code():
    """Per module: the options its own types declare with a default (a shared base module: every type's)."""
    package = Path(REGISTRY["file"].__module__.replace(".", "/")).parent
    root = Path(__file__).resolve().parents[3]
    by_module: dict[str, set[str]] = {}
    for cls in REGISTRY.values():
        names = {f.name for f in cls.surface().fields if f.default is not None}
        by_module.setdefault(cls.__module__.rsplit(".", 1)[1], set()).update(names)
    everything = set().union(*by_module.values())
    found = [hit for path in sorted((root / package).glob("*.py"))
             for hit in _restated_defaults(path, by_module.get(path.stem, everything))]
    assert found == [], "read these with Destination.setting(name): " + "; ".join(found)
