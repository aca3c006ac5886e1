"""`dbt-studio serve`: the real server (uvicorn in a thread on a loopback port) receiving dbt Cloud webhooks,
with a fake dbt Cloud Admin API serving the artifacts of a real build of a small project.

The build behind run 101 made `people` and failed `fragile` (tests/projects/sync plus the fragile model of
test_orchestrate), so a successful-job webhook for it must sync `people` only.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import replace

import pytest
import requests

from sync_runner.core.errors import UserError
from sync_runner.serve.webhook import WEBHOOK_PATH, Service, create_app, load_settings
from sync_runner.sync.config import load_dbt_cloud

from helpers.sync_project import PROJECT, add_fragile_model, dbt_vars, file_ops

WEBHOOK_SECRET = "whsec-7f3a-RECOGNISABLE-WEBHOOK-SECRET"
SERVICE_TOKEN = "dbtc_9b2e-RECOGNISABLE-SERVICE-TOKEN"
ACCOUNT, JOB, OTHER_JOB = "70403", "555", "556"


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="info", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def logs():
    """Every log record of the module, formatted (the server's, uvicorn's, the engine's)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture(scope="module")
def cloud():
    from fakes.dbt_cloud import DbtCloud

    fake = DbtCloud(ACCOUNT, SERVICE_TOKEN)
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def env():
    saved = {k: os.environ.get(k) for k in ("DBT_CLOUD_WEBHOOK_SECRET", "DBT_CLOUD_API_TOKEN")}
    os.environ["DBT_CLOUD_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    os.environ["DBT_CLOUD_API_TOKEN"] = SERVICE_TOKEN
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def project(new_project, tmp_path_factory, cloud, env):
    """Built once (people ok, fragile broken); its artifacts are dbt Cloud's run 101."""
    p = new_project("duckdb", name="serve", source=PROJECT)
    p.out = tmp_path_factory.mktemp("serve_out")
    add_fragile_model(p.root, p.out)
    p.dbt("build", "--vars", dbt_vars(break_fragile=True), check=False)
    run_101 = tmp_path_factory.mktemp("cloud_run_101")
    for name in ("manifest.json", "run_results.json"):
        shutil.copy(p.root / "target" / name, run_101 / name)
    cloud.add_run("101", run_101)
    with (p.root / "dbt_studio.yml").open("a", encoding="utf-8") as fh:
        fh.write(f"dbt_cloud:\n  account_id: {ACCOUNT}\n  job_ids: [{JOB}]\n  base_url: {cloud.url}\n")
    return p


@pytest.fixture(scope="module")
def server(project, logs):
    settings = load_settings(project.root, project.root)
    live = LiveServer(create_app(Service(settings)))
    live.settings = settings
    yield live
    live.close()


def event(run_id: str, job_id: str = JOB, status: str = "Success", code: int = 10, event_type="job.run.completed",
          event_id: str | None = None) -> bytes:
    body = {"accountId": int(ACCOUNT), "eventId": event_id or uuid.uuid4().hex, "eventType": event_type,
            "webhookName": "dbt-studio", "webhookId": "wsu_1",
            "timestamp": "2026-11-22T17:00:00Z",
            "data": {"jobId": job_id, "jobName": "nightly", "runId": run_id, "environmentId": "1",
                     "accountId": ACCOUNT, "runStatus": status, "runStatusCode": code,
                     "runStatusMessage": "None", "runReason": "scheduled"}}
    return json.dumps(body).encode()


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(server, body: bytes, signature: str | None = "sign") -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        signature = sign(body)
    if signature is not None:
        headers["Authorization"] = signature
    return requests.post(server.url + WEBHOOK_PATH, data=body, headers=headers, timeout=10)


def runs(server) -> list[dict]:
    return requests.get(server.url + "/runs", timeout=10).json()["runs"]


def wait_for(server, event_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = next((r for r in runs(server) if r["event_id"] == event_id), None)
        if record and record["status"] in ("success", "failed", "ignored"):
            return record
        time.sleep(0.1)
    raise AssertionError(f"event {event_id} not processed: {runs(server)}")


def test_healthz(server):
    answer = requests.get(server.url + "/healthz", timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"


def test_signed_success_webhook_syncs_the_models_that_succeeded_in_that_run(server, project, cloud, capfd):
    body = event("101")
    event_id = json.loads(body)["eventId"]
    started = time.monotonic()
    answer = post(server, body)
    assert answer.status_code == 202 and time.monotonic() - started < 2
    assert answer.json() == {"status": "queued", "event_id": event_id, "run_id": "101"}
    record = wait_for(server, event_id)
    assert record["status"] == "success", record
    syncs = {s["sync"]: s for s in record["syncs"]}
    assert (syncs["people_out"]["status"], syncs["people_out"]["acknowledged"]) == ("success", 1)
    assert syncs["fragile_out"]["status"] == "skipped"  # it failed in that run
    assert len(file_ops(project.out, "people_out")) == 1 and not file_ops(project.out, "fragile_out")
    assert sorted(cloud.artifact_requests("101")) == [
        f"/api/v2/accounts/{ACCOUNT}/runs/101/artifacts/manifest.json",
        f"/api/v2/accounts/{ACCOUNT}/runs/101/artifacts/run_results.json"]
    assert {r["authorization"] for r in cloud.requests} == {f"Token {SERVICE_TOKEN}"}
    assert (server.settings.runs_dir / "run_101" / "manifest.json").is_file()
    out, err = capfd.readouterr()
    assert SERVICE_TOKEN not in out + err and WEBHOOK_SECRET not in out + err


def test_unsigned_wrongly_signed_and_malformed_webhooks_are_refused(server):
    before = len(runs(server))
    body = event("101")
    assert post(server, body, signature=None).status_code == 401
    assert post(server, body, signature="").status_code == 401
    assert post(server, body, signature=sign(body, "another-secret")).status_code == 401
    assert post(server, body, signature=sign(body + b" ")).status_code == 401  # signed another body
    assert post(server, body, signature="é" * 64).status_code == 401
    assert post(server, b"{not json").status_code == 400
    assert post(server, b'["a list"]').status_code == 400
    assert post(server, json.dumps({"eventType": "job.run.completed", "data": {}}).encode()).status_code == 400
    refused = post(server, body, signature=None)
    assert "signature" in refused.json()["error"]
    assert len(runs(server)) == before  # nothing queued or recorded


def test_a_replayed_event_is_not_queued_again(server, cloud):
    body = event("101")
    event_id = json.loads(body)["eventId"]
    downloads = len(cloud.artifact_requests("101"))
    assert post(server, body).status_code == 202
    replay = post(server, body)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    wait_for(server, event_id)
    assert post(server, body).json()["status"] == "duplicate"  # also once it is done
    assert [r["event_id"] for r in runs(server)].count(event_id) == 1
    assert len(cloud.artifact_requests("101")) == downloads + 2


def test_failed_cancelled_and_unconfigured_runs_sync_nothing(server, project, cloud):
    files = sorted(project.out.iterdir())
    cases = [event("102", status="Error", code=20), event("103", status="Cancelled", code=30),
             event("104", job_id=OTHER_JOB), event("105", event_type="job.run.started", code=3, status="Running")]
    for body in cases:
        answer = post(server, body)
        assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.json()
    recorded = {r["run_id"]: r for r in runs(server)}
    assert recorded["102"]["status"] == "ignored" and "ended 'Error'" in recorded["102"]["message"]
    assert "not one of the configured job_ids" in recorded["104"]["message"]
    assert not any(cloud.artifact_requests(run) for run in ("102", "103", "104", "105"))
    assert sorted(project.out.iterdir()) == files


def test_missing_or_unreachable_artifacts_are_a_recorded_failure(server, project, cloud):
    body = event("404")  # dbt Cloud has no such run
    record = wait_for(server, json.loads(body)["eventId"]) if post(server, body).status_code == 202 else None
    assert record["status"] == "failed" and "HTTP 404" in record["message"], record
    cloud.fail["500"] = 500
    body = event("500")
    assert post(server, body).status_code == 202
    record = wait_for(server, json.loads(body)["eventId"])
    assert record["status"] == "failed" and "HTTP 500" in record["message"]

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = replace(server.settings, cloud=replace(server.settings.cloud, base_url=dead))
    other = LiveServer(create_app(Service(settings)))
    try:
        body = event("101")
        assert post(other, body).status_code == 202
        record = wait_for(other, json.loads(body)["eventId"])
        assert record["status"] == "failed" and "cannot download manifest.json" in record["message"]
        assert requests.get(other.url + "/healthz", timeout=10).status_code == 200  # still up
    finally:
        other.close()
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200


def test_no_secret_in_logs_responses_or_runs(server, logs):
    answers = [post(server, event("101", event_id="fixed-event")), post(server, event("101", event_id="fixed-event")),
               post(server, event("102"), signature=WEBHOOK_SECRET), post(server, b"{", signature=sign(b"{"))]
    texts = [a.text + json.dumps(dict(a.headers)) for a in answers]
    texts.append(requests.get(server.url + "/runs", timeout=10).text)
    texts.append(requests.get(server.url + "/healthz", timeout=10).text)
    wait_for(server, "fixed-event")
    texts.append(logs.getvalue())
    assert "queued" in logs.getvalue() and "dbt_studio.server" in logs.getvalue()  # the logs were captured
    for text in texts:
        assert WEBHOOK_SECRET not in text and SERVICE_TOKEN not in text


@pytest.mark.parametrize(("block", "environ", "error"), [
    ("account_id: 1\n  token: dbtc_literal", {}, "dbt_cloud.token: unknown key 'token'"),
    ("account_id: abc", {}, "dbt_cloud.account_id: must be an integer"),
    ("account_id: 1\n  job_ids: [x]", {}, "dbt_cloud.job_ids[0]: must be a job id (an integer), not 'x'"),
    ("account_id: 1\n  base_url: cloud.getdbt.com", {}, "dbt_cloud.base_url: must be an http or https URL"),
    ("account_id: 1", {"DBT_CLOUD_WEBHOOK_SECRET": "s3cr3t"}, "token_env: env var 'DBT_CLOUD_API_TOKEN' is not set"),
    ("account_id: 1\n  webhook_secret_env: HOOK", {"DBT_CLOUD_API_TOKEN": "t0k3n"},
     "webhook_secret_env: env var 'HOOK' is not set"),
])
def test_dbt_cloud_config_errors_are_one_line(tmp_path, block, environ, error):
    (tmp_path / "dbt_studio.yml").write_text(f"dbt_cloud:\n  {block}\n", encoding="utf-8")
    with pytest.raises(UserError) as raised:
        load_dbt_cloud(tmp_path, tmp_path, environ)
    assert error in str(raised.value) and "\n" not in str(raised.value)


def test_dbt_cloud_config_defaults(tmp_path):
    (tmp_path / "dbt_studio.yml").write_text("dbt_cloud:\n  account_id: 12\n  job_ids: 7\n", encoding="utf-8")
    environ = {"DBT_CLOUD_API_TOKEN": "tok-unit-7781", "DBT_CLOUD_WEBHOOK_SECRET": "sec-unit-7781"}
    cloud = load_dbt_cloud(tmp_path, tmp_path, environ)
    assert (cloud.account_id, cloud.job_ids, cloud.base_url) == ("12", ("7",), "https://cloud.getdbt.com")
    assert "tok-unit-7781" not in repr(cloud) and "sec-unit-7781" not in repr(cloud)


def test_runs_are_processed_one_at_a_time(server, cloud):
    active, peak, calls = [0], [0], []
    lock = threading.Lock()

    def slow_sync(project_dir, profiles_dir, target, options):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        calls.append(options)
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return []

    other = LiveServer(create_app(Service(server.settings, sync_fn=slow_sync)))
    try:
        bodies = [event("101") for _ in range(3)]
        assert [post(other, body).status_code for body in bodies] == [202, 202, 202]
        records = [wait_for(other, json.loads(body)["eventId"]) for body in bodies]
    finally:
        other.close()
    assert [r["status"] for r in records] == ["success"] * 3 and peak[0] == 1
    assert all(o.only_built and o.artifacts_dir.endswith("run_101") for o in calls)
