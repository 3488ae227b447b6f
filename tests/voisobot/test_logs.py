"""No text from outside can forge a log line: whatever a logged value holds, each record
is one line that can be read back exactly, and a traceback's lines are marked as its own.
The end-to-end tests log through cli.configure_logging, as the running bot does."""

import contextlib
import io
import itertools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import sqs_message
from tests.fakes.slack_api import RESPONSE_URL, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.fakes.teams_webhook import FakeTeamsWebhook
from tests.test_slack_app import (
    ALERTS,
    ALLOWED,
    CHANNEL,
    ROOT,
    SECRET,
    Bot,
    _listening,
    free_port,
    send_event,
    wait_for,
)
from tests.test_socket_mode import slash_command
from tests.voisobot.slack.test_buttons import ANALYST, DEFAULT, make_buttons, message_of, posted
from tests.voisobot.test_config import GOOD_URL
from tests.voisobot.test_delivery import CHANNELS, delivery_for, make_config, store_events
from voisobot import cli, config, logs, runtime
from voisobot.acks import MessageRef
from voisobot.errors import ConfigError
from voisobot.intake import Intake
from voisobot.logs import CONTINUATION, ESCAPED_CATEGORIES, continued, escaped
from voisobot.presses import ACK_ACTION
from voisobot.slack import sender as slack
from voisobot.slack.buttons import Press

RECORD_START = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
_ESCAPE = re.compile(r"\\(\\|n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")
_SHORT = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}

# Line breaks, terminal escapes, bidi overrides, invisible and tag characters, and a record
# start to forge after a break.
HOSTILE = "\n\r\x1b\x00\x0b\x0c\x1c\x85\u2028\u2029\u202e\u200b\ufeff\U000e0041\\\t"
FORGED = "2026-11-24 12:00:00,000 ERROR voisobot.intake: "
hostile_text = st.text(alphabet=st.sampled_from(HOSTILE) | st.characters()) \
    | st.lists(st.sampled_from([FORGED, *HOSTILE, "a", "\\n"])).map("".join)


def unescaped(text: str) -> str:
    """The inverse of escaped(): what a reader of the log recovers."""
    return _ESCAPE.sub(lambda m: _SHORT.get(m[1]) or chr(int(m[1][1:], 16)), text)


