"""``bot.py demo``: the whole intake on embedded defaults, with no AWS account and no config.

An SQS server (moto) runs inside this process on 127.0.0.1 under dummy credentials;
a traffic thread plays Voiso, sending a realistic mix of security events and a few
broken messages; the real intake stores them in SQLite; the console shows the
store, refreshed every second. The operations listener (/healthz, /readyz, /metrics)
serves on a free port of 127.0.0.1, whose URLs the console shows.
"""

import collections
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.config
from moto.server import ThreadedMotoServer

from voisobot import config, samples
from voisobot.config import Config
from voisobot.intake import Intake, utc_now
from voisobot.outbox import Outbox
from voisobot.sending import SendResult
from voisobot.slack.console import message_lines

log = logging.getLogger(__name__)

REGION = "us-east-1"
QUEUE_NAME = "voiso-security-demo"
DEAD_LETTER_QUEUE_NAME = "voiso-security-demo-dlq"
MAX_RECEIVE_COUNT = 5
REFRESH_SECONDS = 1.0
TRAFFIC_TICK_SECONDS = 1.0
SEND_BATCH_SIZE = 10  # SendMessageBatch's limit
STOP_TIMEOUT_SECONDS = 10.0
ALERT_LINE_LIMIT = 160

# The demo must never present a user's real AWS identity, not even to a local server.
_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/voisobot-demo",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/voisobot-demo",
}
_REAL_AWS_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
_NO_PROXY = ("NO_PROXY", "no_proxy")

CALLCENTER = "acme"
AGENTS = tuple(f"{name}@acme.example" for name in (
    "maria.lopez", "james.chen", "aisha.khan", "tom.novak",
    "sofia.rossi", "li.wei", "omar.haddad", "eva.berg"))
ADMIN = "it.admin@acme.example"
# Documentation ranges (RFC 5737, RFC 3849): they look public and belong to nobody.
OFFICE_IPS = ("203.0.113.10", "203.0.113.24", "203.0.113.57")
OUTSIDE_IPS = ("198.51.100.23", "192.0.2.200", "198.51.100.181", "2001:db8::6:66")
# Typed at the login form by an attacker: the store keeps them exactly as received.
HOSTILE_NAMES = (
    "<!channel> <https://evil.example|Voiso login>",
    "root\x1b[2J\x1b[32m all systems normal \x1b[0m",
    "admin'); DROP TABLE events;--",
)


CONSOLE_CHANNEL = "C0CONSOLE1"  # where alerts "go" when the demo has no Slack token


class ConsoleSender:
    """Takes alerts in place of Slack when no token is set: the live view shows them, the
    latest as Slack would lay it out, and how many posts grouping saved."""

    def __init__(self, keep: int = 6):
        self.latest: collections.deque[tuple[str, str]] = collections.deque(maxlen=keep)
        self.latest_view: tuple[str, ...] = ()  # the latest message, as lines of text
        self.counts = {"posts": 0, "updates": 0, "replies": 0}

    def post(self, channel: str, message: dict, alert: object | None, *,
             thread_ts: str | None = None) -> SendResult:
        self._show(f"{channel} (thread)" if thread_ts else channel, message,
                   "replies" if thread_ts else "posts")
        return SendResult("done", channel, ts=f"{time.time():.6f}")

    def update(self, channel: str, ts: str, message: dict) -> SendResult:
        self._show(f"{channel} (updated)", message, "updates")
        return SendResult("done", channel, ts=ts)

    def find(self, channel: str, alert: object, oldest_ts: float) -> SendResult:
        return SendResult("done", channel, ts=None)  # nothing is ever half-posted here

    def _show(self, where: str, message: dict, count: str) -> None:
        self.latest.appendleft((where, message["text"]))
        self.latest_view = (f"{where}:", *(f"  {line}" for line in message_lines(message)))
        self.counts[count] += 1

    def grouping_text(self) -> str:
        """What grouping did, in a line, once it did anything."""
        posts, updates, replies = (self.counts[key] for key in ("posts", "updates", "replies"))
        if not updates and not replies:
            return ""
        return (f"grouping: {posts} alerts posted; related events joined an alert already "
                f"posted instead of making a new one: its message was updated in place "
                f"{updates} times (its count of events grows) and {replies} of them went "
                "under it as thread replies")


