"""A settled Slack message (slack.render.settled_message) as lines of plain text, for a
console that stands in for Slack (the demo without a token).

The layout comes from the blocks: a header line, the text of each section (its line breaks
are the template's own: a value's are shown as ``\\n`` by the renderer), one line per field,
a context block on one line, buttons as ``[Acknowledge]``. Every piece passes through
render.one_line, so nothing a value holds can start a line, move the cursor or colour the
console.
"""

from typing import Any

from voisobot.render import one_line

CONTEXT_SEPARATOR = "  ·  "


def message_lines(message: dict) -> list[str]:
    lines: list[str] = []
    for block in all_blocks(message):
        lines += _block_lines(block)
    return lines or [one_line(message.get("text", ""))]


def all_blocks(message: dict) -> list[dict]:
    """The message's blocks in the order Slack shows them: its own (the header), then those
    of its attachments (the body beside the severity's colour bar)."""
    return [*(message.get("blocks") or []),
            *(block for attachment in message.get("attachments") or []
              for block in attachment.get("blocks") or [])]


def _block_lines(block: dict) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return [f"== {_text(block.get('text'))} =="]
    if kind == "rich_text":
        return [one_line(line) for section in block.get("elements", [])
                for line in "".join(_rich(e) for e in section.get("elements", [])).split("\n")]
    if kind == "section":
        lines = [one_line(line) for line in _text(block.get("text"), keep_breaks=True)
                 .split("\n")] if block.get("text") else []
        return lines + [f"  {_text(field)}" for field in block.get("fields", [])]
    if kind == "context":
        return ["  " + CONTEXT_SEPARATOR.join(_text(e) for e in block.get("elements", []))]
    if kind == "actions":
        return [" ".join(f"[{_text(e.get('text'))}]" for e in block.get("elements", []))]
    if kind == "divider":
        return ["-" * 40]
    return [f"[{one_line(kind)} block]"]


def _text(text_object: Any, keep_breaks: bool = False) -> str:
    text = text_object.get("text", "") if isinstance(text_object, dict) else ""
    return str(text) if keep_breaks else one_line(text)


def _rich(element: dict) -> str:
    """A rich text element as a reader sees it; only a text element's own line breaks
    (the template's) survive, to be split into lines."""
    kind = element.get("type")
    if kind == "text":
        return str(element.get("text", ""))
    if kind == "link":
        url = one_line(element.get("url"))
        return f"{one_line(element['text'])} <{url}>" if element.get("text") else url
    if kind == "emoji":
        return f":{one_line(element.get('name'))}:"
    if kind == "broadcast":
        return f"@{one_line(element.get('range'))}"
    if kind == "channel":
        return f"#{one_line(element.get('channel_id'))}"
    return f"@{one_line(element.get(f'{kind}_id'))}"  # user, usergroup
