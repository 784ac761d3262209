"""Coalesced derived events (hub.coalesce): announced changes reach every node's members as one
event read after the last change; one read per key in flight; failures keep the key owed; the
owed keys are bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.waiting import eventually
from unit.helpers import connect, running

from hub import coalesce
from hub.coalesce import CoalescedEvent, Derived, Mark
from hub.feature import FeatureContext


class Counter:
    """A toy feature: a per-room counter kept on the feature (shared by its nodes through the
    test), sent as ``count`` events."""

    def __init__(self, shared: dict[str, int], *, immediate: bool = False) -> None:
        self.shared = shared
        self.immediate = immediate
        self.reads = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    def install(self, ctx: FeatureContext) -> None:
        self.events = CoalescedEvent(ctx, "count", self.read, immediate=self.immediate)

    async def read(self, mark: Mark) -> Derived:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("broker down")
        return Derived({"ev": "count", "room": mark[0], "n": self.shared.get(mark[0], 0)})


def counts(events: list[dict[str, Any]]) -> list[int]:
    return [event["n"] for event in events if event.get("ev") == "count"]


async def test_changes_on_one_node_reach_every_node_once_per_flush() -> None:
    shared: dict[str, int] = {}
    features: list[Counter] = []

    def make() -> list[Counter]:
        features.append(Counter(shared))
        return [features[-1]]

    async with running("n1", "n2", extra=make) as [a, b]:
        ada, bob = await connect(a, "ada"), await connect(b, "bob")
        await ada.ok("join", room="main")
        await bob.ok("join", room="main")
        ada.collect(), bob.collect()
        for _ in range(50):
            shared["main"] = shared.get("main", 0) + 1
            features[0].events.changed_here(("main",))
        for feature in features:
            await feature.events.flush()
        assert counts(ada.collect()) == [50] and counts(bob.collect()) == [50]
        assert [feature.reads for feature in features] == [1, 1]
        for feature in features:
            await feature.events.flush()  # nothing changed: nothing read, nothing sent
        assert [feature.reads for feature in features] == [1, 1]


async def test_a_failed_send_stays_owed_and_others_still_go_out() -> None:
    shared = {"main": 1}
    counter = Counter(shared)
    async with running(extra=lambda: [counter]) as [hub]:
        ada = await connect(hub, "ada")
        await ada.ok("join", room="main")
        ada.collect()
        counter.events.changed(("main",))
        counter.fail = True
        with pytest.raises(RuntimeError, match="broker down"):
            await counter.events.flush()
        counter.fail = False
        await counter.events.flush()
        assert counts(ada.collect()) == [1]


async def test_immediate_events_have_one_read_in_flight_and_one_more_after_it() -> None:
    shared = {"main": 1}
    counter = Counter(shared, immediate=True)
    async with running(extra=lambda: [counter]) as [hub]:
        ada = await connect(hub, "ada")
        await ada.ok("join", room="main")
        ada.collect()
        counter.gate = asyncio.Event()
        await counter.events.announce(("main",))
        await eventually(lambda: counter.reads == 1)
        for n in range(2, 6):  # four changes while the first read waits
            shared["main"] = n
            await counter.events.announce(("main",))
        counter.gate.set()
        seen: list[int] = []

        def two_sent() -> bool:
            seen.extend(counts(ada.collect()))
            return len(seen) >= 2

        await eventually(two_sent, what="two count events")
        assert counter.reads == 2  # one more read for all four, and it saw the last
        assert seen[-1] == 5


async def test_owed_keys_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coalesce, "MAX_OWED", 3)
    counter = Counter({})
    async with running(extra=lambda: [counter]) as [_]:
        for room in ("a", "b", "c", "d", "e"):
            counter.events.changed((room,))
            counter.events.changed_here((room,))
        assert counter.events.dropped == 4  # two changes past the bound, each way
