"""What the App Home shows, read from the store: the bot's health, the open alerts, the last
24 hours by kind (with a sparkline of hourly counts), the busiest users and IPs, the recent
admin, privilege and allow-list changes, and the questions awaiting an answer.

The platform's side (publishing it, who may see it, the Acknowledge button on it) is
voisobot.slack.home; this module names no platform."""

import math
from dataclasses import dataclass
from datetime import datetime

from voisobot import queries, questions
from voisobot.commands import question_line, unacked_line
from voisobot.outbox import Backlog

BARS = "▁▂▃▄▅▆▇█"  # a sparkline's eight heights, lowest first
OPEN_ALERTS_SHOWN = 10  # each an actions block and a line: the Home holds 100 blocks
CHANGES_SHOWN = 5       # of user changes, and of allow-list changes
QUESTIONS_SHOWN = 10


@dataclass(frozen=True)
class Health:
    """The bot's state as the Home shows it: when SQS last answered a poll, and the
    outbox (alerts waiting to go out, and refused for good)."""

    last_poll: datetime | None
    backlog: Backlog


def sparkline(counts: list[int]) -> str:
    """One bar per count, scaled to the largest: zero is the lowest bar, the largest the
    highest, and any other count at least one step above zero, so a single event shows."""
    top = max(counts, default=0)
    if top <= 0:
        return BARS[0] * len(counts)
    steps = len(BARS) - 1
    return "".join(BARS[0] if n <= 0 else BARS[max(1, math.ceil(n * steps / top))]
                   for n in counts)


def home_context(conn, now: datetime, health: Health) -> dict:
    """Everything the Home template shows, as of ``now``."""
    open_alerts = queries.unacked(conn, OPEN_ALERTS_SHOWN)
    stats = queries.stats(conn, "24h", now)
    return {
        "now": now, "health": health,
        "open_alerts": [unacked_line(alert, now) for alert in open_alerts.items],
        "more_open": open_alerts.next is not None,
        "kinds": [{"kind": kind, "total": sum(counts), "sparkline": sparkline(counts)}
                  for kind, counts in queries.hourly_counts(conn, now).items()],
        "top_users": stats.top_users, "top_ips": stats.top_ips,
        "user_changes": queries.recent(conn, CHANGES_SHOWN, "user").items,
        "allow_list_changes": queries.recent(conn, CHANGES_SHOWN, "allowed_ip").items,
        "questions": [question_line(q) for q in questions.waiting(conn, QUESTIONS_SHOWN)],
    }


def state_of(context: dict) -> tuple:
    """What the Home shows, without what only time changes (the clock, the ages, the last
    poll): the Home is refreshed when this changes."""
    backlog = context["health"].backlog
    return (tuple((k["kind"], k["total"]) for k in context["kinds"]),
            tuple(line["alert"].id for line in context["open_alerts"]), context["more_open"],
            tuple((q["id"], q["state"], q["answer"]) for q in context["questions"]),
            tuple(e.id for e in (*context["user_changes"], *context["allow_list_changes"])),
            tuple(context["top_users"]), tuple(context["top_ips"]),
            backlog.depth, backlog.failed)
