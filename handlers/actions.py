"""The buttons: Acknowledge and Reopen on alerts, More on long /voiso answers."""

from handlers.reply import reply
from voisobot.buttons import ACK_ACTION, REOPEN_ACTION, AlertButtons, Press
from voisobot.commands import MORE_ACTION, Commands


def register(app, answers: Commands, buttons: AlertButtons) -> None:
    def alert_button(ack, body, action, respond):
        ack()
        note = buttons.press(Press(body["user"]["id"], _channel(body), action["action_id"],
                                   action.get("value") or ""))
        if note is not None:
            reply(respond, note)

    def more(ack, body, action, respond):
        ack()
        answer = answers.more(body["user"]["id"], _channel(body), action.get("value") or "")
        reply(respond, answer)

    app.action(ACK_ACTION)(alert_button)
    app.action(REOPEN_ACTION)(alert_button)
    app.action(MORE_ACTION)(more)


def _channel(body: dict) -> str | None:
    return (body.get("channel") or {}).get("id")
