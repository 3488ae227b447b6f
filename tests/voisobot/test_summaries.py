"""Address keys and the summaries behind /voiso ip and /voiso user: a range search equals a
scan of the events, and the summaries equal a recount after inserts, prunes and restarts."""

import ipaddress
import re
import shutil
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.conftest import sqs_message
from voisobot import events, ip_keys, queries, samples, summaries
from voisobot.intake import to_delivery
from voisobot.store import Store, time_text

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
USERS = ["Jane@Acme.example", "jane@acme.EXAMPLE", "bob@acme.example", "Ärger@x.example",
         "ärger@x.example"]
GROUPS = ["admins", "Support team"]


# --- keys ------------------------------------------------------------------------------------

@given(st.ip_addresses(), st.ip_addresses())
@settings(max_examples=200)
def test_keys_sort_as_the_addresses_do_with_every_ipv4_before_every_ipv6(one, other):
    keys = ip_keys.address_key(str(one)), ip_keys.address_key(str(other))
    assert (keys[0] < keys[1]) == ((one.version, int(one)) < (other.version, int(other)))
    assert ip_keys.key_text(keys[0]) == str(one)


@st.composite
def range_and_address(draw):
    """A range and an address at its edges, just outside them, inside, or anywhere."""
    version = draw(st.sampled_from([4, 6]))
    base = draw(st.ip_addresses(v=version))
    network = ipaddress.ip_network(f"{base}/{draw(st.integers(0, base.max_prefixlen))}",
                                   strict=False)
    first, last = int(network.network_address), int(network.broadcast_address)
    top = 2 ** base.max_prefixlen - 1
    where = draw(st.sampled_from(["first", "last", "below", "above", "inside", "anywhere"]))
    number = {"first": first, "last": last, "below": max(first - 1, 0),
              "above": min(last + 1, top), "inside": draw(st.integers(first, last)),
              "anywhere": None}[where]
    address = (draw(st.ip_addresses()) if number is None
               else ipaddress.ip_address(number) if version == 4
               else ipaddress.IPv6Address(number))
    return network, address


@given(range_and_address())
@settings(max_examples=200)
def test_an_address_is_in_a_range_exactly_when_its_key_is_between_the_ranges_keys(case):
    network, address = case
    low, high = ip_keys.span_of(network)
    assert (low <= ip_keys.address_key(str(address)) <= high) == (address in network)
    assert ip_keys.network_span(str(network)) == (low, high)


@pytest.mark.parametrize("text", [None, "", "admins", "8.8.8.0/24", "8.8.8", "::ffff:1.2.3.4/96",
                                  "8.8.8.8:443", "[2001:db8::1]"])
def test_what_is_not_one_address_has_no_key(text):
    assert ip_keys.address_key(text) is None


# --- events through the production path --------------------------------------------------

def document_of(number: int, kind: str, when: datetime, params: dict) -> dict:
    """A body of a documented kind, or of an unknown one (whose ip/from/to the intake still
    lifts when they are addresses or ranges); "n" keeps every body distinct."""
    if kind == "custom/thing":
        return {"timestamp": samples.voiso_timestamp(when), "type": "custom", "event": "thing",
                "callcenter": "acme", "params": {**params, "n": number}}
    document = samples.example(kind, now=when)
    document["params"].update(params, n=number)
    return document


def record_all(store: Store, specs: list[tuple[str, int, dict]], first: int = 0) -> None:
    deliveries = []
    for number, (kind, minutes, params) in enumerate(specs, start=first):
        delivery = to_delivery(sqs_message(document_of(number, kind, NOW - timedelta(
            minutes=minutes), params)))
        assert delivery.event is not None, delivery.reason
        deliveries.append(delivery)
    store.record_batch(deliveries, NOW)


