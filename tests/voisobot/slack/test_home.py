"""The App Home over the fake Slack Web API: who sees what, the refresh throttle (an
injected clock, no sleeps), its Acknowledge button, Block Kit validity, and hostile event
text that stays text."""

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.views import View

from tests.conftest import audit_rows
from tests.fakes.slack_api import FakeSlack
from tests.slack_display import assert_shown_literally, readable, shown
from tests.voisobot.test_queries import HOSTILE, NOW, add_alert, record
from voisobot import home
from voisobot.access import AccessPolicy
from voisobot.commands import Guard
from voisobot.config import AccessConfig
from voisobot.home import Health
from voisobot.outbox import Backlog, Outbox
from voisobot.render import one_line
from voisobot.slack import sender as slack
from voisobot.slack.home import REFRESH_SECONDS, AppHome
from voisobot.slack.render import MAX_VIEW_BLOCKS, SlackRenderer

ALLOWED, STRANGER, CHANNEL = "UALICE0001", "UMALLORY01", "CALERTS22"
HEALTH = Health(NOW, Backlog(2, 30.0, 1))


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def fake():
    fake = FakeSlack(channels={CHANNEL}).start()
    yield fake
    fake.stop()


def make_home(store, fake, clock=None, renderer=None) -> AppHome:
    clock = clock or Clock()
    renderer = renderer or SlackRenderer()
    policy = AccessPolicy(AccessConfig(users=(ALLOWED,), channels=(CHANNEL,)),
                          lambda group: set())
    return AppHome(Outbox(store), renderer, slack.make_client("xoxb-test", fake.base_url, 2),
                   Guard(store, renderer, policy, clock), lambda: HEALTH, clock)


def publishes(fake, user: str | None = None) -> list[dict]:
    return [call.payload for call in fake.calls_to("views.publish")
            if user is None or call.payload["user_id"] == user]


def home_buttons(view: dict) -> list[dict]:
    return [e for block in view["blocks"] if block["type"] == "actions"
            for e in block["elements"]]


# --- who sees what --------------------------------------------------------------------------

def test_an_allowed_user_gets_the_home_with_health_open_alerts_and_the_last_24_hours(store,
                                                                                     fake):
    alert = add_alert(store, record(store, "app_login/unauthorized_ip"), channel=CHANNEL)
    make_home(store, fake).opened(ALLOWED)
    (call,) = publishes(fake)
    view = fake.homes[ALLOWED]
    assert call["user_id"] == ALLOWED and view["type"] == "home"
    text = readable(view)
    for part in ("Health", "Outbox: 2 alert(s) waiting", "Refused for good: 1", "Open alerts",
                 f"#{alert} HIGH", "Last 24 hours", "app_login/unauthorized_ip: 1",
                 "Top users", "Recent changes", "Questions awaiting an answer"):
        assert part in text, part
    assert [b["value"] for b in home_buttons(view)] == [json.dumps({"alert": alert})]


def test_a_stranger_gets_a_short_note_and_no_alert(store, fake):
    record(store, "app_login/unauthorized_ip")
    add_alert(store, 1, channel=CHANNEL)
    make_home(store, fake).opened(STRANGER)
    view = fake.homes[STRANGER]
    assert "[access]" in readable(view) and "unauthorized_ip" not in readable(view)
    assert home_buttons(view) == []


def test_a_listed_channel_admits_nobody_to_the_home(store, fake):
    make_home(store, fake).opened("UCHANNELMEMBER")  # [access] channels: no channel here
    assert "[access]" in readable(fake.homes["UCHANNELMEMBER"])


# --- the refresh throttle -------------------------------------------------------------------

def test_a_second_open_within_a_minute_publishes_nothing(store, fake):
    clock = Clock()
    app_home = make_home(store, fake, clock)
    app_home.opened(ALLOWED)
    clock.advance(REFRESH_SECONDS - 1)
    app_home.opened(ALLOWED)
    assert len(publishes(fake)) == 1
    clock.advance(1)
    app_home.opened(ALLOWED)
    assert len(publishes(fake)) == 2


def test_a_refresh_publishes_a_changed_home_once_a_minute_and_an_unchanged_one_never(store,
                                                                                     fake):
    clock = Clock()
    app_home = make_home(store, fake, clock)
    app_home.opened(ALLOWED)
    app_home.opened(STRANGER)  # a note: never refreshed
    event = record(store, "app_login/unauthorized_ip")
    add_alert(store, event, channel=CHANNEL)
    app_home.refresh()  # changed, but within the minute
    assert len(publishes(fake, ALLOWED)) == 1
    clock.advance(REFRESH_SECONDS)
    app_home.refresh()
    assert len(publishes(fake, ALLOWED)) == 2 and "unauthorized_ip" in readable(
        fake.homes[ALLOWED])
    clock.advance(REFRESH_SECONDS)
    app_home.refresh()  # nothing changed: nothing published
    assert len(publishes(fake, ALLOWED)) == 2 and len(publishes(fake, STRANGER)) == 1


def test_a_home_slack_refused_is_published_at_the_next_open(store, fake):
    app_home = make_home(store, fake)
    fake.fail("views.publish", "server_error")
    app_home.opened(ALLOWED)
    app_home.opened(ALLOWED)
    assert len(publishes(fake)) == 2 and ALLOWED in fake.homes


# --- the Home's Acknowledge ------------------------------------------------------------------

