"""The scheduler: the intake, delivery and retention jobs, with failures made visible."""

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
)
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from voisobot import lookalike, summaries
from voisobot.delivery import AlertDelivery
from voisobot.errors import IntakeProblem
from voisobot.intake import Intake, utc_now
from voisobot.rollups import count_all_new_events, shift_windows
from voisobot.store import Store

log = logging.getLogger(__name__)

INTAKE_JOB = "intake"
DELIVERY_JOB = "delivery"
CONFIRM_JOB = "confirmations"
CONFIRM_INTERVAL_SECONDS = 1.0
PRUNE_JOB = "prune"
DIGEST_JOB = "digest"
DAILY_COUNT_JOB = "daily_counts"
DAILY_COUNT_SECONDS = 1.0  # the events stats reads one by one (not yet counted) stay few
# The counting job, woken by commits, starts at most this often: under a steady intake it
# then counts a few hundred events a run, not one transaction (and fsync) per batch.
DAILY_COUNT_WAKE_GAP_SECONDS = 0.2
MIN_DELAY_SECONDS = 0.1  # keeps the next run strictly after this one has returned


class StopGate:
    """Lets a clean stop wait for the jobs that reschedule themselves.

    APScheduler's ``shutdown(wait=True)`` holds its job-store lock while it waits for
    running jobs, and a job rescheduling itself needs that lock: calling shutdown
    while such a job runs would deadlock. So stopping first closes this gate, waits
    until no job is inside it, and only then shuts the scheduler down; a job that
    starts after the gate closed leaves the scheduler alone. A Wake, which reschedules a
    job from outside it, enters the gate the same way.
    """

    def __init__(self):
        self._changed = threading.Condition()
        self._inside = 0
        self._closed = False

    @contextlib.contextmanager
    def enter(self) -> Iterator[bool]:
        """Yields True while the bot runs, False once stopping has begun."""
        with self._changed:
            self._inside += 1
            is_open = not self._closed
        try:
            yield is_open
        finally:
            with self._changed:
                self._inside -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def abandonable(self) -> Iterator[None]:
        """Inside a job: a part that stopping need not wait for (a long poll, whose
        messages stay in SQS if the bot stops meanwhile)."""
        with self._changed:
            self._inside -= 1
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._inside += 1

    def close(self, timeout: float) -> bool:
        with self._changed:
            self._closed = True
            return self._changed.wait_for(lambda: self._inside == 0, timeout)


class JobWatch:
    """Since when each self-pacing job (the intake, the delivery) has been in its current
    run: the liveness check (ops.py) calls a run that lasts too long stuck."""

    def __init__(self):
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}  # job id -> time.monotonic()

    @contextlib.contextmanager
    def running(self, job_id: str) -> Iterator[None]:
        with self._lock:
            self._started[job_id] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                del self._started[job_id]

    def running_for(self) -> dict[str, float]:
        """Seconds each job now running has been in its run."""
        now = time.monotonic()
        with self._lock:
            return {job_id: now - started for job_id, started in self._started.items()}


class WakeState:
    """When a woken job is asked to run: the decisions of Wake, without the scheduler.

    ``wake`` says whether to ask for a run now (the job is idle and none is asked for yet);
    a wake while a run is asked for is the same run, and a wake while one runs is recorded,
    so that ``ended`` asks for exactly one more run after it. Every wake is followed by the
    start of a run (none is lost), and a run is never asked for while one runs.
    """

    IDLE, ASKED, RUNNING = "idle", "asked", "running"

    def __init__(self):
        self.state = self.IDLE
        self.again = False  # woken while running: run once more when this run ends

    def wake(self) -> bool:
        if self.state == self.RUNNING:
            self.again = True
            return False
        asked, self.state = self.state == self.IDLE, self.ASKED
        return asked

    def started(self) -> None:
        self.state, self.again = self.RUNNING, False

    def ended(self) -> bool:
        """The run has returned and the scheduler has let it go: whether to ask again."""
        if self.state != self.RUNNING:
            return False
        self.state = self.ASKED if self.again else self.IDLE
        self.again = False
        return self.state == self.ASKED


