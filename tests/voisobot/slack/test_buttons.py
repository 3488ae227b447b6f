"""The Acknowledge and Reopen buttons against the fake Slack Web API: the message always
ends up showing who holds the alert, even when Slack refuses the update at first or a
group update races the click; a button acts only on the alert of its own message; and
every press, whatever it carries, leaves exactly one audit row."""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.slack_api import FakeSlack
from tests.slack_display import blocks_of, readable
from tests.voisobot.test_delivery import (
    CHANNELS,
    delivery_for,
    make_config,
    run_until_settled,
    store_events,
)
from voisobot.access import AccessPolicy
from voisobot.acks import MessageRef
from voisobot.config import AccessConfig
from voisobot.outbox import Outbox
from voisobot.presses import ACK_ACTION, REOPEN_ACTION, NotOurButton, alert_id_of
from voisobot.slack import sender as slack
from voisobot.slack.buttons import AlertButtons, Press
from voisobot.slack.render import SlackRenderer

ANALYST = "UANALYST01"
DEFAULT, SECURITY = "C0DEFAULT1", "C0SECURITY"
T_CLICK = datetime(2026, 11, 24, 14, 2, tzinfo=UTC)


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels=CHANNELS).start()
    yield fake
    fake.stop()


def make_buttons(store, fake, **access) -> AlertButtons:
    sender = slack.SlackSender(slack.make_client("xoxb-test", fake.base_url, timeout=1))
    access = {"users": (ANALYST,), **access}
    policy = AccessPolicy(AccessConfig(**access), lambda group: set())
    return AlertButtons(Outbox(store), SlackRenderer(), sender, policy, clock=lambda: T_CLICK)


def posted(store, fake, *kinds: str) -> tuple[int, object]:
    store_events(store, *kinds)
    delivery = delivery_for(store, fake)
    run_until_settled(delivery)
    (alert_id,) = [row[0] for row in store.connection().execute("SELECT id FROM alerts")]
    return alert_id, delivery


def message_of(fake, alert_id: int, channel: str = DEFAULT) -> MessageRef:
    """Where the fake Slack shows alert ``alert_id``: the message its buttons are on."""
    (ts,) = [m["ts"] for m in fake.messages(channel)
             if m["metadata"]["event_payload"]["alert_id"] == alert_id]
    return MessageRef(channel, ts)


def press(buttons, fake, action: str, alert_id: int, user: str = ANALYST):
    """Press the button of alert ``alert_id`` on its own message."""
    return buttons.press(Press(user, DEFAULT, message_of(fake, alert_id), action,
                               json.dumps({"alert": alert_id})))


def the_message(fake) -> str:
    """What the channel's one message shows, mentions as <@U…> (tests/slack_display.py)."""
    (message,) = fake.messages(DEFAULT)
    return readable(message)


def audit_rows(store) -> list[tuple]:
    return [tuple(row) for row in store.audit.connection().execute(
        "SELECT user_id, channel_id, action, allowed, outcome FROM audit ORDER BY id")]


def acknowledged(store) -> list[int]:
    return [row[0] for row in store.connection().execute(
        "SELECT id FROM alerts WHERE acked_by IS NOT NULL")]


def test_acknowledged_reads_who_and_when_in_utc(store, fake_slack):
    alert_id, _ = posted(store, fake_slack, "app_login/unauthorized_ip")
    assert press(make_buttons(store, fake_slack), fake_slack, ACK_ACTION, alert_id) is None
    text = the_message(fake_slack)
    assert f"Acknowledged by <@{ANALYST}> at 14:02 UTC on 2026-11-24" in text
    (message,) = fake_slack.messages(DEFAULT)
    actions = [e["action_id"] for b in blocks_of(message) if b["type"] == "actions"
               for e in b["elements"]]
    assert actions == ["voiso_reopen", "voiso_profile"]


def test_a_refused_update_is_left_to_the_delivery_job(store, fake_slack):
    alert_id, delivery = posted(store, fake_slack, "app_login/unauthorized_ip")
    fake_slack.fail("chat.update", "rate_limited")
    press(make_buttons(store, fake_slack), fake_slack, ACK_ACTION, alert_id)
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
    slack_sender = delivery.output(DEFAULT).sender
    real_update = slack_sender.update

    def update_then_click(channel, ts, message):
        result = real_update(channel, ts, message)
        press(buttons, fake_slack, ACK_ACTION, alert_id)  # its update lands first in Slack
        return result
    slack_sender.update = update_then_click
    delivery.next_post_at.clear()
    delivery.run()
    slack_sender.update = real_update
    delivery.next_post_at.clear()
    delivery.run()
    assert f"Acknowledged by <@{ANALYST}>" in the_message(fake_slack)
    assert "2 events" in the_message(fake_slack)


def test_reopen_of_an_open_alert_says_so_privately(store, fake_slack):
    alert_id, _ = posted(store, fake_slack, "user/user_deleted")
    note = press(make_buttons(store, fake_slack), fake_slack, REOPEN_ACTION, alert_id)
    assert "not acknowledged" in note.message["text"] and not note.public


