"""The /voiso slash command and its "more" button: who may ask, what they asked, the
answer from the cache, and the audit trail of it all.

Every request is written to the audit trail, allowed or not, before it is answered.
What the user typed is parsed here and nowhere else; a mistake gets the usage line
that says what was expected, and an unexpected error a short apology (the details go
to the log), never a stack trace in Slack.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from voisobot import events, logs, lookalike, queries, questions
from voisobot.access import AccessPolicy
from voisobot.alert_extras import profile_account
from voisobot.audit import AuditEntry
from voisobot.metrics import Metrics
from voisobot.outbox import Outbox
from voisobot.presses import PROFILE_ACTION, NotOurButton, alert_id_of
from voisobot.render import ButtonValue, SafeUrl, slack_id_or_text
from voisobot.slack.render import SlackRenderer
from voisobot.store import Store

log = logging.getLogger(__name__)

Permalink = Callable[[str, str | None], SafeUrl | None]  # (channel, ts) -> link

RECENT_DEFAULT = 10
PAGE = 20          # events of a user or an IP, alerts and audit entries per page
PROFILE_EVENTS = 10
MAX_DETAIL = 500   # characters of the typed command kept in the audit table
MORE_ACTION = "voiso_more"
PUBLIC_WORD = "public"
ALL_WORD = "all"  # /voiso unacked all: informational alerts too
SUBCOMMANDS = ("recent", "user", "ip", "unacked", "pending", "stats", "audit", "help")
ANSWERS_SHOWN = 10  # a person's "was this you?" answers in /voiso user


@dataclass(frozen=True)
class Query:
    """A parsed request: the subcommand, its argument and where the page starts."""

    name: str
    arg: str = ""
    limit: int = PAGE
    public: bool = False
    before: Any = None  # a queries cursor: (event_time, id), or an id


@dataclass(frozen=True)
class Answer:
    message: dict
    public: bool = False
    # What came of the request, in one word: answered, denied, usage or failed.
    result: str = "answered"

    def reply(self) -> dict:
        """The payload for the request's response_url: a new message, private unless public."""
        message = {key: value for key, value in self.message.items() if value != []}
        return {**message, "replace_original": False,
                "response_type": "in_channel" if self.public else "ephemeral"}


class Guard:
    """Who may act, and the audit trail of every attempt: one gate for /voiso and for the
    alerts' buttons alike."""

    def __init__(self, store: Store, renderer: SlackRenderer, policy: AccessPolicy,
                 clock: Callable[[], datetime]):
        self.store, self.renderer, self.policy, self.clock = store, renderer, policy, clock

    def refusal(self, entry: AuditEntry) -> Answer | None:
        """None when the user may act here; else the private "not allowed", audited."""
        if self.policy.allows(entry.user_id, entry.channel_id):
            return None
        self.record(entry, "denied", allowed=False)
        return Answer(self.renderer.render_answer("denied", user=entry.user_id))

    def record(self, entry: AuditEntry, outcome: str, *, allowed: bool = True) -> None:
        """The audit row, with the platform of the identities this gate checks."""
        self.store.audit.write(replace(entry, allowed=allowed, outcome=outcome,
                                       platform=self.policy.platform), self.clock())


class UsageError(ValueError):
    """What the user typed is not a command; the message says what was expected."""


def parse(text: str) -> Query:
    """``recent [N] [kind]``, ``user <email>``, ``ip <address or CIDR>``, ``unacked [all]``,
    ``stats [24h|7d|30d]``, ``audit``, ``help``; ``public`` anywhere shows the answer to
    the channel."""
    public, words = _words(text)
    name = words[0].lower() if words else "help"
    rest = words[1:]
    if name not in SUBCOMMANDS:
        raise UsageError(f"there is no /voiso {_quoted(name)}")
    parser = _ARGUMENTS.get(name, _no_argument)
    return Query(name, *parser(name, rest), public=public)


def command_name(text: str) -> str:
    """The subcommand asked for, for the metrics: one of SUBCOMMANDS, or "invalid"."""
    _, words = _words(text)
    name = words[0].lower() if words else "help"
    return name if name in SUBCOMMANDS else "invalid"