@pytest.mark.parametrize("text, shown", [
    ("plain text: ü é 日本 ✅", "plain text: ü é 日本 ✅"),
    ("a\nb", "a\\nb"),
    ("a\r\nb", "a\\r\\nb"),
    ("tab\there", "tab\\there"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("nul\x00", "nul\\x00"),
    ("next line\x85", "next line\\x85"),
    ("line\u2028separator", "line\\u2028separator"),
    ("para\u2029separator", "para\\u2029separator"),
    ("bidi \u202eevil", "bidi \\u202eevil"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("tag\U000e0041", "tag\\U000e0041"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ("C:\\new", "C:\\\\new"),
    ("a literal \\n is not a break", "a literal \\\\n is not a break"),
    ("", ""),
])
def test_escaped_shows_each_line_breaking_or_hidden_character(text, shown):
    assert escaped(text) == shown
    assert unescaped(shown) == text


def test_every_character_of_the_escaped_categories_is_escaped():
    """Enumerated from unicodedata, not from a list written by hand."""
    chars = [chr(code) for code in range(sys.maxunicode + 1)
             if unicodedata.category(chr(code)) in ESCAPED_CATEGORIES]
    assert {"Cc", "Cf", "Zl", "Zp"} <= {unicodedata.category(c) for c in chars}
    text = "".join(chars)
    shown = escaped(text)
    assert not any(unicodedata.category(c) in ESCAPED_CATEGORIES for c in shown)
    assert unescaped(shown) == text


@settings(max_examples=200)
@given(text=hostile_text)
def test_any_text_is_escaped_onto_one_line_and_read_back_exactly(text):
    shown = escaped(text)
    assert len(shown.splitlines()) <= 1
    assert not any(unicodedata.category(c) in ESCAPED_CATEGORIES for c in shown)
    assert unescaped(shown) == text


def test_a_traceback_is_continued_on_marked_lines():
    assert continued("Traceback:\n  File x\nValueError: a\u2028b") == [
        f"{CONTINUATION}Traceback:", f"{CONTINUATION}  File x",
        f"{CONTINUATION}ValueError: a\\u2028b"]


# --- through cli.configure_logging, as the bot logs ----------------------------------------

class Records(logging.Handler):
    """What was logged, as records, beside the formatted stream."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def restored_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@contextlib.contextmanager
def bot_log(level: str = "INFO", log_format: str = "text"):
    """cli.configure_logging writing to a captured standard error (swapped in the test's
    body: pytest swaps it between phases), and the records logged."""
    stream, records = io.StringIO(), Records()
    with contextlib.redirect_stderr(stream):
        cli.configure_logging(level, log_format)  # by default, the default log.level
        logging.getLogger().addHandler(records)
        yield stream, records


def read_back(output: str) -> list[tuple[str, list[str]]]:
    """The records in the log, each as (its line, the lines continued under it), checking
    that every line either starts a record or is marked as a continuation."""
    entries: list[tuple[str, list[str]]] = []
    for line in output.splitlines():  # splits at every break a reader might honour
        if RECORD_START.match(line):
            entries.append((line, []))
        else:
            assert line.startswith(CONTINUATION) and entries, f"a stray line: {line!r}"
            entries[-1][1].append(line)
    return entries


def log_everywhere(text: str, intake: Intake, serial: int) -> None:
    """Log ``text`` the ways text from outside reaches the log."""
    intake.store_messages([sqs_message("{" + text, message_id=f"m{serial}-{text}")])
    logging.getLogger("slack_bolt.App").warning("failed to run a listener: %s", text)
    logging.getLogger("waitress").error(text)
    try:
        raise ValueError(f"bad value {text}")
    except ValueError:
        logging.getLogger("voisobot.slack.serve").exception("a request failed: %s", text)


def assert_one_record_per_line_and_readable(stream: io.StringIO, records: Records) -> None:
    entries = read_back(stream.getvalue())
    assert len(entries) == len(records.records)
    for (line, under), record in zip(entries, records.records, strict=True):
        assert unescaped(RECORD_START.sub("", line, count=1)) == record.getMessage()
        if record.exc_info:
            traceback = "\n".join(unescaped(x.removeprefix(CONTINUATION)) for x in under)
            assert traceback.endswith(f"ValueError: {record.exc_info[1]}")
        else:
            assert under == []


serials = itertools.count()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text)
def test_no_logged_text_can_forge_a_record(restored_logging, store, text):
    with bot_log() as (stream, records):
        log_everywhere(text, Intake(None, make_config().sqs, store), next(serials))
    assert len(records.records) == 4
    assert_one_record_per_line_and_readable(stream, records)


@pytest.mark.parametrize("text", [
    f"x\n{FORGED}the allow-list was emptied",
    f"x\r{FORGED}forged after a carriage return",
    f"x\u2028{FORGED}forged after a line separator",
    f"x\x85{FORGED}forged after a next-line",
    f"x\x0b\x0c\x1c\x1d\x1e{FORGED}forged after other breaks",
    "\x1b[2K\x1b[1Gerased the line on a terminal",
    "\\n looks like an escape",
    "",
])
def test_forged_records_stay_inside_the_real_one(restored_logging, store, text):
    with bot_log() as (stream, records):
        log_everywhere(text, Intake(None, make_config().sqs, store), next(serials))
    assert_one_record_per_line_and_readable(stream, records)
    assert not any(line.startswith(FORGED) for line in stream.getvalue().splitlines())


def test_the_rejection_warning_names_the_message_on_one_line(restored_logging, store):
    with bot_log() as (stream, _):
        Intake(None, make_config().sqs, store).store_messages(
            [sqs_message("not json", message_id="id\nERROR forged")])
    (line,) = stream.getvalue().splitlines()
    assert "WARNING voisobot.intake: rejected SQS message id\\nERROR forged: " in line


# --- the JSON format (log.format = "json") -------------------------------------------------

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ids_text = hostile_text | st.just("\ud800 lone surrogate")


def read_json(stream: io.StringIO, records: Records) -> list[dict]:
    """Every line of the log as JSON: one object per record, in order."""
    lines = stream.getvalue().splitlines()  # splits at every break a reader might honour
    assert len(lines) == len(records.records)
    entries = [json.loads(line) for line in lines]
    for entry, record in zip(entries, records.records, strict=True):
        assert ISO_UTC.match(entry["time"])
        assert (entry["level"], entry["logger"]) == (record.levelname, record.name)
        assert entry["message"] == record.getMessage()
    return entries


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=hostile_text, message_id=ids_text, channel=ids_text,
       event_id=st.integers(min_value=-2**63, max_value=2**63), failing=st.booleans())
def test_any_text_in_a_message_or_its_ids_is_one_json_line_read_back_exactly(
        restored_logging, message, message_id, channel, event_id, failing):
    with bot_log(log_format="json") as (stream, records):
        try:
            if failing:
                raise ValueError(f"bad: {message}")
            logging.getLogger("voisobot.test").warning(
                "said: %s", message, extra=logs.ids(sqs_message_id=message_id, channel=channel,
                                                    event_id=event_id, alert_id=7))
        except ValueError:
            logging.getLogger("voisobot.test").exception("failed: %s", message,
                                                         extra=logs.ids(channel=channel))
    (entry,) = read_json(stream, records)
    if failing:
        assert entry["message"] == f"failed: {message}" and entry["channel"] == channel
        assert entry["exception"].startswith("Traceback")
        assert entry["exception"].endswith(f"ValueError: bad: {message}")
    else:
        assert entry == {**entry, "message": f"said: {message}", "sqs_message_id": message_id,
                         "channel": channel, "event_id": event_id, "alert_id": 7}
        assert "exception" not in entry


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text)
def test_no_logged_text_breaks_a_json_line(restored_logging, store, text):
    """The ways text from outside reaches the log, libraries' records and tracebacks too."""
    with bot_log(log_format="json") as (stream, records):
        log_everywhere(text, Intake(None, make_config().sqs, store), next(serials))
    entries = read_json(stream, records)
    assert len(entries) == 4 and entries[-1]["exception"].endswith(f"ValueError: bad value {text}")


@pytest.mark.parametrize("text", [
    f"x\n{FORGED}the allow-list was emptied",
    'x"}\n{"level": "ERROR", "message": "forged"}',
    f"x\u2028{FORGED}forged after a line separator",
    f"x\x85{FORGED}forged after a next-line",
    "\x1b[2K\x1b[1Gerased the line on a terminal",
    "quotes \" and backslashes \\ and \\u2028 written out",
    "",
])
def test_forged_json_records_stay_inside_the_real_one(restored_logging, store, text):
    with bot_log(log_format="json") as (stream, records):
        log_everywhere(text, Intake(None, make_config().sqs, store), next(serials))
    entries = read_json(stream, records)
    assert [entry["level"] for entry in entries] == ["WARNING", "WARNING", "ERROR", "ERROR"]


def test_the_json_time_is_iso_8601_in_utc():
    assert logs.utc_time(0) == "1970-01-01T00:00:00.000Z"
    assert logs.utc_time(1795521600.25) == "2026-11-24T12:00:00.250Z"


def test_the_log_format_key_chooses_the_formatter(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n'
                    '[log]\nformat = "json"\n', encoding="utf-8")
    assert config.load(path).log.format == "json"
    path.write_text(path.read_text().replace('"json"', '"yaml"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r'log\.format: expected "text" .* or "json" .*'
                                          r"got 'yaml'"):
        config.load(path)


# --- the ids in play, as fields ------------------------------------------------------------

@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels=CHANNELS).start()
    yield fake
    fake.stop()


def rejected_message(store, fake) -> None:
    Intake(None, make_config().sqs, store).store_messages(
        [sqs_message("not json", message_id="m-0001")])


def alert_retried(store, fake) -> None:
    fake.fail("chat.postMessage", "rate_limited")
    store_events(store, "user/user_added")
    delivery_for(store, fake).run()


def alert_refused(store, fake) -> None:
    fake.fail("chat.postMessage", "channel_not_found")
    store_events(store, "user/user_added")
    delivery_for(store, fake).run()


def press_elsewhere(store, fake) -> None:
    alert_id, _ = posted(store, fake, "user/user_added")
    make_buttons(store, fake).press(Press(ANALYST, DEFAULT, MessageRef(DEFAULT, "1.000001"),
                                          ACK_ACTION, json.dumps({"alert": alert_id})))


def update_refused(store, fake) -> None:
    alert_id, _ = posted(store, fake, "user/user_added")
    fake.fail("chat.update", "rate_limited")
    make_buttons(store, fake).press(Press(ANALYST, DEFAULT, message_of(fake, alert_id),
                                          ACK_ACTION, json.dumps({"alert": alert_id})))


@pytest.mark.parametrize("act, says, ids", [
    (rejected_message, "rejected SQS message m-0001", {"sqs_message_id": "m-0001"}),
    (alert_retried, "alert 1 to C0DEFAULT1: Slack did not take it",
     {"alert_id": 1, "channel": DEFAULT}),
    (alert_refused, "Slack refused alerts for C0DEFAULT1 (channel_not_found)",
     {"channel": DEFAULT}),
    (press_elsewhere, "refused a press by UANALYST01 in C0DEFAULT1", {"channel": DEFAULT}),
    (update_refused, "could not update alert 1 in C0DEFAULT1",
     {"alert_id": 1, "channel": DEFAULT}),
], ids=lambda value: value.__name__ if callable(value) else None)
def test_a_record_carries_the_ids_in_play(restored_logging, store, fake_slack, act, says, ids):
    with bot_log(log_format="json") as (stream, records):
        act(store, fake_slack)
    (entry,) = [e for e in read_json(stream, records) if e["message"].startswith(says)]
    assert {name: entry.get(name) for name in ids} == ids


# --- no noise from the libraries at INFO ---------------------------------------------------

def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the block ends: connecting is refused


@pytest.mark.parametrize("level, shown", [("INFO", False), ("DEBUG", True)])
def test_bolt_does_not_warn_on_every_start_that_the_token_is_unused(
        restored_logging, tmp_path, monkeypatch, level, shown):
    """Bolt warns when SLACK_BOT_TOKEN is set and it is given a client (as the bot does):
    at DEBUG that is still there to see, proving the warning still comes."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    cfg = config.from_dict({"sqs": {"queue_url": GOOD_URL}, "store": {"path": "s.sqlite3"}},
                           base_dir=tmp_path)
    client = slack.make_client("xoxb-test", f"http://127.0.0.1:{closed_port()}/api/", 1)
    with bot_log(level) as (stream, _):
        runtime.build(cfg, slack.SlackSender(client), client, secrets={}).stop()
    lines = [line for line in stream.getvalue().splitlines() if "`token` will be unused" in line]
    assert [" DEBUG voisobot.bolt: " in line for line in lines] == ([True] if shown else [])


@pytest.mark.parametrize("level, shown", [("INFO", False), ("DEBUG", True)])
def test_check_shows_no_retry_chatter_of_the_slack_client(
        restored_logging, tmp_path, monkeypatch, capsys, level, shown):
    """Slack unreachable: check says so in its own words; the client's own lines about
    failing and retrying are DEBUG."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    path = tmp_path / "config.toml"
    path.write_text(f'[sqs]\nqueue_url = "{GOOD_URL}"\n[log]\nlevel = "{level}"\n'
                    f'[slack]\napi_base_url = "http://127.0.0.1:{closed_port()}/api/"\n'
                    "timeout_seconds = 1\n", encoding="utf-8")
    cli.main(["--config", str(path), "check"])
    out, err = capsys.readouterr()
    assert "cannot reach Slack" in out
    chatter = [line for line in err.splitlines() if "voisobot.slack_client" in line]
    assert all(" DEBUG " in line for line in chatter)
    assert bool(chatter) == shown
    assert "Going to retry the same request" in err if shown else "retry" not in err.lower()


# --- no secret in the log of a run --------------------------------------------------------

BOT_TOKEN, APP_TOKEN = "xoxb-1-logs-bot-token", "xapp-1-logs-app-token"


@pytest.fixture
def services():
    """The fake Slack (Web API and Socket Mode) and Teams webhook a run talks to."""
    socket_mode = FakeSocketMode().start()
    slack_api = FakeSlack(channels={CHANNEL, ALERTS}, token=BOT_TOKEN, app_token=APP_TOKEN,
                          socket_url=socket_mode.url).start()
    teams = FakeTeamsWebhook().start()
    yield slack_api, socket_mode, teams
    for fake in (socket_mode, slack_api, teams):
        fake.stop()


def run_config(tmp_path, queue_url, sqs_url, slack_api, mode: str, log_format: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[sqs]\nqueue_url = "{queue_url}"\nendpoint_url = "{sqs_url}"\n'
        "wait_time_seconds = 1\npoll_interval_seconds = 0.1\n"
        f'[store]\npath = "store.sqlite3"\n[log]\nlevel = "DEBUG"\nformat = "{log_format}"\n'
        f'[slack]\napi_base_url = "{slack_api.base_url}"\ndefault_channel = "{ALERTS}"\n'
        f'mode = "{mode}"\n[http]\nhost = "127.0.0.1"\n[access]\nusers = ["{ALLOWED}"]\n'
        '[teams]\ndefault_destination = "secops"\n'
        '[teams.destinations.secops]\nwebhook_url_env = "SECOPS_WEBHOOK_URL"\n', encoding="utf-8")
    return path


def talk_to_the_bot(mode: str, port: int, slack_api, socket_mode) -> None:
    """A command answered, and in HTTP mode a request with a bad signature refused."""
    if mode == "socket":
        assert socket_mode.wait_connected(20), "no Socket Mode connection"
        assert socket_mode.send("slash_commands", slash_command(
            "recent", slack_api.response_url("c1"))) is not None
    else:
        running = Bot.__new__(Bot)
        running.fake, running.url = slack_api, f"http://127.0.0.1:{port}"
        assert wait_for(lambda: [1] if _listening(port) else [], timeout=20), "no server"
        assert running.command("recent")[0] == 200
        assert running.command("recent", signature="v0=" + "0" * 64)[0] == 401
    assert wait_for(lambda: slack_api.calls_to(RESPONSE_URL), timeout=20), "no answer"


@pytest.mark.parametrize("mode, log_format", [("socket", "text"), ("http", "json")])
def test_no_secret_reaches_the_log_of_a_run(tmp_path, moto_server, queue_url, sqs_admin,
                                            services, mode, log_format):
    """bot.py run at DEBUG: alerts posted to Slack and Teams (some refused first), a rejected
    message, a command; neither token, the signing secret nor a webhook URL (nor its
    signature) is in what it printed. In JSON, every line parses."""
    slack_api, socket_mode, teams = services
    port = free_port()
    path = run_config(tmp_path, queue_url, moto_server["url"], slack_api, mode, log_format)
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
           "SLACK_SIGNING_SECRET": SECRET, "SECOPS_WEBHOOK_URL": teams.url("secops"),
           "PORT": str(port)}
    slack_api.fail("chat.postMessage", "rate_limited")
    teams.fail("server_error")
    worker = subprocess.Popen([sys.executable, "bot.py", "--config", str(path), "run"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        send_event(sqs_admin, queue_url, "app_login/unauthorized_ip")
        sqs_admin.send_message(QueueUrl=queue_url, MessageBody="not json")
        talk_to_the_bot(mode, port, slack_api, socket_mode)
        assert wait_for(lambda: slack_api.messages(ALERTS), timeout=30), "no alert posted"
        assert wait_for(lambda: teams.posts("secops"), timeout=30), "no card posted"
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "did not take it" in err and "rejected SQS message" in err  # the failures logged
    for secret in (BOT_TOKEN, APP_TOKEN, SECRET, teams.url("secops"), teams.secret):
        assert secret not in out + err
    if log_format == "json":
        entries = [json.loads(line) for line in err.splitlines()]
        (rejected,) = [e for e in entries if e["message"].startswith("rejected SQS message")]
        assert rejected["sqs_message_id"] in rejected["message"]
