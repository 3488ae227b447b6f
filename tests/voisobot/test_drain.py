"""The intake draining a backlog with concurrent receivers (voisobot/drain.py), against a
real SQS server over HTTP (moto) and a real SQLite file.

Each client is watched through botocore's public event hooks: which message each receipt
handle belongs to, and, at every DeleteMessageBatch, whether each message it deletes is
already committed (read from the store file by a connection of its own)."""

import dataclasses
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voisobot import config, drain, samples, sqs
from voisobot.errors import ConfigError
from voisobot.intake import Intake
from voisobot.store import Store

VISIBILITY = 3  # seconds: what a test leaves received and unsettled comes back soon
# Where nothing should come back: long enough that a loaded machine's slow commit does not
# hand a message out twice, short enough that a receive that timed out is not waited long.
UNHURRIED = 10


def send_backlog(sqs_admin, queue_url, count: int, first: int = 0) -> None:
    """``count`` distinct events, sent 10 a call."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(first, first + count, 10):
        entries = []
        for j in range(i, min(first + count, i + 10)):
            body = samples.example("app_login/successful_login", now=start + timedelta(seconds=j))
            body["params"]["user"] = f"agent{j}@acme.example"
            entries.append({"Id": str(j), "MessageBody": json.dumps(body)})
        sqs_admin.send_message_batch(QueueUrl=queue_url, Entries=entries)


def queue_depth(sqs_admin, queue_url) -> int:
    attributes = sqs_admin.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def not_visible(sqs_admin, queue_url) -> int:
    return int(sqs_admin.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
        ["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


def committed_ids(path, ids: list[str]) -> set[str]:
    """Which of ``ids`` another connection sees committed (as an event, duplicate or
    rejection)."""
    with sqlite3.connect(path, timeout=10) as conn:
        marks = ",".join("?" * len(ids))
        return {row[0] for table in ("events", "duplicates", "rejected") for row in
                conn.execute(f"SELECT sqs_message_id FROM {table} WHERE sqs_message_id IN "
                             f"({marks})", ids)}


class Watch:
    """What the intake's client did: receives, deletes, and any delete of a message not
    committed at the moment of the call."""

    def __init__(self, intake: Intake):
        self.store_path = intake.store.path
        self.message_of: dict[str, str] = {}  # receipt handle -> MessageId
        self.receives = self.full_receives = self.batches = 0  # batches: non-empty receives
        self.deleted: list[str] = []
        self.deleted_before_commit: list[str] = []
        self.on_receive = lambda count: None
        self._lock = threading.Lock()
        events = intake.client.meta.events
        events.register("after-call.sqs.ReceiveMessage", self._received)
        events.register("provide-client-params.sqs.DeleteMessageBatch", self._deleting)

    def _received(self, parsed, **kwargs):
        messages = parsed.get("Messages", [])
        with self._lock:
            self.receives += 1
            self.full_receives += len(messages) == sqs.BATCH_SIZE
            self.batches += bool(messages)
            for message in messages:
                self.message_of[message["ReceiptHandle"]] = message["MessageId"]
            count = self.receives
        self.on_receive(count)

    def _deleting(self, params, **kwargs):
        with self._lock:
            ids = [self.message_of.get(e["ReceiptHandle"], "?") for e in params["Entries"]]
        seen = committed_ids(self.store_path, ids)
        with self._lock:
            self.deleted += ids
            self.deleted_before_commit += [i for i in ids if i not in seen]


def make_intake(cfg, store=None) -> tuple[Intake, Watch]:
    intake = Intake(sqs.make_client(cfg.sqs), cfg.sqs, store or Store(cfg.store_path))
    return intake, Watch(intake)


@pytest.fixture
def drain_config(make_config, tmp_path_factory):
    """A config for a queue on the test server; a store of its own in each call (a
    hypothesis example runs several in one test). The read timeout is generous: a receive
    that times out on a loaded machine hides its messages until the visibility timeout."""
    def make(queue_url: str, **sqs_overrides) -> config.Config:
        sqs_table = dataclasses.asdict(make_config(queue_url).sqs)
        del sqs_table["region_from"]
        sqs_table.update({"request_timeout_seconds": 15.0, **sqs_overrides})
        return config.from_dict({"sqs": sqs_table, "store": {"path": "store.sqlite3"},
                                 "ops": {"port": 0}}, base_dir=tmp_path_factory.mktemp("drain"))
    return make


def drain_all(intake: Intake, sqs_admin, timeout: float = 90.0) -> None:
    """Run the intake until a run finds the queue empty and SQS holds nothing more (what a
    receive that timed out hid comes back after the visibility timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if intake.run() == intake.config.poll_interval_seconds and not intake.backoff.problem \
                and queue_depth(sqs_admin, intake.config.queue_url) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the intake did not drain: {intake.backoff.problem}")


def stored_users(store: Store) -> list[str]:
    return [row[0] for row in store.connection().execute("SELECT user FROM events")]


def assert_exactly_once(intake: Intake, sqs_admin, queue_url, backlog: int) -> None:
    users = stored_users(intake.store)
    assert len(users) == backlog and len(set(users)) == backlog
    assert intake.store.totals() == {"events": backlog, "duplicates": 0, "rejected": 0}
    assert queue_depth(sqs_admin, queue_url) == 0


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- exactly once: each message stored once, deleted only after its commit ---------------

def check_backlog_drains_exactly_once(sqs_admin, queue_url, cfg, backlog):
    send_backlog(sqs_admin, queue_url, backlog)
    intake, watch = make_intake(cfg)
    drain_all(intake, sqs_admin)
    assert_exactly_once(intake, sqs_admin, queue_url, backlog)
    assert watch.deleted_before_commit == []
    assert set(watch.deleted) == set(watch.message_of.values())
    sample = intake.metrics.registry.get_sample_value
    assert sample("voiso_sqs_polls_total") == watch.receives
    assert sample("voiso_intake_receive_to_commit_seconds_count") == watch.batches
    assert sample("voiso_events_stored_total", {"kind": "app_login/successful_login"}) \
        == backlog
    assert intake.health.last_successful_poll is not None
    return intake


@pytest.mark.parametrize("receivers, backlog", [(2, 30), (4, 95), (8, 160), (1, 40)])
def test_a_backlog_is_stored_once_and_deleted_only_after_its_commit(
        sqs_admin, make_queue, drain_config, receivers, backlog):
    queue_url = make_queue(VisibilityTimeout=UNHURRIED)
    intake = check_backlog_drains_exactly_once(
        sqs_admin, queue_url, drain_config(queue_url, receivers=receivers), backlog)
    if receivers > 1:
        assert intake.in_flight is not None  # the pipeline ran
        assert intake.in_flight.peak <= drain.in_flight_limit(receivers)
    else:
        assert intake.in_flight is None  # receivers = 1: the serial loop, as before


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(receivers=st.integers(1, 6), backlog=st.integers(0, 90))
def test_any_backlog_with_any_receivers_is_stored_once_and_deleted_after_its_commit(
        sqs_admin, make_queue, drain_config, receivers, backlog):
    queue_url = make_queue(VisibilityTimeout=UNHURRIED)
    intake = check_backlog_drains_exactly_once(
        sqs_admin, queue_url, drain_config(queue_url, receivers=receivers), backlog)
    intake.store.close()


def test_a_store_that_cannot_commit_leaves_every_message_of_the_backlog_in_sqs(
        sqs_admin, make_queue, drain_config):
    queue_url = make_queue(VisibilityTimeout=VISIBILITY)
    send_backlog(sqs_admin, queue_url, 60)
    cfg = drain_config(queue_url, receivers=4)
    intake, watch = make_intake(cfg)
    intake.store.totals()  # the schema exists before another writer locks the file
    locked = sqlite3.connect(str(cfg.store_path), timeout=0)
    locked.execute("BEGIN EXCLUSIVE")
    intake.store.connection().execute("PRAGMA busy_timeout = 100")
    delay = intake.run()
    assert delay > 0 and intake.backoff.problem.kind == "store_error"
    assert watch.full_receives >= 1 and watch.deleted == []
    assert queue_depth(sqs_admin, queue_url) == 60
    assert intake.in_flight.count == 0  # nothing kept in hand after the run
    locked.rollback()
    locked.close()
    time.sleep(VISIBILITY + 0.2)
    drain_all(intake, sqs_admin)
    assert_exactly_once(intake, sqs_admin, queue_url, 60)
    assert watch.deleted_before_commit == []


# --- a failure of one receiver or deleter backs off and loses nothing ---------------------

@pytest.mark.parametrize("operation, fault, kind", [
    ("ReceiveMessage", "throttle", "throttled"),
    ("ReceiveMessage", "server_error", "service_error"),
    ("DeleteMessageBatch", "server_error", "service_error"),
    ("DeleteMessageBatch", "access_denied", "access_denied"),
])
def test_a_failed_call_inside_the_drain_backs_off_and_loses_nothing(
        sqs_admin, make_queue, drain_config, fault_proxy, operation, fault, kind):
    queue_url = make_queue(VisibilityTimeout=VISIBILITY)
    send_backlog(sqs_admin, queue_url, 120)
    intake, watch = make_intake(drain_config(queue_url, endpoint_url=fault_proxy.url,
                                             receivers=4))

    def arm_after_the_first_receive(count):  # the first receive is full: the drain starts
        if count == 1:  # more faults than botocore's own retries and the receivers take
            fault_proxy.fail(operation, fault, times=50)
    watch.on_receive = arm_after_the_first_receive
    delay = intake.run()
    watch.on_receive = lambda count: None
    fault_proxy.clear()
    assert watch.full_receives >= 1 and intake.in_flight is not None
    assert delay > 0 and intake.backoff.problem.kind == kind
    assert intake.in_flight.count == 0
    time.sleep(VISIBILITY + 0.2)  # what was received and not deleted comes back
    drain_all(intake, sqs_admin)
    assert_exactly_once(intake, sqs_admin, queue_url, 120)
    assert watch.deleted_before_commit == []


# --- a stop mid-drain loses nothing and doubles nothing -----------------------------------

def check_stop_mid_drain(sqs_admin, queue_url, cfg, backlog: int, stop_at_receive: int):
    send_backlog(sqs_admin, queue_url, backlog)
    intake, watch = make_intake(cfg)

    def stop_there(count):
        if count == stop_at_receive:
            intake.stop()  # SIGTERM, as runtime.stop calls it, while receivers receive
    watch.on_receive = stop_there
    intake.run()
    stored_before = intake.store.totals()["events"]
    assert stored_before < backlog, "the stop came too late to test anything"
    assert watch.deleted_before_commit == []
    received = list(watch.message_of.values())
    committed_not_deleted = committed_ids(cfg.store_path, received) - set(watch.deleted)
    intake.store.close()
    time.sleep(VISIBILITY + 0.2)  # received and not deleted: SQS hands it out again
    restarted, rewatch = make_intake(cfg)
    drain_all(restarted, sqs_admin)
    assert_exactly_once(restarted, sqs_admin, queue_url, backlog)
    # each committed-but-undeleted message came back and was recognised, not stored again
    # (on a loaded machine a slow receive can bring back more, recognised the same way)
    assert restarted.health.totals.redelivered >= len(committed_not_deleted)
    assert rewatch.deleted_before_commit == []
    restarted.store.close()


@pytest.mark.parametrize("stop_at_receive", [1, 3, 6])
def test_a_stop_mid_drain_loses_nothing_and_doubles_nothing(
        sqs_admin, make_queue, drain_config, stop_at_receive):
    queue_url = make_queue(VisibilityTimeout=VISIBILITY)
    check_stop_mid_drain(sqs_admin, queue_url, drain_config(queue_url, receivers=4), 150,
                         stop_at_receive)


@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(receivers=st.integers(2, 6), stop_at_receive=st.integers(1, 8))
def test_a_stop_at_any_receive_of_the_drain_loses_nothing_and_doubles_nothing(
        sqs_admin, make_queue, drain_config, receivers, stop_at_receive):
    queue_url = make_queue(VisibilityTimeout=VISIBILITY)
    cfg = drain_config(queue_url, receivers=receivers)
    check_stop_mid_drain(sqs_admin, queue_url, cfg, 150, stop_at_receive)


# --- memory stays bounded whatever the backlog ---------------------------------------------

class HeldStore(Store):
    """A store whose commits wait until the test lets them go: a slow disk."""

    def __init__(self, path):
        super().__init__(path)
        self.go = threading.Event()

    def record_batch(self, deliveries, received_at):
        self.go.wait(timeout=60)
        return super().record_batch(deliveries, received_at)


@pytest.mark.parametrize("receivers", [2, 5])
def test_with_the_committer_held_up_receivers_wait_and_messages_in_hand_stay_bounded(
        sqs_admin, make_queue, drain_config, monkeypatch, receivers):
    monkeypatch.setattr(drain, "GROUP_MESSAGES", 20)
    limit = drain.in_flight_limit(receivers)
    backlog = limit + 60  # more than may be in hand (moto slows with depth: not far more)
    queue_url = make_queue(VisibilityTimeout=60)
    send_backlog(sqs_admin, queue_url, backlog)
    cfg = drain_config(queue_url, receivers=receivers)
    store = HeldStore(cfg.store_path)
    intake, watch = make_intake(cfg, store)
    run = threading.Thread(target=intake.run)
    run.start()
    try:
        wait_for(lambda: intake.in_flight is not None
                 and intake.in_flight.waiting == receivers, "every receiver to wait")
        assert intake.in_flight.count <= limit
        assert len(watch.message_of) <= limit < backlog
        assert not_visible(sqs_admin, queue_url) <= limit
    finally:
        store.go.set()
        run.join(timeout=60)
    assert intake.in_flight.peak <= limit
    drain_all(intake, sqs_admin)
    assert_exactly_once(intake, sqs_admin, queue_url, backlog)
    assert watch.deleted_before_commit == []


# --- [sqs] receivers is checked at load ----------------------------------------------------

def load_receivers(value):
    return config.from_dict({"sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/"
                                                  "123456789012/voiso", "receivers": value}})


@pytest.mark.parametrize("value", [0, -1, 33, 1000, "8", 2.5, True, [4]])
def test_a_receivers_setting_out_of_range_or_not_a_whole_number_is_refused_naming_the_key(
        value):
    with pytest.raises(ConfigError, match=r"sqs\.receivers"):
        load_receivers(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(-100, 100))
def test_receivers_from_1_to_32_load_and_any_other_number_is_refused(value):
    if 1 <= value <= 32:
        assert load_receivers(value).sqs.receivers == value
    else:
        with pytest.raises(ConfigError, match=r"sqs\.receivers"):
            load_receivers(value)


def test_receivers_default_to_8():
    assert config.from_dict({"sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/"
                                                  "123456789012/voiso"}}).sqs.receivers == 8
