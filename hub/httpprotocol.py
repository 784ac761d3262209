"""uvicorn's h11 HTTP protocol with a deadline for the first request.

uvicorn times out an idle keep-alive connection only after a response: a socket that sends
nothing, or half a request line and never the rest, stays open for as long as the peer likes,
and a few hundred of them cost the hub its file descriptors. Here a connection whose first
request has not arrived whole (a WebSocket upgrade included) within :attr:`first_request_timeout`
seconds is aborted.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, but a connection must send its first request within
    :attr:`first_request_timeout` seconds (see the module docstring)."""

    first_request_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first_request: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._first_request = self.loop.call_later(
            self.first_request_timeout, self._first_request_overdue
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Hand the connection over to the WebSocket protocol. The deadline is met: the timer
        goes now, and with it the last reference to this object, which would otherwise outlive
        the upgrade until the deadline (1.4 KB a connection, h11's state included)."""
        self._cancel_deadline()
        super().handle_websocket_upgrade(event)

    def _cancel_deadline(self) -> None:
        if self._first_request is not None:
            self._first_request.cancel()
            self._first_request = None

    def _first_request_overdue(self) -> None:
        self._first_request = None
        # Upgraded (the WebSocket protocol took the transport) or a request arrived: not ours.
        if self.transport.get_protocol() is not self or self.cycle is not None:
            return
        if not self.transport.is_closing():
            self.transport.abort()
