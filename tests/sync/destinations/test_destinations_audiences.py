"""Ad audiences end to end: Meta Custom Audiences and Google Ads Customer Match, through the real engine (DuckDB,
tests/projects/sync) into local fakes that follow each API's documented contract (tests/fakes/meta.py,
tests/fakes/google_ads.py). The audience a fake holds is compared with the set of hashes computed here, from the
rows, independently of the destination's code: inserts add, deletes remove what was last acknowledged, invalid
identifiers and refused entries land in `<sync>__rejections` (and are sent again on the next run), transient
errors are retried, bad credentials stop the sync with nothing committed.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from sync_runner.sync.destinations import REGISTRY, Terminal, Transient
from sync_runner.sync.destinations import _identifiers as ids

from helpers.destinations import NO_CHANGES, batch_of, changed, destinations_yaml, rejections_of, state_rows
from helpers.sync_project import PROJECT, SyncProject, person

MAPPINGS = {"email": "email", "phone": "note"}
AUDIENCE = "23850000000000001"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def phone(i: int) -> tuple[str, str]:
    """A phone number as people write it, and its E.164 form (default country code 1)."""
    number = f"{i:07d}"
    local = f"(555) {number[:3]}-{number[3:]}"
    return [(f"+1 {local}", f"+1555{number}"), (local, f"+1555{number}"),
            (f"001 555 {number[:3]} {number[3:]}", f"+1555{number}"),
            (f"+44 20 7946 {i % 10000:04d}", f"+44207946{i % 10000:04d}")][i % 4]


def people(count: int) -> dict[str, dict]:
    rows = {}
    for i in range(count):
        email = f"P{i}@Mail.COM" if i % 5 == 0 else f"p{i}@mail.com"  # mixed case: lowercased before hashing
        rows[f"u{i:03d}"] = person(i, email=email, note=None if i % 7 == 6 else phone(i)[0])
    return rows


def members(rows: dict[str, dict], email_kind: str, phone_kind: str, plus: bool) -> set[tuple[str, str]]:
    """What the audience should hold for these rows: SHA-256 of the lowercased email and of the E.164 number."""
    out = set()
    for key, r in rows.items():
        out.add((email_kind, sha(r["email"].lower())))
        if r["note"] is not None:
            e164 = phone(int(key[1:]))[1] if key.startswith("u") else r["e164"]
            out.add((phone_kind, sha(e164 if plus else e164[1:])))
    return out


def _spoil(rows: dict[str, dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """Two rows invalid before sending (no @, letters in a phone); returns the valid rows and the reasons."""
    rows["u005"]["email"] = "invalid-5"
    rows["u017"]["note"] = "call me"
    reasons = {"u005": "email 'invalid-5' is not a valid email address", "u017": "phone 'call me' contains letters"}
    return {k: r for k, r in rows.items() if k not in reasons}, reasons


@pytest.fixture(scope="module")
def dp(new_project, tmp_path_factory):
    """The sync test project (as in test_destinations), built once for this module."""
    project = new_project("duckdb", name="audiences", source=PROJECT)
    return SyncProject(project, tmp_path_factory.mktemp("audiences_out"))


# -- identifiers ----------------------------------------------------------------------------------------------------

def test_identifiers_are_normalised_then_hashed_like_the_platforms_ask():
    assert ids.hashed_email("  Someone@Example.COM ") == hashlib.sha256(b"someone@example.com").hexdigest()
    assert ids.hashed_email("Test@Example.com") == "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    assert ids.normalise_email("A.B+tag@Sub.Example.org") == "a.b+tag@sub.example.org"
    for bad in ("no-at-sign", "a@b", "a b@c.com", "@example.com", "x@y."):
        with pytest.raises(ids.InvalidIdentifier, match="not a valid email address"):
            ids.normalise_email(bad)
    # E.164: +, 00 and national numbers with the default country code all give one form
    for written in ("+44 20 7946 0000", "0044 (20) 7946-0000", "+44 (0)20 7946 0000"):
        assert ids.normalise_phone(written) == "+442079460000", written
    assert ids.normalise_phone("(020) 7946-0000", "44") == "+442079460000"
    assert ids.normalise_phone("(555) 010-0123", "1") == "+15550100123"
    assert ids.normalise_phone("15550100123") == "+15550100123"  # no default: digits carry their country code
    for bad in ("555-0100", "+1 555 CALL NOW", "+1234567890123456"):
        with pytest.raises(ids.InvalidIdentifier):
            ids.normalise_phone(bad)
    with pytest.raises(ids.InvalidIdentifier, match="set default_country_code"):
        ids.normalise_phone("0100 123")
    # Google hashes E.164 with its +, Meta the digits only
    assert ids.hashed_phone("+1 (555) 010-0123") == hashlib.sha256(b"+15550100123").hexdigest()
    assert ids.hashed_phone("+1 (555) 010-0123", plus=False) == hashlib.sha256(b"15550100123").hexdigest()
    # 64 hex characters are a hash already: lowercased, passed through, never hashed again
    digest = hashlib.sha256(b"someone@example.com").hexdigest()
    assert ids.hashed_email(digest.upper()) == digest and ids.hashed_phone(f" {digest} ") == digest
    assert ids.country_code("+44") == ids.country_code(44) == "44"
    with pytest.raises(ValueError):
        ids.country_code("044")


# -- Meta Custom Audiences ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def meta():
    from fakes.meta import Meta

    api = Meta(audiences=(AUDIENCE,))
    yield api
    api.close()


def _meta_members(rows: dict[str, dict]) -> set[tuple[str, str]]:
    return members(rows, "EMAIL", "PHONE", plus=False)


def test_meta_adds_removes_rejects_and_retries(dp, meta, monkeypatch):
    monkeypatch.setenv("META_TOKEN", meta.access_token)
    monkeypatch.setenv("META_BAD_TOKEN", "EAAB-expired-token-999")
    common = {"type": "meta_custom_audience", "base_url": meta.url, "audience_id": AUDIENCE,
              "default_country_code": 1, "batch_size": 40, "rate_per_second": 100}
    dp.destinations(destinations_yaml({
        "fb": {**common, "access_token": "{{ env_var('META_TOKEN') }}"},
        "fb_denied": {**common, "access_token": "{{ env_var('META_BAD_TOKEN') }}"},
        "fb_nowhere": {**common, "access_token": "{{ env_var('META_TOKEN') }}", "audience_id": "999"},
    }))
    rows = people(150)
    valid, reasons = _spoil(rows)
    meta.refused.add(sha("p33@mail.com"))  # Meta names it in invalid_entry_samples
    reasons["u033"] = "Meta: Entry refused by Meta"
    del valid["u033"]
    syncs = [{"name": "fb_mirror", "destination": "fb", "mode": "mirror", "mappings": MAPPINGS},
             {"name": "fb_denied", "destination": "fb_denied", "mode": "upsert", "mappings": MAPPINGS},
             {"name": "fb_nowhere", "destination": "fb_nowhere", "mode": "upsert", "mappings": MAPPINGS},
             {"name": "fb_plan", "destination": "fb", "mode": "upsert", "mappings": {**MAPPINGS, "plan": "plan"}}]
    dp.build(rows, syncs)

    meta.fail_next(1, 429, {"Retry-After": "0.1"})
    meta.fail_next(1, 502)
    meta.throttle(1)  # Graph's own throttling answer: HTTP 400, code 80003
    report = dp.sync(select=("fb_mirror",), base_delay=0.05)["fb_mirror"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (147, 3)
    assert meta.audiences[AUDIENCE] == _meta_members(valid)
    assert not meta.faults and not meta.throttled  # every fault was met and retried
    assert {b["method"] for b in meta.bodies} == {"POST"} and {json.dumps(b["schema"]) for b in meta.bodies} == {
        '["EMAIL", "PHONE"]'}
    assert max(b["rows"] for b in meta.bodies) <= 40 and sum(b["rows"] for b in meta.bodies) >= 148
    assert rejections_of(dp, "fb_mirror") == {k: (v, 1) for k, v in reasons.items()}

    # state holds only what Meta acknowledged: the next run plans exactly the three rejected rows
    reports = dp.sync(select=("fb_mirror", "fb_denied", "fb_nowhere", "fb_plan"))
    assert reports["fb_mirror"].planned == {**NO_CHANGES, "insert": 3} and reports["fb_mirror"].rejected == 3
    assert {k: v[1] for k, v in rejections_of(dp, "fb_mirror").items()} == dict.fromkeys(reasons, 2)
    denied = reports["fb_denied"]
    assert denied.status == "failed" and "\n" not in denied.message
    assert "refused the credentials (Meta error 190: Invalid OAuth access token" in denied.message
    assert "expired-token" not in json.dumps(denied.as_dict())
    assert state_rows(dp, "fb_denied", "snapshot") == [] and state_rows(dp, "fb_denied", "rejections") == []
    nowhere = reports["fb_nowhere"]
    assert nowhere.status == "failed" and "audience 999 cannot be updated (Meta error 100/33" in nowhere.message
    assert state_rows(dp, "fb_nowhere", "snapshot") == []
    plan = reports["fb_plan"]
    assert plan.status == "failed" and "can map only email and phone" in plan.message and "plan" in plan.message

    # a later day: 5 people leave (removed by the identifiers Meta acknowledged), 3 arrive, one fixed email,
    # one changed email (added; the old one stays: an update carries only the new values)
    after = changed(rows)
    for i in range(3):
        after[f"n{i}"].update(note=f"+49 30 {900 + i}1234", e164=f"+4930{900 + i}1234")
    after["u005"]["email"] = "fixed5@mail.com"
    after["u040"]["email"] = "moved40@mail.com"
    dp.build({k: {c: v for c, v in r.items() if c != "e164"} for k, r in after.items()}, syncs)
    report = dp.sync(select=("fb_mirror",))["fb_mirror"]
    assert report.status == "success", report.message
    assert report.planned == {**NO_CHANGES, "insert": 6, "update": 1, "delete": 5}
    assert {b["method"] for b in meta.bodies[-3:]} == {"POST", "DELETE"}
    kept = {k: r for k, r in after.items() if k not in ("u017", "u033")}
    assert meta.audiences[AUDIENCE] == _meta_members(kept) | {("EMAIL", sha(rows["u040"]["email"].lower()))}
    assert set(rejections_of(dp, "fb_mirror")) == {"u017", "u033"}


def test_meta_requests_stay_within_10000_rows_and_unnamed_invalid_entries_acknowledge_nothing(meta):
    dest = REGISTRY["meta_custom_audience"]("fb", {"access_token": meta.access_token, "base_url": meta.url,
                                                   "audience_id": AUDIENCE, "batch_size": 50_000}, "s", "r")
    dest.open()
    assert dest.limits()[:3] == (10_000, None, 2)  # capped at Meta's documented limit
    # a request over the limit (the engine never sends one) is refused by Meta with a Graph error: rows rejected
    records = [{"email": f"big{i}@mail.com"} for i in range(10_001)]
    rejected = dest.send(batch_of("insert", records)).rejected
    assert set(rejected) == set(range(10_001))
    assert rejected[0].startswith("HTTP 400: Meta error 100: (#100) Too many users in this batch: 10001")
    # a pre-hashed value passes through; an invalid entry Meta reports without a usable sample rejects the request
    digest = sha("hashed@mail.com")
    assert dest.send(batch_of("insert", [{"email": digest.upper()}])).rejected == {}
    assert ("EMAIL", digest) in meta.audiences[AUDIENCE]
    meta.refused.add(sha("odd@mail.com"))
    original = meta.route

    def no_samples(*args):
        status, body, headers = original(*args)
        if isinstance(body, dict) and "invalid_entry_samples" in body:
            body["invalid_entry_samples"] = {}
        return status, body, headers

    meta.route = no_samples
    try:
        rejected = dest.send(batch_of("insert", [{"email": "ok@mail.com"}, {"email": "odd@mail.com"}])).rejected
    finally:
        meta.route = original
    assert set(rejected) == {0, 1} and "without naming all of them" in rejected[0]
    with pytest.raises(Terminal, match="can map only email and phone"):
        dest.send(batch_of("insert", [{"email_address": "a@mail.com"}]))


# -- Google Ads Customer Match --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def google():
    from fakes.google_ads import GoogleAds

    api = GoogleAds(manager="9876543210")
    yield api
    api.close()


def _google_members(rows: dict[str, dict]) -> set[tuple[str, str]]:
    return members(rows, "hashedEmail", "hashedPhoneNumber", plus=True)


def _google_config(google, **over) -> dict:
    return {"type": "google_ads_customer_match", "base_url": google.url, "customer_id": "123-456-7890",
            "user_list_id": "555", "login_customer_id": "987-654-3210", "default_country_code": "+1",
            "poll_interval": 0.01, "batch_size": 60, "rate_per_second": 100, **over}


def test_google_customer_match_jobs_add_remove_reject_and_retry(dp, google, monkeypatch):
    monkeypatch.setenv("GADS_TOKEN", google.token)
    monkeypatch.setenv("GADS_DEV", google.developer_token)
    monkeypatch.setenv("GADS_BAD_TOKEN", "ya29.revoked-token-777")
    creds = {"access_token": "{{ env_var('GADS_TOKEN') }}", "developer_token": "{{ env_var('GADS_DEV') }}"}
    dp.destinations(destinations_yaml({
        "gads": _google_config(google, **creds, ad_user_data_consent="GRANTED", ad_personalization_consent="GRANTED"),
        "gads_denied": _google_config(google, **{**creds, "access_token": "{{ env_var('GADS_BAD_TOKEN') }}"}),
        "gads_nolist": _google_config(google, **creds, user_list_id="404"),
    }))
    rows = people(150)
    valid, reasons = _spoil(rows)
    google.refused.add(sha("+1" + "555" + f"{42:07d}"))  # one phone Google refuses: named by operation index
    reasons["u042"] = "The user identifier was refused (test). (INVALID_USER_IDENTIFIER)"
    del valid["u042"]
    syncs = [{"name": "gads_mirror", "destination": "gads", "mode": "mirror", "mappings": MAPPINGS},
             {"name": "gads_denied", "destination": "gads_denied", "mode": "upsert", "mappings": MAPPINGS},
             {"name": "gads_nolist", "destination": "gads_nolist", "mode": "upsert", "mappings": MAPPINGS}]
    dp.build(rows, syncs)

    google.fail_next(1, 429, {"Retry-After": "0.1"})
    google.quota_next(1)  # RESOURCE_EXHAUSTED with its retryDelay in the body
    google.fail_next(1, 503)
    google.fail_jobs = 1  # the first job to run ends with an error: sent again as a new job
    report = dp.sync(select=("gads_mirror",), base_delay=0.05)["gads_mirror"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (147, 3)
    assert google.lists["customers/1234567890/userLists/555"] == _google_members(valid)
    assert not google.faults and not google.quota_faults and not google.fail_jobs
    assert any(j["status"] == "FAILED" for j in google.jobs.values())
    assert {json.dumps(j["consent"]) for j in google.jobs.values()} == {
        '{"adUserData": "GRANTED", "adPersonalization": "GRANTED"}'}
    assert max(google.identifiers_sent) <= 120  # 60 records per job, at most two identifiers each
    assert rejections_of(dp, "gads_mirror") == {k: (v, 1) for k, v in reasons.items()}

    reports = dp.sync(select=("gads_mirror", "gads_denied", "gads_nolist"))
    assert reports["gads_mirror"].planned == {**NO_CHANGES, "insert": 3} and reports["gads_mirror"].rejected == 3
    assert {k: v[1] for k, v in rejections_of(dp, "gads_mirror").items()} == dict.fromkeys(reasons, 2)
    denied = reports["gads_denied"]
    assert denied.status == "failed" and "\n" not in denied.message
    assert "refused the credentials (HTTP 401: Request is missing required authentication credential" \
        in denied.message
    assert "revoked-token" not in json.dumps(denied.as_dict()) and state_rows(dp, "gads_denied", "snapshot") == []
    nolist = reports["gads_nolist"]
    assert nolist.status == "failed" and "refused to create a job on customers/1234567890/userLists/404 (HTTP " \
        "400: The user list customers/1234567890/userLists/404 is not a valid Customer Match list. " \
        "(INVALID_USER_LIST_ID))" in nolist.message
    assert state_rows(dp, "gads_nolist", "snapshot") == []

    after = changed(rows)
    for i in range(3):
        after[f"n{i}"].update(note=f"+49 30 {900 + i}1234", e164=f"+4930{900 + i}1234")
    after["u005"]["email"] = "fixed5@mail.com"
    after["u042"]["note"] = None  # the refused phone is gone: the row is email only now
    dp.build({k: {c: v for c, v in r.items() if c != "e164"} for k, r in after.items()}, syncs)
    jobs_before = len(google.jobs)
    report = dp.sync(select=("gads_mirror",))["gads_mirror"]
    assert report.status == "success", report.message
    assert report.planned == {**NO_CHANGES, "insert": 6, "delete": 5}
    removes = [j for j in list(google.jobs.values())[jobs_before:] if j["operations"]
               and "remove" in j["operations"][0]]
    assert sum(len(j["operations"]) for j in removes) == 5
    kept = {k: r for k, r in after.items() if k != "u017"}
    assert google.lists["customers/1234567890/userLists/555"] == _google_members(kept)
    assert set(rejections_of(dp, "gads_mirror")) == {"u017"}


def test_google_requests_stay_within_the_identifier_limit_and_tokens_refresh(google, monkeypatch):
    from sync_runner.sync.destinations import google_ads

    config = _google_config(google, access_token=google.token, developer_token=google.developer_token,
                            batch_size=500_000)
    dest = REGISTRY["google_ads_customer_match"]("gads", config, "s", "r")
    dest.open()
    assert dest.limits()[:3] == (100_000, None, 1)
    # Google's limit, scaled down in the fake and the destination alike: a job's records are split over requests
    monkeypatch.setattr(google, "IDENTIFIERS_LIMIT", 10)
    monkeypatch.setattr(google_ads, "IDENTIFIERS_PER_REQUEST", 10)
    records = [{"email": f"s{i}@mail.com", "phone": f"+1 555 200 {i:04d}"} for i in range(12)]
    sent = len(google.identifiers_sent)
    assert dest.send(batch_of("insert", records)).rejected == {}
    assert google.identifiers_sent[sent:] == [10] * 2 + [4]
    # a request over the limit is refused by Google with a 400: its records are rejected with Google's reason
    monkeypatch.setattr(google_ads, "IDENTIFIERS_PER_REQUEST", 100)
    rejected = dest.send(batch_of("delete", records)).rejected
    assert set(rejected) == set(range(12))
    assert rejected[0] == ("HTTP 400: Maximum number of user identifiers allowed per request is 100,000 and per "
                           "operation is 20. (TOO_MANY_USER_IDENTIFIERS)")
    assert {("hashedEmail", sha("s0@mail.com")), ("hashedPhoneNumber", sha("+15552000000"))} <= \
        google.lists["customers/1234567890/userLists/555"]  # nothing removed
    # an access token from a refresh token; a revoked one stops the run before anything is sent
    refresh = {k: v for k, v in config.items() if k != "access_token"}
    refresh.update(google.refresh, token_url=f"{google.url}/token")
    fresh = REGISTRY["google_ads_customer_match"]("gads", refresh, "s", "r")
    fresh.open()
    assert fresh.token == google.token
    with pytest.raises(Terminal, match=r"could not refresh its OAuth token \(HTTP 400: invalid_grant"):
        REGISTRY["google_ads_customer_match"]("gads", {**refresh, "refresh_token": "1//revoked"}, "s", "r").open()
    # a job still running after poll_timeout is sent again (Transient); meanwhile the list refuses a second job
    # with 409 ABORTED (concurrent modification), also retried
    slow = REGISTRY["google_ads_customer_match"]("gads", {**config, "poll_timeout": 0}, "s", "r")
    slow.open()
    with pytest.raises(Transient, match="still running after 0 s"):
        slow.send(batch_of("insert", records[:1]))
    with pytest.raises(Transient, match="HTTP 409 .*Multiple requests were attempting to modify"):
        dest.send(batch_of("insert", records[:1]))
    for job in google.jobs.values():  # let the fake finish it, as Google would
        job["status"] = "SUCCESS" if job["status"] == "RUNNING" else job["status"]
    with pytest.raises(Terminal, match="ad_user_data_consent must be GRANTED or DENIED, not 'YES'"):
        REGISTRY["google_ads_customer_match"]("gads", {**config, "ad_user_data_consent": "yes"}, "s", "r").open()
    # without the manager account in login-customer-id the customer is out of reach: terminal, Google's reason
    alone = REGISTRY["google_ads_customer_match"]("gads", {**config, "login_customer_id": ""}, "s", "r")
    alone.open()
    with pytest.raises(Terminal, match="refused the credentials .HTTP 403: The caller does not have permission"):
        alone.send(batch_of("insert", records[:1]))


# -- validate -------------------------------------------------------------------------------------------------------

def test_validate_refuses_modes_and_deletes_an_audience_cannot_do():
    from sync_runner.project.artifacts import Node
    from sync_runner.sync.config import DestinationConfig, sync_problems

    def problems(dest_type: str, **spec) -> list[str]:
        node = Node("model.t.people", "people", "model", "t", "models/people.sql", None, None, None, "main", "people",
                    "table", ("user_id", "email"),
                    {"primary_key": "user_id", "syncs": [{"name": "s", "destination": "d",
                                                          "mappings": {"email": "email"}, **spec}]})
        return [f"{k}: {m}" for k, m in sync_problems(node, {"d": DestinationConfig("d", dest_type, {})})]

    for dest_type in ("meta_custom_audience", "google_ads_customer_match"):
        assert problems(dest_type, mode="mirror") == problems(dest_type, mode="insert") == []
        assert problems(dest_type, mode="upsert", on_delete="delete") == []
        assert problems(dest_type, mode="update") == [
            f"syncs[0].mode: destination type '{dest_type}' does not support mode 'update'"]
        assert problems(dest_type, mode="mirror", on_delete="clear") == [
            f"syncs[0].on_delete: destination type '{dest_type}' does not support 'clear'"]
