"""Alerts as Slack Block Kit messages, from the shared template environment of
voisobot.render.

- no value is ever sent where Slack parses markup: text is written in the dialect of
  ``slack.text`` and becomes ``rich_text`` or ``plain_text`` with ``emoji: false``; a mention,
  a link or a style exists only where the template's own source wrote a tag, or where a typed
  value the bot made (a SlackId, a SafeUrl) asked for one;
- an alert's header stays at the top of the message and its other blocks go into one
  attachment, whose ``color`` (from SEVERITY_COLOR, never from a template) is the severity's
  bar down the side: Block Kit has no colour of its own. The top-level ``text`` stays the
  notification only, since the message still has top-level blocks;
- after rendering, only the block types an alert needs are kept, Slack's limits are enforced
  with a visible ``…``, and the message is checked with slack_sdk's Block Kit models; a
  template that fails falls back to the generic template, then to a minimal message built
  here.
"""

import json
import logging
from pathlib import Path
from typing import Any

from markupsafe import Markup
from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from voisobot.alert_extras import AlertOptions, extras_context
from voisobot.errors import RenderError
from voisobot.render import (
    SEVERITY_EMOJI,
    AlertView,
    QuestionView,
    existing_template,
    json_fragment,
    one_line,
    question_context,
    rendered_or_fallback,
    safe_environment,
    template_context,
)
from voisobot.resources import packaged
from voisobot.slack.text import (
    SlackTextExtension,
    Tokens,
    escape_controls,
    limited_elements,
    notification,
    plain,
    rich_elements,
    truncate,
    truncate_escaped,
)
from voisobot.values import SlackId

log = logging.getLogger(__name__)

BUILTIN_TEMPLATES = packaged("templates", "slack")
DIGEST_TEMPLATE = "digest.json.j2"

# Slack's limits (Block Kit reference): the renderer truncates to these.
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100  # of a view: the App Home
HOME_TEMPLATE = "home.json.j2"
MAX_TEXT = {"header": 150, "section": 3000, "context": 2000, "field": 2000, "button": 75}
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 3000
MAX_BUTTON_VALUE = 2000
MAX_ID = 255
# The colour bar of an alert, per severity: the colours of SEVERITY_EMOJI's circles.
SEVERITY_COLOR = {"info": "#8d959e", "low": "#1d76db", "medium": "#f2c744", "high": "#f57c00",
                  "critical": "#d93025"}
UNKNOWN_SEVERITY_COLOR = "#8d959e"
NEXT_STEP_BLOCK = "voiso_next_step"  # the block_id of the next-step line (not in replies)


