"""The intake writing beside the /voiso questions (bench_queries.py's "under load" tables).

A child process, so that its CPU is not the measuring process's GIL: it stores
RATE events a second into the store through the intake's core
(``Intake.store_messages`` on SQS-shaped message dicts, BATCH at a time every
BATCH / RATE seconds), event times at the data's present, so that they land in the
windows the questions ask about; and runs the bot's counting job
(``jobs.count_days``) every COUNT_SECONDS in a thread beside it, as the scheduler does.
"""

import json
import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from voisobot import config, jobs
from voisobot.intake import Intake
from voisobot.store import Store

RATE = 500           # events a second
BATCH = 10           # as one ReceiveMessage brings at most
# As the bot runs its counting job under a steady intake: woken by commits, at most this often.
COUNT_SECONDS = jobs.DAILY_COUNT_WAKE_GAP_SECONDS

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/voiso-bench"  # never called

# (rng, event time) -> an event body as Voiso sends it
MakeBody = Callable[[random.Random, datetime], dict]


@dataclass(frozen=True)
class WriterReport:
    messages: int          # messages handed to store_messages
    stored: int            # of them, new events
    seconds: float         # from the first batch to the stop
    behind_batches: int    # batches that started late (the store or the CPU held them up)
    counting_runs: int
    counting_max_ms: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def message(body: dict) -> dict:
    """A message as ReceiveMessage returns it."""
    return {"MessageId": str(uuid.uuid4()), "ReceiptHandle": uuid.uuid4().hex,
            "Body": json.dumps(body),
            "Attributes": {"SentTimestamp": str(int(time.time() * 1000))}}


class IntakeWriter:
    """``start()`` the child; ``stop()`` it and get its WriterReport. Event times are
    ``newest`` plus the time since ``since`` (a time.monotonic(), shared by every process
    of the machine), so the measuring process knows the data's present too."""

    def __init__(self, path: str, newest: datetime, since: float, make_body: MakeBody,
                 seed: int):
        context = multiprocessing.get_context("fork")  # make_body is a closure: not pickled
        self._ready, self._stop = context.Event(), context.Event()
        self._reports = context.Queue()
        self._child = context.Process(target=_write, args=(
            path, newest, since, make_body, seed, self._ready, self._stop, self._reports))

    def start(self, timeout: float = 60.0) -> "IntakeWriter":
        self._child.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self._child.is_alive() or time.monotonic() > deadline:
                self._child.kill()
                raise SystemExit("the intake writer did not start (see above)")
        return self

    def stop(self, timeout: float = 60.0) -> WriterReport:
        self._stop.set()
        report = self._reports.get(timeout=timeout)
        self._child.join(timeout)
        return report


def _write(path: str, newest: datetime, since: float, make_body: MakeBody, seed: int,
           ready, stop, reports) -> None:
    store = Store(path)
    cfg = config.from_dict({"sqs": {"queue_url": QUEUE_URL}})
    intake = Intake(None, cfg.sqs, store, clock=lambda: datetime.now(UTC))
    counting = _Counting(store, stop)
    counter = threading.Thread(target=counting.run, daemon=True)
    rng = random.Random(seed)
    ready.set()
    counter.start()
    messages = stored = behind = 0
    began = next_at = time.monotonic()
    while not stop.is_set():
        at = newest + timedelta(seconds=time.monotonic() - since)
        batch = [message(make_body(rng, at + timedelta(milliseconds=2 * i)))
                 for i in range(BATCH)]
        stored += len(intake.store_messages(batch).stored)
        messages += len(batch)
        next_at += BATCH / RATE
        wait = next_at - time.monotonic()
        if wait > 0:
            stop.wait(wait)
        else:
            behind += 1
    seconds = time.monotonic() - began
    counter.join()
    store.close()
    reports.put(WriterReport(messages, stored, seconds, behind, counting.runs,
                             counting.max_ms))


class _Counting:
    """The bot's counting job, every COUNT_SECONDS, until ``stop``."""

    def __init__(self, store: Store, stop):
        self.store, self.stop = store, stop
        self.runs, self.max_ms = 0, 0.0

    def run(self) -> None:
        while not self.stop.wait(COUNT_SECONDS):
            started = time.perf_counter()
            jobs.count_days(self.store)
            self.max_ms = max(self.max_ms, (time.perf_counter() - started) * 1000)
            self.runs += 1
        jobs.count_days(self.store)  # what is left: the next quiet run starts counted
