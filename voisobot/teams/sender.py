"""Posting alert cards proactively to conversations where the Teams bot is installed.

The delivery job runs in the scheduler's thread; the SDK lives on the bot's own asyncio loop.
A post is handed to that loop (``asyncio.run_coroutine_threadsafe``) and waited for with a
timeout. The Bot Connector answers with the new activity's id, which the outbox keeps as the
alert's ``slack_ts``: the Acknowledge button's invoke names it (``replyToId``), so a press
acts only on the alert posted in that message.

Outcomes are classified like the webhooks' (voisobot.teams.webhook.classify): 2xx done; 429
(honouring Retry-After), 408 and 5xx retried through the outbox; other 4xx given up with
what to do. A post sent with no answer in time (a timeout, a dropped connection) may have
been posted: the Connector cannot be searched for it, so the outbox posts it again, at least
once rather than lose an alert. The same sender posts "was this you?" cards to a person's
personal chat (``post_to``/``update_in``, by reference) and asks the Connector who a chat's
user is (``member``, teams_bot.people).
"""

import asyncio
import concurrent.futures
import logging

import httpx

from voisobot.sending import SendResult
from voisobot.teams.cards import CARD_CONTENT_TYPE
from voisobot.teams.people import Member, fetch_member
from voisobot.teams.references import ConversationRef, References
from voisobot.teams.webhook import classify

log = logging.getLogger("voisobot.teams")

_ADVICE = {
    401: "the Bot Connector refused the bot's token: check TEAMS_APP_ID, TEAMS_APP_PASSWORD "
         "and TEAMS_TENANT_ID",
    403: "the bot may no longer post there (removed, or blocked by a Teams policy): add the "
         "app to that channel again and type \"@Voiso subscribe <name>\" there",
    404: "that conversation no longer exists: add the app where the alerts should go and "
         "type \"@Voiso subscribe <name>\" there",
}


class BotSender:
    def __init__(self, server, references: References, timeout: float):
        """``server`` is the running teams.server.BotServer (its app and loop)."""
        self.server, self.references, self.timeout = server, references, timeout

    def pace_key(self, name: str) -> str:
        return f"teamsbot:{name}"

    def unavailable(self, name: str) -> SendResult | None:
        """Why nothing can be posted to ``name`` now (None: it can): no conversation holds
        that name (the bot is not installed there, or nobody subscribed it yet)."""
        if self.references.named(name) is None:
            return SendResult("retry", channel=name, error="not_subscribed",
                              advice=f"no Teams conversation is named {name!r}: add the "
                                     f"Voiso app to the channel, then type \"@Voiso subscribe "
                                     f"{name}\" there (the alerts wait)")
        return None

    def post(self, name: str, card: dict) -> SendResult:
        ref = self.references.named(name)
        if ref is None:
            return self.unavailable(name)
        return self._wait(name, self._create(ref, card))

    def update(self, name: str, activity_id: str, card: dict) -> SendResult:
        """Replace the card of an earlier post (its group grew) in place."""
        ref = self.references.named(name)
        if ref is None:
            return self.unavailable(name)
        return self._wait(name, self._create(ref, card, activity_id))

    def post_to(self, ref: ConversationRef, card: dict, label: str) -> SendResult:
        """A card to a conversation known by its reference (a person's personal chat);
        ``label`` names it in results and logs."""
        return self._wait(label, self._create(ref, card))

    def update_in(self, ref: ConversationRef, activity_id: str, card: dict,
                  label: str) -> SendResult:
        return self._wait(label, self._create(ref, card, activity_id))

    def member(self, ref: ConversationRef, account_id: str) -> tuple[SendResult, Member | None]:
        """Who a conversation's member is (their email and UPN), from the Bot Connector."""
        return self._outcome("member", fetch_member(self.server.app.api, ref, account_id))

    def _wait(self, name: str, coroutine) -> SendResult:
        result, activity_id = self._outcome(name, coroutine)
        if result.status != "done":
            return result
        return SendResult("done", channel=name, ts=activity_id)

    def _outcome(self, name: str, coroutine) -> tuple[SendResult, object]:
        """The coroutine run on the bot's loop, its value, and how it went (as a SendResult;
        the value is None unless done)."""
        loop = self.server.loop
        if loop is None or loop.is_closed():
            coroutine.close()
            return SendResult("retry", channel=name, error="bot_not_running",
                              advice="the Teams bot is not running"), None
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return SendResult("done", channel=name), future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return _no_answer(name, "TimeoutError"), None
        except httpx.HTTPStatusError as exc:
            return _refused(name, exc.response), None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached it
            return SendResult("retry", channel=name, error="unreachable",
                              advice=f"cannot reach the Bot Connector ({type(exc).__name__})"
                              ), None
        except httpx.TransportError as exc:  # sent, and no answer: it may have been posted
            return _no_answer(name, type(exc).__name__), None

    async def _create(self, ref: ConversationRef, card: dict, activity_id: str | None = None
                      ) -> str:
        from microsoft_teams.api import (
            Account,
            Attachment,
            ConversationAccount,
            ConversationReference,
            MessageActivityInput,
        )
        from microsoft_teams.apps.activity_send import send_or_update_activity
        message = MessageActivityInput().add_attachments(
            Attachment(content_type=CARD_CONTENT_TYPE, content=card))
        if activity_id:
            message.id = activity_id
        where = ConversationReference(
            channel_id="msteams", service_url=ref.service_url, bot=Account(id=ref.bot_id),
            conversation=ConversationAccount(id=ref.conversation_id))
        sent = await send_or_update_activity(self.server.app.api, message, where)
        return sent.id


def _refused(name: str, response: httpx.Response) -> SendResult:
    result = classify(response.status_code, response.headers, name)
    advice = _ADVICE.get(response.status_code)
    if result.status == "give_up" and advice:
        return SendResult("give_up", channel=name, error=result.error, advice=advice)
    return result


def _no_answer(name: str, why: str) -> SendResult:
    return SendResult("retry", channel=name, error="no_answer", maybe_posted=True,
                      advice=f"no answer from the Bot Connector ({why})")
