"""The "Yes, this was me" and "No, this wasn't me" buttons of a "was this you?" DM.

Only the person asked may answer: the press's Slack user must be the one the question was
sent to, and the press must be on that very DM. [access] does not apply (the person asked
is rarely an analyst), and anyone else's press is refused. One answer per question, of two
presses at once exactly one counts (questions.Questions.answer). Every press, answered,
refused or broken, writes one audit row.

A "yes" shows "confirmed by" on the channel alert, and acknowledges it when
``confirm.auto_ack_on_yes`` is set; a "no" makes the alert critical, shows it in place and
queues the escalation (posted by the confirmations job, once).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from voisobot import acks, logs
from voisobot.acks import AuditEntry, MessageRef
from voisobot.commands import Answer, Guard
from voisobot.config import Config
from voisobot.metrics import Metrics
from voisobot.outbox import Outbox
from voisobot.questions import Questions
from voisobot.slack.buttons import DETAIL_VALUE_CHARS, NotOurButton, Press, id_in_value

log = logging.getLogger(__name__)

YES_ACTION = "voiso_confirm_yes"
NO_ACTION = "voiso_confirm_no"
ANSWERS = {YES_ACTION: "yes", NO_ACTION: "no"}
BUTTON_NAMES = {YES_ACTION: "confirm_yes", NO_ACTION: "confirm_no"}  # for the metrics


def question_id_of(value: str) -> int:
    """The question id in a button's value (``{"question": 7}``)."""
    return id_in_value(value, "question")


class QuestionButtons:
    def __init__(self, questions: Questions, outbox: Outbox, guard: Guard, config: Config,
                 show_in_dm: Callable[[int], None], clock: Callable[[], datetime],
                 metrics: Metrics | None = None):
        """``show_in_dm(question_id)`` puts the DM as it now stands in place of the one
        pressed (confirming.Confirmations.show_in_dm)."""
        self.questions, self.outbox, self.guard, self.config = questions, outbox, guard, config
        self.show_in_dm, self.clock = show_in_dm, clock
        self.metrics = metrics or Metrics()

    def press(self, press: Press) -> Answer | None:
        """Handle a press; None when the updated DM says it all, else a private note.
        Never raises: whatever goes wrong is audited."""
        entry = AuditEntry(press.user_id, press.channel_id, "answer",
                           f"{press.action[:80]} {press.value[:DETAIL_VALUE_CHARS]}", True, "")
        try:
            handled = self._handle(press)
        except Exception:
            log.exception("a press of %s failed", entry.detail,
                          extra=logs.ids(channel=press.channel_id))
            handled = _Handled("failed", "failed (see the log)", "Your answer could not be "
                               "recorded: the bot's log says why. Please tell the security "
                               "team directly.")
        try:
            self.guard.record(entry, handled.audited, allowed=handled.allowed)
        except Exception:  # the store itself is failing: the log is all there is
            log.exception("could not audit a press of %s", entry.detail)
        self.metrics.button_pressed(BUTTON_NAMES.get(press.action, "unknown"), handled.outcome)
        note = handled.note
        return Answer(self.guard.renderer.settled({"text": note})) if note else None

    def _handle(self, press: Press) -> "_Handled":
        answer = ANSWERS.get(press.action)
        try:
            if answer is None:
                raise NotOurButton(f"unknown action {press.action[:80]!r}")
            question = self.questions.question(question_id_of(press.value))
        except NotOurButton as exc:
            return _Handled("ignored", f"ignored: {exc}", "That button is not one of the bot's.")
        if question is None:
            return _Handled("missing", "missing",
                            "That question is no longer in the bot's cache.")
        question = self._found_by_press(question, press)
        if press.user_id != question.slack_user or press.message != MessageRef(
                question.dm_channel or "", question.dm_ts or ""):
            return _Handled("refused", f"refused: question {question.id} was sent to "
                            f"{question.slack_user}",
                            "Only the person this question was sent to can answer it.",
                            allowed=False)
        outcome = self.questions.answer(question.id, answer, self.clock())
        if outcome.status != "recorded":
            return _Handled("already", f"already answered {outcome.question.answer}",
                            f"You already answered: {outcome.question.answer}.")
        self._after(outcome.question)
        return _Handled("answered", f"answered {answer} (question {question.id})")

    def _found_by_press(self, question, press: Press):
        """A DM whose post's answer was lost (uncertain) is proved posted by its own
        person's press in that DM: record it as asked there, then take the answer."""
        if question.state != "uncertain" or press.user_id != question.slack_user \
                or press.message is None or press.message.channel != question.dm_channel:
            return question
        self.questions.mark_asked(question.id, press.message.ts, self.clock())
        return self.questions.question(question.id) or question

    def _after(self, question) -> None:
        """The alert and the DM as they now stand; a "yes" may acknowledge the alert."""
        alert = self.outbox.alert(question.alert_id)
        if question.answer == "yes" and self.config.confirm.auto_ack_on_yes \
                and alert is not None and alert.slack_ts:
            acks.acknowledge(self.outbox.store, alert.id, MessageRef(alert.channel,
                             alert.slack_ts), question.slack_user, self.clock())
        self.outbox.mark_stale(question.alert_id)
        self.show_in_dm(question.id)



@dataclass(frozen=True)
class _Handled:
    """What became of a press: its metric label (answered, already, refused, ignored,
    missing, failed), the audit row's words, the note for the presser (None: the updated
    DM says it all), and whether the press was allowed."""

    outcome: str
    audited: str
    note: str | None = None
    allowed: bool = True
