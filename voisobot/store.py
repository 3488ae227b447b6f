"""The SQLite cache: every SQS message becomes an event, a duplicate or a rejection.

WAL with ``synchronous=FULL``, because the intake deletes a message from SQS
right after its commit: a commit that a power cut could undo would lose events
that SQS no longer holds. One connection per thread (Bolt and APScheduler both
run work on thread pools).
"""

import contextlib
import functools
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from voisobot import logs
from voisobot.errors import VoisoBotError
from voisobot.events import Event
from voisobot.resources import packaged

log = logging.getLogger(__name__)

PRUNE_CHUNK = 5000
BUSY_TIMEOUT_SECONDS = 30  # how long a write waits for another writer's lock
MIGRATIONS_DIR = packaged("migrations")


def time_text(moment: datetime) -> str:
    """UTC as fixed-width text, so that text order is time order in SQL."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def day_text(moment: datetime) -> str:
    """The UTC date, as daily_counts.day holds it: the date part of time_text."""
    return moment.astimezone(UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One SQS message, parsed: exactly one of ``event`` and ``reason`` is set."""

    message_id: str
    raw: bytes
    sent_at: str | None
    event: Event | None = None
    reason: str | None = None


@dataclass
class BatchOutcome:
    stored: list[int] = field(default_factory=list)  # ids of new event rows
    duplicates: int = 0      # a new message whose body was already stored
    redelivered: int = 0     # a message id already recorded (SQS at-least-once)
    rejected: int = 0
    rejected_internal: int = 0  # of the rejected, those kept as "internal error: ..."
    # (type, event) -> count, of the stored events and of the duplicates (for the metrics)
    stored_kinds: Counter = field(default_factory=Counter)
    duplicate_kinds: Counter = field(default_factory=Counter)

    def add(self, other: "BatchOutcome") -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.redelivered += other.redelivered
        self.rejected += other.rejected
        self.rejected_internal += other.rejected_internal
        self.stored_kinds.update(other.stored_kinds)
        self.duplicate_kinds.update(other.duplicate_kinds)


_INSERT_EVENT = """
    INSERT INTO events (sqs_message_id, body_sha256, received_at, sent_at, event_time, type,
                        event, callcenter, user, who, access_group, ip, from_value, to_value,
                        count, params, raw)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING
"""
_INSERT_REJECTED = """
    INSERT INTO rejected (sqs_message_id, received_at, sent_at, reason, raw)
    VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""
_INSERT_DUPLICATE = """
    INSERT INTO duplicates (sqs_message_id, event_id, received_at)
    VALUES (?, ?, ?) ON CONFLICT DO NOTHING
