"""Slack rendering: expected output per template, Block Kit validity, hostile text,
fallbacks when a template fails, the user's overrides, Slack's limits."""

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import Block

from tests.slack_display import assert_shown_literally, blocks_of, readable, shown
from voisobot import events, samples
from voisobot.alert_extras import NEXT_STEPS, AlertOptions
from voisobot.config import TeamsConfig
from voisobot.render import (
    GENERIC_TEMPLATE,
    SEVERITY_EMOJI,
    AlertView,
    compile_templates,
    one_line,
    template_name,
)
from voisobot.routing import severity_of
from voisobot.slack.render import BUILTIN_TEMPLATES, SEVERITY_COLOR, SlackRenderer
from voisobot.slack.text import truncate, truncate_escaped

ROOT = Path(__file__).resolve().parents[3]
EXPECTED = Path(__file__).resolve().parents[1] / "expected" / "slack"
UPDATE = os.environ.get("UPDATE_EXPECTED") == "1"  # rewrite the expected files, then review
RUNBOOK = "https://wiki.example.com/runbooks/unauthorized-ip?from=voiso&x=1"
# As a deployment has it: the default look-up link, and a runbook for one kind.
OPTIONS = AlertOptions(ip_lookup_url=TeamsConfig().ip_lookup_url,
                       runbooks={"app_login/unauthorized_ip": RUNBOOK})


def parse(body: dict) -> events.Event:
    return events.parse(json.dumps(body).encode())


def alert_for(kind: str, **params) -> AlertView:
    body = samples.example(kind)
    body["params"].update(params)
    event = parse(body)
    return AlertView(event, severity_of(event, {}), alert_id=42)


def all_texts(value):
    """Every string in a rendered message."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from all_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_texts(item)


@pytest.fixture(scope="module")
def renderer():
    return SlackRenderer(options=OPTIONS)


def buttons(message: dict) -> list[str]:
    return [e["action_id"] for b in blocks_of(message) if b["type"] == "actions"
            for e in b["elements"]]


def assert_valid_block_kit(message: dict) -> None:
    """Every block, and every attachment, as slack_sdk's models check them."""
    for block in blocks_of(message):
        assert Block.parse(block).to_dict() == block
    for attachment in message.get("attachments", []):
        model = BlockAttachment(blocks=[Block.parse(b) for b in attachment["blocks"]],
                                color=attachment["color"])
        model.validate_json()
        assert {k: v for k, v in model.to_dict().items() if k != "text"} == attachment


@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_each_template_renders_its_expected_message(renderer, kind, caplog):
    message = renderer.render(alert_for(kind))
    expected_file = EXPECTED / f"{kind.replace('/', '.')}.json"
    if UPDATE:
        expected_file.parent.mkdir(parents=True, exist_ok=True)
        expected_file.write_text(json.dumps(message, indent=2, ensure_ascii=False) + "\n")
    assert message == json.loads(expected_file.read_text())
    assert not caplog.records, "the kind's own template must not fall back"
    assert renderer.template_for(kind) == template_name(kind)


def test_the_generic_template_renders_an_unknown_kind(renderer):
    event = parse({"timestamp": "2024-05-06T07:08:09.1Z", "type": "app_login",
                   "event": "mfa_failed", "callcenter": "acme",
                   "params": {"user": "x@y.z", "factor": "totp"}})
    message = renderer.render(AlertView(event, "medium"))
    assert renderer.template_for(event.kind) == GENERIC_TEMPLATE
    texts = " ".join(all_texts(message))
    assert "app_login/mfa_failed" in texts and "totp" in texts and "x@y.z" in texts


@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_every_message_is_valid_block_kit_with_its_buttons(renderer, kind):
    """Valid Block Kit, attachment included; Acknowledge from medium up (the default
    ack_min_severity), and a Profile button wherever the event names an account."""
    message = renderer.render(alert_for(kind))
    assert_valid_block_kit(message)
    severity = severity_of(alert_for(kind).event, {})
    (actions,) = [b for b in blocks_of(message) if b["type"] == "actions"]
    assert actions is blocks_of(message)[-1]
    assert [e["action_id"] for e in actions["elements"]] == (
        ["voiso_ack"] if severity not in ("info", "low") else []) + ["voiso_profile"]
    assert all(json.loads(e["value"]) == {"alert": 42} for e in actions["elements"])
    assert message["text"].startswith(SEVERITY_EMOJI[severity])  # it leads the notification


