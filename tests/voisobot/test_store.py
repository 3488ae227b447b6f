"""The SQLite store: idempotent batches, migrations, retention, indexes."""

import contextlib
import json
import logging
import re
import sqlite3
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import sqs_message
from voisobot import rollups, samples
from voisobot import store as store_module
from voisobot.intake import to_delivery
from voisobot.rollups import count_all_new_events, count_new_events
from voisobot.store import (
    _INSERT_EVENT,
    EVENT_CURSORS,
    NoStore,
    SchemaTooNew,
    Store,
    audit_path,
    connect,
    event_row,
    migrate,
    migrations,
    time_text,
    transaction,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def delivery(kind="app_login/successful_login", message_id=None, when=NOW, **params):
    document = samples.example(kind, now=when)
    document["params"].update(params)
    return to_delivery(sqs_message(document, message_id))


def test_fresh_store_is_at_the_newest_schema_with_safe_pragmas(store):
    conn = store.connection()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopening_applies_nothing_twice(tmp_path):
    Store(tmp_path / "s.sqlite3").close()
    again = Store(tmp_path / "s.sqlite3")
    assert again.totals() == {"events": 0, "duplicates": 0, "rejected": 0}
    again.close()


def test_a_newer_schema_is_refused_not_damaged(tmp_path):
    conn = connect(str(tmp_path / "s.sqlite3"))
    conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew, match="schema version 99"):
        migrate(conn)


def test_a_failing_migration_leaves_the_previous_version(tmp_path):
    conn = connect(str(tmp_path / "s.sqlite3"))
    broken = (99, "0099_broken.sql", "CREATE TABLE t (x); SELECT * FROM nowhere;")
    steps = [*migrations(), broken]
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, steps)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchone()


def test_batch_records_events_rejections_and_duplicates(store):
    first = delivery()
    resend = to_delivery(sqs_message(json.loads(first.raw), "resent-id"))
    bad = to_delivery(sqs_message("not json", "bad-id"))
    outcome = store.record_batch([first, resend, bad], NOW)
    assert (len(outcome.stored), outcome.duplicates, outcome.rejected) == (1, 1, 1)
    assert store.totals() == {"events": 1, "duplicates": 1, "rejected": 1}
    row = store.connection().execute("SELECT reason, raw FROM rejected").fetchone()
    assert row["raw"] == b"not json" and "not JSON" in row["reason"]


def test_a_redelivered_batch_adds_nothing(store):
    batch = [delivery(), delivery("user/user_added"),
             to_delivery(sqs_message("{", "bad")), None]
    batch[3] = to_delivery(sqs_message(json.loads(batch[0].raw), "dup"))
    store.record_batch(batch, NOW)
    again = store.record_batch(batch, NOW + timedelta(minutes=5))
    assert (again.stored, again.duplicates, again.rejected, again.redelivered) == ([], 0, 0, 4)
    assert store.totals() == {"events": 2, "duplicates": 1, "rejected": 1}


def refuse_events_of(store, user: str, action: str = "ABORT") -> None:
    """A trigger that fails the insert of this user's events, as a bad row would."""
    store.connection().execute(
        f"CREATE TRIGGER refuse_{action} BEFORE INSERT ON events WHEN NEW.user = '{user}' "
        f"BEGIN SELECT RAISE({action}, 'boom'); END")


def test_a_row_the_store_refuses_is_kept_as_rejected_and_the_rest_stored(store, caplog):
    refuse_events_of(store, "boom")
    good = [delivery(message_id="a", user="a@x.io"), delivery("user/user_added", "b"),
            to_delivery(sqs_message("not json", "c"))]
    boom = delivery(message_id="boom", user="boom")
    with caplog.at_level(logging.WARNING, logger="voisobot.store"):
        outcome = store.record_batch([good[0], boom, *good[1:]], NOW)
    assert (len(outcome.stored), outcome.rejected, outcome.redelivered) == (2, 2, 0)
    assert store.totals() == {"events": 2, "duplicates": 0, "rejected": 2}
    row = store.connection().execute(
        "SELECT reason, raw FROM rejected WHERE sqs_message_id = 'boom'").fetchone()
    assert row["reason"] == "internal error: IntegrityError: boom" and row["raw"] == boom.raw
    assert any(r.levelno == logging.ERROR and r.exc_info and "boom" in r.getMessage()
               for r in caplog.records)
    again = store.record_batch([good[0], boom, *good[1:]], NOW)  # a redelivery adds nothing
    assert (again.stored, again.rejected, again.redelivered) == ([], 0, 4)


