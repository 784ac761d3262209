"""The WebSocket endpoint: a thin pump between one socket and its :class:`~hub.session.Session`.

The reader decodes frames and hands each command to the dispatcher in order; the writer drains
the session's outbound queue, coalescing what waits into one frame, and performs the close the
session asked for. Nothing here decides anything about the protocol.

Where ``info`` is on for its logger (``hub serve --log-format json``), each connection's life is
logged (:mod:`hub.logs`): ``connection.refused`` (before accept), ``connection.open``,
``connection.auth`` and ``connection.close``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Message, Receive, Scope, Send

from hub.codec import DecodeLimits, WireFormat, decode_frame
from hub.dispatch import Dispatcher
from hub.errors import CloseCode, DecodeError
from hub.logs import log_event
from hub.node import Node
from hub.session import Session, SessionState
from hub.writer import FlushScheduler, Writer

log = logging.getLogger(__name__)

# The close codes with which the hub's WebSocket layer ends a connection on its own (websockets,
# uvicorn), as a connection.close's reason; any other close the reader sees while the session is
# open came from the client.
_LAYER_CLOSES = {
    1002: "protocol_error",
    1007: "protocol_error",
    1009: "too_big",
    1011: "ping_timeout",
    1012: "draining",
}
# A connection that ended without a close frame (1005 once the handshake completed; 1006).
_LOST = (1005, 1006)


def origin_allowed(scope: Scope, allowed: tuple[str, ...]) -> bool:
    """Browsers send ``Origin``: it must be in the allow-list, or, when none is configured, a
    loopback page's (``localhost``, ``127.0.0.0/8``, ``::1``): matching the request's own
    ``Host`` would let a DNS-rebinding page reach a hub on the visitor's machine. Clients that
    send none (bots, load generators) are let through."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    if allowed:
        return origin.rstrip("/") in allowed or "*" in allowed
    return is_loopback_origin(origin)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case) in an ASGI scope, else None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


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
        # Each connection's close grace, for the sessions' shared close hook.
        self._grace: dict[Session, asyncio.Timeout] = {}
        # The close code of each connection whose client ended it, for its connection.close.
        self._client_closes: dict[Session, int] = {}
        # The sessions' hooks and the dispatcher's entry: one object each for every connection
        # (an attribute access makes a bound method anew).
        self._on_authenticated = self.authenticated
        self._on_close_request = self.close_requested
        self._on_overflow = node.metrics.queue_overflows.inc
        self._dispatch = dispatcher.dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection from handshake to close (an ASGI app for ``/ws``), on the raw
        ASGI ``receive`` and ``send``: Starlette's checks would cost on every frame, and its
        WebSocket object on every connection.

        Once accepted, the connection's scope keeps only ``type``, ``path`` and ``client``: the
        hub reads nothing of it after the handshake, and every frame up the ASGI chain holds it
        for the connection's life (a browser's headers alone: kilobytes). One coroutine serves
        the whole connection, so an idle one costs one frame here."""
        node = self.node
        limits = node.config.limits
        if (await receive())["type"] != "websocket.connect":
            return
        address = _address(scope)
        refused = self._refusal(scope, address)
        if refused is not None:
            log_event(
                log, "connection.refused", node=node.node_id, client=_client(scope), why=refused
            )
            await send({"type": "websocket.close"})  # before accept: HTTP 403
            return
        fmt, subprotocol = WireFormat.negotiate(scope.get("subprotocols", []))
        if address is not None:
            self.pending[address] = self.pending.get(address, 0) + 1
        try:
            await send({"type": "websocket.accept", "subprotocol": subprotocol})
        except BaseException:
            if address is not None:
                self._not_pending(address)
            raise
        opened = asyncio.get_running_loop().time()
        _forget_handshake(scope)
        session = Session(node.new_sid(), fmt, limits, address)
        if log.isEnabledFor(logging.INFO):
            log_event(
                log,
                "connection.open",
                node=node.node_id,
                sid=session.sid,
                client=_client(scope),
                format=fmt.name.lower(),
            )
        session.on_authenticated = self._on_authenticated
        session.on_close_request = self._on_close_request
        # Counted when it happens: the writer may be stuck in a send to that very consumer.
        session.queue.on_overflow = self._on_overflow
        # The hello deadline, until hello (see authenticated).
        session.expiry = asyncio.get_running_loop().call_later(
            limits.hello_timeout, self._hello_deadline, session
        )
        node.add_session(session)
        writer = Writer(send, session, self.scheduler, self.coalesce, node.metrics)
        dispatch = self._dispatch
        gave_up: str | None = None  # why the hub gave up on the connection, if it did
        try:
            # Once a close is requested the connection has `close_grace` seconds to finish: the
            # writer flushes and closes, the peer answers and the read ends. A peer that never
            # reads again would hold both forever; the timeout gives up on it and releases the
            # session.
            async with asyncio.timeout(None) as grace:
                self._grace[session] = grace
                try:
                    while session.open:
                        # Nothing of a frame stays bound while the next is awaited: an idle
                        # connection would hold its last frame and its commands until the next.
                        commands = self._commands(session, await receive())
                        if commands is None:
                            break
                        while commands and session.open:
                            await dispatch(session, commands.pop())
                        del commands
                except OSError:
                    # The peer is gone (another ASGI server may say so this way).
                    if session.open:
                        self._client_closes[session] = 1006
                if session.open:  # the peer went away: nothing more to write
                    session.request_close(CloseCode.NORMAL, "connection ended")
                await asyncio.shield(writer.finished)
        except TimeoutError:
            # The close did not finish within the grace: the peer stopped reading.
            gave_up = "close_timeout"
            writer.abort("the close did not finish in time")
        except Exception:
            gave_up = "internal"
            log.exception("connection %s failed", session.sid)
        finally:
            self._grace.pop(session, None)
            client_close = self._client_closes.pop(session, None)
            if address is not None and session.identity is None:
                self._not_pending(address)
            if session.open:
                session.request_close(CloseCode.NORMAL, "connection ended")
            writer.cancel()
            await writer.wait_stopped()
            session.move(SessionState.CLOSED)
            if log.isEnabledFor(logging.INFO):
                self._log_close(session, client_close, gave_up, opened)
            await node.remove_session(session)

    def _refusal(self, scope: Scope, address: str | None) -> str | None:
        """Why a new connection is refused before accept, or None to accept it."""
        node = self.node
        if node.draining:
            return "draining"
        if not origin_allowed(scope, node.config.origins):
            return "origin"
        if address is not None and self.pending.get(address, 0) >= (
            node.config.limits.pending_per_address
        ):
            return "pending_limit"
        return None

    def _commands(self, session: Session, message: Message) -> list[dict[str, Any]] | None:
        """The commands of one inbound frame, last first (taken with ``pop``); None once the
        connection ends (the peer left, or sent what does not decode: the session is
        closing)."""
        if message["type"] == "websocket.disconnect":
            if session.open:
                self._client_closes[session] = message.get("code", 1005)
            return None
        self.node.metrics.traffic.frames_in += 1
        data: Any = message.get("bytes")
        if data is None:
            data = message.get("text")
        try:
            commands = decode_frame(session.fmt, data, self.decode_limits)
        except DecodeError as error:
            session.request_close(CloseCode.UNDECODABLE, str(error)[:120])
            return None
        commands.reverse()
        return commands

    def authenticated(self, session: Session) -> None:
        """A session said hello (its ``on_authenticated``): its hello deadline goes, and it no
        longer counts among its address's connections not past hello."""
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        if session.address is not None:
            self._not_pending(session.address)
        identity = session.identity
        if identity is not None and log.isEnabledFor(logging.INFO):
            log_event(
                log,
                "connection.auth",
                node=self.node.node_id,
                sid=session.sid,
                user=identity.user_id,
                role=identity.role.label,
                guest=identity.guest,
            )

    def _log_close(
        self, session: Session, client_close: int | None, gave_up: str | None, opened: float
    ) -> None:
        """Log ``connection.close``: the close code, why (a stable name), by whom (``hub`` or
        ``client``) and how long the connection lasted."""
        if gave_up is not None or client_close is None:
            # The hub asked for the close (the session's code), or gave up on the connection.
            by = "hub"
            code = int(session.close_code) if session.close_code is not None else 1006
            reason = gave_up or (
                session.close_code.name.lower() if session.close_code is not None else "internal"
            )
        elif client_close in _LAYER_CLOSES:
            by, code, reason = "hub", client_close, _LAYER_CLOSES[client_close]
        else:
            by, code = "client", client_close
            reason = "connection_lost" if client_close in _LOST else "client_closed"
        log_event(
            log,
            "connection.close",
            node=self.node.node_id,
            sid=session.sid,
            user=session.user_id,
            code=code,
            reason=reason,
            by=by,
            duration_s=round(asyncio.get_running_loop().time() - opened, 3),
        )

    def close_requested(self, session: Session) -> None:
        """A session asked to be closed (its ``on_close_request``): its connection's grace
        starts."""
        grace = self._grace.get(session)
        if grace is not None:
            grace.reschedule(asyncio.get_running_loop().time() + session.limits.close_grace)

    def _not_pending(self, address: str) -> None:
        left = self.pending.get(address, 1) - 1
        if left > 0:
            self.pending[address] = left
        else:
            self.pending.pop(address, None)

    @staticmethod
    def _hello_deadline(session: Session) -> None:
        session.expiry = None
        if session.state is SessionState.CONNECTED:
            session.request_close(CloseCode.UNAUTHENTICATED, "no hello within the deadline")


def _forget_handshake(scope: Scope) -> None:
    """Keep of an accepted connection's scope only what names it (see Endpoint.__call__)."""
    kept = {key: scope[key] for key in ("type", "path", "client") if key in scope}
    scope.clear()  # a dict shrinks only when cleared
    scope.update(kept)


def _client(scope: Scope) -> str | None:
    """The client's address as the hub sees it (the proxy's ``X-Forwarded-For`` where uvicorn
    trusts it), loopback included."""
    client = scope.get("client")
    return str(client[0]) if client else None


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
