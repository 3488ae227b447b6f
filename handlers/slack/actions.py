"""The buttons: Acknowledge, Reopen and Profile on alerts, More on long /voiso answers, and
the answers to a "was this you?" DM."""

import json

from voisobot.acks import MessageRef
from voisobot.commands import MORE_ACTION, Commands
from voisobot.presses import ACK_ACTION, NO_ACTION, PROFILE_ACTION, REOPEN_ACTION, YES_ACTION
from voisobot.slack.buttons import AlertButtons, Press
from voisobot.slack.question_buttons import QuestionButtons

from .reply import reply


def register(app, answers: Commands, buttons: AlertButtons,
             questions: QuestionButtons | None = None) -> None:
    def alert_button(ack, body, action, respond):
        ack()
        note = buttons.press(press_of(body, action))
        if note is not None:
            reply(respond, note)

    def more(ack, body, action, respond):
        ack()
        answer = answers.more(body["user"]["id"], _channel(body), action.get("value") or "")
        reply(respond, answer)

    def profile(ack, body, action, respond):
        """The account's /voiso user answer, privately, to whoever pressed (if allowed)."""
        ack()
        press = press_of(body, action)
        reply(respond, answers.profile(press.user_id, press.channel_id, press.value))

    def answer(ack, body, action, respond):
        ack()
        note = questions.press(press_of(body, action))
        if note is not None:
            reply(respond, note)

    app.action(ACK_ACTION)(alert_button)
    app.action(REOPEN_ACTION)(alert_button)
    app.action(MORE_ACTION)(more)
    app.action(PROFILE_ACTION)(profile)
    if questions is not None:
        app.action(YES_ACTION)(answer)
        app.action(NO_ACTION)(answer)


def press_of(body: dict, action: dict) -> Press:
    """The press in a block_actions payload, read without trusting its shape: whatever
    it holds, the core gets a Press to check and audit."""
    user = _field(body, "user")
    return Press(_text(user.get("id")), _channel(body), _message(body),
                 _text(action.get("action_id")), _text(action.get("value")),
                 _text(user.get("name") or user.get("username")))


def _message(body: dict) -> MessageRef | None:
    """The message whose button was pressed: Slack names it in ``container``, and in
    ``channel`` and ``message`` too."""
    container = _field(body, "container")
    channel = container.get("channel_id") or _field(body, "channel").get("id")
    ts = container.get("message_ts") or _field(body, "message").get("ts")
    if not isinstance(channel, str) or not isinstance(ts, str) or not channel or not ts:
        return None
    return MessageRef(channel, ts)


def _channel(body: dict) -> str | None:
    channel = _field(body, "channel").get("id")
    return channel if isinstance(channel, str) else None


def _field(body: dict, name: str) -> dict:
    value = body.get(name)
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    """A payload value as text: a button's value is text in every payload Slack sends."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