def test_a_row_that_cannot_be_kept_even_as_rejected_rolls_back_the_whole_batch(store):
    good = delivery()
    broken = delivery("user/user_added")
    broken = type(broken)(None, broken.raw, None, event=broken.event)  # NOT NULL message id
    with pytest.raises(sqlite3.IntegrityError):  # the batch stays in SQS: nothing is lost
        store.record_batch([good, broken], NOW)
    assert store.totals() == {"events": 0, "duplicates": 0, "rejected": 0}
    assert not store.connection().in_transaction


def test_a_trigger_that_ends_the_transaction_fails_the_batch_and_leaves_the_store_usable(store):
    refuse_events_of(store, "boom", action="ROLLBACK")
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        store.record_batch([delivery(message_id="a"), delivery(message_id="b", user="boom")],
                           NOW)
    assert store.totals()["events"] == 0 and not store.connection().in_transaction
    assert len(store.record_batch([delivery(message_id="a")], NOW).stored) == 1


def test_a_locked_database_fails_the_whole_batch_without_rejecting_any(store, caplog):
    locked = sqlite3.connect(store.path, timeout=0)  # another writer holds the lock
    locked.execute("BEGIN EXCLUSIVE")
    store.connection().execute("PRAGMA busy_timeout = 50")
    try:
        with caplog.at_level(logging.WARNING, logger="voisobot.store"), \
                pytest.raises(sqlite3.OperationalError, match="locked"):
            store.record_batch([delivery(message_id="a"), delivery(message_id="b")], NOW)
    finally:
        locked.rollback()
        locked.close()
    assert store.totals() == {"events": 0, "duplicates": 0, "rejected": 0}
    assert not caplog.records  # not retried message by message


@pytest.mark.parametrize("exc, data", [
    (sqlite3.IntegrityError("constraint"), True),
    (sqlite3.DataError("string or blob too big"), True),
    (sqlite3.InterfaceError("bad parameter"), True),
    (sqlite3.ProgrammingError("unsupported type"), True),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
    (TypeError("a bug"), True),
    (sqlite3.OperationalError("database is locked"), False),
    (sqlite3.OperationalError("database or disk is full"), False),
    (sqlite3.OperationalError("disk I/O error"), False),
    (sqlite3.DatabaseError("database disk image is malformed"), False),
    (sqlite3.InternalError("internal"), False),
])
def test_a_rows_own_errors_are_told_apart_from_database_failures(exc, data):
    assert store_module.is_data_error(exc) is data


@pytest.mark.parametrize("exc, reason", [
    (sqlite3.IntegrityError("boom"), "internal error: IntegrityError: boom"),
    (ValueError("two\nlines\x1b[31m"), "internal error: ValueError: two\\nlines\\x1b[31m"),
    (KeyError("MessageId"), "internal error: KeyError: 'MessageId'"),
    (RuntimeError(), "internal error: RuntimeError: "),
    (ValueError("x" * 1000), "internal error: ValueError: " + "x" * 199 + "…"),
])
def test_an_internal_error_reason_is_one_bounded_line(exc, reason):
    assert store_module.internal_error_reason(exc) == reason


def test_the_event_row_keeps_columns_params_and_raw_body(store):
    d = delivery("app_login/incorrect_password", user="<!channel>", count="12")
    store.record_batch([d], NOW)
    row = store.connection().execute("SELECT * FROM events").fetchone()
    assert row["user"] == "<!channel>" and row["count"] == 12
    assert row["event_time"] == "2026-11-24T12:00:00.000000Z"
    assert row["received_at"] == "2026-11-24T12:00:00.000000Z"
    assert row["sent_at"] == "2020-10-10T10:11:12.120000Z"
    assert json.loads(row["params"])["count"] == "12"
    assert row["raw"] == d.raw


def test_each_thread_gets_its_own_connection(store):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(store.connection()))
    thread.start()
    thread.join()
    assert seen[0] is not store.connection()


