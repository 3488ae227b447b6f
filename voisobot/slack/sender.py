"""The Slack sender: send an already-rendered message, and classify the outcome.

Payloads are built (and escaped) elsewhere; this module only talks to the Web API.
Every outcome becomes a SendResult: ``done``, ``retry`` (later, after
``retry_after`` seconds if Slack said so) or ``give_up`` (with advice for a human).
``classify`` is the one place that decides which. A post that may have reached Slack
anyway is marked ``maybe_posted``; ``find_alert_post`` settles whether it did.
"""

import http.client
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.error import HTTPError, URLError

import slack_sdk
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, FixedValueRetryIntervalCalculator
from slack_sdk.web import SlackResponse

from voisobot.logs import Quieted
from voisobot.outbox import AlertKey
from voisobot.sending import SendResult, retry_after

CONNECT_RETRY_PAUSE_SECONDS = 0.5

# Failures of the network or of Slack's servers: the same call can work later.
NETWORK_ERRORS = (URLError, TimeoutError, ConnectionError, http.client.HTTPException)
RETRYABLE_CODES = frozenset({"ratelimited", "internal_error", "fatal_error",
                             "service_unavailable", "request_timeout"})
BAD_TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked"})
_RENDERING_BUG = frozenset({"msg_too_long", "invalid_blocks", "invalid_blocks_format"})

# Failures that can come after the whole request went out: Slack may have acted on it.
_AFTER_SENDING_ERRORS = (TimeoutError, ConnectionResetError, http.client.HTTPException)
# Slack documents these two as "it's possible some aspect of the operation succeeded".
_MAYBE_DONE_CODES = frozenset({"internal_error", "fatal_error"})

ALERT_EVENT_TYPE = AlertKey.event_type  # the metadata event_type of every alert post
HISTORY_PAGE_SIZE = 200
HISTORY_MARGIN_SECONDS = 120.0  # look this far before the first try for a possible post
HISTORY_MAX_PAGES = 5
HISTORY_SCOPES = "channels:history,groups:history"
INFO_SCOPES = "channels:read,groups:read"  # conversations.info, for check

# The Web API client's own log. Its retry chatter only repeats what the caller reports once,
# classified (the error reaches it): DEBUG, not INFO and ERROR lines on every failed call.
CLIENT_LOG = logging.getLogger("voisobot.slack_client")
CLIENT_LOG.addFilter(Quieted("Failed to send a request to Slack API server",
                             "A retry handler found", "Going to retry the same request"))


def make_client(token: str, base_url: str, timeout: float) -> slack_sdk.WebClient:
    """A WebClient whose every call returns within about ``timeout`` (at worst twice that
    plus a short pause).

    It retries once, after a short pause, only a connection that could not be made: that
    request never reached Slack, so the retry cannot post a message twice. A connection
    dropped after the request went out (RemoteDisconnected, a reset) is not retried here:
    Slack may have posted it, and the outbox decides. Nothing here sleeps on 429 or 5xx:
    the outbox owns waiting (honouring ``retry_after``), so one send never holds the
    delivery job for minutes while other channels' alerts queue behind it.
    """
    return slack_sdk.WebClient(
        token=token, base_url=base_url, timeout=timeout, logger=CLIENT_LOG,
        retry_handlers=[ConnectionErrorRetryHandler(
            max_retry_count=1, error_types=[URLError],
            interval_calculator=FixedValueRetryIntervalCalculator(CONNECT_RETRY_PAUSE_SECONDS))],
    )


def post_message(client: slack_sdk.WebClient, channel: str, message: dict, *,
                 alert: AlertKey | None = None, thread_ts: str | None = None) -> SendResult:
    """Post ``{"text", "blocks"}``. No ``link_names``/``parse``, and ``mrkdwn`` off: untrusted
    text stays text, in the blocks and in the notification alike.

    With ``alert`` the post carries message metadata naming the alert (or the digest: any
    key with ``event_type``, ``payload()`` and ``names(payload)``), which is how
    ``find_alert_post`` recognises it later. A retry whose post may have reached Slack
    (the answer was lost, not refused) comes back with ``maybe_posted`` set.
    """
    metadata = None
    if alert is not None:
        metadata = {"event_type": alert.event_type, "event_payload": alert.payload()}
    try:
        response = client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=message["text"],
            blocks=message.get("blocks"), attachments=message.get("attachments"), mrkdwn=False,
            unfurl_links=False, unfurl_media=False, metadata=metadata)
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        return _mark_maybe_posted(classify(exc, channel=channel), exc)
    return _mark_maybe_posted(classify(response, channel=channel), response)


