"""The Slack sender against a fake Slack Web API over real HTTP."""

import socket

import pytest
import slack_sdk

from tests.fakes.slack_api import FakeSlack
from voisobot import slack

TOKEN = "xoxb-test"
MESSAGE = {"text": "<!channel> login from 198.51.100.23",
           "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "&lt;!channel&gt;"}}]}


@pytest.fixture
def fake_slack():
    fake = FakeSlack(token=TOKEN).start()
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


def assert_no_token(result: slack.SlackResult, token: str = TOKEN) -> None:
    assert token not in repr(result)


# --- sending ---------------------------------------------------------------------------------

def test_post_returns_done_with_channel_and_ts(fake_slack, client):
    result = slack.post_message(client, "C_ALERTS", MESSAGE)

    assert result == slack.SlackResult("done", "C_ALERTS", "1700000000.000100")
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


def test_update_returns_done_with_the_same_ts(fake_slack, client):
    posted = slack.post_message(client, "C_ALERTS", MESSAGE)
    updated = slack.update_message(client, "C_ALERTS", posted.ts, {"text": "resolved",
                                                                    "blocks": []})

    assert updated == slack.SlackResult("done", "C_ALERTS", posted.ts)
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
    assert result.retry_after == slack.DEFAULT_RETRY_AFTER_SECONDS


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


# --- auth.test -------------------------------------------------------------------------------

def test_auth_test_with_the_right_token_is_done(client):
    assert slack.auth_test(client) == slack.SlackResult("done")


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


def test_fake_records_form_encoded_calls(fake_slack, client):
    client.api_call("chat.postMessage", params={"channel": "C_ALERTS", "text": "form"})

    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.payload == {"channel": "C_ALERTS", "text": "form"}
