"""The alerts' Acknowledge and Reopen buttons.

A press is checked against [access] and audited, then recorded by one conditional
UPDATE (acks.py: of two presses at once, one wins), and the alert's message is
re-rendered as the store now has it and put in place with chat.update, at the channel
and ts the outbox kept. The message always ends up showing whoever holds the
acknowledgement: if Slack cannot take the update now, the alert is marked stale and the
delivery job updates it when Slack is back.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from voisobot import acks
from voisobot.access import AccessPolicy
from voisobot.acks import AckOutcome, AuditEntry
from voisobot.commands import Answer, Guard
from voisobot.delivery import alert_view
from voisobot.errors import VoisoBotError
from voisobot.outbox import Outbox
from voisobot.render import SlackRenderer, slack_id_or_text

log = logging.getLogger(__name__)

ACK_ACTION = "voiso_ack"
REOPEN_ACTION = "voiso_reopen"


@dataclass(frozen=True)
class Press:
    """A click: who, where, which button, and the button's value (``{"alert": id}``)."""

    user_id: str
    channel_id: str | None
    action: str  # ACK_ACTION or REOPEN_ACTION
    value: str


class NotOurButton(VoisoBotError):
    pass


def alert_id_of(value: str) -> int:
    """The alert id in a button's value; the value comes back from Slack as text."""
    try:
        alert_id = json.loads(value)["alert"]
    except (ValueError, TypeError, KeyError):
        raise NotOurButton(f"not an alert button value: {value[:80]!r}") from None
    if not isinstance(alert_id, int) or isinstance(alert_id, bool) or alert_id < 1:
        raise NotOurButton(f"not an alert id: {alert_id!r}")
    return alert_id


class AlertButtons:
    def __init__(self, outbox: Outbox, renderer: SlackRenderer, sender, policy: AccessPolicy,
                 clock: Callable[[], datetime]):
        """``sender.update(channel, ts, message)`` returns a SendResult."""
        self.outbox, self.renderer, self.sender, self.clock = outbox, renderer, sender, clock
        self.guard = Guard(outbox.store, renderer, policy, clock)

    def press(self, press: Press) -> Answer | None:
        """Handle a click; return a private note for the presser, or None when the
        updated message says it all."""
        entry = AuditEntry(press.user_id, press.channel_id, "button",
                           f"{press.action} {press.value[:200]}", True, "")
        if (refusal := self.guard.refusal(entry)) is not None:
            return refusal
        try:
            outcome = self._record(press)
        except NotOurButton as exc:
            self.guard.record(entry, f"ignored: {exc}")
            return Answer(self.renderer.render_answer("failed"))
        self.guard.record(entry, _described(outcome))
        if outcome.status != "missing":
            self._show(outcome)
        if outcome.status in ("acknowledged", "reopened"):
            return None
        return Answer(self.renderer.render_answer("ack", status=outcome.status,
                                                  by=slack_id_or_text(outcome.by), at=outcome.at))

    def _record(self, press: Press) -> AckOutcome:
        alert_id = alert_id_of(press.value)
        store = self.outbox.store
        if press.action == ACK_ACTION:
            return acks.acknowledge(store, alert_id, press.user_id, self.clock())
        if press.action == REOPEN_ACTION:
            return acks.reopen(store, alert_id)
        raise NotOurButton(f"unknown action {press.action!r}")

    def _show(self, outcome: AckOutcome) -> None:
        """Put the alert's message as it now stands in place of the clicked one."""
        alert = self.outbox.alert(outcome.alert_id)
        if alert is None or not alert.slack_ts:
            return
        message = self.renderer.render(alert_view(self.outbox, alert))
        result = self.sender.update(alert.channel, alert.slack_ts, message)
        if result.status != "done":
            log.warning("could not update alert %d in %s (%s); the delivery job will try "
                        "again", alert.id, alert.channel, result.error)
            self.outbox.mark_stale(alert.id)


def _described(outcome: AckOutcome) -> str:
    if outcome.status in ("already_acknowledged", "acknowledged"):
        return f"{outcome.status.replace('_', ' ')} (by {outcome.by})"
    return outcome.status.replace("_", " ")
