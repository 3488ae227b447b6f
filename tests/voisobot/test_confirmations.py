"""'Was this you?' end to end: the bot in HTTP mode against moto's SQS and the fake Slack
(users.lookupByEmail, conversations.open, DMs, chat.getPermalink), answers pressed over
signed HTTP. Yes, no and silence; a wrong presser; two presses racing; a restart and a
Slack outage while asking; unmapped people and aliases; one question per person per
alert, however many events it stands for."""

import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fakes.slack_api import FakeSlack
from tests.test_slack_app import (
    ALERTS,
    ALLOWED,
    CHANNEL,
    SECRET,
    Bot,
    posted_alert,
    send_event,
    shown,
    started_bot,
    wait_for,
)
from voisobot.intake import utc_now
from voisobot.store import time_text


def waited(read, count: int = 1, timeout: float = 30.0) -> list:
    """wait_for with room for a loaded machine: the jobs run every second or so."""
    return wait_for(read, count, timeout)


JANE, JANE_ID = "jane@acme.example", "UJANE00001"
ADMIN, ADMIN_ID = "admin@acme.example", "UADMIN0001"
ESCALATION, RESPONDERS = "CESCALATE1", "SRESPOND01"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    slack = FakeSlack(channels={CHANNEL, ALERTS, ESCALATION},
                      people={JANE: JANE_ID, ADMIN: ADMIN_ID}).start()
    yield slack
    slack.stop()


@pytest.fixture
def make_bot(tmp_path, moto_server, queue_url, fake):
    """The bot with [confirm] on (started again after a stop: a restart)."""
    started = []

    def make(**confirm) -> Bot:
        runtime = started_bot(
            tmp_path, queue_url, moto_server["url"], fake, {"SLACK_SIGNING_SECRET": SECRET},
            slack_settings={"mode": "http"}, http={"host": "127.0.0.1", "port": 0},
            access={"users": [ALLOWED]},
            confirm={"enabled": True, "escalation_channel": ESCALATION,
                     "escalate_usergroup": RESPONDERS, "if_not": "If not, tell #sec-help.",
                     **confirm})
        started.append(runtime)
        return Bot(runtime, fake)

    yield make
    for runtime in started:
        runtime.stop()


def dm_channel(user_id: str) -> str:
    return "D" + user_id[1:]


def question_dm(fake: FakeSlack, user_id: str, count: int = 1, timeout: float = 30.0) -> dict:
    found = waited(lambda: fake.messages(dm_channel(user_id)), count, timeout)
    assert len(found) == count, f"{len(found)} DM(s) to {user_id}, expected {count}"
    return found[-1]


def press(bot: Bot, answer: str, message: dict, user: str, response: str = "a1",
          asked: str = JANE_ID):
    """``user`` presses Yes or No on the DM sent to ``asked``, as Slack sends it."""
    value = next(e["value"] for b in message["blocks"] if b["type"] == "actions"
                 for e in b["elements"])
    return bot.click(f"voiso_confirm_{answer}", value, user=user, response=response,
                     message=message, channel=dm_channel(asked),
                     container_channel=dm_channel(asked))


def current(fake: FakeSlack, channel: str, ts: str) -> dict:
    return next(m for m in fake.messages(channel) if m["ts"] == ts)


def alert_shows(fake: FakeSlack, ts: str, text: str, timeout: float = 30.0) -> str:
    seen = waited(lambda: [1] if text in shown(current(fake, ALERTS, ts)) else [], 1, timeout)
    assert seen, shown(current(fake, ALERTS, ts))
    return shown(current(fake, ALERTS, ts))


def jane_asked(make_bot, fake: FakeSlack, sqs_admin, queue_url: str, **confirm
               ) -> tuple[Bot, dict, dict]:
    """A bot that has posted the alert of Jane's failed passwords and asked her: (the bot,
    the alert in Slack, the DM)."""
    bot = make_bot(**confirm)
    send_event(sqs_admin, queue_url, "app_login/incorrect_password", user=JANE)
    _, alert = posted_alert(fake, 30)
    return bot, alert, question_dm(fake, JANE_ID)


