"""The vendor's example body for each of the 12 documented kinds.

Copied from Voiso's "Security Log Streaming to Amazon SQS" page (the source of
truth for payloads). Used by ``bot.py send-sample``, the demo and the tests.
"""

import copy
import json
from datetime import UTC, datetime

VENDOR_TIMESTAMP = "2020-10-10T10:11:12.12Z"


def _example(type_: str, event: str, **params: str) -> dict:
    return {"timestamp": VENDOR_TIMESTAMP, "type": type_, "event": event,
            "callcenter": "acme", "params": params}


_WHO = "admin@voiso.com"
_USER = "foo@bar.com"

EXAMPLES: dict[str, dict] = {
    "app_login/incorrect_password": _example(
        "app_login", "incorrect_password", user=_USER, access_group="admin", count="4"),
    "app_login/deleted_user": _example(
        "app_login", "deleted_user", user=_USER, access_group="supervisor"),
    "app_login/successful_login": _example(
        "app_login", "successful_login", user=_USER, access_group="supervisor"),
    "app_login/unauthorized_ip": _example(
        "app_login", "unauthorized_ip", user=_USER, access_group="supervisor", ip="8.8.8.8"),
    "app_login/ip_changed": _example(
        "app_login", "ip_changed", user=_WHO, access_group="supervisor",
        **{"from": "8.8.8.8", "to": "4.4.4.2"}),
    "user/user_added": _example(
        "user", "user_added", who=_WHO, user=_USER, access_group="supervisor"),
    "user/user_deleted": _example(
        "user", "user_deleted", who=_WHO, user=_USER, access_group="agent"),
    "user/password_changed": _example(
        "user", "password_changed", who=_WHO, user=_USER, access_group="admin"),
    "user/privileges_updated": _example(
        "user", "privileges_updated", who=_WHO, user=_USER, **{"from": "agent", "to": "admin"}),
    "allowed_ip/ip_added": _example(
        "allowed_ip", "ip_added", who=_WHO, access_group="supervisor", ip="8.8.8.8/32"),
    "allowed_ip/ip_removed": _example(
        "allowed_ip", "ip_removed", who=_WHO, access_group="supervisor", ip="8.8.8.8/32"),
    "allowed_ip/ip_changed": _example(
        "allowed_ip", "ip_changed", who=_WHO, access_group="supervisor",
        **{"from": "8.8.8.8/32", "to": "8.8.4.4/32"}),
}


def voiso_timestamp(moment: datetime) -> str:
    """A timestamp in Voiso's own format: UTC, centiseconds, a trailing Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 10000:02d}Z"


def example(kind: str, *, now: datetime | None = None) -> dict:
    """A fresh copy of one example, stamped with ``now`` unless None is wanted."""
    body = copy.deepcopy(EXAMPLES[kind])
    if now is not None:
        body["timestamp"] = voiso_timestamp(now)
    return body


def resolve_kind(name: str) -> str:
    """Accept ``type/event`` or an unambiguous ``event``; raise KeyError with the choices."""
    if name in EXAMPLES:
        return name
    matches = [kind for kind in EXAMPLES if kind.split("/")[1] == name]
    if len(matches) == 1:
        return matches[0]
    hint = " or ".join(matches) if matches else ", ".join(EXAMPLES)
    raise KeyError(f"unknown or ambiguous kind {name!r}; use one of: {hint}")


def select(name: str | None) -> list[str]:
    """Every kind when ``name`` is None, else the one it names (KeyError if none)."""
    return [resolve_kind(name)] if name else list(EXAMPLES)


def body_text(body: dict) -> str:
    return json.dumps(body, separators=(", ", ": "))
