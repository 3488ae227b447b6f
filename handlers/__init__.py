"""Slack listeners, registered in one place: the only code that knows the slash
command's name and the buttons' action ids. Each listener acknowledges Slack at once
(Slack waits 3 seconds at most), hands the request to the core, and sends the answer."""

from voisobot.buttons import AlertButtons
from voisobot.commands import Commands

from . import actions, commands

SLASH_COMMAND = "/voiso"


def register(app, answers: Commands, buttons: AlertButtons) -> None:
    commands.register(app, SLASH_COMMAND, answers)
    actions.register(app, answers, buttons)