def dm_answer_lost(make_bot, fake: FakeSlack, sqs_admin, queue_url: str) -> Bot:
    """A bot whose DM to Jane will land in Slack with its answer lost (the post's answer
    never comes): the alert is posted first, and the DM held back until the fault is set."""
    bot = make_bot()
    fake.fail("conversations.open", "server_error", times=2)  # holds the DM back a while
    send_event(sqs_admin, queue_url, "app_login/incorrect_password", user=JANE)
    posted_alert(fake, 30)
    fake.fail("chat.postMessage", "post_then_hang")
    return bot


def a_minute_passes(bot: Bot) -> None:
    """The question was asked two minutes ago (once the bot has recorded it as asked: the
    DM is in Slack a moment before)."""
    waited(lambda: [q for q in questions(bot) if q["state"] == "asked"])
    with bot.runtime.store.connection() as conn:
        conn.execute("UPDATE questions SET asked_at = ? WHERE state = 'asked'",
                     (time_text(utc_now() - timedelta(minutes=2)),))


def questions(bot: Bot) -> list[dict]:
    rows = bot.runtime.store.connection().execute("SELECT * FROM questions ORDER BY id")
    return [dict(row) for row in rows]


# --- yes, no, silence ---------------------------------------------------------------------

def test_yes_from_the_person_asked_shows_confirmed_on_the_alert(make_bot, fake, sqs_admin,
                                                                 queue_url):
    bot = make_bot()
    send_event(sqs_admin, queue_url, "app_login/incorrect_password", user=JANE)
    _, alert = posted_alert(fake, 30)
    dm = question_dm(fake, JANE_ID)
    assert "Voiso security: was this you?" in shown(dm) and "If not, tell #sec-help." in shown(dm)
    assert press(bot, "yes", dm, JANE_ID)[0] == 200
    text = alert_shows(fake, alert["ts"], f"Confirmed by <@{JANE_ID}>")
    assert "Acknowledge" in json.dumps(current(fake, ALERTS, alert["ts"]))  # not auto-acked
    in_dm = dm_channel(JANE_ID)
    waited(lambda: [1] if "You answered yes" in shown(current(fake, in_dm, dm["ts"])) else [])
    assert "You answered yes" in shown(current(fake, in_dm, dm["ts"]))
    (row,) = waited(lambda: [r for r in bot.audit() if r["action"] == "answer"])
    assert (row["user_id"], row["allowed"]) == (JANE_ID, 1)
    assert row["outcome"].startswith("answered yes")
    assert "NOT" not in text and fake.messages(ESCALATION) == []


def test_yes_acknowledges_the_alert_when_configured(make_bot, fake, sqs_admin, queue_url):
    bot = make_bot(auto_ack_on_yes=True)
    send_event(sqs_admin, queue_url, "app_login/unauthorized_ip", user=JANE)
    _, alert = posted_alert(fake, 30)
    press(bot, "yes", question_dm(fake, JANE_ID), JANE_ID)
    alert_shows(fake, alert["ts"], f"Acknowledged by <@{JANE_ID}>")


def test_no_makes_the_alert_critical_and_escalates_once_mentioning_the_configured_group(
        make_bot, fake, sqs_admin, queue_url):
    bot = make_bot()
    send_event(sqs_admin, queue_url, "app_login/incorrect_password", user=JANE)
    _, alert = posted_alert(fake, 30)
    press(bot, "no", question_dm(fake, JANE_ID), JANE_ID)
    text = alert_shows(fake, alert["ts"], f"<@{JANE_ID}> says this was NOT them")
    assert "CRITICAL" in text
    (escalation,) = waited(lambda: fake.messages(ESCALATION), 1, 30)
    said = shown(escalation)
    assert f"<!subteam^{RESPONDERS}>" in said or RESPONDERS in json.dumps(escalation)
    assert "says this was NOT them" in said and "/archives/C0ALERTS01/p" in said
    bot.runtime.confirmations.run()  # another run escalates nothing more
    assert len(fake.messages(ESCALATION)) == 1
    assert questions(bot)[0]["escalation"] == "sent"
    counted = bot.runtime.metrics.registry.get_sample_value
    steps = waited(lambda: [1] if counted("voiso_questions_total", {"outcome": "escalated"})
                     else [])
    assert steps and counted("voiso_questions_total", {"outcome": "asked"}) == 1.0
    assert counted("voiso_questions_total", {"outcome": "escalated"}) == 1.0