def values_near(network: ipaddress.IPv4Network | ipaddress.IPv6Network):
    """Addresses and ranges at and around a range's edges, of both versions, and groups."""
    first, last = int(network.network_address), int(network.broadcast_address)
    top = 2 ** network.max_prefixlen - 1
    make = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
    near = [make(n) for n in {first, last, max(first - 1, 0), min(last + 1, top),
                              (first + last) // 2}]
    texts = [str(a) for a in near]
    if network.version == 4:  # the same hosts written IPv4-mapped: the intake maps them back
        texts += [f"::ffff:{a}" for a in near]
    texts += [str(ipaddress.ip_network(f"{a}/{p}", strict=False)) for a in near[:2]
              for p in (network.max_prefixlen, network.prefixlen, max(network.prefixlen - 4, 0))]
    return st.sampled_from(texts) | st.ip_addresses().map(str) | st.sampled_from(GROUPS)


@st.composite
def events_about(draw, network):
    """(kind, minutes ago, params) specs: logins, address changes, allow-list changes,
    privilege changes (access groups in from/to) and an unknown kind, some at equal times."""
    value = values_near(network)
    address = value.filter(lambda v: "/" not in v and v not in GROUPS)
    cidr = value.filter(lambda v: "/" in v)
    user = st.sampled_from(USERS)
    spec = st.one_of(
        st.tuples(st.just("app_login/unauthorized_ip"), st.builds(
            lambda ip, u: {"ip": ip, "user": u}, address, user)),
        st.tuples(st.just("app_login/ip_changed"), st.builds(
            lambda a, b, u: {"from": a, "to": b, "user": u}, address, address, user)),
        st.tuples(st.just("app_login/successful_login"), st.builds(lambda u: {"user": u}, user)),
        st.tuples(st.just("allowed_ip/ip_added"), st.builds(lambda c: {"ip": c}, cidr)),
        st.tuples(st.just("allowed_ip/ip_changed"), st.builds(
            lambda a, b: {"from": a, "to": b}, cidr, cidr)),
        st.tuples(st.just("user/privileges_updated"), st.builds(
            lambda a, b, u, w: {"from": a, "to": b, "user": u, "who": w},
            st.sampled_from(GROUPS), st.sampled_from(GROUPS), user, user)),
        st.tuples(st.just("custom/thing"), st.builds(
            lambda ip, f, u: {"ip": ip, "from": f, "user": u}, value, value, user)))
    specs = draw(st.lists(st.tuples(spec, st.integers(0, 5)), min_size=1, max_size=25))
    return [(kind, minutes, params) for (kind, params), minutes in specs]


def scan(conn, target) -> dict:
    """The ip question answered from every event row, with queries' own span test."""
    span = queries._span(str(target))
    rows = conn.execute("SELECT id, event_time, user, ip, from_value, to_value "
                        "FROM events NOT INDEXED").fetchall()
    about = sorted((r for r in rows if any(queries._overlap(queries._span(v), span)
                                           for v in r[3:])),
                   key=lambda r: (r["event_time"], r["id"]), reverse=True)
    users: dict[str, list] = {}
    for row in about:
        if row["user"] is not None:
            seen = users.setdefault(summaries.fold(row["user"]), [0, ""])
            seen[0] += 1
            seen[1] = max(seen[1], row["event_time"])
    addresses = {ipaddress.ip_address(v) for r in rows for v in r[3:]
                 if v and "/" not in v and queries._is_address(v)
                 and queries._overlap(queries._span(v), span)}
    return {"ids": [r["id"] for r in about], "users": {u: tuple(s) for u, s in users.items()},
            "addresses": [str(a) for a in sorted(addresses, key=lambda a: (a.version, a))]}


def answer(conn, target, limit: int) -> dict:
    """The same, from ip_report: every page, and the users of the first."""
    report = queries.ip_report(conn, str(target), limit)
    ids, page = [], report
    while True:
        ids += [event.id for event in page.events.items]
        if page.events.next is None:
            break
        page = queries.ip_report(conn, str(target), limit, page.events.next)
    users = {summaries.fold(t.name): (t.count, t.last_seen) for t in report.users}
    return {"ids": ids, "users": users, "user_count": report.user_count,
            "addresses": list(report.addresses)}


@st.composite
def a_range(draw):
    version = draw(st.sampled_from([4, 6]))
    base = draw(st.ip_addresses(v=version))
    bits = base.max_prefixlen
    prefix = draw(st.sampled_from([0, bits // 4, bits // 2, bits - 8, bits - 2, bits]))
    return ipaddress.ip_network(f"{base}/{prefix}", strict=False)


@given(data=st.data(), network=a_range(), limit=st.integers(1, 4))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
def test_a_range_or_address_search_equals_a_scan_of_the_events(tmp_path_factory, data, network,
                                                               limit):
    directory = tmp_path_factory.mktemp("range")
    store = Store(directory / "store.sqlite3")
    try:
        specs = data.draw(events_about(network))
        summarised = data.draw(st.integers(0, len(specs)))  # the rest is the tail
        record_all(store, specs[:summarised])
        summaries.summarise_all_new_events(store.connection())
        record_all(store, specs[summarised:], first=summarised)
        conn = store.connection()
        for target in (network, data.draw(st.sampled_from(
                [ipaddress.ip_address(v) for _, _, p in specs for v in p.values()
                 if isinstance(v, str) and events.plain_address(v)] or [
                    network.network_address]))):
            target = queries.parse_ip(str(target))
            expected, got = scan(conn, target), answer(conn, target, limit)
            assert got["ids"] == expected["ids"]
            assert len(got["users"]) == min(len(expected["users"]), queries.IP_USERS_SHOWN)
            assert got["user_count"] == len(expected["users"])
            assert all(expected["users"][user] == seen for user, seen in got["users"].items())
            if isinstance(target, ipaddress.IPv4Network | ipaddress.IPv6Network):
                assert got["addresses"] == expected["addresses"]
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


# --- a table of edges --------------------------------------------------------------------

@pytest.mark.parametrize(("stored", "query", "found"), [
    ("8.8.8.0", "8.8.8.0/24", True),              # the first address of the range
    ("8.8.8.255", "8.8.8.0/24", True),            # the last
    ("8.8.7.255", "8.8.8.0/24", False),           # one below
    ("8.8.9.0", "8.8.8.0/24", False),             # one above
    ("255.255.255.255", "0.0.0.0/0", True),
    ("0.0.0.0", "0.0.0.0/0", True),
    ("::", "0.0.0.0/0", False),                    # IPv6 is never in an IPv4 range
    ("0.0.0.0", "::/0", False),                    # nor IPv4 in an IPv6 one
    ("::ffff:8.8.8.8", "8.8.8.0/24", True),       # stored as 8.8.8.8
    ("8.8.8.8", "::ffff:8.8.8.0/120", True),      # read as 8.8.8.0/24
    ("2001:db8::", "2001:db8::/64", True),
    ("2001:db8::ffff:ffff:ffff:ffff", "2001:db8::/64", True),
    ("2001:db8:0:1::", "2001:db8::/64", False),
    ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/64", False),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff::/16", True),
    ("2001:db8::1", "2001:DB8:0:0::0001", True),  # any spelling of the address
    ("8.8.8.8", "8.8.8.8/32", True),
])
@pytest.mark.parametrize("summarised", [True, False])
def test_range_edges(store, stored, query, found, summarised):
    record_all(store, [("app_login/unauthorized_ip", 0, {"ip": stored})])
    record_all(store, [("app_login/unauthorized_ip", 1, {"ip": "192.0.2.1", "user": "x@y.z"}),
                       ("app_login/unauthorized_ip", 1, {"ip": "2001:db8:ffff::1",
                                                         "user": "x@y.z"})], first=1)
    if summarised:
        summaries.summarise_all_new_events(store.connection())
    report = queries.ip_report(store.connection(), query)
    found_ips = [event.ip for event in report.events.items]
    assert (events.plain_address(stored) in found_ips) is found
    assert [e.id for e in report.events.items] == scan(store.connection(),
                                                       queries.parse_ip(query))["ids"]
    assert ("foo@bar.com" in {t.name for t in report.users}) is found


@pytest.mark.parametrize(("listed", "query", "found"), [
    ("10.0.0.0/8", "10.1.2.3", True), ("10.0.0.0/8", "10.1.2.0/24", True),
    ("10.1.2.0/24", "10.0.0.0/8", True), ("10.0.0.0/8", "11.0.0.0/24", False),
    ("10.0.0.0/8", "9.255.255.255", False), ("10.0.0.0/8", "10.255.255.255", True),
    ("2001:db8::/32", "2001:db8:ffff::/48", True), ("2001:db8::/32", "10.0.0.0/8", False),
])
@pytest.mark.parametrize("summarised", [True, False])
def test_an_allow_list_range_is_found_by_overlap(store, listed, query, found, summarised):
    record_all(store, [("allowed_ip/ip_added", 0, {"ip": listed})])
    if summarised:
        summaries.summarise_all_new_events(store.connection())
    report = queries.ip_report(store.connection(), query)
    assert len(report.events.items) == int(found)


def test_an_event_with_two_addresses_of_a_range_counts_once_for_its_user(store):
    jane = {"user": "jane@acme.example"}
    record_all(store, [("app_login/ip_changed", 0, {"from": "8.8.8.1", "to": "8.8.8.2", **jane}),
                       ("app_login/ip_changed", 1, {"from": "8.8.8.1", "to": "9.9.9.9", **jane})])
    summaries.summarise_all_new_events(store.connection())
    record_all(store, [("app_login/ip_changed", 2, {"from": "8.8.8.3", "to": "8.8.8.1", **jane})],
               first=2)
    report = queries.ip_report(store.connection(), "8.8.8.0/24")
    assert [(t.name, t.count) for t in report.users] == [("jane@acme.example", 3)]
    assert [(t.name, t.count) for t in queries.ip_report(store.connection(),
                                                          "8.8.8.1").users] == [
        ("jane@acme.example", 3)]


def test_a_wide_range_pages_from_the_addresses_active_lately(store):
    """Each address's events come from its own index walk; a page of the newest events of a
    /8 with many addresses is the same as a scan's, page after page."""
    specs = [("app_login/unauthorized_ip", n % 7, {"ip": f"10.{n % 5}.{n % 3}.{n}"})
             for n in range(60)]
    record_all(store, specs)
    summaries.summarise_all_new_events(store.connection())
    target = queries.parse_ip("10.0.0.0/8")
    assert answer(store.connection(), target, 7)["ids"] == scan(store.connection(),
                                                                  target)["ids"]


# --- summaries equal a recount -------------------------------------------------------------

def table_contents(conn) -> dict:
    return {
        "address_events": set(map(tuple, conn.execute("SELECT * FROM address_events"))),
        "network_events": set(map(tuple, conn.execute("SELECT * FROM network_events"))),
        "totals": {k: (n, at) for k, n, at in conn.execute("SELECT * FROM address_totals")},
        "users": {(k, u): (n, at, logins, last_login)
                  for k, u, _, n, at, logins, last_login in conn.execute(
                      "SELECT * FROM address_users")},
        "pairs": {(lo, hi, u): n for lo, hi, u, n in conn.execute("SELECT * FROM address_pairs")},
        "kinds": {(u, r, t, e): n for u, r, t, e, n in conn.execute("SELECT * FROM user_kinds")},
    }


def recount(conn) -> dict:
    (cursor,) = conn.execute("SELECT value FROM cursors WHERE name = 'summarised'").fetchone()
    summary = summaries.summarise(conn.execute(
        f"SELECT {summaries._ROW} FROM events WHERE id <= ? ORDER BY id", (cursor,)))
    return {
        "address_events": summary.address_events, "network_events": summary.network_events,
        "totals": {k: tuple(v) for k, v in summary.totals.items()},
        "users": {k: (s.n, s.last_seen, s.logins, s.last_login)
                  for k, s in summary.users.items()},
        "pairs": dict(summary.pairs), "kinds": dict(summary.kinds),
    }


def profile_scan(conn, email: str) -> dict:
    rows = conn.execute("SELECT type, event, user, who, ip, from_value, to_value, event_time "
                        "FROM events NOT INDEXED").fetchall()
    mine = summaries.fold(email)
    kinds = Counter(f"{r[0]}/{r[1]}" for r in rows if r[2] and summaries.fold(r[2]) == mine)
    made = Counter(f"{r[0]}/{r[1]}" for r in rows if r[3] and summaries.fold(r[3]) == mine)
    logins: dict[str, list] = {}
    for r in rows:
        if r[2] and summaries.fold(r[2]) == mine and r[0] == "app_login":
            for value in {v for v in r[4:7] if ip_keys.address_key(v)}:
                seen = logins.setdefault(value, [0, ""])
                seen[0] += 1
                seen[1] = max(seen[1], r[7])
    return {"kinds": dict(kinds), "made": dict(made),
            "addresses": {a: tuple(s) for a, s in logins.items()}}


ADDRESSES = ["8.8.8.1", "8.8.8.2", "8.8.9.1", "2001:db8::1", "2001:db8::2", "::ffff:8.8.8.2"]
spec_strategy = st.one_of(
    st.tuples(st.just("app_login/unauthorized_ip"), st.integers(0, 600), st.builds(
        lambda ip, u: {"ip": ip, "user": u}, st.sampled_from(ADDRESSES), st.sampled_from(USERS))),
    st.tuples(st.just("app_login/ip_changed"), st.integers(0, 600), st.builds(
        lambda a, b, u: {"from": a, "to": b, "user": u}, st.sampled_from(ADDRESSES),
        st.sampled_from(ADDRESSES), st.sampled_from(USERS))),
    st.tuples(st.just("user/password_changed"), st.integers(0, 600), st.builds(
        lambda u, w: {"user": u, "who": w}, st.sampled_from(USERS), st.sampled_from(USERS))),
    st.tuples(st.just("allowed_ip/ip_added"), st.integers(0, 600), st.builds(
        lambda c: {"ip": c}, st.sampled_from(["8.8.8.0/24", "2001:db8::/32"]))),
    st.tuples(st.just("custom/thing"), st.integers(0, 600), st.builds(
        lambda ip, u: {"ip": ip, "user": u}, st.sampled_from([*ADDRESSES, "8.8.0.0/16"]),
        st.sampled_from(USERS))))


class SummariesMachine(RuleBasedStateMachine):
    """Random batches, summarising at random points, prunes and restarts of the Store: the
    tables always equal a recount of the events up to the cursor, and the answers (tables
    plus the events after the cursor) always equal a scan."""

    def __init__(self):
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="summaries-"))
        self.store = Store(self.directory / "store.sqlite3")
        self.stored = 0

    @rule(specs=st.lists(spec_strategy, min_size=1, max_size=8))
    def insert(self, specs):
        record_all(self.store, specs, first=self.stored)
        self.stored += len(specs)

    @rule(limit=st.integers(1, 6))
    def summarise_some(self, limit):
        summaries.summarise_new_events(self.store.connection(), limit)

    @precondition(lambda self: self.stored)
    @rule(minutes=st.integers(0, 600))
    def prune(self, minutes):
        self.store.prune(NOW - timedelta(minutes=minutes))

    @rule()
    def restart(self):
        self.store.close()
        self.store = Store(self.directory / "store.sqlite3")

    @invariant()
    def tables_equal_a_recount(self):
        conn = self.store.connection()
        assert table_contents(conn) == recount(conn)

    @invariant()
    def answers_equal_a_scan(self):
        conn = self.store.connection()
        for query in ("8.8.8.0/24", "8.8.8.2", "2001:db8::/64", "0.0.0.0/0"):
            target = queries.parse_ip(query)
            expected, got = scan(conn, target), answer(conn, target, 3)
            assert (got["ids"], got["user_count"]) == (expected["ids"], len(expected["users"]))
            assert all(expected["users"][user] == seen for user, seen in got["users"].items())
        for email in ("jane@acme.example", "ärger@x.example"):
            profile = queries.user_profile(conn, email)
            assert {"kinds": profile.kinds, "made": profile.made, "addresses": {
                a.name: (a.count, a.last_seen) for a in profile.addresses}} == profile_scan(
                    conn, email)

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)


SummariesMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=10,
                                              deadline=None)
