""""Was this you?" in Teams: a person's personal chat with the bot learned at its install (the
user's address from the fake Bot Connector's members endpoint), questions asked there per
confirm.ask_in, answered by the cards' invokes, escalated to a bot conversation. Real HTTP
posts of Activity JSON to the bot on 127.0.0.1, the fake Bot Connector reached through the
serviceUrl, the fake Slack Web API for ask_in = ["slack", "teams"], real SQLite; the
delivery and confirmations jobs are run by the test, not the scheduler."""

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.adaptive_card_schema import validate_card
from tests.fakes.slack_api import FakeSlack
from tests.voisobot.slack.test_render import hostile_alert
from tests.voisobot.teams.test_bot import (
    ALLOWED,
    CHANNEL,
    STRANGER,
    activity,
    answer_of,
    audit_rows,
    bot_config,
    card_invoke,
    card_text,
    mention,
    post,
)
from tests.voisobot.teams.test_bot import connector as connector  # a fixture
from tests.voisobot.teams.test_bot_alerts import alert_cards, alerts, deliver, subscribe
from tests.voisobot.teams.test_bot_card import without_executes
from tests.voisobot.teams.test_cards import TEAMS_HOSTILE, assert_safe
from tests.voisobot.test_queries import NOW, record
from voisobot import config, runtime
from voisobot.config import ConfirmConfig
from voisobot.errors import ConfigError
from voisobot.render import QuestionView
from voisobot.slack import sender as slack
from voisobot.teams.cards import TeamsRenderer, confirmation_lines
from voisobot.teams.people import TeamsPeople
from voisobot.teams.references import References

JANE, JANE_ID = "jane@acme.example", "00000000-0000-0000-0000-00000000j4e0"
ALICE, ALICE_SLACK = "alice@acme.example", "UALICE0001"
GHOST = "ghost@acme.example"
QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"
YES, NO = "voiso_confirm_yes", "voiso_confirm_no"


def chat_of(user: str) -> str:
    """The personal conversation's id, as tests.voisobot.teams.test_bot.activity makes it."""
    return f"a:personal-{user}"


@pytest.fixture
def slack_api():
    fake = FakeSlack(channels=set(), people={ALICE: ALICE_SLACK}).start()
    yield fake
    fake.stop()


@pytest.fixture
def make_bot(make_config, queue_url, connector):
    """A runtime whose Teams bot listens, alerts going to the bot conversation "secops",
    [confirm] on with ``ask_in`` (escalations to "teamsbot:secops"); with ``slack_api``,
    a Slack client too. Built again on the same store after a stop: a restart."""
    built = []

    def make(ask_in=("teams",), slack_api: FakeSlack | None = None, **confirm):
        cfg = bot_config(make_config, queue_url, default_conversation="secops",
                         access={"teams_users": (ALLOWED,)})
        cfg = dataclasses.replace(
            cfg, teams=dataclasses.replace(cfg.teams, timeout_seconds=1.0),
            confirm=ConfirmConfig(enabled=True, ask_in=tuple(ask_in),
                                  escalation_channel="teamsbot:secops",
                                  if_not="If not, tell #sec-help.", **confirm))
        sender = client = None
        if slack_api is not None:
            cfg = dataclasses.replace(cfg, slack=dataclasses.replace(
                cfg.slack, api_base_url=slack_api.base_url, timeout_seconds=2))
            client = slack.make_client("xoxb-test", slack_api.base_url, 2)
            sender = slack.SlackSender(client)
        bot = runtime.build(cfg, sender, client, secrets={})
        bot.teams_bot.retry_waits = (0.0, 0.0)
        bot.delivery.retry_base = 0.01
        bot.teams_bot.start()
        built.append(bot)
        return bot

    yield make
    for bot in built:
        bot.stop()


def install(bot, connector, user: str = JANE_ID, email: str | None = JANE) -> None:
    """The app installed for ``user`` (their personal chat), the Connector knowing them."""
    if email is not None:
        connector.members[f"29:{user}"] = {"aadObjectId": user, "name": "Jane Doe",
                                           "email": email.upper(), "userPrincipalName": email}
    assert post(bot, activity(connector, "installationUpdate", action="add", where="personal",
                              user=user)) == 200


