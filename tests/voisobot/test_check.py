"""``bot.py check`` says in plain words what is wrong with the setup."""

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.conftest import sqs_message
from tests.fakes.slack_api import FakeSlack
from voisobot import check, samples, sqs
from voisobot.config import RouteConfig
from voisobot.errors import ConfigError
from voisobot.intake import Intake
from voisobot.slack import sender as slack
from voisobot.store import Store, connect, migrate, migrations, transaction

ROOT = Path(__file__).resolve().parents[2]


def run_check(cfg, slack_client=None, env=None) -> tuple[int, str]:
    out = io.StringIO()
    code = check.run(cfg, sqs.make_client(cfg.sqs), slack_client, out=out,
                     env={} if env is None else env)
    return code, out.getvalue()


@pytest.fixture
def fake_slack():
    fake = FakeSlack(channels={"C0DEFAULT1"}).start()
    yield fake
    fake.stop()


def with_channel(cfg):
    return dataclasses.replace(cfg, slack=dataclasses.replace(cfg.slack,
                                                              default_channel="C0DEFAULT1"))


def test_no_slack_token_is_a_warning_not_a_problem(queue_url, make_config):
    code, out = run_check(make_config(queue_url))
    assert code == 0 and "warning  SLACK_BOT_TOKEN is not set" in out


def test_a_working_slack_token_passes(queue_url, make_config, fake_slack):
    client = slack.make_client("xoxb-test", fake_slack.base_url, timeout=2)
    code, out = run_check(with_channel(make_config(queue_url)), client)
    assert code == 0 and "Slack accepts the bot token" in out
    assert fake_slack.calls_to("auth.test")


def test_a_refused_slack_token_is_a_problem_with_advice(queue_url, make_config, fake_slack):
    client = slack.make_client("xoxb-revoked", fake_slack.base_url, timeout=2)
    code, out = run_check(with_channel(make_config(queue_url)), client)
    assert code == 1 and "Slack refused the bot token (invalid_auth)" in out
    assert "reinstall the app" in out and "xoxb-revoked" not in out


@pytest.mark.parametrize(("mode", "env", "status", "says"), [
    ("socket", {}, "warning", "SLACK_APP_TOKEN is not set"),
    ("socket", {"SLACK_APP_TOKEN": "xoxb-wrong-kind"}, "problem", "not an app-level token"),
    ("socket", {"SLACK_APP_TOKEN": "xapp-1"}, "ok", "Socket Mode: SLACK_APP_TOKEN is set"),
    ("http", {}, "problem", "SLACK_SIGNING_SECRET is not set"),
    ("http", {"SLACK_SIGNING_SECRET": "s", "PORT": "8080"}, "ok", ":8080/slack/events"),
])
def test_the_secrets_of_the_slack_mode_are_checked(queue_url, make_config, fake_slack, mode,
                                                   env, status, says):
    cfg = with_channel(make_config(queue_url))
    cfg = dataclasses.replace(cfg, slack=dataclasses.replace(cfg.slack, mode=mode))
    client = slack.make_client("xoxb-test", fake_slack.base_url, timeout=2)
    code, out = run_check(cfg, client, env)
    (line,) = [line for line in out.splitlines() if says in line]
    assert line.startswith(status) and code == (1 if status == "problem" else 0)
    assert "xapp-1" not in out and "xoxb-wrong-kind" not in out


def test_unreachable_slack_and_no_channel_are_problems(queue_url, make_config):
    client = slack.make_client("xoxb-test", "http://127.0.0.1:9/api/", timeout=1)
    code, out = run_check(make_config(queue_url), client)
    assert code == 1 and "cannot reach Slack" in out and "no alert has a channel" in out


def test_alerts_slack_refused_are_reported(queue_url, make_config):
    cfg = make_config(queue_url)
    store = Store(cfg.store_path)
    body = json.dumps(samples.example("user/user_added"))
    Intake(None, cfg.sqs, store).store_messages([sqs_message(body)])
    with transaction(store.connection()) as conn:
        conn.execute("INSERT INTO alerts (event_id, channel, severity, state, next_attempt_at, "
                     "created_at, last_error) VALUES (1, 'C0GONE0001', 'high', 'failed', '', '', "
                     "'channel_not_found: check the channel id')")
    store.close()
    code, out = run_check(cfg)
    assert code == 1 and "1 alert(s) to C0GONE0001 failed: channel_not_found" in out