test_summaries_equal_a_recount_through_inserts_prunes_and_restarts = SummariesMachine.TestCase


def test_a_pruned_event_leaves_no_row_behind_and_keeps_the_newest_time(store):
    record_all(store, [("app_login/unauthorized_ip", 60, {"ip": "8.8.8.8"}),
                       ("app_login/unauthorized_ip", 60, {"ip": "9.9.9.9"}),
                       ("app_login/unauthorized_ip", 0, {"ip": "8.8.8.8"})])  # the newest
    summaries.summarise_all_new_events(store.connection())
    store.prune(NOW - timedelta(minutes=30))
    conn = store.connection()
    assert list(map(tuple, conn.execute("SELECT n, last_seen FROM address_totals"))) == [
        (1, time_text(NOW))]
    assert table_contents(conn) == recount(conn)


def test_nothing_new_to_summarise_takes_no_write_lock(store):
    record_all(store, [("app_login/unauthorized_ip", 0, {"ip": "8.8.8.8"})])
    summaries.summarise_all_new_events(store.connection())
    writer = Store(store.path).connection()
    conn = store.connection()
    conn.execute("PRAGMA busy_timeout = 50")  # waiting for the lock would fail at once
    writer.execute("BEGIN IMMEDIATE")
    try:
        assert summaries.summarise_new_events(conn) == 0
        assert queries.ip_report(conn, "8.8.8.8").user_count == 1
    finally:
        writer.execute("ROLLBACK")