@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_the_header_leads_and_the_rest_has_the_severitys_colour_bar(renderer, kind):
    message = renderer.render(alert_for(kind))
    severity = severity_of(alert_for(kind).event, {})
    assert [b["type"] for b in message["blocks"]] == ["header"]  # text stays a notification
    (attachment,) = message["attachments"]
    assert attachment["color"] == SEVERITY_COLOR[severity]
    assert set(attachment) == {"color", "blocks"}
    header = message["blocks"][0]["text"]["text"]
    assert header.startswith(f"{SEVERITY_EMOJI[severity]} {severity.upper()} · ")


def test_header_says_in_words_what_happened(renderer):
    headers = {kind: renderer.render(alert_for(kind))["blocks"][0]["text"]["text"]
               for kind in samples.EXAMPLES}
    assert headers["app_login/unauthorized_ip"] == "🟠 HIGH · Login attempt from an unauthorized IP"
    assert headers["user/privileges_updated"] == "🔴 CRITICAL · Privileges raised to admin"
    assert len(set(headers.values())) == len(headers)


@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_the_time_is_shown_once(renderer, kind):
    alert = alert_for(kind)
    assert readable(renderer.render(alert)).count(one_line(alert.event.time)) == 1


@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_each_kind_says_its_next_step_and_only_the_configured_runbook_is_linked(renderer,
                                                                                 kind):
    message = renderer.render(alert_for(kind))
    (line,) = [b for b in blocks_of(message) if b.get("block_id") == "voiso_next_step"]
    text = readable({"blocks": [line]})
    assert NEXT_STEPS[kind] in text
    links = [e for s in line["elements"] for e in s["elements"] if e["type"] == "link"]
    if kind == "app_login/unauthorized_ip":
        assert links == [{"type": "link", "url": RUNBOOK, "text": "Open the runbook"}]
    else:
        assert links == []


def test_an_unknown_kind_gets_the_generic_next_step(renderer):
    event = parse({"timestamp": "2024-05-06T07:08:09.1Z", "type": "app_login",
                   "event": "mfa_failed", "params": {"user": "x@y.z"}})
    assert "Check with the people named above" in readable(renderer.render(
        AlertView(event, "medium")))


def look_ups(message: dict) -> list[str]:
    return [e["url"] for b in blocks_of(message) if b["type"] == "rich_text"
            for s in b["elements"] for e in s["elements"]
            if e["type"] == "link" and e["text"] == "Look up"]


def test_each_single_address_has_a_look_up_link_and_ranges_have_none(renderer):
    assert look_ups(renderer.render(alert_for("app_login/unauthorized_ip"))) == [
        "https://www.abuseipdb.com/check/8.8.8.8"]
    assert look_ups(renderer.render(alert_for("app_login/ip_changed"))) == [
        "https://www.abuseipdb.com/check/8.8.8.8", "https://www.abuseipdb.com/check/4.4.4.2"]
    for kind in ("allowed_ip/ip_added", "allowed_ip/ip_changed"):  # ranges: nothing to look up
        assert look_ups(renderer.render(alert_for(kind))) == []
    assert look_ups(SlackRenderer().render(alert_for("app_login/unauthorized_ip"))) == []


@pytest.mark.parametrize("ip", ["fe80::1%ON ALLOW-LIST", "8.8.8.8:443", "[::1]", "8.8.8.8/32",
                                "8.8.8.8 ", "https://evil.example/", "٨.٨.٨.٨"])
def test_only_a_single_plain_address_is_looked_up(renderer, ip):
    body = samples.example("app_login/unauthorized_ip")
    body["params"]["ip"] = ip
    try:
        event = parse(body)
    except events.MalformedEvent:
        return  # the intake refuses it: nothing to render
    assert look_ups(renderer.render(AlertView(event, "high", alert_id=1))) == []


@pytest.mark.parametrize(("threshold", "shown_from"), [
    ("info", "info"), ("low", "low"), ("medium", "medium"), ("high", "high"),
    ("critical", "critical")])
def test_acknowledge_is_offered_from_ack_min_severity_up(threshold, shown_from):
    renderer = SlackRenderer(options=AlertOptions(ack_min_severity=threshold))
    event = alert_for("user/user_added").event
    offered = [severity for severity in SEVERITY_EMOJI
               if "voiso_ack" in buttons(renderer.render(AlertView(event, severity, 7)))]
    order = list(SEVERITY_EMOJI)
    assert offered == order[order.index(shown_from):]


