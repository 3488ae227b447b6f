"""The intake: receive from SQS, parse, commit to SQLite, and only then delete from SQS.

Nothing lost: a message leaves the queue only after its row (event, duplicate
or rejection) is committed. Nothing doubled: the store is idempotent on the SQS
message id, so a redelivery — after a crash between commit and delete, or a
delete that failed — adds nothing. No message holds up its batch: one that fails to parse
or to store in a way no check foresaw is kept as a rejection "internal error: ..." (see
to_delivery and Store.record_batch), and the batch is deleted as usual.
"""

import contextlib
import logging
import random
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from voisobot import drain, events, logs, sqs
from voisobot.config import SqsConfig
from voisobot.errors import IntakeProblem, MalformedEvent
from voisobot.metrics import Metrics
from voisobot.store import BatchOutcome, Delivery, Store, internal_error_reason, time_text

log = logging.getLogger(__name__)

# One run drains the queue for at most this long, then hands back to the scheduler (which
# runs it again at once): a run that lasts much longer is stuck (ops.py's liveness).
MAX_RUN_SECONDS = 60.0
_LOUD = {"access_denied", "kms_key", "no_such_queue", "no_credentials", "bad_credentials",
         "wrong_region", "store_error", "internal_error"}


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_delivery(message: dict) -> Delivery:
    """Parse one received SQS message; a bad body becomes a Delivery with a reason.

    Whatever goes wrong with one message (a bug, a malformed receive response) makes it a
    rejection "internal error: ...", so that the rest of its batch is still settled.
    """
    try:
        return _parsed(message)
    except Exception as exc:
        message_id = _message_id(message)
        log.exception("internal error while parsing SQS message %s; kept as rejected",
                      message_id, extra=logs.ids(sqs_message_id=message_id))
        return Delivery(message_id, _raw_body(message), None, reason=internal_error_reason(exc))


def _parsed(message: dict) -> Delivery:
    message_id = _message_id(message)
    raw = message.get("Body", "").encode("utf-8", "surrogatepass")
    sent_at = _sent_at(message.get("Attributes", {}).get("SentTimestamp"))
    try:
        return Delivery(message_id, raw, sent_at, event=events.parse(raw))
    except MalformedEvent as exc:
        return Delivery(message_id, raw, sent_at, reason=str(exc))


def _message_id(message) -> str:
    """The SQS MessageId, or a made-up one so that a response without it is still kept.
    An id SQLite cannot store (an unpaired surrogate) has it shown as U+FFFD, as event
    fields do: always the same way, so a redelivery is still recognised."""
    message_id = message.get("MessageId") if isinstance(message, dict) else None
    if not isinstance(message_id, str):
        return f"no-message-id-{uuid.uuid4()}"
    return message_id.encode("utf-8", "replace").decode("utf-8")


def _raw_body(message) -> bytes:
    """The body as received when it is text; otherwise Python's spelling of what came."""
    body = message.get("Body") if isinstance(message, dict) else message
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return repr(body).encode("utf-8", "backslashreplace")


def _sent_at(millis: str | None) -> str | None:
    try:
        return time_text(datetime.fromtimestamp(int(millis) / 1000, UTC))
    except (TypeError, ValueError, OverflowError, OSError):
        return None


class Backoff:
    """Capped exponential backoff that logs one line when the intake's state changes."""

    def __init__(self, initial: float, maximum: float, jitter=random.random):
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self.failures = 0
        self.problem: IntakeProblem | None = None
        self._lock = threading.Lock()  # the drain's receivers and deleters report too

    def failed(self, problem: IntakeProblem) -> float:
        with self._lock:
            return self._failed(problem)

    def _failed(self, problem: IntakeProblem) -> float:
        if self.problem is None or self.problem.kind != problem.kind:
            level = logging.ERROR if problem.kind in _LOUD else logging.WARNING
            log.log(level, "SQS intake: %s", problem)
        self.problem = problem
        self.failures += 1
        delay = min(self.maximum, self.initial * 2 ** min(self.failures - 1, 30))
        return delay * (0.5 + self.jitter() / 2)  # jitter, so restarts don't stampede

    def succeeded(self, operation: str) -> None:
        """``operation`` worked: if it is the one that was failing, the problem is over."""
        if self.problem is None or self.problem.operation != operation:
            return  # the common case, without the lock
        with self._lock:
            if self.problem is None or self.problem.operation != operation:
                return
            log.warning("SQS intake: working again after %d failed attempt(s) (%s)",
                        self.failures, self.problem.kind)
            self.failures, self.problem = 0, None


@dataclass
class IntakeHealth:
    last_successful_poll: datetime | None = None  # a ReceiveMessage that worked, empty or not
    totals: BatchOutcome = field(default_factory=BatchOutcome)


