"""The operations listener: /healthz, /readyz and /metrics on [ops] host and port.

It runs in every mode (Socket Mode, HTTP mode, and with no Slack token at all), on its
own port: never the public one of /slack/events (slack/serve.py), so metrics and the store's
state are not shown to the internet. waitress serves it from a thread (serve.HttpServer),
stopped with the rest of the bot.

- /healthz, liveness: the scheduler runs, no self-pacing job (the intake, the delivery) has
  been in one run for longer than ops.job_stuck_seconds, and no job is overdue by as much.
- /readyz, readiness: 200, or 503 with every reason that holds, each a stable code and
  words saying what to do.
- /metrics: Prometheus's text format (metrics.py).
"""

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from voisobot import jobs
from voisobot.config import OpsConfig
from voisobot.errors import VoisoBotError
from voisobot.intake import utc_now
from voisobot.metrics import Metrics
from voisobot.outbox import Outbox
from voisobot.slack import serve

log = logging.getLogger(__name__)

HEALTH_PATH, READY_PATH, METRICS_PATH = "/healthz", "/readyz", "/metrics"
THREADS = 2
MAX_BODY_BYTES = 65536  # the endpoints read no body; waitress refuses a larger one with 413
# /readyz allows this long beyond a long poll, the read timeout, the longest backoff and the
# poll interval before it calls a silent intake not ready.
SQS_SILENCE_MARGIN_SECONDS = 60.0


class OpsError(VoisoBotError):
    """The operations listener cannot listen where [ops] says."""


@dataclass(frozen=True)
class Reason:
    code: str     # stable, short: for alerts and scripts
    message: str  # for a human: what holds, and what to do


class Liveness:
    """Whether the process and its scheduler are alive."""

    def __init__(self, scheduler, watch: jobs.JobWatch, stuck_seconds: float):
        self.scheduler, self.watch, self.stuck_seconds = scheduler, watch, stuck_seconds

    def reasons(self) -> list[Reason]:
        if not self.scheduler.running:
            return [Reason("scheduler_stopped", "the scheduler is not running: nothing is "
                           "polled or delivered; restart the bot")]
        limit = self.stuck_seconds
        found = [Reason("job_stuck", f"the {job} job has been in one run for {seconds:.0f} s, "
                        f"longer than ops.job_stuck_seconds ({limit:g})")
                 for job, seconds in sorted(self.watch.running_for().items())
                 if seconds > limit]
        now = utc_now()
        for job in self.scheduler.get_jobs():
            late = (now - job.next_run_time).total_seconds() if job.next_run_time else 0.0
            if late > limit:
                found.append(Reason("job_overdue", f"the {job.id} job was due {late:.0f} s "
                                    "ago and has not started: the scheduler is stuck"))
        return found


