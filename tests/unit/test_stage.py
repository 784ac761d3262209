"""The stage, in process on two nodes sharing a memory broker: ``role.set`` (stored, checked on
every node), the hand queue, ``kick`` with and without a ban, and the event-wide ``ban``."""

from __future__ import annotations

from hub.auth import Role
from hub.errors import CloseCode
from tests.support.waiting import eventually
from tests.unit.helpers import (
    Client,
    connect,
    create_room,
    new_session,
    next_event,
    queue_becomes,
    running,
    token,
)

# -- roles ----------------------------------------------------------------------------------------


async def test_role_set_is_a_stored_event_and_changes_what_the_user_may_do_on_every_node() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        mod = await connect(hub1, "mod", rooms={"p": Role.MODERATOR})
        ann = await connect(hub2, "ann")
        await mod.ok("join", room="p")
        await ann.ok("join", room="p")
        assert await ann.err("announce", room="p", text="hi") == "forbidden"

        ack = await mod.ok("role.set", room="p", user="ann", role="moderator")
        event = await next_event(ann, "role")
        assert event == {
            "ev": "role",
            "room": "p",
            "seq": ack["seq"],
            "user": "ann",
            "role": "moderator",
        }
        assert (await next_event(mod, "role"))["seq"] == ack["seq"]
        # Checked on ann's node, which learnt it from the stored event.
        await ann.ok("announce", room="p", text="now I may")

        # A session of ann on a node that does not follow the room: read from the broker.
        elsewhere = await connect(hub1, "ann")
        assert "seq" in await elsewhere.ok("announce", room="p", text="from outside")
        rejoin = await connect(hub2, "ann")
        assert (await rejoin.ok("join", room="p"))["role"] == "moderator"


async def test_role_set_rules() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        mod = await connect(hub, "mod", rooms={"p": Role.MODERATOR})
        mod2 = await connect(hub, "mod2", rooms={"p": Role.MODERATOR})
        ann = await connect(hub, "ann")
        for client in (mod, mod2, ann):
            await client.ok("join", room="p")

        assert await ann.err("role.set", room="p", user="ann", role="speaker") == "forbidden"
        assert await mod.err("role.set", room="p", user="ann", role="organizer") == "bad_request"
        assert await mod.err("role.set", room="p", user="ann", role="boss") == "bad_request"
        assert await mod.err("role.set", room="p", user="", role="speaker") == "bad_request"
        assert await mod.err("role.set", room="nope", user="ann", role="speaker") == "not_found"
        # Moderators do not change each other, nor organizers; organizers change moderators.
        assert await mod.err("role.set", room="p", user="mod2", role="attendee") == "forbidden"
        assert await mod.err("role.set", room="p", user="boss", role="attendee") == "forbidden"
        await boss.ok("role.set", room="p", user="mod2", role="attendee")
        assert await mod2.err("announce", room="p", text="x") == "forbidden"
        # One may step down, never up.
        await mod.ok("role.set", room="p", user="mod", role="speaker")
        assert await mod.err("role.set", room="p", user="mod", role="moderator") == "forbidden"
        assert await mod.err("announce", room="p", text="x") == "forbidden"


async def test_speakers_and_moderators_are_in_the_join_snapshot() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        spk = await connect(hub, "spk", rooms={"p": Role.SPEAKER})
        await spk.ok("join", room="p")
        await boss.ok("role.set", room="p", user="ann", role="speaker")
        viewer = await connect(hub, "viewer")
        snapshot = (await viewer.ok("join", room="p"))["snapshot"]
        assert snapshot["speakers"] == [
            {"user": "ann", "name": "ann"},
            {"user": "spk", "name": "spk"},
        ]
        assert snapshot["moderators"] == []
        assert snapshot["hands"] == []


# -- hands ----------------------------------------------------------------------------------------


async def test_hand_queue_is_ordered_by_the_server_and_the_same_on_every_node() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        mod = await connect(hub1, "mod", rooms={"p": Role.MODERATOR})
        a = await connect(hub1, "a")
        b = await connect(hub2, "b")
        c = await connect(hub2, "c")
        for client in (mod, a, b, c):
            await client.ok("join", room="p")

        for client, queue in ((b, ["b"]), (a, ["b", "a"]), (c, ["b", "a", "c"])):
            await client.ok("hand.raise", room="p")
            await queue_becomes(mod, queue)
        await a.ok("hand.raise", room="p")  # again: keeps its place
        for client in (a, b, c):
            event = await queue_becomes(client, ["b", "a", "c"])
        assert set(event["queue"][0]) == {"user", "name", "ts"}
        ts = [hand["ts"] for hand in event["queue"]]
        assert ts == sorted(ts)

        assert await a.err("hand.lower", room="p", user="b") == "forbidden"
        await mod.ok("hand.lower", room="p", user="b")
        await queue_becomes(c, ["a", "c"])
        await c.ok("hand.lower", room="p")
        assert await c.err("hand.lower", room="p") == "not_found"
        late = await connect(hub2, "late")
        assert [h["user"] for h in (await late.ok("join", room="p"))["snapshot"]["hands"]] == ["a"]


