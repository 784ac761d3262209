"""The hub's WebSocket protocol under uvicorn: websockets' sans-I/O ``ServerProtocol`` parses the
handshake and the frames, and the application sees ASGI, as with uvicorn's own sans-I/O protocol
(``ws="websockets-sansio"``), from which this one is ported; it differs in what a connection
keeps while it is idle, and in the inbound window. The parts that follow uvicorn's
``websockets_sansio_impl.py`` are under its licence: BSD-3-Clause, Copyright (c) 2017-present,
Encode OSS Ltd.

What an open connection keeps: the transport, websockets' protocol and this object's slots. No
``asyncio.Queue`` or ``asyncio.Event`` (each holds deques: 3.8 KB together in uvicorn's), and
next to nothing of the handshake: the request's headers are emptied once the ASGI scope is built
(websockets' parser keeps the request itself), the response is let go once sent, the scope once
the application accepted or refused. Inbound messages wait in a list that is empty while the
connection is idle, and whoever waits (a ``receive`` for a message, a ``send`` for the transport
to drain) waits on a future made when it starts waiting. One timer is armed at a time for the
keepalive: the next ping, or the deadline for its pong.

Inbound window: uvicorn stops reading a socket as soon as one message waits for the application
and starts again once the application took it, two ``epoll_ctl`` calls per message, which a
crowd sending one small command per frame (votes) would pay for on every command. This protocol
lets up to :data:`INBOUND_WINDOW` messages wait before it stops reading, and starts again once at
most half of them wait. Nothing received is ever dropped: a message that arrives while the
window is full still waits in line (TCP holds back the rest), so at most the window plus what
one socket read completes beyond it waits (``asyncio`` reads at most 256 KiB at a time, cut into
frames of at most ``ws_max_size`` bytes).

The application may not use ASGI's ``websocket.http.response`` extension (a denial response
with a body): the scope does not offer it, and a close before accept is refused with HTTP 403.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from http import HTTPStatus
from typing import Any, Final, cast
from urllib.parse import unquote

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent, WebSocketScope
from uvicorn.config import Config
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_path_with_query_string,
    is_ssl,
)
from uvicorn.server import ServerState
from websockets.exceptions import InvalidState
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.version import version as websockets_version

# Messages that may wait for the application before the socket stops being read.
INBOUND_WINDOW: Final = 32

# As long as uvicorn's: how long a close waits for the peer's reply before closing the socket.
CLOSE_TIMEOUT: Final = 10.0

_logger: Final = logging.getLogger("uvicorn.error")

# websockets 17 documents that it decodes header values as ISO-8859-1; earlier versions used
# surrogate escapes (uvicorn encodes them back the same way).
if websockets_version >= "17.0":

    def _header_value(value: str) -> bytes:
        return value.encode("latin-1")

else:  # pragma: no cover - websockets before 17

    def _header_value(value: str) -> bytes:
        return value.encode("ascii", errors="surrogateescape")


class HubWebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection, as uvicorn's sans-I/O protocol serves it (handshake, ASGI
    ``receive`` and ``send``, keepalive pings, close codes, server shutdown), with less kept per
    connection and a window of inbound messages (see the module docstring).

    Promises beyond ASGI: :meth:`receive` hands messages over in the order they arrived and
    loses none, even when the task awaiting it is cancelled; reading stops once
    :data:`INBOUND_WINDOW` messages wait and starts again once at most half of them do; a peer
    that does not answer a ping within ``ws_ping_timeout`` seconds is closed with 1011 and its
    socket aborted; an invalid UTF-8 text frame closes the connection with 1007 and logs one
    line.
    """

    __slots__ = (
        "_app_state",
        "_close_timer",
        "_config",
        "_drained",
        "_fragments",
        "_fragments_text",
        "_head",
        "_inbox",
        "_keepalive",
        "_loop",
        "_ping_payload",
        "_ping_rtt",
        "_ping_sent_at",
        "_receiver",
        "_response",
        "_scope",
        "_server_state",
        "close_sent",
        "conn",
        "disconnected",
        "handshake_complete",
        "handshake_initiated",
        "reading_stopped",
        "transport",
        "writable",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()  # pragma: no cover - uvicorn loads it before serving
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)
        self.conn = ServerProtocol(
            extensions=_extensions(config.ws_per_message_deflate),
            max_size=config.ws_max_size,
            logger=_logger,
        )
        self.handshake_initiated = False
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        # Whether the transport takes writes (False between pause_writing and resume_writing).
        self.writable = True
        # Set while this protocol, by the inbound window, has paused the transport's reading.
        self.reading_stopped = False
        # The handshake's response, until sent, and the ASGI scope, until accepted or refused.
        self._response: Response | None = None
        self._scope: WebSocketScope | None = None
        # Messages for the application: those before _head were taken already (see receive).
        self._inbox: list[ASGIReceiveEvent] = []
        self._head = 0
        # What a receive() waiting for a message awaits; what a send() waiting for the
        # transport to drain awaits. Made only when someone waits.
        self._receiver: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        # A fragmented message's frames so far, and whether it is text (None: none under way).
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        # The keepalive's one timer (the next ping, or the deadline for its pong), the payload
        # of the ping in flight, when it went and the last round trip.
        self._keepalive: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._ping_sent_at = 0.0
        self._ping_rtt = 0.0
        self._close_timer: asyncio.TimerHandle | None = None

    # --- asyncio's protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The socket, upgraded from HTTP by uvicorn's HTTP protocol."""
        self.transport = cast(asyncio.Transport, transport)
        self._server_state.connections.add(self)  # type: ignore[arg-type]
        if _logger.level <= TRACE_LOG_LEVEL:
            _logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection made", self._prefix())

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket closed: the application receives ``websocket.disconnect`` (1005 once the
        handshake completed, else 1006), and a send waiting for the transport fails."""
        self._stop_keepalive()
        self._put(
            {"type": "websocket.disconnect", "code": 1005 if self.handshake_complete else 1006}
        )
        self._server_state.connections.discard(self)
        if _logger.level <= TRACE_LOG_LEVEL:
            _logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection lost", self._prefix())
        self.handshake_complete = True
        self.disconnected = True
        self._response = None
        self._scope = None
        # asyncio never calls resume_writing() on a transport lost while paused.
        self._set_writable()
        self._cancel_close_timer()
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        """The peer half-closed: nothing to do (its close frame, if any, came before)."""

    def pause_writing(self) -> None:
        """The transport's buffer is above its high-water mark: sends wait."""
        self.writable = False

    def resume_writing(self) -> None:
        """The transport's buffer drained below its low-water mark: waiting sends go on."""
        self._set_writable()

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket: the handshake's request, then frames."""
        conn = self.conn
        conn.receive_data(data)
        if conn.parser_exc is not None:
            self._parser_failed()
            return
        if conn.handshake_exc is not None and not self.handshake_initiated:
            self._handshake_failed()
            return
        for event in conn.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                opcode = event.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    self._data_frame(event)
                elif opcode is Opcode.CONT:
                    self._continuation(event)
                elif opcode is Opcode.PING:
                    self._write_pending()  # websockets queued the pong
                elif opcode is Opcode.PONG:
                    self._pong(event)
                elif opcode is Opcode.CLOSE:
                    self._close_received()

    # --- uvicorn's server ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """The server is shutting down: close an open connection with 1012 (refuse a handshake
        still under way with 500)."""
        self._stop_keepalive()
        if self.close_sent:
            self._cancel_close_timer()
            self.transport.close()
            return
        if self.handshake_complete:
            self._put({"type": "websocket.disconnect", "code": 1012})
            self.conn.send_close(1012)
            self._write_pending()
        else:
            self._send_500_response()
        self.transport.close()

    # --- the writer's direct path -----------------------------------------------------------------

    def write_frame(self, frame: bytes) -> bool:
        """Write ``frame``, a complete unmasked data frame, to the socket now if a ``send`` of it
        would also go out at once (open, not closing, the transport taking writes): True. Else
        write nothing and return False: the caller takes the ASGI ``send``, which waits or fails
        as the connection's state says."""
        if (
            self.writable
            and self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.conn.state is State.OPEN
            and not self.transport.is_closing()
        ):
            self.transport.write(frame)
            return True
        return False

    def abort(self) -> None:
        """Drop the connection at once, without a close handshake (a peer that stopped
        reading would never take a close frame)."""
        if not self.disconnected:
            self.transport.abort()

    # --- ASGI ---------------------------------------------------------------------------------

    async def receive(self) -> ASGIReceiveEvent:
        """The next message for the application (ASGI ``receive``)."""
        while self._head == len(self._inbox):
            # Receivers at once (unusual) share one future, so a message wakes them all.
            waiter = self._receiver
            if waiter is None:
                waiter = self._receiver = self._loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # Another receiver's task was cancelled, and with it the shared future.
            finally:
                if self._receiver is waiter:
                    self._receiver = None
        inbox = self._inbox
        head = self._head
        message = inbox[head]
        head += 1
        if head == len(inbox):
            inbox.clear()
            head = 0
        elif head >= INBOUND_WINDOW and 2 * head >= len(inbox):
            # Messages that keep coming as fast as they are taken never empty the list: the
            # taken ones go in one step once they are half of it (amortised O(1) a message).
            del inbox[:head]
            head = 0
        self._head = head
        if self.reading_stopped and len(inbox) - head <= INBOUND_WINDOW // 2:
            self.reading_stopped = False
            self.transport.resume_reading()
        return message

    async def send(self, message: ASGISendEvent) -> None:
        """Send an ASGI message: accept or refuse the handshake, then data frames and the close.
        Raises :class:`~uvicorn.protocols.utils.ClientDisconnected` (an ``OSError``) once the
        peer is gone, RuntimeError for a message out of turn."""
        if not self.writable:
            await self._wait_writable()
        if self.disconnected:
            raise ClientDisconnected()
        kind = message["type"]
        if not self.handshake_complete:
            if kind == "websocket.accept":
                self._accept(cast(dict[str, Any], message))
            elif kind == "websocket.close":
                self._refuse()
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept' or 'websocket.close', "
                    f"but got '{kind}'."
                )
        elif not self.close_sent:
            try:
                if kind == "websocket.send":
                    data = cast(dict[str, Any], message)
                    if (payload := data.get("bytes")) is not None:
                        self.conn.send_binary(payload)
                    elif (text := data.get("text")) is not None:
                        self.conn.send_text(text.encode())
                    self._write_pending()
                elif kind == "websocket.close":
                    self._send_close(cast(dict[str, Any], message))
                else:
                    raise RuntimeError(
                        "Expected ASGI message 'websocket.send' or 'websocket.close', "
                        f"but got '{kind}'."
                    )
            except InvalidState:
                raise ClientDisconnected() from None
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            )

    async def _run_asgi(self, scope: WebSocketScope) -> None:
        try:
            result = await self._config.loaded_app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            _logger.exception("Exception in ASGI application\n")
            self._send_500_response()
        else:
            if not self.handshake_complete:
                _logger.error("ASGI callable returned without completing handshake.")
                self._send_500_response()
            elif result is not None:
                _logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self._close_timer is None:
            self.transport.close()

    # --- the handshake --------------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        conn = self.conn
        response = conn.accept(request)
        self.handshake_initiated = True
        if response.status_code != 101:
            self.handshake_complete = True
            self.close_sent = True
            conn.send_response(response)
            self._write_pending()
            self.transport.close()
            return
        # Lower-case names, as ASGI wants (uvicorn's HTTP protocols, which hand the upgrade
        # over, lower-case them already).
        headers = [
            (key.lower().encode("ascii"), _header_value(value))
            for key, value in request.headers.raw_items()
        ]
        subprotocols: list[str] = []
        for header in request.headers.get_all("Sec-WebSocket-Protocol"):
            subprotocols.extend(token.strip() for token in header.split(","))
        raw_path, _, query_string = request.path.partition("?")
        root_path = self._config.root_path
        transport = self.transport
        scope: WebSocketScope = {
            "type": "websocket",
            "asgi": {"version": self._config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if is_ssl(transport) else "ws",
            "server": _local_address(transport.get_extra_info("sockname")),
            "client": _remote_address(transport.get_extra_info("peername")),
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self._app_state.copy(),
        }
        self._scope = scope
        self._response = response
        # websockets' parser keeps the request it parsed for the connection's life; its headers
        # are in the scope now.
        request.headers.clear()
        self._put({"type": "websocket.connect"})
        tasks = self._server_state.tasks
        task = self._loop.create_task(self._run_asgi(scope))
        task.add_done_callback(tasks.discard)
        tasks.add(task)

    def _accept(self, message: dict[str, Any]) -> None:
        scope, response = self._scope, self._response
        assert scope is not None and response is not None
        if _logger.isEnabledFor(logging.INFO):
            _logger.info(
                '%s - "WebSocket %s" [accepted]',
                get_client_addr(scope),
                get_path_with_query_string(scope),
            )
        headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in self._server_state.default_headers + list(message.get("headers", []))
        ]
        if subprotocol := message.get("subprotocol"):
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        del response.headers["Date"]
        response.headers.update(headers)
        if not self.transport.is_closing():
            self.handshake_complete = True
            self._scope = self._response = None
            self.conn.send_response(response)
            self._write_pending()
            self._start_keepalive()

    def _refuse(self) -> None:
        scope = self._scope
        self._put({"type": "websocket.disconnect", "code": 1006})
        if scope is not None and _logger.isEnabledFor(logging.INFO):
            _logger.info(
                '%s - "WebSocket %s" 403', get_client_addr(scope), get_path_with_query_string(scope)
            )
        self._scope = self._response = None
        self.conn.send_response(self.conn.reject(HTTPStatus.FORBIDDEN, ""))
        self.close_sent = True
        self.handshake_complete = True
        self._write_pending()
        self.transport.close()

    def _handshake_failed(self) -> None:
        # websockets could not parse the request: it queued a 414/431 for exceeded limits
        # (websockets >= 17) and only an EOF otherwise, which is answered with a 400.
        self.handshake_complete = True
        self.close_sent = True
        output = b"".join(self.conn.data_to_send())
        if not output:
            output = self.conn.reject(
                400, "Failed to open a WebSocket connection: invalid request.\n"
            ).serialize()
        self.transport.write(output)
        self.transport.close()

    def _send_500_response(self) -> None:
        if self.handshake_complete:
            return
        self._scope = None
        self.conn.send_response(self.conn.reject(500, "Internal Server Error"))
        self._write_pending()

    # --- frames ---------------------------------------------------------------------------------

    def _data_frame(self, frame: Frame) -> None:
        if frame.fin:
            self._message(frame.data, frame.opcode is Opcode.TEXT)  # type: ignore[arg-type]
        else:
            self._fragments = [frame.data]  # type: ignore[list-item]
            self._fragments_text = frame.opcode is Opcode.TEXT

    def _continuation(self, frame: Frame) -> None:
        # websockets refuses a continuation without a message under way (1002).
        fragments = self._fragments
        assert fragments is not None
        fragments.append(frame.data)  # type: ignore[arg-type]
        if frame.fin:
            self._fragments = None
            self._message(b"".join(fragments), self._fragments_text)

    def _message(self, data: bytes, text: bool) -> None:
        if self.close_sent:
            # The application is past `websocket.close`: the message is discarded rather than
            # queued, so reading goes on until the peer's close reply arrives.
            return
        if text:
            try:
                message: ASGIReceiveEvent = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                # Anyone can send one: one line, no traceback.
                _logger.error("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self._parser_failed()
                return
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self._put(message)
        if not self.reading_stopped and len(self._inbox) - self._head >= INBOUND_WINDOW:
            self.reading_stopped = True
            self.transport.pause_reading()

    def _cancel_close_timer(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    def _close_received(self) -> None:
        if self.close_sent:
            # The peer answered our close frame: the closing handshake is complete.
            if self._close_timer is not None:
                self._cancel_close_timer()
                self.transport.close()
            return
        if not self.transport.is_closing():
            close = self.conn.close_rcvd
            assert close is not None
            self._put({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
            self._write_pending()  # websockets queued the reply
            self.transport.close()

    def _send_close(self, message: dict[str, Any]) -> None:
        if self.transport.is_closing():
            return
        code = message.get("code", 1000)
        reason = message.get("reason", "") or ""
        self._put({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self._write_pending()
        self.close_sent = True
        if self.reading_stopped:  # the peer's close reply must be read
            self.reading_stopped = False
            self.transport.resume_reading()
        self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.transport.close)

    def _parser_failed(self) -> None:
        close = self.conn.close_sent
        assert close is not None
        self._put({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
        self._write_pending()
        self.close_sent = True
        self.transport.close()

    # --- keepalive ------------------------------------------------------------------------------

    def _start_keepalive(self) -> None:
        interval = self._config.ws_ping_interval
        if interval is not None and interval > 0:
            self._schedule_ping()

    def _schedule_ping(self) -> None:
        interval = self._config.ws_ping_interval
        assert interval is not None
        delay = max(0.0, interval - self._ping_rtt)
        self._keepalive = self._loop.call_later(delay, self._send_ping)

    def _send_ping(self) -> None:
        self._keepalive = None
        if self.close_sent or self.transport.is_closing():
            return
        # A random payload identifies this ping: a stale or unsolicited pong is ignored.
        self._ping_payload = payload = struct.pack("!I", random.getrandbits(32))
        self._ping_sent_at = self._loop.time()
        self.conn.send_ping(payload)
        self._write_pending()
        timeout = self._config.ws_ping_timeout
        if timeout is not None:
            self._keepalive = self._loop.call_later(timeout, self._keepalive_timeout)
        else:
            self._schedule_ping()

    def _pong(self, frame: Frame) -> None:
        if self._ping_payload is None or bytes(frame.data) != self._ping_payload:
            return
        self._ping_rtt = self._loop.time() - self._ping_sent_at
        self._ping_payload = None
        # With a timeout the timer is the pong's deadline, and the next ping follows the pong;
        # without one, the next ping is already scheduled.
        if self._config.ws_ping_timeout is not None and self._keepalive is not None:
            self._keepalive.cancel()
            self._schedule_ping()

    def _keepalive_timeout(self) -> None:
        self._keepalive = None
        self._ping_payload = None
        if self.close_sent and self._close_timer is not None:
            return  # our closing handshake is under way: its own timer ends the connection
        if not (self.close_sent or self.transport.is_closing()):
            if _logger.level <= TRACE_LOG_LEVEL:
                _logger.log(TRACE_LOG_LEVEL, "%sWebSocket keepalive ping timeout", self._prefix())
            self.conn.fail(1011, "keepalive ping timeout")
            self._write_pending()
            self.close_sent = True
            self.transport.close()
        # Closing waits for the write buffer to flush, forever if the peer stopped reading.
        self.abort()

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        self._ping_payload = None

    # --- plumbing -------------------------------------------------------------------------------

    def _put(self, message: ASGIReceiveEvent) -> None:
        self._inbox.append(message)
        waiter = self._receiver
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def waiting(self) -> int:
        """How many messages wait for the application."""
        return len(self._inbox) - self._head

    def _write_pending(self) -> None:
        self.transport.write(b"".join(self.conn.data_to_send()))

    def _set_writable(self) -> None:
        self.writable = True
        drained = self._drained
        if drained is not None:
            self._drained = None
            if not drained.done():
                drained.set_result(None)

    async def _wait_writable(self) -> None:
        while not self.writable:
            drained = self._drained
            if drained is None:
                drained = self._drained = self._loop.create_future()
            await asyncio.shield(drained)

    def _prefix(self) -> str:
        client = _remote_address(self.transport.get_extra_info("peername"))
        return f"{client[0]}:{client[1]} - " if client else ""


def _extensions(deflate: bool) -> list[ServerExtensionFactory] | None:
    """The extensions a connection offers: permessage-deflate only if configured, with
    uvicorn's settings (one factory list shared by every connection: websockets only reads it)."""
    return _DEFLATE if deflate else None


_DEFLATE: Final[list[ServerExtensionFactory]] = [
    ServerPerMessageDeflateFactory(
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )
]


def _remote_address(info: Any) -> tuple[str, int] | None:
    """The peer's (host, port) from the transport's ``peername`` (None for a UNIX socket)."""
    if isinstance(info, tuple) and len(info) >= 2:
        return info if len(info) == 2 else (info[0], info[1])
    return None


def _local_address(info: Any) -> tuple[str, int | None] | None:
    """The server's (host, port) from the transport's ``sockname`` (a UNIX socket: its path)."""
    if isinstance(info, tuple) and len(info) >= 2:
        return info if len(info) == 2 else (info[0], info[1])
    if isinstance(info, str):
        return (info, None)
    return None