def _words(text: str) -> tuple[bool, list[str]]:
    """Whether ``public`` was typed anywhere, and the other words."""
    words = text.split()
    public = any(word.lower() == PUBLIC_WORD for word in words)
    return public, [word for word in words if word.lower() != PUBLIC_WORD]


def _recent_arguments(name: str, rest: list[str]) -> tuple[str, int]:
    numbers = [word for word in rest if word.isdigit()]
    kinds = [word for word in rest if not word.isdigit()]
    if len(numbers) > 1 or len(kinds) > 1:
        raise UsageError("recent takes at most a number and a kind")
    limit = int(numbers[0]) if numbers else RECENT_DEFAULT
    if not 1 <= limit <= queries.MAX_LIMIT:
        raise UsageError(f"recent shows 1 to {queries.MAX_LIMIT} events")
    if kinds:
        queries.parse_kind_filter(kinds[0])
    return (kinds[0] if kinds else "", limit)


def _one_argument(parse_value: Callable[[str], Any]):
    def arguments(name: str, rest: list[str]) -> tuple[str, int]:
        if len(rest) != 1:
            raise UsageError(f"{name} takes one argument")
        parse_value(rest[0])  # raises ValueError with the usage of this argument
        return (rest[0], PAGE)
    return arguments


def _stats_arguments(name: str, rest: list[str]) -> tuple[str, int]:
    if len(rest) > 1:
        raise UsageError("stats takes at most a period")
    period = rest[0].lower() if rest else "24h"
    queries.parse_period(period)
    return (period, PAGE)


def _unacked_arguments(name: str, rest: list[str]) -> tuple[str, int]:
    if [word.lower() for word in rest] not in ([], [ALL_WORD]):
        raise UsageError(f"unacked takes no argument, or {ALL_WORD} to list informational "
                         "alerts too")
    return (ALL_WORD if rest else "", PAGE)


def _no_argument(name: str, rest: list[str]) -> tuple[str, int]:
    if rest:
        raise UsageError(f"{name} takes no argument")
    return ("", PAGE)


_ARGUMENTS = {"recent": _recent_arguments, "user": _one_argument(queries.parse_email),
              "ip": _one_argument(queries.parse_ip), "stats": _stats_arguments,
              "unacked": _unacked_arguments}


def _quoted(text: str) -> str:
    return json.dumps(text[:40], ensure_ascii=False)


