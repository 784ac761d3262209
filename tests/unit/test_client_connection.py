"""Tests of livehub_client.connection against a tiny in-test fake server (a test double for the
client's logic, not the hub): hello, ping, echo, scripted join replies, pushed events, coalesced
frames, closes.

No test sleeps to synchronise: each waits for an event, a command or a future, with a timeout.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from hub.codec import WireFormat, decode_frame, encode_message, join_frame
from livehub_client.connection import HubClient, HubClosed, HubRequestError, RoomPosition

T = 5.0  # the timeout of every wait that is expected to succeed
QUIET = 0.3  # how long a wait that is expected to time out waits

Msg = dict[str, Any]


class Session:
    """One server-side connection of the fake hub."""

    def __init__(self, ws: ServerConnection, fmt: WireFormat) -> None:
        self.ws = ws
        self.fmt = fmt

    async def send(self, *msgs: Msg) -> None:
        """Send ``msgs`` coalesced into one frame."""
        parts = [encode_message(self.fmt, m) for m in msgs]
        await self.ws.send(join_frame(self.fmt, parts))

    async def reply(self, msg_id: int, ok: Msg | None = None) -> None:
        await self.send({"re": msg_id, "ok": ok or {}})

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code, reason)


class FakeHub:
    """Answers ``hello`` (token ``bad`` -> error reply and 4001, ``close`` or a banned token ->
    close 4001/4003), ``ping``, ``echo``, ``fail`` (error reply), ``join`` (scripted replies),
    ``leave`` and ``refresh``; ``hold`` gets no reply (the test answers). Every command is queued
    by op for the test to inspect."""

    def __init__(self) -> None:
        self.url = ""
        self.connections = 0
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()
        self.banned: set[str] = set()
        self.origins: list[str | None] = []
        # room -> scripted join replies, used in order; "_after" lists messages sent in the same
        # frame right after the reply.
        self.join_replies: dict[str, collections.deque[Msg]] = collections.defaultdict(
            collections.deque
        )
        self._commands: dict[str, asyncio.Queue[tuple[Session, Msg]]] = collections.defaultdict(
            asyncio.Queue
        )

    def commands(self, op: str) -> asyncio.Queue[tuple[Session, Msg]]:
        return self._commands[op]

    async def command(self, op: str) -> tuple[Session, Msg]:
        """The next command ``op`` received (with its session)."""
        async with asyncio.timeout(T):
            return await self._commands[op].get()

    async def session(self) -> Session:
        """The next session that said hello successfully."""
        async with asyncio.timeout(T):
            return await self.sessions.get()

    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Refuses the handshake (403) for the origin ``http://evil.example``, as the hub does."""
        origin = request.headers.get("Origin")
        self.origins.append(origin)
        if origin == "http://evil.example":
            return ws.respond(403, "origin not allowed")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        assert ws.subprotocol is not None
        session = Session(ws, WireFormat(ws.subprotocol))
        try:
            async for data in ws:
                for msg in decode_frame(session.fmt, data):
                    await self._handle(session, msg)
        except ConnectionClosed:
            pass

    async def _handle(self, session: Session, msg: Msg) -> None:
        op, n = msg["op"], msg.get("id", 0)
        self._commands[op].put_nowait((session, msg))
        if op == "hello":
            token = msg.get("token")
            if token == "bad":
                await session.send({"re": n, "err": {"code": "unauthorized", "msg": "bad token"}})
                await session.close(4001, "unauthorized")
            elif token == "close":
                await session.close(4001, "unauthorized")
            elif token in self.banned:
                await session.close(4003, "banned")
            else:
                user = {"id": token or "guest", "name": msg.get("name", "x"), "role": "attendee"}
                await session.reply(n, {"sid": f"s{self.connections}", "user": user, "node": "n1"})
                self.sessions.put_nowait(session)
        elif op in ("ping", "leave", "refresh"):
            await session.reply(n)
        elif op == "echo":
            await session.reply(n, {k: v for k, v in msg.items() if k not in ("id", "op")})
        elif op == "fail":
            await session.send({"re": n, "err": {"code": "forbidden", "msg": "no"}})
        elif op == "join":
            room = msg["room"]
            script = self.join_replies[room]
            reply = dict(script.popleft()) if script else {}
            after = reply.pop("_after", [])
            ok = {"room": {"id": room}, "role": "attendee", "seq": 0, "epoch": "e1"}
            ok.update(members=1, snapshot={})
            ok.update(reply)
            await session.send({"re": n, "ok": ok}, *after)


