"""The whole bot in HTTP mode, as Slack sees it: the real Bolt app behind waitress, reached
over HTTP with requests signed by the test's signing secret; SQS is moto's server, Slack's
Web API and response_url are the fake Slack server."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from tests.conftest import audit_rows
from tests.fakes.slack_api import PERMALINK_BASE, RESPONSE_URL, FakeSlack
from tests.slack_display import blocks_of, readable
from tests.slack_display import shown as display
from voisobot import config, jobs, samples
from voisobot.intake import utc_now
from voisobot.runtime import build as build_bot
from voisobot.slack import sender as slack

ROOT = Path(__file__).resolve().parents[1]
SECRET = "test-signing-secret"
ALLOWED, OTHER_ANALYST, STRANGER = "UALICE0001", "UBOB000001", "UMALLORY01"
CHANNEL, ALERTS = "CSECURITY1", "C0ALERTS01"
HOSTILE_USER = "<!channel><https://evil.example|Voiso-login>{{7*7}}@x.com"  # one word


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels={CHANNEL, ALERTS}).start()
    yield fake
    fake.stop()


@pytest.fixture
def make_bot(tmp_path, moto_server, queue_url, fake_slack):
    """Build and start the bot in HTTP mode (again after a stop: a restart)."""
    started = []

    def make(access: dict | None = None, **slack_overrides):
        runtime = started_bot(tmp_path, queue_url, moto_server["url"], fake_slack,
                              {"SLACK_SIGNING_SECRET": SECRET},
                              slack_settings={"mode": "http", **slack_overrides},
                              http={"host": "127.0.0.1", "port": 0},
                              access=access or {"users": [ALLOWED, OTHER_ANALYST]})
        started.append(runtime)
        return Bot(runtime, fake_slack)

    yield make
    for runtime in started:
        runtime.stop()


def started_bot(tmp_path, queue_url: str, sqs_url: str, fake: FakeSlack,
                secrets: dict[str, str], slack_settings: dict, **sections):
    """The whole bot, built as `bot.py run` builds it, against moto's SQS and the fake
    Slack (the caller stops it)."""
    cfg = config.from_dict({
        "sqs": {"queue_url": queue_url, "endpoint_url": sqs_url, "wait_time_seconds": 0,
                "poll_interval_seconds": 0.1, "backoff_initial_seconds": 0.05,
                "backoff_max_seconds": 0.5, "request_timeout_seconds": 2.0},
        "store": {"path": "store.sqlite3"},
        "slack": {"api_base_url": fake.base_url, "default_channel": ALERTS,
                  "timeout_seconds": 2, **slack_settings},
        **sections, "ops": {"port": 0, **sections.get("ops", {})}}, base_dir=tmp_path)
    client = slack.make_client("xoxb-test", fake.base_url, 2)
    runtime = build_bot(cfg, slack.SlackSender(client), client, secrets=secrets)
    runtime.start()
    return runtime


class Bot:
    """The running bot and what a test does to it: Slack's requests, and waiting."""

    def __init__(self, runtime, fake: FakeSlack):
        self.runtime, self.fake = runtime, fake
        self.url = f"http://127.0.0.1:{runtime.slack_server.port}"

    def post(self, body: bytes, *, timestamp: int | None = None, signature: str | None = None,
             path: str = "/slack/events",
             content_type: str = "application/x-www-form-urlencoded") -> tuple[int, float]:
        """POST as Slack does; (HTTP status, seconds until the answer)."""
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = signature or SignatureVerifier(SECRET).generate_signature(
            timestamp=stamp, body=body)
        request = urllib.request.Request(self.url + path, data=body, method="POST", headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, time.monotonic() - started
        except urllib.error.HTTPError as exc:
            return exc.code, time.monotonic() - started

    def command(self, text: str, user: str = ALLOWED, response: str = "c1", **kwargs):
        return self.post(slash_body(text, user, self.fake.response_url(response)), **kwargs)

    def click(self, action_id: str, value: str, user: str = ALLOWED, response: str = "b1",
              *, message: dict | None = None, **where):
        """Press a button on ``message`` (as the fake Slack holds it), in #alerts;
        ``where`` crafts the payload instead (see block_actions)."""
        ts = message["ts"] if message else "1.000000"  # a "more" button's private message
        payload = block_actions(user, action_id, value, self.fake.response_url(response),
                                **{"message_ts": ts, **where})
        return self.post(urlencode({"payload": json.dumps(payload)}).encode())

    def event(self, event: dict, event_id: str = "Ev1"):
        """An Events API callback, as Slack sends one (JSON, signed)."""
        body = {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                "event": event, "event_id": event_id, "event_time": int(time.time())}
        return self.post(json.dumps(body).encode(), content_type="application/json")

    def answers(self, response: str = "c1", count: int = 1, timeout: float = 30.0) -> list:
        """The payloads POSTed to one response_url, once ``count`` have come."""
        path = f"/response/{response}"
        return wait_for(lambda: [c.payload for c in self.fake.calls_to(RESPONSE_URL)
                                 if c.path == path], count, timeout)

    def audit(self) -> list[dict]:
        return audit_rows(self.runtime.store)


def wait_for(read, count: int = 1, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def block_actions(user: str, action_id: str, value: str, response_url: str, *,
                  channel: str | None = ALERTS, message_ts: str | None = None,
                  container_channel: str | None = ALERTS, container: bool = True) -> dict:
    """A button press as Slack sends it: in ``channel``, on the message at
    ``container_channel`` and ``message_ts`` (the same channel, unless crafted)."""
    payload = {"type": "block_actions", "user": {"id": user, "team_id": "T1"},
               "team": {"id": "T1"}, "api_app_id": "A1", "token": "legacy",
               "trigger_id": "1.2.3", "response_url": response_url,
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b",
                            "value": value, "action_ts": "1.5"}]}
    if channel is not None:
        payload["channel"] = {"id": channel}
    if container:
        payload["container"] = {"type": "message", "message_ts": message_ts,
                                "channel_id": container_channel}
    return payload


