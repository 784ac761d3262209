"""Command dispatch (hub.dispatch), the session ops (hub.core_ops) and the room commands
(rooms.feature), in process: nodes on memory brokers, sessions built by hand, commands passed to
``Dispatcher.dispatch`` and replies read back from each session's queue. No sockets."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from helpers import (
    SECRET,
    TIMEOUT,
    Client,
    connect,
    drain,
    new_session,
    running,
    token,
    wait_for_queue,
)

from hub.app import Hub, build_hub
from hub.auth import Role, TokenAuthority
from hub.broker import Broker, BrokerUnavailable, History
from hub.codec import WireFormat
from hub.config import HubConfig, Limits
from hub.dispatch import CommandContext, CommandRegistry
from hub.errors import CloseCode
from hub.feature import each_entrant_part
from hub.memory import MemoryBroker
from hub.session import SessionState
from rooms.model import Room

# -- envelopes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", [0, -1, 1.5, "1", True, False, None, [], {}, 2**53])
async def test_an_id_that_is_not_a_positive_integer_gets_a_reply_to_null(bad_id: object) -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        await hub.dispatcher.dispatch(client.session, {"id": bad_id, "op": "ping"})
        assert drain(client.session) == [
            {"re": None, "err": {"code": "bad_request", "msg": "id must be a positive integer"}}
        ]
        assert client.session.open


async def test_the_largest_id_a_javascript_client_holds_is_fine() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        await hub.dispatcher.dispatch(client.session, {"id": 2**53 - 1, "op": "ping"})
        assert drain(client.session) == [{"re": 2**53 - 1, "ok": {}}]


@pytest.mark.parametrize(
    "command", [{}, {"op": None}, {"op": 5}, {"op": ["ping"]}], ids=["none", "null", "int", "list"]
)
async def test_a_missing_or_malformed_op_is_a_bad_request(command: dict[str, Any]) -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        await hub.dispatcher.dispatch(client.session, {"id": 9, **command})
        [reply] = drain(client.session)
        assert reply["re"] == 9
        assert reply["err"]["code"] == "bad_request"
        assert client.session.open


async def test_an_unknown_op_is_a_bad_request() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        reply = await client.call("no.such.op")
        assert reply["err"]["code"] == "bad_request"
        assert "no.such.op" in reply["err"]["msg"]
        assert client.session.open


@pytest.mark.parametrize(
    "command",
    [
        {"op": "ping"},
        {"op": "no.such.op"},
        {"op": 5},
        {"op": "join", "room": "Not A Room"},
        {"op": "join", "room": "missing"},
        {"op": "announce", "room": "main", "text": "hi"},  # forbidden for an attendee
        {"op": "hello", "token": "x"},  # conflict: hello was said already
    ],
)
async def test_a_command_without_id_gets_no_reply_even_on_error(command: dict[str, Any]) -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        await hub.dispatcher.dispatch(client.session, command)
        assert drain(client.session) == []
        assert client.session.open


async def test_every_command_with_an_id_gets_exactly_one_reply_with_its_id() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        commands = [
            {"id": 10, "op": "ping"},
            {"id": 11, "op": "no.such.op"},
            {"id": 12, "op": "join", "room": "main"},
            {"id": 13, "op": "join", "room": "nowhere"},
            {"id": 14, "op": "leave", "room": "main"},
            {"id": 15, "op": "room.list"},
        ]
        for command in commands:
            await hub.dispatcher.dispatch(client.session, command)
        replies = [m for m in drain(client.session) if "re" in m]
        assert [r["re"] for r in replies] == [10, 11, 12, 13, 14, 15]
        assert ["ok" in r for r in replies] == [True, False, True, False, True, True]


# -- hello first -----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["ping", "join", "room.list", "refresh", "no.such.op"])
async def test_a_first_command_other_than_hello_is_refused_then_closed_4001(op: str) -> None:
    async with running() as [hub]:
        session = new_session(hub)
        await hub.dispatcher.dispatch(session, {"id": 1, "op": op, "room": "main"})
        [reply] = drain(session)
        assert reply == {"re": 1, "err": {"code": "unauthorized", "msg": reply["err"]["msg"]}}
        assert session.close_code is CloseCode.UNAUTHENTICATED
        assert session.state is SessionState.CLOSING
        assert "main" not in hub.node.streams  # the join never ran


async def test_a_first_command_without_id_is_not_answered_but_still_closes() -> None:
    async with running() as [hub]:
        session = new_session(hub)
        await hub.dispatcher.dispatch(session, {"op": "ping"})
        assert drain(session) == []
        assert session.close_code is CloseCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "hello",
    [
        {"token": "not-a-jwt"},
        {"token": 42},
        {"token": None},
        {
            "token": TokenAuthority("another-secret-of-at-least-32-bytes!!").mint(
                user="u1", name="U", role="attendee"
            )
        },
        {
            "token": TokenAuthority(SECRET).mint(
                user="u1", name="U", role="attendee", ttl=60, now=time.time() - 3600
            )
        },
        {},
    ],
    ids=["garbage", "number", "null", "other-secret", "expired", "nothing"],
)
async def test_hello_with_an_invalid_token_is_unauthorized_then_closed_4001(
    hello: dict[str, Any],
) -> None:
    async with running() as [hub]:
        session = new_session(hub)
        await hub.dispatcher.dispatch(session, {"id": 1, "op": "hello", **hello})
        [reply] = drain(session)
        assert reply["re"] == 1
        assert reply["err"]["code"] == "unauthorized"
        assert session.close_code is CloseCode.UNAUTHENTICATED
        assert session.identity is None
        assert hub.node.users == {}


async def test_hello_reply_fields() -> None:
    async with running() as [hub]:
        client = Client(hub, new_session(hub))
        ok = await client.ok("hello", token=token(hub, "alice", Role.SPEAKER, name="Alice A"))
        assert ok == {
            "sid": client.sid,
            "user": {"id": "alice", "name": "Alice A", "role": "speaker"},
            "node": hub.node.node_id,
            "ice_servers": [],
            "sfu": {"name": "embedded", "simulcast": False},
            "limits": hub.config.limits.public(),
        }
        assert client.sid.startswith(hub.node.node_id + ".")
        assert client.session.state is SessionState.AUTHENTICATED
        assert client.sid in hub.node.users["alice"]


async def test_one_user_may_hold_several_sessions() -> None:
    async with running() as [hub]:
        first = await connect(hub, "alice")
        second = await connect(hub, "alice")
        assert first.sid != second.sid
        assert set(hub.node.users["alice"]) == {first.sid, second.sid}


async def test_hello_twice_is_a_conflict_and_keeps_the_session() -> None:
    async with running() as [hub]:
        client = await connect(hub, "alice")
        assert await client.err("hello", token=token(hub, "bob")) == "conflict"
        assert client.session.open
        assert client.session.user_id == "alice"
        assert await client.ok("ping") == {}


async def test_guests_are_refused_by_default_on_a_hub_with_a_secret() -> None:
    async with running() as [hub]:
        assert hub.config.guests_allowed is False
        session = new_session(hub)
        await hub.dispatcher.dispatch(session, {"id": 1, "op": "hello", "name": "Guest"})
        [reply] = drain(session)
        assert reply["err"]["code"] == "unauthorized"
        assert session.close_code is CloseCode.UNAUTHENTICATED


async def test_guests_are_admitted_where_allowed() -> None:
    async with running(guests=True) as [hub]:
        client = Client(hub, new_session(hub))
        ok = await client.ok("hello", name="  Grace  ")
        assert ok["user"]["name"] == "Grace"
        assert ok["user"]["role"] == "attendee"
        assert ok["user"]["id"].startswith("guest-")
        other = Client(hub, new_session(hub))
        assert (await other.ok("hello", name="Grace"))["user"]["id"] != ok["user"]["id"]
        # A guest may still join the lobby.
        assert (await client.ok("join", room="main"))["role"] == "attendee"


async def test_a_guest_with_an_unfit_name_is_refused() -> None:
    async with running(guests=True) as [hub]:
        session = new_session(hub)
        await hub.dispatcher.dispatch(session, {"id": 1, "op": "hello", "name": "\x1b[31m"})
        [reply] = drain(session)
        assert reply["err"]["code"] == "bad_request"
        assert session.close_code is CloseCode.UNAUTHENTICATED


def test_a_trial_hub_admits_guests() -> None:
    hub = build_hub(HubConfig())  # no secret: a generated one, guests allowed
    assert hub.config.guests_allowed
    assert build_hub(HubConfig(secret=SECRET)).config.guests_allowed is False
    assert build_hub(HubConfig(secret=SECRET, guests=True)).config.guests_allowed


async def test_build_hub_serves_commands_on_its_memory_broker() -> None:
    hub = build_hub(HubConfig(secret=SECRET))
    await hub.node.start()
    try:
        client = await connect(hub, "u1", Role.ORGANIZER)
        await client.ok("room.create", room="p", kind="panel", title="P")
        assert (await client.ok("join", room="p"))["members"] == 1
    finally:
        await hub.node.stop()


async def test_ping_and_refresh() -> None:
    async with running() as [hub]:
        client = await connect(hub, "alice")
        assert await client.ok("ping") == {}
        assert await client.ok("refresh", token=token(hub, "alice", name="Alice Two")) == {}
        assert client.session.identity is not None
        assert client.session.identity.name == "Alice Two"
        assert await client.err("refresh", token=token(hub, "bob")) == "forbidden"
        assert await client.err("refresh", token="garbage") == "unauthorized"
        assert client.session.open  # a failed refresh is an ordinary error
        assert client.session.user_id == "alice"


async def test_a_token_that_expires_without_refresh_closes_the_session_4001() -> None:
    async with running() as [hub]:
        client = Client(hub, new_session(hub))
        # exp is whole seconds: pick one 0.2 to 1.2 s ahead, so hello itself still succeeds.
        expires = math.ceil(time.time() + 0.2)
        short = hub.authority.mint(user="u1", name="U", role="attendee", ttl=1, now=expires - 1)
        await client.ok("hello", token=short)
        assert len(client.session.queue) == 0
        await wait_for_queue(client.session)  # the expiry check closes the queue
        assert client.session.close_code is CloseCode.UNAUTHENTICATED
        assert client.session.close_reason == "token expired"


async def test_a_command_on_a_closing_session_does_not_run() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        client.session.request_close(CloseCode.DRAINING, "draining")
        await hub.dispatcher.dispatch(client.session, {"id": 5, "op": "join", "room": "main"})
        assert "main" not in client.session.rooms
        assert client.session.close_code is CloseCode.DRAINING


# -- handler failures ------------------------------------------------------------------------------


async def test_handler_failures_become_error_replies() -> None:
    async with running() as [hub]:

        async def unavailable(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
            raise BrokerUnavailable("redis is down")

        async def broken(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
            raise RuntimeError("bug")

        async def quiet(ctx: CommandContext, cmd: dict[str, Any]) -> None:
            return None

        hub.registry.add("t.unavailable", unavailable)
        hub.registry.add("t.broken", broken)
        hub.registry.add("t.quiet", quiet)
        client = await connect(hub, "u1")
        assert await client.err("t.unavailable") == "unavailable"
        assert await client.err("t.broken") == "internal"
        assert await client.ok("t.quiet") == {}
        assert client.session.open


def test_an_op_is_registered_once() -> None:
    registry = CommandRegistry()

    async def handler(ctx: CommandContext, cmd: dict[str, Any]) -> None:
        return None

    registry.add("x", handler)
    assert "x" in registry
    assert registry.get("y") is None
    with pytest.raises(ValueError, match="registered already"):
        registry.add("x", handler)


# -- rate limits -----------------------------------------------------------------------------------

TIGHT = Limits(connection_rate=0.0, connection_burst=5, flood_rejections=3, flood_window=1000.0)


async def test_rate_limited_then_closed_4029_after_flooding() -> None:
    async with running(limits=TIGHT) as [hub]:
        client = await connect(hub, "u1")
        session = client.session
        for _ in range(5):
            assert await client.ok("ping") == {}
        for _ in range(3):
            assert await client.err("ping") == "rate_limited"
            assert session.open
        # The fourth refusal is one too many: it is still answered, then the session closes.
        assert await client.err("ping") == "rate_limited"
        assert session.close_code is CloseCode.FLOODING
        assert session.state is SessionState.CLOSING
        await hub.dispatcher.dispatch(session, {"id": 99, "op": "ping"})
        assert drain(session) == []


async def test_rate_limits_count_failed_commands_too() -> None:
    async with running(limits=TIGHT) as [hub]:
        client = await connect(hub, "u1")
        for _ in range(5):
            assert await client.err("no.such.op") == "bad_request"
        assert await client.err("ping") == "rate_limited"


async def test_organizers_are_exempt_from_rate_limits() -> None:
    async with running(limits=TIGHT) as [hub]:
        client = await connect(hub, "boss", Role.ORGANIZER)
        for _ in range(50):
            assert await client.ok("ping") == {}
        assert client.session.open


async def test_a_room_claim_does_not_make_an_organizer() -> None:
    async with running(limits=TIGHT) as [hub]:
        client = await connect(hub, "u1", rooms={"main": Role.ORGANIZER})
        for _ in range(5):
            await client.ok("ping")
        assert await client.err("ping") == "rate_limited"


async def test_the_user_limit_is_shared_by_the_users_sessions() -> None:
    limits = Limits(connection_burst=100, user_rate=0.0, user_burst=4)
    async with running(limits=limits) as [hub]:
        first = await connect(hub, "alice")
        second = await connect(hub, "alice")
        other = await connect(hub, "bob")
        for _ in range(2):
            await first.ok("ping")
            await second.ok("ping")
        assert await first.err("ping") == "rate_limited"
        assert await second.err("ping") == "rate_limited"
        assert await other.ok("ping") == {}


async def test_hello_is_not_counted() -> None:
    limits = Limits(connection_rate=0.0, connection_burst=1)
    async with running(limits=limits) as [hub]:
        client = await connect(hub, "u1")
        assert await client.ok("ping") == {}
        assert await client.err("ping") == "rate_limited"


# -- rooms: create and list ------------------------------------------------------------------------


async def test_room_create_and_list() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        ok = await boss.ok("room.create", room="panel-1", kind="panel", title="Panel", capacity=9)
        assert ok == {"room": {"id": "panel-1", "kind": "panel", "title": "Panel", "parent": None}}
        await boss.ok("room.create", room="ws", kind="workshop", title="WS")
        await boss.ok("room.create", room="ws-side", kind="breakout", title="Side", parent="ws")
        await boss.ok("join", room="ws")
        listed = (await boss.ok("room.list"))["rooms"]
        assert listed == [
            {"id": "main", "kind": "lobby", "title": "Main hall", "parent": None, "members": 0},
            {
                "id": "panel-1",
                "kind": "panel",
                "title": "Panel",
                "parent": None,
                "members": 0,
                "in_breakouts": 0,
                "stage": [],
            },
            # The breakout room is not listed: its parent counts who is in it.
            {
                "id": "ws",
                "kind": "workshop",
                "title": "WS",
                "parent": None,
                "members": 1,
                "in_breakouts": 0,
            },
        ]


@pytest.mark.parametrize("role", [Role.ATTENDEE, Role.SPEAKER, Role.MODERATOR])
async def test_only_organizers_create_rooms(role: Role) -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1", role, rooms={"main": Role.ORGANIZER})
        assert await client.err("room.create", room="p", kind="panel", title="P") == "forbidden"
        assert await hub.rooms.directory.get("p") is None


async def test_room_create_errors() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="p", kind="panel", title="P")
        assert await boss.err("room.create", room="p", kind="workshop", title="Again") == "conflict"
        assert await boss.err("room.create", room="main", kind="lobby", title="M") == "conflict"
        assert (
            await boss.err("room.create", room="c", kind="breakout", title="C", parent="none")
            == "not_found"
        )
        assert await boss.err("room.create", room="p.b1", kind="panel", title="X") == "bad_request"
        assert await boss.err("room.create", room="Caps", kind="panel", title="X") == "bad_request"
        assert await boss.err("room.create", room="q", kind="stage", title="X") == "bad_request"
        assert (await hub.rooms.directory.require("p")).kind.value == "panel"  # unchanged


async def test_a_room_created_on_one_node_is_known_on_the_other() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="p", kind="panel", title="P")
        attendee = await connect(hub2, "u1")
        assert (await attendee.ok("join", room="p"))["room"]["id"] == "p"
        other_boss = await connect(hub2, "boss2", Role.ORGANIZER)
        assert await other_boss.err("room.create", room="p", kind="panel", title="P") == "conflict"


# -- rooms: join and leave -------------------------------------------------------------------------


async def test_join_reply_fields() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        ok = await client.ok("join", room="main")
        assert ok == {
            "room": {"id": "main", "kind": "lobby", "title": "Main hall", "parent": None},
            "role": "attendee",
            "seq": 0,
            "epoch": ok["epoch"],
            "members": 1,
            "snapshot": {
                "speakers": [],
                "moderators": [],
                "hands": [],
                "questions": [],
                "polls": [],
                "closed_polls": [],
                "notices": [],
                "rooms": [
                    {
                        "id": "main",
                        "kind": "lobby",
                        "title": "Main hall",
                        "parent": None,
                        "members": 1,
                    }
                ],
                "tables": [],
                "awards": {"polls": [], "partnerships": []},
            },
        }
        assert isinstance(ok["epoch"], str) and ok["epoch"]
        assert "main" in client.session.rooms
        assert client.session in hub.node.followers("main")


async def test_join_reports_the_role_in_the_room_and_the_current_seq() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        await mod.ok("join", room="main")
        for text in ("one", "two"):
            await mod.ok("announce", room="main", text=text)
        speaker = await connect(hub, "spk", rooms={"main": Role.SPEAKER})
        ok = await speaker.ok("join", room="main")
        assert ok["role"] == "speaker"
        assert ok["seq"] == 2
        assert ok["members"] == 2
        assert "missed" not in ok and "recovered" not in ok


async def test_join_errors() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        assert await client.err("join", room="nowhere") == "not_found"
        assert await client.err("join", room="Main") == "bad_request"
        assert await client.err("join") == "bad_request"
        for since in (-1, "3", True, 1.5):
            assert await client.err("join", room="main", since=since) == "bad_request"
        assert await client.err("join", room="main", since=0, epoch=7) == "bad_request"
        assert client.session.rooms == set()
        assert hub.node.streams == {}


async def test_join_twice_keeps_one_membership() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        await mod.ok("join", room="main")
        assert (await mod.ok("join", room="main"))["members"] == 1
        await mod.ok("announce", room="main", text="once")
        assert [e["text"] for e in mod.stored()] == ["once"]


async def test_leave_stops_delivery_and_a_second_leave_is_not_found() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        mod = await connect(hub1, "mod", Role.MODERATOR)
        local = await connect(hub1, "local")
        remote = await connect(hub2, "remote")
        for client in (mod, local, remote):
            await client.ok("join", room="main")
        await mod.ok("announce", room="main", text="before")
        assert await local.ok("leave", room="main") == {}
        assert await remote.ok("leave", room="main") == {}
        await mod.ok("announce", room="main", text="after")
        assert [e["text"] for e in local.stored()] == ["before"]
        assert [e["text"] for e in remote.stored()] == ["before"]
        assert [e["text"] for e in mod.stored()] == ["before", "after"]
        assert await local.err("leave", room="main") == "not_found"
        assert await local.err("leave", room="Bad!") == "bad_request"
        assert "main" not in hub2.node.streams
        assert "main" not in hub2.node.topics  # its last local member left: unsubscribed
        assert (await mod.ok("room.list"))["rooms"][0]["members"] == 1


async def test_a_closed_session_leaves_its_rooms() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        gone = await connect(hub, "gone")
        await mod.ok("join", room="main")
        await gone.ok("join", room="main")
        gone.session.request_close(CloseCode.NORMAL, "bye")
        gone.session.move(SessionState.CLOSED)
        await hub.node.remove_session(gone.session)
        assert gone.session.rooms == set()
        assert hub.node.followers("main") == [mod.session]
        assert (await mod.ok("presence", room="main"))["count"] == 1
        assert "gone" not in hub.node.users


async def test_capacity() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="small", kind="workshop", title="S", capacity=2)
        first = await connect(hub1, "a")
        second = await connect(hub2, "b")
        third = await connect(hub2, "c")
        await first.ok("join", room="small")
        await second.ok("join", room="small")
        assert await third.err("join", room="small") == "conflict"
        assert "small" not in third.session.rooms
        # A member already in may join again; moderators are not counted out.
        assert (await second.ok("join", room="small"))["members"] == 2
        mod = await connect(hub2, "m", rooms={"small": Role.MODERATOR})
        assert (await mod.ok("join", room="small"))["members"] == 3
        # Room frees up when someone leaves.
        await first.ok("leave", room="small")
        await mod.ok("leave", room="small")
        assert (await third.ok("join", room="small"))["members"] == 2


# -- rooms: ordering across nodes ------------------------------------------------------------------


async def test_every_member_on_every_node_receives_each_stored_event_once_in_order() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="p", kind="panel", title="P")
        mods = [
            await connect(hub1, "mod1", Role.MODERATOR),
            await connect(hub2, "mod2", Role.MODERATOR, fmt=WireFormat.MSGPACK),
        ]
        members = [
            *mods,
            await connect(hub1, "a"),
            await connect(hub1, "b", fmt=WireFormat.MSGPACK),
            await connect(hub2, "c"),
            await connect(hub2, "d", fmt=WireFormat.MSGPACK),
        ]
        for member in members:
            assert (await member.ok("join", room="p"))["seq"] == 0
        seqs = []
        for i in range(12):
            seqs.append((await mods[i % 2].ok("announce", room="p", text=f"n{i}"))["seq"])
        # Several senders at once, too.
        results = await asyncio.gather(
            *(mods[i % 2].hub.rooms.post_notice("p", f"g{i}", "x") for i in range(6))
        )
        assert seqs == list(range(1, 13))
        assert sorted(results) == list(range(13, 19))
        streams = [member.stored() for member in members]
        first = streams[0]
        assert [e["seq"] for e in first] == list(range(1, 19))
        assert [e["text"] for e in first[:12]] == [f"n{i}" for i in range(12)]
        assert first[0] == {"ev": "notice", "room": "p", "seq": 1, "text": "n0", "from": "mod1"}
        assert first[1]["from"] == "mod2"
        for stream in streams[1:]:
            assert stream == first


async def test_a_member_joining_midway_receives_only_what_follows_its_join() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        mod = await connect(hub1, "mod", Role.MODERATOR)
        await mod.ok("join", room="main")
        for i in range(3):
            await mod.ok("announce", room="main", text=f"early{i}")
        late = await connect(hub2, "late")
        assert (await late.ok("join", room="main"))["seq"] == 3
        await mod.ok("announce", room="main", text="late0")
        assert [(e["seq"], e["text"]) for e in late.stored()] == [(4, "late0")]


async def test_events_stored_while_a_join_is_answered_come_after_its_reply() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        await mod.ok("join", room="main")

        async def busy(ctx: CommandContext, room: Room, role: Role) -> dict[str, Any]:
            # Someone posts while the joiner's snapshot is being built.
            await hub.rooms.post_notice(room.id, "meanwhile", "mod")
            return {"busy": True}

        hub.rooms.hooks.snapshot.append(each_entrant_part(busy))
        joiner = await connect(hub, "joiner")
        await hub.dispatcher.dispatch(joiner.session, {"id": 77, "op": "join", "room": "main"})
        messages = drain(joiner.session)
        assert [m.get("re", m.get("ev")) for m in messages] == [77, "notice"]
        reply, event = messages
        assert reply["ok"]["snapshot"]["busy"] is True
        assert event["seq"] == reply["ok"]["seq"] + 1
        assert event["text"] == "meanwhile"


async def test_a_join_racing_with_the_last_local_leave_still_follows_the_room() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        leaver = await connect(hub, "leaver")
        joiner = await connect(hub, "joiner")
        await leaver.ok("join", room="main")
        broker = hub.node.broker
        real_history = broker.history
        reading, go_on = asyncio.Event(), asyncio.Event()

        async def slow_history(room: str, after: int, limit: int | None = None) -> History:
            # The join's read of the room takes a while (a Redis round trip).
            reading.set()
            await go_on.wait()
            return await real_history(room, after, limit)

        broker.history = slow_history  # type: ignore[method-assign]
        # With `since`, a join reads the room even when this node follows it already.
        join = asyncio.create_task(joiner.ok("join", room="main", since=0))
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        await leaver.ok("leave", room="main")  # the room's only local follower leaves meanwhile
        broker.history = real_history  # type: ignore[method-assign]
        go_on.set()
        await asyncio.wait_for(join, TIMEOUT)
        await mod.ok("announce", room="main", text="still here?")
        assert [e["text"] for e in joiner.stored()] == ["still here?"]
        assert hub.node.followers("main") == [joiner.session]


def counted_head_reads(broker: Broker) -> list[str]:
    """The rooms whose head ``broker`` reads from now on, in order (a list that grows)."""
    reads: list[str] = []
    real_head = broker.head

    async def counted_head(room: str) -> tuple[str, int]:
        reads.append(room)
        return await real_head(room)

    broker.head = counted_head  # type: ignore[method-assign]
    return reads


async def test_a_join_of_a_room_followed_here_starts_at_the_known_position_unread() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        first = await connect(hub, "first")
        second = await connect(hub, "second")
        await first.ok("join", room="main")
        await mod.ok("announce", room="main", text="before")
        assert [e["text"] for e in first.stored()] == ["before"]
        broker = hub.node.broker
        reads = counted_head_reads(broker)
        joined = await second.ok("join", room="main")
        assert reads == []
        assert joined["seq"] == 1
        await mod.ok("announce", room="main", text="after")
        assert [e["text"] for e in second.stored()] == ["after"]
        # While the broker is not ready, the room may have lost its history: it is read.
        ready = broker.ready
        broker.ready = lambda: False  # type: ignore[method-assign]
        third = await connect(hub, "third")
        await third.ok("join", room="main")
        broker.ready = ready  # type: ignore[method-assign]
        assert reads == ["main"]


def unknown_position(broker: Broker) -> None:
    """Make ``broker`` not tell where its delivery of a room stands (as while its subscription
    is not confirmed): a room's first join here reads the room's head."""
    broker.position = lambda room: None  # type: ignore[method-assign]


async def test_a_rooms_first_join_here_starts_where_delivery_stands_unread() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        first = await connect(hub, "first")
        await mod.ok("announce", room="main", text="before anyone")
        broker = hub.node.broker
        reads = counted_head_reads(broker)
        joined = await first.ok("join", room="main")
        assert reads == []
        assert (joined["epoch"], joined["seq"]) == broker.position("main")
        assert joined["seq"] == 1
        await mod.ok("announce", room="main", text="after")
        assert [e["text"] for e in first.stored()] == ["after"]


async def test_joins_meeting_a_head_read_under_way_share_its_position() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        first, second, third = [await connect(hub, name) for name in ("first", "second", "third")]
        broker = hub.node.broker
        real_head = broker.head
        reads: list[str] = []
        reading, go_on = asyncio.Event(), asyncio.Event()

        async def slow_head(room: str) -> tuple[str, int]:
            # The first join's read of the room takes a while (a Redis round trip).
            reads.append(room)
            reading.set()
            await go_on.wait()
            return await real_head(room)

        broker.head = slow_head  # type: ignore[method-assign]
        unknown_position(broker)
        joins = [asyncio.create_task(first.ok("join", room="main"))]
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        joins += [asyncio.create_task(c.ok("join", room="main")) for c in (second, third)]
        go_on.set()
        replies = await asyncio.wait_for(asyncio.gather(*joins), TIMEOUT)
        assert reads == ["main"]
        assert {reply["seq"] for reply in replies} == {0}
        await mod.ok("announce", room="main", text="for all three")
        for client in (first, second, third):
            assert [e["text"] for e in client.stored()] == ["for all three"]


async def test_a_first_join_whose_head_read_was_overtaken_by_fan_out_reads_again() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        client = await connect(hub, "first")
        broker = hub.node.broker
        real_head = broker.head
        reads: list[tuple[str, int]] = []

        async def overtaken_head(room: str) -> tuple[str, int]:
            head = await real_head(room)
            reads.append(head)
            if len(reads) == 1:
                # Published and fanned out here while this read's answer is on its way.
                await mod.ok("announce", room=room, text="during the read")
            return head

        broker.head = overtaken_head  # type: ignore[method-assign]
        unknown_position(broker)
        joined = await client.ok("join", room="main")
        assert [seq for _, seq in reads] == [0, 1]
        assert joined["seq"] == 1


async def test_a_join_waiting_for_a_head_read_that_fails_reads_the_room_itself() -> None:
    async with running() as [hub]:
        first, second = await connect(hub, "first"), await connect(hub, "second")
        broker = hub.node.broker
        real_head = broker.head
        reading, go_on = asyncio.Event(), asyncio.Event()

        async def failing_once(room: str) -> tuple[str, int]:
            broker.head = real_head  # type: ignore[method-assign]
            reading.set()
            await go_on.wait()
            raise BrokerUnavailable("redis is down")

        broker.head = failing_once  # type: ignore[method-assign]
        unknown_position(broker)
        failed = asyncio.create_task(first.err("join", room="main"))
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        joined = asyncio.create_task(second.ok("join", room="main"))
        go_on.set()
        assert await asyncio.wait_for(failed, TIMEOUT) == "unavailable"
        assert (await asyncio.wait_for(joined, TIMEOUT))["seq"] == 0
        assert hub.node.followers("main") == [second.session]


async def test_a_join_whose_read_fails_leaves_nothing_behind() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")

        async def down(room: str) -> tuple[str, int]:
            raise BrokerUnavailable("redis is down")

        hub.node.broker.head = down  # type: ignore[method-assign]
        unknown_position(hub.node.broker)
        assert await client.err("join", room="main") == "unavailable"
        assert client.session.rooms == set()
        assert hub.node.streams == {}
        assert "main" not in hub.node.topics


async def test_a_join_that_fails_after_following_leaves_the_room_again() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        await mod.ok("join", room="main")

        async def failing(ctx: CommandContext, room: Room, role: Role) -> dict[str, Any]:
            raise BrokerUnavailable("redis is down")

        hub.rooms.hooks.snapshot.append(each_entrant_part(failing))
        client = await connect(hub, "u1")
        assert await client.err("join", room="main") == "unavailable"
        assert client.session.rooms == set()
        assert hub.node.followers("main") == [mod.session]
        assert (await mod.ok("presence", room="main"))["count"] == 1
        await hub.rooms.post_notice("main", "not for u1", "mod")
        assert client.stored() == []


# -- rooms: join since -----------------------------------------------------------------------------


async def _announced(hub: Hub, count: int, room: str = "main") -> Client:
    """A moderator in ``room`` who announced ``count`` notices ("t1", "t2" ...)."""
    mod = await connect(hub, "mod", Role.MODERATOR)
    await mod.ok("join", room=room)
    for i in range(1, count + 1):
        await mod.ok("announce", room=room, text=f"t{i}")
    return mod


async def test_join_since_within_history_recovers_what_was_missed() -> None:
    async with running() as [hub]:
        mod = await _announced(hub, 5)
        epoch = (await mod.ok("join", room="main"))["epoch"]
        client = await connect(hub, "u1")
        ok = await client.ok("join", room="main", since=2, epoch=epoch)
        assert ok["seq"] == 5
        assert ok["epoch"] == epoch
        assert ok["recovered"] is True
        assert [(m["seq"], m["text"]) for m in ok["missed"]] == [(3, "t3"), (4, "t4"), (5, "t5")]
        assert ok["missed"][0] == {
            "ev": "notice",
            "room": "main",
            "seq": 3,
            "text": "t3",
            "from": "mod",
        }
        # Then live events follow on, without a gap or a repeat.
        await mod.ok("announce", room="main", text="t6")
        assert [e["seq"] for e in client.stored()] == [6]


async def test_join_since_without_epoch_and_up_to_date() -> None:
    async with running() as [hub]:
        await _announced(hub, 3)
        client = await connect(hub, "u1")
        ok = await client.ok("join", room="main", since=3)
        assert ok["missed"] == []
        assert ok["recovered"] is True
        ok = await client.ok("join", room="main", since=0)
        assert [m["seq"] for m in ok["missed"]] == [1, 2, 3]
        assert ok["recovered"] is True


async def test_join_since_past_the_head_is_not_recovered() -> None:
    async with running() as [hub]:
        await _announced(hub, 2)
        client = await connect(hub, "u1")
        ok = await client.ok("join", room="main", since=10)
        assert ok["missed"] == []
        assert ok["recovered"] is False
        assert ok["seq"] == 2


async def test_join_since_before_the_trimmed_history_is_not_recovered() -> None:
    async with running(history_size=3) as [hub]:
        mod = await _announced(hub, 6)
        epoch = (await mod.ok("join", room="main"))["epoch"]
        client = await connect(hub, "u1")
        ok = await client.ok("join", room="main", since=1, epoch=epoch)
        assert ok["recovered"] is False
        assert [m["seq"] for m in ok["missed"]] == [4, 5, 6]  # what history still holds
        # Since 3, history (4..6) still reaches back far enough.
        ok = await client.ok("join", room="main", since=3, epoch=epoch)
        assert ok["recovered"] is True
        assert [m["seq"] for m in ok["missed"]] == [4, 5, 6]


async def test_join_since_in_another_epoch_is_not_recovered() -> None:
    async with running() as [hub]:
        await _announced(hub, 3)
        client = await connect(hub, "u1")
        ok = await client.ok("join", room="main", since=1, epoch="some-old-epoch")
        assert ok["recovered"] is False
        assert ok["missed"] == []
        assert ok["seq"] == 3
        assert ok["epoch"] != "some-old-epoch"


async def test_join_since_after_the_history_was_lost_is_not_recovered() -> None:
    async with running() as [hub]:
        mod = await _announced(hub, 3)
        old_epoch = (await mod.ok("join", room="main"))["epoch"]
        # The shared history is lost (a Redis that restarted empty): seq starts again.
        assert isinstance(hub.node.broker, MemoryBroker)
        backend = hub.node.broker.backend
        del backend.streams["main"]
        await hub.rooms.post_notice("main", "new era", "mod")
        client = await connect(hub, "u1")
        ok = await client.ok("join", room="main", since=3, epoch=old_epoch)
        assert ok["epoch"] != old_epoch
        assert ok["seq"] == 1
        assert ok["recovered"] is False
        assert ok["missed"] == []


# -- rooms: presence -------------------------------------------------------------------------------


async def test_presence_pages_the_members() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        clients = [await connect((hub1, hub2)[i % 2], f"user{i}") for i in range(5)]
        for client in clients:
            await client.ok("join", room="main")
        reader = clients[0]
        pages = []
        after = ""
        while True:
            page = await reader.ok("presence", room="main", after=after, limit=2)
            assert page["count"] == 5
            pages.append(page["members"])
            if "next" not in page:
                break
            after = page["next"]
            assert after == page["members"][-1]["sid"]
        assert [len(p) for p in pages] == [2, 2, 1]
        listed = [m for p in pages for m in p]
        assert [m["sid"] for m in listed] == sorted(c.sid for c in clients)
        by_sid = {c.sid: c for c in clients}
        for member in listed:
            user = by_sid[member["sid"]].session.user_id
            assert member == {"sid": member["sid"], "user": user, "name": user, "role": "attendee"}
        # The default page holds them all, with no "next".
        whole = await reader.ok("presence", room="main")
        assert len(whole["members"]) == 5 and "next" not in whole


async def test_presence_errors() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        assert await client.err("presence", room="nowhere") == "not_found"
        assert await client.err("presence", room="Main") == "bad_request"
        for limit in (0, 501, "5", True):
            assert await client.err("presence", room="main", limit=limit) == "bad_request"
        for after in (5, "x" * 201):
            assert await client.err("presence", room="main", after=after) == "bad_request"
        assert (await client.ok("presence", room="main", limit=500))["count"] == 0


async def test_cursors_may_be_null_and_are_200_characters_at_most() -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1")
        await client.ok("join", room="main")
        first = await client.ok("presence", room="main", after=None)
        assert [m["sid"] for m in first["members"]] == [client.sid]
        assert await client.ok("presence", room="main", after="x" * 200) == {
            "members": [],
            "count": 1,
        }
        assert await client.ok("join", room="main", since=0, epoch="e" * 200)
        assert await client.err("join", room="main", since=0, epoch="e" * 201) == "bad_request"


async def test_presence_events_are_batched_to_each_nodes_members() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        a = await connect(hub1, "a")
        b = await connect(hub2, "b")
        await a.ok("join", room="main")
        await b.ok("join", room="main")
        for hub in (hub1, hub2):
            await hub.rooms.flush_presence()
        [event_a] = a.collect()
        assert event_a["ev"] == "presence"
        assert event_a["room"] == "main"
        assert event_a["count"] == 2
        assert "seq" not in event_a
        assert [e["sid"] for e in event_a["joined"]] == [a.sid, b.sid]
        assert event_a["joined"][0] == {"sid": a.sid, "user": "a", "name": "a"}
        [event_b] = b.collect()
        assert [e["sid"] for e in event_b["joined"]] == [b.sid]  # n2 followed the room later
        # At most once per interval: a change now waits for the next one.
        await b.ok("leave", room="main")
        for hub in (hub1, hub2):
            await hub.rooms.flush_presence()
        assert a.collect() == []
        batch = hub1.rooms.batcher.due(time.monotonic() + hub1.config.presence_interval)
        assert [(x.room, [e["sid"] for e in x.left]) for x in batch] == [("main", [b.sid])]


async def test_a_join_and_leave_in_one_batch_cancel_in_the_event() -> None:
    async with running() as [hub]:
        a = await connect(hub, "a")
        b = await connect(hub, "b")
        await a.ok("join", room="main")
        await b.ok("join", room="main")
        await b.ok("leave", room="main")
        await hub.rooms.flush_presence()
        [event] = a.collect()
        assert event == {
            "ev": "presence",
            "room": "main",
            "count": 1,
            "joined": [{"sid": a.sid, "user": "a", "name": "a"}],
        }


# -- rooms: announce -------------------------------------------------------------------------------


async def test_announce_stores_a_notice_for_every_member() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        member = await connect(hub, "member")
        await member.ok("join", room="main")
        ok = await mod.ok("announce", room="main", text="  Welcome!\nCoffee at 10.  ")
        assert ok == {"seq": 1}
        assert member.stored() == [
            {
                "ev": "notice",
                "room": "main",
                "seq": 1,
                "text": "Welcome!\nCoffee at 10.",
                "from": "mod",
            }
        ]


@pytest.mark.parametrize("role", [Role.ATTENDEE, Role.SPEAKER])
async def test_only_moderators_announce(role: Role) -> None:
    async with running() as [hub]:
        client = await connect(hub, "u1", role)
        await client.ok("join", room="main")
        assert await client.err("announce", room="main", text="hi") == "forbidden"
        assert client.stored() == []


async def test_a_room_moderator_announces_in_that_room_only() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="p", kind="panel", title="P")
        client = await connect(hub, "host", rooms={"p": Role.MODERATOR})
        assert await client.ok("announce", room="p", text="hi") == {"seq": 1}
        assert await client.err("announce", room="main", text="hi") == "forbidden"
        assert await boss.ok("announce", room="main", text="from the top") == {"seq": 1}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "bad_request"),
        ("   \n  ", "bad_request"),
        (None, "bad_request"),
        (5, "bad_request"),
        (["hi"], "bad_request"),
        ("x" * 2001, "too_large"),
        ("  " + "x" * 2001 + "  ", "too_large"),
        ("bell\x07", "bad_request"),
        ("nul\x00byte", "bad_request"),
        ("esc\x1b[31m", "bad_request"),
        ("tab\there", "bad_request"),
        ("del\x7f", "bad_request"),
        ("c1\x85inside", "bad_request"),
    ],
)
async def test_announce_text_validation(text: object, code: str) -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        await mod.ok("join", room="main")
        assert await mod.err("announce", room="main", text=text) == code
        assert mod.stored() == []


async def test_announce_text_limits_are_inclusive() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        assert await mod.ok("announce", room="main", text="x" * 2000) == {"seq": 1}
        assert await mod.ok("announce", room="main", text="é ✓ 漢字") == {"seq": 2}


async def test_announce_to_a_missing_room() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        assert await mod.err("announce", room="nowhere", text="hi") == "not_found"
        assert await mod.err("announce", room="No!", text="hi") == "bad_request"


async def test_a_member_waiting_on_its_queue_is_woken_by_an_announcement() -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        member = await connect(hub, "member")
        await member.ok("join", room="main")
        waiter = asyncio.create_task(wait_for_queue(member.session))
        announcer = asyncio.create_task(mod.ok("announce", room="main", text="wake"))
        await asyncio.wait_for(asyncio.gather(waiter, announcer), TIMEOUT)
        assert [e["text"] for e in member.stored()] == ["wake"]


async def test_a_failed_join_drops_the_events_it_held_back_for_that_room_only() -> None:
    async with running() as [hub]:
        await (await connect(hub, "org", Role.ORGANIZER)).ok(
            "room.create", room="other", kind="workshop"
        )
        client = await connect(hub, "u1")
        await client.ok("join", room="other")
        client.collect()

        async def failing(ctx: CommandContext, room: Room, role: Role) -> dict[str, Any]:
            # Events of both rooms are stored while this join is being answered.
            await hub.rooms.post_notice("main", "held for main", "org")
            await hub.rooms.post_notice("other", "held for other", "org")
            raise BrokerUnavailable("redis is down")

        hub.rooms.hooks.snapshot.append(each_entrant_part(failing))
        assert await client.err("join", room="main") == "unavailable"
        assert [e["text"] for e in client.stored()] == ["held for other"]


async def test_an_invalid_id_before_hello_closes_with_4001() -> None:
    async with running() as [hub]:
        session = new_session(hub)
        await hub.dispatcher.dispatch(session, {"id": -1, "op": "ping"})
        assert session.close_code is CloseCode.UNAUTHENTICATED


async def test_a_hello_that_finds_the_broker_down_may_be_tried_again() -> None:
    async with running() as [hub]:
        client = Client(hub, new_session(hub))
        subscribe = hub.node.broker.subscribe

        async def down(topic: str) -> None:
            raise BrokerUnavailable("redis is down")

        hub.node.broker.subscribe = down  # type: ignore[method-assign]
        assert await client.err("hello", token=token(hub, "u1")) == "unavailable"
        assert client.session.state is SessionState.CONNECTED
        assert hub.node.users == {}
        hub.node.broker.subscribe = subscribe  # type: ignore[method-assign]
        await client.ok("hello", token=token(hub, "u1"))
        assert list(hub.node.users["u1"]) == [client.sid]


async def test_members_whose_entries_expired_while_the_broker_was_away_are_put_back() -> None:
    async with running() as [hub]:
        a = await connect(hub, "a")
        b = await connect(hub, "b")
        await a.ok("join", room="main")
        await b.ok("join", room="main")
        await hub.rooms.flush_presence()
        a.collect()
        # As after an outage longer than the ttl: b's entry expired, b is still connected.
        await hub.node.broker.presence_remove("main", [b.sid])
        assert await hub.node.broker.presence_count("main") == 1
        await hub.rooms.refresh_presence()
        assert await hub.node.broker.presence_count("main") == 2
        page = await a.ok("presence", room="main")
        assert {member["sid"] for member in page["members"]} == {a.sid, b.sid}
        # The room is told b is there again, in its next presence batch.
        [batch] = hub.rooms.batcher.due(time.monotonic() + hub.config.presence_interval)
        assert batch.room == "main" and [e["sid"] for e in batch.joined] == [b.sid]
