"""The Teams bot (preview): real HTTP posts of Activity JSON to its /api/messages on
127.0.0.1, served by the real Teams SDK in the bot's own thread, with every reply going to a
fake Bot Connector through the activities' serviceUrl. No Azure: unauthenticated activities
are allowed in these tests only, and one test shows that without that switch an unsigned
activity is refused."""

import dataclasses
import io
import json
import logging
import time
import urllib.error
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import audit_rows
from tests.fakes.adaptive_card_schema import validate_card
from tests.fakes.bot_connector import FakeBotConnector
from tests.voisobot.teams.test_cards import TEAMS_HOSTILE, assert_safe, texts
from tests.voisobot.test_queries import NOW, record
from voisobot import access, check, config, runtime, samples, sqs
from voisobot.access import AccessPolicy, TeamsAccessPolicy
from voisobot.commands import Commands
from voisobot.config import AccessConfig
from voisobot.errors import ConfigError
from voisobot.render import template_name
from voisobot.slack.render import SlackRenderer
from voisobot.store import Store
from voisobot.teams.answers import TeamsAnswers
from voisobot.teams.output import BotCardOutput
from voisobot.teams.references import References
from voisobot.teams.server import BotServer, TeamsBotError

ALLOWED = "00000000-0000-0000-0000-00000000a11d"
STRANGER = "00000000-0000-0000-0000-0000000057a6"
BOT = "28:voiso-bot"
TEAM, CHANNEL = "19:team-general@thread.tacv2", "19:secops@thread.tacv2"
TENANT = "11111111-1111-1111-1111-111111111111"
CREDENTIALS = {"TEAMS_APP_ID": "22222222-2222-2222-2222-222222222222",
               "TEAMS_APP_PASSWORD": "not-a-real-secret", "TEAMS_TENANT_ID": TENANT}


# --- the running bot ---------------------------------------------------------------------------

@pytest.fixture
def connector():
    fake = FakeBotConnector().start()
    yield fake
    fake.stop()


def bot_config(make_config, queue_url, *, access=None, **bot):
    cfg = make_config(queue_url)
    settings_ = {"enabled": True, "port": 0, "allow_unauthenticated": True, **bot}
    return dataclasses.replace(
        cfg, access=AccessConfig(**(access if access is not None else
                                    {"teams_users": (ALLOWED,)})),
        teams=dataclasses.replace(cfg.teams, bot=config.TeamsBotConfig(**settings_)))


@pytest.fixture
def running(make_config, queue_url):
    """Start a bot (``running(**bot settings)``); each is stopped at the end."""
    started = []

    def start(env=None, access=None, **bot):
        bot_runtime = runtime.build(bot_config(make_config, queue_url, access=access, **bot),
                                    secrets={} if env is None else env)
        bot_runtime.teams_bot.retry_waits = (0.0, 0.0)
        bot_runtime.start()
        started.append(bot_runtime)
        return bot_runtime

    yield start
    for bot_runtime in started:
        bot_runtime.stop()