def slash_body(text: str, user: str, response_url: str) -> bytes:
    return urlencode({"token": "legacy", "team_id": "T1", "team_domain": "acme",
                      "channel_id": CHANNEL, "channel_name": "security", "user_id": user,
                      "user_name": "someone", "command": "/voiso", "text": text,
                      "api_app_id": "A1", "response_url": response_url,
                      "trigger_id": "1.2.3"}).encode()


def send_event(sqs_admin, queue_url: str, kind: str, **params) -> None:
    body = samples.example(kind, now=utc_now())
    body["params"].update(params)
    sqs_admin.send_message(QueueUrl=queue_url, MessageBody=samples.body_text(body))


def posted_alert(fake: FakeSlack, timeout: float = 15.0) -> tuple[int, dict]:
    """Wait for the delivery job to post an alert; (alert id, the message in Slack)."""
    (message,) = wait_for(lambda: fake.messages(ALERTS), 1, timeout)[:1]
    alert_id = message["metadata"]["event_payload"]["alert_id"]
    return alert_id, message


def alert_in_slack(fake: FakeSlack, sqs_admin, queue_url: str, kind: str
                   ) -> tuple[int, str, dict]:
    """Send an event through SQS and wait for its alert in Slack: (alert id, the value of
    its buttons, the message)."""
    send_event(sqs_admin, queue_url, kind)
    alert_id, message = posted_alert(fake)
    return alert_id, json.dumps({"alert": alert_id}), message


def buttons(message: dict) -> list[str]:
    return [element["action_id"] for block in blocks_of(message) if block["type"] == "actions"
            for element in block["elements"]]


def shown(message: dict) -> str:
    """What the reader sees, mentions as <@U…> (tests/slack_display.py)."""
    return readable(message)


