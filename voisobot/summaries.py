"""What /voiso ip and /voiso user read instead of walking a busy address's or user's events.

Tables (migration 0017 says what each holds): address_events and network_events (an
address's or a range's events, by ip_keys key), address_totals (per address),
address_users and address_pairs (who used an address, a user's addresses), user_kinds (a
user's events per kind, as user and as who).

They are kept behind the 'summarised' cursor, off the intake's transaction:
``summarise_new_events`` adds events stored since, and moves the cursor in the same
transaction, so each event is summarised exactly once (the counting job calls
``summarise_all_new_events``; so does Store() after migrating, which is the backfill).
A question reads the tables and adds the events after the cursor (``tail``), inside one
read transaction (``snapshot``): its answer is exact to the last commit and it takes no
write lock. ``forget`` takes pruned events back out, in the prune's own transaction.

Events rows are summarised by one function, ``summarise``, for the tables, for a
question's tail and for a prune: the three cannot disagree.
"""

import functools
import heapq
import itertools
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from voisobot.events import fold_nocase as fold
from voisobot.ip_keys import Key, Span, address_key, key_text, network_span, overlaps
from voisobot.store import catch_up, transaction

CURSOR = "summarised"
BATCH = 2000            # events per transaction of the counting job: a short write lock
CATCH_UP_BATCH = 20000  # per transaction of the backfill, before the bot answers anything
Cursor = tuple[str, int]  # (event_time, id), as queries pages them

_ROW = "id, event_time, type, event, user, who, ip, from_value, to_value"
_AFTER_CURSOR = "id > (SELECT value FROM cursors WHERE name = 'summarised')"
ANY_NEW_EVENT_SQL = f"SELECT (SELECT id FROM events WHERE {_AFTER_CURSOR} LIMIT 1)"
NEW_EVENTS_SQL = f"SELECT {_ROW} FROM events WHERE {_AFTER_CURSOR} ORDER BY id LIMIT :limit"
# The tail of one question. "+user" keeps the column's NOCASE collation but not its index,
# so SQLite walks the few rows after the cursor rather than all of a busy user's entries.
USER_TAIL_SQL = f"""
    SELECT {_ROW} FROM events WHERE {_AFTER_CURSOR} AND (+user = :email OR +who = :email)"""
ADDRESS_TAIL_SQL = f"""
    SELECT {_ROW} FROM events WHERE {_AFTER_CURSOR}
      AND (ip IS NOT NULL OR from_value IS NOT NULL OR to_value IS NOT NULL)"""

ADDRESS_TOTALS_SQL = """
    SELECT key, last_seen FROM address_totals WHERE key >= :low AND key <= :high"""
# One address's events before the page's cursor, newest first: one index walk.
ADDRESS_EVENTS_SQL = """
    SELECT event_time, id FROM address_events
    WHERE key = :key AND event_time <= :at AND (event_time < :at OR id < :id)
    ORDER BY event_time DESC, id DESC LIMIT :limit"""
# Ranges overlapping [low, high]: those starting at or before high (few: allow-list ranges).
NETWORK_EVENTS_SQL = """
    SELECT event_time, id FROM network_events
    WHERE low <= :high AND high >= :low AND event_time <= :at AND (event_time < :at OR id < :id)"""
# Ranked here: most events first, then the most recent (most answers need no correction).
ADDRESS_USERS_SQL = """
    SELECT user, min(spelling), sum(n), max(last_seen) FROM address_users
    WHERE key >= :low AND key <= :high GROUP BY user ORDER BY 3 DESC, 4 DESC, user"""
# One address with nothing to add from the tail: its first few users, and how many.
ADDRESS_TOP_USERS_SQL = """
    SELECT spelling, n, last_seen FROM address_users WHERE key = :low
    ORDER BY n DESC, last_seen DESC, user LIMIT :shown"""
ADDRESS_USER_COUNT_SQL = "SELECT count(*) FROM address_users WHERE key = :low"
ADDRESS_PAIRS_SQL = """
    SELECT user, sum(n) FROM address_pairs
    WHERE low >= :low AND low <= :high AND high <= :high GROUP BY user"""
