"""The Slack sender against a fake Slack Web API over real HTTP."""

import socket
import time

import pytest
import slack_sdk
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.slack_api import FakeSlack
from voisobot.sending import DEFAULT_RETRY_AFTER_SECONDS, SendResult
from voisobot.slack import sender as slack

TOKEN = "xoxb-test"
MESSAGE = {"text": "<!channel> login from 198.51.100.23",
           "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "&lt;!channel&gt;"}}]}
FIRST_TS = 1_700_000_000.0001  # the fake's first ts, so tests can name exact ones
ALERT_ID = 42
STORE_ID, EVENT = "5d41402abc4b2a76b9719d911017c592", "00112233aabbccdd"


def key(alert_id: int, store_id: str = STORE_ID, event: str = EVENT) -> slack.AlertKey:
    return slack.AlertKey(store_id, alert_id, event)


ALERT = key(ALERT_ID)
SINCE = FIRST_TS - 0.5


@pytest.fixture
def fake_slack():
    fake = FakeSlack(token=TOKEN, first_ts=FIRST_TS).start()
    yield fake
    fake.stop()


@pytest.fixture
def make_client(fake_slack):
    def make(token: str = TOKEN, timeout: float = 2.0) -> slack_sdk.WebClient:
        return slack.make_client(token, fake_slack.base_url, timeout)
    return make


@pytest.fixture
def client(make_client):
    return make_client()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def full_port():
    """A port whose accept queue is full: the kernel drops further SYNs, so a connect
    there times out (a URLError wrapping a timeout)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        waiting = [socket.socket() for _ in range(3)]
        for sock in waiting:
            sock.setblocking(False)
            sock.connect_ex(server.getsockname())
        yield server.getsockname()[1]
        for sock in waiting:
            sock.close()


def assert_no_token(result: SendResult, token: str = TOKEN) -> None:
    assert token not in repr(result)


def post_alerts(client, alert_ids, channel: str = "C_ALERTS") -> list[str]:
    results = [slack.post_message(client, channel, MESSAGE, alert=key(i)) for i in alert_ids]
    assert {r.status for r in results} == {"done"}
    return [r.ts for r in results]


# --- sending ---------------------------------------------------------------------------------

def test_post_returns_done_with_channel_and_ts(fake_slack, client):
    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert result == SendResult("done", "C_ALERTS", "1700000000.000100")
    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.payload["text"] == MESSAGE["text"]
    assert call.payload["blocks"] == MESSAGE["blocks"]
    assert call.payload["unfurl_links"] is False and call.payload["unfurl_media"] is False


def test_post_never_asks_slack_to_turn_text_into_mentions(fake_slack, client):
    slack.post_message(client, "C_ALERTS", MESSAGE)

    [call] = fake_slack.calls_to("chat.postMessage")
    assert "link_names" not in call.payload
    assert "parse" not in call.payload


def test_post_sends_the_token_only_in_the_authorization_header(fake_slack, client):
    slack.post_message(client, "C_ALERTS", MESSAGE)

    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(call.payload)


COLOURED = {"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text",
                                                                 "text": "h"}}],
            "attachments": [{"color": "#f57c00", "blocks": [
                {"type": "divider"}, {"type": "actions", "elements": [
                    {"type": "button", "action_id": "voiso_ack", "value": "{}",
                     "text": {"type": "plain_text", "text": "Acknowledge"}}]}]}]}


def test_an_alerts_attachment_is_posted_and_replaced_by_an_update(fake_slack, client):
    posted = slack.post_message(client, "C_ALERTS", COLOURED)
    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.payload["attachments"] == COLOURED["attachments"]
    reopened = {**COLOURED, "attachments": [{"color": "#d93025", "blocks": [{"type": "divider"}]}]}
    assert slack.update_message(client, "C_ALERTS", posted.ts, reopened).status == "done"
    (message,) = fake_slack.messages("C_ALERTS")
    assert message["attachments"] == reopened["attachments"]


def test_an_update_without_attachments_clears_the_old_ones(fake_slack, client):
    """chat.update keeps a message's attachments unless told: the bot always tells it."""
    posted = slack.post_message(client, "C_ALERTS", COLOURED)
    slack.update_message(client, "C_ALERTS", posted.ts, {"text": "resolved", "blocks": []})
    [call] = fake_slack.calls_to("chat.update")
    assert call.payload["attachments"] == []
    (message,) = fake_slack.messages("C_ALERTS")
    assert message["attachments"] == []


def test_update_returns_done_with_the_same_ts(fake_slack, client):
    posted = slack.post_message(client, "C_ALERTS", MESSAGE)
    updated = slack.update_message(client, "C_ALERTS", posted.ts, {"text": "resolved",
                                                                    "blocks": []})

    assert updated == SendResult("done", "C_ALERTS", posted.ts)
    [call] = fake_slack.calls_to("chat.update")
    assert call.payload["ts"] == posted.ts
    assert call.payload["text"] == "resolved"


# --- transient failures: retry ---------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [(7, 7.0), (0.5, 0.5)])
def test_rate_limited_is_retried_after_the_header_value(fake_slack, client, header, expected):
    fake_slack.retry_after = header
    fake_slack.fail("chat.postMessage", "rate_limited")

    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert result.status == "retry"
    assert result.retry_after == expected
    assert result.error == "ratelimited"
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # the client itself did not wait


@pytest.mark.parametrize("header", ["", "soon", "-3", "nan", "inf"])
def test_rate_limited_with_a_garbled_header_waits_the_default(fake_slack, client, header):
    fake_slack.retry_after = header
    fake_slack.fail("chat.postMessage", "rate_limited")

    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert result.status == "retry"
    assert result.retry_after == DEFAULT_RETRY_AFTER_SECONDS


def test_server_error_is_retried_by_the_outbox_not_the_client(fake_slack, client):
    fake_slack.fail("chat.postMessage", "server_error")

    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert result.status == "retry"
    assert "500" in result.error
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_outage_is_retried(fake_slack, client):
    fake_slack.set_down(True)

    assert slack.post_message(client, "C_ALERTS", MESSAGE).status == "retry"
    assert slack.update_message(client, "C_ALERTS", "1.2", MESSAGE).status == "retry"


def test_hang_is_retried_after_the_client_timeout(fake_slack, make_client):
    fake_slack.hang_seconds = 3
    fake_slack.fail("chat.postMessage", "hang")

    result = slack.post_message(make_client(timeout=1), "C_ALERTS", MESSAGE)

    assert result.status == "retry"
    assert result.error.startswith("TimeoutError")
    assert result.maybe_posted  # the request went out: Slack may have posted it


def test_dropped_connection_is_not_resent_by_the_client(fake_slack, make_client):
    fake_slack.hang_seconds = 0.1  # Slack got the request, then the connection dropped
    fake_slack.fail("chat.postMessage", "hang")

    result = slack.post_message(make_client(timeout=2), "C_ALERTS", MESSAGE)

    assert result.status == "retry"
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # it may have been posted


@pytest.mark.parametrize("code", sorted(slack.RETRYABLE_CODES))
def test_transient_slack_error_codes_are_retried(fake_slack, client, code):
    fake_slack.fail("chat.postMessage", code)

    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert (result.status, result.error) == ("retry", code)


def test_connection_refused_is_retried():
    client = slack.make_client(TOKEN, f"http://127.0.0.1:{closed_port()}/api/", timeout=1)

    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert result.status == "retry"
    assert "URLError" in result.error
    assert result.maybe_posted is False  # no connection, so no post
    assert_no_token(result)


# --- permanent failures: give up, saying what to do ------------------------------------------

def test_unknown_channel_gives_up_naming_the_routes(client):
    result = slack.post_message(client, "C_NOWHERE", MESSAGE)

    assert (result.status, result.error, result.channel) == ("give_up", "channel_not_found",
                                                              "C_NOWHERE")
    assert "C_NOWHERE" in result.advice and "config.toml routes" in result.advice
    assert_no_token(result)


def test_bot_not_in_channel_gives_up_saying_invite_it(fake_slack, client):
    fake_slack.set_not_in_channel("C_SECURITY")

    result = slack.post_message(client, "C_SECURITY", MESSAGE)

    assert (result.status, result.error) == ("give_up", "not_in_channel")
    assert "/invite" in result.advice and "C_SECURITY" in result.advice


@pytest.mark.parametrize("code", ["invalid_auth", "not_authed", "account_inactive",
                                  "token_revoked"])
def test_bad_token_gives_up_saying_reinstall(fake_slack, client, code):
    fake_slack.fail("chat.postMessage", code)

    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert (result.status, result.error) == ("give_up", code)
    assert "SLACK_BOT_TOKEN" in result.advice and "reinstall" in result.advice
    assert_no_token(result)


def test_wrong_token_gives_up_without_repeating_it(make_client):
    wrong = "xoxb-wrong-secret-123"

    result = slack.post_message(make_client(token=wrong), "C_ALERTS", MESSAGE)

    assert (result.status, result.error) == ("give_up", "invalid_auth")
    assert_no_token(result, wrong)


def test_missing_scope_names_the_scope(fake_slack, client):
    fake_slack.fail("chat.postMessage", "missing_scope")

    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert (result.status, result.error) == ("give_up", "missing_scope")
    assert "chat:write" in result.advice


@pytest.mark.parametrize("code", ["msg_too_long", "invalid_blocks"])
def test_refused_message_is_reported_as_a_rendering_bug(fake_slack, client, code):
    fake_slack.fail("chat.postMessage", code)

    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert (result.status, result.error) == ("give_up", code)
    assert "rendering bug" in result.advice


@pytest.mark.parametrize("code", ["is_archived", "some_future_error"])
def test_other_slack_errors_give_up_instead_of_looping(fake_slack, client, code):
    fake_slack.fail("chat.update", code)

    result = slack.update_message(client, "C_ALERTS", "1700000000.000100", MESSAGE)

    assert (result.status, result.error) == ("give_up", code)
    assert result.advice


# --- was it posted? metadata, ambiguity, history -------------------------------------------

def test_post_of_an_alert_carries_its_store_alert_and_event_as_metadata(fake_slack, client):
    slack.post_message(client, "C_ALERTS", MESSAGE, alert=ALERT)

    [call] = fake_slack.calls_to("chat.postMessage")
    expected = {"event_type": "voiso_alert", "event_payload": {
        "alert_id": ALERT_ID, "store_id": STORE_ID, "event": EVENT}}
    assert call.payload["metadata"] == expected
    [posted] = fake_slack.messages("C_ALERTS")
    assert posted["metadata"] == expected


def test_post_without_an_alert_id_sends_no_metadata(fake_slack, client):
    slack.post_message(client, "C_ALERTS", MESSAGE)

    [call] = fake_slack.calls_to("chat.postMessage")
    assert "metadata" not in call.payload


@pytest.mark.parametrize("hang_seconds, timeout, error", [
    (3, 1, "TimeoutError"),         # Slack posted it, the answer is late
    (0.1, 2, "RemoteDisconnected"),  # Slack posted it, then the connection dropped
])
def test_post_slack_made_without_answering_is_maybe_posted_and_then_found(
        fake_slack, make_client, hang_seconds, timeout, error):
    fake_slack.hang_seconds = hang_seconds
    fake_slack.fail("chat.postMessage", "post_then_hang")
    client = make_client(timeout=timeout)

    result = slack.post_message(client, "C_ALERTS", MESSAGE, alert=ALERT)
    found = slack.find_alert_post(client, "C_ALERTS", ALERT, SINCE)

    assert (result.status, result.maybe_posted) == ("retry", True)
    assert result.error.startswith(error)
    [posted] = fake_slack.messages("C_ALERTS")
    assert found == SendResult("done", "C_ALERTS", posted["ts"])  # not posted twice
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_post_lost_before_slack_made_it_is_maybe_posted_and_not_found(fake_slack, make_client):
    fake_slack.hang_seconds = 3
    fake_slack.fail("chat.postMessage", "hang")
    client = make_client(timeout=1)

    result = slack.post_message(client, "C_ALERTS", MESSAGE, alert=ALERT)

    assert (result.status, result.maybe_posted) == ("retry", True)
    assert slack.find_alert_post(client, "C_ALERTS", ALERT, SINCE) == \
        SendResult("done", "C_ALERTS")  # safe to post


def test_post_timing_out_inside_urlopen_is_maybe_posted(full_port):
    # urllib wraps a timeout while connecting or sending in URLError; from the outside it
    # cannot be told apart from one after the request went out, so the outbox checks.
    client = slack.make_client(TOKEN, f"http://127.0.0.1:{full_port}/api/", timeout=0.3)

    result = slack.post_message(client, "C_ALERTS", MESSAGE, alert=ALERT)

    assert (result.status, result.maybe_posted) == ("retry", True)
    assert result.error.startswith("URLError")


@pytest.mark.parametrize("fault", ["rate_limited", "service_unavailable", "request_timeout"])
def test_post_slack_refused_is_not_maybe_posted(fake_slack, client, fault):
    fake_slack.fail("chat.postMessage", fault)

    result = slack.post_message(client, "C_ALERTS", MESSAGE, alert=ALERT)

    assert (result.status, result.maybe_posted) == ("retry", False)


def test_post_during_an_outage_is_not_maybe_posted(fake_slack, client):
    fake_slack.set_down(True)  # 503

    result = slack.post_message(client, "C_ALERTS", MESSAGE, alert=ALERT)

    assert (result.status, result.maybe_posted) == ("retry", False)


@pytest.mark.parametrize("fault", ["server_error", "internal_error", "fatal_error"])
def test_post_slack_says_may_have_partly_succeeded_is_maybe_posted(fake_slack, client, fault):
    # Slack documents internal_error and fatal_error with "it's possible some aspect of
    # the operation succeeded before the error was raised".
    fake_slack.fail("chat.postMessage", fault)

    result = slack.post_message(client, "C_ALERTS", MESSAGE, alert=ALERT)

    assert (result.status, result.maybe_posted) == ("retry", True)


def test_find_alert_post_returns_the_alerts_ts(fake_slack, client):
    _, ts, _ = post_alerts(client, [7, ALERT_ID, 9])

    result = slack.find_alert_post(client, "C_ALERTS", ALERT, SINCE)

    assert result == SendResult("done", "C_ALERTS", ts)
    [call] = fake_slack.calls_to("conversations.history")
    assert call.payload == {"channel": "C_ALERTS", "oldest": str(SINCE),
                            "include_all_metadata": "1", "limit": "200"}
    assert TOKEN not in str(call.payload)


def test_find_alert_post_follows_the_cursor_to_a_later_page(fake_slack, client):
    fake_slack.history_max_limit = 2
    [ts, *_] = post_alerts(client, [ALERT_ID, 1, 2, 3, 4, 5])  # newest first: 3rd page

    result = slack.find_alert_post(client, "C_ALERTS", ALERT, SINCE)

    assert result == SendResult("done", "C_ALERTS", ts)
    pages = fake_slack.calls_to("conversations.history")
    assert len(pages) == 3
    assert "cursor" not in pages[0].payload
    assert pages[1].payload["cursor"] != pages[2].payload["cursor"]


def test_find_alert_post_reads_all_pages_before_saying_absent(fake_slack, client):
    fake_slack.history_max_limit = 2
    [older] = post_alerts(client, [ALERT_ID])           # before oldest_ts: does not count
    post_alerts(client, [ALERT_ID], channel="C_SECURITY")  # another channel: does not count
    post_alerts(client, [1, 2, 3])
    slack.post_message(client, "C_ALERTS", MESSAGE)      # no metadata at all

    result = slack.find_alert_post(client, "C_ALERTS", ALERT, float(older))

    assert result == SendResult("done", "C_ALERTS")
    assert len(fake_slack.calls_to("conversations.history")) == 2


@pytest.mark.parametrize("other", [key(ALERT_ID, store_id="0" * 32),   # another bot's store
                                   key(ALERT_ID, event="ffffffffffffffff"),  # restored store
                                   key(ALERT_ID + 1)])
def test_find_alert_post_takes_only_a_post_naming_this_store_alert_and_event(
        fake_slack, client, other):
    slack.post_message(client, "C_ALERTS", MESSAGE, alert=other)

    assert slack.find_alert_post(client, "C_ALERTS", ALERT, SINCE) == \
        SendResult("done", "C_ALERTS")  # absent: safe to post


def test_find_alert_post_in_a_quiet_channel_says_absent(client):
    assert slack.find_alert_post(client, "C_DEFAULT", ALERT, SINCE) == \
        SendResult("done", "C_DEFAULT")


def test_find_alert_post_never_says_absent_about_history_it_did_not_read(fake_slack, client):
    fake_slack.history_max_limit = 1
    post_alerts(client, [ALERT_ID, *range(slack.HISTORY_MAX_PAGES)])  # the alert is beyond

    result = slack.find_alert_post(client, "C_ALERTS", ALERT, SINCE)

    assert (result.status, result.error, result.ts) == ("give_up", "history_too_long", None)
    assert "by hand" in result.advice and str(ALERT_ID) in result.advice
    assert len(fake_slack.calls_to("conversations.history")) == slack.HISTORY_MAX_PAGES


def test_find_alert_post_without_the_history_scope_gives_up_naming_it(fake_slack, client):
    fake_slack.fail("conversations.history", "missing_scope")

    result = slack.find_alert_post(client, "C_ALERTS", ALERT, SINCE)

    assert (result.status, result.error) == ("give_up", "missing_scope")
    assert "channels:history" in result.advice and "groups:history" in result.advice
    assert_no_token(result)


@pytest.mark.parametrize("fault, error", [("rate_limited", "ratelimited"),
                                          ("server_error", "HTTP 500 from Slack"),
                                          ("hang", "TimeoutError")])
def test_find_alert_post_retries_when_history_cannot_be_read_now(fake_slack, make_client,
                                                                fault, error):
    fake_slack.hang_seconds = 3
    post_alerts(make_client(), [ALERT_ID])
    fake_slack.fail("conversations.history", fault)

    result = slack.find_alert_post(make_client(timeout=1), "C_ALERTS", ALERT_ID, SINCE)

    assert (result.status, result.ts) == ("retry", None)
    assert result.error.startswith(error)


def test_find_alert_post_in_an_unknown_channel_gives_up(client):
    result = slack.find_alert_post(client, "C_NOWHERE", ALERT, SINCE)

    assert (result.status, result.error) == ("give_up", "channel_not_found")


# --- auth.test -------------------------------------------------------------------------------

def test_auth_test_with_the_right_token_is_done(client):
    assert slack.auth_test(client) == SendResult("done")


def test_auth_test_with_a_bad_token_gives_up_with_advice(make_client):
    wrong = "xoxb-revoked-456"

    result = slack.auth_test(make_client(token=wrong))

    assert (result.status, result.error) == ("give_up", "invalid_auth")
    assert "SLACK_BOT_TOKEN" in result.advice
    assert_no_token(result, wrong)


def test_auth_test_when_slack_is_unreachable_is_retry():
    client = slack.make_client(TOKEN, f"http://127.0.0.1:{closed_port()}/api/", timeout=1)

    assert slack.auth_test(client).status == "retry"


# --- the fake itself -------------------------------------------------------------------------

def test_fake_consumes_faults_in_order_per_method(fake_slack, client):
    fake_slack.fail("chat.postMessage", "server_error")
    fake_slack.fail("chat.postMessage", "rate_limited", times=2)
    fake_slack.fail("chat.update", "invalid_auth")

    outcomes = [slack.post_message(client, "C_ALERTS", MESSAGE) for _ in range(4)]

    assert [r.error for r in outcomes] == ["HTTP 500 from Slack", "ratelimited",
                                           "ratelimited", None]
    assert [r.status for r in outcomes] == ["retry", "retry", "retry", "done"]
    assert slack.update_message(client, "C_ALERTS", outcomes[3].ts, MESSAGE).error == \
        "invalid_auth"


def test_fake_gives_each_post_a_new_increasing_ts(client):
    stamps = [slack.post_message(client, "C_DEFAULT", MESSAGE).ts for _ in range(3)]

    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 3


def test_fake_ts_follow_the_wall_clock_unless_told_where_to_start():
    fake = FakeSlack(token=TOKEN).start()
    try:
        client = slack.make_client(TOKEN, fake.base_url, timeout=2)
        before = time.time()
        stamps = [float(ts) for ts in post_alerts(client, [1, 2])]
        after = time.time()
    finally:
        fake.stop()

    assert before - 0.001 <= stamps[0] < stamps[1] <= after + 0.001


def test_fake_clear_drops_pending_faults(fake_slack, client):
    fake_slack.fail("chat.postMessage", "server_error", times=3)
    fake_slack.clear()

    assert slack.post_message(client, "C_ALERTS", MESSAGE).status == "done"


def test_fake_answers_a_response_url_and_records_it(fake_slack):
    webhook = slack_sdk.WebhookClient(fake_slack.response_url("abc"))

    answer = webhook.send(text="done", replace_original=True)

    assert answer.status_code == 200
    [call] = fake_slack.calls_to("response_url")
    assert call.path == "/response/abc"
    assert call.payload == {"text": "done", "replace_original": True}


def test_fake_history_is_newest_first_and_shows_metadata_only_when_asked(client):
    first, second = post_alerts(client, [1, 2])

    plain = client.conversations_history(channel="C_ALERTS")
    full = client.conversations_history(channel="C_ALERTS", include_all_metadata=True)

    assert [m["ts"] for m in plain["messages"]] == [second, first]
    assert not any("metadata" in m for m in plain["messages"])
    assert [m["metadata"]["event_payload"] for m in full["messages"]] == [
        key(2).payload(), key(1).payload()]
    assert full["has_more"] is False and full["response_metadata"]["next_cursor"] == ""


def test_fake_history_pages_do_not_shift_when_posts_arrive_between_them(fake_slack, client):
    stamps = post_alerts(client, [1, 2, 3])
    first = client.conversations_history(channel="C_ALERTS", limit=2)
    post_alerts(client, [4])
    second = client.conversations_history(channel="C_ALERTS", limit=2,
                                          cursor=first["response_metadata"]["next_cursor"])

    assert [m["ts"] for m in first["messages"]] == stamps[:0:-1]
    assert [m["ts"] for m in second["messages"]] == stamps[:1]
    assert second["has_more"] is False


def test_fake_records_form_encoded_calls(fake_slack, client):
    client.api_call("chat.postMessage", params={"channel": "C_ALERTS", "text": "form"})

    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.payload == {"channel": "C_ALERTS", "text": "form"}


# --- the type of SLACK_BOT_TOKEN, named without repeating it -----------------------------------

PREFIXES = ["xoxb-", "xapp-", "xoxp-", "xoxe.xoxb-", "xoxe.xoxp-", "xoxe-", "xoxa-", "xoxc-", ""]
SECRET = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-",
                 min_size=12, max_size=60)
