"""The web app's benchmark still runs: a tiny busy panel, so a change that breaks it shows here
rather than the next time someone measures (the figures are measured, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.system import require_chromium

ROOT = Path(__file__).resolve().parents[2]


def test_the_webapp_benchmark_runs_and_shows_every_message() -> None:
    require_chromium()
    args = [
        "--members",
        "20",
        "--rate",
        "10",
        "--duration",
        "1",
        "--runs",
        "1",
        "--no-pin",
        "--json",
    ]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "webapp.py"), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{") :])
    busy = report["busy"]
    assert busy["sent"] == busy["seen"] == 10
    assert busy["max_chat_nodes"] <= 300
    assert report["first"]["weight"]["js"] > 0
