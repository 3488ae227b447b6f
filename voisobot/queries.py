"""Answers to the /voiso subcommands, read from the SQLite cache.

Pure functions over one connection (the store's, rows as sqlite3.Row) that return plain
dataclasses; rendering them for Slack is another module's job. Values stay exactly as
stored: a login name is whatever a stranger typed, and escaping it is the renderer's work.

Lists are paged by keyset: a page's ``next`` is the (event_time, id) of its last event (an
alert or audit id for those lists), and passing it back as ``before`` gives the following
page, with no gap and no repeat however many events arrive in between.

Every query is a module constant (``*_SQL``) that sits on an index; the tests run EXPLAIN
QUERY PLAN on each. Questions the indexes answer only by walking many rows (a kind's type
across all its events, the busiest users of a day) are split into many small indexed
lookups here rather than one scan: see ``KINDS_SQL``. Counts over time (stats, the digest,
the App Home) come from the rollups the store keeps per hour and day (voisobot/rollups.py).
"""

import functools
import ipaddress
import json
import re
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar

from voisobot import events, ip_keys, rollups, summaries
from voisobot.store import day_text, snapshot, time_text

T = TypeVar("T")
Cursor = tuple[str, int]  # (event_time, id) of the last event shown
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_LIMIT = 50
CHANGES_SHOWN = 10     # changes made to and by a user, newest first
TOP_SHOWN = 5          # users and IPs in stats
IP_USERS_SHOWN = 20    # users of one IP or range, most events first
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# Later than any stored event: time_text() never goes past year 9999.
_END: Cursor = ("9999-12-31T23:59:59.999999Z", 2**63 - 1)

_FIELDS = ("id", "event_time", "type", "event", "callcenter", "user", "who", "access_group",
           "ip", "from_value", "to_value", "count", "params")
_COLUMNS = ", ".join(_FIELDS)
_BEFORE = "event_time <= :at AND (event_time < :at OR id < :id)"
_NEWEST_FIRST = "ORDER BY event_time DESC, id DESC"

RECENT_SQL = f"SELECT {_COLUMNS} FROM events WHERE {_BEFORE} {_NEWEST_FIRST} LIMIT :limit"
RECENT_OF_KIND_SQL = f"""
    SELECT {_COLUMNS} FROM events WHERE type = :type AND event = :event AND {_BEFORE}
    {_NEWEST_FIRST} LIMIT :limit"""
# The distinct (type, event) pairs, one index seek each: past every entry of the pair
# before ("~" sorts after any event_time, which starts with a digit).
KINDS_SQL = """
    WITH RECURSIVE kinds(type, event) AS (
        SELECT '', ''
        UNION ALL
        SELECT (SELECT type FROM events WHERE (type, event, event_time) > (k.type, k.event, '~')
                ORDER BY type, event LIMIT 1),
               (SELECT event FROM events WHERE (type, event, event_time) > (k.type, k.event, '~')
                ORDER BY type, event LIMIT 1)
        FROM kinds AS k WHERE k.type IS NOT NULL)
    SELECT type, event FROM kinds WHERE type IS NOT NULL AND type <> ''"""

# A user is in ``user`` (logins, changes made to them) or ``who`` (changes they made);
# SQLite merges the two index walks, so a page reads only about ``limit`` rows of each.
USER_EVENTS_SQL = f"""
    SELECT {_COLUMNS} FROM events WHERE user = :email AND {_BEFORE}
    UNION
    SELECT {_COLUMNS} FROM events WHERE who = :email AND {_BEFORE}
    {_NEWEST_FIRST} LIMIT :limit"""
# A user's events per kind and the addresses of their logins come from voisobot.summaries.
# All of them, ordered here: they are few, and events_by_user_kind (user, type, …) finds
# them with one seek. With ORDER BY … LIMIT SQLite would rather walk events_by_user newest
# first, reading every row of a busy login that has a few changes.
CHANGES_TO_USER_SQL = f"SELECT {_COLUMNS} FROM events WHERE user = :email AND type = 'user'"
CHANGES_BY_USER_SQL = f"""
    SELECT {_COLUMNS} FROM events WHERE who = :email {_NEWEST_FIRST} LIMIT :limit"""