# --- signatures -------------------------------------------------------------------------------

def test_a_signed_command_gets_200_within_3_seconds_then_its_answer(make_bot):
    running = make_bot()
    status, seconds = running.command("help")
    assert status == 200 and seconds < 3.0
    (answer,) = running.answers()
    assert answer["response_type"] == "ephemeral" and "/voiso recent" in answer["text"]
    assert [row["detail"] for row in running.audit()] == ["help"]


def test_a_forged_signature_gets_401_and_nothing_is_recorded(make_bot):
    running = make_bot()
    status, _ = running.command("recent", signature="v0=" + "0" * 64)
    assert status == 401
    time.sleep(0.5)  # time enough for a listener that should not run
    assert running.fake.calls_to(RESPONSE_URL) == [] and running.audit() == []


def test_a_request_signed_six_minutes_ago_gets_401_and_nothing_is_recorded(make_bot):
    running = make_bot()
    status, _ = running.command("recent", timestamp=int(time.time()) - 6 * 60)
    assert status == 401
    time.sleep(0.5)
    assert running.fake.calls_to(RESPONSE_URL) == [] and running.audit() == []


def test_a_body_changed_after_signing_gets_401(make_bot):
    running = make_bot()
    body = slash_body("help", STRANGER, running.fake.response_url("c1"))
    signature = SignatureVerifier(SECRET).generate_signature(
        timestamp=str(int(time.time())), body=body)
    status, _ = running.post(body.replace(STRANGER.encode(), ALLOWED.encode()),
                             signature=signature)
    assert status == 401 and running.audit() == []


# --- commands --------------------------------------------------------------------------------

def test_a_stranger_is_told_no_and_the_attempt_is_audited(make_bot, sqs_admin, queue_url):
    running = make_bot()
    status, _ = running.command("recent", user=STRANGER)
    assert status == 200
    (answer,) = running.answers()
    assert "not allowed" in answer["text"] and answer["response_type"] == "ephemeral"
    assert [(r["user_id"], r["allowed"], r["outcome"]) for r in running.audit()] == [
        (STRANGER, 0, "denied")]


@pytest.mark.parametrize("command", ["recent", "recent 5 unauthorized_ip",
                                     "user {user}", "ip 198.51.100.23", "unacked",
                                     "stats 24h", "stats 7d", "audit"])
def test_every_subcommand_answers_with_stored_hostile_text_escaped(make_bot, sqs_admin,
                                                                   queue_url, command):
    running = make_bot()
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip", user=HOSTILE_USER,
               ip="198.51.100.23")
    _, message = posted_alert(running.fake)
    escaped = HOSTILE_USER.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    running.command(command.format(user=escaped))
    (answer,) = running.answers()
    seen = display(answer)
    assert not seen.parsed, "nothing is left for Slack to parse as markup"
    links = [dict(live[1:])["url"] for live in seen.live if live[0] == "link"]
    # the audit's own mentions; unacked's link to the alert, the one Slack gave
    assert {live[0] for live in seen.live} - {"link"} <= {"user", "channel"}
    assert links == ([f"{PERMALINK_BASE}/{ALERTS}/p{message['ts'].replace('.', '')}"]
                     if command == "unacked" else [])
    if command != "audit":  # the others all show the stored login name, as typed
        assert any(HOSTILE_USER in text for text, _ in seen.literal)
    assert answer["response_type"] == "ephemeral"


def test_public_shows_the_answer_to_the_channel(make_bot):
    running = make_bot()
    running.command("stats public")
    (answer,) = running.answers()
    assert answer["response_type"] == "in_channel"


