"""The intake against a real SQS server over HTTP (moto), a real SQLite file."""

import json
import logging
import sqlite3
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import sqs_message
from voisobot import intake as intake_module
from voisobot import samples, sqs
from voisobot.intake import Intake, to_delivery
from voisobot.store import Store


def send(sqs_admin, queue_url, body) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return sqs_admin.send_message(QueueUrl=queue_url, MessageBody=text)["MessageId"]


def queue_depth(sqs_admin, queue_url) -> int:
    attributes = sqs_admin.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def make_intake(cfg, store=None) -> Intake:
    return Intake(sqs.make_client(cfg.sqs), cfg.sqs, store or Store(cfg.store_path))


def drain(intake: Intake, runs: int = 20) -> None:
    """Run the intake until a run finds the queue empty."""
    for _ in range(runs):
        if intake.run() == intake.config.poll_interval_seconds and not intake.backoff.problem:
            return
        time.sleep(0.01)
    raise AssertionError(f"the intake did not drain: {intake.backoff.problem}")


def test_every_documented_kind_is_stored_and_leaves_the_queue(sqs_admin, queue_url, make_config):
    cfg = make_config(queue_url)
    for kind in samples.EXAMPLES:
        send(sqs_admin, queue_url, samples.example(kind))
    intake = make_intake(cfg)
    drain(intake)
    assert intake.store.counts_by_kind() == {kind: 1 for kind in samples.EXAMPLES}
    assert queue_depth(sqs_admin, queue_url) == 0


def test_crash_between_commit_and_delete_makes_no_second_row(sqs_admin, make_queue,
                                                             make_config):
    queue_url = make_queue(VisibilityTimeout=1)
    cfg = make_config(queue_url)
    for kind in list(samples.EXAMPLES)[:5]:
        send(sqs_admin, queue_url, samples.example(kind))
    crashed = make_intake(cfg)
    received = sqs.receive(crashed.client, queue_url, 1)
    crashed.store_messages(received)  # committed, then the process "dies" before the delete
    crashed.store.close()
    time.sleep(1.2)  # the visibility timeout lapses; SQS delivers the same messages again

    restarted = make_intake(cfg)
    drain(restarted)
    assert restarted.store.totals() == {"events": len(received), "duplicates": 0, "rejected": 0}
    assert restarted.health.totals.redelivered == len(received)
    assert queue_depth(sqs_admin, queue_url) == 5 - len(received)  # the rest are still queued
    drain(restarted)
    assert restarted.store.totals()["events"] == 5 and queue_depth(sqs_admin, queue_url) == 0


def test_a_run_hands_back_to_the_scheduler_after_max_run_seconds_with_messages_left(
        sqs_admin, queue_url, make_config, monkeypatch):
    """So that a run lasting far longer is stuck, not draining a backlog (ops.py)."""
    monkeypatch.setattr(intake_module, "MAX_RUN_SECONDS", 0.0)
    for i in range(15):
        body = samples.example("user/user_added")
        body["params"]["user"] = f"u{i}@x.example"
        send(sqs_admin, queue_url, body)
    intake = make_intake(make_config(queue_url))
    assert intake.run() == 0.0  # again at once
    first = intake.store.totals()["events"]
    assert 1 <= first <= 10 and queue_depth(sqs_admin, queue_url) == 15 - first
    drain(intake)
    assert intake.store.totals()["events"] == 15


def test_same_message_delivered_twice_is_stored_once(sqs_admin, make_queue, make_config):
    queue_url = make_queue(VisibilityTimeout=1)
    cfg = make_config(queue_url)
    send(sqs_admin, queue_url, samples.example("user/user_deleted"))
    first = sqs_admin.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    time.sleep(1.2)
    intake = make_intake(cfg)
    drain(intake)
    second = intake.store.connection().execute("SELECT sqs_message_id FROM events").fetchall()
    intake.store_messages(first)  # the older copy, as a slow duplicate delivery would bring it
    assert [row[0] for row in second] == [first[0]["MessageId"]]
    assert intake.store.totals()["events"] == 1


