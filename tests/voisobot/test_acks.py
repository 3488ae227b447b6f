"""Acknowledgements (one winner in any race, across restarts) and the audit trail."""

import threading

import pytest

from tests.conftest import sqs_message
from tests.voisobot.test_delivery import T0, make_config
from voisobot import samples
from voisobot.acks import Acker, AckOutcome, MessageRef, acknowledge, reopen
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




# --- siblings: the alerts of one first event on other destinations ---------------------------

IN_TEAMS = MessageRef("teamsbot:secops", "act-1")


def siblings_of(store: Store, alert: int) -> dict[str, int]:
    """Alert ``alert``'s siblings: on a bot card and on a webhook card, all posted."""
    with transaction(store.connection()) as conn:
        ids = {channel: conn.execute(
            "INSERT INTO alerts (event_id, channel, severity, state, next_attempt_at, "
            "created_at, slack_ts, event_count, shown_count) "
            "VALUES (1, ?, 'high', 'sent', '', '', ?, 1, 1)", (channel, ts)).lastrowid
            for channel, ts in (("teamsbot:secops", "act-1"), ("teams:hook", None))}
        conn.execute("UPDATE alerts SET shown_count = 1 WHERE id = ?", (alert,))
    return ids


def acks_of(store: Store) -> list[tuple]:
    return [tuple(row) for row in store.connection().execute(
        "SELECT channel, acked_by, acked_via, acked_by_name, shown_count FROM alerts "
        "ORDER BY id")]


def test_acknowledging_one_alert_acknowledges_its_siblings_and_marks_the_editable_stale(store):
    alert = an_alert(store)
    others = siblings_of(store, alert)
    outcome = acknowledge(store, alert, POSTED, Acker("U0ALICE01", "slack", "alice"), T0)
    assert (outcome.status, outcome.siblings) == ("acknowledged", tuple(sorted(others.values())))
    assert acks_of(store) == [("C0SECURITY", "U0ALICE01", "slack", "alice", 1),
                              ("teamsbot:secops", "U0ALICE01", "slack", "alice", 0),
                              ("teams:hook", "U0ALICE01", "slack", "alice", 1)]


def test_a_press_on_a_sibling_learns_who_acknowledged_the_incident(store):
    alert = an_alert(store)
    others = siblings_of(store, alert)
    acknowledge(store, alert, POSTED, "U0ALICE01", T0)
    again = acknowledge(store, others["teamsbot:secops"], IN_TEAMS,
                        Acker("aad-bob", "teams", "Bob"), T0)
    assert (again.status, again.by, again.via) == ("already_acknowledged", "U0ALICE01", "slack")


def test_reopening_any_sibling_reopens_them_all(store):
    alert = an_alert(store)
    others = siblings_of(store, alert)
    acknowledge(store, others["teamsbot:secops"], IN_TEAMS, Acker("aad-bob", "teams", "Bob"),
                T0)
    outcome = reopen(store, alert, POSTED)
    assert outcome.status == "reopened" and len(outcome.siblings) == 2
    assert [row[1:4] for row in acks_of(store)] == [(None, None, None)] * 3


def test_a_siblings_id_pressed_on_another_message_changes_nothing(store):
    alert = an_alert(store)
    others = siblings_of(store, alert)
    assert acknowledge(store, others["teamsbot:secops"], POSTED, "U0MALLORY", T0) == \
        AckOutcome("elsewhere", others["teamsbot:secops"])
    assert acknowledge(store, alert, IN_TEAMS, "U0MALLORY", T0) == AckOutcome("elsewhere", alert)
    assert [row[1] for row in acks_of(store)] == [None, None, None]


def test_another_events_alert_is_not_a_sibling(store):
    alert = an_alert(store)
    Intake(None, make_config().sqs, store).store_messages(
        [sqs_message(samples.example("user/user_added", now=T0))])
    with transaction(store.connection()) as conn:
        other = conn.execute(
            "INSERT INTO alerts (event_id, channel, severity, state, next_attempt_at, "
            "created_at, slack_ts) VALUES (2, 'teamsbot:secops', 'high', 'sent', '', '', "
            "'act-2')").lastrowid
    outcome = acknowledge(store, alert, POSTED, "U0ALICE01", T0)
    assert outcome.siblings == () and acks_of(store)[1][1] is None
    assert acknowledge(store, other, MessageRef("teamsbot:secops", "act-2"), "U0BOB0001",
                       T0).by == "U0BOB0001"


def test_two_stores_do_not_share_incidents(tmp_path):
    first, second = Store(tmp_path / "a.sqlite3"), Store(tmp_path / "b.sqlite3")
    alerts = [an_alert(first), an_alert(second)]
    siblings_of(second, alerts[1])
    acknowledge(first, alerts[0], POSTED, "U0ALICE01", T0)
    assert [row[1] for row in acks_of(second)] == [None, None, None]
    first.close()
    second.close()


def test_a_press_in_slack_and_one_on_a_sibling_at_once_have_one_winner(tmp_path):
    path = tmp_path / "race.sqlite3"
    alert = an_alert(Store(path))
    others = siblings_of(Store(path), alert)
    outcomes, start = [], threading.Barrier(2)

    def click(alert_id: int, where: MessageRef, user: Acker) -> None:
        store = Store(path)
        start.wait()
        outcomes.append(acknowledge(store, alert_id, where, user, T0))
        store.close()

    threads = [threading.Thread(target=click, args=args) for args in (
        (alert, POSTED, Acker("U0ALICE01")),
        (others["teamsbot:secops"], IN_TEAMS, Acker("aad-bob", "teams", "Bob")))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.status for o in outcomes) == ["acknowledged", "already_acknowledged"]
    assert len({(o.by, o.via) for o in outcomes}) == 1
