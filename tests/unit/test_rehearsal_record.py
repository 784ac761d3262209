"""The figures of ``hub rehearse`` (livehub_client.rehearsal.record): pure, no sockets."""

from __future__ import annotations

import pytest

from livehub_client.rehearsal import record
from livehub_client.rehearsal.record import Recorder, percentile, verdict


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.99) == 0.0
    assert percentile([7.0], 0.5) == 7.0


def test_an_operation_counts_successes_and_errors_by_code() -> None:
    recorder = Recorder()
    for n in range(10):
        recorder.ok("chat.send", at=n, latency=0.001 * (n + 1))
    recorder.error("chat.send", "rate_limited")
    recorder.error("chat.send", "rate_limited")
    recorder.error("chat.send", "disconnected")
    summary = recorder.summary(elapsed=10.0)["ops"]["chat.send"]
    assert summary["count"] == 10
    assert summary["errors"] == {"disconnected": 1, "rate_limited": 2}
    assert (summary["p50_ms"], summary["max_ms"], summary["per_s"]) == (5.0, 10.0, 1.0)
    assert recorder.error_count() == 3 and recorder.done_count() == 10


def test_latency_samples_are_bounded_and_counts_stay_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(record, "MAX_SAMPLES", 100)
    recorder = Recorder(seed=1)
    for n in range(1_000):
        recorder.ok("delivery", at=n, latency=0.002)
    stats = recorder.ops["delivery"]
    assert stats.count == 1_000 and len(stats.latencies) == len(stats.times) == 100
    assert recorder.summary(10.0)["ops"]["delivery"]["p99_ms"] == 2.0


def test_phases_end_when_the_next_begins() -> None:
    recorder = Recorder()
    recorder.begin("connect", 0.0)
    recorder.begin("panels", 5.0)
    assert recorder.phase == "panels"
    recorder.end(9.0)
    assert recorder.summary(9.0)["phases"] == [
        {"phase": "connect", "start_s": 0.0, "end_s": 5.0},
        {"phase": "panels", "start_s": 5.0, "end_s": 9.0},
    ]


def test_the_verdict_names_every_reason_to_fail() -> None:
    fast = {"count": 5, "errors": {}, "p99_ms": 12.0}
    assert verdict({"join": fast}, {"lost": 0, "election_exact": True}) == {
        "pass": True,
        "reasons": [],
    }
    slow = {"count": 5, "errors": {"timeout": 2}, "p99_ms": 400.0}
    failed = verdict({"join": fast, "poll.vote": slow}, {"lost": 3, "election_exact": False})
    assert failed["pass"] is False
    assert failed["reasons"] == [
        "2 errors",
        "3 messages lost",
        "the election's tally differs from the votes cast",
        "p99 over 250 ms: poll.vote",
    ]
