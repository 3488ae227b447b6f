"""Alerts as Adaptive Cards (1.4) for Microsoft Teams, rendered from Jinja templates in
templates/teams/ with the same guarantee as in Slack: untrusted text stays text.

Whatever a template says:
- every ``{{ expression }}`` (and ``tojson``) passes through ``finalize``: invisible and
  line-breaking characters are shown as ``\\uXXXX``, the line is made one line, every
  character Teams' markdown reacts to (``* _ ~ ` [ ] ( ) < > # | ! { }`` and a leading list
  marker) is backslash-escaped, ``://`` is defanged to ``[:]//`` and the dots of a host name
  written without a scheme (``www.evil.example/login``) to ``[.]``, so no bare URL is linked,
  and the result is escaped for JSON. So ``[Voiso login](https://evil.example)`` cannot
  become a link, ``<at>x</at>`` a mention or ``<b>`` HTML, even in a client that ignores
  the backslashes: the characters that would make them are never next to each other;
- links (Action.OpenUrl) are only those the bot builds from validated values (an IP
  address parsed by ipaddress); a card holding any other URL is refused;
- after rendering, the card is checked (type, version, text in every TextBlock, title and
  value in every fact) and the post kept under Teams' 28 KB with a visible ``…``.
A template that fails never loses the alert: the generic template renders it, then a
minimal built-in card, and the error is logged with the file name.
"""

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from markupsafe import Markup

from voisobot.alert_extras import (
    DEFAULT_ACK_MIN_SEVERITY,
    AlertOptions,
    acknowledgeable,
    ip_lookup,
    next_step,
    profile_account,
    runbook,
)
from voisobot.presses import ACK_ACTION, NO_ACTION, PROFILE_ACTION, REOPEN_ACTION, YES_ACTION
from voisobot.render import (
    AlertView,
    QuestionView,
    RenderError,
    SafeUrl,
    existing_template,
    json_fragment,
    nodes,
    one_line,
    question_context,
    rendered_or_fallback,
    safe_environment,
    template_context,
)
from voisobot.resources import packaged

log = logging.getLogger(__name__)

BUILTIN_TEAMS_TEMPLATES = packaged("templates", "teams")
ASKING_STATES = ("pending", "uncertain", "asked")
CARD_VERSION = "1.4"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_POST_BYTES = 28 * 1024  # Teams refuses larger posts
ELLIPSIS = "…"
# Teams' colours and container styles per severity.
SEVERITY_COLOR = {"critical": "Attention", "high": "Attention", "medium": "Warning",
                  "low": "Accent", "info": "Default"}
SEVERITY_STYLE = {"critical": "attention", "high": "attention", "medium": "warning",
                  "low": "accent", "info": "emphasis"}

_MARKDOWN = re.compile(r"([\\`*_~\[\]()<>#|!{}])")
_LIST_MARKER = re.compile(r"^(\s*)([-+]|\d+\.)(?=\s|$)")
# A host name (dotted labels ending in letters), not the domain or local part of an email:
# an "@" with nothing before it ("@www.evil.example/") makes no email.
_HOST_NAME = re.compile(
    r"(?<![\w.-])(?<![\w.-]@)((?:[\w-]+\.)+[^\W\d_]{2,63})\b(?![\w.-]*@)")
# "www." is linked wherever it stands, even as an email's domain: always defanged.
_WWW = re.compile(r"(?i)(www)\.")


def teams_markdown(value: Any) -> str:
    """Any value as text safe inside Teams markdown: no link, mention, HTML or list."""
    text = _MARKDOWN.sub(r"\\\1", one_line(value))
    text = _LIST_MARKER.sub(_escaped_marker, text)
    text = _HOST_NAME.sub(lambda match: match.group(1).replace(".", "[.]"), text)
    return _WWW.sub(r"\1[.]", text).replace("://", "[:]//")


