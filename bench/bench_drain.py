"""Benchmark of the intake draining a backlog at real SQS latency: serial against the drain.

The bot reaches SQS through a proxy, in a process of its own, that adds 30 ms to every call
(about what an SQS call takes from a server in the same region). The bot's process runs the
real Intake into a real SQLite file: first with ``[sqs] receivers = 1`` (the serial loop:
receive, commit, delete in turn), then with the drain (concurrent receivers, group commits,
deletes after the commit).

Two SQS servers stand behind the proxy. The measured one is bench/sqs_backlog.py, which
holds the whole 20,000-message backlog and answers each call in constant time, as SQS does.
moto's receive and delete cost time in proportion to the queue's depth and it serves a few
hundred messages a second at most, so it cannot hold the backlog nor show the drain's rate;
it runs too, for information: its calls made atomic (tests/fakes/atomic_moto.py), a feeder
process topping its queue up to a hundred messages (straight to moto, not through the
proxy: Voiso's sends are not part of the drain), serial and drain over a smaller backlog.
A drain counts until every message is stored and deleted; the store is
then checked to hold exactly the messages sent, each once.

The serial loop drains a smaller backlog (its rate is steady, and 20,000 would take it
minutes); the ratio compares rates measured in the same run. See bench/README.md.

    python bench/bench_drain.py [--messages N] [--serial-messages N] [--receivers R]
                                [--latency-ms MS]
"""

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# `python bench/bench_drain.py` puts bench/ on the path, not the repo root.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from report import positive_count, print_table  # noqa: E402  (bench/report.py)

TARGET_RATIO = 10.0
TOP_UP = 100  # messages the feeder keeps in moto's queue: its calls cost in proportion
REGION = "us-east-1"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
FIRST_EVENT_AT = datetime(2026, 11, 1, tzinfo=UTC)


# --- the fake's processes ---------------------------------------------------------------

def serve_moto() -> None:
    """moto's SQS server, each call atomic; prints its port."""
    import logging

    from tests.fakes.atomic_moto import AtomicMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    quicken_moto()
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    threading.Event().wait()


def quicken_moto() -> None:
    """moto's SQS asks the time through datetime arithmetic for every message it looks at
    (is it visible? delayed?), and for every message it hands out it builds all of the
    queue's attributes (counting every message) to read the retention period: at a hundred
    messages deep that is most of a receive's cost. This process is only the bench's fake,
    so its clock reads time.time() (the same seconds since the epoch, without the
    datetimes) and the retention period is read from the queue itself."""
    import moto.sqs.models as sqs_models
    exact = sqs_models.unix_time

    def retained(backend, queue_name, message):
        period = int(backend.get_queue(queue_name).message_retention_period)
        return period + message.sent_timestamp / 1000 > time.time()

    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = retained

    def unix_time(dt=None):
        return time.time() if dt is None else exact(dt)

    def unix_time_millis(dt=None):
        return unix_time(dt) * 1000.0

    sqs_models.unix_time, sqs_models.unix_time_millis = unix_time, unix_time_millis


