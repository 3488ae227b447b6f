"""The confirmations job: ask the people an alert involves, notice silence, escalate.

Each run, after the alerts: questions whose alert is posted are asked where the person can
be reached, trying ``confirm.ask_in`` in order — Slack by direct message (the Voiso email
mapped to a Slack user first), Teams as a card in the person's personal chat with the bot
(the app installed for them, its user's address known: teams_bot.people) — questions asked
longer ago than ``confirm.timeout_minutes`` expire, and escalations (a "no", or silence when
so configured) are posted to the escalation channel with the responders' user group
mentioned (Slack), or by the Teams bot to a "teamsbot:<name>" conversation.

A Slack DM or escalation whose post may have reached Slack is looked for before it is
posted again, as an alert is, so nobody is asked twice and nothing escalates twice there.
The Bot Connector cannot be searched: a Teams card whose post may have arrived (no answer
in time) is posted again in the same chat, as the bot's alert cards are — at least once
rather than leave a person unasked and the alert without its answer; both copies carry
the same question, so whichever is pressed answers it, and the other then says it was
answered. Every change that alters what the channel alert shows marks it stale, and the
delivery job updates it in place.
"""

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from voisobot import logs
from voisobot.config import Config
from voisobot.delivery import alert_view
from voisobot.errors import RenderError
from voisobot.intake import utc_now
from voisobot.metrics import CountedSlackSender, Metrics
from voisobot.outbox import Outbox
from voisobot.questions import Question, Questions
from voisobot.render import QuestionView
from voisobot.routing import is_slack, is_teams_bot, teams_bot_name
from voisobot.sending import SendResult, retry_delay
from voisobot.slack import sender as slack
from voisobot.slack.people import SlackPeople
from voisobot.slack.render import SlackRenderer
from voisobot.values import SafeUrl, SlackId

log = logging.getLogger(__name__)

PER_RUN = 20  # questions asked, expired or escalated in one run, each


@dataclass(frozen=True)
class Asked:
    """What became of one question in a run, for the metrics."""

    question_id: int
    outcome: str  # asked, unmapped, retry, uncertain, failed, already_asked


@dataclass(frozen=True)
class TeamsAsking:
    """How questions reach Teams: ``people`` (teams_bot.people.TeamsPeople) finds a person's
    personal chat, ``renderer`` (teams_cards.TeamsRenderer) builds the question and
    escalation cards, ``sender`` (teams_bot.sender.BotSender) posts and updates them and
    asks the Bot Connector who a chat's user is."""

    people: object
    renderer: object
    sender: object


