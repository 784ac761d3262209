"""The WebSocket endpoint: a thin pump between one socket and its :class:`~hub.session.Session`.

The reader decodes frames and hands each command to the dispatcher in order; the writer drains
the session's outbound queue, coalescing what waits into one frame, and performs the close the
session asked for. Nothing here decides anything about the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.codec import DecodeLimits, WireFormat, decode_frame
from hub.dispatch import Dispatcher
from hub.errors import CloseCode, DecodeError
from hub.node import Node
from hub.session import Session, SessionState
from hub.writer import FlushScheduler, Writer

log = logging.getLogger(__name__)


def origin_allowed(websocket: WebSocket, allowed: tuple[str, ...]) -> bool:
    """Browsers send ``Origin``: it must be in the allow-list, or, when none is configured, a
    loopback page's (``localhost``, ``127.0.0.0/8``, ``::1``): matching the request's own
    ``Host`` would let a DNS-rebinding page reach a hub on the visitor's machine. Clients that
    send none (bots, load generators) are let through."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    if allowed:
        return origin.rstrip("/") in allowed or "*" in allowed
    return is_loopback_origin(origin)


def is_loopback_origin(origin: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) is a page served from this machine."""
    try:
        parts = urlsplit(origin)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Endpoint:
    """Serves ``GET /ws`` for one node."""

    def __init__(self, node: Node, dispatcher: Dispatcher) -> None:
        self.node = node
        self.dispatcher = dispatcher
        limits = node.config.limits
        self.decode_limits = DecodeLimits(max_frame_bytes=limits.max_frame_bytes)
        self.coalesce = limits.coalesce_bytes
        self.scheduler = FlushScheduler()
        # client address -> its connections not yet past hello
        self.pending: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection from handshake to close (an ASGI app for ``/ws``). Data frames
        go to the raw ASGI ``send``: Starlette's checks would cost on every frame."""
        websocket = WebSocket(scope, receive, send)
        node = self.node
        address = _address(scope)
        if (
            node.draining
            or not origin_allowed(websocket, node.config.origins)
            or (
                address is not None
                and self.pending.get(address, 0) >= node.config.limits.pending_per_address
            )
        ):
            await websocket.close()  # before accept: the handshake is refused with HTTP 403
            return
        counted = [True] if address is not None else []
        if address is not None:
            self.pending[address] = self.pending.get(address, 0) + 1

        def past_hello() -> None:
            if counted and address is not None:
                counted.clear()
                left = self.pending.get(address, 1) - 1
                if left > 0:
                    self.pending[address] = left
                else:
                    self.pending.pop(address, None)

        try:
            await self._serve(websocket, receive, send, past_hello)
        finally:
            past_hello()

    async def _serve(
        self, websocket: WebSocket, receive: Receive, send: Send, past_hello: Callable[[], None]
    ) -> None:
        node = self.node
        fmt, subprotocol = WireFormat.negotiate(websocket.scope.get("subprotocols", []))
        await websocket.accept(subprotocol=subprotocol)
        session = Session(node.new_sid(), fmt, node.config.limits, _address(websocket.scope))
        session.on_authenticated = past_hello
        # Counted when it happens: the writer may be stuck in a send to that very consumer.
        session.queue.on_overflow = node.metrics.queue_overflows.inc
        node.add_session(session)
        loop = asyncio.get_running_loop()
        grace = node.config.limits.close_grace
        writer = Writer(websocket, send, session, self.scheduler, self.coalesce, node.metrics)
        deadline = loop.call_later(node.config.limits.hello_timeout, self._hello_deadline, session)
        try:
            # Once a close is requested the connection has `grace` seconds to finish: the writer
            # flushes and closes, the peer answers and the read ends. A peer that never reads
            # again would hold both forever; the timeout gives up on it and releases the session.
            async with asyncio.timeout(None) as closing:
                session.on_close_request = lambda: closing.reschedule(loop.time() + grace)
                await self._read(receive, session)
                if session.open:  # the peer went away: nothing more to write
                    session.request_close(CloseCode.NORMAL, "connection ended")
                await asyncio.shield(writer.finished)
        except TimeoutError:
            # The close did not finish within the grace: the peer stopped reading.
            writer.abort("the close did not finish in time")
        except Exception:
            log.exception("connection %s failed", session.sid)
        finally:
            deadline.cancel()
            if session.open:
                session.request_close(CloseCode.NORMAL, "connection ended")
            writer.cancel()
            await writer.wait_stopped()
            session.move(SessionState.CLOSED)
            await node.remove_session(session)

    async def _read(self, receive: Receive, session: Session) -> None:
        with contextlib.suppress(WebSocketDisconnect, OSError):
            await self._read_commands(receive, session)

    async def _read_commands(self, receive: Receive, session: Session) -> None:
        # The raw ASGI receive, after the handshake: Starlette's checks would cost on every
        # frame, and only receive and disconnect messages come once the socket is open.
        traffic = self.node.metrics.traffic
        while session.open:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            traffic.frames_in += 1
            data: Any = message.get("bytes")
            if data is None:
                data = message.get("text")
            try:
                commands = decode_frame(session.fmt, data, self.decode_limits)
            except DecodeError as error:
                session.request_close(CloseCode.UNDECODABLE, str(error)[:120])
                return
            for command in commands:
                await self.dispatcher.dispatch(session, command)
                if not session.open:
                    return

    @staticmethod
    def _hello_deadline(session: Session) -> None:
        if session.state is SessionState.CONNECTED:
            session.request_close(CloseCode.UNAUTHENTICATED, "no hello within the deadline")


def _address(scope: Scope) -> str | None:
    """The client's address (the proxy's ``X-Forwarded-For`` where uvicorn trusts it), or None
    for a loopback client: load generators and tests on the hub's machine open hundreds at once,
    and nobody elsewhere can pose as one."""
    client = scope.get("client")
    if not client:
        return None
    address = str(client[0])
    try:
        return None if ipaddress.ip_address(address).is_loopback else address
    except ValueError:
        return address
