"""Text in Slack templates, and the Block Kit objects it becomes, where Slack parses nothing.

Slack's mrkdwn cannot escape ``*``, ``_``, ``~``, backticks or ``:emoji:`` codes, so a login
name typed by a stranger could restyle the sentence around it. So no event field is ever sent
as mrkdwn. Templates write text in a small dialect instead, and the renderer turns it into
objects Slack shows literally:

- a section's text becomes a ``rich_text`` block, whose ``text`` elements Slack shows as
  they are, with the styles the template set (``<b>``, ``<i>``, ``<s>``, ``<code>``);
- any other text object becomes ``plain_text`` with ``"emoji": false`` (styles dropped);
- the top-level ``text`` (the notification) keeps data inert: ``&``, ``<`` and ``>`` escaped,
  and the message is posted with ``mrkdwn: false``.

What makes a style, a mention, a link or an emoji is a *tag*, and tags are capabilities:
``<b>``, ``<@U…>``, ``<!here>``, ``<https://…|label>``, ``<:name:>`` written in a template's own
source are swapped for tokens carrying a random nonce as the template loads, and the bot's
typed filters (``mention`` for a SlackId, ``link`` for a SafeUrl) make the only other tokens.
A value printed by a template, however it was combined with other text, never carries the
nonce, so it can only ever be literal text: a typed ``<!channel>`` or ``*bold*`` is shown as
typed.
"""

import re
import secrets
from dataclasses import dataclass
from typing import Any

from jinja2.ext import Extension

from voisobot.errors import RenderError
from voisobot.values import SafeUrl, SlackId

ELLIPSIS = "…"
_OPEN, _CLOSE = "\ue000", "\ue001"  # private use: one_line shows these visibly in any value
STYLES = {"b": "bold", "i": "italic", "s": "strike", "code": "code"}
BROADCASTS = ("here", "channel", "everyone")
_EMOJI = re.compile(r"[a-z0-9_+'-]{1,64}")
# A tag as a template's source may write it (a value can never be one: see the docstring).
_SOURCE_TAG = re.compile(
    r"<(?P<style>/?(?:b|i|s|code))>"
    r"|<@(?P<user>[UW][A-Z0-9]{2,30})>|<#(?P<channel>[CG][A-Z0-9]{2,30})>"
    r"|<!(?P<broadcast>here|channel|everyone)>|<!subteam\^(?P<usergroup>S[A-Z0-9]{2,30})>"
    r"|<:(?P<emoji>[a-z0-9_+'-]{1,64}):>"
    r"|<(?P<url>https://[^\s<>|{}\"\\]+)\|(?P<label>[^<>{}\"\\\n]{1,200})>")


@dataclass(frozen=True, slots=True)
class Run:
    """One piece of text as Slack should show it: literal ``text`` with a style, or a
    mention, broadcast, link or emoji the template or the bot asked for."""

    kind: str  # "text", "user", "channel", "usergroup", "broadcast", "link", "emoji"
    value: str
    style: frozenset[str] = frozenset()
    label: str = ""  # a link's text


class Tokens:
    """The nonce of one renderer, and the tokens that carry it."""

    def __init__(self):
        # Digits only: a template filter such as upper or title cannot change them.
        self.nonce = str(secrets.randbelow(10**18)).zfill(18)
        self.pattern = re.compile(re.escape(_OPEN + self.nonce) + r"(.*?)" + re.escape(_CLOSE),
                                  re.DOTALL)

    def token(self, body: str) -> str:
        return f"{_OPEN}{self.nonce}{body}{_CLOSE}"

    def from_source(self, source: str) -> str:
        """A template's source with its own tags made into tokens."""
        return _SOURCE_TAG.sub(lambda match: self.token(_tag_body(match)), source)

    def mention(self, value: Any) -> str:
        """The token of a mention; only a SlackId (from Slack or the config) qualifies."""
        if not isinstance(value, SlackId):
            raise RenderError("mention takes a Slack ID from Slack or the config, never an "
                              "event field")
        kind = {"U": "@", "W": "@", "C": "#", "G": "#", "S": "^"}[value[0]]
        return self.token(kind + value)

    def link(self, url: Any, label: Any) -> str:
        """The token of a link; only a SafeUrl (built by the bot) qualifies."""
        if not isinstance(url, SafeUrl):
            raise RenderError("a link's URL must come from the bot, never from an event field")
        return self.token(f">{url}|{label}")

    def runs(self, text: str) -> list[Run]:
        """The text as Slack should show it: tokens become styles and elements, everything
        else is literal."""
        runs: list[Run] = []
        style: set[str] = set()
        position = 0
        for match in self.pattern.finditer(text):
            if match.start() > position:
                runs.append(_literal(text[position:match.start()], style))
            position = match.end()
            run = _run_of(match.group(1), style)
            if run is not None:
                runs.append(run)
        if position < len(text):
            runs.append(_literal(text[position:], style))
        return runs


