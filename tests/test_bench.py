"""The benchmarks stay runnable: each of bench/*.py runs end to end on a tiny load (a moved
module once broke `make bench` while every test passed). Figures are not checked here:
timing belongs to `make bench`, not to the suite."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "bench_intake.py": ["--events", "300", "--repeats", "1"],
    "bench_queries.py": ["--events", "2000", "--repeats", "2", "--scans", "1"],
    "bench_alerts.py": ["--events", "40", "--users", "4", "--feed-seconds", "1",
                        "--renders", "20"],
    "bench_drain.py": ["--messages", "60", "--serial-messages", "20", "--ceiling-messages",
                       "20", "--receivers", "2", "--latency-ms", "5"],
}


def test_every_benchmark_has_a_tiny_run_here():
    assert {path.name for path in (ROOT / "bench").glob("bench_*.py")} == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_benchmark_runs_end_to_end_and_prints_its_table(name, tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / name), *TINY[name]], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "target" in run.stdout.lower() or "ok" in run.stdout
