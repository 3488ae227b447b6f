"""The questions outbox in SQLite: "was this you?" to the people an alert involves.

A question belongs to one alert (one group window) and one person, so a storm asks each
person once. Like an alert, each state change is committed before the next call to Slack
or Teams: a crash or an outage leaves a question pending, uncertain (the DM may be in Slack:
look before asking again; a Teams card may have arrived: the Connector cannot be searched,
so it is posted again in the same chat), asked, answered, expired, unmapped or failed —
never asked twice in Slack, nor anywhere after a restart. ``asked_via`` says where it went
(migration 0014). An answer is one conditional UPDATE (of two presses at once, one wins),
and an escalation is a second outbox item on the same row, posted once.
"""

from dataclasses import dataclass
from datetime import datetime

from voisobot.store import Store, time_text, transaction

ROLES = ("user", "admin")  # the affected user (params.user), the admin who acted (params.who)
_COLUMNS = ("id, alert_id, email, roles, state, slack_user, dm_channel, dm_ts, attempts, "
            "next_attempt_at, first_tried_at, last_error, created_at, asked_at, answer, "
            "answered_at, escalation, escalation_reason, escalation_ts, escalation_attempts, "
            "escalation_next_at, escalation_first_tried_at, asked_via, teams_user, "
            "teams_conversation, teams_activity")
PLACE_NAMES = {"slack": "Slack", "teams": "Teams"}
_NOT_FOUND = "not found in: "  # an unmapped question's last_error, then where it looked


@dataclass(frozen=True)
class Question:
    id: int
    alert_id: int
    email: str
    roles: str
    state: str
    slack_user: str | None
    dm_channel: str | None
    dm_ts: str | None
    attempts: int
    next_attempt_at: str
    first_tried_at: str | None
    last_error: str | None
    created_at: str
    asked_at: str | None
    answer: str | None
    answered_at: str | None
    escalation: str | None
    escalation_reason: str | None
    escalation_ts: str | None
    escalation_attempts: int
    escalation_next_at: str | None
    escalation_first_tried_at: str | None
    asked_via: str | None = None           # "slack" or "teams" (migration 0014)
    teams_user: str | None = None          # the Entra object id of the person asked
    teams_conversation: str | None = None  # their personal chat with the bot
    teams_activity: str | None = None      # the card's activity id there

    @property
    def role_list(self) -> tuple[str, ...]:
        return tuple(self.roles.split(","))

    @property
    def via(self) -> str | None:
        """Where it was asked (or tried), as people read it: "Slack", "Teams" or None."""
        place = self.asked_via or ("slack" if self.dm_channel else None)
        return PLACE_NAMES.get(place) if place else None

    @property
    def nowhere(self) -> str | None:
        """For an unmapped question: where nobody had the address, in words."""
        if self.state != "unmapped":
            return None
        places = (self.last_error or "").removeprefix(_NOT_FOUND).split(",")
        words = {"slack": "Slack user", "teams": "Teams chat with the Voiso app"}
        found = [words[p] for p in places if p in words] or [words["slack"]]
        return "no " + " or ".join(found)


@dataclass(frozen=True)
class AnswerOutcome:
    """What came of a press: ``recorded``, ``already`` (answered before: ``answer`` says
    how), or ``missing`` (no such question)."""

    status: str
    question: Question | None = None


def ask(conn, alert_id: int, asks: tuple[tuple[str, str], ...], now: datetime) -> int:
    """Inside the enqueue transaction: a question per person of ``asks`` ((role, email)
    pairs) on this alert, unless the alert already has one for them. A person in two roles
    (an admin who changed their own account) is asked once, in both. Returns how many new."""
    created = 0
    for email, roles in _by_person(asks).items():
        cursor = conn.execute(
            "INSERT INTO questions (alert_id, email, roles, next_attempt_at, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (alert_id, email) DO NOTHING",
            (alert_id, email, ",".join(roles), time_text(now), time_text(now)))
        created += cursor.rowcount
    return created


