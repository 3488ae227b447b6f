"""The SQLite store: idempotent batches, migrations, retention, indexes."""

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import sqs_message
from voisobot import samples
from voisobot.intake import to_delivery
from voisobot.store import SchemaTooNew, Store, connect, migrate, migrations

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


def test_a_failing_row_rolls_back_the_whole_batch(store):
    good = delivery()
    broken = delivery("user/user_added")
    broken = type(broken)(None, broken.raw, None, event=broken.event)  # NOT NULL message id
    with pytest.raises(sqlite3.IntegrityError):
        store.record_batch([good, broken], NOW)
    assert store.totals()["events"] == 0


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
    deleted = store.prune(NOW - timedelta(days=90))
    assert deleted == {"events": 1, "rejected": 1, "duplicates": 0}  # cascaded with its event
    assert store.totals() == {"events": 1, "duplicates": 0, "rejected": 1}
    assert store.counts_by_kind() == {"user/user_added": 1}


@pytest.mark.parametrize("where, index", [
    ("user = 'foo@bar.com'", "events_by_user"),
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
    assert index in " ".join(row["detail"] for row in plan)


def test_user_lookup_ignores_case(store):
    store.record_batch([delivery(user="Foo@Bar.COM")], NOW)
    assert store.connection().execute(
        "SELECT count(*) FROM events WHERE user = 'foo@bar.com'").fetchone()[0] == 1