def test_same_body_sent_twice_is_recorded_as_a_duplicate(sqs_admin, queue_url, make_config):
    cfg = make_config(queue_url)
    body = samples.body_text(samples.example("app_login/unauthorized_ip"))
    ids = [send(sqs_admin, queue_url, body), send(sqs_admin, queue_url, body)]
    intake = make_intake(cfg)
    drain(intake)
    conn = intake.store.connection()
    assert intake.store.totals() == {"events": 1, "duplicates": 1, "rejected": 0}
    stored = conn.execute("SELECT sqs_message_id FROM events").fetchone()[0]
    duplicate = conn.execute("SELECT sqs_message_id FROM duplicates").fetchone()[0]
    assert sorted([stored, duplicate]) == sorted(ids)
    assert queue_depth(sqs_admin, queue_url) == 0


def test_malformed_messages_are_kept_with_reason_then_deleted(sqs_admin, queue_url, make_config,
                                                              caplog):
    cfg = make_config(queue_url)
    bad = {send(sqs_admin, queue_url, "not json"): "not JSON",
           send(sqs_admin, queue_url, '{"type": "user"}'): "timestamp is missing"}
    send(sqs_admin, queue_url, samples.example("user/user_added"))
    intake = make_intake(cfg)
    with caplog.at_level(logging.WARNING):
        drain(intake)
    rows = intake.store.connection().execute("SELECT sqs_message_id, reason FROM rejected")
    reasons = dict(rows.fetchall())
    assert reasons.keys() == bad.keys()
    assert all(fragment in reasons[mid] for mid, fragment in bad.items())
    assert intake.store.totals()["events"] == 1
    assert queue_depth(sqs_admin, queue_url) == 0
    assert sum("rejected SQS message" in r.message for r in caplog.records) == 2


def test_intake_problems_name_the_region_the_client_uses(queue_url, make_config, monkeypatch):
    """The queue lives in us-east-1; AWS_REGION sends the client to eu-west-2."""
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    intake = make_intake(make_config(queue_url))
    intake.run()
    assert intake.backoff.problem.kind == "no_such_queue"
    assert f"queue {queue_url} does not exist in region eu-west-2" in str(intake.backoff.problem)


def test_unreachable_sqs_is_logged_once_and_recovers(sqs_admin, make_queue, make_config,
                                                     fault_proxy, caplog):
    queue_url = make_queue()
    cfg = make_config(queue_url, endpoint_url=fault_proxy.url, wait_time_seconds=0,
                      request_timeout_seconds=0.3)  # read timeout 0.3 s
    fault_proxy.hang_seconds = 1.0
    fault_proxy.fail("ReceiveMessage", "hang", times=100)
    intake = make_intake(cfg)
    intake.backoff.jitter = lambda: 1.0  # no jitter: the growth itself is under test
    with caplog.at_level(logging.INFO, logger="voisobot"):
        delays = [intake.run() for _ in range(3)]
        fault_proxy.clear()
        send(sqs_admin, queue_url, samples.example("app_login/deleted_user"))
        drain(intake)
    assert delays == [0.05, 0.1, 0.2]
    lines = [r.getMessage() for r in caplog.records if r.name == "voisobot.intake"]
    assert sum("cannot reach SQS" in line for line in lines) == 1
    assert sum("working again after 3 failed attempt(s) (unreachable)" in line
               for line in lines) == 1
    assert intake.store.totals()["events"] == 1