@pytest.fixture(params=list(WireFormat), ids=lambda f: f.name.lower())
def fmt(request: pytest.FixtureRequest) -> WireFormat:
    value: WireFormat = request.param
    return value


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    fake = FakeHub()
    protocols = [Subprotocol(f.value) for f in WireFormat]
    async with serve(
        fake.handler,
        "127.0.0.1",
        0,
        subprotocols=protocols,
        process_request=fake.process_request,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/ws"
        yield fake


MakeClient = Callable[..., HubClient]


@pytest.fixture
async def make_client(hub: FakeHub, fmt: WireFormat) -> AsyncIterator[MakeClient]:
    clients: list[HubClient] = []

    def make(**kwargs: Any) -> HubClient:
        if "name" not in kwargs:
            kwargs.setdefault("token", "t1")
        kwargs.setdefault("fmt", fmt)
        kwargs.setdefault("backoff_base", 0.001)
        kwargs.setdefault("backoff_cap", 0.005)
        kwargs.setdefault("request_timeout", T)
        client = HubClient(hub.url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def connected(
    make_client: MakeClient, hub: FakeHub, **kwargs: Any
) -> tuple[HubClient, Session]:
    client = make_client(**kwargs)
    await client.connect()
    return client, await hub.session()


async def events_until(client: HubClient, last: str) -> list[Msg]:
    """Read events up to and including the first whose ``ev`` is ``last``."""
    seen = []
    while True:
        event = await client.next_event(timeout=T)
        seen.append(event)
        if event["ev"] == last:
            return seen


# -- session ---------------------------------------------------------------------------------------


async def test_connect_says_hello_and_exposes_the_reply(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client = make_client(token="t1")
    ok = await client.connect()
    assert ok["sid"] == "s1"
    assert (client.sid, client.node, client.hello) == ("s1", "n1", ok)
    assert client.user == {"id": "t1", "name": "x", "role": "attendee"}
    assert client.connected
    _, hello = await hub.command("hello")
    assert hello == {"id": 1, "op": "hello", "token": "t1"}
    assert await client.request("ping") == {}
    _, ping = await hub.command("ping")
    assert ping == {"id": 2, "op": "ping"}


async def test_guest_hello_sends_the_name(make_client: MakeClient, hub: FakeHub) -> None:
    async with make_client(name="Ada") as client:
        assert client.user is not None and client.user["name"] == "Ada"
    _, hello = await hub.command("hello")
    assert hello == {"id": 1, "op": "hello", "name": "Ada"}


async def test_context_manager_closes(make_client: MakeClient) -> None:
    async with make_client() as client:
        assert client.connected
    assert not client.connected
    with pytest.raises(HubClosed):
        await client.request("ping")


async def test_refused_hello_raises_the_error_reply(make_client: MakeClient) -> None:
    client = make_client(token="bad")
    with pytest.raises(HubRequestError) as info:
        await client.connect()
    assert (info.value.code, info.value.msg) == ("unauthorized", "bad token")
    assert not client.connected


async def test_hello_closed_with_4001_raises_hub_closed(make_client: MakeClient) -> None:
    client = make_client(token="close")
    with pytest.raises(HubClosed) as info:
        await client.connect()
    assert info.value.code == 4001
    assert client.close_code == 4001


async def test_origin_is_sent_only_when_given(make_client: MakeClient, hub: FakeHub) -> None:
    await make_client().connect()
    await make_client(origin="http://ok.example").connect()
    assert hub.origins == [None, "http://ok.example"]
    client = make_client(origin="http://evil.example")
    with pytest.raises(HubClosed) as info:
        await client.connect()
    assert info.value.code is None and "403" in info.value.reason


# -- requests --------------------------------------------------------------------------------------


async def test_replies_are_matched_by_id_out_of_order(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client, _ = await connected(make_client, hub)
    tasks = [asyncio.create_task(client.request("hold", n=i)) for i in range(3)]
    held = [await hub.command("hold") for _ in tasks]
    assert sorted(msg["id"] for _, msg in held) == [2, 3, 4]
    for session, msg in reversed(held):  # one reply per frame, last command first
        await session.reply(msg["id"], {"n": msg["n"]})
    results = await asyncio.wait_for(asyncio.gather(*tasks), T)
    assert results == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_error_reply_raises_hub_request_error(make_client: MakeClient, hub: FakeHub) -> None:
    client, _ = await connected(make_client, hub)
    with pytest.raises(HubRequestError) as info:
        await client.request("fail", room="r")
    assert (info.value.code, info.value.msg) == ("forbidden", "no")
    assert await client.request("echo", a=[1, "b"]) == {"a": [1, "b"]}  # still usable


async def test_request_timeout_and_late_reply_is_ignored(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client, _ = await connected(make_client, hub, request_timeout=QUIET)
    with pytest.raises(TimeoutError):
        await client.request("hold")
    session, held = await hub.command("hold")
    await session.reply(held["id"], {"late": True})
    assert await client.request("echo", x=1) == {"x": 1}


async def test_send_has_no_id(make_client: MakeClient, hub: FakeHub) -> None:
    client, _ = await connected(make_client, hub)
    await client.send("hold", text="hi")
    _, msg = await hub.command("hold")
    assert msg == {"op": "hold", "text": "hi"}


async def test_several_messages_in_one_frame(make_client: MakeClient, hub: FakeHub) -> None:
    client, _ = await connected(make_client, hub)
    task = asyncio.create_task(client.request("hold"))
    session, held = await hub.command("hold")
    await session.send(
        {"ev": "a"}, {"re": held["id"], "ok": {"done": 1}}, {"ev": "b"}, {"ev": "c", "x": [1, 2]}
    )
    assert await asyncio.wait_for(task, T) == {"done": 1}
    assert [(await client.next_event(T))["ev"] for _ in range(3)] == ["a", "b", "c"]


async def test_wait_for_drops_events_that_do_not_match(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client, session = await connected(make_client, hub)
    await session.send({"ev": "a"}, {"ev": "b", "n": 1}, {"ev": "c"})
    assert await client.wait_for(lambda ev: ev["ev"] == "b", timeout=T) == {"ev": "b", "n": 1}
    assert await client.next_event(T) == {"ev": "c"}
    with pytest.raises(TimeoutError):
        await client.wait_for(lambda ev: True, timeout=QUIET)


# -- rooms, ordering and recovery ------------------------------------------------------------------


async def test_events_are_deduplicated_by_seq(make_client: MakeClient, hub: FakeHub) -> None:
    hub.join_replies["r"].append({"seq": 5, "epoch": "e1"})
    client, session = await connected(make_client, hub)
    ok = await client.join("r")
    assert (ok["seq"], ok["epoch"], ok["room"]) == (5, "e1", {"id": "r"})
    assert client.rooms == {"r": RoomPosition(5, "e1")}
    await session.send(
        {"ev": "chat", "room": "r", "seq": 4},
        {"ev": "chat", "room": "r", "seq": 5},
        {"ev": "chat", "room": "r", "seq": 6},
    )
    await session.send({"ev": "chat", "room": "r", "seq": 6})
    await session.send(
        {"ev": "presence", "room": "r", "count": 3},  # ephemeral: no seq, always passed on
        {"ev": "chat", "room": "r", "seq": 7},
        {"ev": "chat", "room": "other", "seq": 1},  # not a joined room: passed on
        {"ev": "end"},
    )
    got = [(ev["ev"], ev.get("seq")) for ev in await events_until(client, "end")]
    assert got == [("chat", 6), ("presence", None), ("chat", 7), ("chat", 1), ("end", None)]
    assert client.rooms["r"] == RoomPosition(7, "e1")


async def test_missed_events_come_in_order_before_live_ones(
    make_client: MakeClient, hub: FakeHub
) -> None:
    missed = [{"ev": "chat", "room": "r", "seq": s} for s in (3, 4, 5)]
    live = [{"ev": "chat", "room": "r", "seq": s} for s in (5, 6)]  # overlaps the replay
    hub.join_replies["r"].append(
        {"seq": 5, "epoch": "e1", "missed": missed, "recovered": True, "_after": live}
    )
    client, _ = await connected(make_client, hub)
    ok = await client.join("r", since=2, epoch="e1")
    assert ok["recovered"] is True
    _, join = await hub.command("join")
    assert (join["since"], join["epoch"]) == (2, "e1")
    assert [(await client.next_event(T))["seq"] for _ in range(4)] == [3, 4, 5, 6]
    assert client.rooms["r"] == RoomPosition(6, "e1")


async def test_reset_restarts_the_room(make_client: MakeClient, hub: FakeHub) -> None:
    hub.join_replies["r"].append({"seq": 9, "epoch": "e1"})
    client, session = await connected(make_client, hub)
    await client.join("r")
    await session.send(
        {"ev": "reset", "room": "r", "epoch": "e2"},
        {"ev": "chat", "room": "r", "seq": 1},
    )
    assert await client.next_event(T) == {"ev": "reset", "room": "r", "epoch": "e2"}
    assert (await client.next_event(T))["seq"] == 1
    assert client.rooms["r"] == RoomPosition(1, "e2")


async def test_a_move_into_a_breakout_follows_it_as_a_join_would(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client, session = await connected(make_client, hub)
    await client.join("ws")
    missed = [{"ev": "notice", "room": "ws.b1", "seq": 1}]
    joined = {"room": {"id": "ws.b1"}, "seq": 1, "epoch": "e1", "missed": missed}
    moved = {"ev": "breakout.assigned", "room": "ws", "breakout": "ws.b1", "joined": joined}
    await session.send(moved, {"ev": "chat", "room": "ws.b1", "seq": 1})  # a duplicate
    await session.send({"ev": "chat", "room": "ws.b1", "seq": 2})
    assert await client.next_event(T) == moved
    assert await client.next_event(T) == {"ev": "notice", "room": "ws.b1", "seq": 1}
    assert (await client.next_event(T))["seq"] == 2
    assert client.rooms["ws.b1"] == RoomPosition(2, "e1")
    # The plain event (no move) follows nothing.
    await session.send({"ev": "breakout.assigned", "room": "ws", "breakout": "ws.b2"})
    assert (await client.next_event(T))["breakout"] == "ws.b2"
    assert "ws.b2" not in client.rooms


async def test_leave_and_kicked_forget_the_room(make_client: MakeClient, hub: FakeHub) -> None:
    client, session = await connected(make_client, hub)
    await client.join("a")
    await client.join("b")
    assert await client.leave("a") == {}
    await session.send({"ev": "kicked", "room": "b"})
    assert await client.next_event(T) == {"ev": "kicked", "room": "b"}
    assert client.rooms == {}
    await session.close(1012)
    event = await client.wait_for(lambda ev: ev["ev"] == "client.reconnected", timeout=T)
    assert event["recovered"] == {}
    await client.request("ping")  # any rejoin would have been answered before this reply
    assert hub.commands("join").qsize() == 2


# -- reconnect -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1012, 4008])
async def test_reconnect_rehello_and_rejoin_since(
    make_client: MakeClient, hub: FakeHub, code: int
) -> None:
    hub.join_replies["r"].append({"seq": 2, "epoch": "e1"})
    client, session = await connected(make_client, hub)
    await client.join("r")
    await session.send({"ev": "chat", "room": "r", "seq": 3}, {"ev": "chat", "room": "r", "seq": 4})
    assert [(await client.next_event(T))["seq"] for _ in range(2)] == [3, 4]

    pending = asyncio.create_task(client.request("hold"))
    await hub.command("hold")
    missed = [{"ev": "chat", "room": "r", "seq": s} for s in (4, 5, 6)]
    hub.join_replies["r"].append({"seq": 6, "epoch": "e1", "missed": missed, "recovered": True})
    await session.send({"ev": "shutdown", "reconnect_in": 0})
    await session.close(code, "bye")

    with pytest.raises(HubClosed) as info:
        await asyncio.wait_for(pending, T)
    assert info.value.code == code
    assert await client.next_event(T) == {"ev": "shutdown", "reconnect_in": 0}
    assert [(await client.next_event(T))["seq"] for _ in range(2)] == [5, 6]
    assert await client.next_event(T) == {"ev": "client.reconnected", "recovered": {"r": True}}

    hellos = [(await hub.command("hello"))[1] for _ in range(2)]
    assert [h["token"] for h in hellos] == ["t1", "t1"]
    _, first_join = await hub.command("join")
    _, rejoin = await hub.command("join")
    assert "since" not in first_join
    assert (rejoin["room"], rejoin["since"], rejoin["epoch"]) == ("r", 4, "e1")
    assert client.reconnects == 1
    assert client.close_code == code
    assert client.connected
    assert client.sid == "s2"
    assert client.rooms["r"] == RoomPosition(6, "e1")
    assert await client.request("echo", ok=1) == {"ok": 1}


async def test_reconnect_after_network_error(make_client: MakeClient, hub: FakeHub) -> None:
    client, session = await connected(make_client, hub)
    session.ws.transport.abort()
    event = await client.wait_for(lambda ev: ev["ev"] == "client.reconnected", timeout=T)
    assert event == {"ev": "client.reconnected", "recovered": {}}
    assert (client.close_code, client.reconnects) == (1006, 1)


async def test_requests_made_while_reconnecting_wait_for_the_new_connection(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client, session = await connected(make_client, hub, max_events=1)
    await session.send({"ev": "tick", "n": 0})
    await client.request("ping")  # tick 0 is queued: the queue is full
    await session.send({"ev": "tick", "n": 1})  # the reader waits to queue it
    await session.close(1012)  # websockets answered the close frame; the reader is still blocked
    echo = asyncio.create_task(client.request("echo", n=1))
    # Making room lets the reader go on: it queues tick 1, sees the close and reconnects.
    assert [(await client.next_event(T))["n"] for _ in range(2)] == [0, 1]
    # The command was not sent on the closing socket but on the new connection.
    assert await asyncio.wait_for(echo, T) == {"n": 1}
    first, _ = await hub.command("hello")
    second, _ = await hub.command("hello")
    echo_session, _ = await hub.command("echo")
    assert first is session and echo_session is second
    assert (await client.next_event(T))["ev"] == "client.reconnected"


async def test_epoch_change_on_rejoin_replays_the_new_history(
    make_client: MakeClient, hub: FakeHub
) -> None:
    hub.join_replies["r"].append({"seq": 10, "epoch": "e1"})
    client, session = await connected(make_client, hub)
    await client.join("r")
    missed = [{"ev": "chat", "room": "r", "seq": s} for s in (1, 2)]
    hub.join_replies["r"].append({"seq": 2, "epoch": "e2", "missed": missed, "recovered": False})
    await session.close(1012)
    events = await events_until(client, "client.reconnected")
    assert [ev.get("seq") for ev in events] == [1, 2, None]
    assert events[-1]["recovered"] == {"r": False}
    assert client.rooms["r"] == RoomPosition(2, "e2")


async def test_refreshed_token_is_used_on_reconnect(make_client: MakeClient, hub: FakeHub) -> None:
    client, session = await connected(make_client, hub)
    assert await client.refresh("t2") == {}
    await session.close(1012)
    await client.wait_for(lambda ev: ev["ev"] == "client.reconnected", timeout=T)
    tokens = [(await hub.command("hello"))[1]["token"] for _ in range(2)]
    assert tokens == ["t1", "t2"]


@pytest.mark.parametrize("code", [4001, 4003, 4000, 4029])
async def test_no_reconnect_after_fatal_close(
    make_client: MakeClient, hub: FakeHub, code: int
) -> None:
    client, session = await connected(make_client, hub)
    await session.close(code, "go away")
    with pytest.raises(HubClosed) as info:
        await client.next_event(T)
    assert (info.value.code, info.value.reason) == (code, "go away")
    # The reader has finished: nothing can reconnect any more.
    assert (client.connected, client.reconnects, client.close_code) == (False, 0, code)
    assert hub.connections == 1
    with pytest.raises(HubClosed):
        await client.request("ping")
    with pytest.raises(HubClosed):
        async for _ in client.events():
            pass


async def test_refused_on_reconnect_is_for_good(make_client: MakeClient, hub: FakeHub) -> None:
    client, session = await connected(make_client, hub, token="t9")
    hub.banned.add("t9")
    await session.close(1012)
    with pytest.raises(HubClosed) as info:
        await client.next_event(T)
    assert info.value.code == 4003
    assert client.reconnects == 0
    assert hub.connections == 2


async def test_no_reconnect_when_disabled(make_client: MakeClient, hub: FakeHub) -> None:
    client, session = await connected(make_client, hub, reconnect=False)
    await session.close(1012)
    with pytest.raises(HubClosed) as info:
        await client.next_event(T)
    assert info.value.code == 1012
    assert hub.connections == 1


async def test_undecodable_server_frame_closes_for_good(
    make_client: MakeClient, hub: FakeHub, fmt: WireFormat
) -> None:
    client, session = await connected(make_client, hub)
    await session.ws.send(b"\xc1" if fmt.binary else "{nope")
    with pytest.raises(HubClosed) as info:
        await client.next_event(T)
    assert info.value.code == 1007
    assert hub.connections == 1


def test_backoff_is_exponential_with_full_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    monkeypatch.setattr("livehub_client.connection.random.uniform", uniform)
    client = HubClient("ws://unused", backoff_base=0.5, backoff_cap=3.0)
    delays = [client._backoff() for _ in range(5)]
    assert bounds == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 3.0), (0, 3.0)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    client._shutdown_delay = 7.0  # as set by event shutdown {reconnect_in: 7}
    assert client._backoff() == 7.0
    assert client._backoff() == 3.0


# -- backpressure and closing ----------------------------------------------------------------------


async def test_full_queue_stops_the_reader(make_client: MakeClient, hub: FakeHub) -> None:
    client, session = await connected(make_client, hub, max_events=2)
    for n in (1, 2, 3):
        await session.send({"ev": "tick", "n": n})
    # The reader holds tick 3 and waits for room in the queue; the ping reply behind it on the
    # socket is not read, so the request cannot complete while nobody consumes events.
    ping = asyncio.create_task(client.request("ping"))
    await hub.command("ping")
    done, _ = await asyncio.wait([ping], timeout=QUIET)
    assert not done
    assert (await client.next_event(T))["n"] == 1  # makes room: the reader goes on
    assert await asyncio.wait_for(ping, T) == {}
    assert [(await client.next_event(T))["n"] for _ in range(2)] == [2, 3]


async def test_close_is_idempotent_and_fails_pending_requests(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client, session = await connected(make_client, hub)
    await session.send({"ev": "queued"})
    await client.request("ping")  # its reply comes after the event: the event is queued
    pending = asyncio.create_task(client.request("hold"))
    await hub.command("hold")
    await asyncio.gather(client.close(), client.close())
    await client.close()
    with pytest.raises(HubClosed):
        await asyncio.wait_for(pending, T)
    assert not client.connected
    assert [ev async for ev in client.events()] == [{"ev": "queued"}]  # then ends quietly
    with pytest.raises(HubClosed):
        await client.next_event(T)
    with pytest.raises(HubClosed):
        await client.request("ping")
    with pytest.raises(HubClosed):
        await client.connect()


async def test_close_wakes_a_waiting_consumer(make_client: MakeClient, hub: FakeHub) -> None:
    client, _ = await connected(make_client, hub)

    async def first_event() -> Msg:
        async for event in client.events():
            return event
        raise StopAsyncIteration

    waiter = asyncio.create_task(client.next_event())
    iterator = asyncio.create_task(first_event())
    await client.request("ping")  # a round trip: both tasks are waiting by now
    await client.close()
    with pytest.raises(HubClosed):
        await asyncio.wait_for(waiter, T)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(iterator, T)


async def test_close_with_a_full_queue_is_prompt(make_client: MakeClient, hub: FakeHub) -> None:
    client, session = await connected(make_client, hub, max_events=1)
    await session.send({"ev": "tick", "n": 0})
    await client.request("ping")  # its reply comes after tick 0: the queue is full now
    for n in range(1, 40):  # more than websockets' buffer of 16 frames: the socket is paused
        await session.send({"ev": "tick", "n": n, "pad": "x" * 4096})
    async with asyncio.timeout(T):  # would take websockets' 10 s close timeout if not drained
        await client.close()
    assert (await client.next_event(T))["n"] == 0
    with pytest.raises(HubClosed):
        await client.next_event(T)