def post(bot_runtime, activity: dict, headers: dict | None = None) -> int:
    request = urllib.request.Request(
        bot_runtime.teams_bot.url, data=json.dumps(activity).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def activity(connector, kind: str, *, user: str = ALLOWED, where: str = "channel",
             **fields) -> dict:
    """An activity as Teams sends it, its serviceUrl the fake connector."""
    if where == "channel":
        conversation = {"id": f"{CHANNEL};messageid=1764000000001", "conversationType":
                        "channel", "tenantId": TENANT}
        data = {"team": {"id": TEAM}, "channel": {"id": CHANNEL}, "tenant": {"id": TENANT}}
    else:
        conversation = {"id": f"a:personal-{user}", "conversationType": "personal",
                        "tenantId": TENANT}
        data = {"tenant": {"id": TENANT}}
    return {"type": kind, "id": uuid.uuid4().hex, "channelId": "msteams",
            "serviceUrl": connector.base_url, "timestamp": "2026-11-24T12:00:00Z",
            "from": {"id": f"29:{user}", "aadObjectId": user, "name": "Jane"},
            "recipient": {"id": BOT, "name": "Voiso"}, "conversation": conversation,
            "channelData": data, **fields}


def mention(connector, text: str, **kwargs) -> dict:
    """``@Voiso <text>`` as Teams sends it: the mention tag in the text, and its entity."""
    return activity(connector, "message", text=f"<at>Voiso</at> {text}", entities=[
        {"type": "mention", "text": "<at>Voiso</at>", "mentioned": {"id": BOT,
                                                                    "name": "Voiso"}}], **kwargs)


def the_card(connector) -> dict:
    (sent,) = connector.sent()
    (attachment,) = sent["attachments"]
    validate_card(attachment["content"])
    return attachment["content"]


def card_text(card: dict) -> str:
    return "\n".join(texts(card))


# --- the run's cards -------------------------------------------------------------------------

def test_the_teams_card_templates_are_compiled_at_start(running):
    """The run's Teams renderer (one for alert cards, button answers and questions) has its
    alert templates compiled by the start job: the first card of a kind waits for no
    compile."""
    bot = running()
    (cards,) = [output.renderer for output in bot.delivery.outputs
                if isinstance(output, BotCardOutput)]
    wanted = {template_name(kind) for kind in samples.EXAMPLES} | {"_generic.json.j2"}
    deadline = time.monotonic() + 20
    while not wanted <= {name for _, name in cards.env.cache}:
        assert time.monotonic() < deadline, "the start job compiled no Teams template"
        time.sleep(0.05)


# --- conversation references ---------------------------------------------------------------

def test_the_bot_added_to_a_team_keeps_its_reference_across_a_restart(running, connector):
    first = running()
    added = activity(connector, "conversationUpdate", membersAdded=[{"id": BOT}],
                     conversation={"id": TEAM, "conversationType": "channel",
                                   "tenantId": TENANT},
                     channelData={"team": {"id": TEAM}, "tenant": {"id": TENANT},
                                  "eventType": "teamMemberAdded"})
    assert post(first, added) == 200
    store_path = first.config.store_path
    first.stop()
    second = running()
    assert second.config.store_path == store_path
    (ref,) = References(second.store).all()
    assert (ref.conversation_id, ref.kind, ref.service_url, ref.tenant_id, ref.team_id,
            ref.channel_id, ref.bot_id, ref.added_by) == (
        TEAM, "channel", connector.base_url, TENANT, TEAM, TEAM, BOT, ALLOWED)


def test_a_personal_install_is_kept_and_a_removal_forgets_it(running, connector):
    bot = running()
    assert post(bot, activity(connector, "installationUpdate", action="add",
                              where="personal")) == 200
    (ref,) = References(bot.store).all()
    assert (ref.kind, ref.conversation_id, ref.team_id) == ("personal", f"a:personal-{ALLOWED}",
                                                            None)
    assert post(bot, activity(connector, "installationUpdate", action="remove",
                              where="personal")) == 200
    assert References(bot.store).all() == []


def test_a_member_other_than_the_bot_joining_stores_nothing(running, connector):
    bot = running()
    assert post(bot, activity(connector, "conversationUpdate",
                              membersAdded=[{"id": "29:someone-else"}])) == 200
    assert References(bot.store).all() == []


# --- commands ----------------------------------------------------------------------------------

def test_recent_in_a_channel_is_answered_as_a_card_in_the_thread(running, connector):
    bot = running()
    record(bot.store, "app_login/unauthorized_ip", NOW, user="jane@example.com")
    assert post(bot, mention(connector, "recent")) == 200
    card = the_card(connector)
    assert "jane@example.com" in card_text(card).replace("\\", "")
    (call,) = [c for c in connector.calls if c.status == 201]
    assert call.conversation_id == f"{CHANNEL};messageid=1764000000001"  # the thread
    (row,) = audit_rows(bot.store)
    assert (row["user_id"], row["channel_id"], row["action"], row["detail"], row["allowed"],
            row["outcome"]) == (ALLOWED, CHANNEL, "command", "recent", 1, "answered recent")


@pytest.mark.parametrize("typed, shown, outcome", [
    ("help", "answers from the bot's cache", "answered help"),
    ("", "answers from the bot's cache", "answered help"),
    ("recent 999", "recent shows 1 to", "usage: recent shows 1 to"),
    ("launch missiles", 'there is no /voiso "launch"', "usage: there is no /voiso"),
])
def test_help_and_usage_errors_are_answered_as_cards(running, connector, typed, shown,
                                                      outcome):
    bot = running()
    assert post(bot, mention(connector, typed, where="personal")) == 200
    assert shown in card_text(the_card(connector)).replace("\\", "")
    (row,) = audit_rows(bot.store)
    assert row["outcome"].startswith(outcome) and row["channel_id"] == f"a:personal-{ALLOWED}"


def test_a_stranger_is_refused_and_the_refusal_is_audited(running, connector):
    bot = running()
    record(bot.store, "app_login/unauthorized_ip", NOW, user="secret@example.com")
    assert post(bot, mention(connector, "recent", user=STRANGER)) == 200
    text = card_text(the_card(connector)).replace("\\", "")
    assert "not allowed" in text and "secret@example.com" not in text
    (row,) = audit_rows(bot.store)
    assert (row["user_id"], row["allowed"], row["outcome"]) == (STRANGER, 0, "denied")


@pytest.mark.parametrize("access, user, allowed", [
    ({"teams_users": (ALLOWED,)}, ALLOWED, True),
    ({"teams_users": (ALLOWED,)}, STRANGER, False),
    ({"teams_channels": (CHANNEL,)}, STRANGER, True),           # anyone in a listed channel
    ({"teams_channels": (TEAM,)}, STRANGER, False),             # another channel of the team
    ({"users": ("UALLOWED1",), "channels": ("CSECURITY1",)}, STRANGER, False),  # Slack's
    ({}, ALLOWED, False),                                        # nobody by default
])
def test_teams_access_counts_teams_ids_only(access, user, allowed):
    policy = TeamsAccessPolicy(AccessConfig(**access))
    assert policy.allows(user, CHANNEL) is allowed


OTHER_CHANNEL = "19:engineering@thread.tacv2"


@pytest.mark.parametrize("seen_team, allowed", [
    (TEAM, True),                            # a channel of the listed team
    ("19:other-team@thread.tacv2", False),   # of another team
    (None, False),                           # a channel whose team Teams never named
])
def test_a_listed_team_opens_every_channel_of_it(seen_team, allowed):
    policy = TeamsAccessPolicy(AccessConfig(teams_teams=(TEAM,)))
    policy.saw(OTHER_CHANNEL, seen_team)
    assert policy.allows(STRANGER, OTHER_CHANNEL) is allowed
    assert not policy.allows(STRANGER, "a:personal-chat")  # a chat is in no team


def test_the_policy_forgets_the_oldest_channels_beyond_its_bound(monkeypatch):
    monkeypatch.setattr(access, "TEAMS_REMEMBERED", 3)
    policy = TeamsAccessPolicy(AccessConfig(teams_teams=(TEAM,)))
    for i in range(4):
        policy.saw(f"19:c{i}@thread.tacv2", TEAM)
    assert [policy.allows(STRANGER, f"19:c{i}@thread.tacv2") for i in range(4)] == [
        False, True, True, True]


def test_a_stranger_in_a_listed_teams_channel_is_answered_over_http(make_config, queue_url,
                                                                   connector):
    cfg = bot_config(make_config, queue_url, access={"teams_teams": (TEAM,)})
    bot = runtime.build(cfg, secrets={})
    bot.teams_bot.retry_waits = (0.0,)
    bot.teams_bot.start()
    try:
        record(bot.store, "app_login/unauthorized_ip", NOW, user="jane@example.com")
        assert post(bot, mention(connector, "recent", user=STRANGER)) == 200
        assert "jane@example.com" in card_text(the_card(connector)).replace("\\", "")
        assert post(bot, mention(connector, "recent", user=STRANGER, where="personal")) == 200
        assert "not allowed" in card_text(connector.sent()[-1]["attachments"][0]["content"])
        assert [(r["user_id"], r["allowed"]) for r in audit_rows(bot.store)] == [
            (STRANGER, 1), (STRANGER, 0)]
    finally:
        bot.stop()


def test_teams_ids_never_open_slack():
    cfg = AccessConfig(teams_users=(ALLOWED,), teams_channels=(CHANNEL,))
    assert not AccessPolicy(cfg, lambda group: set()).allows(ALLOWED, CHANNEL)



def test_help_in_teams_speaks_of_the_mention_and_subscribe(running, connector):
    bot = running()
    assert post(bot, mention(connector, "help")) == 200
    text = card_text(the_card(connector)).replace("\\", "")
    assert "@Voiso recent" in text and "@Voiso subscribe name" in text
    assert "/voiso" not in text and "public" not in text  # Slack's words only


def card_invoke(connector, verb: str, data, *, reply_to: str | None = None, **fields) -> dict:
    """A press of a card's Action.Execute button as Teams sends its invoke (``fields`` as
    for ``activity``), naming the pressed card by ``reply_to``."""
    return activity(connector, "invoke", name="adaptiveCard/action",
                    value={"action": {"type": "Action.Execute", "verb": verb, "data": data},
                           "trigger": "manual"},
                    **({"replyToId": reply_to} if reply_to is not None else {}), **fields)


def answer_of(bot_runtime, invoke: dict) -> dict:
    """The bot's answer to an invoke (HTTP 200, whatever it says)."""
    request = urllib.request.Request(
        bot_runtime.teams_bot.url, data=json.dumps(invoke).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        assert response.status == 200
        return json.loads(response.read())


def press_card(bot, connector, verb: str, data, user: str = ALLOWED) -> dict:
    """A press of an Action.Execute button of an answer card; the invoke's answer."""
    return answer_of(bot, card_invoke(connector, verb, data, reply_to="answer-card-1",
                                      user=user))


def more_action(card: dict) -> dict:
    (action,) = card["actions"]
    assert (action["type"], action["title"], action["verb"]) == \
        ("Action.Execute", "More", "voiso_more")
    return action


def test_a_long_answer_pages_with_more_as_in_slack(running, connector):
    bot = running()
    for i in range(7):
        record(bot.store, "app_login/unauthorized_ip", NOW, user=f"user{i}@example.com")
    assert post(bot, mention(connector, "recent 4")) == 200
    first = the_card(connector)
    answer = press_card(bot, connector, "voiso_more", more_action(first)["data"])
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    validate_card(answer["value"])
    shown = [f"user{i}@example.com" for i in range(7)]
    first_text = card_text(first).replace("\\", "")
    second_text = card_text(answer["value"]).replace("\\", "")
    on_first = {u for u in shown if u in first_text}
    on_second = {u for u in shown if u in second_text}
    assert len(on_first) == 4 and on_second == set(shown) - on_first  # the rest, once
    assert "actions" not in answer["value"]  # the last page
    row = audit_rows(bot.store)[-1]
    assert (row["user_id"], row["action"], row["outcome"]) == \
        (ALLOWED, "button", "answered recent")
    assert row["detail"].startswith("voiso_more {")


@pytest.mark.parametrize("data, user, outcome", [
    ({"more": '{"q": "recent", "a": "", "n": 999, "p": false, "b": 1}'}, ALLOWED,
     "usage: that button is not one of ours"),
    ({"more": "not json"}, ALLOWED, "usage: that button is not one of ours"),
    ({"alert": 1}, ALLOWED, "usage: that button is not one of ours"),
    ({"more": '{"q": "recent", "a": "", "n": 4, "p": false, "b": 1}'}, STRANGER, "denied"),
])
def test_a_forged_or_foreign_more_is_refused_and_audited(running, connector, data, user,
                                                         outcome):
    bot = running()
    record(bot.store, "app_login/unauthorized_ip", NOW, user="secret@example.com")
    answer = press_card(bot, connector, "voiso_more", data, user=user)
    validate_card(answer["value"])
    assert "secret@example.com" not in card_text(answer["value"])
    (row,) = audit_rows(bot.store)
    assert (row["user_id"], row["action"], row["outcome"]) == (user, "button", outcome)


# --- hostile text ------------------------------------------------------------------------------

@pytest.fixture
def answers(store):
    policy = TeamsAccessPolicy(AccessConfig(teams_users=(ALLOWED,)))
    return TeamsAnswers(Commands(store, SlackRenderer(), policy, clock=lambda: NOW))


def as_post(card: dict) -> dict:
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


@pytest.mark.parametrize("value", TEAMS_HOSTILE, ids=range(len(TEAMS_HOSTILE)))
@pytest.mark.parametrize("command", ["recent", "stats 24h"])
def test_hostile_event_text_stays_plain_in_every_answer(store, answers, value, command):
    record(store, "app_login/unauthorized_ip", NOW, user=value, access_group=value)
    assert_safe(as_post(answers.answer(ALLOWED, CHANNEL, command)), value)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(value=st.text(min_size=1, max_size=200) | st.sampled_from(TEAMS_HOSTILE))
def test_no_stored_text_makes_a_link_a_mention_or_an_invalid_card(tmp_path_factory, value):
    store = Store(tmp_path_factory.mktemp("hostile") / "store.sqlite3")
    try:
        record(store, "app_login/unauthorized_ip", NOW, user=value, who=value)
        policy = TeamsAccessPolicy(AccessConfig(teams_users=(ALLOWED,)))
        card = TeamsAnswers(Commands(store, SlackRenderer(), policy, clock=lambda: NOW)
                            ).answer(ALLOWED, CHANNEL, "recent")
        assert_safe(as_post(card), value)
    finally:
        store.close()


def test_hostile_text_through_the_endpoint_reaches_teams_plain(running, connector):
    bot = running()
    value = "[Voiso login](https://evil.example) <at>Security Team</at>"
    record(bot.store, "app_login/unauthorized_ip", NOW, user=value)
    assert post(bot, mention(connector, "recent")) == 200
    (sent,) = connector.sent()
    assert_safe({"type": sent["type"], "attachments": sent["attachments"]}, value)


# --- the Bot Connector's refusals ------------------------------------------------------------

def test_a_throttled_answer_is_posted_once_the_connector_takes_it(running, connector):
    bot = running()
    connector.fail("rate_limited")
    connector.fail("server_error")
    assert post(bot, mention(connector, "help")) == 200
    assert [call.status for call in connector.calls] == [429, 500, 201]
    assert len(connector.sent()) == 1


def test_an_answer_the_connector_keeps_refusing_is_logged_and_dropped(running, connector,
                                                                       caplog):
    bot = running()
    connector.fail("server_error", times=5)
    with caplog.at_level(logging.ERROR, logger="voisobot.teams"):
        assert post(bot, mention(connector, "help")) == 200
    assert [call.status for call in connector.calls] == [500, 500, 500]
    assert "could not be posted (HTTP 500, attempt 3)" in caplog.text
    assert audit_rows(bot.store)[0]["outcome"] == "answered help"  # asked, and audited


# --- authentication ----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic eDp5"}])
def test_without_the_switch_an_unsigned_activity_is_refused_and_nothing_recorded(
        running, connector, headers, caplog):
    bot = running(env=CREDENTIALS, allow_unauthenticated=False)
    record(bot.store, "app_login/unauthorized_ip", NOW)
    added = activity(connector, "conversationUpdate", membersAdded=[{"id": BOT}])
    assert post(bot, added, headers) == 401
    assert post(bot, mention(connector, "recent"), headers) == 401
    assert References(bot.store).all() == [] and audit_rows(bot.store) == []
    assert connector.calls == []
    assert "allow_unauthenticated" not in caplog.text


def test_the_switch_is_a_warning_at_every_start(running, caplog):
    with caplog.at_level(logging.WARNING, logger="voisobot.teams"):
        running()
    assert "WITHOUT checking Microsoft's signature" in caplog.text


def test_the_bot_needs_its_credentials_unless_unauthenticated(make_config, queue_url):
    cfg = bot_config(make_config, queue_url, allow_unauthenticated=False)
    with pytest.raises(ConfigError, match="set TEAMS_APP_PASSWORD, TEAMS_TENANT_ID in the"):
        runtime.build(cfg, secrets={"TEAMS_APP_ID": CREDENTIALS["TEAMS_APP_ID"]})


def test_the_credentials_are_never_logged(running, caplog):
    with caplog.at_level(logging.DEBUG):
        running(env=CREDENTIALS, allow_unauthenticated=False).stop()
    assert CREDENTIALS["TEAMS_APP_PASSWORD"] not in caplog.text


# --- check -------------------------------------------------------------------------------------

def run_check(cfg, env) -> str:
    out = io.StringIO()
    check.run(cfg, sqs.make_client(cfg.sqs), None, out=out, env=env)
    return out.getvalue()


@pytest.mark.parametrize("bot, env, line", [
    ({"allow_unauthenticated": True}, CREDENTIALS,
     "problem  teams.bot.allow_unauthenticated is true"),
    ({}, {}, "problem  Teams bot: TEAMS_APP_ID, TEAMS_APP_PASSWORD, TEAMS_TENANT_ID not set"),
    ({}, CREDENTIALS, "ok       Teams bot: TEAMS_APP_ID, TEAMS_APP_PASSWORD and "
                      "TEAMS_TENANT_ID set; endpoint 127.0.0.1:3978/api/messages"),
])
def test_check_reports_the_switch_and_the_credentials(make_config, queue_url, bot, env, line):
    cfg = bot_config(make_config, queue_url, **{"port": 3978,
                                                "allow_unauthenticated": False, **bot})
    assert line in run_check(cfg, env)


def test_check_says_nothing_of_a_disabled_bot(make_config, queue_url):
    cfg = bot_config(make_config, queue_url, enabled=False)
    assert "Teams bot" not in run_check(cfg, CREDENTIALS)


# --- its own thread ----------------------------------------------------------------------------

def test_an_address_in_use_stops_the_start_naming_the_keys(running, make_config, queue_url):
    first = running()
    cfg = bot_config(make_config, queue_url, port=first.teams_bot.port)
    server = BotServer(cfg.teams.bot, None, None, None, {})
    with pytest.raises(TeamsBotError, match=r"teams\.bot\.host/port"):
        server.start()


def test_the_bot_serves_on_its_own_thread_and_stops_with_the_runtime(running, connector):
    bot = running()
    thread = bot.teams_bot._thread
    assert thread.name == "teams-bot" and thread.is_alive()
    bot.stop()
    assert not thread.is_alive()


# --- config ------------------------------------------------------------------------------------

def test_the_bot_is_off_by_default_and_listens_locally():
    bot = config.from_dict({"sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}}
                           ).teams.bot
    assert (bot.enabled, bot.host, bot.port, bot.path, bot.allow_unauthenticated) == (
        False, "127.0.0.1", 3978, "/api/messages", False)


@pytest.mark.parametrize("teams, access, message", [
    ({"bot": {"port": "x"}}, {}, "teams.bot.port: expected a TCP port"),
    ({"bot": {"path": "api"}}, {}, "teams.bot.path: expected a URL path"),
    ({"bot": {"allow_unauthenticated": "yes"}}, {}, "teams.bot.allow_unauthenticated: "
                                                    "expected true or false"),
    ({"bot": {"token": "x"}}, {}, "teams.bot.token: unknown key"),
    ({"bots": {}}, {}, "teams.bots: unknown key; expected one of"),
    ({}, {"teams_users": ["U0123ABCD"]}, "access.teams_users: expected a list of Entra ID"),
    ({}, {"teams_channels": ["19:x@thread.tacv2;messageid=1"]}, "access.teams_channels: "
                                                               "expected a list of Teams"),
])
def test_config_errors_name_the_key(teams, access, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict({"sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"},
                          "teams": teams, "access": access})


def test_a_variable_sets_a_bot_key():
    cfg = config.from_dict({"sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}})
    assert cfg.teams.bot.host == "127.0.0.1"
    env = {"VOISO_SQS__QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
           "VOISO_TEAMS__BOT__HOST": "0.0.0.0", "VOISO_TEAMS__BOT__ENABLED": "true"}
    loaded = config.load("/nonexistent/config.toml", env, file_optional=True)
    assert (loaded.teams.bot.host, loaded.teams.bot.enabled) == ("0.0.0.0", True)
