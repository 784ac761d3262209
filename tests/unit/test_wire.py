"""The wire modules' TypedDicts against what in-process hubs really send: every key a reply or
event carries is declared, and every required key is there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat.wire import (
    ChatEvent,
    ChatHistoryReply,
    ChatSendReply,
    DmEvent,
    ModerationPart,
    QuestionReply,
    QuestionsPart,
)
from hub.auth import Role
from hub.wire import ErrorReply, HelloReply, OkReply
from networking.table_wire import TablesPart
from polls.wire import PollEvent, PollReply, PollsPart, PollView
from rooms.wire import (
    BreakoutsPart,
    JoinReply,
    NoticesPart,
    PresenceEvent,
    PresenceReply,
    RoomListReply,
    RoomsPart,
    StagePart,
)
from signalling.wire import MediaEvent, PeersPart, SignalEvent, SignallingHelloPart
from tests.unit.helpers import Client, connect, create_room, new_session, next_event, running

# The TypedDicts whose keys make up a join snapshot, one per snapshot part.
SNAPSHOT_PARTS: tuple[Any, ...] = (
    NoticesPart,
    RoomsPart,
    StagePart,
    BreakoutsPart,
    ModerationPart,
    QuestionsPart,
    PollsPart,
    PeersPart,
    TablesPart,
)


def assert_shape(shape: Any, message: Mapping[str, Any]) -> None:
    """``message`` holds every required key of the TypedDict ``shape`` and no undeclared one."""
    assert set(message) <= set(shape.__annotations__), (shape.__name__, message)
    assert shape.__required_keys__ <= set(message), (shape.__name__, message)


async def test_hello_and_join_replies_and_every_snapshot_key_are_declared() -> None:
    async with running(guests=True) as [hub]:
        guest = Client(hub, new_session(hub))
        hello = await guest.call("hello", name="Guest")
        assert_shape(OkReply, hello)
        assert set(hello["ok"]) == set(HelloReply.__annotations__) | set(
            SignallingHelloPart.__annotations__
        )

        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "ws", "workshop")
        await org.ok("room.slowmode", room="ws", seconds=5)
        await org.ok("breakout.open", room="ws", count=2, assign="self")
        declared = set().union(*(part.__annotations__ for part in SNAPSHOT_PARTS))
        for room in ("main", "ws"):
            joined = await org.ok("join", room=room, since=0)
            assert_shape(JoinReply, joined)
            assert {"missed", "recovered"} <= set(joined)
            assert set(joined["snapshot"]) <= declared, set(joined["snapshot"]) - declared
        assert_shape(RoomListReply, await org.ok("room.list"))
        assert_shape(PresenceReply, await org.ok("presence", room="ws"))

        assert_shape(ErrorReply, await org.call("join", room="nowhere"))


async def test_chat_replies_and_events_are_declared() -> None:
    async with running() as [hub]:
        alice = await connect(hub, "alice")
        bob = await connect(hub, "bob")
        await alice.ok("join", room="main")
        first = await alice.ok("chat.send", room="main", text="hello")
        assert_shape(ChatSendReply, first)
        await alice.ok("chat.send", room="main", text="re", reply_to=first["id"])
        [plain, reply] = [event for event in alice.collect() if event.get("ev") == "chat"]
        assert_shape(ChatEvent, plain)
        assert_shape(ChatEvent, reply)
        assert "reply_to" in reply
        assert_shape(ChatHistoryReply, await alice.ok("chat.history", room="main"))
        assert_shape(QuestionReply, await alice.ok("qa.ask", room="main", text="why?"))

        await alice.ok("dm.send", to="bob", text="psst")
        assert_shape(DmEvent, await next_event(bob, "dm"))


async def test_poll_replies_and_events_are_declared() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await org.ok("join", room="main")
        created = await org.ok(
            "poll.create", room="main", question="Lunch?", options=["yes", "no"], duration=60
        )
        assert_shape(PollReply, created)
        assert "closes_at" in created["poll"]
        await org.ok("poll.vote", room="main", poll=created["poll"]["id"], choice=0)
        assert_shape(PollView, await org.ok("poll.get", room="main", poll=created["poll"]["id"]))
        closed = await org.ok("poll.close", room="main", poll=created["poll"]["id"])
        assert {"counts", "voters"} <= set(closed["poll"])
        for event in org.stored():
            if event["ev"] == "poll":
                assert_shape(PollEvent, event)


async def test_presence_signal_and_media_events_are_declared() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "ws", "workshop")
        alice = await connect(hub, "alice")
        bob = await connect(hub, "bob")
        await alice.ok("join", room="ws")
        await bob.ok("join", room="ws")
        await hub.rooms.flush_presence()
        assert_shape(PresenceEvent, await next_event(alice, "presence"))

        await alice.ok("signal", room="ws", to=bob.sid, type="offer", sdp="v=0")
        assert_shape(SignalEvent, await next_event(bob, "signal"))
        await alice.ok("media", room="ws", audio=True, video=False, screen=False)
        assert_shape(MediaEvent, await next_event(bob, "media"))
