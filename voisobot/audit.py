"""The audit trail: every /voiso command, every button press and every replayed request,
allowed or not, written before it is answered.

It is its own SQLite file beside the store (store.audit_path: ``voiso-audit.sqlite3``
beside ``voiso.sqlite3``), with its own write lock: an analyst's row commits at once,
instead of waiting behind the intake's commits (each held through its fsync) in the store.
The same pragmas as the store: WAL, ``synchronous=FULL``, one connection per thread.

A store from before the trail had its own file (schema 17 and older) kept the rows in its
``audit`` table: the first start-up of this version copies them, with their ids, into the
trail, and only then does migration 0018 drop the table. A crash in between copies them
again on the next start, and the ids keep them from doubling.
"""

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from voisobot.store import (
    ThreadConnections,
    connect,
    migrate,
    time_text,
    transaction,
    write_probe,
)

# The trail's schema, versioned in its PRAGMA user_version as the store's is.
TRAIL_MIGRATIONS = [(1, "audit trail 1", """
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    user_id    TEXT NOT NULL,      -- a Slack user ID, an Entra object id, or "unknown"
    channel_id TEXT,
    action     TEXT NOT NULL,      -- "command", "button", "answer" or "replay"
    detail     TEXT NOT NULL,      -- the command text, or the button and its value
    allowed    INTEGER NOT NULL,   -- 1 allowed, 0 denied
    outcome    TEXT,               -- what came of it, in words
    platform   TEXT NOT NULL DEFAULT 'slack'  -- 'slack' or 'teams'
);
CREATE INDEX audit_by_time ON audit (at);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);  -- write_probe: /readyz
""")]
COLUMNS = ("id", "at", "user_id", "channel_id", "action", "detail", "allowed", "outcome",
           "platform")
COPY_CHUNK = 5000  # rows of a store's old audit table copied per transaction


@dataclass(frozen=True)
class AuditEntry:
    user_id: str
    channel_id: str | None
    action: str  # "command", "button", "answer" (was this you?) or "replay"
    detail: str  # the command text, or the button and its alert id
    allowed: bool
    outcome: str
    platform: str = "slack"  # where it came from: "slack" or "teams"


class AuditTrail:
    def __init__(self, path: str):
        """The trail at ``path``, made there on first use."""
        self.path = path
        self._connections = ThreadConnections(self._open)

    def _open(self) -> sqlite3.Connection:
        conn = connect(self.path)
        migrate(conn, TRAIL_MIGRATIONS)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the trail, opened (and the trail made) on first use."""
        return self._connections.get()

    def close(self) -> None:
        self._connections.close()

    def write(self, entry: AuditEntry, now: datetime) -> None:
        """Write one entry; allowed or denied, everything is recorded."""
        with transaction(self.connection()) as conn:
            conn.execute("INSERT INTO audit (at, user_id, channel_id, action, detail, allowed, "
                         "outcome, platform) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (time_text(now), entry.user_id, entry.channel_id, entry.action,
                          entry.detail, int(entry.allowed), entry.outcome, entry.platform))

    def probe_write(self, now: datetime, timeout: float) -> None:
        """Commit a one-row write (meta "write_probe") within ``timeout`` seconds; raise
        sqlite3.Error if the trail cannot be written, as Store.probe_write does."""
        write_probe(self.connection(), now, timeout)

    def upgrade(self, store: sqlite3.Connection) -> int:
        """Copy the rows of the store's own ``audit`` table (schema 17 and older) into the
        trail, with their ids, before migration 0018 drops it; how many were new here. The
        trail is made here if it does not exist, so that the bot starts only with one."""
        self.connection()
        kept = {row["name"] for row in store.execute("PRAGMA table_info(audit)")}
        if not kept:
            return 0
        columns = ", ".join(name for name in COLUMNS if name in kept)  # platform: 13 and on
        copied, after = 0, 0
        while rows := store.execute(f"SELECT {columns} FROM audit WHERE id > ? ORDER BY id "
                                    f"LIMIT {COPY_CHUNK}", (after,)).fetchall():
            with transaction(self.connection()) as conn:
                copied += conn.executemany(
                    f"INSERT INTO audit ({columns}) VALUES ({', '.join('?' * len(rows[0]))}) "
                    "ON CONFLICT (id) DO NOTHING", [tuple(row) for row in rows]).rowcount
            after = rows[-1]["id"]
        return copied
