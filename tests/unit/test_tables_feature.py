"""Lounge tables on in-process hubs sharing one memory backend (networking.table_feature): exact
seats under concurrent sits on two nodes, the seat a table room's join needs, releases (leave,
disconnect, an unused seat, a dead node), a person's seat moving to their new session, the
lobby's live list, and the tables' end when the event closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.app import Hub
from hub.auth import Role
from hub.memory import MemoryBroker
from networking.table_feature import (
    CLOSED_TEXT,
    MOVED_TEXT,
    SIT_GRACE,
    TableFeature,
    holders_key,
    seats_key,
)
from rooms.dead_nodes import DeadNodes
from tests.unit.helpers import TIMEOUT, Client, connect, new_session, next_event, running

ROOMS_FILE = """
[[tables]]
id = "t1"
title = "Rust corner"
topic = "Async and FFI"

[[tables]]
id = "t2"
title = "Duo"
seats = 2
"""


@pytest.fixture
def rooms_file(tmp_path: Path) -> str:
    path = tmp_path / "rooms.toml"
    path.write_text(ROOMS_FILE)
    return str(path)


@contextlib.asynccontextmanager
async def lounge(rooms_file: str, *nodes: str, **changes: Any) -> AsyncIterator[list[Hub]]:
    async with running(*(nodes or ("n1",)), rooms_file=rooms_file, **changes) as hubs:
        yield hubs


def tables_of(hub: Hub) -> TableFeature:
    return next(f for f in hub.features if isinstance(f, TableFeature))


async def seated(hub: Hub, table: str) -> set[str]:
    """The users the store shows at ``table`` (through the lobby's list)."""
    for entry in await tables_of(hub)._read_listing():
        if entry["id"] == table:
            return {person["user"] for person in entry["occupants"]}
    raise AssertionError(f"no table {table}")


async def sit_and_join(client: Client, table: str) -> None:
    await client.ok("table.sit", table=table)
    await client.ok("join", room=table)


async def tables_event_showing(client: Client, table: str, users: set[str]) -> dict[str, Any]:
    """The first ``tables`` event in which ``table`` seats exactly ``users``."""
    while True:
        event = await next_event(client, "tables", room="main")
        entry = next(entry for entry in event["tables"] if entry["id"] == table)
        if {person["user"] for person in entry["occupants"]} == users:
            return event


# --- seats ---------------------------------------------------------------------------------------


async def test_twenty_people_on_two_nodes_sitting_at_once_fill_exactly_six_seats(
    rooms_file: str,
) -> None:
    async with lounge(rooms_file, "n1", "n2") as [hub1, hub2]:
        people = [await connect((hub1, hub2)[i % 2], f"u{i}") for i in range(20)]
        # Every claim reaches the store before any is counted: all 20 adds, then the refusals.
        barrier = asyncio.Barrier(20)
        real = [(hub, hub.node.store.set_add_counted) for hub in (hub1, hub2)]
        for hub, real_add in real:

            async def together(key: str, member: str, _real: Any = real_add) -> tuple[bool, int]:
                await asyncio.wait_for(barrier.wait(), TIMEOUT)
                result: tuple[bool, int] = await _real(key, member)
                return result

            hub.node.store.set_add_counted = together  # type: ignore[method-assign]
        replies = await asyncio.gather(*(person.call("table.sit", table="t1") for person in people))
        for hub, real_add in real:
            hub.node.store.set_add_counted = real_add  # type: ignore[method-assign]
        sat = [person for person, reply in zip(people, replies, strict=True) if "ok" in reply]
        refused = [reply["err"]["code"] for reply in replies if "err" in reply]
        assert len(sat) == 6
        assert refused == ["conflict"] * 14
        assert await hub1.node.store.set_size(seats_key("t1")) == 6
        assert await seated(hub2, "t1") == {person.session.identity.user_id for person in sat}  # type: ignore[union-attr]
        for person in sat:
            await person.ok("join", room="t1")
        loser = next(person for person in people if person not in sat)
        assert await loser.err("join", room="t1") == "forbidden"
        assert await loser.err("table.sit", table="t1") == "conflict"
        assert await hub1.node.broker.presence_count("t1") == 6


async def test_a_table_room_needs_a_seat_and_sitting_twice_keeps_one(rooms_file: str) -> None:
    async with lounge(rooms_file) as [hub]:
        ada = await connect(hub, "ada")
        assert await ada.err("join", room="t1") == "forbidden"
        assert await ada.err("presence", room="t1") == "forbidden"
        first = await ada.ok("table.sit", table="t1")
        assert first == {"table": "t1", "seats": 6, "taken": 1}
        assert await ada.ok("table.sit", table="t1") == first
        joined = await ada.ok("join", room="t1")
        assert joined["room"]["kind"] == "table"
        assert "tables" not in joined["snapshot"]  # the lobby's part only
        # Seated at one table, in its room: another table must wait until it leaves.
        assert await ada.err("table.sit", table="t2") == "conflict"
        await ada.ok("leave", room="t1")
        assert await ada.ok("table.sit", table="t2") == {"table": "t2", "seats": 2, "taken": 1}
        # A seat never used moves along with the session's next sit.
        assert await ada.ok("table.sit", table="t1") == {"table": "t1", "seats": 6, "taken": 1}
        assert await seated(hub, "t2") == set()


async def test_sit_validates_its_table(rooms_file: str) -> None:
    async with lounge(rooms_file) as [hub]:
        ada = await connect(hub, "ada")
        assert await ada.err("table.sit") == "bad_request"
        assert await ada.err("table.sit", table="No Such") == "bad_request"
        assert await ada.err("table.sit", table="nope") == "not_found"
        assert await ada.err("table.sit", table="main") == "not_found"


async def test_leaving_or_disconnecting_frees_the_seat(rooms_file: str) -> None:
    async with lounge(rooms_file, "n1", "n2") as [hub1, hub2]:
        ada, bo, cy = (
            await connect(hub1, "ada"),
            await connect(hub2, "bo"),
            await connect(hub1, "cy"),
        )
        await sit_and_join(ada, "t2")
        await sit_and_join(bo, "t2")
        assert await cy.err("table.sit", table="t2") == "conflict"
        await ada.ok("leave", room="t2")
        await cy.ok("table.sit", table="t2")
        await hub2.node.remove_session(bo.session)
        dee = await connect(hub2, "dee")
        await dee.ok("table.sit", table="t2")
        assert await seated(hub1, "t2") == {"cy", "dee"}
        assert len(await hub1.node.store.hash_get_all(holders_key("t2"))) == 2


async def test_a_seat_never_used_is_released_after_the_grace(rooms_file: str) -> None:
    async with lounge(rooms_file) as [hub]:
        feature = tables_of(hub)
        now = [0.0]
        feature.clock = lambda: now[0]
        ada, bo = await connect(hub, "ada"), await connect(hub, "bo")
        await ada.ok("table.sit", table="t2")
        await sit_and_join(bo, "t2")
        await feature.reconcile()
        assert await seated(hub, "t2") == {"ada", "bo"}
        now[0] = SIT_GRACE + 1
        await feature.reconcile()
        assert await seated(hub, "t2") == {"bo"}
        assert await hub.node.store.set_size(seats_key("t2")) == 1
        assert await ada.err("join", room="t2") == "forbidden"


async def test_a_seat_nobody_holds_is_removed_at_the_second_check(rooms_file: str) -> None:
    async with lounge(rooms_file) as [hub]:
        feature = tables_of(hub)
        store = hub.node.store
        await store.set_add(seats_key("t2"), "lost-token")  # a claim cut short by a failure
        await feature.reconcile()
        assert await store.set_size(seats_key("t2")) == 1
        await feature.reconcile()
        assert await store.set_size(seats_key("t2")) == 0


async def test_a_dead_nodes_seats_are_released_by_the_sweep(rooms_file: str) -> None:
    async with lounge(rooms_file, "n1", "n2") as [hub1, hub2]:
        ada, bo = await connect(hub1, "ada"), await connect(hub2, "bo")
        await sit_and_join(ada, "t2")
        await bo.ok("table.sit", table="t2")  # not joined yet: released all the same
        sweeper = next(f for f in hub1.features if isinstance(f, DeadNodes))
        await sweeper.sweep("n2")
        assert await seated(hub1, "t2") == {"ada"}
        assert await hub1.node.store.set_size(seats_key("t2")) == 1


async def test_a_persons_new_session_takes_their_seat_over(rooms_file: str) -> None:
    async with lounge(rooms_file, "n1", "n2") as [hub1, hub2]:
        ada_old = await connect(hub1, "ada")
        bo = await connect(hub1, "bo")
        await sit_and_join(ada_old, "t2")
        await sit_and_join(bo, "t2")
        # The table is full; Ada reconnects on another node and rejoins the table directly.
        ada_new = await connect(hub2, "ada")
        await ada_new.ok("join", room="t2")
        left = await next_event(ada_old, "table.left", room="t2")
        assert (left["reason"], left["key"]) == ("moved", "table.moved")
        assert left["text"] == MOVED_TEXT
        assert await hub1.node.store.set_size(seats_key("t2")) == 2
        assert await seated(hub1, "t2") == {"ada", "bo"}
        await asyncio.wait_for(_until_out(ada_old, "t2"), 10)
        # The old session's leave released nothing: the seat is the new session's.
        assert await hub1.node.store.set_size(seats_key("t2")) == 2
        await ada_new.ok("leave", room="t2")
        assert await hub1.node.store.set_size(seats_key("t2")) == 1


async def _until_out(client: Client, room: str) -> None:
    while room in client.session.rooms:
        await client.session.queue.wait()
        client.collect()


async def test_guests_may_sit(rooms_file: str) -> None:
    async with lounge(rooms_file, guests=True) as [hub]:
        gus = Client(hub, new_session(hub))
        await gus.ok("hello", name="Gus")
        await sit_and_join(gus, "t2")


# --- the lobby's list ----------------------------------------------------------------------------


async def test_the_lobby_shows_the_tables_and_who_sits_there_live(rooms_file: str) -> None:
    async with lounge(rooms_file, "n1", "n2") as [hub1, hub2]:
        watcher = await connect(hub1, "watcher")
        snapshot = (await watcher.ok("join", room="main"))["snapshot"]
        assert snapshot["tables"] == [
            {
                "id": "t1",
                "title": "Rust corner",
                "topic": "Async and FFI",
                "seats": 6,
                "taken": 0,
                "occupants": [],
            },
            {"id": "t2", "title": "Duo", "topic": None, "seats": 2, "taken": 0, "occupants": []},
        ]
        assert (await watcher.ok("table.list"))["tables"] == snapshot["tables"]
        ada = await connect(hub2, "ada")
        await sit_and_join(ada, "t2")
        event = await tables_event_showing(watcher, "t2", {"ada"})
        entry = next(entry for entry in event["tables"] if entry["id"] == "t2")
        assert entry["occupants"] == [{"user": "ada", "name": "ada"}]
        assert entry["taken"] == 1
        await ada.ok("leave", room="t2")
        await tables_event_showing(watcher, "t2", set())
        # Someone joining the lobby later starts from the current list.
        late = await connect(hub2, "late")
        await sit_and_join(ada, "t1")
        late_tables = (await late.ok("join", room="main"))["snapshot"]["tables"]
        assert [entry["occupants"] for entry in late_tables] == [
            [{"user": "ada", "name": "ada"}],
            [],
        ]


# --- the event's close ---------------------------------------------------------------------------


async def test_closing_the_event_empties_the_tables_with_a_notice(rooms_file: str) -> None:
    async with lounge(rooms_file, "n1", "n2") as [hub1, hub2]:
        ada, bo = await connect(hub1, "ada"), await connect(hub2, "bo")
        org = await connect(hub1, "org", Role.ORGANIZER)
        cy = await connect(hub2, "cy")
        await sit_and_join(ada, "t1")
        await sit_and_join(bo, "t1")
        await cy.ok("table.sit", table="t2")
        await hub1.rooms.close_event("org", "Good night")
        await hub2.rooms.event.poll()  # the other node learns of it (its timer, run now)
        for client in (ada, bo):
            left = await next_event(client, "table.left", room="t1")
            assert (left["reason"], left["key"]) == ("closed", "table.closed")
            assert left["text"] == CLOSED_TEXT
            assert "t1" not in client.session.rooms
        store = hub1.node.store
        assert await store.set_size(seats_key("t1")) == 0
        assert await store.set_size(seats_key("t2")) == 0
        assert await store.hash_get_all(holders_key("t1")) == {}
        assert await ada.err("table.sit", table="t1") == "closed"
        assert await org.err("table.sit", table="t1") == "closed"
        assert await cy.err("join", room="t2") == "closed"


async def test_a_seat_that_goes_while_its_join_is_under_way_fails_the_join(
    rooms_file: str,
) -> None:
    async with lounge(rooms_file) as [hub]:
        feature = tables_of(hub)
        ada = await connect(hub, "ada")
        await ada.ok("table.sit", table="t2")
        real_add = hub.node.broker.presence_add_many

        async def seat_gone_meanwhile(room: str, entries: dict[str, bytes], **options: Any) -> Any:
            for sid in entries:
                await feature.release(sid)  # the grace ran out, the seat moved, the event closed
            return await real_add(room, entries, **options)

        hub.node.broker.presence_add_many = seat_gone_meanwhile  # type: ignore[method-assign]
        assert await ada.err("join", room="t2") == "forbidden"
        hub.node.broker.presence_add_many = real_add  # type: ignore[method-assign]
        assert "t2" not in ada.session.rooms
        assert await hub.node.broker.presence_count("t2") == 0
        assert await seated(hub, "t2") == set()


async def test_a_seat_whose_release_failed_is_released_at_the_second_check(
    rooms_file: str,
) -> None:
    async with lounge(rooms_file) as [hub]:
        feature = tables_of(hub)
        ada = await connect(hub, "ada")
        await sit_and_join(ada, "t2")
        await ada.ok("leave", room="t2")
        # As if the leave's release had reached the store only in part: the holder stays.
        await ada.ok("table.sit", table="t2")
        del feature._held[ada.sid]
        await feature.reconcile()
        assert await seated(hub, "t2") == {"ada"}
        await feature.reconcile()
        assert await seated(hub, "t2") == set()
        assert await hub.node.store.set_size(seats_key("t2")) == 0


async def test_seats_come_back_after_the_broker_lost_them(rooms_file: str) -> None:
    async with lounge(rooms_file) as [hub]:
        ada, bo = await connect(hub, "ada"), await connect(hub, "bo")
        await sit_and_join(ada, "t2")
        await sit_and_join(bo, "t2")
        broker = hub.node.broker
        assert isinstance(broker, MemoryBroker)
        broker.backend.hashes.clear()  # what an empty Redis looks like
        broker.backend.sets.clear()
        await hub.rooms.restore("t2")
        await tables_of(hub).restore("t2")  # what the hook runs in the background
        assert await seated(hub, "t2") == {"ada", "bo"}
        assert await hub.node.store.set_size(seats_key("t2")) == 2
        cy = await connect(hub, "cy")
        assert await cy.err("table.sit", table="t2") == "conflict"


async def test_a_seat_the_broker_lost_before_its_join_is_no_seat(rooms_file: str) -> None:
    async with lounge(rooms_file) as [hub]:
        ada = await connect(hub, "ada")
        await ada.ok("table.sit", table="t2")
        broker = hub.node.broker
        assert isinstance(broker, MemoryBroker)
        broker.backend.hashes.pop(holders_key("t2"))
        broker.backend.sets.pop(seats_key("t2"))
        assert await ada.err("join", room="t2") == "forbidden"
        await sit_and_join(ada, "t2")
        assert await seated(hub, "t2") == {"ada"}
