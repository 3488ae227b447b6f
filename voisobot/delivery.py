"""The delivery job: new events become queued alerts, queued alerts become posts.

Related events share one alert (a group: same key, same channel, within a window;
a storm when too many groups of one kind are open): it is posted once, then
updated in place as events join, with events as thread replies up to a cap. Per
channel the job makes at most one write per the platform's pace (Slack allows about
one a second per channel) — a new alert first, else an update within
``updates_per_minute``, else a thread reply — and a waiting alert holds back the
ones behind it. The service down, 5xx or 429: the alert waits (honouring
Retry-After) and goes out when it is back. An alert whose post may have arrived (a
timeout, a crash mid-call) is looked for before it is posted again where the platform
can be searched. Channel problems are permanent: logged once with what to do, the
alert marked failed. A refused token pauses all delivery, losing nothing, until it is
fixed.

The job never names a platform: each channel belongs to one ``Output`` (Slack's in
voisobot.slack.output, Teams' webhooks and bot in voisobot.teams.output), and the job only
asks it. An Output has:

- ``name`` (how the log names the service), ``owns(channel)``, ``where(channel)`` (the
  channel as a person reads it), ``pace_key(channel)`` and ``pace_seconds``;
- ``blocked(channel)``: why nothing can go there in this run (a missing secret or
  subscription, the platform off), or None;
- ``post(channel, view, key)`` → SendResult (``ts``: the post's id, when it has one);
- ``editable``, and ``update(channel, ts, view)``: replace a post in place; a platform that
  cannot gets one summary post when a group's window closes;
- ``threads``, and ``reply(channel, view, thread_ts)``: a thread reply per event of a group;
- ``searchable()`` and ``find(channel, key, first_tried_at)``: look for a post that may
  have arrived (done with its ts, done without one when absent);
- ``pauses_all(result)``: whether a refusal stops every post (a revoked token);
- ``post_digest(channel, view, key)``: the digest (voisobot.digest), posted like an alert.
"""

import logging
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from datetime import datetime, timedelta

from voisobot import events, history, logs
from voisobot.config import Config
from voisobot.errors import MalformedEvent
from voisobot.intake import utc_now
from voisobot.metrics import Metrics
from voisobot.outbox import AlertKey, GroupingLimits, Outbox, QueuedAlert, QueueItem
from voisobot.questions import Questions
from voisobot.render import AlertView, one_line, slack_id_or_text
from voisobot.routing import (
    destinations,
    group_key,
    is_slack,
    is_teams_bot,
    people_to_ask,
    severity_of,
    storm_key,
)
from voisobot.sending import MAX_RETRY_DELAY_SECONDS, SendResult, retry_delay
from voisobot.store import time_text

log = logging.getLogger(__name__)

ENQUEUE_BATCH = 500
OPEN_ALERTS_PER_RUN = 500
TOKEN_PAUSE_SECONDS = 300.0
SUMMARY_RETRY_SECONDS = 10.0  # a Teams summary card that did not go out waits this long


