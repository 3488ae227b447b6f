"""Remembered request signatures: one winner of two copies, kept across a restart for as
long as a signature can pass the timestamp check, then pruned."""

import threading
from datetime import timedelta

from tests.voisobot.test_delivery import T0
from voisobot.slack.replays import KEPT, UNKNOWN_USER, Replays
from voisobot.slack.requests import SlackRequest
from voisobot.store import Store


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def test_a_signature_is_new_once_then_says_when_it_was_first_seen(store):
    replays = Replays(store, Clock())
    assert replays.first_seen("v0=aa") is None
    assert replays.first_seen("v0=aa") == "2026-11-24T12:00:00.000000Z"
    assert replays.first_seen("v0=bb") is None


def test_of_copies_arriving_at_once_exactly_one_is_new(store):
    replays, results = Replays(store, Clock()), []
    copies = [threading.Thread(target=lambda: results.append(replays.first_seen("v0=cc")))
              for _ in range(8)]
    for copy in copies:
        copy.start()
    for copy in copies:
        copy.join()
    assert results.count(None) == 1 and len(results) == 8


def test_a_restart_remembers_the_signatures(tmp_path):
    first = Store(tmp_path / "s.sqlite3")
    Replays(first, Clock()).first_seen("v0=dd")
    first.close()
    again = Store(tmp_path / "s.sqlite3")
    try:
        assert Replays(again, Clock()).first_seen("v0=dd") is not None
    finally:
        again.close()


def test_a_signature_is_kept_for_twice_the_window_then_pruned(store):
    """Our clock and Slack's may differ by up to the window, so a signature can pass the
    timestamp check for twice the window after it first came."""
    clock = Clock()
    replays = Replays(store, clock)
    replays.first_seen("v0=ee")
    clock.now = T0 + KEPT
    assert replays.first_seen("v0=ee") is not None  # still refused at the edge
    clock.now = T0 + KEPT + timedelta(microseconds=1)
    replays.first_seen("v0=other")  # any request prunes
    rows = store.connection().execute("SELECT signature FROM slack_requests").fetchall()
    assert [row[0] for row in rows] == ["v0=other"]


def test_a_replay_is_audited_as_refused_with_who_and_what(store):
    replays = Replays(store, Clock())
    request = SlackRequest("command", {"command": "/voiso", "text": "recent 5",
                                       "user_id": "U0ALICE01", "channel_id": "C0SECURITY"})
    replays.record(request, "2026-11-24T11:59:00.000000Z")
    row = store.audit.connection().execute("SELECT * FROM audit").fetchone()
    assert (row["user_id"], row["channel_id"], row["action"], row["detail"], row["allowed"]) \
        == ("U0ALICE01", "C0SECURITY", "replay", "/voiso recent 5", 0)
    assert row["outcome"] == ("ignored: a repeat of a request first received at "
                              "2026-11-24T11:59:00.000000Z")


def test_a_replay_naming_nobody_is_audited_as_unknown(store):
    Replays(store, Clock()).record(SlackRequest("event", {"type": "url_verification"}), "x")
    row = store.audit.connection().execute("SELECT user_id, detail FROM audit").fetchone()
    assert tuple(row) == (UNKNOWN_USER, "url_verification")
