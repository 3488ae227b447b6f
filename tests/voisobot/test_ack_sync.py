"""One event's alert in Slack and on a Teams bot card is one incident: acknowledged (or
reopened) on either side, both show it. The whole bot, built as `bot.py run` builds it:
Slack presses are signed HTTP requests to its front door, with the fake Slack Web API
behind; Teams presses are invokes posted to the bot's endpoint, its cards going to the fake
Bot Connector. The delivery job is run by the test, not the scheduler."""

import json
import threading
import unicodedata
from dataclasses import replace
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.adaptive_card_schema import validate_card
from tests.fakes.slack_api import RESPONSE_URL, FakeSlack
from tests.slack_display import assert_shown_literally, blocks_of, readable
from tests.slack_display import shown as display
from tests.test_slack_app import ALERTS, SECRET, Bot, block_actions, wait_for
from tests.voisobot.teams.test_bot import ALLOWED as TEAMS_ANALYST
from tests.voisobot.teams.test_bot import card_text
from tests.voisobot.teams.test_bot import connector as connector  # a fixture
from tests.voisobot.teams.test_bot_alerts import (
    COLLEAGUE,
    NAMES,
    alerts,
    deliver,
    invoke,
    subscribe,
)
from tests.voisobot.teams.test_bot_card import without_executes
from tests.voisobot.teams.test_cards import assert_safe, example
from tests.voisobot.test_queries import NOW, record
from voisobot import config, runtime
from voisobot.access import AccessPolicy
from voisobot.acks import AckOutcome
from voisobot.alert_extras import AlertOptions
from voisobot.commands import Commands
from voisobot.config import AccessConfig
from voisobot.delivery import alert_view
from voisobot.outbox import Outbox
from voisobot.render import BLANK_CHARACTERS, SHOWN_CATEGORIES, AlertView, one_line
from voisobot.slack import sender as slack
from voisobot.slack.buttons import acknowledger
from voisobot.slack.render import SlackRenderer
from voisobot.teams.cards import TeamsRenderer, envelope

SLACK_ANALYST, SLACK_NAME = "UALICE0001", "alice"
BOT_CHANNEL = "teamsbot:secops"


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels={ALERTS}).start()
    yield fake
    fake.stop()


@pytest.fixture
def both(tmp_path, moto_server, queue_url, fake_slack, connector):
    """The bot serving Slack (HTTP mode) and Teams: every event goes to #alerts and to the
    bot conversation "secops" (subscribed here)."""
    cfg = config.from_dict({
        "sqs": {"queue_url": queue_url, "endpoint_url": moto_server["url"]},
        "store": {"path": "store.sqlite3"}, "ops": {"port": 0},
        "http": {"host": "127.0.0.1", "port": 0},
        "slack": {"api_base_url": fake_slack.base_url, "default_channel": ALERTS,
                  "timeout_seconds": 2, "mode": "http", "updates_per_minute": 60,
                  "group_window_minutes": 0},
        "teams": {"bot": {"enabled": True, "port": 0, "allow_unauthenticated": True,
                          "default_conversation": "secops"}},
        "access": {"users": [SLACK_ANALYST], "teams_users": [TEAMS_ANALYST, COLLEAGUE]},
    }, base_dir=tmp_path)
    client = slack.make_client("xoxb-test", fake_slack.base_url, 2)
    bot = runtime.build(cfg, slack.SlackSender(client), client,
                        secrets={"SLACK_SIGNING_SECRET": SECRET})
    bot.teams_bot.retry_waits = (0.0, 0.0)
    bot.delivery.retry_base = 0.01
    bot.teams_bot.start()
    bot.slack_server.start()
    subscribe(bot, connector)
    yield bot
    bot.stop()


def posted_pair(bot, user: str = "jane@example.com") -> tuple[dict, dict]:
    """One new event, delivered: its (Slack alert, bot card alert) rows."""
    before = {a["id"] for a in alerts(bot.store)}
    record(bot.store, "app_login/unauthorized_ip", NOW, user=user)
    deliver(bot)
    new = [a for a in alerts(bot.store) if a["id"] not in before]
    (in_slack,) = [a for a in new if a["channel"] == ALERTS]
    (in_teams,) = [a for a in new if a["channel"] == BOT_CHANNEL]
    assert in_slack["state"] == in_teams["state"] == "sent"
    return in_slack, in_teams


def slack_press(bot, fake, action: str, alert: dict, name: str = SLACK_NAME,
                response: str = "b1") -> int:
    """A signed block_actions request for the button on the alert's Slack message."""
    payload = block_actions(SLACK_ANALYST, action, json.dumps({"alert": alert["id"]}),
                            fake.response_url(response), message_ts=alert["slack_ts"])
    payload["user"]["name"] = name
    status, _ = Bot(bot, fake).post(urlencode({"payload": json.dumps(payload)}).encode())
    return status


