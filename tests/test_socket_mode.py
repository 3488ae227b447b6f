"""The bot in Socket Mode (the default): the real Bolt app and slack_sdk's Socket Mode
client, connected through apps.connections.open on the fake Slack Web API to a local
WebSocket server that hands it envelopes as Slack does."""

import json
import logging
import time

import pytest

from tests.fakes.slack_api import RESPONSE_URL, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.slack_display import readable
from tests.test_slack_app import (
    ALERTS,
    ALLOWED,
    CHANNEL,
    block_actions,
    posted_alert,
    send_event,
    started_bot,
    wait_for,
)
from voisobot.slack import serve

APP_TOKEN = "xapp-test"


@pytest.fixture
def socket_server():
    server = FakeSocketMode().start()
    yield server
    server.stop()


@pytest.fixture
def make_bot(tmp_path, moto_server, queue_url):
    """Start the bot in Socket Mode against a fake Slack; stopped after the test."""
    started, fakes = [], []

    def make(socket_url: str | None, app_token: str = APP_TOKEN):
        fake = FakeSlack(channels={CHANNEL, ALERTS}, app_token=APP_TOKEN,
                         socket_url=socket_url).start()
        fakes.append(fake)
        runtime = started_bot(tmp_path, queue_url, moto_server["url"], fake,
                              {"SLACK_APP_TOKEN": app_token}, slack_settings={},
                              access={"users": [ALLOWED]})
        started.append(runtime)
        return runtime, fake

    yield make
    for runtime in started:
        runtime.stop()
    for fake in fakes:
        fake.stop()


def slash_command(text: str, response_url: str) -> dict:
    return {"token": "legacy", "team_id": "T1", "team_domain": "acme", "channel_id": CHANNEL,
            "channel_name": "security", "user_id": ALLOWED, "user_name": "alice",
            "command": "/voiso", "text": text, "api_app_id": "A1",
            "is_enterprise_install": "false", "response_url": response_url,
            "trigger_id": "1.2.3"}


def test_socket_mode_is_the_default_and_connects_with_the_app_token(make_bot, socket_server):
    runtime, fake = make_bot(socket_server.url)
    assert isinstance(runtime.slack_server, serve.SocketMode)
    assert socket_server.wait_connected(10)
    (opened,) = fake.calls_to("apps.connections.open")
    assert opened.headers.get("Authorization") == f"Bearer {APP_TOKEN}"


def test_a_command_over_socket_mode_is_acked_then_answered(make_bot, socket_server):
    runtime, fake = make_bot(socket_server.url)
    assert socket_server.wait_connected(10)
    ack = socket_server.send("slash_commands", slash_command("help", fake.response_url("s1")))
    assert ack is not None, "the app did not ack the envelope"
    (answer,) = wait_for(lambda: [c.payload for c in fake.calls_to(RESPONSE_URL)])
    assert "/voiso recent" in answer["text"] and answer["response_type"] == "ephemeral"
    rows = runtime.store.audit.connection().execute("SELECT user_id, detail FROM audit").fetchall()
    assert [tuple(row) for row in rows] == [(ALLOWED, "help")]


def test_a_button_over_socket_mode_acknowledges_the_alert(make_bot, socket_server, sqs_admin,
                                                          queue_url):
    _, fake = make_bot(socket_server.url)
    assert socket_server.wait_connected(10)
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip")
    alert_id, message = posted_alert(fake)
    press = block_actions(ALLOWED, "voiso_ack", json.dumps({"alert": alert_id}),
                          fake.response_url("b1"), message_ts=message["ts"])
    assert socket_server.send("interactive", press) is not None
    assert wait_for(lambda: fake.calls_to("chat.update"))
    (now,) = fake.messages(ALERTS)
    assert f"Acknowledged by <@{ALLOWED}>" in readable(now)


def test_an_app_token_slack_refuses_is_reported_once_and_the_intake_goes_on(
        make_bot, socket_server, caplog):
    caplog.set_level(logging.ERROR, logger="voisobot.slack.serve")
    runtime, fake = make_bot(socket_server.url, app_token="xapp-revoked")
    assert wait_for(lambda: [r for r in caplog.records if "SLACK_APP_TOKEN" in r.message])
    (record,) = [r for r in caplog.records if "SLACK_APP_TOKEN" in r.message]
    assert "invalid_auth" in record.message and "connections:write" in record.message
    assert "xapp-revoked" not in caplog.text
    time.sleep(0.5)
    assert len(fake.calls_to("apps.connections.open")) == 1  # not retried: it cannot work
    assert wait_for(lambda: [1] if runtime.intake.health.last_successful_poll else [])


def test_slack_unreachable_at_start_is_retried_in_the_background(make_bot, socket_server,
                                                                 monkeypatch):
    monkeypatch.setattr(serve, "RECONNECT_INITIAL_SECONDS", 0.05)
    runtime, fake = make_bot(None)  # apps.connections.open answers internal_error
    assert wait_for(lambda: fake.calls_to("apps.connections.open"), 2)
    fake.socket_url = socket_server.url
    assert socket_server.wait_connected(10)
    assert runtime.slack_server.connected.wait(5)


def test_without_an_app_token_alerts_still_go_out_and_the_log_says_why_commands_do_not(
        make_bot, socket_server, sqs_admin, queue_url, caplog):
    runtime, fake = make_bot(socket_server.url, app_token="")
    assert runtime.slack_server is None
    assert "SLACK_APP_TOKEN is not set" in caplog.text
    send_event(sqs_admin, queue_url, "user/user_deleted")
    assert wait_for(lambda: fake.messages(ALERTS), timeout=15)


class _CloseWaitsForTheRunner:
    """A Socket Mode handler whose close() hangs as slack_sdk's does when its session
    runner cleared the "terminated" flag after close() set it: until the flag is set again."""

    def __init__(self):
        from slack_sdk.socket_mode.builtin.connection import ConnectionState

        self.client = type("Client", (), {})()
        self.client.current_session_state = ConnectionState()
        self.closes = 0

    def close(self):
        self.closes += 1
        self.client.current_session_state.terminated = False  # the runner's late reset
        while not self.client.current_session_state.terminated:
            time.sleep(0.01)


def test_a_close_slack_sdk_leaves_hanging_does_not_hang_the_stop(monkeypatch):
    from slack_bolt import App

    monkeypatch.setattr(serve, "CLOSE_WAIT_SECONDS", 0.2)
    socket_mode = serve.SocketMode(App(token="xoxb-test", token_verification_enabled=False),
                                   "xapp-test")
    socket_mode.handler = _CloseWaitsForTheRunner()
    socket_mode.stopping.set()  # its connect loop ends at once: nothing reaches Slack
    socket_mode.start()
    socket_mode.connected.set()
    socket_mode.stop()  # returns: the flag set again ends the runner's loop
    assert socket_mode.handler.closes == 1
    assert socket_mode.handler.client.current_session_state.terminated is True
