"""The delivery job: new events become queued alerts, queued alerts become Slack posts.

Per channel, alerts go out in the order they were queued, at most one post per
``post_interval`` seconds (Slack allows about one a second per channel), and a
waiting alert holds back the ones behind it. Slack down, 5xx or 429: the alert
waits (honouring Retry-After) and goes out when Slack is back. An alert whose
post may have reached Slack (a timeout, a crash mid-call) is looked up in the
channel's history before it is posted again. Channel problems are permanent:
logged once with what to do, the alert marked failed. A bad token pauses all
delivery, losing nothing, until it is fixed.
"""

import logging
import time
from datetime import datetime, timedelta

from voisobot import events, slack
from voisobot.config import Config
from voisobot.errors import MalformedEvent
from voisobot.intake import utc_now
from voisobot.outbox import Outbox, QueuedAlert
from voisobot.render import AlertView, SlackRenderer
from voisobot.routing import destinations, severity_of
from voisobot.store import time_text

log = logging.getLogger(__name__)

ENQUEUE_BATCH = 500
OPEN_ALERTS_PER_RUN = 500
MAX_RETRY_DELAY_SECONDS = 300.0
TOKEN_PAUSE_SECONDS = 300.0
HISTORY_MARGIN_SECONDS = 120.0  # look this far before the first try for a possible post
BAD_TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked"})


class AlertDelivery:
    def __init__(self, outbox: Outbox, renderer: SlackRenderer, sender, config: Config, *,
                 post_interval: float = 1.0, retry_base: float = 1.0, clock=utc_now):
        """``sender`` has ``post(channel, message, alert_id)`` and ``find(channel, alert_id,
        oldest_ts)``, both returning a SlackResult (see slack.SlackSender)."""
        self.outbox, self.renderer, self.sender, self.config = outbox, renderer, sender, config
        self.post_interval, self.retry_base, self.clock = post_interval, retry_base, clock
        self.next_post_at: dict[str, float] = {}  # channel -> time.monotonic()
        self.paused_until: datetime | None = None
        self.reported: set[tuple[str, str]] = set()
        self.history_unreadable = False

    run_interval = 0.5  # seconds between runs; posts are paced per channel, not by this

    def run(self) -> float:
        """One scheduled run: queue alerts for new events, then post what is due; return
        the seconds until the next run."""
        self.enqueue_new_events()
        if not (self.paused_until and self.clock() < self.paused_until):
            self.deliver_due()
        return self.run_interval

    def enqueue_new_events(self) -> int:
        queued = 0
        while rows := self.outbox.new_events(ENQUEUE_BATCH):
            alerts = [alert for row in rows for alert in self._alerts_for(row["id"], row["raw"])]
            queued += self.outbox.enqueue(alerts, rows[-1]["id"], self.clock())
            if len(rows) < ENQUEUE_BATCH:
                break
        return queued

    def _alerts_for(self, event_id: int, raw: bytes) -> list[tuple[int, str, str]]:
        try:
            event = events.parse(raw)
        except MalformedEvent as exc:  # stored by an older version that accepted it
            log.error("event %d no longer parses (%s); it raises no alert", event_id, exc)
            return []
        severity = severity_of(event, self.config.severity)
        return [(event_id, d.channel, severity) for d in destinations(event, severity,
                                                                      self.config)]

    def deliver_due(self) -> None:
        now = self.clock()
        waiting: set[str] = set()  # channels whose next alert must not be overtaken
        for alert in self.outbox.open_alerts(OPEN_ALERTS_PER_RUN):
            if alert.channel in waiting:
                continue
            waiting.add(alert.channel)
            if alert.next_attempt_at > time_text(now) or not self._channel_ready(alert.channel):
                continue
            if self._deliver(alert, now) == "pause":
                return

    def _channel_ready(self, channel: str) -> bool:
        return time.monotonic() >= self.next_post_at.get(channel, 0.0)

    def _deliver(self, alert: QueuedAlert, now: datetime) -> str:
        if alert.state == "uncertain" and not self.history_unreadable:
            found = self._look_for_earlier_post(alert)
            if found != "absent":
                return found
        event = events.parse(alert.raw)
        message = self.renderer.render(AlertView(event, alert.severity, alert_id=alert.id))
        self.outbox.mark_trying(alert.id, now)
        result = self.sender.post(alert.channel, message, alert.id)
        self.next_post_at[alert.channel] = time.monotonic() + self.post_interval
        if result.status == "done":
            self.outbox.mark_sent(alert.id, result.ts, self.clock())
            return "sent"
        return self._not_sent(alert, result, uncertain=result.maybe_posted)

    def _look_for_earlier_post(self, alert: QueuedAlert) -> str:
        """A post may have reached Slack: find it rather than post a second copy."""
        since = datetime.fromisoformat(alert.first_tried_at.replace("Z", "+00:00"))
        oldest = since.timestamp() - HISTORY_MARGIN_SECONDS
        found = self.sender.find(alert.channel, alert.id, oldest)
        if found.status == "done" and found.ts:
            self.outbox.mark_sent(alert.id, found.ts, self.clock())
            log.info("alert %d was already in %s (ts %s): not posted again", alert.id,
                     alert.channel, found.ts)
            return "sent"
        if found.status == "done":
            return "absent"
        if found.error == "missing_scope":
            self.history_unreadable = True
            log.error("cannot read channel history to rule out a duplicate post (%s); alerts "
                      "whose post may have reached Slack will be posted again", found.advice)
            return "absent"
        return self._not_sent(alert, found, uncertain=True)  # the earlier post may still exist

    def _not_sent(self, alert: QueuedAlert, result: slack.SlackResult, *, uncertain: bool) -> str:
        if result.status == "retry":
            self._retry_later(alert, result, "uncertain" if uncertain else "pending")
            return "retry"
        if result.error in BAD_TOKEN_ERRORS:
            self._pause_for_token(alert, result)
            return "pause"
        self.outbox.mark_failed(alert.id, f"{result.error}: {result.advice}")
        self._report_once(alert.channel, result)
        return "failed"

    def _retry_later(self, alert: QueuedAlert, result: slack.SlackResult, state: str) -> None:
        backoff = min(MAX_RETRY_DELAY_SECONDS, self.retry_base * 2.0 ** alert.attempts)
        delay = max(result.retry_after or 0.0, backoff)
        if state == "uncertain":  # let a post still in flight land before looking for it
            delay = max(delay, self.config.slack.timeout_seconds)
        self.outbox.mark_retry(alert.id, state, self.clock() + timedelta(seconds=delay),
                               result.error or "retry")
        self.next_post_at[alert.channel] = time.monotonic() + delay
        log.warning("alert %d to %s: Slack did not take it (%s); retrying in %.0f s",
                    alert.id, alert.channel, result.error, delay)

    def _pause_for_token(self, alert: QueuedAlert, result: slack.SlackResult) -> None:
        self.paused_until = self.clock() + timedelta(seconds=TOKEN_PAUSE_SECONDS)
        self.outbox.mark_retry(alert.id, "pending", self.paused_until, result.error)
        self._report_once("*", result)

    def _report_once(self, channel: str, result: slack.SlackResult) -> None:
        if (channel, result.error) in self.reported:
            return
        self.reported.add((channel, result.error))
        log.error("Slack refused alerts for %s (%s): %s", channel, result.error, result.advice)