def test_an_acknowledged_alert_below_the_threshold_still_offers_reopen(renderer):
    from datetime import UTC, datetime
    alert = dataclasses.replace(alert_for("app_login/successful_login"), acked_by="U0ACK1",
                                acked_via="slack", acked_at=datetime(2024, 1, 1, tzinfo=UTC))
    assert buttons(renderer.render(alert)) == ["voiso_reopen", "voiso_profile"]


def test_no_account_no_profile_button_and_no_button_no_actions_block(renderer):
    body = {"timestamp": "2024-01-01T00:00:00Z", "type": "a", "event": "b",
            "params": {"user": "not an address"}}
    message = renderer.render(AlertView(parse(body), "info", alert_id=3))
    assert buttons(message) == [] and not any(b["type"] == "actions" for b in blocks_of(message))
    assert_valid_block_kit(message)


HOSTILE = [
    "<!channel>", "<!here>", "<!everyone>", "<@U123>", "<#C123>", "<https://x|y>",
    "<mailto:a@b.c|click>", "&lt;!channel&gt;", "{{7*7}}", "{% raw %}", "\" } ] {",
    "\\", "\\u003c!channel\\u003e", "line1\nline2\r\n*Severity:* info", "\u202eevil",
    "\x00\x01\x1b[2J", "\ud800", "x" * 5000, "*bold* _it_ ~s~ `code`",
]


def hostile_alert(value: str, kind: str) -> AlertView:
    if kind == "unknown":
        body = {"timestamp": "2024-01-01T00:00:00Z", "type": value or "t", "event": value or "e",
                "callcenter": value, "params": {"user": value, "who": value, value: value}}
    else:
        body = samples.example(kind)
        for key in ("user", "who", "access_group"):
            if key in body["params"]:
                body["params"][key] = value
        body["callcenter"] = value
        if kind == "user/privileges_updated":
            body["params"].update({"from": value, "to": value})
    raw = json.dumps(body)
    return AlertView(events.parse(raw.encode()), "high", alert_id=1)


def assert_safe(message: dict, value: str, baseline: dict | None = None) -> None:
    """Valid JSON and Block Kit, and ``value`` shown literally (tests/slack_display.py)."""
    assert json.loads(json.dumps(message)) == message
    assert_valid_block_kit(message)
    for text in all_texts(message):
        # (a line break of the template's own, between facts, is the only one allowed)
        assert not _HIDDEN.search(text), "an invisible or line-breaking character passed"
    baseline = baseline or message
    assert_shown_literally(message, one_line(value)[:100], baseline, must_appear=False)
    if "{{7*7}}" in value:
        assert "{{7*7}}" in json.dumps(message, ensure_ascii=False)
        assert "49" not in json.dumps(message)


LOOK_UP = TeamsConfig().ip_lookup_url.removesuffix("{ip}")


def assert_only_the_bots_links_and_buttons(message: dict) -> None:
    """Every link is the configured runbook or a look-up of a plain address; every button
    is one of the alert's own, with the value the bot made."""
    for block in blocks_of(message):
        for element in (e for s in block.get("elements", []) if block["type"] == "rich_text"
                        for e in s["elements"]):
            if element["type"] == "link":
                url = element["url"]
                assert url == RUNBOOK or (url.startswith(LOOK_UP) and events.plain_address(
                    url.removeprefix(LOOK_UP)) == url.removeprefix(LOOK_UP)), url
        if block["type"] == "actions":
            for button in block["elements"]:
                assert button["action_id"] in ("voiso_ack", "voiso_reopen", "voiso_profile")
                assert set(json.loads(button["value"])) == {"alert"} and "url" not in button


_HIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ue000-\uf8ff\U000e0000-\U000e007f\ud800-\udfff]")
HOSTILE_KINDS = ["app_login/incorrect_password", "user/privileges_updated",
                 "allowed_ip/ip_changed", "unknown"]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_known_hostile_values_are_shown_as_typed_and_make_nothing_live(renderer, value, kind):
    message = renderer.render(hostile_alert(value, kind))
    assert_safe(message, value, renderer.render(hostile_alert("x", kind)))
    assert_only_the_bots_links_and_buttons(message)
    if value.isprintable() and len(value) < 100:
        assert_shown_literally(message, value, renderer.render(hostile_alert("x", kind)))


