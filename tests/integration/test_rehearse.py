"""``hub rehearse`` against real ``hub serve`` processes: a small conference passes on one node,
and on two workers over Redis with one restarted halfway nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.support.hub_process import TEST_SECRET, HubProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

SMALL = [
    "--attendees", "24", "--minutes", "0.2", "--breakout-seconds", "2", "--vote-window", "2",
    "--connect-window", "1", "--no-live",
]  # fmt: skip


def rehearse(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``hub rehearse`` run as an operator runs it, with the test hub's secret."""
    command = [sys.executable, "-m", "hub", "rehearse", "--url", url, "--secret", TEST_SECRET]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=TIMEOUT * 12, check=False
    )


def test_a_small_conference_passes_and_reports_every_phase(tmp_path: Path) -> None:
    hub = HubProcess().start()
    try:
        figures, drawing = tmp_path / "figures.json", tmp_path / "latency.png"
        done = rehearse(hub.url, *SMALL, "--json", str(figures), "--plot", str(drawing))
    finally:
        hub.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: PASS" in done.stdout
    summary = json.loads(figures.read_text())
    assert summary["verdict"] == {"pass": True, "reasons": []}
    assert [phase["phase"] for phase in summary["phases"]] == [
        "setup", "connect", "panels", "election", "breakouts", "closing",
    ]  # fmt: skip
    ops = summary["ops"]
    assert ops["connect"]["count"] == 24 + 3 + 1  # attendees, a moderator per panel, organizer
    assert ops["poll.vote"]["count"] == 24
    assert ops["breakout.move"]["count"] == 24 and "breakout.join" not in ops  # the hub moved all
    assert ops["chat.send"]["count"] > 0 and ops["delivery"]["count"] > 0
    checks = summary["checks"]
    assert checks["election_exact"] is True and checks["votes_cast"] == 24
    assert checks["lost"] == 0 and checks["acknowledged"] == ops["chat.send"]["count"]
    assert drawing.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_are_refused_with_a_reason() -> None:
    done = rehearse("http://127.0.0.1:1/ws")
    assert done.returncode == 2 and "ws:// or wss://" in done.stderr
    done = rehearse("ws://127.0.0.1:1/ws", "--chaos")
    assert done.returncode == 2 and "--restart-cmd" in done.stderr


@pytest.mark.redis
def test_a_worker_restarted_halfway_loses_nothing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    redis_server.flush()
    hub = HubProcess(redis_url=redis_server.url, workers=2).start()
    try:
        assert hub.process is not None
        # The supervisor's first worker drains (SIGTERM) and is started again; its people
        # reconnect, to the other worker or to the new one.
        restart = f"kill -TERM $(pgrep -P {hub.process.pid} | head -n 1)"
        figures = tmp_path / "chaos.json"
        done = rehearse(
            hub.url, *SMALL, "--minutes", "0.3", "--chaos", "--restart-cmd", restart,
            "--json", str(figures),
        )  # fmt: skip
    finally:
        hub.stop()
    summary = json.loads(figures.read_text())
    checks = summary["checks"]
    assert checks["restart_exit"] == 0 and checks["reconnects"] > 0, done.stdout
    assert checks["lost"] == 0 and checks["acknowledged"] > 0
    assert checks["election_exact"] is True and checks["votes_cast"] == 24