# Four one-row index lookups: min() and max() together in one SELECT would read every row.
USER_SEEN_SQL = """
    SELECT (SELECT min(event_time) FROM events WHERE user = :email),
           (SELECT max(event_time) FROM events WHERE user = :email),
           (SELECT min(event_time) FROM events WHERE who = :email),
           (SELECT max(event_time) FROM events WHERE who = :email)"""

# An address's or a range's events and users come from voisobot.summaries, by ip_keys key:
# a range of addresses is a range of keys. The rows of the page are read by id after.
EVENTS_BY_ID_SQL = f"SELECT {_COLUMNS} FROM events WHERE id IN (SELECT value FROM json_each(:ids))"
# The allow-list is what these events did, replayed in order; a few hundred rows.
ALLOW_LIST_EVENTS_SQL = f"""
    SELECT {_COLUMNS} FROM events WHERE type = 'allowed_ip' ORDER BY event_time, id"""
# What the replay depends on, read from events_by_kind alone: the store (its id is unique
# to it, migration 0007) and which allow-list events it holds. Unchanged, the last replay
# stands (a pruned id reused for an allow-list event of the same event and time would
# fool it: the rows are immutable otherwise).
ALLOW_LIST_VERSION_SQL = """
    SELECT (SELECT value FROM meta WHERE key = 'store_id'),
           group_concat(event || ' ' || event_time || ' ' || id, ',')
    FROM events WHERE type = 'allowed_ip'"""
OLDEST_EVENT_SQL = "SELECT min(event_time) FROM events"

UNACKED_SQL = f"""
    SELECT a.id AS alert_id, a.channel, a.slack_ts, a.severity, a.event_count, a.created_at,
           a.sent_at, {", ".join(f"e.{name}" for name in _FIELDS)}
    FROM alerts AS a JOIN events AS e ON e.id = a.event_id
    WHERE a.state = 'sent' AND a.acked_by IS NULL AND a.id > :after_id
      AND a.channel NOT LIKE 'teams:%' -- a Teams card has no button to acknowledge it
      AND (:all OR a.severity != 'info') -- informational alerts only when asked for
    ORDER BY a.id LIMIT :limit"""
AUDIT_SQL = """
    SELECT id, at, user_id, channel_id, action, detail, allowed, outcome, platform FROM audit
    WHERE id < :before_id ORDER BY id DESC LIMIT :limit"""

_IN_PERIOD = "event_time >= :since AND event_time <= :until"
REJECTED_COUNT_SQL = """
    SELECT count(*) FROM rejected WHERE received_at >= :since AND received_at <= :until"""
# The rollups hold a user with ASCII letters in lower case (as NOCASE folds them); stats show
# the spelling of their oldest cached event (the first in events_by_user).
USER_SPELLING_SQL = "SELECT user FROM events WHERE user = :user ORDER BY event_time LIMIT 1"


# --- what the functions return -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    event_time: str
    type: str
    event: str
    callcenter: str | None
    user: str | None
    who: str | None
    access_group: str | None
    ip: str | None
    from_value: str | None
    to_value: str | None
    count: int | None
    params: str  # JSON, as stored

    @property
    def kind(self) -> str:
        return f"{self.type}/{self.event}"

    @property
    def cursor(self) -> Cursor:
        return (self.event_time, self.id)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next: Any = None  # pass back as before/after_id for the following page; None: last page


@dataclass(frozen=True, slots=True)
class Tally:
    name: str
    count: int
    last_seen: str | None = None


@dataclass(frozen=True, slots=True)
class UserProfile:
    email: str
    events: Page[EventRow]
    kinds: dict[str, int]           # their events as ``user``, per kind, most first
    made: dict[str, int]            # events with them as ``who`` (changes they made), per kind
    addresses: tuple[Tally, ...]    # where their logins came from, most used first
    addresses_complete: bool        # always True: every login's address is summarised
    changes_to: tuple[EventRow, ...]   # user-type events about them, newest first
    changes_by: tuple[EventRow, ...]   # events they made, newest first
    first_seen: str | None
    last_seen: str | None


