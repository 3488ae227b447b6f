"""Benchmark of the /voiso queries (voisobot/queries.py) on a large store.

Builds a store of ``--events`` synthetic events (default 1,000,000: 90 days up to now,
~2,000 users of very unequal activity, ~5,000 IPs, all 12 kinds, a few hundred allow-list
edits, ~5,000 alerts, ~10,000 audit rows), or reuses one (``--store``), then times each
subcommand's query ~200 times with varied arguments (``stats`` at the data's present), and
the same question answered by a full scan a few times; then the whole answer to each /voiso
command as the handler gets it (access, audit, query, template). Then both again while a
child process writes 500 events/s through the intake; then the peak RSS of the running bot
(``bot.py run``, HTTP mode) answering signed /voiso commands. Prints five tables; it is a
report, not a test, so it always exits 0. See bench/README.md.

    python bench/bench_queries.py [--events N] [--repeats R] [--scans S] [--bot-commands C]
                                  [--store PATH] [--dir DIRECTORY] [--add-index SQL]
"""

import argparse
import hashlib
import ipaddress
import itertools
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# `python bench/bench_queries.py` puts bench/ on the path, not the repo root.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import bot_memory  # noqa: E402  (bench/bot_memory.py)
import intake_writer  # noqa: E402  (bench/intake_writer.py)
from report import positive_count, print_table  # noqa: E402  (bench/report.py)

from voisobot import jobs, outbox, queries, samples  # noqa: E402
from voisobot import store as voiso_store  # noqa: E402
from voisobot.access import AccessPolicy  # noqa: E402
from voisobot.commands import Commands  # noqa: E402
from voisobot.config import AccessConfig  # noqa: E402
from voisobot.slack.render import SlackRenderer  # noqa: E402
from voisobot.store import Store, time_text  # noqa: E402

SPAN = timedelta(days=90)
TARGET_P99_MS = 10.0
TARGET_RSS_MB = 150.0
SEED = 20261124
LOAD_CHUNK = 50_000
USERS, ADMINS, IPS = 2_000, 20, 5_000
ALLOW_LIST_EDITS, ALERTS, AUDIT_ROWS = 300, 5_000, 10_000
REJECTED_SHARE = 0.01
# Under load, each row is timed for at most this long (MIN_RUNS at least): the writer's
# events pile up in the current windows as long as it runs (500/s is ~4,000 times the
# data's own rate at 1,000,000 events), so the phase must not last as long as its slowest
# questions make it.
LOADED_ROW_SECONDS, MIN_RUNS = 5.0, 20
ASKED_WITHIN_SECONDS = 300  # questions come 1 s to 5 min after the newest event
# The load writes rows as the intake would, but not daily_counts: it fills a store at this
# schema version, and the bot's own migrations upgrade it (0005 backfills daily_counts).
LOADED_AT_VERSION = 4
GROUPS = ("agent", "supervisor", "manager", "admin")
ALERT_CHANNELS = ("C0SECURITY1", "C0LOGINS22")

# Shares of the non-allow-list events: logins dominate, user changes are rare.
KIND_SHARES = {
    ("app_login", "successful_login"): 0.620,
    ("app_login", "incorrect_password"): 0.150,
    ("app_login", "ip_changed"): 0.100,
    ("app_login", "unauthorized_ip"): 0.080,
    ("app_login", "deleted_user"): 0.015,
    ("user", "password_changed"): 0.015,
    ("user", "privileges_updated"): 0.008,
    ("user", "user_added"): 0.007,
    ("user", "user_deleted"): 0.005,
}


# --- the synthetic store: built in a child process, before any timing --------------------

def zipf_weights(count: int, exponent: float = 1.0) -> list[float]:
    """Cumulative weights: a few very active, a long tail of quiet ones."""
    total, cumulative = 0.0, []
    for rank in range(1, count + 1):
        total += rank ** -exponent
        cumulative.append(total)
    return cumulative