def ask(bot, runs: int = 6) -> None:
    """Run the confirmations job until nothing is due (waits expired)."""
    for _ in range(runs):
        bot.confirmations.run()
        with bot.store.connection() as conn:
            conn.execute("UPDATE questions SET next_attempt_at = '0'")
            conn.execute("UPDATE teams_conversations SET member_next_at = '0' "
                         "WHERE member_next_at IS NOT NULL")


def questions(bot) -> list[dict]:
    rows = bot.store.connection().execute("SELECT * FROM questions ORDER BY id")
    return [dict(row) for row in rows]


def question_cards(connector, user: str = JANE_ID) -> list[tuple[str, dict]]:
    """(activity id, card) of each new post to the user's personal chat."""
    return [(call.new_id, call.body["attachments"][0]["content"]) for call in connector.calls
            if call.method == "POST" and call.status == 201 and not call.activity_id
            and call.conversation_id == chat_of(user)]


def alert_asking_jane(make_bot, connector, **options):
    """Jane installed, "secops" subscribed, her failed passwords posted there and the
    question asked in her chat: (the bot, her question row)."""
    bot = make_bot(**options)
    install(bot, connector)
    subscribe(bot, connector)
    record(bot.store, "app_login/incorrect_password", NOW, user=JANE)
    deliver(bot)
    ask(bot)
    (question,) = questions(bot)
    return bot, question


def press(bot, connector, verb: str, question_id, *, user: str = JANE_ID,
          conversation: str | None = None, card_id: str | None = "card",
          data: dict | None = None) -> dict:
    """Yes or No pressed on a question card, as Teams sends the invoke; its answer."""
    return answer_of(bot, card_invoke(
        connector, verb, data if data is not None else {"question": question_id},
        reply_to=card_id or None, user=user, where="personal",
        conversation={"id": conversation or chat_of(user), "conversationType": "personal"}))


def answer_audit(bot) -> list[tuple]:
    return [(r["user_id"], r["allowed"], r["outcome"]) for r in audit_rows(bot.store)
            if r["action"] == "answer"]


def show_alert(bot) -> None:
    """One delivery run with pacing ignored: a stale alert card is replaced in place."""
    bot.delivery.next_post_at.clear()
    bot.delivery.run()


def alert_updates(connector) -> list[dict]:
    """The cards that replaced the alert's card in the channel, oldest first."""
    return [call.body["attachments"][0]["content"] for call in connector.calls
            if call.method == "PUT" and call.status == 200 and call.conversation_id == CHANNEL]


def execute_actions(card: dict) -> list[tuple[str, dict]]:
    return [(a["verb"], a["data"]) for a in card.get("actions", [])
            if a["type"] == "Action.Execute"]


# --- who a Teams user is -----------------------------------------------------------------------

def test_a_personal_install_records_the_users_address_from_the_connector(make_bot, connector):
    bot = make_bot()
    install(bot, connector)
    (lookup,) = connector.member_lookups()
    assert (lookup.conversation_id, lookup.member_id) == (chat_of(JANE_ID), f"29:{JANE_ID}")
    chat = TeamsPeople(bot.store, bot.config.confirm).lookup(JANE.upper())
    assert chat is not None
    assert (chat.ref.conversation_id, chat.ref.kind, chat.user_id, chat.address) == (
        chat_of(JANE_ID), "personal", JANE_ID, JANE)
    row = bot.store.connection().execute("SELECT user_email, user_upn FROM teams_conversations"
                                         ).fetchone()
    assert tuple(row) == (JANE, JANE)  # kept lower case


def test_an_alias_finds_the_teams_address(make_bot, connector):
    bot = make_bot(aliases={"j.doe@voiso.example": JANE})
    install(bot, connector)
    assert TeamsPeople(bot.store, bot.config.confirm).lookup("J.Doe@voiso.example") is not None
    assert TeamsPeople(bot.store, bot.config.confirm).lookup(GHOST) is None


@pytest.mark.parametrize("fault", ["rate_limited", "server_error"])
def test_a_failed_lookup_keeps_the_chat_and_the_job_tries_again(make_bot, connector, fault):
    bot = make_bot()
    connector.fail(fault)
    install(bot, connector)
    (ref,) = References(bot.store).all()
    assert ref.kind == "personal"  # the conversation is kept whatever the lookup said
    people = TeamsPeople(bot.store, bot.config.confirm)
    assert people.lookup(JANE) is None
    ask(bot, runs=1)
    assert people.lookup(JANE) is not None
    assert [c.status for c in connector.member_lookups()] == [
        {"rate_limited": 429, "server_error": 500}[fault], 200]