class Intake:
    def __init__(self, client, config: SqsConfig, store: Store, *, clock=utc_now,
                 abandonable=contextlib.nullcontext, metrics: Metrics | None = None):
        """``abandonable()`` wraps each long poll: a part of the run that stopping need not
        wait for (jobs.StopGate.abandonable)."""
        self.client, self.config, self.store, self.clock = client, config, store, clock
        self.abandonable = abandonable
        self.metrics = metrics or Metrics()
        self.stopping = threading.Event()
        self.backoff = Backoff(config.backoff_initial_seconds, config.backoff_max_seconds)
        self.health = IntakeHealth()
        self.in_flight: drain.InFlight | None = None  # the last drain's, for its peak

    def run(self) -> float:
        """One scheduled run: drain the queue while messages come, one batch at least and
        then for MAX_RUN_SECONDS at most; return the seconds to wait (0: run again now).
        A full batch means a backlog: with [sqs] receivers above 1, the rest of the run
        is a drain.Pipeline."""
        deadline = time.monotonic() + MAX_RUN_SECONDS
        try:
            while not self.stopping.is_set():
                with self.abandonable():
                    messages = self.poll(self.config.wait_time_seconds)
                if not messages:
                    return self.config.poll_interval_seconds
                if self.stopping.is_set():  # received as the bot stops: not stored, not
                    return 0.0  # deleted; SQS hands it out again after the visibility timeout
                if len(messages) == sqs.BATCH_SIZE and self.config.receivers > 1:
                    return self._drain(messages, time.monotonic(), deadline)
                self.settle(messages, received=time.monotonic())
                if time.monotonic() >= deadline:
                    break
        except IntakeProblem as problem:
            return self.failed(problem)
        return 0.0

    def _drain(self, first: list[dict], received: float, deadline: float) -> float:
        pipeline = drain.Pipeline(self, deadline)
        self.in_flight = pipeline.room
        problem = pipeline.run(first, received)
        if problem is not None:
            return self.failed(problem)
        return self.config.poll_interval_seconds if pipeline.drained else 0.0

    def failed(self, problem: IntakeProblem) -> float:
        """Count the problem; return the seconds to back off."""
        self.metrics.intake_failed(problem)
        return self.backoff.failed(problem)

    def poll(self, wait_seconds: int) -> list[dict]:
        """One ReceiveMessage, counted; a poll that works is the intake's sign of life."""
        try:
            messages = self._call("ReceiveMessage", sqs.receive, wait_seconds)
        finally:
            self.metrics.polled()
        self.health.last_successful_poll = self.clock()
        self.metrics.poll_succeeded(self.health.last_successful_poll.timestamp())
        return messages

    def settle(self, messages: list[dict], received: float | None = None) -> BatchOutcome:
        """Commit a received batch, then delete it from SQS. ``received``: the
        time.monotonic() at which ReceiveMessage answered."""
        received = time.monotonic() if received is None else received
        outcome = self.store_messages(messages)
        self.metrics.batch_committed(time.monotonic() - received)
        self.delete(messages)
        return outcome

    def delete(self, messages: list[dict]) -> None:
        """Delete a committed batch (10 at most) from SQS."""
        failed = self._call("DeleteMessageBatch", sqs.delete, messages)
        if failed:
            self._retry_failed_deletes(messages, failed)

    def store_messages(self, messages: list[dict]) -> BatchOutcome:
        """The intake core without the network: parse, validate, dedupe, commit."""
        deliveries = [to_delivery(m) for m in messages]
        try:
            outcome = self.store.record_batch(deliveries, self.clock())
        except sqlite3.Error as exc:
            raise IntakeProblem("store_error", f"cannot write to {self.store.path} ({exc}); the "
                                "messages stay in SQS and will be retried", "store") from exc
        self.backoff.succeeded("store")
        for delivery in deliveries:
            if delivery.reason:
                log.warning("rejected SQS message %s: %s", delivery.message_id, delivery.reason,
                            extra=logs.ids(sqs_message_id=delivery.message_id))
        log.debug("stored a batch of %d: %d new, %d duplicate(s), %d redelivered, %d rejected",
                  len(deliveries), len(outcome.stored), outcome.duplicates, outcome.redelivered,
                  outcome.rejected)
        self.health.totals.add(outcome)
        self.metrics.batch_stored(outcome)
        return outcome

    def _retry_failed_deletes(self, messages: list[dict], failed: list[dict]) -> None:
        """Retry entries SQS failed on its side once; whatever remains comes back and is
        recognised as already stored."""
        retry = [messages[int(f["Id"])] for f in failed if not f.get("SenderFault")]
        still = [f for f in failed if f.get("SenderFault")]
        if retry:
            still += self._call("DeleteMessageBatch", sqs.delete, retry)
        if still:
            reasons = sorted({f"{f.get('Code')}: {f.get('Message', '')}" for f in still})
            log.warning("SQS kept %d stored message(s) after delete (%s); they will be "
                        "redelivered and recognised as already stored", len(still),
                        "; ".join(reasons))

    def _call(self, operation: str, function, *args):
        try:
            result = function(self.client, self.config.queue_url, *args)
        except Exception as exc:
            raise sqs.classify(exc, operation, self.config,
                                self.client.meta.region_name) from exc
        self.backoff.succeeded(operation)
        return result

    def stop(self) -> None:
        self.stopping.set()
