"""The /voiso queries: what each answers, paging without gaps or repeats, bad input, indexes."""

import ipaddress
import json
import random
import re
import string
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import sqs_message
from voisobot import events, queries, samples
from voisobot.intake import to_delivery
from voisobot.queries import (
    KindFilter,
    audit_log,
    ip_report,
    parse_email,
    parse_ip,
    parse_kind_filter,
    parse_period,
    recent,
    stats,
    unacked,
    user_events,
    user_profile,
)
from voisobot.store import time_text, transaction

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
USER = "foo@bar.com"  # the user of the vendor's examples
ADMIN = "admin@voiso.com"  # their ``who``
SECOND, MINUTE, HOUR, DAY = (timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1),
                             timedelta(days=1))
HOSTILE = ["<!channel>", "{{ 7*7 }}", "admin'); DROP TABLE events;--",
           "<https://evil.example|Voiso login>", "%(user)s %s", "\u202eevil\u0000"]


def record_body(store, document: dict) -> int:
    """Store one body through the production path: SQS message → Delivery → batch."""
    delivery = to_delivery(sqs_message(document))
    assert delivery.event is not None, delivery.reason
    outcome = store.record_batch([delivery], NOW)
    assert outcome.stored, "an identical body is a duplicate: vary the time or a param"
    return outcome.stored[0]


def record(store, kind: str, when: datetime = NOW, **params: str) -> int:
    document = samples.example(kind, now=when)
    document["params"].update(params)
    return record_body(store, document)


def unknown_kind(type_: str, event: str, when: datetime, **params: str) -> dict:
    return {"timestamp": samples.voiso_timestamp(when), "type": type_, "event": event,
            "callcenter": "acme", "params": params}


def every_page(fetch, limit: int) -> list[list]:
    """Follow ``next`` from the first page to the last."""
    pages, cursor = [], None
    while True:
        page = fetch(limit, cursor)
        pages.append(list(page.items))
        if page.next is None:
            return pages
        cursor = page.next


def ids(rows) -> list[int]:
    return [row.id for row in rows]


# --- recent --------------------------------------------------------------------------------

def test_recent_is_newest_first_by_event_time_not_arrival(store):
    late = record(store, "app_login/successful_login", NOW - HOUR)
    new = record(store, "app_login/successful_login", NOW)
    old = record(store, "app_login/successful_login", NOW - DAY)  # arrives last
    page = recent(store.connection())
    assert ids(page.items) == [new, late, old]
    assert page.next is None
    assert page.items[0].kind == "app_login/successful_login"
    assert page.items[0].user == USER


def test_recent_pages_have_no_gap_and_no_repeat_across_equal_times(store):
    stored = [record(store, "app_login/successful_login", NOW - (n // 3) * MINUTE,
                     access_group=f"group{n}") for n in range(23)]  # three per moment
    pages = every_page(lambda limit, before: recent(store.connection(), limit, before=before), 5)
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    everything = ids(row for page in pages for row in page)
    assert sorted(everything) == sorted(stored)
    assert everything == ids(recent(store.connection(), 23).items)


def test_recent_next_page_ignores_events_that_arrived_since(store):
    for n in range(4):
        record(store, "app_login/successful_login", NOW - n * MINUTE)
    first = recent(store.connection(), 2)
    record(store, "app_login/successful_login", NOW + MINUTE)  # newer: belongs before page 1
    record(store, "app_login/incorrect_password", NOW - 10 * MINUTE)  # older: shows later
    second = recent(store.connection(), 2, before=first.next)
    assert [row.event_time for row in second.items] == [
        time_text(NOW - 2 * MINUTE), time_text(NOW - 3 * MINUTE)]
    assert second.next is not None


def test_a_full_last_page_says_there_is_no_more(store):
    for n in range(4):
        record(store, "app_login/successful_login", NOW - n * MINUTE)
    first = recent(store.connection(), 2)
    assert recent(store.connection(), 2, before=first.next).next is None


def seed_every_kind(store) -> dict[str, int]:
    found = {}
    for n, kind in enumerate(samples.EXAMPLES):
        found[kind] = record(store, kind, NOW - n * MINUTE)
    found["sso/login"] = record_body(store, unknown_kind("sso", "login", NOW - HOUR, user=USER))
    return found


@pytest.mark.parametrize(("kind", "expected"), [
    ("app_login/unauthorized_ip", ["app_login/unauthorized_ip"]),
    ("unauthorized_ip", ["app_login/unauthorized_ip"]),
    ("ip_changed", ["app_login/ip_changed", "allowed_ip/ip_changed"]),
    ("user", ["user/user_added", "user/user_deleted", "user/password_changed",
              "user/privileges_updated"]),
    ("allowed_ip", ["allowed_ip/ip_added", "allowed_ip/ip_removed", "allowed_ip/ip_changed"]),
    ("App_Login/Unauthorized_IP", ["app_login/unauthorized_ip"]),
    ("sso", ["sso/login"]),  # a kind Voiso added without notice
    ("login", ["sso/login"]),
    ("app_login/passkey_login", []),  # well-formed, nothing stored
])
def test_recent_filters_by_kind_type_or_event(store, kind, expected):
    stored = seed_every_kind(store)
    page = recent(store.connection(), 50, kind=kind)
    assert ids(page.items) == [stored[k] for k in expected]  # newest first: seeded in order


def test_recent_of_a_type_pages_across_its_kinds_without_gap_or_repeat(store):
    stored = []  # (minutes ago, id): two events a minute, of three kinds in turn
    for n in range(12):
        kind = ("user/user_added", "user/password_changed", "user/user_deleted")[n % 3]
        stored.append((n // 2, record(store, kind, NOW - (n // 2) * MINUTE,
                                      access_group=f"g{n}")))
    record(store, "app_login/successful_login", NOW)  # not of the type
    pages = every_page(
        lambda limit, before: recent(store.connection(), limit, "user", before), 5)
    everything = ids(row for page in pages for row in page)
    assert everything == [i for _, i in sorted(stored, key=lambda s: (s[0], -s[1]))]
    assert len(set(everything)) == 12