def update_message(client: slack_sdk.WebClient, channel: str, ts: str,
                   message: dict) -> SendResult:
    """Replace a posted message. Its attachments are always sent, empty if it has none:
    chat.update keeps the old ones when the argument is missing."""
    try:
        response = client.chat_update(  # parse "none": chat.update's default is "client"
            channel=channel, ts=ts, text=message["text"], blocks=message.get("blocks"),
            attachments=message.get("attachments", []), parse="none", mrkdwn=False)
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        return classify(exc, channel=channel)
    return classify(response, channel=channel)


def open_dm(client: slack_sdk.WebClient, user_id: str) -> SendResult:
    """Open (or find again: Slack gives the same one) the direct-message channel with one
    user (scope im:write); ``done`` carries its ``D…`` id as ``channel``."""
    try:
        response = client.conversations_open(users=user_id)
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        return classify(exc)
    result = classify(response)
    if result.status != "done":
        return result
    info = response.get("channel")
    channel = info.get("id") if isinstance(info, Mapping) else None
    if not isinstance(channel, str) or not channel:
        return SendResult("give_up", error="no channel in Slack's answer",
                          advice="Slack opened a direct message without naming its channel; "
                                 "report it")
    return SendResult("done", channel)


def permalink(client: slack_sdk.WebClient, channel: str, ts: str) -> str | None:
    """A link to one message (chat.getPermalink, which needs no scope), or None if Slack
    gives none for any reason: a link is a convenience, never worth a retry."""
    try:
        response = client.chat_getPermalink(channel=channel, message_ts=ts)
    except (SlackClientError, *NETWORK_ERRORS):
        return None
    link = response.get("permalink")
    return link if response.get("ok") and isinstance(link, str) and link else None


def auth_test(client: slack_sdk.WebClient) -> SendResult:
    """For ``bot.py check``: done if the token works, else give_up (or retry) with advice."""
    try:
        response = client.auth_test()
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        return classify(exc)
    return classify(response)


BOT_TOKEN_PREFIX = "xoxb-"
# Other tokens found in SLACK_BOT_TOKEN, most specific prefix first (api.slack.com, "Tokens").
_OTHER_TOKENS = (
    ("xoxe.xoxb-", "a rotating bot token (xoxe.xoxb-…), which expires within 12 hours and "
                   "which the bot does not refresh"),
    ("xoxe.xoxp-", "a rotating user token (xoxe.xoxp-…)"),
    ("xoxe-", "a refresh token (xoxe-…)"),
    ("xapp-", "an app-level token (xapp-…), which belongs in SLACK_APP_TOKEN"),
    ("xoxp-", "a user token (xoxp-…): alerts would be posted as that person, with their access"),
)


def wrong_bot_token(token: str) -> str | None:
    """What is wrong with the value of SLACK_BOT_TOKEN, in words that never repeat it; None
    for a bot token (``xoxb-…``)."""
    bare = token.strip()
    if bare != token:
        return "has spaces or a line break around it: remove them"
    if bare[:1] in ("'", '"'):
        return ("is wrapped in quotes (docker run --env-file keeps them as part of the value): "
                "remove them")
    if bare.startswith(BOT_TOKEN_PREFIX):
        return None
    kind = next((what for prefix, what in _OTHER_TOKENS if bare.startswith(prefix)),
                "not a bot token")
    return (f"is {kind}; copy the Bot User OAuth Token ({BOT_TOKEN_PREFIX}…) from the app's "
            "OAuth & Permissions page into SLACK_BOT_TOKEN")


def granted_scopes(client: slack_sdk.WebClient) -> frozenset[str] | None:
    """The bot token's scopes, as auth.test's X-OAuth-Scopes header names them; None when
    Slack could not say."""
    try:
        response = client.auth_test()
    except (SlackClientError, *NETWORK_ERRORS):
        return None
    header = {k.lower(): v for k, v in (response.headers or {}).items()}.get("x-oauth-scopes")
    if not isinstance(header, str):
        return None
    return frozenset(scope.strip() for scope in header.split(",") if scope.strip())