class Commands:
    def __init__(self, store: Store, renderer: SlackRenderer, policy: AccessPolicy,
                 clock: Callable[[], datetime], metrics: Metrics | None = None,
                 platform: str = "slack", permalinks: Permalink | None = None):
        """``platform``: where the commands are typed, "slack" (``/voiso``) or "teams"
        (``@Voiso``), for the words the help shows. ``permalinks(channel, ts)``: a link to
        an alert's message (slack/permalinks.py), or None; without it no links are shown."""
        self.store, self.renderer, self.clock = store, renderer, clock
        self.platform = platform
        self.permalinks = permalinks or (lambda channel, ts: None)
        self.metrics = metrics or Metrics()
        self.guard = Guard(store, renderer, policy, clock)

    def command(self, user_id: str, channel_id: str | None, text: str) -> Answer:
        """Answer ``/voiso <text>`` typed by a user in a channel."""
        started = time.monotonic()
        answer = self._handle(user_id, channel_id, "command", text, lambda: parse(text))
        self.metrics.command_answered(command_name(text), answer.result,
                                      time.monotonic() - started)
        return answer

    def more(self, user_id: str, channel_id: str | None, value: str) -> Answer:
        """The next page, for a press of a "more" button whose value we rendered."""
        answer = self._handle(user_id, channel_id, "button", f"{MORE_ACTION} {value}",
                              lambda: query_from_button(value))
        self.metrics.button_pressed("more", answer.result)
        return answer

    def profile(self, user_id: str, channel_id: str | None, value: str) -> Answer:
        """``/voiso user`` of the account an alert is about, for a press of its Profile
        button (value ``{"alert": id}``). The account is read from the stored alert's event,
        never from the button: a forged value can name an alert, not an address."""
        answer = self._handle(user_id, channel_id, "button", f"{PROFILE_ACTION} {value}",
                              lambda: self._profile_query(value))
        self.metrics.button_pressed("profile", answer.result)
        return answer

    def _profile_query(self, value: str) -> Query:
        try:
            alert = Outbox(self.store).alert(alert_id_of(value))
        except NotOurButton:
            raise UsageError("that button is not one of ours") from None
        account = profile_account(events.parse(alert.raw)) if alert is not None else None
        if account is None:
            raise UsageError("that alert names no account to show")
        return Query("user", account)

    def _handle(self, user_id: str, channel_id: str | None, action: str, detail: str,
                read_query: Callable[[], Query]) -> Answer:
        """The answer, its ``result`` saying in one word what it was."""
        entry = AuditEntry(user_id, channel_id, action, detail[:MAX_DETAIL], True, "")
        if (refusal := self.guard.refusal(entry)) is not None:
            return replace(refusal, result="denied")
        try:
            query = read_query()
            (answer, outcome), result = self._answer(query), "answered"
        except ValueError as exc:  # UsageError and the queries' input errors
            answer, outcome, result = self.usage(str(exc)), f"usage: {exc}", "usage"
        except Exception:
            log.exception("/voiso %s failed", detail[:MAX_DETAIL],
                          extra=logs.ids(channel=channel_id))
            answer = Answer(self.renderer.render_answer("failed"))
            outcome, result = "failed (see the log)", "failed"
        self.guard.record(entry, outcome)
        return replace(answer, result=result)

    def usage(self, problem: str = "") -> Answer:
        return Answer(self.renderer.render_answer("help", problem=problem,
                                                  platform=self.platform))

    def _answer(self, query: Query) -> tuple[Answer, str]:
        # the audit trail is its own file (audit.py); every other answer reads the store
        conn = self.store.audit.connection() if query.name == "audit" else \
            self.store.connection()
        name, context = ANSWERS[query.name](conn, query, self.clock())
        if name == "unacked":
            context["alerts"] = [{**line, "link": self.permalinks(line["channel_id"],
                                                                  line["slack_ts"])}
                                 for line in context["alerts"]]
        message = self.renderer.render_answer(name, **context, public=query.public,
                                              platform=self.platform)
        return Answer(message, query.public), f"answered {query.name}"


# --- the answers: (template name, what it shows) for each subcommand ----------------------

def _recent(conn, query: Query, now: datetime) -> tuple[str, dict]:
    page = queries.recent(conn, query.limit, query.arg or None, query.before)
    title = f"Latest {query.arg} events" if query.arg else "Latest events"
    return "events", {"title": title, "page": page, "more": more_value(query, page)}


def _user(conn, query: Query, now: datetime) -> tuple[str, dict]:
    if query.before is not None:  # a further page: the events only
        page = queries.user_events(conn, query.arg, PAGE, query.before)
        return "events", {"title": f"More events of {queries.parse_email(query.arg)}",
                          "page": page, "more": more_value(query, page)}
    profile = queries.user_profile(conn, query.arg, PROFILE_EVENTS)
    return "user", {"profile": profile, "lookalikes": lookalike.lookalikes(conn, profile.email),
                    "more": more_value(query, profile.events),
                    "answers": [question_line(q) for q in questions.of_person(
                        conn, profile.email, ANSWERS_SHOWN)]}


def _pending(conn, query: Query, now: datetime) -> tuple[str, dict]:
    """The "was this you?" questions waiting for an answer (or still to be asked)."""
    return "pending", {"questions": [question_line(q)
                                     for q in questions.waiting(conn, PAGE)]}


def question_line(question) -> dict:
    """A question as an answer shows it; the Slack user id is mentioned, the email is text."""
    return {"id": question.id, "alert_id": question.alert_id, "email": question.email,
            "roles": question.role_list, "state": question.state, "answer": question.answer,
            "person": slack_id_or_text(question.slack_user)
            if question.slack_user and question.via == "Slack" else None,
            "via": question.via, "nowhere": question.nowhere,
            "asked_at": question.asked_at or question.created_at,
            "answered_at": question.answered_at}


def _ip(conn, query: Query, now: datetime) -> tuple[str, dict]:
    report = queries.ip_report(conn, query.arg, PAGE if query.before else PROFILE_EVENTS,
                               query.before)
    if query.before is not None:
        return "events", {"title": f"More events of {report.query}", "page": report.events,
                          "more": more_value(query, report.events)}
    return "ip", {"report": report, "more": more_value(query, report.events)}


