"""Alerts as Slack Block Kit messages, rendered from Jinja templates that are safe with
untrusted text whatever the template author writes.

Safety does not depend on the templates:
- every ``{{ expression }}`` passes through ``finalize``, which makes it one line with every
  invisible or line-breaking character shown as ``\\uXXXX`` (shown, not obeyed), and escapes
  it for JSON (no broken string). Its result is marked safe (autoescape is on), so the output
  of a macro or a block is not escaped twice; filters that would mark raw text safe are
  removed, and ``tojson`` escapes like ``finalize``;
- no value is ever sent where Slack parses markup: text is written in the dialect of
  ``slack_text`` and becomes ``rich_text`` or ``plain_text`` with ``emoji: false``; a mention,
  a link or a style exists only where the template's own source wrote a tag, or where a typed
  value the bot made (a SlackId, a SafeUrl) asked for one;
- templates run in Jinja's sandbox, and their output is data, never evaluated again, so a
  login name holding ``{{ 7*7 }}`` renders literally;
- after rendering, only the block types an alert needs are kept, Slack's limits are enforced
  with a visible ``…``, and the message is checked with slack_sdk's Block Kit models. A
  template that fails at any step, in any way, never loses the alert: the generic template
  renders it, then a minimal message built here, and the error is logged with the file name.
"""

import functools
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from slack_sdk.models.blocks import Block

from voisobot import lookalike
from voisobot.errors import RenderError
from voisobot.events import Event
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
from voisobot.values import ButtonValue, SafeUrl, SlackId

__all__ = ["ButtonValue", "RenderError", "SafeUrl", "SlackId"]  # re-exported for callers

log = logging.getLogger(__name__)

BUILTIN_TEMPLATES = packaged("templates", "slack")
GENERIC_TEMPLATE = "_generic.json.j2"
SEVERITY_EMOJI = {"info": "\u2139\ufe0f", "low": "🔵", "medium": "🟡", "high": "🟠",
                  "critical": "🔴"}

# Slack's limits (Block Kit reference): the renderer truncates to these.
MAX_BLOCKS = 50
MAX_TEXT = {"header": 150, "section": 3000, "context": 2000, "field": 2000, "button": 75}
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 3000
MAX_BUTTON_VALUE = 2000
MAX_ID = 255

# --- one line, nothing invisible -------------------------------------------------------------

