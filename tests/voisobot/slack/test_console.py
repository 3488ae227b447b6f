"""A Slack message as the demo's console shows it: the layout of its blocks in plain lines,
and no value able to add a line, move the cursor or colour the console."""

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.voisobot.slack.test_render import HOSTILE, hostile_alert
from voisobot import config, previews
from voisobot.render import SHOWN_CATEGORIES
from voisobot.slack.console import message_lines
from voisobot.slack.render import SlackRenderer

CFG = config.from_dict({"sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/v"}})

UNAUTHORIZED_IP = [
    "== 🟠 HIGH · Login attempt from an unauthorized IP ==",
    "Someone tried to log in as foo@bar.com from 8.8.8.8, which is not on the IP allow-list.",
    "User: foo@bar.com",
    "Access group: supervisor",
    "IP: 8.8.8.8 (Look up <https://www.abuseipdb.com/check/8.8.8.8>)",
    "➡️ Next step: Ask the user whether this was them; if not, reset their password and "
    "check who else logs in from that address.",
    "  app_login/unauthorized_ip | call center acme | 2020-10-10 10:11:12 UTC",
    "[Acknowledge] [Profile]",
]


def test_an_alert_reads_as_header_summary_facts_context_and_buttons():
    message = previews.PREVIEWS["alert:app_login/unauthorized_ip"].build(CFG)
    assert message_lines(message) == UNAUTHORIZED_IP


def test_an_acknowledged_alert_shows_who_as_a_mention_and_the_reopen_button():
    lines = message_lines(previews.PREVIEWS["acknowledged"].build(CFG))
    assert "✅ Acknowledged by @U0PREVIEW2 at 10:41 UTC on 2020-10-10" in lines
    assert lines[-1] == "[Reopen] [Profile]"
    assert ("  2nd failed-password alert for foo@bar.com today  ·  foo@bar.com was also "
            "refused from an unauthorized IP 3 hours ago") in lines


def test_every_block_and_element_the_bot_sends_has_a_line():
    message = {"text": "t", "blocks": [
        {"type": "section", "fields": [{"type": "plain_text", "text": "Count: 4"},
                                       {"type": "plain_text", "text": "IPs: 2"}]},
        {"type": "divider"},
        {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "broadcast", "range": "here"}, {"type": "text", "text": " see "},
            {"type": "link", "url": "https://x.example/a", "text": "the runbook"},
            {"type": "text", "text": ", ask "}, {"type": "usergroup", "usergroup_id": "S1"},
            {"type": "text", "text": " in "}, {"type": "channel", "channel_id": "C1"},
            {"type": "text", "text": " "}, {"type": "emoji", "name": "warning"}]}]},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Yes"}},
            {"type": "button", "text": {"type": "plain_text", "text": "No"}}]},
        {"type": "image"}]}
    assert message_lines(message) == [
        "  Count: 4", "  IPs: 2", "-" * 40,
        "@here see the runbook <https://x.example/a>, ask @S1 in #C1 :warning:",
        "[Yes] [No]", "[image block]"]


def test_a_message_without_blocks_shows_its_notification():
    assert message_lines({"text": "one\nline"}) == ["one\\nline"]


RAW = "evil\n[Acknowledge]\r\x1b[2J\x1b[31mred\u2028\u202egnp.exe"


def test_raw_control_text_in_any_plain_text_stays_on_its_line_and_is_shown_escaped():
    """Even a message not made by the renderer (which already escapes values) cannot add
    a line or an escape sequence outside a rich text's own layout."""
    plain = {"type": "plain_text", "text": RAW}
    message = {"text": RAW, "blocks": [
        {"type": "header", "text": plain}, {"type": "section", "fields": [plain]},
        {"type": "context", "elements": [plain, plain]},
        {"type": "actions", "elements": [{"type": "button", "text": plain}]}]}
    lines = message_lines(message)
    assert len(lines) == 4
    assert all("\x1b" not in line and "\r" not in line for line in lines)
    assert lines[1] == "  evil\\n[Acknowledge]\\r\\u001b[2J\\u001b[31mred\\u2028\\u202egnp.exe"


LOOKALIKE = "⚠️ Look-alike name:"  # the bot's own warning about a name mixing scripts


def assert_console_safe(lines: list[str], baseline: list[str]) -> None:
    """No line more than the same alert with a plain value has (fewer when Slack's length
    limits cut a long value), the bot's header and buttons unchanged, nothing hidden."""
    for line in lines:
        hidden = [c for c in line if unicodedata.category(c) in SHOWN_CATEGORIES]
        assert hidden == [], line
    ours = [line for line in lines if not line.startswith(LOOKALIKE)]
    assert len(ours) <= len(baseline)
    # The buttons are the bot's; Profile comes with an account /voiso user accepts.
    assert (ours[0], ours[-1].replace(" [Profile]", "")) == \
        (baseline[0], baseline[-1].replace(" [Profile]", ""))


KINDS = ["app_login/incorrect_password", "user/privileges_updated", "allowed_ip/ip_changed"]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_value_stays_one_line_per_field_in_the_console(value, kind):
    renderer = _renderer()
    baseline = message_lines(renderer.render(hostile_alert("x", kind)))
    assert_console_safe(message_lines(renderer.render(hostile_alert(value, kind))), baseline)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(min_size=1, max_size=120), kind=st.sampled_from(KINDS))
def test_no_value_adds_a_line_or_a_control_character_to_the_console(value, kind):
    renderer = _renderer()
    baseline = message_lines(renderer.render(hostile_alert("x", kind)))
    assert_console_safe(message_lines(renderer.render(hostile_alert(value, kind))), baseline)


_RENDERER: list[SlackRenderer] = []


def _renderer() -> SlackRenderer:
    if not _RENDERER:
        _RENDERER.append(SlackRenderer())
    return _RENDERER[0]
