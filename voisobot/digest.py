"""The digest ([digest]): once a day or a week, one message summing up the period.

Periods are counted in the configured time zone: a daily digest at 08:00 covers from one
day's 08:00 to the next's, whatever daylight saving does in between (a period is then 23 or
25 hours long). A time the clocks skip (02:30 on a spring-forward day) is read with the
offset before the change, so that day's boundary is the first moment after the gap (03:30
new time); a time the clocks repeat (01:30 on a fall-back day) is its first occurrence.

Exactly once: when a period has ended, its row is inserted (keyed by the period's start,
UNIQUE) and committed before anything is posted; the post then follows the outbox's
discipline (outbox.py): marked uncertain before the call, so that after a crash or a lost
answer a Slack post is looked for in the channel's history (by the metadata naming this
store and this period) before it is posted again. Outages: the row waits and is retried,
honouring Retry-After. A bot that was down over several periods posts only the latest one
that ended (the digest of the periods it missed would be stale news); a period whose end
the bot saw is posted however late its post gets through.
"""

import logging
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from voisobot import logs, queries
from voisobot.config import WEEKDAYS, DigestConfig
from voisobot.intake import utc_now
from voisobot.metrics import Metrics
from voisobot.sending import MAX_RETRY_DELAY_SECONDS, SendResult, retry_delay
from voisobot.store import Store, time_text, transaction

log = logging.getLogger(__name__)

DIGEST_EVENT_TYPE = "voiso_digest"  # the metadata event_type of a digest's Slack post
RUN_INTERVAL_SECONDS = 30.0
LISTED = 10  # events listed per section; the rest are counted
NEW_ADMIN_GROUPS = frozenset({"admin", "administrator"})
ADMIN_KINDS = ("user/user_added", "user/privileges_updated")
ALLOW_LIST_KINDS = ("allowed_ip/ip_added", "allowed_ip/ip_changed", "allowed_ip/ip_removed")


# --- periods ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    start: datetime  # UTC, included
    end: datetime    # UTC, excluded: the next period's start

    @property
    def last_moment(self) -> datetime:
        """The window's inclusive end, as the queries take it."""
        return self.end - timedelta(microseconds=1)


def boundary(day: date, config: DigestConfig) -> datetime:
    """When the period ending on ``day`` (a local date) ends, in UTC. A local time that
    does not exist that day (skipped by spring-forward) is read with the offset before the
    change (fold=0), which lands just after the gap; an ambiguous one is its first
    occurrence (fold=0 as well)."""
    hour, minute = (int(part) for part in config.time.split(":"))
    local = datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(config.timezone))
    return local.astimezone(UTC)


def _is_end_day(day: date, config: DigestConfig) -> bool:
    return config.period == "daily" or WEEKDAYS[day.weekday()] == config.weekday


def _days(config: DigestConfig) -> int:
    return 7 if config.period == "weekly" else 1


def last_ended(now: datetime, config: DigestConfig) -> Period:
    """The latest period that has ended at ``now``."""
    day = now.astimezone(ZoneInfo(config.timezone)).date() + timedelta(days=1)
    while not (_is_end_day(day, config) and boundary(day, config) <= now):
        day -= timedelta(days=1)
    return period_ending(day, config)


def period_ending(day: date, config: DigestConfig) -> Period:
    """The period that ends on the local date ``day``."""
    return Period(boundary(day - timedelta(days=_days(config)), config), boundary(day, config))


def previous(period: Period, config: DigestConfig) -> Period:
    """The period before ``period`` (what its counts are compared with)."""
    start_day = period.start.astimezone(ZoneInfo(config.timezone)).date()
    return period_ending(start_day, config)


# --- what a digest shows ---------------------------------------------------------------------

@dataclass(frozen=True)
class Listed:
    """Some events of a section, and how many there are in all."""

    items: tuple[queries.EventRow, ...]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.items)