def teams_text(value: Any) -> str:
    """Any value as text safe inside Teams markdown inside a JSON string literal."""
    return json_fragment(teams_markdown(value))


def _escaped_marker(match: re.Match) -> str:
    """A leading "- ", "+ " or "12. " would start a list: "\\- ", "\\+ ", "12\\. "."""
    space, marker = match.groups()
    return space + ("\\" + marker if marker in "-+" else marker[:-1] + "\\.")


def _url(value: Any) -> Markup:
    if not isinstance(value, SafeUrl):
        raise RenderError("a link's URL must come from the bot (the links list), never "
                          "from an event field")
    return Markup(json.dumps(str(value))[1:-1])


class TeamsRenderer:
    def __init__(self, override_dir: Path | None = None,
                 builtin_dir: Path = BUILTIN_TEAMS_TEMPLATES, ip_lookup_url: str = "",
                 ack_min_severity: str = DEFAULT_ACK_MIN_SEVERITY,
                 runbooks: Mapping[str, str] | None = None):
        self.env = safe_environment(override_dir, builtin_dir, teams_markdown)
        self.env.filters["url"] = _url
        self.ip_lookup_url = ip_lookup_url
        self.options = AlertOptions(ack_min_severity=ack_min_severity, runbooks=runbooks or {})

    def template_for(self, kind: str) -> str:
        return existing_template(self.env, kind)

    def render(self, alert: AlertView) -> dict:
        """The post for an alert: the envelope Teams expects around the card."""
        return envelope(self.card(alert))

    def card(self, alert: AlertView) -> dict:
        """The kind's template, else the generic one, else a minimal card built here."""
        return rendered_or_fallback(self.render_with, self.template_for(alert.event.kind),
                                    alert, minimal_card, "Teams template")

    def render_with(self, name: str, alert: AlertView) -> dict:
        context = self._context(alert)
        text = self.env.get_template(name).render(**context)
        try:
            card = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RenderError(f"not valid JSON ({exc.msg} at line {exc.lineno} column "
                              f"{exc.colno})") from None
        return fitted(checked_card(card, {str(link["url"]) for link in context["links"]}))

    def bot_card(self, alert: AlertView) -> dict:
        """The card a Teams bot posts: the webhook card, then who acknowledged it (if anyone)
        and an Acknowledge or Reopen button as Universal Actions (``Action.Execute``), whose
        invoke replaces the card for everyone. The verbs are Slack's action ids: one
        acknowledgement table, pressed from either side. Below [alerts] ack_min_severity an
        alert that nobody acknowledged has no button, as in Slack. A Profile button
        (``voiso_profile``) when the alert names an account ``/voiso user`` accepts."""
        card = self.card(alert)
        card["body"].extend({"type": "TextBlock", "wrap": True, "text": teams_markdown(line)}
                            for line in confirmation_lines(alert.confirmations))
        ack = template_context(alert)["ack"]
        if ack:
            card["body"].append({"type": "TextBlock", "wrap": True, "color": "Good",
                                 "text": f"✅ Acknowledged by {acknowledger(ack)} at "
                                         f"{teams_markdown(ack['at'])}"})
        if ack or acknowledgeable(self.options, alert.severity):  # as in Slack: [alerts]
            verb, title = (REOPEN_ACTION, "Reopen") if ack else (ACK_ACTION, "Acknowledge")
            action = {"type": "Action.Execute", "title": title, "verb": verb,
                      "data": {"alert": alert.alert_id}}
            if not ack:
                action["style"] = "positive"
            card["actions"] = [*card.get("actions", []), action]
        if profile_account(alert.event) is not None:  # as in Slack: an address to look up
            card["actions"] = [*card.get("actions", []), {
                "type": "Action.Execute", "title": "Profile", "verb": PROFILE_ACTION,
                "data": {"alert": alert.alert_id}}]
        return fitted(card)

    def question_card(self, view: QuestionView) -> dict:
        """The "was this you?" card for a person's personal chat (templates/teams/
        question.json.j2) and, while the question is open, its two Action.Execute buttons,
        added here so that a template cannot change what they do. A failing template gives
        a minimal card, still escaped: the question is never lost to a template."""
        card = self._confirmation("question.json.j2", view)
        if view.state in ASKING_STATES:
            data = {"question": view.question_id}
            card["actions"] = [
                {"type": "Action.Execute", "title": "Yes, it was me", "verb": YES_ACTION,
                 "data": data, "style": "positive"},
                {"type": "Action.Execute", "title": "No, it wasn't me", "verb": NO_ACTION,
                 "data": dict(data), "style": "destructive"}]
        return fitted(card)

    def escalation_card(self, view: QuestionView) -> dict:
        """The escalation, for a "teamsbot:<name>" escalation channel."""
        return fitted(self._confirmation("escalation.json.j2", view))

    def digest_card(self, view) -> dict:
        """The digest (voisobot.digest.DigestView) from digest.json.j2; a failing template
        gives a minimal card built here, still escaped."""
        try:
            card = json.loads(self.env.get_template("digest.json.j2").render(
                **view.context()))
            return fitted(checked_card(card, set()))
        except Exception as exc:
            log.error("Teams template digest.json.j2 failed: %s: %s", type(exc).__name__,
                      one_line(exc))
            return fitted({"type": "AdaptiveCard", "version": CARD_VERSION, "body": [
                {"type": "TextBlock", "wrap": True, "text": teams_markdown(view.summary())}]})

    def _confirmation(self, name: str, view: QuestionView) -> dict:
        try:
            card = json.loads(self.env.get_template(name).render(**question_context(view)))
            return checked_card(card, set())
        except Exception as exc:
            log.error("Teams template %s failed: %s: %s", name, type(exc).__name__,
                      one_line(exc))
            return minimal_card(view.alert)

    def _context(self, alert: AlertView) -> dict[str, Any]:
        e = alert.event
        links = [{"title": f"Look up {address}", "url": url}
                 for address in dict.fromkeys(v for v in (e.ip, e.from_value, e.to_value) if v)
                 if (url := ip_lookup(self.ip_lookup_url, address))]
        if book := runbook(self.options, e.kind):
            links.insert(0, {"title": "Open the runbook", "url": book})
        return {**template_context(alert), "links": links, "next_step": next_step(e.kind),
                "severity_color": SEVERITY_COLOR.get(alert.severity, "Default"),
                "severity_style": SEVERITY_STYLE.get(alert.severity, "default")}


