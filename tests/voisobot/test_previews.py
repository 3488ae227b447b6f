"""``bot.py render --list`` / ``render [--builder] NAME``: every message the bot can send, each
valid for its platform, each showing what its name says, and a Block Kit Builder link that
gives the message back."""

import json
import re
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from tests.fakes.adaptive_card_schema import validate_card
from tests.slack_display import readable, shown
from tests.voisobot.slack.test_render import HOSTILE, hostile_alert
from voisobot import cli, config, previews, samples
from voisobot.previews import PREVIEWS, SLACK, TEAMS_BOT, TEAMS_WEBHOOK
from voisobot.runtime import slack_renderer
from voisobot.slack.console import all_blocks
from voisobot.slack.render import SlackRenderer

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"


@pytest.fixture(scope="module")
def cfg():
    return config.from_dict({"sqs": {"queue_url": QUEUE},
                             "confirm": {"escalate_usergroup": "SRESPOND01"}})


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[sqs]\nqueue_url = "{QUEUE}"\n')
    return path


def action_ids(message: dict) -> list[str]:
    return [e["action_id"] for b in all_blocks(message) if b["type"] == "actions"
            for e in b["elements"]]


def verbs(card: dict) -> list[str]:
    return [a["verb"] for a in card.get("actions", []) if a["type"] == "Action.Execute"]


@pytest.mark.parametrize("name", list(PREVIEWS))
def test_every_listed_preview_renders_a_valid_message_for_its_platform(cfg, name):
    preview = PREVIEWS[name]
    message = preview.build(cfg)
    assert json.loads(json.dumps(message)) == message
    if preview.platform == SLACK and message.get("type") == "home":  # a view, not a message
        View(**message).validate_json()
        assert len(message["blocks"]) <= 100
    elif preview.platform == SLACK:
        assert message["text"] and message["blocks"] and message["mrkdwn"] is False
        for block in all_blocks(message):
            assert Block.parse(block).to_dict() == block
    elif preview.platform == TEAMS_WEBHOOK:
        assert message["type"] == "message"
        validate_card(message["attachments"][0]["content"])
    else:
        assert preview.platform == TEAMS_BOT
        validate_card(message)


def test_every_kind_has_an_alert_preview_and_so_has_an_unknown_kind():
    assert {f"alert:{kind}" for kind in samples.EXAMPLES} | {"alert:unknown"} <= set(PREVIEWS)


@pytest.mark.parametrize("kind", list(samples.EXAMPLES))
def test_a_kinds_alert_preview_is_the_message_render_kind_prints(cfg, kind):
    expected = slack_renderer(cfg).render(previews.alert_view(cfg, kind))
    assert PREVIEWS[f"alert:{kind}"].build(cfg) == expected


# What each preview other than a kind's alert must show (name → check of the message).
SHOWS = {
    "alert:unknown": lambda m: m["blocks"][0]["text"]["text"].endswith("Voiso security event")
    and "app_login/mfa_failed" in readable(m) and "voiso_ack" in action_ids(m),
    "group": lambda m: "[4 events]" in m["text"] and "4 events" in readable(m)
    and "Top IPs: 8.8.8.8 (3), 8.8.4.4 (1)" in readable(m) and "voiso_ack" in action_ids(m),
    "storm": lambda m: "[41 events]" in m["text"] and "14 user(s), 2 IP(s)" in readable(m),
    "reply": lambda m: {b["type"] for b in m["blocks"]} <= {"rich_text", "context"}
    and action_ids(m) == [],
    "acknowledged": lambda m: "voiso_reopen" in action_ids(m) and "voiso_ack" not in action_ids(m)
    and ("user", ("user_id", "U0PREVIEW2")) in shown(m).live,
    "question": lambda m: action_ids(m) == ["voiso_confirm_yes", "voiso_confirm_no"],
    "escalation": lambda m: action_ids(m) == []
    and ("usergroup", ("usergroup_id", "SRESPOND01")) in shown(m).live,
    "teams:alert": lambda m: "8.8.8.8" in json.dumps(m["attachments"][0]["content"]),
    "teams:group": lambda m: "4 events" in json.dumps(m["attachments"][0]["content"]),
    "teams:bot-alert": lambda m: verbs(m) == ["voiso_ack", "voiso_profile"],
    "teams:acknowledged": lambda m: verbs(m) == ["voiso_reopen", "voiso_profile"]
    and "Acknowledged by" in json.dumps(m),
    "teams:question": lambda m: verbs(m) == ["voiso_confirm_yes", "voiso_confirm_no"],
    "teams:escalation": lambda m: verbs(m) == [],
    "app-home": lambda m: m["type"] == "home"
    and "voiso_home_ack" not in json.dumps(m)  # the examples raise no alert: none open
    and "user/privileges_updated" in json.dumps(m) and any(c in json.dumps(m, ensure_ascii=False)
                                                           for c in "▁▂▃▄▅▆▇█"),
    "digest": lambda m: m["text"].startswith("Voiso daily digest: 12 events"),
    "teams:digest": lambda m: "digest" in json.dumps(m).lower() and verbs(m) == [],
}


