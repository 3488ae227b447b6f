"""Acknowledge and Reopen pressed on a bot card: the ``adaptiveCard/action`` invoke of its
``Action.Execute`` buttons (verbs ``voiso_ack`` / ``voiso_reopen``, data ``{"alert": id}``).

The same path as a Slack press (voisobot.slack.buttons), from the same modules: the Guard checks
[access] (Teams identities, TeamsAccessPolicy) and writes exactly one audit row per press;
voisobot.acks records the change with one conditional UPDATE naming the message pressed —
``MessageRef("teamsbot:<name>", <the card's activity id, the invoke's replyToId>)`` — so of
two presses at once one wins, and a button acts only on the alert posted in that message,
whatever alert id its data claims. The answer is the card as it now stands (who
acknowledged it and when, and the other button), which Teams puts in place of the pressed
card for everyone; a refusal answers with a message and leaves the card as it was.
"""

import json
import logging
from collections.abc import Callable
from datetime import datetime

from voisobot import acks, logs
from voisobot.acks import Acker, AckOutcome, MessageRef
from voisobot.audit import AuditEntry
from voisobot.commands import Guard
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
)
from voisobot.routing import teams_bot_channel
from voisobot.teams.cards import CARD_CONTENT_TYPE
from voisobot.teams.references import References

log = logging.getLogger("voisobot.teams")

NOT_ALLOWED = "You are not allowed to acknowledge Voiso alerts (ask for [access] teams_users)."
NOT_THIS_MESSAGE = ("This card is not the alert's current message (an older card, or a copy "
                    "posted again after Teams' answer was lost); nothing was changed. Use the "
                    "latest card of the alert.")
GONE = "This alert is no longer in the bot's cache."
FAILED = "Something went wrong; nothing was changed. Try again."


class TeamsAlertButtons:
    def __init__(self, outbox: Outbox, renderer, guard: Guard, references: References,
                 clock: Callable[[], datetime], metrics: Metrics | None = None):
        """``renderer.bot_card(view)`` builds the card (voisobot.teams.cards.TeamsRenderer)."""
        self.outbox, self.renderer, self.guard = outbox, renderer, guard
        self.references, self.clock = references, clock
        self.metrics = metrics or Metrics()

    def press(self, user_id: str, channel_id: str | None, conversation_id: str,
              card_activity_id: str | None, verb: str, data, user_name: str = "") -> dict:
        """The invoke's answer to a press. Never raises: whatever happens is audited and
        counted in voiso_button_presses_total, as a Slack press is.
        ``user_name`` is the name Teams gives the presser (``from.name``), shown in Slack."""
        entry = AuditEntry(user_id, channel_id, "button",
                           f"{str(verb)[:80]} {_shown(data)[:DETAIL_VALUE_CHARS]}", True, "")
        answer, result = self._handle(entry, Acker(user_id, "teams", user_name or None),
                                      conversation_id, card_activity_id, verb, data)
        self.metrics.button_pressed(BUTTON_NAMES.get(verb, "unknown"), result)
        return answer

    def _handle(self, entry: AuditEntry, user: Acker, conversation_id: str,
                card_activity_id: str | None, verb: str, data) -> tuple[dict, str]:
        """The invoke's answer, and in one word what became of the press."""
        if self.guard.refusal(entry) is not None:  # audited by the guard
            return message_answer(NOT_ALLOWED), "denied"
        try:
            outcome = self._record(user, conversation_id, card_activity_id, verb, data)
        except NotOurButton as exc:
            self.guard.record(entry, f"ignored: {exc}")
            return message_answer(FAILED), "ignored"
        except NotThisMessage as exc:
            log.warning("refused a Teams press by %s: %s", entry.user_id[:40], exc,
                        extra=logs.ids(channel=entry.channel_id))
            self.guard.record(entry, f"refused: {exc}", allowed=False)
            return message_answer(NOT_THIS_MESSAGE), "refused"
        except Exception:
            log.exception("a Teams press of %s failed", entry.detail)
            self.guard.record(entry, "failed (see the log)")
            return message_answer(FAILED), "failed"
        self.guard.record(entry, outcome.status.replace("_", " ") + (
            f" (by {outcome.by})" if outcome.by else ""))
        alert = self.outbox.alert(outcome.alert_id) if outcome.status != "missing" else None
        if alert is None:
            return message_answer(GONE), outcome.status
        return card_answer(self.renderer.bot_card(alert_view(self.outbox, alert))), \
            outcome.status

    def _record(self, user: Acker, conversation_id: str, card_activity_id: str | None,
                verb: str, data) -> AckOutcome:
        alert_id = alert_id_of(json.dumps(data) if isinstance(data, dict) else "")
        name = self.references.name_of(conversation_id)
        if name is None or not card_activity_id:
            raise NotThisMessage("the press names no subscribed conversation's message")
        pressed = MessageRef(teams_bot_channel(name), card_activity_id)
        if verb == ACK_ACTION:
            outcome = acks.acknowledge(self.outbox.store, alert_id, pressed, user,
                                       self.clock())
        elif verb == REOPEN_ACTION:
            outcome = acks.reopen(self.outbox.store, alert_id, pressed)
        else:
            raise NotOurButton(f"unknown verb {str(verb)[:80]!r}")
        if outcome.status == "elsewhere":
            raise NotThisMessage(f"alert {alert_id} was not posted in that message")
        return outcome


def card_answer(card: dict) -> dict:
    """The invoke answer that replaces the pressed card for everyone."""
    return {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": card}


def message_answer(text: str) -> dict:
    """The invoke answer that shows the presser a message and leaves the card as it was."""
    return {"statusCode": 200, "type": "application/vnd.microsoft.activity.message",
            "value": text}


def _shown(data) -> str:
    try:
        return json.dumps(data, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(data)