# Users of events that mention a range only as a CIDR (the allow-list's have none; an
# unknown kind's may): few rows, read whole so that an event is counted once.
NETWORK_USERS_SQL = """
    SELECT DISTINCT e.id, e.user, e.event_time, e.ip, e.from_value, e.to_value
    FROM network_events AS n JOIN events AS e ON e.id = n.id
    WHERE n.low <= :high AND n.high >= :low AND e.user IS NOT NULL"""
USER_KINDS_SQL = "SELECT role, type, event, n FROM user_kinds WHERE user = :user"
USER_ADDRESSES_SQL = """
    SELECT key, logins, last_login FROM address_users WHERE user = :user AND logins > 0"""

_ADD = {
    "address_events": "INSERT INTO address_events VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    "network_events": "INSERT INTO network_events VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "totals": """
        INSERT INTO address_totals VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE
        SET n = n + excluded.n, last_seen = max(last_seen, excluded.last_seen)""",
    "users": """
        INSERT INTO address_users VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key, user) DO UPDATE
        SET n = n + excluded.n, last_seen = max(last_seen, excluded.last_seen),
            logins = logins + excluded.logins,
            last_login = coalesce(max(last_login, excluded.last_login), last_login,
                                  excluded.last_login)""",
    "pairs": """
        INSERT INTO address_pairs VALUES (?, ?, ?, ?) ON CONFLICT (low, high, user) DO UPDATE
        SET n = n + excluded.n""",
    "kinds": """
        INSERT INTO user_kinds VALUES (?, ?, ?, ?, ?) ON CONFLICT (user, role, type, event)
        DO UPDATE SET n = n + excluded.n""",
}
# Prune deletes the oldest events: a row's newest time (last_seen) stays right while any
# of its events are left, and a row with none left goes.
_FORGET = {
    "address_events": ["DELETE FROM address_events WHERE key = ? AND event_time = ? AND id = ?"],
    "network_events": [
        "DELETE FROM network_events WHERE low = ? AND high = ? AND event_time = ? AND id = ?"],
    "totals": ["UPDATE address_totals SET n = n - ? WHERE key = ?",
               "DELETE FROM address_totals WHERE key = ? AND n <= 0"],
    "users": ["""UPDATE address_users SET n = n - ?, logins = logins - ?,
                     last_login = CASE WHEN logins - ? > 0 THEN last_login END
                 WHERE key = ? AND user = ?""",
              "DELETE FROM address_users WHERE key = ? AND user = ? AND n <= 0"],
    "pairs": ["UPDATE address_pairs SET n = n - ? WHERE low = ? AND high = ? AND user = ?",
              "DELETE FROM address_pairs WHERE low = ? AND high = ? AND user = ? AND n <= 0"],
    "kinds": ["""UPDATE user_kinds SET n = n - ?
                 WHERE user = ? AND role = ? AND type = ? AND event = ?""",
              """DELETE FROM user_kinds
                 WHERE user = ? AND role = ? AND type = ? AND event = ? AND n <= 0"""],
}


@functools.lru_cache(maxsize=65536)
def _addresses_of(*values: str | None) -> tuple[tuple[Key, ...], tuple[Span, ...]]:
    """The distinct address keys (sorted) and CIDR spans among an event's ip/from/to."""
    keys = sorted({key for key in map(address_key, values) if key is not None})
    return tuple(keys), tuple({span for span in map(network_span, values) if span is not None})


@dataclass
class UserAtAddress:
    spelling: str
    n: int = 0
    last_seen: str = ""
    logins: int = 0
    last_login: str | None = None


