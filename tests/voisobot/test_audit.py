"""The audit trail in its own file: written whatever the store's lock, and carried over,
once, from a store that kept it in its own table."""

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voisobot.audit import AuditEntry, AuditTrail
from voisobot.queries import audit_log
from voisobot.store import Store, audit_path, connect, migrate, migrations

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ENTRY = AuditEntry("U0ALICE01", "C0SECURITY", "command", "recent 5", True, "answered recent")


def rows(store: Store) -> list[tuple]:
    return [tuple(row) for row in store.audit.connection().execute(
        "SELECT id, user_id, action, detail, allowed, outcome, platform FROM audit ORDER BY id")]


def old_store(path: Path, version: int, entries: list[AuditEntry]) -> None:
    """A store written by the bot at schema ``version``, its audit rows in its own table."""
    conn = connect(str(path))
    migrate(conn, [step for step in migrations() if step[0] <= version])
    has_platform = version >= 13
    for entry in entries:
        columns = "at, user_id, channel_id, action, detail, allowed, outcome" + (
            ", platform" if has_platform else "")
        values = (T0.isoformat(), entry.user_id, entry.channel_id, entry.action, entry.detail,
                  int(entry.allowed), entry.outcome) + ((entry.platform,) if has_platform else ())
        conn.execute(f"INSERT INTO audit ({columns}) VALUES ({', '.join('?' * len(values))})",
                     values)
    conn.close()


def test_the_trail_is_its_own_file_beside_the_store_made_at_start_up(tmp_path):
    store = Store(tmp_path / "voiso.sqlite3")
    assert store.audit.path == str(tmp_path / "voiso-audit.sqlite3") == \
        audit_path(str(tmp_path / "voiso.sqlite3"))
    assert Path(store.audit.path).exists()
    assert not store.connection().execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'audit'").fetchone()


def test_an_entry_commits_while_another_connection_holds_the_stores_write_lock(tmp_path):
    """What the file is for: the intake's commits never hold up an analyst's audit row."""
    store = Store(tmp_path / "voiso.sqlite3")
    intake = sqlite3.connect(store.path, isolation_level=None)
    intake.execute("BEGIN IMMEDIATE")  # as the intake does through its commit and fsync
    try:
        writer = threading.Thread(target=store.audit.write, args=(ENTRY, T0))
        writer.start()
        writer.join(timeout=5)  # the store's own lock would hold it for its 30 s busy timeout
        assert not writer.is_alive()
    finally:
        intake.execute("ROLLBACK")
        intake.close()
    assert [row[1:] for row in rows(store)] == [
        ("U0ALICE01", "command", "recent 5", 1, "answered recent", "slack")]


def test_allowed_and_denied_entries_are_kept_and_read_newest_first(tmp_path):
    store = Store(tmp_path / "voiso.sqlite3")
    store.audit.write(ENTRY, T0)
    store.audit.write(AuditEntry("U0MALLORY", "C0GENERAL", "button", "ack 7", False, "denied",
                                 "teams"), T0)
    page = audit_log(store.audit.connection())
    assert [(row.user_id, row.allowed, row.outcome, row.platform) for row in page.items] == [
        ("U0MALLORY", False, "denied", "teams"), ("U0ALICE01", True, "answered recent", "slack")]


DETAILS = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(details=st.lists(DETAILS, min_size=1, max_size=8))
def test_upgrading_a_version_17_store_moves_every_row_with_its_id_once(tmp_path_factory,
                                                                       details):
    path = tmp_path_factory.mktemp("old") / "voiso.sqlite3"
    entries = [AuditEntry(f"U{n:08d}", None, "button", detail, n % 2 == 0, f"outcome {n}",
                          "teams" if n % 3 else "slack") for n, detail in enumerate(details)]
    old_store(path, 17, entries)
    AuditTrail(audit_path(str(path))).upgrade(connect(str(path)))  # then killed: no 0018 yet
    store = Store(path)  # copies again, and drops the table
    assert rows(store) == [(n + 1, e.user_id, e.action, e.detail, int(e.allowed), e.outcome,
                            e.platform) for n, e in enumerate(entries)]
    assert store.schema_version() == migrations()[-1][0]
    assert not store.connection().execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'audit'").fetchone()
    store.audit.write(ENTRY, T0)  # new rows follow the old ids
    assert rows(store)[-1][0] == len(entries) + 1


def test_a_version_4_stores_rows_came_from_slack(tmp_path):
    path = tmp_path / "voiso.sqlite3"
    old_store(path, 4, [ENTRY])
    store = Store(path)
    assert rows(store) == [(1, "U0ALICE01", "command", "recent 5", 1, "answered recent",
                            "slack")]
