"""``@Voiso <command>`` in Teams: the same command layer as /voiso, answered as a card.

What the user typed goes through voisobot.commands (``parse``, ``ANSWERS``, the Guard with
its access check and audit entry) exactly as a /voiso command does; only the last step
differs. The answer the Slack renderer built is a settled message whose every text is
literal (rich_text and plain_text: slack.render.settled_message), so its text can be read back
as it will be shown and put into an Adaptive Card 1.4, each line one TextBlock escaped with
teams.cards.teams_markdown, the escaping of the webhook cards. No event text is read as
markdown, HTML or a mention, and the card gets the same checks and 28 KB limit.

A long list ends with a "More" button, as in Slack: an ``Action.Execute`` (verb
``voiso_more``, data ``{"more": <the Slack button's value>}``) whose invoke is answered by
``TeamsAnswers.more`` through the same ``Commands.more``, so the value is checked as
strictly as typed input and the press is audited. Its answer is the next page, which
Teams puts in place of the pressed card.

An alert card's "Profile" button (verb ``voiso_profile``, data ``{"alert": id}``) is
``/voiso user`` of the account the stored alert is about, through ``Commands.profile``.
The handler posts it in the alert's thread: an invoke's own card would replace the alert.
"""

import json
from typing import Any

from voisobot.commands import MORE_ACTION, Answer, Commands
from voisobot.render import one_line
from voisobot.teams.cards import CARD_VERSION, checked_card, fitted, teams_markdown

# How a non-text rich text element reads (a Slack mention means nothing in Teams).
_SIGILS = {"user": "@", "channel": "#", "usergroup": "@", "broadcast": "@"}


class TeamsAnswers:
    """Answers to what a Teams user typed after the bot's mention, as Adaptive Cards."""

    def __init__(self, commands: Commands):
        self.commands = commands

    def answer(self, user_id: str, conversation_id: str | None, text: str) -> dict:
        """The card answering ``text`` (the mention already stripped), audited by the Guard
        with the user's Entra object id and the channel or chat id."""
        return card_from_answer(self.commands.command(user_id, conversation_id, text).message)

    def more(self, user_id: str, conversation_id: str | None, data) -> dict:
        """The next page, for a press of a card's "More" (its invoke's ``data``); audited
        by the Guard like a Slack "More", whatever the data holds."""
        value = data.get("more") if isinstance(data, dict) else None
        value = value if isinstance(value, str) else _value(data)
        return card_from_answer(self.commands.more(user_id, conversation_id, value).message)


    def profile(self, user_id: str, conversation_id: str | None, data) -> Answer:
        """``/voiso user`` of the account an alert card is about, for a press of its
        Profile button (data ``{"alert": id}``): read from the stored alert, never from the
        data; audited by the Guard like a Slack press."""
        return self.commands.profile(user_id, conversation_id, _value(data))


def _value(data) -> str:
    """A press's data as the value a Slack button carries: JSON text (checked later as
    untrusted, whatever it holds)."""
    return json.dumps(data, default=repr)[:2000] if not isinstance(data, str) else data


def card_from_answer(message: dict) -> dict:
    """A settled Slack answer as an Adaptive Card of plain TextBlocks."""
    body: list[dict] = []
    actions: list[dict] = []
    separate = False
    for block in message.get("blocks") or [{"type": "context", "elements": [
            {"type": "plain_text", "text": message.get("text", "")}]}]:
        kind = block.get("type")
        if kind == "divider":
            separate = True
            continue
        if kind == "actions":
            actions += _more_actions(block)
            continue
        lines = _lines(block)
        for i, (line, bold) in enumerate(lines):
            node: dict[str, Any] = {"type": "TextBlock", "wrap": True,
                                    "text": teams_markdown(line) or "-"}
            if bold or kind == "header":
                node["weight"] = "Bolder"
            if kind == "context":
                node.update(isSubtle=True, size="Small")
            if separate and i == 0:
                node["separator"] = True
            body.append(node)
        separate = separate and not lines
    card: dict[str, Any] = {"type": "AdaptiveCard", "version": CARD_VERSION,
                            "body": body or [_text_block("-")]}
    if actions:
        card["actions"] = actions
    return fitted(checked_card(card, set()))


def _more_actions(block: dict) -> list[dict]:
    """The Slack answer's "More" button as an Action.Execute carrying the same value."""
    return [{"type": "Action.Execute", "title": "More", "verb": MORE_ACTION,
             "data": {"more": element["value"]}}
            for element in block.get("elements", [])
            if element.get("action_id") == MORE_ACTION and isinstance(element.get("value"), str)]


def text_card(*lines: str) -> dict:
    """A card of plain lines, escaped as every card's text is."""
    return checked_card({"type": "AdaptiveCard", "version": CARD_VERSION,
                         "body": [_text_block(line) for line in lines]}, set())


def _text_block(text: str) -> dict:
    return {"type": "TextBlock", "wrap": True, "text": teams_markdown(text)}


def _lines(block: dict) -> list[tuple[str, bool]]:
    """A block's text as (line, whether all of it is bold), in order."""
    kind = block.get("type")
    if kind == "rich_text":
        return [line for section in block.get("elements", [])
                for line in _rich_lines(section.get("elements", []))]
    if kind == "header":
        return [(block["text"]["text"], True)]
    if kind == "context":
        return [(" · ".join(e.get("text", "") for e in block.get("elements", [])), False)]
    if kind == "section":  # fields: plain_text, one line each
        return [(field.get("text", ""), False) for field in block.get("fields", [])]
    return []


def _rich_lines(elements: list[dict]) -> list[tuple[str, bool]]:
    """Rich text elements split into lines at the templates' own line breaks (event text
    never holds one: the renderer shows it as \\n)."""
    lines: list[tuple[str, bool]] = []
    text, all_bold = "", True
    for element in elements:
        part = _element_text(element)
        bold = bool((element.get("style") or {}).get("bold"))
        pieces = part.split("\n")
        for j, piece in enumerate(pieces):
            if j:
                lines.append((text, all_bold and bool(text)))
                text, all_bold = "", True
            text += piece
            all_bold = all_bold and (bold or not piece.strip())
    if text or not lines:
        lines.append((text, all_bold and bool(text)))
    return [(one_line(line), bold) for line, bold in lines if line.strip()]


def _element_text(element: dict) -> str:
    kind = element.get("type")
    if kind == "text":
        return element.get("text", "")
    if kind == "link":
        return element.get("text") or element.get("url", "")
    if kind == "emoji":
        return ""
    return _SIGILS.get(kind, "") + str(element.get(f"{kind}_id", element.get("range", "")))