@pytest.mark.parametrize("value", ["", "{}", '{"alert": "1"}', '{"alert": true}',
                                   '{"alert": -3}', "[1]", '{"alert": 1.5}'])
def test_a_value_that_is_not_an_alert_id_is_refused(value):
    with pytest.raises(NotOurButton):
        alert_id_of(value)


def test_a_foreign_value_is_audited_and_answered_without_detail(store, fake_slack):
    buttons = make_buttons(store, fake_slack)
    note = buttons.press(Press(ANALYST, None, MessageRef(DEFAULT, "1.5"), ACK_ACTION,
                               '{"alert": "<!channel>"}'))
    assert "went wrong" in note.message["text"]
    (row,) = store.audit.connection().execute("SELECT outcome FROM audit").fetchall()
    assert row[0].startswith("ignored: not an alert id")


def test_a_value_out_of_sqlites_range_is_refused():
    with pytest.raises(NotOurButton, match="not an alert id"):
        alert_id_of(json.dumps({"alert": 2**63}))
    assert alert_id_of(json.dumps({"alert": 2**63 - 1})) == 2**63 - 1


# --- a button acts only on its own message ---------------------------------------------------

@pytest.fixture
def three_alerts(store, fake_slack) -> dict[str, int]:
    """Alerts posted to the fake Slack: one in #security, two in #default."""
    cfg = make_config([{"event": "unauthorized_ip", "channel": SECURITY}])
    store_events(store, "app_login/unauthorized_ip", "user/user_added", "user/user_deleted")
    run_until_settled(delivery_for(store, fake_slack, cfg))
    rows = store.connection().execute("SELECT id, channel FROM alerts ORDER BY id").fetchall()
    assert [row["channel"] for row in rows] == [SECURITY, DEFAULT, DEFAULT]
    return dict(zip(("security", "default", "default2"), (row["id"] for row in rows),
                    strict=True))


# Each builds, from the alerts and the fake Slack, a press an analyst could craft: (the
# alert its value names, the channel it says, the message it names).
CRAFTED_PRESSES = {
    "another_channels_alert_from_an_own_message":
        lambda ids, fake: (ids["security"], DEFAULT, message_of(fake, ids["default"])),
    "another_message_of_the_same_channel":
        lambda ids, fake: (ids["default2"], DEFAULT, message_of(fake, ids["default"])),
    "its_own_alert_at_a_made_up_ts":
        lambda ids, fake: (ids["default"], DEFAULT, MessageRef(DEFAULT, "1.000000")),
    "no_message_at_all":
        lambda ids, fake: (ids["default"], DEFAULT, None),
    "a_message_of_another_channel_than_the_press":
        lambda ids, fake: (ids["security"], DEFAULT, message_of(fake, ids["security"], SECURITY)),
    "no_channel_and_another_channels_message":
        lambda ids, fake: (ids["security"], None, message_of(fake, ids["default"])),
}


def refused_and_nothing_changed(store, fake, note, channel, acked_before) -> None:
    assert "does not belong to the message" in note.message["text"] and not note.public
    (row,) = audit_rows(store)
    assert row[:4] == (ANALYST, channel, "button", 0) and row[4].startswith("refused: ")
    assert acknowledged(store) == acked_before
    assert fake.calls_to("chat.update") == []


@pytest.mark.parametrize("action", [ACK_ACTION, REOPEN_ACTION])
@pytest.mark.parametrize("crafted", CRAFTED_PRESSES.values(), ids=CRAFTED_PRESSES.keys())
def test_a_press_naming_an_alert_not_posted_at_its_message_is_refused_and_audited(
        store, fake_slack, three_alerts, crafted, action):
    acked = [three_alerts["security"]]  # so that Reopen has something to undo
    store.connection().execute("UPDATE alerts SET acked_by = 'UEARLIER01' WHERE id = ?", acked)
    alert_id, channel, message = crafted(three_alerts, fake_slack)
    note = make_buttons(store, fake_slack).press(Press(ANALYST, channel, message, action,
                                                       json.dumps({"alert": alert_id})))
    refused_and_nothing_changed(store, fake_slack, note, channel, acked)


def test_an_analyst_allowed_in_one_channel_cannot_acknowledge_anothers_alert(
        store, fake_slack, three_alerts):
    buttons = make_buttons(store, fake_slack, users=(), channels=(DEFAULT,))
    note = buttons.press(Press(ANALYST, DEFAULT, message_of(fake_slack, three_alerts["default"]),
                               ACK_ACTION, json.dumps({"alert": three_alerts["security"]})))
    refused_and_nothing_changed(store, fake_slack, note, DEFAULT, [])


def test_the_same_analyst_pressing_the_alerts_own_message_acknowledges_it(
        store, fake_slack, three_alerts):
    buttons = make_buttons(store, fake_slack, users=(), channels=(DEFAULT,))
    alert_id = three_alerts["default2"]
    note = buttons.press(Press(ANALYST, DEFAULT, message_of(fake_slack, alert_id), ACK_ACTION,
                               json.dumps({"alert": alert_id})))
    assert note is None and acknowledged(store) == [alert_id]
    (update,) = fake_slack.calls_to("chat.update")
    assert update.payload["ts"] == message_of(fake_slack, alert_id).ts