@contextlib.contextmanager
def embedded_queue(store_path: Path | None, slack_channel: str | None = None,
                   teams: bool = False) -> Iterator[Config]:
    """An SQS server on 127.0.0.1 with the demo's queues, and a Config that points at it.
    Alerts go to ``slack_channel`` (when posting to real Slack) or to the console, and with
    ``teams`` also to the Teams channel whose webhook URL is in TEAMS_URL_VARIABLE."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_dummy_aws_credentials())
        endpoint_url = stack.enter_context(_sqs_server())
        queue_url = _create_queues(_sqs_client(endpoint_url, REGION))
        if store_path is None:
            temp = stack.enter_context(tempfile.TemporaryDirectory(
                prefix="voisobot-demo-", ignore_cleanup_errors=True))
            store_path = Path(temp) / "demo.sqlite3"
        yield _demo_config(queue_url, endpoint_url, store_path, slack_channel, teams)


@contextlib.contextmanager
def _dummy_aws_credentials() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in (*_DUMMY_AWS_ENV, *_REAL_AWS_ENV, *_NO_PROXY)}
    for key in _REAL_AWS_ENV:
        os.environ.pop(key, None)
    os.environ.update(_DUMMY_AWS_ENV)
    for key in _NO_PROXY:  # a configured HTTP proxy would otherwise get the local traffic
        os.environ[key] = ",".join(filter(None, (saved[key], "127.0.0.1")))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _sqs_server() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _sqs_client(endpoint_url: str, region: str):
    # Short timeouts and a single attempt, so that a stop never waits on a slow send.
    return boto3.session.Session().client(
        "sqs", endpoint_url=endpoint_url, region_name=region,
        config=botocore.config.Config(connect_timeout=2, read_timeout=5,
                                      retries={"mode": "standard", "total_max_attempts": 1}))


def _create_queues(client) -> str:
    """A standard queue with a dead-letter queue behind it, as recommended for real AWS."""
    dead_letter_url = client.create_queue(QueueName=DEAD_LETTER_QUEUE_NAME)["QueueUrl"]
    dead_letter_arn = client.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dead_letter_arn,
                          "maxReceiveCount": MAX_RECEIVE_COUNT})
    return client.create_queue(QueueName=QUEUE_NAME,
                               Attributes={"RedrivePolicy": redrive})["QueueUrl"]


TEAMS_URL_VARIABLE = "VOISO_DEMO_TEAMS_URL"  # a Teams Workflows webhook for the demo's cards


def _demo_config(queue_url: str, endpoint_url: str, store_path: Path,
                 slack_channel: str | None, teams: bool = False) -> Config:
    sqs = {"queue_url": queue_url, "endpoint_url": endpoint_url, "region": REGION,
           "wait_time_seconds": 1, "poll_interval_seconds": 0.2,
           "backoff_initial_seconds": 0.2, "backoff_max_seconds": 2.0,
           "request_timeout_seconds": 5.0}
    # Ordinary logins arrive every second: stored, not posted, as a team would configure it.
    routes = [{"event": "successful_login", "mute": True}]
    # In real Slack, anyone in the demo's channel may use /voiso and the buttons there.
    access = {"channels": [slack_channel]} if slack_channel else {}
    cards = {"default_destination": "demo", "destinations": {
        "demo": {"webhook_url_env": TEAMS_URL_VARIABLE}}} if teams else {}
    return config.from_dict({"sqs": sqs, "store": {"path": str(store_path)}, "routes": routes,
                             "slack": {"default_channel": slack_channel or CONSOLE_CHANNEL},
                             "access": access, "teams": cards,
                             "ops": {"host": "127.0.0.1", "port": 0}},  # never a busy port
                            base_dir=Path("."), source="demo")


def run(runtime, seconds: float | None, console: ConsoleSender | None = None) -> int:
    """Send traffic, run the intake and show the store live until Ctrl-C, SIGTERM or
    ``seconds``; then stop cleanly and print a final summary. ``console`` is the sender
    standing in for Slack, if any: the view shows its latest alerts."""
    stop = threading.Event()
    print(_introduction(runtime.config, seconds), flush=True)
    traffic = _TrafficThread(runtime.config.sqs, stop)
    with _stop_on_sigterm(stop):
        try:
            traffic.start()
            runtime.start()
            print(ops_text(runtime.ops.url), flush=True)
            _show_live(runtime, stop, seconds, console)
        except KeyboardInterrupt:
            pass  # Ctrl-C is the ordinary way to end the demo, not an error
        finally:
            stop.set()
            traffic.join(STOP_TIMEOUT_SECONDS)
            runtime.stop()
    print(_final_summary(runtime.store), flush=True)
    runtime.store.close()
    return 0


def ops_text(url: str) -> str:
    return f"health and metrics: {url}/healthz  {url}/readyz  {url}/metrics"


def _introduction(cfg: Config, seconds: float | None) -> str:
    timed = f" (or wait {seconds:g} s)" if seconds is not None else ""
    return (f"Voiso bot demo: fake Voiso traffic -> an SQS server on {cfg.sqs.endpoint_url} "
            f"(moto, dummy credentials) -> the bot's intake -> {cfg.store_path}. "
            f"Press Ctrl-C to stop{timed}.")


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install signal handlers
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


class _TrafficThread(threading.Thread):
    """Plays Voiso: sends the traffic to the queue with its own client until ``stop`` is set."""

    def __init__(self, sqs_config, stop: threading.Event):
        super().__init__(name="demo-traffic", daemon=True)
        self.client = _sqs_client(sqs_config.endpoint_url, sqs_config.region)
        self.queue_url = sqs_config.queue_url
        self.stopping = stop
        self.traffic = _VoisoTraffic(random.Random())

    def run(self) -> None:
        self.send(self.traffic.first_wave())
        while not self.stopping.wait(TRAFFIC_TICK_SECONDS):
            self.send(self.traffic.next_tick())

    def send(self, bodies: list[str]) -> None:
        for start in range(0, len(bodies), SEND_BATCH_SIZE):
            if self.stopping.is_set():
                return
            entries = [{"Id": str(i), "MessageBody": body}
                       for i, body in enumerate(bodies[start:start + SEND_BATCH_SIZE])]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url,
                                                          Entries=entries)
            except Exception as exc:  # the demo goes on; the live view shows what arrived
                log.debug("demo traffic: send failed: %s", exc)
                continue
            for failed in response.get("Failed", []):
                log.debug("demo traffic: SQS refused a message: %s", failed)


class _VoisoTraffic:
    """Message bodies as Voiso sends them, stamped with the current time."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.last_time: datetime | None = None
        self.last_login: str | None = None
        self.incidents: list[Callable[[], list[str]]] = []
        self.cycles = 0

    def first_wave(self) -> list[str]:
        """The vendor's example of each documented kind, so that even a short run shows all."""
        return [samples.body_text({**samples.example(kind), "timestamp": self.stamp()})
                for kind in samples.EXAMPLES]

    def next_tick(self) -> list[str]:
        """A few ordinary logins and one incident; the first round of incidents in a fixed
        order, so a short run sees the interesting ones early."""
        if not self.incidents:
            self.incidents = self.incident_round()
        logins = self.ordinary_logins()
        return logins + self.incidents.pop(0)()

    def incident_round(self) -> list[Callable[[], list[str]]]:
        incidents = [self.password_burst, self.malformed, self.unknown_kind,
                     self.unauthorized_logins, self.privilege_escalation, self.allow_list_edits,
                     self.user_lifecycle, self.ip_change, self.producer_resend]
        if self.cycles:
            self.rng.shuffle(incidents)
        self.cycles += 1
        return incidents

    def stamp(self) -> str:
        """Now, but at least a centisecond (Voiso's precision) after the previous stamp, so
        that no two bodies are equal by accident."""
        now = datetime.now(UTC)
        if self.last_time is not None:
            now = max(now, self.last_time + timedelta(milliseconds=10))
        self.last_time = now
        return samples.voiso_timestamp(now)

    def body(self, type_: str, event: str, **params: str) -> str:
        return samples.body_text({"timestamp": self.stamp(), "type": type_, "event": event,
                                  "callcenter": CALLCENTER, "params": params})

    def ordinary_logins(self) -> list[str]:
        agents = self.rng.sample(AGENTS, self.rng.randint(1, 3))
        bodies = [self.body("app_login", "successful_login", user=agent, access_group="agent")
                  for agent in agents]
        self.last_login = bodies[-1]
        return bodies

    def password_burst(self) -> list[str]:
        """One attacker guessing passwords across accounts, including a hostile name."""
        targets = [*self.rng.sample(AGENTS, 3), ADMIN, HOSTILE_NAMES[0]]
        return [self.body("app_login", "incorrect_password", user=user,
                          access_group="admin" if user == ADMIN else "agent",
                          count=str(self.rng.randint(4, 9)))
                for user in targets]

    def unauthorized_logins(self) -> list[str]:
        users = [*self.rng.sample(AGENTS, 2), *HOSTILE_NAMES[1:]]
        return [self.body("app_login", "unauthorized_ip", user=user, access_group="agent",
                          ip=self.rng.choice(OUTSIDE_IPS))
                for user in users]

    def ip_change(self) -> list[str]:
        return [self.body("app_login", "ip_changed", user=self.rng.choice(AGENTS),
                          access_group="agent", **{"from": self.rng.choice(OFFICE_IPS),
                                                   "to": self.rng.choice(OUTSIDE_IPS)})]

    def privilege_escalation(self) -> list[str]:
        return [self.body("user", "privileges_updated", who=ADMIN, user=self.rng.choice(AGENTS),
                          **{"from": "agent", "to": "admin"})]

    def allow_list_edits(self) -> list[str]:
        office = f"{self.rng.choice(OFFICE_IPS)}/32"
        return [
            self.body("allowed_ip", "ip_added", who=ADMIN, access_group="agent", ip=office),
            self.body("allowed_ip", "ip_changed", who=ADMIN, access_group="agent",
                      **{"from": office, "to": "203.0.113.64/28"}),
            self.body("allowed_ip", "ip_removed", who=ADMIN, access_group="supervisor",
                      ip="198.51.100.0/24"),
        ]

    def user_lifecycle(self) -> list[str]:
        """A hire gets an account and sets a password; a leaver is removed, then tries to log in."""
        hire = f"new.hire{self.cycles}@acme.example"
        leaver = f"former.agent{self.cycles}@acme.example"
        return [
            self.body("user", "user_added", who=ADMIN, user=hire, access_group="agent"),
            self.body("user", "password_changed", who=hire, user=hire, access_group="agent"),
            self.body("user", "user_deleted", who=ADMIN, user=leaver, access_group="agent"),
            self.body("app_login", "deleted_user", user=leaver, access_group="agent"),
        ]

    def unknown_kind(self) -> list[str]:
        """A kind Voiso may add without notice: it must be stored all the same."""
        return [self.body("app_login", "mfa_failed", user=self.rng.choice(AGENTS),
                          access_group="agent", ip=self.rng.choice(OUTSIDE_IPS))]

    def malformed(self) -> list[str]:
        """Messages the intake must keep in the rejected table, each with its reason."""
        login = {"type": "app_login", "event": "unauthorized_ip", "callcenter": CALLCENTER}
        params = {"user": self.rng.choice(AGENTS), "access_group": "agent"}
        return [
            self.body("app_login", "successful_login", **params)[:-20],  # cut off: not JSON
            json.dumps({**login, "params": {**params, "ip": "8.8.8.8"}}),  # no timestamp
            json.dumps({"timestamp": self.stamp(), **login,
                        "params": {**params, "ip": "300.12.7.1"}}),
            json.dumps({"timestamp": self.stamp(), **login, "params": "user=maria.lopez"}),
        ]

    def producer_resend(self) -> list[str]:
        """Voiso sending the same event twice: stored once, counted as a duplicate."""
        return [self.last_login] if self.last_login else []


