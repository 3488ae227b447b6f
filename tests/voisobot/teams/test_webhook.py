"""Teams destinations end to end against a fake Workflows webhook over HTTP: config, the
sender's reading of each answer, and the shared outbox — in order, throttled, through
outages and 429s without losing or repeating a card, storms summed up per window."""

import io
import itertools
import json
import logging
import time
from datetime import timedelta

import pytest

from tests.conftest import sqs_message
from tests.fakes.adaptive_card_schema import validate_card
from tests.fakes.slack_api import FakeSlack
from tests.fakes.teams_webhook import FakeTeamsWebhook
from tests.voisobot.test_delivery import CHANNELS, QUEUE, posts, run_until_settled, store_events
from tests.voisobot.test_ops import Ops, sample, wait_until
from voisobot import check, cli, config, samples, sqs
from voisobot.delivery import AlertDelivery, TeamsOutput
from voisobot.intake import Intake, utc_now
from voisobot.outbox import Outbox
from voisobot.runtime import build as build_bot
from voisobot.slack import sender as slack
from voisobot.slack.render import SlackRenderer
from voisobot.store import transaction
from voisobot.teams.cards import TeamsRenderer
from voisobot.teams.webhook import TeamsSender

VARIABLE = "VOISO_TEAMS_SECOPS_URL"


@pytest.fixture
def webhook():
    fake = FakeTeamsWebhook(retry_after=0).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels=CHANNELS).start()
    yield fake
    fake.stop()


def teams_config(routes=None, default="secops", window=1, **teams) -> config.Config:
    return config.from_dict({
        "sqs": QUEUE, "slack": {"group_window_minutes": window},
        "routes": routes if routes is not None else [],
        "teams": {"default_destination": default, "timeout_seconds": 1,
                  "destinations": {"secops": {"webhook_url_env": VARIABLE},
                                   "soc": {"webhook_url_env": "VOISO_TEAMS_SOC_URL"}},
                  **teams}})


def delivery(store, webhook, cfg=None, env=None, slack_fake=None, **options) -> AlertDelivery:
    cfg = cfg or teams_config()
    env = {VARIABLE: webhook.url("secops"), "VOISO_TEAMS_SOC_URL": webhook.url("soc")} \
        if env is None else env
    sender = None
    if slack_fake is not None:
        sender = slack.SlackSender(slack.make_client("xoxb-test", slack_fake.base_url, 1))
    cards = TeamsOutput(TeamsRenderer(ip_lookup_url=cfg.teams.ip_lookup_url),
                        TeamsSender(cfg.teams, env))
    return AlertDelivery(Outbox(store), SlackRenderer(), sender, cfg, teams=cards,
                         retry_base=0.01, **options)


def cards(webhook, name: str = "secops") -> list[dict]:
    return [post["attachments"][0]["content"] for post in webhook.posts(name)]


def alert_states(store) -> list[tuple]:
    return [tuple(row) for row in store.connection().execute(
        "SELECT channel, state, event_count, shown_count FROM alerts ORDER BY id")]


# --- config -----------------------------------------------------------------------------------

def test_a_route_can_send_to_teams_instead_of_or_as_well_as_slack():
    cfg = teams_config(routes=[{"min_severity": "high", "channel": "C0SECURITY",
                                "teams": ["secops", "soc"]}], default="")
    assert cfg.routes[0].teams == ("secops", "soc")


@pytest.mark.parametrize(("teams", "says"), [
    ({"destinations": {"a": {"webhook_url": "https://x.logic.azure.com/…"}}},
     "teams.destinations.a.webhook_url: the webhook URL is a secret"),
    ({"destinations": {"a": {"webhook_url_env": "not a name"}}},
     "teams.destinations.a.webhook_url_env: expected the name of the environment variable"),
    ({"default_destination": "nowhere"}, "teams.default_destination: unknown Teams destination"),
    ({"ip_lookup_url": "http://x/{ip}"}, "teams.ip_lookup_url: expected an https URL"),
    ({"colour": "red"}, "teams.colour: unknown key"),
])
def test_teams_config_errors_name_the_key(teams, says):
    with pytest.raises(config.ConfigError, match=says.replace("(", r"\(")):
        config.from_dict({"sqs": QUEUE, "teams": teams})


def test_a_route_to_an_undefined_destination_is_refused():
    with pytest.raises(config.ConfigError, match=r"routes\[0\].teams: unknown Teams destination"):
        config.from_dict({"sqs": QUEUE, "routes": [{"teams": "secops"}]})


