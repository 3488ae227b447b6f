"""Values the bot made itself, as types: the only values a template may turn into a link, a
mention or a button's value. An event field is a plain ``str`` and never one of these, so
no template, however it is written, can make a login name into a link or a mention."""

import re

from voisobot.errors import RenderError

_SLACK_ID = re.compile(r"[UWCGS][A-Z0-9]{2,30}")


class SafeUrl(str):
    """A URL the bot built from validated values (an IP address parsed by ipaddress)."""


class SlackId(str):
    """A Slack user, channel or user-group ID that Slack or the config gave the bot (who
    clicked, where an alert lives)."""

    def __new__(cls, value: str):
        if not isinstance(value, str) or not _SLACK_ID.fullmatch(value):
            raise RenderError(f"not a Slack ID: {value!r:.40}")
        return super().__new__(cls, value)


class ButtonValue(str):
    """A button's value the bot made (``{"alert": 42}``, a "more" query): Slack hands it
    back and never shows it."""
