"""The alerts' Acknowledge and Reopen buttons.

A press is checked against [access], then recorded by one conditional UPDATE (acks.py:
of two presses at once, one wins) that names the message pressed as well as the alert,
so a button acts only on the alert posted at that channel and ts, whatever its value
claims. The alert's message is re-rendered as the store now has it and put in place with
chat.update. The message always ends up showing whoever holds the acknowledgement: if
Slack cannot take the update now, the alert is marked stale and the delivery job updates
it when Slack is back.

Every press writes exactly one audit row, whatever it carries: a value that is not ours,
a press on another message, even an unexpected error.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from voisobot import acks, logs
from voisobot.access import AccessPolicy
from voisobot.acks import Acker, AckOutcome, MessageRef
from voisobot.audit import AuditEntry
from voisobot.commands import Answer, Guard
from voisobot.delivery import alert_view
from voisobot.metrics import Metrics
from voisobot.outbox import Outbox
from voisobot.presses import (
    ACK_ACTION,
    BUTTON_NAMES,
    DETAIL_VALUE_CHARS,
    REOPEN_ACTION,
    NotOurButton,
    NotThisMessage,
    alert_id_of,
    short,
)
from voisobot.render import slack_id_or_text
from voisobot.slack.render import SlackRenderer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Press:
    """A click: who, in which channel, on which message, which button, and the button's
    value (``{"alert": id}``); and the presser's Slack user name, shown in Teams."""

    user_id: str
    channel_id: str | None
    message: MessageRef | None  # None: the press names no message
    action: str  # ACK_ACTION or REOPEN_ACTION
    value: str
    user_name: str = ""


class AlertButtons:
    def __init__(self, outbox: Outbox, renderer: SlackRenderer, sender, policy: AccessPolicy,
                 clock: Callable[[], datetime], metrics: Metrics | None = None):
        """``sender.update(channel, ts, message)`` returns a SendResult."""
        self.outbox, self.renderer, self.sender, self.clock = outbox, renderer, sender, clock
        self.metrics = metrics or Metrics()
        self.guard = Guard(outbox.store, renderer, policy, clock)

    def press(self, press: Press) -> Answer | None:
        """Handle a click; return a private note for the presser, or None when the
        updated message says it all. Never raises: whatever goes wrong is audited."""
        audit = _OneAuditRow(self.guard, AuditEntry(
            press.user_id, press.channel_id, "button",
            f"{press.action[:80]} {press.value[:DETAIL_VALUE_CHARS]}", True, ""))
        try:
            answer, result = self._handle(press, audit)
        except Exception:
            log.exception("a press of %s failed", audit.entry.detail,
                          extra=logs.ids(channel=press.channel_id))
            audit.write_if_not_yet("failed (see the log)")
            answer, result = self._failed(), "failed"
        self.metrics.button_pressed(BUTTON_NAMES.get(press.action, "unknown"), result)
        return answer

    def _handle(self, press: Press, audit: "_OneAuditRow") -> tuple[Answer | None, str]:
        """The note for the presser, and in one word what became of the press."""
        if (refusal := audit.refusal()) is not None:
            return refusal, "denied"
        try:
            outcome = self._record(press)
        except NotOurButton as exc:
            audit.write(f"ignored: {exc}")
            return self._failed(), "ignored"
        except NotThisMessage as exc:
            log.warning("refused a press by %s in %s: %s", short(press.user_id),
                        short(press.channel_id), exc, extra=logs.ids(channel=press.channel_id))
            audit.write(f"refused: {exc}", allowed=False)
            return Answer(self.renderer.render_answer("refused")), "refused"
        audit.write(_described(outcome))
        if outcome.status != "missing":
            self._show(outcome)
        if outcome.status in ("acknowledged", "reopened"):
            return None, outcome.status
        return Answer(self.renderer.render_answer(
            "ack", status=outcome.status, ack=acknowledger(outcome), at=outcome.at)
        ), outcome.status

    def _record(self, press: Press) -> AckOutcome:
        alert_id = alert_id_of(press.value)
        pressed = _pressed_message(press)
        store = self.outbox.store
        if press.action == ACK_ACTION:
            outcome = acks.acknowledge(store, alert_id, pressed, Acker(
                press.user_id, "slack", press.user_name or None), self.clock())
        elif press.action == REOPEN_ACTION:
            outcome = acks.reopen(store, alert_id, pressed)
        else:
            raise NotOurButton(f"unknown action {press.action[:80]!r}")
        if outcome.status == "elsewhere":
            raise NotThisMessage(f"alert {alert_id} was not posted at {short(pressed.channel)} "
                                 f"{short(pressed.ts)}")
        return outcome

    def _show(self, outcome: AckOutcome) -> None:
        """Put the alert's message as it now stands in place of the clicked one (its
        siblings were marked stale with the change: the delivery job updates them)."""
        alert = self.outbox.alert(outcome.alert_id)
        if alert is None or not alert.slack_ts:
            return
        message = self.renderer.render(alert_view(self.outbox, alert))
        result = self.sender.update(alert.channel, alert.slack_ts, message)
        if result.status != "done":
            log.warning("could not update alert %d in %s (%s); the delivery job will try "
                        "again", alert.id, alert.channel, result.error,
                        extra=logs.ids(alert_id=alert.id, channel=alert.channel))
            self.outbox.mark_stale(alert.id)

    def _failed(self) -> Answer:
        return Answer(self.renderer.render_answer("failed"))


class _OneAuditRow:
    """The audit row of one press: written once, by whichever path the press takes."""

    def __init__(self, guard: Guard, entry: AuditEntry):
        self.guard, self.entry = guard, entry
        self.written = self.allowed = False

    def refusal(self) -> Answer | None:
        answer = self.guard.refusal(self.entry)
        self.written = answer is not None  # the guard audits the refusals it makes
        self.allowed = answer is None
        return answer

    def write(self, outcome: str, *, allowed: bool = True) -> None:
        self.guard.record(self.entry, outcome, allowed=allowed)
        self.written = True

    def write_if_not_yet(self, outcome: str) -> None:
        if self.written:
            return
        try:
            self.write(outcome, allowed=self.allowed)  # not allowed if access was never known
        except Exception:  # the store itself is failing: the log is all there is
            log.exception("could not audit a press of %s", self.entry.detail,
                          extra=logs.ids(channel=self.entry.channel_id))


def _pressed_message(press: Press) -> MessageRef:
    """The message pressed, which must be in the channel the press was allowed in."""
    message = press.message
    if message is None:
        raise NotThisMessage("the press names no message")
    if press.channel_id is not None and message.channel != press.channel_id:
        raise NotThisMessage(f"the press names two channels, {short(press.channel_id)} and "
                             f"{short(message.channel)}")
    return message


def acknowledger(outcome: AckOutcome) -> dict | None:
    """Who holds the alert, as the ack answer's template shows them (render.py's "ack")."""
    if outcome.by is None:
        return None
    return {"by": slack_id_or_text(outcome.by), "platform": outcome.via,
            "name": outcome.name or outcome.by}


def _described(outcome: AckOutcome) -> str:
    if outcome.status in ("already_acknowledged", "acknowledged"):
        return f"{outcome.status.replace('_', ' ')} (by {outcome.by})"
    return outcome.status.replace("_", " ")
