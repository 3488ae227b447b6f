"""Slack rendering: expected output per template, Block Kit validity, hostile text,
fallbacks when a template fails, the user's overrides, Slack's limits."""

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
from slack_sdk.models.blocks import Block

from voisobot import events, samples
from voisobot.render import (
    BUILTIN_TEMPLATES,
    GENERIC_TEMPLATE,
    AlertView,
    SlackRenderer,
    nodes,
    slack_text,
    template_name,
    truncate,
)
from voisobot.routing import severity_of

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = Path(__file__).parent / "expected" / "slack"
UPDATE = os.environ.get("UPDATE_EXPECTED") == "1"  # rewrite the expected files, then review


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
    return SlackRenderer()


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
def test_every_message_is_valid_block_kit_with_an_ack_button(renderer, kind):
    message = renderer.render(alert_for(kind))
    for block in message["blocks"]:
        assert Block.parse(block).to_dict() == block
    button = message["blocks"][-1]["elements"][0]
    assert button["action_id"] == "voiso_ack" and json.loads(button["value"]) == {"alert": 42}
    assert message["text"].startswith(":")  # severity emoji leads the notification


def test_header_says_in_words_what_happened(renderer):
    headers = {kind: renderer.render(alert_for(kind))["blocks"][0]["text"]["text"]
               for kind in samples.EXAMPLES}
    assert headers["app_login/unauthorized_ip"] == "Login attempt from an unauthorized IP"
    assert headers["user/privileges_updated"] == "Privileges raised to admin"
    assert len(set(headers.values())) == len(headers)


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


def assert_safe(message: dict, value: str) -> None:
    rendered = json.dumps(message)
    assert json.loads(rendered) == message  # valid JSON both ways
    for text in all_texts(message):
        assert "<" not in text and ">" not in text, "a mention or link could form"
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), "a bare & starts an escape"
        assert not _INVISIBLE_OR_BREAK.search(text), "control or bidi character passed through"
    for block in message["blocks"]:
        Block.parse(block).to_dict()
    for obj in _text_objects(message):
        if obj.get("type") == "mrkdwn":
            assert obj.get("verbatim") is True
    if "{{7*7}}" in value:
        assert "{{7*7}}" in rendered and "49" not in rendered


_INVISIBLE_OR_BREAK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _text_objects(value):
    return [node for node in nodes(value) if "type" in node and isinstance(node.get("text"), str)]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("kind", ["app_login/incorrect_password", "user/privileges_updated",
                                  "allowed_ip/ip_changed", "unknown"])
def test_known_hostile_values_never_become_mentions_links_or_broken_json(renderer, value, kind):
    assert_safe(renderer.render(hostile_alert(value, kind)), value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(min_size=1, max_size=300) | st.sampled_from(HOSTILE),
       kind=st.sampled_from(["app_login/unauthorized_ip", "user/user_added", "unknown"]))
def test_no_value_in_any_field_yields_a_mention_a_link_or_broken_json(value, kind):
    renderer = _shared_renderer()
    assert_safe(renderer.render(hostile_alert(value, kind)), value)


_RENDERER: list[SlackRenderer] = []


def _shared_renderer() -> SlackRenderer:
    if not _RENDERER:
        _RENDERER.append(SlackRenderer())
    return _RENDERER[0]


def test_slack_text_escapes_for_mrkdwn_then_json():
    assert slack_text('<!channel> & "x"\n') == "&lt;!channel&gt; &amp; \\\"x\\\" "
    assert slack_text(None) == ""


def test_truncation_is_visible_and_never_splits_an_escape():
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("ab&amp;cdef", 6) == "ab…"
    assert truncate("short", 10) == "short"


def test_very_long_values_are_truncated_within_slack_limits(renderer):
    message = renderer.render(alert_for("app_login/successful_login", user="u" * 10_000))
    fields = message["blocks"][2]["fields"]
    assert all(len(f["text"]) <= 2000 for f in fields) and fields[0]["text"].endswith("…")
    assert len(message["blocks"][1]["text"]["text"]) <= 3000
    assert len(message["text"]) <= 3000


def test_generic_template_keeps_to_ten_fields(renderer):
    event = parse({"timestamp": "2024-01-01T00:00:00Z", "type": "a", "event": "b",
                   "params": {f"k{i:02d}": i for i in range(30)}})
    assert len(renderer.render(AlertView(event, "low"))["blocks"][2]["fields"]) == 10


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
])
def test_a_failing_template_falls_back_to_generic_and_logs_its_name(tmp_path, caplog, broken):
    renderer = override(tmp_path, "app_login/unauthorized_ip", broken)
    with caplog.at_level(logging.ERROR, logger="voisobot.render"):
        message = renderer.render(alert_for("app_login/unauthorized_ip"))
    assert message["blocks"][0]["text"]["text"] == "Voiso security event"
    assert "app_login.unauthorized_ip.json.j2 failed" in caplog.text


def test_a_broken_generic_template_still_delivers_a_minimal_message(tmp_path, caplog):
    (tmp_path / GENERIC_TEMPLATE).write_text("{{ broken")
    renderer = override(tmp_path, "user/user_added", "{{ also broken")
    message = renderer.render(alert_for("user/user_added", user="<!here>"))
    assert "&lt;!here&gt;" in message["text"] and "<" not in json.dumps(message)
    assert caplog.text.count("failed") == 2


def test_the_minimal_message_escapes_an_unknown_kinds_name_too(tmp_path, caplog):
    (tmp_path / GENERIC_TEMPLATE).write_text("{{ broken")
    body = {"timestamp": "2024-01-01T00:00:00Z", "type": "<!channel>", "event": '"x\\',
            "params": {}}
    message = SlackRenderer(tmp_path).render(AlertView(events.parse(json.dumps(body).encode()),
                                                       "medium"))
    assert "Voiso &lt;!channel&gt;/\"x\\ at" in message["text"]
    assert "<" not in json.dumps(message)


def test_the_users_template_overrides_the_builtin_one(tmp_path):
    renderer = override(tmp_path, "user/user_added",
                        '{% extends "_base.json.j2" %}{% block title %}Welcome aboard'
                        "{% endblock %}")
    message = renderer.render(alert_for("user/user_added"))
    assert message["blocks"][0]["text"]["text"] == "Welcome aboard"
    assert SlackRenderer().render(alert_for("user/user_added"))["blocks"][0]["text"]["text"] \
        == "User added"


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
    import bot

    assert bot.main(["render", "unauthorized_ip"]) == 0
    assert "# app_login/unauthorized_ip: severity high" in capsys.readouterr().out
    assert bot.main(["render", "no_such_kind"]) == 2


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
    assert_safe(renderer.render_reply(grouped), value)