AROUND = st.sampled_from([("", ""), (" ", ""), ("", "\n"), ('"', '"'), ("'", "'")])


@pytest.mark.parametrize(("token", "says"), [
    ("xoxb-1-2-abc", None),
    ("xapp-1-A1-2-abc", "is an app-level token (xapp-…), which belongs in SLACK_APP_TOKEN"),
    ("xoxp-1-2-abc", "is a user token (xoxp-…)"),
    ("xoxe.xoxb-1-abc", "is a rotating bot token (xoxe.xoxb-…)"),
    ("xoxe.xoxp-1-abc", "is a rotating user token (xoxe.xoxp-…)"),
    ("xoxe-1-abc", "is a refresh token (xoxe-…)"),
    ("xoxa-2-abc", "is not a bot token"),
    ("", "is not a bot token"),
    (" xoxb-1-2-abc", "has spaces or a line break around it"),
    ("'xoxb-1-2-abc'", "is wrapped in quotes"),
])
def test_the_token_type_is_named(token, says):
    found = slack.wrong_bot_token(token)
    assert found == says if says is None else says in found


@settings(max_examples=200)
@given(prefix=st.sampled_from(PREFIXES), secret=SECRET, around=AROUND)
def test_what_is_said_of_a_token_never_repeats_it(prefix, secret, around):
    said = slack.wrong_bot_token(around[0] + prefix + secret + around[1])
    assert said is None or secret not in said
    assert (said is None) == (prefix == "xoxb-" and around == ("", ""))