@dataclass(frozen=True)
class _Snapshot:
    totals: dict[str, int]
    kinds: dict[str, int]
    events: list
    rejections: list
    intake: str
    alerts: str
    latest_alerts: tuple[tuple[str, str], ...]
    ops_url: str = ""
    latest_view: tuple[str, ...] = ()  # the latest alert as Slack would lay it out
    grouping: str = ""


def _show_live(runtime, stop: threading.Event, seconds: float | None,
               console: ConsoleSender | None) -> None:
    show = _redraw if sys.stdout.isatty() else _BlockPrinter().show
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        show(_snapshot(runtime, console), elapsed)
        wait = REFRESH_SECONDS if seconds is None else min(REFRESH_SECONDS, seconds - elapsed)
        if wait <= 0 or stop.wait(wait):
            return


def _snapshot(runtime, console: ConsoleSender | None) -> _Snapshot:
    store = runtime.store
    return _Snapshot(store.totals(), store.counts_by_kind(), store.latest_events(8),
                     store.latest_rejections(5), _intake_state(runtime.intake),
                     _alerts_text(Outbox(store).counts(), console),
                     tuple(console.latest) if console else (), runtime.ops.url or "",
                     console.latest_view if console else (),
                     console.grouping_text() if console else "")


def _alerts_text(counts: dict[str, int], console: ConsoleSender | None) -> str:
    where = "the console (set SLACK_BOT_TOKEN to post to Slack)" if console else "Slack"
    return (f"alerts to {where}: sent {counts['sent']}, waiting "
            f"{counts['pending'] + counts['uncertain']}, failed {counts['failed']}")


