"""The stage where nodes race or fail, in process on memory brokers: privileged checks that
read the stored role, concurrent loads of a room's roles, the roles a node drops when it stops
following a room, recorded token ranks that follow the token, stepping down, hands of sessions
that are gone, leaving when the broker fails, and the sweep that closes banned users whose close
message was lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.app import Hub
from hub.auth import Role
from hub.broker import BrokerUnavailable
from hub.errors import CloseCode
from rooms.roles import RoleEntry
from rooms.stage_ops import BAN_SWEEP_INTERVAL, BANNED_USERS
from tests.unit.helpers import (
    TIMEOUT,
    connect,
    create_room,
    next_event,
    queue_becomes,
    running,
)

# -- privileged checks read the stored role ----------------------------------------------------


async def test_a_demotion_stored_on_another_node_counts_before_its_event_arrives() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        mod = await connect(hub1, "mod", rooms={"p": Role.MODERATOR})
        ann = await connect(hub1, "ann")
        for client in (mod, ann):
            await client.ok("join", room="p")
        await boss.ok("role.set", room="p", user="ann", role="moderator")
        await next_event(ann, "role", user="ann")
        await ann.ok("announce", room="p", text="I may")

        # Stored by the other node; its event is never published.
        await hub2.rooms.roles.store("p", "ann", Role.ATTENDEE, "ann")
        await hub2.rooms.roles.store("p", "mod", Role.ATTENDEE, "mod")
        # The cache is behind: ann's stored role here is still moderator.
        assert hub1.rooms.roles.cached_role("ann", "p", Role.ATTENDEE) is Role.MODERATOR
        assert await ann.err("announce", room="p", text="no more") == "forbidden"
        assert await mod.err("announce", room="p", text="no more") == "forbidden"  # token mod
        assert await mod.err("kick", room="p", user="ann") == "forbidden"


async def test_an_attendees_check_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        ann = await connect(hub, "ann")
        await ann.ok("join", room="p")
        store = hub.node.store
        real_hash_get = store.hash_get
        read: list[str] = []

        async def counting(key: str, field: str) -> bytes | None:
            read.append(key)
            return await real_hash_get(key, field)

        monkeypatch.setattr(store, "hash_get", counting)
        assert await ann.err("announce", room="p", text="x") == "forbidden"
        assert "roles:p" not in read


def hold_roles_read(
    monkeypatch: pytest.MonkeyPatch, hub: Hub, room: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``hub``'s loads of ``room``'s stored roles (the reads of a node starting to follow
    it) wait: ``reading`` is set when one starts, and it goes on once ``release`` is set. The
    reads of a join's role check are not held."""
    book = hub.rooms.roles
    real_entries = book.entries
    reading, release = asyncio.Event(), asyncio.Event()

    async def held(key: str) -> list[RoleEntry]:
        if key == room:
            reading.set()
            await release.wait()
        return await real_entries(key)

    monkeypatch.setattr(book, "entries", held)
    return reading, release


# -- one load of a room's roles at a time --------------------------------------------------------


