"""The hub's Janus client (signalling.janus_client) against a fake Janus on 127.0.0.1 that answers
as the real one does (``success``, ``ack`` then ``event`` in either order, ``error``, events of
its own): transactions, errors of both kinds, events routed by sender, keepalives, bounded
pending requests, and the one signal that Janus is gone."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.waiting import eventually
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from signalling.janus_client import JanusClient, JanusError, JanusGone, JanusHandle, _reason

Message = dict[str, Any]
Reply = Callable[[Message], list[Message]]
TIMEOUT = 5.0


def plugin(request: Message, data: Message, *, sender: int = 2) -> Message:
    return {
        "janus": "event",
        "transaction": request["transaction"],
        "sender": sender,
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": data},
    }


def ack(request: Message) -> Message:
    return {"janus": "ack", "transaction": request["transaction"]}


def janus_like(request: Message) -> list[Message]:
    """What Janus answers: sessions 1, handles 2; plugin messages ack then event."""
    kind = request["janus"]
    if kind == "create":
        return [{"janus": "success", "transaction": request["transaction"], "data": {"id": 1}}]
    if kind == "attach":
        return [{"janus": "success", "transaction": request["transaction"], "data": {"id": 2}}]
    if kind in ("keepalive", "trickle"):
        return [ack(request)]
    if kind == "message":
        return [ack(request), plugin(request, {"videoroom": "event", "echo": request["body"]})]
    return [{"janus": "success", "transaction": request["transaction"]}]


class FakeJanus:
    """A WebSocket server speaking ``janus-protocol``: ``reply`` decides the answers to each
    request (a list, sent in order); :meth:`push` sends a message of its own."""

    def __init__(self) -> None:
        self.reply: Reply = janus_like
        self.received: list[Message] = []
        self.connections: list[ServerConnection] = []
        self.server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        async for raw in ws:
            request = json.loads(raw)
            self.received.append(request)
            for message in self.reply(request):
                await ws.send(json.dumps(message))

    async def push(self, message: Message) -> None:
        await self.connections[-1].send(json.dumps(message))

    def requests(self, kind: str) -> list[Message]:
        return [r for r in self.received if r["janus"] == kind]


@pytest.fixture
async def janus() -> AsyncIterator[FakeJanus]:
    fake = FakeJanus()
    protocols = [Subprotocol("janus-protocol")]
    async with serve(fake.handler, "127.0.0.1", 0, subprotocols=protocols) as server:
        fake.server = server
        yield fake


@pytest.fixture
async def client(janus: FakeJanus) -> AsyncIterator[JanusClient]:
    connected = await JanusClient.connect(janus.url, api_secret="api", request_timeout=TIMEOUT)
    yield connected
    await connected.close()


async def handle_of(client: JanusClient) -> JanusHandle:
    session = await client.create_session(keepalive=3600)
    return await session.attach()


async def test_a_plugin_request_resolves_on_its_event_whatever_the_order(
    janus: FakeJanus, client: JanusClient
) -> None:
    handle = await handle_of(client)
    data, jsep = await handle.message({"request": "join"}, {"type": "offer", "sdp": "v=0"})
    assert data == {"videoroom": "event", "echo": {"request": "join"}} and jsep is None
    sent = janus.requests("message")[0]
    assert (sent["session_id"], sent["handle_id"], sent["apisecret"]) == (1, 2, "api")
    assert sent["jsep"] == {"type": "offer", "sdp": "v=0"}
    # The event before the ack: resolved by the event, the late ack dropped.
    janus.reply = lambda r: [plugin(r, {"started": "ok"}, sender=2), ack(r)]
    assert await handle.message({"request": "start"}) == ({"started": "ok"}, None)
    # trickle and keepalive end with their ack.
    janus.reply = janus_like
    await handle.trickle({"completed": True})
    assert janus.requests("trickle")[0]["candidate"] == {"completed": True}


async def test_janus_errors_and_plugin_errors_are_both_raised(
    janus: FakeJanus, client: JanusClient
) -> None:
    handle = await handle_of(client)
    janus.reply = lambda r: [
        {"janus": "error", "transaction": r["transaction"], "error": {"code": 458, "reason": "x"}}
    ]
    with pytest.raises(JanusError) as refused:
        await handle.trickle({"completed": True})
    assert (refused.value.code, refused.value.plugin) == (458, False)
    janus.reply = lambda r: [
        ack(r),
        plugin(r, {"videoroom": "event", "error_code": 428, "error": "No such feed (a)"}),
    ]
    with pytest.raises(JanusError) as refused:
        await handle.message({"request": "join"})
    assert (refused.value.code, refused.value.reason) == (428, "No such feed (a)")
    assert refused.value.plugin


async def test_events_go_to_their_handle_by_sender(janus: FakeJanus, client: JanusClient) -> None:
    handle = await handle_of(client)
    await janus.push({"janus": "webrtcup", "session_id": 1, "sender": 99})  # not ours
    await janus.push({"janus": "webrtcup", "session_id": 1, "sender": 2})
    await janus.push({"janus": "ack", "transaction": "late"})  # dropped
    offer = {"janus": "event", "sender": 2, "jsep": {"type": "offer", "sdp": "v=0"}}
    await janus.push(offer)
    assert (await asyncio.wait_for(handle.next_event(), TIMEOUT))["janus"] == "webrtcup"
    assert await asyncio.wait_for(handle.next_event(), TIMEOUT) == offer
    await handle.detach()
    assert janus.requests("detach")[0]["handle_id"] == 2
    with pytest.raises(JanusGone):
        await handle.next_event()


async def test_a_slow_reader_loses_its_oldest_events_not_memory(janus: FakeJanus) -> None:
    client = await JanusClient.connect(janus.url, event_queue=3)
    try:
        handle = await handle_of(client)
        for n in range(5):
            await janus.push({"janus": "media", "sender": 2, "n": n})
        await janus.push({"janus": "hangup", "sender": 2})
        event = await asyncio.wait_for(handle.next_event(), TIMEOUT)
        assert event.get("n") in (3, 4)
    finally:
        await client.close()


async def test_requests_wait_a_bounded_time_and_in_bounded_numbers(janus: FakeJanus) -> None:
    client = await JanusClient.connect(janus.url, request_timeout=0.2, max_pending=2)
    try:
        handle = await handle_of(client)
        janus.reply = lambda r: [ack(r)]  # an event that never comes
        waiting = [asyncio.ensure_future(handle.message({"request": "join"})) for _ in range(2)]
        await eventually(lambda: len(janus.requests("message")) == 2, TIMEOUT, "both sent")
        with pytest.raises(JanusError, match="in flight"):
            await handle.message({"request": "join"})
        for future in waiting:
            with pytest.raises(TimeoutError):
                await future
        janus.reply = janus_like
        assert (await handle.message({"request": "x"}))[0]["echo"] == {"request": "x"}
    finally:
        await client.close()


async def test_a_lost_connection_ends_everything_on_it(
    janus: FakeJanus, client: JanusClient
) -> None:
    handle = await handle_of(client)
    janus.reply = lambda r: [ack(r)]
    pending = asyncio.ensure_future(handle.message({"request": "join"}))
    await eventually(lambda: bool(janus.requests("message")), TIMEOUT, "the request sent")
    janus.connections[-1].transport.abort()  # a crash: no close frame
    why = await asyncio.wait_for(client.wait_closed(), TIMEOUT)
    assert "lost" in why and client.closed
    with pytest.raises(JanusGone):
        await pending
    with pytest.raises(JanusGone):
        await handle.next_event()
    with pytest.raises(JanusGone):
        await client.create_session()


async def test_keepalives_keep_a_session_and_an_unanswered_one_gives_up(
    janus: FakeJanus,
) -> None:
    client = await JanusClient.connect(janus.url, request_timeout=0.2)
    try:
        session = await client.create_session(keepalive=0.05)
        await eventually(lambda: len(janus.requests("keepalive")) >= 2, TIMEOUT, "keepalives")
        assert janus.requests("keepalive")[0]["session_id"] == session.id
        janus.reply = lambda r: []  # Janus stalls
        why = await asyncio.wait_for(client.wait_closed(), TIMEOUT)
        assert why == "Janus did not answer a keepalive"
    finally:
        await client.close()


async def test_an_expired_session_ends_the_connection(
    janus: FakeJanus, client: JanusClient
) -> None:
    await client.create_session(keepalive=3600)
    await janus.push({"janus": "timeout", "session_id": 1})
    assert "timed out" in await asyncio.wait_for(client.wait_closed(), TIMEOUT)


async def test_a_server_that_is_not_janus_is_refused() -> None:
    async def silent(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(silent, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(JanusGone, match="janus-protocol"):
            await JanusClient.connect(f"ws://127.0.0.1:{port}")
    with pytest.raises(JanusGone, match="cannot connect: Connection refused"):
        await JanusClient.connect(f"ws://127.0.0.1:{port}")


def test_an_unresolved_name_reads_as_such() -> None:
    assert _reason(socket.gaierror(-2, "Name or service not known")) == "Name or service not known"
    refused = ConnectionRefusedError(111, "Connect call failed ('10.0.0.6', 8188)")
    assert _reason(refused) == "Connection refused"  # without the address