def test_prune_removes_what_is_older_than_the_cutoff(store):
    old, new = NOW - timedelta(days=100), NOW - timedelta(days=1)
    old_event = delivery(when=old)
    store.record_batch([old_event, delivery("user/user_added", when=new)], old)
    store.record_batch([to_delivery(sqs_message(json.loads(old_event.raw), "dup"))], old)
    store.record_batch([to_delivery(sqs_message("x", "bad-old"))], old)
    store.record_batch([to_delivery(sqs_message("x", "bad-new"))], new)
    count_all_new_events(store.connection())
    deleted = store.prune(NOW - timedelta(days=90))
    # the duplicate cascaded with its event
    assert deleted == {"events": 1, "rejected": 1, "duplicates": 0}
    assert store.totals() == {"events": 1, "duplicates": 0, "rejected": 1}
    assert store.counts_by_kind() == {"user/user_added": 1}


def test_after_a_prune_of_the_newest_events_no_cursor_has_passed_the_next_id(store):
    """SQLite gives a new row the highest id left plus one: a prune that deleted the newest
    events brings every cursor over events back to the highest id left, so the next event
    is alerted on, counted, summarised and indexed."""
    old = NOW - timedelta(days=100)
    store.record_batch([delivery(when=old), delivery("user/user_added", when=old)], NOW)
    conn = store.connection()
    conn.execute("UPDATE cursors SET value = 2")  # as if every job had handled both
    assert store.prune(NOW - timedelta(days=90))["events"] == 2
    outcome = store.record_batch([delivery("user/user_deleted", when=NOW)], NOW)
    cursors = dict(conn.execute("SELECT name, value FROM cursors").fetchall())
    assert {name: cursors[name] for name in EVENT_CURSORS} == dict.fromkeys(EVENT_CURSORS, 0)
    assert outcome.stored == [1]  # the id the cursors were past, given again


@pytest.mark.parametrize("where, index", [
    ("user = 'foo@bar.com'", "events_by_user"),
    ("user = 'foo@bar.com' AND type = 'user' AND event = 'user_added'", "events_by_user_kind"),
    ("who = 'admin@voiso.com'", "events_by_who"),
    ("ip = '8.8.8.8'", "events_by_ip"),
    ("from_value = '8.8.8.8'", "events_by_from"),
    ("to_value = '8.8.8.8'", "events_by_to"),
    ("event_time > '2026-01-01'", "events_by_time"),
    ("type = 'app_login' AND event = 'unauthorized_ip'", "events_by_kind"),
])
def test_lookups_use_an_index(store, where, index):
    plan = store.connection().execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM events WHERE {where} ORDER BY event_time DESC"
    ).fetchall()
    assert re.search(rf"{index}(?!\w)", " ".join(row["detail"] for row in plan))


def test_user_lookup_ignores_case(store):
    store.record_batch([delivery(user="Foo@Bar.COM")], NOW)
    assert store.connection().execute(
        "SELECT count(*) FROM events WHERE user = 'foo@bar.com'").fetchone()[0] == 1


# --- daily_counts ----------------------------------------------------------------------------

# What daily_counts must hold: the stored events counted per UTC day, straight from events.
COUNTED_FROM_EVENTS_SQL = """
    SELECT 'kind', substr(event_time, 1, 10), type || '/' || event, count(*)
    FROM events GROUP BY 2, 3
    UNION ALL SELECT 'user', substr(event_time, 1, 10), lower(user), count(*)
    FROM events WHERE user IS NOT NULL GROUP BY 2, 3
    UNION ALL SELECT 'ip', substr(event_time, 1, 10), ip, count(*)
    FROM events WHERE ip IS NOT NULL GROUP BY 2, 3
    UNION ALL SELECT 'ip', substr(event_time, 1, 10), from_value, count(*)
    FROM events WHERE from_value IS NOT NULL GROUP BY 2, 3
    UNION ALL SELECT 'ip', substr(event_time, 1, 10), to_value, count(*)
    FROM events WHERE to_value IS NOT NULL GROUP BY 2, 3"""


def counted_from_events(conn) -> Counter:
    counts = Counter()
    for dimension, day, value, n in conn.execute(COUNTED_FROM_EVENTS_SQL):
        counts[dimension, day, value] += n  # an address in ip and in to is counted twice
    return counts


def kept(conn) -> Counter:
    return Counter({(dimension, day, value): n for dimension, day, value, n
                    in conn.execute("SELECT dimension, day, value, n FROM daily_counts")})


