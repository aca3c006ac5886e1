"""Alerts: tell people when a sync fails, rejects too much, runs too long, or recovers.

Channels (Slack incoming webhooks, a generic JSON webhook, email over SMTP) are declared once in the `alerts:`
block of dbt_studio.yml, with their secrets from `env_var`; rules pick the events and the channels, for the whole
project (`alerts.rules`) or for one sync (`alerts:` on the sync in the model's meta). Each event of a run is sent
once to each channel a matching rule names, as one message with the sync, model, destination, counts and the
one-line reason, passed through REDACT first. Delivery is best effort by design: an alert that cannot be
delivered is logged and reported, and never fails the sync it is about (the run log in the warehouse is the
record of truth; an alert is a nudge).

This module imports only the core, so configuration loading and the engine can both use it.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sync_runner.core.errors import Unsendable
from sync_runner.core.fields import (
    Boolean,
    Choice,
    Field,
    Kind,
    ListOf,
    MapOf,
    Number,
    Problems,
    Surface,
    Text,
    Url,
    closest,
    join_path,
)
from sync_runner.core.redact import REDACT

if TYPE_CHECKING:
    from sync_runner.core.http_client import Response


EVENTS = ("failure", "rejections", "slow", "recovery")

# Each channel type's keys, declared (validation with did-you-mean, the JSON Schema and the docs tables read these)
TIMEOUT = Field("timeout", Number(minimum=0, above=True), "seconds to wait for the channel", default=10)
CHANNELS: dict[str, Surface] = {
    "slack": Surface("alert_channel_slack", "a Slack channel", (
        Field("type", Choice(("slack",)), "`slack`: a Slack incoming webhook", required=True),
        Field("url", Url(), "the incoming-webhook URL (the path after /services/ is its secret)", required=True,
              secret=True),
        TIMEOUT,
    )),
    "webhook": Surface("alert_channel_webhook", "a JSON webhook channel", (
        Field("type", Choice(("webhook",)), "`webhook`: the event is POSTed as JSON", required=True),
        Field("url", Url(), "where the JSON event is POSTed (a 2xx answer counts as delivered)", required=True),
        Field("headers", MapOf(Text(), "a mapping {header: value}"), "extra request headers, e.g. Authorization"),
        TIMEOUT,
    )),
    "email": Surface("alert_channel_email", "an email channel", (
        Field("type", Choice(("email",)), "`email`: SMTP", required=True),
        Field("host", Text("a host name"), "the SMTP server", required=True),
        Field("port", Number(integer=True, minimum=1, maximum=65535), "the SMTP port", default=587),
        Field("starttls", Boolean(), "upgrade the connection with STARTTLS (certificate verified) before logging in",
              default=True),
        Field("username", Text(), "the SMTP login (with password)", secret=True),
        Field("password", Text(), "the SMTP password (with username)", secret=True),
        Field("from", Text("an email address"), "the sender address", required=True),
        Field("to", ListOf(Text("an email address"), min_items=1, single=True), "one recipient or a list",
              required=True),
        Field("ca_file", Text("a file path"), "a CA bundle to verify the server's certificate with (default: the "
              "system's)"),
        TIMEOUT,
    )),
}


def channel_problems(spec: Any, path: str) -> Problems:
    """Problems of one channel's raw (unrendered) spec against its type's declared keys."""
    if not isinstance(spec, dict):
        return [(path, f"must be a mapping with a type ({', '.join(CHANNELS)})")]
    kind = spec.get("type")
    if kind not in CHANNELS:
        return [(join_path(path, "type"), f"must be one of {', '.join(CHANNELS)}, not {kind!r}")]
    problems = CHANNELS[kind].problems(spec, path)
    if not problems and bool(spec.get("username")) != bool(spec.get("password")):
        problems.append((path, "username and password go together"))
    return problems


@dataclass(frozen=True)
class Channel:
    """A channel of `alerts.channels`: its name, type (slack, webhook, email) and options, secrets rendered."""

    name: str
    type: str
    options: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Rule:
    """Which events of which syncs (fnmatch patterns) go to which channels, with the rejection and slowness limits."""

    channels: tuple[str, ...]
    syncs: tuple[str, ...] = ("*",)
    on_failure: bool = True
    on_recovery: bool = True
    rejected_percent: float | None = None
    slower_than_seconds: float | None = None

    def applies_to(self, sync: str) -> bool:
        return any(fnmatch.fnmatchcase(sync, pattern) for pattern in self.syncs)


@dataclass(frozen=True)
class AlertsConfig:
    """The `alerts:` block of dbt_studio.yml: channels by name, and the project's rules."""

    channels: Mapping[str, Channel] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()