def confirmation_lines(confirmations) -> list[str]:
    """Where each "was this you?" of an alert stands, one plain line each (escaped by the
    caller): the person by their address, never a mention."""
    lines = []
    for q in confirmations:
        who, at, where = q["email"], one_line(q.get("at")), q.get("via") or "Slack"
        if q.get("answer") == "yes":
            lines.append(f"✅ Confirmed by {who} at {at}: it was them.")
        elif q.get("answer") == "no":
            lines.append(f"🚨 {who} says this was NOT them (answered at {at}): escalated.")
        elif q["state"] == "asked":
            lines.append(f"❓ Asked {who} in {where} \"was this you?\": no answer yet.")
        elif q["state"] == "expired":
            lines.append(f"⌛ No answer from {who} in time.")
        elif q["state"] == "unmapped":
            lines.append(f"❔ Could not ask: {q.get('nowhere') or 'no Slack user'} for {who}.")
        elif q["state"] == "failed":
            lines.append(f"❔ Could not ask {who}: {where} refused (the bot's log says why).")
        else:
            lines.append(f"❓ Asking {who} \"was this you?\"…")
    return lines


def acknowledger(ack: dict) -> str:
    """Who acknowledged, as Teams markdown: someone in Teams by their name, someone in Slack
    by their Slack name and "(Slack)" (an older row: its stored id, as before)."""
    if ack["platform"] == "teams":
        return teams_markdown(ack["name"])
    if ack["platform"] == "slack":
        return f"{teams_markdown(ack['name'])} (Slack)"
    return teams_markdown(ack["by"])


