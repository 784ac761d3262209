"""rooms.shared_snapshot: the room-wide snapshot parts, run once for the joins asking together."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from hub.auth import Role
from hub.broker import BrokerUnavailable
from hub.errors import HubError
from hub.feature import RoomInfo
from rooms.shared_snapshot import SharedRoomSnapshots


@dataclass(frozen=True)
class FakeRoom:
    id: str
    kind: str = "panel"
    parent: str | None = None
    has_media: bool = False


class CountingPart:
    """A part that counts its runs and what state it saw when it read; with ``gated``, each
    run waits for :attr:`gate` after its read."""

    def __init__(self, *, gated: bool = False) -> None:
        self.runs: list[tuple[str, Role]] = []
        self.state = 0
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = asyncio.Event() if gated else None
        self.read = asyncio.Event()  # set by each run's read

    async def __call__(self, room: RoomInfo, role: Role) -> Mapping[str, Any]:
        self.runs.append((room.id, role))
        seen = self.state
        self.read.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {"state": seen}


async def test_joins_asking_in_one_iteration_share_one_run() -> None:
    part = CountingPart()
    shared = SharedRoomSnapshots([part])
    room = FakeRoom("p1")
    results = await asyncio.gather(*(shared.get(room, Role.ATTENDEE) for _ in range(50)))
    assert part.runs == [("p1", Role.ATTENDEE)]
    assert all(result == {"state": 0} for result in results)


async def test_rooms_and_roles_run_apart() -> None:
    part = CountingPart()
    shared = SharedRoomSnapshots([part])
    await asyncio.gather(
        shared.get(FakeRoom("p1"), Role.ATTENDEE),
        shared.get(FakeRoom("p1"), Role.MODERATOR),
        shared.get(FakeRoom("p2"), Role.ATTENDEE),
    )
    assert sorted(part.runs) == [
        ("p1", Role.ATTENDEE),
        ("p1", Role.MODERATOR),
        ("p2", Role.ATTENDEE),
    ]


async def test_a_join_asking_once_the_run_started_gets_a_run_that_reads_after_it_asked() -> None:
    part = CountingPart(gated=True)
    shared = SharedRoomSnapshots([part])
    room = FakeRoom("p1")
    first = shared.get(room, Role.ATTENDEE)
    await asyncio.wait_for(part.read.wait(), 5)  # the run started: its read happened
    assert len(part.runs) == 1
    part.state = 1  # a change acknowledged before the next join asks
    second = shared.get(room, Role.ATTENDEE)
    part.gate.set()
    assert await first == {"state": 0}
    assert await second == {"state": 1}
    assert len(part.runs) == 2


async def test_one_sharer_cancelled_leaves_the_others_their_result() -> None:
    part = CountingPart(gated=True)
    shared = SharedRoomSnapshots([part])
    room = FakeRoom("p1")
    gone = shared.get(room, Role.ATTENDEE)
    kept = shared.get(room, Role.ATTENDEE)
    await asyncio.wait_for(part.read.wait(), 5)
    gone.cancel()
    part.gate.set()
    assert await kept == {"state": 0}
    assert gone.cancelled()


async def test_a_failing_part_fails_every_sharer_with_its_own_copy() -> None:
    part = CountingPart()
    part.fail = HubError("unavailable", "the store is down")
    shared = SharedRoomSnapshots([part])
    room = FakeRoom("p1")
    results = await asyncio.gather(
        *(shared.get(room, Role.ATTENDEE) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, HubError) for result in results)
    assert len({id(result) for result in results}) == 3
    assert all(str(result) == "unavailable: the store is down" for result in results)
    # The next join runs the parts again.
    part.fail = None
    assert await shared.get(room, Role.ATTENDEE) == {"state": 0}


async def test_parts_merge_in_order_and_no_parts_give_nothing() -> None:
    async def first(room: RoomInfo, role: Role) -> Mapping[str, Any]:
        return {"a": 1, "b": 1}

    async def second(room: RoomInfo, role: Role) -> Mapping[str, Any]:
        return {"b": 2}

    assert await SharedRoomSnapshots([first, second]).get(FakeRoom("p"), Role.ATTENDEE) == {
        "a": 1,
        "b": 2,
    }
    assert await SharedRoomSnapshots([]).get(FakeRoom("p"), Role.ATTENDEE) == {}


async def test_closing_fails_the_runs_under_way_and_what_is_asked_then_as_unavailable() -> None:
    part = CountingPart(gated=True)
    shared = SharedRoomSnapshots([part])
    running = shared.get(FakeRoom("p1"), Role.ATTENDEE)
    await asyncio.wait_for(part.read.wait(), 5)
    assert len(part.runs) == 1
    asked = shared.get(FakeRoom("p2"), Role.ATTENDEE)  # its run has not started
    await shared.close()
    for waiting in (running, asked):
        with pytest.raises(BrokerUnavailable):
            await waiting
    with pytest.raises(BrokerUnavailable):
        await shared.get(FakeRoom("p1"), Role.ATTENDEE)
    assert len(part.runs) == 1  # the asked run never started
