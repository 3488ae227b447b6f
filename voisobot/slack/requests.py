"""What a signed body POSTed to /slack/events may be, read before Bolt sees it.

Slack sends three shapes, and only these pass:
- a slash command: a form with ``command`` (and ``ssl_check=1``, Slack's test of the
  certificate);
- an interaction: a form whose ``payload`` is a JSON object of a type Slack sends today
  (button presses, menus' options, modals, shortcuts) with the fields that type always has;
  the legacy types (attachment buttons, dialogs, Steps from Apps) are refused;
- an Events API callback: a JSON object of type ``url_verification`` or ``event_callback``.
Each is read exactly as Bolt's parse_body reads it (a body starting with ``{`` is JSON; a
form holding the text ``payload`` anywhere is read for its payload field alone), and the
fields that Bolt's matchers index without looking must be of the types Slack gives them:
whatever passes here Bolt can read, and what Bolt could not read is a 400 here instead of
a 500 there. A refusal's reason is a fixed phrase that quotes nothing of the body.
"""

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from voisobot.errors import VoisoBotError

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
EVENT_TYPES = ("url_verification", "event_callback")
MAX_DEPTH = 64  # Slack's payloads nest about 15 deep; Bolt's json.loads must never recurse out
DETAIL_CHARS = 200  # of a command's text or a button's value, kept in the audit trail
# Fields that Slack sends as an object (or null) in a payload, and in an event.
OBJECTS_OR_NULL = ("user", "team", "channel", "container", "message", "state")
EVENT_OBJECTS_OR_NULL = ("message", "previous_message")  # an event's user is an ID


class BadBody(VoisoBotError):
    """A signed body that is not one of Slack's shapes; the message is a fixed phrase."""


@dataclass(frozen=True)
class SlackRequest:
    kind: str     # "command", "interaction", "event" or "ssl_check"
    fields: dict  # the form's fields (command, ssl_check), or the JSON object

    def user_id(self) -> str | None:
        if self.kind == "command":
            return _text(self.fields.get("user_id"))
        return _text(_inner(self.fields, "user", "id") or _inner(self.fields, "event", "user"))

    def channel_id(self) -> str | None:
        if self.kind == "command":
            return _text(self.fields.get("channel_id"))
        return _text(_inner(self.fields, "channel", "id")
                     or _inner(self.fields, "event", "channel"))

    def detail(self) -> str:
        """What the request asked for, in the words of the audit trail: the command and its
        text, the button and its value, or the payload's type."""
        if self.kind == "command":
            text = _text(self.fields.get("text")) or ""
            return f"{_text(self.fields.get('command'))} {text[:DETAIL_CHARS]}".strip()
        if self.fields.get("type") == "block_actions":
            action = self.fields["actions"][0]
            value = _text(action.get("value")) or ""
            return f"{action['action_id']} {value[:DETAIL_CHARS]}"
        event_type = _text(_inner(self.fields, "event", "type"))
        return " ".join(t for t in (_text(self.fields.get("type")), event_type) if t)


def read(body: bytes, content_type: str | None) -> SlackRequest:
    """The request a signed body holds, or BadBody saying why it is none of Slack's."""
    request = _request(body, content_type)
    if not _has(request.fields, ANY_BODY):
        raise BadBody("a field that Slack sends as an object and is not one")
    return request


def _request(body: bytes, content_type: str | None) -> SlackRequest:
    try:
        text = body.decode("utf-8")  # strictly: Bolt decodes it so and fails otherwise
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8") from None
    media = (content_type or "").split(";")[0].strip().lower()
    if text.startswith("{"):
        if media != JSON:
            raise BadBody(f"a JSON body sent as {_media_name(media)}")
        return _event(_json(text))
    if media != FORM:
        raise BadBody(f"a body sent as {_media_name(media)}, not a form")
    return _form(text)


