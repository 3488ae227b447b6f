"""bot.py as a user runs it: send-sample, the worker under SIGTERM and kill -9, and the
scheduler riding out an SQS server that goes away and comes back."""

import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import REGION
from voisobot import cli, config, runtime, samples

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path, queue_url, endpoint_url) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[sqs]\nqueue_url = "{queue_url}"\nendpoint_url = "{endpoint_url}"\n'
                    "wait_time_seconds = 1\npoll_interval_seconds = 0.1\n"
                    "backoff_initial_seconds = 0.05\nbackoff_max_seconds = 0.5\n"
                    'request_timeout_seconds = 2\n[store]\npath = "store.sqlite3"\n'
                    "[ops]\nport = 0\n")
    return path


def start_worker(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "bot.py", "--config", str(config_path), "run"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def count(path: Path, table: str) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=10) as conn:
        try:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:  # the worker has not created the schema yet
            return 0


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def messages_left(sqs_admin, queue_url) -> int:
    attributes = sqs_admin.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def send_unique_events(sqs_admin, queue_url, n: int) -> None:
    start = datetime.now(UTC)
    for i in range(0, n, 10):
        entries = []
        for j in range(i, min(n, i + 10)):
            body = samples.example("app_login/successful_login",
                                   now=start + timedelta(seconds=j))
            body["params"]["user"] = f"agent{j}@acme.example"
            entries.append({"Id": str(j), "MessageBody": json.dumps(body)})
        sqs_admin.send_message_batch(QueueUrl=queue_url, Entries=entries)