def test_a_member_the_connector_does_not_know_waits_for_the_users_next_message(make_bot,
                                                                              connector):
    bot = make_bot()
    install(bot, connector, email=None)  # the Connector answers 404
    ask(bot, runs=2)
    people = TeamsPeople(bot.store, bot.config.confirm)
    assert people.lookup(JANE) is None
    assert [c.status for c in connector.member_lookups()] == [404, 404]  # install, the job
    connector.members[f"29:{JANE_ID}"] = {"email": JANE}
    assert post(bot, mention(connector, "help", where="personal", user=JANE_ID)) == 200
    assert people.lookup(JANE) is not None


def test_a_first_message_in_an_unknown_personal_chat_captures_it(make_bot, connector):
    bot = make_bot()
    connector.members[f"29:{JANE_ID}"] = {"email": JANE}
    assert post(bot, mention(connector, "help", where="personal", user=JANE_ID)) == 200
    (ref,) = References(bot.store).all()
    assert (ref.conversation_id, ref.kind) == (chat_of(JANE_ID), "personal")
    assert TeamsPeople(bot.store, bot.config.confirm).lookup(JANE).user_id == JANE_ID
    assert post(bot, mention(connector, "help", where="personal", user=JANE_ID)) == 200
    assert len(connector.member_lookups()) == 1  # known now: not asked again


# --- asking in Teams ---------------------------------------------------------------------------

def test_a_teamsbot_alert_asks_the_user_once_in_their_personal_chat(make_bot, connector):
    bot, question = alert_asking_jane(make_bot, connector)
    (card,) = [body for _, body in question_cards(connector)]
    validate_card(card)
    assert execute_actions(card) == [(YES, {"question": question["id"]}),
                                     (NO, {"question": question["id"]})]
    assert "Voiso security: was this you?" in card_text(card)
    assert "a login with a wrong password for your account" in card_text(card)
    assert (question["state"], question["asked_via"], question["teams_user"],
            question["teams_conversation"]) == ("asked", "teams", JANE_ID, chat_of(JANE_ID))
    assert question["teams_activity"] in connector._ids and question["slack_user"] is None
    show_alert(bot)  # the alert, stale, is shown again with the question
    assert f'Asked {JANE} in Teams "was this you?"' in card_text(alert_updates(connector)[-1])
    ask(bot)
    assert len(question_cards(connector)) == 1  # asked once


def test_a_restart_does_not_ask_again(make_bot, connector):
    bot, _ = alert_asking_jane(make_bot, connector)
    bot.stop()
    again = make_bot()
    ask(again)
    assert len(question_cards(connector)) == 1
    assert questions(again)[0]["state"] == "asked"


@pytest.mark.parametrize("fault", ["rate_limited", "server_error"])
def test_a_refused_question_is_posted_once_the_connector_takes_it(make_bot, connector, fault):
    bot = make_bot()
    install(bot, connector)
    subscribe(bot, connector)
    record(bot.store, "app_login/incorrect_password", NOW, user=JANE)
    deliver(bot)
    connector.fail(fault)
    bot.confirmations.run()
    assert questions(bot)[0]["state"] == "pending"  # refused: certainly not posted
    ask(bot)
    assert len(question_cards(connector)) == 1
    assert questions(bot)[0]["state"] == "asked"


def test_a_question_whose_answer_was_lost_is_posted_again_and_either_copy_answers(
        make_bot, connector):
    bot = make_bot()
    install(bot, connector)
    subscribe(bot, connector)
    record(bot.store, "app_login/incorrect_password", NOW, user=JANE)
    deliver(bot)
    connector.fail("post_then_hang")
    bot.confirmations.run()
    (question,) = questions(bot)
    assert question["state"] == "uncertain" and question["asked_via"] == "teams"
    connector.release()
    ask(bot)
    assert len(question_cards(connector)) == 2  # at least once: the Connector cannot be searched
    assert questions(bot)[0]["state"] == "asked"
    (first_id, _), (second_id, _) = question_cards(connector)
    assert questions(bot)[0]["teams_activity"] == second_id
    answer = press(bot, connector, YES, question["id"], card_id=first_id)  # the lost one
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert questions(bot)[0]["answer"] == "yes"
    second = press(bot, connector, NO, question["id"])
    assert "You already answered: yes." in second["value"]