@dataclass(frozen=True, slots=True)
class AllowListEntry:
    network: str
    access_group: str | None
    who: str | None      # who added it (or edited it into this range)
    since: str           # event time of that change


@dataclass(frozen=True, slots=True)
class IpReport:
    query: str                         # normalised: "8.8.8.8" or "8.8.8.0/24"
    events: Page[EventRow]
    addresses: tuple[str, ...]         # looked up: the address, or those stored in the range
    users: tuple[Tally, ...]           # who logged in from it, most events first
    user_count: int
    on_allow_list_now: bool
    allow_list_entries: tuple[AllowListEntry, ...]  # current entries containing/overlapping it
    history_since: str | None          # the oldest cached event: the replay starts there


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    channel: str
    slack_ts: str | None
    severity: str
    event_count: int
    created_at: str
    sent_at: str | None
    event: EventRow  # the alert's first event


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: str
    user_id: str
    channel_id: str | None
    action: str
    detail: str
    allowed: bool
    outcome: str | None
    platform: str = "slack"  # where it came from: "slack" or "teams"


@dataclass(frozen=True, slots=True)
class Stats:
    period: str
    since: str                    # the window counted, both ends included: for 7d and 30d
    until: str                    # whole UTC days, so until may be later than now
    total: int
    kinds: dict[str, int]         # most first
    top_users: tuple[Tally, ...]
    top_ips: tuple[Tally, ...]
    rejected: int                 # messages rejected (by receive time) in the period


# --- what the user typed ---------------------------------------------------------------

KIND_USAGE = ("a kind is type/event (app_login/unauthorized_ip), an event (unauthorized_ip) "
              "or a type (app_login, user, allowed_ip)")
EMAIL_USAGE = "expected an email address, as in /voiso user jane@example.com"
IP_USAGE = "expected an IP address (8.8.8.8, 2001:db8::1) or a CIDR range (8.8.8.0/24)"
PERIOD_USAGE = f"the period is one of {', '.join(PERIODS)}"
_NAME = r"[A-Za-z0-9_.-]{1,64}"
_KIND_TEXT = re.compile(rf"({_NAME})(?:/({_NAME}))?")
_MAILTO = re.compile(r"<mailto:([^|>]*)(?:\|[^>]*)?>")
_SLACK_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))  # &amp; last


@dataclass(frozen=True, slots=True)
class KindFilter:
    """``type/event``, or one word that names a type or an event (any type)."""

    type: str | None = None
    event: str | None = None
    word: str | None = None

    def matches(self, type_: str, event: str) -> bool:
        if self.word is not None:
            return self.word in (type_.casefold(), event.casefold())
        return (self.type, self.event) == (type_.casefold(), event.casefold())


def parse_kind_filter(text: str) -> KindFilter:
    """Raise ValueError (with KIND_USAGE) for anything that cannot be a kind's name; a
    well-formed name that no stored event has simply matches nothing."""
    found = _KIND_TEXT.fullmatch(text.strip())
    if not found:
        raise ValueError(f"not a kind: {_shown(text)}; {KIND_USAGE}")
    first, second = (part.casefold() if part else None for part in found.groups())
    return KindFilter(word=first) if second is None else KindFilter(type=first, event=second)


def parse_email(text: str) -> str:
    """The address in ``jane@example.com`` or Slack's ``<mailto:jane@example.com|…>``, with
    Slack's &lt; &gt; &amp; undone (a stored login name can hold any character)."""
    text = text.strip()
    mailto = _MAILTO.fullmatch(text)
    address = mailto.group(1) if mailto else text
    for entity, character in _SLACK_ENTITIES:
        address = address.replace(entity, character)
    local, at, domain = address.rpartition("@")
    if (not mailto and text.startswith("<")) or not (local and at and domain) \
            or len(address) > 320 or any(c.isspace() or not c.isprintable() for c in address):
        raise ValueError(f"not an email address: {_shown(text)}; {EMAIL_USAGE}")
    return address


def parse_ip(text: str) -> Address | Network:
    """What ``/voiso ip`` accepts: the same plain addresses and ranges as the intake stores
    (no zone after "%", netmask or port), normalised as the intake writes them."""
    text = text.strip()
    if "/" in text:
        network = events.plain_network(text)
        if network is not None:
            return ipaddress.ip_network(network)
    else:
        address = events.plain_address(text)
        if address is not None:
            return ipaddress.ip_address(address)
    raise ValueError(f"not an IP address or range: {_shown(text)}; {IP_USAGE}")


