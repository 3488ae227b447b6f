"""Alerts posted by the Teams bot to the conversations named by ``@Voiso subscribe``,
through the outbox, and the Acknowledge/Reopen invokes of their cards. Real HTTP posts of
Activity JSON to the bot on 127.0.0.1, replies and proactive posts going to the fake Bot
Connector through the stored serviceUrl; the delivery job is run by the test, not the
scheduler."""

import dataclasses
import json
import logging
import re
import threading

import pytest

from handlers.teams import PROFILE_NOT_POSTED, PROFILE_POSTED
from tests.fakes.adaptive_card_schema import validate_card
from tests.voisobot.teams.test_bot import (
    ALLOWED,
    CHANNEL,
    STRANGER,
    answer_of,
    audit_rows,
    bot_config,
    card_invoke,
    card_text,
    mention,
    post,
)
from tests.voisobot.teams.test_bot import connector as connector  # a fixture
from tests.voisobot.test_queries import NOW, record
from voisobot import config, events, runtime, samples
from voisobot.errors import ConfigError
from voisobot.outbox import Outbox
from voisobot.routing import destinations
from voisobot.teams.references import References

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"
COLLEAGUE = "00000000-0000-0000-0000-0000000c011e"
NAMES = {ALLOWED: "Jane", COLLEAGUE: "Colin"}  # the name Teams gives each in "from"


@pytest.fixture
def bot(make_config, queue_url):
    """A runtime whose Teams bot listens (its scheduler does not run: tests run delivery),
    alerts going by default to the bot conversation named "secops"."""
    cfg = bot_config(make_config, queue_url, default_conversation="secops",
                     access={"teams_users": (ALLOWED, COLLEAGUE)})
    bot_runtime = runtime.build(cfg, secrets={})
    bot_runtime.teams_bot.retry_waits = (0.0, 0.0)
    bot_runtime.delivery.retry_base = 0.01
    bot_runtime.teams_bot.start()
    yield bot_runtime
    bot_runtime.stop()


def subscribe(bot, connector, name: str = "secops", user: str = ALLOWED) -> dict:
    """``@Voiso subscribe <name>`` typed in the channel; the card answering it."""
    before = len(connector.sent())
    assert post(bot, mention(connector, f"subscribe {name}", user=user)) == 200
    (answer,) = connector.sent()[before:]
    return answer["attachments"][0]["content"]


def alerts(store) -> list[dict]:
    return [dict(row) for row in store.connection().execute("SELECT * FROM alerts ORDER BY id")]


def deliver(bot, runs: int = 10) -> None:
    """Run the delivery job until no alert is open (waits expired, pacing ignored)."""
    delivery = bot.delivery
    for _ in range(runs):
        delivery.run()
        if not Outbox(bot.store).open_alerts(1):
            return
        delivery.next_post_at.clear()
        bot.store.connection().execute("UPDATE alerts SET next_attempt_at = '0'")
    raise AssertionError(f"alerts still open: {alerts(bot.store)}")


def alert_cards(connector) -> list[dict]:
    """The card of each proactive post to the channel (not a reply to an activity)."""
    return [call.body["attachments"][0]["content"]
            for call in connector.calls
            if call.method == "POST" and call.status == 201 and not call.activity_id
            and call.conversation_id == CHANNEL]


# --- subscribe ---------------------------------------------------------------------------------

def test_subscribe_names_the_channel_and_is_audited(bot, connector):
    answer = subscribe(bot, connector)
    assert "Subscribed" in card_text(answer)
    ref = References(bot.store).named("secops")
    assert (ref.conversation_id, ref.service_url) == (CHANNEL, connector.base_url)
    (row,) = audit_rows(bot.store)
    assert (row["user_id"], row["detail"], row["allowed"], row["outcome"]) == (
        ALLOWED, "subscribe secops", 1, "subscribed secops")


def test_a_stranger_cannot_subscribe_and_is_audited(bot, connector):
    answer = subscribe(bot, connector, user=STRANGER)
    assert "not allowed" in card_text(answer).lower()
    assert References(bot.store).named("secops") is None
    (row,) = audit_rows(bot.store)
    assert (row["user_id"], row["allowed"], row["outcome"]) == (STRANGER, 0, "denied")


