"""Alerts posted by the Teams bot to the conversations named by ``@Voiso subscribe``,
through the outbox, and the Acknowledge/Reopen invokes of their cards. Real HTTP posts of
Activity JSON to the bot on 127.0.0.1, replies and proactive posts going to the fake Bot
Connector through the stored serviceUrl; the delivery job is run by the test, not the
scheduler."""

import json
import logging
import re

import pytest

from tests.fakes.adaptive_card_schema import validate_card
from tests.voisobot.test_queries import NOW, record
from tests.voisobot.test_teams_bot import (
    ALLOWED,
    CHANNEL,
    STRANGER,
    audit_rows,
    bot_config,
    card_text,
    mention,
    post,
)
from tests.voisobot.test_teams_bot import connector as connector  # a fixture
from voisobot import config, events, runtime, samples
from voisobot.errors import ConfigError
from voisobot.outbox import Outbox
from voisobot.routing import destinations
from voisobot.teams_bot.references import References

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"


@pytest.fixture
def bot(make_config, queue_url):
    """A runtime whose Teams bot listens (its scheduler does not run: tests run delivery),
    alerts going by default to the bot conversation named "secops"."""
    cfg = bot_config(make_config, queue_url, default_conversation="secops")
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
    assert [a["verb"] for a in card["actions"] if a["type"] == "Action.Execute"] == ["voiso_ack"]
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