def mixed_deliveries(tag: str, when: datetime) -> list:
    """One of every sort that daily_counts treats differently, on two UTC days."""
    return [
        delivery(message_id=f"{tag}-1", when=when, user="Jane@Acme.example"),
        delivery(message_id=f"{tag}-2", when=when - timedelta(hours=13), user="jane@ACME.example"),
        delivery(message_id=f"{tag}-3", when=when, user="Ärger@x.example"),  # Ä is not folded
        delivery(message_id=f"{tag}-4", when=when, user="ärger@x.example"),
        delivery("app_login/ip_changed", f"{tag}-5", when, **{"from": "1.1.1.1", "to": "2.2.2.2"}),
        delivery("app_login/unauthorized_ip", f"{tag}-6", when, ip="1.1.1.1"),
        delivery("allowed_ip/ip_added", f"{tag}-7", when, ip="10.0.0.0/24"),
        delivery("user/privileges_updated", f"{tag}-8", when),  # access groups in from/to
        to_delivery(sqs_message({"timestamp": "2026-11-24T01:00:00Z", "type": "sso",
                                 "event": "login", "params": {"ip": "3.3.3.3"}}, f"{tag}-9")),
    ]


def test_the_days_count_each_stored_event_exactly_once(store, monkeypatch):
    monkeypatch.setattr(rollups, "DAILY_COUNT_BATCH", 4)  # several steps of the cursor
    conn = store.connection()
    first = mixed_deliveries("a", NOW)
    resent = to_delivery(sqs_message(json.loads(first[0].raw), "resent"))
    store.record_batch([*first, resent, to_delivery(sqs_message("{", "bad"))], NOW)
    assert kept(conn) == Counter()  # not in the intake's transaction: counted after
    assert count_new_events(conn, 4) == 4
    assert count_all_new_events(conn) == 5 and count_all_new_events(conn) == 0
    store.record_batch([*first[:4], resent], NOW)  # redelivered: nothing new
    second = [delivery(message_id=f"b-{n}", when=NOW - timedelta(days=1, minutes=n),
                       user="JANE@acme.example") for n in range(3)]
    store.record_batch([*second, first[5]], NOW)
    broken = type(first[0])(None, first[0].raw, None, event=delivery(when=NOW).event)
    with pytest.raises(sqlite3.IntegrityError):  # rolled back: nothing stored to count
        store.record_batch([delivery(message_id="c", when=NOW - timedelta(days=2)), broken], NOW)
    count_all_new_events(conn)
    assert kept(conn) == counted_from_events(conn)
    assert kept(conn)["user", "2026-11-24", "jane@acme.example"] == 1
    assert kept(conn)["user", "2026-11-23", "jane@acme.example"] == 4
    assert kept(conn)["ip", "2026-11-24", "1.1.1.1"] == 2
    assert not any(day == "2026-11-22" for _, day, _ in kept(conn))


def test_upgrading_a_version_4_store_counts_its_events_per_day(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = connect(str(path))
    migrate(conn, [step for step in migrations() if step[0] <= 4])  # written by version 4
    for item in mixed_deliveries("old", NOW - timedelta(days=3)):
        conn.execute(_INSERT_EVENT, event_row(item, time_text(NOW)))
    conn.close()
    upgraded = Store(path)
    conn = upgraded.connection()
    assert kept(conn) == counted_from_events(conn)
    assert kept(conn)["kind", "2026-11-21", "app_login/successful_login"] == 3
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events_by_user_kind'"
                        ).fetchone()
    # the job's counts (Python) join the backfill's (SQL) under the same values, and it
    # starts after the events the backfill counted
    outcome = upgraded.record_batch(mixed_deliveries("new", NOW - timedelta(days=3, seconds=1)),
                                    NOW)
    assert count_all_new_events(conn) == len(outcome.stored)
    assert kept(conn) == counted_from_events(conn)
    assert kept(conn)["kind", "2026-11-21", "app_login/successful_login"] == 6
    assert kept(conn)["user", "2026-11-21", "Ärger@x.example"] == 2
    upgraded.close()


