"""Acknowledgements (one winner in any race, across restarts) and the audit trail."""

import threading

import pytest

from tests.conftest import sqs_message
from tests.voisobot.test_delivery import T0, make_config
from voisobot import samples
from voisobot.acks import AckOutcome, AuditEntry, MessageRef, acknowledge, audit, reopen
from voisobot.intake import Intake
from voisobot.store import Store, transaction

POSTED = MessageRef("C0SECURITY", "1.5")  # where an_alert's message is


def an_alert(store: Store) -> int:
    Intake(None, make_config().sqs, store).store_messages(
        [sqs_message(samples.example("app_login/unauthorized_ip", now=T0))])
    with transaction(store.connection()) as conn:
        return conn.execute(
            "INSERT INTO alerts (event_id, channel, severity, state, next_attempt_at, "
            "created_at, slack_ts) VALUES (1, 'C0SECURITY', 'high', 'sent', '', '', '1.5')"
        ).lastrowid


def test_acknowledge_records_who_and_when_and_where_the_message_is(store):
    alert = an_alert(store)
    outcome = acknowledge(store, alert, POSTED, "U0ALICE01", T0)
    assert (outcome.status, outcome.by, outcome.channel, outcome.ts) == (
        "acknowledged", "U0ALICE01", "C0SECURITY", "1.5")
    assert outcome.at.startswith("2026-11-24T12:00:00")


def test_a_second_click_learns_who_was_first(store):
    alert = an_alert(store)
    acknowledge(store, alert, POSTED, "U0ALICE01", T0)
    again = acknowledge(store, alert, POSTED, "U0BOB0001", T0)
    assert (again.status, again.by) == ("already_acknowledged", "U0ALICE01")


def test_two_people_at_once_give_one_acknowledgement(tmp_path):
    path = tmp_path / "race.sqlite3"
    alert = an_alert(Store(path))
    outcomes, start = [], threading.Barrier(8)

    def click(user: str) -> None:
        store = Store(path)  # each analyst's request on its own connection, as in Bolt
        start.wait()
        outcomes.append(acknowledge(store, alert, POSTED, user, T0))
        store.close()

    threads = [threading.Thread(target=click, args=(f"U0USER{i:03d}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.status == "acknowledged"]
    assert len(winners) == 1
    assert {o.by for o in outcomes} == {winners[0].by}


def test_reopen_then_acknowledge_again_and_it_survives_a_restart(tmp_path):
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    alert = an_alert(store)
    acknowledge(store, alert, POSTED, "U0ALICE01", T0)
    assert reopen(store, alert, POSTED).status == "reopened"
    assert reopen(store, alert, POSTED).status == "not_acknowledged"
    acknowledge(store, alert, POSTED, "U0BOB0001", T0)
    store.close()
    restarted = Store(path)
    assert acknowledge(restarted, alert, POSTED, "U0ALICE01", T0).by == "U0BOB0001"
    restarted.close()


@pytest.mark.parametrize("pressed", [MessageRef("C0SECURITY", "1.6"),
                                     MessageRef("C0GENERAL1", "1.5")])
def test_a_press_on_another_message_changes_nothing_and_tells_nothing(store, pressed):
    alert = an_alert(store)
    outcome = acknowledge(store, alert, pressed, "U0MALLORY", T0)
    assert outcome == AckOutcome("elsewhere", alert)
    acknowledge(store, alert, POSTED, "U0ALICE01", T0)
    assert reopen(store, alert, pressed) == AckOutcome("elsewhere", alert)
    assert acknowledge(store, alert, POSTED, "U0BOB0001", T0).by == "U0ALICE01"


def test_an_alert_the_cache_no_longer_holds_is_missing(store):
    assert acknowledge(store, 999, POSTED, "U0ALICE01", T0).status == "missing"
    assert reopen(store, 999, POSTED).status == "missing"


def test_audit_keeps_allowed_and_denied_entries(store):
    audit(store, AuditEntry("U0ALICE01", "C0SECURITY", "command", "recent 5", True, "shown"),
          T0)
    audit(store, AuditEntry("U0MALLORY", "C0GENERAL", "button", "ack 7", False, "denied"), T0)
    rows = store.connection().execute("SELECT user_id, allowed, outcome FROM audit ORDER BY id")
    assert [tuple(r) for r in rows] == [("U0ALICE01", 1, "shown"), ("U0MALLORY", 0, "denied")]