@dataclass(frozen=True)
class DigestView:
    """What a digest template sees. Events' fields and e-mail addresses are untrusted text;
    the rest is the bot's own."""

    period: str  # "daily" or "weekly"
    timezone: str
    start: datetime  # local, in ``timezone``
    end: datetime
    kinds: tuple[dict[str, Any], ...]  # {"kind", "count", "previous", "change"}, most first
    total: int
    previous_total: int
    admin_changes: Listed  # users added, privileges changed
    new_admins: int  # of them, those that made someone an admin
    allow_list: Listed
    failed_users: tuple[queries.Tally, ...]
    failed_ips: tuple[queries.Tally, ...]
    open_alerts: dict[str, int]  # severity -> alerts posted and not acknowledged
    unconfirmed: tuple[queries.Unconfirmed, ...]

    @property
    def open_total(self) -> int:
        return sum(self.open_alerts.values())

    def context(self) -> dict[str, Any]:
        """What the templates (templates/*/digest.json.j2) see, as ``digest``."""
        return {"digest": {
            "period": self.period, "timezone": self.timezone,
            "start": local_time(self.start), "end": local_time(self.end),
            "total": self.total, "previous_total": self.previous_total,
            "change": change_text(self.total - self.previous_total),
            "kinds": [{**k, "change": change_text(k["change"])} for k in self.kinds],
            "admin_changes": self.admin_changes, "new_admins": self.new_admins,
            "allow_list": self.allow_list, "failed_users": self.failed_users,
            "failed_ips": self.failed_ips, "open_alerts": dict(sorted(
                self.open_alerts.items(), key=lambda item: -_SEVERITY_RANK.get(item[0], -1))),
            "open_total": self.open_total, "unconfirmed": self.unconfirmed}}

    def summary(self) -> str:
        """One line saying what the digest says (the notification, a minimal message)."""
        return (f"Voiso {self.period} digest, {local_time(self.start)} to "
                f"{local_time(self.end)}: {self.total} events "
                f"({change_text(self.total - self.previous_total)} on the period before), "
                f"{self.open_total} alerts still open")


_SEVERITY_RANK = {name: i for i, name in enumerate(("info", "low", "medium", "high", "critical"))}


def change_text(change: int) -> str:
    return f"{change:+d}" if change else "±0"


def digest_view(conn: sqlite3.Connection, period: Period, config: DigestConfig) -> DigestView:
    """The digest of ``period``, read from the store now (open alerts as they stand now)."""
    since, until = time_text(period.start), time_text(period.last_moment)
    before = previous(period, config)
    counts = queries.kind_counts(conn, since, until)
    earlier = queries.kind_counts(conn, time_text(before.start), time_text(before.last_moment))
    kinds = tuple({"kind": kind, "count": counts.get(kind, 0), "previous": earlier.get(kind, 0),
                   "change": counts.get(kind, 0) - earlier.get(kind, 0)}
                  for kind in sorted(counts.keys() | earlier.keys(),
                                     key=lambda k: (-counts.get(k, 0), -earlier.get(k, 0), k)))
    admin = _listed(conn, ADMIN_KINDS, since, until)
    users, ips = queries.failed_logins(conn, since, until)
    zone = ZoneInfo(config.timezone)
    return DigestView(
        period=config.period, timezone=config.timezone, start=period.start.astimezone(zone),
        end=period.end.astimezone(zone), kinds=kinds, total=sum(counts.values()),
        previous_total=sum(earlier.values()), admin_changes=admin,
        new_admins=sum(1 for e in admin.items if _makes_admin(e)),
        allow_list=_listed(conn, ALLOW_LIST_KINDS, since, until), failed_users=users,
        failed_ips=ips, open_alerts=queries.open_alerts(conn),
        unconfirmed=queries.unconfirmed(conn, since, until, LISTED))


def _listed(conn: sqlite3.Connection, kinds: tuple[str, ...], since: str, until: str) -> Listed:
    found = [queries.kind_events(conn, kind, since, until, LISTED) for kind in kinds]
    rows = sorted((row for rows, _ in found for row in rows), key=lambda e: e.cursor)
    return Listed(tuple(rows[:LISTED]), sum(total for _, total in found))