class SlackRenderer:
    def __init__(self, override_dir: Path | None = None, builtin_dir: Path = BUILTIN_TEMPLATES,
                 options: AlertOptions | None = None):
        """``options``: the runbooks, look-up links and Acknowledge threshold of [alerts]."""
        self.options = options or AlertOptions()
        self.tokens = Tokens()
        self.env = safe_environment(override_dir, builtin_dir, one_line,
                                    extensions=[SlackTextExtension])
        self.env.slack_tokens = self.tokens
        self.env.filters.update(mention=self._mention, link=self._link, url=self._url)
        self.env.tests["slack_id"] = lambda value: isinstance(value, SlackId)

    def render(self, alert: AlertView) -> dict:
        """The message for an alert: its kind's template, else the generic one, else a
        minimal message built here — an alert is never lost to a template. Its header leads
        the message; the rest is in an attachment coloured for its severity."""
        return coloured(self._render_blocks(alert), alert.severity)

    def _render_blocks(self, alert: AlertView) -> dict:
        return rendered_or_fallback(self.render_with, self.template_for(alert.event.kind),
                                    alert, minimal_message, "template")

    def render_answer(self, name: str, **context: Any) -> dict:
        """The answer to a /voiso command from ``commands/<name>.json.j2``; values in
        ``context`` are escaped like event fields. A failing template gives a short
        message that points at the log, never a stack trace in Slack."""
        template = f"commands/{name}.json.j2"
        try:
            return self._settled_json(self.env.get_template(template).render(**context))
        except Exception as exc:
            log.error("template %s failed: %s: %s", template, type(exc).__name__, one_line(exc))
            return self.settled({"text": f"The answer could not be shown: template {template} "
                                         "failed (the error is in the bot's log)."})

    def render_question(self, view: QuestionView) -> dict:
        """The direct message asking "was this you?" (or, once answered or timed out, what
        became of it). A failing template falls back to a minimal question."""
        return self._render_confirmation("question.json.j2", view)

    def render_escalation(self, view: QuestionView) -> dict:
        """The message to the escalation channel: the responders' user group, and why."""
        return self._render_confirmation("escalation.json.j2", view)

    def _render_confirmation(self, name: str, view: QuestionView) -> dict:
        try:
            return self._settled_json(self.env.get_template(name).render(
                **question_context(view)))
        except Exception as exc:
            log.error("template %s failed: %s: %s", name, type(exc).__name__, one_line(exc))
            return minimal_message(view.alert)

    def render_digest(self, view) -> dict:
        """The digest (voisobot.digest.DigestView) from digest.json.j2; a failing template
        gives a minimal message built here: a period's digest is never lost to a template."""
        try:
            return self._settled_json(self.env.get_template(DIGEST_TEMPLATE).render(
                **view.context()))
        except Exception as exc:
            log.error("template %s failed: %s: %s", DIGEST_TEMPLATE, type(exc).__name__,
                      one_line(exc))
            text = view.summary()
            return {"text": truncate_escaped(escape_controls(text), MAX_FALLBACK_TEXT),
                    "blocks": [_rich_text_block([{"type": "text", "text": text}])],
                    "mrkdwn": False}

    def render_home(self, **context: Any) -> dict:
        """The App Home view (``type: home``) from home.json.j2, as safe as a message (its
        blocks settled the same way) and checked with slack_sdk's View model. A failing
        template gives a short view that points at the log."""
        try:
            message = self._settled_json(self.env.get_template(HOME_TEMPLATE).render(
                **context), max_blocks=MAX_VIEW_BLOCKS)
        except Exception as exc:
            log.error("template %s failed: %s: %s", HOME_TEMPLATE, type(exc).__name__,
                      one_line(exc))
            message = self.settled({"text": f"The Home could not be shown: template "
                                            f"{HOME_TEMPLATE} failed (see the bot's log)."})
        view = {"type": "home", "blocks": message["blocks"]}
        try:
            View(**view).validate_json()
        except Exception as exc:
            raise RenderError(f"invalid Home view: {exc}") from None
        return view

    def render_reply(self, alert: AlertView) -> dict:
        """One event of a group, as a thread reply: its summary and facts, no header or
        button or next step (the group's message has them)."""
        message = self._render_blocks(alert)
        kept = [block for block in message["blocks"] if block["type"] in ("rich_text", "context")
                and block.get("block_id") != NEXT_STEP_BLOCK]
        return {**message, "blocks": kept or message["blocks"]}

    def template_for(self, kind: str) -> str:
        return existing_template(self.env, kind)

    def render_with(self, name: str, alert: AlertView) -> dict:
        context = {**template_context(alert),
                   **extras_context(self.options, alert.event, alert.severity)}
        return self._settled_json(self.env.get_template(name).render(**context))

    def settled(self, message: Any, max_blocks: int = MAX_BLOCKS) -> dict:
        """A rendered message as Slack gets it (see ``settled_message``)."""
        return settled_message(message, self.tokens, max_blocks)

    def _settled_json(self, text: str, max_blocks: int = MAX_BLOCKS) -> dict:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RenderError(f"not valid JSON ({exc.msg} at line {exc.lineno} column "
                              f"{exc.colno})") from None
        return self.settled(message, max_blocks)

    def _mention(self, value: Any) -> Markup:
        return Markup(self.tokens.mention(value))

    def _link(self, url: Any, label: Any = "") -> Markup:
        return Markup(json_fragment(self.tokens.link(url, one_line(label) or str(url))))

    def _url(self, url: Any) -> Markup:
        return Markup(json_fragment(self.tokens.link(url, "")))


# --- the message as Slack gets it -------------------------------------------------------------

