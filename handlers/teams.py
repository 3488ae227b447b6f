"""What the Teams bot does with each activity: the only place that knows activity types.

- message: ``@Voiso <command>`` (the bot's mention stripped), answered as a card in the
  same conversation (a channel's thread, or the chat) through voisobot.commands, and
  ``@Voiso subscribe <name>`` (teams.subscribe);
- invoke ``adaptiveCard/action``: Acknowledge or Reopen pressed on an alert card
  (teams.buttons), or Yes/No on a "was this you?" card (teams.question_cards),
  answered with the card as it now stands; "More" on a long answer (teams.answers),
  answered with the next page; Profile on an alert card, posted in the alert's thread;
- conversationUpdate with the bot among the members added or removed, and
  installationUpdate add/remove: its conversation reference kept or forgotten; for a
  personal chat (and at a message in a personal chat the bot does not know yet), who its
  user is, for "was this you?" (teams_bot.people).

A reply that the Bot Connector refuses for a while (429, 5xx, no answer) is tried again
after ``retry_waits`` (a 429's Retry-After when longer, up to MAX_RETRY_AFTER); then it is
logged and dropped: the command was audited, and the user can ask again.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import httpx

from voisobot import logs
from voisobot.commands import MORE_ACTION
from voisobot.presses import PROFILE_ACTION
from voisobot.render import one_line
from voisobot.teams.answers import TeamsAnswers, card_from_answer
from voisobot.teams.buttons import FAILED, TeamsAlertButtons, card_answer, message_answer
from voisobot.teams.cards import CARD_CONTENT_TYPE
from voisobot.teams.people import TeamsPeople, fetch_member
from voisobot.teams.question_cards import VERBS as QUESTION_VERBS
from voisobot.teams.question_cards import TeamsQuestionButtons
from voisobot.teams.references import (
    ConversationRef,
    References,
    conversation_base,
    reference_of,
)
from voisobot.teams.subscribe import Subscriptions, is_subscribe

log = logging.getLogger("voisobot.teams")

MAX_RETRY_AFTER = 5.0  # Teams gives up on the activity's own answer after about 15 s
PROFILE_POSTED = "The profile is posted in this alert's thread."
PROFILE_NOT_POSTED = "Teams did not take the profile (the bot's log says why); try again."


def register(app, answers: TeamsAnswers, references: References,
             clock: Callable[[], datetime], retry_waits: Callable[[], tuple[float, ...]],
             buttons: TeamsAlertButtons | None = None, people: TeamsPeople | None = None,
             questions: TeamsQuestionButtons | None = None,
             seen_in_team: Callable[[str | None, str | None], None] | None = None) -> None:
    """``people``: learn who the user of each personal chat is (when "was this you?" may
    ask in Teams); None: personal chats are kept without their user's address.
    ``questions``: the answers to "was this you?" cards. ``seen_in_team``: told each
    activity's channel and team, before its command or press is checked."""
    def learn_team(activity) -> None:
        if seen_in_team is not None:
            seen_in_team(_access_channel(activity), _team_id(activity))

    @app.on_message
    async def message(ctx) -> None:
        activity = ctx.activity
        learn_team(activity)
        text = _command_text(activity)
        if is_subscribe(text):
            subscriptions = Subscriptions(answers.commands.guard, references, clock)
            card = subscriptions.subscribe(_user_id(activity), _access_channel(activity),
                                           reference_of(activity), text)
        else:
            card = answers.answer(_user_id(activity), _access_channel(activity), text)
        await _send_card(ctx, card, retry_waits())
        ref = reference_of(activity)
        if people is not None and ref is not None and ref.kind == "personal" \
                and people.needs_lookup(ref.conversation_id):
            references.save(ref, clock())  # installed before personal chats were learned
            await _learn(app, people, ref, activity, clock)

    @app.on_card_action_execute
    async def card_action(ctx) -> dict:
        activity = ctx.activity
        learn_team(activity)
        action = activity.value.action
        conversation = activity.conversation.id if activity.conversation else ""
        if questions is not None and action.verb in QUESTION_VERBS:
            return questions.press(_user_id(activity), conversation, activity.reply_to_id,
                                   action.verb, action.data)
        if action.verb == MORE_ACTION:
            return card_answer(answers.more(_user_id(activity), _access_channel(activity),
                                            action.data))
        if action.verb == PROFILE_ACTION:
            return await _profile(ctx, answers, action.data, retry_waits())
        if buttons is None:  # an alert card from a run that posted them; not this one
            return message_answer(FAILED)
        return buttons.press(_user_id(activity), _access_channel(activity), conversation,
                             activity.reply_to_id, action.verb, action.data,
                             _user_name(activity))

    @app.on_conversation_update
    async def conversation_update(ctx) -> None:
        activity, bot = ctx.activity, ctx.activity.recipient
        if any(member.id == bot.id for member in activity.members_added or []):
            await _keep_and_learn(app, references, people, activity, clock)
        elif any(member.id == bot.id for member in activity.members_removed or []):
            _forget(references, activity)

    @app.on_installation_update
    async def installation_update(ctx) -> None:
        action = ctx.activity.action or ""
        if action.startswith("add"):  # "add", "add-upgrade"
            await _keep_and_learn(app, references, people, ctx.activity, clock)
        elif action == "remove":
            _forget(references, ctx.activity)


