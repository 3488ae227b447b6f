"""``bot.py demo`` run the way a user runs it: a real subprocess, then its SQLite file read back."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fakes.adaptive_card_schema import validate_card
from tests.fakes.teams_webhook import FakeTeamsWebhook
from tests.voisobot.slack.test_render import hostile_alert
from voisobot import samples
from voisobot.demo import ConsoleSender, _alert_view_lines, _console_text, _Snapshot
from voisobot.render import AlertView
from voisobot.slack.render import SlackRenderer

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}
SUMMARY = re.compile(r"stored (\d+) events of (\d+) kinds, (\d+) duplicates, (\d+) rejected")
UNKNOWN_KIND = "app_login/mfa_failed"
HOSTILE_NAME = "<!channel> <https://evil.example|Voiso login>"


def demo_command(store: Path, *extra: str) -> list[str]:
    return [sys.executable, "bot.py", "demo", "--store", str(store), *extra]


def demo_env() -> dict[str, str]:
    """The developer's environment without any real Slack identity: tests never post."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "VOISO_DEMO_CHANNEL",
                          "VOISO_DEMO_TEAMS_URL")}
    return {**env, **FAKE_AWS_ENV}


def query(store: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def stored_kinds(store: Path) -> dict[str, int]:
    return dict(query(store, "SELECT type || '/' || event, count(*) FROM events GROUP BY 1"))


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory):
    """One eight-second demo, shared by the tests that read its output and its store."""
    store = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    result = subprocess.run(demo_command(store, "--seconds", "8"), cwd=REPO_ROOT, env=demo_env(),
                            capture_output=True, text=True, timeout=60)
    return result, store


def test_a_timed_demo_exits_0_with_a_summary_that_matches_its_store(short_demo):
    result, store = short_demo
    assert result.returncode == 0, result.stderr
    summary = SUMMARY.search(result.stdout)
    assert summary, result.stdout
    kinds = stored_kinds(store)
    assert int(summary[1]) == sum(kinds.values())
    assert int(summary[2]) == len(kinds)
    assert int(summary[4]) == query(store, "SELECT count(*) FROM rejected")[0][0]


def test_a_timed_demo_stores_every_documented_kind(short_demo):
    _, store = short_demo
    assert set(samples.EXAMPLES) <= set(stored_kinds(store))


def test_a_timed_demo_stores_an_unknown_kind(short_demo):
    _, store = short_demo
    assert stored_kinds(store).get(UNKNOWN_KIND, 0) > 0


def test_a_timed_demo_keeps_malformed_messages_as_rejections_with_reasons(short_demo):
    _, store = short_demo
    reasons = [reason for (reason,) in query(store, "SELECT reason FROM rejected")]
    assert reasons
    assert all(reason.strip() for reason in reasons)


def test_a_timed_demo_stores_a_hostile_login_name_verbatim(short_demo):
    _, store = short_demo
    users = {user for (user,) in query(store, "SELECT user FROM events")}
    assert HOSTILE_NAME in users


def test_without_a_slack_token_the_demo_delivers_alerts_to_the_console(short_demo):
    result, store = short_demo
    sent = query(store, "SELECT count(*) FROM alerts WHERE state = 'sent'")[0][0]
    muted = query(store, "SELECT count(*) FROM alerts a JOIN events e ON e.id = a.event_id "
                         "WHERE e.event = 'successful_login'")[0][0]
    assert sent > 0 and muted == 0  # ordinary logins are muted by the demo's route
    assert "alerts to the console (set SLACK_BOT_TOKEN to post to Slack): sent" in result.stdout
    assert re.search("latest alert: [\U0001f534\U0001f7e0\U0001f7e1\U0001f535\u2139]",
                     result.stdout)  # a notification, led by its severity's emoji
    layout = result.stdout.split("the latest alert, as Slack would show it:\n", 1)[1]
    assert re.match(r"  C0CONSOLE1:\n    == .+ ==\n", layout), layout[:300]
    assert re.search(r"\n    \[Acknowledge\]( \[Profile\])?\n", layout), layout[:600]


def test_with_a_teams_webhook_the_demo_posts_its_cards_there_too(tmp_path):
    webhook = FakeTeamsWebhook().start()
    try:
        result = subprocess.run(
            demo_command(tmp_path / "demo.sqlite3", "--seconds", "5"), cwd=REPO_ROOT,
            env={**demo_env(), "VOISO_DEMO_TEAMS_URL": webhook.url("demo")},
            capture_output=True, text=True, timeout=60)
    finally:
        webhook.stop()
    assert result.returncode == 0, result.stderr
    cards = [post["attachments"][0]["content"] for post in webhook.posts("demo")]
    assert cards, result.stdout
    for card in cards:
        validate_card(card)
    assert "test-secret" not in result.stdout + result.stderr


