"""Reading a button press out of Slack's block_actions payload: the message pressed, from
``container`` or from ``channel`` and ``message``; and never an exception, whatever the
payload holds, so that every press reaches the core and its audit."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voisobot.acks import MessageRef
from voisobot.handlers.slack.actions import press_of
from voisobot.slack.buttons import Press

ACTION = {"action_id": "voiso_ack", "value": '{"alert": 7}'}
USER = {"id": "UALICE0001"}


@pytest.mark.parametrize("body, message", [
    ({"channel": {"id": "C1"}, "container": {"channel_id": "C1", "message_ts": "1.5"}},
     MessageRef("C1", "1.5")),
    ({"channel": {"id": "C1"}, "message": {"ts": "1.5"}}, MessageRef("C1", "1.5")),
    ({"container": {"channel_id": "C2", "message_ts": "1.5"}}, MessageRef("C2", "1.5")),
    ({"channel": {"id": "C1"}}, None),
    ({"channel": {"id": "C1"}, "container": {"type": "view", "view_id": "V1"}}, None),
    ({"channel": {"id": "C1"}, "container": {"channel_id": "C1", "message_ts": 1.5}}, None),
    ({"channel": "C1", "message": ["1.5"]}, None),
    ({}, None),
], ids=["container", "channel_and_message", "container_only", "no_message", "a_view",
        "a_number_ts", "wrong_shapes", "empty"])
def test_the_message_pressed_is_read_from_the_payload(body, message):
    assert press_of({"user": USER, **body}, ACTION).message == message


def test_the_channel_of_the_press_and_of_the_container_are_both_kept_for_the_core():
    press = press_of({"user": USER, "channel": {"id": "C1"},
                      "container": {"channel_id": "C2", "message_ts": "1.5"}}, ACTION)
    assert (press.channel_id, press.message) == ("C1", MessageRef("C2", "1.5"))


def test_a_value_that_is_not_text_is_passed_on_as_json_text():
    press = press_of({"user": USER}, {"action_id": "voiso_ack", "value": {"alert": 7}})
    assert press.value == '{"alert": 7}'


# Payloads of any shape, their keys mostly those the handler reads, so that the values
# under them vary: text, numbers, lists, objects.
payload_keys = st.sampled_from(["user", "channel", "container", "message", "id", "ts",
                                "channel_id", "message_ts", "value", "action_id"]) \
    | st.text(max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(payload_keys, inner,
                                                                 max_size=3),
    max_leaves=6)
payloads = st.dictionaries(payload_keys, json_values, max_size=6)


@settings(max_examples=200)
@given(body=payloads, action=payloads)
def test_any_payload_gives_a_press_to_audit(body, action):
    press = press_of(body, action)
    assert isinstance(press, Press)
    assert all(isinstance(text, str) for text in (press.user_id, press.action, press.value))
    assert press.message is None or all(isinstance(part, str) and part
                                        for part in (press.message.channel, press.message.ts))