def test_silence_expires_the_question_and_escalates_when_configured(make_bot, fake,
                                                                     sqs_admin, queue_url):
    bot = make_bot(timeout_minutes=1, escalate_on_timeout=True)
    send_event(sqs_admin, queue_url, "user/user_added", who=ADMIN)
    _, alert = posted_alert(fake, 30)
    dm = question_dm(fake, ADMIN_ID)
    assert "did you make this change?" in shown(dm)
    in_dm = dm_channel(ADMIN_ID)
    a_minute_passes(bot)
    alert_shows(fake, alert["ts"], f"No answer from <@{ADMIN_ID}> in time")
    (escalation,) = waited(lambda: fake.messages(ESCALATION), 1, 30)
    assert "did not answer within 1 minutes" in shown(escalation)
    waited(lambda: [1] if "No answer came" in shown(current(fake, in_dm, dm["ts"])) else [])
    assert "voiso_confirm_yes" not in json.dumps(current(fake, in_dm, dm["ts"]))


def test_silence_without_escalate_on_timeout_only_says_so(make_bot, fake, sqs_admin,
                                                           queue_url):
    bot = make_bot(timeout_minutes=1)
    send_event(sqs_admin, queue_url, "user/user_added", who=ADMIN)
    _, alert = posted_alert(fake, 30)
    question_dm(fake, ADMIN_ID)
    a_minute_passes(bot)
    alert_shows(fake, alert["ts"], f"No answer from <@{ADMIN_ID}> in time")
    bot.runtime.confirmations.run()
    assert fake.messages(ESCALATION) == [] and questions(bot)[0]["escalation"] is None


# --- who may answer, and once ---------------------------------------------------------------

def test_anyone_but_the_person_asked_is_refused_and_audited(make_bot, fake, sqs_admin,
                                                           queue_url):
    bot, _, dm = jane_asked(make_bot, fake, sqs_admin, queue_url)
    assert press(bot, "no", dm, ALLOWED, response="x1")[0] == 200  # an analyst, in [access]
    (note,) = bot.answers("x1")
    assert "Only the person this question was sent to" in note["text"]
    (row,) = waited(lambda: [r for r in bot.audit() if r["action"] == "answer"])
    assert (row["user_id"], row["allowed"]) == (ALLOWED, 0)
    assert questions(bot)[0]["answer"] is None and fake.messages(ESCALATION) == []


def test_two_presses_at_once_record_one_answer(make_bot, fake, sqs_admin, queue_url):
    bot, _, dm = jane_asked(make_bot, fake, sqs_admin, queue_url)
    presses = [threading.Thread(target=press, args=(bot, answer, dm, JANE_ID, f"r{i}"))
               for i, answer in enumerate(["yes", "no", "yes", "no"])]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join()
    rows = waited(lambda: [r for r in bot.audit() if r["action"] == "answer"], 4)
    assert len(rows) == 4
    assert sum(r["outcome"].startswith("answered") for r in rows) == 1
    (question,) = questions(bot)
    recorded = next(r for r in rows if r["outcome"].startswith("answered"))
    assert recorded["outcome"].startswith(f"answered {question['answer']}")
    bot.runtime.confirmations.run()
    assert len(fake.messages(ESCALATION)) == (1 if question["answer"] == "no" else 0)


# --- exactly once -------------------------------------------------------------------------------

def test_a_restart_while_a_question_is_open_asks_nobody_twice_and_takes_the_answer(
        make_bot, fake, sqs_admin, queue_url):
    bot, _, dm = jane_asked(make_bot, fake, sqs_admin, queue_url)
    bot.runtime.stop()
    bot = make_bot()
    bot.runtime.confirmations.run()
    assert len(fake.messages(dm_channel(JANE_ID))) == 1
    press(bot, "yes", dm, JANE_ID)
    waited(lambda: [1] if questions(bot)[0]["answer"] else [])
    assert questions(bot)[0]["answer"] == "yes"


