"""What the cache already knows about an event, as a few lines for its alert.

A forwarding tool sees one event at a time; the store has all of them, so an
alert can say "first time this IP is seen for this user in 30 days" or "refused
as unauthorized 2 minutes before it was allow-listed". Every rule looks only at
events before the one described (an earlier event time; at the same time, a
smaller id): an alert's context never depends on what arrived later, and
rendering it again gives the same lines.

Each query is a module constant (``*_SQL``) whose window sits on an index; the
tests run EXPLAIN QUERY PLAN on every one and check which. Event values are
untrusted and go into the lines as plain text: the templates escape them.
"""

import ipaddress
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from voisobot import lookalike
from voisobot.events import Event, plain_address, plain_network
from voisobot.routing import ADMIN_GROUPS
from voisobot.store import time_text

MAX_LINES = 3
IP_HISTORY_WINDOW = timedelta(days=30)
REFUSAL_WINDOW = timedelta(hours=24)
LOGIN_LOOKBACK = timedelta(hours=1)
ADMIN_GRANT_WINDOW = timedelta(days=7)
REFUSAL_SCAN_LIMIT = 5000  # unauthorized_ip rows examined for one allow-list change
ADMIN_GRANT_SCAN_LIMIT = 100  # privilege changes of one user in a week; more is absurd

# Strictly before the described event: earlier, or at the same moment and stored first.
_BEFORE = "event_time <= :at AND (event_time < :at OR id < :id)"
_SINCE = f"event_time >= :since AND {_BEFORE}"
_NEWEST_FIRST = "ORDER BY event_time DESC, id DESC"

# A user's own events are few next to all events of a kind (a password-guessing storm
# spreads over many users), so per-user questions are answered from a per-user index:
# events_by_user_kind (user, type, event, event_time) where the kind is known, else
# events_by_user (user, event_time); the tests hold each query to its index.
IP_SIGHTINGS_SQL = f"""
    SELECT count(*) FROM events
    WHERE user = :user AND :ip IN (ip, from_value, to_value) AND {_SINCE}"""
FAILED_PASSWORDS_SQL = f"""
    SELECT count(*) FROM events
    WHERE user = :user AND type = 'app_login' AND event = 'incorrect_password' AND {_SINCE}"""
LAST_REFUSAL_OF_USER_SQL = f"""
    SELECT event_time FROM events
    WHERE user = :user AND type = 'app_login' AND event = 'unauthorized_ip' AND {_SINCE}
    {_NEWEST_FIRST} LIMIT 1"""
FAILURES_OF_USER_SQL = f"""
    SELECT event, count(*) FROM events
    WHERE user = :user AND type = 'app_login'
      AND event IN ('incorrect_password', 'unauthorized_ip') AND {_SINCE}
    GROUP BY event"""
LAST_DELETION_OF_USER_SQL = f"""
    SELECT who, event_time FROM events
    WHERE user = :user AND type = 'user' AND event = 'user_deleted' AND {_BEFORE}
    {_NEWEST_FIRST} LIMIT 1"""
PRIVILEGE_CHANGES_OF_USER_SQL = f"""
    SELECT to_value, event_time FROM events
    WHERE user = :user AND type = 'user' AND event = 'privileges_updated' AND {_SINCE}
    {_NEWEST_FIRST} LIMIT :limit"""
NAME_SEEN_AS_USER_SQL = f"SELECT user FROM events WHERE user = :name AND {_BEFORE} LIMIT 1"
NAME_SEEN_AS_WHO_SQL = f"SELECT who FROM events WHERE who = :name AND {_BEFORE} LIMIT 1"
# Whether an address lies in a range is a question for ipaddress, not SQL: take the
# window's refusals newest first and test each.
RECENT_REFUSALS_SQL = f"""
    SELECT ip, user, event_time FROM events
    WHERE type = 'app_login' AND event = 'unauthorized_ip' AND {_SINCE}
    {_NEWEST_FIRST} LIMIT :limit"""


def context_lines(conn: sqlite3.Connection, event: Event, event_id: int) -> tuple[str, ...]:
    """At most MAX_LINES plain-text lines about ``event`` (stored as ``event_id``), most
    useful first, from the events stored before it."""
    earlier = _Earlier(conn, event, event_id)
    lines: list[str] = []
    for rule in _RULES:
        lines += rule(earlier)
    return tuple(lines[:MAX_LINES])


class _Earlier:
    """Queries over the events before one event, with its time and id bound."""

    def __init__(self, conn: sqlite3.Connection, event: Event, event_id: int):
        self.conn = conn
        self.event = event
        self._bound = {"at": time_text(event.time), "id": event_id}

    def rows(self, sql: str, since: datetime | None = None, **params: Any) -> list:
        if since is not None:
            params["since"] = time_text(since)
        return self.conn.execute(sql, {**self._bound, **params}).fetchall()

    def age(self, event_time: str) -> str:
        """How long before the described event a stored ``event_time`` is, in words."""
        return age_in_words(self.event.time - datetime.fromisoformat(event_time))


def _refused_before_allow_listed(earlier: _Earlier) -> tuple[str, ...]:
    event = earlier.event
    added = {"allowed_ip/ip_added": event.ip,
             "allowed_ip/ip_changed": event.to_value}.get(event.kind)
    network = _network(added)
    if network is None:
        return ()
    refusals = earlier.rows(RECENT_REFUSALS_SQL, event.time - REFUSAL_WINDOW,
                            limit=REFUSAL_SCAN_LIMIT)
    for ip, user, event_time in refusals:
        address = _address(ip)
        if address is not None and address in network:
            return (f"IP {ip} was refused as unauthorized {earlier.age(event_time)} before "
                    f"it was added to the allow-list (user {user})",)
    return ()


