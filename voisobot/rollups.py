"""The counts behind /voiso stats, kept up so that no question scans events.

Three tables (migration 0016 says what each holds): ``hour_counts`` and ``daily_counts``,
events per UTC hour and day for the dimensions kind, user and IP; and ``window_totals``,
the users' and IPs' totals over the complete buckets of the current windows (24h, 7d, 30d).
Every row counts exactly the events with ids up to the 'daily_counted' cursor: ``add``
counts a batch as the cursor passes it (count_new_events), ``forget`` takes back the
counted events a prune deletes (Store.prune), ``shift`` moves window_totals when the
current hour or day turns (shift_windows, from the counting job).

A question reads, in one read transaction and without a write lock: the buckets of its
window, corrections for the two edge hours of a 24h window (the events of the smaller part,
by events_by_time), and the events stored but not yet counted (ids past the cursor: the
counting job runs every second, so these are few). For the busiest users and IPs it reads
window_totals most first and stops as soon as nothing unread can reach the top (``top``).
"""

import heapq
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from voisobot.events import fold_nocase
from voisobot.store import catch_up, time_text, transaction

CURSOR = "daily_counted"  # the last event id counted
DIMENSIONS = ("kind", "user", "ip")
RANKED = ("user", "ip")  # the dimensions with a top list
_EVENT_COLUMNS = "id, event_time, type, event, user, ip, from_value, to_value"

CURSOR_SQL = f"SELECT value FROM cursors WHERE name = '{CURSOR}'"
# Stored but not yet counted: a range of the primary key, short while the job keeps up.
UNCOUNTED_SQL = f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > :cursor ORDER BY id"
# Counted events of a part of an hour. "+id" keeps SQLite off a primary-key range that
# would cover nearly every event: the time range is the short one.
COUNTED_BETWEEN_SQL = f"""
    SELECT {_EVENT_COLUMNS} FROM events
    WHERE event_time >= :low AND event_time < :high AND +id <= :cursor"""
EVENTS_BETWEEN_SQL = "SELECT count(*) FROM events WHERE event_time >= :low AND event_time < :high"
# The anchor of window_totals: the newest event not in the future (a sender's clock may be).
ANCHOR_SQL = "SELECT max(event_time) FROM events WHERE event_time <= :present"
WINDOWS_SQL = "SELECT span, first, last FROM rollup_windows"
TOTALS_MOST_FIRST_SQL = """
    SELECT value, n FROM window_totals WHERE span = :span AND dimension = :dimension
    ORDER BY n DESC"""
DROP_SPAN_SQL = "DELETE FROM window_totals WHERE span = :span"
DROP_EMPTY_TOTALS_SQL = """
    DELETE FROM window_totals WHERE span = :span AND dimension IN ('user', 'ip') AND n = 0"""
SET_WINDOW_SQL = """
    INSERT INTO rollup_windows (span, first, last) VALUES (:span, :first, :last)
    ON CONFLICT (span) DO UPDATE SET first = excluded.first, last = excluded.last"""
ADD_TOTAL_SQL = """
    INSERT INTO window_totals (span, dimension, value, n) VALUES (?, ?, ?, ?)
    ON CONFLICT (span, dimension, value) DO UPDATE SET n = n + excluded.n"""
DROP_EMPTY_TOTAL_SQL = """
    DELETE FROM window_totals WHERE span = ? AND dimension = ? AND value = ? AND n = 0"""


