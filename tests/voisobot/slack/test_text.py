"""The text dialect of Slack templates, and the guarantees that hold whatever a template says:
tags make styles, mentions and links only where a template's own source wrote them or the
bot's typed values asked; every invisible or line-breaking character is shown, never obeyed."""

import json
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.slack_display import assert_shown_literally, shown
from tests.voisobot.slack.test_render import alert_for, override, spoof_text
from voisobot.errors import RenderError
from voisobot.render import (
    BLANK_CHARACTERS,
    SHOWN_CATEGORIES,
    AlertView,
    ButtonValue,
    SafeUrl,
    SlackId,
    one_line,
)
from voisobot.slack.render import SlackRenderer
from voisobot.slack.text import Tokens, notification, plain, rich_elements

KIND = "app_login/unauthorized_ip"


# --- invisible and line-breaking characters (issue 9, class 2) --------------------------------

def hidden_characters() -> list[str]:
    """Every code point of the categories a reader cannot see, from unicodedata itself, the
    blank letters and the variation selectors 17-256."""
    found = [chr(code) for code in range(sys.maxunicode + 1)
             if unicodedata.category(chr(code)) in SHOWN_CATEGORIES]
    return found + sorted(BLANK_CHARACTERS) + [chr(c) for c in range(0xE0100, 0xE01F0)]


HIDDEN = hidden_characters()