def test_a_dm_that_may_have_been_posted_in_an_outage_is_found_not_sent_twice(
        make_bot, fake, sqs_admin, queue_url):
    bot = dm_answer_lost(make_bot, fake, sqs_admin, queue_url)
    waited(lambda: [q for q in questions(bot) if q["state"] == "asked"], 1, 40)
    assert len(fake.messages(dm_channel(JANE_ID))) == 1
    assert questions(bot)[0]["state"] == "asked"


def test_a_press_on_a_dm_whose_post_answer_was_lost_is_taken(make_bot, fake, sqs_admin,
                                                              queue_url):
    """The DM landed, its answer was lost and the history cannot be read yet: the person's
    own press in that DM proves it was asked, and the answer counts."""
    bot = dm_answer_lost(make_bot, fake, sqs_admin, queue_url)
    fake.fail("conversations.history", "server_error", times=100)
    dm = question_dm(fake, JANE_ID)
    waited(lambda: [q for q in questions(bot) if q["state"] == "uncertain"], 1, 20)
    press(bot, "yes", dm, JANE_ID)
    waited(lambda: [1] if questions(bot)[0]["answer"] else [])
    (question,) = questions(bot)
    assert (question["answer"], question["dm_ts"]) == ("yes", dm["ts"])
    assert len(fake.messages(dm_channel(JANE_ID))) == 1


def test_without_im_history_a_dm_whose_answer_was_lost_is_asked_again(make_bot, fake,
                                                                     sqs_admin, queue_url,
                                                                     caplog):
    """At least once rather than never, as alerts: the person may get the question twice,
    and the log names the scope that would prevent it."""
    bot = dm_answer_lost(make_bot, fake, sqs_admin, queue_url)
    fake.fail("conversations.history", "missing_scope", times=100)
    waited(lambda: [q for q in questions(bot) if q["state"] == "asked"], 1, 40)
    assert len(fake.messages(dm_channel(JANE_ID))) == 2
    assert "is posted again" in caplog.text


def test_slack_down_while_asking_asks_once_it_is_back(make_bot, fake, sqs_admin, queue_url):
    bot = make_bot()
    fake.fail("users.lookupByEmail", "server_error", times=2)
    send_event(sqs_admin, queue_url, "app_login/incorrect_password", user=JANE)
    posted_alert(fake, 30)
    waited(lambda: [q for q in questions(bot) if q["state"] == "asked"], 1, 40)
    assert len(fake.messages(dm_channel(JANE_ID))) == 1


# --- who is asked -----------------------------------------------------------------------------

def test_an_unmapped_email_is_said_on_the_alert(make_bot, fake, sqs_admin, queue_url):
    make_bot()
    send_event(sqs_admin, queue_url, "app_login/incorrect_password", user="ghost@acme.example")
    _, alert = posted_alert(fake, 30)
    alert_shows(fake, alert["ts"], "Could not ask: no Slack user for ghost@acme.example")


def test_an_alias_maps_a_voiso_address_to_the_slack_one(make_bot, fake, sqs_admin, queue_url):
    make_bot(aliases={"j.doe@voiso-login.example": JANE})
    send_event(sqs_admin, queue_url, "app_login/incorrect_password",
               user="J.Doe@voiso-login.example")
    posted_alert(fake, 30)
    assert "was this you?" in shown(question_dm(fake, JANE_ID))


def test_an_admin_who_changed_their_own_account_is_asked_once(make_bot, fake, sqs_admin,
                                                             queue_url):
    bot = make_bot()
    send_event(sqs_admin, queue_url, "user/password_changed", user=JANE, who=JANE)
    posted_alert(fake, 30)
    question_dm(fake, JANE_ID)
    (question,) = questions(bot)
    assert question["roles"] == "user,admin"


def test_a_storm_asks_each_person_once_per_alert(make_bot, fake, sqs_admin, queue_url):
    bot = make_bot()
    for _ in range(8):
        send_event(sqs_admin, queue_url, "app_login/incorrect_password", user=JANE)
    posted_alert(fake, 30)
    question_dm(fake, JANE_ID)
    waited(lambda: [1] if bot.runtime.store.connection().execute(
        "SELECT count(*) FROM events").fetchone()[0] == 8 else [], 1, 30)
    bot.runtime.confirmations.run()
    assert len(questions(bot)) == 1 and len(fake.messages(dm_channel(JANE_ID))) == 1


