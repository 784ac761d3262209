"""Breakouts in process, on two nodes sharing a memory broker: opening (random, manual, self),
who may join which child, broadcasts, closing by a moderator and by the timer (once, with the
warning before), closes that fail midway or whose node died, and kicks and bans from the parent
reaching its children."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from hub.all_ended import all_ended
from hub.auth import Role
from hub.broker import EVERY_NODE_TOPIC, USER_TOPIC_PREFIX, BrokerUnavailable
from hub.codec import unpack
from rooms.breakout_ops import close_claim_key
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


async def test_one_broker_message_tells_each_assigned_session_on_every_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running("n1", "n2") as hubs:
        mod, [a, b] = await _workshop(hubs, 2)
        far = [await connect(hub, "u9") for hub in hubs]  # not in the workshop, on both nodes
        broker = hubs[0].node.broker
        publish = broker.publish_ephemeral
        topics: list[str] = []

        async def counted(topic: str, payload: bytes) -> None:
            topics.append(topic)
            await publish(topic, payload)

        monkeypatch.setattr(broker, "publish_ephemeral", counted)
        manual = {"u0": 1, "u9": 2}
        await mod.ok("breakout.open", room="ws", count=2, assign="manual", assignments=manual)
        assert topics.count(EVERY_NODE_TOPIC) == 1
        assert not [topic for topic in topics if topic.startswith(USER_TOPIC_PREFIX)]
        assert (await next_event(a, "breakout.assigned"))["breakout"] == "ws.b1"
        for client in far:
            told = await next_event(client, "breakout.assigned")
            assert told == {"ev": "breakout.assigned", "room": "ws", "breakout": "ws.b2"}
        # A node tells all of its sessions at once: b (unassigned, on the second node, as the
        # second of u9's sessions) got nothing, and nobody got it twice.
        for client in [a, b, *far]:
            assert [e for e in client.collect() if e.get("ev") == "breakout.assigned"] == []


async def test_a_round_opened_with_move_puts_everyone_in_the_parent_into_their_room() -> None:
    async with running("n1", "n2") as hubs:
        mod, members = await _workshop(hubs, 6)
        elsewhere = await connect(hubs[1], "u0")  # u0's second session, not in the workshop
        await elsewhere.ok("join", room="main")
        opened = await mod.ok("breakout.open", room="ws", count=2, assign="random", move=True)
        assignments = opened["assignments"]
        seqs: dict[str, int] = {}
        for client in members:
            mine = assignments[client.session.user_id]
            told = await next_event(client, "breakout.assigned")
            assert (told["room"], told["breakout"]) == ("ws", mine)
            joined = told["joined"]
            assert joined["room"]["id"] == mine and joined["role"] == "attendee"
            # Each node enters its own together: the count after the node's entry.
            assert 1 <= joined["members"] <= 3
            assert joined["snapshot"]["breakouts"]["assigned"] == mine
            assert client.session.rooms == {"ws", mine}
            seqs[client.session.sid] = joined["seq"]
        # A session that was not in the parent is told, not moved.
        told = await next_event(elsewhere, "breakout.assigned")
        assert "joined" not in told and elsewhere.session.rooms == {"main"}
        # Moved members are in the room: they count, hear each other and its events.
        room = assignments["u0"]
        mates = [c for c in members if assignments[c.session.user_id] == room]
        assert (await mates[0].ok("presence", room=room))["count"] == 3
        await mates[1].ok("chat.send", room=room, text="hello room")
        for client in mates:
            said = await next_event(client, "chat", room=room)
            assert said["text"] == "hello room" and said["seq"] > seqs[client.session.sid]
        # A join sent anyway (an older client) is a rejoin: nobody is counted twice.
        await mates[0].ok("join", room=room)
        assert (await mates[2].ok("presence", room=room))["count"] == 3
        await mod.ok("breakout.close", room="ws")
        await eventually(
            lambda: all(c.session.rooms == {"ws"} for c in members), what="everyone back in ws"
        )


async def test_a_session_the_move_cannot_enter_is_told_and_may_join_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running("n1", "n2") as hubs:
        mod, [a, b] = await _workshop(hubs, 2)
        # b was banned from ws.b2 in an earlier round (a later round reuses the ids).
        await mod.ok("breakout.open", room="ws", count=2, assign="self")
        await b.ok("join", room="ws.b2")
        host = await connect(hubs[0], "host", rooms={"ws.b2": Role.MODERATOR})
        await host.ok("kick", room="ws.b2", user="u1", ban=True)
        await mod.ok("breakout.close", room="ws")
        await eventually(lambda: b.session.rooms == {"ws"}, what="b back in ws only")

        async def broken(*args: object, **kwargs: object) -> int:
            raise BrokerUnavailable("presence is down (test)")

        # a's node fails to write presence: the move is undone and a is told plainly.
        monkeypatch.setattr(hubs[0].node.broker, "presence_add_many", broken)
        manual = {"u0": 1, "u1": 2}
        await mod.ok(
            "breakout.open", room="ws", count=2, assign="manual", assignments=manual, move=True
        )
        for client, child in ((a, "ws.b1"), (b, "ws.b2")):
            told = await next_event(client, "breakout.assigned")
            assert told == {"ev": "breakout.assigned", "room": "ws", "breakout": child}
            assert client.session.rooms == {"ws"} and client.session.held is None
        assert await b.err("join", room="ws.b2") == "forbidden"
        monkeypatch.undo()
        assert (await a.ok("join", room="ws.b1"))["members"] == 1


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
        # The same child ids, this round's titles, on either node.
        assert (await a.ok("join", room="ws.b1"))["room"]["title"] == "Room 1"
        assert (await b.ok("join", room="ws.b2"))["room"]["title"] == "Room 2"


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
        await eventually(
            lambda: all(c.session.rooms == {"ws"} for c in members),
            what="everyone back in the parent",
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
        await eventually(lambda: all("ws" in hub.breakouts.rounds for hub in hubs))
        for client in members:
            await client.ok("join", room=opened["assignments"][client.session.user_id])
        for client in members:
            ending = await next_event(client, "breakout.ending")
            assert ending["parent"] == "ws" and ending["ends_at"] == opened["ends_at"]
            await next_event(client, "breakout.closed")
        await eventually(lambda: not any(hub.breakouts.rounds for hub in hubs))
        # Nor does any node keep the closed round's decoded record.
        assert not any(hub.breakouts._records for hub in hubs)
        # Each child got exactly one warning and one closing event, the parent one closing.
        for child in ("ws.b1", "ws.b2"):
            assert await _stored(hubs[1], child) == ["breakout.ending", "breakout.closed"]
        assert await _stored(hubs[0], "ws") == ["breakouts", "breakouts"]


async def test_a_close_that_fails_midway_is_done_again_by_a_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running("n1", "n2") as hubs:
        mod, members = await _workshop(hubs, 2)
        opened = await mod.ok("breakout.open", room="ws", count=2, assign="random")
        for client in members:
            await client.ok("join", room=opened["assignments"][client.session.user_id])
        broker = hubs[0].node.broker
        real_publish = broker.publish
        failed: list[str] = []

        async def blip_once(room: str, body: bytes) -> Any:
            # The parent's closing event, after the children's: the close stops midway.
            if room == "ws" and unpack(body).get("rooms") == [] and not failed:
                failed.append(room)
                raise BrokerUnavailable("blip")
            return await real_publish(room, body)

        monkeypatch.setattr(broker, "publish", blip_once)
        assert await mod.err("breakout.close", room="ws") == "unavailable"
        assert failed == ["ws"]
        closed = await mod.ok("breakout.close", room="ws")
        for client in members:
            back = await next_event(client, "breakouts", room="ws", rooms=[])
            assert back["seq"] == closed["seq"]
        await eventually(lambda: all(c.session.rooms == {"ws"} for c in members), what="back in ws")
        assert await members[0].err("join", room="ws.b1") == "closed"
        await mod.ok("breakout.open", room="ws", count=2, assign="self")


async def test_a_close_whose_node_died_is_taken_over_when_its_claim_expires() -> None:
    async with running("n1", "n2") as hubs:
        mod, [member] = await _workshop(hubs, 1)
        opened = await mod.ok("breakout.open", room="ws", count=2, assign="self")
        round_id = hubs[0].breakouts.rounds["ws"].id
        await member.ok("join", room="ws.b1")
        # A node claimed the close and died before doing anything (a short claim, for the test).
        store = hubs[1].node.store
        assert await store.set_if_absent(close_claim_key(round_id), b"1", ttl=0.3) is None
        assert await mod.err("breakout.close", room="ws") == "closed"
        assert await member.err("join", room="ws.b2") == "closed"  # closing: no more joins

        async def expired() -> bool:
            return await store.get(close_claim_key(round_id)) is None

        await eventually(expired, what="the dead node's claim expired")
        closed = await mod.ok("breakout.close", room="ws")
        assert closed["seq"] > opened["seq"]
        await eventually(lambda: member.session.rooms == {"ws"}, what="member back in ws")
        await mod.ok("breakout.open", room="ws", count=2, assign="self")


async def test_timed_rounds_closed_on_one_node_leave_no_warnings_behind_on_either() -> None:
    async with running("n1", "n2") as hubs:
        mod, _ = await _workshop(hubs, 2)
        timers = [hub.breakouts for hub in hubs]
        for _ in range(2):
            opened = await mod.ok("breakout.open", room="ws", count=2, assign="self", duration=600)
            await eventually(lambda: all("ws" in timer.rounds for timer in timers))
            ends_at = opened["ends_at"]
            # The timers run by hand (the real ones are ten minutes away): both nodes warn...
            for timer in timers:
                await timer.run_timers(ends_at - 1)
            assert all(timer._warned for timer in timers)
            # ... and the first one closes; the other learns it from the parent's event.
            await timers[0].run_timers(ends_at)
            await eventually(lambda: not any(timer.rounds for timer in timers))
            assert [timer._warned for timer in timers] == [set(), set()]


async def test_the_assignments_are_stored_before_the_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as hubs:
        mod, _ = await _workshop(hubs, 2)
        store = hubs[0].node.store
        real_set_if_absent = store.set_if_absent
        rounds: list[str] = []
        seen_at_store: list[dict[str, bytes]] = []

        async def watching(key: str, value: bytes, *, ttl: float | None = None) -> bytes | None:
            if key == "breakout:ws":
                rounds.append(unpack(value)["id"])
                seen_at_store.append(await store.hash_get_all(f"bassign:{rounds[-1]}"))
            return await real_set_if_absent(key, value, ttl=ttl)

        monkeypatch.setattr(store, "set_if_absent", watching)
        manual = {"assign": "manual", "assignments": {"u0": 1, "u1": 2}}
        await mod.ok("breakout.open", room="ws", count=2, **manual)
        assert seen_at_store == [{"u0": b"ws.b1", "u1": b"ws.b2"}]
        # A second open loses to the first and leaves no assignments behind.
        assert await mod.err("breakout.open", room="ws", count=2, **manual) == "conflict"
        first, second = rounds
        assert await store.hash_get_all(f"bassign:{first}") == seen_at_store[0]
        assert await store.hash_get_all(f"bassign:{second}") == {}


async def test_a_kick_or_ban_from_the_parent_reaches_its_breakouts() -> None:
    async with running("n1", "n2") as hubs:
        mod, _ = await _workshop(hubs, 1)
        await mod.ok("breakout.open", room="ws", count=2, assign="self")
        troll1 = await connect(hubs[0], "troll")
        troll2 = await connect(hubs[1], "troll")
        await troll1.ok("join", room="ws")
        await troll1.ok("join", room="ws.b1")
        await troll2.ok("join", room="ws.b2")  # in a child only, on the other node

        await mod.ok("kick", room="ws", user="troll")
        assert (await next_event(troll1, "kicked", room="ws.b1"))["room"] == "ws.b1"
        assert (await next_event(troll2, "kicked", room="ws.b2"))["room"] == "ws.b2"
        await eventually(lambda: not troll1.session.rooms, what="troll1 out of ws and ws.b1")
        await eventually(lambda: not troll2.session.rooms, what="troll2 out of ws.b2")
        await troll2.ok("join", room="ws.b2")  # not banned

        await mod.ok("kick", room="ws", user="troll", ban=True)
        await eventually(lambda: not troll2.session.rooms, what="troll2 out again")
        for client in (troll1, troll2):
            for room in ("ws", "ws.b1", "ws.b2"):
                assert await client.err("join", room=room) == "forbidden"
        await mod.ok("join", room="ws.b1")


async def test_a_ban_from_a_breakout_holds_in_that_breakout_only() -> None:
    async with running("n1", "n2") as hubs:
        mod, _ = await _workshop(hubs, 1)
        await mod.ok("breakout.open", room="ws", count=2, assign="self")
        troll = await connect(hubs[1], "troll")
        await troll.ok("join", room="ws")
        await troll.ok("join", room="ws.b1")
        # A moderator of that breakout (the parent's moderators are not, there).
        host = await connect(hubs[0], "host", rooms={"ws.b1": Role.MODERATOR})
        await host.ok("kick", room="ws.b1", user="troll", ban=True)
        await eventually(lambda: "ws.b1" not in troll.session.rooms, what="troll out of ws.b1")
        assert await troll.err("join", room="ws.b1") == "forbidden"
        await troll.ok("join", room="ws.b2")
        await troll.ok("join", room="ws")


async def _stored(hub: Any, room: str) -> list[str]:
    """The names of the events stored in ``room``, in order."""
    history = await hub.node.broker.history(room, 0)
    return [unpack(event.body)["ev"] for event in history.events]


async def test_the_sweep_takes_sessions_out_of_children_no_round_holds() -> None:
    async with running("n1", "n2") as hubs:
        mod, members = await _workshop(hubs, 2)
        opened = await mod.ok("breakout.open", room="ws", count=2, assign="self")
        for client in members:
            await client.ok("join", room="ws.b1")
        assert [room["id"] for room in opened["rooms"]] == ["ws.b1", "ws.b2"]
        # Still open: the sweep leaves everyone where they are.
        for hub in hubs:
            await hub.breakouts.sweep_children()
        assert all("ws.b1" in client.session.rooms for client in members)
        # The round is gone but its eviction never arrived (as if the message was lost).
        await hubs[0].node.store.delete("breakout:ws")
        for hub in hubs:
            await hub.breakouts.sweep_children()
        assert all(client.session.rooms == {"ws"} for client in members)


async def test_a_cancelled_open_waits_for_its_writes_before_cleaning_up() -> None:
    # breakout.open deletes what its writes stored when it fails or is cancelled: a write still
    # under way then could land after the delete.
    release = asyncio.Event()
    landed: list[str] = []

    async def write(name: str) -> None:
        await release.wait()
        landed.append(name)

    opening = asyncio.ensure_future(all_ended(write(n) for n in ("a", "b")))
    await asyncio.sleep(0)  # both writes under way
    opening.cancel()
    await asyncio.sleep(0)
    assert not opening.done()  # the cancellation waits for the writes
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert sorted(landed) == ["a", "b"]


async def test_a_node_reads_a_rounds_assignments_once_and_forgets_them_with_the_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running("n1", "n2") as hubs:
        mod, members = await _workshop(hubs, 6)
        store = hubs[1].node.store  # the node that did not open the round
        real_hash_get_all = store.hash_get_all
        reads: Counter[str] = Counter()

        async def counted(key: str) -> dict[str, bytes]:
            reads[key] += 1
            return await real_hash_get_all(key)

        monkeypatch.setattr(store, "hash_get_all", counted)
        opened = await mod.ok("breakout.open", room="ws", count=2, assign="random")
        for client in members:
            child = (await next_event(client, "breakout.assigned"))["breakout"]
            joined = await client.ok("join", room=child)
            assert joined["snapshot"]["breakouts"]["assigned"] == child
        assigned = [key for key in reads if key.startswith("bassign:")]
        assert len(assigned) == 1 and reads[assigned[0]] == 1
        breakouts = hubs[1].breakouts
        assert breakouts._assignments
        await mod.ok("breakout.close", room="ws")
        await eventually(lambda: not breakouts._assignments, what="the assignments forgotten")
        assert opened["assignments"]