def test_the_shown_categories_are_the_ones_the_issue_names():
    assert {"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"} == SHOWN_CATEGORIES
    assert {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"} == BLANK_CHARACTERS


def test_every_hidden_character_is_shown_as_an_escape():
    shown_text = one_line("".join(HIDDEN))
    assert shown_text.isascii(), "a hidden character was passed through"
    expected = "".join({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or
                       (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
                       for c in HIDDEN)
    assert shown_text == expected


@pytest.mark.parametrize("char, escape", [
    ("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\u061c", "\\u061c"), ("\u2060", "\\u2060"),
    ("\u180e", "\\u180e"), ("\U000e0041", "\\U000e0041"), ("\U000e007f", "\\U000e007f"),
    ("\u3164", "\\u3164"), ("\u00ad", "\\u00ad"), ("\u202e", "\\u202e"), ("\u200b", "\\u200b"),
    ("\ufeff", "\\ufeff"), ("\n", "\\n"), ("\x1b", "\\u001b"), ("\ue000", "\\ue000"),
    ("\U000e0100", "\\U000e0100"), ("\u2800", "\\u2800"), ("\u115f", "\\u115f"),
])
def test_the_characters_the_issue_names_are_shown(char, escape):
    assert one_line(f"a{char}b") == f"a{escape}b"


@pytest.mark.parametrize("text", ["admin@acme.io", "Zoë Ångström", "名前", "emoji ❤️ 👍🏽",
                                  "no\u00a0break", "\u0430dmin"])
def test_visible_text_is_left_as_it_is(text):
    assert one_line(text) == text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.lists(st.sampled_from(HIDDEN) | st.characters(), min_size=1, max_size=20)
       .map("".join))
def test_no_hidden_character_reaches_slack(name):
    message = _RENDERER.render(alert_for(KIND, user=name, access_group=name))
    for text, _ in shown(message).literal:
        assert not any(char in HIDDEN_SET and char != "\n" for char in text)


HIDDEN_SET = frozenset(HIDDEN)
_RENDERER = SlackRenderer()


# --- tags are capabilities --------------------------------------------------------------------

def test_tags_in_a_templates_source_become_styles_mentions_and_links():
    tokens = Tokens()
    source = ("<b>bold</b> <i>it</i> <s>gone</s> <code>c</code> <@U0ABC123> <#C0ABC123> "
              "<!here> <!subteam^S0ABC123> <:wave:> <https://runbook.example/a|runbook>")
    elements = rich_elements(tokens.runs(tokens.from_source(source)))
    assert {"type": "text", "text": "bold", "style": {"bold": True}} in elements
    assert {"type": "text", "text": "c", "style": {"code": True}} in elements
    live = [e for e in elements if e["type"] != "text"]
    assert live == [{"type": "user", "user_id": "U0ABC123"},
                    {"type": "channel", "channel_id": "C0ABC123"},
                    {"type": "broadcast", "range": "here"},
                    {"type": "usergroup", "usergroup_id": "S0ABC123"},
                    {"type": "emoji", "name": "wave"},
                    {"type": "link", "url": "https://runbook.example/a", "text": "runbook"}]


@pytest.mark.parametrize("text", ["<b>x</b>", "<@U0ABC123>", "<!channel>", "<https://e.x|y>",
                                  "<:wave:>", "*bold* _i_ ~s~ `c` :wave:", "> quote", "- list"])
def test_the_same_tags_outside_a_templates_source_are_text(text):
    runs = Tokens().runs(text)
    assert [(run.kind, run.value, run.style) for run in runs] == [("text", text, frozenset())]


def test_another_renderers_tokens_are_text():
    mine, theirs = Tokens(), Tokens()
    text = theirs.from_source("<!channel>")
    assert all(run.kind == "text" for run in mine.runs(text))


def test_the_notification_escapes_data_and_keeps_the_templates_own_mentions():
    tokens = Tokens()
    runs = tokens.runs(tokens.from_source("<b>Alert</b> for <@U0ABC123>: ") + "<!channel> & *x*")
    assert notification(runs) == "Alert for <@U0ABC123>: &lt;!channel&gt; &amp; *x*"
    assert plain(runs) == "Alert for @U0ABC123: <!channel> & *x*"


@pytest.mark.parametrize("value, allowed", [
    (SlackId("U0ABC123"), True), ("U0ABC123", False), (None, False), (42, False),
])
def test_only_a_slack_id_the_bot_holds_can_be_mentioned(value, allowed):
    tokens = Tokens()
    if allowed:
        assert tokens.runs(tokens.mention(value))[0].kind == "user"
    else:
        with pytest.raises(RenderError):
            tokens.mention(value)


@pytest.mark.parametrize("value", ["admin@acme.io", "U0abc", "<@U0ABC123>", "", "C"])
def test_a_slack_id_must_look_like_one(value):
    with pytest.raises(RenderError):
        SlackId(value)


def test_only_a_url_the_bot_built_can_be_linked():
    tokens = Tokens()
    with pytest.raises(RenderError):
        tokens.link("https://evil.example", "x")
    run = tokens.runs(tokens.link(SafeUrl("https://lookup.example/8.8.8.8"), "Look up"))[0]
    assert (run.kind, run.value, run.label) == ("link", "https://lookup.example/8.8.8.8",
                                                "Look up")


# --- templates written by users (issue 9, class 8) --------------------------------------------

def template(summary: str) -> str:
    return ('{% extends "_base.json.j2" %}{% block summary %}' + summary + "{% endblock %}")


# Ways a template can place an event field: each must show the field as text, make nothing
# live, or fail over to the generic template (which is safe in turn).
USER_TEMPLATES = {
    "plain": template("{{ event.user }}"),
    "bold": template("<b>{{ event.user }}</b>"),
    "mention frame": template("<@{{ event.user }}>"),
    "broadcast frame": template("<!{{ event.user }}>"),
    "link frame": template("<https://evil.example/{{ event.user }}|{{ event.user }}>"),
    "emoji frame": template("<:{{ event.user }}:>"),
    "markup concatenation": template('{{ m.fact("x", "") ~ event.user }}'),
    "markup concatenation in a frame": template('<@{{ m.fact("", "") ~ event.user }}>'),
    "join": template('{{ [m.fact("a", "b"), event.user]|join(" ") }}'),
    "format": template('{{ "%s"|format(event.user) }}'),
    "replace": template('{{ event.user|replace("x", "y") }}'),
    "escape": template("{{ event.user|e }}{{ event.user|escape }}"),
    "string": template("{{ event.user|string|lower|title }}"),
    "set block": template("{% set x %}<b>{{ event.user }}</b>{% endset %}{{ x }}"),
    "filter block": template("{% filter upper %}<b>{{ event.user }}</b>{% endfilter %}"),
    "mention filter": template("{{ event.user|mention }}"),
    "link filter": template("{{ event.user|link(event.user) }}"),
    "tojson": ('{"text": {{ event.user|tojson }}, "blocks": [{"type": "section", "text": '
               '{"type": "mrkdwn", "text": {{ event.user|tojson }}}}, {"type": "context", '
               '"elements": [{"type": "mrkdwn", "text": {{ event.params|tojson|tojson }}}]}]}'),
    "header and fields": ('{"text": "{{ event.user }}", "blocks": [{"type": "header", "text": '
                          '{"type": "plain_text", "text": "{{ event.user }}", "emoji": true}}, '
                          '{"type": "section", "fields": [{"type": "mrkdwn", '
                          '"text": "*{{ event.user }}*"}]}, {"type": "context", "elements": '
                          '[{"type": "mrkdwn", "text": "{{ event.user }}"}]}]}'),
    "button text": ('{"text": "x", "blocks": [{"type": "actions", "elements": [{"type": '
                    '"button", "action_id": "a", "text": {"type": "plain_text", "text": '
                    '"{{ event.user }}", "emoji": true}}]}]}'),
}
ATTACKS = ["U0ABC123", "C0ABC123", "here", "channel", "wave", "<!channel>", "<@U0ABC123>",
           "*x* _y_ :wave:", "https://evil.example|click", "b", "\ue000", "&lt;!here&gt;"]


@pytest.fixture(scope="module")
def user_renderers(tmp_path_factory):
    renderers = {}
    for name, text in USER_TEMPLATES.items():
        directory = tmp_path_factory.mktemp("templates")
        renderers[name] = override(directory, KIND, text)
    return renderers


def _render_user(renderer: SlackRenderer, user: str) -> dict:
    return renderer.render(alert_for(KIND, user=user))


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("name", sorted(USER_TEMPLATES))
def test_a_user_template_cannot_make_a_field_live(user_renderers, name, attack):
    renderer = user_renderers[name]
    message = _render_user(renderer, attack)
    assert_shown_literally(message, attack, _render_user(renderer, "x"), must_appear=False)
    assert not shown(message).live, "a value made a mention, link, emoji or broadcast"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=spoof_text, name=st.sampled_from(sorted(USER_TEMPLATES)))
def test_whatever_a_user_template_does_a_field_makes_nothing_live(user_renderers, value, name):
    renderer = user_renderers[name]
    message = _render_user(renderer, value)
    assert_shown_literally(message, "", _render_user(renderer, "x"), must_appear=False)


def test_tojson_escapes_for_slack():
    renderer = SlackRenderer()
    env = renderer.env
    text = env.from_string("{{ value|tojson }}").render(value={"a": "<!here>\n\u202e"})
    assert json.loads(text) == {"a": "<!here>\\n\\u202e"}
    assert all(run.kind == "text" for run in renderer.tokens.runs(text))


def test_button_value_takes_only_a_value_the_bot_made():
    env = SlackRenderer().env
    assert env.from_string("{{ v|button_value }}").render(v=ButtonValue('{"alert":1}')) \
        == '{\\"alert\\":1}'
    with pytest.raises(RenderError):
        env.from_string("{{ v|button_value }}").render(v='{"alert":1}')


def test_a_button_url_must_come_from_the_bot(tmp_path):
    text = ('{"text": "x", "blocks": [{"type": "actions", "elements": [{"type": "button", '
            '"action_id": "a", "text": {"type": "plain_text", "text": "Look up"}, '
            '"url": "{{ url|url }}"}]}]}')
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "look.json.j2").write_text(text)
    renderer = SlackRenderer(tmp_path)
    message = renderer.render_answer("look", url=SafeUrl("https://lookup.example/1.2.3.4"))
    assert message["blocks"][0]["elements"][0]["url"] == "https://lookup.example/1.2.3.4"
    refused = renderer.render_answer("look", url="https://evil.example")
    assert "could not be shown" in refused["text"]


def test_an_acknowledged_alert_mentions_who_acknowledged_it():
    from datetime import UTC, datetime

    alert = alert_for(KIND)
    acked = AlertView(alert.event, alert.severity, alert_id=42, acked_by="U0ALICE01",
                      acked_at=datetime(2026, 11, 24, 14, 2, tzinfo=UTC))
    message = SlackRenderer().render(acked)
    assert ("user", ("user_id", "U0ALICE01")) in shown(message).live
