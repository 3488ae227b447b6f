"""Reading a signed body as one of Slack's shapes: every byte string ends in a request or
a reason, what passes is read as Bolt reads it, and the audit trail's words for each."""

import json
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_bolt import BoltRequest

from voisobot.slack.requests import BadBody, SlackRequest, read

FORM, JSON_TYPE = "application/x-www-form-urlencoded", "application/json"


def form(**fields) -> bytes:
    return urlencode(fields).encode()


SLACK_TYPES = ["block_actions", "view_submission", "view_closed", "shortcut", "message_action",
               "interactive_message", "block_suggestion", "dialog_submission",
               "workflow_step_edit", "event_callback", "url_verification", "app_mention",
               "message"]
SLACK_KEYS = ["actions", "user", "team", "channel", "container", "message", "view", "state",
              "event", "enterprise", "authorizations", "callback_id", "action_id", "api_app_id",
              "is_enterprise_install", "workflow_step", "response_url", "trigger_id", "type",
              "previous_message", "channel_type", "subtype", "function_execution_id"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.sampled_from(SLACK_TYPES),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(SLACK_KEYS), inner, max_size=4), max_leaves=12)
slack_like = st.fixed_dictionaries({"type": st.sampled_from(SLACK_TYPES)}, optional={
    key: json_values for key in SLACK_KEYS if key != "type"})
ids = st.text(max_size=12)
slack_shaped = st.one_of(  # Slack's shapes with arbitrary values (no response_url: no calls out)
    st.builds(lambda text, user, extra: form(command="/voiso", text=text, user_id=user,
                                              **extra),
              st.text(), ids, st.dictionaries(st.sampled_from(["team_id", "token"]), ids)),
    st.builds(lambda action, value, user, extra: form(payload=json.dumps({
        "type": "block_actions", "user": {"id": user},
        "actions": [{"action_id": action, "value": value}], **extra})),
        st.sampled_from(["voiso_ack", "voiso_reopen", "voiso_more"]) | ids, st.text(), ids,
        st.dictionaries(st.sampled_from(SLACK_KEYS), json_values, max_size=3)),
    st.builds(lambda kind, user, extra: json.dumps({
        "type": "event_callback", "event": {"type": kind, "user": user, **extra}}).encode(),
        ids, ids, st.dictionaries(st.sampled_from(SLACK_KEYS), json_values, max_size=3)))
signed_bodies = st.one_of(
    slack_shaped.map(lambda body: (body, JSON_TYPE if body.startswith(b"{") else FORM)),
    st.tuples(st.binary(max_size=300),
              st.sampled_from([FORM, JSON_TYPE, "multipart/form-data", "text/plain"])),
    st.tuples(slack_like.map(lambda v: form(payload=json.dumps(v))), st.just(FORM)),
    st.tuples(slack_like.map(lambda v: json.dumps(v).encode()), st.just(JSON_TYPE)),
    st.tuples(st.dictionaries(st.sampled_from(["command", "payload", "text", "ssl_check",
                                               "user_id", "channel_id", *SLACK_KEYS]),
                              st.text(max_size=20)).map(lambda v: form(**v)), st.just(FORM)))


@settings(max_examples=200)
@given(case=signed_bodies)
def test_every_body_is_a_request_or_a_reason(case):
    body, content_type = case
    try:
        request = read(body, content_type)
    except BadBody as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 100
    else:
        assert isinstance(request, SlackRequest)


@settings(max_examples=200)
@given(case=signed_bodies)
def test_what_passes_is_read_as_bolt_reads_it(case):
    body, content_type = case
    try:
        request = read(body, content_type)
    except BadBody:
        return
    try:
        bolt = BoltRequest(body=body.decode(), headers={"content-type": content_type})
    except Exception:  # Bolt's context builder on odd fields: the front door's 400
        return
    assert bolt.body == request.fields


def click(**action) -> bytes:
    return form(payload=json.dumps({
        "type": "block_actions", "user": {"id": "U0ALICE01"}, "channel": {"id": "C0ALERTS1"},
        "actions": [{"action_id": "voiso_ack", "value": '{"alert": 7}', **action}]}))


ACCEPTED = [
    ("command", form(command="/voiso", text="recent 5", user_id="U0ALICE01",
                     channel_id="C0SECURITY"), FORM,
     ("command", "U0ALICE01", "C0SECURITY", "/voiso recent 5")),
    ("command_content_type_with_charset", form(command="/voiso", user_id="U1"),
     FORM + "; charset=utf-8", ("command", "U1", None, "/voiso")),
    ("ssl_check", form(ssl_check="1", token="x"), FORM, ("ssl_check", None, None, "")),
    ("button", click(), FORM,
     ("interaction", "U0ALICE01", "C0ALERTS1", 'voiso_ack {"alert": 7}')),
    ("button_long_value", click(value="v" * 500), FORM,
     ("interaction", "U0ALICE01", "C0ALERTS1", "voiso_ack " + "v" * 200)),
    ("view_submission", form(payload='{"type": "view_submission", "view": {"callback_id": '
                                     '"c"}, "user": {"id": "U1"}}'), FORM,
     ("interaction", "U1", None, "view_submission")),
    ("shortcut", form(payload='{"type": "shortcut", "callback_id": "c"}'), FORM,
     ("interaction", None, None, "shortcut")),
    ("url_verification", b'{"type": "url_verification", "challenge": "x"}', JSON_TYPE,
     ("event", None, None, "url_verification")),
    ("event_callback", b'{"type": "event_callback", "event": {"type": "app_mention", '
                       b'"user": "U1", "channel": "C1"}}', JSON_TYPE,
     ("event", "U1", "C1", "event_callback app_mention")),
]


@pytest.mark.parametrize("body, content_type, expected", [case[1:] for case in ACCEPTED],
                         ids=[case[0] for case in ACCEPTED])
def test_slacks_shapes_pass_with_who_and_what_for_the_audit(body, content_type, expected):
    request = read(body, content_type)
    assert (request.kind, request.user_id(), request.channel_id(), request.detail()) == expected