def test_check_reports_destinations_whose_variable_is_missing(queue_url, make_config):
    cfg = make_config(queue_url)
    cfg = config.Config(**{**cfg.__dict__, "teams": teams_config().teams})
    out = io.StringIO()
    code = check.run(cfg, sqs.make_client(cfg.sqs), None, out=out,
                     env={VARIABLE: "https://prod-1.westus.logic.azure.com/workflows/x?sig=s3cret"})
    text = out.getvalue()
    assert code == 1 and "Teams destination soc: VOISO_TEAMS_SOC_URL is not set" in text
    assert f"Teams destination secops: webhook URL set in {VARIABLE}" in text
    assert "s3cret" not in text and "logic.azure.com" not in text


# --- the sender ---------------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "status", "error", "maybe_posted"), [
    ("rate_limited", "retry", "http_429", False),
    ("server_error", "retry", "http_500", False),
    ("bad_request", "give_up", "http_400", False),
    ("not_found", "give_up", "http_404", False),
    ("accept_then_hang", "retry", "no_answer", True),
])
def test_each_answer_is_read_as_done_retry_or_give_up(webhook, fault, status, error,
                                                      maybe_posted):
    sender = TeamsSender(teams_config().teams, {VARIABLE: webhook.url("secops")})
    assert sender.post("secops", {"type": "message", "attachments": []}).status == "done"
    webhook.fail(fault)
    result = sender.post("secops", {"type": "message", "attachments": []})
    assert (result.status, result.error, result.maybe_posted) == (status, error, maybe_posted)
    assert "test-secret" not in (result.advice or "")


def test_an_unreachable_webhook_certainly_did_not_post(webhook):
    sender = TeamsSender(teams_config().teams, {VARIABLE: webhook.url("secops")})
    webhook.set_down(True)
    result = sender.post("secops", {"type": "message"})
    assert (result.status, result.error, result.maybe_posted) == ("retry", "unreachable", False)


@pytest.mark.parametrize("url", ["not a url?sig=s3cret", "https://host:port/x?sig=s3cret",
                                 "ftp://host/x?sig=s3cret"])
def test_a_malformed_url_fails_for_good_without_quoting_the_secret(url):
    result = TeamsSender(teams_config().teams, {VARIABLE: url}).post("secops", {})
    assert (result.status, result.error) == ("give_up", "bad_webhook_url")
    assert "s3cret" not in repr(result)


def test_429_carries_retry_after(webhook):
    webhook.retry_after = 7
    webhook.fail("rate_limited")
    result = TeamsSender(teams_config().teams, {VARIABLE: webhook.url("secops")}).post(
        "secops", {"type": "message"})
    assert result.retry_after == 7


# --- delivery through the shared outbox -------------------------------------------------------

def test_an_alert_becomes_one_valid_card_in_its_destination(store, webhook):
    store_events(store, "app_login/unauthorized_ip")
    run_until_settled(delivery(store, webhook))
    (card,) = cards(webhook)
    validate_card(card)
    assert "Login attempt from an unauthorized IP" in json.dumps(card)
    assert alert_states(store) == [("teams:secops", "sent", 1, 1)]


def test_slack_and_teams_both_get_the_alert_of_a_route_naming_both(store, webhook, fake_slack):
    cfg = teams_config(routes=[{"channel": "C0SECURITY", "teams": ["soc"]}], default="")
    store_events(store, "user/user_deleted")
    run_until_settled(delivery(store, webhook, cfg, slack_fake=fake_slack))
    assert len(cards(webhook, "soc")) == 1 and cards(webhook, "secops") == []
    assert [p["channel"] for p in posts(fake_slack)] == ["C0SECURITY"]


def test_an_outage_then_recovery_loses_nothing_and_repeats_nothing(store, webhook):
    job = delivery(store, webhook)
    webhook.set_down(True)
    store_events(store, "app_login/unauthorized_ip", "user/user_added", "allowed_ip/ip_added")
    for _ in range(3):
        job.run()
        job.next_post_at.clear()
    assert cards(webhook) == [] and {s for _, s, *_ in alert_states(store)} == {"pending"}
    webhook.set_down(False)
    _force_due(store)
    run_until_settled(job)
    titles = [card["body"][0]["items"][0]["text"] for card in cards(webhook)]
    assert titles == ["HIGH · Login attempt from an unauthorized IP", "MEDIUM · User added",
                      "HIGH · IP added to the allow-list"]


