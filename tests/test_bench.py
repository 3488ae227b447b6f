"""The benchmarks stay runnable: each of bench/*.py runs end to end on a tiny load (a moved
module once broke `make bench` while every test passed). Figures are not checked here:
timing belongs to `make bench`, not to the suite."""

import itertools
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from voisobot.store import audit_path

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "bench_intake.py": ["--events", "300", "--repeats", "1"],
    "bench_queries.py": ["--events", "2000", "--repeats", "2", "--scans", "1",
                         "--bot-commands", "10"],
    "bench_alerts.py": ["--events", "40", "--users", "4", "--feed-seconds", "1",
                        "--renders", "20", "--trickle", "4", "--gap", "0.05", "0.1"],
    "bench_drain.py": ["--messages", "60", "--serial-messages", "20", "--moto-messages", "30",
                       "--moto-serial-messages", "20", "--receivers", "2", "--latency-ms", "5"],
}


def run_bench(name: str, directory: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / name), *TINY[name], *extra],
                          cwd=directory, capture_output=True, text=True, timeout=300)


def test_every_benchmark_has_a_tiny_run_here():
    assert {path.name for path in (ROOT / "bench").glob("bench_*.py")} == set(TINY)


@pytest.mark.parametrize("name", sorted(set(TINY) - {"bench_queries.py"}))  # see below
def test_a_benchmark_runs_end_to_end_and_prints_its_table(name, tmp_path):
    run = run_bench(name, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "target" in run.stdout.lower() or "ok" in run.stdout


# bench_queries.py's tables, by the start of their header line: how many of each.
QUERY_TABLES = {"query  ": 2, "/voiso command  ": 2, "bot.py run, HTTP mode  ": 1}


def tables(stdout: str) -> dict[str, list[list[str]]]:
    """Each table (its header line, then its rows up to a blank line) by its header's start."""
    found: dict[str, list[list[str]]] = {}
    lines = stdout.splitlines()
    for index, line in enumerate(lines):
        start = next((start for start in QUERY_TABLES if line.startswith(start)), None)
        if start is not None:
            rows = list(itertools.takewhile(str.strip, lines[index + 1:]))
            found.setdefault(start, []).append([line, *rows])
    return found


def store_rows(path: Path) -> dict[str, int]:
    """Rows of the store's main tables and of its audit trail (its own file)."""
    with sqlite3.connect(path) as conn:
        counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in ("events", "alerts", "daily_counts")}
    with sqlite3.connect(audit_path(str(path))) as trail:
        (counts["audit"],) = trail.execute("SELECT count(*) FROM audit").fetchone()
    return counts


def test_bench_queries_prints_quiet_loaded_and_memory_tables_and_reuses_its_store(tmp_path):
    """Quiet and under-load tables of the queries and the whole answers, and the running
    bot's peak RSS: each header names its target, each row ends ok or MISSED (the figures
    are not checked). With --store, a second run reuses the store and measures a copy, so
    the store keeps what it was built with; another --events is refused."""
    store = tmp_path / "reused.sqlite3"
    run = run_bench("bench_queries.py", tmp_path, "--store", str(store))
    assert run.returncode == 0, run.stderr[-2000:]
    found = tables(run.stdout)
    assert {start: len(found.get(start, [])) for start in QUERY_TABLES} == QUERY_TABLES
    for header, *rows in (table for every in found.values() for table in every):
        assert "target p99 ≤ 10 ms" in header or "target ≤ 150 MB" in header, header
        assert rows and all(row.split()[-1] in ("ok", "MISSED") for row in rows), rows
    quiet, loaded = found["query  "]
    assert "full scan ms" in quiet[0] and "loaded/quiet" in loaded[0]
    assert [row[:20] for row in quiet[1:]] == [row[:20] for row in loaded[1:]]
    assert "loaded/quiet" in found["/voiso command  "][1][0]
    assert [row.split()[0] for row in found["bot.py run, HTTP mode  "][0][1:]] == [
        "started", "answering"]
    assert re.search(r"the intake wrote [\d,]+ events/s", run.stdout)
    assert "loaded at schema" in run.stdout

    built = store_rows(store)
    again = run_bench("bench_queries.py", tmp_path, "--store", str(store))
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"reused {store}" in again.stdout
    assert store_rows(store) == built
    other = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_queries.py"),
                            "--events", "3000", "--store", str(store)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert other.returncode != 0 and "not --events 3,000" in other.stderr
