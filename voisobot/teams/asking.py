"""Asking "was this you?" in Teams: a card in the person's personal chat with the bot (the
app installed for them, its user's address known: teams.people), and escalations posted by
the bot to a "teamsbot:<name>" conversation (confirming.Place).

The Bot Connector cannot be searched: a card whose post may have arrived (no answer in
time) is posted again in the same chat, as the bot's alert cards are — at least once rather
than leave a person unasked and the alert without its answer; both copies carry the same
question, so whichever is pressed answers it, and the other then says it was answered.
"""

from collections.abc import Callable
from datetime import datetime

from voisobot.confirming import Tried, ViewOf
from voisobot.questions import Question, Questions
from voisobot.routing import is_teams_bot, teams_bot_name
from voisobot.sending import SendResult


class TeamsAsking:
    name = "teams"

    def __init__(self, questions: Questions | None = None, people=None, renderer=None,
                 sender=None, clock: Callable[[], datetime] | None = None):
        """``people`` (teams.people.TeamsPeople) finds a person's personal chat,
        ``renderer`` (teams.cards.TeamsRenderer) builds the question and escalation cards,
        ``sender`` (teams.sender.BotSender) posts and updates them and asks the Bot
        Connector who a chat's user is. Without them (no Teams bot in this run) it asks
        nobody, and an escalation to a bot conversation waits for the bot."""
        self.questions, self.people, self.renderer, self.sender = \
            questions, people, renderer, sender
        self.clock = clock

    def owns(self, channel: str) -> bool:
        return is_teams_bot(channel)

    def prepare(self, now: datetime) -> None:
        """Personal chats whose user's address is still to learn (a lookup failed at the
        install): asked of the Bot Connector again, before the questions look for them."""
        if self.people is None:
            return
        for item in self.people.to_look_up(now):
            result, member = self.sender.member(item.ref, item.account_id)
            if result.status == "done" and member is not None:
                self.people.learned(item.ref.conversation_id, member)
            else:
                self.people.not_learned(item.ref.conversation_id, result, item.attempts, now)

    def ask(self, question: Question, view: ViewOf, now: datetime) -> Tried | None:
        """In the person's personal chat with the bot; None when there is none whose user
        has the address."""
        chat = self.people.lookup(question.email) if self.people is not None else None
        if chat is None:
            return None
        return self._post(question, chat.ref, chat.user_id, view, now)

    def resume(self, question: Question, view: ViewOf, now: datetime) -> Tried | None:
        """A card that may have landed: posted again in the same chat. None when that chat
        is gone (the app removed)."""
        ref = self.people.chat(question.teams_conversation or "") \
            if self.people is not None else None
        if ref is None or not question.teams_user:
            return None
        return self._post(question, ref, question.teams_user, view, now)

    def show(self, question: Question, view: ViewOf) -> SendResult | None:
        ref = self.people.chat(question.teams_conversation or "") \
            if self.people is not None and question.teams_activity else None
        if ref is None:
            return None
        return self.sender.update_in(ref, question.teams_activity,
                                     self.renderer.question_card(view()), "a personal chat")

    def escalate(self, question: Question, alert, channel: str, view: ViewOf,
                 now: datetime) -> Tried:
        """By the bot, to a subscribed conversation. Like its alert cards, a post that may
        have arrived is posted again (the Connector cannot be searched): at least once."""
        if self.sender is None:
            return Tried(SendResult("retry", channel, error="teams_bot_off",
                                    advice="the Teams bot is not running"))
        card = self.renderer.escalation_card(view())
        self.questions.mark_escalating(question.id, now)
        result = self.sender.post(teams_bot_name(channel), card)
        return Tried(result, uncertain=result.maybe_posted)

    def _post(self, question: Question, ref, user_id: str, view: ViewOf,
              now: datetime) -> Tried:
        card = self.renderer.question_card(view())
        self.questions.mark_trying_in_teams(question.id, user_id, ref.conversation_id, now)
        result = self.sender.post_to(ref, card, "a personal chat")
        if result.status == "done":
            self.questions.mark_asked_in_teams(question.id, result.ts, self.clock())
            return Tried(result)
        return Tried(result, uncertain=result.maybe_posted)
