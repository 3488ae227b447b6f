"""What the App Home shows: sparklines of hourly counts, and each part read from the store."""

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.voisobot.test_queries import HOUR, MINUTE, NOW, USER, add_alert, record
from voisobot import home, queries
from voisobot.home import BARS, Health, sparkline
from voisobot.outbox import Backlog

QUIET = Health(None, Backlog(0, 0.0, 0))


@pytest.mark.parametrize(("counts", "line"), [
    ([], ""),                                   # empty: nothing to draw
    ([0] * 6, "▁▁▁▁▁▁"),                        # all zero: the lowest bar throughout
    ([0, 0, 9, 0], "▁▁█▁"),                     # a single spike: the highest bar, alone
    ([1], "█"),                                 # one event is the largest count
    ([1, 2, 3, 4, 5, 6, 7], "▂▃▄▅▆▇█"),         # scaled to the largest
    ([1, 1000], "▂█"),                          # a single event still shows above zero
    ([500, 1000, 0], "▅█▁"),                    # half the maximum: half the height
])
def test_sparkline_cases(counts, line):
    assert sparkline(counts) == line


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=48))
def test_a_sparkline_has_a_bar_per_count_the_largest_highest_and_zero_lowest(counts):
    line = sparkline(counts)
    assert len(line) == len(counts) and set(line) <= set(BARS)
    for n, bar in zip(counts, line, strict=True):
        assert (bar == BARS[0]) == (n == 0)
        if n == max(counts) > 0:
            assert bar == BARS[-1]
    ranked = sorted(zip(counts, (BARS.index(bar) for bar in line), strict=True))
    assert all(lower[1] <= higher[1] for lower, higher in pairwise(ranked))  # more: not lower


def test_hourly_counts_are_per_kind_over_the_last_24_hours_oldest_first(store):
    now = NOW + 30 * MINUTE  # 12:30: the current hour is 12:00-12:30
    record(store, "app_login/unauthorized_ip", NOW + 10 * MINUTE)       # this hour: last slot
    record(store, "app_login/unauthorized_ip", NOW + 20 * MINUTE)
    record(store, "app_login/unauthorized_ip", NOW - 23 * HOUR)         # 13:00 yesterday: first
    record(store, "app_login/unauthorized_ip", NOW - 24 * HOUR)         # 12:00 yesterday: out
    record(store, "user/user_added", NOW - 2 * HOUR)
    counts = queries.hourly_counts(store.connection(), now)
    assert list(counts) == ["app_login/unauthorized_ip", "user/user_added"]  # most first
    assert counts["app_login/unauthorized_ip"] == [1] + [0] * 22 + [2]
    assert counts["user/user_added"] == [0] * 21 + [1, 0, 0]


def test_the_home_context_shows_open_alerts_changes_and_top_users(store):
    refused = record(store, "app_login/unauthorized_ip", NOW - HOUR)
    info = record(store, "app_login/successful_login", NOW - HOUR)
    added = record(store, "user/user_added", NOW - 2 * HOUR)
    record(store, "allowed_ip/ip_added", NOW - 3 * HOUR)
    open_alert = add_alert(store, refused, channel="CALERTS22")
    add_alert(store, added, channel="CALERTS22", acked_by="UALICE0001")
    add_alert(store, info, channel="CALERTS22", severity="info")
    context = home.home_context(store.connection(), NOW, QUIET)
    assert [line["alert"].id for line in context["open_alerts"]] == [open_alert]
    assert [e.kind for e in context["user_changes"]] == ["user/user_added"]
    assert [e.kind for e in context["allow_list_changes"]] == ["allowed_ip/ip_added"]
    assert USER in [t.name for t in context["top_users"]]
    assert {k["kind"] for k in context["kinds"]} == {
        "app_login/unauthorized_ip", "app_login/successful_login", "user/user_added",
        "allowed_ip/ip_added"}


def test_the_state_changes_with_the_content_not_with_the_clock(store):
    event = record(store, "app_login/unauthorized_ip", NOW - HOUR)
    add_alert(store, event, channel="CALERTS22")
    before = home.state_of(home.home_context(store.connection(), NOW, QUIET))
    later = home.state_of(home.home_context(store.connection(), NOW + 10 * MINUTE, QUIET))
    assert later == before
    add_alert(store, event, channel="CALERTS33")
    assert home.state_of(home.home_context(store.connection(), NOW, QUIET)) != before