@pytest.mark.parametrize("typed", ["subscribe", "subscribe Sec Ops", "subscribe a b",
                                   "subscribe <at>x</at>", "subscribe " + "x" * 41])
def test_a_bad_name_gets_the_usage_and_names_nothing(bot, connector, typed):
    answer = subscribe(bot, connector, name=typed.removeprefix("subscribe").strip())
    assert "Usage: @Voiso subscribe" in card_text(answer).replace("\\", "")
    assert References(bot.store).all() == []


# --- alerts ------------------------------------------------------------------------------------

def test_an_alert_is_posted_once_and_its_activity_id_kept(bot, connector):
    subscribe(bot, connector)
    record(bot.store, "app_login/unauthorized_ip", NOW, user="jane@example.com")
    deliver(bot)
    (card,) = alert_cards(connector)
    validate_card(card)
    assert "jane@example.com" in card_text(card).replace("\\", "")
    assert [a["verb"] for a in card["actions"] if a["type"] == "Action.Execute"] == [
        "voiso_ack", "voiso_profile"]
    (alert,) = alerts(bot.store)
    posted = [c for c in connector.calls if c.status == 201 and not c.activity_id
              and c.conversation_id == CHANNEL]
    assert (alert["channel"], alert["state"]) == ("teamsbot:secops", "sent")
    assert alert["slack_ts"] and alert["slack_ts"] in connector._ids
    assert len(posted) == 1


@pytest.mark.parametrize("fault", ["rate_limited", "server_error"])
def test_a_refused_post_is_posted_once_the_connector_takes_it(bot, connector, fault):
    subscribe(bot, connector)
    record(bot.store, "app_login/unauthorized_ip", NOW)
    connector.fail(fault)
    deliver(bot)
    assert len(alert_cards(connector)) == 1
    (alert,) = alerts(bot.store)
    assert alert["state"] == "sent" and alert["attempts"] >= 1


def test_an_unknown_name_holds_the_alert_and_says_what_to_do_once(bot, connector, caplog):
    record(bot.store, "app_login/unauthorized_ip", NOW)
    with caplog.at_level(logging.ERROR, logger="voisobot.delivery"):
        for _ in range(3):
            bot.delivery.run()
            bot.store.connection().execute("UPDATE alerts SET next_attempt_at = '0'")
    (alert,) = alerts(bot.store)
    assert alert["state"] == "pending" and alert["slack_ts"] is None
    assert alert_cards(connector) == []
    assert caplog.text.count('type "@Voiso subscribe secops" there') == 1
    subscribe(bot, connector)  # then it goes out
    deliver(bot)
    assert len(alert_cards(connector)) == 1


def an_event(kind: str) -> events.Event:
    return events.parse(json.dumps(samples.example(kind, now=NOW)).encode())


def test_a_route_names_bot_conversations_and_the_default_takes_the_rest():
    cfg = config.from_dict({"sqs": {"queue_url": QUEUE}, "teams": {"bot": {
        "enabled": True, "default_conversation": "all"}},
        "routes": [{"type": ["allowed_ip"], "teams_bot": ["secops", "audit"]}]})
    assert [d.channel for d in destinations(an_event("allowed_ip/ip_added"), "high", cfg)] == [
        "teamsbot:secops", "teamsbot:audit"]
    assert [d.channel for d in destinations(an_event("user/user_added"), "medium", cfg)] == [
        "teamsbot:all"]