def _command_text(activity) -> str:
    """What follows the bot's mention (other mentions stay, and fail the parse)."""
    from microsoft_teams.api.activities.utils.strip_mentions_text import (
        StripMentionsTextOptions,
        strip_mentions_text,
    )
    bot_id = activity.recipient.id if activity.recipient else None
    return strip_mentions_text(activity, StripMentionsTextOptions(account_id=bot_id)) or ""


def _user_id(activity) -> str:
    """The Entra object id of who typed; their Teams account id when Teams gives none (it
    is never in access.teams_users, which holds object ids: refused, and audited)."""
    sender = activity.from_
    return (sender.aad_object_id or sender.id or "") if sender is not None else ""


def _user_name(activity) -> str:
    """The name Teams shows for who acted; typed by people, so only ever shown as text."""
    sender = activity.from_
    name = sender.name if sender is not None else None
    return name if isinstance(name, str) else ""


def _access_channel(activity) -> str | None:
    """The id access.teams_channels is checked against: a channel's, else the chat's."""
    data = activity.channel_data
    if data is not None and data.channel is not None and data.channel.id:
        return data.channel.id
    conversation = activity.conversation
    return conversation_base(conversation.id) if conversation and conversation.id else None


def _team_id(activity) -> str | None:
    """The team of a channel's activity, as Teams says in its channel data."""
    data = activity.channel_data
    return data.team.id if data is not None and data.team is not None else None


def _keep(references: References, activity, clock) -> ConversationRef | None:
    ref = reference_of(activity)
    if ref is None:
        log.warning("a Teams %s without a usable conversation reference was ignored",
                    activity.type)
        return None
    references.save(ref, clock())
    log.info("Teams bot added to a %s; its conversation reference is kept", ref.kind,
             extra=logs.ids(channel=ref.conversation_id))
    return ref


async def _keep_and_learn(app, references: References, people: TeamsPeople | None, activity,
                          clock) -> None:
    ref = _keep(references, activity, clock)
    if ref is not None and ref.kind == "personal" and people is not None:
        await _learn(app, people, ref, activity, clock)


async def _learn(app, people: TeamsPeople, ref: ConversationRef, activity, clock) -> None:
    """Who the personal chat's user is: their ids from the activity, their address from
    the Bot Connector. The reference is kept first, so a failed lookup loses nothing: the
    confirmations job tries it again (teams_bot.people)."""
    sender = activity.from_
    account = sender.id if sender is not None else None
    people.remember_user(ref.conversation_id, sender.aad_object_id if sender else None,
                         account, clock())
    if not account:
        return
    try:
        member = await fetch_member(app.api, ref, account)
    except Exception as exc:  # 429, 5xx, no answer: the job's next run tries again
        log.warning("could not learn who a personal chat's user is (%s); trying again later",
                    _described(exc), extra=logs.ids(channel=ref.conversation_id))
        return
    people.learned(ref.conversation_id, member)


def _forget(references: References, activity) -> None:
    if activity.conversation is not None and references.forget(activity.conversation.id):
        log.info("Teams bot removed from a conversation; its reference is dropped",
                 extra=logs.ids(channel=conversation_base(activity.conversation.id)))


async def _profile(ctx, answers: TeamsAnswers, data, retry_waits: tuple[float, ...]) -> dict:
    """Profile pressed on an alert card: the profile goes into the alert's thread as a card
    of its own (the invoke's answer would replace the alert for everyone); the presser sees
    a short note. A refusal or a usage error is shown to the presser only, posting nothing."""
    activity = ctx.activity
    answer = answers.profile(_user_id(activity), _access_channel(activity), data)
    if answer.result != "answered":
        return message_answer(one_line(answer.message.get("text") or FAILED))
    posted = await _send_card(ctx, card_from_answer(answer.message), retry_waits)
    return message_answer(PROFILE_POSTED if posted else PROFILE_NOT_POSTED)


async def _send_card(ctx, card: dict, retry_waits: tuple[float, ...]) -> bool:
    """Whether the card was posted in the activity's conversation."""
    from microsoft_teams.api import Attachment, MessageActivityInput
    for attempt, wait in enumerate((*retry_waits, None)):
        message = MessageActivityInput().add_attachments(
            Attachment(content_type=CARD_CONTENT_TYPE, content=card))
        try:
            await ctx.send(message)
            return True
        except (httpx.HTTPStatusError, httpx.TransportError) as exc:
            retryable, delay = _retry_delay(exc, wait)
            if not retryable or delay is None:
                log.error("the Teams answer could not be posted (%s, attempt %d); dropped",
                          _described(exc), attempt + 1)
                return False
            log.warning("the Teams answer was not taken (%s); trying again in %.1f s",
                        _described(exc), delay)
            await asyncio.sleep(delay)


def _retry_delay(exc: Exception, wait: float | None) -> tuple[bool, float | None]:
    """Whether a failure is worth another try, and after how long (None: no tries left)."""
    if isinstance(exc, httpx.TransportError):
        return True, wait
    status = exc.response.status_code
    if status != 429 and status < 500:
        return False, None
    if wait is None:
        return True, None
    try:
        retry_after = float(exc.response.headers.get("Retry-After", "0"))
    except ValueError:
        retry_after = 0.0
    return True, min(max(wait, retry_after), MAX_RETRY_AFTER)


def _described(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__
