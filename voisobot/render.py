"""What every chat platform's renderer shares: the view of an alert and of a question, the
sandboxed Jinja environment and its safety with untrusted text, and the template context.
Slack's renderer is voisobot.slack.render, Teams' voisobot.teams.cards.

Safety does not depend on the templates:
- every ``{{ expression }}`` passes through ``finalize``, which makes it one line with every
  invisible or line-breaking character shown as ``\\uXXXX`` (shown, not obeyed), and escapes
  it for JSON (no broken string). Its result is marked safe (autoescape is on), so the output
  of a macro or a block is not escaped twice; filters that would mark raw text safe are
  removed, and ``tojson`` escapes like ``finalize``;
- templates run in Jinja's sandbox, and their output is data, never evaluated again, so a
  login name holding ``{{ 7*7 }}`` renders literally;
- a template that fails at any step, in any way, never loses the alert: the generic
  template renders it, then a minimal message built by the platform's renderer, and the
  error is logged with the file name.
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

from voisobot import lookalike
from voisobot.errors import RenderError
from voisobot.events import Event
from voisobot.values import ButtonValue, SafeUrl, SlackId

__all__ = ["ButtonValue", "RenderError", "SafeUrl", "SlackId"]  # re-exported for callers

log = logging.getLogger(__name__)

GENERIC_TEMPLATE = "_generic.json.j2"
SEVERITY_EMOJI = {"info": "\u2139\ufe0f", "low": "🔵", "medium": "🟡", "high": "🟠",
                  "critical": "🔴"}


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
    acked_by: str | None = None  # who acknowledged it: their id on ``acked_via``
    acked_at: datetime | None = None
    acked_via: str | None = None  # "slack" or "teams"; None for an older row (Slack's)
    acked_by_name: str | None = None  # their display name, typed by people: text only
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


def compile_templates(env: SandboxedEnvironment, kinds) -> int:
    """Compile the alert templates of ``kinds``, the generic one and the parts they share
    ("_*") now, off the alerts' path: a template's first render otherwise pays its
    compilation, about 0.15 s for the first alert after a start. Returns how many compiled;
    one that does not is left to fail, and fall back, when an alert uses it."""
    shared = env.list_templates(filter_func=lambda name: name.startswith("_"))
    names = {existing_template(env, kind) for kind in kinds} | {GENERIC_TEMPLATE, *shared}
    compiled = 0
    for name in sorted(names):
        try:
            env.get_template(name)
        except Exception:  # reported when an alert uses it (rendered_or_fallback)
            continue
        compiled += 1
    return compiled


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
        "ack": {"by": slack_id_or_text(alert.acked_by), "at": alert.acked_at,
                "platform": alert.acked_via, "name": alert.acked_by_name or alert.acked_by}
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
