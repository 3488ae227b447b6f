"""The /voiso slash command."""

from handlers.reply import reply
from voisobot.commands import Commands


def register(app, name: str, answers: Commands) -> None:
    def voiso(ack, command, respond):
        ack()
        answer = answers.command(command["user_id"], command.get("channel_id"),
                                 command.get("text") or "")
        reply(respond, answer)

    app.command(name)(voiso)
