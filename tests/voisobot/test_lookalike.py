"""Look-alike names (issue 9, class 3): a name that mixes scripts is flagged in alerts and
answers, and the cache knows which names look alike."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.slack_display import readable
from tests.voisobot.slack.test_render import alert_for
from tests.voisobot.test_commands import ALLOWED, CHANNEL, make_commands
from tests.voisobot.test_queries import NOW, record
from voisobot import history, jobs, lookalike
from voisobot.slack.render import SlackRenderer
from voisobot.teams.cards import TeamsRenderer

CYRILLIC_A = "\u0430"
FAKE_ADMIN = f"{CYRILLIC_A}dmin@acme.io"  # looks exactly like admin@acme.io
# Letters of other scripts that look like Latin ones, as Unicode's confusables list them.
HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441",
              "x": "\u0445", "y": "\u0443", "i": "\u0456", "s": "\u0455", "j": "\u0458"}
GREEK = {"o": "\u03bf", "i": "\u03b9", "v": "\u03bd"}


@pytest.mark.parametrize("name, mix", [
    (FAKE_ADMIN, "Latin + Cyrillic"),
    (f"p{GREEK['o']}lly@x.com", "Latin + Greek"),
    ("admin@acme.io", ""), ("Zo\u00eb.\u00c5ngstr\u00f6m@x.se", ""),  # accented Latin
    ("\u5c71\u7530\u305f\u308d\u3046@example.jp", ""),  # Han + Hiragana + Latin: Japanese
    ("\u5c71\u7530@example.cn", ""), ("\ud64d\uae38\ub3d9@example.kr", ""),  # Han, Hangul
    ("\u0430\u0434\u043c\u0438\u043d", ""),            # all Cyrillic: one script
    ("1234-5678", ""), ("", ""), (None, ""),
    (f"{CYRILLIC_A}dm{GREEK['i']}n@x.com", "Latin + Cyrillic + Greek"),
])
def test_a_name_that_mixes_scripts_is_named_for_them(name, mix):
    assert lookalike.mixed_scripts(name) == mix
    assert lookalike.warning(name) == (f"mixed scripts: {mix}" if mix else "")


@settings(max_examples=200, deadline=None)
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_@", min_size=2,
                    max_size=40).filter(lambda n: sum(c in HOMOGLYPHS for c in n) >= 1
                                        and sum(c.isalpha() for c in n) >= 2),
       data=st.data())
def test_a_homoglyph_in_a_latin_name_is_flagged_and_looks_like_the_name(name, data):
    positions = [i for i, c in enumerate(name) if c in HOMOGLYPHS]
    i = data.draw(st.sampled_from(positions))
    fake = name[:i] + HOMOGLYPHS[name[i]] + name[i + 1:]
    if any(c.isalpha() for c in fake[:i] + fake[i + 1:]):  # some Latin letter left
        assert lookalike.mixed_scripts(fake) == "Latin + Cyrillic"
    assert lookalike.skeleton(fake) == lookalike.skeleton(name) == name.lower()


@pytest.mark.parametrize("a, b", [(FAKE_ADMIN, "ADMIN@acme.io"),
                                  (f"p{GREEK['o']}lly@x.com", "polly@x.com"),
                                  ("\u0455\u0435\u0441ur\u0456ty@x.com", "security@x.com")])
def test_names_that_look_alike_share_a_skeleton(a, b):
    assert lookalike.skeleton(a) == lookalike.skeleton(b)


def test_names_that_differ_do_not():
    assert lookalike.skeleton("admin@acme.io") != lookalike.skeleton("admin@acme.com")


# --- the cache --------------------------------------------------------------------------------

def test_the_cache_finds_look_alikes_from_either_side(store):
    record(store, "app_login/successful_login", user="admin@acme.io")
    record(store, "app_login/unauthorized_ip", user=FAKE_ADMIN)
    record(store, "user/user_added", who=f"admin@{CYRILLIC_A}cme.io", user="new@acme.io")
    jobs.count_days(store)  # the counting job indexes the names too
    conn = store.connection()
    assert sorted(lookalike.lookalikes(conn, "admin@acme.io")) == [
        f"admin@{CYRILLIC_A}cme.io", FAKE_ADMIN]
    assert lookalike.lookalikes(conn, FAKE_ADMIN) == ["admin@acme.io",
                                                      f"admin@{CYRILLIC_A}cme.io"]
    assert lookalike.lookalikes(conn, "nobody@acme.io") == []
    (count,) = conn.execute("SELECT count(*) FROM accounts").fetchone()
    assert count == 2  # plain names are found through the events' own indexes


def test_names_stored_since_the_job_last_ran_are_found_without_indexing_them(store):
    record(store, "app_login/successful_login", user="admin@acme.io")
    jobs.count_days(store)
    record(store, "app_login/unauthorized_ip", user=FAKE_ADMIN)  # after the job's run
    record(store, "user/user_added", who=f"admin@{CYRILLIC_A}cme.io", user="new@acme.io")
    conn = store.connection()
    assert lookalike.lookalikes(conn, "admin@acme.io") == [f"admin@{CYRILLIC_A}cme.io",
                                                           FAKE_ADMIN]
    assert lookalike.lookalikes(conn, FAKE_ADMIN) == ["admin@acme.io",
                                                      f"admin@{CYRILLIC_A}cme.io"]
    assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0  # read only
    jobs.count_days(store)
    assert lookalike.lookalikes(conn, "admin@acme.io") == [f"admin@{CYRILLIC_A}cme.io",
                                                           FAKE_ADMIN]  # once, when indexed


def test_names_no_event_holds_any_more_are_forgotten(store):
    record(store, "app_login/unauthorized_ip", user=FAKE_ADMIN)
    jobs.count_days(store)
    store.connection().execute("DELETE FROM events")
    assert lookalike.forget_pruned_accounts(store.connection()) == 1
    assert lookalike.lookalikes(store.connection(), "admin@acme.io") == []


def test_voiso_user_mentions_a_look_alike_account(store):
    record(store, "app_login/successful_login", NOW.replace(hour=8), user="admin@acme.io")
    record(store, "app_login/unauthorized_ip", NOW.replace(hour=9), user=FAKE_ADMIN)
    service = make_commands(store)
    text = readable(service.command(ALLOWED, CHANNEL, "user admin@acme.io").message)
    assert f"Look-alike accounts in the cache: {FAKE_ADMIN} ⚠️ mixed scripts: Latin + Cyrillic" \
        in text
    fake = readable(service.command(ALLOWED, CHANNEL, f"user {FAKE_ADMIN}").message)
    assert f"{FAKE_ADMIN} is a look-alike name (mixed scripts: Latin + Cyrillic)" in fake
    assert "Look-alike accounts in the cache: admin@acme.io" in fake
    recent = readable(service.command(ALLOWED, CHANNEL, "recent").message)
    assert f"user {FAKE_ADMIN} ⚠️ mixed scripts: Latin + Cyrillic" in recent


def test_an_alert_warns_of_a_look_alike_name_in_slack_and_teams():
    alert = alert_for("user/privileges_updated", who=FAKE_ADMIN)
    slack_text = readable(SlackRenderer().render(alert))
    assert (f"⚠️ Look-alike name: the admin {FAKE_ADMIN} mixes scripts (mixed scripts: "
            "Latin + Cyrillic)") in slack_text
    card = TeamsRenderer().card(alert)
    warnings = [b["text"] for b in card["body"] if b.get("color") == "Warning"]
    assert len(warnings) == 1 and "mixed scripts: Latin + Cyrillic" in warnings[0]
    plain = readable(SlackRenderer().render(alert_for("user/privileges_updated")))
    assert "Look-alike" not in plain


def test_an_alert_says_which_earlier_name_a_look_alike_imitates(store):
    record(store, "app_login/successful_login", NOW.replace(hour=8), user="admin@acme.io")
    event_id = record(store, "app_login/unauthorized_ip", NOW.replace(hour=9), user=FAKE_ADMIN)
    (raw,) = store.connection().execute("SELECT raw FROM events WHERE id = ?",
                                        (event_id,)).fetchone()
    from voisobot import events

    lines = history.context_lines(store.connection(), events.parse(raw), event_id)
    assert lines[0] == (f"{FAKE_ADMIN} looks like admin@acme.io, a name seen before it "
                        "(Latin + Cyrillic letters)")