def test_acknowledge_on_the_home_acknowledges_the_alert_audits_and_marks_its_message_stale(
        store, fake):
    alert = add_alert(store, record(store, "app_login/unauthorized_ip"), channel=CHANNEL,
                      shown_count=1)
    app_home = make_home(store, fake)
    app_home.opened(ALLOWED)
    app_home.press(ALLOWED, json.dumps({"alert": alert}), "alice")
    row = store.connection().execute("SELECT acked_by, acked_via, acked_by_name, shown_count "
                                     "FROM alerts WHERE id = ?", (alert,)).fetchone()
    assert tuple(row) == (ALLOWED, "slack", "alice", 0)  # 0: the delivery job updates it
    (audit,) = audit_rows(store)
    assert (audit["user_id"], audit["action"], audit["allowed"], audit["outcome"]) == (
        ALLOWED, "button", 1, f"acknowledged (by {ALLOWED}) from the App Home")
    assert len(publishes(fake, ALLOWED)) == 2  # the presser sees it at once
    assert home_buttons(fake.homes[ALLOWED]) == []


def test_a_second_acknowledge_says_who_was_first_and_changes_nothing(store, fake):
    alert = add_alert(store, record(store, "app_login/unauthorized_ip"), channel=CHANNEL,
                      acked_by="UBOB000001")
    make_home(store, fake).press(ALLOWED, json.dumps({"alert": alert}))
    assert audit_rows(store)[-1]["outcome"] == "already acknowledged (by UBOB000001) from " \
                                               "the App Home"


@pytest.mark.parametrize(("value", "outcome"), [
    ("not json", "ignored: not an alert button value"),
    ('{"alert": true}', "ignored: not an alert id"),
    ('{"alert": 999}', "ignored: alert 999 is no posted Slack alert"),
])
def test_a_press_whose_value_is_not_an_open_alert_is_ignored_and_audited(store, fake, value,
                                                                         outcome):
    make_home(store, fake).press(ALLOWED, value)
    assert audit_rows(store)[-1]["outcome"].startswith(outcome)


@pytest.mark.parametrize("state", ["pending", "failed"])
def test_an_alert_not_posted_cannot_be_acknowledged_from_the_home(store, fake, state):
    alert = add_alert(store, record(store, "app_login/unauthorized_ip"), state=state)
    make_home(store, fake).press(ALLOWED, json.dumps({"alert": alert}))
    assert store.connection().execute("SELECT acked_by FROM alerts").fetchone()[0] is None
    assert "is no posted Slack alert" in audit_rows(store)[-1]["outcome"]


def test_a_stranger_pressing_the_home_button_is_refused_and_audited(store, fake):
    alert = add_alert(store, record(store, "app_login/unauthorized_ip"), channel=CHANNEL)
    make_home(store, fake).press(STRANGER, json.dumps({"alert": alert}))
    assert store.connection().execute("SELECT acked_by FROM alerts").fetchone()[0] is None
    (audit,) = audit_rows(store)
    assert (audit["user_id"], audit["allowed"], audit["outcome"]) == (STRANGER, 0, "denied")
    assert publishes(fake) == []


# --- Block Kit, and hostile text ------------------------------------------------------------

def full_home(store, fake) -> dict:
    """A Home with every part filled: more open alerts than it lists, and changes."""
    for n in range(12):
        event = record(store, "app_login/unauthorized_ip", user=f"user{n}@x.com",
                       ip="203.0.113.9")
        add_alert(store, event, channel=CHANNEL)
    record(store, "user/privileges_updated")
    record(store, "allowed_ip/ip_added")
    make_home(store, fake).opened(ALLOWED)
    return fake.homes[ALLOWED]


def test_the_home_is_a_valid_home_view_within_100_blocks(store, fake):
    view = full_home(store, fake)
    View(**view).validate_json()  # slack_sdk's models: raises on an invalid view
    assert view["type"] == "home" and len(view["blocks"]) <= MAX_VIEW_BLOCKS
    assert len(home_buttons(view)) == 10  # the oldest 10 open alerts; /voiso unacked has all
    assert "More open alerts" in readable(view)


@pytest.mark.parametrize("value", [*HOSTILE, "*bold* _it_ `code` :skull:", "<@U0ADMIN01>",
                                   "<!here>", "@channel"])
def test_hostile_event_text_stays_text_in_the_home(store, value):
    baseline = render_home_with(store, "harmless")
    view = render_home_with(store, value)
    assert_shown_literally(_as_message(view), one_line(value), _as_message(baseline))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=60))
def test_no_event_text_makes_a_mention_link_or_markup_in_the_home(store, value):
    view = render_home_with(store, value)
    View(**view).validate_json()
    seen = shown(_as_message(view))
    assert seen.parsed == [] and all(item[0] != "user" and item[0] != "broadcast"
                                     and item[0] != "link" for item in seen.live)


def render_home_with(store, value: str) -> dict:
    """The Home as rendered for a store whose events carry ``value`` (no Slack needed)."""
    conn = store.connection()
    conn.execute("DELETE FROM alerts")
    event = record(store, "user/privileges_updated", who=value, access_group=value,
                   user=value)
    add_alert(store, event, channel=CHANNEL)
    return SlackRenderer().render_home(allowed=True,
                                       **home.home_context(conn, NOW, HEALTH))


def _as_message(view: dict) -> dict:
    return {"text": "x", "blocks": view["blocks"], "mrkdwn": False}
