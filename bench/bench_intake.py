"""Benchmark of the intake core: SQS-shaped messages to committed rows, without the network.

Measures ``Intake.store_messages`` — parse, validate, dedupe, one transaction per batch,
exactly as production runs it — against a floor: a bare ``executemany`` INSERT of the
same rows, in the same batches, into a store with the same schema and pragmas. Prints a
table; it is a report, not a test, so it always exits 0. See bench/README.md.

    python bench/bench_intake.py [--events N] [--repeats R] [--dir DIRECTORY]
"""

import argparse
import copy
import gc
import ipaddress
import logging
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# `python bench/bench_intake.py` puts bench/ on the path, not the repo root.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from report import positive_count, print_table  # noqa: E402  (bench/report.py)

from voisobot import config as voiso_config  # noqa: E402
from voisobot import samples  # noqa: E402
from voisobot import store as voiso_store  # noqa: E402
from voisobot.intake import Intake, to_delivery  # noqa: E402
from voisobot.store import Store, event_row, time_text  # noqa: E402

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench"
TARGET_RATIO = 0.5
DUPLICATE_SHARE = 0.03  # Voiso resending a body it already sent, under a new message id
MALFORMED_SHARE = 0.01
FIRST_EVENT_AT = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WARM_UP_MESSAGES = 500


@dataclass(frozen=True)
class Scenario:
    name: str
    batch_size: int
    synchronous: str


SCENARIOS = (
    Scenario("production", 10, "FULL"),
    Scenario("large batches", 100, "FULL"),
    Scenario("for information", 10, "NORMAL"),  # WAL+NORMAL: no fsync per commit
)


@dataclass(frozen=True)
class Measurement:
    """Median rates over the repeats; the ratio is the median of each A/B pair's ratio."""

    core_per_second: float
    baseline_per_second: float
    ratio: float
    ratio_low: float
    ratio_high: float


# --- the workload: built once, before any timing ---------------------------------------

def unique_body(kind: str, index: int) -> dict:
    """A vendor example made unique by its timestamp, user and IP addresses."""
    body = copy.deepcopy(samples.EXAMPLES[kind])
    body["timestamp"] = samples.voiso_timestamp(FIRST_EVENT_AT + timedelta(milliseconds=10 * index))
    params = body["params"]
    if "user" in params:
        params["user"] = f"agent{index}@acme.example"
    address = str(ipaddress.IPv4Address(0x0A000000 + index))
    other = str(ipaddress.IPv4Address(0x0B000000 + index))
    is_range = body["type"] == "allowed_ip"  # allow-list kinds carry CIDR ranges
    if "ip" in params:
        params["ip"] = f"{address}/32" if is_range else address
    if "from" in params and params["from"][0].isdigit():  # privileges_updated has groups
        params["from"], params["to"] = ((f"{address}/32", f"{other}/32") if is_range
                                        else (address, other))
    return body


def malformed_body_text(index: int) -> str:
    """The ways a body fails validation, each made unique so none is a duplicate."""
    shapes = (
        lambda: f'{{"timestamp": "2026-01-05T08:00:00Z", "type": "app_login", {index}',
        lambda: samples.body_text({"type": "app_login", "event": "successful_login",
                                   "params": {"user": f"u{index}", "access_group": "a"}}),
        lambda: samples.body_text({**unique_body("app_login/unauthorized_ip", index),
                                   "params": {"user": f"u{index}", "access_group": "a",
                                              "ip": "not an address"}}),
        lambda: samples.body_text({**unique_body("app_login/incorrect_password", index),
                                   "params": {"user": f"u{index}", "access_group": "a",
                                              "count": "four"}}),
    )
    return shapes[index % len(shapes)]()


def sqs_message(body_text: str, index: int) -> dict:
    sent_at_ms = int(FIRST_EVENT_AT.timestamp() * 1000) + 10 * index + 3
    return {"MessageId": str(uuid.uuid4()), "ReceiptHandle": f"AQEB{uuid.uuid4().hex * 4}",
            "Body": body_text, "Attributes": {"SentTimestamp": str(sent_at_ms)}}