def parse_period(text: str) -> timedelta:
    span = PERIODS.get(text.strip().lower())
    if span is None:
        raise ValueError(f"not a period: {_shown(text)}; {PERIOD_USAGE}")
    return span


def _checked_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"a page holds 1 to {MAX_LIMIT} items, not {limit!r}")
    return limit


def _shown(text: str, width: int = 60) -> str:
    """Untrusted input, quoted and cut short, for an error message (escaped when shown)."""
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted if len(quoted) <= width else quoted[: width - 1] + "…"


# --- recent ----------------------------------------------------------------------------------

def recent(conn: sqlite3.Connection, limit: int = 10, kind: str | None = None,
           before: Cursor | None = None) -> Page[EventRow]:
    """The latest events, newest first by event time; ``kind`` as parse_kind_filter takes."""
    bound = _bound(before, _checked_limit(limit))
    if kind is None:
        return _page(_events(conn, RECENT_SQL, bound), limit)
    wanted = parse_kind_filter(kind)
    rows: list[EventRow] = []
    for type_, event in conn.execute(KINDS_SQL).fetchall():  # each kind is one index walk
        if wanted.matches(type_, event):
            rows += _events(conn, RECENT_OF_KIND_SQL, {**bound, "type": type_, "event": event})
    return _page(_newest_first(rows), limit)


def _bound(before: Cursor | None, limit: int) -> dict[str, Any]:
    at, last_id = _END if before is None else before
    return {"at": str(at), "id": int(last_id), "limit": limit + 1}


