"""Who a Voiso email is in Slack: users.lookupByEmail, with answers cached in the store.

Voiso names people by email; a "was this you?" question goes to a Slack user id. The address
Slack is asked about is the Voiso one in lower case, or its ``[confirm.aliases]`` entry.
Slack's answers ("this user", "nobody") are kept in ``slack_people`` for
``confirm.lookup_cache_hours``, so one busy person costs one lookup a day, not one per
alert. A failure (retry, give_up) is never cached: the next question asks Slack again.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import slack_sdk
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from voisobot.addresses import looks_like_address, voiso_address
from voisobot.config import ConfirmConfig
from voisobot.intake import utc_now
from voisobot.slack.sender import NETWORK_ERRORS, classify
from voisobot.store import Store, time_text, transaction

LOOKUP_SCOPES = "users:read.email and users:read"
_NOBODY = "users_not_found"  # Slack's answer for an address no account has


@dataclass(frozen=True)
class Lookup:
    """What is known of one address: "found" (``user_id`` set), "unknown" (Slack has nobody
    with that address, or only a deactivated account or a bot), "retry" or "give_up"."""

    status: str            # "found", "unknown", "retry", "give_up"
    email: str             # the address looked up (lower case, after aliases)
    user_id: str | None = None
    error: str | None = None      # Slack's error code, for retry/give_up
    advice: str | None = None     # what a human should do, for give_up
    retry_after: float | None = None


class SlackPeople:
    """A Voiso email -> a Slack user id, through the cache and then Slack."""

    def __init__(self, client: slack_sdk.WebClient, store: Store, confirm: ConfirmConfig,
                 clock=utc_now):
        self.client = client
        self.store = store
        self.confirm = confirm
        self.clock = clock

    def slack_email(self, voiso_email: str) -> str:
        """The address Slack knows the person by: lower case, ``[confirm.aliases]`` applied."""
        return voiso_address(self.confirm, voiso_email)

    def lookup(self, voiso_email: str) -> Lookup:
        """The person's Slack user, from the cache if a live answer is there, else from
        users.lookupByEmail. A text that does not look like an address (see
        ``looks_like_address``) is "unknown" without a call to Slack; a deactivated account
        or a bot is "unknown" too, so that no question ever goes to one."""
        email = self.slack_email(voiso_email)
        if not looks_like_address(email):
            return Lookup("unknown", email)
        now = self.clock()
        cached = self._cached(email, now)
        if cached is not None:
            return cached
        answer = self._ask_slack(email)
        if answer.status in ("found", "unknown"):
            self._remember(answer, now)
        return answer

    def _cached(self, email: str, now: datetime) -> Lookup | None:
        row = self.store.connection().execute(
            "SELECT user_id FROM slack_people WHERE email = ? AND expires_at > ?",
            (email, time_text(now))).fetchone()
        if row is None:
            return None
        user_id = row["user_id"]
        return Lookup("found", email, user_id) if user_id else Lookup("unknown", email)

    def _remember(self, answer: Lookup, now: datetime) -> None:
        expires = now + timedelta(hours=self.confirm.lookup_cache_hours)
        with transaction(self.store.connection()) as conn:
            conn.execute(
                "INSERT INTO slack_people (email, user_id, looked_up_at, expires_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET "
                "user_id = excluded.user_id, looked_up_at = excluded.looked_up_at, "
                "expires_at = excluded.expires_at",
                (answer.email, answer.user_id, time_text(now), time_text(expires)))

    def _ask_slack(self, email: str) -> Lookup:
        try:
            response = self.client.users_lookupByEmail(email=email)
        except (SlackClientError, *NETWORK_ERRORS) as exc:
            return _failure(email, exc)
        return _answer(email, response)


def _answer(email: str, response: SlackResponse) -> Lookup:
    result = classify(response)
    if result.status != "done":
        return _failure(email, response)
    user = response.get("user")
    user_id = user.get("id") if isinstance(user, Mapping) else None
    if not isinstance(user_id, str) or not user_id:
        return Lookup("give_up", email, error="no user in Slack's answer",
                      advice="Slack found the address but named no user; report it")
    if user.get("deleted") or user.get("is_bot"):
        return Lookup("unknown", email)  # never ask a deactivated account or a bot
    return Lookup("found", email, user_id)


def _failure(email: str, outcome: SlackResponse | Exception) -> Lookup:
    """retry / give_up as ``classify`` decides; Slack's "nobody has it" is "unknown"."""
    if _error_code(outcome) == _NOBODY:
        return Lookup("unknown", email)
    result = classify(outcome)
    advice = result.advice
    if result.error == "missing_scope":
        advice = (f"the app lacks the {LOOKUP_SCOPES} scopes, which the bot needs to find the "
                  "Slack account of a person an alert names: add them under OAuth & "
                  "Permissions, reinstall the app and set the new xoxb- token")
    return Lookup(result.status, email, error=result.error,
                  advice=advice if result.status == "give_up" else None,
                  retry_after=result.retry_after)


def _error_code(outcome: SlackResponse | Exception) -> str | None:
    if isinstance(outcome, SlackApiError):
        outcome = outcome.response
    if isinstance(outcome, SlackResponse) and isinstance(outcome.data, Mapping):
        return outcome.data.get("error")
    return None