class AlertDelivery:
    def __init__(self, outbox: Outbox, outputs: Sequence, config: Config, *,
                 retry_base: float = 1.0, clock=utc_now, metrics: Metrics | None = None):
        """``outputs``: one Output per platform (see above); every channel belongs to one."""
        self.outbox, self.outputs, self.config = outbox, tuple(outputs), config
        self.metrics = metrics or Metrics()
        self.retry_base, self.clock = retry_base, clock
        self.next_post_at: dict[str, float] = {}  # pace key -> time.monotonic()
        self.posted = 0  # alerts posted so far (a run that posts wakes the questions' job)
        self.paused_until: datetime | None = None
        self.token_refused: str | None = None  # the refusal that paused all, until a post works
        self.paused_by = None  # the output that refused it
        self.reported: set[tuple[str, str]] = set()
        self.recent_updates: dict[str, deque[float]] = defaultdict(deque)  # channel -> times
        self.limits = GroupingLimits(config.slack.storm_threshold, config.slack.thread_reply_cap)

    run_interval = 0.5  # seconds between runs; posts are paced per channel, not by this

    def run(self) -> float:
        """One scheduled run: queue alerts for new events, then post what is due; return
        the seconds until the next run."""
        self.enqueue_new_events()
        if not (self.paused_until and self.clock() < self.paused_until):
            self.deliver_due()
        return self.run_interval

    def enqueue_new_events(self) -> int:
        created = 0
        while rows := self.outbox.new_events(ENQUEUE_BATCH):
            items = [item for row in rows for item in self._queue_items(row["id"], row["raw"])]
            channels = self.outbox.enqueue(items, rows[-1]["id"], self.clock(), self.limits)
            self.metrics.alerts_queued_to(channels)
            created += len(channels)
            if len(rows) < ENQUEUE_BATCH:
                break
        return created

    def _queue_items(self, event_id: int, raw: bytes) -> list[QueueItem]:
        try:
            event = events.parse(raw)
        except MalformedEvent as exc:  # stored by an older version that accepted it
            log.error("event %d no longer parses (%s); it raises no alert", event_id, exc,
                      extra=logs.ids(event_id=event_id))
            return []
        severity = severity_of(event, self.config.severity)
        found = destinations(event, severity, self.config)
        # Questions go with the event's first Slack channel, or Teams bot conversation when
        # they may be asked in Teams: one question per person, and the alert there shows
        # the answer (a Teams webhook card cannot be updated, nor send a question).
        asking = next((d.channel for d in found if is_slack(d.channel) or (
            is_teams_bot(d.channel) and "teams" in self.config.confirm.ask_in)), None)
        asks = people_to_ask(event, self.config.confirm)
        return [QueueItem(event_id, event.time, d.channel, severity,
                          group_key(event, d.group_by), storm_key(event),
                          timedelta(minutes=d.group_window_minutes),
                          asks if d.channel == asking else ())
                for d in found]

    def deliver_due(self) -> None:
        now = self.clock()
        now_text = time_text(now)
        waiting: set[str] = set()  # channels whose next alert must not be overtaken
        for alert in self.outbox.open_alerts(OPEN_ALERTS_PER_RUN):
            if alert.channel in waiting:
                continue
            waiting.add(alert.channel)
            if alert.next_attempt_at > now_text or not self._channel_ready(alert.channel):
                continue
            outcome = self._deliver_alone(alert, now)
            self.metrics.alert_delivered(alert.channel, outcome)
            self.posted += outcome == "sent"
            if outcome == "sent" and self.output(alert.channel) is self.paused_by:
                self.token_refused = self.paused_by = None
            if outcome == "pause":
                return
        for channel in self.outbox.channels_with_follow_ups():
            if self._channel_ready(channel):
                self._follow_up(channel, now)

    def output(self, channel: str):
        """The platform the channel is on; a channel of none gets one that refuses it."""
        return next((o for o in self.outputs if o.owns(channel)), _NOWHERE)

    def key(self, alert: QueuedAlert) -> AlertKey:
        """How the alert's post names it: this store, this alert, its first event."""
        return AlertKey(self.outbox.store.store_id, alert.id, alert.event_sha256[:8].hex())

    def _channel_ready(self, channel: str) -> bool:
        return time.monotonic() >= self.next_post_at.get(
            self.output(channel).pace_key(channel), 0.0)

    def _paced(self, channel: str, extra: float = 0.0) -> None:
        output = self.output(channel)
        self.next_post_at[output.pace_key(channel)] = \
            time.monotonic() + output.pace_seconds + extra

    def _deliver_alone(self, alert: QueuedAlert, now: datetime) -> str:
        """``_deliver``, with a safety net: an alert that breaks the job (a stored event this
        version no longer parses, a bug) fails alone, with its reason, instead of holding
        back every alert behind it. A failing store is not caught: the job backs off."""
        try:
            return self._deliver(alert, now)
        except sqlite3.Error:
            raise
        except Exception as exc:
            log.exception("alert %d to %s cannot be delivered; marked failed", alert.id,
                          alert.channel, extra=_ids_of(alert))
            self.outbox.mark_failed(alert.id, f"internal error: {type(exc).__name__}: "
                                              f"{one_line(exc)[:200]}")
            return "failed"

    def _view(self, alert: QueuedAlert) -> AlertView | None:
        """The alert's view, or None when its stored event no longer parses (kept by an
        older version that accepted it): logged, and the caller stops following it up."""
        try:
            return alert_view(self.outbox, alert)
        except MalformedEvent as exc:
            log.error("alert %d: its event %d no longer parses (%s); it is not updated again",
                      alert.id, alert.event_id, exc,
                      extra=logs.ids(alert_id=alert.id, event_id=alert.event_id,
                                     channel=alert.channel))
            return None

    def _deliver(self, alert: QueuedAlert, now: datetime) -> str:
        """Post the alert, once: where the platform can be searched, a post that may have
        arrived is looked for first; where it cannot, it is posted again (at least once)."""
        output = self.output(alert.channel)
        blocked = output.blocked(alert.channel)
        if blocked is not None:
            return self._hold(alert, blocked)
        if alert.state == "uncertain" and output.searchable():
            found = self._look_for_earlier_post(alert)
            if found != "absent":
                return found
        view = alert_view(self.outbox, alert)
        self.outbox.mark_trying(alert.id, now)
        result = output.post(alert.channel, view, self.key(alert))
        self._paced(alert.channel)
        if result.status == "done":
            self.outbox.mark_sent(alert.id, result.ts, self.clock(), view.event_count)
            return "sent"
        return self._not_sent(alert, result, uncertain=result.maybe_posted)

    def _hold(self, alert: QueuedAlert, result: SendResult) -> str:
        """Nothing is tried: a destination that is gone fails the alert (reported once);
        one that lacks a secret keeps it pending until a restart can set it."""
        if result.status == "give_up":
            return self._not_sent(alert, result, uncertain=False)
        self.outbox.mark_retry(alert.id, "pending", self.clock() + timedelta(
            seconds=MAX_RETRY_DELAY_SECONDS), result.error)
        if (alert.channel, result.error) not in self.reported:
            self.reported.add((alert.channel, result.error))
            log.error("%s: %s", self.output(alert.channel).where(alert.channel), result.advice,
                      extra=_ids_of(alert))
        return "retry"

    def _follow_up(self, channel: str, now: datetime) -> None:
        """The channel's one write this interval, when no new alert needs it: bring a
        group's message up to date, else post the next thread reply."""
        output = self.output(channel)
        if not output.editable:
            self._summary_post(channel, now)
            return
        stale = self.outbox.stale_alert(channel)
        if stale is not None and self._update_allowed(channel):
            self._update(stale, now)
            return
        reply = self.outbox.pending_reply(channel) if output.threads else None
        if reply is not None:
            self._reply(channel, *reply)

    def _summary_post(self, channel: str, now: datetime) -> None:
        """A post that cannot be edited: once a group's window has closed, one more post
        sums up every event of it (counts, first and last seen, top users and IPs)."""
        output = self.output(channel)
        group = self.outbox.closed_group(channel, now)
        if group is None or output.blocked(channel) is not None:
            return
        view = self._view(group)
        if view is None:
            self.outbox.mark_updated(group.id, group.event_count, now)
            return
        result = output.post(channel, view, None)
        pause = max(result.retry_after or 0.0, SUMMARY_RETRY_SECONDS) \
            if result.status == "retry" else 0.0
        self._paced(channel, pause)  # an outage is not hammered at the platform's pace
        if result.status == "done" or result.status == "give_up":  # give_up: shown in log
            self.outbox.mark_updated(group.id, view.event_count, now)
        if result.status == "give_up":
            self._report_once(channel, result)

    def _update_allowed(self, channel: str) -> bool:
        recent, now = self.recent_updates[channel], time.monotonic()
        while recent and now - recent[0] > 60.0:
            recent.popleft()
        return len(recent) < self.config.slack.updates_per_minute

    def _update(self, alert: QueuedAlert, now: datetime) -> None:
        view = self._view(alert)
        if view is None:
            self.outbox.mark_updated(alert.id, alert.event_count, now)
            return
        output = self.output(alert.channel)
        result = output.blocked(alert.channel) or output.update(alert.channel,
                                                                alert.slack_ts, view)
        self.recent_updates[alert.channel].append(time.monotonic())
        self._paced(alert.channel)
        if result.status == "done" and _ack_changed(self.outbox, alert):
            self.outbox.mark_stale(alert.id)  # a click landed mid-update: show it again
        elif result.status == "done":
            self.outbox.mark_updated(alert.id, view.event_count, now)
        elif result.status == "retry":
            self._paced(alert.channel, result.retry_after or 0.0)
        else:  # e.g. the message was deleted: stop updating it, keep the count
            self.outbox.mark_updated(alert.id, alert.event_count, now)
            self._report_once(alert.channel, result)

    def _reply(self, channel: str, event_id: int, severity: str, thread_ts: str,
               raw: bytes) -> None:
        """A thread reply for one event of a group: marked before the call, so at most
        once; the group's own message counts every event in any case."""
        try:
            event = events.parse(raw)
        except MalformedEvent as exc:  # kept by an older version that accepted it
            log.error("event %d no longer parses (%s); no thread reply for it", event_id, exc,
                      extra=logs.ids(event_id=event_id, channel=channel))
            self.outbox.mark_reply(event_id, channel, "failed")
            return
        self.outbox.mark_reply(event_id, channel, "sent")
        result = self.output(channel).reply(channel, AlertView(event, severity), thread_ts)
        self._paced(channel)
        if result.status == "done":
            self.outbox.mark_reply(event_id, channel, "sent", result.ts)
        elif result.status == "retry" and not result.maybe_posted:
            self.outbox.mark_reply(event_id, channel, "pending")
            self._paced(channel, result.retry_after or 0.0)
        elif result.status == "give_up":
            self.outbox.mark_reply(event_id, channel, "failed")

    def _look_for_earlier_post(self, alert: QueuedAlert) -> str:
        """A post may have arrived: find it rather than post a second copy."""
        found = self.output(alert.channel).find(alert.channel, self.key(alert),
                                                alert.first_tried_at)
        if found.status == "done" and found.ts:
            self.outbox.mark_sent(alert.id, found.ts, self.clock())
            log.info("alert %d was already in %s (ts %s): not posted again", alert.id,
                     alert.channel, found.ts, extra=_ids_of(alert))
            return "sent"
        if found.status == "done":
            return "absent"
        return self._not_sent(alert, found, uncertain=True)  # the earlier post may still exist

    def _not_sent(self, alert: QueuedAlert, result: SendResult, *, uncertain: bool) -> str:
        """What became of the alert: retry or uncertain (later), pause, or failed."""
        if result.status == "retry":
            self._retry_later(alert, result, "uncertain" if uncertain else "pending")
            return "uncertain" if uncertain else "retry"
        if self.output(alert.channel).pauses_all(result):
            self._pause_for_token(alert, result)
            return "pause"
        self.outbox.mark_failed(alert.id, f"{result.error}: {result.advice}")
        self._report_once(alert.channel, result)
        return "failed"

    def _retry_later(self, alert: QueuedAlert, result: SendResult, state: str) -> None:
        delay = retry_delay(alert.attempts, result, self.retry_base)
        if state == "uncertain":  # let a post still in flight land before looking for it
            delay = max(delay, self.config.slack.timeout_seconds)
        self.outbox.mark_retry(alert.id, state, self.clock() + timedelta(seconds=delay),
                               result.error or "retry")
        output = self.output(alert.channel)
        self.next_post_at[output.pace_key(alert.channel)] = time.monotonic() + delay
        log.warning("alert %d to %s: %s did not take it (%s); retrying in %.0f s",
                    alert.id, alert.channel, output.name, result.error, delay,
                    extra=_ids_of(alert))

    def _pause_for_token(self, alert: QueuedAlert, result: SendResult) -> None:
        self.token_refused, self.paused_by = result.error, self.output(alert.channel)
        self.paused_until = self.clock() + timedelta(seconds=TOKEN_PAUSE_SECONDS)
        self.outbox.mark_retry(alert.id, "pending", self.paused_until, result.error)
        self._report_once("*", result, self.output(alert.channel).name)

    def _report_once(self, channel: str, result: SendResult, service: str | None = None
                     ) -> None:
        if (channel, result.error) in self.reported:
            return
        self.reported.add((channel, result.error))
        log.error("%s refused alerts for %s (%s): %s",
                  service or self.output(channel).name, channel, result.error, result.advice,
                  extra=logs.ids(channel=None if channel == "*" else channel))


