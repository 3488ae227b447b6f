"""The metrics' own rules: one registry per bot, and label values from short fixed sets that
no message can grow (the values after a real run: tests/voisobot/test_ops.py)."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from voisobot.commands import SUBCOMMANDS, command_name
from voisobot.config import TeamsConfig, TeamsDestinationConfig
from voisobot.events import KIND_PARAMS
from voisobot.metrics import CountedTeamsSender, Metrics, kind_label
from voisobot.sending import SendResult
from voisobot.store import BatchOutcome
from voisobot.teams.webhook import TeamsSender

DOCUMENTED = {f"{type_}/{event}" for type_, event in KIND_PARAMS}


def scraped(metrics: Metrics) -> dict[tuple, float]:
    _, body = metrics.exposition()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def label_values(metrics: Metrics, label: str) -> set[str]:
    return {dict(labels)[label] for _, labels in scraped(metrics) if label in dict(labels)}


@pytest.mark.parametrize(("kind", "label"), [
    (("app_login", "unauthorized_ip"), "app_login/unauthorized_ip"),
    (("allowed_ip", "ip_changed"), "allowed_ip/ip_changed"),
    (("app_login", "mfa_failed"), "other"),  # a kind Voiso may add without notice
    (("APP_LOGIN", "unauthorized_ip"), "other"),
    (("app_login", "unauthorized_ip\n"), "other"),
    (("app_login/unauthorized_ip", ""), "other"),
    (("<!channel>", '"} 1\nvoiso_fake_total 9'), "other"),  # no line of its own
])
def test_a_kind_is_its_label_only_when_documented(kind, label):
    assert kind_label(kind) == label


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=8))
def test_no_event_kind_grows_the_kind_label_set(kinds):
    metrics = Metrics()
    metrics.batch_stored(BatchOutcome(stored_kinds=Counter(kinds),
                                      duplicate_kinds=Counter(kinds)))
    assert label_values(metrics, "kind") <= DOCUMENTED | {"other"}
    stored = sum(value for (name, _), value in scraped(metrics).items()
                 if name == "voiso_events_stored_total")
    assert stored == len(kinds)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_no_typed_command_grows_the_command_label_set(text):
    assert command_name(text) in (*SUBCOMMANDS, "invalid")


@pytest.mark.parametrize(("text", "name"), [
    ("", "help"), ("recent 5", "recent"), ("public STATS 7d", "stats"), ("Audit", "audit"),
    ("drop table", "invalid"), ("<!channel>", "invalid"), ("public", "help"),
])
def test_the_command_label_is_the_subcommand_typed(text, name):
    assert command_name(text) == name


def test_each_bot_has_its_own_registry():
    first, second = Metrics(), Metrics()
    first.polled()
    assert scraped(first)[("voiso_sqs_polls_total", ())] == 1
    assert scraped(second)[("voiso_sqs_polls_total", ())] == 0


@pytest.mark.parametrize(("result", "outcome"), [
    (SendResult("done"), "done"),
    (SendResult("retry", error="HTTP 503 from Slack"), "retry"),
    (SendResult("retry", retry_after=30.0, error="ratelimited"), "rate_limited"),
    (SendResult("give_up", error="channel_not_found"), "give_up"),
])
def test_a_call_is_counted_by_its_outcome_and_a_429_apart(result, outcome):
    metrics = Metrics()
    assert metrics.timed_call("slack", "chat.postMessage", lambda: result) is result
    values = scraped(metrics)
    labels = (("method", "chat.postMessage"), ("outcome", outcome), ("service", "slack"))
    assert values[("voiso_api_calls_total", labels)] == 1
    assert values[("voiso_api_call_duration_seconds_count",
                   (("method", "chat.postMessage"), ("service", "slack")))] == 1


def test_a_teams_destination_without_its_url_is_held_not_counted_as_a_call():
    config = TeamsConfig(destinations={"secops": TeamsDestinationConfig("VOISO_SECOPS_URL")})
    metrics = Metrics()
    held = CountedTeamsSender(TeamsSender(config, {}), metrics).post("secops", {})
    assert held.error == "webhook_url_missing"
    assert not [key for key in scraped(metrics) if key[0] == "voiso_api_calls_total"]


@pytest.mark.parametrize(("channel", "label"), [
    ("C0SECURITY", "slack"), ("teams:secops", "teams"), ("teamsbot:secops", "teams_bot")])
def test_each_kind_of_destination_has_its_label(channel, label):
    from voisobot.metrics import destination_of

    assert destination_of(channel) == label
