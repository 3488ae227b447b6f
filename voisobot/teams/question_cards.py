""""Was this you?" answered in Teams: the ``adaptiveCard/action`` invoke of a question card's
``Action.Execute`` buttons (verbs ``voiso_confirm_yes`` / ``voiso_confirm_no``, data
``{"question": id}``), sent from the person's personal chat with the bot.

Everything but the answer's shape is voisobot.slack.question_buttons.QuestionAnswers, as for a
Slack press: only the person asked (the invoke's ``from.aadObjectId`` is the Entra object id
the question went to, in that person's chat) may answer, once; the answer is recorded and
followed up exactly as in Slack ("no" escalates, the channel alert shows it), with one audit
row per press. The invoke's answer is the card as it now stands — "You answered: …",
without buttons — which Teams puts in place of the pressed one; a refusal or a second
press answers with a message and leaves the card as it was.
"""

import json
from collections.abc import Callable

from voisobot.confirm_answers import Presser, QuestionAnswers
from voisobot.presses import NO_ACTION, YES_ACTION
from voisobot.questions import Question
from voisobot.render import QuestionView
from voisobot.teams.buttons import card_answer, message_answer
from voisobot.teams.references import conversation_base

VERBS = (YES_ACTION, NO_ACTION)  # the Slack buttons' action ids (voisobot.presses)


class TeamsQuestionButtons:
    def __init__(self, answers: QuestionAnswers, renderer,
                 view: Callable[[Question], QuestionView]):
        """``renderer.question_card(view)`` builds the card (teams_cards.TeamsRenderer);
        ``view(question)`` is what it shows (confirming.question_view)."""
        self.answers, self.renderer, self.view = answers, renderer, view

    def press(self, user_id: str, conversation_id: str, card_activity_id: str | None,
              verb: str, data) -> dict:
        """The invoke's answer to a press. Never raises: whatever happens is audited."""
        place = conversation_base(conversation_id) if conversation_id else None
        presser = Presser("teams", user_id, place, card_activity_id)
        handled = self.answers.press(presser, str(verb), _value(data), place)
        if handled.outcome == "answered" and handled.question is not None:
            return card_answer(self.renderer.question_card(self.view(handled.question)))
        return message_answer(handled.note or "Your answer could not be recorded.")


def _value(data) -> str:
    """The card's data as the button value the shared code reads (``{"question": id}``)."""
    if not isinstance(data, dict):
        return ""
    try:
        return json.dumps(data, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return ""
