"""The "was this you?" DM and the escalation as Slack shows them: plain words, no link in a
DM, the two buttons while a question is open, and hostile event text as safe as in alerts.
The escalation's only mentions are the user group from config and the person Slack named."""

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from tests.slack_display import readable, shown
from tests.voisobot.slack.test_render import (
    HOSTILE,
    HOSTILE_KINDS,
    assert_safe,
    hostile_alert,
    spoof_text,
)
from voisobot.render import QuestionView
from voisobot.slack.render import SlackRenderer
from voisobot.values import SafeUrl, SlackId

PERSON, GROUP = SlackId("UJANE00001"), SlackId("SRESPOND01")
LINK = SafeUrl("https://acme.slack.com/archives/C0ALERTS01/p1700000000000100")
ANSWERED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def question(value: str = "x", kind: str = "app_login/incorrect_password", *,
             state: str = "asked", answer: str | None = None,
             roles: tuple[str, ...] = ("user",), group: SlackId | None = GROUP) -> QuestionView:
    return QuestionView(hostile_alert(value, kind), 7, roles, PERSON, "jane@acme.example",
                        state, answer=answer, answered_at=ANSWERED if answer else None,
                        if_not="If not, tell #sec-help.", usergroup=group, reason="no",
                        link=LINK, timeout_minutes=30)


@pytest.fixture(scope="module")
def renderer():
    return SlackRenderer()


def action_ids(message: dict) -> list[str]:
    return [e["action_id"] for b in message["blocks"] if b["type"] == "actions"
            for e in b["elements"]]


def test_an_open_question_asks_in_plain_words_with_two_buttons_and_no_link(renderer):
    message = renderer.render_question(question())
    assert action_ids(message) == ["voiso_confirm_yes", "voiso_confirm_no"]
    labels = [e["text"]["text"] for b in message["blocks"] if b["type"] == "actions"
              for e in b["elements"]]
    assert labels == ["Yes, this was me", "No, this wasn't me"]
    text = readable(message)
    assert "a login with a wrong password for your account" in text
    assert "If not, tell #sec-help." in text
    assert not [live for live in shown(message).live if live[0] == "link"]
    assert "http" not in text
    for block in message["blocks"]:
        assert Block.parse(block).to_dict() == block


@pytest.mark.parametrize(("roles", "header"), [
    (("user",), "Voiso security: was this you?"),
    (("admin",), "Voiso security: did you make this change?"),
    (("user", "admin"), "Voiso security: was this you?"),
])
def test_the_header_asks_the_user_or_the_admin(renderer, roles, header):
    message = renderer.render_question(question(kind="user/password_changed", roles=roles))
    assert message["blocks"][0]["text"]["text"] == header


@pytest.mark.parametrize(("answer", "state", "says"), [
    ("yes", "answered", "You answered yes, this was me"),
    ("no", "answered", "You answered no, this wasn't me"),
    (None, "expired", "No answer came within 30 minutes"),
])
def test_an_answered_or_expired_question_shows_it_without_buttons(renderer, answer, state,
                                                                  says):
    message = renderer.render_question(question(state=state, answer=answer))
    assert action_ids(message) == []
    assert says in readable(message)


def test_the_escalation_mentions_the_configured_group_and_links_the_alert(renderer):
    message = renderer.render_escalation(question(state="answered", answer="no"))
    live = shown(message).live
    assert ("usergroup", ("usergroup_id", "SRESPOND01")) in live
    text = readable(message)
    assert "says this was NOT them" in text and f"<{LINK}|Open the alert>" in text
    assert "<@UJANE00001>" in text


def test_without_a_configured_group_the_escalation_mentions_no_group(renderer):
    message = renderer.render_escalation(question(state="answered", answer="no", group=None))
    assert [x[0] for x in shown(message).live] == ["user", "link"]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_event_text_in_a_dm_or_an_escalation_stays_text(renderer, value, kind):
    for render in (renderer.render_question, renderer.render_escalation):
        assert_safe(render(question(value, kind)), value, render(question("x", kind)))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=spoof_text, kind=st.sampled_from(HOSTILE_KINDS),
       escalation=st.booleans())
def test_whatever_an_event_holds_the_only_mentions_and_links_are_the_bots(value, kind,
                                                                         escalation):
    """The DM and the escalation make exactly the mentions and links of the same message
    with a harmless value: the person, the configured group, the alert's link."""
    renderer = _renderer()
    render = renderer.render_escalation if escalation else renderer.render_question
    assert_safe(render(question(value, kind)), value, render(question("x", kind)))


_RENDERERS: list[SlackRenderer] = []


def _renderer() -> SlackRenderer:
    if not _RENDERERS:
        _RENDERERS.append(SlackRenderer())
    return _RENDERERS[0]


def test_render_previews_the_question_and_the_escalation(tmp_path, capsys):
    """bot.py render --question / --escalation: each person [confirm] would ask, for each
    example; successful_login asks nobody."""
    from voisobot import cli

    path = tmp_path / "config.toml"
    path.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n'
                    '[confirm]\nescalate_usergroup = "SRESPOND01"\n')
    assert cli.main(["--config", str(path), "render", "--question", "user/password_changed"],
                    {}) == 0
    out = capsys.readouterr().out
    assert out.count("# user/password_changed: question to the") == 2  # user, then admin
    assert out.count('"action_id": "voiso_confirm_yes"') == 2
    assert cli.main(["--config", str(path), "render", "--escalation", "unauthorized_ip"],
                    {}) == 0
    out = capsys.readouterr().out
    assert "# app_login/unauthorized_ip: escalation" in out and "SRESPOND01" in out
    assert cli.main(["--config", str(path), "render", "--question", "successful_login"],
                    {}) == 0
    assert "nobody is asked" in capsys.readouterr().out


def test_render_teams_bot_previews_the_question_and_escalation_cards(tmp_path, capsys):
    """bot.py render --teams-bot --question / --escalation: the Teams cards, schema-valid,
    the question's with its two Action.Execute answers; a webhook cannot ask anyone."""
    import json

    from tests.fakes.adaptive_card_schema import validate_card
    from voisobot import cli

    path = tmp_path / "config.toml"
    path.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n')
    for what, verbs in (("--question", ["voiso_confirm_yes", "voiso_confirm_no"]),
                        ("--escalation", [])):
        assert cli.main(["--config", str(path), "render", "--teams-bot", what,
                         "app_login/unauthorized_ip"], {}) == 0
        out = capsys.readouterr().out
        card = json.loads(out[out.index("\n") + 1:])
        validate_card(card)
        assert [a.get("verb") for a in card.get("actions", [])
                if a["type"] == "Action.Execute"] == verbs
    assert cli.main(["--config", str(path), "render", "--teams", "--question"], {}) == 2
    assert "cannot ask anyone" in capsys.readouterr().err