def test_every_preview_but_a_kinds_alert_says_what_it_shows():
    assert set(SHOWS) == {name for name in PREVIEWS if not name.startswith("alert:")} \
        | {"alert:unknown"}


@pytest.mark.parametrize("name", list(SHOWS))
def test_each_preview_shows_what_its_name_says(cfg, name):
    assert SHOWS[name](PREVIEWS[name].build(cfg))


def test_previews_are_the_same_every_run(cfg):
    assert [p.build(cfg) for p in PREVIEWS.values()] == [p.build(cfg) for p in PREVIEWS.values()]


# --- the command ------------------------------------------------------------------------------

def test_render_list_prints_every_name_once_with_its_platform(config_file, capsys):
    assert cli.main(["--config", str(config_file), "render", "--list"], {}) == 0
    rows = [line.split(maxsplit=2) for line in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in rows] == list(PREVIEWS)
    assert [row[1] for row in rows] == [p.platform for p in PREVIEWS.values()]


@pytest.mark.parametrize("name", ["group", "acknowledged", "alert:unknown", "teams:question"])
def test_render_name_prints_that_preview(config_file, capsys, name):
    assert cli.main(["--config", str(config_file), "render", name], {}) == 0
    header, body = capsys.readouterr().out.split("\n", 1)
    assert header == f"# {name}: {PREVIEWS[name].what}"
    cfg = config.load(config_file, {})
    assert json.loads(body) == PREVIEWS[name].build(cfg)


@pytest.mark.parametrize("argv", [["unauthorized_ip"], ["app_login/unauthorized_ip"],
                                  ["--teams", "unauthorized_ip"]])
def test_a_kind_still_renders_as_before(config_file, capsys, argv):
    assert cli.main(["--config", str(config_file), "render", *argv], {}) == 0
    assert capsys.readouterr().out.startswith("# app_login/unauthorized_ip: severity high")


@pytest.mark.parametrize(("argv", "error"), [
    (["--teams", "group"], "is a preview name"),
    (["--question", "acknowledged"], "is a preview name"),
    (["--builder", "teams:alert"], "Slack messages only"),
    (["--builder", "--teams", "unauthorized_ip"], "Slack messages only"),
    (["no_such_name"], "unknown or ambiguous kind"),
])
def test_render_refuses_what_cannot_be_shown(config_file, capsys, argv, error):
    assert cli.main(["--config", str(config_file), "render", *argv], {}) == 2
    assert error in capsys.readouterr().err


# --- the Block Kit Builder link ---------------------------------------------------------------

def test_render_builder_prints_a_link_holding_the_message(config_file, capsys, cfg):
    assert cli.main(["--config", str(config_file), "render", "--builder", "storm"], {}) == 0
    header, link = capsys.readouterr().out.splitlines()
    assert header.startswith("# storm: ")
    assert link.startswith("https://app.slack.com/block-kit-builder/#%7B%22blocks%22%3A")
    message = PREVIEWS["storm"].build(config.load(config_file, {}))
    assert json.loads(urllib.parse.unquote(link.split("#", 1)[1])) == \
        previews.builder_payload(message)


def test_render_builder_works_for_kinds_and_questions_too(config_file, capsys):
    assert cli.main(["--config", str(config_file), "render", "--builder", "--question",
                     "user/password_changed"], {}) == 0
    links = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert len(links) == 2  # the user, then the admin
    for link in links:
        assert "voiso_confirm_yes" in json.dumps(previews.payload_of_builder_url(link))


# Letters, digits, "-._~" and %XX only: nothing can end the fragment, break the line or hide.
_URL_FRAGMENT = re.compile(r"[A-Za-z0-9\-._~]|%[0-9A-F]{2}")


def assert_link_round_trips(message: dict) -> None:
    url = previews.builder_url(message)
    assert previews.payload_of_builder_url(url) == {
        "blocks": message["blocks"], **({"attachments": message["attachments"]}
                                        if message.get("attachments") else {})}
    fragment = url[len(previews.BUILDER_URL):]
    assert _URL_FRAGMENT.sub("", fragment) == ""


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_alert_round_trips_through_its_builder_link(value):
    assert_link_round_trips(SlackRenderer().render(hostile_alert(value, "user/user_added")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(max_size=200))
def test_any_alert_round_trips_through_its_builder_link(value):
    assert_link_round_trips(_renderer().render(hostile_alert(value, "app_login/unauthorized_ip")))


_RENDERER: list[SlackRenderer] = []


def _renderer() -> SlackRenderer:
    if not _RENDERER:
        _RENDERER.append(SlackRenderer())
    return _RENDERER[0]
