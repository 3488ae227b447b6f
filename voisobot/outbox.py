"""The Slack outbox in SQLite: alerts waiting to be posted, and what became of them.

Every state change is committed before the next network call, so a crash or an
outage at any moment leaves each alert pending, uncertain (a post may have
reached Slack: look before posting again), sent or failed — never forgotten and
never posted twice.
"""

import sqlite3
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from voisobot import questions
from voisobot.routing import TEAMS_PREFIX, is_slack
from voisobot.store import Store, time_text, transaction

ENQUEUE_CURSOR = "alerts_enqueued"
_ALERT_COLUMNS = ("a.id, a.event_id, a.channel, a.severity, a.state, a.attempts, "
                  "a.next_attempt_at, a.first_tried_at, e.raw, a.event_count, a.slack_ts, "
                  "a.acked_by, a.acked_at, e.body_sha256, a.acked_via, a.acked_by_name")
_BEHIND = "a.state = 'sent' AND a.event_count > a.shown_count"  # posted, events not shown
# mark_stale as an UPDATE's assignment, for an alert changed in someone else's transaction
# (an acknowledgement reaching its siblings). A webhook card ("teams:<name>") cannot be
# edited, and a stale one would get a summary card: it is left as it is.
STALE_IF_EDITABLE = (f"shown_count = CASE WHEN substr(channel, 1, {len(TEAMS_PREFIX)}) = "
                     f"'{TEAMS_PREFIX}' THEN shown_count ELSE 0 END")


@dataclass(frozen=True)
class AlertKey:
    """What names an alert's post (Slack keeps it in the message's metadata): the store's
    own id (made with the store), the alert's id in that store, and the start of its first
    event's fingerprint. Two bots posting into one channel, or one whose store was recreated or
    restored from a backup, never take each other's posts for their own."""

    event_type: ClassVar[str] = "voiso_alert"  # the metadata's event_type in Slack
    store_id: str
    alert_id: int
    event: str = ""  # hex

    def payload(self) -> dict:
        return {"alert_id": self.alert_id, "store_id": self.store_id, "event": self.event}

    def names(self, payload: Mapping) -> bool:
        """Whether a post's metadata payload names this alert."""
        return (str(payload.get("alert_id")), payload.get("store_id"), payload.get("event")) \
            == (str(self.alert_id), self.store_id, self.event)


@dataclass(frozen=True)
class QueueItem:
    """One event bound for one channel, with how it may be grouped there."""

    event_id: int
    event_time: datetime
    channel: str
    severity: str
    group_key: str
    storm_key: str
    window: timedelta  # zero: never grouped
    asks: tuple[tuple[str, str], ...] = ()  # (role, email): "was this you?" (questions.py)


@dataclass(frozen=True)
class GroupingLimits:
    storm_threshold: int  # open groups of one kind in a channel before it becomes a storm
    thread_reply_cap: int  # events of a group shown as thread replies


@dataclass(frozen=True)
class Backlog:
    """What waits in the outbox: alerts still to go out (pending or uncertain), how long the
    oldest of them has waited since it was queued, and the alerts refused for good."""

    depth: int
    oldest_age_seconds: float  # 0.0 when nothing waits
    failed: int


@dataclass(frozen=True)
class QueuedAlert:
    id: int
    event_id: int
    channel: str
    severity: str
    state: str
    attempts: int
    next_attempt_at: str
    first_tried_at: str | None
    raw: bytes  # the first event's body: the alert is rendered from it at send time
    event_count: int = 1
    slack_ts: str | None = None
    acked_by: str | None = None
    acked_at: str | None = None
    event_sha256: bytes = b""  # the first event's fingerprint: part of the post's metadata
    acked_via: str | None = None  # "slack" or "teams": whose id acked_by is
    acked_by_name: str | None = None


