"""The benchmark scripts still run: a tiny load of each, so a change that breaks them shows here
rather than the next time someone measures. The figures themselves are not checked (speed is
measured by the scripts, never asserted in tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.system import require_janus, require_netns

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def run_benchmark(script: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--no-pin", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, object] = json.loads(done.stdout[done.stdout.index("{") :])
    return report


def test_the_fanout_benchmark_runs_and_loses_nothing() -> None:
    report = run_benchmark(
        "fanout.py", "--subscribers", "20", "--duration", "1", "--modes", "memory,baseline"
    )
    results = report["results"]
    assert isinstance(results, list) and len(results) == 2
    for result in results:
        assert "error" not in result, result
        for phase in ("fixed", "flat"):
            assert result[phase]["lost"] == 0 and result[phase]["dups"] == 0, result


def test_the_votes_benchmark_runs_with_exact_counts() -> None:
    report = run_benchmark(
        "votes.py", "--voters", "20", "--duration", "1", "--warmup", "0.2", "--modes", "memory"
    )
    results = report["results"]
    assert isinstance(results, list) and len(results) == 1
    assert "error" not in results[0], results[0]
    assert results[0]["exact"] is True, results[0]


@pytest.mark.redis
def test_the_votes_benchmark_runs_on_a_redis_with_its_append_only_file() -> None:
    report = run_benchmark(
        "votes.py",
        *("--voters", "20", "--duration", "1", "--warmup", "0.2"),
        *("--modes", "redis2", "--appendfsync", "always"),
    )
    results = report["results"]
    assert isinstance(results, list) and len(results) == 1
    assert "error" not in results[0], results[0]
    assert results[0]["mode"] == "redis2+always"
    assert results[0]["redis"]["appendfsync"] == "always"
    assert results[0]["exact"] is True, results[0]


def test_the_soak_benchmark_runs_and_samples_the_hubs_memory() -> None:
    report = run_benchmark(
        "soak.py",
        *("--minutes", "0.1", "--guests", "10", "--rooms", "2", "--session", "3"),
        *("--chat-every", "0.5", "--sample", "1", "--max-slope", "1e9"),
    )
    results = report["results"]
    assert isinstance(results, list) and len(results) == 1
    result = results[0]
    assert "error" not in result, result
    assert len(result["samples"]) >= 5 and all(s["hub_kb"] > 0 for s in result["samples"])
    assert result["done"]["hello"] > 10 and result["done"]["chat.send"] > 0  # guests came again
    assert result["levels_off"] is True and result["hub_slope_kb_min"] is not None


def test_the_janus_benchmark_runs_and_every_viewer_gets_frames() -> None:
    require_netns()
    require_janus()
    report = run_benchmark(
        "janus.py", "--speakers", "1", "--viewers", "2", "--window", "1", "--settle", "0.2"
    )
    rows = report["rows"]
    assert isinstance(rows, list) and len(rows) == 1
    assert rows[0]["missing_first_frames"] == 0 and rows[0]["fps_min"] > 0, rows[0]
    extrapolation = report["extrapolation"]
    assert isinstance(extrapolation, dict) and extrapolation["panel"]["video_streams"] == 3600


def test_the_relay_benchmark_runs_and_every_viewer_gets_frames() -> None:
    report = run_benchmark(
        "relay.py", "--speakers", "1", "--viewers", "2", "--window", "1", "--settle", "0.2"
    )
    rows = report["rows"]
    assert isinstance(rows, list) and len(rows) == 1
    assert rows[0]["missing_first_frames"] == 0 and rows[0]["fps_min"] > 0, rows[0]


def test_the_match_benchmark_runs_and_pairs_exactly() -> None:
    # Even: an odd last person who presses after the others were paired waits for the next one
    # (the pairing rules), which a run of fixed size would report as unpaired.
    report = run_benchmark("match.py", "--people", "20", "--spread", "0.5", "--modes", "memory")
    results = report["results"]
    assert isinstance(results, list) and len(results) == 1
    assert "error" not in results[0], results[0]
    assert results[0]["exact"] is True and results[0]["paired"] == 20, results[0]


@pytest.mark.redis
def test_the_joins_benchmark_runs_both_storms_without_errors() -> None:
    report = run_benchmark("joins.py", "--attendees", "30", "--modes", "redis2")
    results = report["results"]
    assert isinstance(results, list) and len(results) == 1
    result = results[0]
    assert "error" not in result, result
    for storm in ("panel", "breakout"):
        assert result[storm]["ok"] == 30 and not result[storm]["errors"], result


def test_the_burst_profile_counts_the_calls_of_both_storms(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HUB_BURST_PROFILE": str(tmp_path),
        "HUB_BURST_PANEL_JOINS": "10",
        "HUB_BURST_MOVE_ROOMS": "1",
        "PYTHONPATH": str(ROOT / "benchmarks" / "burst_profile"),
    }
    command = [sys.executable, str(ROOT / "benchmarks" / "joins.py"), "--attendees", "30"]
    command += ["--modes", "redis2", "--move", "--no-pin", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "burst_calls.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = summary.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["panel", "move"]
    assert all("calls a person" in line for line in lines), lines


@pytest.mark.parametrize("rss", [False, True], ids=["traced", "rss"])
def test_the_connection_memory_benchmark_runs(rss: bool) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "connection_memory.py"),
            *("--connections", "20", "--warmup", "5", "--json"),
            *(["--rss"] if rss else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["connections"] == 20
    figure = "rss_bytes_per_connection" if rss else "traced_bytes_per_connection"
    assert isinstance(report[figure], int)