class Readiness:
    """Whether the bot does its job: it polls SQS, Slack takes its tokens, alerts go out,
    and the store can be written. ``runtime`` is the running bot (runtime.Runtime)."""

    def __init__(self, runtime, clock: Callable[[], datetime] = utc_now):
        self.runtime, self.clock = runtime, clock
        self.outbox = Outbox(runtime.store)
        self.started_at = clock()

    def report(self) -> dict:
        now = self.clock()
        reasons = []
        for check in (self._sqs_silent, self._token_refused, self._app_token_refused,
                      self._outbox, self._unwritable):
            try:
                reasons += check(now)
            except Exception as exc:  # a check that breaks says so; the others still run
                log.exception("readiness: %s failed", check.__name__)
                reasons.append(Reason("check_failed", f"{check.__name__.strip('_')}: "
                                      f"{type(exc).__name__}: {exc}"))
        last = self.runtime.intake.health.last_successful_poll
        return {"ready": not reasons, "reasons": [asdict(reason) for reason in reasons],
                "last_successful_poll": last.isoformat() if last else None}

    def silence_limit(self) -> float:
        sqs = self.runtime.config.sqs
        return (sqs.read_timeout_seconds + sqs.backoff_max_seconds + sqs.poll_interval_seconds
                + SQS_SILENCE_MARGIN_SECONDS)

    def _sqs_silent(self, now: datetime) -> list[Reason]:
        intake = self.runtime.intake
        since = intake.health.last_successful_poll or self.started_at
        silent, limit = (now - since).total_seconds(), self.silence_limit()
        if silent <= limit:
            return []
        problem = intake.backoff.problem
        why = f" (the intake's problem: {problem.kind}, see the log)" if problem else ""
        return [Reason("sqs_silent", f"no SQS poll has worked for {silent:.0f} s, longer "
                       f"than {limit:.0f} s{why}")]

    def _token_refused(self, now: datetime) -> list[Reason]:
        delivery = self.runtime.delivery
        if delivery is None or delivery.token_refused is None:
            return []
        return [Reason("slack_token_refused", f"Slack refused SLACK_BOT_TOKEN "
                       f"({delivery.token_refused}): alerts to Slack wait, nothing is lost; "
                       "set a valid xoxb- token and restart")]

    def _app_token_refused(self, now: datetime) -> list[Reason]:
        refused = getattr(self.runtime.slack_server, "refused", None)  # Socket Mode only
        if refused is None:
            return []
        return [Reason("slack_app_token_refused", f"Slack refused SLACK_APP_TOKEN ({refused}): "
                       "/voiso and the buttons get no answer; set an app-level token with "
                       "connections:write and restart")]

    def _outbox(self, now: datetime) -> list[Reason]:
        try:
            backlog = self.outbox.backlog(now)
        except sqlite3.Error as exc:
            return [Reason("store_unreadable", f"cannot read the outbox in "
                           f"{self.runtime.store.path} ({exc})")]
        found = []
        limit = self.runtime.config.ops.outbox_stuck_seconds
        if backlog.oldest_age_seconds > limit:
            found.append(Reason("outbox_stuck", f"the oldest of {backlog.depth} alert(s) "
                                f"waiting to go out was queued {backlog.oldest_age_seconds:.0f} "
                                f"s ago, longer than ops.outbox_stuck_seconds ({limit:g}); the "
                                "log says why"))
        if backlog.failed:
            found.append(Reason("alerts_failed", f"{backlog.failed} alert(s) were refused for "
                                "good: fix the cause the log names, then run `voisobot "
                                "redeliver`"))
        return found

    def _unwritable(self, now: datetime) -> list[Reason]:
        """A one-row write to the store and one to the audit trail, each within the probe's
        timeout."""
        timeout = self.runtime.config.ops.store_probe_timeout_seconds
        store, trail = self.runtime.store, self.runtime.store.audit
        found = []
        for code, probe, path, meaning in (
                ("store_unwritable", store.probe_write, store.path,
                 "the intake keeps messages in SQS until it can"),
                ("audit_unwritable", trail.probe_write, trail.path,
                 "/voiso gets no answer until it can, since nothing is answered before it is "
                 "audited")):
            try:
                probe(now, timeout)
            except sqlite3.Error as exc:
                found.append(Reason(code, f"cannot write to {path} within {timeout:g} s "
                                    f"({exc}); {meaning}"))
        return found


def wsgi_app(liveness: Liveness, readiness: Readiness, metrics: Metrics):
    """GET /healthz, /readyz and /metrics; anything else 404 with its body unread."""

    def health(environ) -> tuple[bool, str, bytes]:
        reasons = liveness.reasons()
        return not reasons, "application/json", _json(
            {"alive": not reasons, "reasons": [asdict(reason) for reason in reasons]})

    def ready(environ) -> tuple[bool, str, bytes]:
        report = readiness.report()
        return report["ready"], "application/json", _json(report)

    def scrape(environ) -> tuple[bool, str, bytes]:
        return True, *metrics.exposition(environ.get("HTTP_ACCEPT", ""))

    routes = {HEALTH_PATH: health, READY_PATH: ready, METRICS_PATH: scrape}

    def application(environ, start_response):
        route = routes.get(environ.get("PATH_INFO"))
        if environ.get("REQUEST_METHOD") != "GET" or route is None:
            return serve.not_found(start_response)
        ok, content_type, body = route(environ)
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", content_type), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store")])
        return [body]

    return application


def _json(document: dict) -> bytes:
    return json.dumps(document).encode() + b"\n"


class OpsListener:
    """The listener, bound at start() (so that building a bot binds nothing) and closed
    at stop()."""

    def __init__(self, config: OpsConfig, application):
        self.config, self.application = config, application
        self.server: serve.HttpServer | None = None

    @property
    def url(self) -> str | None:
        return self.server.url if self.server else None

    def start(self) -> None:
        host, port = self.config.host, self.config.port
        try:
            self.server = serve.HttpServer(
                self.application, host, port, THREADS, MAX_BODY_BYTES,
                serves=f"operations: {HEALTH_PATH}, {READY_PATH} and {METRICS_PATH}",
                name="ops")
        except OSError as exc:
            raise OpsError(f"ops.host, ops.port: cannot listen on {host}:{port} "
                           f"({exc.strerror or exc}); set them to an address of this machine "
                           "and a free port") from None
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def listener(runtime, watch: jobs.JobWatch) -> OpsListener:
    """The operations listener of a built bot (runtime.build)."""
    cfg = runtime.config.ops
    return OpsListener(cfg, wsgi_app(Liveness(runtime.scheduler, watch, cfg.job_stuck_seconds),
                                     Readiness(runtime), runtime.metrics))
