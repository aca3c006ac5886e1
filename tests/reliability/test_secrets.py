"""Secrets: every CLI command and every failure path, with recognisable secrets in dbt_studio.yml through
env_var — in headers, a URL query string, a DSN, an API key, the dbt Cloud token and webhook secret — and not one
of them may appear in any output line, --json report, state table, file under target/ or logs/, or exception.

Failure paths: a destination refusing the credentials (401), one that is unreachable, one that answers 404 to a
URL carrying the secret, one that quotes the request (URL and Authorization header) back in its error, a
PostgreSQL destination that cannot connect, a config value that is not a number, a missing env var, an
unreadable dbt_studio.yml, a terminal error mid-run, and library exceptions.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests
from fakes.slack import FakeSlack
from fault_sink import Fault, FaultSink
from state_reader import StateReader

import sync_runner.sync.engine
import sync_runner.sync.orchestrate
from sync_runner.cli import main
from sync_runner.sync.engine import Options, run_syncs

from helpers.cli_process import run_cli_process
from helpers.sync_project import PROJECT, SyncProject, person

SECRET = "sk-live-RELIABILITY-7f3a91c2e5d4"  # the sink's token: the `ok` destination authenticates with it
WRONG = "rk-test-RELIABILITY-WRONG-0b1c2d3e"  # a wrong credential: refused with 401
SECRETS = (SECRET, WRONG)
MAPPINGS = {"id": "user_id", "email": "email", "plan": "plan", "score": "score"}
SYNCS = {  # sync -> destination
    "s_ok": "ok", "s_denied": "denied", "s_unreachable": "unreachable", "s_echo": "echo", "s_404": "gone",
    "s_pg": "pg", "s_braze": "braze",
}


@dataclass(frozen=True)
class QuickOptions(Options):
    """The CLI's options with short retry delays: an unreachable destination fails in well under a second."""

    base_delay: float = 0.01
    max_attempts: int = 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(sink: FaultSink, dead: int, slack: FakeSlack) -> str:
    def http(name: str, url: str, var: str = "REL_SECRET") -> list[str]:
        return [f"  {name}:", "    type: http", f"    url: \"{url}\"",
                f"    headers: {{Authorization: \"Bearer {{{{ env_var('{var}') }}}}\"}}",
                "    results_path: results", "    timeout: 5"]

    key = "?key={{ env_var('REL_SECRET') }}"
    lines = ["destinations:",
             *http("ok", f"{sink.url}/ok{key}"),
             *http("denied", f"{sink.url}/denied", "REL_WRONG"),
             *http("unreachable", f"http://127.0.0.1:{dead}/hook{key}"),
             *http("echo", f"{sink.url}/echo{key}"),
             *http("gone", f"{sink.url}/gone{key}"),
             "  pg:", "    type: postgres",
             f"    dsn: \"host=127.0.0.1 port={dead} user=sync password={{{{ env_var('REL_SECRET') }}}} dbname=x "
             "connect_timeout=2\"",
             "    table: people", "    key_column: id",
             "  braze:", "    type: braze", "    api_key: \"{{ env_var('REL_WRONG') }}\"",
             f"    base_url: {sink.url}/braze",
             "dbt_cloud:", "  account_id: 1", "  job_ids: [1]", f"  base_url: http://127.0.0.1:{dead}",
             "  token_env: REL_SECRET", "  webhook_secret_env: REL_WRONG",
             # alerts of every failure: to a live Slack webhook, and to a Slack URL and an SMTP server that are
             # down (their errors quote the URL with its secret path, and the login)
             "alerts:", "  channels:",
             f"    live: {{type: slack, url: \"{slack.url}/services/T1/B1/{{{{ env_var('REL_SECRET') }}}}\"}}",
             f"    down: {{type: slack, url: \"http://127.0.0.1:{dead}/services/T1/B1/{key[5:]}\"}}",
             f"    mail: {{type: email, host: 127.0.0.1, port: {dead}, username: u, from: a@example.com,",
             "            to: b@example.com, password: \"{{ env_var('REL_SECRET') }}\"}",
             "  rules:", "    - channels: [live, down, mail]", "      rejected_percent: 10"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module", autouse=True)
def _dbt_log_file_on():
    """dbt writes logs/dbt.log here as it does for users (the suite turns it off elsewhere, see conftest), so the
    files checked below include it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_LOG_LEVEL_FILE", "debug")
        yield


@pytest.fixture(scope="module")
def env():
    saved = {k: os.environ.get(k) for k in ("REL_SECRET", "REL_WRONG")}
    os.environ.update(REL_SECRET=SECRET, REL_WRONG=WRONG)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def sink(env):
    server = FaultSink(token=SECRET)
    server.script("echo", lambda n, keys: Fault("echo", status=400))
    server.script("gone", lambda n, keys: Fault("status", status=404))
    yield server
    server.close()


@pytest.fixture(scope="module")
def slack(env):
    server = FakeSlack(SECRET)
    yield server
    server.close()


@pytest.fixture(scope="module")
def secret_project(new_project, tmp_path_factory, sink, slack):
    sp = SyncProject(new_project("duckdb", name="secrets", source=PROJECT), tmp_path_factory.mktemp("secrets"))
    sp.dead_port = _closed_port()
    sp.config = _config(sink, sp.dead_port, slack)
    sp.destinations(sp.config)
    syncs = [{"name": name, "destination": dest, "mode": "mirror",
              "mappings": {"external_id": "user_id", "email": "email"} if dest == "braze" else MAPPINGS}
             for name, dest in SYNCS.items()]
    sp.build({f"u{i}": person(i) for i in range(4)}, syncs)
    sp.build_vars = json.dumps({"syncs": syncs, "primary_key": "user_id"})
    return sp


class Transcript:
    """Everything the commands printed, and how each ended."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.codes: dict[str, int] = {}

    def add(self, what: str, text: str) -> None:
        self.texts.append((what, text))

    def leaks(self) -> list[str]:
        return [what for what, text in self.texts if any(s in text for s in SECRETS)]


def _cli(capsys, monkeypatch, transcript: Transcript, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["dbt-studio", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is a finding: its text is checked too
        import traceback

        code = -1
        transcript.add(f"{' '.join(args)} (exception)", "".join(traceback.format_exception(exc)))
    captured = capsys.readouterr()
    name = " ".join(a for a in args if not a.startswith("/"))
    transcript.add(name, captured.out + captured.err)
    transcript.codes[name] = code
    return code, captured.out, captured.err


def test_no_secret_in_any_output_state_table_file_or_exception(secret_project, sink, slack, capsys, monkeypatch,
                                                                tmp_path):
    sp = secret_project
    root = str(sp.p.root)
    where = ["--project-dir", root, "--profiles-dir", root]
    monkeypatch.setattr(sync_runner.sync.engine, "Options", QuickOptions)
    monkeypatch.setattr(sync_runner.sync.orchestrate, "Options", QuickOptions)
    t = Transcript()

    # every command, its --help, and --json where it has one
    _cli(capsys, monkeypatch, t, "--help")
    for command in ("generate", "demo", "sync", "plan", "build", "serve", "status", "validate", "destinations",
                    "schema", "audience", "audience preview", "debug"):
        _cli(capsys, monkeypatch, t, *command.split(), "--help")
    _cli(capsys, monkeypatch, t, "validate", *where)
    _cli(capsys, monkeypatch, t, "validate", "--json", *where)
    _cli(capsys, monkeypatch, t, "destinations")
    _cli(capsys, monkeypatch, t, "destinations", "--json")
    _cli(capsys, monkeypatch, t, "plan", *where)
    _cli(capsys, monkeypatch, t, "plan", "--json", *where)
    code, out, err = _cli(capsys, monkeypatch, t, "sync", *where)
    assert code == 1, t.texts[-2:]  # some syncs fail on purpose
    code, out, _ = _cli(capsys, monkeypatch, t, "sync", "--json", "--full-resync", *where)
    reports = {r["sync"]: r for r in json.loads(out)["syncs"]}
    # the record debugger: every destination's requests and responses captured, and the histories it prints
    _cli(capsys, monkeypatch, t, "sync", "--debug", "--full-resync", *where)
    _cli(capsys, monkeypatch, t, "sync", "--debug", "-s", "s_echo", "--keys", "u1,u2", "--full-resync", *where)
    for name in SYNCS:
        _cli(capsys, monkeypatch, t, "debug", name, "--key", "u1", *where)
    code, out, _ = _cli(capsys, monkeypatch, t, "debug", "s_ok", "--key", "u1", "--json", *where)
    sent = [h for h in json.loads(out) if h["event"] == "sent"]
    # the capture is real (the request went to a URL whose query held the secret) and redacted
    assert code == 0 and sent and all("/ok?key=****" in h["request"] for h in sent), out
    code, out, _ = _cli(capsys, monkeypatch, t, "debug", "s_echo", "--key", "u1", "--json", *where)
    assert any(h["event"] == "rejected" for h in json.loads(out))  # the sink quoted the request back: redacted
    _cli(capsys, monkeypatch, t, "status", *where)
    _cli(capsys, monkeypatch, t, "status", "--json", *where)
    _cli(capsys, monkeypatch, t, "schema", "--project-dir", root)
    _cli(capsys, monkeypatch, t, "schema", "--mermaid", "--project-dir", root)
    _cli(capsys, monkeypatch, t, "audience", "preview", "people", *where)
    _cli(capsys, monkeypatch, t, "generate", "--users", "3", "--out", str(tmp_path / "generated"))
    # `build`: dbt build (same vars, so the syncs stay declared), then the syncs of what it built
    code, out, err = _cli(capsys, monkeypatch, t, "build", "-s", "people", "--vars", sp.build_vars, *where)
    assert code == 1 and "s_denied" in out, (code, out, err)
    code, out, _ = _cli(capsys, monkeypatch, t, "build", "--json", "-s", "people", "--vars", sp.build_vars, *where)
    assert code == 1 and {r["sync"] for r in json.loads(out)["syncs"]} == set(SYNCS)

    # each failure path really failed the way it should (so the checks below looked at real failures)
    assert reports["s_ok"]["status"] == "success" and reports["s_ok"]["acknowledged"] == 4
    assert "refused the credentials (HTTP 401)" in reports["s_denied"]["message"]
    assert "ConnectionError" in reports["s_unreachable"]["message"]
    assert reports["s_echo"]["rejected"] == 4  # the sink quoted the request back as the reason
    assert "answered 404" in reports["s_404"]["message"] and "****" in reports["s_404"]["message"]
    assert reports["s_pg"]["status"] == "failed" and reports["s_braze"]["status"] == "failed"
    assert any(e["outcome"] == "echo 400" for e in sink.log["echo"])

    # config failures: a value that is not a number, a missing env var, dbt_studio.yml that is not YAML
    yml = sp.p.root / "dbt_studio.yml"
    # (a destination that cannot be configured fails only its own syncs: s_ok does not use REL_WRONG's, so exit 0)
    timeout_secret = sp.config.replace("    timeout: 5", "    timeout: \"{{ env_var('REL_SECRET') }}\"", 1)
    for variant, codes in ((timeout_secret, (1, 2)),
                           (sp.config.replace("env_var('REL_WRONG')", "env_var('REL_NOT_SET')"), (0,)),
                           (sp.config.replace("destinations:", "destinations: [" + SECRET, 1), (1, 2))):
        yml.write_text(variant)
        try:
            code, out, err = _cli(capsys, monkeypatch, t, "sync", "-s", "s_ok", *where)
            _cli(capsys, monkeypatch, t, "validate", *where)
        finally:
            yml.write_text(sp.config)
        assert code in codes and "Traceback" not in out + err, (code, out, err)

    # the library reports the syncs of a destination it cannot configure as failed, in one line without secrets
    yml.write_text(sp.config.replace("env_var('REL_WRONG')", "env_var('REL_NOT_SET')"))
    try:
        isolated = run_syncs(sp.p.root, sp.p.root, options=QuickOptions())
        t.add("library isolation", json.dumps([r.as_dict() for r in isolated], default=str))
    finally:
        yml.write_text(sp.config)
    assert any("REL_NOT_SET" in r.message and r.status != "success" for r in isolated)
    reports = run_syncs(sp.p.root, sp.p.root, options=QuickOptions(select=("s_echo", "s_denied", "s_404")))
    t.add("library reports", json.dumps([r.as_dict() for r in reports], default=str))

    # a fresh process (nothing remembered from the runs above): `dbt-studio sync --json`
    sp.p.release()
    fresh = run_cli_process("sync", "--json", *where, timeout=300, env=dict(os.environ))
    t.add("fresh process sync --json", fresh.stdout + fresh.stderr)
    assert fresh.returncode == 1 and json.loads(fresh.stdout)["syncs"]

    t.add("serve", _serve(sp))

    # every state table, every file the runs left under target/ and logs/
    with StateReader(sp.p) as reader:
        names = ["sync_runs", "sync_changelog", "sync_configs", "sync_locks", "sync_debug"]
        names += [f"{s}__{kind}" for s in SYNCS for kind in ("snapshot", "plan", "rejections")]
        for name in names:
            if reader.rows(f"select count(*) from information_schema.tables where table_schema = '{reader.schema}' "
                           f"and table_name = '{name}'")[0][0]:
                t.add(f"table {name}", repr(reader.rows(f"select * from {reader.table(name)}")))
        echo_reasons = reader.rows(f"select reason from {reader.table('s_echo__rejections')}")
    assert echo_reasons and all("****" in r[0] for r in echo_reasons)  # the reason is kept, the secret is not
    sp.p.release()
    files = [p for d in ("target", "logs") for p in (sp.p.root / d).rglob("*") if p.is_file()]
    assert any(p.name == "warehouse.duckdb" for p in files) and any(p.name == "dbt.log" for p in files)
    for path in files:
        data = path.read_bytes()
        t.add(f"file {path.relative_to(sp.p.root)}", "".join(s for s in SECRETS if s.encode() in data))

    # the alerts of those failures and rejections reached Slack (and were reported as not delivered by the others)
    alerts = [m["text"] for m in slack.messages]
    assert any("sync 's_404' failed" in a for a in alerts) and any("sync 's_echo' rejected" in a for a in alerts)
    assert any("****" in a for a in alerts)  # a reason that quoted the secret URL, redacted
    t.add("alerts received", "".join(b.decode() for b in slack.raw))
    assert all("alert not delivered to mail" in r.alerts[-1] for r in reports), [r.alerts for r in reports]

    assert t.leaks() == []
    assert all(code != -1 for code in t.codes.values()), {k: v for k, v in t.codes.items() if v == -1}
    tally = os.environ.get("RELIABILITY_TALLY")
    if tally:
        tables = sum(what.startswith("table ") for what, _ in t.texts)
        with open(tally, "a", encoding="utf-8") as fh:
            fh.write(f"secrets: outputs={len(t.texts)} cli_invocations={len(t.codes)} tables={tables} "
                     f"files={len(files)} exit_codes={sorted(set(t.codes.values()))}\n")


def _serve(sp: SyncProject) -> str:
    """`dbt-studio serve` in its own process: the dbt Cloud token and webhook secret come from env vars; hit every
    route (a webhook with a wrong signature, one signed right for a run whose artifacts cannot be downloaded)."""
    import hashlib
    import hmac

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", "from sync_runner.cli import main; main()", "serve",
                             "--project-dir", str(sp.p.root), "--profiles-dir", str(sp.p.root), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    answers = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url + "/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        body = json.dumps({"eventId": "e1", "eventType": "job.run.completed", "accountId": 1,
                           "data": {"jobId": "1", "runId": "7", "runStatus": "Success", "runStatusCode": 10,
                                    "accountId": "1"}}).encode()
        signature = hmac.new(WRONG.encode(), body, hashlib.sha256).hexdigest()
        answers.append(requests.post(url + "/webhooks/dbt-cloud", data=body, headers={"Authorization": "x"},
                                     timeout=10))
        answers.append(requests.post(url + "/webhooks/dbt-cloud", data=body, headers={"Authorization": signature},
                                     timeout=10))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the run fails: its artifacts cannot be downloaded
            runs = requests.get(url + "/runs", timeout=10)
            if any(r.get("status") in ("failed", "success") for r in runs.json()["runs"]):
                break
            time.sleep(0.2)
        answers += [runs, requests.get(url + "/healthz", timeout=10)]
        assert [a.status_code for a in answers[:2]] == [401, 202]
        assert runs.json()["runs"][0]["status"] == "failed"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    return output + "".join(a.text + json.dumps(dict(a.headers)) for a in answers)
