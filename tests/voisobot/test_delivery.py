"""The outbox and the delivery job against a fake Slack Web API over HTTP: in order,
exactly once across outages and restarts, permanent errors reported once."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import sqs_message
from tests.fakes.slack_api import FakeSlack
from tests.slack_display import blocks_of
from voisobot import cli, config, samples
from voisobot.delivery import AlertDelivery
from voisobot.intake import Intake, to_delivery
from voisobot.outbox import Outbox
from voisobot.runtime import alert_outputs
from voisobot.slack import sender as slack
from voisobot.slack.render import SlackRenderer
from voisobot.store import (
    _INSERT_EVENT,
    Store,
    connect,
    event_row,
    migrate,
    migrations,
    time_text,
    transaction,
)

QUEUE = {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"}
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


CHANNELS = {"C0DEFAULT1", "C0SECURITY", "C0ALERTS01"}


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels=CHANNELS).start()
    yield fake
    fake.stop()


def make_config(routes=(), default_channel="C0DEFAULT1"):
    return config.from_dict({"sqs": QUEUE, "routes": list(routes),
                             "slack": {"default_channel": default_channel}})


def store_events(store: Store, *kinds: str, **params) -> None:
    """Store one event of each kind, as the intake would."""
    intake = Intake(None, make_config().sqs, store)
    messages = []
    for i, kind in enumerate(kinds):
        body = samples.example(kind, now=T0 + timedelta(seconds=i))
        body["params"].update(params)
        messages.append(sqs_message(body))
    intake.store_messages(messages)


def delivery_for(store, fake, cfg=None, **options) -> AlertDelivery:
    sender = slack.SlackSender(slack.make_client("xoxb-test", fake.base_url, timeout=1))
    options = {"retry_base": 0.01, **options}
    outputs = alert_outputs(SlackRenderer(), sender, options.pop("teams", None),
                            slack_pace=options.pop("post_interval", 0.0))
    return AlertDelivery(Outbox(store), outputs, cfg or make_config(), **options)


def posts(fake) -> list[dict]:
    """What chat.postMessage calls Slack accepted, in order (failed calls excluded)."""
    accepted = [(m["ts"], channel, m) for channel in CHANNELS for m in fake.messages(channel)]
    return [{"channel": channel, **m} for _, channel, m in sorted(accepted)]


def alert_rows(store) -> list[dict]:
    return [dict(row) for row in store.connection().execute("SELECT * FROM alerts ORDER BY id")]


def run_until_settled(delivery, runs=20) -> None:
    for _ in range(runs):
        delivery.run()
        if not Outbox(delivery.outbox.store).open_alerts(1):
            return
        delivery.next_post_at.clear()  # the test is not about pacing
        _expire_waits(delivery.outbox.store)
    raise AssertionError(f"alerts still open: {alert_rows(delivery.outbox.store)}")


def _expire_waits(store) -> None:
    store.connection().execute("UPDATE alerts SET next_attempt_at = '0'")


def test_each_event_is_posted_once_in_order_with_its_alert_id(store, fake_slack):
    kinds = ["app_login/unauthorized_ip", "user/user_added", "allowed_ip/ip_added"]
    store_events(store, *kinds)
    delivery = delivery_for(store, fake_slack)
    run_until_settled(delivery)
    run_until_settled(delivery)  # nothing new: nothing posted again
    sent = posts(fake_slack)
    assert [p["channel"] for p in sent] == ["C0DEFAULT1"] * 3
    assert [json.loads(blocks_of(p)[-1]["elements"][0]["value"])["alert"]
            for p in sent] == [row["id"] for row in alert_rows(store)]
    assert "Login attempt from an unauthorized IP" in json.dumps(blocks_of(sent[0]))
    assert all(p["metadata"]["event_payload"]["alert_id"] for p in sent)
    assert "link_names" not in sent[0] and "parse" not in sent[0]
    assert {row["state"] for row in alert_rows(store)} == {"sent"}
    assert all(row["slack_ts"] for row in alert_rows(store))


def test_routes_choose_channels_and_mute_stores_without_alerting(store, fake_slack):
    cfg = make_config([{"event": "unauthorized_ip", "channel": "C0SECURITY", "continue": True},
                       {"event": "unauthorized_ip", "channel": "C0ALERTS01"},
                       {"event": "successful_login", "mute": True}])
    store_events(store, "app_login/unauthorized_ip", "app_login/successful_login")
    run_until_settled(delivery_for(store, fake_slack, cfg))
    assert [p["channel"] for p in posts(fake_slack)] == ["C0SECURITY", "C0ALERTS01"]
    assert store.totals()["events"] == 2  # the muted login is still stored


def test_slack_outage_then_recovery_loses_nothing_and_keeps_order(store, fake_slack):
    store_events(store, "user/user_added", "user/user_deleted", "user/password_changed")
    delivery = delivery_for(store, fake_slack)
    fake_slack.set_down(True)
    for _ in range(3):
        delivery.run()
        _expire_waits(store)
        delivery.next_post_at.clear()
    assert {row["state"] for row in alert_rows(store)} == {"pending"}
    assert all(row["attempts"] >= 1 for row in alert_rows(store)[:1])  # it was tried
    fake_slack.set_down(False)
    run_until_settled(delivery)
    texts = [p["text"] for p in posts(fake_slack)]
    assert len(texts) == 3 and "added" in texts[0] and "deleted" in texts[1]


def test_rate_limit_waits_for_retry_after_and_holds_the_channel(store, fake_slack):
    fake_slack.retry_after = 7
    fake_slack.fail("chat.postMessage", "rate_limited")
    store_events(store, "user/user_added", "user/user_deleted")
    delivery = delivery_for(store, fake_slack, clock=lambda: T0)
    delivery.run()
    first, second = alert_rows(store)
    assert first["state"] == "pending" and first["next_attempt_at"] >= "2026-11-24T12:00:07"
    assert second["attempts"] == 0, "a later alert must not overtake a waiting one"
    delivery.clock = lambda: T0 + timedelta(seconds=8)
    delivery.next_post_at.clear()
    delivery.run()
    assert alert_rows(store)[0]["state"] == "sent"


def test_a_post_that_reached_slack_before_a_timeout_is_not_posted_again(store, fake_slack):
    store_events(store, "app_login/deleted_user")
    fake_slack.hang_seconds = 2
    fake_slack.fail("chat.postMessage", "post_then_hang")
    delivery_for(store, fake_slack).run()
    (row,) = alert_rows(store)
    assert row["state"] == "uncertain"
    restarted = delivery_for(store, fake_slack)  # a new process, as after a crash
    run_until_settled(restarted)
    assert len(posts(fake_slack)) == 1 and alert_rows(store)[0]["state"] == "sent"
    assert fake_slack.calls_to("conversations.history")


def test_a_crash_before_the_post_left_is_posted_once_after_restart(store, fake_slack):
    store_events(store, "app_login/deleted_user")
    crashed = delivery_for(store, fake_slack)
    crashed.enqueue_new_events()
    (alert,) = crashed.outbox.open_alerts(1)
    crashed.outbox.mark_trying(alert.id, T0)  # ... and the process died here
    run_until_settled(delivery_for(store, fake_slack))
    assert len(posts(fake_slack)) == 1 and alert_rows(store)[0]["state"] == "sent"


@pytest.mark.parametrize("second", ["another bot", "a recreated store"])
def test_two_stores_posting_in_one_channel_never_take_each_others_posts(
        tmp_path, fake_slack, second):
    """Issue 9, class 7: alert 1 of one store is posted; alert 1 of another store (another
    bot with its own queue, or this bot's store recreated) meets an ambiguous failure, finds
    the first store's post of "alert 1" in the channel's history, and must not take it for
    its own: it posts its own alert, and its later updates go to its own message."""
    first = Store(tmp_path / "first.sqlite3")
    other = Store(tmp_path / ("other.sqlite3" if second == "another bot" else "re.sqlite3"))
    try:
        store_events(first, "app_login/unauthorized_ip")
        run_until_settled(delivery_for(first, fake_slack))
        (theirs,) = posts(fake_slack)
        store_events(other, "app_login/unauthorized_ip", user="someone.else@x.com")
        fake_slack.hang_seconds = 2
        fake_slack.fail("chat.postMessage", "hang")  # lost before Slack made it
        delivery_for(other, fake_slack).run()
        assert alert_rows(other)[0]["state"] == "uncertain"
        run_until_settled(delivery_for(other, fake_slack))
        mine = [p for p in posts(fake_slack) if p["ts"] != theirs["ts"]]
        assert len(mine) == 1 and alert_rows(other)[0]["slack_ts"] == mine[0]["ts"]
        payloads = [p["metadata"]["event_payload"] for p in (theirs, mine[0])]
        assert payloads[0]["alert_id"] == payloads[1]["alert_id"] == 1
        assert payloads[0]["store_id"] == first.store_id != other.store_id \
            == payloads[1]["store_id"]
        Outbox(other).mark_stale(1)  # an update of the second store's alert...
        delivery_for(other, fake_slack).run()
        (update,) = fake_slack.calls_to("chat.update")
        assert update.payload["ts"] == mine[0]["ts"]  # ...goes to its own message only
    finally:
        first.close()
        other.close()


def test_each_store_is_made_with_an_id_of_its_own(tmp_path):
    ids = set()
    for name in ("a", "b", "c"):
        store = Store(tmp_path / f"{name}.sqlite3")
        ids.add(store.store_id)
        store.close()
        reopened = Store(tmp_path / f"{name}.sqlite3")
        assert reopened.store_id in ids  # kept across restarts
        reopened.close()
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)


def test_an_alert_that_breaks_the_job_fails_alone_and_the_rest_go_out(store, fake_slack,
                                                                     caplog):
    """An alert whose stored event this version no longer parses (kept by an older one)
    is marked failed with its reason; the alerts behind it are delivered."""
    store_events(store, "app_login/deleted_user", "user/user_added")
    delivery = delivery_for(store, fake_slack)
    delivery.enqueue_new_events()
    first = alert_rows(store)[0]
    store.connection().execute("UPDATE events SET raw = ? WHERE id = ?",
                               (b'{"timestamp": "2020-01-01T00:00:00Z", "type": "app_login", '
                                b'"event": "unauthorized_ip", "params": {"user": "x", '
                                b'"access_group": "g", "ip": "fe80::1%eth0"}}',
                                first["event_id"]))
    run_until_settled(delivery)
    states = {row["id"]: (row["state"], row["last_error"]) for row in alert_rows(store)}
    assert states[first["id"]][0] == "failed"
    assert states[first["id"]][1].startswith("internal error: MalformedEvent")
    assert [row["state"] for row in alert_rows(store)][1:] == ["sent"]
    assert len(posts(fake_slack)) == 1 and "cannot be delivered" in caplog.text


@pytest.mark.parametrize("channel, advice", [("C0UNKNOWN1", "check the channel id"),
                                             ("C0ALERTS01", "/invite")])
def test_a_channel_problem_is_permanent_reported_once_and_spares_other_channels(
        store, fake_slack, caplog, channel, advice):
    cfg = make_config([{"event": "user_added", "channel": channel}],
                      default_channel="C0SECURITY")
    fake_slack.set_not_in_channel("C0ALERTS01")
    store_events(store, "user/user_added", user="one@acme.example")
    store_events(store, "user/user_added", user="two@acme.example")
    store_events(store, "user/user_deleted")
    with caplog.at_level(logging.ERROR, logger="voisobot.delivery"):
        run_until_settled(delivery_for(store, fake_slack, cfg))
    states = [(row["channel"], row["state"]) for row in alert_rows(store)]
    assert states == [(channel, "failed"), (channel, "failed"), ("C0SECURITY", "sent")]
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1 and advice in errors[0] and "xoxb" not in errors[0]


def test_failed_alerts_go_out_once_redelivered_after_the_fix(store, fake_slack):
    cfg = make_config([{"event": "user_added", "channel": "C0ALERTS01"}],
                      default_channel="C0SECURITY")
    fake_slack.set_not_in_channel("C0ALERTS01")
    store_events(store, "user/user_added", user="one@acme.example")
    store_events(store, "user/user_deleted")
    job = delivery_for(store, fake_slack, cfg)
    run_until_settled(job)
    assert Outbox(store).redeliver_failed("C0OTHER001") == 0  # another channel's: untouched
    fake_slack.clear()  # the bot was invited
    assert Outbox(store).redeliver_failed("C0ALERTS01") == 1
    run_until_settled(job)
    assert [(row["channel"], row["state"], row["last_error"]) for row in alert_rows(store)] == [
        ("C0ALERTS01", "sent", None), ("C0SECURITY", "sent", None)]
    assert len(fake_slack.messages("C0ALERTS01")) == 1
    assert Outbox(store).redeliver_failed() == 0  # nothing failed is left


def test_redeliver_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n'
                    '[store]\npath = "s.sqlite3"\n', encoding="utf-8")
    store = Store(tmp_path / "s.sqlite3")
    store_events(store, "user/user_added")
    with transaction(store.connection()) as conn:
        conn.execute("INSERT INTO alerts (event_id, channel, severity, state, next_attempt_at, "
                     "created_at, last_error) VALUES (1, 'C0GONE0001', 'high', 'failed', '', "
                     "'', 'channel_not_found')")
    store.close()
    assert cli.main(["--config", str(path), "redeliver", "C0GONE0001"]) == 0
    assert "queued 1 failed alert(s) to C0GONE0001 again" in capsys.readouterr().out


def redeliver_config(tmp_path) -> str:
    path = tmp_path / "config.toml"
    path.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n'
                    '[store]\npath = "s.sqlite3"\n', encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(("failed", "argv", "says"), [
    ([], [], "nothing to requeue: no failed alert in {store}"),
    ([], ["C0TYPO0001"], "nothing to requeue: no failed alert to C0TYPO0001 in {store}"),
    (["C0GONE0001", "C0GONE0001", "teams:secops"], ["C0TYPO0001"],
     "nothing to requeue: no failed alert to C0TYPO0001 in {store}; failed alerts wait for "
     "C0GONE0001 (2), teams:secops (1)"),
])
def test_redeliver_with_nothing_to_requeue_says_so(tmp_path, capsys, failed, argv, says):
    store = Store(tmp_path / "s.sqlite3")
    store_events(store, *["user/user_added"] * len(failed))
    with transaction(store.connection()) as conn:
        for event_id, channel in enumerate(failed, start=1):
            conn.execute("INSERT INTO alerts (event_id, channel, severity, state, "
                         "next_attempt_at, created_at, last_error) VALUES (?, ?, 'high', "
                         "'failed', '', '', 'channel_not_found')", (event_id, channel))
    store.close()
    assert cli.main(["--config", redeliver_config(tmp_path), "redeliver", *argv]) == 0
    assert capsys.readouterr().out.strip() == says.format(store=tmp_path / "s.sqlite3")


def test_redeliver_never_creates_a_store(tmp_path, capsys):
    config_path = redeliver_config(tmp_path)
    assert cli.main(["--config", config_path, "redeliver", "C0GONE0001"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: no store yet at {tmp_path / 's.sqlite3'}: the bot has not run here")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_a_bad_token_pauses_delivery_and_loses_nothing(store, fake_slack, caplog):
    store_events(store, "user/user_added", "user/user_deleted")
    sender = slack.SlackSender(slack.make_client("xoxb-wrong", fake_slack.base_url, timeout=1))
    delivery = AlertDelivery(Outbox(store), alert_outputs(SlackRenderer(), sender, slack_pace=0.0),
                             make_config())
    with caplog.at_level(logging.ERROR, logger="voisobot.delivery"):
        delivery.run()
        delivery.run()
    assert {row["state"] for row in alert_rows(store)} == {"pending"}
    assert delivery.paused_until is not None
    assert sum("SLACK_BOT_TOKEN" in r.getMessage() for r in caplog.records) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1 and posts(fake_slack) == []


def test_one_post_per_channel_per_interval(store, fake_slack):
    store_events(store, "user/user_added", "user/user_deleted", "user/password_changed")
    delivery = delivery_for(store, fake_slack, post_interval=60.0)
    delivery.run()
    delivery.run()
    assert len(posts(fake_slack)) == 1


def test_upgrading_a_store_does_not_alert_its_old_events(tmp_path, fake_slack):
    path = tmp_path / "old.sqlite3"
    conn = connect(str(path))
    migrate(conn, [step for step in migrations() if step[0] == 1])  # written by version 1
    old_event = to_delivery(sqs_message(samples.example("user/user_added", now=T0)))
    conn.execute(_INSERT_EVENT, event_row(old_event, time_text(T0)))
    conn.close()
    upgraded = Store(path)  # applies the outbox migration
    store_events(upgraded, "user/user_deleted")
    run_until_settled(delivery_for(upgraded, fake_slack))
    assert len(posts(fake_slack)) == 1 and "deleted" in posts(fake_slack)[0]["text"]
    upgraded.close()
