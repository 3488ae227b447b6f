"""The Slack sender: send an already-rendered message, and classify the outcome.

Payloads are built (and escaped) elsewhere; this module only talks to the Web API.
Every outcome becomes a SlackResult: ``done``, ``retry`` (later, after
``retry_after`` seconds if Slack said so) or ``give_up`` (with advice for a human).
``classify`` is the one place that decides which.
"""

import http.client
import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.error import URLError

import slack_sdk
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, FixedValueRetryIntervalCalculator
from slack_sdk.web import SlackResponse

DEFAULT_RETRY_AFTER_SECONDS = 1.0
CONNECT_RETRY_PAUSE_SECONDS = 0.5

# Failures of the network or of Slack's servers: the same call can work later.
NETWORK_ERRORS = (URLError, TimeoutError, ConnectionError, http.client.HTTPException)
RETRYABLE_CODES = frozenset({"ratelimited", "internal_error", "fatal_error",
                             "service_unavailable", "request_timeout"})
_BAD_TOKEN = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked"})
_RENDERING_BUG = frozenset({"msg_too_long", "invalid_blocks", "invalid_blocks_format"})


@dataclass(frozen=True)
class SlackResult:
    status: str                         # "done" | "retry" | "give_up"
    channel: str | None = None
    ts: str | None = None               # the posted message's ts (done)
    retry_after: float | None = None    # seconds, from Retry-After on 429
    error: str | None = None            # Slack's error code or a short description
    advice: str | None = None           # for give_up: what the user should do


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
        token=token, base_url=base_url, timeout=timeout,
        retry_handlers=[ConnectionErrorRetryHandler(
            max_retry_count=1, error_types=[URLError],
            interval_calculator=FixedValueRetryIntervalCalculator(CONNECT_RETRY_PAUSE_SECONDS))],
    )


def post_message(client: slack_sdk.WebClient, channel: str, message: dict) -> SlackResult:
    """Post ``{"text", "blocks"}``. No ``link_names``/``parse``: untrusted text stays text."""
    try:
        response = client.chat_postMessage(
            channel=channel, text=message["text"], blocks=message.get("blocks"),
            unfurl_links=False, unfurl_media=False)
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        return classify(exc, channel=channel)
    return classify(response, channel=channel)


def update_message(client: slack_sdk.WebClient, channel: str, ts: str,
                   message: dict) -> SlackResult:
    try:
        response = client.chat_update(
            channel=channel, ts=ts, text=message["text"], blocks=message.get("blocks"))
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        return classify(exc, channel=channel)
    return classify(response, channel=channel)


def auth_test(client: slack_sdk.WebClient) -> SlackResult:
    """For ``bot.py check``: done if the token works, else give_up (or retry) with advice."""
    try:
        response = client.auth_test()
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        return classify(exc)
    return classify(response)


def classify(outcome: SlackResponse | Exception, *, channel: str | None = None) -> SlackResult:
    """done / retry / give_up for a response or a failure of one Web API call."""
    if isinstance(outcome, SlackApiError):
        outcome = outcome.response
    if isinstance(outcome, SlackResponse):
        return _classify_response(outcome, channel)
    if isinstance(outcome, NETWORK_ERRORS):
        return SlackResult("retry", channel, error=_describe(outcome))
    return SlackResult("give_up", channel, error=_describe(outcome),
                       advice="an unexpected error calling Slack; check slack's base URL and "
                              "proxy settings, and report it if they are right")


def _classify_response(response: SlackResponse, channel: str | None) -> SlackResult:
    status = response.status_code
    data = response.data if isinstance(response.data, Mapping) else {}
    if status == 429:
        return SlackResult("retry", channel, retry_after=retry_after(response.headers),
                           error=data.get("error") or "ratelimited")
    if status >= 500:
        return SlackResult("retry", channel, error=f"HTTP {status} from Slack")
    if 200 <= status < 300 and data.get("ok"):
        return SlackResult("done", data.get("channel") or channel, data.get("ts"))
    code = data.get("error") or f"HTTP {status} from Slack"
    if code in RETRYABLE_CODES:
        return SlackResult("retry", channel, error=code)
    return SlackResult("give_up", channel, error=code, advice=_advice(code, data, channel))


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds from a Retry-After header; the default if it is absent or not a number."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_RETRY_AFTER_SECONDS


def _advice(code: str, data: Mapping, channel: str | None) -> str:
    where = f"channel {channel}" if channel else "the channel"
    if code == "channel_not_found":
        return (f"Slack knows no {where}: check the channel id in config.toml routes; "
                "private channels need the bot invited")
    if code == "not_in_channel":
        return f"invite the bot to {where}: type /invite @<the bot's name> in that channel"
    if code == "is_archived":
        return f"{where} is archived: unarchive it or route its alerts elsewhere in config.toml"
    if code in _BAD_TOKEN:
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


def _describe(exc: Exception) -> str:
    # Never str() a SlackClientError's request: the token travels in its headers.
    return f"{type(exc).__name__}: {exc}"