def test_slack_first_then_teams_then_unmapped(make_bot, connector, slack_api):
    bot = make_bot(ask_in=("slack", "teams"), slack_api=slack_api)
    install(bot, connector)
    install(bot, connector, user=STRANGER, email=ALICE)  # in Slack too: asked there
    subscribe(bot, connector)
    for person in (ALICE, JANE, GHOST):
        record(bot.store, "app_login/incorrect_password", NOW, user=person)
    deliver(bot)
    ask(bot)
    by_email = {q["email"]: q for q in questions(bot)}
    assert (by_email[ALICE]["asked_via"], by_email[ALICE]["state"],
            by_email[ALICE]["slack_user"]) == ("slack", "asked", ALICE_SLACK)
    assert (by_email[JANE]["asked_via"], by_email[JANE]["state"]) == ("teams", "asked")
    assert by_email[GHOST]["state"] == "unmapped"
    assert len(slack_api.messages("D" + ALICE_SLACK[1:])) == 1
    assert len(question_cards(connector)) == 1 and question_cards(connector, STRANGER) == []
    for _ in range(3):  # one update per channel per run: each alert in turn
        show_alert(bot)
    shown = "\n".join(card_text(card) for card in alert_updates(connector))
    assert f"Could not ask: no Slack user or Teams chat with the Voiso app for {GHOST}" \
        in shown.replace("\\", "")


def test_teams_first_asks_in_teams_even_when_slack_knows_the_person(make_bot, connector,
                                                                    slack_api):
    bot = make_bot(ask_in=("teams", "slack"), slack_api=slack_api)
    install(bot, connector, user=STRANGER, email=ALICE)
    subscribe(bot, connector)
    record(bot.store, "app_login/incorrect_password", NOW, user=ALICE)
    deliver(bot)
    ask(bot)
    (question,) = questions(bot)
    assert question["asked_via"] == "teams" and slack_api.messages("D" + ALICE_SLACK[1:]) == []


def test_with_slack_only_a_teamsbot_alert_asks_nobody(make_bot, connector, slack_api):
    bot = make_bot(ask_in=("slack",), slack_api=slack_api)
    subscribe(bot, connector)
    record(bot.store, "app_login/incorrect_password", NOW, user=ALICE)
    deliver(bot)
    assert questions(bot) == []  # as before: questions go with a Slack channel only


# --- answers -----------------------------------------------------------------------------------

def test_yes_is_recorded_replaces_the_card_and_shows_on_the_alert(make_bot, connector):
    bot, question = alert_asking_jane(make_bot, connector)
    answer = press(bot, connector, YES, question["id"], card_id=question["teams_activity"])
    assert (answer["statusCode"], answer["type"]) == (200, "application/vnd.microsoft.card."
                                                           "adaptive")
    card = answer["value"]
    validate_card(card)
    assert "You answered: yes, it was me" in card_text(card).replace("*", "")
    assert execute_actions(card) == []
    assert questions(bot)[0]["answer"] == "yes" and questions(bot)[0]["state"] == "answered"
    assert answer_audit(bot) == [(JANE_ID, 1, f"answered yes (question {question['id']})")]
    show_alert(bot)
    assert f"Confirmed by {JANE}" in card_text(alert_updates(connector)[-1])
    ask(bot)
    assert alerts(bot.store)[0]["severity"] != "critical"
    assert len(alert_cards(connector)) == 1  # no escalation


def test_yes_acknowledges_the_alert_when_configured(make_bot, connector):
    bot, question = alert_asking_jane(make_bot, connector, auto_ack_on_yes=True)
    press(bot, connector, YES, question["id"])
    assert alerts(bot.store)[0]["acked_by"] == JANE_ID


def test_no_escalates_to_the_bot_conversation(make_bot, connector):
    bot, question = alert_asking_jane(make_bot, connector)
    answer = press(bot, connector, NO, question["id"], card_id=question["teams_activity"])
    assert "You answered: no, it wasn't me" in card_text(answer["value"]).replace("*", "")
    assert alerts(bot.store)[0]["severity"] == "critical"
    ask(bot)
    escalation = alert_cards(connector)[-1]
    validate_card(escalation)
    assert f"{JANE} says this was NOT them" in card_text(escalation).replace("*", "")
    assert questions(bot)[0]["escalation"] == "sent"
    ask(bot)
    assert len(alert_cards(connector)) == 2  # the alert and one escalation


