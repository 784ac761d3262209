"""uvicorn's sans-I/O WebSocket protocol with a window of inbound messages.

uvicorn stops reading a socket as soon as one message waits for the application and starts again
once the application took it: two ``epoll_ctl`` calls per message, which a crowd sending one
small command per frame (votes) pays for on every command. This protocol lets up to
:data:`INBOUND_WINDOW` messages wait before it stops reading, and starts again once the
application has taken half of them. The queue stays bounded: at most the window plus what one
socket read (``asyncio``'s 256 KiB, cut into frames of at most ``ws_max_size``) completes beyond
it, and the application still takes one message at a time.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# Messages that may wait for the application before the socket stops being read.
INBOUND_WINDOW: Final = 32


class _InvalidUtf8OnOneLine(logging.Filter):
    """uvicorn logs a client's invalid UTF-8 text frame with a full traceback: anyone can send
    one, so it is one line (the connection is closed with 1007 all the same)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Invalid UTF-8 sequence received from client.":
            record.exc_info = None
            record.exc_text = None
        return True


_ONE_LINE: Final = _InvalidUtf8OnOneLine()


class WindowedWebSocketProtocol(WebSocketsSansIOProtocol):
    """Stops reading the socket only when :data:`INBOUND_WINDOW` messages wait, not at the
    first, and aborts a peer that does not answer a ping; everything else is uvicorn's (but for
    its log of invalid UTF-8: one line)."""

    # Set while this class (not uvicorn's close handling) has paused the transport.
    reading_stopped: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger.addFilter(_ONE_LINE)  # once: a logger keeps one of each filter

    def keepalive_timeout(self) -> None:
        """The peer did not answer a ping in time: uvicorn closes the transport, which waits
        for the write buffer to flush, forever if the peer stopped reading; abort it instead."""
        super().keepalive_timeout()
        if not self.disconnected:
            self.transport.abort()

    def send_receive_event_to_app(self) -> None:
        # uvicorn pauses at the first waiting message unless it thinks reading is already
        # paused; it never is here until the window is full, so the flag is claimed for it.
        # uvicorn resumes reading itself when the application closes (it must, to read the
        # peer's close reply), and resuming a running transport does nothing.
        self.read_paused = True
        super().send_receive_event_to_app()
        if not self.reading_stopped and self.queue.qsize() >= INBOUND_WINDOW:
            self.reading_stopped = True
            self.transport.pause_reading()

    async def receive(self) -> ASGIReceiveEvent:
        """The next message; reading restarts once at most half the window waits."""
        message = await self.queue.get()
        if self.reading_stopped and self.queue.qsize() <= INBOUND_WINDOW // 2:
            self.reading_stopped = False
            self.transport.resume_reading()
        return message
