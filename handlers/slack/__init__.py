"""Slack listeners, registered in one place: the only code that knows the slash
command's name and the buttons' action ids. Each listener acknowledges Slack at once
(Slack waits 3 seconds at most), hands the request to the core, and sends the answer."""

from voisobot.commands import Commands
from voisobot.slack.buttons import AlertButtons
from voisobot.slack.home import AppHome
from voisobot.slack.question_buttons import QuestionButtons

from . import actions, commands, home

SLASH_COMMAND = "/voiso"


def register(app, answers: Commands, buttons: AlertButtons,
             questions: QuestionButtons | None = None, app_home: AppHome | None = None) -> None:
    """``questions``: the "was this you?" buttons, when [confirm] is on."""
    commands.register(app, SLASH_COMMAND, answers)
    actions.register(app, answers, buttons, questions)
    if app_home is not None:
        home.register(app, app_home)
