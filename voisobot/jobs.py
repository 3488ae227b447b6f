"""The scheduler: the intake, delivery and retention jobs, with failures made visible."""

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from voisobot import lookalike, summaries
from voisobot.delivery import AlertDelivery
from voisobot.errors import IntakeProblem
from voisobot.intake import Intake, utc_now
from voisobot.store import Store, count_all_new_events

log = logging.getLogger(__name__)

INTAKE_JOB = "intake"
DELIVERY_JOB = "delivery"
CONFIRM_JOB = "confirmations"
CONFIRM_INTERVAL_SECONDS = 1.0
PRUNE_JOB = "prune"
DIGEST_JOB = "digest"
DAILY_COUNT_JOB = "daily_counts"
DAILY_COUNT_SECONDS = 5.0
MIN_DELAY_SECONDS = 0.1  # keeps the next run strictly after this one has returned


class StopGate:
    """Lets a clean stop wait for the jobs that reschedule themselves.

    APScheduler's ``shutdown(wait=True)`` holds its job-store lock while it waits for
    running jobs, and a job rescheduling itself needs that lock: calling shutdown
    while such a job runs would deadlock. So stopping first closes this gate, waits
    until no job is inside it, and only then shuts the scheduler down; a job that
    starts after the gate closed leaves the scheduler alone.
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


def build_scheduler(intake: Intake, store: Store, *, retention_days: int,
                    prune_interval_minutes: int, gate: StopGate,
                    delivery: AlertDelivery | None = None,
                    watch: JobWatch | None = None,
                    confirmations=None, digest=None) -> BackgroundScheduler:
    """``confirmations``: the "was this you?" job (confirming.Confirmations), when on;
    ``digest``: the digest job (digest.DigestJob), when [digest] names a channel."""
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
        "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
    scheduler.add_listener(_report_job_problem,
                           EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    paced = (scheduler, gate, watch or JobWatch())
    _add_paced_job(*paced, INTAKE_JOB, "SQS intake", intake.run,
                   lambda exc: _intake_failed(intake, exc), intake.config.poll_interval_seconds)
    if delivery is not None:
        _add_paced_job(*paced, DELIVERY_JOB, "Slack delivery", delivery.run,
                       lambda exc: delivery.run_interval, delivery.run_interval)
    if confirmations is not None:
        _add_paced_job(*paced, CONFIRM_JOB, "was this you?", confirmations.run_paced,
                       lambda exc: CONFIRM_INTERVAL_SECONDS, CONFIRM_INTERVAL_SECONDS)
    if digest is not None:
        scheduler.add_job(_gated, IntervalTrigger(seconds=digest.run_interval),
                          args=(gate, digest.run), id=DIGEST_JOB, name="digest",
                          next_run_time=utc_now())
    scheduler.add_job(_gated, IntervalTrigger(seconds=DAILY_COUNT_SECONDS),
                      args=(gate, count_days, store), id=DAILY_COUNT_JOB, name="daily counts")
    scheduler.add_job(_gated, IntervalTrigger(minutes=prune_interval_minutes),
                      args=(gate, prune, store, retention_days), id=PRUNE_JOB, name="retention",
                      next_run_time=utc_now())
    return scheduler


def add_gated_job(scheduler: BackgroundScheduler, gate: StopGate, job_id: str, name: str,
                  work: Callable[[], object], seconds: float) -> None:
    """A job added after the scheduler is built (the App Home's refresh), inside the gate."""
    scheduler.add_job(_gated, IntervalTrigger(seconds=seconds), args=(gate, work), id=job_id,
                      name=name)


def _add_paced_job(scheduler: BackgroundScheduler, gate: StopGate, watch: JobWatch,
                   job_id: str, name: str, work: Callable[[], float],
                   on_error: Callable[[Exception], float], interval: float) -> None:
    scheduler.add_job(_run_paced, IntervalTrigger(seconds=max(interval, MIN_DELAY_SECONDS)),
                      args=(scheduler, gate, watch, job_id, work, on_error), id=job_id,
                      name=name, next_run_time=utc_now())


def _gated(gate: StopGate, work: Callable, *args) -> None:
    """Run a job inside the gate, so that a stop waits for it; not once stopping began."""
    with gate.enter() as running:
        if running:
            work(*args)


def _run_paced(scheduler: BackgroundScheduler, gate: StopGate, watch: JobWatch, job_id: str,
               work: Callable[[], float], on_error: Callable[[Exception], float]) -> None:
    """Run ``work`` once, then schedule the next run after the delay it returns.

    The job pauses itself while it runs (a long poll, a slow Slack call), so its
    interval never fires into a running instance; the returned delay carries both the
    idle interval and any backoff.
    """
    with gate.enter() as running:
        if not running:
            return
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


def count_days(store: Store) -> int:
    """Bring the per-day counts behind /voiso stats 7d and 30d, and the look-alike names
    behind /voiso user, up to the events stored."""
    lookalike.index_all_new_accounts(store.connection())
    summaries.summarise_all_new_events(store.connection())  # behind /voiso ip and user
    return count_all_new_events(store.connection())


def prune(store: Store, retention_days: int) -> dict[str, int]:
    cutoff = utc_now() - timedelta(days=retention_days)
    deleted = store.prune(cutoff)
    lookalike.forget_pruned_accounts(store.connection())
    if any(deleted.values()):
        log.info("retention: deleted %(events)d event(s), %(rejected)d rejection(s) and "
                 "%(duplicates)d duplicate record(s) older than %(days)d days",
                 {**deleted, "days": retention_days})
    return deleted


def _report_job_problem(event) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error("job %s failed: %r", event.job_id, event.exception)
    elif event.code == EVENT_JOB_MISSED:
        log.warning("job %s missed its run time %s", event.job_id, event.scheduled_run_time)
    else:
        log.warning("job %s is still running; a run was skipped", event.job_id)
