"""The sweep of dead nodes when Redis was away, in process on memory brokers with a stepped
clock: heartbeats expire during an outage for every node alike, so a node sweeps nobody until it
has beaten without a break for ``BEAT_TTL`` seconds, and then only those still silent."""

from __future__ import annotations

from typing import Any

import pytest

from hub.app import Hub
from hub.auth import Role
from hub.broker import BrokerUnavailable
from rooms.dead_nodes import BEAT_INTERVAL, BEAT_TTL, DeadNodes, beat_key
from tests.unit.helpers import connect, create_room, running


def dead_nodes(hub: Hub) -> DeadNodes:
    """The hub's installed heartbeat and sweep."""
    return next(f for f in hub.features if isinstance(f, DeadNodes))


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def silent() -> None:
    """A beat that does nothing: the node it replaces is silent."""


async def members_of(hub: Hub, room: str) -> list[str]:
    return [sid for sid, _ in await hub.node.broker.presence_page(room, "", 100)]


async def outage(monkeypatch: pytest.MonkeyPatch, hub: Hub, clock: Clock, seconds: float) -> None:
    """Redis away for ``seconds``: the hub's beats fail meanwhile (its periodic ones too)."""
    store = hub.node.store
    put = store.put

    async def unavailable(key: str, value: bytes, **kwargs: Any) -> None:
        raise BrokerUnavailable("redis unavailable")

    monkeypatch.setattr(store, "put", unavailable)
    steps = round(seconds / BEAT_INTERVAL)
    for _ in range(steps):
        clock.now += BEAT_INTERVAL
        with pytest.raises(BrokerUnavailable):
            await dead_nodes(hub).tick()
    monkeypatch.setattr(store, "put", put)


@pytest.mark.parametrize("beats_again", [True, False])
async def test_after_an_outage_a_node_sweeps_only_who_stays_silent_while_it_beats_steadily(
    monkeypatch: pytest.MonkeyPatch, beats_again: bool
) -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        clock = Clock()
        survivor, other = dead_nodes(hub1), dead_nodes(hub2)
        survivor.clock = other.clock = clock
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "w", "workshop")
        ann = await connect(hub2, "ann")
        await ann.ok("join", room="w")
        # n2 beats only when the test says so (its own timer must not keep it alive).
        beat = other.beat
        monkeypatch.setattr(other, "beat", silent)
        await beat()
        for _ in range(round(BEAT_TTL / BEAT_INTERVAL) + 1):
            await survivor.tick()
            clock.now += BEAT_INTERVAL
        assert survivor.steady()

        # Redis is away longer than a heartbeat lives: n2's expired too.
        await outage(monkeypatch, hub1, clock, BEAT_TTL + 2 * BEAT_INTERVAL)
        await hub1.node.store.delete(beat_key("n2"))

        # Back: n1 beats again, but it is not steady yet: a silent n2 proves nothing.
        for step in range(round(BEAT_TTL / BEAT_INTERVAL)):
            assert not survivor.steady()
            await survivor.tick()
            assert await members_of(hub1, "w") == [ann.sid]
            if step == 1 and beats_again:
                await beat()  # n2 was alive all along: its timer beats once Redis is back
            clock.now += BEAT_INTERVAL
        await survivor.tick()
        assert survivor.steady()
        # Steady now: n2 stays unless it stayed silent all that time.
        assert await members_of(hub1, "w") == ([ann.sid] if beats_again else [])
