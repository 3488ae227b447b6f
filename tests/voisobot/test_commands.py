"""/voiso's answers: parsing, access, audit, each subcommand rendered from a seeded store
(hostile strings included), and the "more" button's paging."""

import re
from datetime import timedelta

import pytest

from tests.conftest import audit_rows
from tests.slack_display import readable, shown
from tests.voisobot.test_queries import (
    DAY,
    HOSTILE,
    HOUR,
    MINUTE,
    NOW,
    SECOND,
    USER,
    add_alert,
    record,
)
from voisobot import commands, queries
from voisobot.access import AccessPolicy
from voisobot.commands import Commands, parse, query_from_button
from voisobot.config import AccessConfig
from voisobot.render import SafeUrl, one_line
from voisobot.slack.render import SlackRenderer
from voisobot.store import time_text

ALLOWED, STRANGER, CHANNEL = "UALLOWED1", "USTRANGER1", "CSECURITY1"


def make_commands(store, permalinks=None, **access) -> Commands:
    policy = AccessPolicy(AccessConfig(**({"users": (ALLOWED,)} | access)), lambda group: set())
    return Commands(store, SlackRenderer(), policy, clock=lambda: NOW, permalinks=permalinks)


def all_text(message: dict) -> str:
    """What a reader sees, bold as *x* and code as `x` (tests/slack_display.py)."""
    return readable(message, styles=True)


def more_buttons(message: dict) -> list[dict]:
    return [element for block in message.get("blocks", []) if block["type"] == "actions"
            for element in block["elements"] if element.get("action_id") == "voiso_more"]