def make_addresses(rng: random.Random) -> list[str]:
    """~5,000 addresses, 20 per /24 (so a /24 query finds several), 5% IPv6."""
    v6_count = IPS // 20
    prefixes = rng.sample(range(0x0B000000 >> 8, 0xDF000000 >> 8), (IPS - v6_count) // 20)
    v4 = [str(ipaddress.IPv4Address((prefix << 8) + host))
          for prefix in prefixes for host in rng.sample(range(1, 255), 20)]
    v6 = [str(ipaddress.IPv6Address((0x20010DB8 << 96) + (net << 64) + rng.getrandbits(32)))
          for net in range(v6_count // 25) for _ in range(25)]
    addresses = v4 + v6
    rng.shuffle(addresses)
    return addresses


@dataclass
class Population:
    users: list[str]
    user_weights: list[float]
    groups: dict[str, str]          # each user's access group
    homes: dict[str, list[str]]     # the addresses each user logs in from
    admins: list[str]
    admin_weights: list[float]
    attackers: list[str]
    attacker_weights: list[float]

    @classmethod
    def make(cls, rng: random.Random) -> "Population":
        users = [f"agent{n}@acme.example" for n in range(USERS)]
        addresses = make_addresses(rng)
        offices, attackers = addresses[:3_500], addresses[3_500:]
        homes = {user: rng.sample(offices[:: rng.choice((1, 7))], rng.randint(1, 3))
                 for user in users}  # shared office addresses (NAT) are common
        return cls(users, zipf_weights(USERS), {u: rng.choice(GROUPS) for u in users}, homes,
                   users[100:100 + ADMINS], zipf_weights(ADMINS), attackers,
                   zipf_weights(len(attackers)))


class EventMaker:
    """Events of every kind, in event-time order, as rows of store._INSERT_EVENT."""

    def __init__(self, rng: random.Random, people: Population):
        self.rng, self.people = rng, people
        self.allow_list: list[str] = []
        self.alertable: list[tuple[int, str, str]] = []  # (id, kind, time) worth an alert

    def params(self, type_: str, event: str) -> dict:
        rng, people = self.rng, self.people
        if type_ == "allowed_ip":
            return self.allow_list_params(event)
        # Logins follow activity (and attacks); changes to accounts are spread over all.
        user = rng.choice(people.users) if type_ == "user" \
            else rng.choices(people.users, cum_weights=people.user_weights)[0]
        if rng.random() < 0.02:
            user = user.capitalize()  # typed differently: the columns match case-insensitively
        params = {"user": user, "access_group": people.groups[user.lower()]}
        if type_ == "user":
            params["who"] = rng.choices(people.admins, cum_weights=people.admin_weights)[0]
        if event == "incorrect_password":
            params["count"] = str(rng.randint(4, 12))
        elif event == "unauthorized_ip":
            params["ip"] = (rng.choices(people.attackers, cum_weights=people.attacker_weights)[0]
                            if rng.random() < 0.7 else rng.choice(people.homes[user.lower()]))
        elif event == "ip_changed":
            params["from"], params["to"] = self.two_addresses(user.lower())
        elif event == "privileges_updated":
            del params["access_group"]
            params["from"], params["to"] = rng.sample(GROUPS, 2)
        return params

    def two_addresses(self, user: str) -> tuple[str, str]:
        homes = self.people.homes[user]
        if len(homes) > 1:
            first, second = self.rng.sample(homes, 2)
            return first, second
        return homes[0], self.rng.choice(self.people.attackers)

    def allow_list_params(self, event: str) -> dict:
        rng = self.rng
        params = {"who": rng.choices(self.people.admins, cum_weights=self.people.admin_weights)[0],
                  "access_group": rng.choice(GROUPS)}
        fresh = self.fresh_range()
        if event == "ip_added":
            params["ip"] = fresh
            self.allow_list.append(fresh)
        elif event == "ip_removed":
            params["ip"] = self.allow_list.pop(rng.randrange(len(self.allow_list)))
        else:
            index = rng.randrange(len(self.allow_list))
            params["from"], params["to"] = self.allow_list[index], fresh
            self.allow_list[index] = fresh
        return params

    def fresh_range(self) -> str:
        home = self.rng.choice(self.rng.choice(list(self.people.homes.values())))
        return str(ipaddress.ip_network(f"{home}/{self.rng.choice((32, 32, 24))}", strict=False))

    def allow_list_event(self) -> str:
        if not self.allow_list:
            return "ip_added"
        return self.rng.choices(("ip_added", "ip_removed", "ip_changed"), (5, 2, 3))[0]

    def body(self, when: datetime, type_: str, event: str) -> dict:
        """An event as Voiso sends it."""
        return {"timestamp": samples.voiso_timestamp(when),
                "type": type_, "event": event, "callcenter": "acme",
                "params": self.params(type_, event)}

    def row(self, event_id: int, when: datetime, type_: str, event: str) -> tuple:
        body = self.body(when, type_, event)
        params = body["params"]
        raw = json.dumps(body).encode()
        event_time = time_text(when)
        if type_ != "app_login" or event in ("unauthorized_ip", "deleted_user"):
            self.alertable.append((event_id, f"{type_}/{event}", event_time))
        received = time_text(when + timedelta(milliseconds=self.rng.randint(50, 3_000)))
        return (f"00000000-0000-4000-8000-{event_id:012x}", hashlib.sha256(raw).digest(),
                received, received, event_time, type_, event, "acme", params.get("user"),
                params.get("who"), params.get("access_group"), params.get("ip"),
                params.get("from"), params.get("to"),
                int(params["count"]) if "count" in params else None,
                json.dumps(params, sort_keys=True, separators=(",", ":")), raw)


def event_rows(maker: EventMaker, count: int, end: datetime) -> Iterator[list[tuple]]:
    """``count`` events over SPAN ending at ``end``, in chunks; ids follow event time."""
    rng = maker.rng
    start = end - SPAN
    # Distinct centiseconds (Voiso's precision): no two bodies are equal, so every row is
    # stored and ids follow this order.
    offsets: list[int] = []
    for offset in sorted(rng.randrange(int(SPAN.total_seconds() * 100)) for _ in range(count)):
        offsets.append(max(offset, offsets[-1] + 1) if offsets else offset)
    allow_list_at = set(rng.sample(range(count), min(ALLOW_LIST_EDITS, count // 100)))
    kinds, shares = list(KIND_SHARES), list(KIND_SHARES.values())
    chosen = rng.choices(kinds, shares, k=count)
    chunk = []
    for index, offset in enumerate(offsets):
        when = start + timedelta(milliseconds=10 * offset)
        type_, event = ("allowed_ip", maker.allow_list_event()) if index in allow_list_at \
            else chosen[index]
        chunk.append(maker.row(index + 1, when, type_, event))
        if len(chunk) == LOAD_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def alert_rows(rng: random.Random, alertable: list[tuple[int, str, str]], end: datetime
               ) -> list[tuple]:
    """~ALERTS alerts on the events worth one; the older, the likelier acknowledged."""
    rows = []
    for event_id, kind, at in sorted(rng.sample(alertable, min(ALERTS, len(alertable)))):
        age = (end - datetime.fromisoformat(at)) / SPAN
        state = rng.choices(("sent", "pending", "failed"), (92, 3, 5))[0]
        acked = state == "sent" and rng.random() < 0.4 + 0.6 * age
        rows.append((event_id, rng.choice(ALERT_CHANNELS),
                     "high" if kind.startswith(("allowed_ip", "app_login")) else "medium",
                     state, 1, at, at, at, f"{1_760_000_000 + event_id}.000100"
                     if state == "sent" else None, at if state == "sent" else None,
                     rng.choice((1, 1, 1, 2, 5, 40)), f"U0{rng.randrange(40):08d}"
                     if acked else None, at if acked else None))
    return rows


def audit_rows(rng: random.Random, people: Population, end: datetime) -> list[tuple]:
    start = end - SPAN
    rows = []
    for offset in sorted(rng.random() * SPAN.total_seconds() for _ in range(AUDIT_ROWS)):
        command = rng.choice(("recent", "unacked", "stats 7d",
                              f"user {rng.choice(people.users)}",
                              f"ip {rng.choice(people.attackers)}"))
        allowed = rng.random() < 0.95
        rows.append((time_text(start + timedelta(seconds=offset)), f"U0{rng.randrange(40):08d}",
                     "C0SECURITY1", "command", f"/voiso {command}", int(allowed),
                     "answered" if allowed else "denied: not in the security group"))
    return rows


def rejected_rows(rng: random.Random, count: int, end: datetime) -> list[tuple]:
    start = end - SPAN
    rows = []
    for index, offset in enumerate(sorted(rng.random() * SPAN.total_seconds()
                                          for _ in range(count))):
        at = time_text(start + timedelta(seconds=offset))
        rows.append((f"rejected-{index:012x}", at, at, "body is not JSON (Expecting value at "
                     "line 1 column 1)", b"not json " + str(index).encode()))
    return rows


_INSERT_ALERT = """
    INSERT INTO alerts (event_id, channel, severity, state, attempts, next_attempt_at,
                        first_tried_at, created_at, slack_ts, sent_at, event_count,
                        acked_by, acked_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_AUDIT = """
    INSERT INTO audit (at, user_id, channel_id, action, detail, allowed, outcome)
    VALUES (?, ?, ?, ?, ?, ?, ?)"""


def build_store(path: str, count: int, end: datetime) -> None:
    """Fill a new store (production schema and pragmas) with ``count`` events and the rest,
    the newest just before ``end``.

    Setup, not what is measured: synchronous=OFF and a large page cache for the load only.
    """
    rng = random.Random(SEED)
    people = Population.make(rng)
    maker = EventMaker(rng, people)
    conn = voiso_store.connect(path)
    voiso_store.migrate(conn, [step for step in voiso_store.migrations()
                               if step[0] <= LOADED_AT_VERSION])
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: the random sha256 keys fit
    for chunk in event_rows(maker, count, end):
        with voiso_store.transaction(conn):
            conn.executemany(voiso_store._INSERT_EVENT, chunk)
    with voiso_store.transaction(conn):
        conn.executemany(_INSERT_ALERT, alert_rows(rng, maker.alertable, end))
        conn.executemany(_INSERT_AUDIT, audit_rows(rng, people, end))
        conn.executemany(voiso_store._INSERT_REJECTED,
                         rejected_rows(rng, int(count * REJECTED_SHARE), end))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA synchronous = FULL")
    conn.close()


def upgrade_store(path: str) -> None:
    """What the bot does on its first start with a store of an older version: the
    migrations, then one run of the counting job (which catches up with every event)."""
    store = Store(path)
    jobs.count_days(store)
    store.close()


def in_child(target: Callable, *args) -> float:
    """Seconds to run ``target``, in a child process so that its memory (a large load
    cache, the migration's sorts) is not counted in this process's peak."""
    started = time.perf_counter()
    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"{target.__name__} failed (exit code {child.exitcode})")
    return time.perf_counter() - started


# --- the arguments: drawn from the data, before timing ----------------------------------

def random_rows(conn: sqlite3.Connection, rng: random.Random, columns: str,
                wanted: Callable[[sqlite3.Row], bool], count: int) -> list[sqlite3.Row]:
    """Rows of random events (so busy users and addresses come up as often as they act)."""
    (top,) = conn.execute("SELECT max(id) FROM events").fetchone()
    found: list[sqlite3.Row] = []
    while len(found) < count:
        row = conn.execute(f"SELECT {columns} FROM events WHERE id = ?",
                           (rng.randint(1, top),)).fetchone()
        if row is not None and wanted(row):
            found.append(row)
    return found


def login_addresses(conn: sqlite3.Connection, rng: random.Random, count: int) -> list[str]:
    rows = random_rows(conn, rng, "type, ip, from_value, to_value",
                       lambda row: row[0] == "app_login" and (row[1] or row[2]), count)
    return [rng.choice([v for v in row[1:] if v]) for row in rows]


class Present:
    """The data's present, at which production asks: the newest event's time, moving on
    with the clock from ``move(since)`` on, as the writer adds events at it."""

    def __init__(self, newest: datetime):
        self.newest = newest
        self.since: float | None = None  # time.monotonic() when the writer began

    def move(self, since: float) -> None:
        self.since = since

    def now(self) -> datetime:
        moved = 0.0 if self.since is None else time.monotonic() - self.since
        return self.newest + timedelta(seconds=moved)

    def at(self, after: timedelta) -> datetime:
        return self.now() + after


def asked_after(rng: random.Random) -> timedelta:
    """How long after the newest event a question comes: seconds to minutes."""
    return timedelta(seconds=rng.uniform(1, ASKED_WITHIN_SECONDS))


def arguments_for(conn: sqlite3.Connection, trail: sqlite3.Connection, rng: random.Random,
                  count: int) -> dict[str, list]:
    cursors = [None, *[tuple(row) for row in random_rows(
        conn, rng, "event_time, id", lambda row: True, count - 1)]]
    addresses = [a for a in login_addresses(conn, rng, count * 2) if "/" not in a][:count]
    ranges = [str(ipaddress.ip_network(f"{a}/{24 if '.' in a else 64}", strict=False))
              for a in addresses]
    (alerts,) = conn.execute("SELECT max(id) FROM alerts").fetchone()
    (audits,) = trail.execute("SELECT max(id) FROM audit").fetchone()
    filters = ("app_login/unauthorized_ip", "unauthorized_ip", "user", "allowed_ip",
               "ip_changed", "app_login", "user/privileges_updated")
    return {
        "recent": cursors,
        "recent KIND": [(rng.choice(filters), rng.choice(cursors[:20])) for _ in range(count)],
        "user EMAIL": [row[0] for row in random_rows(conn, rng, "user", lambda r: r[0], count)],
        "ip ADDRESS": addresses,
        "ip RANGE (/24, /64)": ranges,
        "unacked": [None, *(rng.randint(0, alerts) for _ in range(count - 1))],
        "stats 24h": [asked_after(rng) for _ in range(count)],
        "stats 7d": [asked_after(rng) for _ in range(count)],
        "stats 30d": [asked_after(rng) for _ in range(count)],
        "audit": [None, *(rng.randint(1, audits) for _ in range(count - 1))],
    }


# --- the same questions, answered by a full scan ---------------------------------------

def not_indexed(sql: str) -> str:
    return sql.replace("FROM events", "FROM events NOT INDEXED")


def scan_recent(conn, before):
    at, last_id = before or queries._END
    rows = conn.execute(not_indexed(queries.RECENT_SQL), {"at": at, "id": last_id, "limit": 10})
    return [row["id"] for row in rows]


def scan_recent_kind(conn, argument):
    wanted, before = argument
    at, last_id = before or queries._END
    rows = conn.execute(f"""
        SELECT id, type, event FROM events NOT INDEXED WHERE {queries._BEFORE}
        {queries._NEWEST_FIRST}""", {"at": at, "id": last_id})
    chosen = queries.parse_kind_filter(wanted)
    matching = (row["id"] for row in rows if chosen.matches(row["type"], row["event"]))
    return list(itertools.islice(matching, 10))  # fewer where the store has fewer


def scan_user(conn, email):
    rows = conn.execute("""
        SELECT id, event_time, type, event, ip, from_value, to_value,
               user = :email AS as_user, who = :email AS as_who FROM events NOT INDEXED
        WHERE user = :email OR who = :email""", {"email": email}).fetchall()
    newest = sorted(rows, key=lambda row: (row["event_time"], row["id"]), reverse=True)
    kinds = Counter(f"{r['type']}/{r['event']}" for r in rows if r["as_user"])
    made = Counter(f"{r['type']}/{r['event']}" for r in rows if r["as_who"])
    logins = [r for r in newest if r["as_user"] and r["type"] == "app_login"]
    addresses = Counter(v for r in logins for v in {r["ip"], r["from_value"], r["to_value"]}
                        if v and queries._is_address(v))  # every login's, single addresses
    changes = [r["id"] for r in newest if r["as_user"] and r["type"] == "user"][:10]
    return ([r["id"] for r in newest[:20]], dict(kinds), dict(made), dict(addresses), changes)


def scan_ip(conn, text):
    target = queries._span(str(queries.parse_ip(text)))
    rows = conn.execute("""
        SELECT id, event_time, user, ip, from_value, to_value FROM events NOT INDEXED
        WHERE ip IS NOT NULL OR from_value IS NOT NULL OR to_value IS NOT NULL""").fetchall()
    about = [r for r in rows if any(queries._overlap(queries._span(v), target)
                                    for v in (r["ip"], r["from_value"], r["to_value"]))]
    about.sort(key=lambda row: (row["event_time"], row["id"]), reverse=True)
    users = Counter(row["user"].lower() for row in about if row["user"])
    return [row["id"] for row in about[:20]], len(users)


def scan_unacked(conn, after_id):
    sql = queries.UNACKED_SQL.replace("FROM alerts AS a", "FROM alerts AS a NOT INDEXED")
    return [row[0] for row in conn.execute(sql, {"after_id": after_id or 0, "limit": 20, "all": 0})]


def stats_window(period: str, now: datetime) -> dict[str, str]:
    """As queries.stats promises: 24h up to now; 7d and 30d whole UTC days, today's included."""
    span = queries.PERIODS[period]
    if span <= timedelta(days=1):
        return {"since": time_text(now - span), "until": time_text(now)}
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1),
                                datetime.min.time(), UTC)
    return {"since": time_text(tomorrow - span),
            "until": time_text(tomorrow - timedelta(microseconds=1))}


def scan_stats(period: str, present: Present):
    def scan(conn, after):
        window = stats_window(period, present.at(after))
        rows = conn.execute(f"""
            SELECT type, event, user, ip, from_value, to_value FROM events NOT INDEXED
            WHERE {queries._IN_PERIOD}""", window).fetchall()
        kinds = Counter(f"{row[0]}/{row[1]}" for row in rows)
        users = Counter(row[2].lower() for row in rows if row[2])
        ips = Counter(v for row in rows for v in row[3:] if v and queries._is_address(v))
        (rejected,) = conn.execute("SELECT count(*) FROM rejected NOT INDEXED WHERE "
                                   "received_at >= :since AND received_at <= :until",
                                   window).fetchone()
        return (dict(kinds), sorted(users.values())[-5:][::-1],
                sorted(ips.values())[-5:][::-1], rejected)
    return scan


def scan_audit(conn, before_id):
    sql = queries.AUDIT_SQL.replace("FROM audit", "FROM audit NOT INDEXED").replace(
        "WHERE id", "WHERE +id")
    return [row[0] for row in conn.execute(
        sql, {"before_id": 2**63 - 1 if before_id is None else before_id, "limit": 20})]


# What each query returns, in the shape its scan returns, to check that both agree.
def indexed_cases(present: Present, trail: sqlite3.Connection
                  ) -> dict[str, tuple[Callable, Callable, Callable]]:
    """name: (indexed query, the same question by a full scan, the query's answer in the
    scan's shape). A stats argument is how long after the data's present it is asked; the
    audit question reads the audit trail's own file (``trail``), as the bot does."""
    def page_ids(page):
        return [item.id for item in page.items]

    def user_shape(profile):
        return (page_ids(profile.events), profile.kinds, profile.made,
                {a.name: a.count for a in profile.addresses}, [e.id for e in profile.changes_to])

    def stats_shape(result):
        return (result.kinds, [u.count for u in result.top_users],
                [i.count for i in result.top_ips], result.rejected)

    return {
        "recent": (lambda c, a: queries.recent(c, 10, before=a), scan_recent, page_ids),
        "recent KIND": (lambda c, a: queries.recent(c, 10, a[0], a[1]), scan_recent_kind,
                        page_ids),
        "user EMAIL": (lambda c, a: queries.user_profile(c, a), scan_user, user_shape),
        "ip ADDRESS": (lambda c, a: queries.ip_report(c, a), scan_ip,
                       lambda r: (page_ids(r.events), r.user_count)),
        "ip RANGE (/24, /64)": (lambda c, a: queries.ip_report(c, a), scan_ip,
                                lambda r: (page_ids(r.events), r.user_count)),
        "unacked": (lambda c, a: queries.unacked(c, 20, a), scan_unacked, page_ids),
        **{f"stats {period}": (lambda c, a, p=period: queries.stats(c, p, present.at(a)),
                               scan_stats(period, present), stats_shape)
           for period in ("24h", "7d", "30d")},
        "audit": (lambda c, a: queries.audit_log(trail, 20, a),
                  lambda c, a: scan_audit(trail, a), page_ids),
    }


# --- timing and the report ---------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    name: str
    runs: int
    p50_ms: float
    p99_ms: float
    scans: int = 0
    scan_ms: float = 0.0


def timed_ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def time_queries(conn: sqlite3.Connection, name: str, query: Callable, args: list,
                 budget_seconds: float = float("inf")) -> Result:
    """Every argument timed, or as many as fit in ``budget_seconds`` (MIN_RUNS at least)."""
    for argument in args[:3]:  # warm the page cache and the statement cache
        query(conn, argument)
    samples: list[float] = []
    ends = time.monotonic() + budget_seconds
    for argument in args:
        if len(samples) >= MIN_RUNS and time.monotonic() > ends:
            break
        samples.append(timed_ms(lambda a=argument: query(conn, a)))
    samples *= 2 if len(samples) == 1 else 1  # quantiles needs two
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return Result(name, len(samples), cuts[49], cuts[98])


def time_scans(conn: sqlite3.Connection, result: Result, cases: tuple, args: list,
               scans: int) -> Result:
    """The full scans, and a check on two arguments that both paths give the same answer."""
    query, scan, shape = cases
    if any(shape(query(conn, a)) != scan(conn, a) for a in args[:2]):
        print(f"warning: {result.name}: the indexed answer differs from the full scan's",
              file=sys.stderr)
    samples = [timed_ms(lambda a=argument: scan(conn, a)) for argument in args[:scans]]
    return Result(result.name, result.runs, result.p50_ms, result.p99_ms, len(samples),
                  statistics.median(samples))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def progress(what: str) -> None:
    """A line on stderr as each phase begins: the tables come at the end, together."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


TARGET = f"target p99 ≤ {TARGET_P99_MS:g} ms"
COLUMNS = ("query", "runs", "p50 ms", "p99 ms", "full scan ms", "scans", "scan/p50", TARGET)


def table_row(result: Result) -> tuple[str, ...]:
    return (result.name, str(result.runs), f"{result.p50_ms:.2f}", f"{result.p99_ms:.2f}",
            f"{result.scan_ms:,.1f}", str(result.scans),
            f"{result.scan_ms / result.p50_ms:,.1f}x", verdict(result.p99_ms <= TARGET_P99_MS))


def time_all_queries(conn: sqlite3.Connection, cases: dict, every_argument: dict[str, list],
                     budget_seconds: float = float("inf")) -> list[Result]:
    return [time_queries(conn, name, query, every_argument[name], budget_seconds)
            for name, (query, _, _) in cases.items()]


# --- the whole answer: what an analyst waits for after Slack's ack ----------------------

BENCH_USER = "UBENCH0001"
# command text, and the query row whose arguments (and p50) it shares
ANSWERS = {"recent": ("recent", lambda a: "recent"),
           "recent KIND": ("recent 10 unauthorized_ip", None),
           "user EMAIL": ("user", lambda a: f"user {a}"),
           "ip ADDRESS": ("ip address", lambda a: f"ip {a}"),
           "ip RANGE (/24, /64)": ("ip range", lambda a: f"ip {a}"),
           "unacked": ("unacked", lambda a: "unacked"),
           "stats 24h": ("stats 24h", lambda a: "stats 24h"),
           "stats 7d": ("stats 7d", lambda a: "stats 7d"),
           "stats 30d": ("stats 30d", lambda a: "stats 30d"),
           "audit": ("audit", lambda a: "audit")}
ANSWER_COLUMNS = ("/voiso command", "runs", "p50 ms", "p99 ms", "query p50 ms",
                  "answer/query", TARGET)


def command_texts(name: str, every_argument: dict[str, list]) -> list[str]:
    label, text_of = ANSWERS[name]
    return [text_of(a) if text_of else label for a in every_argument[name]]


def time_answers(answers: Commands, every_argument: dict[str, list],
                 budget_seconds: float = float("inf")) -> dict[str, Result]:
    """Commands.command(): the access check, the audit row committed (fsync), the query,
    and the answer rendered from its template and validated as Block Kit. Keyed by the
    query row whose arguments it shares."""
    return {name: time_queries(None, ANSWERS[name][0], lambda _, text: answers.command(
        BENCH_USER, "CBENCH0001", text), command_texts(name, every_argument), budget_seconds)
        for name in ANSWERS}


def answer_rows(answers: dict[str, Result], queries_timed: list[Result]
                ) -> list[tuple[str, ...]]:
    query_p50 = {result.name: result.p50_ms for result in queries_timed}
    return [(result.name, str(result.runs), f"{result.p50_ms:.2f}", f"{result.p99_ms:.2f}",
             f"{query_p50[name]:.2f}", f"{result.p50_ms / query_p50[name]:,.1f}x",
             verdict(result.p99_ms <= TARGET_P99_MS)) for name, result in answers.items()]


# --- under load: the same questions while the intake writes ------------------------------

def loaded_columns(first: str) -> tuple[str, ...]:
    return (first, "runs", "p50 ms", "p99 ms", "quiet p99 ms", "loaded/quiet", TARGET)


def loaded_rows(loaded: list[Result], quiet: list[Result]) -> list[tuple[str, ...]]:
    return [(now.name, str(now.runs), f"{now.p50_ms:.2f}", f"{now.p99_ms:.2f}",
             f"{before.p99_ms:.2f}", f"{now.p99_ms / before.p99_ms:,.1f}x",
             verdict(now.p99_ms <= TARGET_P99_MS))
            for now, before in zip(loaded, quiet, strict=True)]


def writer_bodies() -> intake_writer.MakeBody:
    """Events of the kinds and people of the store (the allow-list aside), at any time."""
    maker = EventMaker(random.Random(SEED + 2), Population.make(random.Random(SEED)))
    kinds, shares = list(KIND_SHARES), list(KIND_SHARES.values())

    def make(rng: random.Random, when: datetime) -> dict:
        type_, event = rng.choices(kinds, shares)[0]
        return maker.body(when, type_, event)
    return make


def describe_writer(report: intake_writer.WriterReport) -> str:
    return (f"the intake wrote {report.rate:,.0f} events/s (asked {intake_writer.RATE}/s, "
            f"batches of {intake_writer.BATCH}): {report.messages:,} messages, "
            f"{report.stored:,} new events in {report.seconds:.0f} s, "
            f"{report.behind_batches:,} batches late; the counting job ran every "
            f"{intake_writer.COUNT_SECONDS:g} s beside it: {report.counting_runs} runs, the "
            f"longest {report.counting_max_ms:,.0f} ms")


# --- memory: the running bot -------------------------------------------------------------

MEMORY_COLUMNS = ("bot.py run, HTTP mode", "/voiso commands", "answered", "peak RSS MB",
                  f"target ≤ {TARGET_RSS_MB:g} MB")


def megabytes(kib: int) -> float:
    return kib * 1024 / 1e6


def memory_rows(memory: bot_memory.BotMemory) -> list[tuple[str, ...]]:
    return [(label, commands, answered, f"{megabytes(kib):,.0f}",
             verdict(megabytes(kib) <= TARGET_RSS_MB))
            for label, commands, answered, kib in (
                ("started", "0", "-", memory.started_kib),
                ("answering", str(memory.commands), str(memory.answered), memory.answered_kib))]


def alerted_on_every_event(path: str) -> None:
    """Move the delivery's cursor past every event, on the measured copy: the store's alerts
    stand for those its events raised, and the writer stood for the intake alone (in the
    bot the delivery keeps up as events come). Else the bot would start on a backlog of
    every event to alert on, which no bot that ran while they came has."""
    conn = voiso_store.connect(path)
    with voiso_store.transaction(conn):
        conn.execute("UPDATE cursors SET value = (SELECT coalesce(max(id), 0) FROM events) "
                     "WHERE name = ?", (outbox.ENQUEUE_CURSOR,))
    conn.close()


def bot_command_texts(every_argument: dict[str, list], count: int) -> list[str]:
    """``count`` commands, the answer table's kinds in turn, with its arguments."""
    texts = {name: command_texts(name, every_argument) for name in ANSWERS}
    names = list(ANSWERS)
    return [texts[names[i % len(names)]][(i // len(names)) % len(texts[names[i % len(names)]])]
            for i in range(count)]


# --- the store: built, or reused from an earlier run -------------------------------------

def store_bytes(path: str) -> int:
    """The store and its audit trail, each with its -wal."""
    return sum(os.path.getsize(p) for base in (path, voiso_store.audit_path(path))
               for p in (base, f"{base}-wal") if os.path.exists(p))


def events_in(path: str) -> int:
    """How many events a store built by this script holds (ids are 1..count), read-only."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    except sqlite3.Error as exc:
        raise SystemExit(f"--store {path}: not a store this script built ({exc})") from exc


def prepared_store(args: argparse.Namespace, directory: str) -> tuple[str, str]:
    """The store to measure, upgraded as the bot upgrades it; and how it came to be.

    With --store, an existing store is reused (built there first if missing) and copied
    to ``directory``: what the bench writes (audit rows, the intake's events, the bot's
    deliveries) goes to the copy, so every run starts from the same store."""
    path = args.store or str(Path(directory) / "bench.sqlite3")
    how = []
    if os.path.exists(path):
        if events_in(path) != args.events:
            raise SystemExit(f"--store {path} holds {events_in(path):,} events, not --events "
                             f"{args.events:,}: give the same --events, or another path")
        how.append(f"reused {path}")
    else:
        end = datetime.now(UTC).replace(microsecond=0)  # the data's present: now
        how.append(f"loaded at schema {LOADED_AT_VERSION} in "
                   f"{in_child(build_store, path, args.events, end):.0f} s")
    how.append(f"upgraded to {voiso_store.migrations()[-1][0]} and counted by the bot's "
               f"start-up in {in_child(upgrade_store, path):.1f} s")
    if args.store:
        copy = str(Path(directory) / "bench.sqlite3")
        seconds = timed_ms(lambda: [shutil.copyfile(f"{source}{end}", f"{target}{end}")
                                    for source, target in ((path, copy), (
                                        voiso_store.audit_path(path),
                                        voiso_store.audit_path(copy)))
                                    for end in ("", "-wal") if os.path.exists(f"{source}{end}")])
        how.append(f"copied in {seconds / 1000:.1f} s")
        path = copy
    return path, ", ".join(how)


def newest_event(conn: sqlite3.Connection) -> datetime:
    (newest,) = conn.execute("SELECT max(event_time) FROM events").fetchone()
    return datetime.fromisoformat(newest)


def describe_store(conn: sqlite3.Connection, trail: sqlite3.Connection, how: str,
                   present: Present) -> None:
    counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
              for table in ("events", "alerts", "rejected")}
    (counts["audit"],) = trail.execute("SELECT count(*) FROM audit").fetchone()
    (unacked,) = conn.execute("SELECT count(*) FROM alerts "
                              "WHERE state = 'sent' AND acked_by IS NULL").fetchone()
    busiest = conn.execute("SELECT count(*) FROM events WHERE user = 'agent0@acme.example'"
                           ).fetchone()[0]
    print(f"store: {counts['events']:,} events over {SPAN.days} days (the newest at "
          f"{time_text(present.newest)}), {counts['alerts']:,} alerts ({unacked:,} "
          f"unacknowledged), {counts['audit']:,} audit rows, {counts['rejected']:,} rejected; "
          f"the busiest user has {busiest:,} events; {how}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=positive_count, default=1_000_000,
                        help="events in the store (default 1000000)")
    parser.add_argument("--repeats", type=positive_count, default=200,
                        help="timed runs of each query, each with other arguments (default 200)")
    parser.add_argument("--scans", type=positive_count, default=5,
                        help="timed full scans of each question (default 5)")
    parser.add_argument("--bot-commands", type=positive_count, default=300,
                        help="/voiso commands sent to the running bot (default 300)")
    parser.add_argument("--dir", default=None, help="where the temporary store goes")
    parser.add_argument("--store", default=None, metavar="PATH",
                        help="reuse the store at PATH, built by an earlier run with the same "
                             "--events (built there if missing); the run measures a copy")
    parser.add_argument("--add-index", action="append", default=[], metavar="SQL",
                        help="a CREATE INDEX to try after the load (the migrations are not "
                             "changed); may be given more than once")
    return parser.parse_args()


@dataclass
class Measured:
    quiet: list[Result]
    quiet_answers: dict[str, Result]
    loaded: list[Result]
    loaded_answers: dict[str, Result]
    writer: intake_writer.WriterReport
    peak_indexed_mib: float


def measure_questions(store: Store, args: argparse.Namespace, how: str) -> tuple[Measured, dict]:
    """The quiet tables, then the same questions while the intake writes."""
    conn = store.connection()
    for sql in args.add_index:
        seconds = timed_ms(lambda s=sql: conn.execute(s)) / 1000
        print(f"added for this run only ({seconds:.1f} s): {sql}")
    present = Present(newest_event(conn))
    trail = store.audit.connection()
    describe_store(conn, trail, how, present)
    every_argument = arguments_for(conn, trail, random.Random(SEED + 1), args.repeats)
    cases = indexed_cases(present, trail)
    asking = random.Random(SEED + 3)
    answers = Commands(store, SlackRenderer(), AccessPolicy(
        AccessConfig(users=(BENCH_USER,)), lambda group: set()),
        clock=lambda: present.at(asked_after(asking)))
    progress("quiet: the queries")
    quiet = time_all_queries(conn, cases, every_argument)
    peak_indexed = peak_mib()  # before the scans, which hold many rows at once
    progress("quiet: the full scans")
    quiet = [time_scans(conn, result, cases[result.name], every_argument[result.name],
                        args.scans) for result in quiet]
    progress("quiet: the whole answers")
    quiet_answers = time_answers(answers, every_argument)
    progress("under load: the queries and the whole answers")
    since = time.monotonic()
    writer = intake_writer.IntakeWriter(store.path, present.newest, since, writer_bodies(),
                                        SEED + 4)
    writer.start()
    present.move(since)
    loaded = time_all_queries(conn, cases, every_argument, LOADED_ROW_SECONDS)
    loaded_answers = time_answers(answers, every_argument, LOADED_ROW_SECONDS)
    report = writer.stop()
    return Measured(quiet, quiet_answers, loaded, loaded_answers, report,
                    peak_indexed), every_argument


def print_report(measured: Measured, memory: bot_memory.BotMemory) -> None:
    print("\nEach question's query, quiet (nothing else writes):")
    print_table(COLUMNS, [table_row(result) for result in measured.quiet])
    print("\nThe whole /voiso answer, quiet:")
    print_table(ANSWER_COLUMNS, answer_rows(measured.quiet_answers, measured.quiet))
    print(f"\nUnder load: {describe_writer(measured.writer)}.")
    print_table(loaded_columns("query"), loaded_rows(measured.loaded, measured.quiet))
    print()
    print_table(loaded_columns("/voiso command"),
                loaded_rows(list(measured.loaded_answers.values()),
                            list(measured.quiet_answers.values())))
    print(f"\nMemory: the bot answering {memory.commands} /voiso commands, {bot_memory.IN_FLIGHT}"
          f" at a time, in {memory.seconds:.1f} s (VmHWM; now {megabytes(memory.current_kib):,.0f}"
          " MB resident):")
    print_table(MEMORY_COLUMNS, memory_rows(memory))


def main() -> int:
    started = time.perf_counter()
    args = arguments()
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-queries-", dir=args.dir) as directory:
        progress("the store")
        path, how = prepared_store(args, directory)
        loader = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        store = Store(path)  # the production pragmas, and its per-thread connection
        measured, every_argument = measure_questions(store, args, how)
        store.close()
        alerted_on_every_event(path)
        progress("memory: bot.py run answering /voiso commands")
        memory = bot_memory.measure(path, bot_command_texts(every_argument, args.bot_commands),
                                    args.dir, ALERT_CHANNELS)
        size = store_bytes(path)
    print_report(measured, memory)
    print(f"\nstore on disk: {size / 2**20:,.0f} MiB (the store and its audit trail, each with "
          f"its -wal); peak memory of this "
          f"process: {measured.peak_indexed_mib:,.0f} MiB after the indexed queries, "
          f"{peak_mib():,.0f} MiB after the full scans (the loader, a child process: "
          f"{loader:,.0f} MiB)")
    print(f"(ran {time.perf_counter() - started:.0f} s; full scan = the same question with "
          "every index disabled (NOT INDEXED), scan/p50 = how many times slower; loaded/quiet "
          "= p99 under load over quiet p99)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
