"""Breakouts in process, on two nodes sharing a memory broker: opening (random, manual, self),
who may join which child, broadcasts, closing by a moderator and by the timer (once, with the
warning before)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hub.auth import Role
from hub.codec import unpack
from tests.support.waiting import eventually
from tests.unit.helpers import Client, connect, next_event, running


async def _workshop(hubs: list[Any], people: int) -> tuple[Client, list[Client]]:
    """A workshop ``ws`` with a moderator (on the first node) and ``people`` attendees spread
    over the nodes, everyone joined."""
    boss = await connect(hubs[0], "boss", Role.ORGANIZER)
    await boss.ok("room.create", room="ws", kind="workshop", title="Workshop")
    mod = await connect(hubs[0], "mod", rooms={"ws": Role.MODERATOR})
    await mod.ok("join", room="ws")
    members = []
    for i in range(people):
        client = await connect(hubs[i % len(hubs)], f"u{i}")
        await client.ok("join", room="ws")
        members.append(client)
    return mod, members


async def test_random_round_balances_members_and_tells_each_their_room() -> None:
    async with running("n1", "n2") as hubs:
        mod, members = await _workshop(hubs, 9)
        opened = await mod.ok("breakout.open", room="ws", count=3, assign="random")
        assert [room["id"] for room in opened["rooms"]] == ["ws.b1", "ws.b2", "ws.b3"]
        assert [room["title"] for room in opened["rooms"]] == ["Room 1", "Room 2", "Room 3"]
        assignments = opened["assignments"]
        assert sorted(assignments) == sorted(f"u{i}" for i in range(9))  # not the moderator
        assert sorted(Counter(assignments.values()).values()) == [3, 3, 3]

        for client in members:
            user = client.session.user_id
            event = await next_event(client, "breakouts")
            assert event["seq"] == opened["seq"] and event["rooms"] == opened["rooms"]
            told = await next_event(client, "breakout.assigned")
            assert told == {"ev": "breakout.assigned", "room": "ws", "breakout": assignments[user]}

        # Everyone goes to their own room; nobody else's.
        for client in members:
            mine = assignments[client.session.user_id]
            other = next(room for room in ("ws.b1", "ws.b2", "ws.b3") if room != mine)
            assert await client.err("join", room=other) == "forbidden"
            reply = await client.ok("join", room=mine)
            assert reply["room"] == {
                "id": mine,
                "kind": "breakout",
                "title": f"Room {mine[-1]}",
                "parent": "ws",
            }
            assert reply["snapshot"]["breakouts"]["assigned"] == mine
        for child in ("ws.b1", "ws.b2", "ws.b3"):
            await mod.ok("join", room=child)  # moderators go anywhere
        # A late arrival has no assignment and may pick.
        late = await connect(hubs[1], "late")
        await late.ok("join", room="ws.b2")


async def test_open_is_for_moderators_of_workshops_and_panels_once_at_a_time() -> None:
    async with running() as hubs:
        mod, [attendee] = await _workshop(hubs, 1)
        assert await attendee.err("breakout.open", room="ws", count=2, assign="self") == "forbidden"
        assert await mod.err("breakout.open", room="ws", count=0, assign="self") == "bad_request"
        assert await mod.err("breakout.open", room="ws", count=2, assign="x") == "bad_request"
        assert await mod.err("breakout.open", room="nope", count=2, assign="self") == "not_found"
        boss = await connect(hubs[0], "boss", Role.ORGANIZER)
        assert await boss.err("breakout.open", room="main", count=2, assign="self") == (
            "bad_request"
        )
        await mod.ok("breakout.open", room="ws", count=2, assign="self")
        assert await mod.err("breakout.open", room="ws", count=2, assign="self") == "conflict"
        assert await boss.err("room.create", room="ws.b9", kind="workshop") == "bad_request"


async def test_manual_and_self_assignment() -> None:
    async with running("n1", "n2") as hubs:
        mod, [a, b, c] = await _workshop(hubs, 3)
        opened = await mod.ok(
            "breakout.open",
            room="ws",
            titles=["Design", "Build"],
            assign="manual",
            assignments={"u0": 2, "u1": "ws.b1"},
        )
        assert opened["assignments"] == {"u0": "ws.b2", "u1": "ws.b1"}
        assert (await next_event(a, "breakout.assigned"))["breakout"] == "ws.b2"
        assert await a.err("join", room="ws.b1") == "forbidden"
        assert (await b.ok("join", room="ws.b1"))["room"]["title"] == "Design"
        await c.ok("join", room="ws.b1")  # not assigned: free to choose
        await mod.ok("breakout.close", room="ws")

        await mod.ok("breakout.open", room="ws", count=2, assign="self")
        await eventually(lambda: "ws.b1" not in b.session.rooms, what="b back from ws.b1")
        await a.ok("join", room="ws.b1")
        await b.ok("join", room="ws.b2")


async def test_broadcast_and_close_return_everyone_to_the_parent() -> None:
    async with running("n1", "n2") as hubs:
        mod, members = await _workshop(hubs, 4)
        opened = await mod.ok("breakout.open", room="ws", count=2, assign="random")
        for client in members:
            await client.ok("join", room=opened["assignments"][client.session.user_id])
        assert await members[0].err("breakout.broadcast", room="ws", text="hi") == "forbidden"
        sent = await mod.ok("breakout.broadcast", room="ws", text="Five minutes left")
        assert sorted(sent["rooms"]) == ["ws.b1", "ws.b2"]
        for client in members:
            notice = await next_event(client, "notice")
            assert notice["text"] == "Five minutes left" and notice["from"] == "mod"
            assert notice["room"] == opened["assignments"][client.session.user_id]

        closed = await mod.ok("breakout.close", room="ws")
        for client in members:
            child = opened["assignments"][client.session.user_id]
            event = await next_event(client, "breakout.closed")
            assert event["room"] == child and event["parent"] == "ws"
            back = await next_event(client, "breakouts", room="ws")
            assert back["rooms"] == [] and back["seq"] == closed["seq"]
        for client in members:
            await eventually(
                lambda c=client: c.session.rooms == {"ws"}, what="everyone back in the parent"
            )
        assert await members[0].err("join", room="ws.b1") == "closed"
        assert await mod.err("breakout.close", room="ws") == "not_found"
        assert (await members[0].ok("join", room="ws"))["snapshot"]["breakouts"] is None


async def test_the_timer_warns_then_closes_once_across_nodes() -> None:
    async with running("n1", "n2", breakout_warning=0.5) as hubs:
        mod, members = await _workshop(hubs, 4)
        opened = await mod.ok("breakout.open", room="ws", count=2, assign="random", duration=1.5)
        assert opened["ends_at"] > 0
        # Both nodes know the round (one opened it, the other follows the parent).
        await eventually(lambda: all("ws" in hub.rooms.breakouts.rounds for hub in hubs))
        for client in members:
            await client.ok("join", room=opened["assignments"][client.session.user_id])
        for client in members:
            ending = await next_event(client, "breakout.ending")
            assert ending["parent"] == "ws" and ending["ends_at"] == opened["ends_at"]
            await next_event(client, "breakout.closed")
        await eventually(lambda: not any(hub.rooms.breakouts.rounds for hub in hubs))
        # Each child got exactly one warning and one closing event, the parent one closing.
        for child in ("ws.b1", "ws.b2"):
            assert await _stored(hubs[1], child) == ["breakout.ending", "breakout.closed"]
        assert await _stored(hubs[0], "ws") == ["breakouts", "breakouts"]


async def _stored(hub: Any, room: str) -> list[str]:
    """The names of the events stored in ``room``, in order."""
    history = await hub.node.broker.history(room, 0)
    return [unpack(event.body)["ev"] for event in history.events]