# --- parsing ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("", commands.Query("help")),
    ("help", commands.Query("help")),
    ("recent", commands.Query("recent", "", 10)),
    ("recent 25", commands.Query("recent", "", 25)),
    ("recent unauthorized_ip 5", commands.Query("recent", "unauthorized_ip", 5)),
    ("RECENT app_login public", commands.Query("recent", "app_login", 10, public=True)),
    ("user <mailto:foo@bar.com|foo@bar.com>",
     commands.Query("user", "<mailto:foo@bar.com|foo@bar.com>", 20)),
    ("ip 10.0.0.0/8", commands.Query("ip", "10.0.0.0/8", 20)),
    ("stats", commands.Query("stats", "24h", 20)),
    ("stats 30D", commands.Query("stats", "30d", 20)),
    ("unacked", commands.Query("unacked", "", 20)),
    ("unacked ALL", commands.Query("unacked", "all", 20)),
    ("public audit", commands.Query("audit", "", 20, public=True)),
])
def test_parse_reads_each_subcommand(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "says"), [
    ("delete everything", "there is no /voiso"),
    ("recent 0", "1 to 50"),
    ("recent 51", "1 to 50"),
    ("recent 5 6", "at most a number and a kind"),
    ("recent <!channel>", "not a kind"),
    ("user", "user takes one argument"),
    ("user not-an-address", "not an email address"),
    ("ip 999.1.1.1", "not an IP address"),
    ("ip 1.1.1.1 2.2.2.2", "ip takes one argument"),
    ("stats 1y", "not a period"),
    ("unacked now", "unacked takes no argument"),
])
def test_malformed_input_is_a_usage_error_saying_what_was_expected(text, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        parse(text)


def test_an_unknown_subcommand_gets_the_usage_message_not_a_stack_trace(store):
    answer = make_commands(store).command(ALLOWED, CHANNEL, "drop table events")
    text = all_text(answer.message)
    assert "there is no /voiso" in text and "/voiso recent" in text
    assert not answer.public and answer.reply()["response_type"] == "ephemeral"
    assert audit_rows(store)[-1]["outcome"].startswith("usage:")


def test_an_internal_error_is_an_apology_and_is_logged(store, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")
    monkeypatch.setitem(commands.ANSWERS, "recent", broken)
    answer = make_commands(store).command(ALLOWED, CHANNEL, "recent")
    assert "went wrong" in answer.message["text"] and "disk on fire" not in str(answer.message)
    assert "disk on fire" in caplog.text
    assert audit_rows(store)[-1]["outcome"] == "failed (see the log)"


# --- access and audit ----------------------------------------------------------------------

def test_a_stranger_is_refused_and_the_refusal_is_audited(store):
    record(store, "app_login/successful_login")
    answer = make_commands(store).command(STRANGER, "CRANDOM1", "recent")
    assert "not allowed" in answer.message["text"]
    assert "successful_login" not in all_text(answer.message)
    assert answer.reply()["response_type"] == "ephemeral"
    (row,) = audit_rows(store)
    assert (row["user_id"], row["channel_id"], row["action"], row["detail"], row["allowed"],
            row["outcome"]) == (STRANGER, "CRANDOM1", "command", "recent", 0, "denied")


def test_anyone_in_an_allowed_channel_may_ask(store):
    answer = make_commands(store, channels=(CHANNEL,)).command(STRANGER, CHANNEL, "unacked")
    assert "not allowed" not in answer.message["text"]
    assert audit_rows(store)[-1]["allowed"] == 1


def test_every_command_is_audited_with_what_came_of_it(store):
    service = make_commands(store)
    service.command(ALLOWED, CHANNEL, "recent 5")
    service.command(ALLOWED, CHANNEL, "stats 7d public")
    rows = audit_rows(store)
    assert [(r["detail"], r["outcome"], r["at"]) for r in rows] == [
        ("recent 5", "answered recent", "2026-11-24T12:00:00.000000Z"),
        ("stats 7d public", "answered stats", "2026-11-24T12:00:00.000000Z")]


def test_audit_shows_the_trail_escaped(store):
    service = make_commands(store)
    service.command(STRANGER, CHANNEL, "user <!channel>@x.com")
    answer = service.command(ALLOWED, CHANNEL, "audit")
    text = all_text(answer.message)
    assert f"<@{STRANGER}>" in text and f"<#{CHANNEL}>" in text and "*denied*" in text
    assert "`user <!channel>@x.com`" in text  # what was typed, shown as typed
    assert {live[0] for live in shown(answer.message).live} == {"user", "channel"}


# --- the answers ---------------------------------------------------------------------------

def test_recent_lists_the_latest_events_newest_first(store):
    record(store, "app_login/unauthorized_ip", NOW.replace(hour=9), user="old@x.com")
    record(store, "app_login/unauthorized_ip", NOW.replace(hour=11), user="new@x.com")
    text = all_text(make_commands(store).command(ALLOWED, CHANNEL, "recent").message)
    assert text.index("new@x.com") < text.index("old@x.com")
    assert "2026-11-24 11:00:00 UTC" in text


def test_public_answers_go_to_the_channel(store):
    answer = make_commands(store).command(ALLOWED, CHANNEL, "recent public")
    assert answer.reply() | {} == {**answer.reply(), "response_type": "in_channel",
                                   "replace_original": False}


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("command", ["recent", "user {user}", "ip 203.0.113.9", "stats 24h",
                                     "unacked"])
def test_hostile_stored_strings_come_back_escaped_in_every_answer(store, hostile, command):
    user = f"{hostile}@x.com"
    event_id = record(store, "app_login/unauthorized_ip", user=user, ip="203.0.113.9",
                      access_group=hostile)
    add_alert(store, event_id)
    message = make_commands(store).command(ALLOWED, CHANNEL, command.format(
        user=user.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))).message
    text = all_text(message)
    seen = shown(message)
    assert not seen.parsed and {live[0] for live in seen.live} <= {"channel"}
    assert "49" not in text.replace("2026", "")  # {{ 7*7 }} is text, never evaluated
    assert "\u202e" not in text and "\u0000" not in text
    if command != "stats 24h" and " " not in user:  # (a name with a space is a usage error)
        assert one_line(user) in text  # as typed, hidden characters shown


def test_user_shows_profile_logins_addresses_and_changes(store):
    record(store, "app_login/successful_login", NOW.replace(hour=8))
    record(store, "app_login/incorrect_password", NOW.replace(hour=9), count="4")
    record(store, "user/privileges_updated", NOW.replace(hour=10))
    text = all_text(make_commands(store).command(ALLOWED, CHANNEL, f"user {USER}").message)
    assert USER in text and "First seen 2026-11-24 08:00:00 UTC" in text
    assert "app_login/incorrect_password (1)" in text
    assert "Changes to this user*\n• `2026-11-24 10:00:00 UTC` *user/privileges_updated*" in text


def test_an_unknown_user_is_said_to_be_unknown(store):
    text = all_text(make_commands(store).command(ALLOWED, CHANNEL, "user no@one.com").message)
    assert "Nothing in the cache about *no@one.com*" in text


def test_ip_says_whether_it_is_on_the_allow_list_now(store):
    record(store, "allowed_ip/ip_added", NOW.replace(hour=8), ip="203.0.113.0/24")
    record(store, "app_login/unauthorized_ip", NOW.replace(hour=9), ip="203.0.113.9")
    text = all_text(make_commands(store).command(ALLOWED, CHANNEL, "ip 203.0.113.9").message)
    assert "*203.0.113.9* is on the IP allow-list now: 203.0.113.0/24" in text
    assert f"{USER} (1," in text
    other = all_text(make_commands(store).command(ALLOWED, CHANNEL, "ip 198.51.100.1").message)
    assert "is not on the IP allow-list" in other


def test_unacked_lists_open_alerts_with_their_channel(store):
    add_alert(store, record(store, "app_login/unauthorized_ip"), channel="C_ALERTS1")
    text = all_text(make_commands(store).command(ALLOWED, CHANNEL, "unacked").message)
    assert "<#C_ALERTS1>" not in text  # not an ID Slack makes: shown as text
    add_alert(store, record(store, "user/user_deleted"), channel="CALERTS22")
    text = all_text(make_commands(store).command(ALLOWED, CHANNEL, "unacked").message)
    assert "<#CALERTS22>" in text and "*HIGH*" in text


def unacked_lines(message: dict) -> list[str]:
    return [line for line in all_text(message).splitlines() if line.startswith("• #")]


def test_unacked_lists_oldest_first_with_each_alert_age(store):
    event = record(store, "app_login/unauthorized_ip")
    newer = add_alert(store, event, channel="CALERTS22", created_at=time_text(NOW - 5 * MINUTE))
    older = add_alert(store, event, channel="CALERTS33",
                      created_at=time_text(NOW - 2 * DAY - 3 * HOUR - 59 * SECOND))
    lines = unacked_lines(make_commands(store).command(ALLOWED, CHANNEL, "unacked").message)
    assert [line.split()[1] for line in lines] == [f"#{newer}", f"#{older}"]  # by alert id
    assert "<#CALERTS22>, 5 min old" in lines[0] and "<#CALERTS33>, 2 d 3 h old" in lines[1]


@pytest.mark.parametrize(("ago", "shown"), [
    (timedelta(0), "< 1 min"), (59 * SECOND, "< 1 min"), (MINUTE, "1 min"),
    (HOUR + 2 * MINUTE, "1 h 2 min"), (DAY - SECOND, "23 h 59 min"), (DAY, "1 d 0 h"),
    (40 * DAY + 5 * HOUR, "40 d 5 h"), (-HOUR, "< 1 min"),  # a clock that went back
])
def test_age_is_the_two_largest_units(ago, shown):
    assert commands.age(NOW - ago, NOW) == shown


def test_unacked_hides_informational_alerts_unless_all_is_asked(store):
    event = record(store, "app_login/successful_login")
    info = add_alert(store, event, severity="info", channel="CALERTS22")
    high = add_alert(store, event, severity="high", channel="CALERTS33")
    asked = make_commands(store)
    default = asked.command(ALLOWED, CHANNEL, "unacked").message
    assert [line.split()[1] for line in unacked_lines(default)] == [f"#{high}"]
    assert "/voiso unacked all" in all_text(default)  # says how to see them
    every = asked.command(ALLOWED, CHANNEL, "unacked all").message
    assert [line.split()[1] for line in unacked_lines(every)] == [f"#{info}", f"#{high}"]
    assert "informational alerts are not listed" not in all_text(every)


def test_the_more_button_of_unacked_all_keeps_the_informational_alerts(store):
    event = record(store, "app_login/successful_login")
    ids = [add_alert(store, event, severity="info", channel=f"CALERTS{n:03d}")
           for n in range(commands.PAGE + 1)]
    asked = make_commands(store)
    (button,) = more_buttons(asked.command(ALLOWED, CHANNEL, "unacked all").message)
    second = asked.more(ALLOWED, CHANNEL, button["value"]).message
    assert [line.split()[1] for line in unacked_lines(second)] == [f"#{ids[-1]}"]


def test_unacked_links_each_alert_to_its_message_with_the_link_slack_gave(store):
    event = record(store, "app_login/unauthorized_ip")
    linked = add_alert(store, event, channel="CALERTS22", slack_ts="1764000000.000100")
    add_alert(store, event, channel="CALERTS33", slack_ts="1764000000.000200")
    asked_for = []

    def permalinks(channel, ts):
        asked_for.append((channel, ts))
        return SafeUrl(f"https://acme.slack.com/archives/{channel}/p{ts.replace('.', '')}") \
            if channel == "CALERTS22" else None  # Slack gave none for the other

    message = make_commands(store, permalinks=permalinks).command(
        ALLOWED, CHANNEL, "unacked").message
    assert asked_for == [("CALERTS22", "1764000000.000100"), ("CALERTS33", "1764000000.000200")]
    links = [dict(item[1:]) for item in shown(message).live if item[0] == "link"]
    assert links == [{"text": "open",
                      "url": "https://acme.slack.com/archives/CALERTS22/p1764000000000100"}]
    assert f"#{linked}" in all_text(message)


def test_stats_count_per_kind_with_top_users_and_ips(store):
    record(store, "app_login/unauthorized_ip", NOW.replace(hour=9), ip="198.51.100.7")
    record(store, "app_login/unauthorized_ip", NOW.replace(hour=10), ip="198.51.100.7")
    text = all_text(make_commands(store).command(ALLOWED, CHANNEL, "stats").message)
    assert "*2 events*" in text and "app_login/unauthorized_ip: 2" in text
    assert f"{USER}: 2" in text and "198.51.100.7: 2" in text


def test_help_lists_every_subcommand(store):
    text = all_text(make_commands(store).command(ALLOWED, CHANNEL, "help").message)
    for name in commands.SUBCOMMANDS:
        assert f"/voiso {name}" in text


# One command of each subcommand, with the arguments it needs.
EVERY_SUBCOMMAND = ("recent 5 app_login", f"user {USER}", "ip 198.51.100.7", "ip 198.51.100.0/24",
                    "unacked all", "pending", "stats 24h", "stats 30d", "audit", "help")
WRITES = ("BEGIN IMMEDIATE", "INSERT", "UPDATE", "DELETE", "REPLACE")


def test_every_subcommand_is_in_the_no_write_check():
    assert {command.split()[0] for command in EVERY_SUBCOMMAND} == set(commands.SUBCOMMANDS)


@pytest.mark.parametrize("command", EVERY_SUBCOMMAND)
def test_no_answer_writes_to_the_store(store, command):
    """The intake holds the store's write lock through each commit and fsync, so an answer
    that wrote would wait behind it; the audit row goes to its own file. The event here is
    neither counted nor indexed for look-alikes yet, as right after an intake commit."""
    record(store, "app_login/unauthorized_ip", NOW.replace(hour=9), ip="198.51.100.7")
    conn = store.connection()
    statements = []
    conn.set_trace_callback(statements.append)
    try:
        answer = make_commands(store).command(ALLOWED, CHANNEL, command)
    finally:
        conn.set_trace_callback(None)
    assert "went wrong" not in answer.message["text"]
    assert not [s for s in statements if s.lstrip().upper().startswith(WRITES)]
    assert statements or command in ("audit", "help")  # the two that read no events
    assert audit_rows(store)[-1]["detail"] == command


# --- the more button --------------------------------------------------------------------------

def test_more_pages_through_everything_without_gap_or_repeat(store):
    for minute in range(25):
        record(store, "app_login/incorrect_password", NOW.replace(minute=minute),
               user=f"u{minute:02}@x.com")
    service = make_commands(store)
    message = service.command(ALLOWED, CHANNEL, "recent 10").message
    seen = re.findall(r"u\d\d@x\.com", all_text(message))
    while buttons := more_buttons(message):
        message = service.more(ALLOWED, CHANNEL, buttons[0]["value"]).message
        seen += re.findall(r"u\d\d@x\.com", all_text(message))
    assert seen == [f"u{minute:02}@x.com" for minute in reversed(range(25))]


def test_the_more_button_keeps_the_question_and_its_visibility(store):
    for minute in range(3):
        record(store, "user/user_added", NOW.replace(minute=minute))
    page = queries.Page((), ("2026-11-24T12:01:00.000000Z", 2))
    value = commands.more_value(commands.Query("recent", "user", 1, public=True), page)
    assert query_from_button(value) == commands.Query(
        "recent", "user", 1, True, ("2026-11-24T12:01:00.000000Z", 2))


@pytest.mark.parametrize("value", [
    "", "not json", "[]", '{"q": "recent"}',
    '{"q":"help","a":"","n":10,"p":false,"b":1}',
    '{"q":"recent","a":"","n":10,"p":false,"b":7}',
    '{"q":"unacked","a":"","n":20,"p":false,"b":["x",1]}',
    '{"q":"recent","a":"<!channel>","n":10,"p":false,"b":["x",1]}',
    '{"q":"recent","a":"","n":500,"p":false,"b":["x",1]}',
])
def test_a_more_value_that_is_not_ours_is_refused_as_usage(store, value):
    with pytest.raises(ValueError):
        query_from_button(value)
    answer = make_commands(store).more(ALLOWED, CHANNEL, value)
    assert "/voiso recent" in all_text(answer.message)  # the usage message


def test_more_is_refused_to_strangers_and_audited(store):
    answer = make_commands(store).more(STRANGER, CHANNEL, '{"q":"audit"}')
    assert "not allowed" in answer.message["text"]
    assert audit_rows(store)[-1]["action"] == "button"
    assert audit_rows(store)[-1]["allowed"] == 0

