"""The Teams bot's alert card: the webhook card plus Universal Actions (Action.Execute)
for Acknowledge and Reopen, valid Adaptive Card 1.4, as safe with hostile text as the
webhook card."""

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.adaptive_card_schema import validate_card
from tests.voisobot.slack.test_render import HOSTILE, hostile_alert, parse
from tests.voisobot.teams.test_cards import LOOKUP, TEAMS_HOSTILE, assert_safe, example
from voisobot import cli, samples
from voisobot.presses import ACK_ACTION, PROFILE_ACTION, REOPEN_ACTION
from voisobot.render import AlertView
from voisobot.teams.cards import TeamsRenderer, envelope


@pytest.fixture(scope="module")
def renderer():
    return TeamsRenderer(ip_lookup_url=LOOKUP)


def executes(card: dict) -> list[dict]:
    return [a for a in card.get("actions", []) if a["type"] == "Action.Execute"]


def acks(card: dict) -> list[dict]:
    """The card's Acknowledge or Reopen (its Universal Actions but Profile)."""
    return [a for a in executes(card) if a["verb"] != PROFILE_ACTION]


def without_executes(card: dict) -> dict:
    """The card as the webhook checks see it (they allow no action but the bot's links)."""
    return {**card, "actions": [a for a in card.get("actions", [])
                                if a["type"] != "Action.Execute"]}


@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_every_kind_from_medium_up_gets_an_acknowledge_universal_action(renderer, kind):
    """And a Profile button after it, as in Slack: every example names an account."""
    view = dataclasses.replace(example(kind), alert_id=42)
    card = renderer.bot_card(view)
    validate_card(card)
    expected = [] if view.severity in ("info", "low") else [
        {"type": "Action.Execute", "title": "Acknowledge", "verb": ACK_ACTION,
         "data": {"alert": 42}, "style": "positive"}]
    assert executes(card) == [*expected, {"type": "Action.Execute", "title": "Profile",
                                          "verb": PROFILE_ACTION, "data": {"alert": 42}}]


def test_no_account_no_profile_button(renderer):
    body = {"timestamp": "2024-01-01T00:00:00Z", "type": "a", "event": "b",
            "params": {"user": "not an address"}}
    card = renderer.bot_card(AlertView(parse(body), "info", alert_id=3))
    validate_card(card)
    assert executes(card) == []


@pytest.mark.parametrize(("threshold", "offered"), [
    ("info", ["info", "low", "medium", "high", "critical"]),
    ("medium", ["medium", "high", "critical"]), ("critical", ["critical"])])
def test_ack_min_severity_decides_which_bot_cards_offer_acknowledge(threshold, offered):
    renderer = TeamsRenderer(ack_min_severity=threshold)
    view = dataclasses.replace(example("user/user_added"), alert_id=3)
    assert [severity for severity in ("info", "low", "medium", "high", "critical")
            if acks(renderer.bot_card(dataclasses.replace(view, severity=severity)))
            ] == offered


def test_an_acknowledged_info_card_still_offers_reopen():
    view = dataclasses.replace(example("app_login/successful_login"), alert_id=7,
                               severity="info", acked_by="UALICE0001",
                               acked_at=datetime(2026, 11, 30, 14, 2, tzinfo=UTC))
    card = TeamsRenderer().bot_card(view)
    assert [a["verb"] for a in executes(card)] == [REOPEN_ACTION, PROFILE_ACTION]


def test_an_acknowledged_card_names_who_and_offers_reopen(renderer):
    view = dataclasses.replace(example("app_login/unauthorized_ip"), alert_id=7,
                               acked_by="UALICE0001",
                               acked_at=datetime(2026, 11, 30, 14, 2, tzinfo=UTC))
    card = renderer.bot_card(view)
    validate_card(card)
    assert [(a["verb"], a["data"]) for a in acks(card)] == [(REOPEN_ACTION, {"alert": 7})]
    assert "✅ Acknowledged by UALICE0001 at 2026-11-30 14:02:00 UTC" in json.dumps(
        card, ensure_ascii=False)


@pytest.mark.parametrize("value", [*TEAMS_HOSTILE, *HOSTILE[:8]])
def test_hostile_values_in_a_bot_card_stay_text(renderer, value):
    card = renderer.bot_card(hostile_alert(value, "app_login/incorrect_password"))
    validate_card(card)
    assert_safe(envelope(without_executes(card)), value)
    assert [a["data"] for a in acks(card)] == [{"alert": 1}]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(min_size=1, max_size=200) | st.sampled_from(HOSTILE),
       kind=st.sampled_from(["app_login/unauthorized_ip", "user/user_added", "unknown"]))
def test_no_value_makes_a_bot_card_link_mention_or_break(value, kind):
    card = _shared().bot_card(hostile_alert(value, kind))
    validate_card(card)
    assert_safe(envelope(without_executes(card)), value)


def test_render_teams_bot_prints_every_kinds_bot_card(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n')
    assert cli.main(["--config", str(path), "render", "--teams-bot"], {}) == 0
    out = capsys.readouterr().out
    assert out.count('"verb": "voiso_ack"') == 9  # the 3 info and low examples have none


_SHARED: list[TeamsRenderer] = []


def _shared() -> TeamsRenderer:
    if not _SHARED:
        _SHARED.append(TeamsRenderer(ip_lookup_url=LOOKUP))
    return _SHARED[0]