def _intake_state(intake: Intake) -> str:
    problem = intake.backoff.problem
    if problem is not None:
        return f"PROBLEM ({problem.kind}): {_console_text(problem, 160)}"
    if intake.health.last_successful_poll is None:
        return "waiting for the first poll"
    age = (utc_now() - intake.health.last_successful_poll).total_seconds()
    return f"ok, last successful poll {age:.1f} s ago"


def _redraw(snapshot: _Snapshot, elapsed: float) -> None:
    width = shutil.get_terminal_size().columns
    lines = [line[:width] for line in _screen(snapshot, elapsed)]
    sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
    sys.stdout.flush()


def _screen(snapshot: _Snapshot, elapsed: float) -> list[str]:
    lines = [f"Voiso bot demo, {elapsed:.0f} s: fake Voiso traffic -> SQS (moto) -> intake -> "
             "SQLite. Press Ctrl-C to stop.", ops_text(snapshot.ops_url),
             f"intake: {snapshot.intake}", _totals_text(snapshot.totals), snapshot.alerts,
             "", "events by kind:"]
    lines += [f"  {kind:<40} {count:>6}" for kind, count in _kind_rows(snapshot.kinds)]
    lines += ["", "latest events (UTC):"] + [f"  {_event_text(row)}" for row in snapshot.events]
    lines += ["", "latest rejections (UTC):"]
    lines += [f"  {_rejection_text(row)}" for row in snapshot.rejections]
    if snapshot.latest_alerts:
        lines += ["", "latest alerts (Slack's notification text):"]
        lines += [f"  {channel}  {_console_text(text, 110)}"
                  for channel, text in snapshot.latest_alerts]
    return lines + _alert_view_lines(snapshot)


