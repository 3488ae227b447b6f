"""The bot's Prometheus metrics, served at /metrics by the operations listener (ops.py).

One registry per running bot: runtime.build makes it and hands it to the parts that count,
so nothing is global (tests run several bots in one process). Each thing that happens is
one method here, called at the single point where it happens: the intake's poll and commit,
the delivery job's outcome for an alert, each Slack or Teams call (the Counted* senders
wrap them), each /voiso command and button press. The outbox gauges are read from the
store when /metrics is scraped. Every label value comes from a short fixed set, never from
what a message holds: a kind Voiso does not document counts as "other", so no sender can
grow the set.
"""

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from voisobot.errors import IntakeProblem
from voisobot.events import KIND_PARAMS
from voisobot.outbox import Backlog
from voisobot.routing import is_teams, is_teams_bot
from voisobot.sending import SendResult
from voisobot.store import BatchOutcome

log = logging.getLogger(__name__)

OTHER_KIND = "other"
DESTINATIONS = ("slack", "teams")
REJECTION_REASONS = ("malformed", "internal_error")
# Seconds: a commit takes milliseconds, a Slack call a fraction of a second, a command
# answer up to seconds; the top buckets catch timeouts (a Slack call's is 10 s by default).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUESTION_OUTCOMES = ("asked", "already_asked", "unmapped", "retry", "uncertain", "failed",
                     "expired", "escalated")
DIGEST_OUTCOMES = ("made", "sent", "already_sent", "retry", "waiting", "failed")


def kind_label(kind: tuple[str, str]) -> str:
    """A documented kind as "type/event"; any other kind "other"."""
    return "/".join(kind) if kind in KIND_PARAMS else OTHER_KIND