"""


def event_row(delivery: Delivery, received_at: str) -> tuple:
    """The events-table row for a valid delivery, in ``_INSERT_EVENT`` order."""
    e = delivery.event
    return (delivery.message_id, e.fingerprint, received_at, delivery.sent_at, time_text(e.time),
            e.type, e.event, e.callcenter, e.user, e.who, e.access_group, e.ip, e.from_value,
            e.to_value, e.count, e.params_json, delivery.raw)


def _record(conn: sqlite3.Connection, delivery: Delivery, when: str,
            outcome: BatchOutcome) -> None:
    """Insert one delivery as an event, a duplicate or a rejection, and count it."""
    if delivery.event is None:
        cursor = conn.execute(_INSERT_REJECTED, (delivery.message_id, when, delivery.sent_at,
                                                 delivery.reason, delivery.raw))
        outcome.rejected += cursor.rowcount
        if is_internal_error(delivery.reason):
            outcome.rejected_internal += cursor.rowcount
        outcome.redelivered += 1 - cursor.rowcount
        return
    cursor = conn.execute(_INSERT_EVENT, event_row(delivery, when))
    if cursor.rowcount:
        outcome.stored.append(cursor.lastrowid)
        outcome.stored_kinds[delivery.event.type, delivery.event.event] += 1
    else:
        _record_conflict(conn, delivery, when, outcome)


def _record_conflict(conn: sqlite3.Connection, delivery: Delivery, when: str,
                     outcome: BatchOutcome) -> None:
    """The insert hit a unique key: a redelivery of this message, or a resent body."""
    if conn.execute("SELECT 1 FROM events WHERE sqs_message_id = ?",
                    (delivery.message_id,)).fetchone():
        outcome.redelivered += 1
        return
    (event_id,) = conn.execute("SELECT id FROM events WHERE body_sha256 = ?",
                               (delivery.event.fingerprint,)).fetchone()
    cursor = conn.execute(_INSERT_DUPLICATE, (delivery.message_id, event_id, when))
    outcome.duplicates += cursor.rowcount
    outcome.duplicate_kinds[delivery.event.type, delivery.event.event] += cursor.rowcount
    outcome.redelivered += 1 - cursor.rowcount


# What one delivery's data can raise: a constraint or trigger, a value SQLite cannot take, a
# bug in building its row. Any other sqlite3.Error (locked, disk full, I/O, corrupt file) is
# the database's, and no message should be rejected for it.
_DATA_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError,
                sqlite3.ProgrammingError)


def is_data_error(exc: Exception) -> bool:
    return isinstance(exc, _DATA_ERRORS) or not isinstance(exc, sqlite3.Error)


INTERNAL_ERROR_DETAIL_LIMIT = 200
INTERNAL_ERROR_PREFIX = "internal error: "


def internal_error_reason(exc: BaseException) -> str:
    """The one-line reason kept for a message that failed in a way no check foresaw."""
    try:
        detail = str(exc)
    except Exception:  # an exception whose own message fails: still a reason
        detail = "(no message)"
    detail = detail.encode("unicode_escape").decode("ascii")  # one line, whatever it held
    if len(detail) > INTERNAL_ERROR_DETAIL_LIMIT:
        detail = detail[: INTERNAL_ERROR_DETAIL_LIMIT - 1] + "…"
    return f"{INTERNAL_ERROR_PREFIX}{type(exc).__name__}: {detail}"


def is_internal_error(reason: str | None) -> bool:
    """Whether a rejection's reason is a failure no check foresaw (internal_error_reason)."""
    return (reason or "").startswith(INTERNAL_ERROR_PREFIX)


def as_internal_error(delivery: Delivery, exc: BaseException) -> Delivery:
    return replace(delivery, event=None, reason=internal_error_reason(exc))


# The oldest events, a chunk at a time, with what the rollups and summaries need to take
# them out.
_OLD_EVENTS = """
    SELECT id, event_time, type, event, user, who, ip, from_value, to_value FROM events
    WHERE event_time < ? ORDER BY event_time LIMIT ?"""
# The cursors that walk events by id (the alerts, the look-alike names, the rollups, the
# summaries). events.id is a rowid: once the newest events are pruned, SQLite gives the next
# event the highest id left plus one, an id these cursors may have passed; so after a prune
# each goes back to the highest id left (every event up to it was deleted or handled).
EVENT_CURSORS = ("alerts_enqueued", "accounts_indexed", "daily_counted", "summarised")
_REWIND_EVENT_CURSORS = f"""
    UPDATE cursors SET value = (SELECT coalesce(max(id), 0) FROM events)
    WHERE name IN ({", ".join(f"'{name}'" for name in EVENT_CURSORS)})
      AND value > (SELECT coalesce(max(id), 0) FROM events)"""


def catch_up(step: Callable[[int], int], batch: int) -> int:
    """``step(batch)`` (which handles up to ``batch`` events behind a cursor and says how
    many it did) until a step comes short: every stored event is handled. Returns how many."""
    handled = 0
    while True:
        done = step(batch)
        handled += done
        if done < batch:
            return handled