def _alert_view_lines(snapshot: _Snapshot) -> list[str]:
    """The latest alert as Slack would show it, and what grouping did."""
    if not snapshot.latest_view:
        return []
    lines = ["", "the latest alert, as Slack would show it:"]
    lines += [_console_text(line, ALERT_LINE_LIMIT) for line in snapshot.latest_view]
    return lines + ([snapshot.grouping] if snapshot.grouping else [])


class _BlockPrinter:
    """Without a terminal, one compact block per refresh that logs and tests can read; the
    latest alert's layout only when it changed."""

    def __init__(self):
        self.shown_view: tuple[str, ...] = ()

    def show(self, snapshot: _Snapshot, elapsed: float) -> None:
        kinds = ", ".join(f"{kind} {count}" for kind, count in _kind_rows(snapshot.kinds))
        lines = [f"[demo {elapsed:.0f} s] {_totals_text(snapshot.totals)}; "
                 f"intake: {snapshot.intake}", f"  kinds: {kinds}"]
        if snapshot.events:
            lines.append(f"  latest event: {_event_text(snapshot.events[0])}")
        if snapshot.rejections:
            lines.append(f"  latest rejection: {_rejection_text(snapshot.rejections[0])}")
        lines.append(f"  {snapshot.alerts}")
        if snapshot.latest_alerts:
            lines.append(f"  latest alert: {_console_text(snapshot.latest_alerts[0][1], 110)}")
        if snapshot.latest_view != self.shown_view:
            self.shown_view = snapshot.latest_view
            lines += [f"  {line}" for line in _alert_view_lines(snapshot)[1:]]
        print("\n".join(lines), flush=True)