def test_429_and_500_are_retried_and_each_card_is_posted_once(store, webhook):
    webhook.fail("rate_limited")
    webhook.fail("server_error")
    store_events(store, "app_login/unauthorized_ip", "user/user_added")
    job = delivery(store, webhook)
    for _ in range(6):
        job.run()
        job.next_post_at.clear()
        _force_due(store)
    assert len(cards(webhook)) == 2
    assert [c.status for c in webhook.calls_to("secops")] == [429, 500, 202, 202]


def test_a_card_whose_answer_was_lost_is_posted_again_rather_than_lost(store, webhook):
    webhook.fail("accept_then_hang")
    store_events(store, "app_login/unauthorized_ip")
    job = delivery(store, webhook)
    job.run()
    _force_due(store)
    job.next_post_at.clear()
    job.run()
    assert len(cards(webhook)) == 2  # at least once: a webhook cannot be searched
    assert alert_states(store) == [("teams:secops", "sent", 1, 1)]


def test_a_refused_card_fails_for_good_and_says_why_once(store, webhook, caplog):
    webhook.fail("not_found", times=2)
    store_events(store, "app_login/unauthorized_ip", "user/user_added")
    with caplog.at_level(logging.ERROR):
        run_until_settled(delivery(store, webhook))
    assert [s for _, s, *_ in alert_states(store)] == ["failed", "failed"]
    (line,) = [r.message for r in caplog.records if "refused" in r.message]
    assert "Teams refused alerts for teams:secops (http_404): no such flow" in line
    assert "test-secret" not in caplog.text


def test_a_missing_variable_holds_the_alerts_and_says_so(store, webhook, caplog):
    store_events(store, "app_login/unauthorized_ip", "user/user_added")
    job = delivery(store, webhook, env={})
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            job.run()
            job.next_post_at.clear()
            _force_due(store)
    assert webhook.calls == [] and {s for _, s, *_ in alert_states(store)} == {"pending"}
    (line,) = [r.message for r in caplog.records if r.levelno >= logging.ERROR]
    assert line == (f"Teams destination secops: {VARIABLE} is not set; set it to the flow's "
                    "webhook URL and restart (the alerts wait)")


