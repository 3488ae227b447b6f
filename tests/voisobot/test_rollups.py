"""The rollups behind /voiso stats: they equal a scan of the events cached, after random
inserts, counting, prunes and restarts; stats read them without scanning events."""

import re
import shutil
import string
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.conftest import sqs_message
from voisobot import queries, rollups, samples
from voisobot import store as store_module
from voisobot.intake import to_delivery
from voisobot.queries import stats
from voisobot.rollups import count_all_new_events, count_new_events, shift_windows
from voisobot.store import Store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # as NOCASE
USERS = ["Jane@Acme.example", "jane@acme.example", "JANE@ACME.EXAMPLE", "ärger@x.example",
         "Ärger@x.example", "bob@acme.example", "eve@evil.example"]
ADDRESSES = ["1.1.1.1", "2.2.2.2", "2001:db8::1", "10.0.0.7"]


def document(kind: str, when: datetime, user: str | None, address: str) -> dict:
    """A body of one of the sorts the rollups count differently."""
    if kind == "sso/login":  # a kind Voiso added without notice: no user, no address
        return {"timestamp": samples.voiso_timestamp(when), "type": "sso", "event": "login",
                "callcenter": "acme", "params": {}}
    body = samples.example(kind, now=when)
    params = {"app_login/unauthorized_ip": {"ip": address},
              "app_login/ip_changed": {"from": address, "to": ADDRESSES[0]},
              "allowed_ip/ip_added": {"ip": "10.0.0.0/24"}}.get(kind, {})
    body["params"].update(params)
    if user is not None:
        body["params"]["user"] = user
    return body


KINDS = ["app_login/unauthorized_ip", "app_login/ip_changed", "app_login/successful_login",
         "user/privileges_updated", "allowed_ip/ip_added", "sso/login"]
EVENT = st.tuples(
    st.sampled_from(KINDS),
    st.integers(-2 * 24 * 3600 * 100, 40 * 24 * 3600 * 100),  # centiseconds before NOW
    st.sampled_from(USERS), st.sampled_from(ADDRESSES))
MOMENT = st.integers(-1 * 24 * 3600 * 100, 38 * 24 * 3600 * 100).map(
    lambda cs: NOW - timedelta(milliseconds=10 * cs))
ALIGNED = st.integers(-24, 38 * 24).map(lambda hours: NOW - hours * HOUR)
PERIOD = st.sampled_from(list(queries.PERIODS))


def oracle(conn, since: str, until: str) -> tuple:
    """The stats counts of a window, by a plain scan of events."""
    rows = conn.execute("SELECT type, event, user, ip, from_value, to_value FROM events "
                        "WHERE event_time >= ? AND event_time <= ?", (since, until)).fetchall()
    users = Counter(row[2].translate(ASCII_LOWER) for row in rows if row[2] is not None)
    ips = Counter(v for row in rows for v in row[3:] if v and queries._is_address(v))

    def top(counts):
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
    return dict(Counter(f"{row[0]}/{row[1]}" for row in rows)), top(users), top(ips)


def answered(result) -> tuple:
    return (result.kinds, [(u.name.translate(ASCII_LOWER), u.count) for u in result.top_users],
            [(i.name, i.count) for i in result.top_ips])


def assert_stats_equal_a_scan(conn, period: str, now: datetime) -> None:
    result = stats(conn, period, now)
    assert answered(result) == oracle(conn, result.since, result.until), (period, now)
    assert result.total == sum(result.kinds.values())


# What hour_counts and daily_counts must hold: the counted events, straight from events.
def counted_from_events(conn, width: int) -> Counter:
    (cursor,) = conn.execute(rollups.CURSOR_SQL).fetchone()
    counts = Counter()
    for row in conn.execute(f"SELECT {rollups._EVENT_COLUMNS} FROM events WHERE id <= ?",
                            (cursor,)):
        for dimension, value in rollups.event_values(row):
            counts[dimension, row["event_time"][:width], value] += 1
    return counts


def kept(conn, table: str, column: str) -> Counter:
    return Counter({(d, b, v): n for d, b, v, n in conn.execute(
        f"SELECT dimension, {column}, value, n FROM {table}")})


def totals_from_buckets(conn) -> Counter:
    """window_totals as the buckets of the windows it says it holds add up."""
    counts = Counter()
    for span, (first, last) in rollups.held(conn).items():
        unit = rollups.SPANS[span][0]
        for dimension, bucket, value, n in conn.execute(
                f"SELECT dimension, {unit.column}, value, n FROM {unit.table} "
                f"WHERE dimension IN ('user', 'ip')"):
            if first <= unit.index(bucket) <= last:
                counts[span, dimension, value] += n
    return counts