@dataclass(frozen=True)
class Membership:
    """Whether the bot can post in a channel, from conversations.info; ``failure`` set when
    Slack could not say."""

    channel: str
    name: str = ""
    member: bool = False
    archived: bool = False
    failure: SendResult | None = None


def membership(client: slack_sdk.WebClient, channel: str) -> Membership:
    """For ``check``: is the bot in ``channel`` (scope channels:read, groups:read)?"""
    try:
        response = client.conversations_info(channel=channel)
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        return Membership(channel, failure=classify(exc, channel=channel))
    result = classify(response, channel=channel)
    info = response.get("channel")
    if result.status != "done":
        return Membership(channel, failure=result)
    if not isinstance(info, Mapping):
        return Membership(channel, failure=SendResult("give_up", channel, error="no channel "
                                                      "in Slack's answer"))
    return Membership(channel, str(info.get("name") or ""), bool(info.get("is_member")),
                      bool(info.get("is_archived")))


def history_start(first_tried_at: str | None) -> float:
    """Where to start looking (epoch seconds) for a post first tried at ``first_tried_at``
    (now, if unknown): a margin before it, since Slack's clock is not ours."""
    start = datetime.fromisoformat(first_tried_at) if first_tried_at else datetime.now(UTC)
    return start.timestamp() - HISTORY_MARGIN_SECONDS


def find_alert_post(client: slack_sdk.WebClient, channel: str, alert: AlertKey,
                    oldest_ts: float) -> SendResult:
    """Look for the post of ``alert`` in ``channel`` since ``oldest_ts`` (epoch seconds;
    start a margin before the first try, since Slack's clock is not ours). Only a post whose
    metadata names this store and this alert counts.

    This is what makes posting again after an ambiguous failure (``maybe_posted``, or a
    crash mid-call) safe: ``done`` with the post's ``ts`` means the alert is already
    there and must not be posted again; ``done`` with ``ts=None`` means the history since
    ``oldest_ts`` was read to its end without it, so posting cannot make a second copy.
    Anything else (a failure, or more history than ``HISTORY_MAX_PAGES`` pages) is not a
    "no": retry or give_up, never ``ts=None``.
    """
    cursor = None
    for _ in range(HISTORY_MAX_PAGES):
        try:
            response = client.conversations_history(
                channel=channel, oldest=str(oldest_ts), include_all_metadata=True,
                limit=HISTORY_PAGE_SIZE, cursor=cursor)
        except (SlackClientError, *NETWORK_ERRORS) as exc:
            return _history_failure(exc, channel)
        ts = _alert_ts(response.get("messages") or [], alert)
        if ts:
            return SendResult("done", channel, ts)
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            if response.get("has_more"):
                break  # more history that cannot be paged to: not a "no"
            return SendResult("done", channel)
    return SendResult(
        "give_up", channel, error="history_too_long",
        advice=f"could not read all of channel {channel}'s history since the alert's first "
               f"try to check whether alert {alert.alert_id} was posted: look for it by hand and "
               "post it if it is missing")


def classify(outcome: SlackResponse | Exception, *, channel: str | None = None) -> SendResult:
    """done / retry / give_up for a response or a failure of one Web API call."""
    if isinstance(outcome, SlackApiError):
        outcome = outcome.response
    if isinstance(outcome, SlackResponse):
        return _classify_response(outcome, channel)
    if isinstance(outcome, NETWORK_ERRORS):
        return SendResult("retry", channel, error=_describe(outcome))
    return SendResult("give_up", channel, error=_describe(outcome),
                       advice="an unexpected error calling Slack; check slack's base URL and "
                              "proxy settings, and report it if they are right")


def _classify_response(response: SlackResponse, channel: str | None) -> SendResult:
    status = response.status_code
    data = response.data if isinstance(response.data, Mapping) else {}
    if status == 429:
        return SendResult("retry", channel, retry_after=retry_after(response.headers),
                           error=data.get("error") or "ratelimited")
    if status >= 500:
        return SendResult("retry", channel, error=f"HTTP {status} from Slack")
    if 200 <= status < 300 and data.get("ok"):
        return SendResult("done", data.get("channel") or channel, data.get("ts"))
    code = data.get("error") or f"HTTP {status} from Slack"
    if code in RETRYABLE_CODES:
        return SendResult("retry", channel, error=code)
    return SendResult("give_up", channel, error=code, advice=_advice(code, data, channel))