# Unicode categories a reader cannot see, or that break or reorder a line: control (Cc),
# format (Cf: bidi overrides, zero-width joiners, the "tag" characters of ASCII smuggling),
# surrogate (Cs), private use (Co), unassigned (Cn), line and paragraph separators (Zl, Zp).
SHOWN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters that draw nothing (Hangul fillers, the blank Braille pattern), and the variation
# selectors 17-256, which only ever follow an ideograph and are used to hide data.
BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_ALSO_SHOWN = re.compile("[\u115f\u1160\u3164\uffa0\u2800\U000e0100-\U000e01ef]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@functools.lru_cache(maxsize=8192)
def _shown(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) in SHOWN_CATEGORIES or _ALSO_SHOWN.match(char):
        code = ord(char)
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return char


def one_line(value: Any) -> str:
    """Any value as the text people should see, before a format's own escaping: nothing
    for None, a time in UTC, one line with every invisible, line-breaking or reordering
    character shown as ``\\n``, ``\\u2028``, ``\\U000e0041``… (shown, not obeyed)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = when(value)
    text = str(value)
    if text.isprintable() and not _ALSO_SHOWN.search(text):
        return text  # the common case, checked in C
    return "".join(map(_shown, text))


def json_fragment(text: str) -> str:
    """Text as the inside of a JSON string literal."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def when(value: Any) -> str:
    """A stored time ("2026-11-24T14:02:03.000000Z") or a datetime, as people read it."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else value


# --- the template environment, shared with Teams ----------------------------------------------

@dataclass(frozen=True)
class AlertView:
    """What a template sees. ``event`` fields are untrusted; the rest is the bot's own."""

    event: Event
    severity: str
    alert_id: int | None = None
    context: tuple[str, ...] = ()  # what the cache knows, one line each
    group: dict[str, Any] | None = None  # a storm's summary, when grouped
    acked_by: str | None = None  # Slack user ID of who acknowledged it
    acked_at: datetime | None = None
    # "was this you?": one per person asked, {"state", "answer", "person" (a SlackId or
    # None), "email", "at"} (questions.py)
    confirmations: tuple[dict[str, Any], ...] = ()

    @property
    def event_count(self) -> int:
        """How many events the rendered message stands for."""
        return self.group["count"] if self.group else 1


@dataclass(frozen=True)
class QuestionView:
    """What a "was this you?" DM, or the escalation it led to, shows. ``alert`` is the
    alert's view (its event's fields are untrusted); the rest is the bot's own."""

    alert: AlertView
    question_id: int
    roles: tuple[str, ...]  # "user" (the account), "admin" (who made the change)
    person: SlackId | None
    email: str  # untrusted: it came in the event
    state: str
    answer: str | None = None
    answered_at: datetime | None = None
    if_not: str = ""
    usergroup: SlackId | None = None
    reason: str | None = None  # of an escalation: "no" or "timeout"
    link: SafeUrl | None = None  # to the alert's message in its channel
    timeout_minutes: int = 0


_UNSAFE_FILTERS = ("safe", "urlize", "xmlattr", "forceescape")


def safe_environment(override_dir: Path | None, builtin_dir: Path,
                     escape_text: Callable[[Any], str], extensions=()) -> SandboxedEnvironment:
    """A sandboxed Jinja environment whose every expression, and every ``tojson``, goes
    through ``escape_text`` (one output format's escaping) and then JSON escaping, with no
    filter that could bypass it. The user's directory, if any, overrides the built-in
    templates file by file."""
    def finalize(value: Any) -> Markup:
        # Markup is a macro's or a block's output (literal template text and values escaped
        # already), or a typed filter's: not escaped again.
        return value if isinstance(value, Markup) else Markup(json_fragment(escape_text(value)))

    def tojson(value: Any, indent: int | None = None) -> Markup:
        return Markup(json.dumps(_escaped_strings(value, escape_text), ensure_ascii=False,
                                 indent=indent))

    paths = [str(p) for p in (override_dir, builtin_dir) if p]
    env = SandboxedEnvironment(loader=jinja2.FileSystemLoader(paths), finalize=finalize,
                               autoescape=True, undefined=jinja2.StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True, extensions=extensions)
    for name in _UNSAFE_FILTERS:
        env.filters.pop(name, None)
    env.filters["e"] = env.filters["escape"] = finalize
    env.filters["tojson"] = tojson
    env.filters["when"] = when
    env.filters["mixed_scripts"] = lookalike.warning
    env.filters["button_value"] = button_value
    return env


def _escaped_strings(value: Any, escape_text: Callable[[Any], str]) -> Any:
    if isinstance(value, dict):
        return {escape_text(k): _escaped_strings(v, escape_text) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped_strings(item, escape_text) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return escape_text(value)


def button_value(value: Any) -> Markup:
    """A button's value, JSON-escaped only (Slack hands it back and never formats it)."""
    if not isinstance(value, ButtonValue):
        raise RenderError("button_value takes a value the bot made, never an event field")
    return Markup(json_fragment(value))


def template_name(kind: str) -> str:
    return kind.replace("/", ".") + ".json.j2"


def existing_template(env: SandboxedEnvironment, kind: str) -> str:
    """The kind's own template (the user's override first), else the generic one."""
    name = template_name(kind)
    try:
        env.loader.get_source(env, name)  # exists? (compiling is render's job)
    except jinja2.TemplateNotFound:
        return GENERIC_TEMPLATE
    return name


def rendered_or_fallback(render_with, name: str, alert: AlertView, last_resort,
                         what: str) -> dict:
    """``render_with(name, alert)``, else with the generic template, else ``last_resort``:
    whatever a template does (an error, a recursion, a message Slack would refuse), it is
    logged with its file name and never loses the alert."""
    for candidate in dict.fromkeys((name, GENERIC_TEMPLATE)):
        try:
            return render_with(candidate, alert)
        except Exception as exc:
            log.error("%s %s failed for %s alert: %s: %s; using the %s", what, candidate,
                      one_line(alert.event.kind), type(exc).__name__, one_line(exc),
                      "generic template" if candidate != GENERIC_TEMPLATE
                      else "built-in minimal one")
    return last_resort(alert)


def template_context(alert: AlertView) -> dict[str, Any]:
    e = alert.event
    return {
        "event": {"kind": e.kind, "type": e.type, "event": e.event, "time": e.time,
                  "callcenter": e.callcenter, "user": e.user, "who": e.who,
                  "access_group": e.access_group, "ip": e.ip, "from": e.from_value,
                  "to": e.to_value, "count": e.count, "params": e.params},
        "severity": alert.severity,
        "severity_emoji": SEVERITY_EMOJI.get(alert.severity, "❔"),
        "ack_value": ButtonValue(json.dumps({"alert": alert.alert_id}, separators=(",", ":"))),
        "context": alert.context, "group": alert.group,
        "ack": {"by": slack_id_or_text(alert.acked_by), "at": alert.acked_at}
        if alert.acked_by else None,
        "lookalikes": [{"role": role, "name": name, "scripts": mix}
                       for role, name in (("user", e.user), ("admin", e.who))
                       if (mix := lookalike.mixed_scripts(name))],
        "confirmations": alert.confirmations,
    }


def question_context(view: QuestionView) -> dict[str, Any]:
    """The alert's context, and the question's: who is asked as what, and its state."""
    return {**template_context(view.alert), "question": {
        "value": ButtonValue(json.dumps({"question": view.question_id}, separators=(",", ":"))),
        "roles": view.roles, "person": view.person, "email": view.email, "state": view.state,
        "answer": view.answer, "answered_at": view.answered_at, "if_not": view.if_not,
        "usergroup": view.usergroup, "reason": view.reason, "link": view.link,
        "timeout_minutes": view.timeout_minutes}}


def slack_id_or_text(value: str | None) -> SlackId | str | None:
    """A stored Slack ID as a SlackId (so it can be mentioned); anything else stays text."""
    try:
        return SlackId(value)
    except RenderError:
        return value


def nodes(tree: Any) -> Iterator[dict]:
    """Every object of a JSON tree (a message, a card), depth first, the tree's own first."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from nodes(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from nodes(item)


# --- Slack ------------------------------------------------------------------------------------

class SlackRenderer:
    def __init__(self, override_dir: Path | None = None, builtin_dir: Path = BUILTIN_TEMPLATES):
        self.tokens = Tokens()
        self.env = safe_environment(override_dir, builtin_dir, one_line,
                                    extensions=[SlackTextExtension])
        self.env.slack_tokens = self.tokens
        self.env.filters.update(mention=self._mention, link=self._link, url=self._url)
        self.env.tests["slack_id"] = lambda value: isinstance(value, SlackId)

    def render(self, alert: AlertView) -> dict:
        """The message for an alert: its kind's template, else the generic one, else a
        minimal message built here — an alert is never lost to a template."""
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

    def render_reply(self, alert: AlertView) -> dict:
        """One event of a group, as a thread reply: its summary and facts, no header or
        button (the group's message has them)."""
        message = self.render(alert)
        kept = [block for block in message["blocks"] if block["type"] in ("rich_text", "context")]
        return {**message, "blocks": kept or message["blocks"]}

    def template_for(self, kind: str) -> str:
        return existing_template(self.env, kind)

    def render_with(self, name: str, alert: AlertView) -> dict:
        return self._settled_json(self.env.get_template(name).render(**template_context(alert)))

    def settled(self, message: Any) -> dict:
        """A rendered message as Slack gets it (see ``settled_message``)."""
        return settled_message(message, self.tokens)

    def _settled_json(self, text: str) -> dict:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RenderError(f"not valid JSON ({exc.msg} at line {exc.lineno} column "
                              f"{exc.colno})") from None
        return self.settled(message)

    def _mention(self, value: Any) -> Markup:
        return Markup(self.tokens.mention(value))

    def _link(self, url: Any, label: Any = "") -> Markup:
        return Markup(json_fragment(self.tokens.link(url, one_line(label) or str(url))))

    def _url(self, url: Any) -> Markup:
        return Markup(json_fragment(self.tokens.link(url, "")))


# --- the message as Slack gets it -------------------------------------------------------------

def settled_message(message: Any, tokens: Tokens) -> dict:
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
    blocks = [new for block in message.get("blocks", [])[:MAX_BLOCKS]
              for new in settle.block(block)][:MAX_BLOCKS]
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
