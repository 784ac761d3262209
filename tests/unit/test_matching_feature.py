"""The match queue in process: nodes sharing one memory backend, their matchers running as they
do in a hub (a round every quarter second on the lease holder)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers import Client, connect, create_room, new_session, next_event, running

from hub.app import Hub
from networking import match_store as keys
from networking.match_feature import MatchFeature
from networking.match_meeting import CARDS_WINDOW
from networking.match_store import QueueEntry
from tests.support.waiting import eventually


def matcher(hub: Hub) -> MatchFeature:
    feature = next(f for f in hub.features if isinstance(f, MatchFeature))
    return feature


async def queued(hub: Hub) -> set[str]:
    return set(await hub.node.store.hash_get_all(keys.QUEUE))


async def found(client: Client) -> dict[str, Any]:
    return await next_event(client, "match.found")


async def pair(hub1: Hub, hub2: Hub) -> tuple[Client, Client, str]:
    """Ada on hub1 and Bob on hub2, paired; both joined their meeting room."""
    ada = await connect(hub1, "ada")
    bob = await connect(hub2, "bob")
    await ada.ok("match.join")
    await bob.ok("match.join")
    room = (await found(ada))["room"]
    assert (await found(bob))["room"] == room
    await ada.ok("join", room=room)
    await bob.ok("join", room=room)
    return ada, bob, room


async def test_two_people_on_two_nodes_meet_in_a_private_room() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob = await connect(hub2, "bob")
        joined = await ada.ok("match.join", interests=["Python"])
        assert joined["interests"] == ["python"]
        assert (await ada.ok("match.status"))["queued"] is True
        await bob.ok("match.join")
        to_ada, to_bob = await found(ada), await found(bob)
        room = to_ada["room"]
        assert room.startswith("meet-") and to_bob["room"] == room
        assert to_ada["with"] == [{"user": "bob", "name": "bob"}]
        assert to_bob["with"] == [{"user": "ada", "name": "ada"}]
        assert to_ada["ends_at"] == to_bob["ends_at"]
        reply = await ada.ok("join", room=room)
        assert reply["room"]["kind"] == "meeting"
        assert reply["snapshot"]["meeting"]["with"] == to_ada["with"]
        await bob.ok("join", room=room)
        carol = await connect(hub1, "carol")
        assert await carol.err("join", room=room) == "forbidden"
        # Private: not in the rooms list, whoever asks.
        assert room not in {entry["id"] for entry in (await carol.ok("room.list"))["rooms"]}
        status = await ada.ok("match.status")
        assert status == {
            "queued": False,
            "meeting": {
                **{k: to_ada[k] for k in ("room", "with", "ends_at", "minutes")},
                "extended": False,
            },
        }
        # In a meeting: not in the queue again until it ends.
        assert await ada.err("match.join") == "conflict"
        assert await queued(hub1) == set()


async def test_many_people_joining_at_once_on_two_nodes_are_paired_exactly() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        clients = [await connect((hub1, hub2)[i % 2], f"u{i:02}") for i in range(40)]
        await asyncio.gather(*(client.ok("match.join") for client in clients))
        events = [await found(client) for client in clients]
        rooms: dict[str, set[str]] = {}
        for client, event in zip(clients, events, strict=True):
            me = client.session.user_id
            members = {me, *(other["user"] for other in event["with"])}
            assert rooms.setdefault(event["room"], members) == members
        assert all(len(members) == 2 for members in rooms.values())
        assert sum(len(members) for members in rooms.values()) == 40
        assert await queued(hub1) == set()


async def test_overlapping_matchers_never_put_anyone_in_two_groups() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        clients = [await connect((hub1, hub2)[i % 2], f"u{i:02}") for i in range(30)]
        m1, m2 = matcher(hub1), matcher(hub2)

        async def always() -> bool:
            return True

        # Both run rounds at once, as two lease holders would after a lease expired.
        m1.matcher._hold_lease = always  # type: ignore[method-assign]
        m2.matcher._hold_lease = always  # type: ignore[method-assign]
        joins = [client.ok("match.join") for client in clients]
        rounds = [m.matcher.round() for _ in range(5) for m in (m1, m2)]
        await asyncio.gather(*joins, *rounds)
        events = [await found(client) for client in clients]
        for client in clients:
            extra = [e for e in client.collect() if e.get("ev") == "match.found"]
            assert extra == [], f"{client.session.user_id} found twice"
        assert len({event["room"] for event in events}) == 15


async def test_people_who_met_are_not_paired_again() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada, bob, room = await pair(hub1, hub2)
        await ada.ok("match.end", room=room)
        await next_event(bob, "match.ended", room=room)
        carol = await connect(hub1, "carol")
        dan = await connect(hub2, "dan")
        await ada.ok("match.join")
        await bob.ok("match.join")
        await carol.ok("match.join")
        await dan.ok("match.join")
        with_ada = (await found(ada))["with"][0]["user"]
        with_bob = (await found(bob))["with"][0]["user"]
        assert with_ada in {"carol", "dan"} and with_bob in {"carol", "dan"}
        assert with_ada != with_bob


async def test_leaving_or_disconnecting_leaves_the_queue() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        assert await ada.err("match.leave") == "not_found"
        await ada.ok("match.join", interests=["ai"])
        # The same session again (a retry): still one place, with its interests.
        assert (await ada.ok("match.join", interests=["go"]))["interests"] == ["ai"]
        ada_2 = await connect(hub2, "ada")
        assert await ada_2.err("match.join") == "conflict"
        await ada_2.ok("match.leave")  # any session of the user may leave
        assert await queued(hub1) == set()
        await ada_2.ok("match.join")
        await hub2.node.remove_session(ada_2.session)
        assert await queued(hub1) == set()
        assert await ada.err("match.join", interests="python") == "bad_request"


async def test_a_dead_nodes_people_leave_the_queue() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await connect(hub2, "ada")
        await ada.ok("match.join")
        await hub1.rooms.node_swept_hooks[-1]("n2", [])
        assert await queued(hub1) == set()


async def test_an_extension_needs_both_and_happens_once() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada, bob, room = await pair(hub1, hub2)
        first = await ada.ok("match.extend", room=room)
        assert first["extended"] is False
        assert (await next_event(bob, "match.extend_requested"))["by"] == "ada"
        second = await bob.ok("match.extend", room=room)
        assert second["extended"] is True and second["ends_at"] > first["ends_at"]
        for client in (ada, bob):
            event = await next_event(client, "match.extended")
            assert event == {"ev": "match.extended", "room": room, "ends_at": second["ends_at"]}
        assert await ada.err("match.extend", room=room) == "conflict"
        status = await ada.ok("match.status")
        assert status["meeting"]["ends_at"] == second["ends_at"]
        carol = await connect(hub1, "carol")
        assert await carol.err("match.extend", room=room) == "forbidden"
        assert await carol.err("match.extend", room="meet-nope") == "not_found"


async def test_cards_are_delivered_only_once_everyone_shared() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada, bob, room = await pair(hub1, hub2)
        assert (await ada.ok("match.share", room=room, card={"email": "ada@x.org"}))[
            "exchanged"
        ] is False
        await ada.ok("match.end", room=room)
        await next_event(bob, "match.ended")
        assert [e for e in bob.collect() if e.get("ev") == "match.cards"] == []
        assert await bob.err("match.share", room=room, card={"email": "nope"}) == "bad_request"
        shared = await bob.ok("match.share", room=room, card={"organisation": "ACME"})
        assert shared["exchanged"] is True
        to_bob = await next_event(bob, "match.cards")
        assert to_bob["cards"] == [{"user": "ada", "name": "ada", "email": "ada@x.org"}]
        to_ada = await next_event(ada, "match.cards")
        assert to_ada["cards"] == [{"user": "bob", "name": "bob", "organisation": "ACME"}]
        assert await ada.err("match.share", room=room, card={}) == "conflict"


async def test_ending_early_ends_it_for_both_and_empties_the_room() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada, bob, room = await pair(hub1, hub2)
        await bob.ok("match.end", room=room)
        for client in (ada, bob):
            event = await next_event(client, "match.ended")
            assert event == {"ev": "match.ended", "room": room, "reason": "left", "by": "bob"}
        await eventually(lambda: room not in ada.session.rooms and room not in bob.session.rooms)
        assert await ada.err("join", room=room) in {"closed", "not_found"}
        assert await hub2.rooms.directory.get(room) is None  # gone on every node
        assert await ada.err("match.end", room=room) == "closed"
        # Free to meet someone else now.
        await ada.ok("match.join")


async def test_a_meeting_ends_at_its_time() -> None:
    async with running("n1", "n2", meet_minutes=0.01) as [hub1, hub2]:
        ada, bob, room = await pair(hub1, hub2)
        for client in (ada, bob):
            event = await next_event(client, "match.ended")
            assert event == {"ev": "match.ended", "room": room, "reason": "time"}
        await eventually(lambda: room not in ada.session.rooms and room not in bob.session.rooms)
        assert (await ada.ok("match.status"))["meeting"] is None


async def test_an_odd_person_makes_a_group_of_three_who_may_leave_one_by_one() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        people = [await connect((hub1, hub2)[i % 2], name) for i, name in enumerate("abc")]
        for client in people:
            await client.ok("match.join")
        events = [await found(client) for client in people]
        room = events[0]["room"]
        assert all(event["room"] == room and len(event["with"]) == 2 for event in events)
        a, b, c = people
        for client in people:
            await client.ok("join", room=room)
        await a.ok("match.end", room=room)
        assert (await next_event(b, "match.member_left")) == {
            "ev": "match.member_left",
            "room": room,
            "user": "a",
        }
        await eventually(lambda: room not in a.session.rooms)
        assert room in b.session.rooms and room in c.session.rooms
        assert await a.err("join", room=room) == "closed"
        assert await a.err("match.extend", room=room) == "closed"
        # The two left extend between them.
        await b.ok("match.extend", room=room)
        assert (await c.ok("match.extend", room=room))["extended"] is True
        await c.ok("match.end", room=room)
        assert (await next_event(b, "match.ended"))["reason"] == "left"


async def test_the_events_close_empties_the_queue_and_ends_meetings() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada, bob, room = await pair(hub1, hub2)
        carol = await connect(hub1, "carol")
        await carol.ok("match.join")
        closed = {"ev": "match.left", "reason": "event_closed"}
        await hub2.rooms.close_event("org", "bye")
        assert await next_event(carol, "match.left") == closed
        for client in (ada, bob):
            ended = await next_event(client, "match.ended", room=room)
            assert ended["reason"] == "event_closed"
        assert await queued(hub1) == set()
        await hub1.rooms.event.poll()
        assert await carol.err("match.join") == "closed"


async def test_meeting_rooms_made_by_hand_admit_nobody() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", "organizer")
        await create_room(org, "meet-fake", "meeting")
        assert await org.err("join", room="meet-fake") == "forbidden"


async def test_a_queue_entry_keeps_its_session_node_and_time() -> None:
    async with running() as [hub]:
        ada = await connect(hub, "ada")
        matcher(hub).clock = lambda: 1234.5
        await ada.ok("match.join", interests=["AI", "ai"])
        raw = await hub.node.store.hash_get(keys.QUEUE, "ada")
        assert raw is not None
        entry = QueueEntry.unpack("ada", raw)
        assert (entry.sid, entry.node, entry.since, entry.interests) == (
            ada.sid,
            hub.node.node_id,
            1234.5,
            ("ai",),
        )


async def test_a_guest_may_meet_someone() -> None:
    async with running(guests=True) as [hub]:
        gus = Client(hub, new_session(hub))
        await gus.ok("hello", name="Gus")
        ada = await connect(hub, "ada")
        await gus.ok("match.join")
        await ada.ok("match.join")
        assert (await found(gus))["with"] == [{"user": "ada", "name": "ada"}]
        assert (await found(ada))["with"][0]["name"] == "Gus"


async def test_a_claim_fails_whole_when_someone_left_and_the_others_stay_queued() -> None:
    async with running() as [hub]:
        feature = matcher(hub)
        # The lease is held elsewhere: no round runs here, the test claims by hand.
        await hub.node.store.put(keys.LEASE, b"elsewhere", ttl=3600)
        clients = [await connect(hub, user) for user in ("ada", "bob", "cat")]
        for client in clients:
            await client.ok("match.join")
        entries = [
            QueueEntry.unpack(user, raw)
            for user, raw in (await hub.node.store.hash_get_all(keys.QUEUE)).items()
        ]
        await clients[1].ok("match.leave")
        await feature.matcher.claim(entries)
        assert await queued(hub) == {"ada", "cat"}
        assert all(e.get("ev") != "match.found" for c in clients for e in c.collect())


async def test_the_sweep_ends_a_meeting_whose_timer_is_gone() -> None:
    async def no_timer(meeting: object) -> None:
        """As if the node that made the meeting died: no timer ends it."""

    async with running("n1", "n2", meet_minutes=0.01) as [hub1, hub2]:
        for hub in (hub1, hub2):
            matcher(hub).meetings._timer = no_timer  # type: ignore[method-assign,assignment]
        ada, bob, room = await pair(hub1, hub2)
        assert (await next_event(ada, "match.ended"))["reason"] == "time"
        await eventually(lambda: room not in bob.session.rooms)


async def test_a_meeting_is_forgotten_once_its_cards_window_is_over() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada, bob, room = await pair(hub1, hub2)
        await ada.ok("match.end", room=room)
        await next_event(bob, "match.ended")
        store = hub1.node.store
        assert await store.hash_get(keys.MEETINGS, room) is not None
        later = time.time() + CARDS_WINDOW + 1
        for hub in (hub1, hub2):
            matcher(hub).meetings.clock = lambda: later
            await matcher(hub).sweep()
        assert await store.hash_get(keys.MEETINGS, room) is None
        assert await store.get(keys.ended_key(room)) is None
        assert await store.set_members(keys.gone_key(room)) == set()
        assert await bob.err("match.share", room=room, card={}) == "not_found"


async def test_a_full_queue_refuses_newcomers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "MAX_QUEUE", 1)
    async with running("n1") as [hub]:
        bob = await connect(hub, "bob")
        await bob.ok("match.join")
        await matcher(hub).matcher.round()  # a round counts the queue: one waits, it is full
        ada = await connect(hub, "ada")
        assert await ada.err("match.join") == "conflict"
        await bob.ok("match.leave")
        await matcher(hub).matcher.round()
        await ada.ok("match.join")


async def test_someone_back_in_the_queue_while_in_a_meeting_is_not_paired_again() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada, _, room = await pair(hub1, hub2)
        # The race a claim guards against: Ada's join slipped into the queue while her meeting
        # was being opened.
        entry = QueueEntry(
            user="ada", sid=ada.sid, node=hub1.node.node_id, name="ada", interests=(), since=1.0
        )
        await hub1.node.store.hash_set(keys.QUEUE, "ada", entry.pack())
        carol = await connect(hub2, "carol")
        await carol.ok("match.join")
        await matcher(hub1).matcher.round()
        await matcher(hub2).matcher.round()
        assert not [e for e in carol.collect() if e.get("ev") == "match.found"]
        assert await queued(hub1) == {"carol"}
        assert (await ada.ok("match.status"))["meeting"]["room"] == room


async def test_a_meeting_ended_early_stays_ended_past_its_planned_end() -> None:
    async with running("n1", "n2", meet_minutes=30) as [hub1, hub2]:
        _, bob, room = await pair(hub1, hub2)
        await bob.ok("match.end", room=room)
        backend = hub1.node.store.backend  # type: ignore[attr-defined]
        _, expires = backend.values[keys.ended_key(room)]
        # Beyond the latest end it could have had (planned, plus one extension of 30 minutes).
        assert expires - backend.clock() > 60 * 60
