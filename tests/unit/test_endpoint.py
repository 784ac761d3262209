"""The WebSocket endpoint on the raw ASGI interface: a hand-driven peer (a receive fed by the
test, a send that records) against a node on the memory broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from helpers import TIMEOUT, running, token

from hub.app import Hub
from hub.config import Limits
from hub.endpoint import Endpoint, origin_allowed

ADDRESS = "203.0.113.9"


class Peer:
    """One connection as the endpoint sees it through ASGI."""

    def __init__(self, address: str = ADDRESS, origin: bytes | None = None) -> None:
        headers = [(b"host", b"hub.test"), (b"cookie", b"c" * 2000)]
        if origin is not None:
            headers.append((b"origin", origin))
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "path": "/ws",
            "raw_path": b"/ws",
            "query_string": b"",
            "client": (address, 50000),
            "headers": headers,
            "subprotocols": ["hub.v1.json"],
            "state": {},
        }
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.sent: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()
        self.sent.append(message)
        self.changed.set()

    def command(self, **message: Any) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    def replies(self) -> list[dict[str, Any]]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), TIMEOUT)


def serve(hub: Hub, endpoint: Endpoint, peer: Peer) -> asyncio.Task[None]:
    return asyncio.ensure_future(endpoint(peer.scope, peer.receive, peer.send))  # type: ignore[arg-type]


def test_the_origin_is_read_from_the_scopes_headers() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"type": "websocket", "headers": list(headers)}

    assert origin_allowed(scope(), ())
    assert origin_allowed(scope((b"origin", b"http://localhost:5173")), ())
    assert not origin_allowed(scope((b"origin", b"http://rebind.example")), ())
    assert origin_allowed(scope((b"origin", b"https://event.example/")), ("https://event.example",))
    assert not origin_allowed(scope((b"origin", b"https://other.example")), ("https://x.example",))


async def test_an_accepted_connection_keeps_only_what_names_it_and_counts_until_hello() -> None:
    async with running() as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer()
        task = serve(hub, endpoint, peer)
        await peer.until(lambda: bool(peer.sent))
        assert peer.sent[0] == {"type": "websocket.accept", "subprotocol": "hub.v1.json"}
        assert peer.scope == {"type": "websocket", "path": "/ws", "client": (ADDRESS, 50000)}
        assert endpoint.pending == {ADDRESS: 1}
        [session] = hub.node.sessions.values()
        deadline = session.expiry
        assert deadline is not None  # the hello deadline

        peer.command(id=1, op="hello", token=token(hub, "ann"))
        await peer.until(lambda: bool(peer.replies()))
        assert "ok" in peer.replies()[0]
        assert endpoint.pending == {}
        assert deadline.cancelled() and session.expiry is None

        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, TIMEOUT)
        assert hub.node.sessions == {} and endpoint.pending == {}


async def test_connections_not_past_hello_are_refused_past_the_cap_of_their_address() -> None:
    async with running(limits=Limits(pending_per_address=1)) as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        first = Peer()
        first_task = serve(hub, endpoint, first)
        await first.until(lambda: bool(first.sent))
        refused = Peer()
        await asyncio.wait_for(serve(hub, endpoint, refused), TIMEOUT)
        assert refused.sent == [{"type": "websocket.close"}]  # before accept: HTTP 403
        # A connection that leaves without hello frees its place.
        first.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(first_task, TIMEOUT)
        assert endpoint.pending == {}


async def test_a_page_from_elsewhere_is_refused_before_accept() -> None:
    async with running(origins=("https://event.example",)) as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer(origin=b"https://evil.example")
        await asyncio.wait_for(serve(hub, endpoint, peer), TIMEOUT)
        assert peer.sent == [{"type": "websocket.close"}]
        assert hub.node.sessions == {} and endpoint.pending == {}


async def test_no_hello_within_the_deadline_closes_with_4001() -> None:
    async with running(limits=Limits(hello_timeout=0.01)) as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer()
        task = serve(hub, endpoint, peer)
        await peer.until(lambda: bool(peer.sent) and peer.sent[-1]["type"] == "websocket.close")
        assert peer.sent[-1]["code"] == 4001
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 4001})
        await asyncio.wait_for(task, TIMEOUT)
        assert hub.node.sessions == {} and endpoint.pending == {}


async def test_a_close_that_cannot_finish_is_given_up_after_the_grace() -> None:
    async with running(limits=Limits(close_grace=0.01, write_timeout=3600.0)) as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer()
        task = serve(hub, endpoint, peer)
        await peer.until(lambda: bool(peer.sent))
        [session] = hub.node.sessions.values()
        peer.writable.clear()  # the peer stopped reading: the close frame never goes out
        session.request_close(4008, "slow consumer")  # type: ignore[arg-type]
        await asyncio.wait_for(task, TIMEOUT)
        assert hub.node.sessions == {}
        assert hub.node.metrics.aborts._value.get() == 1