def audit_path(store_path: str) -> str:
    """Where the audit trail of the store at ``store_path`` lives: beside it, its name with
    ``-audit`` before the suffix (``voiso.sqlite3`` -> ``voiso-audit.sqlite3``)."""
    path = Path(store_path)
    return str(path.with_name(f"{path.stem}-audit{path.suffix}"))


class ThreadConnections:
    """One connection per thread, opened by ``open()`` on first use (Bolt and APScheduler
    both run work on thread pools)."""

    def __init__(self, open_connection: Callable[[], sqlite3.Connection]):
        self._open = open_connection
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append((threading.current_thread(), conn))
        return conn

    def close(self) -> None:
        """Close this thread's connection and those of threads that have ended. A thread
        still running (a job a stop did not wait for) keeps its own: closing a connection
        while another thread runs a statement on it crashes SQLite."""
        me = threading.current_thread()
        with self._lock:
            kept = []
            for owner, conn in self._all:
                if owner is me or not owner.is_alive():
                    conn.close()
                else:
                    kept.append((owner, conn))
            self._all = kept
        self._local.__dict__.pop("conn", None)


class NoStore(VoisoBotError):
    """The store file does not exist, and the command that asked must not create one."""

    def __init__(self, path: Path | str):
        super().__init__(f"no store yet at {path}: the bot has not run here")
        self.path = Path(path)