def test_more_over_http_gives_the_next_page(make_bot, sqs_admin, queue_url):
    running = make_bot()
    for i in range(3):
        send_event(sqs_admin, queue_url, "user/user_added", user=f"new{i}@x.com")
    wait_for(lambda: running.runtime.store.latest_events(3), 3)
    running.command("recent 2")
    (first,) = running.answers()
    (more,) = [e for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]]
    running.click("voiso_more", more["value"], response="m1")
    (second,) = running.answers("m1")
    names = [f"new{i}@x.com" for i in range(3)]
    assert sum(name in shown(first) for name in names) == 2
    assert sum(name in shown(second) for name in names) == 1


# --- the Acknowledge button --------------------------------------------------------------------

def test_acknowledge_updates_the_alert_in_place_and_swaps_the_button(make_bot, sqs_admin,
                                                                     queue_url):
    running = make_bot()
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip")
    alert_id, message = posted_alert(running.fake)
    assert buttons(message) == ["voiso_ack", "voiso_profile"]
    status, seconds = running.click("voiso_ack", json.dumps({"alert": alert_id}),
                                    message=message)
    assert status == 200 and seconds < 3.0
    (update,) = wait_for(lambda: running.fake.calls_to("chat.update"))
    assert (update.payload["channel"], update.payload["ts"]) == (ALERTS, message["ts"])
    (now,) = running.fake.messages(ALERTS)
    assert f"Acknowledged by <@{ALLOWED}> at " in shown(now) and " UTC" in shown(now)
    assert buttons(now) == ["voiso_reopen", "voiso_profile"]
    row = running.runtime.store.connection().execute(
        "SELECT acked_by, acked_at FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    assert row["acked_by"] == ALLOWED and row["acked_at"]
    assert running.audit()[-1]["outcome"] == f"acknowledged (by {ALLOWED})"


def test_reopen_brings_the_acknowledge_button_back(make_bot, sqs_admin, queue_url):
    running = make_bot()
    alert_id, value, message = alert_in_slack(running.fake, sqs_admin, queue_url,
                                               "user/user_deleted")
    running.click("voiso_ack", value, message=message)
    wait_for(lambda: running.fake.calls_to("chat.update"))
    running.click("voiso_reopen", value, user=OTHER_ANALYST, message=message)
    wait_for(lambda: running.fake.calls_to("chat.update"), 2)
    (now,) = running.fake.messages(ALERTS)
    assert buttons(now) == ["voiso_ack", "voiso_profile"] and "Acknowledged by" not in shown(now)
    running.command("unacked")
    assert f"#{alert_id}" in shown(running.answers()[0])


def test_two_analysts_at_once_give_one_acknowledgement(make_bot, sqs_admin, queue_url):
    running = make_bot()
    alert_id, value, message = alert_in_slack(running.fake, sqs_admin, queue_url,
                                               "app_login/unauthorized_ip")
    clicks = [threading.Thread(target=running.click, args=("voiso_ack", value, user),
                               kwargs={"response": user, "message": message})
              for user in (ALLOWED, OTHER_ANALYST)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    wait_for(lambda: running.fake.calls_to("chat.update"), 2)
    winner = running.runtime.store.connection().execute(
        "SELECT acked_by FROM alerts WHERE id = ?", (alert_id,)).fetchone()[0]
    loser = OTHER_ANALYST if winner == ALLOWED else ALLOWED
    (note,) = running.answers(loser)
    assert f"Already acknowledged by <@{winner}>" in note["text"]
    assert running.fake.calls_to(RESPONSE_URL)[0].path == f"/response/{loser}"  # only theirs
    (now,) = running.fake.messages(ALERTS)
    assert f"Acknowledged by <@{winner}>" in shown(now)
    outcomes = sorted(row["outcome"] for row in running.audit())
    assert outcomes == [f"acknowledged (by {winner})", f"already acknowledged (by {winner})"]


def test_a_double_click_by_one_analyst_is_one_acknowledgement(make_bot, sqs_admin, queue_url):
    running = make_bot()
    _, value, message = alert_in_slack(running.fake, sqs_admin, queue_url,
                                        "app_login/unauthorized_ip")
    running.click("voiso_ack", value, message=message)
    running.click("voiso_ack", value, response="b2", message=message)
    # Bolt handles each click after its 200, so either click may be the one that wins
    wait_for(running.audit, 2)
    (note,) = wait_for(lambda: [c.payload for c in running.fake.calls_to(RESPONSE_URL)
                                if c.path in ("/response/b1", "/response/b2")])
    assert f"Already acknowledged by <@{ALLOWED}>" in note["text"]
    acked = running.runtime.store.connection().execute(
        "SELECT count(*) FROM alerts WHERE acked_by IS NOT NULL").fetchone()[0]
    assert acked == 1
    outcomes = sorted(row["outcome"] for row in running.audit())
    assert outcomes == [f"acknowledged (by {ALLOWED})", f"already acknowledged (by {ALLOWED})"]


def test_an_acknowledgement_holds_across_a_restart(make_bot, sqs_admin, queue_url):
    running = make_bot()
    _, value, message = alert_in_slack(running.fake, sqs_admin, queue_url,
                                        "app_login/unauthorized_ip")
    running.click("voiso_ack", value, message=message)
    wait_for(lambda: running.fake.calls_to("chat.update"))
    running.runtime.stop()
    restarted = make_bot()
    restarted.click("voiso_ack", value, user=OTHER_ANALYST, response="again", message=message)
    (note,) = restarted.answers("again")
    assert f"Already acknowledged by <@{ALLOWED}>" in note["text"]


def test_a_click_on_an_alert_the_cache_no_longer_holds_gets_a_polite_private_answer(make_bot):
    running = make_bot()
    running.click("voiso_ack", json.dumps({"alert": 999}), message={"ts": "1.000000"})
    (note,) = running.answers("b1")
    assert "no longer in the bot's cache" in note["text"]
    assert note["response_type"] == "ephemeral" and note["replace_original"] is False
    assert running.fake.calls_to("chat.update") == []
    assert running.audit()[-1]["outcome"] == "missing"


def test_a_stranger_cannot_acknowledge(make_bot, sqs_admin, queue_url):
    running = make_bot()
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip")
    alert_id, message = posted_alert(running.fake)
    running.click("voiso_ack", json.dumps({"alert": alert_id}), user=STRANGER, message=message)
    (note,) = running.answers("b1")
    assert "not allowed" in note["text"]
    assert running.fake.calls_to("chat.update") == []
    assert [(r["action"], r["allowed"]) for r in running.audit()] == [("button", 0)]



def test_profile_shows_the_alerts_account_privately_to_whoever_pressed(make_bot, sqs_admin,
                                                                       queue_url):
    running = make_bot()
    account = "x" + HOSTILE_USER  # an address /voiso user takes (it starts with no "<")
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip", user=account)
    alert_id, message = posted_alert(running.fake)
    assert "voiso_profile" in buttons(message)
    running.click("voiso_profile", json.dumps({"alert": alert_id}), message=message)
    (answer,) = running.answers("b1")
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert account in shown(answer)
    seen = display(answer)
    assert seen.parsed == [] and not any(live[0] == "broadcast" for live in seen.live)
    assert running.fake.calls_to("chat.update") == []  # the alert itself is unchanged
    (row,) = running.audit()
    assert (row["user_id"], row["action"], row["allowed"], row["outcome"]) == (
        ALLOWED, "button", 1, "answered user")
    assert row["detail"] == f'voiso_profile {{"alert": {alert_id}}}'


def test_profile_reads_the_account_from_the_stored_alert_never_the_button(make_bot, sqs_admin,
                                                                          queue_url):
    """A value holding an address is no alert id: refused with a usage note, audited."""
    running = make_bot()
    alert_id, _, message = alert_in_slack(running.fake, sqs_admin, queue_url,
                                          "app_login/unauthorized_ip")
    crafted = json.dumps({"alert": alert_id, "user": "ceo@acme.example"})
    running.click("voiso_profile", json.dumps({"user": "ceo@acme.example"}), message=message)
    running.click("voiso_profile", crafted, message=message, response="b2")
    (refused,) = running.answers("b1")
    (answered,) = running.answers("b2")
    assert "not one of ours" in shown(refused) and "ceo@acme.example" not in shown(answered)
    assert "foo@bar.com" in shown(answered)
    assert [r["outcome"] for r in running.audit()] == [
        "usage: that button is not one of ours", "answered user"]


def test_a_stranger_pressing_profile_is_refused_and_audited(make_bot, sqs_admin, queue_url):
    running = make_bot()
    _, value, message = alert_in_slack(running.fake, sqs_admin, queue_url,
                                       "app_login/unauthorized_ip")
    running.click("voiso_profile", value, user=STRANGER, message=message)
    (note,) = running.answers("b1")
    assert "not allowed" in note["text"] and "foo@bar.com" not in shown(note)
    assert note["response_type"] == "ephemeral"
    assert [(r["user_id"], r["action"], r["allowed"], r["outcome"])
            for r in running.audit()] == [(STRANGER, "button", 0, "denied")]


def test_profile_of_an_alert_the_cache_no_longer_holds_says_so(make_bot):
    running = make_bot()
    running.click("voiso_profile", json.dumps({"alert": 999}), message={"ts": "1.000000"})
    (note,) = running.answers("b1")
    assert "names no account" in shown(note)
    assert running.audit()[-1]["outcome"] == "usage: that alert names no account to show"


def refused_over_http(running, alert_id: int) -> None:
    """The press got a private note, was audited as refused, and changed nothing."""
    (note,) = running.answers("b1")
    assert "does not belong to the message" in note["text"]
    assert note["response_type"] == "ephemeral"
    (row,) = running.audit()
    assert row["allowed"] == 0 and row["outcome"].startswith("refused: ")
    acked_by = running.runtime.store.connection().execute(
        "SELECT acked_by FROM alerts WHERE id = ?", (alert_id,)).fetchone()[0]
    assert acked_by is None and running.fake.calls_to("chat.update") == []


# A member allowed in #security crafts a signed press on the alert in #alerts.
CROSS_CHANNEL_PRESSES = {
    "the_alerts_message_from_an_allowed_channel": {"channel": CHANNEL},
    "a_message_of_the_allowed_channel_at_the_alerts_ts":
        {"channel": CHANNEL, "container_channel": CHANNEL},
    "no_container_at_all": {"channel": CHANNEL, "container": False},
}


@pytest.mark.parametrize("crafted", CROSS_CHANNEL_PRESSES.values(),
                         ids=CROSS_CHANNEL_PRESSES.keys())
def test_a_member_allowed_in_one_channel_cannot_press_the_alert_of_another(
        make_bot, sqs_admin, queue_url, crafted):
    running = make_bot(access={"channels": [CHANNEL]})
    alert_id, value, message = alert_in_slack(running.fake, sqs_admin, queue_url,
                                               "app_login/unauthorized_ip")
    status, _ = running.click("voiso_ack", value, user=STRANGER, message=message, **crafted)
    assert status == 200
    refused_over_http(running, alert_id)


def test_a_press_naming_another_alert_of_the_same_channel_is_refused(make_bot, sqs_admin,
                                                                      queue_url):
    running = make_bot()
    send_event(sqs_admin, queue_url, "user/user_added")
    send_event(sqs_admin, queue_url, "user/user_deleted")
    first, second = wait_for(lambda: running.fake.messages(ALERTS), 2)[:2]
    other_alert = second["metadata"]["event_payload"]["alert_id"]
    running.click("voiso_ack", json.dumps({"alert": other_alert}), message=first)
    refused_over_http(running, other_alert)


def test_a_press_with_no_container_is_refused(make_bot, sqs_admin, queue_url):
    running = make_bot()
    alert_id, value, message = alert_in_slack(running.fake, sqs_admin, queue_url,
                                               "app_login/unauthorized_ip")
    running.click("voiso_ack", value, message=message, container=False)
    refused_over_http(running, alert_id)


@pytest.mark.parametrize("value", [json.dumps({"alert": 2**70}), '{"alert": -1}', "[" * 5000,
                                   "x" * 10_000])
def test_a_press_with_an_absurd_value_is_audited_over_http(make_bot, sqs_admin, queue_url,
                                                           value):
    running = make_bot()
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip")
    _, message = posted_alert(running.fake)
    assert running.click("voiso_ack", value, message=message)[0] == 200
    (note,) = running.answers("b1")
    assert "went wrong" in note["text"]
    (row,) = running.audit()
    assert row["outcome"].startswith("ignored: not an alert")
    assert running.fake.calls_to("chat.update") == []

# --- health and stopping --------------------------------------------------------------------------

def test_health_and_metrics_are_not_on_the_public_port(make_bot):
    """They are on the operations listener (tests/voisobot/test_ops.py), another port."""
    running = make_bot()
    for path in ("/healthz", "/readyz", "/metrics"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(running.url + path, timeout=5)
        assert refused.value.code == 404
    assert running.runtime.ops.url != running.url
    with urllib.request.urlopen(running.runtime.ops.url + "/healthz", timeout=5) as response:
        assert response.status == 200


def test_other_paths_are_not_found(make_bot):
    running = make_bot()
    status, _ = running.command("help", path="/admin")
    assert status == 404


def test_stop_closes_the_port(make_bot):
    running = make_bot()
    running.runtime.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(running.url + "/slack/events", timeout=2)


def test_http_mode_without_a_signing_secret_does_not_start(tmp_path, queue_url, moto_server):
    cfg = config.from_dict({"sqs": {"queue_url": queue_url, "endpoint_url": moto_server["url"]},
                            "slack": {"mode": "http"}}, base_dir=tmp_path)
    client = slack.make_client("xoxb-test", "http://127.0.0.1:9/api/", 1)
    with pytest.raises(config.ConfigError, match="SLACK_SIGNING_SECRET"):
        build_bot(cfg, slack.SlackSender(client), client, secrets={})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_worker_serves_slack_beside_the_intake_and_sigterm_stops_both(
        tmp_path, moto_server, queue_url, sqs_admin, fake_slack):
    """python bot.py run in HTTP mode, as deployed: answers a signed command while polling,
    then SIGTERM stops the server and the intake and exits 0."""
    port = free_port()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[sqs]\nqueue_url = "{queue_url}"\nendpoint_url = "{moto_server["url"]}"\n'
        "wait_time_seconds = 1\npoll_interval_seconds = 0.1\nrequest_timeout_seconds = 2\n"
        '[store]\npath = "store.sqlite3"\n[ops]\nport = 0\n'
        f'[slack]\napi_base_url = "{fake_slack.base_url}"\ndefault_channel = "{ALERTS}"\n'
        'mode = "http"\n[http]\nhost = "127.0.0.1"\n'
        f'[access]\nusers = ["{ALLOWED}"]\n', encoding="utf-8")
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
           "PORT": str(port)}
    worker = subprocess.Popen([sys.executable, "bot.py", "--config", str(path), "run"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        running = Bot.__new__(Bot)
        running.fake, running.url = fake_slack, f"http://127.0.0.1:{port}"
        assert wait_for(lambda: [1] if _listening(port) else [], timeout=20), "no server"
        send_event(sqs_admin, queue_url, "app_login/unauthorized_ip")
        assert wait_for(lambda: fake_slack.messages(ALERTS), timeout=20), "no alert posted"
        assert running.command("recent")[0] == 200
        assert "unauthorized_ip" in shown(running.answers()[0])
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "stopped" in err and "xoxb-test" not in err and SECRET not in err
    assert not _listening(port)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_scheduler_counts_new_events_per_day_for_the_stats(make_bot, sqs_admin, queue_url,
                                                              monkeypatch):
    monkeypatch.setattr(jobs, "DAILY_COUNT_SECONDS", 0.2)
    running = make_bot()
    send_event(sqs_admin, queue_url, "user/user_added")
    conn = running.runtime.store.connection()
    counted = wait_for(lambda: conn.execute(
        "SELECT value, n FROM daily_counts WHERE dimension = 'kind'").fetchall())
    assert [tuple(row) for row in counted] == [("user/user_added", 1)]


# --- the App Home -----------------------------------------------------------------------------

def home_opened(user: str, tab: str = "home") -> dict:
    return {"type": "app_home_opened", "user": user, "channel": "D0BOTDM01", "tab": tab,
            "event_ts": "1764000000.000100"}


def home_publishes(fake: FakeSlack, count: int = 1, timeout: float = 10.0) -> list:
    return wait_for(lambda: fake.calls_to("views.publish"), count, timeout)


def test_opening_the_home_publishes_it_for_that_user(make_bot, sqs_admin, queue_url):
    running = make_bot()
    _, value, _ = alert_in_slack(running.fake, sqs_admin, queue_url,
                                 "app_login/unauthorized_ip")
    status, _ = running.event(home_opened(ALLOWED))
    assert status == 200
    (call,) = home_publishes(running.fake)
    assert call.payload["user_id"] == ALLOWED
    view = running.fake.homes[ALLOWED]
    assert view["type"] == "home" and "Open alerts" in readable(view)
    assert [e["value"] for b in view["blocks"] if b["type"] == "actions"
            for e in b["elements"]] == [value]


def test_a_stranger_opening_the_home_gets_the_note(make_bot, sqs_admin, queue_url):
    running = make_bot()
    alert_in_slack(running.fake, sqs_admin, queue_url, "app_login/unauthorized_ip")
    running.event(home_opened(STRANGER))
    (call,) = home_publishes(running.fake)
    assert call.payload["user_id"] == STRANGER
    text = readable(running.fake.homes[STRANGER])
    assert "[access]" in text and "unauthorized_ip" not in text


def test_opening_the_messages_tab_publishes_no_home(make_bot):
    running = make_bot()
    running.event(home_opened(OTHER_ANALYST, tab="messages"), event_id="Ev2")
    running.event(home_opened(ALLOWED), event_id="Ev3")
    calls = home_publishes(running.fake, count=2, timeout=2.0)  # a wrong one has time to come
    assert [call.payload["user_id"] for call in calls] == [ALLOWED]


def test_acknowledge_pressed_on_the_home_acknowledges_and_updates_the_alert(
        make_bot, sqs_admin, queue_url):
    running = make_bot()
    _, value, _ = alert_in_slack(running.fake, sqs_admin, queue_url,
                                 "app_login/unauthorized_ip")
    payload = block_actions(ALLOWED, "voiso_home_ack", value, "", channel=None,
                            container=False)
    payload.pop("response_url")  # a press on the Home has none
    payload["container"] = {"type": "view", "view_id": "V1"}
    payload["view"] = {"id": "V1", "type": "home"}
    status, _ = running.post(urlencode({"payload": json.dumps(payload)}).encode())
    assert status == 200
    home_publishes(running.fake)  # the presser's Home, published again
    acked = wait_for(lambda: [m for m in running.fake.messages(ALERTS)
                              if ALLOWED in json.dumps(m)], 1, 15)
    assert acked, "the delivery job did not show the acknowledgement on the alert's message"
    (row,) = [r for r in running.audit() if r["detail"].startswith("voiso_home_ack")]
    assert row["outcome"] == f"acknowledged (by {ALLOWED}) from the App Home"
    assert running.runtime.metrics.registry.get_sample_value(
        "voiso_button_presses_total", {"button": "acknowledge", "outcome": "acknowledged"}) == 1