def test_the_store_summarises_what_it_holds_when_it_opens(tmp_path):
    store = Store(tmp_path / "store.sqlite3")
    record_all(store, [("app_login/unauthorized_ip", 0, {"ip": "8.8.8.8"})])
    store.close()
    reopened = Store(tmp_path / "store.sqlite3")
    conn = reopened.connection()
    assert conn.execute("SELECT value FROM cursors WHERE name = 'summarised'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM address_events").fetchone()[0] == 1
    reopened.close()


# --- indexes -------------------------------------------------------------------------------

SUMMARY_INDEXES = {
    "ANY_NEW_EVENT_SQL": ["INTEGER PRIMARY KEY (rowid>?)"],
    "NEW_EVENTS_SQL": ["INTEGER PRIMARY KEY (rowid>?)"],
    "USER_TAIL_SQL": ["INTEGER PRIMARY KEY (rowid>?)"],
    "ADDRESS_TAIL_SQL": ["INTEGER PRIMARY KEY (rowid>?)"],
    "ADDRESS_TOTALS_SQL": ["PRIMARY KEY (key>? AND key<?)"],
    "ADDRESS_EVENTS_SQL": ["PRIMARY KEY (key=? AND event_time<?)"],
    "NETWORK_EVENTS_SQL": ["PRIMARY KEY (low<?)"],
    "NETWORK_USERS_SQL": ["PRIMARY KEY (low<?)", "INTEGER PRIMARY KEY (rowid=?)"],
    "ADDRESS_USERS_SQL": ["(key>? AND key<?)"],  # and a sort of its users
    "ADDRESS_TOP_USERS_SQL": ["COVERING INDEX address_users_by_count (key=?)"],
    "ADDRESS_USER_COUNT_SQL": ["(key=?)"],
    "ADDRESS_PAIRS_SQL": ["PRIMARY KEY (low>? AND low<?)"],
    "USER_KINDS_SQL": ["PRIMARY KEY (user=?)"],
    "USER_ADDRESSES_SQL": ["address_users_by_user (user=?)"],
}
PARAMS = {"limit": 10, "email": "jane@acme.example", "user": "jane@acme.example",
          "low": b"\x04\x08\x08\x08\x00", "high": b"\x04\x08\x08\x08\xff",
          "key": b"\x04\x08\x08\x08\x08", "shown": 20, "at": "2026-11-24T12:00:00.000000Z", "id": 5}