@pytest.mark.parametrize("where", ["own_chat", "janes_chat"])
def test_another_users_press_is_refused_and_audited(make_bot, connector, where):
    bot, question = alert_asking_jane(make_bot, connector)
    answer = press(bot, connector, YES, question["id"], user=STRANGER,
                   conversation=chat_of(JANE_ID) if where == "janes_chat" else None)
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    assert "Only the person this question was sent to can answer it." in answer["value"]
    assert questions(bot)[0]["answer"] is None
    assert answer_audit(bot) == [
        (STRANGER, 0, f"refused: question {question['id']} was sent to {JANE_ID}")]


def test_janes_press_outside_her_chat_is_refused(make_bot, connector):
    bot, question = alert_asking_jane(make_bot, connector)
    answer = press(bot, connector, YES, question["id"], conversation=CHANNEL)
    assert "Only the person" in answer["value"] and questions(bot)[0]["answer"] is None


def test_a_second_press_is_refused_politely(make_bot, connector):
    bot, question = alert_asking_jane(make_bot, connector)
    press(bot, connector, YES, question["id"])
    second = press(bot, connector, NO, question["id"])
    assert second["type"] == "application/vnd.microsoft.activity.message"
    assert second["value"] == "You already answered: yes."
    assert questions(bot)[0]["answer"] == "yes"
    assert [outcome for _, _, outcome in answer_audit(bot)] == [
        f"answered yes (question {question['id']})", "already answered yes"]


@pytest.mark.parametrize("data", [{"question": 999}, {"question": "1; DROP"}, {"alert": 1}])
def test_a_press_naming_no_question_of_ours_changes_nothing(make_bot, connector, data):
    bot, _ = alert_asking_jane(make_bot, connector)
    answer = press(bot, connector, YES, None, data=data)
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    assert questions(bot)[0]["answer"] is None
    assert len(answer_audit(bot)) == 1


def test_a_timed_out_question_shows_it_in_the_chat(make_bot, connector):
    bot, question = alert_asking_jane(make_bot, connector, timeout_minutes=1)
    with bot.store.connection() as conn:
        conn.execute("UPDATE questions SET asked_at = '2000-01-01T00:00:00.000000Z'")
    bot.confirmations.run()
    assert questions(bot)[0]["state"] == "expired"
    (update,) = [c for c in connector.calls if c.method == "PUT"
                 and c.conversation_id == chat_of(JANE_ID)]
    assert update.activity_id == question["teams_activity"]
    card = update.body["attachments"][0]["content"]
    assert "No answer came within 1 minutes" in card_text(card) and not execute_actions(card)


def test_pending_shows_a_teams_question_by_address(make_bot, connector):
    bot, _ = alert_asking_jane(make_bot, connector)
    before = len(connector.sent())
    assert post(bot, mention(connector, "pending")) == 200
    (reply,) = connector.sent()[before:]
    text = card_text(reply["attachments"][0]["content"]).replace("\\", "")
    assert JANE in text and "in Teams, no answer yet" in text


# --- config ------------------------------------------------------------------------------------

def test_ask_in_is_slack_by_default():
    assert config.from_dict({"sqs": {"queue_url": QUEUE}}).confirm.ask_in == ("slack",)