def make_messages(count: int, seed: int = 20260105) -> list[dict]:
    """A realistic mix of the 12 documented kinds, a few resent bodies, ~1% malformed."""
    chooser = random.Random(seed)
    kinds = list(samples.EXAMPLES)
    valid_bodies: list[str] = []
    messages = []
    for index in range(count):
        roll = chooser.random()
        if roll < MALFORMED_SHARE:
            text = malformed_body_text(index)
        elif roll < MALFORMED_SHARE + DUPLICATE_SHARE and valid_bodies:
            text = chooser.choice(valid_bodies[-1000:])  # a resend comes soon after the original
        else:
            text = samples.body_text(unique_body(chooser.choice(kinds), index))
            valid_bodies.append(text)
        messages.append(sqs_message(text, index))
    return messages


def in_batches(items: list, size: int) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def baseline_batches(messages: list[dict], size: int) -> list[tuple[list, list]]:
    """(event rows, rejected rows) per batch, from the same deliveries the core parses."""
    received_at = time_text(datetime.now(UTC))
    batches = []
    for batch in in_batches(messages, size):
        event_rows, rejected_rows = [], []
        for delivery in map(to_delivery, batch):
            if delivery.event is None:
                rejected_rows.append((delivery.message_id, received_at, delivery.sent_at,
                                      delivery.reason, delivery.raw))
            else:
                event_rows.append(event_row(delivery, received_at))
        batches.append((event_rows, rejected_rows))
    return batches


# --- the two measured paths ------------------------------------------------------------

def fresh_store(directory: Path, synchronous: str) -> tuple[Store, voiso_config.Config]:
    settings = voiso_config.from_dict(
        {"sqs": {"queue_url": QUEUE_URL}, "store": {"path": "bench.sqlite3"}},
        base_dir=directory)
    store = Store(settings.store_path)  # the production schema and pragmas
    if synchronous != "FULL":
        store.connection().execute(f"PRAGMA synchronous = {synchronous}")
    return store, settings


def time_core(batches: list[list[dict]], synchronous: str,
              where: str | None) -> tuple[float, dict[str, int]]:
    """Seconds for the production intake core to commit every batch, and the rows it left."""
    with tempfile.TemporaryDirectory(prefix="bench-core-", dir=where) as directory:
        store, settings = fresh_store(Path(directory), synchronous)
        intake = Intake(None, settings.sqs, store)
        gc.collect()
        started = time.perf_counter()
        for batch in batches:
            intake.store_messages(batch)
        elapsed = time.perf_counter() - started
        totals = store.totals()
        store.close()
    return elapsed, totals


