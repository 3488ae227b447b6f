"""Every message the bot can send, by name, for ``bot.py render --list`` and ``render NAME``.

Each preview is one entry of PREVIEWS: a name, the platform that shows it, a line saying
what it is, and a function of the configuration that builds the message exactly as the bot
would send it (the configured templates and severities, the vendor's example events, fixed
times so that the output is the same every run). To preview a new message, add one entry.

The Block Kit Builder link (``render --builder``) puts a Slack message's blocks in the
address of Slack's own preview page, so anyone can see the real layout in a browser.
"""

import contextlib
import dataclasses
import json
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from voisobot import digest, events, home, routing, samples
from voisobot.config import Config
from voisobot.intake import Intake
from voisobot.outbox import Backlog
from voisobot.render import AlertView, QuestionView
from voisobot.runtime import slack_renderer, teams_renderer
from voisobot.slack.render import SlackRenderer
from voisobot.store import Store
from voisobot.values import SlackId

BUILDER_URL = "https://app.slack.com/block-kit-builder/#"

SLACK, TEAMS_WEBHOOK, TEAMS_BOT = "slack", "teams", "teams-bot"  # what a preview's message is
UNKNOWN_KIND = "app_login/mfa_failed"  # a kind Voiso may add: the generic template shows it
PREVIEW_PERSON = SlackId("U0PREVIEW1")  # who is asked "was this you?"
PREVIEW_RESPONDER = SlackId("U0PREVIEW2")  # who acknowledged
PREVIEW_TIME = datetime(2020, 10, 10, 10, 41, 0, tzinfo=UTC)
PREVIEW_CONTEXT = ("2nd failed-password alert for foo@bar.com today",
                   "foo@bar.com was also refused from an unauthorized IP 3 hours ago")


@dataclass(frozen=True)
class Preview:
    platform: str  # SLACK (a chat.postMessage body), TEAMS_WEBHOOK (a card in its
    #                envelope) or TEAMS_BOT (an Adaptive Card the bot posts)
    what: str  # one line for --list
    build: Callable[[Config], dict]


# --- the views the previews show --------------------------------------------------------------

def alert_view(cfg: Config, kind: str, **extra: Any) -> AlertView:
    """The alert of the vendor's example of ``kind`` (or of a made-up event of an unknown
    kind), with the configured severity."""
    body = samples.example(kind) if kind in samples.EXAMPLES else \
        {**samples.example("app_login/unauthorized_ip"), "event": kind.split("/")[1]}
    event = events.parse(samples.body_text(body).encode())
    return AlertView(event, routing.severity_of(event, cfg.severity), alert_id=1, **extra)


def question_view(cfg: Config, alert: AlertView, role: str, email: str, *, escalation: bool,
                  teams: bool) -> QuestionView:
    """The "was this you?" asked of ``email`` as ``role``, or the escalation of its "no",
    as [confirm] would word it, whether or not [confirm] is on."""
    asking = dataclasses.replace(cfg.confirm, enabled=True)
    group = SlackId(asking.escalate_usergroup) if asking.escalate_usergroup else None
    return QuestionView(alert, 1, (role,), None if teams else PREVIEW_PERSON, email,
                        "answered" if escalation else "asked",
                        answer="no" if escalation else None,
                        answered_at=PREVIEW_TIME if escalation else None,
                        if_not=asking.if_not, usergroup=group, reason="no",
                        timeout_minutes=asking.timeout_minutes)


def _group(count: int, users: list[tuple[str, int]], ips: list[tuple[str, int]]) -> dict:
    """A group's summary as outbox.group_summary makes it."""
    return {"count": count, "first_seen": datetime(2020, 10, 10, 10, 11, 12, tzinfo=UTC),
            "last_seen": datetime(2020, 10, 10, 10, 39, 48, tzinfo=UTC),
            "users": len(users), "ips": len(ips), "top_users": users[:3], "top_ips": ips[:3]}


