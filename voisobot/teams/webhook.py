"""Posting cards to Teams through Workflows webhooks, and what each answer means.

A destination's webhook URL is a secret (it alone authorises posting into the channel):
it is read from the environment variable the config names, and never logged — messages
name the destination and the variable instead. 202 is success (accepted; Teams delivers
it later). 429 (honouring Retry-After) and 5xx are retried through the outbox; other 4xx
are permanent, with what to do in words. A timeout after the request was sent may have
posted: the outbox then posts again, since a webhook cannot be searched (at least once
rather than lose an alert).
"""

import http.client
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

from voisobot.config import TeamsConfig
from voisobot.sending import SendResult, retry_after

log = logging.getLogger(__name__)

PACE_SECONDS = 0.25  # at most 4 requests/s per webhook URL (the old connector limit)
_ADVICE = {
    400: "the flow refused the card: check that the flow posts an Adaptive Card from the "
         "request body (README: Teams setup)",
    401: "the webhook URL's signature is not accepted: copy the URL from the flow again",
    403: "the flow is not allowed to post: check the flow's owner and its connection",
    404: "no such flow: it was deleted, or the URL is wrong; copy it from the flow again",
    413: "the card is too large for Teams",
}


class TeamsSender:
    def __init__(self, config: TeamsConfig, env: Mapping[str, str]):
        """``env`` is where the webhook URLs are read from (the environment)."""
        self.config = config
        self.urls = {name: env.get(dest.webhook_url_env, "")
                     for name, dest in config.destinations.items()}

    def pace_key(self, name: str) -> str:
        """Two destinations with one URL share its throttle; the URL itself is not kept
        in the key, which may be logged."""
        return f"teams-url-{hash(self.urls.get(name, name)) & 0xFFFFFFFF:08x}"

    def unavailable(self, name: str) -> SendResult | None:
        """Why nothing can be posted to this destination in this run (None: it can): no
        longer in config.toml (for good), or its variable unset (until a restart)."""
        if name not in self.config.destinations:
            return SendResult("give_up", channel=name, error="unknown_destination",
                              advice=f"Teams destination {name} is no longer in config.toml")
        if not self.urls[name]:
            variable = self.config.destinations[name].webhook_url_env
            return SendResult("retry", channel=name, error="webhook_url_missing",
                              advice=f"{variable} is not set; set it to the flow's webhook "
                                     "URL and restart (the alerts wait)")
        return None

    def post(self, name: str, payload: dict) -> SendResult:
        return self.unavailable(name) or post_card(self.urls[name], payload,
                                                   self.config.timeout_seconds, name)


def post_card(url: str, payload: dict, timeout: float, name: str) -> SendResult:
    body = json.dumps(payload, ensure_ascii=False).encode()
    try:  # the URL's own errors quote it, and it is a secret: say so without it
        if urlsplit(url).scheme not in ("https", "http"):
            raise ValueError("not http(s)")
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
    except ValueError:
        return SendResult("give_up", channel=name, error="bad_webhook_url",
                           advice="the webhook URL is not a URL: copy it from the flow again")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return classify(response.status, response.headers, name)
    except urllib.error.HTTPError as exc:
        with exc:
            return classify(exc.code, exc.headers, name)
    except (TimeoutError, http.client.RemoteDisconnected, ConnectionResetError) as exc:
        # sent, and no answer: it may have been posted
        return SendResult("retry", channel=name, error="no_answer", maybe_posted=True,
                           advice=f"no answer from the flow ({type(exc).__name__})")
    except http.client.InvalidURL:
        return SendResult("give_up", channel=name, error="bad_webhook_url",
                           advice="the webhook URL is not valid: copy it from the flow again")
    except (urllib.error.URLError, OSError) as exc:  # never reached it: certainly not posted
        reason = getattr(exc, "reason", exc)
        return SendResult("retry", channel=name, error="unreachable",
                           advice=f"cannot reach Teams ({type(reason).__name__}: {reason})")


def classify(status: int, headers: Mapping[str, str], name: str) -> SendResult:
    if 200 <= status < 300:
        return SendResult("done", channel=name)
    if status == 429 or status >= 500 or status == 408:
        return SendResult("retry", channel=name, error=f"http_{status}",
                           retry_after=retry_after(headers) if status == 429 else None,
                           advice="Teams is busy or failing; retrying")
    return SendResult("give_up", channel=name, error=f"http_{status}",
                       advice=_ADVICE.get(status, f"Teams refused the post (HTTP {status})"))
