"""The /voiso slash command."""

from voisobot.commands import Commands

from .reply import reply


def register(app, name: str, answers: Commands) -> None:
    def voiso(ack, command, respond):
        ack()
        answer = answers.command(command["user_id"], command.get("channel_id"),
                                 command.get("text") or "")
        reply(respond, answer)

    app.command(name)(voiso)
