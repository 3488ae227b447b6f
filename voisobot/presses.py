"""What a button press carries, on either platform: the verbs (Slack's action ids, the
Teams cards' Action.Execute verbs: the same words) and the row ids in their values, read as
untrusted, whoever built the press."""

import json

from voisobot.errors import VoisoBotError

ACK_ACTION = "voiso_ack"
REOPEN_ACTION = "voiso_reopen"
YES_ACTION = "voiso_confirm_yes"
NO_ACTION = "voiso_confirm_no"
PROFILE_ACTION = "voiso_profile"  # an alert's "Profile" button: /voiso user of its account
# The button label of voiso_button_presses_total, whichever platform or view was pressed.
BUTTON_NAMES = {ACK_ACTION: "acknowledge", REOPEN_ACTION: "reopen", YES_ACTION: "confirm_yes",
                NO_ACTION: "confirm_no"}
MAX_ALERT_ID = 2**63 - 1  # SQLite's largest rowid: a larger id names no alert
DETAIL_VALUE_CHARS = 200  # of a button's value kept in the audit table


class NotOurButton(VoisoBotError):
    """The press carries a value or an action the bot never rendered."""


class NotThisMessage(VoisoBotError):
    """The press names an alert that was not posted where the button was pressed."""


def alert_id_of(value: str) -> int:
    """The alert id in a button's value; the value comes back from Slack as text."""
    return id_in_value(value, "alert")


def question_id_of(value: str) -> int:
    """The question id in a button's value (``{"question": 7}``)."""
    return id_in_value(value, "question")


def id_in_value(value: str, name: str) -> int:
    """The row id a button's value (``{"<name>": 42}``) names, checked as untrusted: a
    value that is not ours raises NotOurButton saying why."""
    article = "an" if name[:1] in "aeiou" else "a"
    try:
        row_id = json.loads(value)[name]
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        raise NotOurButton(f"not {article} {name} button value: {value[:80]!r}") from None
    if not isinstance(row_id, int) or isinstance(row_id, bool) \
            or not 1 <= row_id <= MAX_ALERT_ID:
        raise NotOurButton(f"not {article} {name} id: {short(repr(row_id), 80)}")
    return row_id


def short(text: str | None, limit: int = 40) -> str:
    """At most ``limit`` characters of a value that came from outside, for the audit and
    the log."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."