class Wake:
    """Runs a paced job now instead of at its next tick, when work for it arrives (the
    store calls it after each commit of new events: Store.add_commit_listener).

    Coalesced (WakeState): a burst of wakes is one run, and wakes during a run are one
    more run, asked for only once the executor has let the run go (EVENT_JOB_EXECUTED), so
    that APScheduler's max_instances never turns it away and no wake is lost. ``min_gap``:
    woken runs start at least this many seconds apart. Inside the StopGate: a stop waits for
    a wake in hand, and once stopping began no wake touches the scheduler (its shutdown
    must not race a job being rescheduled).
    """

    def __init__(self, scheduler: BackgroundScheduler, gate: StopGate, job_id: str,
                 min_gap: float = 0.0):
        self.scheduler, self.gate, self.job_id, self.min_gap = scheduler, gate, job_id, min_gap
        self.state = WakeState()
        # Held while the job's schedule changes (our lock, then the scheduler's): a wake
        # cannot bring forward a run that has just paused itself to run.
        self._lock = threading.Lock()
        self._last_start = float("-inf")  # time.monotonic()
        scheduler.add_listener(self._run_ended, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def __call__(self) -> None:
        with self._lock:
            if self.state.wake():
                self._ask_for_run()

    def pause_to_run(self) -> None:
        """The run itself, first thing inside the gate: no tick fires into it."""
        with self._lock:
            self.state.started()
            self._last_start = time.monotonic()
            self.scheduler.pause_job(self.job_id)

    def _run_ended(self, event) -> None:
        if event.job_id != self.job_id:
            return
        with self._lock:
            if self.state.ended():
                self._ask_for_run()

    def _ask_for_run(self) -> None:
        with self.gate.enter() as running:
            if not running:
                return
            wait = max(0.0, self._last_start + self.min_gap - time.monotonic())
            with contextlib.suppress(JobLookupError):
                self.scheduler.modify_job(self.job_id,
                                          next_run_time=utc_now() + timedelta(seconds=wait))


def build_scheduler(intake: Intake, store: Store, *, retention_days: int,
                    prune_interval_minutes: int, gate: StopGate,
                    delivery: AlertDelivery | None = None,
                    watch: JobWatch | None = None,
                    confirmations=None, digest=None,
                    wake_on_commit: bool = True) -> BackgroundScheduler:
    """``confirmations``: the "was this you?" job (confirming.Confirmations), when on;
    ``digest``: the digest job (digest.DigestJob), when [digest] names a channel;
    ``wake_on_commit``: each commit of new events wakes the delivery and counting jobs
    (False only to measure the polling alone: bench/bench_alerts.py)."""
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
        "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
    woken = {DELIVERY_JOB, CONFIRM_JOB, DAILY_COUNT_JOB}
    scheduler.add_listener(lambda event: _report_job_problem(event, woken),
                           EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    paced = (scheduler, gate, watch or JobWatch())
    _add_paced_job(*paced, INTAKE_JOB, "SQS intake", intake.run,
                   lambda exc: _intake_failed(intake, exc), intake.config.poll_interval_seconds)
    asking = None
    if confirmations is not None:
        asking = Wake(scheduler, gate, CONFIRM_JOB)
        _add_paced_job(*paced, CONFIRM_JOB, "was this you?", confirmations.run_paced,
                       lambda exc: CONFIRM_INTERVAL_SECONDS, CONFIRM_INTERVAL_SECONDS,
                       wake=asking)
    if delivery is not None:
        delivering = Wake(scheduler, gate, DELIVERY_JOB)
        _add_paced_job(*paced, DELIVERY_JOB, "Slack delivery", _delivery_run(delivery, asking),
                       lambda exc: delivery.run_interval, delivery.run_interval,
                       wake=delivering)
        if wake_on_commit:
            store.add_commit_listener(delivering)
    if digest is not None:
        scheduler.add_job(_gated, IntervalTrigger(seconds=digest.run_interval),
                          args=(gate, digest.run), id=DIGEST_JOB, name="digest",
                          next_run_time=utc_now())
    counting = Wake(scheduler, gate, DAILY_COUNT_JOB, DAILY_COUNT_WAKE_GAP_SECONDS)
    # Its own watch: a first count after an upgrade may be long, and it is not what the
    # liveness check (ops.job_stuck_seconds) is about.
    _add_paced_job(scheduler, gate, JobWatch(), DAILY_COUNT_JOB, "daily counts",
                   lambda: _count_days_paced(store), lambda exc: DAILY_COUNT_SECONDS,
                   DAILY_COUNT_SECONDS, wake=counting)
    if wake_on_commit:
        store.add_commit_listener(counting)
    scheduler.add_job(_gated, IntervalTrigger(minutes=prune_interval_minutes),
                      args=(gate, prune, store, retention_days), id=PRUNE_JOB, name="retention",
                      next_run_time=utc_now())
    return scheduler


def _delivery_run(delivery: AlertDelivery, asking: Wake | None) -> Callable[[], float]:
    """The delivery's run; a run that posted an alert wakes the "was this you?" job, whose
    questions wait for their alert to be in Slack."""
    def run() -> float:
        posted = delivery.posted
        delay = delivery.run()
        if asking is not None and delivery.posted != posted:
            asking()
        return delay
    return run


def add_gated_job(scheduler: BackgroundScheduler, gate: StopGate, job_id: str, name: str,
                  work: Callable[[], object], seconds: float) -> None:
    """A job added after the scheduler is built (the App Home's refresh), inside the gate."""
    scheduler.add_job(_gated, IntervalTrigger(seconds=seconds), args=(gate, work), id=job_id,
                      name=name)


def add_start_job(scheduler: BackgroundScheduler, gate: StopGate, job_id: str, name: str,
                  work: Callable[[], object]) -> None:
    """A job run once, as the scheduler starts, inside the gate."""
    scheduler.add_job(_gated, args=(gate, work), id=job_id, name=name,
                      next_run_time=utc_now())


def _add_paced_job(scheduler: BackgroundScheduler, gate: StopGate, watch: JobWatch,
                   job_id: str, name: str, work: Callable[[], float],
                   on_error: Callable[[Exception], float], interval: float,
                   wake: Wake | None = None) -> None:
    scheduler.add_job(_run_paced, IntervalTrigger(seconds=max(interval, MIN_DELAY_SECONDS)),
                      args=(scheduler, gate, watch, job_id, work, on_error, wake), id=job_id,
                      name=name, next_run_time=utc_now())


def _gated(gate: StopGate, work: Callable, *args) -> None:
    """Run a job inside the gate, so that a stop waits for it; not once stopping began."""
    with gate.enter() as running:
        if running:
            work(*args)


def _run_paced(scheduler: BackgroundScheduler, gate: StopGate, watch: JobWatch, job_id: str,
               work: Callable[[], float], on_error: Callable[[Exception], float],
               wake: Wake | None = None) -> None:
    """Run ``work`` once, then schedule the next run after the delay it returns.

    The job pauses itself while it runs (a long poll, a slow Slack call), so its
    interval never fires into a running instance; the returned delay carries both the
    idle interval and any backoff. A ``wake`` may bring the next run forward.
    """
    with gate.enter() as running:
        if not running:
            return
        if wake is not None:
            wake.pause_to_run()
        else:
            scheduler.pause_job(job_id)
        delay = MIN_DELAY_SECONDS
        try:
            with watch.running(job_id):
                delay = work()
        except Exception as exc:  # a bug must not end the job: log it and back off
            log.exception("job %s: unexpected error", job_id)
            delay = on_error(exc)
        finally:
            with contextlib.suppress(JobLookupError):
                scheduler.modify_job(job_id, next_run_time=utc_now() + timedelta(
                    seconds=max(delay, MIN_DELAY_SECONDS)))


def _intake_failed(intake: Intake, exc: Exception) -> float:
    problem = IntakeProblem("internal_error", f"unexpected error: {exc}", "run")
    return intake.failed(problem)


def _count_days_paced(store: Store) -> float:
    count_days(store)
    return DAILY_COUNT_SECONDS


def count_days(store: Store) -> int:
    """Bring the rollups behind /voiso stats (and the digest and the App Home), and the
    look-alike names behind /voiso user, up to the events stored; move the rollups' window
    totals when the hour or day turns."""
    lookalike.index_all_new_accounts(store.connection())
    summaries.summarise_all_new_events(store.connection())  # behind /voiso ip and user
    counted = count_all_new_events(store.connection())
    shift_windows(store.connection(), utc_now())
    return counted


def prune(store: Store, retention_days: int) -> dict[str, int]:
    cutoff = utc_now() - timedelta(days=retention_days)
    deleted = store.prune(cutoff)
    lookalike.forget_pruned_accounts(store.connection())
    if any(deleted.values()):
        log.info("retention: deleted %(events)d event(s), %(rejected)d rejection(s) and "
                 "%(duplicates)d duplicate record(s) older than %(days)d days",
                 {**deleted, "days": retention_days})
    return deleted


def _report_job_problem(event, woken: set[str]) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error("job %s failed: %r", event.job_id, event.exception)
    elif event.code == EVENT_JOB_MISSED:
        log.warning("job %s missed its run time %s", event.job_id, event.scheduled_run_time)
    elif event.job_id in woken:
        # A wake that landed as the job's own run was starting: that run sees what woke it.
        log.debug("job %s was woken as it started; the extra run was skipped", event.job_id)
    else:
        log.warning("job %s is still running; a run was skipped", event.job_id)