def test_every_query_of_the_module_is_checked_below():
    assert {name for name in vars(summaries) if name.endswith("_SQL")} == set(SUMMARY_INDEXES)


@pytest.mark.parametrize(("name", "indexes"), SUMMARY_INDEXES.items())
def test_every_summary_query_searches_its_indexes_and_scans_no_table(store, name, indexes):
    plan = [row[3] for row in store.connection().execute(
        "EXPLAIN QUERY PLAN " + getattr(summaries, name), PARAMS)]
    assert not [step for step in plan if step.startswith("SCAN ")
                and step != "SCAN CONSTANT ROW"], plan
    for index in indexes:
        assert any(step.startswith("SEARCH ") and re.search(re.escape(index), step)
                   for step in plan), (index, plan)


def test_answers_stay_exact_while_events_arrive_and_the_cursor_moves(store):
    """A writer stores events and summarises them one at a time; each answer, read between
    two counts of the events, lies between them: the events after the cursor and the
    summaries are read as of one commit, so none is counted twice or missed."""
    done = threading.Event()

    def write():
        try:
            for n in range(120):
                record_all(store, [("app_login/unauthorized_ip", 0, {
                    "ip": "8.8.8.8", "user": "jane@acme.example"})], first=n)
                summaries.summarise_new_events(store.connection(), 1)
        finally:
            store.close()
            done.set()

    def logins(conn) -> int:
        return conn.execute("SELECT count(*) FROM events NOT INDEXED").fetchone()[0]

    writer = threading.Thread(target=write)
    writer.start()
    conn = Store(store.path).connection()
    answers = 0
    while not done.is_set() or not answers:
        before = logins(conn)
        users = queries.ip_report(conn, "8.8.8.0/24").users
        kinds = queries.user_profile(conn, "Jane@acme.example").kinds
        after = logins(conn)
        counted = users[0].count if users else 0
        assert before <= counted <= after
        assert before <= kinds.get("app_login/unauthorized_ip", 0) <= after
        answers += 1
    writer.join()