def settled_message(message: Any, tokens: Tokens, max_blocks: int = MAX_BLOCKS) -> dict:
    """Only blocks whose text Slack shows literally, within Slack's limits, validated.

    Section text becomes rich_text, every other text object plain_text with emoji off, and
    the top-level text the notification, posted with mrkdwn off. A message with no blocks
    gets its text as one, so that its text is only ever a notification.
    """
    if not isinstance(message, dict) or not isinstance(message.get("text"), str) \
            or not isinstance(message.get("blocks", []), list):
        raise RenderError('expected an object with a "text" string and a "blocks" list')
    runs = tokens.runs(message["text"])
    settle = _Settle(tokens)
    blocks = [new for block in message.get("blocks", [])[:max_blocks]
              for new in settle.block(block)][:max_blocks]
    if not blocks:
        blocks = [_rich_text_block(rich_elements(runs))]
    try:
        for block in blocks:  # slack_sdk's own checks of Block Kit's rules; rich_text is built
            if block["type"] != "rich_text":  # by _rich_text_block alone (and the tests
                Block.parse(block).to_dict()  # check it): its models cost 5 ms a message
    except Exception as exc:
        raise RenderError(f"invalid Block Kit: {exc}") from None
    return {"text": truncate_escaped(notification(runs), MAX_FALLBACK_TEXT), "blocks": blocks,
            "mrkdwn": False}


def coloured(message: dict, severity: str) -> dict:
    """The message with its leading header blocks at the top and the others in one
    attachment with the severity's colour. A message with no header (the minimal one) stays
    as it is: without top-level blocks Slack would show the notification text as its body."""
    blocks = message["blocks"]
    top = 0
    while top < len(blocks) and blocks[top]["type"] == "header":
        top += 1
    if top == 0 or top == len(blocks):
        return message
    attachment = {"color": SEVERITY_COLOR.get(severity, UNKNOWN_SEVERITY_COLOR),
                  "blocks": blocks[top:]}
    try:  # slack_sdk's checks of an attachment (colour, no fields beside blocks)
        BlockAttachment(blocks=[], color=attachment["color"]).validate_json()
    except Exception as exc:
        raise RenderError(f"invalid attachment: {exc}") from None
    return {**message, "blocks": blocks[:top], "attachments": [attachment]}


def message_blocks(message: dict) -> list[dict]:
    """Every block of a message, the top-level ones and then its attachments'."""
    return [*message.get("blocks", []),
            *(block for attachment in message.get("attachments", [])
              for block in attachment.get("blocks", []))]


def _rich_text_block(elements: list[dict], block_id: str | None = None) -> dict:
    if elements and elements[-1]["type"] == "text":  # a text ends where its last word ends
        elements[-1]["text"] = elements[-1]["text"].rstrip("\n") or "-"
    elements = limited_elements(elements, MAX_TEXT["section"]) or [{"type": "text", "text": "-"}]
    block = {"type": "rich_text", "elements": [{"type": "rich_text_section",
                                                "elements": elements}]}
    return {**block, "block_id": block_id} if block_id else block


