"""Acknowledging alerts, and the audit trail of everything done from Slack.

An acknowledgement is one conditional UPDATE: of two clicks at once (a double
click, or two analysts), exactly one changes the row, and the other learns who
was first. The state lives in SQLite, so it holds across restarts.
"""

from dataclasses import dataclass
from datetime import datetime

from voisobot.store import Store, time_text, transaction


@dataclass(frozen=True)
class AckOutcome:
    # "acknowledged" | "already_acknowledged" | "reopened" | "not_acknowledged" | "missing"
    status: str
    alert_id: int
    by: str | None = None  # Slack user ID of who holds the acknowledgement now
    at: str | None = None
    channel: str | None = None  # where the alert's message is, for chat.update
    ts: str | None = None


_CLAIM = "UPDATE alerts SET acked_by = ?, acked_at = ? WHERE id = ? AND acked_by IS NULL"
_RELEASE = ("UPDATE alerts SET acked_by = NULL, acked_at = NULL "
            "WHERE id = ? AND acked_by IS NOT NULL")
_STATE = "SELECT acked_by, acked_at, channel, slack_ts FROM alerts WHERE id = ?"


def acknowledge(store: Store, alert_id: int, user_id: str, now: datetime) -> AckOutcome:
    return _change(store, alert_id, _CLAIM, (user_id, time_text(now), alert_id),
                   done="acknowledged", not_done="already_acknowledged")


def reopen(store: Store, alert_id: int) -> AckOutcome:
    return _change(store, alert_id, _RELEASE, (alert_id,),
                   done="reopened", not_done="not_acknowledged")


def _change(store: Store, alert_id: int, sql: str, values: tuple, *, done: str,
            not_done: str) -> AckOutcome:
    with transaction(store.connection()) as conn:
        changed = conn.execute(sql, values).rowcount
        row = conn.execute(_STATE, (alert_id,)).fetchone()
    if row is None:
        return AckOutcome("missing", alert_id)  # pruned by retention, or never ours
    return AckOutcome(done if changed else not_done, alert_id, row["acked_by"],
                      row["acked_at"], row["channel"], row["slack_ts"])


@dataclass(frozen=True)
class AuditEntry:
    user_id: str
    channel_id: str | None
    action: str  # "command" or "button"
    detail: str  # the command text, or the button and its alert id
    allowed: bool
    outcome: str


def audit(store: Store, entry: AuditEntry, now: datetime) -> None:
    """Write one entry of the audit trail; allowed or denied, everything is recorded."""
    with transaction(store.connection()) as conn:
        conn.execute("INSERT INTO audit (at, user_id, channel_id, action, detail, allowed, "
                     "outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (time_text(now), entry.user_id, entry.channel_id, entry.action,
                      entry.detail, int(entry.allowed), entry.outcome))