# An alphabet rich in what Slack's mrkdwn and control sequences react to, and in Unicode.
SPOOF_ALPHABET = st.sampled_from([*"*_~`>:<&!@#|^-+.=/\\ \"'()[]{}0123456789", "here",
                                  "channel", "U0ABC123", "https://", "\n", "é", "\u0430",
                                  "\u202e", "\u2028", "\U000e0041", "\ud800",
                                  ":large_green_circle:", "<!channel>", "*bold*"])
spoof_text = st.lists(SPOOF_ALPHABET, min_size=1, max_size=30).map("".join) \
    | st.text(min_size=1, max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=spoof_text, kind=st.sampled_from(["app_login/unauthorized_ip", "user/user_added",
                                                  "allowed_ip/ip_changed", "unknown"]))
def test_whatever_a_field_holds_slack_shows_it_literally(value, kind):
    """Issue 9, class 1: for every field of the alert, what Slack shows is the input as
    typed (invisible characters shown as escapes), in one piece, and it makes no mention,
    link, emoji or style change."""
    renderer = _shared_renderer()
    alert = hostile_alert(value, kind)
    message = renderer.render(alert)
    baseline = renderer.render(hostile_alert("x", kind))
    assert_safe(message, value, baseline)
    assert_only_the_bots_links_and_buttons(message)
    # as stored: an unpaired surrogate is kept as U+FFFD (events.py)
    assert_shown_literally(message, one_line(alert.event.callcenter), baseline)


_RENDERER: list[SlackRenderer] = []


def _shared_renderer() -> SlackRenderer:
    if not _RENDERER:
        _RENDERER.append(SlackRenderer(options=OPTIONS))
    return _RENDERER[0]


def test_the_spoof_from_the_issue_stays_one_literal_value(renderer):
    name = "x* from *10.0.0.1*, which IS on the allow-list (ignore) :large_green_circle:"
    message = renderer.render(alert_for("app_login/unauthorized_ip", user=name))
    summary = blocks_of(message)[1]["elements"][0]["elements"]
    assert summary[0] == {"type": "text", "text": "Someone tried to log in as "}
    assert summary[1] == {"type": "text", "text": name, "style": {"bold": True}}
    assert shown(message).live == shown(renderer.render(alert_for(
        "app_login/unauthorized_ip"))).live and not shown(message).parsed
    assert message["mrkdwn"] is False and name in message["text"]


def test_template_tags_make_styles_and_values_never_do(renderer):
    message = renderer.render(alert_for("app_login/unauthorized_ip", user="<b>x</b> <!here>"))
    summary = blocks_of(message)[1]["elements"][0]["elements"]
    assert summary[1] == {"type": "text", "text": "<b>x</b> <!here>", "style": {"bold": True}}
    assert message["text"].count("&lt;") == 3 and "<" not in message["text"]


def test_truncation_is_visible_and_never_splits_an_escape():
    assert truncate("abcdef", 4) == "abc…"
    assert truncate_escaped("ab&amp;cdef", 6) == "ab…"
    assert truncate("short", 10) == "short"


def test_very_long_values_are_truncated_within_slack_limits(renderer):
    message = renderer.render(alert_for("app_login/successful_login", user="u" * 10_000))
    for block in blocks_of(message):
        if block["type"] == "rich_text":
            section = block["elements"][0]["elements"]
            assert sum(len(e.get("text", "")) for e in section) <= 3000
    assert blocks_of(message)[1]["elements"][0]["elements"][-1]["text"].endswith("…")
    assert len(message["text"]) <= 3000


def test_generic_template_shows_at_most_ten_facts(renderer):
    event = parse({"timestamp": "2024-01-01T00:00:00Z", "type": "a", "event": "b",
                   "params": {f"k{i:02d}": i for i in range(30)}})
    facts = blocks_of(renderer.render(AlertView(event, "low")))[2]["elements"][0]["elements"]
    assert [e["text"] for e in facts if e.get("style")] == ["Kind:"] + [
        f"k{i:02d}:" for i in range(9)]


def override(tmp_path, kind: str, text: str) -> SlackRenderer:
    (tmp_path / template_name(kind)).write_text(text)
    return SlackRenderer(tmp_path)


