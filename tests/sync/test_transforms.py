"""Field transforms, constants and templates on a sync's mappings, on DuckDB and Snowflake (fakesnow).

Each transform runs in the warehouse (macros/sync/transforms.sql) and is checked against a plain-Python reference
of its documented rule (the phone and email rules are the ones the Meta and Google destinations use, in
sync_runner/sync/destinations/_identifiers.py); change capture compares the transformed value, so a change the
transform hides sends nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json

import pytest

from sync_runner.sync.destinations._identifiers import InvalidIdentifier, normalise_phone

from helpers import ADAPTERS
from helpers.sync_project import PROJECT, SyncProject, file_ops

CONTACT_COLUMNS = ("id", "email", "phone", "signup", "score", "city", "zip")
SEED_YML = """version: 2
seeds:
  - name: contacts_rows
    config:
      column_types: {id: varchar, email: varchar, phone: varchar, signup: date, score: integer, city: varchar,
                     zip: varchar}
"""
MAPPINGS = {
    "id": "id",
    "email_norm": {"column": "email", "transform": ["email"]},
    "email_hash": {"column": "email", "transform": ["email", "sha256"]},
    "phone_e164": {"column": "phone", "transform": [{"phone": 44}]},
    "phone_hash": {"column": "phone", "transform": [{"phone": "+44"}, "sha256"]},
    "phone_intl": {"column": "phone", "transform": ["phone"]},
    "masked": {"column": "email", "transform": ["trim", {"mask": 4}]},
    "hidden": {"column": "zip", "transform": ["mask"]},
    "city_up": {"column": "city", "transform": ["trim", "upper"]},
    "city_low": {"column": "city", "transform": ["lower"]},
    "signup_day": {"column": "signup", "transform": [{"date_format": "%d/%m/%Y"}]},
    "signup_iso": {"column": "signup", "transform": [{"date_format": "%Y-%m-%dT%H:%M:%S"}]},
    "score_text": {"column": "score", "transform": [{"cast": "string"}]},
    "zip_number": {"column": "zip", "transform": [{"cast": "integer"}]},
    "source": {"value": "crm"},
    "weight": {"value": 3},
    "address": {"template": '{"city": {{ city | tojson }}, "zip": {{ zip | tojson }}, '
                            '"tags": [{% for t in [city, zip] if t %}"{{ t | trim }}"{{ "," if not loop.last }}'
                            '{% endfor %}]}'},
    "greeting": {"template": "Hello {{ city | trim }}"},
}


def _phone(value, country):
    try:
        return normalise_phone(value, country)
    except InvalidIdentifier:
        return None


def _sha(text):
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def _mask(text, keep):
    if text is None:
        return None
    return "*" * max(len(text) - keep, 0) + (text[-keep:] if keep else "")


def reference(row: dict) -> dict:
    """Each field as its documented rule makes it, in plain Python."""
    email, phone, city, zip_code = row["email"], row["phone"], row["city"], row["zip"]
    signup = dt.date.fromisoformat(row["signup"]) if row["signup"] else None
    norm = email.strip().lower() if email is not None else None
    e164 = _phone(phone, "44") if phone is not None else None
    tags = [t.strip() for t in (city, zip_code) if t]
    return {
        "id": row["id"],
        "email_norm": norm,
        "email_hash": _sha(norm),
        "phone_e164": e164,
        "phone_hash": _sha(e164),
        "phone_intl": _phone(phone, None) if phone is not None else None,
        "masked": _mask(email.strip() if email is not None else None, 4),
        "hidden": _mask(zip_code, 0),
        "city_up": city.strip().upper() if city is not None else None,
        "city_low": city.lower() if city is not None else None,
        "signup_day": signup.strftime("%d/%m/%Y") if signup else None,
        "signup_iso": signup.strftime("%Y-%m-%dT%H:%M:%S") if signup else None,
        "score_text": str(row["score"]) if row["score"] is not None else None,
        "zip_number": int(zip_code) if zip_code is not None else None,
        "source": "crm",
        "weight": 3,
        "address": {"city": city, "zip": zip_code, "tags": tags},
        "greeting": f"Hello {str(city).strip()}",  # Jinja's trim reads a null as the text None
    }


ROWS = {
    "c1": {"email": " Alice@Example.COM ", "phone": "+44 20 7946 0000", "signup": "2024-03-05", "score": 7,
           "city": " London ", "zip": "02110"},
    "c2": {"email": "bob@mail.com", "phone": "0044 20 7946 0001", "signup": "2023-12-31", "score": 0,
           "city": "Paris", "zip": "75001"},
    "c3": {"email": None, "phone": "(020) 7946-0002", "signup": None, "score": None, "city": None, "zip": None},
    "c4": {"email": "x@y.io", "phone": "+44 (0)20 7946 0003", "signup": "2020-01-01", "score": -3,
           "city": "Zürich", "zip": "8001"},
    "c5": {"email": "ab", "phone": "555-CALL-NOW", "signup": "1999-07-04", "score": 12, "city": "Oslo",
           "zip": "0150"},
    "c6": {"email": "c6@mail.com", "phone": "123", "signup": "2024-02-29", "score": 5, "city": "Rome",
           "zip": "00100"},
    "c7": {"email": "c7@mail.com", "phone": "+1 (555) 010-0123", "signup": "2024-01-10", "score": 1,
           "city": "NYC", "zip": "10001"},
}


@pytest.fixture(scope="module", params=ADAPTERS)
def tp(request, new_project, tmp_path_factory):
    project = new_project(request.param, name="transforms", source=PROJECT)
    (project.root / "seeds" / "_contacts.yml").write_text(SEED_YML, encoding="utf-8")
    (project.root / "models" / "contacts.sql").write_text("select * from {{ ref('contacts_rows') }}\n",
                                                          encoding="utf-8")
    write_rows(project.root, ROWS)  # dbt parse needs the seed file
    return SyncProject(project, tmp_path_factory.mktemp(f"transforms_out_{request.param}"))


def write_rows(root, rows: dict) -> None:
    with (root / "seeds" / "contacts_rows.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(CONTACT_COLUMNS)
        for key in sorted(rows):
            out.writerow([key] + ["" if rows[key][c] is None else rows[key][c] for c in CONTACT_COLUMNS[1:]])


def raw(syncs: list[dict]) -> list[dict]:
    """dbt renders Jinja in properties files: a template written there goes inside {% raw %} (docs/sync.md)."""
    def wrap(spec):
        if isinstance(spec, dict) and "template" in spec:
            return {**spec, "template": "{% raw %}" + spec["template"] + "{% endraw %}"}
        return spec
    return [{**s, "mappings": {k: wrap(v) for k, v in s["mappings"].items()}} for s in syncs]


def build(tp: SyncProject, rows: dict, syncs: list[dict]) -> None:
    write_rows(tp.p.root, rows)
    meta = {"dbt_studio": {"primary_key": "id", "syncs": raw(syncs)}}
    entry = {"version": 2, "models": [{"name": "contacts", "config": {"meta": meta}}]}
    (tp.p.root / "models" / "_contacts.yml").write_text(json.dumps(entry, indent=1), encoding="utf-8")
    tp.p.dbt("build", "-s", "contacts_rows", "contacts")


def _expected_row(key: str, row: dict) -> dict:
    return reference({"id": key, **row})


def test_each_transform_matches_its_python_reference(tp):
    out = tp.tmp / "all"
    tp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    build(tp, ROWS, [{"name": "contacts_all", "destination": "out", "mappings": MAPPINGS}])
    report = tp.sync(select=("contacts_all",))["contacts_all"]
    assert report.status == "success", report.message
    sent = file_ops(out, "contacts_all")[-1]
    assert set(sent) == set(ROWS)
    for key, row in ROWS.items():
        got = {k: v for k, v in sent[key].items() if not k.startswith("_")}
        assert got == _expected_row(key, row), key
    # the SQL it ran is Snowflake SQL (fakesnow would accept DuckDB-only functions too)
    if tp.p.adapter == "snowflake":
        from helpers.sql_lint import unknown_functions

        assert unknown_functions(tp.p.sql_log) == []


def test_a_change_the_transform_hides_sends_nothing(tp):
    out = tp.tmp / "hides"
    tp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    syncs = [{"name": "contacts_hashed", "destination": "out",
              "mappings": {"id": "id", "email_sha256": {"column": "email", "transform": ["email", "sha256"]},
                           "plan": {"value": "gold"}}}]
    rows = {k: dict(v) for k, v in ROWS.items()}
    build(tp, rows, syncs)
    preview = tp.sync(select=("contacts_hashed",), dry_run=True)["contacts_hashed"]
    # the plan's sample is what the destination gets, under its fields (not the plan's computed column names)
    assert preview.sample["columns"] == ["_op", "_key", "id", "email_sha256", "plan"]  # in the mapping's order
    sampled = {row[1]: dict(zip(preview.sample["columns"], row, strict=True)) for row in preview.sample["rows"]}
    assert all(r["plan"] == "gold" and r["email_sha256"] == _expected_row(k, ROWS[k])["email_hash"]
               for k, r in sampled.items()) and sampled
    assert tp.sync(select=("contacts_hashed",))["contacts_hashed"].status == "success"
    rows["c2"]["email"] = "  BOB@Mail.com"   # the same address once normalised: hidden by the transform
    rows["c6"]["email"] = "other@mail.com"   # a real change
    rows["c7"]["city"] = "Boston"            # an unmapped column
    build(tp, rows, syncs)
    report = tp.sync(select=("contacts_hashed",))["contacts_hashed"]
    assert report.planned == {"insert": 0, "update": 1, "delete": 0, "clear": 0}
    last = file_ops(out, "contacts_hashed")[-1]
    assert list(last) == ["c6"]
    assert last["c6"]["email_sha256"] == hashlib.sha256(b"other@mail.com").hexdigest()
    # a changed transform is a changed mapping: the snapshot resets and everything is sent again
    syncs[0]["mappings"]["email_sha256"]["transform"] = ["trim", "sha256"]
    build(tp, rows, syncs)
    report = tp.sync(select=("contacts_hashed",))["contacts_hashed"]
    assert report.full_resync and report.planned["insert"] == len(rows)
    assert file_ops(out, "contacts_hashed")[-1]["c2"]["email_sha256"] == hashlib.sha256(b"BOB@Mail.com").hexdigest()


def test_template_columns_are_tracked(tp):
    out = tp.tmp / "templates"
    tp.destinations(f"destinations:\n  out:\n    type: file\n    path: {out}\n")
    syncs = [{"name": "contacts_nested", "destination": "out",
              "mappings": {"id": "id", "address": {"template": '{"city": {{ city | tojson }}}'}}}]
    rows = {k: dict(v) for k, v in ROWS.items()}
    build(tp, rows, syncs)
    tp.sync(select=("contacts_nested",))
    rows["c2"]["city"] = "Lyon"
    rows["c4"]["zip"] = "9999"  # not read by the template: nothing to send
    build(tp, rows, syncs)
    tp.sync(select=("contacts_nested",))
    last = file_ops(out, "contacts_nested")[-1]
    assert last == {"c2": {"_op": "update", "_key": "c2", "id": "c2", "address": {"city": "Lyon"}}}


@pytest.mark.parametrize("spec, message", [
    ({"column": "email", "transform": ["sha265"]}, "unknown transform 'sha265' (did you mean 'sha256'?)"),
    ({"column": "email", "transfrom": ["trim"]}, "unknown key 'transfrom' (did you mean 'transform'?)"),
    ({"column": "signup", "transform": [{"date_format": "%Q"}]}, "date_format takes"),
    ({"column": "email", "transform": [{"cast": "text"}]}, "cast must be one of"),
    ({"column": "email", "transform": ["cast"]}, "cast needs an argument"),
    ({"value": 1, "column": "email"}, "needs exactly one of column, value or template"),
    ({"template": "{{ nope }}"}, "maps unknown column 'nope' (columns of"),
    ({"column": "emial"}, "maps unknown column 'emial' (did you mean 'email'?)"),
])
def test_bad_mapping_specs_are_one_line_errors(tp, spec, message):
    tp.destinations(f"destinations:\n  out:\n    type: file\n    path: {tp.tmp / 'bad'}\n")
    meta = {"dbt_studio": {"primary_key": "id", "syncs": raw([
        {"name": "contacts_bad", "destination": "out", "mappings": {"id": "id", "f": spec}}])}}
    entry = {"version": 2, "models": [{"name": "contacts", "config": {"meta": meta}, "columns": [
        {"name": c} for c in CONTACT_COLUMNS]}]}
    (tp.p.root / "models" / "_contacts.yml").write_text(json.dumps(entry, indent=1), encoding="utf-8")
    if message.startswith("maps unknown column"):
        # columns are checked against the warehouse when the sync runs: only that sync fails, with the one line
        tp.p.dbt("build", "-s", "contacts_rows", "contacts")
        report = tp.sync(select=("contacts_bad",))["contacts_bad"]
        assert report.status == "failed", report
        text = report.message
    else:
        tp.p.dbt("parse")
        report = tp.sync(select=("contacts_bad",))["contacts_bad"]  # skipped, with the mistake
        assert (report.status, report.problem) == ("skipped", "config"), report
        text = report.message
    assert message in text and "contacts" in text and "\n" not in text, text
