"""Customer.io, Iterable and RudderStack end to end: a sync through the real engine (DuckDB, tests/projects/sync) into
a local fake of each API that follows its documented contract (tests/fakes/<api>.py). Each test computes what the
API should hold from the rows it built and compares the fake's state with it: every row arrives in the API's shape
and within its request limits, 429 / 5xx are retried, refused records land in `<sync>__rejections` with the API's
reason and are exactly what the next run plans, bad credentials stop the sync with nothing committed, and deletes or
clears do what the API supports.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sync_runner.sync.destinations import REGISTRY, Batch, Terminal, Transient

from helpers.destinations import NO_CHANGES, changed, destinations_yaml, rejections_of, state_rows
from helpers.sync_project import person


def batch_of(op: str, records: list[dict]) -> Batch:
    return Batch(op, [str(i) for i in range(len(records))], list(range(len(records))), records, pa.table({}))


# -- Customer.io ---------------------------------------------------------------------------------------------------

CIO_MAPPINGS = {"id": "user_id", "email": "email", "name": "name", "plan": "plan", "score": "score", "note": "note"}


@pytest.fixture(scope="module")
def customerio():
    from fakes.customerio import CustomerIo

    api = CustomerIo()
    yield api
    api.close()


def _cio_expected(rows: dict[str, dict], refused=()) -> dict[str, dict]:
    """People by id: every mapped attribute but the id, an empty value removed (Customer.io drops "")."""
    out = {}
    for key, r in rows.items():
        if key not in refused:
            values = {"email": r["email"], "name": r["name"], "plan": r["plan"], "score": r["score"], "note": r["note"]}
            out[key] = {k: v for k, v in values.items() if v is not None}
    return out


def test_customerio_identifies_within_limits_rejects_retries_and_deletes(dp, customerio, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CIO_SITE", customerio.site_id)
    monkeypatch.setenv("CIO_KEY", customerio.api_key)
    monkeypatch.setenv("CIO_BAD_KEY", "cio-wrong-key-321")
    site = "{{ env_var('CIO_SITE') }}"
    dp.destinations(destinations_yaml({
        # a batch of up to 2 MB of fields: the destination itself must keep each request under 500 KB
        "cio": {"type": "customerio", "site_id": site, "api_key": "{{ env_var('CIO_KEY') }}",
                "base_url": customerio.url, "max_bytes": 2_000_000},
        "cio_denied": {"type": "customerio", "site_id": site, "api_key": "{{ env_var('CIO_BAD_KEY') }}",
                       "base_url": customerio.url},
    }))
    # 900-byte notes: 700 operations are ~700 KB, more than one 500 KB request; Customer.io refuses an attribute
    # value over 1,000 bytes (u100, in a 207 body) and the destination an operation over 32 KB (u200)
    rows = {f"u{i:03d}": person(i, note="n" * 900) for i in range(700)}
    rows["u100"]["note"] = "x" * 1500
    rows["u200"]["note"] = "y" * 40_000
    syncs = [{"name": "cio_mirror", "destination": "cio", "mode": "mirror", "mappings": CIO_MAPPINGS},
             {"name": "cio_denied", "destination": "cio_denied", "mode": "upsert", "mappings": CIO_MAPPINGS},
             {"name": "cio_no_id", "destination": "cio", "mode": "upsert", "mappings": {"email": "email"}}]
    dp.build(rows, syncs)

    customerio.fail_next(1, 429, {"Retry-After": "0.1"})
    customerio.fail_next(1, 503)
    before = len(customerio.requests)
    report = dp.sync(select=("cio_mirror",), base_delay=0.05)["cio_mirror"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (698, 2)
    assert customerio.people == _cio_expected(rows, refused={"u100", "u200"})
    assert not customerio.faults  # both faults were met and retried
    sent = customerio.requests[before:]
    assert len(sent) >= 2 and max(r["size"] for r in sent) <= 500_000
    assert {r["path"] for r in sent} == {"/api/v2/batch"}
    rejections = rejections_of(dp, "cio_mirror")
    assert rejections["u100"] == ("attributes.note: value for attribute 'note' cannot be longer than 1000 bytes", 1)
    assert "over Customer.io's 32 KB limit per operation" in rejections["u200"][0]

    # only acknowledged rows were committed: the next run plans exactly the two refused rows
    reports = dp.sync(select=("cio_mirror", "cio_denied", "cio_no_id"))
    assert reports["cio_mirror"].planned == {**NO_CHANGES, "insert": 2} and reports["cio_mirror"].rejected == 2
    assert {k: v[1] for k, v in rejections_of(dp, "cio_mirror").items()} == {"u100": 2, "u200": 2}
    denied = reports["cio_denied"]
    assert denied.status == "failed"
    assert "refused the credentials (HTTP 401: Unauthorized request)" in denied.message
    assert "\n" not in denied.message and "wrong-key" not in json.dumps(denied.as_dict())
    assert state_rows(dp, "cio_denied", "snapshot") == []
    no_id = reports["cio_no_id"]
    assert no_id.status == "failed" and "must map the field 'id'" in no_id.message
    assert state_rows(dp, "cio_no_id", "rejections") == []

    # a later day: gone people are deleted, changed ones identified again (an emptied score removed)
    after = changed(rows)
    after["u100"]["note"] = "short now"
    dp.build(after, syncs)
    report = dp.sync(select=("cio_mirror",))["cio_mirror"]
    assert report.status == "success" and report.planned["delete"] == 5
    assert customerio.people == _cio_expected(after, refused={"u200"})
    assert set(rejections_of(dp, "cio_mirror")) == {"u200"}


def test_customerio_clears_by_email_times_out_and_refused_requests_are_rejected(customerio, monkeypatch):

    config = {"site_id": customerio.site_id, "api_key": customerio.api_key, "base_url": customerio.url}
    dest = REGISTRY["customerio"]("cio", {**config, "identifier": "email"}, "s", "r")
    dest.open()
    assert dest.send(batch_of("insert", [{"email": "c@mail.com", "plan": "pro", "score": 3}])).rejected == {}
    assert customerio.people["c@mail.com"] == {"plan": "pro", "score": 3}
    clear = dest.send(batch_of("clear", [{"email": "c@mail.com", "plan": None, "score": None},
                                       {"email": None, "plan": None, "score": None}]))
    assert customerio.people["c@mail.com"] == {}  # every mapped attribute removed
    assert clear.rejected == {1: "on_delete clear needs email mapped from the primary key"}
    assert dest.send(batch_of("delete", [{"email": "c@mail.com", "plan": None, "score": None}])).rejected == {}
    assert "c@mail.com" not in customerio.people

    # a request over Customer.io's 500 KB (the destination never builds one) is refused whole with its reason
    monkeypatch.setattr(dest, "request_limit", 10_000_000)
    records = [{"email": f"big{i}@mail.com", "note": "z" * 900} for i in range(600)]
    refused = dest.send(batch_of("insert", records)).rejected
    assert set(refused) == set(range(600)) and refused[0].startswith("HTTP 413: request of ")
    assert not any(k.startswith("big") for k in customerio.people)

    # a timeout is transient: the runner retries it
    slow = REGISTRY["customerio"]("cio", {**config, "timeout": 0.2}, "s", "r")
    slow.open()
    customerio.delay = 0.5
    try:
        with pytest.raises(Transient, match="ReadTimeout"):
            slow.send(batch_of("insert", [{"id": "t1", "plan": "free"}]))
    finally:
        customerio.delay = 0.0

    with pytest.raises(Terminal, match="identifier must be id or email"):
        REGISTRY["customerio"]("cio", {**config, "identifier": "phone"}, "s", "r").open()
    with pytest.raises(Terminal, match="needs 'site_id'"):
        REGISTRY["customerio"]("cio", {"api_key": "k"}, "s", "r").open()


# -- Iterable ------------------------------------------------------------------------------------------------------

IT_MAPPINGS = {"userId": "user_id", "email": "email", "firstName": "name", "plan": "plan", "score": "score"}


@pytest.fixture(scope="module")
def iterable():
    from fakes.iterable import Iterable

    api = Iterable()
    yield api
    api.close()


def _it_expected(rows: dict[str, dict], refused=()) -> dict[str, dict]:
    """Users by userId: email, userId and the data fields (null kept as null)."""
    return {key: {"email": r["email"], "userId": key,
                  "dataFields": {"firstName": r["name"], "plan": r["plan"], "score": r["score"]}}
            for key, r in rows.items() if key not in refused}


def test_iterable_bulk_updates_rejects_failed_updates_retries_and_deletes(dp, iterable, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ITERABLE_KEY", iterable.api_key)
    monkeypatch.setenv("ITERABLE_BAD_KEY", "it-wrong-key-654")
    common = {"type": "iterable", "base_url": iterable.url, "rate_per_second": 50, "delete_rate_per_second": 100}
    dp.destinations(destinations_yaml({
        "it": {**common, "api_key": "{{ env_var('ITERABLE_KEY') }}", "batch_size": 1000},
        "it_denied": {**common, "api_key": "{{ env_var('ITERABLE_BAD_KEY') }}"},
    }))
    rows = {f"u{i:04d}": person(i) for i in range(1100)}  # two requests: Iterable takes at most 1,000 users
    rows["u0005"]["email"] = "invalid-5"
    iterable.forgotten.add("u0777")  # a user forgotten for privacy: Iterable refuses to recreate it
    syncs = [{"name": "it_mirror", "destination": "it", "mode": "mirror", "mappings": IT_MAPPINGS},
             {"name": "it_denied", "destination": "it_denied", "mode": "upsert", "mappings": IT_MAPPINGS},
             {"name": "it_no_id", "destination": "it", "mode": "upsert", "mappings": {"plan": "plan"}}]
    dp.build(rows, syncs)

    iterable.fail_next(1, 429, {"Retry-After": "0.1"})
    iterable.fail_next(1, 500)
    before = len(iterable.requests)
    report = dp.sync(select=("it_mirror",), base_delay=0.05)["it_mirror"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (1098, 2)
    assert iterable.users == _it_expected(rows, refused={"u0005", "u0777"})
    assert not iterable.faults
    assert len([r for r in iterable.requests[before:] if r["path"] == "/api/users/bulkUpdate"]) == 2
    assert rejections_of(dp, "it_mirror") == {
        "u0005": ("failedUpdates.invalidEmails (invalid email): invalid-5", 1),
        "u0777": ("failedUpdates.forgottenUserIds (user forgotten (GDPR)): u0777", 1)}

    reports = dp.sync(select=("it_mirror", "it_denied", "it_no_id"))
    assert reports["it_mirror"].planned == {**NO_CHANGES, "insert": 2} and reports["it_mirror"].rejected == 2
    denied = reports["it_denied"]
    assert denied.status == "failed"
    assert "refused the credentials (HTTP 401: Invalid API key (BadApiKey))" in denied.message
    assert "wrong-key" not in json.dumps(denied.as_dict()) and state_rows(dp, "it_denied", "snapshot") == []
    no_id = reports["it_no_id"]
    assert no_id.status == "failed" and "must map 'email' or 'userId'" in no_id.message

    # a later day: gone users are deleted one request each, changed ones updated (an emptied score kept as null);
    # the 3 new people reuse the emails of u0900-u0902, which Iterable refuses as conflictEmails
    after = changed(rows)
    after["u0005"]["email"] = "fixed5@mail.com"
    dp.build(after, syncs)
    before = len(iterable.requests)
    report = dp.sync(select=("it_mirror",))["it_mirror"]
    assert report.status == "success" and report.planned["delete"] == 5
    taken = {after[k]["email"]: k for k in after if k.startswith("u")}
    conflicts = {k for k in after if k.startswith("n") and after[k]["email"] in taken}
    assert conflicts == {"n0", "n1", "n2"}
    assert iterable.users == _it_expected(after, refused={"u0777"} | conflicts)
    gone = sorted(rows.keys() - after.keys())
    assert sorted(r["path"] for r in iterable.requests[before:] if r["method"] == "DELETE") == [
        f"/api/users/byUserId/{key}" for key in gone]
    rejections = rejections_of(dp, "it_mirror")
    assert set(rejections) == {"u0777"} | conflicts
    assert rejections["n0"] == (f"failedUpdates.conflictEmails (email and userId belong to different users): "
                                f"{after['n0']['email']}", 1)


def test_iterable_unnamed_failures_refused_requests_and_deletes_by_email(iterable, monkeypatch):
    from sync_runner.sync.destinations import iterable as module

    dest = REGISTRY["iterable"]("it", {"api_key": iterable.api_key, "base_url": iterable.url,
                                       "delete_rate_per_second": 100, "batch_size": 5000}, "s", "r")
    dest.open()
    assert dest.limits()[0] == 1000  # a larger batch_size is capped at Iterable's limit per request
    records = [{"email": "a@mail.com", "plan": "free"}, {"email": "not-an-email", "plan": "free"},
               {"email": None, "plan": "free"}]
    iterable.anonymous_failures = True
    try:
        rejected = dest.send(batch_of("insert", records)).rejected
    finally:
        iterable.anonymous_failures = False
    assert rejected[2] == "no email or userId: Iterable identifies users by them"
    assert set(rejected) == {0, 1, 2} and "without naming every user" in rejected[0]
    assert dest.send(batch_of("insert", records[:2])).rejected.keys() == {1}  # named: only the bad one

    clear = dest.send(batch_of("clear", [{"email": "a@mail.com", "plan": None}]))
    assert clear.rejected == {} and iterable.users["a@mail.com"]["dataFields"] == {"plan": None}
    deleted = dest.send(batch_of("delete", [{"email": "a@mail.com", "plan": None},
                                          {"email": "never-there@mail.com", "plan": None}]))
    assert deleted.rejected == {} and "a@mail.com" not in iterable.users  # a user already gone counts as deleted
    assert iterable.requests[-1]["path"] == "/api/users/never-there%40mail.com"

    # a 404 that is not Iterable saying the user is unknown is a wrong base_url: the sync stops, no email shown
    wrong = REGISTRY["iterable"]("it", {"api_key": iterable.api_key, "base_url": iterable.url + "/v9"}, "s", "r")
    wrong.open()
    with pytest.raises(Terminal, match="answered 404") as stopped:
        wrong.send(batch_of("delete", [{"email": "who@mail.com"}]))
    assert "who@mail.com" not in str(stopped.value)

    # more than 1,000 users in one request (the destination never builds one) is refused whole with the reason
    monkeypatch.setattr(module, "USER_LIMIT", 5000)
    many = [{"email": f"m{i}@mail.com", "plan": "free"} for i in range(1001)]
    refused = dest.send(batch_of("insert", many)).rejected
    assert set(refused) == set(range(1001))
    assert refused[0] == "HTTP 400: users can contain at most 1000 entries, received 1001 (BadParams)"


# -- RudderStack ---------------------------------------------------------------------------------------------------

RS_MAPPINGS = {"user_id": "user_id", "email": "email", "name": "name", "plan": "plan", "note": "note"}


@pytest.fixture(scope="module")
def rudderstack():
    from fakes.rudderstack import RudderStack

    api = RudderStack()
    yield api
    api.close()


def _traits(r: dict) -> dict:
    return {"email": r["email"], "name": r["name"], "plan": r["plan"], "note": r["note"]}


def test_rudderstack_identifies_tracks_within_size_limits_and_clears(dp, rudderstack, monkeypatch):  # noqa: F811
    monkeypatch.setenv("RS_WRITE_KEY", rudderstack.write_key)
    monkeypatch.setenv("RS_BAD_KEY", "rs-wrong-key-987")
    common = {"type": "rudderstack", "base_url": rudderstack.url}
    dp.destinations(destinations_yaml({
        # batches of up to 10 MB of fields: the destination itself must keep each request under 4,000 KB
        "rs": {**common, "write_key": "{{ env_var('RS_WRITE_KEY') }}", "max_bytes": 10_000_000},
        "rs_track": {**common, "write_key": "{{ env_var('RS_WRITE_KEY') }}", "event": "Profile Synced"},
        "rs_denied": {**common, "write_key": "{{ env_var('RS_BAD_KEY') }}"},
    }))
    # 5 KB notes: 900 calls are ~4.6 MB, more than one 4,000 KB request; one 40 KB note is over 32 KB per call
    rows = {f"u{i:03d}": person(i, note="n" * 5000) for i in range(900)}
    rows["u042"]["note"] = "x" * 40_000
    syncs = [{"name": "rs_mirror", "destination": "rs", "mode": "mirror", "on_delete": "clear",
              "mappings": RS_MAPPINGS},
             {"name": "rs_track", "destination": "rs_track", "mode": "upsert",
              "mappings": {"user_id": "user_id", "plan": "plan"}},
             {"name": "rs_denied", "destination": "rs_denied", "mode": "upsert", "mappings": RS_MAPPINGS}]
    dp.build(rows, syncs)

    rudderstack.fail_next(1, 429)  # RudderStack documents no Retry-After: exponential backoff
    rudderstack.fail_next(1, 429, {"Retry-After": "0.1"})  # but one is honoured if a proxy sends it
    rudderstack.fail_next(1, 503)
    before = len(rudderstack.requests)
    reports = dp.sync(select=("rs_mirror", "rs_track"), base_delay=0.05)
    report = reports["rs_mirror"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (899, 1)
    assert rudderstack.profiles == {k: _traits(r) for k, r in rows.items() if k != "u042"}
    assert reports["rs_track"].status == "success" and reports["rs_track"].acknowledged == 900
    assert rudderstack.events == {k: [("Profile Synced", {"plan": r["plan"]})] for k, r in rows.items()}
    assert not rudderstack.faults
    sent = rudderstack.requests[before:]
    assert max(r["size"] for r in sent) <= 4_000 * 1024
    assert sum(r["size"] for r in sent) > 4_000 * 1024  # so the 4.6 MB batch went out as two requests or more
    reason, attempts = rejections_of(dp, "rs_mirror")["u042"]
    assert "over RudderStack's 32 KB limit per call" in reason and attempts == 1

    reports = dp.sync(select=("rs_mirror", "rs_denied"))
    assert reports["rs_mirror"].planned == {**NO_CHANGES, "insert": 1} and reports["rs_mirror"].rejected == 1
    denied = reports["rs_denied"]
    assert denied.status == "failed" and "refused the credentials (HTTP 401: Invalid Write Key)" in denied.message
    assert "wrong-key" not in json.dumps(denied.as_dict()) and state_rows(dp, "rs_denied", "snapshot") == []

    # a later day: gone users' traits are cleared (the HTTP API has no delete), the fixed row goes through
    after = changed(rows)
    after["u042"]["note"] = "short now"
    dp.build(after, syncs)
    report = dp.sync(select=("rs_mirror",))["rs_mirror"]
    assert report.status == "success" and report.planned["clear"] == 5
    expected = {k: _traits(r) for k, r in after.items()}
    expected.update({k: dict.fromkeys(("email", "name", "plan", "note")) for k in rows.keys() - after.keys()})
    assert rudderstack.profiles == expected
    assert state_rows(dp, "rs_mirror", "rejections") == []


def test_rudderstack_refused_requests_are_rejected_and_base_url_is_required(rudderstack, monkeypatch):

    with pytest.raises(Terminal, match="needs 'base_url'"):
        REGISTRY["rudderstack"]("rs", {"write_key": "k"}, "s", "r").open()
    dest = REGISTRY["rudderstack"]("rs", {"write_key": rudderstack.write_key, "base_url": rudderstack.url}, "s", "r")
    dest.open()
    monkeypatch.setattr(dest, "request_limit", 50_000_000)  # a request over 4,000 KB: the data plane refuses it
    records = [{"user_id": f"big{i}", "note": "z" * 5000} for i in range(900)]
    refused = dest.send(batch_of("insert", records)).rejected
    assert set(refused) == set(range(900)) and refused[0] == "HTTP 413: Request size exceeds max limit"
    assert not any(k.startswith("big") for k in rudderstack.profiles)
    empty = dest.send(batch_of("insert", [{"user_id": None, "note": "a"}, {"user_id": "ok1", "note": "a"}]))
    assert empty.rejected == {0: "empty user_id: RudderStack needs a userId"}
    assert rudderstack.profiles["ok1"] == {"note": "a"}


# -- validate ------------------------------------------------------------------------------------------------------

def test_validate_accepts_what_each_api_supports_and_refuses_the_rest():
    from sync_runner.project.artifacts import Node
    from sync_runner.sync.config import DestinationConfig, sync_problems

    def problems(dest_type: str, **spec) -> list[str]:
        node = Node("model.t.people", "people", "model", "t", "models/people.sql", None, None, None, "main", "people",
                    "table", ("user_id", "email"),
                    {"primary_key": "user_id", "syncs": [{"name": "s", "destination": "d",
                                                          "mappings": {"user_id": "user_id"}, **spec}]})
        return [f"{k}: {m}" for k, m in sync_problems(node, {"d": DestinationConfig("d", dest_type, {})})]

    for dest_type in ("customerio", "iterable"):  # both delete people and clear attributes
        for mode in ("insert", "update", "upsert", "mirror"):
            assert problems(dest_type, mode=mode) == [], (dest_type, mode)
        assert problems(dest_type, mode="upsert", on_delete="clear") == []
    assert problems("rudderstack", mode="mirror") == [
        "syncs[0].on_delete: destination type 'rudderstack' does not support 'delete'"]
    assert problems("rudderstack", mode="update", on_delete="delete") == [
        "syncs[0].on_delete: destination type 'rudderstack' does not support 'delete'"]
    assert problems("rudderstack", mode="mirror", on_delete="clear") == []
    assert problems("rudderstack", mode="insert") == []
