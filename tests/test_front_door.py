"""The HTTP front door of /slack/events under abuse, against the real bot behind waitress:
what a stranger's request can write to the log, how big a body may be, replays of signed
requests, and signed bodies that are not Slack's shapes."""

import hashlib
import hmac
import http.client
import io
import itertools
import json
import logging
import re
import select
import socket
import time
import uuid
from urllib.parse import urlencode

import boto3
import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import REGION, TEST_ENV
from tests.fakes.slack_api import RESPONSE_URL, FakeSlack
from tests.test_slack_app import (
    ALERTS,
    ALLOWED,
    CHANNEL,
    OTHER_ANALYST,
    SECRET,
    Bot,
    block_actions,
    posted_alert,
    send_event,
    slash_body,
    started_bot,
    wait_for,
)
from tests.voisobot.slack.test_requests import FORM, JSON_TYPE, form, signed_bodies
from voisobot import config
from voisobot.config import ConfigError

MARKER = b"DISK-FILL-MARKER-7f3c"


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels={CHANNEL, ALERTS}).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def shared_bot(moto_server, tmp_path_factory):
    """One running bot for the tests that only look at the answers of single requests (a
    bot takes a couple of seconds to stop: its long poll ends first). Built with the root
    logger at DEBUG, as Bolt copies the root's level into its loggers when the app is made:
    every record Bolt could write is written."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in TEST_ENV.items():
            env.setenv(key, value)
        sqs = boto3.client("sqs", endpoint_url=moto_server["url"], region_name=REGION)
        queue_url = sqs.create_queue(QueueName=f"front-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        fake = FakeSlack(channels={CHANNEL, ALERTS}).start()
        root, level = logging.getLogger(), logging.getLogger().level
        root.setLevel(logging.DEBUG)
        try:
            runtime = started_bot(tmp_path_factory.mktemp("front-door"), queue_url,
                                  moto_server["url"], fake, {"SLACK_SIGNING_SECRET": SECRET},
                                  slack_settings={"mode": "http"},
                                  http={"host": "127.0.0.1", "port": 0},
                                  access={"users": [ALLOWED]})
        finally:
            root.setLevel(level)
        yield Bot(runtime, fake)
        runtime.stop()
        fake.stop()


@pytest.fixture
def make_bot(tmp_path, moto_server, queue_url, fake_slack):
    """Build and start the bot in HTTP mode (again after a stop: a restart, same store)."""
    started = []

    def make(**http):
        runtime = started_bot(tmp_path, queue_url, moto_server["url"], fake_slack,
                              {"SLACK_SIGNING_SECRET": SECRET}, slack_settings={"mode": "http"},
                              http={"host": "127.0.0.1", "port": 0, **http},
                              access={"users": [ALLOWED, OTHER_ANALYST]})
        started.append(runtime)
        return Bot(runtime, fake_slack)

    yield make
    for runtime in started:
        runtime.stop()


class Records(logging.Handler):
    """Every record of every logger, as it would be written."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter().format(record))


@pytest.fixture
def every_log_record():
    """A handler on the root logger, and the root at DEBUG (the shared bot's Bolt loggers
    were made at DEBUG: see shared_bot)."""
    root, records = logging.getLogger(), Records()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(records)
    yield records
    root.removeHandler(records)
    root.setLevel(level)


