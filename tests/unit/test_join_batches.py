"""Joins of one room that a node takes together enter it together (rooms.feature): one presence
write and one announcement for them all, the checks and the capacity applied to each as if it
had joined alone, and one entrant's failure never another's."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import TIMEOUT, Client, connect, create_room, drain, running
from support.waiting import eventually

from hub.auth import Role
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import each_entrant_part
from rooms.model import Room


def record_presence_writes(client: Client) -> list[list[str]]:
    """The sids of each presence write of the client's node, as they happen."""
    broker = client.hub.node.broker
    real = broker.presence_add_many
    writes: list[list[str]] = []

    async def recording(room: str, entries: dict[str, bytes], **options: Any) -> int:
        writes.append(list(entries))
        return await real(room, entries, **options)

    broker.presence_add_many = recording  # type: ignore[method-assign]
    return writes


async def test_joins_taken_together_enter_with_one_presence_write() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        watcher = await connect(hub2, "watcher")
        await watcher.ok("join", room="p")
        heard: list[str] = []
        real_joined = hub2.rooms.batcher.joined

        def hearing(room: str, entry: Any) -> None:
            heard.append(entry["user"])
            real_joined(room, entry)

        hub2.rooms.batcher.joined = hearing  # type: ignore[method-assign]
        people = [await connect(hub1, f"u{i}") for i in range(20)]
        writes = record_presence_writes(people[0])

        replies = await asyncio.gather(*(person.ok("join", room="p") for person in people))

        assert all(reply["role"] == "attendee" for reply in replies)
        assert sorted(sid for write in writes for sid in write) == sorted(p.sid for p in people)
        assert len(writes) < len(people)
        assert max(reply["members"] for reply in replies) == 21
        await eventually(lambda: len(heard) >= 20, what="the joins heard on the other node")
        assert sorted(heard) == sorted(f"u{i}" for i in range(20))


async def test_a_batch_fills_a_room_up_to_its_capacity_in_order() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="small", kind="workshop", title="S", capacity=3)
        people = [await connect(hub, f"u{i}") for i in range(5)]
        mod = await connect(hub, "mod", rooms={"small": Role.MODERATOR})

        replies = await asyncio.gather(
            *(person.call("join", room="small") for person in [*people, mod])
        )

        assert ["ok" in reply for reply in replies] == [True, True, True, False, False, True]
        assert [reply["err"]["code"] for reply in replies[3:5]] == ["conflict", "conflict"]
        assert {"small" in person.session.rooms for person in people[3:]} == {False}
        assert (await mod.ok("presence", room="small"))["count"] == 4


async def test_a_refused_entrant_leaves_the_others_of_its_batch_in() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        mod = await connect(hub, "mod", rooms={"p": Role.MODERATOR})
        troll = await connect(hub, "troll")
        await troll.ok("join", room="p")
        await mod.ok("kick", room="p", user="troll", ban=True)
        troll = await connect(hub, "troll")
        others = [await connect(hub, f"u{i}") for i in range(3)]

        replies = await asyncio.gather(*(c.call("join", room="p") for c in [troll, *others]))

        assert replies[0]["err"]["code"] == "forbidden"
        assert all("ok" in reply for reply in replies[1:])
        assert "p" not in troll.session.rooms


async def test_a_join_whose_snapshot_fails_fails_alone() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")

        async def failing_for_bad(ctx: CommandContext, room: Room, role: Role) -> dict[str, Any]:
            if ctx.identity.user_id == "bad":
                raise HubError("conflict", "not you")
            return {}

        hub.rooms.hooks.snapshot.append(each_entrant_part(failing_for_bad))
        bad = await connect(hub, "bad")
        good = [await connect(hub, f"u{i}") for i in range(3)]

        replies = await asyncio.gather(*(c.call("join", room="p") for c in [bad, *good]))

        assert replies[0]["err"]["code"] == "conflict"
        assert all("ok" in reply for reply in replies[1:])
        assert "p" not in bad.session.rooms
        assert (await good[0].ok("presence", room="p"))["count"] == 3


async def test_one_session_joining_twice_at_once_gets_both_replies() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        ada = await connect(hub, "ada")
        dispatch = hub.dispatcher.dispatch

        await asyncio.wait_for(
            asyncio.gather(
                dispatch(ada.session, {"id": 41, "op": "join", "room": "p"}),
                dispatch(ada.session, {"id": 42, "op": "join", "room": "p"}),
            ),
            TIMEOUT,
        )

        replies = {m["re"]: m for m in drain(ada.session) if "re" in m}
        assert set(replies) == {41, 42}
        assert all("ok" in reply for reply in replies.values())
        assert (await ada.ok("presence", room="p"))["count"] == 1