@pytest.mark.parametrize("confirm, teams, message", [
    ({"ask_in": ["email"]}, {}, "confirm.ask_in: expected a list of \"slack\" and \"teams\""),
    ({"ask_in": []}, {}, "confirm.ask_in: expected"),
    ({"ask_in": ["teams", "teams"]}, {}, "confirm.ask_in: expected"),
    ({"ask_in": [1]}, {}, "confirm.ask_in: expected"),
    ({"enabled": True, "ask_in": ["teams"]}, {}, "confirm.ask_in: \"teams\" needs the Teams bot"),
    ({"enabled": True, "escalation_channel": "teamsbot:secops"}, {},
     "confirm.escalation_channel: the Teams bot is off"),
    ({"escalation_channel": "teamsbot:Sec Ops"}, {"bot": {"enabled": True}},
     "confirm.escalation_channel: expected"),
])
def test_confirm_errors_name_the_key(confirm, teams, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict({"sqs": {"queue_url": QUEUE}, "confirm": confirm, "teams": teams})


def test_teams_in_ask_in_and_a_bot_escalation_channel_load():
    cfg = config.from_dict({"sqs": {"queue_url": QUEUE}, "teams": {"bot": {"enabled": True}},
                            "confirm": {"enabled": True, "ask_in": ["teams", "slack"],
                                        "escalation_channel": "teamsbot:secops"}})
    assert (cfg.confirm.ask_in, cfg.confirm.escalation_channel) == (
        ("teams", "slack"), "teamsbot:secops")


# --- hostile text ------------------------------------------------------------------------------

ANSWERED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
KINDS = ["app_login/incorrect_password", "user/privileges_updated", "allowed_ip/ip_changed",
         "unknown"]


@pytest.fixture(scope="module")
def renderer():
    return TeamsRenderer()


def view(value: str, kind: str, state: str = "asked", answer: str | None = None,
         reason: str = "no") -> QuestionView:
    return QuestionView(hostile_alert(value, kind), 7, ("user", "admin"), None, value, state,
                        answer=answer, answered_at=ANSWERED if answer else None,
                        if_not="If not, tell #sec-help.", reason=reason, timeout_minutes=30)


def as_post(card: dict) -> dict:
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


def every_card(renderer: TeamsRenderer, value: str, kind: str) -> list[dict]:
    """The question card asking, answered yes and no, timed out; the escalations."""
    alert = hostile_alert(value, kind)
    lines = [{"state": state, "answer": answer, "email": value, "at": ANSWERED,
              "via": "Teams", "nowhere": None}
             for state, answer in (("asked", None), ("answered", "yes"), ("answered", "no"),
                                   ("unmapped", None), ("failed", None))]
    return [renderer.question_card(view(value, kind)),
            renderer.question_card(view(value, kind, "answered", "yes")),
            renderer.question_card(view(value, kind, "answered", "no")),
            renderer.question_card(view(value, kind, "expired")),
            renderer.escalation_card(view(value, kind, "answered", "no")),
            renderer.escalation_card(view(value, kind, "expired", reason="timeout")),
            renderer.bot_card(dataclasses.replace(alert, alert_id=3, confirmations=tuple(lines)))]


@pytest.mark.parametrize("value", TEAMS_HOSTILE, ids=range(len(TEAMS_HOSTILE)))
@pytest.mark.parametrize("kind", KINDS)
def test_hostile_text_never_becomes_markup_links_or_mentions_in_a_question(renderer, value,
                                                                           kind):
    for card in every_card(renderer, value, kind):
        assert_safe(as_post(without_executes(card)), value)  # schema-checked there
        assert {verb for verb, _ in execute_actions(card)} <= {
            YES, NO, "voiso_ack", "voiso_profile"}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(min_size=1, max_size=300) | st.sampled_from(TEAMS_HOSTILE),
       kind=st.sampled_from(KINDS), card=st.integers(0, 6))
def test_no_event_text_makes_a_link_a_mention_or_an_invalid_question_card(renderer, value,
                                                                           kind, card):
    """Pure: each example checks one of the cards (the schema check costs far more than the
    rendering), so 120 examples cover every card many times."""
    assert_safe(as_post(without_executes(every_card(renderer, value, kind)[card])), value)


@pytest.mark.parametrize("kind", KINDS)
def test_every_question_and_escalation_card_is_schema_valid_with_its_buttons(renderer, kind):
    for card in every_card(renderer, TEAMS_HOSTILE[-1], kind):
        validate_card(card)


def test_the_buttons_carry_only_the_question_id(renderer):
    card = renderer.question_card(view("<at>x</at>", "unknown"))
    assert execute_actions(card) == [(YES, {"question": 7}), (NO, {"question": 7})]
    assert [a["title"] for a in card["actions"]] == ["Yes, it was me", "No, it wasn't me"]


def test_a_failing_template_still_gives_a_safe_card(tmp_path):
    (tmp_path / "question.json.j2").write_text("{ not json", encoding="utf-8")
    card = TeamsRenderer(override_dir=tmp_path).question_card(view("x", "unknown"))
    validate_card(card)
    assert execute_actions(card) == [(YES, {"question": 7}), (NO, {"question": 7})]


def test_confirmation_lines_name_the_person_by_address():
    (line,) = confirmation_lines([{"state": "asked", "answer": None, "email": JANE,
                                   "at": None, "via": "Teams", "nowhere": None}])
    assert line == f'❓ Asked {JANE} in Teams "was this you?": no answer yet.'
