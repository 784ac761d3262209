"""hub.shared_read: one read for a burst of callers."""

from __future__ import annotations

import asyncio

import pytest

from hub.shared_read import FreshReads, SharedRead


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


class Reads:
    """A read whose calls wait until the test lets each one end; records what each saw."""

    def __init__(self) -> None:
        self.value = 0
        self.started: asyncio.Queue[asyncio.Event] = asyncio.Queue()
        self.seen: list[int] = []
        self.fail_next = False

    async def __call__(self, key: str) -> int:
        seen, fail = self.value, self.fail_next
        self.fail_next = False
        gate = asyncio.Event()
        self.started.put_nowait(gate)
        await gate.wait()
        self.seen.append(seen)
        if fail:
            raise ConnectionError("the broker blinked")
        return seen

    async def let_one_end(self) -> None:
        (await asyncio.wait_for(self.started.get(), 5)).set()


async def test_fresh_reads_give_every_caller_a_read_that_began_after_it_asked() -> None:
    reads = Reads()
    fresh: FreshReads[str, int] = FreshReads(reads)
    first = asyncio.ensure_future(fresh("room"))
    gate = await asyncio.wait_for(reads.started.get(), 5)  # under way, having seen 0
    reads.value = 1  # acknowledged before the burst below asks
    burst = [asyncio.ensure_future(fresh("room")) for _ in range(5)]
    gate.set()
    assert await first == 0
    await reads.let_one_end()  # the next read, started once the first ended
    assert await asyncio.gather(*burst) == [1] * 5
    assert reads.seen == [0, 1]  # two reads for six callers
    assert reads.started.empty()


async def test_fresh_reads_of_other_keys_do_not_wait_for_each_other() -> None:
    release = asyncio.Event()

    async def read(key: str) -> str:
        if key == "slow":
            await release.wait()
        return key

    fresh: FreshReads[str, str] = FreshReads(read)
    slow = asyncio.ensure_future(fresh("slow"))
    assert await fresh("quick") == "quick"
    release.set()
    assert await slow == "slow"


async def test_a_fresh_read_error_reaches_its_callers_and_a_quitter_cancels_nothing() -> None:
    reads = Reads()
    fresh: FreshReads[str, int] = FreshReads(reads)
    first = asyncio.ensure_future(fresh("k"))
    gate = await asyncio.wait_for(reads.started.get(), 5)
    reads.fail_next = True  # the next read fails
    quitter = asyncio.ensure_future(fresh("k"))
    stayer = asyncio.ensure_future(fresh("k"))
    await asyncio.sleep(0)  # one turn of the loop: both tasks run to their wait
    quitter.cancel()
    gate.set()
    assert await first == 0
    await reads.let_one_end()
    with pytest.raises(ConnectionError):
        await stayer
    with pytest.raises(asyncio.CancelledError):
        await quitter
    later = asyncio.ensure_future(fresh("k"))
    await reads.let_one_end()
    assert await later == 0
