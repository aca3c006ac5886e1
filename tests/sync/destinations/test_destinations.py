"""SaaS destinations end to end: a sync through the real engine (DuckDB, tests/projects/sync) into a local fake of
each API that follows its documented contract (tests/fakes/<api>.py): every row arrives as the API expects,
transient errors are retried, per-record errors land in `<sync>__rejections`, state is committed only for
acknowledged rows (the next run plans exactly the rejected ones), and bad credentials stop the sync.
"""

from __future__ import annotations

import json

import pytest

from sync_runner.sync.destinations import REGISTRY

from helpers.destinations import NO_CHANGES, batch_of, changed, destinations_yaml, rejections_of, state_rows
from helpers.sync_project import person

# -- HubSpot -------------------------------------------------------------------------------------------------------

HS_MAPPINGS = {"email": "email", "firstname": "name", "plan": "plan", "score": "score"}


@pytest.fixture(scope="module")
def hubspot():
    from fakes.hubspot import HubSpot

    api = HubSpot()
    yield api
    api.close()


def _hs_expected(rows: dict[str, dict], emptied: dict[str, dict] | None = None,
                 by_key: bool = False) -> dict[str, dict]:
    """What HubSpot should hold, by email (or by user_key): every property a string, "" when empty."""
    def value(v):
        return "" if v is None else str(v)

    out = {}
    for key, r in rows.items():
        if "invalid" not in r["email"]:
            record = {"email": r["email"], "firstname": value(r["name"]), "plan": value(r["plan"]),
                      "score": value(r["score"])}
            out[key if by_key else r["email"]] = {"user_key": key, **record} if by_key else record
    for key in emptied or {}:  # a clear empties every property but the id property
        out[key] = {"user_key": key, "email": "", "firstname": "", "plan": "", "score": ""}
    return out