def signed_headers(body: bytes, timestamp: int | None = None, content_type: str = FORM
                   ) -> dict:
    """Headers as Slack sends them: v0= and the HMAC-SHA256 of v0:timestamp:body (written
    out here, as slack_sdk's signer takes only UTF-8 bodies)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": "v0=" + digest.hexdigest()}


def post(running: Bot, body: bytes, headers: dict, path: str = "/slack/events"
         ) -> tuple[int, bytes]:
    """POST exactly these bytes and headers; (status, the answer's body)."""
    connection = http.client.HTTPConnection("127.0.0.1", running.runtime.slack_server.port,
                                            timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def marked_command(size: int) -> bytes:
    """A slash command (whose text holds the marker) padded to about ``size`` bytes."""
    body = slash_body("help " + MARKER.decode(), ALLOWED, "http://127.0.0.1:9/response/x")
    return body + b"&padding=" + MARKER * max(0, (size - len(body)) // len(MARKER))


# --- disk fill: a refused request's body never reaches the log --------------------------------

def forged(body: bytes) -> tuple[bytes, dict]:
    return body, {**signed_headers(body), "X-Slack-Signature": "v0=" + "0" * 64}


def unsigned(body: bytes) -> tuple[bytes, dict]:
    return body, {"Content-Type": FORM}


def stale(body: bytes) -> tuple[bytes, dict]:
    return body, signed_headers(body, timestamp=int(time.time()) - 6 * 60)


def edited(body: bytes) -> tuple[bytes, dict]:
    return body.replace(b"help", b"audit", 1), signed_headers(body)


def bad_timestamp(body: bytes) -> tuple[bytes, dict]:
    return body, {**signed_headers(body), "X-Slack-Request-Timestamp": MARKER.decode()}


@pytest.mark.parametrize("attack", [forged, unsigned, stale, edited, bad_timestamp])
def test_a_refused_request_gets_401_and_its_body_reaches_no_log(shared_bot, every_log_record,
                                                                attack):
    audited = len(shared_bot.audit())
    body, headers = attack(marked_command(900_000))
    status, answer = post(shared_bot, body, headers)
    assert status == 401 and MARKER not in answer
    refusals = [line for line in every_log_record.lines if "refused" in line]
    assert len(refusals) == 1 and len(refusals[0]) < 200
    assert not [line for line in every_log_record.lines if MARKER.decode() in line]
    time.sleep(0.2)  # time enough for a listener that should not run
    assert len(shared_bot.audit()) == audited


def test_a_refused_request_is_not_read_past_its_content_length_check(shared_bot,
                                                                      every_log_record):
    """The front door itself refuses by Content-Length, whatever server is in front of it:
    here its WSGI application is called with a body that must not be read."""
    running = shared_bot

    class Unreadable(io.RawIOBase):
        def read(self, size=-1):
            raise AssertionError("the body was read")

    answered = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events",
               "CONTENT_LENGTH": str(50 * 1024 * 1024), "CONTENT_TYPE": "text/plain",
               "REMOTE_ADDR": "192.0.2.1", "wsgi.input": Unreadable()}
    application = running.runtime.slack_server.server.application
    assert application(environ, lambda status, headers: answered.append(status)) == []
    assert answered == ["413 Content Too Large"]
    assert [line for line in every_log_record.lines if "refused" in line] == [
        "refused a request to /slack/events from 192.0.2.1: a body over http.max_body_bytes "
        "(1048576) (52428800 bytes)"]


# --- size limit ------------------------------------------------------------------------------

def raw_post(running: Bot, head: dict, chunks) -> int:
    """Send the request line and headers, then the body's chunks until the server answers
    (a server that refuses a body answers before reading it); the answer's status."""
    port = running.runtime.slack_server.port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        lines = ["POST /slack/events HTTP/1.1", "Host: 127.0.0.1",
                 *(f"{name}: {value}" for name, value in head.items())]
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for chunk in chunks:
            if select.select([connection], [], [], 0)[0]:
                break  # the answer is in: the server read no further
            try:
                connection.sendall(chunk)
            except OSError:  # the server closed the connection after answering
                break
        return int(connection.recv(4096).split(b" ", 2)[1])


def pieces(body: bytes, size: int = 65536) -> list[bytes]:
    return [body[start:start + size] for start in range(0, len(body), size)]


def test_a_50_mb_body_gets_413_before_it_is_sent(shared_bot, every_log_record):
    body = marked_command(50 * 1024 * 1024)
    headers = {**signed_headers(body), "Content-Length": str(len(body))}
    assert raw_post(shared_bot, headers, pieces(body)[:1]) == 413  # 64 KiB of 50 MB sent
    assert not [line for line in every_log_record.lines if MARKER.decode() in line]


def test_a_chunked_body_over_the_limit_gets_413(shared_bot):
    chunk = b"x" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 40 + [b"0\r\n\r\n"]  # 2.5 MiB
    headers = {**signed_headers(b"x" * 65536 * 40), "Transfer-Encoding": "chunked"}
    assert raw_post(shared_bot, headers, chunks) == 413


@pytest.mark.parametrize("limit", [None, 65536], ids=["default_1MiB", "configured_64KiB"])
def test_a_body_of_the_limit_works_and_one_byte_more_gets_413(make_bot, limit):
    running = make_bot(**({} if limit is None else {"max_body_bytes": limit}))
    size = limit or 1048576
    fits = padded_command(running, size)
    over = fits + b"x"
    assert raw_post(running, {**signed_headers(over), "Content-Length": str(len(over))},
                    pieces(over)) == 413
    assert post(running, fits, signed_headers(fits))[0] == 200
    (answer,) = running.answers()
    assert "/voiso recent" in answer["text"]


def padded_command(running: Bot, size: int) -> bytes:
    """/voiso help, padded with an extra field to exactly ``size`` bytes."""
    body = slash_body("help", ALLOWED, running.fake.response_url("c1")) + b"&padding="
    return body + b"p" * (size - len(body))


@pytest.mark.parametrize("value, problem", [
    (65535, "expected a whole number of bytes from 65536 (64 KiB) to 67108864 (64 MiB)"),
    (67108865, "expected a whole number of bytes from 65536"),
    ("1MB", "expected a whole number of bytes"), (1.5, "expected a whole number of bytes")])
def test_max_body_bytes_out_of_range_is_refused_at_load_naming_the_key(tmp_path, value,
                                                                        problem):
    with pytest.raises(ConfigError, match=re.escape(f"http.max_body_bytes: {problem}")):
        config.from_dict({"sqs": {"queue_url": "http://127.0.0.1:9/000000000000/q",
                                  "endpoint_url": "http://127.0.0.1:9"},
                          "http": {"max_body_bytes": value}}, base_dir=tmp_path)


# --- replays -------------------------------------------------------------------------------

def click_body(fake: FakeSlack, action_id: str, alert_id: int, message_ts: str,
               user: str = ALLOWED, response: str = "b1") -> bytes:
    """An Acknowledge/Reopen click on the alert's message, as Slack POSTs it."""
    payload = block_actions(user, action_id, json.dumps({"alert": alert_id}),
                            fake.response_url(response), message_ts=message_ts)
    return urlencode({"payload": json.dumps(payload)}).encode()


def acked_by(running: Bot, alert_id: int) -> str | None:
    return running.runtime.store.connection().execute(
        "SELECT acked_by FROM alerts WHERE id = ?", (alert_id,)).fetchone()[0]


def audit_rows(running: Bot, count: int) -> list[tuple]:
    """(action, allowed, user, channel, detail) of the audit trail, once it has ``count``
    rows, and after a moment in which a wrongly started second action would show."""
    wait_for(running.audit, count)
    time.sleep(0.5)
    return [(r["action"], r["allowed"], r["user_id"], r["channel_id"], r["detail"])
            for r in running.audit()]


def test_a_replayed_acknowledge_acts_once_and_is_audited_as_a_replay(make_bot, sqs_admin,
                                                                     queue_url):
    running = make_bot()
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip")
    alert_id, message = posted_alert(running.fake)
    body = click_body(running.fake, "voiso_ack", alert_id, message["ts"])
    headers = signed_headers(body)
    assert post(running, body, headers)[0] == 200
    assert post(running, body, headers)[0] == 200
    detail = f'voiso_ack {{"alert": {alert_id}}}'
    assert sorted(audit_rows(running, 2)) == [("button", 1, ALLOWED, ALERTS, detail),
                                              ("replay", 0, ALLOWED, ALERTS, detail)]
    assert len(running.fake.calls_to("chat.update")) == 1
    assert running.fake.calls_to(RESPONSE_URL) == []  # not even "already acknowledged"
    assert acked_by(running, alert_id) == ALLOWED
    (replay,) = [r for r in running.audit() if r["action"] == "replay"]
    assert replay["outcome"].startswith("ignored: a repeat of a request first received at ")


def test_a_replayed_acknowledge_cannot_undo_a_reopen_even_after_a_restart(make_bot, sqs_admin,
                                                                          queue_url):
    running = make_bot()
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip")
    alert_id, message = posted_alert(running.fake)
    ack = click_body(running.fake, "voiso_ack", alert_id, message["ts"])
    ack_headers = signed_headers(ack)
    post(running, ack, ack_headers)
    wait_for(lambda: running.fake.calls_to("chat.update"))
    reopen = click_body(running.fake, "voiso_reopen", alert_id, message["ts"],
                        user=OTHER_ANALYST)
    post(running, reopen, signed_headers(reopen))
    wait_for(lambda: running.fake.calls_to("chat.update"), 2)
    running.runtime.stop()
    restarted = make_bot()  # the same store, within the 5 minutes
    assert post(restarted, ack, ack_headers)[0] == 200
    rows = audit_rows(restarted, 3)
    assert [row[:2] for row in rows] == [("button", 1), ("button", 1), ("replay", 0)]
    assert acked_by(restarted, alert_id) is None
    assert len(restarted.fake.calls_to("chat.update")) == 2


def test_a_replayed_command_is_answered_once(make_bot):
    running = make_bot()
    body = slash_body("recent", ALLOWED, running.fake.response_url("c1"))
    headers = signed_headers(body)
    assert post(running, body, headers)[0] == 200
    assert post(running, body, headers)[0] == 200
    rows = audit_rows(running, 2)
    assert sorted(rows) == [("command", 1, ALLOWED, CHANNEL, "recent"),
                            ("replay", 0, ALLOWED, CHANNEL, "/voiso recent")]
    assert len(running.answers(count=2, timeout=1)) == 1


def test_the_same_command_signed_again_is_not_a_replay(make_bot):
    """Slack signs each request anew: the same command typed twice acts twice."""
    running = make_bot()
    body = slash_body("help", ALLOWED, running.fake.response_url("c1"))
    now = int(time.time())  # both from one reading: a second may pass between the posts
    post(running, body, signed_headers(body, timestamp=now))
    post(running, body, signed_headers(body, timestamp=now - 1))
    assert len(running.answers(count=2)) == 2
    assert [row[0] for row in audit_rows(running, 2)] == ["command", "command"]


# --- bad bodies: signed, but none of Slack's shapes -------------------------------------------

def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_BODIES = [
    ("empty", b"", FORM),
    ("empty_object", b"{}", JSON_TYPE),
    ("json_array", b"[1]", JSON_TYPE),
    ("json_without_type", b'{"challenge": "x"}', JSON_TYPE),
    ("json_other_type", b'{"type": "message", "text": "x"}', JSON_TYPE),
    ("json_not_parsing", b'{"type": "url_verification",', JSON_TYPE),
    ("json_as_form", b'{"type": "url_verification", "challenge": "x"}', FORM),
    ("json_nested_deep", b'{"type": "url_verification", "x": ' + nested(100).encode() + b"}",
     JSON_TYPE),
    ("json_nested_past_recursion", b'{"type": "url_verification", "x": '
     + nested(100_000).encode() + b"}", JSON_TYPE),
    ("event_not_object", b'{"type": "event_callback", "event": 5}', JSON_TYPE),
    ("event_null", b'{"type": "event_callback", "event": null}', JSON_TYPE),
    ("event_missing", b'{"type": "event_callback"}', JSON_TYPE),
    ("event_without_type", b'{"type": "event_callback", "event": {"user": "U1"}}', JSON_TYPE),
    ("authorizations_not_list", b'{"type": "event_callback", "event": {"type": "x"}, '
     b'"authorizations": 5}', JSON_TYPE),
    ("invalid_utf8", b"command=%2Fvoiso&text=\xff\xfe", FORM),
    ("form_without_command_or_payload", form(token="x", team_id="T1", text="help"), FORM),
    ("payload_not_json", form(payload="notjson"), FORM),
    ("payload_array", form(payload="[]"), FORM),
    ("payload_empty_object", form(payload="{}"), FORM),
    ("payload_type_empty", form(payload='{"type": ""}'), FORM),
    ("payload_type_number", form(payload='{"type": 5}'), FORM),
    ("payload_actions_not_list", form(payload='{"type": "block_actions", "actions": 5}'), FORM),
    ("payload_actions_empty", form(payload='{"type": "block_actions", "actions": []}'), FORM),
    ("payload_action_not_object", form(payload='{"type": "block_actions", "actions": [5]}'),
     FORM),
    ("payload_user_not_object", form(payload='{"type": "block_actions", "user": "U1", '
                                     '"actions": [{"action_id": "voiso_ack"}]}'), FORM),
    ("payload_actions_null", form(payload='{"type": "block_actions", "actions": null}'), FORM),
    ("payload_action_without_id", form(payload='{"type": "block_actions", "actions": [{}]}'),
     FORM),
    ("payload_view_not_object", form(payload='{"type": "view_submission", "view": "v"}'), FORM),
    ("payload_legacy_type", form(payload='{"type": "interactive_message", "callback_id": "c", '
                                 '"actions": [{"name": "x"}]}'), FORM),
    ("payload_unknown_type", form(payload='{"type": "something_new"}'), FORM),
    ("payload_nested_deep", form(payload='{"type": "block_actions", "x": ' + nested(100) + "}"),
     FORM),
    ("payload_enterprise_number", form(payload='{"type": "block_actions", "enterprise": 5, '
                                       '"actions": [{"action_id": "voiso_ack"}]}'), FORM),
    ("command_with_event_field", form(command="/voiso", text="help", event="x"), FORM),
    ("url_verification_event_null", b'{"type": "url_verification", "event": null}', JSON_TYPE),
    ("payload_word_in_command", form(command="/voiso", text="user payload@x.com"), FORM),
    ("multipart", b'--b\r\nContent-Disposition: form-data; name="command"\r\n\r\n/voiso\r\n'
     b"--b--\r\n", "multipart/form-data; boundary=b"),
    ("command_as_multipart", form(command="/voiso", text="help"), "multipart/form-data"),
    ("command_as_text", form(command="/voiso", text="help"), "text/plain"),
    ("command_as_json", form(command="/voiso", text="help"), JSON_TYPE),
    ("no_content_type", form(command="/voiso", text="help"), ""),
]


@pytest.mark.parametrize("body, content_type", [case[1:] for case in BAD_BODIES],
                         ids=[case[0] for case in BAD_BODIES])
def test_a_signed_body_that_is_not_slacks_gets_400_and_one_log_line(shared_bot,
                                                                    every_log_record, body,
                                                                    content_type):
    audited, answered = len(shared_bot.audit()), len(shared_bot.fake.calls_to(RESPONSE_URL))
    headers = signed_headers(body, content_type=content_type)
    if not content_type:
        del headers["Content-Type"]
    assert post(shared_bot, body, headers)[0] == 400
    (refusal,) = [line for line in every_log_record.lines if "refused" in line]
    assert "\n" not in refusal and len(refusal) < 200
    time.sleep(0.2)  # time enough for a listener that should not run
    assert len(shared_bot.audit()) == audited
    assert len(shared_bot.fake.calls_to(RESPONSE_URL)) == answered


def test_url_verification_is_answered_with_its_challenge(shared_bot):
    running = shared_bot
    body = b'{"token": "x", "challenge": "c-7g3", "type": "url_verification"}'
    assert post(running, body, signed_headers(body, content_type=JSON_TYPE)) == (
        200, b'{"challenge": "c-7g3"}')


def test_an_event_callback_reaches_bolt(shared_bot, every_log_record):
    """No event is subscribed yet: Bolt, not the front door, says it has no listener."""
    running = shared_bot
    body = json.dumps({"type": "event_callback", "team_id": "T1", "api_app_id": "A1",
                       "event": {"type": "app_mention", "user": "U1", "text": "hi",
                                 "channel": CHANNEL, "ts": "1.0"},
                       "event_id": "Ev1", "event_time": 1}).encode()
    status, answer = post(running, body, signed_headers(body, content_type=JSON_TYPE))
    assert (status, json.loads(answer)) == (404, {"error": "unhandled request"})
    assert not [line for line in every_log_record.lines if "refused" in line]


SECONDS_AGO = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(case=signed_bodies)
def test_no_signed_body_gets_a_5xx_and_the_bot_still_answers(shared_bot, case):
    body, content_type = case
    # A fresh timestamp each call, so that Hypothesis running a case again is not a replay.
    stamp = int(time.time()) - next(SECONDS_AGO) % 290
    status, _ = post(shared_bot, body, signed_headers(body, stamp, content_type))
    assert status < 500
    after = f"after-{uuid.uuid4().hex}"
    command = slash_body("help", ALLOWED, shared_bot.fake.response_url(after))
    assert post(shared_bot, command, signed_headers(command))[0] == 200
    assert shared_bot.answers(after)

