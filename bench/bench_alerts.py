"""Benchmark of Slack alerting under attack, through the real pipeline against a fake Slack.

A burst of events (default 5,000 for 200 users over 60 s of event time: a password
spray with unauthorized-IP logins mixed in) is stored as the intake stores it, in
batches of 10, paced over real time; the real delivery job runs beside it, as the
scheduler runs it, posting to a local fake Slack Web API over HTTP. Reported:

- Slack write calls per minute per channel (the most in any 60 s window; target <= 60),
- events accounted for in alerts: the counts the messages show, as last posted or
  updated, over the events stored (target 100 %),
- time from the first event stored to the first alert in Slack (target <= 2 s),
- render throughput, messages/s, against json.dumps of the same messages (a floor),
- "was this you?" ([confirm] on, every user known to the fake Slack): questions sent as DMs,
  and the most any one person got about one kind within one group window (target 1).

    python bench/bench_alerts.py [--events N] [--users U] [--feed-seconds S]
"""

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.slack_api import FakeSlack  # noqa: E402
from voisobot import config, events, samples  # noqa: E402
from voisobot.confirming import Confirmations  # noqa: E402
from voisobot.delivery import AlertDelivery  # noqa: E402
from voisobot.intake import Intake  # noqa: E402
from voisobot.outbox import Outbox  # noqa: E402
from voisobot.questions import Questions  # noqa: E402
from voisobot.render import AlertView  # noqa: E402
from voisobot.routing import severity_of  # noqa: E402
from voisobot.runtime import alert_outputs  # noqa: E402
from voisobot.slack import sender as slack  # noqa: E402
from voisobot.slack.people import SlackPeople  # noqa: E402
from voisobot.slack.render import SlackRenderer  # noqa: E402
from voisobot.store import Store  # noqa: E402

CHANNEL = "C0SECURITY"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench"
WRITES = ("chat.postMessage", "chat.update")
DRAIN_LIMIT_SECONDS = 180.0


def attack(n_events: int, n_users: int, span: timedelta, rng: random.Random) -> list[dict]:
    """SQS-shaped messages: mostly failed passwords across many accounts, some logins from
    unauthorized IPs, in event-time order over ``span``."""
    start = datetime.now(UTC)
    users = [f"agent{i:03d}@acme.example" for i in range(n_users)]
    attacker_ips = [f"198.51.100.{i}" for i in range(1, 21)]
    messages = []
    for i in range(n_events):
        moment = start + span * (i / n_events)
        if rng.random() < 0.8:
            body = samples.example("app_login/incorrect_password", now=moment)
            body["params"].update(user=rng.choice(users), count=str(rng.randint(4, 9)))
        else:
            body = samples.example("app_login/unauthorized_ip", now=moment)
            body["params"].update(user=rng.choice(users), ip=rng.choice(attacker_ips))
        body["params"]["attempt"] = i  # every body unique
        messages.append({"MessageId": f"m{i}", "ReceiptHandle": f"r{i}",
                         "Body": json.dumps(body), "Attributes": {}})
    return messages


class DeliveryLoop(threading.Thread):
    """A job (the delivery, the confirmations) on its own thread, run as often as the
    scheduler would run it."""

    def __init__(self, job):
        super().__init__(daemon=True)
        self.job, self.stopping = job, threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.stopping.wait(self.job.run_paced() if hasattr(self.job, "run_paced")
                               else self.job.run())


def feed(store: Store, cfg, messages: list[dict], seconds: float) -> float:
    """Store the messages in batches of 10, paced over ``seconds``; returns when the first
    batch was committed (time.monotonic())."""
    intake = Intake(None, cfg.sqs, store)
    batches = [messages[i:i + 10] for i in range(0, len(messages), 10)]
    started = time.monotonic()
    first_stored = None
    for index, batch in enumerate(batches):
        due = started + seconds * index / len(batches)
        time.sleep(max(0.0, due - time.monotonic()))
        intake.store_messages(batch)
        first_stored = first_stored or time.monotonic()
    return first_stored


def settled(store: Store, total: int) -> bool:
    conn = store.connection()
    (shown,) = conn.execute("SELECT coalesce(sum(shown_count), 0) FROM alerts "
                            "WHERE state = 'sent'").fetchone()
    return shown >= total


def all_asked(store: Store) -> bool:
    (waiting,) = store.connection().execute(
        "SELECT count(*) FROM questions WHERE state IN ('pending', 'uncertain')").fetchone()
    return waiting == 0


def questions_per_person_per_window(store: Store) -> int:
    """The most questions one person got about one kind whose windows overlap."""
    rows = store.connection().execute(
        "SELECT q.email, e.type || '/' || e.event AS kind, e.event_time, a.window_ends_at "
        "FROM questions q JOIN alerts a ON a.id = q.alert_id JOIN events e ON e.id = a.event_id "
        "WHERE q.state = 'asked' ORDER BY q.email, kind, e.event_time").fetchall()
    most, open_windows = 0, {}
    for email, kind, starts, ends in rows:
        windows = [end for end in open_windows.get((email, kind), []) if end > starts] + [ends]
        open_windows[(email, kind)] = windows
        most = max(most, len(windows))
    return most