def test_hubspot_upserts_rejects_retries_and_archives(dp, hubspot, monkeypatch):
    monkeypatch.setenv("HUBSPOT_TOKEN", hubspot.token)
    monkeypatch.setenv("HUBSPOT_BAD_TOKEN", "pat-na1-wrong-token-123")
    token = "{{ env_var('HUBSPOT_TOKEN') }}"
    dp.destinations(destinations_yaml({
        "hs": {"type": "hubspot", "access_token": token, "base_url": hubspot.url},
        # a custom object matched by a unique property mapped from the primary key, so a clear can find it
        "hs_people": {"type": "hubspot", "access_token": token, "base_url": hubspot.url, "object": "p_people",
                      "id_property": "user_key", "concurrency": 2},
        "hs_denied": {"type": "hubspot", "access_token": "{{ env_var('HUBSPOT_BAD_TOKEN') }}",
                      "base_url": hubspot.url},
    }))
    rows = {f"u{i:03d}": person(i) for i in range(230)}
    rows["u005"]["email"] = "invalid-5@mail"
    rows["u117"]["email"] = "invalid-117@mail"
    syncs = [{"name": "hs_mirror", "destination": "hs", "mode": "mirror", "mappings": HS_MAPPINGS},
             {"name": "hs_clear", "destination": "hs_people", "mode": "upsert", "on_delete": "clear",
              "mappings": {"user_key": "user_id", **HS_MAPPINGS}},
             {"name": "hs_denied", "destination": "hs_denied", "mode": "upsert", "mappings": HS_MAPPINGS},
             {"name": "hs_no_id", "destination": "hs", "mode": "upsert", "mappings": {"firstname": "name"}}]
    dp.build(rows, syncs)

    hubspot.fail_next(2, 429, {"Retry-After": "0.1"})
    hubspot.fail_next(1, 502)
    reports = dp.sync(select=("hs_mirror", "hs_clear"), base_delay=0.05)
    for name in ("hs_mirror", "hs_clear"):
        report = reports[name]
        assert report.status == "success", report.message
        assert (report.acknowledged, report.rejected) == (228, 2)
        assert {k: v[1] for k, v in rejections_of(dp, name).items()} == {"u005": 1, "u117": 1}
        assert "not a valid email address" in rejections_of(dp, name)["u005"][0]
    assert hubspot.records("contacts") == _hs_expected(rows)
    assert hubspot.records("p_people", by="user_key") == _hs_expected(rows, by_key=True)
    assert not hubspot.faults  # all three faults were met and retried

    # state holds only what HubSpot acknowledged: the next run plans exactly the two rejected rows
    reports = dp.sync(select=("hs_mirror", "hs_denied", "hs_no_id"))
    assert reports["hs_mirror"].planned == {**NO_CHANGES, "insert": 2} and reports["hs_mirror"].rejected == 2
    assert {k: v[1] for k, v in rejections_of(dp, "hs_mirror").items()} == {"u005": 2, "u117": 2}
    # bad credentials: terminal, one line with HubSpot's reason, no secret, nothing committed
    denied = reports["hs_denied"]
    assert denied.status == "failed"
    assert "refused the credentials (HTTP 401: Authentication credentials not found" in denied.message
    assert "wrong-token" not in json.dumps(denied.as_dict())
    assert state_rows(dp, "hs_denied", "snapshot") == []
    # the id property must be mapped: a configuration error, not 230 rejections
    no_id = reports["hs_no_id"]
    assert no_id.status == "failed" and "must map the field 'email'" in no_id.message
    assert state_rows(dp, "hs_no_id", "rejections") == []

    # a later day: deletes archive (mirror) or empty every property but the email (clear)
    after = changed(rows)
    after["u005"]["email"] = "fixed-5@mail.com"
    dp.build(after, syncs)
    reports = dp.sync(select=("hs_mirror", "hs_clear"))
    gone = {k: rows[k] for k in rows.keys() - after.keys()}
    assert reports["hs_mirror"].planned["delete"] == 5 and reports["hs_clear"].planned["clear"] == 5
    assert reports["hs_mirror"].status == reports["hs_clear"].status == "success"
    assert hubspot.records("contacts") == _hs_expected(after)
    assert hubspot.records("p_people", by="user_key") == _hs_expected(after, emptied=gone, by_key=True)
    assert set(rejections_of(dp, "hs_mirror")) == {"u117"}


def test_hubspot_batches_stay_within_100_inputs(hubspot):
    cls = REGISTRY["hubspot"]
    dest = cls("hs", {"access_token": hubspot.token, "base_url": hubspot.url, "batch_size": 500}, "s", "r")
    assert dest.limits()[0] == 100  # a larger batch_size is capped at HubSpot's documented limit
    assert set(cls.modes) == {"insert", "update", "upsert", "mirror"}


# -- Braze ---------------------------------------------------------------------------------------------------------

BZ_MAPPINGS = {"external_id": "user_id", "email": "email", "first_name": "name", "plan": "plan", "score": "score"}


@pytest.fixture(scope="module")
def braze():
    from fakes.braze import Braze

    api = Braze()
    yield api
    api.close()


def _bz_expected(rows: dict[str, dict], emptied=()) -> dict[str, dict]:
    """Braze profiles by external_id: attributes as JSON values, a null attribute removed."""
    out = {}
    for key, r in rows.items():
        if "invalid" not in r["email"]:
            values = {"email": r["email"], "first_name": r["name"], "plan": r["plan"], "score": r["score"]}
            out[key] = {k: v for k, v in values.items() if v is not None}
    out.update({key: {} for key in emptied})
    return out