def _unacked(conn, query: Query, now: datetime) -> tuple[str, dict]:
    """Open alerts, oldest first, each with its age; informational ones with ``all``. The
    link to each message is added by Commands, which may ask Slack for it."""
    page = queries.unacked(conn, PAGE, query.before, with_info=query.arg == ALL_WORD)
    return "unacked", {"alerts": [unacked_line(a, now) for a in page.items], "page": page,
                       "with_info": query.arg == ALL_WORD, "more": more_value(query, page)}


def unacked_line(alert: queries.AlertRow, now: datetime) -> dict:
    """An open alert as a list shows it: where (a mention when Slack's id), its age."""
    return {"alert": alert, "channel": slack_id_or_text(alert.channel),
            "channel_id": alert.channel, "slack_ts": alert.slack_ts,
            "age": age(datetime.fromisoformat(alert.created_at), now), "link": None}


def age(since: datetime, now: datetime) -> str:
    """How long ago, in the two largest units: "3 d 4 h", "2 h 5 min", "12 min", "< 1 min"."""
    minutes = max(int((now - since).total_seconds() // 60), 0)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min" if mins else "< 1 min"


def _stats(conn, query: Query, now: datetime) -> tuple[str, dict]:
    return "stats", {"stats": queries.stats(conn, query.arg or "24h", now)}


def _audit_log(conn, query: Query, now: datetime) -> tuple[str, dict]:
    """Who did what; the user and channel IDs of Slack's rows come from Slack, so they are
    mentioned (a Teams row's ids are Entra and Teams ids: text)."""
    page = queries.audit_log(conn, PAGE, query.before)
    rows = [replace(a, user_id=slack_id_or_text(a.user_id),
                    channel_id=slack_id_or_text(a.channel_id)) if a.platform == "slack" else a
            for a in page.items]
    return "audit", {"page": replace(page, items=rows), "more": more_value(query, page)}


def _help(conn, query: Query, now: datetime) -> tuple[str, dict]:
    return "help", {"problem": ""}


ANSWERS = {"recent": _recent, "user": _user, "ip": _ip, "unacked": _unacked,
           "pending": _pending, "stats": _stats, "audit": _audit_log, "help": _help}


# --- the "more" button ------------------------------------------------------------------

def more_value(query: Query, page: queries.Page) -> ButtonValue | None:
    """The button value that asks for the page after ``page``, or None on the last page.
    It holds what was asked, never an answer: the next page is read afresh."""
    if page.next is None:
        return None
    cursor = list(page.next) if isinstance(page.next, tuple) else page.next
    value = json.dumps({"q": query.name, "a": query.arg, "n": query.limit,
                        "p": query.public, "b": cursor}, separators=(",", ":"))
    return ButtonValue(value) if len(value) <= 2000 else None  # Slack's limit for a value


def query_from_button(value: str) -> Query:
    """The Query a "more" button stands for, checked as strictly as typed input: a
    button's value comes back from Slack, and is read as untrusted."""
    try:
        fields = json.loads(value)
        name, arg, limit, public, cursor = (fields[k] for k in ("q", "a", "n", "p", "b"))
    except (ValueError, TypeError, KeyError):
        raise UsageError("that button is not one of ours") from None
    typed = parse(f"{name} {arg}".strip())
    if name not in ANSWERS or typed.name == "help" or not _is_int(limit) \
            or not 1 <= limit <= queries.MAX_LIMIT:
        raise UsageError("that button is not one of ours")
    return Query(typed.name, typed.arg, limit if typed.name == "recent" else typed.limit,
                 bool(public), _cursor(typed.name, cursor))


def _cursor(name: str, cursor: Any) -> Any:
    """An id for the alert and audit lists, (event_time, id) for lists of events."""
    if name in ("unacked", "audit") and _is_int(cursor):
        return cursor
    if name in ("recent", "user", "ip") and isinstance(cursor, list) and len(cursor) == 2 \
            and isinstance(cursor[0], str) and _is_int(cursor[1]):
        return (cursor[0], cursor[1])
    raise UsageError("that button is not one of ours")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
