"""The operations listener over real HTTP on 127.0.0.1: /healthz, /readyz (every reason turning
it to 503 and back to 200, in Socket Mode and in HTTP mode) and /metrics (the values after a
known run). SQS is moto's server behind the fault proxy, Slack the fake Web API."""

import dataclasses
import json
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.slack_api import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.test_slack_app import (
    ALERTS,
    ALLOWED,
    CHANNEL,
    SECRET,
    STRANGER,
    Bot,
    send_event,
    started_bot,
)
from voisobot import cli, config, delivery, ops, probe, samples
from voisobot.config import OpsConfig
from voisobot.intake import utc_now
from voisobot.outbox import Outbox
from voisobot.runtime import build

APP_TOKEN = "xapp-test"
# Small thresholds, so that each reason shows within a second or two.
FAST_OPS = {"outbox_stuck_seconds": 1, "store_probe_timeout_seconds": 0.2}


class Ops:
    """The operations listener as a probe or a scraper sees it."""

    def __init__(self, url: str):
        self.url = url

    def get(self, path: str) -> tuple[int, bytes, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read(), response.headers["Content-Type"]
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(), exc.headers["Content-Type"]

    def ready(self) -> tuple[int, dict]:
        status, body, _ = self.get("/readyz")
        return status, json.loads(body)

    def health(self) -> tuple[int, dict]:
        status, body, _ = self.get("/healthz")
        return status, json.loads(body)

    def metrics(self) -> dict[tuple, float]:
        """Every sample: (name, sorted label pairs) -> value."""
        status, body, _ = self.get("/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples}


def codes(report: dict) -> set[str]:
    return {reason["code"] for reason in report["reasons"]}


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_for_reason(probe, code: str) -> dict:
    """The first report (of /readyz or /healthz) naming ``code``, checked to be a 503."""
    seen = []

    def names_it() -> bool:
        seen.append(probe())
        return code in codes(seen[-1][1])

    assert wait_until(names_it), f"{code} never reported; last: {seen[-1]}"
    status, report = seen[-1]
    assert status == 503 and report["ready" if "ready" in report else "alive"] is False
    return report


def wait_for_ok(probe) -> dict:
    seen = []
    assert wait_until(lambda: seen.append(probe()) or seen[-1][0] == 200), seen[-1]
    report = seen[-1][1]
    assert report["reasons"] == []
    return report


@dataclass
class Running:
    runtime: object
    fake: FakeSlack
    ops: Ops


@pytest.fixture
def make_bot(tmp_path, moto_server, queue_url, fault_proxy):
    """Start the bot in Socket Mode or HTTP mode, reading SQS through the fault proxy;
    stopped after the test."""
    started, servers = [], []

    def make(mode: str, app_token: str = APP_TOKEN, routes: tuple = (), **ops_keys
             ) -> Running:
        fake = FakeSlack(channels={CHANNEL, ALERTS}, app_token=APP_TOKEN).start()
        servers.append(fake)
        if mode == "socket":
            socket_server = FakeSocketMode().start()
            servers.append(socket_server)
            fake.socket_url = socket_server.url
            secrets, slack_keys, sections = {"SLACK_APP_TOKEN": app_token}, {}, {}
        else:
            secrets, slack_keys = {"SLACK_SIGNING_SECRET": SECRET}, {"mode": "http"}
            sections = {"http": {"host": "127.0.0.1", "port": 0}}
        runtime = started_bot(tmp_path, queue_url, fault_proxy.url, fake, secrets,
                              slack_settings=slack_keys, access={"users": [ALLOWED]},
                              ops={**FAST_OPS, **ops_keys}, routes=list(routes), **sections)
        started.append(runtime)
        return Running(runtime, fake, Ops(runtime.ops.url))

    yield make
    for runtime in started:
        runtime.stop()
    for server in servers:
        server.stop()


# --- readiness: each reason, 503 and back ---------------------------------------------------

@dataclass
class Scene:
    """What a readiness case may touch: the bot, Slack, SQS, and the test's own lock."""

    running: Running
    proxy: object
    sqs_admin: object
    queue_url: str
    lock: sqlite3.Connection | None = None

    def send_alert(self) -> None:
        send_event(self.sqs_admin, self.queue_url, "app_login/unauthorized_ip")


def sqs_fails(scene: Scene) -> None:
    scene.proxy.fail("ReceiveMessage", "server_error", times=100_000)


def store_locked(scene: Scene) -> None:
    """Another process holds the store's write lock."""
    scene.lock = sqlite3.connect(scene.running.runtime.store.path, isolation_level=None)
    scene.lock.execute("BEGIN IMMEDIATE")


def trail_locked(scene: Scene) -> None:
    """Another process holds the audit trail's write lock (its own file: audit.py)."""
    scene.lock = sqlite3.connect(scene.running.runtime.store.audit.path, isolation_level=None)
    scene.lock.execute("BEGIN IMMEDIATE")


def store_released(scene: Scene) -> None:
    scene.lock.execute("ROLLBACK")
    scene.lock.close()


def channel_refused(scene: Scene) -> None:
    scene.running.fake.fail("chat.postMessage", "channel_not_found")
    scene.send_alert()


def redelivered(scene: Scene) -> None:
    """What `voisobot redeliver` does, once the bot is in the channel."""
    assert Outbox(scene.running.runtime.store).redeliver_failed() == 1


def slack_rate_limits(scene: Scene) -> None:
    scene.running.fake.fail("chat.postMessage", "rate_limited", times=100_000)
    scene.send_alert()


def token_refused(scene: Scene) -> None:
    scene.running.fake.fail("chat.postMessage", "invalid_auth", times=100_000)
    scene.send_alert()


READINESS_CASES = [
    # (reason code, what breaks it, what mends it)
    ("sqs_silent", sqs_fails, lambda scene: scene.proxy.clear()),
    ("store_unwritable", store_locked, store_released),
    ("audit_unwritable", trail_locked, store_released),
    ("alerts_failed", channel_refused, redelivered),
    ("outbox_stuck", slack_rate_limits, lambda scene: scene.running.fake.clear()),
    ("slack_token_refused", token_refused, lambda scene: scene.running.fake.clear()),
]


@pytest.mark.parametrize("mode", ["socket", "http"])
@pytest.mark.parametrize(("code", "breaks", "mends"), READINESS_CASES,
                         ids=[case[0] for case in READINESS_CASES])
def test_each_readiness_reason_turns_readyz_to_503_and_back(
        make_bot, fault_proxy, sqs_admin, queue_url, monkeypatch, mode, code, breaks, mends):
    monkeypatch.setattr(ops, "SQS_SILENCE_MARGIN_SECONDS", 0.0)  # silent after ~3 s here
    monkeypatch.setattr(delivery, "TOKEN_PAUSE_SECONDS", 0.2)  # retried soon after a mend
    running = make_bot(mode)
    scene = Scene(running, fault_proxy, sqs_admin, queue_url)
    wait_for_ok(running.ops.ready)
    breaks(scene)
    report = wait_for_reason(running.ops.ready, code)
    (reason,) = [r for r in report["reasons"] if r["code"] == code]
    assert reason["message"]  # words for a human beside the code
    assert "xoxb-test" not in json.dumps(report)  # a token is named, never shown
    mends(scene)
    assert wait_for_ok(running.ops.ready)["ready"] is True
    assert running.ops.health()[0] == 200  # not ready is not dead


def test_an_app_token_slack_refuses_makes_socket_mode_not_ready_until_a_restart_with_a_good_one(
        make_bot):
    refused = make_bot("socket", app_token="xapp-revoked")
    report = wait_for_reason(refused.ops.ready, "slack_app_token_refused")
    (reason,) = report["reasons"]
    assert "invalid_auth" in reason["message"] and "xapp-revoked" not in json.dumps(report)
    refused.runtime.stop()
    restarted = make_bot("socket")  # the same store, the right token
    assert wait_until(restarted.runtime.slack_server.connected.is_set)
    wait_for_ok(restarted.ops.ready)


def test_readyz_reports_the_last_poll(make_bot):
    running = make_bot("http")
    assert wait_until(lambda: running.runtime.intake.health.last_successful_poll)
    status, report = running.ops.ready()
    assert status == 200 and report["ready"] is True
    assert datetime.fromisoformat(report["last_successful_poll"]) <= utc_now()


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_fresh_start_is_ready_until_the_silence_limit_then_ready_again_once_a_poll_works(
        make_config, queue_url):
    runtime = build(make_config(queue_url))
    try:
        clock = Clock()
        readiness = ops.Readiness(runtime, clock)
        assert readiness.report()["ready"] is True  # no poll yet, but no time has passed
        clock.now += timedelta(seconds=readiness.silence_limit() + 1)
        assert codes(readiness.report()) == {"sqs_silent"}
        runtime.intake.health.last_successful_poll = clock.now - timedelta(seconds=1)
        assert readiness.report()["ready"] is True
    finally:
        runtime.stop()


# --- liveness ---------------------------------------------------------------------------------

def test_healthz_is_503_while_the_intake_is_stuck_in_one_run_and_200_after(make_bot,
                                                                            fault_proxy):
    running = make_bot("http", job_stuck_seconds=1)
    wait_for_ok(running.ops.health)
    # Each receive hangs past the client's read timeout (2 s) and is retried once.
    fault_proxy.fail("ReceiveMessage", "hang", times=2)
    report = wait_for_reason(running.ops.health, "job_stuck")
    assert "intake" in report["reasons"][0]["message"]
    wait_for_ok(running.ops.health)


def test_healthz_is_503_once_the_scheduler_has_stopped(make_bot):
    running = make_bot("http")
    status, report = running.ops.health()
    assert (status, report) == (200, {"alive": True, "reasons": []})
    running.runtime.scheduler.shutdown(wait=False)
    status, report = running.ops.health()
    assert status == 503 and codes(report) == {"scheduler_stopped"}


# --- the listener -----------------------------------------------------------------------------

def test_the_defaults_listen_on_this_machine_only_at_9464():
    cfg = config.from_dict({"sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/"
                                                  "123456789012/voiso"}})
    assert (cfg.ops.host, cfg.ops.port) == ("127.0.0.1", 9464)


def test_the_listener_binds_127_0_0_1_and_answers_only_its_three_paths(make_bot):
    running = make_bot("http")
    assert urlsplit(running.ops.url).hostname == "127.0.0.1"
    assert running.ops.get("/slack/events")[0] == 404
    assert running.ops.get("/healthz/../metrics")[0] == 404
    request = urllib.request.Request(running.ops.url + "/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 404
    status, _, content_type = running.ops.get("/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    request = urllib.request.Request(running.ops.url + "/metrics", headers={
        "Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().endswith(b"# EOF\n")


def test_an_ops_port_in_use_stops_the_start_naming_the_keys(make_config, queue_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = build(dataclasses.replace(make_config(queue_url), ops=OpsConfig(port=port)))
        with pytest.raises(ops.OpsError, match=rf"^ops\.host, ops\.port: cannot listen on "
                                               rf"127\.0\.0\.1:{port} "):
            runtime.start()
        assert not runtime.scheduler.running  # nothing started
        runtime.stop()


def test_stop_closes_the_listener(make_bot):
    running = make_bot("http")
    running.runtime.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(running.ops.url + "/healthz", timeout=2)


# --- metrics ----------------------------------------------------------------------------------

def sample(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_a_known_run(make_bot, sqs_admin, queue_url):
    """3 + 2 events of two kinds, one of an unknown kind, one resent, one malformed; alerts
    for the 2 (the rest muted: posts are paced at one a second), the first rate-limited; a
    command, a refused command and an Acknowledge press."""
    running = make_bot("http", routes=({"event": "user_added", "channel": ALERTS},
                                       {"mute": True}))
    running.fake.fail("chat.postMessage", "rate_limited")
    for i in range(3):
        send_event(sqs_admin, queue_url, "app_login/unauthorized_ip", user=f"u{i}@x.example")
    for i in range(2):
        send_event(sqs_admin, queue_url, "user/user_added", user=f"new{i}@x.example")
    resent = samples.body_text(samples.example("app_login/deleted_user", now=utc_now()))
    sqs_admin.send_message(QueueUrl=queue_url, MessageBody=resent)
    sqs_admin.send_message(QueueUrl=queue_url, MessageBody=resent)
    unknown = {**samples.example("app_login/deleted_user", now=utc_now()), "event": "mfa_failed"}
    sqs_admin.send_message(QueueUrl=queue_url, MessageBody=samples.body_text(unknown))
    sqs_admin.send_message(QueueUrl=queue_url, MessageBody="not json")
    alerts = 2  # one per user_added event: every user differs, nothing groups
    assert wait_until(lambda: len(running.fake.messages(ALERTS)) == alerts)
    message = running.fake.messages(ALERTS)[0]
    bot = Bot(running.runtime, running.fake)
    assert bot.command("recent")[0] == 200
    assert bot.command("stats 7d", user=STRANGER, response="c2")[0] == 200
    alert_id = message["metadata"]["event_payload"]["alert_id"]
    assert bot.click("voiso_ack", json.dumps({"alert": alert_id}), message=message)[0] == 200
    assert bot.answers("c1") and bot.answers("c2")
    assert wait_until(lambda: running.fake.calls_to("chat.update"))
    assert wait_until(lambda: sample(running.ops.metrics(), "voiso_button_presses_total",
                                     button="acknowledge", outcome="acknowledged") == 1)
    scraped = running.ops.metrics()
    text = running.ops.get("/metrics")[1].decode()
    assert "xoxb-test" not in text and SECRET not in text and "@x.example" not in text
    assert [sample(scraped, "voiso_events_stored_total", kind=kind) for kind in (
        "app_login/unauthorized_ip", "user/user_added", "app_login/deleted_user", "other")] \
        == [3, 2, 1, 1]
    assert sample(scraped, "voiso_events_duplicate_total", kind="app_login/deleted_user") == 1
    assert sample(scraped, "voiso_events_rejected_total", reason="malformed") == 1
    assert sample(scraped, "voiso_events_rejected_total", reason="internal_error") == 0
    assert [sample(scraped, f"voiso_alerts_{what}_total", destination="slack")
            for what in ("queued", "sent", "failed", "uncertain")] == [alerts, alerts, 0, 0]
    assert sample(scraped, "voiso_alerts_sent_total", destination="teams") == 0
    assert [sample(scraped, name) for name in (
        "voiso_outbox_depth", "voiso_outbox_oldest_alert_age_seconds",
        "voiso_outbox_failed_alerts")] == [0, 0, 0]
    post = {"service": "slack", "method": "chat.postMessage"}
    assert sample(scraped, "voiso_api_calls_total", **post, outcome="rate_limited") == 1
    assert sample(scraped, "voiso_api_calls_total", **post, outcome="done") == alerts
    assert sample(scraped, "voiso_api_call_duration_seconds_count", **post) == alerts + 1
    assert sample(scraped, "voiso_api_calls_total", service="slack", method="chat.update",
                  outcome="done") == 1
    assert sample(scraped, "voiso_commands_total", command="recent", outcome="answered") == 1
    assert sample(scraped, "voiso_commands_total", command="stats", outcome="denied") == 1
    assert sample(scraped, "voiso_command_duration_seconds_count", command="recent") == 1
    assert sample(scraped, "voiso_sqs_polls_total") >= 1
    assert sum(value for (name, _), value in scraped.items()
               if name == "voiso_sqs_errors_total") == 0
    assert 0 < sample(scraped, "voiso_sqs_last_successful_poll_timestamp_seconds") <= time.time()
    assert sample(scraped, "voiso_intake_receive_to_commit_seconds_count") >= 1


def test_metrics_count_sqs_errors_by_reason(make_bot, fault_proxy):
    running = make_bot("http")
    fault_proxy.fail("ReceiveMessage", "no_such_queue", times=2)
    assert wait_until(lambda: sample(running.ops.metrics(), "voiso_sqs_errors_total",
                                     reason="no_such_queue", operation="ReceiveMessage") == 2)
    assert wait_until(lambda: running.runtime.intake.backoff.problem is None)
    scraped = running.ops.metrics()
    assert sample(scraped, "voiso_sqs_errors_total", reason="no_such_queue",
                  operation="ReceiveMessage") == 2
    assert sample(scraped, "voiso_sqs_polls_total") >= 3  # the failed ones count too


# --- voisobot health: the image's HEALTHCHECK ---------------------------------------------------

def test_the_health_command_exits_0_while_alive_and_1_with_the_reason_after(make_bot, tmp_path,
                                                                             capsys):
    running = make_bot("http")
    port = urlsplit(running.ops.url).port
    config_file = tmp_path / "probe.toml"
    config_file.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/'
                           'voiso"\n[ops]\nhost = "0.0.0.0"\n')
    ask = ["--config", str(config_file), "health"]
    environ = {"VOISO_OPS__PORT": str(port)}  # the port the way a container sets it
    assert cli.main(ask, environ) == 0
    assert capsys.readouterr().out == f"http://127.0.0.1:{port}/healthz: 200 ok\n"
    assert cli.main([*ask, "--ready"], environ) == 0
    running.runtime.scheduler.shutdown(wait=False)
    assert cli.main(ask, environ) == 1
    assert capsys.readouterr().err == f"http://127.0.0.1:{port}/healthz: 503 scheduler_stopped\n"
    running.runtime.stop()
    assert cli.main(ask, environ) == 1
    assert "no answer" in capsys.readouterr().err


def test_the_health_command_reaches_an_ipv6_listener_on_loopback():
    assert probe.url(OpsConfig(host="::", port=9464)) == "http://[::1]:9464/healthz"
    assert probe.url(OpsConfig(host="10.0.0.5", port=1), ready=True) == "http://10.0.0.5:1/readyz"