def test_braze_tracks_rejects_retries_and_deletes(dp, braze, monkeypatch):
    import time

    monkeypatch.setenv("BRAZE_KEY", braze.api_key)
    monkeypatch.setenv("BRAZE_BAD_KEY", "braze-wrong-key-456")
    key = "{{ env_var('BRAZE_KEY') }}"
    dp.destinations(destinations_yaml({
        "bz": {"type": "braze", "api_key": key, "base_url": braze.url},
        "bz_denied": {"type": "braze", "api_key": "{{ env_var('BRAZE_BAD_KEY') }}", "base_url": braze.url},
    }))
    rows = {f"u{i:03d}": person(i) for i in range(200)}
    rows["u007"]["email"] = "invalid-7"
    rows["u150"]["email"] = "invalid-150"
    syncs = [{"name": "bz_mirror", "destination": "bz", "mode": "mirror", "mappings": BZ_MAPPINGS},
             {"name": "bz_denied", "destination": "bz_denied", "mode": "upsert", "mappings": BZ_MAPPINGS},
             {"name": "bz_no_id", "destination": "bz", "mode": "upsert", "mappings": {"email": "email"}}]
    dp.build(rows, syncs)

    braze.fail_next(1, 429, {"Retry-After": "0.1"})
    braze.fail_next(1, 429, {"X-RateLimit-Reset": str(int(time.time()) + 1)})
    braze.fail_next(1, 503)
    report = dp.sync(select=("bz_mirror",), base_delay=0.05)["bz_mirror"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (198, 2)
    assert braze.users == _bz_expected(rows)
    assert not braze.faults
    assert rejections_of(dp, "bz_mirror") == {"u007": ("Invalid email address 'invalid-7'", 1),
                                            "u150": ("Invalid email address 'invalid-150'", 1)}

    reports = dp.sync(select=("bz_mirror", "bz_denied", "bz_no_id"))
    assert reports["bz_mirror"].planned == {**NO_CHANGES, "insert": 2} and reports["bz_mirror"].rejected == 2
    denied = reports["bz_denied"]
    assert denied.status == "failed" and "refused the credentials (HTTP 401: Invalid API key" in denied.message
    assert "wrong-key" not in json.dumps(denied.as_dict()) and state_rows(dp, "bz_denied", "snapshot") == []
    no_id = reports["bz_no_id"]
    assert no_id.status == "failed" and "must map the field 'external_id'" in no_id.message

    # a later day: deletes go to /users/delete, changes and fixed rows to /users/track
    after = changed(rows)
    after["u007"]["email"] = "fixed7@mail.com"
    dp.build(after, syncs)
    reports = dp.sync(select=("bz_mirror",))
    assert reports["bz_mirror"].planned["delete"] == 5 and reports["bz_mirror"].status == "success"
    assert braze.users == _bz_expected(after)
    assert set(rejections_of(dp, "bz_mirror")) == {"u150"}


def test_braze_splits_deletes_into_requests_of_50_and_clears_with_nulls(braze):
    dest = REGISTRY["braze"]("bz", {"api_key": braze.api_key, "base_url": braze.url}, "s", "r")
    dest.open()
    assert dest.limits()[0] == 75
    braze.users.update({f"d{i}": {"plan": "free", "score": i} for i in range(75)})
    before = len(braze.requests)
    clear = dest.send(batch_of("clear", [{"external_id": "d0", "plan": None, "score": None},
                                       {"external_id": None, "plan": None, "score": None}]))
    assert braze.users["d0"] == {}  # null removes the attribute
    assert "needs external_id mapped from the primary key" in clear.rejected[1] and 0 not in clear.rejected
    records = [{"external_id": f"d{i}", "plan": "free", "score": i} for i in range(75)]
    assert dest.send(batch_of("delete", records)).rejected == {}
    assert not any(k.startswith("d") for k in braze.users)
    assert len(braze.requests) - before == 3  # a track, then 50 + 25 ids: Braze deletes at most 50 per request


# -- Segment -------------------------------------------------------------------------------------------------------

SEG_MAPPINGS = {"user_id": "user_id", "email": "email", "name": "name", "plan": "plan", "note": "note"}


@pytest.fixture(scope="module")
def segment():
    from fakes.segment import Segment

    api = Segment()
    yield api
    api.close()


def test_segment_identifies_within_size_limits_and_clears(dp, segment, monkeypatch):
    monkeypatch.setenv("SEGMENT_WRITE_KEY", segment.write_key)
    monkeypatch.setenv("SEGMENT_BAD_KEY", "seg-wrong-key-789")
    dp.destinations(destinations_yaml({
        "seg": {"type": "segment", "write_key": "{{ env_var('SEGMENT_WRITE_KEY') }}", "base_url": segment.url},
        "seg_denied": {"type": "segment", "write_key": "{{ env_var('SEGMENT_BAD_KEY') }}", "base_url": segment.url},
    }))
    # 2 KB notes: 300 calls are 600 KB, more than one 500 KB request; one 40 KB note is over 32 KB per call
    rows = {f"u{i:03d}": person(i, note="n" * 2000) for i in range(300)}
    rows["u042"]["note"] = "x" * 40_000
    syncs = [{"name": "seg_mirror", "destination": "seg", "mode": "mirror", "on_delete": "clear",
              "mappings": SEG_MAPPINGS},
             {"name": "seg_denied", "destination": "seg_denied", "mode": "upsert", "mappings": SEG_MAPPINGS}]
    dp.build(rows, syncs)

    segment.fail_next(1, 429, {"Retry-After": "0.1"})
    segment.fail_next(1, 500)
    report = dp.sync(select=("seg_mirror",), base_delay=0.05)["seg_mirror"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (299, 1)
    expected = {k: {"email": r["email"], "name": r["name"], "plan": r["plan"], "note": r["note"]}
                for k, r in rows.items() if k != "u042"}
    assert segment.profiles == expected
    assert len([r for r in segment.requests if r["path"] == "/v1/batch"]) >= 2
    assert max(r["size"] for r in segment.requests) <= 500_000
    reason, attempts = rejections_of(dp, "seg_mirror")["u042"]
    assert "over Segment's 32 KB limit per call" in reason and attempts == 1

    reports = dp.sync(select=("seg_mirror", "seg_denied"))
    assert reports["seg_mirror"].planned == {**NO_CHANGES, "insert": 1} and reports["seg_mirror"].rejected == 1
    denied = reports["seg_denied"]
    assert denied.status == "failed" and "refused the credentials (HTTP 401: Invalid write key)" in denied.message
    assert "wrong-key" not in json.dumps(denied.as_dict()) and state_rows(dp, "seg_denied", "snapshot") == []

    after = changed(rows)
    after["u042"]["note"] = "short now"
    dp.build(after, syncs)
    report = dp.sync(select=("seg_mirror",))["seg_mirror"]
    assert report.status == "success" and report.planned["clear"] == 5
    gone = rows.keys() - after.keys()
    expected = {k: {"email": r["email"], "name": r["name"], "plan": r["plan"], "note": r["note"]}
                for k, r in after.items()}
    expected.update({k: {"email": None, "name": None, "plan": None, "note": None} for k in gone})
    assert segment.profiles == expected
    assert state_rows(dp, "seg_mirror", "rejections") == []


def test_validate_refuses_modes_and_deletes_a_destination_cannot_do():
    from sync_runner.project.artifacts import Node
    from sync_runner.sync.config import DestinationConfig, sync_problems

    def problems(dest_type: str, **spec) -> list[str]:
        node = Node("model.t.people", "people", "model", "t", "models/people.sql", None, None, None, "main", "people",
                    "table", ("user_id", "email"),
                    {"primary_key": "user_id", "syncs": [{"name": "s", "destination": "d",
                                                          "mappings": {"user_id": "user_id"}, **spec}]})
        return [f"{k}: {m}" for k, m in sync_problems(node, {"d": DestinationConfig("d", dest_type, {})})]

    assert problems("segment", mode="mirror") == [
        "syncs[0].on_delete: destination type 'segment' does not support 'delete'"]
    assert problems("segment", mode="mirror", on_delete="clear") == []
    assert problems("hubspot", mode="mirror") == problems("braze", mode="update", on_delete="delete") == []
    assert problems("klaviyo", mode="mirror") == [
        "syncs[0].mode: destination type 'klaviyo' does not support mode 'mirror'",
        "syncs[0].on_delete: destination type 'klaviyo' does not support 'delete'"]
    assert problems("klaviyo", mode="upsert") == []


# -- Klaviyo -------------------------------------------------------------------------------------------------------

KL_MAPPINGS = {"email": "email", "external_id": "user_id", "first_name": "name", "plan": "plan", "score": "score"}


@pytest.fixture(scope="module")
def klaviyo():
    from fakes.klaviyo import Klaviyo

    api = Klaviyo()
    yield api
    api.close()


def _kl_profile(key: str, r: dict, old: dict | None = None) -> dict:
    properties = {k: r[k] for k in ("plan", "score") if r[k] is not None}
    if old:  # the bulk import ignores nulls: a value emptied in the model stays as it was
        properties = {**{k: old[k] for k in ("plan", "score") if old[k] is not None}, **properties}
    return {"email": r["email"], "external_id": key, "first_name": r["name"], "properties": properties}


def test_klaviyo_imports_jobs_polls_and_rejects_import_errors(dp, klaviyo, monkeypatch):
    monkeypatch.setenv("KLAVIYO_KEY", klaviyo.api_key)
    monkeypatch.setenv("KLAVIYO_BAD_KEY", "pk_wrong_key_000")
    common = {"type": "klaviyo", "base_url": klaviyo.url, "poll_interval": 0.01, "batch_size": 50,
              "rate_per_second": 50}
    dp.destinations(destinations_yaml({
        "kl": {**common, "api_key": "{{ env_var('KLAVIYO_KEY') }}", "list_id": "LIST1"},
        "kl_denied": {**common, "api_key": "{{ env_var('KLAVIYO_BAD_KEY') }}"},
    }))
    rows = {f"u{i:03d}": person(i) for i in range(120)}
    for i in (40, 41, 42):  # three refused profiles in one job: their errors span two pages
        rows[f"u{i:03d}"]["email"] = f"invalid-{i}"
    syncs = [{"name": "kl_upsert", "destination": "kl", "mode": "upsert", "mappings": KL_MAPPINGS},
             {"name": "kl_denied", "destination": "kl_denied", "mode": "upsert", "mappings": KL_MAPPINGS}]
    dp.build(rows, syncs)

    klaviyo.fail_next(1, 429, {"Retry-After": "0.1"})
    klaviyo.fail_next(1, 503)
    report = dp.sync(select=("kl_upsert",), base_delay=0.05)["kl_upsert"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (117, 3)
    valid = {k: r for k, r in rows.items() if "invalid" not in r["email"]}
    assert klaviyo.profiles == {r["email"]: _kl_profile(k, r) for k, r in valid.items()}
    assert klaviyo.lists["LIST1"] == {r["email"] for r in valid.values()}
    assert rejections_of(dp, "kl_upsert") == {f"u0{i}": (f"Invalid email address 'invalid-{i}'.", 1)
                                            for i in (40, 41, 42)}
    assert any("import-errors?page=1" in r["path"] for r in klaviyo.requests)  # followed links.next

    reports = dp.sync(select=("kl_upsert", "kl_denied"))
    assert reports["kl_upsert"].planned == {**NO_CHANGES, "insert": 3} and reports["kl_upsert"].rejected == 3
    denied = reports["kl_denied"]
    assert denied.status == "failed" and "refused the credentials (HTTP 401: Missing or invalid private key" \
        in denied.message
    assert "pk_wrong" not in json.dumps(denied.as_dict()) and state_rows(dp, "kl_denied", "snapshot") == []

    after = changed(rows)
    after["u040"]["email"] = "fixed40@mail.com"
    dp.build(after, syncs)
    report = dp.sync(select=("kl_upsert",))["kl_upsert"]
    assert report.status == "success" and report.planned["delete"] == 0
    expected = {r["email"]: _kl_profile(k, r) for k, r in valid.items()}  # deleted rows stay (on_delete nothing)
    expected.update({r["email"]: _kl_profile(k, r, rows.get(k))
                     for k, r in after.items() if "invalid" not in r["email"]})
    assert klaviyo.profiles == expected
    assert set(rejections_of(dp, "kl_upsert")) == {"u041", "u042"}


# -- Mailchimp -----------------------------------------------------------------------------------------------------

MC_MAPPINGS = {"email_address": "email", "FNAME": "name", "PLAN": "plan", "SCORE": "score"}


@pytest.fixture(scope="module")
def mailchimp():
    from fakes.mailchimp import Mailchimp

    api = Mailchimp()
    yield api
    api.close()


def _mc_expected(rows: dict[str, dict]) -> dict[str, dict]:
    return {r["email"]: {"status": "subscribed", "merge_fields": {
        "FNAME": r["name"], "PLAN": r["plan"], "SCORE": "" if r["score"] is None else r["score"]}}
        for r in rows.values() if "invalid" not in r["email"]}


def test_mailchimp_batches_members_rejects_errors_and_archives(dp, mailchimp, monkeypatch):
    monkeypatch.setenv("MAILCHIMP_KEY", mailchimp.api_key)
    monkeypatch.setenv("MAILCHIMP_BAD_KEY", "ffffffffffff-us6")
    common = {"type": "mailchimp", "base_url": mailchimp.url, "list_id": "abc123"}
    dp.destinations(destinations_yaml({
        "mc": {**common, "api_key": "{{ env_var('MAILCHIMP_KEY') }}"},
        "mc_denied": {**common, "api_key": "{{ env_var('MAILCHIMP_BAD_KEY') }}"},
        "mc_nolist": {**common, "api_key": "{{ env_var('MAILCHIMP_KEY') }}", "list_id": "nosuchlist"},
    }))
    rows = {f"u{i:04d}": person(i) for i in range(1100)}  # three requests of at most 500 members
    rows["u0077"]["email"] = "invalid-77@mail.com"
    rows["u0777"]["email"] = "invalid-777@mail.com"
    syncs = [{"name": "mc_mirror", "destination": "mc", "mode": "mirror", "mappings": MC_MAPPINGS},
             {"name": "mc_denied", "destination": "mc_denied", "mode": "upsert", "mappings": MC_MAPPINGS},
             {"name": "mc_nolist", "destination": "mc_nolist", "mode": "upsert", "mappings": MC_MAPPINGS}]
    dp.build(rows, syncs)

    mailchimp.fail_next(1, 429, {"Retry-After": "0.1"})
    mailchimp.fail_next(1, 500)
    report = dp.sync(select=("mc_mirror",), base_delay=0.05)["mc_mirror"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (1098, 2)
    assert mailchimp.active() == _mc_expected(rows)
    assert rejections_of(dp, "mc_mirror")["u0077"] == (
        "invalid-77@mail.com looks fake or invalid, please enter a real email address. (ERROR_GENERIC)", 1)

    reports = dp.sync(select=("mc_mirror", "mc_denied", "mc_nolist"))
    assert reports["mc_mirror"].planned == {**NO_CHANGES, "insert": 2} and reports["mc_mirror"].rejected == 2
    denied = reports["mc_denied"]
    assert denied.status == "failed" and "refused the credentials (HTTP 401: Your API key may be invalid" \
        in denied.message
    assert "ffffffffffff" not in json.dumps(denied.as_dict()) and state_rows(dp, "mc_denied", "snapshot") == []
    nolist = reports["mc_nolist"]
    assert nolist.status == "failed" and "answered 404" in nolist.message and nolist.rejected == 0

    after = changed(rows)
    after["u0077"]["email"] = "fixed77@mail.com"
    dp.build(after, syncs)
    report = dp.sync(select=("mc_mirror",))["mc_mirror"]
    assert report.status == "success" and report.planned["delete"] == 5
    assert mailchimp.active() == _mc_expected(after)
    gone = {rows[k]["email"] for k in rows.keys() - after.keys()}
    assert {e for e, m in mailchimp.members["abc123"].items() if m["status"] == "archived"} == gone
    assert set(rejections_of(dp, "mc_mirror")) == {"u0777"}


def test_a_syncs_options_override_its_destinations_for_that_sync_only(dp, monkeypatch):
    """`options:` on a sync: its destination type's own keys, over dbt_studio.yml's for that sync only (here a
    second Mailchimp audience, another member status and smaller requests, through one destination and one key).
    Unknown keys get a did-you-mean, secrets and values the type refuses are configuration errors, before
    anything is sent."""
    from fakes.mailchimp import Mailchimp

    api = Mailchimp(lists=("abc123", "vip456"))
    try:
        monkeypatch.setenv("MAILCHIMP_KEY", api.api_key)
        dp.destinations(destinations_yaml({"mc": {"type": "mailchimp", "base_url": api.url, "list_id": "abc123",
                                                  "api_key": "{{ env_var('MAILCHIMP_KEY') }}"}}))
        rows = {f"u{i}": person(i) for i in range(5)}
        vips = {"name": "mc_vips", "destination": "mc", "mode": "upsert", "mappings": MC_MAPPINGS,
                "options": {"list_id": "vip456", "status": "pending", "batch_size": 2}}
        syncs = [{"name": "mc_everyone", "destination": "mc", "mode": "upsert", "mappings": MC_MAPPINGS}, vips]
        dp.build(rows, syncs)
        reports = dp.sync(select=("mc_everyone", "mc_vips"))
        assert {n: (r.status, r.acknowledged) for n, r in reports.items()} == {
            "mc_everyone": ("success", 5), "mc_vips": ("success", 5)}, {n: r.message for n, r in reports.items()}
        assert api.active("abc123") == _mc_expected(rows)  # the destination's own list and status
        assert api.active("vip456") == {e: {**m, "status": "pending"} for e, m in _mc_expected(rows).items()}
        posts = [r["path"] for r in api.requests if r["method"] == "POST"]
        assert sorted(posts) == ["/3.0/lists/abc123"] + ["/3.0/lists/vip456"] * 3  # 500 a request; 2, 2, 1

        for options, expected in (
                ({"lsit_id": "x"}, "syncs[1].options.lsit_id: unknown key 'lsit_id' (did you mean 'list_id'?)"),
                ({"api_key": "k-us6"}, "syncs[1].options.api_key: is a secret of a mailchimp destination: set it in "
                                       "dbt_studio.yml with env_var, not in a model's YAML"),
                ({"batch_size": 1000}, "syncs[1].options.batch_size: must be at most 500 (the destination's limit)"),
                ({"update_existing": "sometimes"}, "syncs[1].options.update_existing: must be true or false")):
            dp.declare(syncs[:1] + [{**vips, "options": options}])
            dp.p.dbt("parse")
            before = len(api.requests)
            skipped = dp.sync(select=("mc_everyone", "mc_vips"))  # the model's syncs: skipped with the mistake
            assert {r.status for r in skipped.values()} == {"skipped"}
            assert skipped["mc_vips"].message.startswith(
                f"not run: models/_people.yml: model 'people': meta.dbt_studio.{expected}"), skipped["mc_vips"].message
            assert len(api.requests) == before
    finally:
        api.close()

def test_destinations_command_lists_every_type_with_keys_modes_and_limits():
    from click.testing import CliRunner

    from sync_runner.cli import cli

    result = CliRunner().invoke(cli, ["destinations"])
    assert result.exit_code == 0, result.output
    for name in REGISTRY:
        assert f"\n{name}:" in result.output
    assert "  access_token (string; required; secret: env_var): private-app access token" in result.output
    hubspot = next(line for line in result.output.splitlines() if line.startswith("hubspot "))
    assert hubspot.split()[1:4] == ["insert,", "update,", "upsert,"] and " 100 " in hubspot
    listed = json.loads(CliRunner().invoke(cli, ["destinations", "--json"]).output)
    segment = next(t for t in listed if t["type"] == "segment")
    assert segment["on_delete"] == ["nothing", "clear"] and "write_key" in segment["required"]
    assert {t["type"] for t in listed} == set(REGISTRY)


def test_timeouts_are_transient_and_refused_batches_rejected_with_the_api_reason(hubspot, braze, mailchimp):
    from sync_runner.sync.destinations import Transient

    dest = REGISTRY["hubspot"]("hs", {"access_token": hubspot.token, "base_url": hubspot.url, "timeout": 0.2},
                               "s", "r")
    dest.open()
    records = [{"email": f"t{i}@mail.com", "plan": "free"} for i in range(101)]
    hubspot.delay = 0.5
    try:
        with pytest.raises(Transient, match="ReadTimeout"):
            dest.send(batch_of("insert", records[:1]))
    finally:
        hubspot.delay = 0.0
    # a batch over the API's limit (the engine never sends one: limits() caps batch_size) is refused whole
    refused = dest.send(batch_of("insert", records)).rejected
    assert set(refused) == set(range(101))
    assert refused[0] == "HTTP 400: Batch input cannot exceed 100 inputs, 101 provided"

    mc = REGISTRY["mailchimp"]("mc", {"api_key": mailchimp.api_key, "base_url": mailchimp.url,
                                      "list_id": "abc123"}, "s", "r")
    mc.open()
    assert mc.send(batch_of("insert", [{"email_address": "c@mail.com", "FNAME": "C"}])).rejected == {}
    clear = mc.send(batch_of("clear", [{"email_address": "c@mail.com", "FNAME": None}]))
    assert clear.rejected == {} and mailchimp.active()["c@mail.com"]["merge_fields"] == {"FNAME": ""}
    assert mc.send(batch_of("delete", [{"email_address": "nobody@mail.com"}])).rejected == {}  # 404: already gone
    derived = REGISTRY["mailchimp"]("mc", {"api_key": "k-us21", "list_id": "abc123"}, "s", "r")
    derived.open()
    assert derived.base_url == "https://us21.api.mailchimp.com"


def test_klaviyo_failures_it_does_not_attribute_acknowledge_nothing_of_the_job(klaviyo):
    dest = REGISTRY["klaviyo"]("kl", {"api_key": klaviyo.api_key, "base_url": klaviyo.url, "poll_interval": 0.01},
                               "s", "r")
    dest.open()
    records = [{"email": "a@mail.com", "plan": "free"}, {"email": "invalid-b", "plan": "free"},
               {"email": None, "plan": "free"}]
    klaviyo.anonymous_errors = True
    try:
        rejected = dest.send(batch_of("insert", records)).rejected
    finally:
        klaviyo.anonymous_errors = False
    assert rejected[2] == "no email, phone_number or external_id: Klaviyo cannot identify the profile"
    assert set(rejected) == {0, 1, 2} and "without saying which" in rejected[0]
    assert dest.send(batch_of("insert", records[:2])).rejected.keys() == {1}  # attributed: only the bad one


def test_a_request_that_cannot_be_made_fails_the_sync_in_one_line_and_commits_nothing(dp):
    """An `http` URL that renders, for a record, into one no request can be made to (here a port that is not a
    number): the sync fails with one line naming the destination, and no record counts as sent."""
    dp.destinations(destinations_yaml({"bad_port": {"type": "http", "url": "http://127.0.0.1:{{ key }}/contacts",
                                                    "format": "row"}}))
    dp.build({f"u{i}": person(i) for i in range(3)},
             [{"name": "bad_port_sync", "destination": "bad_port", "mode": "upsert", "mappings": {"email": "email"}}])
    report = dp.sync(select=("bad_port_sync",))["bad_port_sync"]
    assert (report.status, report.acknowledged) == ("failed", 0)
    assert report.message.startswith("destination 'bad_port': the request could not be sent (Unsendable: cannot "
                                     "send to 'http://127.0.0.1:"), report.message
    assert "\n" not in report.message and "Traceback" not in report.message