class _Nowhere:
    """The output of a channel no platform owns (a prefix this version does not know)."""

    name = "no service"
    editable = threads = False
    pace_seconds = 1.0

    def owns(self, channel: str) -> bool:
        return True

    def where(self, channel: str) -> str:
        return f"channel {channel}"

    def pace_key(self, channel: str) -> str:
        return channel

    def blocked(self, channel: str) -> SendResult:
        return SendResult("give_up", channel, error="unknown_channel",
                          advice="no platform of this run takes this channel")

    def searchable(self) -> bool:
        return False

    def pauses_all(self, result: SendResult) -> bool:
        return False


_NOWHERE = _Nowhere()


def _ids_of(alert: QueuedAlert) -> dict:
    return logs.ids(alert_id=alert.id, channel=alert.channel)


def alert_view(outbox: Outbox, alert: QueuedAlert) -> AlertView:
    """What the alert's message shows: its first event, what the cache knew before it,
    for a group the whole group as it stands now, and who acknowledged it."""
    event = events.parse(alert.raw)
    context = history.context_lines(outbox.store.connection(), event, alert.event_id)
    group = outbox.group_summary(alert.id) if alert.event_count > 1 else None
    acked_at = datetime.fromisoformat(alert.acked_at) if alert.acked_at else None
    return AlertView(event, alert.severity, alert_id=alert.id, context=context, group=group,
                     acked_by=alert.acked_by, acked_at=acked_at, acked_via=alert.acked_via,
                     acked_by_name=alert.acked_by_name,
                     confirmations=confirmations(outbox.store, alert.id))


def confirmations(store, alert_id: int) -> tuple[dict, ...]:
    """Where each "was this you?" of the alert stands, as its message shows it."""
    return tuple({"state": q.state, "answer": q.answer, "email": q.email,
                  "person": slack_id_or_text(q.slack_user)
                  if q.slack_user and q.via == "Slack" else None,
                  "at": datetime.fromisoformat(q.answered_at) if q.answered_at else None,
                  "via": q.via, "nowhere": q.nowhere}
                 for q in Questions(store).of_alert(alert_id))


def _ack_changed(outbox: Outbox, shown: QueuedAlert) -> bool:
    now = outbox.alert(shown.id)
    return now is not None and _ack_of(now) != _ack_of(shown)


def _ack_of(alert: QueuedAlert) -> tuple:
    return alert.acked_by, alert.acked_at, alert.acked_via, alert.acked_by_name