def test_a_working_setup_passes_and_warns_about_a_missing_dead_letter_queue(queue_url,
                                                                            make_config):
    code, out = run_check(make_config(queue_url))
    assert code == 0 and out.rstrip().endswith("all checks passed")
    assert "queue reachable: 0 message(s) waiting" in out
    assert "warning  no dead-letter queue" in out
    assert f"warning  no store yet at {make_config(queue_url).store_path}: the bot has not run " \
        "here" in out


def test_a_dead_letter_queue_is_reported(sqs_admin, make_queue, make_config):
    dlq = make_queue()
    arn = sqs_admin.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    policy = json.dumps({"deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                         "maxReceiveCount": "5"})
    code, out = run_check(make_config(make_queue(RedrivePolicy=policy)))
    assert code == 0 and "after 5 receives" in out and "no dead-letter queue" not in out


def test_an_sse_kms_queue_says_who_needs_which_kms_action(make_queue, make_config):
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    code, out = run_check(make_config(make_queue(KmsMasterKeyId=key)))
    assert code == 0 and (f"ok       the queue is encrypted with KMS key {key}: the bot needs "
                          "kms:Decrypt on it, Voiso's sender kms:GenerateDataKey and "
                          "kms:Decrypt, in their IAM policies and in the key policy") in out


def test_a_queue_without_kms_says_nothing_of_kms(queue_url, make_config):
    assert "KMS" not in run_check(make_config(queue_url))[1]


def test_no_credentials(queue_url, make_config, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, out = run_check(make_config(queue_url))
    assert code == 1 and "no AWS credentials found: set AWS_ACCESS_KEY_ID" in out


def test_no_such_queue(moto_server, make_config):
    code, out = run_check(make_config(f"{moto_server['url']}/123456789012/no-such-queue"))
    assert code == 1 and "does not exist in region us-east-1: check sqs.queue_url" in out


@pytest.mark.parametrize("fault, says", [
    ("access_denied", "add sqs:GetQueueAttributes to the bot's IAM policy"),
    ("invalid_address", "does not belong to region us-east-1"),
    ("bad_credentials", "AWS rejected the bot's credentials"),
])
def test_queue_problems_are_named(queue_url, make_config, fault_proxy, fault, says):
    fault_proxy.fail("GetQueueAttributes", fault)
    code, out = run_check(make_config(queue_url, endpoint_url=fault_proxy.url))
    assert code == 1 and says in out and "1 problem(s) found" in out


PROFILES = "[default]\nregion = sa-east-1\n\n[profile ops]\nregion = ap-south-1\n"
NOTHING_SET = ("nothing set one: not in sqs.region, the queue URL, AWS_REGION, AWS_DEFAULT_REGION "
               "or the profile")


@pytest.mark.parametrize(("case", "sqs_region", "url_region", "env", "region", "why"), [
    ("sqs_region", "eu-central-1", "", {"AWS_REGION": "eu-west-2"}, "eu-central-1",
     "from sqs.region"),
    ("queue_url", "", "eu-west-1", {"AWS_REGION": "eu-west-2"}, "eu-west-1",
     "from the queue URL"),
    ("aws_region_first", "", "", {"AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "eu-west-3",
                                  "AWS_PROFILE": "ops"}, "eu-west-2", "from AWS_REGION"),
    ("aws_default_region", "", "", {"AWS_DEFAULT_REGION": "eu-west-3", "AWS_PROFILE": "ops"},
     "eu-west-3", "from AWS_DEFAULT_REGION"),
    ("aws_profile", "", "", {"AWS_PROFILE": "ops"}, "ap-south-1",
     "from profile ops in {config_file}"),
    ("default_profile", "", "", {}, "sa-east-1", "from profile default in {config_file}"),
    ("nothing", "", "", {"AWS_CONFIG_FILE": "/nonexistent/voisobot-tests"}, "us-east-1",
     NOTHING_SET),
])
def test_the_region_follows_the_aws_chain_and_check_says_why(
        moto_server, make_config, tmp_path, monkeypatch, case, sqs_region, url_region, env,
        region, why):
    config_file = tmp_path / "aws-config"
    config_file.write_text(PROFILES)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    # moto keeps one set of queues per region: the call below works only in the region used
    admin = boto3.session.Session().client("sqs", endpoint_url=moto_server["url"],
                                           region_name=region)
    url = admin.create_queue(QueueName=f"voiso-region-{case}")["QueueUrl"]
    if url_region:
        url = f"https://sqs.{url_region}.amazonaws.com/123456789012/voiso-region-{case}"
    cfg = make_config(url, **({"region": sqs_region} if sqs_region else {}))
    client = sqs.make_client(cfg.sqs)
    out = io.StringIO()
    code = check.run(cfg, client, None, out=out, env={})
    assert client.meta.region_name == region
    assert f"ok       region {region} ({why.format(config_file=config_file)})\n" in out.getvalue()
    assert code == 0 and "queue reachable" in out.getvalue()


@pytest.mark.parametrize("fault, says", [
    ("", "queue {url} does not exist in region eu-west-2: check sqs.queue_url"),
    ("invalid_address", "does not belong to region eu-west-2"),
])
def test_queue_problems_name_the_region_the_chain_chose(queue_url, make_config, fault_proxy,
                                                        monkeypatch, fault, says):
    """The queue lives in us-east-1; AWS_DEFAULT_REGION sends the client to eu-west-2."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")
    if fault:
        fault_proxy.fail("GetQueueAttributes", fault)
    code, out = run_check(make_config(queue_url, endpoint_url=fault_proxy.url))
    assert code == 1 and says.format(url=queue_url) in out


def test_a_malformed_region_from_the_environment_is_a_config_error(queue_url, make_config,
                                                                    monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu west 1")
    with pytest.raises(ConfigError, match="AWS_REGION: expected an AWS region such as eu-west-1, "
                                          "got 'eu west 1'"):
        sqs.make_client(make_config(queue_url).sqs)


def test_an_unwritable_store_is_named(queue_url, make_config, tmp_path):
    cfg = make_config(queue_url)
    cfg.store_path.mkdir()  # a directory where the file should be
    code, out = run_check(cfg)
    assert code == 1 and "cannot open the store" in out


def test_the_real_command_line(queue_url, moto_server, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[sqs]\nqueue_url = "{queue_url}"\nendpoint_url = "{moto_server["url"]}"\n')
    result = subprocess.run([sys.executable, "bot.py", "--config", str(path), "check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "queue reachable" in result.stdout


# --- the store: looked at, never made, never upgraded -----------------------------------------

def files_beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []


def test_check_never_creates_a_store_that_does_not_exist(queue_url, make_config):
    cfg = make_config(queue_url)
    before = files_beside(cfg.store_path)
    code, out = run_check(cfg)
    assert code == 0 and f"no store yet at {cfg.store_path}: the bot has not run here" in out
    assert files_beside(cfg.store_path) == before and not cfg.store_path.exists()


def test_check_says_when_the_store_directory_is_missing_too(queue_url, make_config, tmp_path):
    cfg = make_config(queue_url)
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, path="gone/s.sqlite3"))
    code, out = run_check(cfg)
    assert code == 0 and f"the directory {tmp_path / 'gone'} does not exist either" in out
    assert not (tmp_path / "gone").exists()


def test_an_existing_store_is_reported_and_left_as_it_was(queue_url, make_config):
    cfg = make_config(queue_url)
    Store(cfg.store_path).close()
    before = (cfg.store_path.read_bytes(), files_beside(cfg.store_path))
    code, out = run_check(cfg)
    assert code == 0 and f"ok       store {cfg.store_path}: 0 event(s)" in out
    assert (cfg.store_path.read_bytes(), files_beside(cfg.store_path)) == before


def test_an_older_schema_is_read_not_upgraded(queue_url, make_config):
    cfg = make_config(queue_url)
    conn = connect(str(cfg.store_path))
    migrate(conn, migrations()[:4])
    conn.close()
    code, out = run_check(cfg)
    newest = migrations()[-1][0]
    assert code == 0 and f"brings its schema from version 4 to {newest} when it starts" in out
    conn = connect(str(cfg.store_path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    conn.close()


def test_a_store_from_a_newer_bot_is_a_problem(queue_url, make_config):
    cfg = make_config(queue_url)
    Store(cfg.store_path).close()
    conn = connect(str(cfg.store_path))
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    code, out = run_check(cfg)
    assert code == 1 and "is at schema version 999, newer than this bot knows" in out


# --- kinds that never match -------------------------------------------------------------------

def with_kinds(cfg, severity=None, routes=()):
    return dataclasses.replace(cfg, severity=dict(severity or {}), routes=tuple(
        dataclasses.replace(RouteConfig(), **route) for route in routes))


def test_a_misspelt_severity_kind_is_a_warning_with_a_suggestion(queue_url, make_config):
    cfg = with_kinds(make_config(queue_url), {"app_login/unauthorised_ip": "critical"})
    code, out = run_check(cfg)
    assert code == 0
    assert ('warning  [severity] "app_login/unauthorised_ip" is neither a documented kind nor '
            'one seen in the store, so it never matches; did you mean '
            '"app_login/unauthorized_ip"?') in out


def test_a_kind_seen_in_the_store_is_known(queue_url, make_config):
    """Voiso may send kinds it has not documented: once stored, they are fine to name."""
    cfg = with_kinds(make_config(queue_url), {"app_login/mfa_failed": "high"},
                     [{"event": ("mfa_failed",), "channel": "C0SECURITY"}])
    assert "mfa_failed" in run_check(cfg)[1]
    store = Store(cfg.store_path)
    body = samples.example("app_login/successful_login")
    body["event"] = "mfa_failed"
    Intake(None, cfg.sqs, store).store_messages([sqs_message(json.dumps(body))])
    store.close()
    code, out = run_check(cfg)
    assert code == 0 and "mfa_failed" not in out


def test_a_misspelt_route_event_is_a_warning_with_a_suggestion(queue_url, make_config):
    cfg = with_kinds(make_config(queue_url),
                     routes=[{"event": ("unauthorised_ip",), "channel": "C0SECURITY"}])
    code, out = run_check(cfg)
    assert code == 0 and ('warning  routes[0].event "unauthorised_ip" is neither a documented '
                          'event nor one seen in the store, so it never matches; did you mean '
                          '"unauthorized_ip"?') in out


# --- the Slack token's type, and the channels the bot is in -----------------------------------

@pytest.mark.parametrize(("token", "says"), [
    ("xapp-1-A0SECRET-99-abcdef", "is an app-level token (xapp-…), which belongs in "
                                  "SLACK_APP_TOKEN"),
    ("xoxp-1-SECRET99-abcdef", "is a user token (xoxp-…): alerts would be posted as that person"),
    ("xoxe.xoxb-1-SECRET99-abc", "is a rotating bot token (xoxe.xoxb-…), which expires"),
    ("xoxe-1-SECRET99-abcdef", "is a refresh token (xoxe-…)"),
    ("SECRET99-abcdef", "is not a bot token"),
    ('"xoxb-1-SECRET99-abcdef"', "is wrapped in quotes"),
    ("xoxb-1-SECRET99-abcdef\n", "has spaces or a line break around it"),
])
def test_a_token_of_the_wrong_type_is_named_and_not_shown(queue_url, make_config, token, says):
    fake = FakeSlack(token=token, channels={"C0DEFAULT1"}).start()
    try:
        client = slack.make_client(token, fake.base_url, timeout=2)
        code, out = run_check(with_channel(make_config(queue_url)), client,
                              {"SLACK_BOT_TOKEN": token, "SLACK_APP_TOKEN": "xapp-x"})
    finally:
        fake.stop()
    (line,) = [line for line in out.splitlines() if line.startswith("problem  SLACK_BOT_TOKEN ")]
    assert code == 1 and says in line
    assert "SECRET99" not in out


def test_a_bot_token_is_not_questioned(queue_url, make_config, fake_slack):
    client = slack.make_client("xoxb-test", fake_slack.base_url, timeout=2)
    code, out = run_check(with_channel(make_config(queue_url)), client,
                          {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-x"})
    assert code == 0 and "SLACK_BOT_TOKEN" not in out


def routed(cfg, *channels, mute=()):
    routes = [{"event": (f"e{i}",), "channel": c} for i, c in enumerate(channels)]
    routes += [{"event": ("successful_login",), "channel": c, "mute": True} for c in mute]
    return dataclasses.replace(with_channel(cfg), routes=tuple(
        dataclasses.replace(RouteConfig(), **route) for route in routes))


def test_routed_channels_the_bot_is_not_in_are_listed(queue_url, make_config):
    fake = FakeSlack(channels={"C0DEFAULT1", "C0SECURITY", "C0MUTED01"}).start()
    fake.set_not_in_channel("C0NOTIN001")
    fake.set_archived("C0SECURITY")
    try:
        client = slack.make_client("xoxb-test", fake.base_url, timeout=2)
        cfg = routed(make_config(queue_url), "C0SECURITY", "C0NOTIN001", "C0UNKNOWN1",
                     "D0DIRECT01", mute=["C0MUTED01"])
        code, out = run_check(cfg, client)
        asked = [call.payload["channel"] for call in fake.calls_to("conversations.info")]
    finally:
        fake.stop()
    assert asked == ["C0SECURITY", "C0NOTIN001", "C0UNKNOWN1", "C0DEFAULT1"]
    assert code == 1
    assert "ok       the bot is a member of C0DEFAULT1 (#name-of-c0default1)" in out
    assert "problem  channel C0SECURITY (#name-of-c0security) is archived" in out
    assert ("problem  the bot is not a member of channel C0NOTIN001 (#name-of-c0notin001): its "
            "alerts there fail; type /invite @<the bot's name> in that channel") in out
    assert "problem  Slack knows no channel C0UNKNOWN1" in out


def test_without_the_read_scopes_membership_is_a_warning_said_once(queue_url, make_config,
                                                                   fake_slack):
    fake_slack.fail("conversations.info", "missing_scope", times=5)
    client = slack.make_client("xoxb-test", fake_slack.base_url, timeout=2)
    code, out = run_check(routed(make_config(queue_url), "C0DEFAULT1", "C0DEFAULT1"), client)
    lines = [line for line in out.splitlines() if "channels:read,groups:read" in line]
    assert code == 0 and len(lines) == 1 and lines[0].startswith("warning  cannot tell")
    assert len(fake_slack.calls_to("conversations.info")) == 1


def confirming(cfg, escalation: str = ""):
    return dataclasses.replace(cfg, confirm=dataclasses.replace(
        cfg.confirm, enabled=True, escalation_channel=escalation))


@pytest.mark.parametrize(("granted", "missing"), [
    (["chat:write", "users:read", "users:read.email", "im:write", "im:history"], []),
    (["chat:write", "users:read", "im:write"], ["users:read.email", "im:history"]),
    (["chat:write"], ["users:read", "users:read.email", "im:write", "im:history"]),
])
def test_with_confirm_on_check_names_the_scopes_the_token_lacks(queue_url, make_config,
                                                                fake_slack, granted, missing):
    fake_slack.scopes = granted
    client = slack.make_client("xoxb-test", fake_slack.base_url, timeout=2)
    code, out = run_check(confirming(with_channel(make_config(queue_url))), client)
    if missing:
        assert code == 1
        assert f"problem  [confirm] is on but the bot token lacks {', '.join(missing)}" in out
    else:
        assert "ok       the bot token has the scopes [confirm] needs" in out


def test_with_confirm_off_check_asks_nothing_of_its_scopes(queue_url, make_config,
                                                           fake_slack):
    fake_slack.scopes = ["chat:write"]
    client = slack.make_client("xoxb-test", fake_slack.base_url, timeout=2)
    _, out = run_check(with_channel(make_config(queue_url)), client)
    assert "[confirm]" not in out and len(fake_slack.calls_to("auth.test")) == 1


def test_with_confirm_on_the_escalation_channel_is_checked_like_a_routed_one(
        queue_url, make_config, fake_slack):
    fake_slack.set_not_in_channel("C0ESCALATE")
    fake_slack.channels.add("C0ESCALATE")
    client = slack.make_client("xoxb-test", fake_slack.base_url, timeout=2)
    code, out = run_check(confirming(with_channel(make_config(queue_url)), "C0ESCALATE"),
                          client)
    assert code == 1 and "the bot is not a member of channel C0ESCALATE" in out


def test_the_digest_channel_is_checked_like_a_routed_one(queue_url, make_config, fake_slack):
    fake_slack.set_not_in_channel("C0DIGEST01")
    fake_slack.channels.add("C0DIGEST01")
    client = slack.make_client("xoxb-test", fake_slack.base_url, timeout=2)
    cfg = with_channel(make_config(queue_url))
    cfg = dataclasses.replace(cfg, digest=dataclasses.replace(cfg.digest, channel="C0DIGEST01"))
    code, out = run_check(cfg, client)
    assert code == 1 and "the bot is not a member of channel C0DIGEST01" in out


# --- retention ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("days", "warned"), [(1, True), (29, True), (30, False), (90, False)])
def test_a_retention_shorter_than_recommended_is_a_warning(queue_url, make_config, days, warned):
    cfg = make_config(queue_url)
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, retention_days=days))
    code, out = run_check(cfg)
    line = f"warning  store.retention_days is {days}, shorter than the 30 days recommended"
    assert code == 0 and (line in out) == warned


def test_the_recommended_retention_is_the_longest_look_back_and_in_the_readme():
    assert check.RECOMMENDED_RETENTION_DAYS == 30
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"at least {check.RECOMMENDED_RETENTION_DAYS} days" in readme