def _makes_admin(event: queries.EventRow) -> bool:
    group = event.to_value if event.kind == "user/privileges_updated" else event.access_group
    return (group or "").strip().lower() in NEW_ADMIN_GROUPS


def local_time(value: datetime) -> str:
    """A period's end as people in its zone read it: "2026-03-08 08:00 EDT"."""
    return value.strftime("%Y-%m-%d %H:%M %Z")


# --- the digests table -----------------------------------------------------------------------

@dataclass(frozen=True)
class DigestKey:
    """What names a digest's post (Slack keeps it in the message's metadata): this store
    and the period's start. Like outbox.AlertKey, for the same lookup."""

    event_type: ClassVar[str] = DIGEST_EVENT_TYPE
    store_id: str
    period_start: str

    def payload(self) -> dict:
        return {"digest": self.period_start, "store_id": self.store_id}

    def names(self, payload) -> bool:
        return (payload.get("digest"), payload.get("store_id")) \
            == (self.period_start, self.store_id)


@dataclass(frozen=True)
class DigestRow:
    id: int
    period_start: str
    period_end: str
    channel: str
    state: str
    attempts: int
    next_attempt_at: str
    first_tried_at: str | None
    ts: str | None

    @property
    def period(self) -> Period:
        return Period(datetime.fromisoformat(self.period_start),
                      datetime.fromisoformat(self.period_end))


_ROW = ("id, period_start, period_end, channel, state, attempts, next_attempt_at, "
        "first_tried_at, ts")


class Digests:
    def __init__(self, store: Store):
        self.store = store

    def create(self, period: Period, config: DigestConfig, now: datetime) -> bool:
        """The period's digest, to post; False when it exists already (made by an earlier
        run, before or after a restart): the UNIQUE period start makes it once."""
        with transaction(self.store.connection()) as conn:
            return conn.execute(
                "INSERT OR IGNORE INTO digests (period_start, period_end, period, timezone, "
                "channel, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time_text(period.start), time_text(period.end), config.period,
                 config.timezone, config.channel, time_text(now), time_text(now))).rowcount == 1

    def open(self) -> list[DigestRow]:
        """Digests to post (pending, or uncertain: look first), oldest period first."""
        return [DigestRow(*row) for row in self.store.connection().execute(
            f"SELECT {_ROW} FROM digests WHERE state IN ('pending', 'uncertain') ORDER BY id")]

    def all(self) -> list[DigestRow]:
        return [DigestRow(*row) for row in self.store.connection().execute(
            f"SELECT {_ROW} FROM digests ORDER BY id")]

    def mark_trying(self, digest_id: int, now: datetime) -> None:
        """Before the call: from here until a definite answer, the post may exist."""
        self._update(digest_id, "state = 'uncertain', attempts = attempts + 1, "
                     "first_tried_at = coalesce(first_tried_at, ?)", time_text(now))

    def mark_sent(self, digest_id: int, ts: str | None, now: datetime) -> None:
        self._update(digest_id, "state = 'sent', ts = ?, sent_at = ?, last_error = NULL", ts,
                     time_text(now))

    def mark_retry(self, digest_id: int, state: str, at: datetime, error: str) -> None:
        self._update(digest_id, "state = ?, next_attempt_at = ?, last_error = ?", state,
                     time_text(at), error)

    def mark_failed(self, digest_id: int, error: str) -> None:
        self._update(digest_id, "state = 'failed', last_error = ?", error)

    def _update(self, digest_id: int, assignments: str, *values) -> None:
        with transaction(self.store.connection()) as conn:
            conn.execute(f"UPDATE digests SET {assignments} WHERE id = ?", (*values, digest_id))


# --- the job ---------------------------------------------------------------------------------