@dataclass(frozen=True, slots=True)
class Unit:
    """A bucket size: its table, key column and key ('YYYY-MM-DDTHH' or 'YYYY-MM-DD')."""

    table: str
    column: str
    per_day: int  # buckets per day: 24 or 1

    def index(self, key: str) -> int:
        """Buckets since 0001-01-01, so that ranges are integer ranges."""
        day = date.fromisoformat(key[:10]).toordinal()
        return day * 24 + int(key[11:13]) if self.per_day == 24 else day

    def key(self, index: int) -> str:
        day, hour = divmod(index, self.per_day)
        text = date.fromordinal(day).isoformat()
        return f"{text}T{hour:02d}" if self.per_day == 24 else text

    def of(self, event_time: str) -> str:
        return event_time[:13] if self.per_day == 24 else event_time[:10]

    def start(self, index: int) -> str:
        """The first event_time in a bucket."""
        return self.key(index) + (":00:00.000000Z" if self.per_day == 24 else "T00:00:00.000000Z")

    def sum_sql(self) -> str:
        return f"""
            SELECT value, sum(n) FROM {self.table}
            WHERE dimension = :dimension AND {self.column} >= :first AND {self.column} <= :last
            GROUP BY value"""

    def per_bucket_sql(self) -> str:
        return f"""
            SELECT {self.column}, value, n FROM {self.table}
            WHERE dimension = :dimension AND {self.column} >= :first AND {self.column} <= :last"""

    def add_sql(self) -> str:
        return f"""
            INSERT INTO {self.table} (dimension, {self.column}, value, n) VALUES (?, ?, ?, ?)
            ON CONFLICT (dimension, {self.column}, value) DO UPDATE SET n = n + excluded.n"""

    def drop_empty_sql(self) -> str:
        return f"""
            DELETE FROM {self.table} WHERE dimension = ? AND {self.column} = ? AND value = ?
              AND n = 0"""

    def shift_sql(self) -> str:
        """Add (sign 1) or take away (sign -1) a range of buckets from a span's totals."""
        return f"""
            INSERT INTO window_totals (span, dimension, value, n)
            SELECT :span, dimension, value, :sign * sum(n) FROM {self.table}
            WHERE dimension IN ('user', 'ip') AND {self.column} >= :first
              AND {self.column} <= :last
            GROUP BY dimension, value
            ON CONFLICT (span, dimension, value) DO UPDATE SET n = n + excluded.n"""


HOUR = Unit("hour_counts", "hour", 24)
DAY = Unit("daily_counts", "day", 1)
# The spans of window_totals: bucket unit, and how many whole buckets before the anchor's.
SPANS = {"24h": (HOUR, 23), "7d": (DAY, 6), "30d": (DAY, 29)}

Range = tuple[int, int]  # bucket indexes, both included; empty when first > last


def _minus(one: Range, other: Range) -> list[Range]:
    """The buckets of ``one`` not in ``other``, as at most two ranges."""
    if one[0] > one[1]:
        return []
    if other[0] > other[1] or other[1] < one[0] or other[0] > one[1]:
        return [one]
    parts = [(one[0], other[0] - 1), (other[1] + 1, one[1])]
    return [part for part in parts if part[0] <= part[1]]


def _size(ranges: Iterable[Range]) -> int:
    return sum(last - first + 1 for first, last in ranges)


# --- what an event counts as --------------------------------------------------------------

def event_values(row: sqlite3.Row) -> Iterator[tuple[str, str]]:
    """(dimension, value) for each count an event adds: its kind; its user, ASCII letters
    in lower case (each NOCASE-equal spelling is one user); every ip, from and to value,
    once per column (CIDRs and access groups too: only ipaddress tells them apart)."""
    yield "kind", f"{row['type']}/{row['event']}"
    if row["user"] is not None:
        yield "user", fold_nocase(row["user"])
    for value in (row["ip"], row["from_value"], row["to_value"]):
        if value is not None:
            yield "ip", value