@pytest.mark.parametrize("table, message", [
    ({"routes": [{"teams_bot": ["secops"]}]}, "routes[0].teams_bot: the Teams bot is off"),
    ({"teams": {"bot": {"default_conversation": "secops"}}},
     "teams.bot.default_conversation: the Teams bot is off"),
    ({"teams": {"bot": {"enabled": True}}, "routes": [{"teams_bot": ["Sec Ops"]}]},
     "teams_bot"),
    ({"teams": {"bot": {"enabled": True, "default_conversation": "#x"}}},
     "default_conversation"),
])
def test_bot_conversation_config_errors_name_the_key(table, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.from_dict({"sqs": {"queue_url": QUEUE}, **table})



def test_a_card_whose_answer_was_lost_is_posted_again_and_only_the_kept_card_acts(
        make_config, queue_url, connector):
    """The Bot Connector cannot be searched: a post that timed out may have arrived, so it is
    posted again (at least once). The alert keeps the second card's id; the lost copy's
    Acknowledge changes nothing and says to use the latest card."""
    cfg = bot_config(make_config, queue_url, default_conversation="secops",
                     access={"teams_users": (ALLOWED,)})
    cfg = dataclasses.replace(cfg, teams=dataclasses.replace(cfg.teams, timeout_seconds=1.0))
    bot = runtime.build(cfg, secrets={})
    bot.teams_bot.retry_waits, bot.delivery.retry_base = (0.0,), 0.01
    bot.teams_bot.start()
    try:
        subscribe(bot, connector)
        record(bot.store, "app_login/unauthorized_ip", NOW, user="jane@example.com")
        connector.fail("post_then_hang")
        bot.delivery.run()
        assert alerts(bot.store)[0]["state"] == "uncertain"
        connector.release()
        deliver(bot)
        (alert,) = alerts(bot.store)
        posts = [c for c in connector.calls if c.method == "POST" and not c.activity_id
                 and c.conversation_id == CHANNEL]
        assert len(posts) == 2 and alert["slack_ts"] == posts[1].new_id
        lost = invoke(bot, connector, "voiso_ack", alert["id"], posts[0].new_id)
        assert "latest card" in lost["value"] and ack_state(bot, alert["id"])[0] is None
        kept = invoke(bot, connector, "voiso_ack", alert["id"], posts[1].new_id)
        assert kept["type"] == "application/vnd.microsoft.card.adaptive"
        assert ack_state(bot, alert["id"])[0] == ALLOWED
    finally:
        bot.stop()


# --- Acknowledge / Reopen ----------------------------------------------------------------------

def invoke(bot, connector, verb: str, alert_id, card_id: str | None,
           user: str = ALLOWED, name: str | None = None) -> dict:
    """A press of an alert card's Action.Execute button, as Teams sends its invoke (the
    presser named ``name``, else as NAMES has them); the invoke's answer (HTTP 200 whatever
    it says)."""
    pressed = card_invoke(connector, verb, {"alert": alert_id}, reply_to=card_id, user=user)
    pressed["from"]["name"] = name if name is not None else NAMES.get(user, "Stranger")
    return answer_of(bot, pressed)


def posted_alerts(bot, connector, *kinds: str) -> list[dict]:
    """Subscribe the channel, store one event per kind and deliver: their alert rows."""
    subscribe(bot, connector)
    for i, kind in enumerate(kinds):
        record(bot.store, kind, NOW, user=f"user{i}@example.com")
    deliver(bot)
    return alerts(bot.store)


def ack_state(bot, alert_id: int) -> tuple:
    row = bot.store.connection().execute("SELECT acked_by, acked_at FROM alerts WHERE id = ?",
                                         (alert_id,)).fetchone()
    return tuple(row)


def button_audit(bot) -> list[tuple]:
    return [(r["user_id"], r["detail"], r["allowed"], r["outcome"]) for r in audit_rows(bot.store)
            if r["action"] == "button"]


def test_acknowledge_answers_the_card_as_it_now_stands_and_reopen_undoes_it(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    answer = invoke(bot, connector, "voiso_ack", alert["id"], alert["slack_ts"])
    assert (answer["statusCode"], answer["type"]) == (200, "application/vnd.microsoft.card."
                                                            "adaptive")
    card = answer["value"]
    validate_card(card)
    assert "Acknowledged by Jane at" in card_text(card).replace("\\", "")
    assert [a["verb"] for a in card["actions"] if a["type"] == "Action.Execute"] == [
        "voiso_reopen", "voiso_profile"]
    assert ack_state(bot, alert["id"])[0] == ALLOWED
    reopened = invoke(bot, connector, "voiso_reopen", alert["id"], alert["slack_ts"])["value"]
    assert "Acknowledged by" not in card_text(reopened)
    assert [a["verb"] for a in reopened["actions"] if a["type"] == "Action.Execute"] == [
        "voiso_ack", "voiso_profile"]
    assert ack_state(bot, alert["id"]) == (None, None)
    assert [(user, outcome) for user, _, _, outcome in button_audit(bot)] == [
        (ALLOWED, f"acknowledged (by {ALLOWED})"), (ALLOWED, "reopened")]


def presses_counted(bot) -> dict[tuple[str, str], float]:
    """voiso_button_presses_total as the bot's /metrics would show it, by (button, outcome)."""
    return {(s.labels["button"], s.labels["outcome"]): s.value
            for metric in bot.metrics.registry.collect() for s in metric.samples
            if s.name == "voiso_button_presses_total" and s.value}


def test_each_press_is_counted_in_the_metrics_as_a_slack_press_is(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    invoke(bot, connector, "voiso_ack", alert["id"], alert["slack_ts"])
    invoke(bot, connector, "voiso_ack", alert["id"], alert["slack_ts"], user=COLLEAGUE)
    invoke(bot, connector, "voiso_reopen", alert["id"], alert["slack_ts"])
    invoke(bot, connector, "voiso_ack", alert["id"], alert["slack_ts"], user=STRANGER)
    invoke(bot, connector, "voiso_ack", alert["id"], "another-card")
    invoke(bot, connector, "voiso_dance", alert["id"], alert["slack_ts"])
    assert presses_counted(bot) == {
        ("acknowledge", "acknowledged"): 1, ("acknowledge", "already_acknowledged"): 1,
        ("reopen", "reopened"): 1, ("acknowledge", "denied"): 1,
        ("acknowledge", "refused"): 1, ("unknown", "ignored"): 1}


def test_a_strangers_press_is_refused_leaves_the_card_and_is_audited(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    answer = invoke(bot, connector, "voiso_ack", alert["id"], alert["slack_ts"], user=STRANGER)
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    assert "not allowed" in answer["value"]
    assert ack_state(bot, alert["id"]) == (None, None)
    assert button_audit(bot) == [
        (STRANGER, f'voiso_ack {{"alert": {alert["id"]}}}', 0, "denied")]


# --- Profile ------------------------------------------------------------------------------------

MESSAGE = "application/vnd.microsoft.activity.message"


def press_profile(bot, connector, data, card_id: str, user: str = ALLOWED) -> tuple[dict, list]:
    """Profile pressed on an alert card: the invoke's answer, and the calls it made."""
    before = len(connector.calls)
    answer = answer_of(bot, card_invoke(connector, "voiso_profile", data, reply_to=card_id,
                                        user=user))
    return answer, connector.calls[before:]


def test_profile_posts_the_alerts_account_in_its_thread_and_leaves_the_card(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    answer, calls = press_profile(bot, connector, {"alert": alert["id"]}, alert["slack_ts"])
    assert (answer["type"], answer["value"]) == (MESSAGE, PROFILE_POSTED)  # the card stays
    (posted,) = calls
    assert (posted.method, posted.status) == ("POST", 201)
    assert posted.conversation_id == f"{CHANNEL};messageid=1764000000001"  # the thread
    (attachment,) = posted.body["attachments"]
    validate_card(attachment["content"])
    assert card_text(attachment["content"]).startswith("user0@example.com\nFirst seen ")
    assert ack_state(bot, alert["id"]) == (None, None)
    assert button_audit(bot) == [
        (ALLOWED, f'voiso_profile {{"alert": {alert["id"]}}}', 1, "answered user")]


def test_profile_reads_the_account_from_the_stored_alert_never_the_data(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    forged, calls = press_profile(bot, connector, {"user": "ceo@acme.example"},
                                  alert["slack_ts"])
    assert forged["type"] == MESSAGE and "not one of ours" in forged["value"] and calls == []
    _, calls = press_profile(bot, connector, {"alert": alert["id"], "user": "ceo@acme.example"},
                             alert["slack_ts"])
    (posted,) = calls
    text = card_text(posted.body["attachments"][0]["content"])
    assert "user0@example.com" in text and "ceo@acme.example" not in text
    assert [outcome for *_, outcome in button_audit(bot)] == [
        "usage: that button is not one of ours", "answered user"]


def test_a_strangers_profile_press_is_refused_privately_and_posts_nothing(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    answer, calls = press_profile(bot, connector, {"alert": alert["id"]}, alert["slack_ts"],
                                  user=STRANGER)
    assert answer["type"] == MESSAGE and "not allowed" in answer["value"]
    assert calls == [] and "user0@example.com" not in answer["value"]
    assert button_audit(bot) == [
        (STRANGER, f'voiso_profile {{"alert": {alert["id"]}}}', 0, "denied")]


def test_a_profile_the_connector_refuses_for_a_while_is_posted_once(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    connector.fail("rate_limited")
    answer, calls = press_profile(bot, connector, {"alert": alert["id"]}, alert["slack_ts"])
    assert answer["value"] == PROFILE_POSTED
    assert [call.status for call in calls] == [429, 201]


def test_a_profile_teams_never_takes_is_not_said_to_be_posted(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    connector.fail("server_error", times=3)  # the try and both retries
    answer, calls = press_profile(bot, connector, {"alert": alert["id"]}, alert["slack_ts"])
    assert answer["value"] == PROFILE_NOT_POSTED
    assert [call.status for call in calls] == [500, 500, 500]


def test_two_presses_racing_give_one_acknowledgement(bot, connector):
    (alert,) = posted_alerts(bot, connector, "app_login/unauthorized_ip")
    answers: dict[str, dict] = {}
    start = threading.Barrier(2)

    def press(user: str) -> None:
        start.wait()
        answers[user] = invoke(bot, connector, "voiso_ack", alert["id"], alert["slack_ts"],
                               user=user)

    threads = [threading.Thread(target=press, args=(u,)) for u in (ALLOWED, COLLEAGUE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (winner,) = [u for u in (ALLOWED, COLLEAGUE) if ack_state(bot, alert["id"])[0] == u]
    outcomes = sorted(outcome for _, _, _, outcome in button_audit(bot))
    assert outcomes == [f"acknowledged (by {winner})", f"already acknowledged (by {winner})"]
    for answer in answers.values():  # both see the one who holds it
        assert f"Acknowledged by {NAMES[winner]} at" in card_text(answer["value"]).replace(
            "\\", "")


@pytest.mark.parametrize("case", ["other_alert", "no_message", "unknown_message", "bad_data"])
def test_a_press_that_does_not_name_its_own_message_changes_nothing(bot, connector, case):
    first, second = posted_alerts(bot, connector, "app_login/unauthorized_ip",
                                  "user/user_added")
    alert_id, card_id = {"other_alert": (second["id"], first["slack_ts"]),
                         "no_message": (first["id"], None),
                         "unknown_message": (first["id"], "f" * 32),
                         "bad_data": ("1; DROP TABLE alerts", first["slack_ts"])}[case]
    answer = invoke(bot, connector, "voiso_ack", alert_id, card_id)
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    assert ack_state(bot, first["id"]) == ack_state(bot, second["id"]) == (None, None)
    ((user, _, allowed, outcome),) = button_audit(bot)
    assert user == ALLOWED and outcome.startswith("refused" if case != "bad_data" else "ignored")
    assert allowed == (0 if case != "bad_data" else 1)


# --- the digest ----------------------------------------------------------------------------

def test_a_bot_conversation_gets_the_digest_as_one_card(bot, connector):
    """[digest] channel = "teamsbot:secops": the period's digest is posted once by the bot,
    as a valid card, however often the job runs."""
    from datetime import UTC, datetime

    from voisobot.digest import DigestJob, Digests

    digest = config.from_dict({"sqs": {"queue_url": QUEUE}, "teams": {"bot": {"enabled": True}},
                               "digest": {"channel": "teamsbot:secops"}}).digest
    job = DigestJob(Digests(bot.store), bot.delivery.outputs, digest,
                    clock=lambda: datetime(2026, 11, 24, 8, 1, tzinfo=UTC))
    job.run()  # nobody subscribed "secops" yet: the digest waits
    assert alert_cards(connector) == []
    subscribe(bot, connector)
    bot.store.connection().execute("UPDATE digests SET next_attempt_at = '0'")
    job.run()
    job.run()
    (card,) = alert_cards(connector)
    validate_card(card)
    assert "Voiso daily security digest" in json.dumps(card)
