"""``voisobot check``: look at the setup the way the bot will use it, and say what is wrong.

It changes nothing: it opens the store only if it exists, and leaves its schema alone.
"""

import json
import os
import sqlite3
from collections.abc import Mapping
from typing import TextIO

import boto3

from voisobot import config_kinds, history, queries, sqs
from voisobot.config import Config
from voisobot.errors import VoisoBotError
from voisobot.slack import sender as slack
from voisobot.store import NoStore, Store, migrations

_NOT_OK = "problem"
# The furthest back the bot looks: /voiso stats 30d, and the alerts' IP history. A shorter
# retention makes both count only what is left (README: store.retention_days).
RECOMMENDED_RETENTION_DAYS = max(history.IP_HISTORY_WINDOW.days,
                                 *(span.days for span in queries.PERIODS.values()))


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
    findings += _slack(cfg, slack_client, env)
    if slack_client is not None:
        findings += _slack_mode(cfg, env)
    findings += _teams(cfg, env)
    findings += _teams_bot(cfg, env)
    store_findings, seen = _store(cfg)
    findings += store_findings
    findings += _retention(cfg)
    findings += [("warning", text) for text in config_kinds.warnings(cfg, seen)]
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
    if attributes.get("KmsMasterKeyId"):
        findings.append(("ok", _kms_needs(attributes["KmsMasterKeyId"])))
    return findings


def _kms_needs(key: str) -> str:
    """Who needs what on an SSE-KMS queue's key: a receive only shows a missing permission
    once a message waits, and Voiso's side is not seen from here at all."""
    return (f"the queue is encrypted with KMS key {key}: the bot needs "
            f"{' and '.join(sqs.KMS_RECEIVER_ACTIONS)} on it, Voiso's sender "
            f"{' and '.join(sqs.KMS_SENDER_ACTIONS)}, in their IAM policies and in the key "
            "policy (README: Deployment, SSE-KMS queues)")


def _redrive(attributes: dict) -> tuple[str, str]:
    policy = attributes.get("RedrivePolicy")
    if not policy:
        return ("warning", "no dead-letter queue: a message the bot cannot process is retried "
                "until SQS retention drops it; add a RedrivePolicy (README: AWS setup)")
    target = json.loads(policy)
    return ("ok", f"dead-letter queue {target.get('deadLetterTargetArn')} after "
            f"{target.get('maxReceiveCount')} receives")


def _slack(cfg: Config, client, env: Mapping[str, str]) -> list[tuple[str, str]]:
    if client is None:
        return [("warning", "SLACK_BOT_TOKEN is not set: events are stored, no alert is posted")]
    findings = _bot_token(env)
    result = slack.auth_test(client)
    if result.status == "done":
        findings.append(("ok", f"Slack accepts the bot token ({cfg.slack.api_base_url})"))
        findings += _memberships(cfg, client) + _confirm_scopes(cfg, client)
    elif result.status == "retry":
        findings.append((_NOT_OK, f"cannot reach Slack at {cfg.slack.api_base_url} "
                         f"({result.error}); check the network, a proxy or slack.api_base_url"))
    else:
        findings.append((_NOT_OK, f"Slack refused the bot token ({result.error}): "
                         f"{result.advice}"))
    if not cfg.routes and not cfg.slack.default_channel:
        findings.append((_NOT_OK, "no [[routes]] and no slack.default_channel: no alert has a "
                         "channel to go to"))
    return findings