def _names(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ())


def make_rule(spec: Mapping[str, Any]) -> Rule:
    """A rule from a spec its surface already accepted."""
    def number(key: str) -> float | None:
        return None if spec.get(key) is None else float(spec[key])

    return Rule(_names(spec["channels"]), _names(spec.get("syncs")) or ("*",),
                on_failure=bool(spec.get("on_failure", True)), on_recovery=bool(spec.get("on_recovery", True)),
                rejected_percent=number("rejected_percent"), slower_than_seconds=number("slower_than_seconds"))


def unknown_channels(rule: Mapping[str, Any], channels: Mapping[str, Any], path: str) -> Problems:
    """A rule's channel names that alerts.channels does not declare, with a did-you-mean."""
    out: Problems = []
    for name in _names(rule.get("channels")):
        if name not in channels:
            close = closest(name, list(channels))
            hint = f"did you mean '{close}'?" if close else f"declared: {', '.join(channels) or 'none'}"
            out.append((join_path(path, "channels"), f"unknown channel '{name}' ({hint})"))
    return out


# -- events ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What the alert says about one run of one sync (the engine fills it from its report)."""

    sync: str
    model: str
    destination: str
    status: str  # success | failed
    planned: Mapping[str, int]
    sent: int
    acknowledged: int
    rejected: int
    seconds: float
    reason: str
    run_id: str = ""
    previous_status: str | None = None  # the sync's run before this one, from the run log
    kind: str = "model"  # the synced node's resource type, for the text: model, snapshot or seed (Node.label)


@dataclass(frozen=True)
class Event:
    """One event of one run, to be sent once to each channel a rule names."""

    kind: str  # one of EVENTS
    facts: RunFacts
    detail: str  # why this event fired, e.g. "12.5% of 80 rows sent were rejected (limit 5%)"

    def text(self) -> str:
        f = self.facts
        p = f.planned
        deletes = p.get("delete", 0) + p.get("clear", 0)
        titles = {"failure": "failed", "rejections": "rejected too many rows", "slow": "was slow",
                  "recovery": "recovered"}
        lines = [f"dbt-studio: sync '{f.sync}' {titles[self.kind]}",
                 f"{f.kind or 'model'} '{f.model}' -> destination '{f.destination}'",
                 f"planned {p.get('insert', 0)} adds, {p.get('update', 0)} changes, {deletes} deletes; "
                 f"sent {f.sent}, acknowledged {f.acknowledged}, rejected {f.rejected}; {f.seconds:.1f}s",
                 f"reason: {self.detail or f.reason or f.status}"]
        if f.run_id:
            lines.append(f"run {f.run_id}")
        return REDACT("\n".join(lines))

    def payload(self) -> dict[str, Any]:
        f = self.facts
        data = {"event": self.kind, "sync": f.sync, "model": f.model, "destination": f.destination,
                "status": f.status, "run_id": f.run_id or None, "planned": dict(f.planned), "sent": f.sent,
                "acknowledged": f.acknowledged, "rejected": f.rejected, "seconds": f.seconds,
                "reason": self.detail or f.reason or f.status, "text": self.text()}
        return json.loads(REDACT(json.dumps(data)))


def events_for(facts: RunFacts, rules: Sequence[Rule]) -> list[tuple[Event, tuple[str, ...]]]:
    """The events of this run and, for each, the channels to tell (each once, in rule order)."""
    found: dict[str, tuple[Event, list[str]]] = {}

    def fire(kind: str, detail: str, channels: Sequence[str]) -> None:
        event, targets = found.setdefault(kind, (Event(kind, facts, detail), []))
        targets.extend(c for c in channels if c not in targets)

    for rule in rules:
        if facts.status == "failed" and rule.on_failure:
            fire("failure", facts.reason, rule.channels)
        if facts.status == "success" and facts.previous_status == "failed" and rule.on_recovery:
            fire("recovery", "the previous run failed; this one succeeded", rule.channels)
        if rule.rejected_percent is not None and facts.sent:
            share = 100.0 * facts.rejected / facts.sent
            if share > rule.rejected_percent:
                fire("rejections", f"{share:.1f}% of {facts.sent} rows sent were rejected "
                                   f"(limit {rule.rejected_percent:g}%)", rule.channels)
        if rule.slower_than_seconds is not None and facts.seconds > rule.slower_than_seconds:
            fire("slow", f"the run took {facts.seconds:.1f}s (limit {rule.slower_than_seconds:g}s)", rule.channels)
    return [(event, tuple(targets)) for kind in EVENTS if kind in found for event, targets in [found[kind]]]