def _by_person(asks: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    people: dict[str, list[str]] = {}
    for role, email in asks:
        roles = people.setdefault(email.lower(), [])
        if role not in roles:
            roles.append(role)
    return {email: sorted(roles, key=ROLES.index) for email, roles in people.items()}


class Questions:
    def __init__(self, store: Store):
        self.store = store

    def due(self, now: datetime, limit: int) -> list[Question]:
        """Questions to ask now, oldest first: their alert is in Slack (so that it can show
        the answer) and their time has come."""
        return self._select_sent(
            "q.state IN ('pending', 'uncertain') AND q.next_attempt_at <= ? ORDER BY q.id "
            "LIMIT ?", time_text(now), limit)

    def unanswered_since(self, before: datetime, limit: int) -> list[Question]:
        """Asked before ``before`` and not answered: their time is up."""
        return self._select("state = 'asked' AND asked_at <= ? ORDER BY asked_at LIMIT ?",
                            time_text(before), limit)

    def escalations_due(self, now: datetime, limit: int) -> list[Question]:
        return self._select_sent(
            "q.escalation IN ('pending', 'uncertain') AND coalesce(q.escalation_next_at, '') "
            "<= ? ORDER BY q.id LIMIT ?", time_text(now), limit)

    def question(self, question_id: int) -> Question | None:
        return next(iter(self._select("id = ?", question_id)), None)

    def of_alert(self, alert_id: int) -> list[Question]:
        return self._select("alert_id = ? ORDER BY id", alert_id)

    def _select_sent(self, where: str, *values) -> list[Question]:
        """Questions whose alert is in Slack: found from the few open questions (a partial
        index), never by reading every alert sent."""
        columns = ", ".join(f"q.{name.strip()}" for name in _COLUMNS.split(","))
        rows = self.store.connection().execute(
            f"SELECT {columns} FROM questions q JOIN alerts a ON a.id = q.alert_id "
            f"WHERE a.state = 'sent' AND {where}", values)
        return [Question(*row) for row in rows]

    def _select(self, where: str, *values) -> list[Question]:
        return _select(self.store.connection(), where, *values)

    # --- asking -------------------------------------------------------------------------

    def mark_trying(self, question_id: int, slack_user: str, dm_channel: str,
                    now: datetime) -> None:
        """Before the post: from here until a definite answer, the DM may exist."""
        self._update(question_id, "state = 'uncertain', asked_via = 'slack', slack_user = ?, "
                     "dm_channel = ?, teams_user = NULL, teams_conversation = NULL, "
                     "teams_activity = NULL, attempts = attempts + 1, "
                     "first_tried_at = coalesce(first_tried_at, ?)",
                     slack_user, dm_channel, time_text(now))

    def mark_trying_in_teams(self, question_id: int, teams_user: str, conversation_id: str,
                             now: datetime) -> None:
        """Before the post to the person's personal chat (as ``mark_trying``)."""
        self._update(question_id, "state = 'uncertain', asked_via = 'teams', teams_user = ?, "
                     "teams_conversation = ?, slack_user = NULL, dm_channel = NULL, "
                     "dm_ts = NULL, attempts = attempts + 1, "
                     "first_tried_at = coalesce(first_tried_at, ?)",
                     teams_user, conversation_id, time_text(now))

    # The job's changes apply only while the question is still being asked: the person's
    # own press may have proved the DM and answered meanwhile (slack/question_buttons.py).

    def mark_asked(self, question_id: int, ts: str, now: datetime) -> None:
        self._update(question_id, "state = 'asked', dm_ts = ?, asked_at = ?, last_error = NULL",
                     ts, time_text(now), asking=True)

    def mark_asked_in_teams(self, question_id: int, activity_id: str | None,
                            now: datetime) -> None:
        self._update(question_id, "state = 'asked', teams_activity = coalesce(?, "
                     "teams_activity), asked_at = ?, last_error = NULL", activity_id,
                     time_text(now), asking=True)

    def mark_retry(self, question_id: int, state: str, at: datetime, error: str) -> None:
        self._update(question_id, "state = ?, next_attempt_at = ?, last_error = ?",
                     state, time_text(at), error, asking=True)

    def mark_unmapped(self, question_id: int, places: tuple[str, ...] = ("slack",)) -> None:
        """Nobody had the address in any of ``places`` (confirm.ask_in)."""
        self._update(question_id, "state = 'unmapped', last_error = ?",
                     _NOT_FOUND + ",".join(places), asking=True)

    def mark_failed(self, question_id: int, error: str) -> None:
        self._update(question_id, "state = 'failed', last_error = ?", error, asking=True)

    # --- answers and timeouts -----------------------------------------------------------

    def answer(self, question_id: int, answer: str, now: datetime) -> AnswerOutcome:
        """Record the first answer; a "no" queues the escalation (unless the silence had
        already queued one). Of two presses at once, exactly one is recorded."""
        with transaction(self.store.connection()) as conn:
            changed = conn.execute(
                "UPDATE questions SET state = 'answered', answer = :answer, answered_at = :at, "
                "escalation = CASE WHEN :answer = 'no' THEN coalesce(escalation, 'pending') "
                "ELSE escalation END, escalation_reason = CASE WHEN :answer = 'no' "
                "THEN coalesce(escalation_reason, 'no') ELSE escalation_reason END "
                "WHERE id = :id AND answer IS NULL AND state IN ('asked', 'expired')",
                {"answer": answer, "at": time_text(now), "id": question_id}).rowcount
            if changed and answer == "no":
                _escalate_alert(conn, question_id)
        question = self.question(question_id)
        if question is None:
            return AnswerOutcome("missing")
        return AnswerOutcome("recorded" if changed else "already", question)

    def expire(self, question_id: int, escalate: bool) -> bool:
        """No answer in time: True if this call expired it (an answer may have just come)."""
        with transaction(self.store.connection()) as conn:
            expired = conn.execute(
                "UPDATE questions SET state = 'expired', escalation = CASE WHEN ? "
                "THEN coalesce(escalation, 'pending') ELSE escalation END, "
                "escalation_reason = CASE WHEN ? THEN coalesce(escalation_reason, 'timeout') "
                "ELSE escalation_reason END WHERE id = ? AND state = 'asked'",
                (escalate, escalate, question_id)).rowcount == 1
            if expired and escalate:
                _escalate_alert(conn, question_id)
        return expired

    # --- escalations --------------------------------------------------------------------

    def mark_escalating(self, question_id: int, now: datetime) -> None:
        self._update(question_id, "escalation = 'uncertain', escalation_attempts = "
                     "escalation_attempts + 1, escalation_first_tried_at = "
                     "coalesce(escalation_first_tried_at, ?)", time_text(now))

    def mark_escalated(self, question_id: int, ts: str | None) -> None:
        self._update(question_id, "escalation = 'sent', escalation_ts = ?", ts)

    def mark_escalation_retry(self, question_id: int, state: str, at: datetime) -> None:
        self._update(question_id, "escalation = ?, escalation_next_at = ?", state, time_text(at))

    def mark_escalation_failed(self, question_id: int, error: str) -> None:
        self._update(question_id, "escalation = 'failed', last_error = ?", error)

    def _update(self, question_id: int, assignments: str, *values, asking: bool = False
                ) -> None:
        """``asking``: only if the question is still pending or uncertain."""
        still = " AND state IN ('pending', 'uncertain')" if asking else ""
        with transaction(self.store.connection()) as conn:
            conn.execute(f"UPDATE questions SET {assignments} WHERE id = ?{still}",
                         (*values, question_id))


# --- for the /voiso answers, which read on the connection they are given -------------------

def waiting(conn, limit: int) -> list[Question]:
    """Questions not answered yet (for /voiso pending), oldest first."""
    return _select(conn, "state IN ('pending', 'uncertain', 'asked') ORDER BY id LIMIT ?",
                   limit)


def of_person(conn, email: str, limit: int) -> list[Question]:
    """The questions asked of one person, newest first (for /voiso user)."""
    return _select(conn, "email = ? ORDER BY id DESC LIMIT ?", email.lower(), limit)


def _select(conn, where: str, *values) -> list[Question]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM questions WHERE {where}", values)
    return [Question(*row) for row in rows]


def _escalate_alert(conn, question_id: int) -> None:
    """The question's alert becomes critical, and its message is shown again."""
    conn.execute("UPDATE alerts SET severity = 'critical', shown_count = 0 "
                 "WHERE id = (SELECT alert_id FROM questions WHERE id = ?)", (question_id,))