def bucket_counts(rows: Iterable[sqlite3.Row]) -> Counter[tuple[str, str, str]]:
    """(dimension, hour, value) -> events, summed here so that a batch costs one upsert per
    distinct key; the values migration 0016's backfill computes in SQL."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        hour = HOUR.of(row["event_time"])
        for dimension, value in event_values(row):
            counts[dimension, hour, value] += 1
    return counts


# --- keeping the tables -------------------------------------------------------------------

def add(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> None:
    """Count events (the counting job, which moves the cursor past them in the same
    transaction)."""
    _apply(conn, bucket_counts(rows), 1)


def forget(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> None:
    """Take back the counts of events about to be deleted (Store.prune, in its
    transaction): those the cursor has passed; the others were never counted."""
    (cursor,) = conn.execute(CURSOR_SQL).fetchone()
    _apply(conn, bucket_counts(row for row in rows if row["id"] <= cursor), -1)


def _apply(conn: sqlite3.Connection, hours: Counter, sign: int) -> None:
    days: Counter[tuple[str, str, str]] = Counter()
    for (dimension, hour, value), n in hours.items():
        days[dimension, hour[:10], value] += n
    totals: Counter[tuple[str, str, str]] = Counter()
    windows = held(conn)
    for span, (unit, _) in SPANS.items():
        first, last = windows.get(span, (1, 0))
        for (dimension, bucket, value), n in (hours if unit is HOUR else days).items():
            if dimension in RANKED and first <= unit.index(bucket) <= last:
                totals[span, dimension, value] += n
    for unit, counts in ((HOUR, hours), (DAY, days)):
        conn.executemany(unit.add_sql(), [(*key, sign * n) for key, n in counts.items()])
    conn.executemany(ADD_TOTAL_SQL, [(*key, sign * n) for key, n in totals.items()])
    if sign < 0:  # a bucket or total that no cached event adds to any more
        for unit, counts in ((HOUR, hours), (DAY, days)):
            conn.executemany(unit.drop_empty_sql(), list(counts))
        conn.executemany(DROP_EMPTY_TOTAL_SQL, list(totals))


def held(conn: sqlite3.Connection) -> dict[str, Range]:
    """The buckets each span of window_totals holds now."""
    return {span: (SPANS[span][0].index(first), SPANS[span][0].index(last))
            for span, first, last in conn.execute(WINDOWS_SQL)}


def anchor(conn: sqlite3.Connection, present: datetime) -> datetime:
    """The moment whose windows window_totals holds: the newest event not after
    ``present``, so that the windows follow the data (a store loaded with last week's
    events, a bot that was down) and one future-dated event cannot move them."""
    present_text = time_text(present)
    (newest,) = conn.execute(ANCHOR_SQL, {"present": present_text}).fetchone()
    return _moment(newest or present_text)


def materialised(at: datetime) -> dict[str, Range]:
    """The complete buckets of each span's window asked at ``at`` (as migration 0016)."""
    hour = HOUR.index(time_text(at))
    day = DAY.index(time_text(at))
    ranges = {}
    for span, (unit, whole) in SPANS.items():
        current = hour if unit is HOUR else day
        ranges[span] = (current - whole, current - 1)
    return ranges


def shift(conn: sqlite3.Connection, at: datetime) -> bool:
    """Move window_totals to the windows of ``at`` (in the caller's write transaction):
    add the buckets that entered, take away those that left. Returns whether any moved."""
    have = held(conn)
    moved = False
    for span, want in materialised(at).items():
        old = have.get(span, (1, 0))
        if old == want:
            continue
        unit = SPANS[span][0]
        if _size(_minus(want, old)) == _size([want]):  # nothing in common: start again
            conn.execute(DROP_SPAN_SQL, {"span": span})
            old = (1, 0)
        for sign, ranges in ((1, _minus(want, old)), (-1, _minus(old, want))):
            for first, last in ranges:
                conn.execute(unit.shift_sql(), {"span": span, "sign": sign,
                                                "first": unit.key(first), "last": unit.key(last)})
        conn.execute(DROP_EMPTY_TOTALS_SQL, {"span": span})
        conn.execute(SET_WINDOW_SQL, {"span": span, "first": unit.key(want[0]),
                                      "last": unit.key(want[1])})
        moved = True
    return moved


# --- reading: one window ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Plan:
    """How a window [since, until] is counted: whole buckets, plus or minus the counted
    events of some [low, high) time ranges, plus the uncounted events inside it."""

    unit: Unit
    buckets: Range
    corrections: tuple[tuple[int, str, str], ...]  # (sign, low, high)
    since: str
    until: str


def plan(conn: sqlite3.Connection, since: str, until: str, unit: Unit = HOUR) -> Plan:
    """Hours: the hours wholly inside, and each edge hour either whole minus its part
    outside the window or not at all plus its part inside, whichever part holds fewer
    events (a count of events_by_time entries). Days: whole days only (7d and 30d)."""
    first, last = unit.index(unit.of(since)), unit.index(unit.of(until))
    if unit is DAY:
        return Plan(unit, (first, last), (), since, until)
    end = _after(until)  # the window is [since, end)
    if first == last:
        whole = since == unit.start(first) and end == unit.start(last + 1)
        parts = () if whole else ((1, since, end),)
        return Plan(unit, (first, last) if whole else (1, 0), parts, since, until)
    corrections = []
    if since != unit.start(first):
        inside, outside = (since, unit.start(first + 1)), (unit.start(first), since)
        if _events_between(conn, *outside) <= _events_between(conn, *inside):
            corrections.append((-1, *outside))
        else:
            corrections.append((1, *inside))
            first += 1
    if end != unit.start(last + 1):
        inside, outside = (unit.start(last), end), (end, unit.start(last + 1))
        if _events_between(conn, *outside) <= _events_between(conn, *inside):
            corrections.append((-1, *outside))
        else:
            corrections.append((1, *inside))
            last -= 1
    return Plan(unit, (first, last), tuple(corrections), since, until)


