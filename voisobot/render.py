"""Alerts as Slack Block Kit messages, rendered from Jinja templates that are safe with
untrusted text whatever the template author writes.

Safety does not depend on the templates:
- every ``{{ expression }}`` passes through ``finalize``, which escapes it for mrkdwn
  (``&``, ``<``, ``>``: no mention, no link) and then for JSON (no broken string), and
  makes it one line with visible control characters (no fake lines, no bidi tricks).
  Its result is marked safe (autoescape is on), so the output of a macro or a block is
  not escaped twice; filters that would mark raw text safe are removed or replaced;
- templates run in Jinja's sandbox, and their output is data, never evaluated again,
  so a login name holding ``{{ 7*7 }}`` renders literally;
- after rendering, every mrkdwn object gets ``verbatim: true`` (no auto-linking),
  Slack's limits are enforced with a visible ``…``, and the message is checked with
  slack_sdk's Block Kit models. A template that fails at any step never loses the
  alert: the generic template renders it, and the error is logged with the file name.
"""

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from slack_sdk.models.blocks import Block

from voisobot.errors import VoisoBotError
from voisobot.events import Event

log = logging.getLogger(__name__)

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "slack"
GENERIC_TEMPLATE = "_generic.json.j2"
ELLIPSIS = "…"
SEVERITY_EMOJI = {"info": ":information_source:", "low": ":large_blue_circle:",
                  "medium": ":large_yellow_circle:", "high": ":large_orange_circle:",
                  "critical": ":red_circle:"}

# Slack's limits (Block Kit reference): the renderer truncates to these.
MAX_BLOCKS = 50
MAX_TEXT = {"header": 150, "section": 3000, "context": 2000, "field": 2000, "button": 75}
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 3000
MAX_BUTTON_VALUE = 2000
MAX_ID = 255

_INVISIBLE = re.compile(r"[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069"
                        r"\ufeff\ud800-\udfff]")


class RenderError(VoisoBotError):
    """A template failed or produced a message Slack would refuse."""


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

    @property
    def event_count(self) -> int:
        """How many events the rendered message stands for."""
        return self.group["count"] if self.group else 1