class Confirmations:
    def __init__(self, questions: Questions, outbox: Outbox, people: SlackPeople | None,
                 renderer: SlackRenderer, client, config: Config, clock=utc_now,
                 metrics: Metrics | None = None, teams: TeamsAsking | None = None):
        """``client``: the Slack WebClient, or None when the bot has no Slack (then
        ``people`` is None too, and only Teams can ask); ``teams``: asking in Teams, when
        confirm.ask_in has "teams"."""
        self.questions, self.outbox, self.people = questions, outbox, people
        self.renderer, self.client, self.config, self.clock = renderer, client, config, clock
        self.metrics = metrics or Metrics()
        self.sender = CountedSlackSender(slack.SlackSender(client), self.metrics) \
            if client is not None else None
        self.teams = teams
        self.reported: set[str] = set()
        self._running = threading.Lock()

    @property
    def store_id(self) -> str:
        return self.outbox.store.store_id

    run_interval = 1.0  # seconds between runs

    def run_paced(self) -> float:
        """One scheduled run; the seconds until the next."""
        self.run()
        return self.run_interval

    def run(self) -> list[Asked]:
        """One pass; passes never overlap (the scheduler runs one at a time, and a call from
        elsewhere waits), so no question is picked up twice at once."""
        with self._running:
            return self._run()

    def _run(self) -> list[Asked]:
        now = self.clock()
        self._learn_teams_people(now)
        done = [self._ask(question, now) for question in self.questions.due(now, PER_RUN)]
        for step in done:
            self.metrics.question(step.outcome)
        self._expire(now)
        for question in self.questions.escalations_due(now, PER_RUN):
            self._escalate(question, now)
        return done

    # --- asking -------------------------------------------------------------------------

    def _ask(self, question: Question, now: datetime) -> Asked:
        """Where the question may already be (a post with its answer lost), else the first
        place of confirm.ask_in where the person can be reached, else unmapped."""
        if question.state == "uncertain":
            resumed = self._resume(question, now)
            if resumed is not None:
                return resumed
        for place in self.config.confirm.ask_in:
            asked = self._ask_in_slack(question, now) if place == "slack" \
                else self._ask_in_teams(question, now)
            if asked is not None:
                return asked
        self.questions.mark_unmapped(question.id, self.config.confirm.ask_in)
        self.outbox.mark_stale(question.alert_id)
        log.warning("question %d: nobody has %s in %s; the alert says it could not ask",
                    question.id, question.email, " or ".join(self.config.confirm.ask_in),
                    extra=_ids(question))
        return Asked(question.id, "unmapped")

    def _resume(self, question: Question, now: datetime) -> Asked | None:
        """A post that may have landed: in Slack, looked for (found: asked; not found: None,
        ask afresh); in Teams, posted again in the same chat (the Connector cannot be
        searched). None also when that chat is gone (the app removed)."""
        if question.asked_via == "teams":
            ref = self.teams.people.chat(question.teams_conversation or "") \
                if self.teams is not None else None
            if ref is None or not question.teams_user:
                return None
            return self._post_in_teams(question, ref, question.teams_user, now)
        if not question.dm_channel or self.sender is None:
            return None
        found = self.sender.find(question.dm_channel, self.key(question, "q"),
                                 slack.history_start(question.first_tried_at))
        if found.status == "done" and found.ts:
            self._asked(question, found.ts)
            return Asked(question.id, "already_asked")
        if found.status != "done" and not self._history_unreadable(found):
            return self._not_asked(question, found, uncertain=True)
        return None

    def _ask_in_slack(self, question: Question, now: datetime) -> Asked | None:
        """By DM; None when Slack has nobody with the address (or the bot has no Slack)."""
        if self.people is None or self.sender is None:
            return None
        lookup = self.people.lookup(question.email)
        if lookup.status == "unknown":
            return None
        if lookup.status != "found":
            return self._not_asked(question, SendResult(
                lookup.status, None, error=lookup.error, advice=lookup.advice,
                retry_after=lookup.retry_after), uncertain=False)
        opened = slack.open_dm(self.client, lookup.user_id)
        if opened.status != "done":
            return self._not_asked(question, opened, uncertain=False)
        message = self.renderer.render_question(self.question_view(question))
        self.questions.mark_trying(question.id, lookup.user_id, opened.channel, now)
        result = self.sender.post(opened.channel, message, self.key(question, "q"))
        if result.status == "done":
            self._asked(question, result.ts)
            return Asked(question.id, "asked")
        return self._not_asked(question, result, uncertain=result.maybe_posted)

    def _ask_in_teams(self, question: Question, now: datetime) -> Asked | None:
        """In the person's personal chat with the bot; None when there is none whose user
        has the address."""
        chat = self.teams.people.lookup(question.email) if self.teams is not None else None
        if chat is None:
            return None
        return self._post_in_teams(question, chat.ref, chat.user_id, now)

    def _post_in_teams(self, question: Question, ref, user_id: str, now: datetime) -> Asked:
        card = self.teams.renderer.question_card(self.question_view(question))
        self.questions.mark_trying_in_teams(question.id, user_id, ref.conversation_id, now)
        result = self.teams.sender.post_to(ref, card, "a personal chat")
        if result.status == "done":
            self.questions.mark_asked_in_teams(question.id, result.ts, self.clock())
            self.outbox.mark_stale(question.alert_id)
            return Asked(question.id, "asked")
        return self._not_asked(question, result, uncertain=result.maybe_posted)

    def _learn_teams_people(self, now: datetime) -> None:
        """Personal chats whose user's address is still to learn (a lookup failed at the
        install): asked of the Bot Connector again, before the questions look for them."""
        if self.teams is None or "teams" not in self.config.confirm.ask_in:
            return
        people = self.teams.people
        for item in people.to_look_up(now):
            result, member = self.teams.sender.member(item.ref, item.account_id)
            if result.status == "done" and member is not None:
                people.learned(item.ref.conversation_id, member)
            else:
                people.not_learned(item.ref.conversation_id, result, item.attempts, now)

    def _asked(self, question: Question, ts: str) -> None:
        self.questions.mark_asked(question.id, ts, self.clock())
        self.outbox.mark_stale(question.alert_id)

    def _not_asked(self, question: Question, result: SendResult, *, uncertain: bool) -> Asked:
        if result.status == "retry":
            state = "uncertain" if uncertain or question.state == "uncertain" else "pending"
            delay = retry_delay(question.attempts, result)
            self.questions.mark_retry(question.id, state,
                                      self.clock() + timedelta(seconds=delay),
                                      result.error or "retry")
            log.warning("question %d to %s: %s did not take it (%s); retrying in %.0f s",
                        question.id, question.email, question.via or "Slack", result.error,
                        delay, extra=_ids(question))
            return Asked(question.id, state if state == "uncertain" else "retry")
        self.questions.mark_failed(question.id, f"{result.error}: {result.advice}")
        self.outbox.mark_stale(question.alert_id)
        self._report_once(result)
        return Asked(question.id, "failed")

    # --- silence ------------------------------------------------------------------------

    def _expire(self, now: datetime) -> None:
        limit = now - timedelta(minutes=self.config.confirm.timeout_minutes)
        for question in self.questions.unanswered_since(limit, PER_RUN):
            if self.questions.expire(question.id, self.config.confirm.escalate_on_timeout):
                self.metrics.question("expired")
                self.outbox.mark_stale(question.alert_id)
                self.show_in_dm(question.id)

    def show_in_dm(self, question_id: int) -> None:
        """The DM (or the Teams card) as the question now stands (answered, or timed out),
        without buttons."""
        question = self.questions.question(question_id)
        if question is None or self.outbox.alert(question.alert_id) is None:
            return
        if question.asked_via == "teams":
            result = self._show_in_teams(question)
        elif question.dm_ts and self.sender is not None:
            message = self.renderer.render_question(self.question_view(question))
            result = self.sender.update(question.dm_channel, question.dm_ts, message)
        else:
            return
        if result is not None and result.status != "done":
            log.warning("could not update question %d where it was asked (%s)", question.id,
                        result.error, extra=_ids(question))

    def _show_in_teams(self, question: Question) -> SendResult | None:
        ref = self.teams.people.chat(question.teams_conversation or "") \
            if self.teams is not None and question.teams_activity else None
        if ref is None:
            return None
        card = self.teams.renderer.question_card(self.question_view(question))
        return self.teams.sender.update_in(ref, question.teams_activity, card,
                                           "a personal chat")

    # --- escalation ---------------------------------------------------------------------

    def _escalate(self, question: Question, now: datetime) -> None:
        alert = self.outbox.alert(question.alert_id)
        if alert is None:
            return
        channel = self.config.confirm.escalation_channel or alert.channel
        if is_teams_bot(channel):
            self._escalate_in_teams(question, alert, channel, now)
            return
        if self.sender is None:
            self._escalation_not_sent(question, SendResult(
                "give_up", channel, error="no_slack_token",
                advice="SLACK_BOT_TOKEN is not set, so the Slack escalation channel cannot be "
                       "posted to: set it, or set confirm.escalation_channel to "
                       "\"teamsbot:<name>\""), uncertain=False)
            return
        key = self.key(question, "e")
        if question.escalation == "uncertain":
            found = self.sender.find(channel, key,
                                     slack.history_start(question.escalation_first_tried_at))
            if found.status == "done" and found.ts:
                self.questions.mark_escalated(question.id, found.ts)
                return
            if found.status != "done" and not self._history_unreadable(found):
                self._escalation_not_sent(question, found, uncertain=True)
                return
        link = slack.permalink(self.client, alert.channel, alert.slack_ts) \
            if is_slack(alert.channel) else None
        message = self.renderer.render_escalation(self.question_view(question, link=link))
        self.questions.mark_escalating(question.id, now)
        result = self.sender.post(channel, message, key)
        if result.status == "done":
            self._escalated(question, alert.id, channel, result.ts)
            return
        self._escalation_not_sent(question, result, uncertain=result.maybe_posted)

    def _escalate_in_teams(self, question: Question, alert, channel: str,
                           now: datetime) -> None:
        """By the Teams bot, to a subscribed conversation. Like its alert cards, a post that
        may have arrived is posted again (the Connector cannot be searched): at least once."""
        if self.teams is None:
            self._escalation_not_sent(question, SendResult(
                "retry", channel, error="teams_bot_off",
                advice="the Teams bot is not running"), uncertain=False)
            return
        card = self.teams.renderer.escalation_card(self.question_view(question))
        self.questions.mark_escalating(question.id, now)
        result = self.teams.sender.post(teams_bot_name(channel), card)
        if result.status == "done":
            self._escalated(question, alert.id, channel, result.ts)
            return
        self._escalation_not_sent(question, result, uncertain=result.maybe_posted)

    def _escalated(self, question: Question, alert_id: int, channel: str,
                   ts: str | None) -> None:
        self.questions.mark_escalated(question.id, ts)
        self.metrics.question("escalated")
        log.warning("escalated alert %d to %s: %s", alert_id, channel,
                    "the person says it was not them" if question.answer == "no"
                    else "no answer in time", extra=_ids(question))

    def _escalation_not_sent(self, question: Question, result: SendResult, *,
                             uncertain: bool) -> None:
        if result.status == "retry":
            state = "uncertain" if uncertain or question.escalation == "uncertain" \
                else "pending"
            delay = retry_delay(question.escalation_attempts, result)
            self.questions.mark_escalation_retry(question.id, state,
                                                 self.clock() + timedelta(seconds=delay))
            return
        self.questions.mark_escalation_failed(question.id, f"{result.error}: {result.advice}")
        self._report_once(result)

    # --- shared -------------------------------------------------------------------------

    def key(self, question: Question, part: str) -> slack.AlertKey:
        """How a DM ("q") or an escalation ("e") names itself in its metadata."""
        return slack.AlertKey(self.store_id, question.alert_id, f"{part}{question.id}")

    def question_view(self, question: Question, link: str | None = None) -> QuestionView:
        return question_view(self.outbox, question, self.config, link)

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

    def _report_once(self, result: SendResult) -> None:
        if result.error in self.reported:
            return
        self.reported.add(result.error)
        log.error("Slack or Teams refused a question or escalation (%s): %s", result.error,
                  result.advice)


def question_view(outbox: Outbox, question: Question, config: Config,
                  link: str | None = None) -> QuestionView:
    """What the DM (or the escalation) shows: the alert's event, how many events the
    alert stands for, and where the question stands."""
    view = alert_view(outbox, outbox.alert(question.alert_id))
    return QuestionView(
        alert=view, question_id=question.id, roles=question.role_list,
        person=_slack_id(question.slack_user), email=question.email, state=question.state,
        answer=question.answer, answered_at=_time(question.answered_at),
        if_not=config.confirm.if_not, usergroup=_slack_id(config.confirm.escalate_usergroup),
        reason=question.escalation_reason, link=SafeUrl(link) if _https(link) else None,
        timeout_minutes=config.confirm.timeout_minutes)


def _slack_id(value: str | None) -> SlackId | None:
    try:
        return SlackId(value) if value else None
    except RenderError:  # not one (a user id Slack never gives): shown without a mention
        return None


def _https(link: str | None) -> bool:
    return isinstance(link, str) and link.startswith("https://") and not any(
        c in link for c in " <>|\n\t\"")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _ids(question: Question) -> dict:
    return logs.ids(alert_id=question.alert_id)