@pytest.mark.parametrize("text", ["", "   ", "a/b/c", "rm -rf", "<!channel>", "user/",
                                  "/event", "x" * 65, "app_login/unauthorized ip"])
def test_a_kind_that_cannot_be_a_name_is_refused_with_usage(store, text):
    with pytest.raises(ValueError, match="a kind is type/event") as caught:
        recent(store.connection(), kind=text)
    assert str(caught.value).startswith("not a kind: ")


def test_kind_filters_parse_into_a_type_and_event_or_one_word():
    assert parse_kind_filter(" App_Login/Ip_Changed ") == KindFilter("app_login", "ip_changed")
    assert parse_kind_filter("ip_changed") == KindFilter(word="ip_changed")


@pytest.mark.parametrize("limit", [0, -1, 51, True, "10", 2.5])
def test_a_page_size_outside_1_to_50_is_refused(store, limit):
    with pytest.raises(ValueError, match="a page holds 1 to 50 items"):
        recent(store.connection(), limit)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_come_back_verbatim(store, name):
    record(store, "user/user_added", user=name, who=name, access_group=name)
    (row,) = recent(store.connection()).items
    assert (row.user, row.who, row.access_group) == (name, name, name)


# --- user ----------------------------------------------------------------------------------

def seed_user_story(store) -> dict[str, int]:
    """foo@bar.com's logins and changes, changes foo@bar.com made, and noise."""
    return {
        "added": record(store, "user/user_added", NOW - 10 * DAY),
        "failed": record(store, "app_login/incorrect_password", NOW - 3 * DAY),
        "refused": record(store, "app_login/unauthorized_ip", NOW - 2 * DAY, ip="1.2.3.4"),
        "moved": record(store, "app_login/ip_changed", NOW - DAY, user=USER,
                        **{"from": "1.2.3.4", "to": "5.6.7.8"}),
        "promoted": record(store, "user/privileges_updated", NOW - HOUR),
        "login": record(store, "app_login/successful_login", NOW - MINUTE, user="Foo@Bar.COM"),
        "made": record(store, "user/password_changed", NOW - 5 * HOUR, who=USER,
                       user="someone@else.com"),
        "self": record(store, "user/password_changed", NOW - 6 * HOUR, who=USER),
        "noise": record(store, "app_login/unauthorized_ip", NOW, user="someone@else.com"),
    }


def test_a_profile_has_logins_addresses_changes_to_and_by_and_first_and_last_seen(store):
    seen = seed_user_story(store)
    profile = user_profile(store.connection(), USER)
    assert ids(profile.events.items) == [seen[k] for k in (
        "login", "promoted", "made", "self", "moved", "refused", "failed", "added")]
    assert profile.kinds == {"user/password_changed": 1, "user/privileges_updated": 1,
                             "app_login/incorrect_password": 1, "app_login/ip_changed": 1,
                             "app_login/successful_login": 1, "app_login/unauthorized_ip": 1,
                             "user/user_added": 1}
    assert profile.made == {"user/password_changed": 2}
    assert [(a.name, a.count) for a in profile.addresses] == [
        ("1.2.3.4", 2), ("5.6.7.8", 1)]
    assert profile.addresses[0].last_seen == time_text(NOW - DAY)
    assert profile.addresses_complete
    assert ids(profile.changes_to) == [seen["promoted"], seen["self"], seen["added"]]
    assert ids(profile.changes_by) == [seen["made"], seen["self"]]
    assert (profile.first_seen, profile.last_seen) == (time_text(NOW - 10 * DAY),
                                                       time_text(NOW - MINUTE))