# -- channels --------------------------------------------------------------------------------------------------


class AlertNotDelivered(Exception):
    """A channel did not take the alert (its one-line reason, already redacted)."""


def _post(channel: Channel, body: dict[str, Any], headers: Mapping[str, str]) -> Response:
    from sync_runner.core.http_client import Client, Dropped

    timeout = float(channel.options.get("timeout", 10))
    client = Client()
    try:
        response = client.request("POST", str(channel.options["url"]), json.dumps(body).encode("utf-8"),
                                  {"Content-Type": "application/json", **headers}, timeout=timeout)
    except Dropped as exc:
        raise AlertNotDelivered(REDACT(exc)) from None
    except Unsendable as exc:
        raise AlertNotDelivered(f"Unsendable: {REDACT(exc)}") from None
    finally:
        client.close()
    if response.status_code >= 300:
        raise AlertNotDelivered(f"answered HTTP {response.status_code}: {REDACT(response.text[:200])}")
    return response


def send_slack(channel: Channel, event: Event) -> None:
    """Slack incoming webhook: POST {"text": ...}; Slack answers 200 'ok' or an error code in the body."""
    _post(channel, {"text": event.text()}, {})


def send_webhook(channel: Channel, event: Event) -> None:
    headers = {str(k): str(v) for k, v in (channel.options.get("headers") or {}).items()}
    _post(channel, event.payload(), headers)


def send_email(channel: Channel, event: Event) -> None:
    """SMTP with STARTTLS (certificate verified) and login when a username is set."""
    import smtplib  # (with ssl and email, 15 ms of imports: only a run that emails pays them)
    import ssl
    from email.message import EmailMessage

    o = channel.options
    to = [o["to"]] if isinstance(o["to"], str) else list(o["to"])
    message = EmailMessage()
    message["Subject"] = REDACT(f"[dbt-studio] {event.kind}: sync {event.facts.sync}")
    message["From"] = str(o["from"])
    message["To"] = ", ".join(to)
    message.set_content(event.text())
    try:
        with smtplib.SMTP(str(o["host"]), int(o.get("port", 587)), timeout=float(o.get("timeout", 10))) as smtp:
            if o.get("starttls", True):
                context = ssl.create_default_context(cafile=o.get("ca_file"))
                smtp.starttls(context=context)
            if o.get("username"):
                smtp.login(str(o["username"]), str(o["password"]))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise AlertNotDelivered(f"{exc.__class__.__name__}: {REDACT(exc)}") from None


SENDERS: dict[str, Callable[[Channel, Event], None]] = {"slack": send_slack, "webhook": send_webhook,
                                                        "email": send_email}


def dispatch(config: AlertsConfig, facts: RunFacts, sync_rules: Sequence[Rule] = ()) -> list[str]:
    """Send this run's alerts; returns one line per (event, channel): delivered or why not. Never raises."""
    rules = [r for r in config.rules if r.applies_to(facts.sync)] + list(sync_rules)
    outcomes = []
    for event, channels in events_for(facts, rules):
        for name in channels:
            channel = config.channels.get(name)
            try:
                if channel is None:
                    raise AlertNotDelivered("no such channel in alerts.channels")
                SENDERS[channel.type](channel, event)
                outcomes.append(f"{event.kind} alert sent to {name}")
            except Exception as exc:  # noqa: BLE001 - an alert never fails the sync
                line = REDACT(f"{event.kind} alert not delivered to {name}: {exc}")
                import logging  # (3 ms to import: only a run whose alert failed logs)

                logging.getLogger("dbt_studio.alerts").warning("sync '%s': %s", facts.sync, line)
                outcomes.append(line)
    return outcomes


@dataclass(frozen=True)
class ChannelKind(Kind):
    """A channel of alerts.channels: its `type` picks the declared keys it takes."""

    def problems(self, value: Any, path: str) -> Problems:
        return channel_problems(value, path)

    def json(self) -> dict[str, Any]:
        return {"anyOf": [{"$ref": f"#/$defs/{s.name}"} for s in CHANNELS.values()]}

    def text(self) -> str:
        return f"a channel ({', '.join(CHANNELS)})"
