"""The "Yes, this was me" and "No, this wasn't me" buttons of a "was this you?" DM in
Slack: the press read from Slack's payload, answered through voisobot.confirm_answers (the
part both platforms share), and the DM updated in place.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from voisobot.commands import Answer, Guard
from voisobot.config import Config
from voisobot.confirm_answers import Presser, QuestionAnswers
from voisobot.metrics import Metrics
from voisobot.outbox import Outbox
from voisobot.questions import Questions
from voisobot.slack.buttons import Press

log = logging.getLogger(__name__)


class QuestionButtons:
    """The Slack side: a press of a DM's button, answered by the DM updated in place."""

    def __init__(self, questions: Questions, outbox: Outbox, guard: Guard, config: Config,
                 show_in_dm: Callable[[int], None], clock: Callable[[], datetime],
                 metrics: Metrics | None = None):
        """``show_in_dm(question_id)`` puts the DM as it now stands in place of the one
        pressed (confirming.Confirmations.show_in_dm)."""
        self.answers = QuestionAnswers(questions, outbox, guard, config, clock, metrics)
        self.guard, self.show_in_dm = guard, show_in_dm

    def press(self, press: Press) -> Answer | None:
        """Handle a press; None when the updated DM says it all, else a private note.
        Never raises: whatever goes wrong is audited."""
        message = press.message
        presser = Presser("slack", press.user_id, message.channel if message else None,
                          message.ts if message else None)
        handled = self.answers.press(presser, press.action, press.value, press.channel_id)
        if handled.outcome == "answered":
            try:
                self.show_in_dm(handled.question.id)
            except Exception:  # recorded and audited; the DM shows it at the next update
                log.exception("could not show question %d's answer in its DM",
                              handled.question.id)
        note = handled.note
        return Answer(self.guard.renderer.settled({"text": note})) if note else None