@dataclass
class Summary:
    """What some events add to the tables, keyed as the tables are."""

    address_events: set[tuple[Key, str, int]] = field(default_factory=set)
    network_events: set[tuple[Key, Key, str, int]] = field(default_factory=set)
    totals: dict[Key, list] = field(default_factory=dict)          # key: [n, last_seen]
    users: dict[tuple[Key, str], UserAtAddress] = field(default_factory=dict)
    pairs: Counter = field(default_factory=Counter)                 # (low, high, user)
    kinds: Counter = field(default_factory=Counter)                 # (user, role, type, event)

    def add(self, row: sqlite3.Row | tuple) -> None:
        event_id, at, type_, event, user, who, ip, from_value, to_value = row
        keys, spans = _addresses_of(ip, from_value, to_value)
        for key in keys:
            self.address_events.add((key, at, event_id))
            total = self.totals.get(key)
            if total is None:
                self.totals[key] = [1, at]
            else:
                total[0] += 1
                total[1] = max(total[1], at)
        for span in spans:
            self.network_events.add((*span, at, event_id))
        if user is not None:
            self._add_user(fold(user), user, keys, at, type_ == "app_login")
            self.kinds[fold(user), "user", type_, event] += 1
        if who is not None:
            self.kinds[fold(who), "who", type_, event] += 1

    def _add_user(self, folded: str, spelling: str, keys: list[Key], at: str,
                  login: bool) -> None:
        for key in keys:
            seen = self.users.get((key, folded))
            if seen is None:
                seen = self.users[key, folded] = UserAtAddress(spelling)
            seen.n += 1
            seen.last_seen = max(seen.last_seen, at)
            if login:
                seen.logins += 1
                seen.last_login = max(seen.last_login or at, at)
        for low, high in itertools.pairwise(keys):
            self.pairs[low, high, folded] += 1


def summarise(rows: Iterable[sqlite3.Row | tuple]) -> Summary:
    """The Summary of events rows (columns as ``_ROW``)."""
    summary = Summary()
    for row in rows:
        summary.add(row)
    return summary


# --- keeping the tables ------------------------------------------------------------------

def summarise_new_events(conn: sqlite3.Connection, limit: int = BATCH) -> int:
    """Add up to ``limit`` events stored after the cursor and move it, in one transaction."""
    if conn.execute(ANY_NEW_EVENT_SQL).fetchone()[0] is None:
        return 0  # no write lock for nothing (the job runs every second; a store may be read-only)
    with transaction(conn):
        rows = _plain(conn).execute(NEW_EVENTS_SQL, {"limit": limit}).fetchall()
        if rows:
            _write(conn, summarise(rows))
            conn.execute("UPDATE cursors SET value = ? WHERE name = ?", (rows[-1][0], CURSOR))
    return len(rows)