def envelope(card: dict) -> dict:
    return {"type": "message", "attachments": [
        {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}]}


def post_size(card: dict) -> int:
    return len(json.dumps(envelope(card), ensure_ascii=False).encode())


# --- checks and limits ---------------------------------------------------------------------

def checked_card(card: Any, allowed_urls: set[str]) -> dict:
    """What Teams needs of a card, and no link the bot did not build."""
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        raise RenderError('expected an object with "type": "AdaptiveCard"')
    if card.get("version") != CARD_VERSION:
        raise RenderError(f'expected "version": "{CARD_VERSION}"')
    if not isinstance(card.get("body"), list) or not card["body"]:
        raise RenderError('expected a non-empty "body" list')
    for node in nodes(card):
        _check_node(node, allowed_urls)
    return card


def _check_node(node: dict, allowed_urls: set[str]) -> None:
    kind = node.get("type")
    if kind in ("TextBlock", "TextRun") and not isinstance(node.get("text"), str):
        raise RenderError(f"a {kind} needs a text string")
    if kind == "FactSet" and not all(
            isinstance(f, dict) and isinstance(f.get("title"), str)
            and isinstance(f.get("value"), str) for f in node.get("facts", [])):
        raise RenderError("every fact needs a title and a value string")
    for key in ("url", "selectAction", "backgroundImage"):
        if key == "url" and kind == "Action.OpenUrl" and node.get("url") in allowed_urls:
            continue
        if key in node:
            raise RenderError(f"{kind or 'an element'}.{key} is not allowed: links come "
                              "only from the bot's own list")


def fitted(card: dict, limit: int = MAX_POST_BYTES) -> dict:
    """The card as it is, or with its longest texts cut (visibly) until the post fits."""
    while post_size(card) > limit:
        holder, key = _longest_text(card)
        text = holder[key]
        if len(text) <= 40:
            raise RenderError(f"the card is over {limit} bytes even with every text cut")
        holder[key] = cut(text, max(40, len(text) - (post_size(card) - limit) - 64))
    return card


def _longest_text(card: dict) -> tuple[dict, str]:
    found = [(node, key) for node in nodes(card)
             for key in ("text", "value", "title") if isinstance(node.get(key), str)
             and node.get("type") not in ("AdaptiveCard",)]
    return max(found, key=lambda item: len(item[0][item[1]]))


def cut(text: str, length: int) -> str:
    """Cut to about ``length`` characters with a visible ``…``, never leaving a lone
    escaping backslash at the end (it would escape the ellipsis, or the JSON quote)."""
    kept = text[: max(0, length - 1)]
    trailing = len(kept) - len(kept.rstrip("\\"))
    if trailing % 2:
        kept = kept[:-1]
    return kept + ELLIPSIS


def minimal_card(alert: AlertView) -> dict:
    """The last resort when even the generic template fails: built here, still escaped."""
    e = alert.event
    return fitted({"type": "AdaptiveCard", "version": CARD_VERSION, "body": [
        {"type": "TextBlock", "weight": "Bolder", "wrap": True,
         "color": SEVERITY_COLOR.get(alert.severity, "Default"),
         "text": f"{alert.severity.upper()} · Voiso {teams_markdown(e.kind)}"},
        {"type": "FactSet", "facts": [
            {"title": "Time (UTC)", "value": teams_markdown(e.time)},
            {"title": "User", "value": teams_markdown(e.user or "-")},
            {"title": "By", "value": teams_markdown(e.who or "-")},
            {"title": "IP", "value": teams_markdown(e.ip or e.to_value or "-")}]}]})
