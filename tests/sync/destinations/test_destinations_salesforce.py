"""Salesforce Bulk API 2.0 end to end: a sync through the real engine (DuckDB, tests/projects/sync) into a local fake
org that follows the documented contract (tests/fakes/salesforce.py). Every row lands as Salesforce expects it
(upserted by the external id, nulls as #N/A, deletes by looked-up record ids), 429 / 5xx are retried, failed
results land in `<sync>__rejections` with Salesforce's sf__Error, state is committed only for acknowledged rows,
and bad credentials or configuration stop the sync with one line and no state change.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json

import pyarrow as pa
import pytest
import requests

from sync_runner.sync.destinations import REGISTRY, Batch, Terminal, Transient

from helpers.destinations import NO_CHANGES, changed, destinations_yaml, rejections_of, state_rows
from helpers.sync_project import person

SF_MAPPINGS = {"External_Id__c": "user_id", "Email": "email", "LastName": "name", "Plan__c": "plan",
               "Score__c": "score"}


@pytest.fixture(scope="module")
def salesforce():
    from fakes.salesforce import Salesforce

    api = Salesforce()
    yield api
    api.close()


def _expected(rows: dict[str, dict], emptied=()) -> dict[str, dict]:
    """What the org should hold by external id: values as uploaded; a null (#N/A) leaves the field unset."""
    out = {}
    for key, r in rows.items():
        if "invalid" not in r["email"]:
            values = {"Email": r["email"], "LastName": r["name"], "Plan__c": r["plan"],
                      "Score__c": None if r["score"] is None else str(r["score"])}
            out[key] = {k: v for k, v in values.items() if v is not None}
    out.update({key: {} for key in emptied})  # a clear empties every field but the external id
    return out


def _jobs(api, since: int = 0) -> list[dict]:
    return [job for n, job in enumerate(api.jobs.values()) if n >= since]


def _dest(api, **over):
    config = {"access_token": api.token, "base_url": api.url, "object": "Contact",
              "external_id_field": "External_Id__c", "poll_interval": 0.01, **over}
    dest = REGISTRY["salesforce"]("sf", config, "s", "r")
    dest.open()
    return dest


def batch_of(op: str, records: list[dict]) -> Batch:
    return Batch(op, [str(i) for i in range(len(records))], list(range(len(records))), records, pa.table({}))


def test_salesforce_upserts_rejects_retries_and_deletes(dp, salesforce, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SF_TOKEN", salesforce.token)
    monkeypatch.setenv("SF_BAD_TOKEN", "00DWRONG!wrong-token-123")
    common = {"type": "salesforce", "base_url": salesforce.url, "object": "Contact",
              "external_id_field": "External_Id__c", "poll_interval": 0.01, "batch_size": 40, "rate_per_second": 50,
              "access_token": "{{ env_var('SF_TOKEN') }}"}
    dp.destinations(destinations_yaml({
        "sf": common,
        "sf_people": {**common, "object": "Person__c"},
        "sf_denied": {**common, "access_token": "{{ env_var('SF_BAD_TOKEN') }}"},
    }))
    rows = {f"u{i:03d}": person(i) for i in range(230)}
    rows["u005"]["email"] = "invalid-5@mail"
    rows["u117"]["email"] = "invalid-117@mail"
    syncs = [{"name": "sf_mirror", "destination": "sf", "mode": "mirror", "mappings": SF_MAPPINGS},
             {"name": "sf_clear", "destination": "sf_people", "mode": "upsert", "on_delete": "clear",
              "mappings": SF_MAPPINGS},
             {"name": "sf_denied", "destination": "sf_denied", "mode": "upsert", "mappings": SF_MAPPINGS},
             {"name": "sf_no_ext", "destination": "sf", "mode": "upsert", "mappings": {"Email": "email"}},
             {"name": "sf_bad_field", "destination": "sf_people", "mode": "upsert",
              "mappings": {**SF_MAPPINGS, "Nickname__c": "note"}}]
    dp.build(rows, syncs)

    salesforce.fail_next(2, 429, {"Retry-After": "0.1"})
    salesforce.fail_next(1, 503)
    first = len(salesforce.requests)
    reports = dp.sync(select=("sf_mirror", "sf_clear"), base_delay=0.05)
    for name in ("sf_mirror", "sf_clear"):
        report = reports[name]
        assert report.status == "success", report.message
        assert (report.acknowledged, report.rejected) == (228, 2)
        assert rejections_of(dp, name) == {
            "u005": ("INVALID_EMAIL_ADDRESS:Email: invalid email address: invalid-5@mail:Email --", 1),
            "u117": ("INVALID_EMAIL_ADDRESS:Email: invalid email address: invalid-117@mail:Email --", 1)}
    assert salesforce.by_external_id("Contact") == _expected(rows)
    assert salesforce.by_external_id("Person__c") == _expected(rows)
    assert not salesforce.faults  # the two 429s and the 503 were met and retried
    assert all(job["state"] in ("JobComplete", "Aborted") for job in _jobs(salesforce))  # none left open
    closed = [job for job in _jobs(salesforce) if job["state"] == "JobComplete"]
    assert len(closed) == 12  # 230 rows in jobs of at most 40, per object
    for job in closed:  # one CSV upload per job, an upsert by the external id, the header as mapped
        assert job["operation"] == "upsert" and job["externalIdFieldName"] == "External_Id__c"
        assert len(job["uploads"]) == 1 and job["header"] == list(SF_MAPPINGS)
        assert len(list(csv.reader(io.StringIO(job["uploads"][0].decode())))) - 1 <= 40
    # results are read only for the jobs with a failure (u005 and u117 are in two jobs per object)
    assert len([r for r in salesforce.requests[first:] if "Results/" in r["path"]]) == 2 * 4
    uploads = [r for r in salesforce.requests if r["method"] == "PUT"]
    assert uploads and all(r["content_type"] == "text/csv" for r in uploads)

    # state holds only what Salesforce acknowledged: the next run plans exactly the two rejected rows
    reports = dp.sync(select=("sf_mirror", "sf_denied", "sf_no_ext", "sf_bad_field"))
    assert reports["sf_mirror"].planned == {**NO_CHANGES, "insert": 2} and reports["sf_mirror"].rejected == 2
    assert {k: v[1] for k, v in rejections_of(dp, "sf_mirror").items()} == {"u005": 2, "u117": 2}
    denied = reports["sf_denied"]  # bad token: terminal, one line with Salesforce's reason, no secret, no state
    assert denied.status == "failed"
    assert "refused the credentials (HTTP 401: INVALID_SESSION_ID: Session expired or invalid)" in denied.message
    assert "\n" not in denied.message and "wrong-token" not in json.dumps(denied.as_dict())
    assert state_rows(dp, "sf_denied", "snapshot") == [] and state_rows(dp, "sf_denied", "rejections") == []
    no_ext = reports["sf_no_ext"]
    assert no_ext.status == "failed" and "must map the field 'External_Id__c'" in no_ext.message
    bad_field = reports["sf_bad_field"]  # a field the object does not have: the job fails, the sync stops
    assert bad_field.status == "failed" and "Field name not found : Nickname__c" in bad_field.message
    assert state_rows(dp, "sf_bad_field", "snapshot") == [] and state_rows(dp, "sf_bad_field", "rejections") == []

    # a later day: deletes look the ids up (two records per query page) and delete them; clears send #N/A
    salesforce.query_page = 2
    after = changed(rows)
    after["u005"]["email"] = "fixed-5@mail.com"
    dp.build(after, syncs)
    before = len(salesforce.jobs)
    reports = dp.sync(select=("sf_mirror", "sf_clear"))
    gone = rows.keys() - after.keys()
    assert reports["sf_mirror"].planned["delete"] == 5 and reports["sf_clear"].planned["clear"] == 5
    assert reports["sf_mirror"].status == reports["sf_clear"].status == "success"
    assert salesforce.by_external_id("Contact") == _expected(after)
    assert salesforce.by_external_id("Person__c") == _expected(after, emptied=gone)
    deletes = [job for job in _jobs(salesforce, before) if job["operation"] == "delete"]
    assert len(deletes) == 1 and deletes[0]["header"] == ["Id"] and deletes[0]["processed"] == 5
    assert any("/query/" in r["path"] for r in salesforce.requests)  # followed nextRecordsUrl
    assert set(rejections_of(dp, "sf_mirror")) == {"u117"}
    assert set(rejections_of(dp, "sf_clear")) == {"u117"}
    salesforce.query_page = 2000


def test_salesforce_job_failing_part_way_commits_only_processed_rows(dp, salesforce, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SF_TOKEN", salesforce.token)
    dp.destinations(destinations_yaml({"sf_one": {
        "type": "salesforce", "base_url": salesforce.url, "object": "Person__c", "external_id_field": "External_Id__c",
        "access_token": "{{ env_var('SF_TOKEN') }}", "poll_interval": 0.01, "batch_size": 40, "concurrency": 1,
        "rate_per_second": 50}}))
    rows = {f"p{i:03d}": person(500 + i) for i in range(60)}
    syncs = [{"name": "sf_partial", "destination": "sf_one", "mode": "upsert", "mappings": SF_MAPPINGS}]
    dp.build(rows, syncs)
    salesforce.fail_job = (25, "InternalServerError : Max retries exceeded for a batch")  # 25 of the first 40
    report = dp.sync(select=("sf_partial",))["sf_partial"]
    assert report.status == "success", report.message
    assert (report.acknowledged, report.rejected) == (45, 15)
    rejected = rejections_of(dp, "sf_partial")
    assert len(rejected) == 15 and all("not processed" in reason and "Max retries exceeded" in reason
                                       for reason, _ in rejected.values())
    held = {k for k in salesforce.by_external_id("Person__c") if k.startswith("p")}
    assert held == rows.keys() - rejected.keys()  # what was applied is exactly what was acknowledged
    report = dp.sync(select=("sf_partial",))["sf_partial"]
    assert report.planned == {**NO_CHANGES, "insert": 15} and (report.acknowledged, report.rejected) == (15, 0)
    assert {k for k in salesforce.by_external_id("Person__c") if k.startswith("p")} == rows.keys()
    assert state_rows(dp, "sf_partial", "rejections") == []


def test_validate_refuses_update_mode():
    from sync_runner.project.artifacts import Node
    from sync_runner.sync.config import DestinationConfig, sync_problems

    def problems(**spec) -> list[str]:
        node = Node("model.t.people", "people", "model", "t", "models/people.sql", None, None, None, "main", "people",
                    "table", ("user_id", "email"),
                    {"primary_key": "user_id", "syncs": [{"name": "s", "destination": "d",
                                                          "mappings": {"External_Id__c": "user_id"}, **spec}]})
        return [f"{k}: {m}" for k, m in sync_problems(node, {"d": DestinationConfig("d", "salesforce", {})})]

    assert problems(mode="update") == ["syncs[0].mode: destination type 'salesforce' does not support mode 'update'"]
    assert problems(mode="mirror") == problems(mode="mirror", on_delete="clear") == problems(mode="insert") == []
    assert problems(mode="upsert", on_delete="delete") == []
    cls = REGISTRY["salesforce"]
    dest = cls("sf", {"access_token": "t", "base_url": "http://x", "object": "Contact",
                      "external_id_field": "Ext__c", "batch_size": 500_000, "max_bytes": 500_000_000}, "s", "r")
    assert dest.limits() == (100_000, 100_000_000, 2, 1.0)  # capped: 100 MB of CSV is 150 MB once base64-encoded
    with pytest.raises(Terminal, match="needs 'access_token'"):
        cls("sf", {"base_url": "http://x", "object": "Contact", "external_id_field": "Ext__c"}, "s", "r").open()
    with pytest.raises(Terminal, match="needs 'object' as an API name"):
        cls("sf", {"access_token": "t", "base_url": "http://x", "object": "Contact; DROP",
                   "external_id_field": "Ext__c"}, "s", "r").open()


def test_uploads_stay_within_the_size_limit_and_oversize_uploads_are_refused(salesforce, monkeypatch):
    from sync_runner.sync.destinations import salesforce as module

    dest = _dest(salesforce, object="Person__c")
    records = [{"External_Id__c": f"s{i}", "LastName": "x" * 50, "Email": f"s{i}@mail.com"} for i in range(100)]
    monkeypatch.setattr(module, "UPLOAD_BYTES", 2_000)  # a batch bigger than one upload is split into jobs
    before = len(salesforce.jobs)
    assert dest.send(batch_of("insert", records)).rejected == {}
    jobs = _jobs(salesforce, before)
    assert len(jobs) >= 4 and all(len(job["uploads"][0]) <= 2_000 for job in jobs)
    assert sum(job["processed"] for job in jobs) == 100
    assert {f"s{i}" for i in range(100)} <= salesforce.by_external_id("Person__c").keys()

    monkeypatch.setattr(module, "UPLOAD_BYTES", 100_000_000)
    salesforce.upload_limit = 1_000  # base64 bytes: Salesforce refuses the upload with 413
    try:
        rejected = dest.send(batch_of("insert", records[:30])).rejected
    finally:
        salesforce.upload_limit = 150 * 1024 * 1024
    assert set(rejected) == set(range(30))
    assert rejected[0].startswith("HTTP 413: EXCEEDED_MAX_SIZE: Job data exceeds the maximum size")
    assert list(salesforce.jobs.values())[-1]["state"] == "Aborted"  # the refused job does not linger open


def test_job_failures_timeouts_and_limits_map_to_transient_or_terminal(salesforce):
    dest = _dest(salesforce, object="Person__c")
    records = [{"External_Id__c": f"t{i}", "LastName": "T"} for i in range(3)]
    salesforce.fail_job = (0, "InternalServerError : UNABLE_TO_LOCK_ROW")  # failed before processing a row
    with pytest.raises(Transient, match="failed before processing any row: InternalServerError"):
        dest.send(batch_of("insert", records))
    assert dest.send(batch_of("insert", records)).rejected == {}  # sent again as a new job

    salesforce.polls = 10_000
    slow = _dest(salesforce, object="Person__c", poll_timeout=0.05)
    try:
        with pytest.raises(Transient, match="still (UploadComplete|InProgress) after 0 s; aborted"):
            slow.send(batch_of("insert", records))
    finally:
        salesforce.polls = 2
    assert list(salesforce.jobs.values())[-1]["state"] == "Aborted"

    jobs = len(salesforce.jobs)
    salesforce.get_faults.extend([(503, {}), (429, {"Retry-After": "0.05"}), (502, {})])
    assert dest.send(batch_of("update", records)).rejected == {}  # polls and result reads retried in place
    assert len(salesforce.jobs) == jobs + 1 and not salesforce.get_faults  # the job was not submitted twice

    salesforce.fail_next(1, 403)
    with pytest.raises(Terminal, match="API request allocation is used up .HTTP 403: REQUEST_LIMIT_EXCEEDED"):
        dest.send(batch_of("insert", records))
    with pytest.raises(Terminal, match="refused to create the upsert job on Nope__c .HTTP 400: INVALIDJOB: Unable"):
        _dest(salesforce, object="Nope__c").send(batch_of("insert", records))
    with pytest.raises(Terminal, match="HTTP 400: INVALIDJOB: External ID field LastName is not an External ID"):
        _dest(salesforce, external_id_field="LastName").send(batch_of("insert", [{"LastName": "x"}]))
    clear = dest.send(batch_of("clear", [{"External_Id__c": None, "LastName": None}])).rejected
    assert "on_delete clear needs External_Id__c mapped from the primary key" in clear[0]


def test_oauth_client_credentials_and_a_token_that_expires_during_the_run(salesforce):
    config = {"base_url": salesforce.url, "object": "Person__c", "external_id_field": "External_Id__c",
              "poll_interval": 0.01, "client_id": salesforce.client_id, "client_secret": salesforce.client_secret}
    dest = REGISTRY["salesforce"]("sf", config, "s", "r")
    dest.open()
    assert dest.token == salesforce.token and salesforce.token_requests == 1
    old = salesforce.token
    salesforce.token = "00DFAKE000000001!AQ0AQRotatedToken"  # the session expires: 401, a new token, sent again
    try:
        assert dest.send(batch_of("insert", [{"External_Id__c": "o1", "LastName": "O"}])).rejected == {}
        assert salesforce.token_requests == 2 and dest.token == salesforce.token
        refresh = REGISTRY["salesforce"]("sf", {**config, "refresh_token": salesforce.refresh_token}, "s", "r")
        refresh.open()
        assert refresh.token == salesforce.token
    finally:
        salesforce.token = old
    bad = REGISTRY["salesforce"]("sf", {**config, "client_secret": "wrong-secret"}, "s", "r")
    with pytest.raises(Terminal, match=r"could not get an access token \(HTTP 400: invalid_client: invalid client"):
        bad.open()


def test_the_fake_enforces_the_bulk_api_contract(salesforce):
    api = f"{salesforce.url}/services/data/v62.0"
    auth = {"Authorization": f"Bearer {salesforce.token}"}
    denied = requests.get(f"{api}/jobs/ingest/x", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert denied.status_code == 401 and denied.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    spec = {"object": "Contact", "operation": "upsert", "externalIdFieldName": "External_Id__c", "contentType": "CSV",
            "lineEnding": "LF"}

    def job() -> str:
        created = requests.post(f"{api}/jobs/ingest", json=spec, headers=auth, timeout=5)
        assert created.status_code == 200 and created.json()["state"] == "Open"
        return created.json()["id"]

    def upload(job_id, data: bytes, kind="text/csv"):
        return requests.put(f"{api}/jobs/ingest/{job_id}/batches", data=data, timeout=5,
                            headers={**auth, "Content-Type": kind})

    def close(job_id):
        return requests.patch(f"{api}/jobs/ingest/{job_id}", json={"state": "UploadComplete"}, headers=auth, timeout=5)

    def finish(job_id) -> dict:
        for _ in range(10):
            info = requests.get(f"{api}/jobs/ingest/{job_id}", headers=auth, timeout=5).json()
            if info["state"] in ("JobComplete", "Failed"):
                return info
        raise AssertionError(info)

    one = job()
    assert upload(one, b'{"a": 1}', "application/json").status_code == 400  # job data is CSV only
    assert upload(one, b"External_Id__c,LastName\nc1,C\n").status_code == 201
    assert upload(one, b"External_Id__c,LastName\nc2,C\n").status_code == 201
    twice = close(one)  # one upload per job
    assert twice.status_code == 400 and "Found multiple contents" in twice.json()[0]["message"]

    two = job()
    assert upload(two, b"LastName\nC\n").status_code == 201 and close(two).status_code == 200
    assert upload(two, b"LastName\nD\n").status_code == 400  # a closed job takes no more data
    assert "Field name not provided: External_Id__c" in finish(two)["errorMessage"]
    three = job()
    assert upload(three, b"External_Id__c,LastName\r\nc3,C\r\n").status_code == 201 and close(three).ok
    assert "LineEnding is invalid" in finish(three)["errorMessage"]
    salesforce.upload_limit = 100
    try:
        four = job()
        big = b"External_Id__c\n" + b"c4\n" * 30
        assert len(base64.b64encode(big)) > 100 and upload(four, big).status_code == 413
    finally:
        salesforce.upload_limit = 150 * 1024 * 1024


def test_csv_quoting_values_and_soql_escaping_round_trip(salesforce):
    dest = _dest(salesforce, object="Person__c")
    awkward = 'O\'Brien, "Jr"\nsecond line ünïcødé'
    records = [{"External_Id__c": "it's-1", "LastName": awkward, "Plan__c": True, "Score__c": 1.5,
                "Note__c": dt.date(2026, 11, 22)},
               {"External_Id__c": "back\\slash,2", "LastName": "", "Plan__c": False, "Score__c": 7,
                "Note__c": {"a": [1, 2]}}]
    assert dest.send(batch_of("insert", records)).rejected == {}
    held = salesforce.by_external_id("Person__c")
    assert held["it's-1"] == {"LastName": awkward, "Plan__c": "true", "Score__c": "1.5", "Note__c": "2026-11-22"}
    assert held["back\\slash,2"] == {"Plan__c": "false", "Score__c": "7", "Note__c": '{"a":[1,2]}'}
    assert dest.send(batch_of("delete", records)).rejected == {}  # quotes and backslashes escaped in the SOQL
    assert not {"it's-1", "back\\slash,2"} & salesforce.by_external_id("Person__c").keys()
    assert dest.send(batch_of("delete", records)).rejected == {}  # already gone: nothing to do
