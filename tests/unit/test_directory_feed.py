"""The lobby's live directory (rooms.directory_feed): ``room.list``'s stages, the lobby's
``rooms`` snapshot and the periodic ``rooms`` event, on in-process hubs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub.app import Hub
from hub.auth import Role
from hub.codec import EncodedEvent
from rooms import directory_feed
from rooms.directory_feed import directory_entries, rooms_event
from rooms.model import Room, RoomKind
from rooms.roles import RoleEntry, on_stage
from tests.unit.helpers import Client, connect, create_room, running

LOBBY = {"id": "main", "kind": "lobby", "title": "Main hall", "parent": None}


def rooms_events(client: Client) -> list[dict[str, Any]]:
    return [event for event in client.collect() if event.get("ev") == "rooms"]


def count_reads(hub: Hub) -> Counter[str]:
    """Count the broker and store calls of ``hub``'s node from now on, by method name."""
    calls: Counter[str] = Counter()
    for target, names in (
        (hub.node.broker, ("presence_count", "presence_page")),
        (hub.node.store, ("hash_get_all", "hash_get")),
    ):
        for name in names:
            real: Callable[..., Awaitable[Any]] = getattr(target, name)

            def counted(*args: Any, _real: Any = real, _name: str = name) -> Awaitable[Any]:
                calls[_name] += 1
                return _real(*args)  # type: ignore[no-any-return]

            setattr(target, name, counted)
    return calls


# --- pure ----------------------------------------------------------------------------------------


def test_directory_entries_give_panels_a_stage() -> None:
    rooms = [
        Room("main", RoomKind.LOBBY, "Main hall"),
        Room("p", RoomKind.PANEL, "Panel"),
        Room("q", RoomKind.PANEL, "Quiet"),
        Room("w", RoomKind.WORKSHOP, "WS"),
        Room("w.b1", RoomKind.BREAKOUT, "Room 1", parent="w"),
    ]
    stage = [{"user": "ada", "name": "Ada"}]
    counts = {"main": 3, "p": 2, "w.b1": 4}
    assert directory_entries(rooms, counts, {"p": stage, "w": stage}) == [
        {**LOBBY, "members": 3},
        {
            "id": "p",
            "kind": "panel",
            "title": "Panel",
            "parent": None,
            "members": 2,
            "in_breakouts": 0,
            "stage": stage,
        },
        {
            "id": "q",
            "kind": "panel",
            "title": "Quiet",
            "parent": None,
            "members": 0,
            "in_breakouts": 0,
            "stage": [],
        },
        # Breakout rooms are not listed: their parent counts who is in them.
        {
            "id": "w",
            "kind": "workshop",
            "title": "WS",
            "parent": None,
            "members": 0,
            "in_breakouts": 4,
        },
    ]
    assert rooms_event("main", []) == {"ev": "rooms", "room": "main", "rooms": []}


def test_on_stage_lists_speakers_only() -> None:
    entries = [
        RoleEntry("a", Role.SPEAKER, "A"),
        RoleEntry("b", Role.MODERATOR, "B"),
        RoleEntry("c", Role.ATTENDEE, "C"),
        RoleEntry("d", Role.SPEAKER, "D"),
    ]
    assert on_stage(entries) == [{"user": "a", "name": "A"}, {"user": "d", "name": "D"}]


# --- room.list and the lobby snapshot ------------------------------------------------------------


async def test_room_list_shows_who_is_on_a_panels_stage() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "panel", "panel")
        await create_room(org, "ws", "workshop")
        # Made speaker by role.set, and a speaker by token recorded at their join.
        await org.ok("role.set", room="panel", user="ada", role="speaker")
        bob = await connect(hub, "bob", rooms={"panel": Role.SPEAKER, "ws": Role.SPEAKER})
        await bob.ok("join", room="panel")
        await bob.ok("join", room="ws")
        await org.ok("role.set", room="panel", user="cat", role="moderator")
        listed = {room["id"]: room for room in (await org.ok("room.list"))["rooms"]}
        assert listed["panel"]["stage"] == [
            {"user": "ada", "name": "ada"},
            {"user": "bob", "name": "bob"},
        ]
        assert listed["panel"]["members"] == 1
        assert "stage" not in listed["ws"]
        assert "stage" not in listed["main"]
        # Stepping down leaves the stage.
        await bob.ok("role.set", room="panel", user="bob", role="attendee")
        listed = {room["id"]: room for room in (await org.ok("room.list"))["rooms"]}
        assert listed["panel"]["stage"] == [{"user": "ada", "name": "ada"}]


async def test_only_a_lobby_snapshot_carries_the_rooms() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "panel", "panel")
        joined = await org.ok("join", room="main")
        assert joined["snapshot"]["rooms"] == (await org.ok("room.list"))["rooms"]
        assert [room["id"] for room in joined["snapshot"]["rooms"]] == ["main", "panel"]
        assert joined["snapshot"]["rooms"][0]["members"] == 1
        assert "rooms" not in (await org.ok("join", room="panel"))["snapshot"]


# --- the rooms event -----------------------------------------------------------------------------


