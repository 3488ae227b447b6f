"""The Slack outbox in SQLite: alerts waiting to be posted, and what became of them.

Every state change is committed before the next network call, so a crash or an
outage at any moment leaves each alert pending, uncertain (a post may have
reached Slack: look before posting again), sent or failed — never forgotten and
never posted twice.
"""

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from voisobot.store import Store, time_text, transaction

ENQUEUE_CURSOR = "alerts_enqueued"
OPEN_STATES = ("pending", "uncertain")


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
    raw: bytes  # the event's body: the alert is rendered from it at send time


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

    def enqueue(self, rows: Iterable[tuple[int, str, str]], up_to_event: int,
                now: datetime) -> int:
        """Queue (event_id, channel, severity) alerts and advance the cursor, atomically."""
        when = time_text(now)
        with transaction(self.store.connection()) as conn:
            cursor = conn.executemany(
                "INSERT INTO alerts (event_id, channel, severity, next_attempt_at, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(event_id, channel, severity, when, when)
                 for event_id, channel, severity in rows])
            conn.execute("UPDATE cursors SET value = max(value, ?) WHERE name = ?",
                         (up_to_event, ENQUEUE_CURSOR))
        return cursor.rowcount

    def open_alerts(self, limit: int) -> list[QueuedAlert]:
        """Pending and uncertain alerts in the order they were queued."""
        rows = self.store.connection().execute(
            "SELECT a.id, a.event_id, a.channel, a.severity, a.state, a.attempts, "
            "a.next_attempt_at, a.first_tried_at, e.raw FROM alerts a "
            "JOIN events e ON e.id = a.event_id "
            "WHERE a.state IN ('pending', 'uncertain') ORDER BY a.id LIMIT ?", (limit,))
        return [QueuedAlert(*row) for row in rows]

    def mark_trying(self, alert_id: int, now: datetime) -> None:
        """Before the call: from here until a definite answer, the post may exist."""
        self._update(alert_id, "state = 'uncertain', attempts = attempts + 1, "
                     "first_tried_at = coalesce(first_tried_at, ?)", time_text(now))

    def mark_sent(self, alert_id: int, ts: str, now: datetime) -> None:
        self._update(alert_id, "state = 'sent', slack_ts = ?, sent_at = ?, last_error = NULL",
                     ts, time_text(now))

    def mark_retry(self, alert_id: int, state: str, at: datetime, error: str) -> None:
        self._update(alert_id, "state = ?, next_attempt_at = ?, last_error = ?",
                     state, time_text(at), error)

    def mark_failed(self, alert_id: int, error: str) -> None:
        self._update(alert_id, "state = 'failed', last_error = ?", error)

    def _update(self, alert_id: int, assignments: str, *values) -> None:
        with transaction(self.store.connection()) as conn:
            conn.execute(f"UPDATE alerts SET {assignments} WHERE id = ?", (*values, alert_id))

    def counts(self) -> dict[str, int]:
        rows = self.store.connection().execute(
            "SELECT state, count(*) FROM alerts GROUP BY state")
        return {"pending": 0, "uncertain": 0, "sent": 0, "failed": 0, **dict(rows.fetchall())}