def test_successful_login_asks_nobody_by_default(make_bot, fake, sqs_admin, queue_url):
    bot = make_bot()
    send_event(sqs_admin, queue_url, "app_login/successful_login", user=JANE)
    posted_alert(fake, 30)
    bot.runtime.confirmations.run()
    assert questions(bot) == [] and fake.calls_to("users.lookupByEmail") == []


# --- the commands -------------------------------------------------------------------------------

def test_pending_lists_open_questions_and_user_shows_the_answers(make_bot, fake, sqs_admin,
                                                                 queue_url):
    bot, _, dm = jane_asked(make_bot, fake, sqs_admin, queue_url)
    waited(lambda: [q for q in questions(bot) if q["state"] == "asked"])
    bot.command("pending", response="p1")
    (answer,) = bot.answers("p1")
    assert "no answer yet" in shown(answer) and f"<@{JANE_ID}>" in shown(answer)
    press(bot, "no", dm, JANE_ID)
    waited(lambda: [1] if questions(bot)[0]["answer"] else [])
    bot.command(f"user {JANE}", response="u1")
    (profile,) = bot.answers("u1")
    assert "NO, not them" in shown(profile)


def test_kill_9_while_asking_asks_nobody_twice_and_nobody_never(tmp_path, moto_server,
                                                                 make_queue, sqs_admin):
    """bot.py run killed with SIGKILL while it asks 12 people, each time in the middle of a
    post whose answer never came: after a last restart every person has exactly one DM."""
    people = {f"p{i:02d}@acme.example": f"UPERSON{i:03d}" for i in range(12)}
    fake = FakeSlack(channels={ALERTS}, people=people).start()
    queue_url = make_queue(VisibilityTimeout=1)
    path = tmp_path / "config.toml"
    path.write_text(
        f'[sqs]\nqueue_url = "{queue_url}"\nendpoint_url = "{moto_server["url"]}"\n'
        "wait_time_seconds = 1\npoll_interval_seconds = 0.1\n"
        '[store]\npath = "store.sqlite3"\n[ops]\nport = 0\n'
        f'[slack]\napi_base_url = "{fake.base_url}"\ndefault_channel = "{ALERTS}"\n'
        "timeout_seconds = 2\ngroup_window_minutes = 0\n[confirm]\nenabled = true\n",
        encoding="utf-8")
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test"}
    for email in people:
        send_event(sqs_admin, queue_url, "app_login/incorrect_password", user=email)
    chance = random.Random(20261201)
    store = tmp_path / "store.sqlite3"

    def asked() -> int:
        if not store.exists():
            return 0
        with sqlite3.connect(store, timeout=10) as conn:
            try:
                return conn.execute("SELECT count(*) FROM questions WHERE state = 'asked'"
                                    ).fetchone()[0]
            except sqlite3.OperationalError:
                return 0

    try:
        for _ in range(3):
            worker = subprocess.Popen([sys.executable, "bot.py", "--config", str(path), "run"],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            before = len(dm_posts(fake))
            waited(lambda before=before: dm_posts(fake)[before:], 1, 30)
            # The next post (a DM or an alert) lands but its answer never comes: killed in
            # that moment, the bot must find it after the restart, not post it again.
            posts = len(fake.calls_to("chat.postMessage"))
            fake.fail("chat.postMessage", "post_then_hang")
            waited(lambda posts=posts: fake.calls_to("chat.postMessage")[posts:], 1, 30)
            time.sleep(chance.uniform(0.0, 1.0))
            worker.kill()
            worker.wait(timeout=10)
        worker = subprocess.Popen([sys.executable, "bot.py", "--config", str(path), "run"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            waited(lambda: [1] * asked(), len(people), 60)
        finally:
            worker.kill()
            worker.wait(timeout=10)
        per_person = {user_id: len(fake.messages(dm_channel(user_id)))
                      for user_id in people.values()}
        assert per_person == {user_id: 1 for user_id in people.values()}
        assert len(fake.messages(ALERTS)) == len(people)  # and every alert once
    finally:
        fake.stop()


def dm_posts(fake: FakeSlack) -> list:
    return [c for c in fake.calls_to("chat.postMessage")
            if str(c.payload.get("channel", "")).startswith("D")]