def test_send_sample_sends_every_kind_stamped_now(sqs_admin, queue_url, moto_server, tmp_path):
    path = write_config(tmp_path, queue_url, moto_server["url"])
    result = subprocess.run([sys.executable, "bot.py", "--config", str(path), "send-sample"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("sent ") == 12
    bodies = []
    while len(bodies) < 12:
        got = sqs_admin.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                        WaitTimeSeconds=1).get("Messages", [])
        bodies += [json.loads(m["Body"]) for m in got]
    assert {f"{b['type']}/{b['event']}" for b in bodies} == set(samples.EXAMPLES)
    assert all(b["timestamp"].startswith(str(datetime.now(UTC).year)) for b in bodies)


@pytest.mark.parametrize("kind, code, says", [
    ("unauthorized_ip", 0, "sent app_login/unauthorized_ip"),
    ("allowed_ip/ip_changed", 0, "sent allowed_ip/ip_changed"),
    ("ip_changed", 2, "app_login/ip_changed or allowed_ip/ip_changed"),
    ("nonsense", 2, "unknown or ambiguous kind 'nonsense'"),
])
def test_send_sample_of_one_kind(queue_url, moto_server, tmp_path, capsys, kind, code, says):
    path = write_config(tmp_path, queue_url, moto_server["url"])
    assert cli.main(["--config", str(path), "send-sample", kind]) == code
    captured = capsys.readouterr()
    assert says in captured.out + captured.err


def test_send_sample_to_a_kms_queue_names_the_senders_actions(queue_url, fault_proxy, tmp_path,
                                                              capsys):
    """The sender encrypts: it needs kms:GenerateDataKey and kms:Decrypt, not the bot's
    kms:Decrypt alone."""
    fault_proxy.fail("SendMessage", "kms_access_denied")
    path = write_config(tmp_path, queue_url, fault_proxy.url)
    assert cli.main(["--config", str(path), "send-sample", "unauthorized_ip"]) == 1
    assert ("the sender (Voiso's key, or whoever runs send-sample) needs kms:GenerateDataKey "
            "and kms:Decrypt on that key, in its IAM policy and in the key policy"
            ) in capsys.readouterr().err


def test_sigterm_finishes_the_batch_in_hand_and_exits_0(sqs_admin, make_queue, moto_server,
                                                        tmp_path):
    queue_url = make_queue(VisibilityTimeout=1)  # what the stopped worker held comes back soon
    path = write_config(tmp_path, queue_url, moto_server["url"])
    store = tmp_path / "store.sqlite3"
    send_unique_events(sqs_admin, queue_url, 30)
    worker = start_worker(path)
    wait_for(lambda: count(store, "events") > 0, what="the first events")
    worker.send_signal(signal.SIGTERM)
    try:
        _, err = worker.communicate(timeout=30)
    finally:
        worker.kill()  # a worker that did not stop must not outlive the test
    assert worker.returncode == 0, err
    assert "stopping: finishing the batch in hand" in err and "stopped" in err
    assert "Traceback" not in err, err
    # Nothing lost, nothing doubled: the next worker stores exactly the rest.
    worker = start_worker(path)
    try:
        wait_for(lambda: count(store, "events") == 30
                 and messages_left(sqs_admin, queue_url) == 0, what="every event")
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert count(store, "events") == 30 and count(store, "rejected") == 0, err


def test_sigterm_during_a_long_poll_stops_well_inside_a_30_second_grace_period(
        sqs_admin, queue_url, moto_server, tmp_path):
    """A container gets 30 seconds between SIGTERM and SIGKILL; a 20-second long poll in
    flight is not waited for (whatever it brings stays in SQS for the next start)."""
    path = write_config(tmp_path, queue_url, moto_server["url"])
    path.write_text(path.read_text().replace("wait_time_seconds = 1", "wait_time_seconds = 20"))
    worker = start_worker(path)
    wait_for(lambda: count(tmp_path / "store.sqlite3", "cursors") > 0, what="the store")
    time.sleep(1.0)  # the first long poll of 20 seconds is now in flight
    worker.send_signal(signal.SIGTERM)
    try:
        _, err = worker.communicate(timeout=15)  # far inside 30 s; the poll alone is 20 s
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "stopped" in err and "did not finish" not in err


def test_kill_9_at_random_moments_loses_nothing_and_doubles_nothing(sqs_admin, make_queue,
                                                                    moto_server, tmp_path):
    total = 150
    queue_url = make_queue(VisibilityTimeout=1)  # what a killed worker held comes back soon
    path = write_config(tmp_path, queue_url, moto_server["url"])
    store = tmp_path / "store.sqlite3"
    send_unique_events(sqs_admin, queue_url, total)
    chance = random.Random(20261124)
    stored_at_kill = []
    for _ in range(3):
        before = count(store, "events")
        worker = start_worker(path)
        wait_for(lambda before=before: count(store, "events") > before, what="progress")
        time.sleep(chance.uniform(0.0, 0.2))
        worker.kill()
        worker.wait(timeout=10)
        stored_at_kill.append(count(store, "events"))
    assert stored_at_kill[0] < total, "the first kill came too late to test anything"
    worker = start_worker(path)
    try:
        wait_for(lambda: count(store, "events") == total
                 and messages_left(sqs_admin, queue_url) == 0, timeout=60, what="every event")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert count(store, "events") == total and count(store, "rejected") == 0
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(DISTINCT user) FROM events").fetchone()[0] == total


def runtime_for(queue_url, endpoint_url, tmp_path, **store_keys) -> runtime.Runtime:
    cfg = config.from_dict({"sqs": {"queue_url": queue_url, "endpoint_url": endpoint_url,
                                    "wait_time_seconds": 1, "poll_interval_seconds": 0.1,
                                    "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5,
                                    "request_timeout_seconds": 1},
                            "store": {"path": "store.sqlite3", **store_keys},
                            "ops": {"port": 0}}, base_dir=tmp_path)
    return runtime.build(cfg)


def test_scheduler_prunes_at_start_and_keeps_polling(sqs_admin, queue_url, moto_server, tmp_path):
    runtime = runtime_for(queue_url, moto_server["url"], tmp_path, retention_days=30)
    old = samples.example("user/user_added", now=datetime.now(UTC) - timedelta(days=31))
    sqs_admin.send_message(QueueUrl=queue_url, MessageBody=json.dumps(old))
    runtime.intake.run()  # stored before the scheduler starts, as if from an earlier run
    send_unique_events(sqs_admin, queue_url, 1)  # the newest stored: the prune keeps it
    runtime.intake.run()
    assert runtime.store.totals()["events"] == 2
    runtime.start()
    try:
        wait_for(lambda: runtime.store.totals()["events"] == 1, what="the retention job")
        send_unique_events(sqs_admin, queue_url, 5)
        wait_for(lambda: runtime.store.totals()["events"] == 6, what="polling to go on")
    finally:
        runtime.stop()


def test_sqs_server_stopped_and_restarted_mid_run(tmp_path, caplog):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    admin = boto3.client("sqs", endpoint_url=url, region_name=REGION)
    queue_url = admin.create_queue(QueueName="restart")["QueueUrl"]
    runtime = runtime_for(queue_url, url, tmp_path)
    caplog.set_level(logging.INFO, logger="voisobot")
    runtime.start()
    try:
        send_unique_events(admin, queue_url, 10)
        wait_for(lambda: runtime.store.totals()["events"] == 10, what="the first 10")
        server.stop()
        wait_for(lambda: runtime.intake.backoff.failures >= 3, what="failed polls")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # moto keeps its queues in-process: the same queue comes back
        admin.send_message(QueueUrl=queue_url, MessageBody=json.dumps(
            samples.example("app_login/unauthorized_ip", now=datetime.now(UTC))))
        wait_for(lambda: runtime.store.totals()["events"] == 11, what="recovery")
    finally:
        runtime.stop()
        server.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "voisobot.intake"]
    assert sum("cannot reach SQS" in line for line in lines) == 1
    assert sum("working again after" in line for line in lines) == 1
    assert runtime.intake.health.totals.redelivered + runtime.intake.health.totals.duplicates == 0


def test_run_with_no_config_file_takes_its_settings_from_the_environment(
        sqs_admin, queue_url, moto_server, tmp_path):
    """A container sets VOISO_ variables and mounts no config.toml: the worker starts."""
    env = {**os.environ, "VOISO_SQS__QUEUE_URL": queue_url,
           "VOISO_SQS__ENDPOINT_URL": moto_server["url"], "VOISO_SQS__WAIT_TIME_SECONDS": "1",
           "VOISO_SQS__POLL_INTERVAL_SECONDS": "0.1", "VOISO_STORE__PATH": "env.sqlite3",
           "VOISO_LOG__FORMAT": "json"}
    send_unique_events(sqs_admin, queue_url, 3)
    worker = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "run"], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: count(tmp_path / "env.sqlite3", "events") == 3, what="the events")
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert not (tmp_path / "config.toml").exists()
    assert json.loads(err.splitlines()[-1])["message"] == "stopped"