def assert_rollups_equal_a_scan(conn) -> None:
    assert kept(conn, "hour_counts", "hour") == counted_from_events(conn, 13)
    assert kept(conn, "daily_counts", "day") == counted_from_events(conn, 10)
    assert Counter({tuple(row[:3]): row[3] for row in conn.execute(
        "SELECT span, dimension, value, n FROM window_totals")}) == totals_from_buckets(conn)
    assert not conn.execute("SELECT 1 FROM window_totals WHERE n <= 0").fetchone()


# --- the property: rollups and stats equal a scan, whatever happened ------------------------

class RollupsMachine(RuleBasedStateMachine):
    """A real store file: events inserted at random times (out of order, in the future),
    the counting job at random points, prunes, restarts, and questions at random moments."""

    @initialize()
    def open_store(self):
        self.directory = Path(tempfile.mkdtemp())
        self.path = self.directory / "store.sqlite3"
        self.store = Store(self.path)
        self.messages = 0

    @rule(events=st.lists(EVENT, min_size=1, max_size=12))
    def insert(self, events):
        deliveries = []
        for kind, centiseconds, user, address in events:
            self.messages += 1
            when = NOW - timedelta(milliseconds=10 * centiseconds)
            deliveries.append(to_delivery(sqs_message(document(kind, when, user, address),
                                                      f"m-{self.messages}")))
        self.store.record_batch(deliveries, NOW)

    @rule(limit=st.integers(1, 20))
    def count(self, limit):
        count_new_events(self.store.connection(), limit)

    @rule()
    def count_all(self):
        count_all_new_events(self.store.connection())

    @rule(present=st.one_of(MOMENT, ALIGNED, st.just(NOW + 3 * DAY)))
    def shift(self, present):
        shift_windows(self.store.connection(), present)

    @rule(cutoff=st.one_of(MOMENT, ALIGNED))
    def prune(self, cutoff):
        self.store.prune(cutoff)

    @rule()
    def restart(self):
        self.store.close()
        self.store = Store(self.path)

    @rule(period=PERIOD, now=st.one_of(MOMENT, ALIGNED))
    def ask(self, period, now):
        assert_stats_equal_a_scan(self.store.connection(), period, now)

    @invariant()
    def rollups_equal_a_scan(self):
        assert_rollups_equal_a_scan(self.store.connection())

    @invariant()
    def the_current_windows_equal_a_scan(self):
        """Asked at the moment window_totals holds (the fast path), a little after."""
        conn = self.store.connection()
        at = rollups.anchor(conn, NOW + 3 * DAY) + timedelta(minutes=1)
        for period in queries.PERIODS:
            assert_stats_equal_a_scan(conn, period, at)

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)


TestRollups = RollupsMachine.TestCase
TestRollups.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)


# --- the cases at the edges -----------------------------------------------------------------

ASKED = datetime(2026, 11, 24, 12, 34, 56, 780000, tzinfo=UTC)  # centiseconds, unaligned
CS = timedelta(milliseconds=10)
EDGES = {
    "at since": (ASKED - DAY, True),
    "just before since": (ASKED - DAY - CS, False),
    "at until": (ASKED, True),
    "just after until": (ASKED + CS, False),
    "at the current hour's start": (datetime(2026, 11, 24, 12, tzinfo=UTC), True),
    "the last moment of the hour before": (datetime(2026, 11, 24, 12, tzinfo=UTC) - CS, True),
    "the first hour's end": (datetime(2026, 11, 23, 13, tzinfo=UTC) - CS, True),
    "the first hour's start": (datetime(2026, 11, 23, 12, tzinfo=UTC), False),
}


@pytest.mark.parametrize("counted", [True, False], ids=["counted", "not yet counted"])
@pytest.mark.parametrize("edge", EDGES)
def test_an_event_at_an_edge_of_24h_counts_exactly_when_inside(store, edge, counted):
    when, inside = EDGES[edge]
    for n, (other, _) in enumerate(EDGES.values()):  # neighbours on both sides of each part
        store.record_batch([to_delivery(sqs_message(document(
            "app_login/successful_login", other, "bob@acme.example", ""), f"n-{n}"))], NOW)
    count_all_new_events(store.connection())
    shift_windows(store.connection(), ASKED)
    store.record_batch([to_delivery(sqs_message(document(
        "app_login/unauthorized_ip", when, "eve@evil.example", "2.2.2.2"), "edge"))], NOW)
    if counted:
        count_all_new_events(store.connection())
    result = stats(store.connection(), "24h", ASKED)
    assert result.kinds.get("app_login/unauthorized_ip", 0) == int(inside)
    assert answered(result) == oracle(store.connection(), result.since, result.until)


