"""``bot.py check``: look at the setup the way the bot will use it, and say what is wrong."""

import json
import os
import sqlite3
from collections.abc import Mapping
from typing import TextIO

import boto3

from voisobot import slack, sqs
from voisobot.config import Config
from voisobot.errors import VoisoBotError
from voisobot.store import Store

_NOT_OK = "problem"


def run(cfg: Config, client, slack_client=None, *, out: TextIO,
        env: Mapping[str, str] = os.environ) -> int:
    """Print one line per finding; return 0 when everything works, 1 otherwise.

    ``slack_client`` is None when SLACK_BOT_TOKEN is not set."""
    region = sqs.region_of(cfg.sqs)
    findings = [("ok", f"config is valid (queue {cfg.sqs.queue_url})"),
                ("ok", f"region {region.name} ({region.why})")]
    findings += _credentials()
    if findings[-1][0] == "ok":
        findings += _queue(cfg, client)
    findings += _slack(cfg, slack_client)
    if slack_client is not None:
        findings += _slack_mode(cfg, env)
    findings += _teams(cfg, env)
    findings += _store(cfg)
    for status, text in findings:
        print(f"{status:8} {text}", file=out)
    problems = sum(status == _NOT_OK for status, _ in findings)
    print("all checks passed" if not problems else f"{problems} problem(s) found", file=out)
    return 1 if problems else 0


def _credentials() -> list[tuple[str, str]]:
    credentials = boto3.session.Session().get_credentials()
    if credentials is None:
        return [(_NOT_OK, "no AWS credentials found: set AWS_ACCESS_KEY_ID and "
                 "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the bot's environment")]
    return [("ok", f"AWS credentials found ({credentials.method})")]


def _queue(cfg: Config, client) -> list[tuple[str, str]]:
    try:
        attributes = client.get_queue_attributes(
            QueueUrl=cfg.sqs.queue_url, AttributeNames=["All"])["Attributes"]
    except Exception as exc:
        problem = sqs.classify(exc, "GetQueueAttributes", cfg.sqs, client.meta.region_name)
        return [(_NOT_OK, str(problem))]
    findings = [("ok", "queue reachable: {} message(s) waiting, {} in flight, visibility "
                 "timeout {} s, retention {} days".format(
                     attributes.get("ApproximateNumberOfMessages", "?"),
                     attributes.get("ApproximateNumberOfMessagesNotVisible", "?"),
                     attributes.get("VisibilityTimeout", "?"),
                     int(attributes.get("MessageRetentionPeriod", 0)) // 86400))]
    if attributes.get("FifoQueue") == "true":
        findings.append((_NOT_OK, "the queue is FIFO; Voiso sends no MessageGroupId, so its "
                         "messages would be refused: use a standard queue"))
    findings.append(_redrive(attributes))
    return findings


def _redrive(attributes: dict) -> tuple[str, str]:
    policy = attributes.get("RedrivePolicy")
    if not policy:
        return ("warning", "no dead-letter queue: a message the bot cannot process is retried "
                "until SQS retention drops it; add a RedrivePolicy (README: AWS setup)")
    target = json.loads(policy)
    return ("ok", f"dead-letter queue {target.get('deadLetterTargetArn')} after "
            f"{target.get('maxReceiveCount')} receives")


def _slack(cfg: Config, client) -> list[tuple[str, str]]:
    if client is None:
        return [("warning", "SLACK_BOT_TOKEN is not set: events are stored, no alert is posted")]
    result = slack.auth_test(client)
    if result.status == "done":
        findings = [("ok", f"Slack accepts the bot token ({cfg.slack.api_base_url})")]
    elif result.status == "retry":
        findings = [(_NOT_OK, f"cannot reach Slack at {cfg.slack.api_base_url} ({result.error}); "
                     "check the network, a proxy or slack.api_base_url")]
    else:
        findings = [(_NOT_OK, f"Slack refused the bot token ({result.error}): {result.advice}")]
    if not cfg.routes and not cfg.slack.default_channel:
        findings.append((_NOT_OK, "no [[routes]] and no slack.default_channel: no alert has a "
                         "channel to go to"))
    return findings


def _slack_mode(cfg: Config, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Whether /voiso and the buttons can work in the configured mode."""
    if cfg.slack.mode == "http":
        if not env.get("SLACK_SIGNING_SECRET"):
            return [(_NOT_OK, 'slack.mode is "http" and SLACK_SIGNING_SECRET is not set: the '
                     "bot will not start (Slack app → Basic Information → Signing Secret)")]
        return [("ok", f"HTTP mode: Slack must reach http://{cfg.http.host}:"
                 f"{env.get('PORT') or cfg.http.port}/slack/events through your HTTPS proxy")]
    if not env.get("SLACK_APP_TOKEN"):
        return [("warning", "SLACK_APP_TOKEN is not set: alerts are posted, but /voiso and the "
                 "buttons get no answer (README: Slack setup)")]
    if not env["SLACK_APP_TOKEN"].startswith("xapp-"):
        return [(_NOT_OK, "SLACK_APP_TOKEN is not an app-level token (xapp-…); create one "
                 "with connections:write under Basic Information → App-Level Tokens")]
    return [("ok", "Socket Mode: SLACK_APP_TOKEN is set")]


def _teams(cfg: Config, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Each Teams destination's webhook URL, from its variable (never printed: a secret)."""
    findings = []
    for name, destination in cfg.teams.destinations.items():
        variable = destination.webhook_url_env
        url = env.get(variable, "")
        if not url:
            findings.append((_NOT_OK, f"Teams destination {name}: {variable} is not set; put "
                             "the flow's webhook URL in it (README: Teams setup)"))
        elif not url.startswith("https://"):
            findings.append((_NOT_OK, f"Teams destination {name}: {variable} is not an "
                             "https URL; copy the URL from the flow's trigger"))
        else:
            findings.append(("ok", f"Teams destination {name}: webhook URL set in {variable}"))
    return findings


def _failed_alerts(store: Store) -> list[tuple[str, str]]:
    """Alerts Slack refused for good, by channel and reason: each needs a human."""
    return [(_NOT_OK, f"{count} alert(s) to {channel} failed: {error}; once that is fixed, "
             f"python bot.py redeliver {channel}")
            for channel, error, count in store.connection().execute(
                "SELECT channel, last_error, count(*) FROM alerts WHERE state = 'failed' "
                "GROUP BY channel, last_error ORDER BY channel")]


def _store(cfg: Config) -> list[tuple[str, str]]:
    try:
        store = Store(cfg.store_path)
    except (sqlite3.Error, OSError, VoisoBotError) as exc:
        return [(_NOT_OK, f"cannot open the store {cfg.store_path}: {exc}; check store.path "
                 "and the directory's permissions")]
    try:
        totals = store.totals()
        failed = _failed_alerts(store)
    finally:
        store.close()
    return [("ok", "store {}: {events} event(s), {duplicates} duplicate(s), {rejected} "
             "rejected".format(cfg.store_path, **totals)), *failed]