def _bot_token(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The token's type, named without printing the token."""
    wrong = slack.wrong_bot_token(env.get("SLACK_BOT_TOKEN", slack.BOT_TOKEN_PREFIX))
    return [(_NOT_OK, f"SLACK_BOT_TOKEN {wrong}")] if wrong else []


# What "was this you?" needs beyond the alerts' scopes (manifest.yml).
CONFIRM_SCOPES = ("users:read", "users:read.email", "im:write", "im:history")


def _confirm_scopes(cfg: Config, client) -> list[tuple[str, str]]:
    """With [confirm] on and asking in Slack: the scopes asking people needs, which an app
    installed before confirmations lacks until it is reinstalled."""
    if not cfg.confirm.enabled or "slack" not in cfg.confirm.ask_in:
        return []
    granted = slack.granted_scopes(client)
    if granted is None:
        return [("warning", "cannot tell the bot token's scopes; [confirm] needs "
                 + ", ".join(CONFIRM_SCOPES))]
    missing = [scope for scope in CONFIRM_SCOPES if scope not in granted]
    if not missing:
        return [("ok", "the bot token has the scopes [confirm] needs")]
    return [(_NOT_OK, f"[confirm] is on but the bot token lacks {', '.join(missing)}: add "
             "them under OAuth & Permissions (manifest.yml has them), reinstall the app and "
             "set the new xoxb- token; until then nobody can be asked")]


def routed_channels(cfg: Config) -> list[str]:
    """The Slack channels alerts can go to: each posting route's, then the default one, the
    escalation channel of [confirm] and the digest's. Only C… and G… IDs: a bot is not
    invited into a DM (D…), and teams:/teamsbot: names are Teams'."""
    channels = [route.channel for route in cfg.routes if route.channel and not route.mute]
    channels.append(cfg.slack.default_channel)
    if cfg.confirm.enabled:
        channels.append(cfg.confirm.escalation_channel)
    channels.append(cfg.digest.channel)
    return [c for c in dict.fromkeys(channels) if c[:1] in ("C", "G")]


def _memberships(cfg: Config, client) -> list[tuple[str, str]]:
    """Whether the bot is in every routed channel (conversations.info): a post to one it is
    not in fails for good (not_in_channel)."""
    findings, members = [], []
    for channel in routed_channels(cfg):
        found = slack.membership(client, channel)
        if found.failure is not None:
            findings.append(_membership_failure(found.failure))
            if found.failure.error == "missing_scope":
                break  # the same answer for every channel
        elif found.archived:
            findings.append((_NOT_OK, f"channel {channel} (#{found.name}) is archived: "
                             "unarchive it or route its alerts elsewhere in config.toml"))
        elif not found.member:
            findings.append((_NOT_OK, f"the bot is not a member of channel {channel} "
                             f"(#{found.name}): its alerts there fail; type /invite "
                             "@<the bot's name> in that channel"))
        else:
            members.append(f"{channel} (#{found.name})")
    if members:
        findings.insert(0, ("ok", "the bot is a member of " + ", ".join(members)))
    return findings


def _membership_failure(failure: slack.SendResult) -> tuple[str, str]:
    where = f"channel {failure.channel}"
    if failure.error == "missing_scope":
        return ("warning", f"cannot tell which routed channels the bot is in: the app lacks "
                f"the {slack.INFO_SCOPES} scopes (manifest.yml has them): add them under OAuth "
                "& Permissions, reinstall the app and set the new xoxb- token")
    if failure.error == "channel_not_found":
        return (_NOT_OK, f"Slack knows no {where}: check its ID in config.toml; a private "
                "channel the bot is not in looks the same, so invite the bot there")
    return ("warning", f"cannot tell whether the bot is in {where} ({failure.error})")


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


def _teams_bot(cfg: Config, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The Teams bot's credentials (names only) and its authentication switch."""
    bot = cfg.teams.bot
    if not bot.enabled:
        return []
    from voisobot.teams.server import APP_ID_VARIABLE, SECRET_VARIABLE, TENANT_VARIABLE
    findings = []
    if bot.allow_unauthenticated:
        findings.append((_NOT_OK, "teams.bot.allow_unauthenticated is true: the Teams bot "
                         "accepts activities without checking Microsoft's signature; for "
                         "local tests only, set it to false"))
    missing = [name for name in (APP_ID_VARIABLE, SECRET_VARIABLE, TENANT_VARIABLE)
               if not env.get(name)]
    if missing and not bot.allow_unauthenticated:
        findings.append((_NOT_OK, f"Teams bot: {', '.join(missing)} not set (README: Teams "
                         "bot)"))
    elif not missing:
        findings.append(("ok", f"Teams bot: {APP_ID_VARIABLE}, {SECRET_VARIABLE} and "
                         f"{TENANT_VARIABLE} set; endpoint {bot.host}:{bot.port}{bot.path}"))
    return findings


def _failed_alerts(store: Store) -> list[tuple[str, str]]:
    """Alerts Slack refused for good, by channel and reason: each needs a human."""
    return [(_NOT_OK, f"{count} alert(s) to {channel} failed: {error}; once that is fixed, "
             f"voisobot redeliver {channel}")
            for channel, error, count in store.connection().execute(
                "SELECT channel, last_error, count(*) FROM alerts WHERE state = 'failed' "
                "GROUP BY channel, last_error ORDER BY channel")]


def _store(cfg: Config) -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    """What the store holds, and the kinds seen in it; a store that does not exist is not
    made (the bot makes it on start, where it runs)."""
    path = cfg.store_path
    try:
        store = Store(path, create=False, upgrade=False)
    except NoStore as exc:
        missing = "" if path.parent.is_dir() else \
            f" (the directory {path.parent} does not exist either)"
        return [("warning", f"{exc}{missing}; check store.path if it has")], set()
    except (sqlite3.Error, OSError, VoisoBotError) as exc:
        return [(_NOT_OK, f"cannot open the store {path}: {exc}; check store.path "
                 "and the directory's permissions")], set()
    try:
        return _store_contents(store), store.kinds_seen()
    except sqlite3.Error as exc:
        return [(_NOT_OK, f"cannot read the store {path}: {exc}")], set()
    finally:
        store.close()


def _store_contents(store: Store) -> list[tuple[str, str]]:
    version, newest = store.schema_version(), migrations()[-1][0]
    if version > newest:
        return [(_NOT_OK, f"the store {store.path} is at schema version {version}, newer than "
                 f"this bot knows ({newest}): run the newer bot, or use another store.path")]
    upgrade = (f"; the bot brings its schema from version {version} to {newest} when it "
               "starts" if version < newest else "")
    return [("ok", "store {}: {events} event(s), {duplicates} duplicate(s), {rejected} "
             "rejected{}".format(store.path, upgrade, **store.totals())), *_failed_alerts(store)]


def _retention(cfg: Config) -> list[tuple[str, str]]:
    days = cfg.store.retention_days
    if days >= RECOMMENDED_RETENTION_DAYS:
        return []
    return [("warning", f"store.retention_days is {days}, shorter than the "
             f"{RECOMMENDED_RETENTION_DAYS} days recommended: /voiso stats 30d and the "
             f"alerts' {history.IP_HISTORY_WINDOW.days}-day IP history only count what "
             "is left")]