@pytest.mark.parametrize("period", ["7d", "30d"])
@pytest.mark.parametrize(("offset", "inside"), [
    (timedelta(0), True),                      # the first moment of the first day
    (-CS, False),                              # the last moment before it
    (timedelta(days=0.5), True),
])
def test_an_event_at_the_first_day_of_7d_and_30d_counts_exactly_when_inside(
        store, period, offset, inside):
    first_day = datetime.combine(ASKED.date() - (int(period[:-1]) - 1) * DAY,
                                 datetime.min.time(), UTC)
    store.record_batch([to_delivery(sqs_message(document(
        "app_login/unauthorized_ip", first_day + offset, "eve@evil.example", "2.2.2.2")))], NOW)
    shift_windows(store.connection(), ASKED)
    assert stats(store.connection(), period, ASKED).total == int(inside)
    count_all_new_events(store.connection())
    assert stats(store.connection(), period, ASKED).total == int(inside)


def test_the_current_windows_are_read_from_window_totals(store):
    """Proof that the fast path is taken: a total changed behind the rollups' back shows."""
    for n in range(30):
        store.record_batch([to_delivery(sqs_message(document(
            "app_login/unauthorized_ip", NOW - n * 5 * HOUR, USERS[n % 3], "1.1.1.1")))], NOW)
    count_all_new_events(store.connection())
    assert shift_windows(store.connection(), NOW)
    conn = store.connection()
    before = {period: stats(conn, period, NOW) for period in queries.PERIODS}
    conn.execute("UPDATE window_totals SET n = n + 1000 WHERE dimension = 'user'")
    for period, result in before.items():
        assert stats(conn, period, NOW).top_users[0].count == result.top_users[0].count + 1000
        # a moment whose windows window_totals does not hold sums the buckets instead
        past = NOW - 20 * DAY
        assert answered(stats(conn, period, past)) == oracle(
            conn, stats(conn, period, past).since, stats(conn, period, past).until)


def test_shifting_to_the_windows_held_changes_nothing(store):
    store.record_batch([to_delivery(sqs_message(document(
        "app_login/unauthorized_ip", NOW - 2 * HOUR, USERS[0], "1.1.1.1")))], NOW)
    assert shift_windows(store.connection(), NOW)
    assert not shift_windows(store.connection(), NOW + 10 * DAY)  # the newest event decides


def test_upgrading_a_version_15_store_backfills_the_rollups_and_the_windows(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = Store(path)
    conn = old.connection()
    for n in range(40):
        old.record_batch([to_delivery(sqs_message(document(
            KINDS[n % len(KINDS)], NOW - n * 7 * HOUR, USERS[n % 7], ADDRESSES[n % 4])))], NOW)
    count_all_new_events(conn)
    old.prune(NOW - 4 * DAY)  # as version 15 pruned: the cutoff's day kept its counts
    conn.execute("UPDATE daily_counts SET n = n + 5")
    conn.executescript("DROP TABLE hour_counts; DROP TABLE window_totals; "
                       "DROP TABLE rollup_windows; PRAGMA user_version = 15;"
                       # and what 0017 added after (the address and user summaries)
                       "DROP TABLE address_events; DROP TABLE network_events; "
                       "DROP TABLE address_totals; DROP TABLE address_users; "
                       "DROP TABLE address_pairs; DROP TABLE user_kinds; "
                       "DELETE FROM cursors WHERE name = 'summarised';"
                       # and the audit table that 0018 moved to its own file
                       "CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT NOT NULL, "
                       "user_id TEXT NOT NULL, channel_id TEXT, action TEXT NOT NULL, "
                       "detail TEXT NOT NULL, allowed INTEGER NOT NULL, outcome TEXT, "
                       "platform TEXT NOT NULL DEFAULT 'slack');")
    old.close()
    upgraded = Store(path)
    conn = upgraded.connection()
    assert_rollups_equal_a_scan(conn)
    # the windows held are those of the newest event, as the counting job would move them
    assert not shift_windows(conn, datetime.now(UTC))
    for period in queries.PERIODS:
        assert_stats_equal_a_scan(conn, period, NOW + timedelta(minutes=1))
    upgraded.close()


# --- the top list's early stop --------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(totals=st.dictionaries(st.sampled_from("abcdefghij"), st.integers(1, 20)),
       partial=st.dictionaries(st.sampled_from("abcdefghijkl"), st.integers(-5, 20)),
       top=st.integers(1, 5))
