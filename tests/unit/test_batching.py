"""hub.batching: what is submitted for one key goes to one run at a time, in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from helpers import TIMEOUT

from hub.batching import KeyedBatches
from hub.broker import BrokerUnavailable


class Runs:
    """A batch run that records its batches, may wait at a gate and fails items named 'bad'."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.broken = False
        self.undone: list[tuple[str, str, str]] = []

    async def __call__(self, key: str, items: Sequence[str]) -> list[str | BaseException]:
        self.batches.append((key, list(items)))
        self.started.set()
        await self.gate.wait()
        if self.broken:
            raise ConnectionError("down")
        return [ValueError(item) if item == "bad" else f"{key}:{item}" for item in items]

    async def abandoned(self, key: str, item: str, result: str) -> None:
        self.undone.append((key, item, result))


async def test_items_of_one_iteration_go_in_one_batch_per_key() -> None:
    runs = Runs()
    batches: KeyedBatches[str, str, str] = KeyedBatches(runs)
    asked = [batches.submit("r", "a"), batches.submit("s", "b"), batches.submit("r", "c")]
    assert await asyncio.gather(*asked) == ["r:a", "s:b", "r:c"]
    assert sorted(runs.batches) == [("r", ["a", "c"]), ("s", ["b"])]


async def test_what_comes_while_a_batch_runs_goes_together_in_the_next() -> None:
    runs = Runs()
    runs.gate.clear()
    batches: KeyedBatches[str, str, str] = KeyedBatches(runs)
    first = batches.submit("r", "a")
    await asyncio.wait_for(runs.started.wait(), TIMEOUT)
    later = [batches.submit("r", item) for item in ("b", "c")]
    runs.gate.set()
    assert await first == "r:a"
    assert await asyncio.gather(*later) == ["r:b", "r:c"]
    assert runs.batches == [("r", ["a"]), ("r", ["b", "c"])]


async def test_each_item_gets_its_own_outcome_and_a_failed_run_fails_each() -> None:
    runs = Runs()
    batches: KeyedBatches[str, str, str] = KeyedBatches(runs)
    good, bad = batches.submit("r", "a"), batches.submit("r", "bad")
    assert await good == "r:a"
    with pytest.raises(ValueError, match="bad"):
        await bad
    runs.broken = True
    failed = await asyncio.gather(
        batches.submit("r", "x"), batches.submit("r", "y"), return_exceptions=True
    )
    assert all(isinstance(error, ConnectionError) for error in failed)
    assert failed[0] is not failed[1]


async def test_a_submitter_gone_before_its_batch_is_left_out_and_after_it_is_undone() -> None:
    runs = Runs()
    runs.gate.clear()
    batches: KeyedBatches[str, str, str] = KeyedBatches(runs, runs.abandoned)
    running = batches.submit("r", "a")
    await asyncio.wait_for(runs.started.wait(), TIMEOUT)
    waiting = batches.submit("r", "b")
    waiting.cancel()
    running.cancel()
    kept = batches.submit("r", "c")
    runs.gate.set()
    assert await kept == "r:c"
    assert runs.batches == [("r", ["a"]), ("r", ["c"])]
    assert runs.undone == [("r", "a", "r:a")]


async def test_closed_batches_fail_what_waits_and_what_comes_as_unavailable() -> None:
    runs = Runs()
    runs.gate.clear()
    batches: KeyedBatches[str, str, str] = KeyedBatches(runs)
    running = batches.submit("r", "a")
    await asyncio.wait_for(runs.started.wait(), TIMEOUT)
    waiting = batches.submit("r", "b")
    await batches.close()
    for future in (running, waiting, batches.submit("r", "c")):
        with pytest.raises(BrokerUnavailable):
            await future
