"""Waking the jobs when events commit: the delivery runs at once instead of at its next poll,
coalesced, never two at once, and never after a stop began. Real scheduler, real SQLite,
moto's SQS server and the fake Slack Web API over HTTP; no timing assertions (a wait for
something to happen has a generous bound, nothing is asserted about how long it took)."""

import json
import logging
import threading
from datetime import UTC, datetime

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.slack_api import FakeSlack
from tests.test_bot import messages_left, wait_for
from voisobot import config, jobs, runtime, samples
from voisobot.intake import Intake, to_delivery
from voisobot.jobs import WakeState
from voisobot.slack import sender as slack

CHANNEL = "C0DEFAULT1"
LONG_POLL = 60.0  # the delivery's poll, far beyond any wait here: only a wake runs it sooner


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels={CHANNEL}).start()
    yield fake
    fake.stop()


def bot_config(queue_url, moto_server, tmp_path, **sections) -> config.Config:
    return config.from_dict({**sections,
        "sqs": {"queue_url": queue_url, "endpoint_url": moto_server["url"],
                "wait_time_seconds": 1, "poll_interval_seconds": 0.1,
                "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5,
                "request_timeout_seconds": 2.0},
        "store": {"path": "store.sqlite3"}, "ops": {"port": 0},
        "slack": {"default_channel": CHANNEL}}, base_dir=tmp_path)


def bot_with_long_poll(cfg: config.Config, fake: FakeSlack) -> runtime.Runtime:
    bot = runtime.build(cfg, sender=slack.SlackSender(
        slack.make_client("xoxb-test", fake.base_url, timeout=2)))
    bot.delivery.run_interval = LONG_POLL
    return bot


def body(user: str) -> dict:
    event = samples.example("app_login/unauthorized_ip", now=datetime.now(UTC))
    event["params"]["user"] = user
    return event


def next_run_in(bot_scheduler, job_id: str) -> float:
    """Seconds until the job's next run; inf while it is paused (running)."""
    at = bot_scheduler.get_job(job_id).next_run_time
    return float("inf") if at is None else (at - datetime.now(UTC)).total_seconds()


def test_a_committed_event_is_posted_long_before_the_delivery_poll(
        sqs_admin, queue_url, moto_server, tmp_path, fake_slack, monkeypatch):
    monkeypatch.setattr(jobs, "DAILY_COUNT_SECONDS", LONG_POLL)  # the counting job's poll too
    bot = bot_with_long_poll(bot_config(queue_url, moto_server, tmp_path), fake_slack)
    bot.start()
    try:
        wait_for(lambda: LONG_POLL / 2 < next_run_in(bot.scheduler, jobs.DELIVERY_JOB)
                 < LONG_POLL + 1 and LONG_POLL / 2 < next_run_in(
                     bot.scheduler, jobs.DAILY_COUNT_JOB) < LONG_POLL + 1,
                 what="the first runs, which leave the next ones a minute away")
        sqs_admin.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body("a@x.io")))
        wait_for(lambda: fake_slack.messages(CHANNEL), timeout=10, what="the alert")
        wait_for(lambda: bot.store.connection().execute(
            "SELECT value FROM cursors WHERE name = 'daily_counted'").fetchone()[0] == 1,
            timeout=10, what="the count")
    finally:
        bot.stop()
    assert len(fake_slack.messages(CHANNEL)) == 1


def test_an_alert_posted_wakes_the_question_long_before_its_poll(
        sqs_admin, queue_url, moto_server, tmp_path):
    jane = "jane@acme.example"
    fake = FakeSlack(channels={CHANNEL}, people={jane: "UJANE00001"}).start()
    cfg = bot_config(queue_url, moto_server, tmp_path, confirm={"enabled": True})
    client = slack.make_client("xoxb-test", fake.base_url, timeout=2)
    bot = runtime.build(cfg, sender=slack.SlackSender(client), client=client)
    bot.delivery.run_interval = bot.confirmations.run_interval = LONG_POLL
    bot.start()
    try:
        wait_for(lambda: LONG_POLL / 2 < next_run_in(bot.scheduler, jobs.CONFIRM_JOB)
                 < LONG_POLL + 1, what="the first run, which leaves the next a minute away")
        event = samples.example("app_login/incorrect_password", now=datetime.now(UTC))
        event["params"]["user"] = jane
        sqs_admin.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
        wait_for(lambda: fake.messages("DJANE00001"), timeout=10, what="the question")
    finally:
        bot.stop()
        fake.stop()


class HeldDelivery:
    """A delivery job that counts its runs and holds its second one until released."""

    run_interval = LONG_POLL
    posted = 0

    def __init__(self):
        self.runs = 0
        self.second_began, self.release = threading.Event(), threading.Event()

    def run(self) -> float:
        self.runs += 1
        if self.runs == 2:
            self.second_began.set()
            self.release.wait(30)
        return self.run_interval


def commit_one(store, n: int) -> None:
    store.record_batch([to_delivery({"MessageId": f"m{n}", "Body": json.dumps(body(
        f"u{n}@x.io")), "Attributes": {}})], datetime.now(UTC))