async def test_joins_during_a_slow_load_of_the_roles_get_the_stored_role(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        await boss.ok("role.set", room="p", user="ann", role="moderator")
        x = await connect(hub2, "x")
        ann = await connect(hub2, "ann")

        reading, release = hold_roles_read(monkeypatch, hub2, "p")
        book = hub2.rooms.roles
        real_load = book.load
        loads: list[str] = []
        second_load = asyncio.Event()

        async def counting_load(room: str) -> None:
            loads.append(room)
            if len(loads) == 2:
                second_load.set()
            await real_load(room)

        monkeypatch.setattr(book, "load", counting_load)
        first = asyncio.ensure_future(x.ok("join", room="p"))
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        # Ann's join waits for the room's entry under way; a move could load meanwhile.
        second = asyncio.ensure_future(ann.ok("join", room="p"))
        again = asyncio.ensure_future(book.load("p"))
        await asyncio.wait_for(second_load.wait(), TIMEOUT)
        release.set()
        replies = await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
        await asyncio.wait_for(again, TIMEOUT)
        assert [reply["role"] for reply in replies] == ["attendee", "moderator"]
        assert book.cached_role("ann", "p", Role.ATTENDEE) is Role.MODERATOR


# -- a node holds the roles of the rooms it follows, and only those --------------------------


async def test_a_room_forgotten_while_its_roles_load_is_not_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        await boss.ok("role.set", room="p", user="ann", role="moderator")
        reading, release = hold_roles_read(monkeypatch, hub, "p")
        book = hub.rooms.roles
        load = asyncio.ensure_future(book.load("p"))
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        book.forget("p")
        release.set()
        await asyncio.wait_for(load, TIMEOUT)
        assert book.cached_role("ann", "p", Role.ATTENDEE) is Role.ATTENDEE  # nothing held
        await book.load("p")
        assert book.cached_role("ann", "p", Role.ATTENDEE) is Role.MODERATOR


async def test_leaving_while_the_join_loads_the_roles_keeps_none_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        await boss.ok("role.set", room="p", user="ann", role="moderator")
        x = await connect(hub, "x")
        reading, release = hold_roles_read(monkeypatch, hub, "p")
        joining = asyncio.ensure_future(x.call("join", room="p"))
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        await x.ok("leave", room="p")
        release.set()
        await asyncio.wait_for(joining, TIMEOUT)
        assert "p" not in hub.node.streams
        assert hub.rooms.roles.cached_role("ann", "p", Role.ATTENDEE) is Role.ATTENDEE


async def test_a_failed_rejoin_that_ends_following_drops_the_roles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        await boss.ok("role.set", room="p", user="ann", role="moderator")
        x = await connect(hub, "x")
        await x.ok("join", room="p")
        book = hub.rooms.roles
        assert book.cached_role("ann", "p", Role.ATTENDEE) is Role.MODERATOR

        async def failing(room: str, since: int) -> Any:
            raise BrokerUnavailable("blip")

        monkeypatch.setattr(hub.node.broker, "history", failing)
        assert await x.err("join", room="p", since=0) == "unavailable"
        assert "p" not in hub.node.streams
        assert book.cached_role("ann", "p", Role.ATTENDEE) is Role.ATTENDEE


# -- recorded token ranks --------------------------------------------------------------------


async def test_a_token_moderator_recorded_as_speaker_before_ranks_as_moderator() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        mod = await connect(hub, "mod", rooms={"p": Role.MODERATOR})
        await mod.ok("join", room="p")
        before = await connect(hub, "tm", rooms={"p": Role.SPEAKER})
        await before.ok("join", room="p")
        await before.ok("leave", room="p")
        now = await connect(hub, "tm", rooms={"p": Role.MODERATOR})
        assert (await now.ok("join", room="p"))["role"] == "moderator"

        assert await mod.err("kick", room="p", user="tm") == "forbidden"
        snapshot = (await (await connect(hub, "viewer")).ok("join", room="p"))["snapshot"]
        assert {"user": "tm", "name": "tm"} in snapshot["moderators"]
        assert snapshot["speakers"] == []
        # Only role.set stores roles; a stored role wins over the recorded one.
        assert "tm" not in await hub.node.store.hash_get_all("roles:p")
        await boss.ok("role.set", room="p", user="tm", role="speaker")
        snapshot = (await (await connect(hub, "viewer2")).ok("join", room="p"))["snapshot"]
        assert snapshot["speakers"] == [{"user": "tm", "name": "tm"}]
        assert {"user": "tm", "name": "tm"} not in snapshot["moderators"]


# -- stepping down ---------------------------------------------------------------------------------


async def test_a_speaker_steps_down_but_not_up() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        spk = await connect(hub2, "spk", rooms={"p": Role.SPEAKER})
        assert (await spk.ok("join", room="p"))["role"] == "speaker"
        assert await spk.err("role.set", room="p", user="spk", role="moderator") == "forbidden"
        ack = await spk.ok("role.set", room="p", user="spk", role="attendee")
        event = await next_event(spk, "role", user="spk")
        assert event["seq"] == ack["seq"] and event["role"] == "attendee"
        assert await spk.err("role.set", room="p", user="spk", role="speaker") == "forbidden"
        again = await connect(hub1, "spk", rooms={"p": Role.SPEAKER})
        reply = await again.ok("join", room="p")
        assert reply["role"] == "attendee"
        assert reply["snapshot"]["speakers"] == []


# -- hands of sessions that are gone -------------------------------------------------------------


async def test_a_hand_whose_session_has_no_presence_any_more_leaves_the_queue() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        await boss.ok("join", room="p")
        a = await connect(hub2, "a")
        b = await connect(hub1, "b")
        for client in (a, b):
            await client.ok("join", room="p")
        await a.ok("hand.raise", room="p")
        await queue_becomes(boss, ["a"])

        # As when a's node dies: its presence entry goes (expires), nothing lowers the hand.
        await hub1.node.broker.presence_remove("p", [a.sid])
        await b.ok("hand.raise", room="p")
        await queue_becomes(boss, ["b"])
        assert sorted(await hub1.node.store.hash_get_all("hands:p")) == ["b"]
        late = await connect(hub2, "late")
        hands = (await late.ok("join", room="p"))["snapshot"]["hands"]
        assert [hand["user"] for hand in hands] == ["b"]


async def test_leaving_lowers_the_hand_even_when_the_broker_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        await boss.ok("join", room="p")
        a = await connect(hub, "a")
        await a.ok("join", room="p")
        await a.ok("hand.raise", room="p")
        await queue_becomes(boss, ["a"])

        async def failing(room: str, sids: Any, **options: Any) -> int:
            raise BrokerUnavailable("blip")

        monkeypatch.setattr(hub.node.broker, "presence_remove", failing)
        assert await a.err("leave", room="p") == "unavailable"
        assert "p" not in a.session.rooms
        await queue_becomes(boss, [])


# -- the ban sweep -----------------------------------------------------------------------------


async def test_the_sweep_closes_banned_users_whose_close_message_was_lost() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        bad = await connect(hub2, "bad")
        good = await connect(hub2, "good")
        # Stored without the close message: as if it was lost on the way.
        await hub1.node.store.set_add(BANNED_USERS, "bad")
        assert bad.session.open
        await hub2.stage.sweep_bans()
        assert bad.session.close_code is CloseCode.BANNED
        assert good.session.open
        assert (BAN_SWEEP_INTERVAL, hub2.stage.sweep_bans) in hub2.node._jobs


async def test_the_sweep_takes_room_banned_users_out_whose_kick_was_lost() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="p", kind="panel", title="Panel")
        troll = await connect(hub2, "troll")
        mod = await connect(hub2, "mod", rooms={"p": Role.MODERATOR})
        await troll.ok("join", room="p")
        await mod.ok("join", room="p")
        # The ban stored, its kick message lost; a moderator is never swept out.
        await hub1.node.store.set_add("bans:p", "troll")
        await hub1.node.store.set_add("bans:p", "mod")
        await hub2.stage.sweep_bans()
        assert "p" not in troll.session.rooms
        assert any(e.get("ev") == "kicked" for e in troll.collect())
        assert "p" in mod.session.rooms


async def test_the_sweep_reads_nothing_without_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running() as [hub]:
        calls: list[str] = []

        async def members(key: str) -> set[str]:
            calls.append(key)
            return set()

        monkeypatch.setattr(hub.node.store, "set_members", members)
        await hub.stage.sweep_bans()
        assert calls == []