def _plain(conn: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor that returns tuples: many rows unpack faster than sqlite3.Row does."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor


def summarise_all_new_events(conn: sqlite3.Connection, batch: int = BATCH) -> int:
    """summarise_new_events until every stored event is summarised; returns how many were."""
    return catch_up(lambda size: summarise_new_events(conn, size), batch)


def _write(conn: sqlite3.Connection, summary: Summary) -> None:
    conn.executemany(_ADD["address_events"], summary.address_events)
    conn.executemany(_ADD["network_events"], summary.network_events)
    conn.executemany(_ADD["totals"], ((key, n, at) for key, (n, at) in summary.totals.items()))
    conn.executemany(_ADD["users"], (
        (key, user, s.spelling, s.n, s.last_seen, s.logins, s.last_login)
        for (key, user), s in summary.users.items()))
    conn.executemany(_ADD["pairs"], ((*pair, n) for pair, n in summary.pairs.items()))
    conn.executemany(_ADD["kinds"], ((*kind, n) for kind, n in summary.kinds.items()))


def forget(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> None:
    """Take events about to be pruned (columns as ``_ROW``) out of the tables. Call it in
    the prune's transaction, before the delete; events not summarised yet are skipped (the
    cursor will never reach them)."""
    (cursor,) = conn.execute("SELECT value FROM cursors WHERE name = ?", (CURSOR,)).fetchone()
    summary = summarise(row for row in rows if row[0] <= cursor)
    sql = _FORGET
    conn.executemany(sql["address_events"][0], summary.address_events)
    conn.executemany(sql["network_events"][0], summary.network_events)
    _subtract(conn, sql["totals"], [((n, key), (key,)) for key, (n, _) in summary.totals.items()])
    _subtract(conn, sql["users"], [((s.n, s.logins, s.logins, *key), key)
                                   for key, s in summary.users.items()])
    _subtract(conn, sql["pairs"], [((n, *pair), pair) for pair, n in summary.pairs.items()])
    _subtract(conn, sql["kinds"], [((n, *kind), kind) for kind, n in summary.kinds.items()])


def _subtract(conn: sqlite3.Connection, statements: list[str],
              changes: list[tuple[tuple, tuple]]) -> None:
    """(update parameters, key) per row: subtract, then delete the rows left at zero."""
    update, delete = statements
    conn.executemany(update, (params for params, _ in changes))
    conn.executemany(delete, (key for _, key in changes))


# --- reading them ------------------------------------------------------------------------

# (the user as one of their events wrote it, their events about the address or range, the
# newest one's time): plain tuples, as a busy address has hundreds of users
UserTally = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class AddressFacts:
    """What the tables say about an address or a range, up to the last commit."""

    addresses: tuple[str, ...]      # the single addresses stored in it, in numeric order
    page: tuple[Cursor, ...]        # up to ``want`` newest events before the cursor
    users: tuple[UserTally, ...]    # the first ``shown``: most events first, then most recent
    user_count: int


def address_facts(conn: sqlite3.Connection, span: Span, before: Cursor, want: int,
                  shown: int) -> AddressFacts:
    """Call inside ``snapshot``. ``want``: how many events of the page to find; ``shown``:
    how many users to list."""
    bounds = {"low": span[0], "high": span[1]}
    tail_rows = [row for row in conn.execute(ADDRESS_TAIL_SQL) if _mentions(row[6:], span)]
    tail = _in_span(summarise(tail_rows), span)
    last_seen = dict(conn.execute(ADDRESS_TOTALS_SQL, bounds).fetchall())
    keys = sorted(last_seen.keys() | tail.totals.keys())
    by_range_only = [(row[4], row[1]) for row in tail_rows
                     if row[4] is not None and not _has_address_in(row[6:], span)]
    for _, user, at, *values in conn.execute(NETWORK_USERS_SQL, bounds):
        if not _has_address_in(values, span):
            by_range_only.append((user, at))
    if span[0] == span[1] and not tail.users and not by_range_only:  # most questions
        users = tuple(_plain(conn).execute(ADDRESS_TOP_USERS_SQL, {**bounds, "shown": shown}))
        (user_count,) = conn.execute(ADDRESS_USER_COUNT_SQL, bounds).fetchone()
    else:
        ranked = _users(conn, bounds, tail, by_range_only)
        users, user_count = ranked[:shown], len(ranked)
    return AddressFacts(
        addresses=tuple(map(key_text, keys)),
        page=tuple(_newest_events(conn, span, last_seen, tail, before, want)),
        users=users, user_count=user_count)


def _has_address_in(values: Iterable[str | None], span: Span) -> bool:
    return any(key is not None and span[0] <= key <= span[1] for key in map(address_key, values))


def _mentions(values: Iterable[str | None], span: Span) -> bool:
    """Whether an address or a CIDR range among ip/from/to overlaps the span."""
    for value in values:
        key = address_key(value)
        inner = (key, key) if key is not None else network_span(value)
        if inner is not None and overlaps(inner, span):
            return True
    return False


def _in_span(found: Summary, span: Span) -> Summary:
    """The tail's rows may mention other addresses too: keep only those in the span."""
    found.address_events = {e for e in found.address_events if span[0] <= e[0] <= span[1]}
    found.totals = {k: v for k, v in found.totals.items() if span[0] <= k <= span[1]}
    found.users = {k: v for k, v in found.users.items() if span[0] <= k[0] <= span[1]}
    found.pairs = Counter({k: n for k, n in found.pairs.items()
                           if span[0] <= k[0] and k[1] <= span[1]})
    found.network_events = {e for e in found.network_events if overlaps(e[:2], span)}
    return found


def _newest_events(conn: sqlite3.Connection, span: Span, last_seen: dict[Key, str],
                   tail: Summary, before: Cursor, want: int) -> list[Cursor]:
    """The ``want`` newest events before ``before``: each address's newest few, one index
    walk each, taken in order of their newest event's time and stopped as soon as no other
    address can hold a newer one. A busy address costs one short walk; a wide range costs
    a walk per address active since the page's oldest event, not per address in it."""
    bound = {"at": before[0], "id": before[1], "low": span[0], "high": span[1]}
    newest: list[Cursor] = []  # a min-heap of the best so far

    def offer(cursor: Cursor) -> None:
        if cursor < before and cursor not in newest:
            if len(newest) < want:
                heapq.heappush(newest, cursor)
            elif cursor > newest[0]:
                heapq.heapreplace(newest, cursor)

    for _, at, event_id in tail.address_events:
        offer((at, event_id))
    for *_, at, event_id in tail.network_events:
        offer((at, event_id))
    for at, event_id in conn.execute(NETWORK_EVENTS_SQL, bound):
        offer((at, event_id))
    for key, seen in sorted(last_seen.items(), key=lambda item: item[1], reverse=True):
        if len(newest) >= want and seen < newest[0][0]:
            break  # this address's events, and those of every one after it, are older
        for at, event_id in conn.execute(ADDRESS_EVENTS_SQL, {**bound, "key": key,
                                                              "limit": want}):
            offer((at, event_id))
    return sorted(newest, reverse=True)


def _users(conn: sqlite3.Connection, bounds: dict, tail: Summary,
           by_range_only: list[tuple[str, str]]) -> tuple[UserTally, ...]:
    """Per user: the events about an address in the range (address_users, less the
    doubles address_pairs counts), and those about a CIDR range overlapping it only."""
    rows = _plain(conn).execute(ADDRESS_USERS_SQL, bounds).fetchall()
    pairs = Counter(dict(conn.execute(ADDRESS_PAIRS_SQL, bounds).fetchall()))
    for (_, _, user), n in tail.pairs.items():
        pairs[user] += n
    extra = [(user, s.spelling, s.n, s.last_seen) for (_, user), s in tail.users.items()]
    extra += [(fold(user), user, 1, at) for user, at in by_range_only]
    if not pairs and not extra:
        return tuple(row[1:] for row in rows)  # as SQL ranked them
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    last: dict[str, str] = {}
    for user, name, n, seen in [*rows, *extra]:
        counts[user] += n
        spelling[user] = min(spelling.get(user, name), name)
        last[user] = max(last.get(user, seen), seen)
    counts.subtract(pairs)  # an event with several addresses in the range counts once
    return tuple((spelling[user], counts[user], last[user])
                 for user in _most_then_newest(counts, last))


def _most_then_newest(counts: Counter, last: dict) -> list:
    """The keys of ``counts``: most first, then the newest ``last``, then in key order."""
    ranked = sorted(counts)
    ranked.sort(key=last.__getitem__, reverse=True)  # stable: ties stay in key order
    ranked.sort(key=counts.__getitem__, reverse=True)
    return ranked


@dataclass(frozen=True, slots=True)
class UserFacts:
    kinds: dict[str, int]                      # as user, per "type/event"
    made: dict[str, int]                       # as who
    addresses: tuple[tuple[str, int, str], ...]  # (address, logins, newest), most first


def user_facts(conn: sqlite3.Connection, email: str) -> UserFacts:
    """Call inside ``snapshot``: a user's events per kind and the addresses of their logins
    (every one: the table holds them all)."""
    user = fold(email)
    tail = summarise(conn.execute(USER_TAIL_SQL, {"email": email}))
    kinds: dict[str, Counter] = {"user": Counter(), "who": Counter()}
    for role, type_, event, n in conn.execute(USER_KINDS_SQL, {"user": user}):
        kinds[role][f"{type_}/{event}"] += n
    for (folded, role, type_, event), n in tail.kinds.items():
        if folded == user:
            kinds[role][f"{type_}/{event}"] += n
    rows = _plain(conn).execute(USER_ADDRESSES_SQL, {"user": user}).fetchall()
    logins: Counter[Key] = Counter({key: n for key, n, _ in rows})
    newest: dict[Key, str] = {key: at for key, _, at in rows}
    for (key, folded), seen in tail.users.items():
        if folded == user and seen.logins:
            logins[key] += seen.logins
            newest[key] = max(newest.get(key, seen.last_login), seen.last_login)
    return UserFacts(kinds=dict(kinds["user"]), made=dict(kinds["who"]),
                     addresses=tuple((key_text(k), logins[k], newest[k])
                                     for k in _most_then_newest(logins, newest)))