def _literal(text: str, style: set[str]) -> Run:
    """Literal text; what is left of a token a template cut in half is dropped."""
    return Run("text", text.replace(_OPEN, "").replace(_CLOSE, ""), frozenset(style))


def _tag_body(match: re.Match) -> str:
    groups = match.groupdict()
    if groups["style"]:
        return groups["style"]
    for key, mark in (("user", "@"), ("channel", "#"), ("usergroup", "^"), ("broadcast", "!"),
                      ("emoji", ":")):
        if groups[key]:
            return mark + groups[key]
    return f">{groups['url']}|{groups['label']}"


def _run_of(body: str, style: set[str]) -> Run | None:
    """Apply a style token to ``style``, or make the element of any other token."""
    if body.lstrip("/") in STYLES:
        (style.discard if body.startswith("/") else style.add)(STYLES[body.lstrip("/")])
        return None
    kind = {"@": "user", "#": "channel", "^": "usergroup", "!": "broadcast", ":": "emoji",
            ">": "link"}.get(body[:1])
    if kind == "link":
        url, _, label = body[1:].partition("|")
        return Run("link", url, frozenset(style), label)
    return Run(kind, body[1:], frozenset(style)) if kind else None


class SlackTextExtension(Extension):
    """Makes a template's own tags into tokens as its source loads (never its values')."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return self.environment.slack_tokens.from_source(source)


# --- what Slack shows -----------------------------------------------------------------------

def rich_elements(runs: list[Run]) -> list[dict]:
    """A rich_text_section's elements; neighbouring text of one style is one element."""
    elements: list[dict] = []
    for run in runs:
        element = _rich_element(run)
        last = elements[-1] if elements else None
        if last and element["type"] == "text" == last["type"] \
                and element.get("style") == last.get("style"):
            last["text"] += element["text"]
        elif element.get("text") != "":
            elements.append(element)
    return elements


def _rich_element(run: Run) -> dict:
    if run.kind == "text":
        element = {"type": "text", "text": run.value}
    elif run.kind == "link":
        element = {"type": "link", "url": run.value, "text": run.label}
    elif run.kind == "broadcast":
        element = {"type": "broadcast", "range": run.value}
    elif run.kind == "emoji":
        element = {"type": "emoji", "name": run.value}
    else:
        element = {"type": run.kind, f"{run.kind}_id": run.value}
    if run.style and run.kind in ("text", "link", "emoji"):
        element["style"] = {name: True for name in sorted(run.style)}
    return element


def plain(runs: list[Run]) -> str:
    """The text of a plain_text object: styles dropped, elements as their readable form."""
    return "".join(_plain(run) for run in runs)


def _plain(run: Run) -> str:
    if run.kind == "text":
        return run.value
    if run.kind == "link":
        return run.label
    return {"user": "@", "channel": "#", "usergroup": "@", "broadcast": "@",
            "emoji": ":"}[run.kind] + run.value + (":" if run.kind == "emoji" else "")


def notification(runs: list[Run]) -> str:
    """The top-level ``text`` (posted with mrkdwn off): data escaped so that nothing in it
    is a control sequence; the template's own mentions stay mentions."""
    parts = []
    for run in runs:
        if run.kind == "text":
            parts.append(escape_controls(run.value))
        elif run.kind in ("user", "channel"):
            parts.append(f"<{'@' if run.kind == 'user' else '#'}{run.value}>")
        elif run.kind == "usergroup":
            parts.append(f"<!subteam^{run.value}>")
        elif run.kind == "broadcast":
            parts.append(f"<!{run.value}>")
        else:
            parts.append(escape_controls(_plain(run)))
    return "".join(parts)


def escape_controls(text: str) -> str:
    """``&``, ``<`` and ``>``: Slack's control characters in any text it parses."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Cut to ``limit`` characters with a visible ``…``."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def truncate_escaped(text: str, limit: int) -> str:
    """``truncate`` for text with Slack's escapes, never cutting one like ``&amp;`` in half."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def limited_elements(elements: list[dict], limit: int) -> list[dict]:
    """Rich text elements whose texts add up to at most ``limit`` characters; what is cut
    ends in a visible ``…``."""
    kept, used = [], 0
    for element in elements:
        size = len(element.get("text", "")) or 1
        if used + size <= limit:
            kept.append(element)
            used += size
            continue
        room = limit - used
        if element["type"] == "text" and room > len(ELLIPSIS):
            kept.append({**element, "text": truncate(element["text"], room)})
        else:
            kept.append({"type": "text", "text": ELLIPSIS})
        break
    return kept