class Outbox:
    def __init__(self, store: Store):
        self.store = store

    def new_events(self, limit: int) -> list[sqlite3.Row]:
        """Events stored since the last enqueue, oldest first."""
        conn = self.store.connection()
        (cursor,) = conn.execute("SELECT value FROM cursors WHERE name = ?",
                                 (ENQUEUE_CURSOR,)).fetchone()
        return conn.execute("SELECT id, raw FROM events WHERE id > ? ORDER BY id LIMIT ?",
                            (cursor, limit)).fetchall()

    def enqueue(self, items: list[QueueItem], up_to_event: int, now: datetime,
                limits: GroupingLimits) -> list[str]:
        """Put each event in exactly one alert per channel — an open group's, or a new
        one — and advance the cursor, atomically. Returns the channel of each new alert."""
        created = []
        with transaction(self.store.connection()) as conn:
            for item in items:
                if conn.execute("SELECT 1 FROM alert_events WHERE event_id = ? AND channel = ?",
                                (item.event_id, item.channel)).fetchone():
                    continue  # queued by an earlier run that stopped before the cursor moved
                alert_id, key = self._group_for(conn, item, limits.storm_threshold)
                if alert_id is None:
                    alert_id = self._new_alert(conn, item, key, now)
                    created.append(item.channel)
                else:  # only Slack alerts have thread replies
                    self._join(conn, alert_id, item,
                               limits.thread_reply_cap if is_slack(item.channel) else 0)
                questions.ask(conn, alert_id, self._not_yet_asked(conn, item), now)
            conn.execute("UPDATE cursors SET value = max(value, ?) WHERE name = ?",
                         (up_to_event, ENQUEUE_CURSOR))
        return created

    @staticmethod
    def _group_for(conn, item: QueueItem, storm_threshold: int) -> tuple[int | None, str]:
        """The open alert the event joins, or None and the key of the alert to create."""
        if not item.window:
            return None, item.group_key
        at = time_text(item.event_time)
        for key in (item.storm_key, item.group_key):
            row = conn.execute(
                "SELECT id FROM alerts WHERE channel = ? AND group_key = ? "
                "AND window_ends_at > ? ORDER BY id DESC LIMIT 1",
                (item.channel, key, at)).fetchone()
            if row:
                return row[0], key
        kind = item.storm_key[:-1]  # "type/event|"
        (open_groups,) = conn.execute(
            "SELECT count(*) FROM alerts WHERE channel = ? AND group_key >= ? "
            "AND group_key < ? AND window_ends_at > ?",
            (item.channel, kind, kind[:-1] + "}", at)).fetchone()  # "}" sorts right after "|"
        return None, (item.storm_key if open_groups >= storm_threshold else item.group_key)

    @staticmethod
    def _not_yet_asked(conn, item: QueueItem) -> tuple[tuple[str, str], ...]:
        """The people of ``item.asks`` not asked yet about this kind in this channel
        within an open window: one question per person per window, even when a storm's
        message takes over from the groups opened before it."""
        if not item.asks:
            return ()
        kind = item.storm_key[:-1]
        return tuple((role, email) for role, email in item.asks if not conn.execute(
            "SELECT 1 FROM questions q JOIN alerts a ON a.id = q.alert_id "
            "WHERE q.email = ? AND a.channel = ? AND a.group_key >= ? AND a.group_key < ? "
            "AND a.window_ends_at > ? LIMIT 1",
            (email, item.channel, kind, kind[:-1] + "}", time_text(item.event_time))
        ).fetchone())

    @staticmethod
    def _new_alert(conn, item: QueueItem, key: str, now: datetime) -> int:
        when = time_text(now)
        cursor = conn.execute(
            "INSERT INTO alerts (event_id, channel, severity, next_attempt_at, created_at, "
            "group_key, window_ends_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item.event_id, item.channel, item.severity, when, when, key,
             time_text(item.event_time + item.window)))
        conn.execute("INSERT INTO alert_events (event_id, channel, alert_id) VALUES (?, ?, ?)",
                     (item.event_id, item.channel, cursor.lastrowid))
        return cursor.lastrowid

    @staticmethod
    def _join(conn, alert_id: int, item: QueueItem, reply_cap: int) -> None:
        (count,) = conn.execute("SELECT event_count FROM alerts WHERE id = ?",
                                (alert_id,)).fetchone()
        reply = "pending" if count - 1 < reply_cap else None  # the first event is the alert
        conn.execute("INSERT INTO alert_events (event_id, channel, alert_id, reply_state) "
                     "VALUES (?, ?, ?, ?)", (item.event_id, item.channel, alert_id, reply))
        conn.execute("UPDATE alerts SET event_count = event_count + 1 WHERE id = ?", (alert_id,))

    def open_alerts(self, limit: int) -> list[QueuedAlert]:
        """Pending and uncertain alerts in the order they were queued."""
        return self._alerts("a.state IN ('pending', 'uncertain') ORDER BY a.id LIMIT ?",
                            limit)

    def alert(self, alert_id: int) -> QueuedAlert | None:
        return next(iter(self._alerts("a.id = ?", alert_id)), None)

    def stale_alert(self, channel: str) -> QueuedAlert | None:
        """The posted group message of this channel that lags furthest behind its events."""
        return next(iter(self._alerts(
            f"a.channel = ? AND {_BEHIND} ORDER BY a.updated_at LIMIT 1", channel)), None)

    def closed_group(self, channel: str, now: datetime) -> QueuedAlert | None:
        """A posted group whose window has closed with events its card did not show: for a
        destination that cannot edit a post (Teams), the summary card to post next."""
        return next(iter(self._alerts(
            f"a.channel = ? AND {_BEHIND} AND a.window_ends_at <= ? ORDER BY a.id LIMIT 1",
            channel, time_text(now))), None)

    def _alerts(self, where: str, *values) -> list[QueuedAlert]:
        rows = self.store.connection().execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts a JOIN events e ON e.id = a.event_id "
            f"WHERE {where}", values)
        return [QueuedAlert(*row) for row in rows]

    def channels_with_follow_ups(self) -> list[str]:
        conn = self.store.connection()
        stale = conn.execute("SELECT DISTINCT channel FROM alerts WHERE state = 'sent' "
                             "AND event_count > shown_count")
        replies = conn.execute("SELECT DISTINCT channel FROM alert_events "
                               "WHERE reply_state = 'pending'")
        return sorted({row[0] for row in stale} | {row[0] for row in replies})

    def pending_reply(self, channel: str) -> tuple[int, str, str, bytes] | None:
        """(event_id, alert severity, thread ts, event body) of the oldest reply to post
        under an alert already in Slack."""
        return self.store.connection().execute(
            "SELECT ae.event_id, a.severity, a.slack_ts, e.raw FROM alert_events ae "
            "JOIN alerts a ON a.id = ae.alert_id JOIN events e ON e.id = ae.event_id "
            "WHERE ae.channel = ? AND ae.reply_state = 'pending' AND a.state = 'sent' "
            "ORDER BY ae.event_id LIMIT 1", (channel,)).fetchone()

    def mark_reply(self, event_id: int, channel: str, state: str, ts: str | None = None) -> None:
        with transaction(self.store.connection()) as conn:
            conn.execute("UPDATE alert_events SET reply_state = ?, reply_ts = ? "
                         "WHERE event_id = ? AND channel = ?", (state, ts, event_id, channel))

    def group_summary(self, alert_id: int, top: int = 3) -> dict:
        """What a group message shows: how many events, when, who and from where."""
        rows = self.store.connection().execute(
            "SELECT e.user, e.ip, e.event_time FROM alert_events ae "
            "JOIN events e ON e.id = ae.event_id WHERE ae.alert_id = ?", (alert_id,)).fetchall()
        users = Counter(row["user"] for row in rows if row["user"] is not None)
        ips = Counter(row["ip"] for row in rows if row["ip"] is not None)
        times = sorted(row["event_time"] for row in rows)
        return {"count": len(rows), "first_seen": datetime.fromisoformat(times[0]),
                "last_seen": datetime.fromisoformat(times[-1]),
                "users": len(users), "ips": len(ips),
                "top_users": users.most_common(top), "top_ips": ips.most_common(top)}

    def mark_trying(self, alert_id: int, now: datetime) -> None:
        """Before the call: from here until a definite answer, the post may exist."""
        self._update(alert_id, "state = 'uncertain', attempts = attempts + 1, "
                     "first_tried_at = coalesce(first_tried_at, ?)", time_text(now))

    def mark_sent(self, alert_id: int, ts: str, now: datetime, shown_count: int = 1) -> None:
        self._update(alert_id, "state = 'sent', slack_ts = ?, sent_at = ?, updated_at = ?, "
                     "shown_count = ?, last_error = NULL", ts, time_text(now), time_text(now),
                     shown_count)

    def mark_updated(self, alert_id: int, shown_count: int, now: datetime) -> None:
        self._update(alert_id, "shown_count = ?, updated_at = ?", shown_count, time_text(now))

    def mark_stale(self, alert_id: int) -> None:
        """The posted message no longer shows the alert as it is (an acknowledgement that
        could not be shown, or one made while an update was in flight): the delivery job
        updates it again."""
        self._update(alert_id, "shown_count = 0")

    def mark_retry(self, alert_id: int, state: str, at: datetime, error: str) -> None:
        self._update(alert_id, "state = ?, next_attempt_at = ?, last_error = ?",
                     state, time_text(at), error)

    def mark_failed(self, alert_id: int, error: str) -> None:
        self._update(alert_id, "state = 'failed', last_error = ?", error)

    def _update(self, alert_id: int, assignments: str, *values) -> None:
        with transaction(self.store.connection()) as conn:
            conn.execute(f"UPDATE alerts SET {assignments} WHERE id = ?", (*values, alert_id))

    def redeliver_failed(self, channel: str | None = None) -> int:
        """Queue again the alerts Slack or Teams refused for good (of one channel, or all),
        once the cause is fixed (the bot invited, the flow restored). A refused post never
        reached the channel, so posting it now cannot double it."""
        with transaction(self.store.connection()) as conn:
            return conn.execute(
                "UPDATE alerts SET state = 'pending', attempts = 0, next_attempt_at = '', "
                "first_tried_at = NULL, last_error = NULL "
                "WHERE state = 'failed' AND (:channel IS NULL OR channel = :channel)",
                {"channel": channel}).rowcount

    def failed_by_channel(self) -> dict[str, int]:
        """How many alerts wait in ``failed`` for ``redeliver``, per channel."""
        return dict(self.store.connection().execute(
            "SELECT channel, count(*) FROM alerts WHERE state = 'failed' "
            "GROUP BY channel ORDER BY channel").fetchall())

    def backlog(self, now: datetime) -> Backlog:
        """An alert waiting for a retry counts as waiting: an outage shows as a growing age."""
        conn = self.store.connection()
        depth, oldest = conn.execute(
            "SELECT count(*), min(created_at) FROM alerts "
            "WHERE state IN ('pending', 'uncertain')").fetchone()
        (failed,) = conn.execute("SELECT count(*) FROM alerts WHERE state = 'failed'").fetchone()
        age = (now - datetime.fromisoformat(oldest)).total_seconds() if oldest else 0.0
        return Backlog(depth, max(age, 0.0), failed)

    def counts(self) -> dict[str, int]:
        rows = self.store.connection().execute(
            "SELECT state, count(*) FROM alerts GROUP BY state")
        return {"pending": 0, "uncertain": 0, "sent": 0, "failed": 0, **dict(rows.fetchall())}