# --- every press is audited --------------------------------------------------------------------

ABSURD_VALUES = {
    "2**70": json.dumps({"alert": 2**70}),
    "2**63": json.dumps({"alert": 2**63}),
    "minus_one": '{"alert": -1}',
    "zero": '{"alert": 0}',
    "a_float": '{"alert": 1.5}',
    "a_string": '{"alert": "1"}',
    "true": '{"alert": true}',
    "null": '{"alert": null}',
    "a_list": '{"alert": []}',
    "an_object": '{"alert": {}}',
    "a_10_kb_string": json.dumps({"alert": "9" * 10_000}),
    "10_kb_of_text": "x" * 10_000,
    "a_5000_digit_number": '{"alert": ' + "9" * 5000 + "}",
    "invalid_json": '{"alert": ',
    "nested_100000_deep": "[" * 100_000,
    "missing_key": '{"alarm": 1}',
    "a_list_at_the_top": "[1]",
    "empty": "",
}


@pytest.mark.parametrize("value", ABSURD_VALUES.values(), ids=ABSURD_VALUES.keys())
def test_a_press_with_an_absurd_value_is_audited_and_changes_nothing(store, fake_slack, value):
    alert_id, _ = posted(store, fake_slack, "app_login/unauthorized_ip")
    buttons = make_buttons(store, fake_slack)
    note = buttons.press(Press(ANALYST, DEFAULT, message_of(fake_slack, alert_id), ACK_ACTION,
                               value))
    assert "went wrong" in note.message["text"]
    (row,) = audit_rows(store)
    assert row[3] == 1 and row[4].startswith("ignored: not an alert")
    assert len(row[4]) < 200  # the audit keeps a bounded excerpt
    assert acknowledged(store) == [] and fake_slack.calls_to("chat.update") == []


def test_a_press_of_an_unknown_action_is_audited_and_changes_nothing(store, fake_slack):
    alert_id, _ = posted(store, fake_slack, "app_login/unauthorized_ip")
    note = make_buttons(store, fake_slack).press(Press(
        ANALYST, DEFAULT, message_of(fake_slack, alert_id), "voiso_delete",
        json.dumps({"alert": alert_id})))
    assert "went wrong" in note.message["text"]
    (row,) = audit_rows(store)
    assert row[4] == "ignored: unknown action 'voiso_delete'" and acknowledged(store) == []


def test_an_unexpected_error_is_audited_as_failed_and_logged(store, fake_slack, caplog):
    alert_id, _ = posted(store, fake_slack, "app_login/unauthorized_ip")
    where = message_of(fake_slack, alert_id)
    store.connection().execute("ALTER TABLE alerts RENAME TO alerts_gone")  # a broken store
    note = make_buttons(store, fake_slack).press(Press(
        ANALYST, DEFAULT, where, ACK_ACTION, json.dumps({"alert": alert_id})))
    assert "went wrong" in note.message["text"]
    assert audit_rows(store) == [(ANALYST, DEFAULT, "button", 1, "failed (see the log)")]
    (record,) = [r for r in caplog.records if r.name == "voisobot.slack.buttons"]
    assert record.exc_info and "no such table: alerts" in str(record.exc_info[1])


def test_an_error_after_the_press_is_audited_adds_no_second_row(store, fake_slack):
    alert_id, _ = posted(store, fake_slack, "app_login/unauthorized_ip")
    buttons = make_buttons(store, fake_slack)

    def broken_update(channel, ts, message):
        raise RuntimeError("the sender broke")
    buttons.sender.update = broken_update
    note = press(buttons, fake_slack, ACK_ACTION, alert_id)
    assert "went wrong" in note.message["text"]
    assert audit_rows(store) == [(ANALYST, DEFAULT, "button", 1,
                                  f"acknowledged (by {ANALYST})")]


def button_values():
    """Any text, and JSON objects whose "alert" is any JSON value."""
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner,
                                                                     max_size=3),
        max_leaves=8)
    return st.text() | json_values.map(lambda v: json.dumps({"alert": v}))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=button_values(), action=st.sampled_from([ACK_ACTION, REOPEN_ACTION]) | st.text(),
       on_its_message=st.booleans())
def test_every_press_leaves_exactly_one_audit_row_and_never_raises(
        store, fake_slack, value, action, on_its_message):
    if not store.connection().execute("SELECT 1 FROM alerts").fetchone():
        posted(store, fake_slack, "app_login/unauthorized_ip")
    (alert_id,) = store.connection().execute("SELECT id FROM alerts").fetchone()
    message = message_of(fake_slack, alert_id) if on_its_message else None
    before = len(audit_rows(store))
    buttons = make_buttons(store, fake_slack)
    buttons.press(Press(ANALYST, DEFAULT, message, action, value))
    assert len(audit_rows(store)) == before + 1