async def test_leaving_lowers_the_hand_and_promotion_takes_it_off_the_queue() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        await boss.ok("join", room="p")
        a = await connect(hub2, "a")
        b = await connect(hub2, "b")
        for client in (a, b):
            await client.ok("join", room="p")
            await client.ok("hand.raise", room="p")
        assert await boss.err("hand.raise", room="main") == "forbidden"  # not in that room

        await a.ok("leave", room="p")
        await queue_becomes(boss, ["b"])
        await boss.ok("role.set", room="p", user="b", role="speaker")
        await queue_becomes(boss, [])
        await b.ok("hand.raise", room="p")
        await queue_becomes(boss, ["b"])
        await hub2.node.remove_session(b.session)  # the connection ends
        await queue_becomes(boss, [])


# -- kicks and bans -------------------------------------------------------------------------------


async def test_kick_takes_every_session_of_the_user_out_of_the_room_on_every_node() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        mod = await connect(hub1, "mod", rooms={"p": Role.MODERATOR})
        troll1 = await connect(hub1, "troll")
        troll2 = await connect(hub2, "troll")
        for client in (mod, troll1, troll2):
            await client.ok("join", room="p")

        assert await troll1.err("kick", room="p", user="mod") == "forbidden"
        assert await mod.err("kick", room="p", user="mod") == "bad_request"
        assert await mod.err("kick", room="p", user="boss") == "forbidden"
        assert await mod.err("kick", room="p", user="troll", ban="yes") == "bad_request"
        await mod.ok("kick", room="p", user="troll")
        for client in (troll1, troll2):
            assert await next_event(client, "kicked") == {"ev": "kicked", "room": "p"}
        for client in (troll1, troll2):
            await eventually(lambda c=client: "p" not in c.session.rooms, what="troll out of p")
        # Not banned: back in.
        await troll2.ok("join", room="p")

        await mod.ok("kick", room="p", user="troll", ban=True)
        await next_event(troll2, "kicked")
        await eventually(lambda: "p" not in troll2.session.rooms, what="troll out of p again")
        assert await troll2.err("join", room="p") == "forbidden"
        assert await (await connect(hub1, "troll")).err("join", room="p") == "forbidden"
        await (await connect(hub1, "troll")).ok("join", room="main")  # other rooms are fine


async def test_ban_closes_every_session_on_every_node_and_refuses_hello() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        mod = await connect(hub1, "mod", Role.MODERATOR)
        bad1 = await connect(hub1, "bad")
        bad2 = await connect(hub2, "bad")
        assert await mod.err("ban", user="bad") == "forbidden"
        assert await boss.err("ban", user="boss") == "bad_request"
        assert await boss.err("ban", user=7) == "bad_request"
        await boss.ok("ban", user="bad")
        for client in (bad1, bad2):
            await client.session.queue.wait()
            assert client.session.close_code is CloseCode.BANNED
        again = Client(hub2, new_session(hub2))
        reply = await again.call("hello", token=token(hub2, "bad"))
        assert reply["err"]["code"] == "forbidden"
        assert again.session.close_code is CloseCode.BANNED


# -- fields ---------------------------------------------------------------------------------------


async def test_stage_ops_take_user_ids_of_128_characters_at_most() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        longest, too_long = "u" * 128, "u" * 129
        assert await boss.ok("role.set", room="p", user=longest, role="speaker")
        for op, fields in [
            ("role.set", {"room": "p", "role": "speaker"}),
            ("kick", {"room": "p"}),
            ("hand.lower", {"room": "p"}),
            ("ban", {}),
        ]:
            assert await boss.err(op, user=too_long, **fields) == "bad_request", op


async def test_a_null_ban_is_no_ban() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "p", "panel")
        troll = await connect(hub, "troll")
        await troll.ok("join", room="p")
        await boss.ok("kick", room="p", user="troll", ban=None)
        await next_event(troll, "kicked")
        await eventually(lambda: "p" not in troll.session.rooms, what="troll out of p")
        await troll.ok("join", room="p")
