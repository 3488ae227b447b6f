"""A Voiso email -> a Slack user, against the fake Slack Web API over HTTP and a real store,
and the DM helpers of voisobot.slack.sender (open_dm, permalink)."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.slack_api import FakeSlack
from voisobot.addresses import looks_like_address
from voisobot.config import ConfirmConfig
from voisobot.slack import sender as slack
from voisobot.slack.people import Lookup, SlackPeople

TOKEN = "xoxb-test"
ANA, ANA_ID = "ana@example.com", "UANA"
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LOOKUP = "users.lookupByEmail"


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake_slack():
    fake = FakeSlack(token=TOKEN, people={ANA: ANA_ID}, retry_after=7).start()
    yield fake
    fake.stop()


@pytest.fixture
def client(fake_slack):
    return slack.make_client(TOKEN, fake_slack.base_url, 2.0)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_people(client, store, clock):
    def make(**confirm) -> SlackPeople:
        return SlackPeople(client, store, ConfirmConfig(**confirm), clock=clock)
    return make


@pytest.fixture
def people(make_people):
    return make_people()


def cached_rows(store) -> list[tuple]:
    return [tuple(row) for row in store.connection().execute(
        "SELECT email, user_id, looked_up_at, expires_at FROM slack_people ORDER BY email")]


def test_a_known_address_is_found_and_cached_for_the_configured_hours(make_people, store,
                                                                       fake_slack):
    people = make_people(lookup_cache_hours=5)
    assert people.lookup(ANA) == Lookup("found", ANA, ANA_ID)
    assert [call.payload["email"] for call in fake_slack.calls_to(LOOKUP)] == [ANA]
    assert cached_rows(store) == [(ANA, ANA_ID, "2024-05-01T12:00:00.000000Z",
                                   "2024-05-01T17:00:00.000000Z")]


def test_an_address_nobody_has_is_unknown_and_cached_as_such(people, store, fake_slack):
    assert people.lookup("ghost@example.com") == Lookup("unknown", "ghost@example.com")
    assert cached_rows(store)[0][:2] == ("ghost@example.com", None)
    assert people.lookup("ghost@example.com").status == "unknown"
    assert len(fake_slack.calls_to(LOOKUP)) == 1


def test_a_cached_answer_makes_no_call(people, fake_slack):
    people.lookup(ANA)
    fake_slack.set_down(True)  # any call now would be a retry, not "found"
    assert people.lookup(ANA) == Lookup("found", ANA, ANA_ID)
    assert len(fake_slack.calls_to(LOOKUP)) == 1


def test_an_expired_answer_is_looked_up_again_and_renewed(make_people, store, fake_slack,
                                                          clock):
    people = make_people(lookup_cache_hours=1)
    people.lookup(ANA)
    clock.now = START + timedelta(minutes=59)
    people.lookup(ANA)
    assert len(fake_slack.calls_to(LOOKUP)) == 1
    fake_slack.add_person(ANA, "UANA2")  # a new account since
    clock.now = START + timedelta(hours=1)
    assert people.lookup(ANA) == Lookup("found", ANA, "UANA2")
    assert len(fake_slack.calls_to(LOOKUP)) == 2
    assert cached_rows(store) == [(ANA, "UANA2", "2024-05-01T13:00:00.000000Z",
                                   "2024-05-01T14:00:00.000000Z")]


def test_an_alias_is_what_slack_is_asked_about_and_what_is_cached(make_people, store,
                                                                  fake_slack):
    people = make_people(aliases={"ana.voiso@calls.example": ANA})
    assert people.slack_email("Ana.Voiso@Calls.Example") == ANA
    assert people.lookup("Ana.Voiso@Calls.Example") == Lookup("found", ANA, ANA_ID)
    assert [call.payload["email"] for call in fake_slack.calls_to(LOOKUP)] == [ANA]
    assert [row[0] for row in cached_rows(store)] == [ANA]


@pytest.mark.parametrize("written", ["ANA@EXAMPLE.COM", "Ana@Example.com", "ana@example.COM"])
def test_case_does_not_matter_and_one_cache_row_serves_every_spelling(people, store,
                                                                      fake_slack, written):
    assert people.lookup(written) == Lookup("found", ANA, ANA_ID)
    assert people.lookup(ANA) == Lookup("found", ANA, ANA_ID)
    assert len(fake_slack.calls_to(LOOKUP)) == 1
    assert [row[0] for row in cached_rows(store)] == [ANA]


def test_slack_matches_addresses_case_insensitively_too(people, fake_slack):
    fake_slack.add_person("Bo.Admin@Example.COM", "UBO")
    assert people.lookup("bo.admin@example.com") == Lookup("found", "bo.admin@example.com",
                                                           "UBO")


@pytest.mark.parametrize("kind", [{"deleted": True}, {"is_bot": True}])
def test_a_deactivated_account_or_a_bot_is_unknown(people, store, fake_slack, kind):
    fake_slack.add_person("gone@example.com", "UGONE", **kind)
    assert people.lookup("gone@example.com") == Lookup("unknown", "gone@example.com")
    assert cached_rows(store)[0][:2] == ("gone@example.com", None)


def test_a_rate_limit_is_a_retry_with_slacks_wait_and_is_not_cached(people, store, fake_slack):
    fake_slack.fail(LOOKUP, "rate_limited")
    answer = people.lookup(ANA)
    assert (answer.status, answer.retry_after, answer.user_id) == ("retry", 7.0, None)
    assert cached_rows(store) == []
    assert people.lookup(ANA) == Lookup("found", ANA, ANA_ID)


@pytest.mark.parametrize("fault", ["server_error", "internal_error", "service_unavailable"])
def test_a_server_failure_is_a_retry_and_is_not_cached(people, store, fake_slack, fault):
    fake_slack.fail(LOOKUP, fault)
    answer = people.lookup(ANA)
    assert (answer.status, answer.retry_after) == ("retry", None)
    assert cached_rows(store) == []


def test_an_outage_is_a_retry(people, store, fake_slack):
    fake_slack.set_down(True)
    assert people.lookup(ANA).status == "retry"
    assert cached_rows(store) == []


def test_a_lost_connection_is_a_retry(store, fake_slack):
    fake_slack.hang_seconds = 1.5
    fake_slack.fail(LOOKUP, "hang")
    people = SlackPeople(slack.make_client(TOKEN, fake_slack.base_url, 0.5), store,
                         ConfirmConfig())
    answer = people.lookup(ANA)
    assert answer.status == "retry" and "Timeout" in answer.error
    assert cached_rows(store) == []


def test_a_missing_scope_is_give_up_with_advice_naming_users_read_email(people, store,
                                                                         fake_slack):
    fake_slack.fail(LOOKUP, "missing_scope")
    answer = people.lookup(ANA)
    assert (answer.status, answer.error) == ("give_up", "missing_scope")
    # the bot's own advice, naming both scopes, whatever Slack put in "needed"
    assert "users:read.email and users:read scopes" in answer.advice
    assert "reinstall" in answer.advice
    assert cached_rows(store) == []


@pytest.mark.parametrize("code", ["invalid_auth", "token_revoked", "account_inactive"])
def test_a_bad_token_is_give_up_with_advice_and_never_shows_the_token(store, fake_slack, code):
    fake_slack.fail(LOOKUP, code)
    people = SlackPeople(slack.make_client(TOKEN, fake_slack.base_url, 2.0), store,
                         ConfirmConfig())
    answer = people.lookup(ANA)
    assert (answer.status, answer.error) == ("give_up", code)
    assert "SLACK_BOT_TOKEN" in answer.advice and TOKEN not in repr(answer)
    assert cached_rows(store) == []


NOT_ADDRESSES = ["", "ana", "@example.com", "ana@", "ana@@example.com", "a@b@c",
                 "ana @example.com", "ana@example.com\n", "ana@exa\tmple.com",
                 "ana@example.com\x00", "ana\x1b[31m@example.com", "ana@example.com\u202e",
                 "ana\ud800@example.com", "a" * 243 + "@example.com"]


@pytest.mark.parametrize("text", NOT_ADDRESSES)
def test_text_that_is_not_an_address_is_unknown_without_asking_slack(people, store,
                                                                     fake_slack, text):
    assert people.lookup(text).status == "unknown"
    assert fake_slack.calls_to(LOOKUP) == [] and cached_rows(store) == []


@pytest.mark.parametrize("text", ["a.b+tag@sub.example.co.uk", "josé@exämple.com", "x@y",
                                  "o'brien&co=1%@example.com", "a" * 242 + "@example.com"])
def test_an_address_within_the_rules_is_asked_about_as_it_is(people, fake_slack, text):
    assert people.lookup(text) == Lookup("unknown", text)
    assert [call.payload["email"] for call in fake_slack.calls_to(LOOKUP)] == [text]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_only_address_shaped_text_passes_the_filter(text):
    if looks_like_address(text):
        local, _, domain = text.partition("@")
        assert local and domain and "@" not in domain and len(text) <= 254
        assert text.isprintable() and not any(ch.isspace() for ch in text)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(), st.emails(), st.builds(lambda a, b: f"{a}@{b}", st.text(min_size=1),
                                                    st.text(min_size=1))))
def test_any_text_gets_an_answer_and_only_an_address_reaches_slack(people, fake_slack, text):
    before = len(fake_slack.calls_to(LOOKUP))
    answer = people.lookup(text)
    asked = [call.payload.get("email") for call in fake_slack.calls_to(LOOKUP)][before:]
    assert answer.status in ("found", "unknown")
    assert answer.email == people.slack_email(text)
    if not looks_like_address(answer.email):
        assert asked == []
    assert all(looks_like_address(email) for email in asked)


# --- the DM helpers the question outbox uses ---

def test_open_dm_gives_the_same_dm_channel_each_time(client, fake_slack):
    first = slack.open_dm(client, ANA_ID)
    assert first == slack.SendResult("done", fake_slack.dm_channel(ANA_ID))
    assert slack.open_dm(client, ANA_ID) == first
    assert [call.payload["users"] for call in fake_slack.calls_to("conversations.open")] \
        == [ANA_ID, ANA_ID]


def test_a_dm_takes_posts_updates_and_history_reads(client, fake_slack):
    channel = slack.open_dm(client, ANA_ID).channel
    posted = slack.post_message(client, channel, {"text": "was this you?"})
    assert posted.status == "done"
    assert slack.update_message(client, channel, posted.ts, {"text": "thanks"}).status == "done"
    assert [m["text"] for m in fake_slack.messages(channel)] == ["thanks"]
    history = client.conversations_history(channel=channel)
    assert [m["ts"] for m in history["messages"]] == [posted.ts]


def test_an_unopened_dm_is_not_a_channel(client, fake_slack):
    result = slack.post_message(client, fake_slack.dm_channel(ANA_ID), {"text": "hi"})
    assert (result.status, result.error) == ("give_up", "channel_not_found")


def test_open_dm_with_an_unknown_user_gives_up(client):
    result = slack.open_dm(client, "UNOBODY")
    assert (result.status, result.error) == ("give_up", "user_not_found")


@pytest.mark.parametrize("fault, status, retry_after", [
    ("rate_limited", "retry", 7.0), ("server_error", "retry", None),
    ("missing_scope", "give_up", None), ("invalid_auth", "give_up", None)])
def test_open_dm_failures_follow_the_senders_conventions(client, fake_slack, fault, status,
                                                         retry_after):
    fake_slack.fail("conversations.open", fault)
    result = slack.open_dm(client, ANA_ID)
    assert (result.status, result.retry_after, result.channel) == (status, retry_after, None)
    if fault == "missing_scope":
        assert "im:write" in result.advice


def test_a_permalink_names_the_message(client, fake_slack):
    channel = slack.open_dm(client, ANA_ID).channel
    ts = slack.post_message(client, channel, {"text": "was this you?"}).ts
    assert slack.permalink(client, channel, ts) \
        == f"https://fake.slack.example/archives/{channel}/p{ts.replace('.', '')}"


@pytest.mark.parametrize("fault", [None, "rate_limited", "server_error", "invalid_auth"])
def test_a_permalink_is_none_on_any_failure(client, fake_slack, fault):
    channel = slack.open_dm(client, ANA_ID).channel
    ts = slack.post_message(client, channel, {"text": "was this you?"}).ts
    if fault:
        fake_slack.fail("chat.getPermalink", fault)
    else:
        ts = "1.000001"  # no such message
    assert slack.permalink(client, channel, ts) is None
