"""Acknowledging alerts, from Slack and Teams.

An acknowledgement is one conditional UPDATE: of two clicks at once (a double
click, or two analysts), exactly one changes the row, and the other learns who
was first. The state lives in SQLite, so it holds across restarts.

The alerts one event raised on different destinations (the same first event,
``alerts.event_id``: a Slack channel, a Teams bot conversation, a webhook card) are one
incident: acknowledging or reopening one of them does the same to its siblings in the
same transaction, so a press in Slack and one in Teams at once still have one winner.
The siblings whose message can be edited are marked stale there too, and the delivery
job brings them up to date.
"""

from dataclasses import dataclass
from datetime import datetime

from voisobot.outbox import STALE_IF_EDITABLE
from voisobot.store import Store, time_text, transaction

PLATFORMS = ("slack", "teams")
MAX_NAME_CHARS = 100  # of a display name kept with an acknowledgement


@dataclass(frozen=True)
class MessageRef:
    """Where a button was pressed: the channel and ts of its message."""

    channel: str
    ts: str


@dataclass(frozen=True)
class Acker:
    """Who pressed: their id on their platform (a Slack user ID, or an Entra object id),
    which platform, and the display name it gave (typed by people: shown as text only)."""

    user_id: str
    platform: str = "slack"  # one of PLATFORMS
    name: str | None = None


@dataclass(frozen=True)
class AckOutcome:
    # "acknowledged" | "already_acknowledged" | "reopened" | "not_acknowledged" | "missing"
    # | "elsewhere" (the alert's message is not the one pressed: nothing changed, nothing told)
    status: str
    alert_id: int
    by: str | None = None  # the id of who holds the acknowledgement now, on their platform
    at: str | None = None
    channel: str | None = None  # where the alert's message is, for chat.update
    ts: str | None = None
    via: str | None = None  # "slack" or "teams": whose id ``by`` is (None: an older row)
    name: str | None = None  # their display name
    siblings: tuple[int, ...] = ()  # the other alerts of the incident this press changed


# Each change names the message pressed as well as the alert: a button acts only on the
# alert posted there, whatever alert id its value claims. Only the pressed alert decides who
# wins; its siblings follow it in the same transaction (BEGIN IMMEDIATE: one writer).
_CLAIM = ("UPDATE alerts SET acked_by = ?, acked_at = ?, acked_via = ?, acked_by_name = ? "
          "WHERE id = ? AND channel = ? AND slack_ts = ? AND acked_by IS NULL")
_RELEASE = ("UPDATE alerts SET acked_by = NULL, acked_at = NULL, acked_via = NULL, "
            "acked_by_name = NULL "
            "WHERE id = ? AND channel = ? AND slack_ts = ? AND acked_by IS NOT NULL")
_CLAIM_SIBLINGS = (f"UPDATE alerts SET acked_by = ?, acked_at = ?, acked_via = ?, "
                   f"acked_by_name = ?, {STALE_IF_EDITABLE} "
                   f"WHERE event_id = (SELECT event_id FROM alerts WHERE id = ?) AND id != ? "
                   f"AND acked_by IS NULL RETURNING id")
_RELEASE_SIBLINGS = (f"UPDATE alerts SET acked_by = NULL, acked_at = NULL, acked_via = NULL, "
                     f"acked_by_name = NULL, {STALE_IF_EDITABLE} "
                     f"WHERE event_id = (SELECT event_id FROM alerts WHERE id = ?) AND id != ? "
                     f"AND acked_by IS NOT NULL RETURNING id")
_STATE = ("SELECT acked_by, acked_at, channel, slack_ts, acked_via, acked_by_name "
          "FROM alerts WHERE id = ?")


def acknowledge(store: Store, alert_id: int, pressed: MessageRef, user: Acker | str,
                now: datetime) -> AckOutcome:
    """``user`` as an Acker, or a Slack user ID."""
    who = user if isinstance(user, Acker) else Acker(user)
    if who.platform not in PLATFORMS:
        raise ValueError(f"unknown platform {who.platform!r}")
    name = who.name[:MAX_NAME_CHARS] if who.name else None
    values = (who.user_id, time_text(now), who.platform, name)
    return _change(store, alert_id, pressed, (_CLAIM, values), (_CLAIM_SIBLINGS, values),
                   done="acknowledged", not_done="already_acknowledged")


def reopen(store: Store, alert_id: int, pressed: MessageRef) -> AckOutcome:
    return _change(store, alert_id, pressed, (_RELEASE, ()), (_RELEASE_SIBLINGS, ()),
                   done="reopened", not_done="not_acknowledged")


def _change(store: Store, alert_id: int, pressed: MessageRef, change: tuple[str, tuple],
            siblings: tuple[str, tuple], *, done: str, not_done: str) -> AckOutcome:
    with transaction(store.connection()) as conn:
        sql, values = change
        changed = conn.execute(sql, (*values, alert_id, pressed.channel, pressed.ts)).rowcount
        followed = ()
        if changed:
            sql, values = siblings
            followed = tuple(sorted(row[0] for row in conn.execute(
                sql, (*values, alert_id, alert_id)).fetchall()))
        row = conn.execute(_STATE, (alert_id,)).fetchone()
    if row is None:
        return AckOutcome("missing", alert_id)  # pruned by retention, or never ours
    if (row["channel"], row["slack_ts"]) != (pressed.channel, pressed.ts):
        return AckOutcome("elsewhere", alert_id)  # says nothing of the other alert
    return AckOutcome(done if changed else not_done, alert_id, row["acked_by"],
                      row["acked_at"], row["channel"], row["slack_ts"], row["acked_via"],
                      row["acked_by_name"], followed)
