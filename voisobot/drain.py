"""The intake under a backlog: concurrent receivers, group commits, deletes after the commit.

At 20-40 ms per SQS call, one poller that receives, commits and deletes in turn stores a
few hundred events a second. When a receive comes back full, Intake.run hands the rest of
its run to a Pipeline: ``[sqs] receivers`` threads receive, the run's own thread commits
whatever batches wait (up to GROUP_MESSAGES) in one Store.record_batch (one transaction,
one fsync), and as many deleter threads delete each batch once its commit is done.

Exactly once holds as in the serial loop: a batch reaches the deleters only after the
commit that holds it, and the store is idempotent on the MessageId, so what is received
and not committed (a stop, a failed store) is simply handed out again by SQS.

Memory is bounded whatever the backlog: a receiver takes room for a full batch (InFlight)
before it receives, and the room comes back only when the batch is deleted or dropped, so
never more than ``in_flight_limit(receivers)`` messages are in hand; receivers wait
rather than receive more. When receives come back empty, the receivers end and the next
run is the single long poller again.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable

from voisobot.errors import IntakeProblem
from voisobot.sqs import BATCH_SIZE

log = logging.getLogger(__name__)

# One commit takes the batches waiting, up to about this many messages: large enough that
# an fsync is shared by many batches, small enough that a commit stays in milliseconds.
GROUP_MESSAGES = 200
# A pipeline receiver's long poll: a backlog answers at once, and an emptied queue ends
# the pipeline within a second (the single poller then waits the full wait_time_seconds).
DRAIN_WAIT_SECONDS = 1
_RECEIVER_DONE = object()  # what a receiver hands over when it ends
_CHECK_SECONDS = 0.1  # how often a waiting thread looks whether to give up


def in_flight_limit(receivers: int) -> int:
    """The most messages in hand: a batch being received by each receiver, a group being
    committed, and a batch being deleted per deleter (one per receiver)."""
    return 2 * receivers * BATCH_SIZE + GROUP_MESSAGES


class InFlight:
    """Room for messages in hand: received, and neither deleted nor dropped yet."""

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0
        self.peak = 0
        self.waiting = 0  # receivers waiting for room: the committer or the deletes lag
        self._changed = threading.Condition()

    def take(self, count: int, keep_waiting: Callable[[], bool]) -> bool:
        """Wait for room for ``count`` messages; False when ``keep_waiting`` says stop."""
        with self._changed:
            self.waiting += 1
            try:
                while self.count + count > self.limit:
                    if not keep_waiting():
                        return False
                    self._changed.wait(_CHECK_SECONDS)
            finally:
                self.waiting -= 1
            self.count += count
            self.peak = max(self.peak, self.count)
            return True

    def give(self, count: int) -> None:
        with self._changed:
            self.count -= count
            self._changed.notify_all()


class Pipeline:
    """One run's drain of a backlog; ``run`` returns the first problem, or None."""

    def __init__(self, intake, deadline: float):
        self.intake, self.deadline = intake, deadline
        self.workers = intake.config.receivers
        self.room = InFlight(in_flight_limit(self.workers))
        self.received: queue.Queue = queue.Queue()   # (messages, time received) | _RECEIVER_DONE
        self.committed: queue.Queue = queue.Queue()  # a batch to delete | None: end
        self.ending = threading.Event()  # a failure: receive no more
        self.problem: IntakeProblem | None = None
        self.error: Exception | None = None  # a bug in a worker thread, raised by run
        self.store_failed = self.delete_failed = False
        self.emptied = 0  # receivers that ended on an empty receive
        self._lock = threading.Lock()

    @property
    def drained(self) -> bool:
        """Every receiver found the queue empty: the backlog is gone."""
        return self.emptied == self.workers

    def run(self, first: list[dict], received_at: float) -> IntakeProblem | None:
        self.room.take(len(first), lambda: True)  # fits: nothing else is in hand yet
        self.received.put((first, received_at))
        deleters = [_start(self._delete_loop, "intake-delete") for _ in range(self.workers)]
        for _ in range(self.workers):
            _start(self._receive_loop, "intake-receive")
        try:
            self._commit_loop()  # on this thread: the job's own store connection
        except BaseException:
            self.ending.set()
            raise
        finally:
            for _ in deleters:
                self.committed.put(None)
            for thread in deleters:  # each delete is bounded by the client's timeouts
                thread.join()
        if self.error is not None:
            raise self.error
        return self.problem

    # --- receivers ------------------------------------------------------------------

    def _receiving(self) -> bool:
        return not (self.ending.is_set() or self.intake.stopping.is_set()
                    or time.monotonic() >= self.deadline)

    def _receive_loop(self) -> None:
        try:
            while self._receiving() and self.room.take(BATCH_SIZE, self._receiving):
                if not self._receive_one():
                    break
        except Exception as exc:
            self._crashed(exc)
        finally:
            self.received.put(_RECEIVER_DONE)

    def _receive_one(self) -> bool:
        """Receive one batch into room taken for it; False: this receiver ends."""
        try:
            messages = self.intake.poll(min(DRAIN_WAIT_SECONDS,
                                            self.intake.config.wait_time_seconds))
        except IntakeProblem as problem:
            self.room.give(BATCH_SIZE)
            self._failed(problem)
            return False
        self.room.give(BATCH_SIZE - len(messages))
        if self.intake.stopping.is_set():  # not stored, not deleted: SQS hands them out again
            self.room.give(len(messages))
            return False
        if not messages:
            with self._lock:
                self.emptied += 1
            return False
        self.received.put((messages, time.monotonic()))
        return True

    # --- the committer (the run's own thread) -----------------------------------------

    def _commit_loop(self) -> None:
        ended = 0
        while ended < self.workers and not self.intake.stopping.is_set():
            try:
                first = self.received.get(timeout=_CHECK_SECONDS)
            except queue.Empty:
                continue
            group, done = self._gather(first)
            ended += done
            if group:
                self._commit(group)
        self._drop(self.received)  # a stop: received, not committed; SQS hands them out again

    def _gather(self, first) -> tuple[list[tuple[list[dict], float]], int]:
        """The batches waiting, from ``first``, up to GROUP_MESSAGES; and how many
        receivers ended among them."""
        group, done, size, item = [], 0, 0, first
        while True:
            if item is _RECEIVER_DONE:
                done += 1
            else:
                group.append(item)
                size += len(item[0])
            if size >= GROUP_MESSAGES:
                return group, done
            try:
                item = self.received.get_nowait()
            except queue.Empty:
                return group, done

    def _commit(self, group: list[tuple[list[dict], float]]) -> None:
        messages = [message for batch, _ in group for message in batch]
        if self.store_failed or self.delete_failed:  # stays in SQS, handed out again
            self.room.give(len(messages))
            return
        try:
            self.intake.store_messages(messages)
        except IntakeProblem as problem:
            self.store_failed = True
            self.room.give(len(messages))
            self._failed(problem)
            return
        committed = time.monotonic()
        for batch, received_at in group:
            self.intake.metrics.batch_committed(committed - received_at)
            self.committed.put(batch)  # only now may it be deleted

    def _drop(self, waiting: queue.Queue) -> None:
        while True:
            try:
                item = waiting.get_nowait()
            except queue.Empty:
                return
            if item is not _RECEIVER_DONE:
                self.room.give(len(item[0]))

    # --- deleters -------------------------------------------------------------------

    def _delete_loop(self) -> None:
        while (batch := self.committed.get()) is not None:
            try:
                if not self.delete_failed:  # after a failed delete: redelivered, recognised
                    self.intake.delete(batch)
            except IntakeProblem as problem:
                self.delete_failed = True
                self._failed(problem)
            except Exception as exc:
                self._crashed(exc)
            finally:
                self.room.give(len(batch))

    # --- failures -------------------------------------------------------------------

    def _failed(self, problem: IntakeProblem) -> None:
        """The first problem ends the pipeline and is the run's; receiving stops at once."""
        with self._lock:
            if self.problem is None:
                self.problem = problem
        self.ending.set()

    def _crashed(self, exc: Exception) -> None:
        log.exception("intake pipeline: unexpected error")
        with self._lock:
            if self.error is None:
                self.error = exc
        self.ending.set()


def _start(target: Callable[[], None], name: str) -> threading.Thread:
    # Daemon: a receiver in its long poll when the bot stops is not waited for (its
    # messages are neither stored nor deleted), like the single poller's (jobs.StopGate).
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
