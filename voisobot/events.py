"""Parse one SQS message body into a typed Event, or raise MalformedEvent with the reason.

Every string is untrusted: a login name is whatever a stranger typed at the
login form. Parsing never interprets text; it only checks shapes, normalises
timestamps, counts and IP addresses, and keeps everything else as given.

Every body ends in an Event or a MalformedEvent, never another exception: bodies over
MAX_BODY_BYTES, or whose objects and arrays nest more than MAX_DEPTH (32) levels, are
refused before anything walks them. IP addresses and allow-list ranges must be plain
(plain_address, plain_network): no zone after "%", port, netmask or spaces.
"""

import contextlib
import functools
import hashlib
import ipaddress
import json
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from voisobot.errors import MalformedEvent

MAX_BODY_BYTES = 256 * 1024
# Objects and arrays nested deeper than this are refused: every later step (the surrogate
# fix-up, canonical JSON, the renderers) walks values recursively, and Python's recursion
# limit is shared with whatever called the parser. Voiso's events nest two levels.
MAX_DEPTH = 32
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


@dataclass(frozen=True, slots=True)
class Event:
    """One valid security event. Columns the queries need are lifted out of ``params``."""

    time: datetime
    type: str
    event: str
    callcenter: str | None
    params: dict[str, Any]
    params_json: str  # params as canonical JSON (sorted keys), as stored
    canonical: str  # the whole body as canonical JSON, what duplicates are recognised by
    user: str | None = None
    who: str | None = None
    access_group: str | None = None
    ip: str | None = None
    from_value: str | None = None
    to_value: str | None = None
    count: int | None = None

    @property
    def kind(self) -> str:
        return f"{self.type}/{self.event}"

    @property
    def documented(self) -> bool:
        return (self.type, self.event) in KIND_PARAMS

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.canonical.encode("utf-8")).digest()


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise MalformedEvent(f"params.{name} must be a string, got {_json_kind(value)}")
    return value


