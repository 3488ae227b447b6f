"""Context from history: what the cache knows about an event, from the events before it."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import sqs_message
from voisobot import history, samples
from voisobot.events import Event
from voisobot.history import age_in_words, context_lines, ordinal
from voisobot.intake import to_delivery

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
USER = "foo@bar.com"  # the user of the vendor's examples
ADMIN = "admin@voiso.com"  # their ``who``
SECOND, MINUTE, HOUR, DAY = (timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1),
                             timedelta(days=1))


def record_body(store, document: dict) -> tuple[Event, int]:
    """Store one body through the production path: SQS message → Delivery → batch."""
    delivery = to_delivery(sqs_message(document))
    assert delivery.event is not None, delivery.reason
    outcome = store.record_batch([delivery], NOW)
    assert outcome.stored, "an identical body is a duplicate: vary the time or a param"
    return delivery.event, outcome.stored[0]


def record(store, kind: str, when: datetime = NOW, **params: str) -> tuple[Event, int]:
    document = samples.example(kind, now=when)
    document["params"].update(params)
    return record_body(store, document)


def describe(store, recorded: tuple[Event, int]) -> tuple[str, ...]:
    event, event_id = recorded
    return context_lines(store.connection(), event, event_id)


def unknown_kind(type_: str, event: str, when: datetime, **params: str) -> dict:
    return {"timestamp": samples.voiso_timestamp(when), "type": type_, "event": event,
            "callcenter": "acme", "params": params}


# --- 1. the IP of a login, for its user over 30 days ---------------------------------------

def test_a_login_ip_never_seen_for_the_user_says_first_time(store):
    refused = record(store, "app_login/unauthorized_ip")
    assert describe(store, refused) == (
        "First time IP 8.8.8.8 is seen for foo@bar.com in 30 days",)


def test_earlier_sightings_in_ip_from_and_to_are_counted_whatever_the_user_name_case(store):
    record(store, "app_login/unauthorized_ip", NOW - DAY)
    record(store, "app_login/ip_changed", NOW - 2 * DAY, user=USER,
           **{"from": "8.8.8.8", "to": "4.4.4.2"})
    record(store, "app_login/ip_changed", NOW - 3 * DAY, user=USER,
           **{"from": "4.4.4.2", "to": "8.8.8.8"})
    record(store, "app_login/unauthorized_ip", NOW - 4 * DAY, user="FOO@Bar.com")
    refused = record(store, "app_login/unauthorized_ip")
    assert describe(store, refused) == (
        "IP 8.8.8.8 seen 4 times for foo@bar.com in the last 30 days",)


def test_one_earlier_sighting_is_singular(store):
    record(store, "app_login/unauthorized_ip", NOW - HOUR)
    assert describe(store, record(store, "app_login/unauthorized_ip")) == (
        "IP 8.8.8.8 seen 1 time for foo@bar.com in the last 30 days",)


@pytest.mark.parametrize("noise", [
    pytest.param({"when": NOW + SECOND}, id="later"),
    pytest.param({"when": NOW - HOUR, "user": "someone@else.com"}, id="another-user"),
    pytest.param({"when": NOW - 30 * DAY - SECOND}, id="over-30-days-before"),
    pytest.param({"when": NOW - HOUR, "ip": "9.9.9.9"}, id="another-ip"),
    pytest.param({"when": NOW, "access_group": "agent"}, id="same-time-stored-after"),
])
def test_sightings_that_do_not_count(store, noise):
    refused = record(store, "app_login/unauthorized_ip")
    record(store, "app_login/unauthorized_ip", **noise)
    assert describe(store, refused) == (
        "First time IP 8.8.8.8 is seen for foo@bar.com in 30 days",)


def test_a_sighting_at_the_same_time_stored_first_counts(store):
    record(store, "app_login/unauthorized_ip", NOW, access_group="agent")
    assert describe(store, record(store, "app_login/unauthorized_ip")) == (
        "IP 8.8.8.8 seen 1 time for foo@bar.com in the last 30 days",)


def test_order_is_by_event_time_so_an_earlier_event_stored_later_counts(store):
    refused = record(store, "app_login/unauthorized_ip")
    record(store, "app_login/unauthorized_ip", NOW - 30 * DAY)  # exactly at the window's edge
    assert describe(store, refused) == (
        "IP 8.8.8.8 seen 1 time for foo@bar.com in the last 30 days",)


def test_an_app_login_ip_change_is_about_its_new_address(store):
    record(store, "app_login/unauthorized_ip", NOW - HOUR, ip="4.4.4.2")
    changed = record(store, "app_login/ip_changed", user=USER,
                     **{"from": "8.8.8.8", "to": "4.4.4.2"})
    assert describe(store, changed) == (
        "IP 4.4.4.2 seen 1 time for foo@bar.com in the last 30 days",)


def test_an_unknown_login_kind_with_an_ip_is_described(store):
    passkey = record_body(store, unknown_kind("app_login", "passkey_login", NOW,
                                              user=USER, ip="2001:db8::1"))
    assert describe(store, passkey) == (
        "First time IP 2001:db8::1 is seen for foo@bar.com in 30 days",)


@pytest.mark.parametrize("document", [
    pytest.param(unknown_kind("app_login", "passkey_login", NOW, ip="8.8.8.8"), id="no-user"),
    pytest.param(unknown_kind("sso", "login", NOW, user=USER, ip="8.8.8.8"), id="not-app_login"),
])
def test_an_unknown_kind_without_a_login_user_and_ip_has_no_context(store, document):
    assert describe(store, record_body(store, document)) == ()


# --- 2. failed passwords today, and a refusal in the last 24 hours --------------------------

@pytest.mark.parametrize(("earlier", "line"), [
    (0, "1st"), (1, "2nd"), (2, "3rd"), (3, "4th"), (10, "11th"), (11, "12th"), (20, "21st"),
])
def test_failed_passwords_are_counted_in_english_ordinals(store, earlier, line):
    for n in range(earlier):
        record(store, "app_login/incorrect_password", NOW - (n + 1) * MINUTE)
    failed = record(store, "app_login/incorrect_password")
    assert describe(store, failed) == (f"{line} failed-password alert for foo@bar.com today",)


def test_only_this_users_failures_earlier_the_same_utc_day_count(store):
    record(store, "app_login/incorrect_password", NOW - 2 * HOUR)
    record(store, "app_login/incorrect_password", NOW - HOUR, user="FOO@BAR.COM")
    record(store, "app_login/incorrect_password", NOW.replace(hour=0) - SECOND)  # yesterday
    record(store, "app_login/incorrect_password", NOW - HOUR, user="someone@else.com")
    failed = record(store, "app_login/incorrect_password")
    record(store, "app_login/incorrect_password", NOW + MINUTE)  # later
    assert describe(store, failed) == ("3rd failed-password alert for foo@bar.com today",)


def test_a_refusal_in_the_last_24_hours_is_added_with_its_age(store):
    record(store, "app_login/unauthorized_ip", NOW - 5 * HOUR)
    record(store, "app_login/unauthorized_ip", NOW - 2 * HOUR - 30 * MINUTE, ip="1.2.3.4")
    record(store, "app_login/unauthorized_ip", NOW - MINUTE, user="someone@else.com")
    record(store, "app_login/unauthorized_ip", NOW + MINUTE)
    failed = record(store, "app_login/incorrect_password")
    assert describe(store, failed) == (
        "1st failed-password alert for foo@bar.com today",
        "foo@bar.com was also refused from an unauthorized IP 2 hours ago",
    )


def test_a_refusal_over_24_hours_before_is_not_mentioned(store):
    record(store, "app_login/unauthorized_ip", NOW - DAY - SECOND)
    failed = record(store, "app_login/incorrect_password")
    assert describe(store, failed) == ("1st failed-password alert for foo@bar.com today",)


# --- 3. an allow-list entry for an address refused shortly before ---------------------------

def test_an_address_refused_before_its_range_was_added_is_pointed_out(store):
    record(store, "app_login/unauthorized_ip", NOW - 2 * MINUTE)
    added = record(store, "allowed_ip/ip_added", ip="8.8.8.0/24")
    assert describe(store, added) == (
        "IP 8.8.8.8 was refused as unauthorized 2 minutes before it was added to the "
        "allow-list (user foo@bar.com)",)


def test_the_most_recent_refusal_inside_the_range_is_the_one_named(store):
    record(store, "app_login/unauthorized_ip", NOW - 3 * HOUR)
    record(store, "app_login/unauthorized_ip", NOW - HOUR, ip="8.8.8.9", user="ops@bar.com")
    record(store, "app_login/unauthorized_ip", NOW - MINUTE, ip="1.1.1.1")
    added = record(store, "allowed_ip/ip_added", ip="8.8.8.0/24")
    assert describe(store, added) == (
        "IP 8.8.8.9 was refused as unauthorized 1 hour before it was added to the "
        "allow-list (user ops@bar.com)",)


def test_a_bare_address_added_is_its_own_range(store):
    record(store, "app_login/unauthorized_ip", NOW - 45 * SECOND)
    added = record(store, "allowed_ip/ip_added", ip="8.8.8.8")
    assert describe(store, added) == (
        "IP 8.8.8.8 was refused as unauthorized 45 seconds before it was added to the "
        "allow-list (user foo@bar.com)",)


def test_an_edited_entry_is_judged_by_its_new_range(store):
    record(store, "app_login/unauthorized_ip", NOW - 3 * HOUR, ip="10.1.2.3")
    record(store, "app_login/unauthorized_ip", NOW - HOUR)  # in the old range only
    changed = record(store, "allowed_ip/ip_changed",
                     **{"from": "8.8.8.0/24", "to": "10.0.0.0/8"})
    assert describe(store, changed) == (
        "IP 10.1.2.3 was refused as unauthorized 3 hours before it was added to the "
        "allow-list (user foo@bar.com)",)


@pytest.mark.parametrize("refusal", [
    pytest.param({"when": NOW - MINUTE, "ip": "8.8.9.1"}, id="outside-the-range"),
    pytest.param({"when": NOW - DAY - SECOND}, id="over-24-hours-before"),
    pytest.param({"when": NOW + MINUTE}, id="later"),
    pytest.param({"when": NOW - MINUTE, "ip": "2001:db8::808"}, id="ipv6-in-an-ipv4-range"),
])
def test_refusals_that_are_not_pointed_out(store, refusal):
    added = record(store, "allowed_ip/ip_added", ip="8.8.8.0/24")
    record(store, "app_login/unauthorized_ip", **refusal)
    assert describe(store, added) == ()


def test_removing_an_entry_has_no_context(store):
    record(store, "app_login/unauthorized_ip", NOW - MINUTE)
    assert describe(store, record(store, "allowed_ip/ip_removed")) == ()


# --- 4. a successful login after failures -------------------------------------------------

@pytest.mark.parametrize(("failed", "refused", "line"), [
    (2, 1, "Came after 2 failed-password and 1 unauthorized-IP alerts for foo@bar.com "
           "in the previous hour"),
    (1, 0, "Came after 1 failed-password alert for foo@bar.com in the previous hour"),
    (0, 2, "Came after 2 unauthorized-IP alerts for foo@bar.com in the previous hour"),
])
def test_a_login_after_failures_in_the_hour_says_how_many(store, failed, refused, line):
    for n in range(failed):
        record(store, "app_login/incorrect_password", NOW - (n + 1) * MINUTE)
    for n in range(refused):
        record(store, "app_login/unauthorized_ip", NOW - (n + 1) * MINUTE)
    assert describe(store, record(store, "app_login/successful_login")) == (line,)


def test_failures_outside_the_hour_or_of_others_do_not_count(store):
    record(store, "app_login/incorrect_password", NOW - HOUR - SECOND)
    record(store, "app_login/unauthorized_ip", NOW - MINUTE, user="someone@else.com")
    login = record(store, "app_login/successful_login")
    record(store, "app_login/incorrect_password", NOW + MINUTE)
    assert describe(store, login) == ()


# --- 5. a login attempt to a deleted account ------------------------------------------------

def test_a_login_to_a_deleted_account_names_who_deleted_it_and_when(store):
    record(store, "user/user_deleted", NOW - 10 * DAY, who="root@voiso.com")
    record(store, "user/user_deleted", NOW - 5 * DAY - HOUR)
    record(store, "user/user_deleted", NOW - DAY, user="someone@else.com")
    attempt = record(store, "app_login/deleted_user")
    record(store, "user/user_deleted", NOW + MINUTE, who="later@voiso.com")
    assert describe(store, attempt) == ("foo@bar.com was deleted by admin@voiso.com 5 days ago",)


def test_a_login_to_an_account_not_seen_deleted_has_no_context(store):
    record(store, "user/user_deleted", NOW - DAY, user="someone@else.com")
    assert describe(store, record(store, "app_login/deleted_user")) == ()


# --- 6. admin granted by someone who was made admin recently --------------------------------

def test_admin_granted_by_a_new_admin_says_when_they_got_it(store):
    record(store, "user/privileges_updated", NOW - 3 * HOUR, who="root@voiso.com", user=ADMIN,
           to="Administrator ")
    granted = record(store, "user/privileges_updated")  # ADMIN makes foo@bar.com admin
    assert describe(store, granted) == (
        "admin@voiso.com was made Administrator  3 hours ago themselves",)


@pytest.mark.parametrize(("earlier", "now_to"), [
    pytest.param({"when": NOW - 7 * DAY - SECOND}, "admin", id="over-7-days-before"),
    pytest.param({"when": NOW - HOUR, "to": "supervisor"}, "admin", id="not-made-admin"),
    pytest.param({"when": NOW - HOUR, "user": "someone@else.com"}, "admin", id="another-user"),
    pytest.param({"when": NOW + HOUR}, "admin", id="later"),
    pytest.param({"when": NOW - HOUR}, "supervisor", id="this-change-is-not-to-admin"),
])
def test_grants_that_are_not_pointed_out(store, earlier, now_to):
    granted = record(store, "user/privileges_updated", to=now_to)
    record(store, "user/privileges_updated", **{"who": "root@voiso.com", "user": ADMIN,
                                                "to": "admin", **earlier})
    assert describe(store, granted) == ()


# --- every rule ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["user/user_added", "user/password_changed",
                                  "allowed_ip/ip_removed"])
def test_kinds_without_a_rule_have_no_context(store, kind):
    record(store, "app_login/unauthorized_ip", NOW - MINUTE)
    assert describe(store, record(store, kind)) == ()


@pytest.mark.parametrize("name", ["<!channel>", "{{ 7*7 }}", "admin'); DROP TABLE events;--",
                                  "<https://evil.example|Voiso login>", "%(user)s %s"])
def test_hostile_names_are_matched_and_passed_through_unchanged(store, name):
    record(store, "app_login/unauthorized_ip", NOW - DAY, user=name)
    record(store, "app_login/unauthorized_ip", NOW - HOUR, user=name)
    refused = record(store, "app_login/unauthorized_ip", user=name)
    assert describe(store, refused) == (f"IP 8.8.8.8 seen 2 times for {name} in the last 30 days",)
    assert store.totals()["events"] == 3


def test_describing_again_after_later_events_gives_the_same_lines(store):
    record(store, "app_login/unauthorized_ip", NOW - HOUR)
    failed = record(store, "app_login/incorrect_password")
    first = describe(store, failed)
    record(store, "app_login/incorrect_password", NOW + MINUTE)
    record(store, "app_login/unauthorized_ip", NOW + 2 * MINUTE)
    assert describe(store, failed) == first == (
        "1st failed-password alert for foo@bar.com today",
        "foo@bar.com was also refused from an unauthorized IP 1 hour ago",
    )


# --- words --------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "word"), [
    (1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (10, "10th"), (11, "11th"), (12, "12th"),
    (13, "13th"), (21, "21st"), (22, "22nd"), (23, "23rd"), (100, "100th"), (101, "101st"),
    (111, "111th"), (112, "112th"), (113, "113th"), (1002, "1002nd"),
])
def test_ordinals_are_english(n, word):
    assert ordinal(n) == word


@pytest.mark.parametrize(("age", "words"), [
    (timedelta(0), "less than a second"),
    (timedelta(milliseconds=999), "less than a second"),
    (SECOND, "1 second"),
    (45 * SECOND, "45 seconds"),
    (timedelta(seconds=59, microseconds=999999), "59 seconds"),
    (MINUTE, "1 minute"),
    (119 * SECOND, "1 minute"),
    (2 * MINUTE, "2 minutes"),
    (3 * HOUR + 59 * MINUTE, "3 hours"),
    (DAY - SECOND, "23 hours"),
    (DAY, "1 day"),
    (5 * DAY + 23 * HOUR, "5 days"),
])
def test_ages_use_the_largest_whole_unit(age, words):
    assert age_in_words(age) == words


# --- indexes --------------------------------------------------------------------------------

# With a kind in the question, events_by_user_kind (user, type, event, event_time) holds
# both the kind and the window; without one, events_by_user (user, event_time) does.
QUERY_INDEXES = {
    "IP_SIGHTINGS_SQL": "events_by_user",
    "FAILED_PASSWORDS_SQL": "events_by_user_kind",
    "LAST_REFUSAL_OF_USER_SQL": "events_by_user_kind",
    "FAILURES_OF_USER_SQL": "events_by_user_kind",
    "LAST_DELETION_OF_USER_SQL": "events_by_user_kind",
    "PRIVILEGE_CHANGES_OF_USER_SQL": "events_by_user_kind",
    "RECENT_REFUSALS_SQL": "events_by_kind",
    "NAME_SEEN_AS_USER_SQL": "events_by_user",
    "NAME_SEEN_AS_WHO_SQL": "events_by_who",
}


def test_every_query_of_the_module_is_checked_below():
    assert {name for name in vars(history) if name.endswith("_SQL")} == set(QUERY_INDEXES)


@pytest.mark.parametrize(("name", "index"), QUERY_INDEXES.items())
def test_every_query_searches_its_index_and_scans_nothing(store, name, index):
    params = {"at": "2026-11-24T12:00:00.000000Z", "since": "2026-11-23T12:00:00.000000Z",
              "id": 1, "user": USER, "ip": "8.8.8.8", "limit": 10, "name": USER}
    plan = [row[3] for row in store.connection().execute(
        "EXPLAIN QUERY PLAN " + getattr(history, name), params)]
    assert not [step for step in plan if step.startswith("SCAN")], plan
    searched = re.compile(rf"SEARCH events USING (COVERING )?INDEX {index} "
                          r"\(((user|who)=\? AND )?(type=\? AND event=\? AND )?event_time")
    assert any(searched.match(step) for step in plan), plan