async def test_lobby_members_get_the_list_when_it_changes_on_any_node() -> None:
    async with running("a", "b") as [a, b]:
        ada = await connect(a, "ada")
        await ada.ok("join", room="main")
        cat = await connect(a, "cat")
        joined = await cat.ok("join", room="main")
        await a.directory_feed.tick()
        # cat's join changed the count after ada's snapshot: both get the current list.
        for member in (ada, cat):
            [event] = rooms_events(member)
            assert event == {"ev": "rooms", "room": "main", "rooms": joined["snapshot"]["rooms"]}
        await a.directory_feed.tick()
        assert rooms_events(ada) == []  # nothing changed: nothing sent

        org = await connect(b, "org", Role.ORGANIZER)
        await create_room(org, "panel", "panel")
        await a.directory_feed.tick()
        [event] = rooms_events(ada)
        assert [room["id"] for room in event["rooms"]] == ["main", "panel"]
        assert event["rooms"][1]["stage"] == []

        await org.ok("role.set", room="panel", user="bob", role="speaker")
        bob = await connect(b, "bob")
        await bob.ok("join", room="panel")
        await a.directory_feed.tick()
        [event] = rooms_events(ada)
        assert event["rooms"][1]["members"] == 1
        assert event["rooms"][1]["stage"] == [{"user": "bob", "name": "bob"}]
        assert rooms_events(cat)[-1] == event

        await bob.ok("leave", room="panel")
        await a.directory_feed.tick()
        [event] = rooms_events(ada)
        assert event["rooms"][1]["members"] == 0
        # Node b has no lobby members: it sends nothing.
        await b.directory_feed.tick()
        assert rooms_events(bob) == [] and rooms_events(org) == []


async def test_the_first_lobby_member_gets_no_event_until_the_list_changes() -> None:
    async with running() as [hub]:
        ada = await connect(hub, "ada")
        await ada.ok("join", room="main")
        await hub.directory_feed.tick()
        assert rooms_events(ada) == []


async def test_a_joiner_with_a_list_the_others_lack_makes_the_next_check_send() -> None:
    async with running() as [hub]:
        ada, bob = await connect(hub, "ada"), await connect(hub, "bob")
        await ada.ok("join", room="main")
        await hub.directory_feed.tick()
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "panel", "panel")
        # bob's snapshot has the panel, ada's list does not: the next check sends it although
        # it equals bob's snapshot.
        joined = await bob.ok("join", room="main")
        await hub.directory_feed.tick()
        for member in (ada, bob):
            assert rooms_events(member) == [
                {"ev": "rooms", "room": "main", "rooms": joined["snapshot"]["rooms"]}
            ]


async def test_every_lobby_room_gets_its_own_event_from_one_read() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "hall-2", "lobby")
        ada, bob = await connect(hub, "ada"), await connect(hub, "bob")
        await ada.ok("join", room="main")
        await bob.ok("join", room="hall-2")
        await create_room(org, "panel", "panel")
        reads = count_reads(hub)
        await hub.directory_feed.tick()
        assert reads["hash_get_all"] == 1 + 2  # the rooms, the panel's two role hashes
        assert reads["presence_count"] == 3
        [to_ada], [to_bob] = rooms_events(ada), rooms_events(bob)
        assert (to_ada["room"], to_bob["room"]) == ("main", "hall-2")
        assert to_ada["rooms"] == to_bob["rooms"]


@pytest.mark.parametrize("members", [1, 40])
async def test_a_check_reads_per_room_not_per_member(
    members: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        for room, kind in (("p1", "panel"), ("p2", "panel"), ("ws", "workshop")):
            await create_room(org, room, kind)
        clients = [await connect(hub, f"u{i}") for i in range(members)]
        for client in clients:
            await client.ok("join", room="main")
        await create_room(org, "later", "workshop")  # a change to send
        encodings: list[dict[str, Any]] = []

        class CountedEvent(EncodedEvent):
            def __init__(self, message: Any) -> None:
                encodings.append(message)
                super().__init__(message)

        monkeypatch.setattr(directory_feed, "EncodedEvent", CountedEvent)
        reads = count_reads(hub)
        await hub.directory_feed.tick()
        # 5 rooms: one hash of rooms, a count each, two role hashes per panel.
        assert reads == Counter({"hash_get_all": 1 + 2 * 2, "presence_count": 5})
        assert len(encodings) == 1
        assert all(len(rooms_events(client)) == 1 for client in clients)


async def test_a_node_without_lobby_members_reads_nothing() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "panel", "panel")
        await org.ok("join", room="panel")
        reads = count_reads(hub)
        await hub.directory_feed.tick()
        assert sum(reads.values()) == 0
        assert rooms_events(org) == []


async def test_members_who_left_the_lobby_get_nothing() -> None:
    async with running() as [hub]:
        ada, bob = await connect(hub, "ada"), await connect(hub, "bob")
        await ada.ok("join", room="main")
        await bob.ok("join", room="main")
        await bob.ok("leave", room="main")
        await hub.directory_feed.tick()
        assert len(rooms_events(ada)) == 1  # the count changed
        assert rooms_events(bob) == []


async def test_joins_during_a_read_of_the_list_share_it() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "panel", "panel")
        clients = [await connect(hub, f"u{i}") for i in range(20)]
        directory = hub.rooms.directory
        real_all = directory.all
        reads = 0

        async def counted_all() -> list[Room]:
            nonlocal reads
            reads += 1
            return await real_all()

        directory.all = counted_all  # type: ignore[method-assign]
        joined = await asyncio.gather(*(client.ok("join", room="main") for client in clients))
        # Far fewer reads of the list than joins, and every snapshot has a whole list.
        assert 1 <= reads < len(clients) // 2
        for reply in joined:
            assert [room["id"] for room in reply["snapshot"]["rooms"]] == ["main", "panel"]