def _events_between(conn: sqlite3.Connection, low: str, high: str) -> int:
    return conn.execute(EVENTS_BETWEEN_SQL, {"low": low, "high": high}).fetchone()[0]


def event_counts(conn: sqlite3.Connection, window: Plan) -> Counter[tuple[str, str, str]]:
    """(dimension, bucket, value) -> events for everything of the window that is not in
    its buckets: the corrections, and the events not yet counted."""
    counts: Counter[tuple[str, str, str]] = Counter()
    (cursor,) = conn.execute(CURSOR_SQL).fetchone()
    for sign, low, high in window.corrections:
        for row in conn.execute(COUNTED_BETWEEN_SQL, {"low": low, "high": high,
                                                      "cursor": cursor}):
            _count(counts, window.unit, row, sign)
    for row in conn.execute(UNCOUNTED_SQL, {"cursor": cursor}):
        if window.since <= row["event_time"] <= window.until:
            _count(counts, window.unit, row, 1)
    return counts


def _count(counts: Counter, unit: Unit, row: sqlite3.Row, sign: int) -> None:
    bucket = unit.of(row["event_time"])
    for dimension, value in event_values(row):
        counts[dimension, bucket, value] += sign


def per_bucket(conn: sqlite3.Connection, window: Plan, dimension: str,
               extra: Counter) -> Counter[tuple[str, str]]:
    """(bucket, value) -> events of one dimension in the window."""
    counts: Counter[tuple[str, str]] = Counter()
    first, last = window.buckets
    if first <= last:
        for bucket, value, n in conn.execute(window.unit.per_bucket_sql(), {
                "dimension": dimension, "first": window.unit.key(first),
                "last": window.unit.key(last)}):
            counts[bucket, value] += n
    for (dim, bucket, value), n in extra.items():
        if dim == dimension:
            counts[bucket, value] += n
    return +counts


def _sum(conn: sqlite3.Connection, unit: Unit, dimension: str, ranges: Iterable[Range],
         sign: int, into: Counter) -> None:
    for first, last in ranges:
        for value, n in conn.execute(unit.sum_sql(), {
                "dimension": dimension, "first": unit.key(first), "last": unit.key(last)}):
            into[value] += sign * n


@dataclass(frozen=True, slots=True)
class WindowCounts:
    kinds: Counter[str]
    users: list[tuple[str, int]]  # most first, user in lower case
    ips: list[tuple[str, int]]


def window_counts(conn: sqlite3.Connection, span: str, since: str, until: str, top: int,
                  is_address: Callable[[str], bool]) -> WindowCounts:
    """A stats window: 24h ([since, until] to the microsecond), 7d or 30d (whole UTC days,
    since and until their first and last moments). Call inside ``snapshot``."""
    unit = SPANS[span][0]
    window = plan(conn, since, until, unit)
    extra = event_counts(conn, window)
    kinds: Counter[str] = Counter()
    for (_, kind), n in per_bucket(conn, window, "kind", extra).items():
        kinds[kind] += n
    ranked = {}
    for dimension in RANKED:
        totals, partial = _split(conn, span, window, dimension, extra)
        accept = is_address if dimension == "ip" else _anything
        ranked[dimension] = most(totals, partial, top, accept)
    return WindowCounts(+kinds, ranked["user"], ranked["ip"])


def _anything(value: str) -> bool:
    return True


