"""An answer to "was this you?", pressed in Slack (a DM's buttons: slack.question_buttons)
or in Teams (a personal chat's card: teams.question_cards).

Only the person asked may answer: the presser must be the one the question was sent to
(their Slack user, or their Entra object id), where it was sent (Slack: that very DM
message; Teams: their personal chat with the bot, where nobody else can press). [access]
does not apply (the person asked is rarely an analyst), and anyone else's press is refused.
One answer per question, of two presses at once exactly one counts
(questions.Questions.answer). Every press, answered, refused or broken, writes one audit
row. Each platform only says who pressed where (``Presser``) and shows the result.

A "yes" shows "confirmed by" on the channel alert, and acknowledges it when
``confirm.auto_ack_on_yes`` is set; a "no" makes the alert critical, shows it in place and
queues the escalation (posted by the confirmations job, once).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from voisobot import acks, logs
from voisobot.acks import MessageRef
from voisobot.audit import AuditEntry
from voisobot.commands import Guard
from voisobot.config import Config
from voisobot.metrics import Metrics
from voisobot.outbox import Outbox
from voisobot.presses import (
    BUTTON_NAMES,
    DETAIL_VALUE_CHARS,
    NO_ACTION,
    YES_ACTION,
    NotOurButton,
    question_id_of,
)
from voisobot.questions import Question, Questions

log = logging.getLogger(__name__)

ANSWERS = {YES_ACTION: "yes", NO_ACTION: "no"}


@dataclass(frozen=True)
class Presser:
    """Who pressed an answer button, and where: ``platform`` "slack" (``user_id`` a Slack
    user, ``place`` the DM channel, ``message`` its ts) or "teams" (``user_id`` an Entra
    object id, ``place`` the personal chat's conversation id, ``message`` the card's activity
    id)."""

    platform: str
    user_id: str
    place: str | None
    message: str | None


class QuestionAnswers:
    """The platform-independent part of a press: which question, whether this presser may
    answer it, the answer recorded once, what follows (the alert shown again, acknowledged
    on a "yes" when configured, a "no" escalated), one audit row and the metric."""

    def __init__(self, questions: Questions, outbox: Outbox, guard: Guard, config: Config,
                 clock: Callable[[], datetime], metrics: Metrics | None = None):
        self.questions, self.outbox, self.guard, self.config = questions, outbox, guard, config
        self.clock = clock
        self.metrics = metrics or Metrics()

    def press(self, presser: Presser, action: str, value: str,
              audit_place: str | None) -> "Handled":
        """Handle a press of ``action`` with the button's ``value`` (``{"question": id}``).
        Never raises: whatever goes wrong is audited (against ``audit_place``)."""
        entry = AuditEntry(presser.user_id, audit_place, "answer",
                           f"{action[:80]} {value[:DETAIL_VALUE_CHARS]}", True, "")
        try:
            handled = self._handle(presser, action, value)
        except Exception:
            log.exception("a press of %s failed", entry.detail,
                          extra=logs.ids(channel=audit_place))
            handled = Handled("failed", "failed (see the log)", "Your answer could not be "
                              "recorded: the bot's log says why. Please tell the security "
                              "team directly.")
        try:
            self.guard.record(entry, handled.audited, allowed=handled.allowed)
        except Exception:  # the store itself is failing: the log is all there is
            log.exception("could not audit a press of %s", entry.detail)
        self.metrics.button_pressed(BUTTON_NAMES.get(action, "unknown"), handled.outcome)
        return handled

    def _handle(self, presser: Presser, action: str, value: str) -> "Handled":
        answer = ANSWERS.get(action)
        try:
            if answer is None:
                raise NotOurButton(f"unknown action {action[:80]!r}")
            question = self.questions.question(question_id_of(value))
        except NotOurButton as exc:
            return Handled("ignored", f"ignored: {exc}", "That button is not one of the bot's.")
        if question is None:
            return Handled("missing", "missing", "That question is no longer in the bot's cache.")
        question = self._found_by_press(question, presser)
        if not asked_here(question, presser):
            return Handled("refused", f"refused: question {question.id} was sent to "
                           f"{asked_person(question)}",
                           "Only the person this question was sent to can answer it.",
                           allowed=False)
        outcome = self.questions.answer(question.id, answer, self.clock())
        if outcome.status != "recorded":
            return Handled("already", f"already answered {outcome.question.answer}",
                           f"You already answered: {outcome.question.answer}.",
                           question=outcome.question)
        self._after(outcome.question, presser)
        return Handled("answered", f"answered {answer} (question {question.id})",
                       question=outcome.question)

    def _found_by_press(self, question: Question, presser: Presser) -> Question:
        """A question whose post's answer was lost (uncertain) is proved posted by its own
        person's press where it was sent: record it as asked there, then take the answer."""
        if question.state != "uncertain" or not presser.message \
                or not asked_here(question, presser, message_known=False):
            return question
        if presser.platform == "teams":
            self.questions.mark_asked_in_teams(question.id, presser.message, self.clock())
        else:
            self.questions.mark_asked(question.id, presser.message, self.clock())
        return self.questions.question(question.id) or question

    def _after(self, question: Question, presser: Presser) -> None:
        """The alert as it now stands; a "yes" may acknowledge the alert (by the person who
        answered, as their platform names them)."""
        alert = self.outbox.alert(question.alert_id)
        if question.answer == "yes" and self.config.confirm.auto_ack_on_yes \
                and alert is not None and alert.slack_ts:
            acks.acknowledge(self.outbox.store, alert.id, MessageRef(alert.channel,
                             alert.slack_ts), presser.user_id, self.clock())
        self.outbox.mark_stale(question.alert_id)


def asked_here(question: Question, presser: Presser, *, message_known: bool = True) -> bool:
    """Whether ``presser`` is the person the question was sent to, where it was sent. In
    Slack the press must be on that very DM message (unless ``message_known`` is False: the
    DM's ts may not be known yet); in Teams, anywhere in their personal chat with the bot
    (a copy posted again after a lost answer is the same question)."""
    if presser.platform == "teams":
        return question.asked_via == "teams" and bool(question.teams_user) \
            and presser.user_id == question.teams_user \
            and presser.place == question.teams_conversation
    if question.asked_via == "teams" or not question.slack_user \
            or presser.user_id != question.slack_user:
        return False
    if not message_known:
        return presser.place == question.dm_channel
    return (presser.place, presser.message) == (question.dm_channel, question.dm_ts)


def asked_person(question: Question) -> str | None:
    return question.teams_user if question.asked_via == "teams" else question.slack_user


@dataclass(frozen=True)
class Handled:
    """What became of a press: its metric label (answered, already, refused, ignored,
    missing, failed), the audit row's words, the note for the presser (None: the updated
    question says it all), whether the press was allowed, and the question as it now
    stands (answered, already)."""

    outcome: str
    audited: str
    note: str | None = None
    allowed: bool = True
    question: Question | None = None