def _event(value: Any) -> SlackRequest:
    if not isinstance(value, dict) or value.get("type") not in EVENT_TYPES:
        raise BadBody("a JSON body that is not an Events API callback")
    if value["type"] == "event_callback" and not _has(value, EVENT_CALLBACK):
        raise BadBody("an event callback whose fields are not of the types Slack sends")
    return SlackRequest("event", value)


def _form(text: str) -> SlackRequest:
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in text:  # Bolt then reads the payload field and nothing else
        if "payload" not in fields:
            raise BadBody("a form holding the word payload but no payload field")
        return _interaction(_json(fields["payload"]))
    if fields.get("command"):
        return SlackRequest("command", fields)
    if fields.get("ssl_check") == "1":
        return SlackRequest("ssl_check", fields)
    raise BadBody("a form with neither a command nor a payload")


def _interaction(payload: Any) -> SlackRequest:
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise BadBody("a payload that is not a JSON object with a type")
    if payload["type"] not in INTERACTIONS:
        raise BadBody("a payload of a type the bot does not take")
    if not _has(payload, INTERACTIONS[payload["type"]]):
        raise BadBody("a payload whose fields are not of the types Slack sends")
    return SlackRequest("interaction", payload)


# --- the types Slack gives the fields Bolt reads --------------------------------------------

def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _objects_or_null(value: dict, names: tuple[str, ...] = OBJECTS_OR_NULL) -> bool:
    return all(value[name] is None or isinstance(value[name], dict)
               for name in names if name in value)


def _view(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("callback_id"), str)


def _list_of_objects(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _actions(value: Any) -> bool:
    return _list_of_objects(value) and all(_is_text(action.get("action_id"))
                                           for action in value)


def _event_object(value: Any) -> bool:
    return isinstance(value, dict) and _is_text(value.get("type")) \
        and _objects_or_null(value, EVENT_OBJECTS_OR_NULL)


def _has(value: dict, shape: dict) -> bool:
    """Every field of ``shape["required"]`` is there and valid, every field of
    ``shape["optional"]`` is valid when there, and the OBJECTS_OR_NULL are objects or null."""
    return _objects_or_null(value) \
        and all(name in value and valid(value[name])
                for name, valid in shape.get("required", {}).items()) \
        and all(valid(value[name]) for name, valid in shape.get("optional", {}).items()
                if name in value)


# Bolt's middleware and its log of an unhandled request read these of any body, a
# command's form included, as objects.
ANY_BODY = {"optional": {"event": _event_object, "view": lambda value: isinstance(value, dict)}}
INTERACTIONS = {  # what each type always has, that Bolt indexes without looking
    "block_actions": {"required": {"actions": _actions}},
    "block_suggestion": {"required": {"action_id": _is_text}},
    "view_submission": {"required": {"view": _view}},
    "view_closed": {"required": {"view": _view}},
    "shortcut": {"required": {"callback_id": _is_text}},
    "message_action": {"required": {"callback_id": _is_text}},
}
EVENT_CALLBACK = {"required": {"event": _event_object},
                  "optional": {"authorizations": _list_of_objects}}


# --- reading ---------------------------------------------------------------------------------

def _json(text: str) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadBody(f"JSON nested deeper than {MAX_DEPTH}") from None
    except ValueError:
        raise BadBody("JSON that does not parse") from None
    if _depth(value) > MAX_DEPTH:
        raise BadBody(f"JSON nested deeper than {MAX_DEPTH}")
    return value


def _depth(value: Any) -> int:
    """How deep objects and arrays nest in a parsed JSON value (a scalar is 0), without
    recursing."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _media_name(media: str) -> str:
    """The media type for the log when it is one we know, else a fixed word: the header is
    the sender's text."""
    return media if media in (FORM, JSON, "multipart/form-data", "text/plain") else \
        "another type" if media else "no type"


def _inner(fields: dict, outer: str, inner: str) -> Any:
    value = fields.get(outer)
    return value.get(inner) if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