def _split(conn: sqlite3.Connection, span: str, window: Plan, dimension: str,
           extra: Counter) -> tuple[Iterable[tuple[str, int]], Counter[str]]:
    """The window's counts of a dimension as window_totals (most first) plus the rest:
    its buckets that window_totals lacks, minus those it has and the window does not, plus
    the events. When window_totals is far from this window (a past moment), nothing of it
    and every bucket summed instead: right, only slower."""
    kept = held(conn).get(span, (1, 0))
    added, removed = _minus(window.buckets, kept), _minus(kept, window.buckets)
    partial: Counter[str] = Counter()
    for (dim, _, value), n in extra.items():
        if dim == dimension:
            partial[value] += n
    if _size(added) + _size(removed) >= _size([window.buckets]):
        _sum(conn, window.unit, dimension, [window.buckets], 1, partial)
        return (), partial
    _sum(conn, window.unit, dimension, added, 1, partial)
    _sum(conn, window.unit, dimension, removed, -1, partial)
    totals = conn.execute(TOTALS_MOST_FIRST_SQL, {"span": span, "dimension": dimension})
    return totals, partial


def most(totals: Iterable[tuple[str, int]], partial: Counter[str], top: int,
         accept: Callable[[str], bool]) -> list[tuple[str, int]]:
    """The ``top`` values with the highest total + partial, most first (ties by value),
    reading ``totals`` (most first) only until the ``top``-th best found beats what any
    value not yet read could reach: its total is at most the last read, its partial at
    most the largest partial."""
    reach = max(0, *partial.values()) if partial else 0
    found: dict[str, int] = {}
    best: list[int] = []  # a min-heap of the ``top`` highest sums found
    for value, total in totals:
        if len(best) == top and best[0] > total + reach:
            break
        found[value] = total + partial.get(value, 0)
        if accept(value) and found[value] > 0:
            _keep(best, found[value], top)
    else:
        for value, n in partial.items():  # every total read: the others have none
            found.setdefault(value, n)
    ranked = [(value, n) for value, n in found.items() if n > 0 and accept(value)]
    return sorted(ranked, key=lambda item: (-item[1], item[0]))[:top]


def _keep(best: list[int], n: int, top: int) -> None:
    if len(best) < top:
        heapq.heappush(best, n)
    elif n > best[0]:
        heapq.heapreplace(best, n)


# --- reading: kinds over any window -------------------------------------------------------

def kind_counts_per_hour(conn: sqlite3.Connection, since: str,
                         until: str) -> Counter[tuple[str, str]]:
    """(hour, kind) -> events between two times, both included. Call inside ``snapshot``."""
    window = plan(conn, since, until)
    return per_bucket(conn, window, "kind", event_counts(conn, window))


# --- times --------------------------------------------------------------------------------

def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _after(text: str) -> str:
    """The next event_time after ``text``: they are to the microsecond."""
    return time_text(_moment(text) + timedelta(microseconds=1))


# --- the counting job ------------------------------------------------------------------

DAILY_COUNT_BATCH = 5000
_UNCOUNTED_EVENTS = f"""
    SELECT id, event_time, type, event, user, ip, from_value, to_value FROM events
    WHERE id > (SELECT value FROM cursors WHERE name = '{CURSOR}') ORDER BY id
    LIMIT ?"""


def count_new_events(conn: sqlite3.Connection, limit: int) -> int:
    """Add up to ``limit`` events stored since the last call to the rollups (hour_counts,
    daily_counts, window_totals), moving the cursor in the same transaction: each event is
    counted exactly once. Off the intake's path (its commit gates the SQS delete): the
    counting job calls it every second."""
    with transaction(conn):
        rows = conn.execute(_UNCOUNTED_EVENTS, (limit,)).fetchall()
        if rows:
            add(conn, rows)
            conn.execute("UPDATE cursors SET value = ? WHERE name = ?",
                         (rows[-1]["id"], CURSOR))
    return len(rows)


def shift_windows(conn: sqlite3.Connection, present: datetime) -> bool:
    """Move the rollups' window totals to the windows of now (shift), when the
    hour or the day has turned; a read alone when it has not."""
    if held(conn) == materialised(anchor(conn, present)):
        return False
    with transaction(conn):  # the anchor again: an event may have come since
        return shift(conn, anchor(conn, present))


def count_all_new_events(conn: sqlite3.Connection) -> int:
    """count_new_events until every stored event is counted; returns how many were."""
    return catch_up(lambda batch: count_new_events(conn, batch), DAILY_COUNT_BATCH)
