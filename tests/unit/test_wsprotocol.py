"""The hub's WebSocket protocol, driven by hand: a fake transport on one side, websockets'
sans-I/O client on the other, and a parked ASGI application whose ``receive`` and ``send`` the
tests call themselves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from helpers import TIMEOUT
from transports import PEER, FakeTransport
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from hub.wsprotocol import INBOUND_WINDOW, HubWebSocketProtocol


class Harness:
    """One connection: the protocol under test, its transport, a client and the application."""

    def __init__(self, deflate: bool = False, **settings: Any) -> None:
        self.started: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        self.finish = asyncio.Event()
        self.scope: dict[str, Any] = {}

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            self.scope = scope
            self.started.set_result((receive, send))
            await self.finish.wait()

        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            proxy_headers=False,
            ws_per_message_deflate=deflate,
            **settings,
        )
        config.load()
        self.state = ServerState()
        self.protocol = HubWebSocketProtocol(config, self.state, {})
        self.transport = FakeTransport()
        self.protocol.connection_made(self.transport)
        self.client = ClientProtocol(
            parse_uri("ws://hub.test/ws?v=1"),
            subprotocols=["hub.v1.msgpack"],
            extensions=[ClientPerMessageDeflateFactory()] if deflate else None,
        )

    async def open(self) -> None:
        """Handshake and accept (``hub.v1.msgpack``); the connect message is taken."""
        self.client.send_request(self.client.connect())
        self.feed()
        await asyncio.wait_for(self.started, TIMEOUT)
        assert (await self.receive())["type"] == "websocket.connect"
        await self.send({"type": "websocket.accept", "subprotocol": "hub.v1.msgpack"})
        [response] = self.events()
        assert isinstance(response, Response) and response.status_code == 101
        assert self.client.state is State.OPEN

    async def receive(self) -> dict[str, Any]:
        receive, _ = self.started.result()
        message: dict[str, Any] = await asyncio.wait_for(receive(), TIMEOUT)
        return message

    async def send(self, message: dict[str, Any]) -> None:
        _, send = self.started.result()
        await asyncio.wait_for(send(message), TIMEOUT)

    def feed(self) -> None:
        """What the client has to send, as one socket read."""
        self.protocol.data_received(b"".join(self.client.data_to_send()))

    def events(self) -> list[Any]:
        """What the server wrote since last asked, as the client parses it."""
        self.client.receive_data(bytes(self.transport.written))
        self.transport.written.clear()
        return self.client.events_received()

    def frames(self, opcode: Opcode) -> Iterator[Frame]:
        return (e for e in self.events() if isinstance(e, Frame) and e.opcode is opcode)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait for the transport to change until ``condition`` holds."""
        while not condition():
            self.transport.changed.clear()
            await asyncio.wait_for(self.transport.changed.wait(), TIMEOUT)

    async def stop(self) -> None:
        self.finish.set()
        await asyncio.gather(*self.state.tasks)


@pytest.fixture
async def harness() -> Any:
    made: list[Harness] = []

    def make(**settings: Any) -> Harness:
        made.append(Harness(**settings))
        return made[-1]

    yield make
    for one in made:
        await one.stop()