def destination_of(channel: str) -> str:
    """The destination label: "slack", "teams" (a Workflows webhook) or "teams_bot"."""
    return "teams" if is_teams(channel) else "teams_bot" if is_teams_bot(channel) else "slack"


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self._intake_metrics()
        self._alert_metrics()
        self._call_metrics()

    def _intake_metrics(self) -> None:
        r = self.registry
        self.events_stored = Counter("voiso_events_stored_total", "Events stored, by kind",
                                     ["kind"], registry=r)
        self.events_duplicate = Counter(
            "voiso_events_duplicate_total", "Messages whose body was already stored (a "
            "producer resend), by kind", ["kind"], registry=r)
        self.events_rejected = Counter(
            "voiso_events_rejected_total", "Messages kept as rejections, by reason class",
            ["reason"], registry=r)
        self.redelivered = Counter(
            "voiso_sqs_messages_redelivered_total", "Messages whose MessageId was already "
            "recorded (SQS delivers at least once)", registry=r)
        self.polls = Counter("voiso_sqs_polls_total", "ReceiveMessage calls, whatever their "
                             "outcome", registry=r)
        self.intake_errors = Counter(
            "voiso_sqs_errors_total", "Failed SQS calls and store writes of the intake, by "
            "reason and operation", ["reason", "operation"], registry=r)
        self.last_poll = Gauge(
            "voiso_sqs_last_successful_poll_timestamp_seconds", "When a ReceiveMessage last "
            "worked (Unix time; 0: not yet)", registry=r)
        self.receive_to_commit = Histogram(
            "voiso_intake_receive_to_commit_seconds", "From a batch's ReceiveMessage "
            "answer to its commit in the store", buckets=LATENCY_BUCKETS, registry=r)
        for kind in KIND_PARAMS:
            self.events_stored.labels(kind_label(kind))
            self.events_duplicate.labels(kind_label(kind))
        for reason in REJECTION_REASONS:
            self.events_rejected.labels(reason)

    def _alert_metrics(self) -> None:
        def by_destination(name: str, text: str) -> Counter:
            counter = Counter(name, text + ", by destination type", ["destination"],
                              registry=self.registry)
            for destination in DESTINATIONS:
                counter.labels(destination)
            return counter

        self.alerts_queued = by_destination("voiso_alerts_queued_total", "Alerts queued")
        self.alerts_sent = by_destination("voiso_alerts_sent_total", "Alerts posted")
        self.alerts_failed = by_destination(
            "voiso_alerts_failed_total", "Alerts refused for good (marked failed)")
        self.alerts_uncertain = by_destination(
            "voiso_alerts_uncertain_total", "Posts that may have reached the destination "
            "without an answer (marked uncertain)")

    def _call_metrics(self) -> None:
        r = self.registry
        self.api_calls = Counter(
            "voiso_api_calls_total", "Slack and Teams calls, by service, method and outcome "
            "(done, retry, give_up, rate_limited)", ["service", "method", "outcome"], registry=r)
        self.api_call_duration = Histogram(
            "voiso_api_call_duration_seconds", "How long a Slack or Teams call took",
            ["service", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.commands = Counter("voiso_commands_total", "/voiso commands, by subcommand and "
                                "outcome", ["command", "outcome"], registry=r)
        self.command_duration = Histogram(
            "voiso_command_duration_seconds", "How long answering a /voiso command took",
            ["command"], buckets=LATENCY_BUCKETS, registry=r)
        self.presses = Counter("voiso_button_presses_total", "Button presses, by button and "
                               "outcome", ["button", "outcome"], registry=r)
        self.questions = Counter(
            "voiso_questions_total", '"Was this you?" steps, by outcome (asked, '
            "already_asked, unmapped, retry, uncertain, failed, expired, escalated)",
            ["outcome"], registry=r)
        self.digests = Counter(
            "voiso_digests_total", "Digest steps, by outcome (made, sent, already_sent, retry, "
            "waiting, failed)", ["outcome"], registry=r)
        for outcome in DIGEST_OUTCOMES:  # shown at 0, so that "failed" can be alerted on
            self.digests.labels(outcome)

    # --- the intake ---------------------------------------------------------------------

    def polled(self) -> None:
        self.polls.inc()

    def poll_succeeded(self, unix_time: float) -> None:
        self.last_poll.set(unix_time)

    def intake_failed(self, problem: IntakeProblem) -> None:
        self.intake_errors.labels(problem.kind, problem.operation or "unknown").inc()

    def batch_stored(self, outcome: BatchOutcome) -> None:
        for kind, count in outcome.stored_kinds.items():
            self.events_stored.labels(kind_label(kind)).inc(count)
        for kind, count in outcome.duplicate_kinds.items():
            self.events_duplicate.labels(kind_label(kind)).inc(count)
        self.events_rejected.labels("malformed").inc(outcome.rejected
                                                     - outcome.rejected_internal)
        self.events_rejected.labels("internal_error").inc(outcome.rejected_internal)
        self.redelivered.inc(outcome.redelivered)

    def batch_committed(self, seconds: float) -> None:
        self.receive_to_commit.observe(seconds)

    # --- alerts -------------------------------------------------------------------------

    def alerts_queued_to(self, channels: list[str]) -> None:
        for channel in channels:
            self.alerts_queued.labels(destination_of(channel)).inc()

    def alert_delivered(self, channel: str, outcome: str) -> None:
        """``outcome`` of one delivery attempt (delivery.AlertDelivery): sent, failed and
        uncertain are counted; retry and pause are not (the calls say why)."""
        counter = {"sent": self.alerts_sent, "failed": self.alerts_failed,
                   "uncertain": self.alerts_uncertain}.get(outcome)
        if counter is not None:
            counter.labels(destination_of(channel)).inc()

    def watch_outbox(self, read_backlog: Callable[[], Backlog]) -> None:
        """Report the outbox's gauges from ``read_backlog()`` at each scrape."""
        self.registry.register(_OutboxGauges(read_backlog))

    # --- Slack and Teams ----------------------------------------------------------------

    def timed_call(self, service: str, method: str, call: Callable[[], SendResult]
                   ) -> SendResult:
        started = time.monotonic()
        result = call()
        outcome = "rate_limited" if result.rate_limited else result.status
        self.api_calls.labels(service, method, outcome).inc()
        self.api_call_duration.labels(service, method).observe(time.monotonic() - started)
        return result

    def command_answered(self, command: str, outcome: str, seconds: float) -> None:
        self.commands.labels(command, outcome).inc()
        self.command_duration.labels(command).observe(seconds)

    def question(self, outcome: str) -> None:
        """One step of a "was this you?" question: ``outcome`` is one of QUESTION_OUTCOMES."""
        self.questions.labels(outcome if outcome in QUESTION_OUTCOMES else "failed").inc()

    def digest(self, outcome: str) -> None:
        """One step of a digest (digest.DigestJob): one of DIGEST_OUTCOMES."""
        self.digests.labels(outcome if outcome in DIGEST_OUTCOMES else "failed").inc()

    def button_pressed(self, button: str, outcome: str) -> None:
        self.presses.labels(button, outcome).inc()

    def exposition(self, accept: str = "") -> tuple[str, bytes]:
        """(content type, every metric) in Prometheus's text format, or OpenMetrics when the
        scraper's Accept header asks for it."""
        encoder, content_type = choose_encoder(accept)
        return content_type, encoder(self.registry)


class _OutboxGauges:
    """The outbox as it stands, read from the store when /metrics is scraped."""

    def __init__(self, read_backlog: Callable[[], Backlog]):
        self.read_backlog = read_backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            backlog = self.read_backlog()
        except sqlite3.Error as exc:  # /readyz says so; the other metrics still come
            log.warning("metrics: cannot read the outbox (%s)", exc)
            return
        yield GaugeMetricFamily("voiso_outbox_depth", "Alerts waiting to go out (pending "
                                "or uncertain)", value=backlog.depth)
        yield GaugeMetricFamily(
            "voiso_outbox_oldest_alert_age_seconds", "How long the oldest alert waiting to "
            "go out has waited since it was queued (0: none waits)",
            value=backlog.oldest_age_seconds)
        yield GaugeMetricFamily("voiso_outbox_failed_alerts", "Alerts refused for good and "
                                "not redelivered", value=backlog.failed)


class CountedSlackSender:
    """A Slack sender (slack.SlackSender, or the demo's console) whose every call is counted
    by method and outcome, and timed."""

    def __init__(self, sender, metrics: Metrics):
        self.sender, self.metrics = sender, metrics

    def post(self, channel: str, message: dict, alert, *, thread_ts: str | None = None
             ) -> SendResult:
        return self.metrics.timed_call("slack", "chat.postMessage", lambda: self.sender.post(
            channel, message, alert, thread_ts=thread_ts))

    def update(self, channel: str, ts: str, message: dict) -> SendResult:
        return self.metrics.timed_call("slack", "chat.update",
                                       lambda: self.sender.update(channel, ts, message))

    def find(self, channel: str, alert, oldest_ts: float) -> SendResult:
        """One search of a channel's history (which may read several pages)."""
        return self.metrics.timed_call("slack", "conversations.history",
                                       lambda: self.sender.find(channel, alert, oldest_ts))


class CountedTeamsSender:
    """A Teams sender (teams.TeamsSender) whose every post is counted and timed."""

    def __init__(self, sender, metrics: Metrics):
        self.sender, self.metrics = sender, metrics

    def pace_key(self, name: str) -> str:
        return self.sender.pace_key(name)

    def unavailable(self, name: str) -> SendResult | None:
        return self.sender.unavailable(name)

    def post(self, name: str, payload: dict) -> SendResult:
        if (held := self.sender.unavailable(name)) is not None:
            return held  # nothing was sent: not a call
        return self.metrics.timed_call("teams", "post",
                                       lambda: self.sender.post(name, payload))