def test_a_timed_demo_prints_no_control_characters(short_demo):
    result, _ = short_demo
    assert [char for char in result.stdout if not char.isprintable() and char != "\n"] == []


@pytest.mark.parametrize(("value", "shown"), [
    ("maria.lopez@acme.example", "maria.lopez@acme.example"),
    ("root\x1b[2J\x1b[31mok", "root\\x1b[2J\\x1b[31mok"),
    ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
    ("two\nlines\r", "two\\nlines\\r"),
    ("x" * 50, "x" * 37 + "..."),
])
def test_console_text_escapes_control_characters_and_cuts_long_values(value, shown):
    assert _console_text(value, 40) == shown


def wait_for_stored_events(store: Path, demo: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert demo.poll() is None, "the demo exited before storing anything"
        try:
            if query(store, "SELECT count(*) FROM events")[0][0] > 0:
                return
        except sqlite3.Error:
            pass  # not created or not migrated yet
        time.sleep(0.2)
    raise AssertionError(f"no events stored in {store} within {timeout} s")


def served_by_the_ops_listener(printed: str) -> None:
    """The URLs the demo printed answer: health, readiness and the metrics of its run."""
    (url,) = re.findall(r"^health and metrics: (http://127\.0\.0\.1:\d+)/healthz  \1/readyz  "
                        r"\1/metrics$", printed, re.MULTILINE)
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(url + path, timeout=10) as response:
            assert response.status == 200
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        assert b"\nvoiso_events_stored_total{" in response.read()


def default_sigint() -> None:
    # A shell starting a job in the background makes it ignore SIGINT, and Python then
    # never turns SIGINT into KeyboardInterrupt: give the demo what a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_the_demo_cleanly_with_a_final_summary(tmp_path, signum):
    store, output = tmp_path / "demo.sqlite3", tmp_path / "stdout.txt"
    with output.open("w") as stdout, (tmp_path / "stderr.txt").open("w") as stderr:
        demo = subprocess.Popen(demo_command(store), cwd=REPO_ROOT, env=demo_env(), stdout=stdout,
                                stderr=stderr, preexec_fn=default_sigint)
        try:
            wait_for_stored_events(store, demo, timeout=20)
            served_by_the_ops_listener(output.read_text())
            demo.send_signal(signum)
            returncode = demo.wait(timeout=30)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    printed = output.read_text()
    assert returncode == 0, (tmp_path / "stderr.txt").read_text()
    assert "Ctrl-C" in printed.splitlines()[0]
    summary = SUMMARY.search(printed)
    assert summary, printed
    assert int(summary[1]) == sum(stored_kinds(store).values())


def alert_message(count: int = 1) -> dict:
    """An alert whose user tries to forge a line and clear the screen, alone or grouped."""
    alert = hostile_alert("root\x1b[2J\n[Acknowledge]", "app_login/unauthorized_ip")
    group = {"count": count, "first_seen": "2024-01-01 00:00:00 UTC",
             "last_seen": "2024-01-01 00:05:00 UTC", "users": 1, "ips": 1,
             "top_users": [], "top_ips": []} if count > 1 else None
    return SlackRenderer().render(AlertView(alert.event, alert.severity, alert_id=1,
                                            group=group))


def console_screen(console: ConsoleSender) -> list[str]:
    snapshot = _Snapshot({}, {}, [], [], "", "", tuple(console.latest), "",
                         console.latest_view, console.grouping_text())
    return _alert_view_lines(snapshot)


def test_the_console_shows_the_latest_alert_laid_out_with_hostile_text_on_its_own_line():
    console = ConsoleSender()
    console.post("C0CONSOLE1", alert_message(), None)
    screen = console_screen(console)
    assert screen[:4] == ["", "the latest alert, as Slack would show it:", "C0CONSOLE1:",
                          "  == 🟠 HIGH · Login attempt from an unauthorized IP =="]
    assert "  User: root\\u001b[2J\\n[Acknowledge]" in screen
    assert screen[-1] == "  [Acknowledge]"
    assert [line for line in screen if line.lstrip().startswith("[")] == ["  [Acknowledge]"]
    assert not [line for line in screen if not line.isprintable()]
    assert not [line for line in screen if line.startswith("grouping:")]  # nothing grouped


def test_the_console_explains_grouping_once_posts_turn_into_updates_and_replies():
    console = ConsoleSender()
    posted = console.post("C0CONSOLE1", alert_message(), None)
    console.update("C0CONSOLE1", posted.ts, alert_message(3))
    console.post("C0CONSOLE1", alert_message(), None, thread_ts=posted.ts)
    screen = console_screen(console)
    assert screen[2] == "C0CONSOLE1 (thread):"
    assert screen[-1] == ("grouping: 1 alerts posted; related events joined an alert already "
                          "posted instead of making a new one: its message was updated in "
                          "place 1 times (its count of events grows) and 1 of them went under "
                          "it as thread replies")
