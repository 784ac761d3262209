"""hub.shared_read: one read for a burst of callers."""

from __future__ import annotations

import asyncio

import pytest

from hub.shared_read import SharedRead


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
