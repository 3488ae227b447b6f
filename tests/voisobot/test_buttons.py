"""The Acknowledge and Reopen buttons against the fake Slack Web API: the message always
ends up showing who holds the alert, even when Slack refuses the update at first or a
group update races the click."""

import json
from datetime import UTC, datetime

import pytest

from tests.fakes.slack_api import FakeSlack
from tests.slack_display import readable
from tests.voisobot.test_delivery import CHANNELS, delivery_for, run_until_settled, store_events
from voisobot import slack
from voisobot.access import AccessPolicy
from voisobot.buttons import (
    ACK_ACTION,
    REOPEN_ACTION,
    AlertButtons,
    NotOurButton,
    Press,
    alert_id_of,
)
from voisobot.config import AccessConfig
from voisobot.outbox import Outbox
from voisobot.render import SlackRenderer

ANALYST = "UANALYST01"
T_CLICK = datetime(2026, 11, 24, 14, 2, tzinfo=UTC)


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels=CHANNELS).start()
    yield fake
    fake.stop()


def make_buttons(store, fake) -> AlertButtons:
    sender = slack.SlackSender(slack.make_client("xoxb-test", fake.base_url, timeout=1))
    policy = AccessPolicy(AccessConfig(users=(ANALYST,)), lambda group: set())
    return AlertButtons(Outbox(store), SlackRenderer(), sender, policy, clock=lambda: T_CLICK)


def posted(store, fake, *kinds: str) -> tuple[int, object]:
    store_events(store, *kinds)
    delivery = delivery_for(store, fake)
    run_until_settled(delivery)
    (alert_id,) = [row[0] for row in store.connection().execute("SELECT id FROM alerts")]
    return alert_id, delivery


def press(buttons, action: str, alert_id: int, user: str = ANALYST):
    return buttons.press(Press(user, "C0DEFAULT1", action, json.dumps({"alert": alert_id})))


def the_message(fake) -> str:
    """What the channel's one message shows, mentions as <@U…> (tests/slack_display.py)."""
    (message,) = fake.messages("C0DEFAULT1")
    return readable(message)


def test_acknowledged_reads_who_and_when_in_utc(store, fake_slack):
    alert_id, _ = posted(store, fake_slack, "app_login/unauthorized_ip")
    assert press(make_buttons(store, fake_slack), ACK_ACTION, alert_id) is None
    text = the_message(fake_slack)
    assert f"Acknowledged by <@{ANALYST}> at 14:02 UTC on 2026-11-24" in text
    (message,) = fake_slack.messages("C0DEFAULT1")
    actions = [e["action_id"] for b in message["blocks"] if b["type"] == "actions"
               for e in b["elements"]]
    assert actions == ["voiso_reopen"]


def test_a_refused_update_is_left_to_the_delivery_job(store, fake_slack):
    alert_id, delivery = posted(store, fake_slack, "app_login/unauthorized_ip")
    fake_slack.fail("chat.update", "rate_limited")
    press(make_buttons(store, fake_slack), ACK_ACTION, alert_id)
    assert "Acknowledged by" not in the_message(fake_slack)
    delivery.next_post_at.clear()
    delivery.run()
    assert f"Acknowledged by <@{ANALYST}>" in the_message(fake_slack)


def test_a_group_update_racing_a_click_is_followed_by_one_that_shows_it(store, fake_slack):
    """The delivery job renders a group (not acknowledged), a click lands, then the job's
    update reaches Slack: the job sees the change and updates once more."""
    alert_id, delivery = posted(store, fake_slack, "app_login/incorrect_password")
    store_events(store, "app_login/incorrect_password", count="9")  # joins the group
    delivery.enqueue_new_events()
    buttons = make_buttons(store, fake_slack)
    real_update = delivery.sender.update

    def update_then_click(channel, ts, message):
        result = real_update(channel, ts, message)
        press(buttons, ACK_ACTION, alert_id)  # its own update lands first in Slack's order
        return result
    delivery.sender.update = update_then_click
    delivery.next_post_at.clear()
    delivery.run()
    delivery.sender.update = real_update
    delivery.next_post_at.clear()
    delivery.run()
    assert f"Acknowledged by <@{ANALYST}>" in the_message(fake_slack)
    assert "2 events" in the_message(fake_slack)


def test_reopen_of_an_open_alert_says_so_privately(store, fake_slack):
    alert_id, _ = posted(store, fake_slack, "user/user_deleted")
    note = press(make_buttons(store, fake_slack), REOPEN_ACTION, alert_id)
    assert "not acknowledged" in note.message["text"] and not note.public


@pytest.mark.parametrize("value", ["", "{}", '{"alert": "1"}', '{"alert": true}',
                                   '{"alert": -3}', "[1]", '{"alert": 1.5}'])
def test_a_value_that_is_not_an_alert_id_is_refused(value):
    with pytest.raises(NotOurButton):
        alert_id_of(value)


def test_a_foreign_value_is_audited_and_answered_without_detail(store, fake_slack):
    buttons = make_buttons(store, fake_slack)
    note = buttons.press(Press(ANALYST, None, ACK_ACTION, '{"alert": "<!channel>"}'))
    assert "went wrong" in note.message["text"]
    (row,) = store.connection().execute("SELECT outcome FROM audit").fetchall()
    assert row[0].startswith("ignored: not an alert id")