def _totals_text(totals: dict[str, int]) -> str:
    return (f"stored {totals['events']}, duplicates {totals['duplicates']}, "
            f"rejected {totals['rejected']}")


def _kind_rows(kinds: dict[str, int]) -> list[tuple[str, int]]:
    """Every documented kind, even at zero, then the unknown kinds that arrived."""
    rows = [(kind, kinds.get(kind, 0)) for kind in samples.EXAMPLES]
    return rows + [(f"{_console_text(kind)} (unknown kind)", count)
                   for kind, count in kinds.items() if kind not in samples.EXAMPLES]


def _event_text(row) -> str:
    kind = _console_text(f"{row['type']}/{row['event']}", 32)
    line = f"{row['event_time'][11:22]}  {kind:<32}  {_actor_text(row):<50}  {_details_text(row)}"
    return line.rstrip()


def _actor_text(row) -> str:
    user, who = row["user"], row["who"]
    if user is not None and who is not None and user != who:
        return f"{_console_text(user, 26)} (by {_console_text(who, 18)})"
    return _console_text(user if user is not None else who or "-", 50)


def _details_text(row) -> str:
    parts = []
    if row["ip"]:
        parts.append(_console_text(row["ip"], 43))
    if row["from_value"] is not None or row["to_value"] is not None:
        parts.append(f"{_console_text(row['from_value'] or '?', 20)} -> "
                     f"{_console_text(row['to_value'] or '?', 20)}")
    if row["count"] is not None:
        parts.append(f"{row['count']} wrong passwords")
    return "  ".join(parts)


def _rejection_text(row) -> str:
    return f"{row['received_at'][11:19]}  {_console_text(row['reason'], 100)}"


def _console_text(value, limit: int = 40) -> str:
    """Untrusted text made safe to print: control and formatting characters (escape
    sequences, bidi overrides, newlines) shown escaped, long text cut, and anything the
    console cannot encode escaped rather than crashing the view."""
    text = "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
                   for char in str(value))
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)


def _final_summary(store) -> str:
    totals, kinds = store.totals(), store.counts_by_kind()
    documented = sum(kind in samples.EXAMPLES for kind in kinds)
    return (f"demo stopped: stored {totals['events']} events of {len(kinds)} kinds, "
            f"{totals['duplicates']} duplicates, {totals['rejected']} rejected "
            f"({documented} of the {len(samples.EXAMPLES)} documented kinds, "
            f"{len(kinds) - documented} unknown)")