def slack_updates(fake, alert: dict) -> list:
    return [c for c in fake.calls_to("chat.update") if c.payload["ts"] == alert["slack_ts"]]


def card_puts(connector, alert: dict) -> list[dict]:
    """The cards the bot put in place of the alert's card, oldest first."""
    return [c.body["attachments"][0]["content"] for c in connector.calls
            if c.method == "PUT" and c.status == 200 and c.activity_id == alert["slack_ts"]]


def run_delivery_once(bot) -> None:
    bot.delivery.next_post_at.clear()
    bot.delivery.recent_updates.clear()
    bot.delivery.run()


def slack_message(fake, alert: dict) -> dict:
    (message,) = [m for m in fake.messages(ALERTS) if m["ts"] == alert["slack_ts"]]
    return message


def button_rows(bot, alert_ids) -> list[dict]:
    marks = ",".join("?" * len(alert_ids))
    return [dict(r) for r in bot.store.audit.connection().execute(
        "SELECT user_id, outcome, platform, detail FROM audit WHERE action = 'button' AND "
        f"({' OR '.join(['detail LIKE ?'] * len(alert_ids))}) ORDER BY id",
        [f'%"alert": {i}}}%' for i in alert_ids])] if marks else []


def ack_row(bot, alert: dict) -> tuple:
    return tuple(bot.store.connection().execute(
        "SELECT acked_by, acked_via, acked_by_name FROM alerts WHERE id = ?",
        (alert["id"],)).fetchone())


# --- the race ------------------------------------------------------------------------------