def test_throttling_backs_off_then_drains(sqs_admin, queue_url, make_config, fault_proxy, caplog):
    cfg = make_config(queue_url, endpoint_url=fault_proxy.url)
    send(sqs_admin, queue_url, samples.example("user/password_changed"))
    fault_proxy.fail("ReceiveMessage", "throttle", times=4)
    intake = make_intake(cfg)
    with caplog.at_level(logging.WARNING, logger="voisobot"):
        assert intake.run() > 0 and intake.backoff.problem.kind == "throttled"
        drain(intake)
    assert intake.store.totals()["events"] == 1 and queue_depth(sqs_admin, queue_url) == 0
    assert sum("throttling" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(("fault", "kind", "says"), [
    ("kms_access_denied", "access_denied",
     "allow kms:Decrypt on that key to the bot's identity, in its IAM policy and in the key "
     "policy"),
    ("kms_disabled", "kms_key", "the queue's KMS key is disabled: enable it in KMS"),
])
def test_a_kms_key_the_bot_cannot_use_is_named_with_the_bots_action(
        sqs_admin, queue_url, make_config, fault_proxy, caplog, fault, kind, says):
    cfg = make_config(queue_url, endpoint_url=fault_proxy.url)
    send(sqs_admin, queue_url, samples.example("allowed_ip/ip_removed"))
    fault_proxy.fail("ReceiveMessage", fault, times=2)
    intake = make_intake(cfg)
    with caplog.at_level(logging.ERROR, logger="voisobot"):
        intake.run()
        intake.run()
    assert intake.backoff.problem.kind == kind
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and says in errors[0]
    assert "kms:GenerateDataKey" not in errors[0] or "Voiso's sender needs" in errors[0]
    drain(intake)
    assert intake.store.totals()["events"] == 1


@pytest.mark.parametrize("operation, action", [("ReceiveMessage", "sqs:ReceiveMessage"),
                                               ("DeleteMessageBatch", "sqs:DeleteMessage")])
def test_access_denied_names_the_missing_iam_action(sqs_admin, make_queue, make_config,
                                                    fault_proxy, caplog, operation, action):
    queue_url = make_queue(VisibilityTimeout=1)
    cfg = make_config(queue_url, endpoint_url=fault_proxy.url)
    send(sqs_admin, queue_url, samples.example("allowed_ip/ip_removed"))
    fault_proxy.fail(operation, "access_denied", times=3)
    intake = make_intake(cfg)
    with caplog.at_level(logging.ERROR, logger="voisobot"):
        for _ in range(3):
            intake.run()
    assert intake.backoff.problem.kind == "access_denied"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and f"add {action} to the bot's IAM policy" in errors[0]
    time.sleep(1.1)  # a stored-but-undeleted message comes back and is recognised
    drain(intake)
    assert intake.store.totals()["events"] == 1 and queue_depth(sqs_admin, queue_url) == 0


def test_a_delete_that_partly_fails_is_reported_and_redelivery_is_harmless(
        sqs_admin, make_queue, make_config, caplog):
    queue_url = make_queue(VisibilityTimeout=1)
    cfg = make_config(queue_url)
    for kind in ("user/user_added", "user/user_deleted"):
        send(sqs_admin, queue_url, samples.example(kind))
    intake = make_intake(cfg)
    messages = []
    while len(messages) < 2:
        messages += sqs.receive(intake.client, queue_url, 1)
    messages[1] = {**messages[1], "ReceiptHandle": "not-a-receipt-handle"}
    with caplog.at_level(logging.WARNING, logger="voisobot"):
        intake.settle(messages)
    assert any("SQS kept 1 stored message(s) after delete" in r.getMessage()
               for r in caplog.records)
    time.sleep(1.1)
    drain(intake)
    assert intake.store.totals()["events"] == 2 and queue_depth(sqs_admin, queue_url) == 0


def test_a_store_that_cannot_write_keeps_the_messages_in_sqs(sqs_admin, make_queue, make_config,
                                                             caplog):
    queue_url = make_queue(VisibilityTimeout=1)
    cfg = make_config(queue_url)
    send(sqs_admin, queue_url, samples.example("user/user_added"))
    intake = make_intake(cfg)
    locked = sqlite3.connect(str(cfg.store_path), timeout=0)  # another writer holds the lock
    locked.execute("BEGIN EXCLUSIVE")
    intake.store.connection().execute("PRAGMA busy_timeout = 100")
    with caplog.at_level(logging.ERROR, logger="voisobot"):
        delay = intake.run()
    assert delay > 0 and intake.backoff.problem.kind == "store_error"
    assert any("the messages stay in SQS" in r.getMessage() for r in caplog.records)
    assert queue_depth(sqs_admin, queue_url) == 1
    locked.rollback()
    locked.close()
    time.sleep(1.1)
    drain(intake)
    assert intake.store.totals()["events"] == 1 and queue_depth(sqs_admin, queue_url) == 0


def _sendable(raw: bytes) -> bool:
    """SQS takes non-empty UTF-8 text without most control characters."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c in "\t\n\r" or c >= " " for c in text)


def test_every_malformed_body_ends_in_the_rejected_table_with_its_reason(sqs_admin, queue_url,
                                                                         make_config):
    from tests.voisobot.test_events import MALFORMED

    cfg = make_config(queue_url)
    intake = make_intake(cfg)
    expected = {}
    for case, raw, reason in MALFORMED:
        if _sendable(raw):
            expected[send(sqs_admin, queue_url, raw.decode("utf-8"))] = (raw, reason)
        else:  # what boto3 would hand over if SQS ever carried such bytes
            message = sqs_message(raw.decode("utf-8", "surrogateescape"), f"local-{case}")
            intake.store_messages([message])
            expected[message["MessageId"]] = (None, reason)
    drain(intake)
    rows = intake.store.connection().execute("SELECT sqs_message_id, reason, raw FROM rejected")
    stored = {row["sqs_message_id"]: row for row in rows}
    assert stored.keys() == expected.keys()
    for message_id, (raw, reason) in expected.items():
        assert reason in stored[message_id]["reason"]
        assert raw is None or stored[message_id]["raw"] == raw
    assert intake.store.totals()["events"] == 0 and queue_depth(sqs_admin, queue_url) == 0


def test_backoff_is_capped_and_logs_again_only_when_the_problem_changes(caplog):
    from voisobot.errors import IntakeProblem
    from voisobot.intake import Backoff

    backoff = Backoff(1.0, 60.0, jitter=lambda: 1.0)
    unreachable = IntakeProblem("unreachable", "cannot reach SQS", "ReceiveMessage")
    with caplog.at_level(logging.WARNING, logger="voisobot"):
        delays = [backoff.failed(unreachable) for _ in range(10)]
        backoff.succeeded("DeleteMessageBatch")  # another call working proves nothing
        backoff.failed(IntakeProblem("throttled", "SQS is throttling", "ReceiveMessage"))
        backoff.succeeded("ReceiveMessage")
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert [r.getMessage() for r in caplog.records] == [
        "SQS intake: cannot reach SQS", "SQS intake: SQS is throttling",
        "SQS intake: working again after 11 failed attempt(s) (throttled)"]
    assert backoff.failed(unreachable) == 1.0  # a fresh problem starts from the beginning


# --- one message never holds up its batch -------------------------------------------------

def receive_exactly(intake: Intake, count: int) -> list[dict]:
    """One batch of ``count`` received messages, as the intake settles it."""
    messages: list[dict] = []
    while len(messages) < count:
        messages += sqs.receive(intake.client, intake.config.queue_url, 1)
    assert len(messages) == count
    return messages


def send_nine_and(sqs_admin, queue_url, odd_one) -> tuple[list[str], str]:
    """Nine distinct valid events and ``odd_one``, in the middle of the batch."""
    good = [send(sqs_admin, queue_url, {**samples.example("app_login/successful_login"),
                                        "params": {"user": f"agent{n}@acme.io",
                                                   "access_group": "agent"}})
            for n in range(9)]
    odd = send(sqs_admin, queue_url, odd_one)
    return good, odd


def stored_ids(intake: Intake) -> set[str]:
    rows = intake.store.connection().execute("SELECT sqs_message_id FROM events")
    return {row[0] for row in rows}


def rejection(intake: Intake, message_id: str) -> sqlite3.Row:
    return intake.store.connection().execute(
        "SELECT reason, raw FROM rejected WHERE sqs_message_id = ?", (message_id,)).fetchone()


def test_a_deeply_nested_message_is_rejected_and_the_rest_of_its_batch_stored(
        sqs_admin, queue_url, make_config):
    deep = ('{"timestamp": "2024-01-02T03:04:05Z", "type": "app_login", "event": "x", '
            '"params": ' + '{"a": ' * 600 + '"caf\\u00e9"' + "}" * 600 + "}")
    good, odd = send_nine_and(sqs_admin, queue_url, deep)
    intake = make_intake(make_config(queue_url))
    outcome = intake.settle(receive_exactly(intake, 10))
    assert (len(outcome.stored), outcome.rejected) == (9, 1)
    assert stored_ids(intake) == set(good)
    assert rejection(intake, odd)["reason"] == "body is nested more than 32 levels deep " \
                                               "(objects and arrays)"
    assert rejection(intake, odd)["raw"] == deep.encode()
    assert queue_depth(sqs_admin, queue_url) == 0


def test_a_message_the_store_refuses_is_rejected_and_the_rest_of_its_batch_stored(
        sqs_admin, queue_url, make_config, caplog):
    boom = {**samples.example("app_login/successful_login"),
            "params": {"user": "boom", "access_group": "agent"}}
    good, odd = send_nine_and(sqs_admin, queue_url, boom)
    intake = make_intake(make_config(queue_url))
    intake.store.connection().execute(
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.user = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'boom'); END")
    with caplog.at_level(logging.WARNING, logger="voisobot"):
        outcome = intake.settle(receive_exactly(intake, 10))
    assert (len(outcome.stored), outcome.rejected) == (9, 1)
    assert stored_ids(intake) == set(good)
    assert rejection(intake, odd)["reason"] == "internal error: IntegrityError: boom"
    assert queue_depth(sqs_admin, queue_url) == 0
    assert intake.backoff.problem is None
    assert any(r.exc_info and odd in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("body, raw", [(12345, b"12345"), (None, b"None"),
                                       ({"not": "text"}, b"{'not': 'text'}"),
                                       (b"{}", b"b'{}'")])
def test_a_message_whose_body_is_not_text_is_rejected_and_its_batch_settled(
        sqs_admin, queue_url, make_config, caplog, body, raw):
    good, odd = send_nine_and(sqs_admin, queue_url, samples.example("user/user_added"))
    intake = make_intake(make_config(queue_url))
    messages = receive_exactly(intake, 10)
    index = next(i for i, m in enumerate(messages) if m["MessageId"] == odd)
    messages[index] = {**messages[index], "Body": body}  # a malformed receive response
    with caplog.at_level(logging.WARNING, logger="voisobot"):
        outcome = intake.settle(messages)
    assert (len(outcome.stored), outcome.rejected) == (9, 1)
    assert stored_ids(intake) == set(good)
    assert rejection(intake, odd)["reason"].startswith("internal error: AttributeError: ")
    assert rejection(intake, odd)["raw"] == raw
    assert queue_depth(sqs_admin, queue_url) == 0
    assert any(r.levelno == logging.ERROR and r.exc_info and odd in r.getMessage()
               for r in caplog.records)


# A receive response as a broken SDK or proxy might hand it over: any field missing or of
# any type.
ANY_VALUE = st.none() | st.integers() | st.text() | st.binary() | st.lists(st.text())
MESSAGE_FIELDS = st.fixed_dictionaries({}, optional={
    "MessageId": ANY_VALUE | st.uuids().map(str), "ReceiptHandle": ANY_VALUE,
    "Body": ANY_VALUE | st.just(samples.body_text(samples.example("user/user_added"))),
    "Attributes": ANY_VALUE | st.dictionaries(st.text(), ANY_VALUE)
    | st.fixed_dictionaries({"SentTimestamp": ANY_VALUE})})


@settings(max_examples=200, deadline=None)
@given(MESSAGE_FIELDS)
def test_any_received_message_becomes_an_event_or_a_kept_rejection(message):
    delivery = to_delivery(message)
    assert (delivery.event is None) != (delivery.reason is None)
    assert isinstance(delivery.message_id, str) and isinstance(delivery.raw, bytes)
    if isinstance(message.get("MessageId"), str):
        assert delivery.message_id == message["MessageId"]
    if isinstance(message.get("Body"), str):
        assert delivery.raw == message["Body"].encode("utf-8", "surrogatepass")