def test_a_burst_of_commits_during_a_run_makes_exactly_one_more_run(
        queue_url, moto_server, tmp_path, store):
    cfg = bot_config(queue_url, moto_server, tmp_path)
    gate, delivery = jobs.StopGate(), HeldDelivery()
    scheduler = jobs.build_scheduler(Intake(None, cfg.sqs, store), store, retention_days=90,
                                     prune_interval_minutes=60, gate=gate, delivery=delivery)
    scheduler.remove_job(jobs.INTAKE_JOB)  # the test commits, as the intake would
    ended = []  # after the Wake's own listener (added earlier): it has decided by then
    scheduler.add_listener(lambda e: e.job_id == jobs.DELIVERY_JOB and ended.append(e),
                           EVENT_JOB_EXECUTED)
    scheduler.start()
    try:
        wait_for(lambda: len(ended) == 1, what="the first run")
        commit_one(store, 0)  # wakes the second run, which is held
        assert delivery.second_began.wait(10)
        for n in range(1, 6):
            commit_one(store, n)
        delivery.release.set()
        wait_for(lambda: len(ended) == 3, timeout=10, what="one more run after the burst")
        assert delivery.runs == 3
        assert next_run_in(scheduler, jobs.DELIVERY_JOB) > LONG_POLL / 2  # no fourth asked
    finally:
        delivery.release.set()
        gate.close(10)
        scheduler.shutdown(wait=False)


def test_a_stop_during_wakes_stops_cleanly_and_no_run_follows(
        queue_url, moto_server, tmp_path, fake_slack, caplog):
    bot = bot_with_long_poll(bot_config(queue_url, moto_server, tmp_path), fake_slack)
    runs, closed = [], threading.Event()  # for each delivery run: did the gate close before?
    deliver, close = bot.delivery.run, bot.gate.close
    bot.delivery.run = lambda: (runs.append(closed.is_set()), deliver())[1]
    bot.gate.close = lambda timeout: (finished := close(timeout), closed.set(), finished)[0]
    stopped, committed = threading.Event(), []

    def commit_until_after_the_stop():
        while not stopped.is_set() or len(committed) < 5:  # wakes during and after it
            commit_one(bot.store, len(committed))
            committed.append(closed.is_set())

    committer = threading.Thread(target=commit_until_after_the_stop)
    bot.start()
    committer.start()
    try:
        wait_for(lambda: len(committed) >= 20 and len(runs) >= 2, what="woken runs")
        stopper = threading.Thread(target=bot.stop)
        with caplog.at_level(logging.WARNING, logger="voisobot"):
            stopper.start()
            stopper.join(60)
        assert not stopper.is_alive()  # no deadlock
        committed.clear()
    finally:
        stopped.set()
        committer.join(30)
    assert committed and all(committed)  # commits, and so wakes, went on after the stop
    assert not bot.scheduler.running and True not in runs  # no run began after it
    assert not [r for r in caplog.records if "did not finish" in r.getMessage()]
    bot.store.close()


def test_a_failing_commit_listener_fails_no_batch_which_is_committed_and_deleted(
        sqs_admin, queue_url, make_config, store, caplog):
    def broken():
        raise RuntimeError("listener bug")

    told = []
    store.add_commit_listener(broken)
    store.add_commit_listener(lambda: told.append(1))  # later listeners are still told
    cfg = make_config(queue_url)
    intake = Intake(sqs_admin, cfg.sqs, store)
    for n in range(3):
        sqs_admin.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body(f"{n}@x.io")))
    with caplog.at_level(logging.ERROR, logger="voisobot.store"):
        while store.totals()["events"] < 3:
            intake.run()
    assert store.totals()["events"] == 3 and messages_left(sqs_admin, queue_url) == 0
    assert told and intake.backoff.failures == 0
    assert any("commit listener failed" in r.getMessage() and r.exc_info
               for r in caplog.records)


# --- WakeState: the decisions, over every order of wakes, runs starting and runs ending ----

def replay(steps: list[str]) -> dict:
    """Drive a WakeState as the scheduler would: "wake" (a commit), "tick" (the poll starts
    a run if none runs), "start" (an asked run starts), "end" (the run ends). Returns what
    happened: asks made while running, wakes not followed by a run start, asks per run."""
    state, running, asked = WakeState(), False, False
    asks_while_running, unserved, asks_after = 0, 0, []
    waiting = 0  # wakes since the last run started
    for step in steps + ["drain"] * 4:
        if step == "wake":
            if state.wake():
                asks_while_running += running
                asked = True
            waiting += 1
        elif step in ("tick", "start", "drain") and not running and (asked or step == "tick"):
            state.started()
            running, asked, waiting = True, False, 0
        elif step in ("end", "drain") and running:
            again = state.ended()
            running = False
            asks_after.append(again)
            asked = asked or again
    unserved = waiting if not running else 0
    return {"asks_while_running": asks_while_running, "unserved": unserved,
            "asks_after": asks_after, "state": state.state}


STEPS = st.lists(st.sampled_from(["wake", "tick", "start", "end"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_wakes_never_ask_for_a_run_while_one_runs_and_none_is_lost(steps):
    done = replay(steps)
    assert done["asks_while_running"] == 0
    assert done["unserved"] == 0  # every wake was followed by the start of a run
    assert done["state"] == WakeState.IDLE


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=20))
def test_any_burst_of_wakes_during_a_run_is_exactly_one_more_run(burst):
    state = WakeState()
    state.started()
    asks = [state.wake() for _ in range(burst)]
    assert not any(asks)
    assert state.ended() == (burst > 0)
    if burst:
        state.started()
        assert state.ended() is False  # and then no more


@pytest.mark.parametrize("steps, asks", [
    (["wake"], [True]),                                 # idle: run now
    (["wake", "wake", "wake"], [True, False, False]),   # a burst before it starts: one run
    (["start", "wake", "wake"], [False, False]),        # during a run: recorded, not asked
    (["start", "end", "wake"], [True]),                 # ended: idle again
    (["wake", "start", "wake"], [True, False]),         # the asked run started: again later
])
def test_when_a_wake_asks_for_a_run(steps, asks):
    state, made = WakeState(), []
    for step in steps:
        if step == "wake":
            made.append(state.wake())
        elif step == "start":
            state.started()
        else:
            state.ended()
    assert made == asks
