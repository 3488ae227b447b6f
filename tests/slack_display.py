"""What Slack shows for a message, as the tests reason about it.

A model of Slack's documented parsing (api.slack.com: the text object and the
``rich_text`` block of Block Kit, and ``chat.postMessage``'s ``mrkdwn`` argument):
- a ``rich_text`` block's ``text`` elements are shown as they are, in the style the element
  sets; mentions, broadcasts, links and emoji exist only as elements of their own;
- a ``plain_text`` object with ``"emoji": false`` is shown as it is;
- ``mrkdwn`` and ``plain_text`` with emoji on are parsed (styles, emoji, links, mentions);
- the top-level ``text`` posted with ``mrkdwn: false`` is not styled, but Slack's control
  sequences (``<@U…>``, ``<!here>``, ``<url|label>``) still act, and ``&amp;``, ``&lt;``,
  ``&gt;`` are shown as ``&``, ``<``, ``>``.
- an attachment's ``blocks`` are shown like the message's own, below them, beside a bar of
  the attachment's ``color``;
``shown(message)`` is what a reader sees: literal pieces of text, each with its style, and
the "live" things (mentions, links, emoji) that Slack made of the message.
"""

import re
from dataclasses import dataclass

_CONTROL = re.compile(r"<([^<>]*)>")


@dataclass(frozen=True)
class Shown:
    literal: list[tuple[str, frozenset]]  # (text, style) as the reader sees it
    live: list[tuple]                     # mentions, broadcasts, links, emoji Slack makes
    parsed: list[str]                     # texts Slack would parse as markup (must be none)


def shown(message: dict) -> Shown:
    result = Shown([], [], [])
    _notification(message, result)
    for attachment in message.get("attachments", []):  # text, pretext, fields…: mrkdwn
        result.parsed.extend(str(attachment[key]) for key in attachment
                             if key not in ("color", "blocks"))
    for block in blocks_of(message):
        _block(block, result)
    return result


def blocks_of(message: dict) -> list[dict]:
    """The message's blocks as shown: its own, then each attachment's."""
    return [*message.get("blocks", []), *(block for attachment in message.get("attachments", [])
                                          for block in attachment.get("blocks", []))]


def _notification(message: dict, result: Shown) -> None:
    if message.get("mrkdwn") is not False:
        result.parsed.append(message["text"])
        return
    position = 0
    text = message["text"]
    for match in _CONTROL.finditer(text):
        result.literal.append((_decoded(text[position:match.start()]), frozenset({"notice"})))
        result.live.append(("control", match.group(1)))
        position = match.end()
    result.literal.append((_decoded(text[position:]), frozenset({"notice"})))


def _decoded(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _block(block: dict, result: Shown) -> None:
    if block["type"] == "rich_text":
        for section in block["elements"]:
            assert section["type"] == "rich_text_section", section["type"]
            for element in section["elements"]:
                _rich_element(element, result)
        return
    for node in _text_objects(block):
        if node["type"] == "plain_text" and node.get("emoji") is False:
            result.literal.append((node["text"], frozenset()))
        else:
            result.parsed.append(node["text"])


def _rich_element(element: dict, result: Shown) -> None:
    style = frozenset(name for name, on in element.get("style", {}).items() if on)
    if element["type"] == "text":
        result.literal.append((element["text"], style))
    else:
        result.live.append((element["type"], *sorted((k, str(v)) for k, v in element.items()
                                                    if k != "type")))


def _text_objects(tree):
    if isinstance(tree, dict):
        if tree.get("type") in ("plain_text", "mrkdwn") and isinstance(tree.get("text"), str):
            yield tree
            return
        for value in tree.values():
            yield from _text_objects(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _text_objects(item)


def assert_shown_literally(message: dict, value: str, baseline: dict,
                           must_appear: bool = True) -> None:
    """``value`` (as one_line shows it) is on screen as typed, in one piece of one style,
    and it made nothing live: the mentions, links and emoji are those of ``baseline``, the
    same message rendered with a harmless value; no text is left for Slack to parse."""
    seen, before = shown(message), shown(baseline)
    assert seen.parsed == [], f"Slack would parse these as markup: {seen.parsed}"
    assert seen.live == before.live, "a value made a mention, a link or an emoji"
    if must_appear and value:
        pieces = [text for text, _ in seen.literal]
        assert any(value in text for text in pieces), (value, pieces)


def readable(message: dict, styles: bool = False) -> str:
    """The message's blocks as one text a test can search: literal text as shown, and each
    mention or link as Slack's own syntax for it (``<@U…>``, ``<#C…>``, ``<url|label>``);
    with ``styles``, bold and code text wrapped in ``*`` and backticks, as a reader sees it."""
    parts = []
    for block in blocks_of(message):
        if block["type"] == "rich_text":
            parts.extend(_readable(element, styles) for section in block["elements"]
                         for element in section["elements"])
        else:
            parts.extend(node["text"] for node in _text_objects(block))
        parts.append("\n")
    return "".join(parts)


def _readable(element: dict, styles: bool) -> str:
    kind = element["type"]
    if kind == "text":
        style = element.get("style", {}) if styles else {}
        text = f"`{element['text']}`" if style.get("code") else element["text"]
        return f"*{text}*" if style.get("bold") else text
    if kind == "user":
        return f"<@{element['user_id']}>"
    if kind == "channel":
        return f"<#{element['channel_id']}>"
    if kind == "link":
        return f"<{element['url']}|{element['text']}>"
    if kind == "broadcast":
        return f"<!{element['range']}>"
    return f":{element.get('name', kind)}:"
