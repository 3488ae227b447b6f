"""Storm grouping against the fake Slack: a flood becomes a few updating messages, every
event is counted in exactly one alert, and each channel's write budget holds."""

import json
from datetime import timedelta

import pytest

from tests.conftest import sqs_message
from tests.fakes.slack_api import FakeSlack
from tests.slack_display import blocks_of
from tests.voisobot.test_delivery import QUEUE, T0
from voisobot import config, samples
from voisobot.delivery import AlertDelivery
from voisobot.intake import Intake
from voisobot.outbox import Outbox
from voisobot.runtime import alert_outputs
from voisobot.slack import sender as slack
from voisobot.slack.render import SlackRenderer
from voisobot.store import Store

CHANNEL = "C0SECURITY"


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels={CHANNEL}).start()
    yield fake
    fake.stop()


def grouping_config(**slack_keys):
    return config.from_dict({"sqs": QUEUE, "slack": {"default_channel": CHANNEL, **slack_keys}})


def store_failed_logins(store: Store, users: list[str], start=T0, step=timedelta(seconds=1)):
    messages = []
    for i, user in enumerate(users):
        body = samples.example("app_login/incorrect_password", now=start + i * step)
        body["params"]["user"] = user
        messages.append(sqs_message(body))
    intake = Intake(None, grouping_config().sqs, store)
    for first in range(0, len(messages), 10):
        intake.store_messages(messages[first:first + 10])


def delivery(store, fake, **slack_keys) -> AlertDelivery:
    sender = slack.SlackSender(slack.make_client("xoxb-test", fake.base_url, timeout=2))
    return AlertDelivery(Outbox(store), alert_outputs(SlackRenderer(), sender, slack_pace=0.0),
                         grouping_config(**slack_keys), retry_base=0.01)


def drain(job: AlertDelivery, runs: int = 400) -> None:
    """Run until nothing is left to post, update or reply (the budget is not under test)."""
    for _ in range(runs):
        job.run()
        job.recent_updates.clear()
        if not job.outbox.open_alerts(1) and not job.outbox.channels_with_follow_ups():
            return
    raise AssertionError("delivery did not settle")


def accounted(store) -> int:
    (total,) = store.connection().execute("SELECT sum(event_count) FROM alerts").fetchone()
    (pairs,) = store.connection().execute("SELECT count(*) FROM alert_events").fetchone()
    assert total == pairs
    return total


def test_a_burst_for_one_user_is_one_message_updated_in_place_with_thread_replies(
        store, fake_slack):
    store_failed_logins(store, ["victim@acme.example"])
    job = delivery(store, fake_slack, thread_reply_cap=5)
    drain(job)  # the first event is posted alone ...
    store_failed_logins(store, ["victim@acme.example"] * 29, start=T0 + timedelta(seconds=1))
    drain(job)  # ... then the burst joins it
    top_level = [m for m in fake_slack.messages(CHANNEL) if not m.get("thread_ts")]
    replies = [m for m in fake_slack.messages(CHANNEL) if m.get("thread_ts")]
    assert len(top_level) == 1 and len(replies) == 5
    assert all(r["thread_ts"] == top_level[0]["ts"] for r in replies)
    assert "[30 events]" in top_level[0]["text"]  # the message as it stands after updates
    assert fake_slack.calls_to("chat.update")
    assert accounted(store) == 30


def test_a_storm_across_many_users_becomes_a_few_messages(store, fake_slack):
    users = [f"user{i:03d}@acme.example" for i in range(60)]
    store_failed_logins(store, users)
    drain(delivery(store, fake_slack, storm_threshold=5, thread_reply_cap=0))
    top_level = fake_slack.messages(CHANNEL)
    assert len(top_level) == 6  # five users' groups, then one storm for the kind
    storm = top_level[-1]
    assert "[55 events]" in storm["text"] and "55 user(s)" in json.dumps(blocks_of(storm))
    assert accounted(store) == 60


def test_events_after_the_window_start_a_new_alert(store, fake_slack):
    store_failed_logins(store, ["victim@acme.example"] * 4, step=timedelta(minutes=4))
    drain(delivery(store, fake_slack, group_window_minutes=10, thread_reply_cap=0))
    counts = [row[0] for row in store.connection().execute(
        "SELECT event_count FROM alerts ORDER BY id")]
    assert counts == [3, 1]  # 0, 4, 8 minutes in the first window; 12 starts another


def test_no_grouping_when_the_window_is_zero(store, fake_slack):
    store_failed_logins(store, ["victim@acme.example"] * 3)
    drain(delivery(store, fake_slack, group_window_minutes=0))
    assert len(fake_slack.messages(CHANNEL)) == 3


def test_one_write_per_channel_per_interval_whatever_is_waiting(store, fake_slack):
    store_failed_logins(store, ["a@acme.example"] * 5 + ["b@acme.example"] * 5)
    job = delivery(store, fake_slack)
    job.output(CHANNEL).pace_seconds = 3600.0
    for _ in range(5):
        job.run()
    writes = [c for c in fake_slack.calls if c.method in ("chat.postMessage", "chat.update")]
    assert len(writes) == 1


def test_updates_stay_within_their_budget_per_minute(store, fake_slack):
    store_failed_logins(store, ["victim@acme.example"])
    job = delivery(store, fake_slack, updates_per_minute=2, thread_reply_cap=0)
    job.run()
    for i in range(5):  # the group keeps growing and wants an update each time
        store_failed_logins(store, ["victim@acme.example"], start=T0 + timedelta(seconds=i + 1))
        job.run()
    assert len(fake_slack.calls_to("chat.update")) == 2


def test_every_event_is_counted_in_exactly_one_alert_per_channel(store, fake_slack):
    users = [f"user{i % 13}@acme.example" for i in range(200)]
    store_failed_logins(store, users, step=timedelta(seconds=2))
    drain(delivery(store, fake_slack, storm_threshold=4, thread_reply_cap=3))
    assert accounted(store) == 200
    shown = sum(row[0] for row in store.connection().execute("SELECT shown_count FROM alerts"))
    assert shown == 200  # and every message, as last posted or updated, says so


def test_an_alert_says_what_the_cache_knew_before_it(store, fake_slack):
    store_failed_logins(store, ["victim@acme.example"], start=T0)
    store_failed_logins(store, ["victim@acme.example"], start=T0 + timedelta(hours=1))
    drain(delivery(store, fake_slack, group_window_minutes=0))
    second = fake_slack.messages(CHANNEL)[1]
    assert "2nd failed-password alert for victim@acme.example today" in json.dumps(
        blocks_of(second))
