"""Benchmark of Slack alerting, through the real pipeline against a fake Slack.

A trickle first: events committed one batch at a time, spaced over real time, each the
first of its group; the real scheduler's jobs post them to a local fake Slack Web API over
HTTP. Reported: from each commit to the fake's receipt of its chat.postMessage, p50 and
p99, with the jobs woken by the commit (the bot) and with the delivery's 0.5 s poll alone
(the design before it), in the same run (target p50 <= 100 ms).

Then a storm: a burst of events (default 5,000 for 200 users over 60 s of event time: a
password spray with unauthorized-IP logins mixed in) is stored as the intake stores it, in
batches of 10, paced over real time; the scheduler's delivery and "was this you?" jobs run
beside it, woken as in the bot. Reported:

- Slack write calls per minute per channel (the most in any 60 s window; target <= 60),
- events accounted for in alerts: the counts the messages show, as last posted or
  updated, over the events stored (target 100 %),
- time from the first event stored to the first alert in Slack (target <= 2 s),
- render throughput, messages/s, against json.dumps of the same messages (a floor),
- "was this you?" ([confirm] on, every user known to the fake Slack): questions sent as DMs,
  and the most any one person got about one kind within one group window (target 1).

    python bench/bench_alerts.py [--events N] [--users U] [--feed-seconds S]
                                 [--trickle N] [--gap MIN MAX]
"""

import argparse
import json
import math
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from report import print_table  # noqa: E402  (bench/report.py)

from tests.fakes.slack_api import FakeSlack  # noqa: E402
from voisobot import config, events, jobs, samples  # noqa: E402
from voisobot.confirming import Confirmations  # noqa: E402
from voisobot.delivery import AlertDelivery  # noqa: E402
from voisobot.intake import Intake, utc_now  # noqa: E402
from voisobot.outbox import Outbox  # noqa: E402
from voisobot.questions import Questions  # noqa: E402
from voisobot.render import AlertView  # noqa: E402
from voisobot.routing import severity_of  # noqa: E402
from voisobot.runtime import alert_outputs, compile_alert_templates  # noqa: E402
from voisobot.slack import sender as slack  # noqa: E402
from voisobot.slack.asking import SlackAsking  # noqa: E402
from voisobot.slack.people import SlackPeople  # noqa: E402
from voisobot.slack.render import SlackRenderer  # noqa: E402
from voisobot.store import Store  # noqa: E402
from voisobot.teams.asking import TeamsAsking  # noqa: E402

CHANNEL = "C0SECURITY"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench"
WRITES = ("chat.postMessage", "chat.update")
DRAIN_LIMIT_SECONDS = 180.0
TRICKLE_CHANNELS = 4  # round robin: each channel's events come further apart than its pace
TRICKLE_TARGET_SECONDS = 0.100


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


def start_jobs(store: Store, cfg, delivery: AlertDelivery, renderer: SlackRenderer,
               confirmations=None, *, wake: bool = True):
    """The bot's scheduler with its jobs, but no SQS intake: the benchmark commits as the
    intake would. The templates are compiled first, as the bot does at start. Returns
    (scheduler, gate); stop with stop_jobs."""
    compile_alert_templates(renderer)
    gate = jobs.StopGate()
    scheduler = jobs.build_scheduler(Intake(None, cfg.sqs, store), store, retention_days=90,
                                     prune_interval_minutes=60, gate=gate, delivery=delivery,
                                     confirmations=confirmations, wake_on_commit=wake)
    scheduler.remove_job(jobs.INTAKE_JOB)
    scheduler.start()
    return scheduler, gate


def stop_jobs(scheduler, gate: jobs.StopGate) -> None:
    """As the bot stops (runtime.Runtime.stop): close the gate, then shut down."""
    gate.close(30)
    scheduler.shutdown(wait=False)


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
        running = start_jobs(store, cfg, AlertDelivery(Outbox(store), outputs, cfg), renderer,
                             Confirmations(Questions(store), Outbox(store), (
                                 SlackAsking(Questions(store), renderer, client,
                                             SlackPeople(client, store, cfg.confirm),
                                             store.store_id, utc_now),
                                 TeamsAsking()), cfg))
        first_stored = feed(store, cfg, messages, args.feed_seconds)
        deadline = time.monotonic() + DRAIN_LIMIT_SECONDS
        while not (settled(store, len(messages)) and all_asked(store)) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        stop_jobs(*running)
        result = summarise(store, fake, len(messages), first_stored)
        store.close()
    fake.stop()
    return result