def _count(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    raise MalformedEvent(f"params.{name} must be a whole number (such as \"4\"), "
                         f"got {_preview(value)}")


def _ip(value: Any, name: str) -> str:
    normalised = plain_address(_text(value, name))
    if normalised is None:
        raise MalformedEvent(f"params.{name} is not an IP address (a plain IPv4 or IPv6 address, "
                             f"without zone, port or spaces): {_preview(value)}")
    return normalised


def _cidr(value: Any, name: str) -> str:
    normalised = plain_network(_text(value, name))
    if normalised is None:
        raise MalformedEvent(f"params.{name} is not an IP address or CIDR range (such as "
                             f"203.0.113.0/24, without zone, netmask or spaces): "
                             f"{_preview(value)}")
    return normalised


# Only these characters, so that ipaddress never sees what it would tolerate beyond a plain
# address: a zone after "%" (free text, e.g. "fe80::1%ON ALLOW-LIST"), spaces, non-ASCII
# digits. 45 characters is the longest IPv6 text (with an IPv4 tail).
_PLAIN_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
# A decimal prefix length only: the netmask forms ("/255.255.255.0") are not CIDR notation.
_PLAIN_NETWORK = re.compile(r"[0-9A-Fa-f:.]{2,45}(?:/(?:0|[1-9][0-9]?[0-9]?))?")


def plain_address(text: str) -> str | None:
    """``text`` as the normalised text of a plain IPv4 or IPv6 address, or None.

    Plain: no zone (``%…``), port, brackets, spaces or netmask. An IPv4-mapped IPv6 address
    (``::ffff:1.2.3.4``) becomes its IPv4 address, the host it names; Python versions write
    the mapped form differently, and stored text must compare equal across upgrades.
    """
    return _plain_address(text) if isinstance(text, str) else None


def plain_network(text: str) -> str | None:
    """``text`` as the normalised text of a CIDR range, or None; a bare address is its /32 or
    /128, host bits are cleared (``10.1.2.3/8`` → ``10.0.0.0/8``), and IPv4-mapped ranges of
    /96 or longer become IPv4 ranges, as in plain_address."""
    return _plain_network(text) if isinstance(text, str) else None


# Real traffic repeats the same office and attacker addresses; parsing them is the
# costliest part of validation, so the normalised forms are cached.
@functools.lru_cache(maxsize=4096)
def _plain_address(text: str) -> str | None:
    if not _PLAIN_ADDRESS.fullmatch(text):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


@functools.lru_cache(maxsize=4096)
def _plain_network(text: str) -> str | None:
    if not _PLAIN_NETWORK.fullmatch(text):
        return None
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    mapped = getattr(network.network_address, "ipv4_mapped", None)
    if mapped is not None and network.prefixlen >= 96:
        return str(ipaddress.IPv4Network((mapped, network.prefixlen - 96)))
    return str(network)


Check = Callable[[Any, str], Any]
_LOGIN: dict[str, Check] = {"user": _text, "access_group": _text}
_USER_CHANGE: dict[str, Check] = {"who": _text, "user": _text, "access_group": _text}
_ALLOW_LIST: dict[str, Check] = {"who": _text, "access_group": _text, "ip": _cidr}

# Required params of each documented (type, event) pair and how each is checked.
KIND_PARAMS: dict[tuple[str, str], dict[str, Check]] = {
    ("app_login", "incorrect_password"): {**_LOGIN, "count": _count},
    ("app_login", "deleted_user"): _LOGIN,
    ("app_login", "successful_login"): _LOGIN,
    ("app_login", "unauthorized_ip"): {**_LOGIN, "ip": _ip},
    ("app_login", "ip_changed"): {**_LOGIN, "from": _ip, "to": _ip},
    ("user", "user_added"): _USER_CHANGE,
    ("user", "user_deleted"): _USER_CHANGE,
    ("user", "password_changed"): _USER_CHANGE,
    ("user", "privileges_updated"): {"who": _text, "user": _text, "from": _text, "to": _text},
    ("allowed_ip", "ip_added"): _ALLOW_LIST,
    ("allowed_ip", "ip_removed"): _ALLOW_LIST,
    ("allowed_ip", "ip_changed"): {"who": _text, "access_group": _text,
                                   "from": _cidr, "to": _cidr},
}
_COLUMNS = {"user": "user", "who": "who", "access_group": "access_group", "ip": "ip",
            "from": "from_value", "to": "to_value", "count": "count"}


def parse(raw: bytes) -> Event:
    """Validate one message body; raise MalformedEvent whose message is the reason kept."""
    document = _decode(raw)
    time = parse_timestamp(_required_text(document, "timestamp"))
    type_, event = _required_text(document, "type"), _required_text(document, "event")
    callcenter = document.get("callcenter")
    if callcenter is not None and not isinstance(callcenter, str):
        raise MalformedEvent(f"callcenter must be a string, got {_json_kind(callcenter)}")
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise MalformedEvent(f"params must be an object, got {_json_kind(params)}")
    columns = _columns(type_, event, params)
    params_json = _canonical_json(params)
    envelope = _canonical_json({k: v for k, v in document.items() if k != "params"})
    return Event(time=time, type=type_, event=event, callcenter=callcenter, params=params,
                 params_json=params_json, canonical=f"{envelope}\n{params_json}", **columns)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _decode(raw: bytes) -> dict:
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedEvent(f"body is {len(raw)} bytes, over the {MAX_BODY_BYTES}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedEvent(f"body is not JSON ({exc.msg} at line {exc.lineno} "
                             f"column {exc.colno})") from None
    except RecursionError:
        raise MalformedEvent("body is not usable JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise MalformedEvent(f"body is not usable JSON ({exc})") from None
    if not isinstance(document, dict):
        raise MalformedEvent(f"body must be a JSON object, got {_json_kind(document)}")
    # Fewer brackets than the limit cannot nest past it: most bodies skip the walk.
    if text.count("{") + text.count("[") > MAX_DEPTH and _too_deep(document):
        raise MalformedEvent(f"body is nested more than {MAX_DEPTH} levels deep "
                             "(objects and arrays)")
    return _replace_lone_surrogates(document) if "\\u" in text else document


def _too_deep(document: dict) -> bool:
    """Whether objects and arrays nest more than MAX_DEPTH levels (the body itself is level
    1). A loop with its own stack: recursion is what the limit protects against."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise MalformedEvent(f"key {_preview(duplicate)} appears twice in one object")
    return document


def _no_constants(name: str) -> None:
    raise MalformedEvent(f"body is not JSON ({name} is not a JSON value)")


def _finite_float(text: str) -> float:  # json calls it for every number with a dot or exponent
    number = float(text)
    if math.isinf(number):
        raise MalformedEvent(f"body is not usable JSON (number {_preview(text)} is out of range)")
    return number


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants,
                            parse_float=_finite_float)  # built once: json.loads builds one a call


def _replace_lone_surrogates(value: Any) -> Any:
    """JSON can escape an unpaired surrogate that UTF-8 cannot store: show it as U+FFFD.

    The raw body keeps the original; rejecting the event instead would let an
    attacker hide a login attempt by typing such a name.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _LONE_SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_lone_surrogates(item) for item in value]
    return value


def _required_text(document: dict, key: str) -> str:
    if key not in document:
        raise MalformedEvent(f"{key} is missing")
    value = document[key]
    if not isinstance(value, str):
        raise MalformedEvent(f"{key} must be a string, got {_json_kind(value)}")
    if not value and key != "timestamp":
        raise MalformedEvent(f"{key} is empty")
    return value


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 with any fractional precision → aware UTC datetime (no offset means UTC)."""
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        raise MalformedEvent(f"timestamp is not ISO 8601: {_preview(text)}")
    year, month, day, hour, minute, second, fraction, _zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        offset = UTC
        if sign:
            delta = timedelta(hours=int(off_h), minutes=int(off_m))
            offset = timezone(delta if sign == "+" else -delta)
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute),
                          int(second), micro, tzinfo=offset)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise MalformedEvent(f"timestamp is not a real moment: {_preview(text)} ({exc})") from None


def _columns(type_: str, event: str, params: dict) -> dict[str, Any]:
    checks = KIND_PARAMS.get((type_, event))
    if checks is None:
        return _best_effort_columns(params)
    columns = {}
    for name, check in checks.items():
        if name not in params:
            raise MalformedEvent(f"params.{name} is missing (required for {type_}/{event})")
        columns[_COLUMNS[name]] = check(params[name], name)
    for name in ("user", "who", "access_group"):  # optional extras Voiso may add
        if name not in checks and isinstance(params.get(name), str):
            columns[name] = params[name]
    return columns


def _best_effort_columns(params: dict) -> dict[str, Any]:
    """An unknown kind is valid and kept; lift out whatever looks like a known param.

    ip/from/to reach their columns only as plain addresses or ranges: those columns feed
    /voiso ip, the allow-list replay and lookup links. Other text stays in params only.
    """
    columns: dict[str, Any] = {}
    for name, column in _COLUMNS.items():
        value = params.get(name)
        if name == "count":
            with contextlib.suppress(MalformedEvent):
                columns[column] = _count(value, name)
        elif name in ("ip", "from", "to"):
            address = plain_address(value) or plain_network(value)
            if address is not None:
                columns[column] = address
        elif isinstance(value, str):
            columns[column] = value
    return columns


def _json_kind(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
             str: "a string", list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _preview(value: Any, limit: int = 60) -> str:
    """A short, one-line, quoted rendering of untrusted text for reasons and logs."""
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# What SQLite's NOCASE collation and lower() fold: ASCII letters only ("Ä" stays "Ä").
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@functools.lru_cache(maxsize=65536)  # the same few thousand users, over and over
def fold_nocase(user: str) -> str:
    """A login name as events.user's NOCASE collation compares it, and as the rollups and
    summaries key it: ASCII letters in lower case, every other character as it is."""
    return user.lower() if user.isascii() else user.translate(_ASCII_LOWER)