def press_both_at_once(bot, fake, connector, in_slack: dict, in_teams: dict,
                       response: str) -> dict:
    """Acknowledge pressed on the Slack message and on the bot card at the same moment:
    {"slack": HTTP status, "teams": the invoke's answer}."""
    start, answers = threading.Barrier(2), {}

    def in_slack_press():
        start.wait()
        answers["slack"] = slack_press(bot, fake, "voiso_ack", in_slack, response=response)

    def in_teams_press():
        start.wait()
        answers["teams"] = invoke(bot, connector, "voiso_ack", in_teams["id"],
                                  in_teams["slack_ts"])

    threads = [threading.Thread(target=in_slack_press), threading.Thread(target=in_teams_press)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def one_race(bot, fake, connector, round_: int) -> str:
    """One event, both presses at once, one delivery run; the winner's platform."""
    in_slack, in_teams = posted_pair(bot, f"user{round_}@example.com")
    answers = press_both_at_once(bot, fake, connector, in_slack, in_teams, f"r{round_}")
    rows = wait_for(lambda: button_rows(bot, (in_slack["id"], in_teams["id"])), 2)
    wait_for(lambda: slack_updates(fake, in_slack))  # the Slack press's own update
    (by, via, name), other = ack_row(bot, in_slack), ack_row(bot, in_teams)
    assert (by, via, name) == other, "siblings hold one acknowledgement"
    assert (by, name) == {"slack": (SLACK_ANALYST, SLACK_NAME),
                          "teams": (TEAMS_ANALYST, NAMES[TEAMS_ANALYST])}[via]
    loser = "teams" if via == "slack" else "slack"
    assert sorted((r["platform"], r["outcome"]) for r in rows) == sorted([
        (via, f"acknowledged (by {by})"), (loser, f"already acknowledged (by {by})")])
    in_slack_text = f"Acknowledged by <@{SLACK_ANALYST}>" if via == "slack" \
        else f"Acknowledged by {NAMES[TEAMS_ANALYST]} (Teams)"
    in_teams_text = f"Acknowledged by {SLACK_NAME} (Slack)" if via == "slack" \
        else f"Acknowledged by {NAMES[TEAMS_ANALYST]} at"
    if loser == "slack":  # told privately who holds it
        (note,) = wait_for(lambda: [c.payload for c in fake.calls_to(RESPONSE_URL)
                                    if c.path == f"/response/r{round_}"])
        assert f"Already acknowledged by {NAMES[TEAMS_ANALYST]} (Teams)" in note["text"]
    else:  # the loser's card is replaced by the card as it stands: the winner on it
        assert in_teams_text in card_text(answers["teams"]["value"]).replace("\\", "")
    run_delivery_once(bot)
    assert in_slack_text in readable(slack_updates(fake, in_slack)[-1].payload)
    if via == "slack":
        card = card_puts(connector, in_teams)[-1]
        validate_card(card)
        assert in_teams_text in card_text(card).replace("\\", "")
    return via


def test_a_press_in_slack_and_one_in_teams_at_once_have_one_winner_shown_on_both(
        both, fake_slack, connector):
    winners = [one_race(both, fake_slack, connector, round_) for round_ in range(20)]
    assert set(winners) <= {"slack", "teams"}


# --- each side shows the other's acknowledgement --------------------------------------------

def test_an_ack_in_slack_updates_the_bot_card_naming_the_slack_user(both, fake_slack,
                                                                     connector):
    in_slack, in_teams = posted_pair(both)
    assert slack_press(both, fake_slack, "voiso_ack", in_slack) == 200
    wait_for(lambda: slack_updates(fake_slack, in_slack))
    assert f"Acknowledged by <@{SLACK_ANALYST}>" in readable(slack_message(fake_slack,
                                                                            in_slack))
    assert card_puts(connector, in_teams) == []
    run_delivery_once(both)
    (card,) = card_puts(connector, in_teams)
    validate_card(card)
    assert f"Acknowledged by {SLACK_NAME} (Slack) at" in card_text(card).replace("\\", "")
    assert [a["verb"] for a in card["actions"] if a["type"] == "Action.Execute"] == [
        "voiso_reopen", "voiso_profile"]
    run_delivery_once(both)
    assert len(card_puts(connector, in_teams)) == 1  # shown once: no longer stale


def test_an_ack_in_teams_updates_the_slack_message_naming_the_teams_user(both, fake_slack,
                                                                         connector):
    in_slack, in_teams = posted_pair(both)
    answer = invoke(both, connector, "voiso_ack", in_teams["id"], in_teams["slack_ts"])
    assert "Acknowledged by Jane at" in card_text(answer["value"]).replace("\\", "")
    assert slack_updates(fake_slack, in_slack) == []
    run_delivery_once(both)
    shown = readable(slack_message(fake_slack, in_slack))
    assert "Acknowledged by Jane (Teams) at" in shown and "<@" not in shown
    assert [e["action_id"] for b in blocks_of(slack_message(fake_slack, in_slack))
            if b["type"] == "actions" for e in b["elements"]] == ["voiso_reopen", "voiso_profile"]
    assert card_puts(connector, in_teams) == []  # the pressed card was answered in place


@pytest.mark.parametrize("reopened_in", ["slack", "teams"])
def test_a_reopen_on_either_side_clears_both(both, fake_slack, connector, reopened_in):
    in_slack, in_teams = posted_pair(both)
    slack_press(both, fake_slack, "voiso_ack", in_slack)
    wait_for(lambda: slack_updates(fake_slack, in_slack))
    run_delivery_once(both)
    if reopened_in == "slack":
        slack_press(both, fake_slack, "voiso_reopen", in_slack)
        wait_for(lambda: slack_updates(fake_slack, in_slack), 2)
    else:
        invoke(both, connector, "voiso_reopen", in_teams["id"], in_teams["slack_ts"])
    assert ack_row(both, in_slack) == ack_row(both, in_teams) == (None, None, None)
    run_delivery_once(both)
    message = slack_message(fake_slack, in_slack)
    assert "Acknowledged by" not in readable(message)
    assert [e["action_id"] for b in blocks_of(message) if b["type"] == "actions"
            for e in b["elements"]] == ["voiso_ack", "voiso_profile"]
    if reopened_in == "slack":
        card = card_puts(connector, in_teams)[-1]
        assert "Acknowledged by" not in card_text(card)
        assert [a["verb"] for a in card["actions"] if a["type"] == "Action.Execute"] == [
            "voiso_ack", "voiso_profile"]


def test_every_press_and_command_is_audited_with_its_platform(both, fake_slack, connector):
    in_slack, in_teams = posted_pair(both)
    invoke(both, connector, "voiso_ack", in_teams["id"], in_teams["slack_ts"])
    slack_press(both, fake_slack, "voiso_reopen", in_slack)
    rows = wait_for(lambda: button_rows(both, (in_slack["id"], in_teams["id"])), 2)
    assert [(r["platform"], r["outcome"]) for r in rows] == [
        ("teams", f"acknowledged (by {TEAMS_ANALYST})"), ("slack", "reopened")]
    (subscribed,) = both.store.audit.connection().execute(
        "SELECT platform FROM audit WHERE action = 'command'").fetchall()
    assert subscribed["platform"] == "teams"
    commands = Commands(both.store, SlackRenderer(), AccessPolicy(
        AccessConfig(users=(SLACK_ANALYST,)), lambda group: set()), lambda: NOW)
    listed = readable(commands.command(SLACK_ANALYST, ALERTS, "audit").message)
    assert f"{TEAMS_ANALYST} (Teams) in" in listed and f"<@{SLACK_ANALYST}> in" in listed


# --- display names are text on both sides -----------------------------------------------------

HOSTILE_NAMES = ["<!channel>", "<!here>", "@here", "@channel", "*bold*", "_it_", "~s~",
                 "`code`", "[x](http://evil)", "<https://evil.example|Voiso>", "<@U0ADMIN01>",
                 "\u202eevil", "zero\u200bwidth", "line\nbreak", "<at>Security</at>",
                 "{{7*7}}", "www.evil.example/login", ":smile:", "\\](x)", "- list",
                 "# heading", "![img](https://x/y.png)", "\U000e0041tag", "\u3164"]
hostile_names = st.text(alphabet=st.sampled_from(
    "<>!@#*_~`[]()|:/.\\-\u202e\u200b\u2028\n\U000e0041{} aUw0"), min_size=1, max_size=40) \
    | st.sampled_from(HOSTILE_NAMES)


def acked_view(via: str, name: str) -> AlertView:
    alert = example("app_login/unauthorized_ip")
    by = SLACK_ANALYST if via == "slack" else TEAMS_ANALYST
    return replace(alert, alert_id=7, acked_by=by, acked_at=NOW, acked_via=via,
                   acked_by_name=name)


def assert_text_in_slack(message: dict, name: str, view: AlertView | None = None) -> None:
    """The name is on screen as one_line shows it, nothing live came of it (the mentions
    and links are those of the same alert's message with a harmless name), and nothing
    invisible reached Slack."""
    baseline = _SLACK.render(replace(view or acked_view("teams", name), acked_by_name="Jane"))
    assert_shown_literally(message, one_line(name), baseline)
    hidden = {c for c in name if c != "\n" and (
        unicodedata.category(c) in SHOWN_CATEGORIES or c in BLANK_CHARACTERS)}
    assert not hidden & set(json.dumps(message, ensure_ascii=False))


# As the runtime renders (the default config's look-up link), so the baselines match.
_SLACK = SlackRenderer(options=AlertOptions(ip_lookup_url=config.TeamsConfig().ip_lookup_url))
_TEAMS = TeamsRenderer()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_teams_name_in_slack_is_text_never_a_mention_link_or_markup(name):
    message = _SLACK.render(acked_view("teams", name))
    assert_text_in_slack(message, name)
    assert f"{one_line(name)} (Teams) at" in readable(message)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_slack_name_on_a_bot_card_is_text_never_a_mention_link_or_markup(name):
    card = _TEAMS.bot_card(acked_view("slack", name))
    assert_safe(envelope(without_executes(card)), name)
    (line,) = [t for t in card_text(card).splitlines() if t.startswith("✅ Acknowledged by")]
    assert line.endswith(" (Slack) at 2026-11-24 12:00:00 UTC")


@settings(max_examples=60, deadline=None)
@given(name=hostile_names)
def test_any_display_name_stays_text_on_both_sides(name):
    assert_text_in_slack(_SLACK.render(acked_view("teams", name)), name)
    assert_safe(envelope(without_executes(_TEAMS.bot_card(acked_view("slack", name)))), name)
    assert_safe(envelope(without_executes(_TEAMS.bot_card(acked_view("teams", name)))),
                name)


def test_the_slack_losers_note_names_a_teams_winner_as_text():
    outcome = AckOutcome("already_acknowledged", 7, TEAMS_ANALYST, "2026-11-24T12:00:00Z",
                         via="teams", name="<!channel> *Eve*")
    note = _SLACK.render_answer("ack", status=outcome.status, ack=acknowledger(outcome),
                                at=outcome.at)
    assert "Already acknowledged by <!channel> *Eve* (Teams) at" in readable(note)
    assert display(note).live == [] and display(note).parsed == []


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=hostile_names)
def test_a_hostile_name_typed_in_either_app_stays_text_on_the_other(both, fake_slack,
                                                                    connector, name):
    in_slack, in_teams = posted_pair(both, f"u{len(alerts(both.store))}@example.com")
    invoke(both, connector, "voiso_ack", in_teams["id"], in_teams["slack_ts"], name=name)
    run_delivery_once(both)
    outbox = Outbox(both.store)
    assert_text_in_slack(slack_updates(fake_slack, in_slack)[-1].payload, name,
                         alert_view(outbox, outbox.alert(in_slack["id"])))
    invoke(both, connector, "voiso_reopen", in_teams["id"], in_teams["slack_ts"])
    slack_press(both, fake_slack, "voiso_ack", in_slack, name=name)
    wait_for(lambda: [1] if ack_row(both, in_teams)[1] == "slack" else [])
    run_delivery_once(both)
    assert_safe(envelope(without_executes(card_puts(connector, in_teams)[-1])), name)