def time_baseline(batches: list[tuple[list, list]], synchronous: str,
                  where: str | None) -> tuple[float, dict[str, int]]:
    """Seconds for bare executemany INSERTs of precomputed rows, one transaction a batch."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-", dir=where) as directory:
        store, _ = fresh_store(Path(directory), synchronous)
        conn = store.connection()
        gc.collect()
        started = time.perf_counter()
        for event_rows, rejected_rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(voiso_store._INSERT_EVENT, event_rows)
            if rejected_rows:
                conn.executemany(voiso_store._INSERT_REJECTED, rejected_rows)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        totals = store.totals()
        store.close()
    return elapsed, totals


def measure(scenario: Scenario, messages: list[dict], repeats: int,
            where: str | None) -> Measurement:
    """Alternate core and baseline runs (ABAB…) so drift on a shared machine hits both."""
    core_batches = in_batches(messages, scenario.batch_size)
    floor_batches = baseline_batches(messages, scenario.batch_size)
    expected = expected_totals(messages)
    core_rates, floor_rates, ratios = [], [], []
    for _ in range(repeats):
        seconds, totals = time_core(core_batches, scenario.synchronous, where)
        warn_if_unexpected("core", totals, expected)
        core_rates.append(len(messages) / seconds)
        seconds, totals = time_baseline(floor_batches, scenario.synchronous, where)
        warn_if_unexpected("baseline", totals, {**expected, "duplicates": 0})
        floor_rates.append(len(messages) / seconds)
        ratios.append(core_rates[-1] / floor_rates[-1])
    return Measurement(statistics.median(core_rates), statistics.median(floor_rates),
                       statistics.median(ratios), min(ratios), max(ratios))


def expected_totals(messages: list[dict]) -> dict[str, int]:
    """The rows one run must leave: every message is an event, a duplicate or a rejection."""
    deliveries = [to_delivery(m) for m in messages]
    rejected = sum(d.event is None for d in deliveries)
    events = len({d.event.fingerprint for d in deliveries if d.event is not None})
    return {"events": events, "duplicates": len(messages) - rejected - events,
            "rejected": rejected}


def warn_if_unexpected(path: str, totals: dict[str, int], expected: dict[str, int]) -> None:
    """A fast run that stored the wrong rows measures nothing; say so rather than hide it."""
    if totals != expected:
        print(f"warning: the {path} run left {totals}, expected {expected}", file=sys.stderr)


def warm_up(messages: list[dict], where: str | None) -> None:
    """One short unreported run of each path, so imports and caches are not timed."""
    sample = messages[:WARM_UP_MESSAGES]
    time_core(in_batches(sample, 10), "FULL", where)
    time_baseline(baseline_batches(sample, 10), "FULL", where)


# --- the report ------------------------------------------------------------------------

def mix_summary(messages: list[dict]) -> str:
    totals = expected_totals(messages)
    return (f"{len(messages):,} messages per run: {totals['events']:,} distinct events of the "
            f"12 documented kinds, {totals['duplicates']:,} resent bodies (duplicates), "
            f"{totals['rejected']:,} malformed (rejected)")


def print_header(messages: list[dict], repeats: int, where: str | None) -> None:
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs, stores in {where or tempfile.gettempdir()}")
    print(mix_summary(messages))
    print(f"{repeats} repeat(s) of core then baseline, each in a fresh store; medians shown")
    print("core: Intake.store_messages(batch) — parse, validate, dedupe, one transaction "
          "per batch")
    print("baseline: per batch BEGIN IMMEDIATE; executemany(_INSERT_EVENT, precomputed rows); "
          "executemany(_INSERT_REJECTED, malformed rows); COMMIT — resent bodies are in the "
          "events rows and skipped by ON CONFLICT, not written to duplicates")
    print()


COLUMNS = ("scenario", "batch", "synchronous", "core events/s", "baseline rows/s",
           "ratio", "ratio range", f"target ≥ {TARGET_RATIO}")


def table_row(scenario: Scenario, result: Measurement) -> tuple[str, ...]:
    return (scenario.name, str(scenario.batch_size), scenario.synchronous,
            f"{result.core_per_second:,.0f}", f"{result.baseline_per_second:,.0f}",
            f"{result.ratio:.3f}", f"{result.ratio_low:.2f}-{result.ratio_high:.2f}",
            "ok" if result.ratio >= TARGET_RATIO else "below")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=positive_count, default=20_000,
                        help="messages per run, the same for every scenario (default 20000)")
    parser.add_argument("--repeats", type=positive_count, default=3,
                        help="core/baseline pairs per scenario; the median is shown (default 3)")
    parser.add_argument("--dir", default=None,
                        help="where the temporary stores go; fsync cost depends on the disk")
    return parser.parse_args()


def quiet_rejection_log() -> None:
    """Production formats a warning per rejected message; keep that cost, not the noise."""
    sink = logging.StreamHandler(open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
    sink.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[sink], force=True)


def main() -> int:
    started = time.perf_counter()
    args = arguments()
    quiet_rejection_log()
    messages = make_messages(args.events)
    print_header(messages, args.repeats, args.dir)
    warm_up(messages, args.dir)
    rows = [table_row(scenario, measure(scenario, messages, args.repeats, args.dir))
            for scenario in SCENARIOS]
    print_table(COLUMNS, rows, left=3)
    print(f"\n(ran {time.perf_counter() - started:.0f} s; ratio = median of each core/baseline "
          "pair's ratio, range = lowest-highest pair)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
