"""The scheduler: the intake job and the retention job, with failures made visible."""

import contextlib
import logging
from datetime import datetime, timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from voisobot.errors import IntakeProblem
from voisobot.intake import Intake, utc_now
from voisobot.store import Store

log = logging.getLogger(__name__)

INTAKE_JOB = "intake"
PRUNE_JOB = "prune"
MIN_DELAY_SECONDS = 0.1  # keeps the next intake run strictly after this one has returned


def build_scheduler(intake: Intake, store: Store, *, retention_days: int,
                    prune_interval_minutes: int) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
        "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
    scheduler.add_listener(_report_job_problem,
                           EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    interval = max(intake.config.poll_interval_seconds, MIN_DELAY_SECONDS)
    scheduler.add_job(_run_intake, IntervalTrigger(seconds=interval), args=(scheduler, intake),
                      id=INTAKE_JOB, name="SQS intake", next_run_time=utc_now())
    scheduler.add_job(prune, IntervalTrigger(minutes=prune_interval_minutes),
                      args=(store, retention_days), id=PRUNE_JOB, name="retention",
                      next_run_time=utc_now())
    return scheduler


def _run_intake(scheduler: BackgroundScheduler, intake: Intake) -> None:
    """Run the intake once, then schedule the next run after the delay it asks for.

    The job pauses itself while it long-polls, so the interval never fires into a
    running instance; the delay it returns carries both the idle interval and the
    backoff after a failure.
    """
    scheduler.pause_job(INTAKE_JOB)
    delay = intake.config.poll_interval_seconds
    try:
        delay = intake.run()
    except Exception as exc:  # a bug must not end the intake: log it and back off
        log.exception("SQS intake: unexpected error")
        problem = IntakeProblem("internal_error", f"unexpected error: {exc}", "run")
        delay = intake.backoff.failed(problem)
    finally:
        if not intake.stopping.is_set():
            _schedule_next(scheduler, max(delay, MIN_DELAY_SECONDS))


def _schedule_next(scheduler: BackgroundScheduler, delay: float) -> None:
    with contextlib.suppress(JobLookupError):  # the scheduler is shutting down
        scheduler.modify_job(INTAKE_JOB, next_run_time=utc_now() + timedelta(seconds=delay))


def next_intake_run(scheduler: BackgroundScheduler) -> datetime | None:
    job = scheduler.get_job(INTAKE_JOB)
    return job.next_run_time if job else None


def prune(store: Store, retention_days: int) -> dict[str, int]:
    cutoff = utc_now() - timedelta(days=retention_days)
    deleted = store.prune(cutoff)
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