def one_line(value: Any) -> str:
    """Any value as the text people should see, before a format's own escaping: nothing
    for None, a time in UTC, one line with control and bidi characters shown as \\uXXXX
    (shown, not obeyed)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = when(value)
    return _INVISIBLE.sub(_visible, str(value))


def json_fragment(text: str) -> str:
    """Text as the inside of a JSON string literal."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def slack_mrkdwn(value: Any) -> str:
    """Any value as text safe inside Slack mrkdwn: no mention, no link."""
    return one_line(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(value: Any) -> str:
    """Any value as text safe inside a mrkdwn string inside a JSON string literal."""
    return json_fragment(slack_mrkdwn(value))


def when(value: Any) -> str:
    """A stored time ("2026-11-24T14:02:03.000000Z") or a datetime, as people read it."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else value


_SLACK_ID = re.compile(r"[UWCG][A-Z0-9]{2,30}")


def mention(slack_id: Any) -> Markup:
    """``<@U…>`` or ``<#C…>`` for a user or channel ID that Slack or the config gave us
    (a click's user, an alert's channel); anything else is shown as escaped text, so no
    event field can become a mention."""
    if isinstance(slack_id, str) and _SLACK_ID.fullmatch(slack_id):
        return Markup(f"<{'#' if slack_id[0] in 'CG' else '@'}{slack_id}>")
    return _finalize(slack_id)


def button_value(value: Any) -> Markup:
    """A button's value, which Slack hands back and never shows or formats: JSON-escaped
    only (mrkdwn escaping would change what comes back)."""
    return Markup(json.dumps(str(value), ensure_ascii=True)[1:-1])


def _finalize(value: Any) -> Markup:
    """Escape a template expression's value, unless it is the output of a macro or block
    (Markup), which is made of literal template text and values escaped already."""
    return value if isinstance(value, Markup) else Markup(slack_text(value))


_UNSAFE_FILTERS = ("safe", "urlize", "xmlattr", "forceescape")


def _visible(match: re.Match) -> str:
    char = match.group()
    if char in "\n\r\t":
        return " "
    return f"\\u{ord(char):04x}"  # shown, not obeyed: a reader sees the trick


def template_name(kind: str) -> str:
    return kind.replace("/", ".") + ".json.j2"


def safe_environment(override_dir: Path | None, builtin_dir: Path,
                     finalize) -> SandboxedEnvironment:
    """A sandboxed Jinja environment whose every expression goes through ``finalize`` (the
    escaping of one output format), with no filter that could bypass it. The user's
    directory, if any, overrides the built-in templates file by file."""
    paths = [str(p) for p in (override_dir, builtin_dir) if p]
    env = SandboxedEnvironment(loader=jinja2.FileSystemLoader(paths), finalize=finalize,
                               autoescape=True, undefined=jinja2.StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True)
    for name in _UNSAFE_FILTERS:
        env.filters.pop(name, None)
    env.filters["e"] = env.filters["escape"] = finalize
    env.filters["when"] = when
    return env


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
    a template's error is logged with its file name and never loses the alert."""
    for candidate in dict.fromkeys((name, GENERIC_TEMPLATE)):
        try:
            return render_with(candidate, alert)
        except (RenderError, jinja2.TemplateError, ValueError) as exc:
            log.error("%s %s failed for %s alert: %s; using the %s", what, candidate,
                      alert.event.kind, exc, "generic template"
                      if candidate != GENERIC_TEMPLATE else "built-in minimal one")
    return last_resort(alert)


class SlackRenderer:
    def __init__(self, override_dir: Path | None = None, builtin_dir: Path = BUILTIN_TEMPLATES):
        self.env = safe_environment(override_dir, builtin_dir, _finalize)
        self.env.filters.update(mention=mention, button_value=button_value)

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
            return self._checked_json(self.env.get_template(template).render(**context))
        except (RenderError, jinja2.TemplateError, ValueError) as exc:
            log.error("template %s failed: %s", template, exc)
            return {"text": f"The answer could not be shown: template {template} failed "
                            "(the error is in the bot's log)."}

    def render_reply(self, alert: AlertView) -> dict:
        """One event of a group, as a thread reply: its summary and facts, no header or
        button (the group's message has them)."""
        message = self.render(alert)
        kept = [block for block in message["blocks"] if block["type"] in ("section", "context")]
        return {"text": message["text"], "blocks": kept}

    def template_for(self, kind: str) -> str:
        return existing_template(self.env, kind)

    def render_with(self, name: str, alert: AlertView) -> dict:
        return self._checked_json(self.env.get_template(name).render(**template_context(alert)))

    @staticmethod
    def _checked_json(text: str) -> dict:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RenderError(f"not valid JSON ({exc.msg} at line {exc.lineno} column "
                              f"{exc.colno})") from None
        return checked_message(message)


def template_context(alert: AlertView) -> dict[str, Any]:
    e = alert.event
    return {
        "event": {"kind": e.kind, "type": e.type, "event": e.event, "time": e.time,
                  "callcenter": e.callcenter, "user": e.user, "who": e.who,
                  "access_group": e.access_group, "ip": e.ip, "from": e.from_value,
                  "to": e.to_value, "count": e.count, "params": e.params},
        "severity": alert.severity,
        "severity_emoji": SEVERITY_EMOJI.get(alert.severity, ":grey_question:"),
        "ack_value": json.dumps({"alert": alert.alert_id}, separators=(",", ":")),
        "context": alert.context, "group": alert.group,
        "ack": {"by": alert.acked_by, "at": alert.acked_at} if alert.acked_by else None,
    }


def nodes(tree: Any) -> Iterator[dict]:
    """Every object of a JSON tree (a message, a card), depth first, the tree's own first."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from nodes(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from nodes(item)


def checked_message(message: Any) -> dict:
    """Enforce the safety rules and Slack's limits on a rendered message, then validate it."""
    if not isinstance(message, dict) or not isinstance(message.get("text"), str) \
            or not isinstance(message.get("blocks", []), list):
        raise RenderError('expected an object with a "text" string and a "blocks" list')
    message["text"] = truncate(message["text"], MAX_FALLBACK_TEXT)
    blocks = message.get("blocks", [])
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[:MAX_BLOCKS]
    message["blocks"] = [_checked_block(block) for block in blocks]
    try:
        for block in message["blocks"]:
            Block.parse(block).to_dict()  # slack_sdk's own checks of Block Kit's rules
    except Exception as exc:
        raise RenderError(f"invalid Block Kit: {exc}") from None
    return message


def _checked_block(block: Any) -> dict:
    if not isinstance(block, dict):
        raise RenderError(f"a block must be an object, got {type(block).__name__}")
    kind = block.get("type")
    if "block_id" in block and len(str(block["block_id"])) > MAX_ID:
        raise RenderError("block_id longer than 255 characters")
    if kind == "header":
        _require_plain_text(block.get("text"), "header")
        _limit_text(block.get("text"), MAX_TEXT["header"])
    elif kind == "section":
        _limit_text(block.get("text"), MAX_TEXT["section"])
        if "fields" in block:
            block["fields"] = block["fields"][:MAX_FIELDS]
            for item in block["fields"]:
                _limit_text(item, MAX_TEXT["field"])
    elif kind == "context":
        block["elements"] = block.get("elements", [])[:MAX_CONTEXT_ELEMENTS]
        for item in block["elements"]:
            _limit_text(item, MAX_TEXT["context"])
    elif kind == "actions":
        for element in block.get("elements", []):
            _check_button(element)
    return block


def _limit_text(obj: Any, limit: int) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return
    obj["text"] = truncate(obj["text"], limit)
    if obj.get("type") == "mrkdwn":
        obj["verbatim"] = True  # no auto-linking of URLs typed into event fields


def _require_plain_text(obj: Any, where: str) -> None:
    """Slack refuses mrkdwn where plain_text is required; slack_sdk's models let it pass."""
    if not isinstance(obj, dict) or obj.get("type") != "plain_text":
        raise RenderError(f"{where} text must be a plain_text object")


def _check_button(element: Any) -> None:
    if not isinstance(element, dict):
        return
    if element.get("type") == "button":
        _require_plain_text(element.get("text"), "button")
    _limit_text(element.get("text"), MAX_TEXT["button"])
    if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE:
        raise RenderError("button value longer than 2000 characters")
    if len(str(element.get("action_id", ""))) > MAX_ID:
        raise RenderError("action_id longer than 255 characters")


def truncate(text: str, limit: int) -> str:
    """Cut to ``limit`` characters with a visible ``…``, never inside an escape like
    ``&amp;`` (a half entity would show as garbage)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def minimal_message(alert: AlertView) -> dict:
    """The last resort when even the generic template fails: built here, still escaped."""
    e = alert.event
    summary = (f"{SEVERITY_EMOJI.get(alert.severity, '')} [{alert.severity.upper()}] "
               f"Voiso {slack_mrkdwn(e.kind)} at {slack_mrkdwn(e.time)}: "
               f"user {slack_mrkdwn(e.user or '-')}, by {slack_mrkdwn(e.who or '-')}, "
               f"ip {slack_mrkdwn(e.ip or e.to_value or '-')}")
    text = truncate(summary, MAX_TEXT["section"])
    return {"text": truncate(text, MAX_FALLBACK_TEXT), "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}]}