class DigestJob:
    """Makes each period's digest once it has ended, and posts it through the platform's
    output (the alerts' own: voisobot.delivery's ``Output``, plus ``post_digest``)."""

    def __init__(self, digests: Digests, outputs, config: DigestConfig, *,
                 timeout_seconds: float = 10.0, retry_base: float = 1.0, clock=utc_now,
                 metrics: Metrics | None = None):
        """``outputs``: the alert outputs (runtime.alert_outputs); ``timeout_seconds``: how
        long a post may still be in flight (an uncertain one is looked for after it)."""
        self.digests, self.outputs, self.config = digests, tuple(outputs), config
        self.timeout_seconds, self.retry_base, self.clock = timeout_seconds, retry_base, clock
        self.metrics = metrics or Metrics()
        self.reported: set[str] = set()

    run_interval = RUN_INTERVAL_SECONDS

    def run(self) -> None:
        now = self.clock()
        if self.digests.create(last_ended(now, self.config), self.config, now):
            self.metrics.digest("made")
            log.info("digest: a period ended; its digest goes to %s", self.config.channel)
        for row in self.digests.open():
            if row.next_attempt_at <= time_text(now):
                self._deliver(row, now)

    def output(self, channel: str):
        return next((o for o in self.outputs if o.owns(channel)), None)

    def key(self, row: DigestRow) -> DigestKey:
        return DigestKey(self.digests.store.store_id, row.period_start)

    def _deliver(self, row: DigestRow, now: datetime) -> None:
        output = self.output(row.channel)
        if output is None:
            return self._failed(row, SendResult("give_up", row.channel, error="unknown_channel",
                                                advice="no platform of this run takes it"))
        blocked = output.blocked(row.channel)
        if blocked is not None:
            return self._hold(row, blocked)
        if row.state == "uncertain" and output.searchable():
            found = output.find(row.channel, self.key(row), row.first_tried_at)
            if found.status == "done" and found.ts:
                log.info("digest %s was already in %s: not posted again", row.period_start,
                         row.channel, extra=logs.ids(channel=row.channel))
                self.metrics.digest("already_sent")
                return self.digests.mark_sent(row.id, found.ts, self.clock())
            if found.status != "done":
                return self._not_sent(row, found, uncertain=True)
        view = digest_view(self.digests.store.connection(), row.period, self.config)
        self.digests.mark_trying(row.id, now)
        result = output.post_digest(row.channel, view, self.key(row))
        if result.status == "done":
            self.metrics.digest("sent")
            return self.digests.mark_sent(row.id, result.ts, self.clock())
        return self._not_sent(row, result, uncertain=result.maybe_posted)

    def _not_sent(self, row: DigestRow, result: SendResult, *, uncertain: bool) -> None:
        if self.output(row.channel).pauses_all(result):  # a refused token: wait for the fix
            return self._hold(row, replace(result, status="retry"))
        if result.status != "retry":
            return self._failed(row, result)
        delay = retry_delay(row.attempts, result, self.retry_base)
        if uncertain:  # let a post still in flight land before looking for it
            delay = max(delay, self.timeout_seconds)
        self.digests.mark_retry(row.id, "uncertain" if uncertain else "pending",
                                self.clock() + timedelta(seconds=delay), result.error or "retry")
        self.metrics.digest("retry")
        log.warning("digest %s to %s not posted (%s); retrying in %.0f s", row.period_start,
                    row.channel, result.error, delay, extra=logs.ids(channel=row.channel))

    def _hold(self, row: DigestRow, result: SendResult) -> None:
        """Nothing tried: a destination gone fails the digest; one that lacks a secret or a
        subscription keeps it pending until a restart or a subscribe sets it."""
        if result.status == "give_up":
            return self._failed(row, result)
        self.digests.mark_retry(row.id, "pending", self.clock() + timedelta(
            seconds=MAX_RETRY_DELAY_SECONDS), result.error)
        self.metrics.digest("waiting")
        if result.error not in self.reported:
            self.reported.add(result.error)
            log.error("digest to %s waits: %s", row.channel, result.advice,
                      extra=logs.ids(channel=row.channel))

    def _failed(self, row: DigestRow, result: SendResult) -> None:
        self.digests.mark_failed(row.id, f"{result.error}: {result.advice}")
        self.metrics.digest("failed")
        log.error("digest %s to %s refused (%s): %s", row.period_start, row.channel,
                  result.error, result.advice, extra=logs.ids(channel=row.channel))