@pytest.mark.parametrize("broken", [
    '{"text": "x", "blocks": [',                                  # invalid JSON
    '{% extends "_base.json.j2" %}{% block title %}{{ nope.x }}{% endblock %}',  # undefined
    "{% if %}",                                                   # template syntax error
    '{"text": "{{ event.user|safe }}", "blocks": []}',            # unsafe filter removed
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",             # sandbox escape attempt
    '{"text": "x", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]}',
    '{"text": "x", "blocks": [{"type": "image", "image_url": "https://x", "alt_text": "x"}]}',
    '{"text": "x", "blocks": [{"type": "rich_text", "elements": [{"type": "rich_text_section",'
    ' "elements": [{"type": "user", "user_id": "{{ event.user }}"}]}]}]}',
    '{"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"},'
    ' "accessory": {"type": "button", "text": {"type": "plain_text", "text": "x"}}}]}',
    '{"text": "{{ event.user|mention }}", "blocks": []}',         # not a Slack ID of ours
    '{"text": "x", "blocks": [{"type": "actions", "elements": [{"type": "button", "text": '
    '{"type": "plain_text", "text": "x"}, "url": "https://evil.example/{{ event.user }}"}]}]}',
    '{"text": "x", "blocks": [{"type": "actions", "elements": [{"type": "button", "text": '
    '{"type": "plain_text", "text": "x"}, "value": "{{ event.user|button_value }}"}]}]}',
    '{"text": "{{ event.user|link("x") }}", "blocks": []}',
])
def test_a_failing_template_falls_back_to_generic_and_logs_its_name(tmp_path, caplog, broken):
    renderer = override(tmp_path, "app_login/unauthorized_ip", broken)
    with caplog.at_level(logging.ERROR, logger="voisobot.render"):
        message = renderer.render(alert_for("app_login/unauthorized_ip"))
    assert message["blocks"][0]["text"]["text"] == "🟠 HIGH · Voiso security event"
    assert "app_login.unauthorized_ip.json.j2 failed" in caplog.text


def test_a_broken_generic_template_still_delivers_a_minimal_message(tmp_path, caplog):
    (tmp_path / GENERIC_TEMPLATE).write_text("{{ broken")
    renderer = override(tmp_path, "user/user_added", "{{ also broken")
    message = renderer.render(alert_for("user/user_added", user="<!here>"))
    assert "&lt;!here&gt;" in message["text"] and "<" not in message["text"]
    assert_safe(message, "<!here>")
    assert "<!here>" in message["blocks"][0]["elements"][0]["elements"][0]["text"]
    assert caplog.text.count("failed") == 2


def test_the_minimal_message_escapes_an_unknown_kinds_name_too(tmp_path, caplog):
    (tmp_path / GENERIC_TEMPLATE).write_text("{{ broken")
    body = {"timestamp": "2024-01-01T00:00:00Z", "type": "<!channel>", "event": '"x\\',
            "params": {}}
    message = SlackRenderer(tmp_path).render(AlertView(events.parse(json.dumps(body).encode()),
                                                       "medium"))
    assert "Voiso &lt;!channel&gt;/\"x\\ at" in message["text"]
    assert "<" not in message["text"]
    assert_safe(message, "<!channel>")


def test_the_users_template_overrides_the_builtin_one(tmp_path):
    renderer = override(tmp_path, "user/user_added",
                        '{% extends "_base.json.j2" %}{% block title %}Welcome aboard'
                        "{% endblock %}")
    message = renderer.render(alert_for("user/user_added"))
    assert message["blocks"][0]["text"]["text"] == "🟡 MEDIUM · Welcome aboard"
    assert SlackRenderer().render(alert_for("user/user_added"))["blocks"][0]["text"]["text"] \
        == "🟡 MEDIUM · User added"


def test_builtin_templates_cover_every_kind():
    names = {p.name for p in BUILTIN_TEMPLATES.glob("*.json.j2")}
    assert {template_name(kind) for kind in samples.EXAMPLES} | {GENERIC_TEMPLATE} <= names


