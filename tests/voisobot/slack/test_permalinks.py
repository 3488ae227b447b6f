"""Links to alerts' messages: asked of Slack once per message, kept, and a SafeUrl only
when Slack's answer looks like one of its links."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.slack_api import PERMALINK_BASE, FakeSlack
from voisobot.slack import sender as slack
from voisobot.slack.permalinks import Permalinks, safe_link
from voisobot.values import SafeUrl


@pytest.fixture
def fake():
    fake = FakeSlack(channels={"CALERTS1"}).start()
    yield fake
    fake.stop()


def test_a_link_is_asked_of_slack_once_per_message_and_kept(fake):
    client = slack.make_client("xoxb-test", fake.base_url, 2)
    ts = client.chat_postMessage(channel="CALERTS1", text="x")["ts"]
    links = Permalinks(client)
    first, again = links("CALERTS1", ts), links("CALERTS1", ts)
    assert isinstance(first, SafeUrl) and first == again
    assert first == f"{PERMALINK_BASE}/CALERTS1/p{ts.replace('.', '')}"
    assert len(fake.calls_to("chat.getPermalink")) == 1


def test_no_link_when_slack_gives_none_and_slack_is_asked_again_next_time(fake):
    client = slack.make_client("xoxb-test", fake.base_url, 2)
    links = Permalinks(client)
    assert links("CALERTS1", "1.000001") is None  # message_not_found
    assert links("CALERTS1", "1.000001") is None
    assert len(fake.calls_to("chat.getPermalink")) == 2


@pytest.mark.parametrize("channel_ts", [("teams:soc", "1.2"), ("teamsbot:soc", "1.2"),
                                        ("CALERTS1", None), ("CALERTS1", "")])
def test_an_alert_that_is_no_slack_message_has_no_link_and_costs_no_call(fake, channel_ts):
    links = Permalinks(slack.make_client("xoxb-test", fake.base_url, 2))
    assert links(*channel_ts) is None
    assert fake.calls_to("chat.getPermalink") == []


@pytest.mark.parametrize("link", [
    None, "", "http://acme.slack.com/archives/C1/p1", "javascript:alert(1)",
    "https://acme.slack.com/x|label", "https://acme.slack.com/<!channel>",
    "https://acme.slack.com/a b", "https://acme.slack.com/\n", 'https://a.example/"',
    "https://a.example/\u202e", "https://a.example/" + "x" * 2000, 42,
])
def test_a_link_that_is_not_one_of_slacks_is_not_a_safe_url(link):
    assert safe_link(link) is None


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_a_safe_link_can_never_end_or_relabel_a_slack_link(text):
    link = safe_link("https://acme.slack.com/archives/" + text)
    if link is not None:
        assert not any(c in link for c in ' <>|"\\\n\r\t') and link.isprintable()