def serve_latency_proxy(upstream_port: int, latency: float) -> None:
    """An HTTP/1.1 proxy that holds every call ``latency`` seconds, then forwards it to
    moto over a connection of its own per client connection; prints its port."""
    async def relay(reader, writer):
        upstream = None
        try:
            while True:
                request = await _read_message(reader)
                await asyncio.sleep(latency)
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", upstream_port)
                upstream[1].write(request)
                await upstream[1].drain()
                answer = await _read_message(upstream[0])
                writer.write(answer)
                await writer.drain()
                if b"\r\nconnection: close" in answer.split(b"\r\n\r\n", 1)[0].lower():
                    upstream[1].close()
                    upstream = None
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()

    async def main():
        server = await asyncio.start_server(relay, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


async def _read_message(reader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


def batch_entries(first: int, stop: int) -> list[dict]:
    """SendMessageBatch entries for the distinct events numbered first..stop-1."""
    from voisobot import samples
    entries = []
    for j in range(first, stop):
        body = samples.example("app_login/successful_login",
                               now=FIRST_EVENT_AT + timedelta(milliseconds=j))
        body["params"]["user"] = f"agent{j}@acme.example"
        entries.append({"Id": str(j - first), "MessageBody": json.dumps(body)})
    return entries


def prefill(admin, queue_url: str, total: int) -> None:
    """The whole backlog in the queue before the drain starts."""
    for first in range(0, total, 10):
        admin.send_message_batch(QueueUrl=queue_url,
                                 Entries=batch_entries(first, min(total, first + 10)))


def feed(endpoint: str, queue_url: str, total: int, top_up: int) -> None:
    """Send ``total`` distinct events straight to moto, keeping about ``top_up`` queued."""
    import boto3

    client = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    sent = 0
    while sent < total:
        depth = int(client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
            ["Attributes"]["ApproximateNumberOfMessages"])
        if depth >= top_up:
            time.sleep(0.01)
            continue
        for _ in range(min(top_up - depth, total - sent) // 10 + 1):
            if sent >= total:
                break
            entries = batch_entries(sent, min(total, sent + 10))
            client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            sent += len(entries)


def start_role(*args: str) -> tuple[subprocess.Popen, int]:
    """This script in another process; its first line is its port (0 for the feeder)."""
    process = subprocess.Popen([sys.executable, __file__, "--role", *args],
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, **AWS_ENV}, cwd=REPO_ROOT)
    line = process.stdout.readline().strip() if args[0] != "feeder" else "0"
    return process, int(line)


# --- one measured drain ---------------------------------------------------------------------

def new_queue(admin) -> str:
    name = f"drain-{time.monotonic_ns()}"
    return admin.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]


def queue_depth(admin, queue_url: str) -> int:
    attributes = admin.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def drain_once(admin, server_url: str, proxy_url: str, directory: Path, messages: int,
               receivers: int, *, backlog: bool) -> dict:
    """Drain ``messages`` with the real intake; the rate and what it held. ``backlog``: all
    of them queued first (bench/sqs_backlog.py); else fed to moto as it drains."""
    from voisobot import config, sqs
    from voisobot.intake import Intake
    from voisobot.store import Store

    queue_url = new_queue(admin)
    base = Path(tempfile.mkdtemp(dir=directory))
    cfg = config.from_dict({"sqs": {"queue_url": queue_url, "endpoint_url": proxy_url,
                                    "wait_time_seconds": 1, "poll_interval_seconds": 0.1,
                                    "receivers": receivers},
                            "store": {"path": "store.sqlite3"}}, base_dir=base)
    store = Store(cfg.store_path)
    store.totals()  # the schema, before the clock starts
    intake = Intake(sqs.make_client(cfg.sqs), cfg.sqs, store)
    if backlog:
        prefill(admin, queue_url, messages)
    else:
        feeder, _ = start_role("feeder", server_url, queue_url, str(messages))
    started = time.perf_counter()
    emptied = watch_emptied(cfg.store_path, admin, queue_url, messages)
    while store.totals()["events"] < messages or queue_depth(admin, queue_url):
        delay = intake.run()
        if delay:
            time.sleep(min(delay, 0.05))
    emptied.join()
    elapsed = emptied.at - started  # not the last empty long poll the intake waits out
    if not backlog:
        feeder.wait(timeout=60)
    held = check_store(cfg.store_path, messages)
    store.close()
    peak = intake.in_flight.peak if intake.in_flight else 10
    limit = intake.in_flight.limit if intake.in_flight else 10
    return {"rate": messages / elapsed, "seconds": elapsed, "held": held, "peak": peak,
            "limit": limit, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def watch_emptied(path: Path, admin, queue_url: str, messages: int) -> threading.Thread:
    """A thread that notes (``.at``, perf_counter) when every message is stored and gone
    from the queue, looking every 10 ms."""
    def watch():
        with sqlite3.connect(path) as conn:
            while (conn.execute("SELECT count(*) FROM events").fetchone()[0] < messages
                   or queue_depth(admin, queue_url)):
                time.sleep(0.01)
        thread.at = time.perf_counter()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def check_store(path: Path, messages: int) -> str:
    """'exact' when the store holds each message sent once, and nothing else."""
    with sqlite3.connect(path) as conn:
        events, ids, users = conn.execute(
            "SELECT count(*), count(DISTINCT sqs_message_id), count(DISTINCT user) "
            "FROM events").fetchone()
        others = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("duplicates", "rejected"))
    if events == ids == users == messages and others == 0:
        return "exact"
    return f"WRONG: {events} events, {ids} ids, {users} users, {others} others"


# --- the report -----------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    if args.role:
        return run_role(args.role)
    os.environ.update(AWS_ENV)

    latency = str(args.latency_ms / 1000)
    processes = []
    try:
        results = {}
        for server in ("backlog", "moto"):
            process, port = start_role(server)
            proxy, proxy_port = start_role("proxy", str(port), latency)
            processes += [proxy, process]
            server_url = f"http://127.0.0.1:{port}"
            results[server] = measure(args, server, server_url, f"http://127.0.0.1:{proxy_port}")
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
    report(args, results)
    return 0


def measure(args, server: str, server_url: str, proxy_url: str) -> dict:
    """Serial, then the drain, through the proxy to one server."""
    import boto3
    admin = boto3.client("sqs", endpoint_url=server_url, region_name=REGION)
    backlog = server == "backlog"
    serial_messages, messages = ((args.serial_messages, args.messages) if backlog
                                 else (args.moto_serial_messages, args.moto_messages))
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        found = {"serial": drain_once(admin, server_url, proxy_url, Path(directory),
                                      serial_messages, 1, backlog=backlog),
                 "drain": drain_once(admin, server_url, proxy_url, Path(directory),
                                     messages, args.receivers, backlog=backlog)}
    found["serial"]["messages"], found["drain"]["messages"] = serial_messages, messages
    return found


def report(args, results: dict) -> None:
    print(f"Intake drain through a {args.latency_ms:g} ms-per-call proxy; the backlog queued "
          f"whole in bench/sqs_backlog.py, and moto (its queue kept at about {TOP_UP} "
          "messages) for information")
    target = f"target ≥ {TARGET_RATIO:g}x serial"
    rows = []
    for server, found in results.items():
        serial, drained = found["serial"], found["drain"]
        ratio = drained["rate"] / serial["rate"]
        verdict = ("ok" if ratio >= TARGET_RATIO else "MISSED") if server == "backlog" else ""
        rows += [
            (f"{server}: serial (receivers = 1)", f"{serial['messages']:,}",
             f"{serial['seconds']:.1f}", f"{serial['rate']:,.0f}", "1.0x", serial["held"],
             "", "", ""),
            (f"{server}: drain (receivers = {args.receivers})", f"{drained['messages']:,}",
             f"{drained['seconds']:.1f}", f"{drained['rate']:,.0f}", f"{ratio:.1f}x",
             drained["held"], f"{drained['peak']} / {drained['limit']}",
             f"{drained['rss']:.0f}", verdict)]
    print_table(("intake", "messages", "seconds", "messages/s", "vs serial", "store",
                 "peak in hand / bound", "peak RSS MiB", target), rows)


def run_role(role: list[str]) -> int:
    name, *rest = role
    if name == "moto":
        serve_moto()
    elif name == "backlog":
        from sqs_backlog import serve  # bench/, on the path as this script's directory
        serve()
    elif name == "proxy":
        serve_latency_proxy(int(rest[0]), float(rest[1]))
    else:
        feed(rest[0], rest[1], int(rest[2]), TOP_UP)
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=positive_count, default=20_000,
                        help="the backlog the drain empties (default 20000)")
    parser.add_argument("--serial-messages", type=positive_count, default=2_000,
                        help="the backlog the serial loop empties (default 2000)")
    parser.add_argument("--moto-messages", type=positive_count, default=3_000,
                        help="the backlog the drain empties from moto (default 3000)")
    parser.add_argument("--moto-serial-messages", type=positive_count, default=1_000,
                        help="the backlog the serial loop empties from moto (default 1000)")
    parser.add_argument("--receivers", type=positive_count, default=8,
                        help="[sqs] receivers of the drain (default 8, the default)")
    parser.add_argument("--latency-ms", type=float, default=30.0,
                        help="added to every call by the proxy (default 30)")
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)  # the helper processes
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