async def next_turn() -> None:
    """Return once the callbacks scheduled so far (a woken task's step) have run."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await asyncio.wait_for(done, TIMEOUT)


async def test_the_application_gets_an_asgi_scope_and_the_connection_keeps_none_of_it(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    await h.open()
    scope = h.scope
    assert scope["type"] == "websocket"
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/ws", b"/ws", b"v=1")
    assert scope["client"] == PEER and scope["server"] == ("127.0.0.1", 8000)
    assert scope["scheme"] == "ws" and scope["subprotocols"] == ["hub.v1.msgpack"]
    assert (b"host", b"hub.test") in scope["headers"]
    assert h.client.subprotocol == "hub.v1.msgpack"
    # Nothing of the handshake stays on the open connection.
    assert h.protocol._scope is None and h.protocol._response is None
    assert h.protocol._receiver is None and h.protocol._inbox == []


async def test_messages_wait_in_order_and_reading_stops_only_at_the_window(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    await h.open()
    for n in range(INBOUND_WINDOW - 1):
        h.client.send_text(f"m{n}".encode())
    h.feed()
    assert h.transport.reading
    # One socket read that completes more frames than the window: every one of them waits.
    total = 3 * INBOUND_WINDOW
    for n in range(INBOUND_WINDOW - 1, total):
        h.client.send_text(f"m{n}".encode())
    h.feed()
    assert not h.transport.reading and h.protocol.waiting() == total
    for n in range(total):
        assert await h.receive() == {"type": "websocket.receive", "text": f"m{n}"}
        # Reading starts again once at most half the window waits.
        assert h.transport.reading is (total - n - 1 <= INBOUND_WINDOW // 2)


async def test_messages_taken_as_fast_as_they_come_are_not_kept(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    await h.open()
    h.client.send_text(b"first")
    h.feed()
    # One waits at every moment, so the list is never empty: it must not grow for it.
    for n in range(10 * INBOUND_WINDOW):
        h.client.send_text(f"m{n}".encode())
        h.feed()
        assert (await h.receive())["text"] == ("first" if n == 0 else f"m{n - 1}")
        assert h.protocol.waiting() == 1
        assert len(h.protocol._inbox) <= 2 * INBOUND_WINDOW
    assert h.transport.reading


async def test_a_binary_message_in_fragments_arrives_whole(harness: Callable[..., Harness]) -> None:
    h = harness()
    await h.open()
    h.client.send_binary(b"ab", fin=False)
    h.client.send_continuation(b"cd", fin=False)
    h.client.send_continuation(b"ef", fin=True)
    h.feed()
    assert await h.receive() == {"type": "websocket.receive", "bytes": b"abcdef"}


async def test_permessage_deflate_when_configured(harness: Callable[..., Harness]) -> None:
    for h in (harness(deflate=True), harness(deflate=True)):  # the factory is shared
        await h.open()
        assert [type(e).__name__ for e in h.client.extensions] == ["PerMessageDeflate"]
        h.client.send_text(b"hello " * 100)
        h.feed()
        assert await h.receive() == {"type": "websocket.receive", "text": "hello " * 100}
        await h.send({"type": "websocket.send", "bytes": b"x" * 1000})
        [frame] = h.frames(Opcode.BINARY)
        assert frame.data == b"x" * 1000
    plain = harness()
    await plain.open()
    assert plain.client.extensions == []


async def test_a_cancelled_receive_loses_no_message(harness: Callable[..., Harness]) -> None:
    h = harness()
    await h.open()
    receive, _ = h.started.result()
    # Cancelled while waiting: the next message goes to the next receive.
    waiting = asyncio.ensure_future(receive())
    await next_turn()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # Woken by a message, then cancelled before it ran: the message is still there.
    woken = asyncio.ensure_future(receive())
    await next_turn()
    h.client.send_text(b"one")
    h.feed()
    woken.cancel()
    with pytest.raises(asyncio.CancelledError):
        await woken
    assert await h.receive() == {"type": "websocket.receive", "text": "one"}


async def test_receivers_at_once_survive_one_of_them_being_cancelled(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    await h.open()
    receive, _ = h.started.result()
    first = asyncio.ensure_future(receive())
    second = asyncio.ensure_future(receive())
    await next_turn()
    first.cancel()
    await next_turn()
    h.client.send_text(b"one")
    h.feed()
    assert await asyncio.wait_for(second, TIMEOUT) == {"type": "websocket.receive", "text": "one"}
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_invalid_utf8_closes_with_1007_and_logs_one_line(
    harness: Callable[..., Harness],
) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        h = harness()
        await h.open()
        h.client.send_text(b"\xff\xfe\xfd")
        h.feed()
    finally:
        logger.removeHandler(handler)
    [close] = h.frames(Opcode.CLOSE)
    assert Close.parse(close.data).code == 1007
    assert (await h.receive())["code"] == 1007
    assert h.transport.closing
    [record] = [r for r in records if "UTF-8" in r.getMessage()]
    assert record.exc_info is None and record.levelno == logging.ERROR


async def test_pings_go_on_while_answered_and_a_silent_peer_is_aborted_with_1011(
    harness: Callable[..., Harness],
) -> None:
    h = harness(ws_ping_interval=0.01, ws_ping_timeout=TIMEOUT)
    await h.open()
    pings: list[bytes] = []
    for _ in range(2):
        await h.until(lambda: bool(h.transport.written))
        [ping] = h.frames(Opcode.PING)
        pings.append(bytes(ping.data))
        h.feed()  # the client's pong
    assert pings[0] != pings[1]
    assert not h.transport.closing

    silent = harness(ws_ping_interval=0.01, ws_ping_timeout=0.01)
    await silent.open()
    await silent.until(lambda: silent.transport.aborted)
    [close] = silent.frames(Opcode.CLOSE)
    assert Close.parse(close.data).code == 1011


async def test_the_applications_close_waits_for_the_peers_reply(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    await h.open()
    await h.send({"type": "websocket.close", "code": 4008, "reason": "slow consumer"})
    [close] = h.frames(Opcode.CLOSE)
    assert Close.parse(close.data) == Close(4008, "slow consumer")
    assert await h.receive() == {
        "type": "websocket.disconnect",
        "code": 4008,
        "reason": "slow consumer",
    }
    assert not h.protocol.write_frame(b"\x82\x00")
    with pytest.raises(RuntimeError):
        await h.send({"type": "websocket.send", "bytes": b"late"})
    assert not h.transport.closing
    h.feed()  # websockets' client answered the close
    assert h.transport.closing


async def test_a_pong_missed_during_our_closing_handshake_leaves_it_to_the_close_timer(
    harness: Callable[..., Harness],
) -> None:
    h = harness(ws_ping_interval=0.01, ws_ping_timeout=TIMEOUT)
    await h.open()
    await h.until(lambda: bool(h.transport.written))  # a ping the client will not answer
    await h.send({"type": "websocket.close", "code": 1001, "reason": ""})
    h.protocol._keepalive_timeout()  # its deadline passes while our close awaits the reply
    assert not h.transport.aborted and not h.transport.closing
    h.events()
    h.feed()  # the client answers the close (and the ping): the handshake ends normally
    assert h.transport.closing and not h.transport.aborted


async def test_the_peers_close_is_answered_and_reported(harness: Callable[..., Harness]) -> None:
    h = harness()
    await h.open()
    h.client.send_close(1001, "bye")
    h.feed()
    assert await h.receive() == {"type": "websocket.disconnect", "code": 1001, "reason": "bye"}
    [close] = h.frames(Opcode.CLOSE)
    assert Close.parse(close.data).code == 1001
    assert h.transport.closing
    h.protocol.connection_lost(None)
    with pytest.raises(ClientDisconnected):
        await h.send({"type": "websocket.send", "bytes": b"late"})


async def test_a_close_before_accept_refuses_the_handshake_with_403(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    h.client.send_request(h.client.connect())
    h.feed()
    await asyncio.wait_for(h.started, TIMEOUT)
    await h.send({"type": "websocket.close"})
    [response] = h.events()
    assert isinstance(response, Response) and response.status_code == 403
    assert h.transport.closing and h.protocol._scope is None


async def test_a_server_shutdown_closes_open_connections_with_1012(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    await h.open()
    assert h.protocol in h.state.connections
    h.protocol.shutdown()
    [close] = h.frames(Opcode.CLOSE)
    assert Close.parse(close.data).code == 1012
    assert await h.receive() == {"type": "websocket.disconnect", "code": 1012}
    assert h.transport.closing
    h.protocol.connection_lost(None)
    assert h.protocol not in h.state.connections


async def test_sends_wait_while_the_transport_is_full(harness: Callable[..., Harness]) -> None:
    h = harness()
    await h.open()
    _, send = h.started.result()
    h.protocol.pause_writing()
    assert not h.protocol.write_frame(b"\x82\x00")
    first = asyncio.ensure_future(send({"type": "websocket.send", "bytes": b"1"}))
    second = asyncio.ensure_future(send({"type": "websocket.send", "bytes": b"2"}))
    await next_turn()
    assert not first.done() and not h.transport.written
    h.protocol.resume_writing()
    await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    assert [bytes(f.data) for f in h.frames(Opcode.BINARY)] == [b"1", b"2"]
    assert h.protocol.write_frame(b"\x82\x01x")
    assert [bytes(f.data) for f in h.frames(Opcode.BINARY)] == [b"x"]
    # The peer goes while a send waits: the send fails, the application hears of it.
    h.protocol.pause_writing()
    stuck = asyncio.ensure_future(send({"type": "websocket.send", "bytes": b"3"}))
    await next_turn()
    h.protocol.connection_lost(None)
    with pytest.raises(ClientDisconnected):
        await asyncio.wait_for(stuck, TIMEOUT)
    assert await h.receive() == {"type": "websocket.disconnect", "code": 1005}