class Store:
    def __init__(self, path: Path | str, *, create: bool = True, upgrade: bool = True):
        """``create=False`` opens only a file that exists (NoStore otherwise) and never makes
        one: ``check`` and ``redeliver`` run beside the bot, perhaps with another store.path.
        ``upgrade=False`` leaves the schema as it is: ``check`` only looks, and an older bot
        may be running on the file."""
        from voisobot.audit import AuditTrail  # it builds on this module: imported one way only

        self.path = str(path)
        self._connections = ThreadConnections(lambda: connect(self.path, create=create))
        self._commit_listeners: list[Callable[[], None]] = []
        if not create and not Path(path).exists():
            raise NoStore(path)
        conn = self.connection()
        self.audit = AuditTrail(audit_path(self.path))
        if upgrade:
            self.audit.upgrade(conn)
            migrate(conn)
            self._summarise_backlog(conn)

    @staticmethod
    def _summarise_backlog(conn: sqlite3.Connection) -> None:
        """Summarise what the counting job has not (all of it, right after migration 0017),
        so that no question starts with a long tail to read."""
        from voisobot import summaries  # it builds on this module: imported one way only

        summaries.summarise_all_new_events(conn, summaries.CATCH_UP_BATCH)

    @functools.cached_property
    def store_id(self) -> str:
        """The id made with this store (migration 0007): its alerts carry it in Slack."""
        (value,) = self.connection().execute(
            "SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        return value

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        return self._connections.get()

    def close(self) -> None:
        """Close this thread's connections (the store's and the audit trail's) and those of
        threads that have ended (ThreadConnections.close); the store reopens on the next use."""
        self._connections.close()
        self.audit.close()

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each record_batch that committed new events (the jobs
        that act on new events wake on it: jobs.Wake). It runs on the intake's thread, after
        the commit and before the SQS delete: it must be quick, and what it raises is logged
        and never fails the batch."""
        self._commit_listeners.append(listener)

    def _tell_commit_listeners(self, outcome: BatchOutcome) -> None:
        if not outcome.stored:
            return
        for listener in self._commit_listeners:
            try:
                listener()
            except Exception:  # the batch is committed: its SQS delete must still follow
                log.exception("store: a commit listener failed; the batch stays committed")

    def record_batch(self, deliveries: list[Delivery], received_at: datetime) -> BatchOutcome:
        """Store a received batch; idempotent on the SQS message id.

        One transaction for the whole batch. If it fails on one delivery's data, the batch
        is recorded again message by message, and a delivery that still fails is kept as a
        rejection "internal error: ...": one bad row must not hold up the others. A failure
        of the database itself (locked, full, unreadable) raises, and the batch stays in SQS.
        """
        when = time_text(received_at)
        try:
            with transaction(self.connection()) as conn:
                outcome = BatchOutcome()
                for delivery in deliveries:
                    _record(conn, delivery, when, outcome)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.warning("store: a batch of %d failed (%s); recording it message by message",
                        len(deliveries), internal_error_reason(exc))
            outcome = self._record_each(deliveries, when)
        self._tell_commit_listeners(outcome)
        return outcome

    def _record_each(self, deliveries: list[Delivery], when: str) -> BatchOutcome:
        """The batch again, one savepoint per message: only the failing one is rolled back."""
        outcome = BatchOutcome()
        with transaction(self.connection()) as conn:
            for delivery in deliveries:
                conn.execute("SAVEPOINT message")
                single = BatchOutcome()
                try:
                    _record(conn, delivery, when, single)
                except Exception as exc:
                    if not is_data_error(exc) or not conn.in_transaction:
                        raise
                    conn.execute("ROLLBACK TO message")
                    log.exception("store: cannot record SQS message %s; kept as rejected",
                                  delivery.message_id,
                                  extra=logs.ids(sqs_message_id=delivery.message_id))
                    single = BatchOutcome()  # the failing delivery's counts are void
                    _record(conn, as_internal_error(delivery, exc), when, single)
                conn.execute("RELEASE message")
                outcome.add(single)
        return outcome

    def prune(self, older_than: datetime) -> dict[str, int]:
        """Delete events (by event time) and rejections (by receive time) before a moment.

        Deletes in chunks so the intake is never locked out for long; each chunk of events
        takes its counts out of the rollups in its own transaction, so they always equal a
        count of the events cached.
        """
        cutoff = time_text(older_than)
        return {
            "events": self._prune_events(cutoff),
            "rejected": self._delete_chunks("rejected", "received_at < ?", cutoff),
            "duplicates": self._delete_chunks("duplicates", "received_at < ?", cutoff),
        }

    def _prune_events(self, cutoff: str) -> int:
        """Events in chunks, each taken out of the rollups and the summaries in its own
        transaction."""
        from voisobot import rollups, summaries  # they build on this module: one way only

        deleted = 0
        while True:
            with transaction(self.connection()) as conn:
                rows = conn.execute(_OLD_EVENTS, (cutoff, PRUNE_CHUNK)).fetchall()
                rollups.forget(conn, rows)
                summaries.forget(conn, rows)
                conn.execute("DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))",
                             (json.dumps([row["id"] for row in rows]),))
                conn.execute(_REWIND_EVENT_CURSORS)
            deleted += len(rows)
            if len(rows) < PRUNE_CHUNK:
                return deleted

    def _delete_chunks(self, table: str, where: str, cutoff: str) -> int:
        deleted = 0
        while True:
            with transaction(self.connection()) as conn:
                cursor = conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN "
                    f"(SELECT rowid FROM {table} WHERE {where} LIMIT {PRUNE_CHUNK})",
                    (cutoff,))
            deleted += cursor.rowcount
            if cursor.rowcount < PRUNE_CHUNK:
                return deleted

    def probe_write(self, now: datetime, timeout: float) -> None:
        """Write one row and commit it, waiting at most ``timeout`` seconds for the lock;
        raise sqlite3.Error if the store cannot be written (locked, read-only, full, failing).
        The row (meta "write_probe") holds the time of the last probe that worked."""
        write_probe(self.connection(), now, timeout)

    def totals(self) -> dict[str, int]:
        conn = self.connection()
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("events", "duplicates", "rejected")}

    def schema_version(self) -> int:
        return self.connection().execute("PRAGMA user_version").fetchone()[0]

    def kinds_seen(self) -> set[tuple[str, str]]:
        """Every (type, event) pair stored, documented or not (read from events_by_kind)."""
        return set(map(tuple, self.connection().execute(
            "SELECT DISTINCT type, event FROM events").fetchall()))

    def counts_by_kind(self) -> dict[str, int]:
        rows = self.connection().execute(
            "SELECT type || '/' || event, count(*) FROM events GROUP BY type, event ORDER BY 1")
        return dict(rows.fetchall())

    def latest_events(self, limit: int) -> list[sqlite3.Row]:
        """The last events received (by arrival: a body's timestamp is the sender's word)."""
        return self.connection().execute(
            "SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

    def latest_rejections(self, limit: int) -> list[sqlite3.Row]:
        return self.connection().execute(
            "SELECT * FROM rejected ORDER BY id DESC LIMIT ?", (limit,)).fetchall()


def write_probe(conn: sqlite3.Connection, now: datetime, timeout: float) -> None:
    """Commit the time in the row meta "write_probe", waiting at most ``timeout`` seconds for
    the lock; sqlite3.Error if it cannot be written."""
    (saved_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {round(timeout * 1000)}")
    try:
        with transaction(conn):
            conn.execute("INSERT INTO meta (key, value) VALUES ('write_probe', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (time_text(now),))
    finally:
        conn.execute(f"PRAGMA busy_timeout = {saved_ms}")


@contextlib.contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction (WAL: a snapshot, no lock that a writer waits for, none that
    waits for a writer): a question reads the rollups or summaries and the events after their
    cursor as of the same commit, so nothing is counted twice or missed while the counting
    job moves the cursor. Inside a transaction already, that one is the snapshot."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


# Waiting for another writer: SQLite's own busy handler sleeps 1, 2, 5, 10, 15 … ms between
# tries, so a wait for a commit of 3 ms often lasts 8 and one of 9 ms lasts 18, which is
# most of a /voiso answer's time (its audit row) while the intake writes. Tried in short
# steps here instead, up to the connection's own busy timeout.
FIRST_RETRY_SECONDS = 0.0002
LONGEST_RETRY_SECONDS = 0.002


def begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, trying again every fraction of a millisecond while another
    connection writes, for as long as the connection's busy timeout allows."""
    (timeout_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline, pause = time.monotonic() + timeout_ms / 1000, FIRST_RETRY_SECONDS
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_RETRY_SECONDS)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")


class transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        begin_immediate(self.conn)
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if not exc_type:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error:
                self._rollback()  # a COMMIT that fails may leave the transaction open
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self.conn.in_transaction:  # a trigger's RAISE(ROLLBACK) has already ended it
            self.conn.execute("ROLLBACK")


def connect(path: str, *, create: bool = True) -> sqlite3.Connection:
    """A connection with the store's pragmas; with ``create=False`` SQLite's ``mode=rw``
    refuses a file that is missing instead of making it (even one deleted since a check)."""
    target = path if create else Path(path).absolute().as_uri() + "?mode=rw"
    # check_same_thread=False only so close() can run at shutdown; each thread uses its own.
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_SECONDS, uri=not create)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class SchemaTooNew(VoisoBotError):
    pass


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every file in voisobot/migrations, in order."""
    found = []
    for item in MIGRATIONS_DIR.glob("*.sql"):
        found.append((int(item.name.split("_", 1)[0]), item.name, item.read_text("utf-8")))
    return sorted(found)


def migrate(conn: sqlite3.Connection, steps: list[tuple[int, str, str]] | None = None) -> int:
    """Bring the schema to the newest version; each migration is one transaction."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    steps = migrations() if steps is None else steps
    newest = steps[-1][0] if steps else 0
    if current > newest:
        raise SchemaTooNew(f"the database is at schema version {current}, newer than this "
                           f"bot knows ({newest}); upgrade the bot or use another store.path")
    for version, name, sql in steps:
        if version <= current:
            continue
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("store: applied migration %s", name)
    return max(current, newest)
