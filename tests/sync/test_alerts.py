"""Alerts end to end, on DuckDB and Snowflake (fakesnow): real syncs to a local webhook destination, alerts to a
local fake Slack incoming webhook, a generic JSON webhook, a real SMTP server on loopback (aiosmtpd, STARTTLS with
a self-signed certificate, a login) and a channel that is down.

The expectation is written by hand from the documented rules: which events each run raises (failure, rejections
over the limit, slow, recovery after a failure), each sent once per channel even when two rules name it.
"""

from __future__ import annotations

import os
import re
import socket

import pytest
from fakes.http_sink import Sink
from fakes.slack import FakeSlack
from fakes.smtp import SmtpServer

from sync_runner.core.errors import UserError
from sync_runner.sync.engine import run_syncs

from helpers import ADAPTERS
from helpers.sync_project import PROJECT, SyncProject, person

SLACK_SECRET = "XoXb-ALERTS-slack-4e1d9a77"
SMTP_PASSWORD = "smtp-ALERTS-pw-90ab21"
HOOK_TOKEN = "hook-ALERTS-token-5c3e"
SINK_TOKEN = "sink-ALERTS-token-77aa"
SECRETS = (SLACK_SECRET, SMTP_PASSWORD, HOOK_TOKEN, SINK_TOKEN)
MAPPINGS = {"id": "user_id", "email": "email", "plan": "plan"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    os.environ.update(ALERT_SLACK=SLACK_SECRET, ALERT_SMTP_PW=SMTP_PASSWORD, ALERT_HOOK=HOOK_TOKEN,
                      ALERT_SINK=SINK_TOKEN, ALERT_SINK_WRONG="not-the-token")
    slack = FakeSlack(SLACK_SECRET, json_token=HOOK_TOKEN)
    smtp = SmtpServer(tmp_path_factory.mktemp("smtp"), "alerts@example.com", SMTP_PASSWORD)
    sink = Sink(token=SINK_TOKEN)
    yield slack, smtp, sink
    slack.close()
    smtp.close()
    sink.close()


def _config(slack: FakeSlack, smtp: SmtpServer, sink: Sink, token_var: str = "ALERT_SINK") -> str:
    return f"""\
destinations:
  hook:
    type: http
    url: {sink.url}/records
    headers: {{Authorization: "Bearer {{{{ env_var('{token_var}') }}}}"}}
    results_path: results
alerts:
  channels:
    team_slack:
      type: slack
      url: "{slack.url}/services/T0001/B0001/{{{{ env_var('ALERT_SLACK') }}}}"
    ops_hook:
      type: webhook
      url: {slack.url}/hooks/ops
      headers: {{Authorization: "Bearer {{{{ env_var('ALERT_HOOK') }}}}"}}
    oncall_email:
      type: email
      host: 127.0.0.1
      port: {smtp.port}
      ca_file: {smtp.cert}
      username: alerts@example.com
      password: "{{{{ env_var('ALERT_SMTP_PW') }}}}"
      from: dbt-studio@example.com
      to: [oncall@example.com, data@example.com]
      timeout: 5
    down:
      type: slack
      url: "http://127.0.0.1:{_closed_port()}/services/T/B/{{{{ env_var('ALERT_SLACK') }}}}"
      timeout: 2
  rules:
    - channels: [team_slack, oncall_email, ops_hook, down]
      syncs: ["people_*"]
      rejected_percent: 20
    - channels: [team_slack]
      syncs: [nobody_else]
      on_recovery: true
"""


@pytest.fixture(scope="module", params=ADAPTERS)
def sp(request, new_project, tmp_path_factory):
    project = new_project(request.param, name="alerts", source=PROJECT)
    return SyncProject(project, tmp_path_factory.mktemp(f"alerts_{request.param}"))


def test_failure_rejections_slow_and_recovery_reach_every_channel_once(sp, channels):
    slack, smtp, sink = channels
    for kept in (slack.messages, slack.hooks, slack.raw, smtp.messages, smtp.raw, smtp.logins):
        kept.clear()
    sp.destinations(_config(slack, smtp, sink))
    # the sync's own rule: every run is "slow" (limit 0 s); it names Slack again for failures (sent once)
    syncs = [{"name": "people_hook", "destination": "hook", "mode": "upsert", "mappings": MAPPINGS,
              "alerts": [{"channels": ["team_slack"], "slower_than_seconds": 0, "on_recovery": False}]}]
    rows = {f"u{i}": person(i) for i in range(10)}
    for i in (1, 2, 3):
        rows[f"u{i}"]["email"] = f"invalid{i}@mail"  # the sink refuses these: 3 of 10 sent = 30% > 20%
    sp.build(rows, syncs)

    first = sp.sync()["people_hook"]
    assert (first.status, first.sent, first.rejected) == ("success", 10, 3)

    sp.destinations(_config(slack, smtp, sink, token_var="ALERT_SINK_WRONG"))  # the destination refuses auth
    second = sp.sync()["people_hook"]
    assert second.status == "failed" and "401" in second.message

    sp.destinations(_config(slack, smtp, sink))
    for i in (1, 2, 3):
        rows[f"u{i}"]["email"] = f"fixed{i}@mail.com"
    sp.build(rows, syncs)
    third = sp.sync()["people_hook"]
    assert (third.status, third.rejected, third.acknowledged) == ("success", 0, 3)

    # which events went where, in order (events of one run: failure, rejections, slow, recovery)
    project_rule = [("rejections", 1), ("failure", 2), ("recovery", 3)]
    slack_expected = [("rejections", 1), ("slow", 1), ("failure", 2), ("slow", 2), ("slow", 3), ("recovery", 3)]
    titles = {"failure": "failed", "rejections": "rejected too many rows", "slow": "was slow",
              "recovery": "recovered"}
    runs = {1: first, 2: second, 3: third}

    def expected_text(kind: str, run: int) -> list[str]:
        r = runs[run]
        return [f"dbt-studio: sync 'people_hook' {titles[kind]}", "model 'people' -> destination 'hook'",
                f"sent {r.sent}, acknowledged {r.acknowledged}, rejected {r.rejected}"]

    assert len(slack.messages) == len(slack_expected)
    for message, (kind, run) in zip(slack.messages, slack_expected, strict=True):
        assert all(part in message["text"] for part in expected_text(kind, run)), (kind, run, message)
    assert "30.0% of 10 rows sent were rejected (limit 20%)" in slack.messages[0]["text"]
    assert "refused the credentials (HTTP 401)" in slack.messages[2]["text"]
    assert "the previous run failed" in slack.messages[5]["text"]

    assert [(h["event"], h["run_id"]) for h in slack.hooks] == [(k, runs[n].run_id) for k, n in project_rule]
    assert [(h["sent"], h["acknowledged"], h["rejected"]) for h in slack.hooks] == [
        (runs[n].sent, runs[n].acknowledged, runs[n].rejected) for _, n in project_rule]
    assert {(h["sync"], h["model"], h["destination"]) for h in slack.hooks} == {("people_hook", "people", "hook")}
    assert slack.hooks[0]["planned"] == {"insert": 10, "update": 0, "delete": 0, "clear": 0}

    assert [m["Subject"] for m in smtp.messages] == [f"[dbt-studio] {k}: sync people_hook" for k, _ in project_rule]
    assert all(m["To"] == "oncall@example.com, data@example.com" for m in smtp.messages)
    assert smtp.logins == ["alerts@example.com"] * 3  # logged in (after STARTTLS: aiosmtpd refuses AUTH before)
    for message, (kind, run) in zip(smtp.messages, project_rule, strict=True):
        body = message.get_payload(decode=True).decode()
        assert all(part in body for part in expected_text(kind, run))

    # the channel that is down: logged and reported, and the syncs still succeeded
    for report, kinds in ((first, ["rejections"]), (second, ["failure"]), (third, ["recovery"])):
        down = [line for line in report.alerts if "down" in line]
        assert [line.split()[0] for line in down] == kinds and all("not delivered" in x for x in down), report.alerts
        assert all("sent to" in line for line in report.alerts if "down" not in line)

    everything = b"".join(slack.raw) + b"".join(smtp.raw)
    text = " ".join(line for r in runs.values() for line in r.alerts)
    assert not [s for s in SECRETS if s.encode() in everything or s in text]
    assert "****" in text  # the down channel's URL (its secret path) was in the error, redacted


def test_a_misspelt_rule_key_is_an_error_that_names_it(sp, channels):
    slack, smtp, sink = channels
    sp.destinations(_config(slack, smtp, sink))
    sp.build({"u1": person(1)}, [{"name": "people_hook", "destination": "hook", "mappings": MAPPINGS}])
    sp.destinations(_config(slack, smtp, sink).replace("rejected_percent: 20", "rejected_pct: 20"))
    with pytest.raises(UserError, match=r"alerts.rules\[0\].rejected_pct: unknown key 'rejected_pct' \(did you "
                                        r"mean 'rejected_percent'\?\)"):
        run_syncs(sp.p.root, sp.p.root)
    sp.destinations(_config(slack, smtp, sink).replace("[team_slack, oncall_email", "[team_slak, oncall_email"))
    with pytest.raises(UserError, match=r"alerts.rules\[0\].channels: unknown channel 'team_slak' \(did you mean "
                                        r"'team_slack'\?\)"):
        run_syncs(sp.p.root, sp.p.root)
    sp.destinations(_config(slack, smtp, sink))
    syncs = [{"name": "people_hook", "destination": "hook", "mappings": MAPPINGS,
              "alerts": [{"channels": ["oncall"], "on_failur": True}]}]
    sp.build({"u1": person(1)}, syncs)
    [report] = run_syncs(sp.p.root, sp.p.root)  # the sync is skipped with the mistake
    assert report.status == "skipped" and re.search(
        r"syncs\[0\].alerts\[0\].on_failur: unknown key 'on_failur' \(did you mean 'on_failure'\?\)", report.message)
