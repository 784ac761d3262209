"""When the broker loses its data (Redis back empty), a node restores what it still knows."""

from __future__ import annotations

from helpers import connect, create_room, running

from hub.auth import Role
from hub.memory import MemoryBroker


async def test_rooms_and_presence_come_back_after_the_broker_lost_them() -> None:
    async with running("n1") as (hub,):
        member = await connect(hub, "ada")
        await member.ok("join", room="main")
        broker = hub.node.broker
        assert isinstance(broker, MemoryBroker)
        backend = broker.backend
        # What an empty Redis looks like: no rooms, no presence, a new epoch for the stream.
        backend.hashes.clear()
        backend.presence.clear()
        del backend.streams["main"]
        epoch, _ = await broker.head("main")

        hub.node.receive_epoch("main", epoch)
        await hub.rooms.restore("main")  # what the hook runs in the background

        assert await hub.rooms.directory.get("main") is not None
        assert [room.id for room in await hub.rooms.directory.all()] == ["main"]
        assert await broker.presence_count("main") == 1
        assert any(ev.get("ev") == "reset" for ev in member.collect())


async def test_a_panels_stage_comes_back_after_the_broker_lost_it() -> None:
    async with running("n1") as (hub,):
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "panel", "panel")
        speaker = await connect(hub, "spk", rooms={"panel": Role.SPEAKER})
        await speaker.ok("join", room="panel")
        await (await connect(hub, "ada")).ok("join", room="panel")
        broker = hub.node.broker
        store = hub.node.store
        assert isinstance(broker, MemoryBroker)
        broker.backend.hashes.clear()

        await hub.signalling._restore_stage("panel")  # what the hook runs in the background

        assert set(await store.hash_get_all("stage:panel")) == {speaker.sid}