def _grouped(cfg: Config) -> AlertView:
    """One user refused from two IPs four times within a group window."""
    return alert_view(cfg, "app_login/unauthorized_ip", context=PREVIEW_CONTEXT,
                      group=_group(4, [("foo@bar.com", 4)], [("8.8.8.8", 3), ("8.8.4.4", 1)]))


def _storm(cfg: Config) -> AlertView:
    """Password guessing across many accounts: every event of the kind joins one alert."""
    users = [(f"agent{n}@acme.example", 4 - n // 4) for n in range(1, 15)]
    return alert_view(cfg, "app_login/incorrect_password",
                      group=_group(41, users, [("198.51.100.23", 38), ("192.0.2.200", 3)]))


def _acknowledged(cfg: Config) -> AlertView:
    return alert_view(cfg, "app_login/unauthorized_ip", context=PREVIEW_CONTEXT,
                      acked_by=PREVIEW_RESPONDER, acked_at=PREVIEW_TIME, acked_via="slack")


def _confirmation(cfg: Config, *, escalation: bool, teams: bool) -> dict:
    alert = alert_view(cfg, "app_login/unauthorized_ip")
    view = question_view(cfg, alert, "user", alert.event.user or "", escalation=escalation,
                         teams=teams)
    if teams:
        renderer = teams_renderer(cfg)
        return renderer.escalation_card(view) if escalation else renderer.question_card(view)
    renderer = _slack(cfg)
    return renderer.render_escalation(view) if escalation else renderer.render_question(view)


def _slack(cfg: Config) -> SlackRenderer:
    """The renderer the bot uses: the configured templates, [alerts] and [runbooks]."""
    return slack_renderer(cfg)


# --- the registry -----------------------------------------------------------------------------

def _alert_previews() -> dict[str, Preview]:
    kinds = {f"alert:{kind}": Preview(SLACK, f"the alert of one {kind} event", _kind_alert(kind))
             for kind in samples.EXAMPLES}
    kinds["alert:unknown"] = Preview(SLACK, f"the alert of a kind no template knows "
                                            f"({UNKNOWN_KIND}): the generic template",
                                     _kind_alert(UNKNOWN_KIND))
    return kinds


def digest_of_examples(cfg: Config, kinds: list[str], now: datetime):
    """The digest of the period that last ended before ``now`` ([digest]'s time, zone and
    period), had the vendor's example of each kind happened in it, a minute apart."""
    period = digest.last_ended(now, cfg.digest)
    examples = [(kind, period.start + timedelta(minutes=i + 1)) for i, kind in enumerate(kinds)]
    with examples_store(cfg, examples) as store:
        return digest.digest_view(store.connection(), period, cfg.digest)


@contextlib.contextmanager
def examples_store(cfg: Config, examples: Iterable[tuple[str, datetime]]) -> Iterator[Store]:
    """A store made for a preview and thrown away, holding the vendor's example of each
    kind at its time (``(kind, time)`` pairs)."""
    with tempfile.TemporaryDirectory() as directory:
        store = Store(Path(directory) / "preview.sqlite3")
        try:
            Intake(None, cfg.sqs, store).store_messages([
                {"MessageId": f"preview-{i}", "ReceiptHandle": f"preview-{i}",
                 "Body": samples.body_text(samples.example(kind, now=when)), "Attributes": {}}
                for i, (kind, when) in enumerate(examples)])
            yield store
        finally:
            store.close()


def _app_home(cfg: Config) -> dict:
    """The App Home of an allowed user, the examples an hour apart up to the preview's time."""
    examples = [(kind, PREVIEW_TIME - timedelta(hours=i))
                for i, kind in enumerate(samples.EXAMPLES)]
    with examples_store(cfg, examples) as store:
        health = home.Health(PREVIEW_TIME - timedelta(seconds=3), Backlog(0, 0.0, 0))
        context = home.home_context(store.connection(), PREVIEW_TIME, health)
    return _slack(cfg).render_home(allowed=True, **context)


def _digest(cfg: Config) -> Any:
    return digest_of_examples(cfg, list(samples.EXAMPLES), PREVIEW_TIME)


def _kind_alert(kind: str) -> Callable[[Config], dict]:
    return lambda cfg: _slack(cfg).render(alert_view(cfg, kind))


PREVIEWS: dict[str, Preview] = {
    **_alert_previews(),
    "group": Preview(SLACK, "a group's message: related events within the window share one "
                            "alert, updated in place",
                     lambda cfg: _slack(cfg).render(_grouped(cfg))),
    "storm": Preview(SLACK, "a storm's message: too many groups of one kind at once become one "
                            "alert", lambda cfg: _slack(cfg).render(_storm(cfg))),
    "reply": Preview(SLACK, "a thread reply under a group's message, one per event up to "
                            "thread_reply_cap",
                     lambda cfg: _slack(cfg).render_reply(_grouped(cfg))),
    "acknowledged": Preview(SLACK, "an alert once someone pressed Acknowledge (with Reopen)",
                            lambda cfg: _slack(cfg).render(_acknowledged(cfg))),
    "question": Preview(SLACK, 'the "was this you?" direct message [confirm] sends',
                        lambda cfg: _confirmation(cfg, escalation=False, teams=False)),
    "escalation": Preview(SLACK, 'the escalation a "no" posts to [confirm] escalate_channel',
                          lambda cfg: _confirmation(cfg, escalation=True, teams=False)),
    "digest": Preview(SLACK, "the digest [digest] posts once a period (the examples in it)",
                      lambda cfg: _slack(cfg).render_digest(_digest(cfg))),
    "app-home": Preview(SLACK, "the App Home an allowed user sees (a view, views.publish)",
                        _app_home),
    "teams:alert": Preview(TEAMS_WEBHOOK, "a Teams webhook post (an Adaptive Card)",
                           lambda cfg: teams_renderer(cfg).render(
                               alert_view(cfg, "app_login/unauthorized_ip"))),
    "teams:group": Preview(TEAMS_WEBHOOK, "a Teams webhook's summary post when a group closes",
                           lambda cfg: teams_renderer(cfg).render(_grouped(cfg))),
    "teams:bot-alert": Preview(TEAMS_BOT, "the Teams bot's alert card, Acknowledge and Profile",
                               lambda cfg: teams_renderer(cfg).bot_card(
                                   alert_view(cfg, "app_login/unauthorized_ip"))),
    "teams:acknowledged": Preview(TEAMS_BOT, "the Teams bot's card once acknowledged",
                                  lambda cfg: teams_renderer(cfg).bot_card(_acknowledged(cfg))),
    "teams:question": Preview(TEAMS_BOT, 'the Teams bot\'s "was this you?" card',
                              lambda cfg: _confirmation(cfg, escalation=False, teams=True)),
    "teams:escalation": Preview(TEAMS_BOT, "the Teams bot's escalation card",
                                lambda cfg: _confirmation(cfg, escalation=True, teams=True)),
    "teams:digest": Preview(TEAMS_BOT, "the digest as a Teams card (a webhook posts it in "
                                       "its envelope)",
                            lambda cfg: teams_renderer(cfg).digest_card(_digest(cfg))),
}


def builder_url(message: dict) -> str:
    """A link to Slack's Block Kit Builder showing ``message``'s blocks (and its
    attachments: an alert's body is in one, beside the severity's colour bar). Everything
    but letters, digits and ``_.-~`` is percent-encoded, so no character of the message can
    end the fragment or change the address."""
    payload = json.dumps(builder_payload(message), ensure_ascii=False, separators=(",", ":"))
    return BUILDER_URL + urllib.parse.quote(payload, safe="")


def builder_payload(message: dict) -> dict:
    """What of a message the Builder shows: its blocks, and its attachments when it has any."""
    payload = {"blocks": message["blocks"]}
    if message.get("attachments"):
        payload["attachments"] = message["attachments"]
    return payload


def payload_of_builder_url(url: str) -> dict:
    """The message a Block Kit Builder link holds (the inverse of ``builder_url``)."""
    if not url.startswith(BUILDER_URL):
        raise ValueError(f"not a Block Kit Builder link: {url[:60]!r}")
    return json.loads(urllib.parse.unquote(url[len(BUILDER_URL):]))