def _advice(code: str, data: Mapping, channel: str | None) -> str:
    where = f"channel {channel}" if channel else "the channel"
    if code == "channel_not_found":
        return (f"Slack knows no {where}: check the channel id in config.toml routes; "
                "private channels need the bot invited")
    if code == "not_in_channel":
        return f"invite the bot to {where}: type /invite @<the bot's name> in that channel"
    if code == "is_archived":
        return f"{where} is archived: unarchive it or route its alerts elsewhere in config.toml"
    if code in BAD_TOKEN_ERRORS:
        return ("SLACK_BOT_TOKEN is wrong or revoked; reinstall the app and set the new "
                "xoxb- token")
    if code == "missing_scope":
        needed = data.get("needed") or "the missing"
        return (f"the app lacks the {needed} scope: add it under OAuth & Permissions, "
                "reinstall the app and set the new xoxb- token")
    if code in _RENDERING_BUG:
        details = "; ".join(str(e) for e in data.get("errors") or [])
        return ("the bot rendered a message Slack refuses (a rendering bug): report it with "
                "the event" + (f" ({details})" if details else ""))
    return f"Slack answered {code!r}, which the bot does not expect; this call is not retried"


def _mark_maybe_posted(result: SendResult, outcome: SlackResponse | Exception) -> SendResult:
    if result.status == "retry" and _may_have_posted(outcome):
        return replace(result, maybe_posted=True)
    return result


def _may_have_posted(outcome: SlackResponse | Exception) -> bool:
    """Whether a failed post may still have been made: the answer was lost after the
    request went out, or Slack said the operation may have partly succeeded. A refused
    connection, a 429 or a plain 5xx means nothing was posted."""
    if isinstance(outcome, URLError) and not isinstance(outcome, HTTPError):
        outcome = outcome.reason
    if isinstance(outcome, _AFTER_SENDING_ERRORS):
        return True
    if isinstance(outcome, SlackApiError):
        outcome = outcome.response
    if isinstance(outcome, SlackResponse) and isinstance(outcome.data, Mapping):
        return outcome.data.get("error") in _MAYBE_DONE_CODES
    return False


def _alert_ts(messages: list, alert: AlertKey) -> str | None:
    for message in messages:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == alert.event_type and isinstance(payload, Mapping) \
                and alert.names(payload):
            return message.get("ts")
    return None


def _history_failure(exc: Exception, channel: str) -> SendResult:
    result = classify(exc, channel=channel)
    if result.error != "missing_scope":
        return result
    data = exc.response.data if isinstance(exc, SlackApiError) else {}
    needed = (data.get("needed") if isinstance(data, Mapping) else None) or HISTORY_SCOPES
    return replace(result, advice=(
        f"the app lacks the {needed} scope, which the bot needs to check a channel's "
        "history before posting again an alert whose first post may have reached Slack: "
        f"add {HISTORY_SCOPES} under OAuth & Permissions, reinstall the app and set the "
        "new xoxb- token"))


def _describe(exc: Exception) -> str:
    # Never str() a SlackClientError's request: the token travels in its headers.
    return f"{type(exc).__name__}: {exc}"


def usergroup_members(client: slack_sdk.WebClient, group_id: str) -> set[str]:
    """The user IDs in a Slack user group (scope usergroups:read); raises on any failure,
    so that the access policy refuses rather than guesses."""
    return set(client.usergroups_users_list(usergroup=group_id)["users"])


class SlackSender:
    """The two questions the outbox asks, answered by the Web API: post this alert, and
    was this alert already posted? (The demo answers them on the console instead.)"""

    def __init__(self, client: slack_sdk.WebClient):
        self.client = client

    def post(self, channel: str, message: dict, alert: AlertKey | None, *,
             thread_ts: str | None = None) -> SendResult:
        return post_message(self.client, channel, message, alert=alert, thread_ts=thread_ts)

    def update(self, channel: str, ts: str, message: dict) -> SendResult:
        return update_message(self.client, channel, ts, message)

    def find(self, channel: str, alert: AlertKey, oldest_ts: float) -> SendResult:
        return find_alert_post(self.client, channel, alert, oldest_ts)
