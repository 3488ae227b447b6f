"""Acknowledging alerts, and the audit trail of everything done from Slack.

An acknowledgement is one conditional UPDATE: of two clicks at once (a double
click, or two analysts), exactly one changes the row, and the other learns who
was first. The state lives in SQLite, so it holds across restarts.
"""

from dataclasses import dataclass
from datetime import datetime

from voisobot.store import Store, time_text, transaction


@dataclass(frozen=True)
class MessageRef:
    """Where a button was pressed: the channel and ts of its message."""

    channel: str
    ts: str


@dataclass(frozen=True)
class AckOutcome:
    # "acknowledged" | "already_acknowledged" | "reopened" | "not_acknowledged" | "missing"
    # | "elsewhere" (the alert's message is not the one pressed: nothing changed, nothing told)
    status: str
    alert_id: int
    by: str | None = None  # Slack user ID of who holds the acknowledgement now
    at: str | None = None
    channel: str | None = None  # where the alert's message is, for chat.update
    ts: str | None = None


# Each change names the message pressed as well as the alert: a button acts only on the
# alert posted there, whatever alert id its value claims.
_CLAIM = ("UPDATE alerts SET acked_by = ?, acked_at = ? "
          "WHERE id = ? AND channel = ? AND slack_ts = ? AND acked_by IS NULL")
_RELEASE = ("UPDATE alerts SET acked_by = NULL, acked_at = NULL "
            "WHERE id = ? AND channel = ? AND slack_ts = ? AND acked_by IS NOT NULL")
_STATE = "SELECT acked_by, acked_at, channel, slack_ts FROM alerts WHERE id = ?"


def acknowledge(store: Store, alert_id: int, pressed: MessageRef, user_id: str,
                now: datetime) -> AckOutcome:
    return _change(store, alert_id, pressed, _CLAIM, (user_id, time_text(now)),
                   done="acknowledged", not_done="already_acknowledged")


def reopen(store: Store, alert_id: int, pressed: MessageRef) -> AckOutcome:
    return _change(store, alert_id, pressed, _RELEASE, (),
                   done="reopened", not_done="not_acknowledged")


def _change(store: Store, alert_id: int, pressed: MessageRef, sql: str, values: tuple, *,
            done: str, not_done: str) -> AckOutcome:
    with transaction(store.connection()) as conn:
        changed = conn.execute(sql, (*values, alert_id, pressed.channel, pressed.ts)).rowcount
        row = conn.execute(_STATE, (alert_id,)).fetchone()
    if row is None:
        return AckOutcome("missing", alert_id)  # pruned by retention, or never ours
    if (row["channel"], row["slack_ts"]) != (pressed.channel, pressed.ts):
        return AckOutcome("elsewhere", alert_id)  # says nothing of the other alert
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
