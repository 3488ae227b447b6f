"""Asking "was this you?" in Slack: a direct message to the Slack user whose profile has the
address, and escalations posted to a Slack channel (confirming.Place).

A DM or escalation whose post may have reached Slack is looked for in the conversation's
history (by its metadata: ``key``) before it is posted again, as an alert is, so nobody is
asked twice and nothing escalates twice here.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from voisobot.confirming import Tried, ViewOf
from voisobot.metrics import CountedSlackSender, Metrics
from voisobot.questions import Question, Questions
from voisobot.routing import is_slack, is_teams_bot
from voisobot.sending import SendResult
from voisobot.slack import sender as slack
from voisobot.slack.people import SlackPeople
from voisobot.slack.render import SlackRenderer

log = logging.getLogger("voisobot.confirming")

NO_TOKEN = ('SLACK_BOT_TOKEN is not set, so the Slack escalation channel cannot be posted '
            'to: set it, or set confirm.escalation_channel to "teamsbot:<name>"')


class SlackAsking:
    name = "slack"

    def __init__(self, questions: Questions, renderer: SlackRenderer, client,
                 people: SlackPeople | None, store_id: str, clock: Callable[[], datetime],
                 metrics: Metrics | None = None):
        """``client``: the Slack WebClient, or None when the bot has no Slack (then it asks
        nobody, and an escalation to a Slack channel fails saying so)."""
        self.questions, self.renderer, self.client, self.people = \
            questions, renderer, client, people
        self.store_id, self.clock = store_id, clock
        self.sender = CountedSlackSender(slack.SlackSender(client), metrics or Metrics()) \
            if client is not None else None
        self.reported: set[str] = set()

    def owns(self, channel: str) -> bool:
        return not is_teams_bot(channel)

    def prepare(self, now: datetime) -> None:
        """Nothing to learn before a run: Slack is asked who has an address when needed."""

    def ask(self, question: Question, view: ViewOf, now: datetime) -> Tried | None:
        """By DM; None when Slack has nobody with the address (or the bot has no Slack)."""
        if self.people is None or self.sender is None:
            return None
        lookup = self.people.lookup(question.email)
        if lookup.status == "unknown":
            return None
        if lookup.status != "found":
            return Tried(SendResult(lookup.status, None, error=lookup.error,
                                    advice=lookup.advice, retry_after=lookup.retry_after))
        opened = slack.open_dm(self.client, lookup.user_id)
        if opened.status != "done":
            return Tried(opened)
        message = self.renderer.render_question(view())
        self.questions.mark_trying(question.id, lookup.user_id, opened.channel, now)
        return self._asked_if_done(question, self.sender.post(
            opened.channel, message, self.key(question, "q")))

    def resume(self, question: Question, view: ViewOf, now: datetime) -> Tried | None:
        """A DM that may have landed, looked for: found, it is the question asked; None
        when it is not there (ask afresh) or the DM is unknown."""
        if not question.dm_channel or self.sender is None:
            return None
        found = self.sender.find(question.dm_channel, self.key(question, "q"),
                                 slack.history_start(question.first_tried_at))
        if found.status == "done" and found.ts:
            return self._asked_if_done(question, found, found=True)
        if found.status != "done" and not self._history_unreadable(found):
            return Tried(found, uncertain=True)
        return None

    def show(self, question: Question, view: ViewOf) -> SendResult | None:
        if not question.dm_ts or self.sender is None:
            return None
        return self.sender.update(question.dm_channel, question.dm_ts,
                                  self.renderer.render_question(view()))

    def escalate(self, question: Question, alert, channel: str, view: ViewOf,
                 now: datetime) -> Tried:
        """To a Slack channel, with the alert's permalink when it is in Slack."""
        if self.sender is None:
            return Tried(SendResult("give_up", channel, error="no_slack_token",
                                    advice=NO_TOKEN))
        key = self.key(question, "e")
        if question.escalation == "uncertain":
            found = self.sender.find(channel, key,
                                     slack.history_start(question.escalation_first_tried_at))
            if found.status == "done" and found.ts:
                return Tried(found, found=True)
            if found.status != "done" and not self._history_unreadable(found):
                return Tried(found, uncertain=True)
        link = slack.permalink(self.client, alert.channel, alert.slack_ts) \
            if is_slack(alert.channel) else None
        message = self.renderer.render_escalation(view(link))
        self.questions.mark_escalating(question.id, now)
        result = self.sender.post(channel, message, key)
        return Tried(result, uncertain=result.maybe_posted)

    def key(self, question: Question, part: str) -> slack.AlertKey:
        """How a DM ("q") or an escalation ("e") names itself in its metadata."""
        return slack.AlertKey(self.store_id, question.alert_id, f"{part}{question.id}")

    def _asked_if_done(self, question: Question, result: SendResult, *,
                       found: bool = False) -> Tried:
        if result.status == "done":
            self.questions.mark_asked(question.id, result.ts, self.clock())
            return Tried(result, found=found)
        return Tried(result, uncertain=result.maybe_posted)

    def _history_unreadable(self, found: SendResult) -> bool:
        """Without the scope to read the conversation, a post that may have landed cannot be
        looked for: it is posted again (at least once rather than never), as alerts are,
        and the log says once which scope to add."""
        if found.error != "missing_scope":
            return False
        if "history" not in self.reported:
            self.reported.add("history")
            log.error("cannot read a DM's or channel's history to rule out asking twice "
                      "(%s); a question or escalation whose post may have landed is posted "
                      "again", found.advice)
        return True