def max_writes_per_minute(fake: FakeSlack) -> int:
    times = sorted(call.at for call in fake.calls
                   if call.method in WRITES and call.payload.get("channel") == CHANNEL)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 60.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def alerting_run(args) -> dict:
    rng = random.Random(20261124)
    messages = attack(args.events, args.users, timedelta(seconds=60), rng)
    people = {f"agent{i:03d}@acme.example": f"UAGENT{i:04d}" for i in range(args.users)}
    fake = FakeSlack(channels={CHANNEL}, people=people).start()
    with tempfile.TemporaryDirectory(prefix="voisobot-bench-") as tmp:
        cfg = config.from_dict({"sqs": {"queue_url": QUEUE_URL},
                                "store": {"path": "bench.sqlite3"},
                                "slack": {"default_channel": CHANNEL,
                                          "api_base_url": fake.base_url},
                                "confirm": {"enabled": True}}, base_dir=Path(tmp))
        store = Store(cfg.store_path)
        client = slack.make_client("xoxb-test", fake.base_url, timeout=5)
        renderer = SlackRenderer()
        outputs = alert_outputs(renderer, slack.SlackSender(client))
        loops = [DeliveryLoop(AlertDelivery(Outbox(store), outputs, cfg)),
                 DeliveryLoop(Confirmations(Questions(store), Outbox(store),
                                            SlackPeople(client, store, cfg.confirm), renderer,
                                            client, cfg))]
        for loop in loops:
            loop.start()
        first_stored = feed(store, cfg, messages, args.feed_seconds)
        deadline = time.monotonic() + DRAIN_LIMIT_SECONDS
        while not (settled(store, len(messages)) and all_asked(store)) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        for loop in loops:
            loop.stopping.set()
            loop.join(30)
        result = summarise(store, fake, len(messages), first_stored)
        store.close()
    fake.stop()
    return result


def summarise(store: Store, fake: FakeSlack, total: int, first_stored: float) -> dict:
    conn = store.connection()
    (shown,) = conn.execute("SELECT coalesce(sum(shown_count), 0) FROM alerts").fetchone()
    (alerts,) = conn.execute("SELECT count(*) FROM alerts").fetchone()
    posts = [c for c in fake.calls if c.method == "chat.postMessage"
             and c.payload.get("channel") == CHANNEL]
    dms = [c for c in fake.calls if c.method == "chat.postMessage"
           and str(c.payload.get("channel", "")).startswith("D")]
    first_alert = min((c.at for c in posts), default=float("nan"))
    return {"events": total, "alerts": alerts, "shown": shown,
            "posts": sum(1 for c in posts if not c.payload.get("thread_ts")),
            "replies": sum(1 for c in posts if c.payload.get("thread_ts")),
            "updates": len(fake.calls_to("chat.update")),
            "max_writes_per_minute": max_writes_per_minute(fake),
            "first_alert_seconds": first_alert - first_stored,
            "span_seconds": max((c.at for c in fake.calls), default=first_stored) - first_stored,
            "dms": len(dms), "people_asked": len({c.payload.get("channel") for c in dms}),
            "per_person_window": questions_per_person_per_window(store)}


def render_run(n: int) -> tuple[float, float]:
    """Messages/s for the renderer and for json.dumps of the same messages."""
    renderer = SlackRenderer()
    views = []
    for i in range(n):
        kind = list(samples.EXAMPLES)[i % len(samples.EXAMPLES)]
        event = events.parse(json.dumps(samples.example(kind)).encode())
        views.append(AlertView(event, severity_of(event, {}), alert_id=i,
                               context=("First time IP 8.8.8.8 is seen for foo@bar.com",)))
    started = time.perf_counter()
    rendered = [renderer.render(view) for view in views]
    render_rate = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for message in rendered:
        json.loads(json.dumps(message))
    return render_rate, n / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--feed-seconds", type=float, default=60.0,
                        help="real time over which the burst is stored")
    parser.add_argument("--renders", type=int, default=2000)
    args = parser.parse_args()
    print(f"burst: {args.events:,} events, {args.users} users, 60 s of event time stored over "
          f"{args.feed_seconds:g} s; one channel; defaults of config.toml", flush=True)
    r = alerting_run(args)
    render_rate, json_rate = render_run(args.renders)
    rows = [
        ("Slack writes/min/channel (max 60 s window)", f"{r['max_writes_per_minute']}", "<= 60",
         r["max_writes_per_minute"] <= 60),
        ("events accounted for in alerts", f"{100 * r['shown'] / r['events']:.1f} %", "100 %",
         r["shown"] == r["events"]),
        ("first event stored -> first alert in Slack", f"{r['first_alert_seconds']:.2f} s",
         "<= 2 s", r["first_alert_seconds"] <= 2.0),
        ('"was this you?" DMs per person per kind per window', f"{r['per_person_window']}",
         "<= 1", r["per_person_window"] <= 1),
        ("render throughput", f"{render_rate:,.0f} msg/s", "", True),
        ("  json.dumps+loads of the same (floor)", f"{json_rate:,.0f} msg/s",
         f"ratio {render_rate / json_rate:.3f}", True),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"\n{'metric':<{width}}  {'measured':>16}  {'target':>12}  ok")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>16}  {target:>12}  {'ok' if ok else 'MISSED'}")
    print(f"\n{r['alerts']} alert(s): {r['posts']} message(s) posted, {r['updates']} in-place "
          f"update(s), {r['replies']} thread reply(ies); all writes within "
          f"{r['span_seconds']:.0f} s of the first event; {r['dms']} \"was this you?\" "
          f"DM(s) to {r['people_asked']} people")
    return 0


if __name__ == "__main__":
    sys.exit(main())
