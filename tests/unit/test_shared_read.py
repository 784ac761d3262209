"""hub.shared_read: one read for a burst of callers (see also test_shared_snapshot.py, whose
room snapshots run on :class:`FreshSharedRead`)."""

from __future__ import annotations

import asyncio

import pytest

from hub.broker import BrokerUnavailable
from hub.shared_read import FreshSharedRead, SharedRead


async def test_callers_during_a_read_share_it_and_later_ones_read_again() -> None:
    reads = 0
    started, release = asyncio.Event(), asyncio.Event()

    async def read() -> int:
        nonlocal reads
        reads += 1
        started.set()
        await release.wait()
        return reads

    shared = SharedRead(read)
    burst = [asyncio.ensure_future(shared()) for _ in range(5)]
    await started.wait()  # the callers, scheduled together, are all waiting on it by now
    release.set()
    assert await asyncio.gather(*burst) == [1] * 5
    assert await shared() == 2  # the burst's read is over: a new one


async def test_an_error_reaches_every_caller_of_its_read_and_a_quitter_cancels_nothing() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def read() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        if calls == 1:
            raise ConnectionError("the broker blinked")
        return "fine"

    shared = SharedRead(read)
    quitter = asyncio.ensure_future(shared())
    stayer = asyncio.ensure_future(shared())
    await started.wait()
    quitter.cancel()
    release.set()
    with pytest.raises(ConnectionError):
        await stayer
    assert await shared() == "fine"


class CountingRead:
    """A keyed read that records each run and returns the state it saw; ``gate`` holds each run
    after its read until set."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.state = 0
        self.read = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, key: str) -> tuple[str, int]:
        self.runs.append(key)
        seen = self.state
        self.read.set()
        await self.gate.wait()
        return key, seen


async def test_fresh_read_callers_of_one_iteration_share_one_run_per_key() -> None:
    read = CountingRead()
    fresh: FreshSharedRead[str, tuple[str, int]] = FreshSharedRead(read)
    asked = [fresh.get("a") for _ in range(20)] + [fresh.get("b") for _ in range(5)]
    results = await asyncio.gather(*asked)
    assert sorted(read.runs) == ["a", "b"]
    assert results == [("a", 0)] * 20 + [("b", 0)] * 5


async def test_fresh_read_never_gives_a_caller_a_run_that_started_before_it_asked() -> None:
    read = CountingRead()
    read.gate.clear()
    fresh: FreshSharedRead[str, tuple[str, int]] = FreshSharedRead(read)
    first = fresh.get("a")
    await asyncio.wait_for(read.read.wait(), 5)  # the run has read
    read.state = 1  # a change acknowledged before the next caller asks
    second = fresh.get("a")
    read.gate.set()
    assert await first == ("a", 0)
    assert await second == ("a", 1)
    assert read.runs == ["a", "a"]


async def test_fresh_read_closed_fails_what_waits_and_what_is_asked_as_unavailable() -> None:
    read = CountingRead()
    read.gate.clear()
    fresh: FreshSharedRead[str, tuple[str, int]] = FreshSharedRead(read)
    running = fresh.get("a")
    await asyncio.wait_for(read.read.wait(), 5)
    await fresh.close()
    with pytest.raises(BrokerUnavailable):
        await running
    with pytest.raises(BrokerUnavailable):
        await fresh.get("a")
