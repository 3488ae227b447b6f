"""The digest: its periods across daylight saving, its message in Slack and Teams (expected
output, Block Kit, the card schema, hostile names and IPs kept as text), and exactly one
post per period across restarts and outages, against a real SQLite file and the fake
Slack Web API over HTTP."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from tests.conftest import sqs_message
from tests.fakes.adaptive_card_schema import validate_card
from tests.fakes.slack_api import FakeSlack
from tests.voisobot.slack.test_render import HOSTILE
from tests.voisobot.slack.test_render import assert_safe as assert_slack_safe
from tests.voisobot.teams.test_cards import assert_safe as assert_teams_safe
from voisobot import config, samples
from voisobot.delivery import AlertDelivery
from voisobot.digest import (
    DIGEST_EVENT_TYPE,
    DigestJob,
    Digests,
    DigestView,
    Listed,
    Period,
    digest_view,
    last_ended,
    previous,
)
from voisobot.errors import ConfigError
from voisobot.intake import Intake
from voisobot.outbox import Outbox
from voisobot.queries import EventRow, Tally, Unconfirmed
from voisobot.runtime import alert_outputs
from voisobot.slack import sender as slack
from voisobot.slack.render import SlackRenderer
from voisobot.store import Store, transaction
from voisobot.teams.cards import TeamsRenderer, envelope

QUEUE = {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"}
CHANNEL = "C0DIGEST01"
EXPECTED = Path(__file__).parent / "expected" / "slack" / "digest.json"


def digest_config(**keys) -> config.DigestConfig:
    return config.from_dict({"sqs": QUEUE, "digest": {"channel": CHANNEL, **keys}}).digest


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- periods ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("zone", "at", "day_end", "hours"), [
    # Europe/London springs forward on 2026-03-29 (01:00 GMT → 02:00 BST) and falls back on
    # 2026-10-25: the day that holds the change is 23 or 25 hours long.
    ("Europe/London", "08:00", utc(2026, 3, 29, 7), 23),
    ("Europe/London", "08:00", utc(2026, 3, 30, 7), 24),
    ("Europe/London", "08:00", utc(2026, 10, 25, 8), 25),
    # America/New_York: 2026-03-08 (02:00 EST → 03:00 EDT) and 2026-11-01.
    ("America/New_York", "08:00", utc(2026, 3, 8, 12), 23),
    ("America/New_York", "08:00", utc(2026, 11, 1, 13), 25),
    # 02:30 does not exist on 2026-03-08 in New York: that day's boundary is just after the
    # gap, 03:30 EDT (07:30 UTC), 24 hours after the day before's 02:30 EST...
    ("America/New_York", "02:30", utc(2026, 3, 8, 7, 30), 24),
    # ...and the next day's 02:30 EDT is 23 hours later.
    ("America/New_York", "02:30", utc(2026, 3, 9, 6, 30), 23),
    # 01:30 happens twice on 2026-11-01: the first (EDT, 05:30 UTC) is the boundary.
    ("America/New_York", "01:30", utc(2026, 11, 1, 5, 30), 24),
    ("America/New_York", "01:30", utc(2026, 11, 2, 6, 30), 25),
])
def test_a_daily_period_runs_from_local_time_to_local_time_across_daylight_saving(
        zone, at, day_end, hours):
    cfg = digest_config(timezone=zone, time=at)
    period = last_ended(day_end, cfg)
    assert period.end == day_end
    assert period.end - period.start == timedelta(hours=hours)
    assert last_ended(day_end - timedelta(microseconds=1), cfg) == previous(period, cfg)


def test_the_repeated_hour_of_a_fall_back_day_makes_no_second_digest():
    cfg = digest_config(timezone="America/New_York", time="01:30")
    first_0130 = utc(2026, 11, 1, 5, 30)
    second_0130 = utc(2026, 11, 1, 6, 30)  # 01:30 EST, an hour later
    assert last_ended(second_0130, cfg) == last_ended(first_0130, cfg)
    assert last_ended(second_0130, cfg).end == first_0130


@pytest.mark.parametrize(("zone", "end", "hours"), [
    ("Europe/London", utc(2026, 3, 30, 8), 7 * 24 - 1),   # Monday 09:00 BST; the week held 29 March
    ("Europe/London", utc(2026, 4, 6, 8), 7 * 24),
    ("America/New_York", utc(2026, 11, 2, 14), 7 * 24 + 1),  # Monday 09:00 EST
])
def test_a_weekly_period_runs_from_its_weekday_to_the_next(zone, end, hours):
    cfg = digest_config(timezone=zone, time="09:00", period="weekly", weekday="monday")
    assert last_ended(end + timedelta(days=3), cfg).end == end  # Thursday: Monday's period
    period = last_ended(end, cfg)
    assert (period.end, period.end - period.start) == (end, timedelta(hours=hours))
    assert period.start.astimezone(end.tzinfo).weekday() == 0


ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/Santiago", "Pacific/Chatham"]


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), hour=st.integers(0, 23), minute=st.integers(0, 59),
       weekly=st.booleans(), weekday=st.sampled_from(config.WEEKDAYS),
       now=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(UTC)))
def test_periods_tile_time_with_no_gap_or_overlap(zone, hour, minute, weekly, weekday, now):
    """Whatever the zone, time and day: the period that last ended at ``now`` ended at or
    before it, the next one ends after it, and each starts where the one before ended."""
    cfg = digest_config(timezone=zone, time=f"{hour:02d}:{minute:02d}",
                        period="weekly" if weekly else "daily", weekday=weekday)
    period = last_ended(now, cfg)
    assert period.end <= now
    assert previous(period, cfg).end == period.start < period.end
    assert last_ended(period.end, cfg) == period
    assert last_ended(period.start, cfg) == previous(period, cfg)
    length = period.end - period.start
    days = 7 if weekly else 1
    assert timedelta(days=days, hours=-3) <= length <= timedelta(days=days, hours=3)


@pytest.mark.parametrize(("keys", "message"), [
    ({"timezone": "Mars/Base"}, "digest.timezone: expected an IANA time zone"),
    ({"timezone": "../etc/passwd"}, "digest.timezone"),
    ({"timezone": "America"}, "digest.timezone"),
    ({"time": "25:00"}, "digest.time: expected a local time"),
    ({"time": "8:00"}, "digest.time"),
    ({"period": "hourly"}, "digest.period: expected \"daily\" or \"weekly\""),
    ({"weekday": "mon"}, "digest.weekday"),
    ({"channel": "#security"}, "digest.channel"),
    ({"channel": "teams:nowhere"}, "digest.channel: unknown Teams destination 'nowhere'"),
    ({"channel": "teamsbot:secops"}, "digest.channel: the Teams bot is off"),
])
def test_a_bad_digest_key_is_refused_at_load_by_name(keys, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        config.from_dict({"sqs": QUEUE, "digest": {"channel": CHANNEL, **keys}})


def test_the_digest_is_off_by_default():
    cfg = config.from_dict({"sqs": QUEUE})
    assert not cfg.digest.enabled
    assert (cfg.digest.time, cfg.digest.timezone, cfg.digest.period) == ("08:00", "UTC", "daily")


def test_zoneinfo_has_its_data_on_any_machine():
    """The tzdata package is a dependency: a slim image without /usr/share/zoneinfo still
    knows every zone."""
    import tzdata  # noqa: F401  (installed with the bot)
    assert digest_config(timezone="America/New_York").timezone == "America/New_York"


# --- the message ----------------------------------------------------------------------------

# A daily digest at 08:00 UTC; the period 2026-11-23 08:00 → 2026-11-24 08:00.
END = utc(2026, 11, 24, 8)
IN_PERIOD = utc(2026, 11, 23, 12)
BEFORE = utc(2026, 11, 22, 12)


def store_events(store: Store, at: datetime, *kinds: str, **params) -> None:
    messages = []
    for i, kind in enumerate(kinds):
        body = samples.example(kind, now=at + timedelta(minutes=i))
        body["params"].update(params)
        messages.append(sqs_message(body))
    Intake(None, config.from_dict({"sqs": QUEUE}).sqs, store).store_messages(messages)


def example_store(store: Store) -> None:
    store_events(store, BEFORE, "app_login/incorrect_password", "app_login/successful_login",
                 "app_login/successful_login")
    store_events(store, IN_PERIOD, "app_login/incorrect_password",
                 "app_login/incorrect_password", "app_login/unauthorized_ip",
                 "user/user_added", "user/privileges_updated", "allowed_ip/ip_added",
                 "allowed_ip/ip_removed")
    store_events(store, IN_PERIOD + timedelta(hours=1), "app_login/unauthorized_ip",
                 user="mallory@example.com", ip="203.0.113.9")
    store_events(store, END, "app_login/incorrect_password")  # the next period's
    raise_alerts_and_questions(store)


def raise_alerts_and_questions(store: Store) -> None:
    """The events' alerts, as the delivery job queues them, all posted and the high and
    critical ones not acknowledged; and their "was this you?" questions, the first answered
    no, the second never answered."""
    cfg = config.from_dict({"sqs": QUEUE, "slack": {"default_channel": "C0ALERTS01"},
                            "confirm": {"enabled": True}})
    AlertDelivery(Outbox(store), alert_outputs(SlackRenderer(), None), cfg,
                  clock=lambda: IN_PERIOD + timedelta(hours=2)).enqueue_new_events()
    with transaction(store.connection()) as conn:
        conn.execute("UPDATE alerts SET state = 'sent'")
        conn.execute("UPDATE alerts SET acked_by = 'U0ACKER001' "
                     "WHERE severity NOT IN ('high', 'critical')")
        first, second = (row[0] for row in conn.execute(
            "SELECT id FROM questions ORDER BY id LIMIT 2"))
        conn.execute("UPDATE questions SET state = 'answered', answer = 'no' WHERE id = ?",
                     (first,))
        conn.execute("UPDATE questions SET state = 'expired' WHERE id = ?", (second,))


def example_view(store: Store) -> DigestView:
    example_store(store)
    return digest_view(store.connection(), last_ended(END, digest_config()), digest_config())


def test_the_digest_counts_kinds_against_the_period_before_and_lists_what_changed(store):
    view = example_view(store)
    kinds = {k["kind"]: (k["count"], k["previous"]) for k in view.kinds}
    assert kinds["app_login/incorrect_password"] == (2, 1)
    assert kinds["app_login/successful_login"] == (0, 2)
    assert kinds["app_login/unauthorized_ip"] == (2, 0)
    assert (view.total, view.previous_total) == (8, 3)
    assert [e.kind for e in view.admin_changes.items] == ["user/user_added",
                                                          "user/privileges_updated"]
    assert view.new_admins == 1  # the sample raises someone to admin
    assert [e.kind for e in view.allow_list.items] == ["allowed_ip/ip_added",
                                                       "allowed_ip/ip_removed"]
    assert view.failed_ips == (Tally("203.0.113.9", 1), Tally("8.8.8.8", 1))
    assert ("mallory@example.com", 1) in [(t.name, t.count) for t in view.failed_users]
    assert view.open_alerts == {"critical": 1, "high": 4}  # as they stand now
    assert [(q.answer, q.state) for q in view.unconfirmed] == [("no", "answered"),
                                                               (None, "expired")]


def test_the_slack_digest_is_the_expected_message_and_valid_block_kit(store):
    message = SlackRenderer().render_digest(example_view(store))
    for block in message["blocks"]:
        if block["type"] != "rich_text":
            assert Block.parse(block).to_dict() == block
    if not EXPECTED.exists():  # regenerate deliberately: delete the file, run, review, commit
        EXPECTED.write_text(json.dumps(message, indent=2, ensure_ascii=False) + "\n")
        pytest.fail(f"{EXPECTED.name} was missing and is now written: review it")
    assert message == json.loads(EXPECTED.read_text())
    assert message["text"] == "Voiso daily digest: 8 events (+5), 5 alerts still open"


def test_the_teams_digest_is_a_valid_adaptive_card(store):
    card = TeamsRenderer().digest_card(example_view(store))
    validate_card(card)
    shown = json.dumps(card, ensure_ascii=False)
    assert "Voiso daily security digest" in shown and "mallory@example.com" in shown


def test_a_digest_of_an_empty_period_says_none(store):
    view = digest_view(store.connection(), last_ended(END, digest_config()), digest_config())
    message = SlackRenderer().render_digest(view)
    assert message["text"] == "Voiso daily digest: 0 events (±0), 0 alerts still open"
    validate_card(TeamsRenderer().digest_card(view))


def hostile_view(value: str) -> DigestView:
    event = EventRow(1, "2026-11-23T12:00:00.000000Z", "user", "user_added", value, value,
                     value, value, value, value, value, None, "{}")
    allowed = EventRow(2, "2026-11-23T12:00:00.000000Z", "allowed_ip", "ip_added", value,
                       None, value, value, value, None, None, None, "{}")
    return DigestView(
        period="daily", timezone="UTC", start=END - timedelta(days=1), end=END,
        kinds=({"kind": "user/user_added", "count": 1, "previous": 0, "change": 1},),
        total=1, previous_total=0, admin_changes=Listed((event,), 3), new_admins=0,
        allow_list=Listed((allowed,), 1), failed_users=(Tally(value, 4),),
        failed_ips=(Tally(value, 2),), open_alerts={"high": 2},
        unconfirmed=(Unconfirmed(value, "no", "answered", 7, "2026-11-23T12:00:00.000000Z"),))


def assert_digest_safe(value: str) -> None:
    slack_message = _SLACK.render_digest(hostile_view(value))
    assert_slack_safe(slack_message, value, _SLACK.render_digest(hostile_view("x")))
    assert "digest.json.j2" not in json.dumps(slack_message)  # the template did not fail
    assert slack_message["blocks"][0]["type"] == "header"
    assert_teams_safe(envelope(_TEAMS.digest_card(hostile_view(value))), value)


_SLACK, _TEAMS = SlackRenderer(), TeamsRenderer()


# HOSTILE, and host names that a cut before escaping could leave half undefanged in Teams
# (found by the property below when the Teams template truncated values).
DIGEST_HOSTILE = [*HOSTILE, "www.evil.example/login", "evil.example",
                  "******<!channel><!channel>*bold*www.evil.example/",
                  "@www.evil.example/", "here@www.evil.example/", "@evil.example/login"]


@pytest.mark.parametrize("value", DIGEST_HOSTILE, ids=range(len(DIGEST_HOSTILE)))
def test_hostile_names_and_ips_in_the_digest_stay_text(value):
    assert_digest_safe(value)


DIGEST_ALPHABET = st.sampled_from([*"*_~`>:<&!@#|^-+.=/\\ \"'()[]{}0123456789", "here",
                                   "channel", "U0ABC123", "https://", "www.evil.example/",
                                   "\n", "é",
                                   "\u0430", "\u202e", "\u2028", "\U000e0041", "<!channel>",
                                   "*bold*", "{{7*7}}", "[x](https://evil.example)", "<at>"])


# At most 50 characters: the property checks that each value is shown whole, and the digest
# cuts a longer name visibly (with "…") to keep its lines short.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.lists(DIGEST_ALPHABET, min_size=1, max_size=30).map("".join)
       .filter(lambda text: len(text) <= 50) | st.text(min_size=1, max_size=50))
def test_whatever_a_name_or_ip_holds_the_digest_shows_it_as_text(value):
    assert_digest_safe(value)


# --- exactly once ---------------------------------------------------------------------------

@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels={CHANNEL}).start()
    yield fake
    fake.stop()


def digest_job(store: Store, fake: FakeSlack, now: list[datetime], **keys) -> DigestJob:
    sender = slack.SlackSender(slack.make_client("xoxb-test", fake.base_url, timeout=1))
    outputs = alert_outputs(SlackRenderer(), sender, slack_pace=0.0)
    return DigestJob(Digests(store), outputs, digest_config(**keys), timeout_seconds=1,
                     retry_base=0.01, clock=lambda: now[0])


def digest_posts(fake: FakeSlack) -> list[dict]:
    return [m for m in fake.messages(CHANNEL)
            if (m.get("metadata") or {}).get("event_type") == DIGEST_EVENT_TYPE]


def test_a_period_is_posted_once_however_often_the_job_runs(tmp_path, fake_slack):
    store, now = Store(tmp_path / "store.sqlite3"), [END + timedelta(minutes=1)]
    job = digest_job(store, fake_slack, now)
    for _ in range(3):
        job.run()
    (post,) = digest_posts(fake_slack)
    assert post["metadata"]["event_payload"] == {"digest": "2026-11-23T08:00:00.000000Z",
                                                 "store_id": store.store_id}
    now[0] = END + timedelta(days=1, minutes=1)  # the next period ends
    job.run()
    assert len(digest_posts(fake_slack)) == 2
    store.close()


def test_a_restart_between_insert_and_post_posts_once(tmp_path, fake_slack):
    path, now = tmp_path / "store.sqlite3", [END + timedelta(minutes=1)]
    store = Store(path)
    Digests(store).create(last_ended(now[0], digest_config()), digest_config(), now[0])
    store.close()  # killed here: the row is committed, nothing posted
    store = Store(path)
    job = digest_job(store, fake_slack, now)
    job.run()
    job.run()
    assert len(digest_posts(fake_slack)) == 1
    assert [row.state for row in Digests(store).all()] == ["sent"]
    store.close()


def test_a_restart_after_the_post_reached_slack_finds_it_and_does_not_post_again(
        tmp_path, fake_slack):
    path, now = tmp_path / "store.sqlite3", [END + timedelta(minutes=1)]
    store = Store(path)
    digest_job(store, fake_slack, now).run()
    (posted,) = digest_posts(fake_slack)
    # killed after Slack took the post, before its answer was recorded: as mark_trying left it
    with store.connection() as conn:
        conn.execute("UPDATE digests SET state = 'uncertain', ts = NULL")
    store.close()
    store = Store(path)
    digest_job(store, fake_slack, now).run()
    assert digest_posts(fake_slack) == [posted]
    assert [(row.state, row.ts) for row in Digests(store).all()] == [("sent", posted["ts"])]
    store.close()


def test_an_answer_lost_after_posting_is_settled_by_looking_not_by_posting_again(
        tmp_path, fake_slack):
    store, now = Store(tmp_path / "store.sqlite3"), [END + timedelta(minutes=1)]
    job = digest_job(store, fake_slack, now)
    fake_slack.fail("chat.postMessage", "post_then_hang")
    job.run()
    assert [row.state for row in Digests(store).all()] == ["uncertain"]
    now[0] += timedelta(minutes=5)
    job.run()
    assert len(digest_posts(fake_slack)) == 1
    assert [row.state for row in Digests(store).all()] == ["sent"]
    store.close()


def test_an_outage_delays_the_digest_and_it_is_posted_once_when_slack_is_back(
        tmp_path, fake_slack):
    store, now = Store(tmp_path / "store.sqlite3"), [END + timedelta(minutes=1)]
    job = digest_job(store, fake_slack, now)
    fake_slack.fail("chat.postMessage", "server_error", times=3)
    for _ in range(3):
        job.run()
        assert digest_posts(fake_slack) == []
        now[0] += timedelta(minutes=10)
    job.run()
    job.run()
    assert len(digest_posts(fake_slack)) == 1
    assert [row.state for row in Digests(store).all()] == ["sent"]
    store.close()


def test_a_bot_down_over_several_periods_posts_only_the_latest(tmp_path, fake_slack):
    store, now = Store(tmp_path / "store.sqlite3"), [END + timedelta(minutes=1)]
    digest_job(store, fake_slack, now).run()
    now[0] += timedelta(days=4)  # down for four days
    digest_job(store, fake_slack, now).run()
    starts = [row.period_start for row in Digests(store).all()]
    assert starts == ["2026-11-23T08:00:00.000000Z", "2026-11-27T08:00:00.000000Z"]
    assert len(digest_posts(fake_slack)) == 2
    store.close()


def test_a_channel_that_refuses_fails_the_digest_with_the_reason(tmp_path, fake_slack):
    store, now = Store(tmp_path / "store.sqlite3"), [END + timedelta(minutes=1)]
    fake_slack.set_not_in_channel(CHANNEL)
    digest_job(store, fake_slack, now).run()
    (row,) = Digests(store).all()
    assert row.state == "failed"
    assert "not_in_channel" in store.connection().execute(
        "SELECT last_error FROM digests").fetchone()[0]
    store.close()


def test_the_period_posted_is_the_one_that_ended_not_a_running_one(tmp_path, fake_slack):
    store, now = Store(tmp_path / "store.sqlite3"), [END - timedelta(minutes=1)]
    digest_job(store, fake_slack, now).run()
    assert [row.period_end for row in Digests(store).all()] == ["2026-11-23T08:00:00.000000Z"]
    assert Period(END - timedelta(days=1), END) == last_ended(END, digest_config())
    store.close()


def test_render_digest_previews_the_digest_of_the_examples(tmp_path, capsys):
    """bot.py render --digest [--teams]: the digest the examples would make, in Slack and
    as a Teams card."""
    from voisobot import cli

    path = tmp_path / "config.toml"
    path.write_text(f'[sqs]\nqueue_url = "{QUEUE["queue_url"]}"\n'
                    '[digest]\nchannel = "C0DIGEST01"\ntimezone = "Europe/London"\n')
    assert cli.main(["--config", str(path), "render", "--digest"], {}) == 0
    message = json.loads(capsys.readouterr().out)
    assert message["text"].startswith(f"Voiso daily digest: {len(samples.EXAMPLES)} events")
    assert cli.main(["--config", str(path), "render", "--digest", "--teams",
                     "user/privileges_updated"], {}) == 0
    post = json.loads(capsys.readouterr().out)
    validate_card(post["attachments"][0]["content"])
    assert "1 made admin" in json.dumps(post, ensure_ascii=False)


def test_a_teams_destination_gets_the_digest_as_one_card_even_through_an_outage(tmp_path):
    from tests.fakes.teams_webhook import FakeTeamsWebhook
    from voisobot.teams.output import WebhookOutput
    from voisobot.teams.webhook import TeamsSender

    webhook = FakeTeamsWebhook(retry_after=0).start()
    try:
        cfg = config.from_dict({"sqs": QUEUE, "digest": {"channel": "teams:secops"}, "teams": {
            "timeout_seconds": 1, "destinations": {"secops": {"webhook_url_env": "SECOPS"}}}})
        cards = WebhookOutput(TeamsRenderer(), TeamsSender(cfg.teams,
                                                           {"SECOPS": webhook.url("secops")}))
        store, now = Store(tmp_path / "store.sqlite3"), [END + timedelta(minutes=1)]
        job = DigestJob(Digests(store), alert_outputs(SlackRenderer(), None, cards),
                        cfg.digest, retry_base=0.01, clock=lambda: now[0])
        webhook.fail("server_error", times=2)
        for _ in range(4):
            job.run()
            now[0] += timedelta(minutes=10)
        assert len(webhook.calls_to("secops")) == 3  # two refused with 500, then posted
        (post,) = webhook.posts("secops")
        validate_card(post["attachments"][0]["content"])
        assert [row.state for row in Digests(store).all()] == ["sent"]
        store.close()
    finally:
        webhook.stop()


def test_the_bot_schedules_the_digest_only_when_a_channel_is_set(tmp_path, fake_slack):
    from voisobot import jobs, runtime

    def scheduled(digest: dict) -> bool:
        cfg = config.from_dict({"sqs": QUEUE, "digest": digest,
                                "store": {"path": str(tmp_path / "store.sqlite3")}})
        sender = slack.SlackSender(slack.make_client("xoxb-test", fake_slack.base_url, 1))
        bot = runtime.build(cfg, sender=sender)
        try:
            return bot.scheduler.get_job(jobs.DIGEST_JOB) is not None
        finally:
            bot.stop()

    assert scheduled({"channel": CHANNEL})
    assert not scheduled({})


def digest_counts(job: DigestJob) -> dict[str, float]:
    """voiso_digests_total as /metrics shows it, by outcome (every outcome, 0 included)."""
    return {sample.labels["outcome"]: sample.value for metric in job.metrics.registry.collect()
            for sample in metric.samples if sample.name == "voiso_digests_total"}


@pytest.mark.parametrize(("fault", "later", "counted"), [
    (("server_error",), 10, {"made": 1, "retry": 1, "sent": 1}),
    (("post_then_hang",), 5, {"made": 1, "retry": 1, "already_sent": 1}),
    (("invalid_auth",), 6, {"made": 1, "waiting": 1, "sent": 1}),
    (None, 0, {"made": 1, "failed": 1}),  # not in the channel
])
def test_each_step_of_a_digest_is_counted_in_the_metrics(tmp_path, fake_slack, fault, later,
                                                         counted):
    store, now = Store(tmp_path / "store.sqlite3"), [END + timedelta(minutes=1)]
    job = digest_job(store, fake_slack, now)
    if fault:
        fake_slack.fail("chat.postMessage", *fault)
    else:
        fake_slack.set_not_in_channel(CHANNEL)
    job.run()
    now[0] += timedelta(minutes=later)
    job.run()
    assert digest_counts(job) == {outcome: counted.get(outcome, 0) for outcome in (
        "made", "sent", "already_sent", "retry", "waiting", "failed")}
    store.close()


def test_a_refused_token_keeps_the_digest_waiting_not_failed(tmp_path, fake_slack):
    store, now = Store(tmp_path / "store.sqlite3"), [END + timedelta(minutes=1)]
    job = digest_job(store, fake_slack, now)
    fake_slack.fail("chat.postMessage", "invalid_auth")
    job.run()
    assert [row.state for row in Digests(store).all()] == ["pending"]
    now[0] += timedelta(minutes=6)  # the token fixed, the wait over
    job.run()
    assert len(digest_posts(fake_slack)) == 1
    store.close()