def test_the_top_list_is_that_of_the_sums(totals, partial, top):
    partial = {value: n for value, n in partial.items()  # a partial never takes more away
               if n >= 0 or -n <= totals.get(value, 0)}  # than the totals hold
    every = Counter(totals)
    every.update(partial)
    expected = sorted(((v, n) for v, n in every.items() if n > 0 and v != "c"),
                      key=lambda item: (-item[1], item[0]))[:top]
    most_first = sorted(totals.items(), key=lambda item: -item[1])
    assert rollups.most(most_first, Counter(partial), top, lambda v: v != "c") == expected


# --- no scan of events ----------------------------------------------------------------------

ROLLUP_QUERIES = {
    "CURSOR_SQL": ["cursors"],
    "UNCOUNTED_SQL": ["INTEGER PRIMARY KEY"],
    "COUNTED_BETWEEN_SQL": ["events_by_time"],
    "EVENTS_BETWEEN_SQL": ["events_by_time"],
    "ANCHOR_SQL": ["events_by_time"],
    "TOTALS_MOST_FIRST_SQL": ["window_totals_by_n"],
    "DROP_EMPTY_TOTALS_SQL": ["window_totals_by_n"],
}
UNIT_QUERIES = ["sum_sql", "per_bucket_sql", "shift_sql"]
PARAMS = {"cursor": 10, "low": "2026-11-24T11", "high": "2026-11-24T12", "present": "2026-11-25",
          "span": "24h", "dimension": "user", "first": "2026-11-01", "last": "2026-11-24",
          "sign": 1}


def plan_of(conn, sql: str) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, PARAMS)]


# Tables that grow with the events (rollup_windows has a row per span: reading it whole is fine).
GROWING = {"events", "rejected", "hour_counts", "daily_counts", "window_totals"}


def scans(plan: list[str]) -> list[str]:
    return [step for step in plan if step.startswith("SCAN ") and step.split()[1] in GROWING]


@pytest.mark.parametrize(("name", "indexes"), ROLLUP_QUERIES.items())
def test_every_rollup_query_searches_an_index_and_scans_nothing(store, name, indexes):
    plan = plan_of(store.connection(), getattr(rollups, name))
    assert not scans(plan), plan
    for index in indexes:
        assert any(step.startswith("SEARCH ") and re.search(re.escape(index) + r"(?!\w)", step)
                   for step in plan), (index, plan)


@pytest.mark.parametrize("unit", [rollups.HOUR, rollups.DAY], ids=["hour", "day"])
@pytest.mark.parametrize("query", UNIT_QUERIES)
def test_every_bucket_query_searches_its_key_range(store, unit, query):
    plan = plan_of(store.connection(), getattr(unit, query)())
    assert not scans(plan), plan
    assert any(step.startswith("SEARCH " + unit.table) for step in plan), plan


def test_stats_never_scan_events(store, monkeypatch):
    """Every statement stats runs, traced and planned: none scans a table that grows."""
    for n in range(10):
        store.record_batch([to_delivery(sqs_message(document(
            KINDS[n % len(KINDS)], NOW - n * 3 * HOUR - n * timedelta(minutes=7), USERS[n % 7],
            ADDRESSES[n % 4])))], NOW)
    count_new_events(store.connection(), 5)  # some counted, some not
    conn = store.connection()
    statements = []
    conn.set_trace_callback(statements.append)
    for period in queries.PERIODS:
        for now in (NOW + timedelta(minutes=17), NOW - 3 * DAY):
            stats(conn, period, now)
    conn.set_trace_callback(None)
    planned = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert planned
    for sql in planned:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        assert not scans(plan), (sql, plan)
    assert not any(s.strip().upper().startswith(("BEGIN IMMEDIATE", "INSERT", "UPDATE",
                                                 "DELETE")) for s in statements)


def test_the_prune_rewinds_the_rollups_cursor():
    assert rollups.CURSOR == "daily_counted" and rollups.CURSOR in store_module.EVENT_CURSORS


def test_events_stored_after_a_prune_of_the_newest_are_counted(store):
    """SQLite reuses the ids of the newest rows deleted: the cursor must not have passed them."""
    record = lambda tag, when: store.record_batch([to_delivery(sqs_message(document(  # noqa: E731
        "app_login/unauthorized_ip", when, USERS[0], "1.1.1.1"), tag))], NOW)
    record("old", NOW - 2 * DAY)
    count_all_new_events(store.connection())
    store.prune(NOW - DAY)  # every event: the next one takes id 1 again
    record("new", NOW - HOUR)
    assert stats(store.connection(), "24h", NOW).total == 1
    count_all_new_events(store.connection())
    assert_rollups_equal_a_scan(store.connection())
    assert stats(store.connection(), "24h", NOW).total == 1
