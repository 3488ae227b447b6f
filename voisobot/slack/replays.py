"""Replayed Slack requests: a signed request that comes again byte for byte (the same
timestamp, so the same signature) acts only once, and the repeat goes to the audit trail.

The signatures acted on are kept in the store (slack_requests), so a restart forgets
none. A signature passes the timestamp check while our clock is within 5 minutes of its
timestamp; the timestamp is Slack's clock, up to 5 minutes from ours when it first came,
so a signature can pass again for up to 10 minutes after it was first seen: that long is
it kept. Pruning is one indexed delete in the same transaction as the insert.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from voisobot.audit import AuditEntry
from voisobot.slack.requests import SlackRequest
from voisobot.store import Store, time_text, transaction

WINDOW_SECONDS = 300  # Slack's: a timestamp further than 5 minutes from now is refused
KEPT = timedelta(seconds=2 * WINDOW_SECONDS)
UNKNOWN_USER = "unknown"  # the audit's user when a replayed body names none

_PRUNE = "DELETE FROM slack_requests WHERE seen_at < ?"
_REMEMBER = "INSERT INTO slack_requests (signature, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
_FIRST_SEEN = "SELECT seen_at FROM slack_requests WHERE signature = ?"


class Replays:
    def __init__(self, store: Store, clock: Callable[[], datetime]):
        self.store, self.clock = store, clock

    def first_seen(self, signature: str) -> str | None:
        """Remember a signature about to be acted on: None the first time (act on it), else
        when it was first seen (a replay: do nothing). Of two copies at once, one wins."""
        now = self.clock()
        with transaction(self.store.connection()) as conn:
            conn.execute(_PRUNE, (time_text(now - KEPT),))
            if conn.execute(_REMEMBER, (signature, time_text(now))).rowcount:
                return None
            return conn.execute(_FIRST_SEEN, (signature,)).fetchone()[0]

    def record(self, request: SlackRequest, first_seen: str) -> None:
        """The replay in the audit trail, as refused, with who and what it repeats."""
        entry = AuditEntry(request.user_id() or UNKNOWN_USER, request.channel_id(), "replay",
                           request.detail(), False,
                           f"ignored: a repeat of a request first received at {first_seen}")
        self.store.audit.write(entry, self.clock())