def trickle_message(n: int) -> dict:
    """The n-th event of the trickle: a group of its own (its own user), on channel n % 4;
    the kinds take turns, so that no channel has slack.storm_threshold groups of one kind
    open (their events would join one storm message instead of each being posted)."""
    kind = list(samples.EXAMPLES)[n // TRICKLE_CHANNELS % len(samples.EXAMPLES)]
    body = samples.example(kind, now=datetime.now(UTC))
    for field in ("user", "who"):
        if field in body["params"]:
            body["params"][field] = f"trickle{n:04d}@acme.example"
    body["callcenter"] = f"cc{n % TRICKLE_CHANNELS}"
    return {"MessageId": f"t{n}", "ReceiptHandle": f"r{n}", "Body": json.dumps(body),
            "Attributes": {}}


def trickle_run(n_events: int, gap: tuple[float, float], *, wake: bool) -> list[float]:
    """Seconds from each event's commit to the fake Slack's receipt of its alert."""
    channels = [f"C0TRICKLE{i}" for i in range(TRICKLE_CHANNELS)]
    fake = FakeSlack(channels=set(channels)).start()
    rng = random.Random(20261201)
    with tempfile.TemporaryDirectory(prefix="voisobot-bench-") as tmp:
        cfg = config.from_dict({
            "sqs": {"queue_url": QUEUE_URL}, "store": {"path": "bench.sqlite3"},
            "slack": {"default_channel": channels[0], "api_base_url": fake.base_url},
            "routes": [{"callcenter": f"cc{i}", "channel": channel}
                       for i, channel in enumerate(channels)]}, base_dir=Path(tmp))
        store = Store(cfg.store_path)
        committed: list[float] = []
        store.add_commit_listener(lambda: committed.append(time.monotonic()))  # before the
        client = slack.make_client("xoxb-test", fake.base_url, timeout=5)  # jobs' wakes
        renderer = SlackRenderer()
        delivery = AlertDelivery(Outbox(store), alert_outputs(
            renderer, slack.SlackSender(client)), cfg)
        running = start_jobs(store, cfg, delivery, renderer, wake=wake)
        intake = Intake(None, cfg.sqs, store)
        time.sleep(1.0)  # the jobs' first runs (at start) are over
        for n in range(n_events):
            time.sleep(rng.uniform(*gap))
            intake.store_messages([trickle_message(n)])
        deadline = time.monotonic() + 30
        while len(alert_posts(fake, channels)) < n_events and time.monotonic() < deadline:
            time.sleep(0.1)
        stop_jobs(*running)
        store.close()
    fake.stop()
    posts = alert_posts(fake, channels)
    return [posts[n].at - committed[n] for n in range(n_events) if n in posts]


def alert_posts(fake: FakeSlack, channels: list[str]) -> dict:
    """Event number -> the fake's record of its alert's chat.postMessage: channel k's alerts
    are events k, k + 4, … in order."""
    found = {}
    for k, channel in enumerate(channels):
        calls = [c for c in fake.calls if c.method == "chat.postMessage"
                 and c.payload.get("channel") == channel and not c.payload.get("thread_ts")]
        found.update({k + TRICKLE_CHANNELS * i: call for i, call in enumerate(calls)})
    return found


def percentile(values: list[float], p: float) -> float:
    """Nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def print_trickle(args) -> None:
    low, high = args.gap
    print(f"trickle: {args.trickle} events, one batch each, {low:g}-{high:g} s apart, each the "
          f"first of its group, round robin over {TRICKLE_CHANNELS} channels", flush=True)
    woken = trickle_run(args.trickle, (low, high), wake=True)
    polled = trickle_run(args.trickle, (low, high), wake=False)
    target = TRICKLE_TARGET_SECONDS
    rows = []
    for name, latencies in (("woken on commit (the bot)", woken),
                            ("polled every 0.5 s (before)", polled)):
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        rows.append((name, f"{len(latencies)}/{args.trickle}", f"{p50 * 1000:.1f} ms",
                     f"{p99 * 1000:.1f} ms",
                     "ok" if p50 <= target and len(latencies) == args.trickle else "MISSED"))
    print()
    print_table(("commit -> chat.postMessage", "posted", "p50", "p99",
                 f"target p50 <= {target * 1000:.0f} ms"), rows)
    ratio = percentile(polled, 50) / percentile(woken, 50)
    print(f"same run: p50 polled / woken = {ratio:.1f}x\n", flush=True)


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
    parser.add_argument("--trickle", type=int, default=40, help="events in the trickle")
    parser.add_argument("--gap", type=float, nargs=2, default=(0.3, 1.0),
                        metavar=("MIN", "MAX"), help="seconds between the trickle's events")
    args = parser.parse_args()
    print_trickle(args)
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