def _events(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> list[EventRow]:
    return [EventRow(*row) for row in conn.execute(sql, params)]


def _newest_first(rows: list[EventRow]) -> list[EventRow]:
    return sorted(rows, key=lambda row: row.cursor, reverse=True)


def _page(rows: list, limit: int, cursor=lambda row: row.cursor) -> Page:
    """``rows`` holds up to limit + 1 items: the extra one only says there is more."""
    items = tuple(rows[:limit])
    return Page(items, cursor(items[-1]) if len(rows) > limit else None)


# --- user ------------------------------------------------------------------------------------

def user_events(conn: sqlite3.Connection, email: str, limit: int = 20,
                before: Cursor | None = None) -> Page[EventRow]:
    """Events with the address as ``user`` or ``who``, newest first (case-insensitive)."""
    return _user_events(conn, parse_email(email), limit, before)


def _user_events(conn: sqlite3.Connection, address: str, limit: int,
                 before: Cursor | None) -> Page[EventRow]:
    bound = _bound(before, _checked_limit(limit))
    return _page(_events(conn, USER_EVENTS_SQL, {**bound, "email": address}), limit)


def user_profile(conn: sqlite3.Connection, email: str, limit: int = 20,
                 before: Cursor | None = None) -> UserProfile:
    """Everything the cache holds about one address; ``before`` pages its events only."""
    email = parse_email(email)
    by_email = {"email": email}
    with snapshot(conn):  # the summaries and the events after them, as of one commit
        seen = [at for at in conn.execute(USER_SEEN_SQL, by_email).fetchone() if at is not None]
        facts = summaries.user_facts(conn, email)
        return UserProfile(
            email=email, events=_user_events(conn, email, limit, before),
            kinds=_most_first(facts.kinds), made=_most_first(facts.made),
            addresses=tuple(Tally(*address) for address in facts.addresses),
            addresses_complete=True,
            changes_to=tuple(_newest_first(
                _events(conn, CHANGES_TO_USER_SQL, by_email))[:CHANGES_SHOWN]),
            changes_by=tuple(_events(conn, CHANGES_BY_USER_SQL,
                                     {"email": email, "limit": CHANGES_SHOWN})),
            first_seen=min(seen, default=None), last_seen=max(seen, default=None))


def _most_first(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# --- ip --------------------------------------------------------------------------------------

def ip_report(conn: sqlite3.Connection, text: str, limit: int = 20,
              before: Cursor | None = None) -> IpReport:
    """Events from or about an address (or any address of a range), who used it, and
    whether the allow-list, as the cached allowed_ip events leave it, covers it now."""
    bound = _bound(before, _checked_limit(limit))
    target = parse_ip(text)
    with snapshot(conn):  # the summaries and the events after them, as of one commit
        facts = summaries.address_facts(conn, ip_keys.span_of(target),
                                        (bound["at"], bound["id"]), bound["limit"],
                                        IP_USERS_SHOWN)
        span = _span(str(target))
        entries = [entry for entry in _current_allow_list(conn)
                   if _overlap(_span(entry.network), span)]
        is_range = isinstance(target, ipaddress.IPv4Network | ipaddress.IPv6Network)
        return IpReport(
            query=str(target), events=_page(_by_ids(conn, [i for _, i in facts.page]), limit),
            addresses=facts.addresses if is_range else (str(target),),
            users=tuple(Tally(*user) for user in facts.users),
            user_count=facts.user_count, on_allow_list_now=bool(entries),
            allow_list_entries=tuple(entries),
            history_since=conn.execute(OLDEST_EVENT_SQL).fetchone()[0])


Span = tuple[int, int, int]  # IP version, first and last address as integers


@functools.lru_cache(maxsize=4096)  # the allow-list's ranges: parsed once, not per report
def _span(text: str | None) -> Span | None:
    """An address or a range as a Span; None for any other text."""
    try:
        network = ipaddress.ip_network(text, strict=False) if text else None
    except ValueError:
        return None
    if network is None:
        return None
    return network.version, int(network.network_address), int(network.broadcast_address)


def _overlap(one: Span | None, other: Span | None) -> bool:
    """Whether two addresses or ranges share an address (of the same IP version)."""
    return one is not None and other is not None and one[0] == other[0] \
        and one[1] <= other[2] and other[1] <= one[2]


def _is_address(text: str) -> bool:
    span = _span(text)
    return span is not None and span[1] == span[2] and "/" not in text


_ALLOW_LISTS: dict[tuple, tuple["AllowListEntry", ...]] = {}  # version: entries
_ALLOW_LISTS_KEPT = 8  # a few stores per process (the tests'), one in the bot
_ALLOW_LISTS_LOCK = threading.Lock()


def _current_allow_list(conn: sqlite3.Connection) -> tuple["AllowListEntry", ...]:
    """The allow-list the cached events leave, replayed again only when they change: the
    replay reads every allow-list event, the version only their index entries."""
    version = tuple(conn.execute(ALLOW_LIST_VERSION_SQL).fetchone())
    entries = _ALLOW_LISTS.get(version)
    if entries is None:
        entries = tuple(_allow_list(_events(conn, ALLOW_LIST_EVENTS_SQL, {})))
        with _ALLOW_LISTS_LOCK:  # Bolt answers on a thread pool
            while len(_ALLOW_LISTS) >= _ALLOW_LISTS_KEPT:
                _ALLOW_LISTS.pop(next(iter(_ALLOW_LISTS)))
            _ALLOW_LISTS[version] = entries
    return entries


def _allow_list(events: list[EventRow]) -> list[AllowListEntry]:
    """The entries the allow-list events leave, replayed in (event_time, id) order."""
    entries: dict[str, AllowListEntry] = {}
    for event in events:
        removed, added = {"ip_added": (None, event.ip), "ip_removed": (event.ip, None),
                          "ip_changed": (event.from_value, event.to_value)
                          }.get(event.event, (None, None))
        entries.pop(removed or "", None)
        if added:
            entries[added] = AllowListEntry(added, event.access_group, event.who,
                                            event.event_time)
    return list(entries.values())


def _by_ids(conn: sqlite3.Connection, ids: list[int]) -> list[EventRow]:
    return _newest_first(_events(conn, EVENTS_BY_ID_SQL, {"ids": json.dumps(ids)}))


# --- unacked, audit -----------------------------------------------------------------------

def unacked(conn: sqlite3.Connection, limit: int = 20,
            after_id: int | None = None, *, with_info: bool = False) -> Page[AlertRow]:
    """Posted alerts nobody has acknowledged, oldest first; informational ones only
    ``with_info``."""
    params = {"after_id": after_id or 0, "limit": _checked_limit(limit) + 1,
              "all": int(with_info)}
    alerts = [AlertRow(*tuple(row)[:7], event=EventRow(*tuple(row)[7:]))
              for row in conn.execute(UNACKED_SQL, params)]
    return _page(alerts, limit, cursor=lambda alert: alert.id)


def audit_log(conn: sqlite3.Connection, limit: int = 20,
              before_id: int | None = None) -> Page[AuditRow]:
    """Commands and button presses, newest first, from the audit trail's connection
    (``store.audit.connection()``: audit.py)."""
    params = {"before_id": 2**63 - 1 if before_id is None else before_id,
              "limit": _checked_limit(limit) + 1}
    rows = [AuditRow(*row[:6], bool(row[6]), *row[7:]) for row in conn.execute(AUDIT_SQL,
                                                                               params)]
    return _page(rows, limit, cursor=lambda row: row.id)


# --- stats -----------------------------------------------------------------------------------



def stats(conn: sqlite3.Connection, period: str, now: datetime) -> Stats:
    """Counts per kind, the busiest users and IPs, and rejections over the last period.

    24h is exact, up to ``now``. 7d and 30d are whole UTC days, today's included (the store
    keeps their counts per day): since is the start of the oldest day, until the end of
    today, and events of today after ``now`` count too. Read from the rollups and the few
    events not yet counted, in one read transaction: no write lock, no scan of events.
    """
    span = parse_period(period)
    name = period.strip().lower()
    if span <= PERIODS["24h"]:
        window = {"since": time_text(now - span), "until": time_text(now)}
    else:
        window = _whole_days(now, span.days)
    with snapshot(conn):
        counts = rollups.window_counts(conn, name, window["since"], window["until"],
                                       TOP_SHOWN, _is_address)
        users = tuple(Tally(_spelling(conn, user), n) for user, n in counts.users)
        rejected = conn.execute(REJECTED_COUNT_SQL, window).fetchone()[0]
    return Stats(
        period=name, since=window["since"], until=window["until"],
        total=sum(counts.kinds.values()), kinds=_most_first(counts.kinds), top_users=users,
        top_ips=tuple(Tally(*item) for item in counts.ips), rejected=rejected)


def _whole_days(now: datetime, days: int) -> dict[str, str]:
    """The last ``days`` UTC days, today's included, as times."""
    last = day_text(now)
    first = (date.fromisoformat(last) - timedelta(days=days - 1)).isoformat()
    return {"since": f"{first}T00:00:00.000000Z", "until": f"{last}T23:59:59.999999Z"}


def _spelling(conn: sqlite3.Connection, user: str) -> str:
    row = conn.execute(USER_SPELLING_SQL, {"user": user}).fetchone()
    return user if row is None else row[0]  # its events pruned, its counts not yet


# --- the digest ------------------------------------------------------------------------------

# What the digest (voisobot/digest.py) reads for one period, [since, until] both included.
# A kind's events of the period, oldest first: one range of events_by_kind.
KIND_EVENTS_SQL = f"""
    SELECT {_COLUMNS} FROM events WHERE type = :type AND event = :event AND {_IN_PERIOD}
    ORDER BY event_time, id LIMIT :limit"""
KIND_EVENT_COUNT_SQL = f"""
    SELECT count(*) FROM events WHERE type = :type AND event = :event AND {_IN_PERIOD}"""
# Logins that failed: a wrong password, a login from outside the allow-list, a deleted
# account's. One events_by_kind range each; grouped in a small temporary tree.
FAILED_LOGINS = ("incorrect_password", "unauthorized_ip", "deleted_user")
_FAILED_LOGINS = f"""
    type = 'app_login' AND event IN ({", ".join(f"'{e}'" for e in FAILED_LOGINS)})
    AND {_IN_PERIOD}"""
FAILED_LOGIN_USERS_SQL = f"""
    SELECT user, count(*) FROM events WHERE {_FAILED_LOGINS} AND user IS NOT NULL
    GROUP BY user ORDER BY 2 DESC, user LIMIT :top"""
FAILED_LOGIN_IPS_SQL = f"""
    SELECT ip, count(*) FROM events WHERE {_FAILED_LOGINS} AND ip IS NOT NULL
    GROUP BY ip ORDER BY 2 DESC, ip LIMIT :top"""
# Alerts posted and not acknowledged now, per severity (a Teams webhook card cannot be
# acknowledged: not counted, as in UNACKED_SQL). "id > 0" makes the partial index a search.
OPEN_ALERTS_SQL = """
    SELECT severity, count(*) FROM alerts
    WHERE state = 'sent' AND acked_by IS NULL AND id > 0 AND channel NOT LIKE 'teams:%'
    GROUP BY severity"""
# "Was this you?" questions asked in the period that were answered no, or not (yet).
UNCONFIRMED_SQL = """
    SELECT email, answer, state, alert_id, created_at FROM questions
    WHERE created_at >= :since AND created_at <= :until
      AND (answer = 'no' OR (answer IS NULL AND state IN ('asked', 'expired')))
    ORDER BY created_at, id LIMIT :limit"""


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    email: str  # as the event named the person: untrusted text
    answer: str | None  # "no", or None: never answered
    state: str
    alert_id: int
    asked_at: str


def kind_counts(conn: sqlite3.Connection, since: str, until: str) -> dict[str, int]:
    """Events per kind between two times (both included), most first: the 24h stats'
    count, over any window."""
    counts: Counter[str] = Counter()
    with snapshot(conn):
        for (_, kind), n in rollups.kind_counts_per_hour(conn, since, until).items():
            counts[kind] += n
    return _most_first(counts)


def kind_events(conn: sqlite3.Connection, kind: str, since: str, until: str,
                limit: int) -> tuple[tuple[EventRow, ...], int]:
    """The first ``limit`` events of one kind in the window, oldest first, and how many
    there are in all."""
    type_, event = kind.split("/", 1)
    params = {"type": type_, "event": event, "since": since, "until": until, "limit": limit}
    rows = tuple(_events(conn, KIND_EVENTS_SQL, params))
    (total,) = conn.execute(KIND_EVENT_COUNT_SQL, params).fetchone()
    return rows, total


def failed_logins(conn: sqlite3.Connection, since: str, until: str
                  ) -> tuple[tuple[Tally, ...], tuple[Tally, ...]]:
    """The users and the IPs with the most failed logins in the window, TOP_SHOWN each."""
    params = {"since": since, "until": until, "top": TOP_SHOWN}
    return (tuple(Tally(*row) for row in conn.execute(FAILED_LOGIN_USERS_SQL, params)),
            tuple(Tally(*row) for row in conn.execute(FAILED_LOGIN_IPS_SQL, params)))


def open_alerts(conn: sqlite3.Connection) -> dict[str, int]:
    """Alerts posted and still unacknowledged, per severity."""
    return dict(conn.execute(OPEN_ALERTS_SQL).fetchall())


def unconfirmed(conn: sqlite3.Connection, since: str, until: str,
                limit: int) -> tuple[Unconfirmed, ...]:
    """"Was this you?" questions of the window answered no, or not answered."""
    return tuple(Unconfirmed(*row) for row in conn.execute(
        UNCONFIRMED_SQL, {"since": since, "until": until, "limit": limit}))


# --- the App Home's last 24 hours -----------------------------------------------------------

HOURS = 24


def hourly_counts(conn: sqlite3.Connection, now: datetime) -> dict[str, list[int]]:
    """Events per kind in each of the last HOURS UTC hours, oldest hour first (the current,
    unfinished hour last); kinds with the most events first."""
    last_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first_hour = last_hour - timedelta(hours=HOURS - 1)
    slot = {(first_hour + timedelta(hours=n)).strftime("%Y-%m-%dT%H"): n for n in range(HOURS)}
    counts: dict[str, list[int]] = {}
    with snapshot(conn):
        per_hour = rollups.kind_counts_per_hour(conn, time_text(first_hour), time_text(now))
    for (hour, kind), count in per_hour.items():
        if hour in slot:
            counts.setdefault(kind, [0] * HOURS)[slot[hour]] += count
    return dict(sorted(counts.items(), key=lambda item: (-sum(item[1]), item[0])))