def _login_to_deleted_account(earlier: _Earlier) -> tuple[str, ...]:
    event = earlier.event
    if event.kind != "app_login/deleted_user" or not event.user:
        return ()
    found = earlier.rows(LAST_DELETION_OF_USER_SQL, user=event.user)
    if not found:
        return ()
    who, event_time = found[0]
    return (f"{event.user} was deleted by {who} {earlier.age(event_time)} ago",)


def _granted_by_new_admin(earlier: _Earlier) -> tuple[str, ...]:
    event = earlier.event
    if event.kind != "user/privileges_updated" or not event.who \
            or not is_admin_group(event.to_value):
        return ()
    changes = earlier.rows(PRIVILEGE_CHANGES_OF_USER_SQL, event.time - ADMIN_GRANT_WINDOW,
                           user=event.who, limit=ADMIN_GRANT_SCAN_LIMIT)
    for group, event_time in changes:
        if is_admin_group(group):
            return (f"{event.who} was made {group} {earlier.age(event_time)} ago themselves",)
    return ()


def _failed_passwords_today(earlier: _Earlier) -> tuple[str, ...]:
    event = earlier.event
    if event.kind != "app_login/incorrect_password" or not event.user:
        return ()
    midnight = event.time.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ((before_today,),) = earlier.rows(FAILED_PASSWORDS_SQL, midnight, user=event.user)
    lines = [f"{ordinal(before_today + 1)} failed-password alert for {event.user} today"]
    refused = earlier.rows(LAST_REFUSAL_OF_USER_SQL, event.time - REFUSAL_WINDOW,
                           user=event.user)
    if refused:
        lines.append(f"{event.user} was also refused from an unauthorized IP "
                     f"{earlier.age(refused[0][0])} ago")
    return tuple(lines)


def _failures_before_login(earlier: _Earlier) -> tuple[str, ...]:
    event = earlier.event
    if event.kind != "app_login/successful_login" or not event.user:
        return ()
    counts = {row[0]: row[1] for row in earlier.rows(
        FAILURES_OF_USER_SQL, event.time - LOGIN_LOOKBACK, user=event.user)}
    failed, refused = counts.get("incorrect_password", 0), counts.get("unauthorized_ip", 0)
    parts = [f"{n} {label}" for n, label in ((failed, "failed-password"),
                                             (refused, "unauthorized-IP")) if n]
    if not parts:
        return ()
    noun = "alert" if failed + refused == 1 else "alerts"
    return (f"Came after {' and '.join(parts)} {noun} for {event.user} "
            f"in the previous hour",)


def _imitates_an_earlier_name(earlier: _Earlier) -> tuple[str, ...]:
    """A name that mixes scripts and looks like a plain name seen before it."""
    lines = []
    for name in dict.fromkeys(n for n in (earlier.event.user, earlier.event.who) if n):
        mix, shape = lookalike.mixed_scripts(name), lookalike.skeleton(name)
        if not mix or shape == name.lower():
            continue
        seen = earlier.rows(NAME_SEEN_AS_USER_SQL, name=shape) \
            or earlier.rows(NAME_SEEN_AS_WHO_SQL, name=shape)
        if seen:
            lines.append(f"{name} looks like {seen[0][0]}, a name seen before it "
                         f"({mix} letters)")
    return tuple(lines)


def _login_ip_history(earlier: _Earlier) -> tuple[str, ...]:
    event = earlier.event
    ip = login_ip(event)
    if ip is None or not event.user:
        return ()
    ((seen,),) = earlier.rows(IP_SIGHTINGS_SQL, event.time - IP_HISTORY_WINDOW,
                              user=event.user, ip=ip)
    days = IP_HISTORY_WINDOW.days
    if not seen:
        return (f"First time IP {ip} is seen for {event.user} in {days} days",)
    return (f"IP {ip} seen {_quantity(seen, 'time')} for {event.user} in the last {days} days",)


# Most useful first. A look-alike name comes with any kind; otherwise no kind matches two
# rules, and the order settles it if one ever does.
_RULES: tuple[Callable[[_Earlier], tuple[str, ...]], ...] = (
    _imitates_an_earlier_name,
    _refused_before_allow_listed,
    _login_to_deleted_account,
    _granted_by_new_admin,
    _failed_passwords_today,
    _failures_before_login,
    _login_ip_history,
)


def login_ip(event: Event) -> str | None:
    """The address a login came from: ``to`` of app_login/ip_changed, else ``ip`` (set
    for unauthorized_ip and for any unknown app_login kind that carries one)."""
    if event.type != "app_login":
        return None
    return event.to_value if event.event == "ip_changed" else event.ip


def is_admin_group(group: str | None) -> bool:
    """The same test routing uses to raise a privilege change to critical."""
    return (group or "").strip().lower() in ADMIN_GROUPS


def _network(text: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A stored range, when it is a plain one (a store kept by an older version may hold
    other text in the column)."""
    plain = plain_network(text)
    return ipaddress.ip_network(plain) if plain else None


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    plain = plain_address(text)
    return ipaddress.ip_address(plain) if plain else None


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 112th …"""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_UNITS = (("day", timedelta(days=1)), ("hour", timedelta(hours=1)),
          ("minute", timedelta(minutes=1)), ("second", timedelta(seconds=1)))


def age_in_words(age: timedelta) -> str:
    """The largest whole unit: "45 seconds", "1 minute", "3 hours", "5 days"."""
    for unit, size in _UNITS:
        if age >= size:
            return _quantity(age // size, unit)
    return "less than a second"  # the same moment: an earlier event in the same batch


def _quantity(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