def test_render_command_prints_every_kind(tmp_path):
    result = subprocess.run([sys.executable, "bot.py", "render"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    headers = re.findall(r"^# (\S+): severity (\w+), template (\S+)$", result.stdout, re.M)
    assert [kind for kind, _, _ in headers] == list(samples.EXAMPLES)
    bodies = re.split(r"^# .*$", result.stdout, flags=re.M)[1:]
    assert all(json.loads(body)["blocks"] for body in bodies)


def test_render_command_for_one_kind_and_an_unknown_one(capsys):
    from voisobot import cli

    assert cli.main(["render", "unauthorized_ip"]) == 0
    assert "# app_login/unauthorized_ip: severity high" in capsys.readouterr().out
    assert cli.main(["render", "no_such_kind"]) == 2


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_in_a_group_summary_stay_text(renderer, value):
    alert = hostile_alert(value, "app_login/incorrect_password")
    group = {"count": 3, "first_seen": "2024-01-01 00:00:00 UTC",
             "last_seen": "2024-01-01 00:05:00 UTC", "users": 2, "ips": 1,
             "top_users": [(value, 2), ("x@y.z", 1)], "top_ips": [(value, 3)]}
    grouped = AlertView(alert.event, alert.severity, alert_id=1, group=group)
    message = renderer.render(grouped)
    assert "[3 events]" in message["text"]
    assert_safe(message, value)
    assert_only_the_bots_links_and_buttons(message)
    assert_safe(renderer.render_reply(grouped), value)


# --- nothing crashes the renderer (issue 9, class 5) ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False,
                                                                      allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25)


def _accepted(params: dict, type_: str, event: str) -> AlertView | None:
    """The alert of a body the parser accepts, or None (rejected with a reason: the
    intake's side, test_events.py)."""
    body = {"timestamp": "2024-01-01T00:00:00Z", "type": type_, "event": event,
            "callcenter": "acme", "params": params}
    try:
        return AlertView(events.parse(json.dumps(body).encode()), "medium", alert_id=1)
    except events.MalformedEvent:
        return None


accepted_alerts = st.builds(_accepted, st.dictionaries(st.text(max_size=12), json_values,
                                                       max_size=8),
                            st.text(min_size=1, max_size=20),
                            st.text(min_size=1, max_size=20)).filter(bool)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alert=accepted_alerts)
def test_any_event_the_parser_accepts_renders_as_valid_block_kit(alert):
    message = _shared_renderer().render(alert)
    assert_safe(message, "")
    assert_only_the_bots_links_and_buttons(message)
    assert message["blocks"][0]["type"] == "header"


def deep(depth: int):
    value: object = "x"
    for _ in range(depth):
        value = {"k": [value]}
    return value


@pytest.mark.parametrize("depth", [32, 500, 5000])
def test_an_event_nested_too_deep_for_anything_still_gets_a_message(renderer, depth, caplog):
    """The parser caps nesting at 32; an event built past it (an older store, a bug) still
    ends in a message: the fallback chain catches everything, RecursionError included."""
    event = alert_for("app_login/unauthorized_ip").event
    nested = dataclasses.replace(event, type="x", event="y", params={"deep": deep(depth)})
    message = renderer.render(AlertView(nested, "high", alert_id=1))
    assert_safe(message, "")
    assert "x/y" in message["text"]


# --- a runbook URL: config validates it, and it is the one link it makes ------------------------

url_like = st.lists(st.sampled_from([*"https:/wiki.example?#&=|<>\"' \n`\\@%", "https://",
                                     "\u202e", "\ue000", "\ue001", "<!here>", "@U0ABC"]),
                    min_size=1, max_size=25).map("".join) | st.text(max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=url_like)
def test_a_runbook_the_config_accepts_is_exactly_one_link_and_nothing_else(url):
    from voisobot.config import ConfigError, from_dict

    kind = "app_login/unauthorized_ip"
    try:
        cfg = from_dict({"sqs": {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"},
                         "runbooks": {kind: url}})
    except ConfigError as exc:
        assert 'runbooks."app_login/unauthorized_ip"' in str(exc)
        return
    renderer = _runbook_renderer(cfg.runbooks)
    message = renderer.render(alert_for(kind))
    assert_valid_block_kit(message)
    links = [e for b in blocks_of(message) if b["type"] == "rich_text"
             for s in b["elements"] for e in s["elements"] if e["type"] != "text"]
    assert links == [{"type": "link", "url": url, "text": "Open the runbook"}]
    assert shown(message).parsed == []


def _runbook_renderer(runbooks) -> SlackRenderer:
    return SlackRenderer(options=AlertOptions(runbooks=runbooks))


def compiled(renderer: SlackRenderer) -> set[str]:
    return {name for _, name in renderer.env.cache}


def test_compiled_at_start_the_first_alert_of_each_kind_compiles_nothing_more(tmp_path):
    renderer = override(tmp_path, "user/user_added", "{{ broken")  # skipped, not raised
    assert compile_templates(renderer.env, samples.EXAMPLES) >= len(samples.EXAMPLES) - 1
    before = compiled(renderer)
    for kind in samples.EXAMPLES:
        renderer.render(AlertView(parse(samples.example(kind)), "high", alert_id=1))
    assert compiled(renderer) == before