@pytest.mark.parametrize("typed", ["FOO@BAR.COM", "foo@Bar.com", "<mailto:foo@bar.com|foo@bar.com>",
                                   "<mailto:Foo@Bar.com>", "  foo@bar.com "])
def test_the_address_matches_whatever_its_case_and_in_slack_mailto_form(store, typed):
    seen = seed_user_story(store)
    profile = user_profile(store.connection(), typed)
    assert seen["login"] in ids(profile.events.items)  # stored as Foo@Bar.COM
    assert len(profile.events.items) == 8


def test_an_unknown_address_has_an_empty_profile(store):
    seed_user_story(store)
    profile = user_profile(store.connection(), "nobody@bar.com")
    assert (profile.events.items, profile.kinds, profile.made, profile.addresses,
            profile.changes_to, profile.changes_by, profile.first_seen, profile.last_seen) == (
        (), {}, {}, (), (), (), None, None)


def test_someone_who_only_made_changes_is_seen_from_those(store):
    seed_user_story(store)
    profile = user_profile(store.connection(), ADMIN)
    assert profile.kinds == {}
    assert profile.made == {"user/privileges_updated": 1, "user/user_added": 1}
    assert profile.first_seen == time_text(NOW - 10 * DAY)


def test_a_users_events_page_without_gap_or_repeat(store):
    stored = [record(store, "app_login/successful_login", NOW - (n // 2) * MINUTE,
                     access_group=f"g{n}") for n in range(9)]
    stored += [record(store, "user/user_added", NOW - (n // 2) * MINUTE, who=USER,
                      user=f"new{n}@bar.com") for n in range(6)]
    record(store, "app_login/successful_login", user="someone@else.com")
    pages = every_page(
        lambda limit, before: user_events(store.connection(), USER, limit, before), 4)
    everything = ids(row for page in pages for row in page)
    assert sorted(everything) == sorted(stored)
    assert everything == ids(user_events(store.connection(), USER, 15).items)


def test_an_event_with_the_user_as_both_user_and_who_is_listed_once(store):
    only = record(store, "user/password_changed", who=USER)
    assert ids(user_profile(store.connection(), USER).events.items) == [only]


def test_the_address_list_holds_the_address_of_every_login(store):
    for n in range(4):
        record(store, "app_login/unauthorized_ip", NOW - n * MINUTE, ip=f"10.0.0.{n}")
    record(store, "app_login/unauthorized_ip", NOW - HOUR, ip="10.0.0.3")
    profile = user_profile(store.connection(), USER)
    assert [(a.name, a.count, a.last_seen) for a in profile.addresses] == [
        ("10.0.0.3", 2, time_text(NOW - 3 * MINUTE)), ("10.0.0.0", 1, time_text(NOW)),
        ("10.0.0.1", 1, time_text(NOW - MINUTE)), ("10.0.0.2", 1, time_text(NOW - 2 * MINUTE))]
    assert profile.addresses_complete


@pytest.mark.parametrize("name", ["<!channel>@evil.example", "{{7*7}}@x.example",
                                  "admin');DROP/**/TABLE/**/events;--@x.example"])
def test_a_hostile_login_name_is_found_and_returned_verbatim(store, name):
    record(store, "app_login/incorrect_password", user=name)
    typed = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # as Slack sends
    profile = user_profile(store.connection(), typed)
    assert profile.email == name
    assert [row.user for row in profile.events.items] == [name]


@pytest.mark.parametrize(("typed", "address"), [
    ("jane@example.com", "jane@example.com"),
    ("<mailto:jane@example.com|jane@example.com>", "jane@example.com"),
    ("<mailto:jane@example.com|someone else>", "jane@example.com"),
    ("&lt;b&gt;@x.example", "<b>@x.example"),
    ("a@b@c.example", "a@b@c.example"),
])
def test_parse_email_returns_the_plain_address(typed, address):
    assert parse_email(typed) == address


@pytest.mark.parametrize("typed", ["", "jane", "@example.com", "jane@", "jane doe@example.com",
                                   "<@U0ALICE01>", "<https://evil.example|jane@x.com>",
                                   "<mailto:|x>", "jane@exa\u0000mple.com",
                                   "a" * 320 + "@x.example"])
def test_parse_email_refuses_what_is_not_an_address_with_usage(store, typed):
    with pytest.raises(ValueError, match="expected an email address, as in /voiso user"):
        user_profile(store.connection(), typed)


# --- ip --------------------------------------------------------------------------------------

def test_an_ip_finds_events_in_ip_from_and_to_and_the_allow_list_ranges_holding_it(store):
    refused = record(store, "app_login/unauthorized_ip", NOW - 4 * HOUR)  # 8.8.8.8
    moved_from = record(store, "app_login/ip_changed", NOW - 3 * HOUR, user="ops@bar.com",
                        **{"from": "8.8.8.8", "to": "4.4.4.2"})
    moved_to = record(store, "app_login/ip_changed", NOW - 2 * HOUR, user="ops@bar.com",
                      **{"from": "4.4.4.2", "to": "8.8.8.8"})
    listed = record(store, "allowed_ip/ip_added", NOW - HOUR, ip="8.8.8.0/24")
    record(store, "app_login/unauthorized_ip", NOW, ip="8.8.8.9")
    record(store, "allowed_ip/ip_added", NOW - MINUTE, ip="9.9.9.0/24")
    report = ip_report(store.connection(), "8.8.8.8")
    assert report.query == "8.8.8.8"
    assert ids(report.events.items) == [listed, moved_to, moved_from, refused]
    assert [(u.name, u.count) for u in report.users] == [("ops@bar.com", 2), (USER, 1)]
    assert report.user_count == 2
    assert report.on_allow_list_now
    assert [e.network for e in report.allow_list_entries] == ["8.8.8.0/24"]
    assert report.history_since == time_text(NOW - 4 * HOUR)


def test_an_ip_is_looked_up_in_the_form_the_intake_stores(store):
    stored = record(store, "app_login/unauthorized_ip", ip="2001:db8::1")
    report = ip_report(store.connection(), " 2001:DB8:0:0::0001 ")
    assert (report.query, ids(report.events.items)) == ("2001:db8::1", [stored])


def test_a_range_finds_every_address_inside_and_the_lists_overlapping_it(store):
    inside = [record(store, "app_login/unauthorized_ip", NOW - n * MINUTE, ip=ip)
              for n, ip in enumerate(["8.8.8.8", "8.8.8.200", "8.8.8.9"])]
    moved = record(store, "app_login/ip_changed", NOW - HOUR, user="ops@bar.com",
                   **{"from": "1.1.1.1", "to": "8.8.8.1"})
    listed = record(store, "allowed_ip/ip_added", NOW - 2 * HOUR, ip="8.8.0.0/16")
    record(store, "app_login/unauthorized_ip", ip="8.8.9.1")
    record(store, "app_login/unauthorized_ip", ip="18.8.8.8")
    record(store, "app_login/unauthorized_ip", ip="2001:db8::808")
    report = ip_report(store.connection(), "8.8.8.0/24")
    assert report.query == "8.8.8.0/24"
    assert ids(report.events.items) == [*inside, moved, listed]
    assert sorted(report.addresses) == ["8.8.8.1", "8.8.8.200", "8.8.8.8", "8.8.8.9"]
    assert report.user_count == 2
    assert report.on_allow_list_now


def test_an_ipv6_range_finds_its_addresses(store):
    inside = record(store, "app_login/unauthorized_ip", ip="2001:db8::1")
    also = record(store, "app_login/unauthorized_ip", NOW - MINUTE, ip="2001:db8:0:1::5")
    record(store, "app_login/unauthorized_ip", ip="2001:db9::1")
    report = ip_report(store.connection(), "2001:db8::/32")
    assert ids(report.events.items) == [inside, also]


@pytest.mark.parametrize(("changes", "query", "listed"), [
    ([("allowed_ip/ip_added", {"ip": "8.8.8.8/32"})], "8.8.8.8", True),
    ([("allowed_ip/ip_added", {"ip": "8.8.8.8/32"}),
      ("allowed_ip/ip_removed", {"ip": "8.8.8.8/32"})], "8.8.8.8", False),
    ([("allowed_ip/ip_added", {"ip": "8.8.8.8/32"}),
      ("allowed_ip/ip_changed", {"from": "8.8.8.8/32", "to": "8.8.4.4/32"})], "8.8.8.8", False),
    ([("allowed_ip/ip_added", {"ip": "8.8.8.8/32"}),
      ("allowed_ip/ip_changed", {"from": "8.8.8.8/32", "to": "8.8.4.4/32"})], "8.8.4.4", True),
    ([("allowed_ip/ip_removed", {"ip": "8.8.8.8/32"})], "8.8.8.8", False),  # never added here
    ([("allowed_ip/ip_changed", {"from": "1.1.1.1/32", "to": "8.8.8.8/32"})], "8.8.8.8", True),
    ([("allowed_ip/ip_added", {"ip": "10.0.0.0/8"})], "10.1.2.0/24", True),  # overlaps
    ([("allowed_ip/ip_added", {"ip": "10.1.2.3/32"})], "10.1.2.0/24", True),
    ([("allowed_ip/ip_added", {"ip": "10.0.0.0/8"})], "11.0.0.0/24", False),
    ([("allowed_ip/ip_added", {"ip": "10.0.0.0/8"})], "::a00:1", False),  # IPv6
    # An IPv4-mapped address names the IPv4 host: read as 10.0.0.1, as the intake stores it.
    ([("allowed_ip/ip_added", {"ip": "10.0.0.0/8"})], "::ffff:10.0.0.1", True),
    ([("allowed_ip/ip_added", {"ip": "8.8.8.8/32"}),
      ("allowed_ip/ip_added", {"ip": "8.8.8.0/24"}),
      ("allowed_ip/ip_removed", {"ip": "8.8.8.8/32"})], "8.8.8.8", True),  # the /24 holds it
])
def test_the_allow_list_is_replayed_from_its_events(store, changes, query, listed):
    for n, (kind, params) in enumerate(changes):
        record(store, kind, NOW - (len(changes) - n) * MINUTE, **params)
    assert ip_report(store.connection(), query).on_allow_list_now is listed


def test_the_allow_list_is_replayed_in_event_time_order_not_arrival(store):
    record(store, "allowed_ip/ip_added", NOW, ip="8.8.8.8/32")
    record(store, "allowed_ip/ip_removed", NOW - HOUR, ip="8.8.8.8/32")  # arrives later
    report = ip_report(store.connection(), "8.8.8.8")
    assert report.on_allow_list_now
    assert report.allow_list_entries[0].since == time_text(NOW)
    assert report.allow_list_entries[0].who == ADMIN


def test_ip_events_page_without_gap_or_repeat_with_allow_list_events_among_them(store):
    stored = []
    for n in range(10):
        if n % 3 == 0:
            stored.append(record(store, "allowed_ip/ip_added", NOW - (n // 2) * MINUTE,
                                 ip=f"8.8.8.{n}/32"))
        else:
            stored.append(record(store, "app_login/unauthorized_ip", NOW - (n // 2) * MINUTE,
                                 ip=f"8.8.8.{n}"))
    pages = every_page(
        lambda limit, before: ip_report(store.connection(), "8.8.8.0/28", limit, before).events,
        3)
    everything = ids(row for page in pages for row in page)
    assert sorted(everything) == sorted(stored)
    assert everything == ids(ip_report(store.connection(), "8.8.8.0/28", 10).events.items)


@pytest.mark.parametrize("typed", ["", "8.8.8", "8.8.8.8/33", "example.com", "<!channel>",
                                   "8.8.8.8 9.9.9.9", "999.1.1.1", "2001:db8::/129",
                                   "fe80::1%1", "fe80::1%ON ALLOW-LIST, ignore", "fe80::%1/64",
                                   "8.8.8.8:443", "[2001:db8::1]", "8.8.8.0/255.255.255.0",
                                   "010.8.8.8", "\u0668.\u0668.\u0668.\u0668"])
def test_what_is_not_an_ip_or_range_is_refused_with_usage(store, typed):
    with pytest.raises(ValueError, match=re.escape("expected an IP address (8.8.8.8")):
        ip_report(store.connection(), typed)


def test_parse_ip_normalises_a_range_with_host_bits():
    assert parse_ip("8.8.8.8/24") == ipaddress.ip_network("8.8.8.0/24")


def test_parse_ip_reads_an_ipv4_mapped_address_as_the_intake_stores_it():
    assert parse_ip(" ::ffff:8.8.8.8 ") == ipaddress.ip_address("8.8.8.8")


@given(st.text(st.sampled_from("0123456789abcdef:.%/ x\u0668"), max_size=40) | st.text())
def test_parse_ip_accepts_exactly_what_the_intake_stores(typed):
    stored = (events.plain_network if "/" in typed else events.plain_address)(typed.strip())
    try:
        parsed = parse_ip(typed)
    except ValueError as refused:
        assert stored is None and "expected an IP address" in str(refused)
    else:
        assert str(parsed) == stored


# --- unacked -------------------------------------------------------------------------------

def add_alert(store, event_id: int, state: str = "sent", acked_by: str | None = None,
              **columns) -> int:
    values = {"event_id": event_id, "channel": "C0SECURITY1", "severity": "high",
              "state": state, "next_attempt_at": "", "created_at": time_text(NOW),
              "slack_ts": "1764000000.000100" if state == "sent" else None,
              "acked_by": acked_by, **columns}
    with transaction(store.connection()) as conn:
        return conn.execute(f"INSERT INTO alerts ({', '.join(values)}) VALUES "
                            f"({', '.join('?' * len(values))})", tuple(values.values())).lastrowid


def test_unacked_lists_posted_alerts_nobody_acknowledged_oldest_first(store):
    refused = record(store, "app_login/unauthorized_ip", NOW - HOUR)
    added = record(store, "allowed_ip/ip_added")
    first = add_alert(store, refused, event_count=7, channel="C0LOGINS22")
    add_alert(store, refused, acked_by="U0ALICE01", channel="C0OTHER333")
    add_alert(store, added, state="pending", channel="C0OTHER333")
    add_alert(store, added, state="failed", channel="C0LOGINS22")
    second = add_alert(store, added, severity="critical")
    page = unacked(store.connection())
    assert [alert.id for alert in page.items] == [first, second]
    alert = page.items[0]
    assert (alert.channel, alert.slack_ts, alert.event_count, alert.severity) == (
        "C0LOGINS22", "1764000000.000100", 7, "high")
    assert (alert.event.id, alert.event.kind, alert.event.user, alert.event.ip,
            alert.event.event_time) == (refused, "app_login/unauthorized_ip", USER, "8.8.8.8",
                                        time_text(NOW - HOUR))
    assert page.items[1].severity == "critical"


def test_unacked_pages_by_alert_id(store):
    event = record(store, "app_login/unauthorized_ip")
    alerts = [add_alert(store, event, channel=f"C0CHANNEL{n:02d}") for n in range(7)]
    pages = every_page(lambda limit, after: unacked(store.connection(), limit, after), 3)
    assert [[a.id for a in page] for page in pages] == [alerts[:3], alerts[3:6], alerts[6:]]


# --- stats ---------------------------------------------------------------------------------

def test_stats_count_kinds_users_ips_and_rejections_inside_the_period(store):
    for n in range(3):
        record(store, "app_login/unauthorized_ip", NOW - n * HOUR, ip="1.1.1.1")
    record(store, "app_login/unauthorized_ip", NOW - 4 * HOUR, user="FOO@bar.com")  # 8.8.8.8
    record(store, "app_login/ip_changed", NOW - 5 * HOUR, user="ops@bar.com",
           **{"from": "1.1.1.1", "to": "2.2.2.2"})
    record(store, "allowed_ip/ip_added", NOW - 6 * HOUR, ip="1.1.1.0/24")  # a range, not an IP
    for n in range(5):  # access groups in from/to: not addresses
        record(store, "user/privileges_updated", NOW - 7 * HOUR, user=f"u{n}@bar.com")
    record(store, "app_login/unauthorized_ip", NOW - DAY - SECOND, ip="1.1.1.1")  # before
    record(store, "app_login/unauthorized_ip", NOW - 2 * DAY, user="old@bar.com", ip="3.3.3.3")
    record(store, "app_login/unauthorized_ip", NOW + SECOND, ip="1.1.1.1")  # after now
    store.record_batch([to_delivery(sqs_message("not json"))], NOW - HOUR)
    store.record_batch([to_delivery(sqs_message("[]"))], NOW - 2 * DAY)
    result = stats(store.connection(), "24h", NOW)
    assert (result.period, result.since, result.until) == (
        "24h", time_text(NOW - DAY), time_text(NOW))
    assert result.kinds == {"user/privileges_updated": 5, "app_login/unauthorized_ip": 4,
                            "allowed_ip/ip_added": 1, "app_login/ip_changed": 1}
    assert result.total == 11
    assert [(u.name.lower(), u.count) for u in result.top_users] == [
        (USER, 4), ("ops@bar.com", 1), ("u0@bar.com", 1), ("u1@bar.com", 1), ("u2@bar.com", 1)]
    assert [(i.name, i.count) for i in result.top_ips] == [
        ("1.1.1.1", 4), ("2.2.2.2", 1), ("8.8.8.8", 1)]
    assert result.rejected == 1


def test_stats_show_the_top_five_most_first(store):
    for n in range(7):
        for m in range(n + 1):
            record(store, "app_login/unauthorized_ip", NOW - m * MINUTE,
                   user=f"u{n}@bar.com", ip=f"10.0.0.{n}")
    result = stats(store.connection(), "7d", NOW)
    assert [u.name for u in result.top_users] == [f"u{n}@bar.com" for n in (6, 5, 4, 3, 2)]
    assert [i.count for i in result.top_ips] == [7, 6, 5, 4, 3]


def test_stats_of_an_empty_store_are_zero(store):
    result = stats(store.connection(), "30d", NOW)
    assert (result.total, result.kinds, result.top_users, result.top_ips, result.rejected) == (
        0, {}, (), (), 0)


def test_stats_over_days_count_whole_utc_days_with_all_of_today(store):
    first_day = datetime(2026, 11, 18, tzinfo=UTC)  # 7d at NOW: the 18th to the 24th
    for when in (first_day - timedelta(milliseconds=10), first_day, NOW + 11 * HOUR,
                 first_day + 7 * DAY):
        record(store, "app_login/unauthorized_ip", when)
    for n, when in enumerate((first_day - SECOND, first_day, NOW + HOUR)):
        store.record_batch([to_delivery(sqs_message("not json", f"bad-{n}"))], when)
    result = stats(store.connection(), "7d", NOW)
    assert (result.since, result.until) == ("2026-11-18T00:00:00.000000Z",
                                            "2026-11-24T23:59:59.999999Z")
    assert (result.total, result.rejected) == (2, 2)  # the first moment, and later today


ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # as NOCASE


def direct_stats(conn, since: str, until: str) -> tuple:
    """A stats answer counted straight from the events and rejections of a window."""
    rows = conn.execute("SELECT type, event, lower(user), ip, from_value, to_value FROM events "
                        "WHERE event_time >= ? AND event_time <= ?", (since, until)).fetchall()
    users = Counter(row[2] for row in rows if row[2] is not None)
    ips = Counter(v for row in rows for v in row[3:] if v and queries._is_address(v))
    (rejected,) = conn.execute("SELECT count(*) FROM rejected WHERE received_at >= ? AND "
                               "received_at <= ?", (since, until)).fetchone()
    def top(counts):
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
    return Counter(f"{row[0]}/{row[1]}" for row in rows), top(users), top(ips), rejected


def seed_forty_days(store) -> None:
    """Events of every sort over 40 days and into tomorrow, in batches with duplicates,
    redeliveries and rejections: users in several cases, addresses, ranges, groups."""
    rng = random.Random(4)
    users = ["Jane@Acme.example", "jane@acme.example", "JANE@ACME.EXAMPLE", "ärger@x.example",
             "Ärger@x.example", "bob@acme.example", "eve@evil.example"]
    addresses = ["1.1.1.1", "2.2.2.2", "2001:db8::1", "10.0.0.7"]
    for batch in range(60):
        deliveries = []
        for n in range(8):
            when = NOW - rng.uniform(-1.5, 40) * DAY
            kind, params = rng.choice([
                ("app_login/unauthorized_ip", {"ip": rng.choice(addresses)}),
                ("app_login/ip_changed", {"from": rng.choice(addresses),
                                          "to": rng.choice(addresses)}),
                ("app_login/successful_login", {}), ("user/privileges_updated", {}),
                ("allowed_ip/ip_added", {"ip": "10.0.0.0/24"})])
            document = samples.example(kind, now=when)
            document["params"].update(params, user=rng.choice(users))
            deliveries.append(to_delivery(sqs_message(document, f"m-{batch}-{n}")))
        deliveries.append(to_delivery(sqs_message(json.loads(deliveries[0].raw))))  # resent
        deliveries.append(to_delivery(sqs_message("not json", f"bad-{batch}")))
        store.record_batch(deliveries, NOW - rng.uniform(0, 40) * DAY)
        store.record_batch(deliveries[:3], NOW)  # redelivered


@pytest.mark.parametrize("period", ["7d", "30d"])
@pytest.mark.parametrize("now", [NOW, datetime(2026, 11, 20, tzinfo=UTC),
                                 datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC)])
def test_stats_over_days_agree_with_a_direct_count_of_their_window(store, period, now):
    seed_forty_days(store)
    result = stats(store.connection(), period, now)
    kinds, users, ips, rejected = direct_stats(store.connection(), result.since, result.until)
    assert result.since == time_text(datetime.combine(
        now.date() - timedelta(days=int(period[:-1]) - 1), datetime.min.time(), UTC))
    assert result.kinds == kinds and result.total == kinds.total()
    assert [(u.name.translate(ASCII_LOWER), u.count) for u in result.top_users] == users
    assert [(i.name, i.count) for i in result.top_ips] == ips
    assert result.rejected == rejected


@pytest.mark.parametrize("period", ["24h", "7d"])
def test_stats_count_a_user_in_any_ascii_case_as_one_shown_as_first_seen(store, period):
    for n, user in enumerate(["Jane@Acme.example", "JANE@acme.example", "jane@acme.example",
                              "Ärger@x.example", "ärger@x.example", "Ärger@X.example"]):
        record(store, "app_login/successful_login", NOW - (6 - n) * HOUR, user=user)
    result = stats(store.connection(), period, NOW)
    # NOCASE folds ASCII letters only: Ä and ä are different users, as in the events table
    assert [(u.name, u.count) for u in result.top_users] == [
        ("Jane@Acme.example", 3), ("Ärger@x.example", 2), ("ärger@x.example", 1)]


@pytest.mark.parametrize(("typed", "span"), [("24h", DAY), ("7d", 7 * DAY), (" 30D ", 30 * DAY)])
def test_periods(typed, span):
    assert parse_period(typed) == span


@pytest.mark.parametrize("typed", ["", "1d", "24", "week", "<!channel>", "30d 7d"])
def test_other_periods_are_refused_with_usage(store, typed):
    with pytest.raises(ValueError, match="the period is one of 24h, 7d, 30d"):
        stats(store.connection(), typed, NOW)


# --- audit ---------------------------------------------------------------------------------

def test_the_audit_log_is_newest_first_and_pages_by_id(store):
    with transaction(store.audit.connection()) as conn:
        for n in range(5):
            conn.execute("INSERT INTO audit (at, user_id, channel_id, action, detail, allowed, "
                         "outcome) VALUES (?, ?, 'C0SECURITY1', 'command', ?, ?, ?)",
                         (time_text(NOW + n * MINUTE), f"U0USER{n:04d}",
                          f"/voiso user {HOSTILE[n]}", n % 2, None if n else "denied"))
    pages = every_page(lambda limit, before: audit_log(store.audit.connection(), limit, before),
                       2)
    assert [[row.id for row in page] for page in pages] == [[5, 4], [3, 2], [1]]
    newest, oldest = pages[0][0], pages[-1][0]
    assert (newest.user_id, newest.detail, newest.allowed) == (
        "U0USER0004", f"/voiso user {HOSTILE[4]}", False)
    assert (oldest.allowed, oldest.outcome) == (False, "denied")
    assert pages[0][1].allowed is True


# --- indexes ---------------------------------------------------------------------------------

QUERY_INDEXES = {
    "RECENT_SQL": ["events_by_time"],
    "RECENT_OF_KIND_SQL": ["events_by_kind"],
    "KINDS_SQL": ["events_by_kind"],
    "USER_EVENTS_SQL": ["events_by_user", "events_by_who"],
    "CHANGES_TO_USER_SQL": ["INDEX events_by_user_kind (user=? AND type=?)"],
    "CHANGES_BY_USER_SQL": ["events_by_who"],
    "USER_SEEN_SQL": ["events_by_user", "events_by_who"],
    "EVENTS_BY_ID_SQL": ["INTEGER PRIMARY KEY"],
    "ALLOW_LIST_EVENTS_SQL": ["events_by_kind"],
    "ALLOW_LIST_VERSION_SQL": ["COVERING INDEX events_by_kind (type=?)"],
    "OLDEST_EVENT_SQL": ["events_by_time"],
    "UNACKED_SQL": ["alerts_unacked", "INTEGER PRIMARY KEY"],
    "AUDIT_SQL": ["INTEGER PRIMARY KEY"],
    "REJECTED_COUNT_SQL": ["rejected_by_received"],
    "USER_SPELLING_SQL": ["INDEX events_by_user (user=?)"],
    "KIND_EVENTS_SQL": ["events_by_kind"],
    "KIND_EVENT_COUNT_SQL": ["events_by_kind"],
    "FAILED_LOGIN_USERS_SQL": ["events_by_kind"],
    "FAILED_LOGIN_IPS_SQL": ["events_by_kind"],
    "OPEN_ALERTS_SQL": ["alerts_unacked"],
    "UNCONFIRMED_SQL": ["questions_by_created"],
}
PARAMS = {"at": "2026-11-24T12:00:00.000000Z", "id": 1, "limit": 10, "type": "app_login",
          "event": "unauthorized_ip", "email": USER, "ids": "[1, 2]", "after_id": 0,
          "before_id": 10, "all": 0,
          "since": "2026-11-23T12:00:00.000000Z", "until": "2026-11-24T12:00:00.000000Z",
          "top": 5, "dimension": "user", "first_day": "2026-10-26", "last_day": "2026-11-24",
          "user": USER}
TABLES = {"events", "alerts", "audit", "rejected", "daily_counts", "questions", "meta",
          "e", "a"}  # and aliases


def test_every_query_of_the_module_is_checked_below():
    assert {name for name in vars(queries) if name.endswith("_SQL")} == set(QUERY_INDEXES)


@pytest.mark.parametrize(("name", "indexes"), QUERY_INDEXES.items())
def test_every_query_searches_its_indexes_and_scans_no_table(store, name, indexes):
    conn = store.audit.connection() if name == "AUDIT_SQL" else store.connection()
    plan = [row[3] for row in conn.execute(
        "EXPLAIN QUERY PLAN " + getattr(queries, name), PARAMS)]
    scanned = [step for step in plan if step.startswith("SCAN ")
               and step.split()[1] in TABLES]
    assert not scanned, plan
    for index in indexes:  # the whole name: events_by_user is not events_by_user_kind
        assert any(step.startswith("SEARCH ") and re.search(re.escape(index) + r"(?!\w)", step)
                   for step in plan), (index, plan)