def test_prune_takes_the_counts_of_the_events_it_deletes_out_of_the_days(store, monkeypatch):
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 2)  # several chunks
    cutoff = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    for n, when in enumerate([cutoff - timedelta(days=2), cutoff - timedelta(days=1),
                              cutoff - timedelta(hours=6), cutoff + timedelta(hours=6), NOW]):
        store.record_batch([delivery(message_id=f"m-{n}", when=when, user=f"u{n}@x.example")],
                           when)
    count_all_new_events(store.connection())
    deleted = store.prune(cutoff)
    conn = store.connection()
    assert deleted["events"] == 3
    assert kept(conn) == counted_from_events(conn)  # a day whose events are gone has no row
    assert sorted({day for _, day, _ in kept(conn)}) == ["2026-11-22", "2026-11-24"]
    # the cutoff's day keeps the count of its event after the cutoff only
    assert kept(conn)["kind", "2026-11-22", "app_login/successful_login"] == 1


# --- opening only a store that exists (check, redeliver) -------------------------------------

# File names a store.path may hold, URI-special characters included: mode=rw goes by URI.
AWKWARD_NAMES = ["store.sqlite3", "with space.db", "q?mode=rwc.db", "hash#frag.db", "50%.db",
                 "ünïcode.db", "a&b=c.db", "%3F.db", "..db"]
NAME = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/\x00"),
               min_size=1, max_size=20).filter(lambda n: n not in (".", ".."))


def exists_only_once_made(directory, name: str) -> None:
    """No file appears for a missing store; an existing one is opened, itself, as it is."""
    path = directory / name
    with pytest.raises(NoStore, match=r"no store yet at .*: the bot has not run here"):
        Store(path, create=False)
    assert list(directory.iterdir()) == []
    made = Store(path)
    made.record_batch([delivery()], NOW)
    made.close()
    opened = Store(path, create=False, upgrade=False)
    assert opened.totals()["events"] == 1 and opened.path == str(path)
    opened.close()
    assert {p.name for p in directory.iterdir()} == {name, Path(audit_path(str(path))).name}


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_a_missing_store_is_never_made_whatever_its_name(tmp_path, name):
    exists_only_once_made(tmp_path, name)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAME)
def test_a_missing_store_is_never_made_for_any_name(tmp_path_factory, name):
    exists_only_once_made(tmp_path_factory.mktemp("names"), name)


def test_a_store_deleted_after_the_existence_check_is_not_made_again(tmp_path):
    """SQLite's mode=rw, not the check before it, is what refuses to create the file."""
    path = tmp_path / "store.sqlite3"
    with pytest.raises(sqlite3.OperationalError):
        connect(str(path), create=False)
    assert not path.exists()


@pytest.mark.parametrize("refused, redelivered, told", [
    (False, False, 1),   # one transaction: told once, after its commit
    (True, False, 1),    # a refused row: recorded message by message, then told once
    (False, True, 0),    # nothing new (a redelivery): nobody woken for nothing
])
def test_commit_listeners_are_told_after_a_commit_of_new_events(store, refused, redelivered,
                                                                 told):
    refuse_events_of(store, "boom")
    batch = [delivery(message_id="a", user="a@x.io")]
    if refused:
        batch.append(delivery(message_id="boom", user="boom"))
    if redelivered:
        store.record_batch(batch, NOW)
    seen = []

    def count_from_another_connection():  # sees only what is committed
        with contextlib.closing(sqlite3.connect(store.path)) as other:
            seen.append(other.execute("SELECT count(*) FROM events").fetchone()[0])

    store.add_commit_listener(count_from_another_connection)
    store.record_batch(batch, NOW)
    assert seen == [1] * told


# --- waiting for another writer -----------------------------------------------------------

def test_a_transaction_waits_for_another_writer_and_then_begins(store):
    other = store_module.connect(store.path)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.2, lambda: other.execute("COMMIT")).start()
    with transaction(store.connection()) as conn:  # would raise "locked" without the wait
        conn.execute("INSERT INTO meta (key, value) VALUES ('waited', '1')")
    assert store.connection().execute(
        "SELECT value FROM meta WHERE key = 'waited'").fetchone()[0] == "1"
    other.close()


def test_a_transaction_gives_up_after_the_busy_timeout_and_keeps_it(store):
    other = store_module.connect(store.path)
    other.execute("BEGIN IMMEDIATE")
    conn = store.connection()
    conn.execute("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"), transaction(conn):
            pass
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 50
        assert not conn.in_transaction
    finally:
        other.execute("ROLLBACK")
        other.close()
