"""The record debugger and test syncs, on DuckDB and Snowflake (fakesnow), against the local http sink.

A record the sink refuses once (and accepts when it comes again) and a batch that first meets a 503: the history
`dbt-studio debug` prints must say when the record was planned, each attempt at sending it with the payload and
the batch's request and response, the rejection and its reason, the retry on the next run, its acknowledgement
and commit, written out by hand here from what the test made happen. `--keys` sends and commits only the chosen
records.
"""

from __future__ import annotations

import json
import os

import pytest

from sync_runner.cli import main
from sync_runner.core.errors import UserError
from sync_runner.sync.engine import record_history

from helpers import ADAPTERS
from helpers.sync_project import MAPPINGS, PROJECT, SyncProject, person

TOKEN_VAR = "DEBUGGER_SINK_TOKEN"


@pytest.fixture(scope="module", params=ADAPTERS)
def sp(request, new_project, tmp_path_factory):
    project = new_project(request.param, name="debugger", source=PROJECT)
    return SyncProject(project, tmp_path_factory.mktemp(f"debugger_out_{request.param}"))


def _http(sink) -> str:
    os.environ[TOKEN_VAR] = sink.token
    return (f"destinations:\n  hook:\n    type: http\n    url: {sink.url}/records\n"
            f"    headers:\n      Authorization: \"Bearer {{{{ env_var('{TOKEN_VAR}') }}}}\"\n"
            "    results_path: results\n    batch_size: 50\n    concurrency: 1\n")


def _events(history: list[dict]) -> list[tuple]:
    return [(h["event"], h["op"], h["attempt"] if h["event"] == "sent" else None, h["reason"]) for h in history]


def test_a_records_history_across_a_rejection_and_a_retry(sp, http_sink, capsys, monkeypatch):
    http_sink.reset()
    http_sink.token = "debugger-token-1f9e3c"
    sp.destinations(_http(http_sink))
    rows = {f"u{i}": person(i) for i in range(5)}
    sync = {"name": "debugged", "destination": "hook", "mappings": MAPPINGS, "debug": True}
    sp.build(rows, [sync])
    http_sink.fail_next(1, 503)                               # the first attempt at the batch: 503, then a retry
    http_sink.reject_once["u3"] = "record locked by another import"
    first = sp.sync(base_delay=0.01)["debugged"]
    assert (first.acknowledged, first.rejected) == (4, 1)
    second = sp.sync(base_delay=0.01)["debugged"]             # u3 is sent again and accepted
    assert second.planned["insert"] == 1 and (second.acknowledged, second.rejected) == (1, 0)
    rows["u3"]["plan"] = "pro"                                # a change, sent as an update
    sp.build(rows, [sync])
    assert sp.sync(base_delay=0.01)["debugged"].planned["update"] == 1

    history = record_history(sp.p.root, sp.p.root, None, "debugged", "u3")
    reason = "record locked by another import"
    assert _events(history) == [
        ("planned", "insert", None, None),
        ("sent", "insert", 1, None), ("sent", "insert", 2, None), ("rejected", "insert", None, reason),
        ("planned", "insert", None, None), ("sent", "insert", 1, None), ("acknowledged", "insert", None, None),
        ("committed", "insert", None, None),
        ("planned", "update", None, None), ("sent", "update", 1, None), ("acknowledged", "update", None, None),
        ("committed", "update", None, None),
    ]
    runs = [h["run_id"] for h in history if h["event"] == "planned"]
    assert len(set(runs)) == 3
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    sent = [h for h in history if h["event"] == "sent"]
    assert [json.loads(h["payload"]) for h in sent] == [{"id": "u3", **{c: person(3)[c] for c in
                                                                          ("email", "plan", "score")}}] * 3 + [
        {"id": "u3", "email": "p3@mail.com", "plan": "pro", "score": 3}]
    # the first attempt met the 503; the second got the sink's answer with the rejection; the credential is masked
    assert sent[0]["request"].startswith(f"POST {http_sink.url}/records") and "HTTP 503" in sent[0]["response"]
    assert "HTTP 200" in sent[1]["response"] and reason in sent[1]["response"]
    assert '"u3"' in sent[1]["request"] and "Authorization: ***" in sent[1]["request"]
    assert all(http_sink.token not in (h["request"] or "") + (h["response"] or "") for h in history)

    # the command prints the same history, one line per event
    monkeypatch.setattr("sys.argv", ["dbt-studio", "debug", "debugged", "--key", "u3", "--project-dir",
                                     str(sp.p.root), "--profiles-dir", str(sp.p.root)])
    try:
        main()
    except SystemExit as done:
        assert done.code in (0, None)
    out = capsys.readouterr().out
    events = [line.split()[2] for line in out.splitlines() if not line.startswith(" ")]
    assert events == [e[0] for e in _events(history)]
    assert f"reason: {reason}" in out and http_sink.token not in out


def test_keys_sends_and_commits_only_the_chosen_records(sp, http_sink):
    http_sink.reset()
    http_sink.token = "debugger-token-1f9e3c"
    sp.destinations(_http(http_sink))
    rows = {f"k{i}": person(i) for i in range(8)}
    sync = {"name": "test_keys", "destination": "hook", "mappings": MAPPINGS}
    sp.build(rows, [sync, {**sync, "name": "test_keys_too"}])
    with pytest.raises(UserError, match=r"^--keys sends a test sync of one sync: -s test_keys\* selects 2 "
                                        r"\(test_keys, test_keys_too\); select one by its name$"):
        sp.sync(select=("test_keys*",), keys=("k2",))  # a glob of two syncs: nothing is sent
    assert http_sink.records_received() == 0
    report = sp.sync(select=("test_keys",), keys=("k2", "k5", "nope"))["test_keys"]
    assert report.planned == {"insert": 2, "update": 0, "delete": 0, "clear": 0}
    assert report.status == "success" and report.message.startswith(
        "1 of the 3 --keys had nothing to send: a key is planned only when its row changed since the last sync")
    assert set(http_sink.store) == {"k2", "k5"}
    assert sorted(r[0] for r in sp.state("test_keys", "snapshot")) == ["k2", "k5"]
    # the next full run sends the others (and not k2, k5 again)
    report = sp.sync(select=("test_keys",))["test_keys"]
    assert report.planned["insert"] == 6 and set(http_sink.store) == set(rows) and not report.message
    again = sp.sync(select=("test_keys",), keys=("k2", "nope"), dry_run=True)["test_keys"]  # k2: unchanged
    assert again.status == "planned" and again.message.startswith("none of the 2 --keys had anything to send")
    assert http_sink.records_received() == 8
