"""The confirmations job: ask the people an alert involves, notice silence, escalate.

Each run, after the alerts: questions whose alert is posted are asked where the person can
be reached, trying the places of ``confirm.ask_in`` in order (slack.asking: a direct message;
teams.asking: a card in the person's personal chat with the bot); questions asked longer
ago than ``confirm.timeout_minutes`` expire; and escalations (a "no", or silence when so
configured) are posted by the place that owns the escalation channel.

This module names no platform: each place (``Place``) says what it made of one try
(``Tried``), and the states of the question follow from that here, the same for all. A post
that may have landed is found again (where it can be searched) or posted again (where it
cannot), by the place. Every change that alters what the channel alert shows marks it
stale, and the delivery job updates it in place.
"""

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from voisobot import logs
from voisobot.config import Config
from voisobot.delivery import alert_view
from voisobot.errors import RenderError
from voisobot.intake import utc_now
from voisobot.metrics import Metrics
from voisobot.outbox import Outbox
from voisobot.questions import Question, Questions
from voisobot.render import QuestionView
from voisobot.sending import SendResult, retry_delay
from voisobot.values import SafeUrl, SlackId

log = logging.getLogger(__name__)

PER_RUN = 20  # questions asked, expired or escalated in one run, each


@dataclass(frozen=True)
class Asked:
    """What became of one question in a run, for the metrics."""

    question_id: int
    outcome: str  # asked, unmapped, retry, uncertain, failed, already_asked


@dataclass(frozen=True)
class Tried:
    """What a place made of one try to ask or escalate: its result; whether a post may
    have landed without an answer (``uncertain``); whether it found an earlier post
    (``found``) instead of posting."""

    result: SendResult
    uncertain: bool = False
    found: bool = False


ViewOf = Callable[..., QuestionView]  # the question's view, given the alert's link or not


class Place(Protocol):
    """Where people are asked and escalations go: ``name`` as in confirm.ask_in."""

    name: str

    def owns(self, channel: str) -> bool: ...  # an escalation channel of this place

    def prepare(self, now: datetime) -> None: ...  # before a run's questions

    def ask(self, question: Question, view: ViewOf, now: datetime) -> Tried | None: ...

    def resume(self, question: Question, view: ViewOf, now: datetime) -> Tried | None: ...

    def show(self, question: Question, view: ViewOf) -> SendResult | None: ...

    def escalate(self, question: Question, alert, channel: str, view: ViewOf,
                 now: datetime) -> Tried: ...


class Confirmations:
    def __init__(self, questions: Questions, outbox: Outbox, places: Iterable[Place],
                 config: Config, clock=utc_now, metrics: Metrics | None = None):
        """``places``: every place a question can be asked or an escalation posted; those
        confirm.ask_in names are asked, in its order."""
        self.questions, self.outbox = questions, outbox
        self.places = {place.name: place for place in places}
        self.config, self.clock = config, clock
        self.metrics = metrics or Metrics()
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
        for name in self.config.confirm.ask_in:
            self.places[name].prepare(now)
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
        view = self._view_of(question)
        if question.state == "uncertain":
            resumed = self._place_asked(question).resume(question, view, now)
            if resumed is not None:
                return self._settled(question, resumed)
        for name in self.config.confirm.ask_in:
            tried = self.places[name].ask(question, view, now)
            if tried is not None:
                return self._settled(question, tried)
        self.questions.mark_unmapped(question.id, self.config.confirm.ask_in)
        self.outbox.mark_stale(question.alert_id)
        log.warning("question %d: nobody has %s in %s; the alert says it could not ask",
                    question.id, question.email, " or ".join(self.config.confirm.ask_in),
                    extra=_ids(question))
        return Asked(question.id, "unmapped")

    def _place_asked(self, question: Question) -> Place:
        """Where the question was asked (tried): Slack unless it says Teams."""
        return self.places["teams" if question.asked_via == "teams" else "slack"]

    def _settled(self, question: Question, tried: Tried) -> Asked:
        if tried.result.status == "done":  # the place marked it asked
            self.outbox.mark_stale(question.alert_id)
            return Asked(question.id, "already_asked" if tried.found else "asked")
        return self._not_asked(question, tried.result, uncertain=tried.uncertain)

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
        result = self._place_asked(question).show(question, self._view_of(question))
        if result is not None and result.status != "done":
            log.warning("could not update question %d where it was asked (%s)", question.id,
                        result.error, extra=_ids(question))

    # --- escalation ---------------------------------------------------------------------

    def _escalate(self, question: Question, now: datetime) -> None:
        alert = self.outbox.alert(question.alert_id)
        if alert is None:
            return
        channel = self.config.confirm.escalation_channel or alert.channel
        place = next(place for place in self.places.values() if place.owns(channel))
        tried = place.escalate(question, alert, channel, self._view_of(question), now)
        if tried.result.status != "done":
            self._escalation_not_sent(question, tried.result, uncertain=tried.uncertain)
        elif tried.found:  # posted by an earlier try whose answer was lost
            self.questions.mark_escalated(question.id, tried.result.ts)
        else:
            self._escalated(question, alert.id, channel, tried.result.ts)

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

    def question_view(self, question: Question, link: str | None = None) -> QuestionView:
        return question_view(self.outbox, question, self.config, link)

    def _view_of(self, question: Question) -> ViewOf:
        return lambda link=None: self.question_view(question, link)

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