class _Settle:
    """What each kind of block becomes (section, context, header, actions, rich_text,
    divider: an alert needs no other kind)."""

    def __init__(self, tokens: Tokens):
        self.tokens = tokens

    def block(self, block: Any) -> list[dict]:
        if not isinstance(block, dict):
            raise RenderError(f"a block must be an object, got {type(block).__name__}")
        kind = block.get("type")
        settle = getattr(self, f"_{kind}", None) if isinstance(kind, str) else None
        if settle is None:
            raise RenderError(f"block type {kind!r} is not allowed in the bot's messages")
        block_id = block.get("block_id")
        if block_id is not None and (not isinstance(block_id, str) or len(block_id) > MAX_ID):
            raise RenderError("block_id must be a string of at most 255 characters")
        return settle(block, block_id)

    def _section(self, block: dict, block_id: str | None) -> list[dict]:
        if "accessory" in block:
            raise RenderError("section accessories are not supported; use an actions block")
        settled = []
        if block.get("text") is not None:
            settled.append(_rich_text_block(self._elements(block["text"]), block_id))
        if block.get("fields"):
            fields = [self.plain_text(item, MAX_TEXT["field"])
                      for item in _listed(block["fields"], "fields")[:MAX_FIELDS]]
            settled.append({"type": "section", "fields": fields})
        return settled

    def _context(self, block: dict, block_id: str | None) -> list[dict]:
        elements = [self.plain_text(item, MAX_TEXT["context"]) for item in
                    _listed(block.get("elements"), "context elements")[:MAX_CONTEXT_ELEMENTS]]
        return [_with_id({"type": "context", "elements": elements}, block_id)]

    def _header(self, block: dict, block_id: str | None) -> list[dict]:
        text = block.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text":
            raise RenderError("header text must be a plain_text object")
        return [_with_id({"type": "header", "text": self.plain_text(text, MAX_TEXT["header"])},
                         block_id)]

    def _actions(self, block: dict, block_id: str | None) -> list[dict]:
        buttons = [self._button(item) for item in _listed(block.get("elements"), "actions")]
        return [_with_id({"type": "actions", "elements": buttons}, block_id)]

    def _rich_text(self, block: dict, block_id: str | None) -> list[dict]:
        sections = []
        for section in _listed(block.get("elements"), "rich_text elements"):
            if not isinstance(section, dict) or section.get("type") != "rich_text_section":
                raise RenderError("rich_text may hold rich_text_section elements only")
            elements = [new for element in _listed(section.get("elements"), "rich text")
                        for new in self._rich_element(element)]
            sections.extend(_rich_text_block(elements)["elements"])
        return [_with_id({"type": "rich_text", "elements": sections}, block_id)] if sections \
            else []

    def _divider(self, block: dict, block_id: str | None) -> list[dict]:
        return [_with_id({"type": "divider"}, block_id)]

    def _button(self, element: Any) -> dict:
        if not isinstance(element, dict) or element.get("type") != "button":
            raise RenderError("an actions block may hold buttons only")
        text = element.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text":
            raise RenderError("button text must be a plain_text object")
        button = {key: element[key] for key in ("action_id", "value", "style") if key in element}
        for key in ("action_id", "value"):
            limit = MAX_BUTTON_VALUE if key == "value" else MAX_ID
            if key in button and (not isinstance(button[key], str) or len(button[key]) > limit):
                raise RenderError(f"button {key} must be a string of at most {limit} characters")
        if "url" in element:
            button["url"] = self._url(element["url"])
        return {"type": "button", "text": self.plain_text(text, MAX_TEXT["button"]), **button}

    def _rich_element(self, element: Any) -> list[dict]:
        """A template's own rich text: its text is the dialect; mentions and links are
        written as tags, never as elements (an element's id could be an event field)."""
        if not isinstance(element, dict) or element.get("type") != "text" \
                or not isinstance(element.get("text"), str):
            raise RenderError("write rich text as text elements; mentions, links and emoji "
                              "are tags in the text")
        style = {name for name, on in (element.get("style") or {}).items() if on is True}
        elements = rich_elements(self.tokens.runs(element["text"]))
        for item in elements:
            if style and item["type"] == "text":
                item["style"] = {name: True for name in sorted(style | set(item.get("style", {})))}
        return elements

    def _elements(self, text_object: Any) -> list[dict]:
        return rich_elements(self.tokens.runs(_text_of(text_object)))

    def plain_text(self, text_object: Any, limit: int) -> dict:
        text = plain(self.tokens.runs(_text_of(text_object))) or "-"
        return {"type": "plain_text", "text": truncate(text, limit), "emoji": False}

    def _url(self, value: Any) -> str:
        runs = self.tokens.runs(value) if isinstance(value, str) else []
        if len(runs) != 1 or runs[0].kind != "link":
            raise RenderError("a button's URL must come from the bot (the url filter), never "
                              "from an event field")
        return runs[0].value


def _text_of(text_object: Any) -> str:
    if not isinstance(text_object, dict) or text_object.get("type") not in ("plain_text",
                                                                            "mrkdwn") \
            or not isinstance(text_object.get("text"), str):
        raise RenderError('expected a text object: {"type": "mrkdwn", "text": "…"}')
    return text_object["text"]


def _listed(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise RenderError(f"{what} must be a list")
    return value


def _with_id(block: dict, block_id: str | None) -> dict:
    return {**block, "block_id": block_id} if block_id else block


def minimal_message(alert: AlertView) -> dict:
    """The last resort when even the generic template fails: built here, still literal."""
    e = alert.event
    text = (f"{SEVERITY_EMOJI.get(alert.severity, '')} [{one_line(alert.severity).upper()}] "
            f"Voiso {one_line(e.kind)} at {one_line(e.time)}: user {one_line(e.user or '-')}, "
            f"by {one_line(e.who or '-')}, ip {one_line(e.ip or e.to_value or '-')}")
    return {"text": truncate_escaped(escape_controls(text), MAX_FALLBACK_TEXT),
            "blocks": [_rich_text_block([{"type": "text", "text": text}])], "mrkdwn": False}