def test_alerts_for_a_destination_removed_from_the_config_fail_once_and_say_why(
        store, webhook, caplog):
    store_events(store, "app_login/unauthorized_ip", "user/user_added")
    run_until_settled(delivery(store, webhook, teams_config(default="soc")))  # to soc
    _force_due(store)
    with transaction(store.connection()) as conn:  # queued before soc left the config
        conn.execute("UPDATE alerts SET state = 'pending', channel = 'teams:gone'")
    with caplog.at_level(logging.ERROR):
        run_until_settled(delivery(store, webhook))
    assert [s for _, s, *_ in alert_states(store)] == ["failed", "failed"]
    (line,) = [r.message for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Teams destination gone is no longer in config.toml" in line


def test_a_teams_only_run_holds_slack_alerts_and_posts_the_cards(store, webhook, caplog):
    cfg = config.from_dict({"sqs": QUEUE, "slack": {"default_channel": "C0SECURITY"},
                            "teams": {"default_destination": "secops", "destinations": {
                                "secops": {"webhook_url_env": VARIABLE}}}})
    store_events(store, "app_login/unauthorized_ip")
    job = delivery(store, webhook, cfg)  # no Slack sender
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            job.run()
            job.next_post_at.clear()
            _force_due(store)
    assert len(cards(webhook)) == 1
    assert [(c, s) for c, s, *_ in alert_states(store)] == [("C0SECURITY", "pending"),
                                                            ("teams:secops", "sent")]
    (line,) = [r.message for r in caplog.records if r.levelno >= logging.ERROR]
    assert line == ("Slack channel C0SECURITY: SLACK_BOT_TOKEN is not set; set it and "
                    "restart (the alerts wait)")


def test_posts_to_one_webhook_are_throttled_to_four_a_second(store, webhook):
    store_many(store, "user/user_added", 12, utc_now())
    job = delivery(store, webhook, teams_config(window=0))  # twelve cards, not a storm
    deadline = time.monotonic() + 20
    while len(webhook.calls) < 12 and time.monotonic() < deadline:
        job.run()
        time.sleep(0.02)
    times = [c.at for c in webhook.calls_to("secops")]
    assert len(times) == 12
    assert all(later - earlier >= 0.24 for earlier, later in itertools.pairwise(times))


def test_a_storm_is_one_card_then_one_summary_card_when_its_window_closes(store, webhook):
    job = posted_group_joined_by(store, webhook, 7)
    job.next_post_at.clear()
    job.run()
    job.next_post_at.clear()
    job.run()
    first, summary = cards(webhook)
    validate_card(summary)
    assert "events**" not in json.dumps(first)
    assert "**8 events** like this" in json.dumps(summary)
    assert alert_states(store) == [("teams:secops", "sent", 8, 8)]
    job.next_post_at.clear()
    job.run()
    assert len(cards(webhook)) == 2  # summed up once


def posted_group_joined_by(store, webhook, joining: int) -> AlertDelivery:
    """A group's first card posted, then ``joining`` more of its events stored, five
    minutes ago: its one-minute window has closed. Returns the delivery job."""
    job = delivery(store, webhook)
    start = utc_now() - timedelta(minutes=5)
    store_many(store, "app_login/incorrect_password", 1, start)
    run_until_settled(job)
    store_many(store, "app_login/incorrect_password", joining, start + timedelta(seconds=5))
    return job


def _force_due(store) -> None:
    """Make every waiting alert due now: the test is not about the backoff's length."""
    with transaction(store.connection()) as conn:
        conn.execute("UPDATE alerts SET next_attempt_at = ''")


def store_many(store, kind: str, count: int, at, **params) -> None:
    """``count`` events of one kind at one moment, each a distinct body (n in the count, or
    a user of its own), stored as the intake stores them."""
    messages = []
    for n in range(count):
        body = samples.example(kind, now=at)
        body["params"].update(params)
        if "count" in body["params"]:
            body["params"]["count"] = str(4 + n)
        else:
            body["params"]["user"] = f"user{n}@acme.example"
        messages.append(sqs_message(body))
    Intake(None, teams_config().sqs, store).store_messages(messages)


def test_a_teams_only_bot_posts_cards_without_any_slack_token_and_counts_them(
        tmp_path, moto_server, queue_url, sqs_admin, webhook):
    """bot.build as `bot.py run` calls it when SLACK_BOT_TOKEN is unset; its operations
    listener serves health and metrics all the same."""
    cfg = config.from_dict({
        "sqs": {"queue_url": queue_url, "endpoint_url": moto_server["url"],
                "wait_time_seconds": 1, "poll_interval_seconds": 0.1},
        "store": {"path": "store.sqlite3"}, "ops": {"port": 0},
        "teams": {"default_destination": "secops",
                  "destinations": {"secops": {"webhook_url_env": VARIABLE}}}},
        base_dir=tmp_path)
    runtime = build_bot(cfg, None, None, secrets={VARIABLE: webhook.url("secops")})
    runtime.start()
    try:
        body = samples.example("app_login/unauthorized_ip", now=utc_now())
        sqs_admin.send_message(QueueUrl=queue_url, MessageBody=samples.body_text(body))
        probe = Ops(runtime.ops.url)
        assert wait_until(lambda: sample(probe.metrics(), "voiso_alerts_sent_total",
                                         destination="teams") == 1)
        scraped = probe.metrics()
        assert sample(scraped, "voiso_api_calls_total", service="teams", method="post",
                      outcome="done") == 1
        assert sample(scraped, "voiso_alerts_sent_total", destination="slack") == 0
        assert probe.health()[0] == 200 and probe.ready()[0] == 200
    finally:
        runtime.stop()
    (card,) = cards(webhook)
    validate_card(card)


def test_render_teams_prints_the_card(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text('[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/v"\n',
                    encoding="utf-8")
    assert cli.main(["--config", str(path), "render", "--teams", "unauthorized_ip"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# app_login/unauthorized_ip: severity high, template "
                          "app_login.unauthorized_ip.json.j2")
    post = json.loads(out.split("\n", 1)[1])
    validate_card(post["attachments"][0]["content"])


def test_a_summary_card_that_meets_an_outage_goes_out_once_after_it(store, webhook):
    job = posted_group_joined_by(store, webhook, 3)
    webhook.set_down(True)
    job.next_post_at.clear()
    job.run()  # queues the three into the group, then the summary meets the outage
    assert len(webhook.calls) == 1 and alert_states(store) == [("teams:secops", "sent", 4, 1)]
    webhook.set_down(False)
    for _ in range(3):
        job.next_post_at.clear()
        job.run()
    assert len(cards(webhook)) == 2 and alert_states(store) == [("teams:secops", "sent", 4, 4)]
