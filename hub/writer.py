"""Writing a session's outbound queue to its socket, without a task per idle connection.

A fan-out puts one message on the queue of every member; waking a task per connection for each
event would cost more than the write itself. Instead a :class:`FlushScheduler` runs once at the
end of the event-loop iteration and flushes every :class:`Writer` that got something new, so
whatever was queued in that iteration shares one frame. A flush drives the ASGI ``send``
coroutine itself: while the transport takes writes it completes at once, and only a send that
must wait for the peer continues in a task, which keeps draining until the queue is empty.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Coroutine
from typing import Any, cast

from starlette.types import Send
from starlette.websockets import WebSocketDisconnect

from hub.codec import join_frame
from hub.metrics import HubMetrics
from hub.session import Session
from hub.wsprotocol import HubWebSocketProtocol

log = logging.getLogger(__name__)

# What a send raises when the peer is gone: nothing is left to write to.
_GONE = (WebSocketDisconnect, OSError, RuntimeError)

_FIN_BINARY = 0x82
_FIN_TEXT = 0x81


def ws_frame(payload: bytes, first_byte: int) -> bytes:
    """One unfragmented, unmasked (server to client) WebSocket frame carrying ``payload``."""
    size = len(payload)
    if size < 126:
        return bytes((first_byte, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first_byte, 126, size) + payload
    return struct.pack("!BBQ", first_byte, 127, size) + payload


def direct_protocol(send: Send) -> HubWebSocketProtocol | None:
    """The hub's WebSocket protocol behind an ASGI ``send``, when that is what serves the
    connection, else None.

    Through it a frame goes straight to the transport: framing a payload here costs a fraction
    of the ASGI path (the protocol's send, websockets' framing), and fan-out is the hot path. It
    is used only while that path would itself write at once (open, handshake done, transport
    writable: :meth:`~hub.wsprotocol.HubWebSocketProtocol.write_frame`); anything else takes the
    ASGI path.
    """
    owner = getattr(send, "__self__", None)
    return owner if isinstance(owner, HubWebSocketProtocol) else None


class FlushScheduler:
    """Flushes the writers that have something new, once per event-loop iteration."""

    def __init__(self) -> None:
        self._dirty: list[Writer] = []
        self._scheduled = False

    def add(self, writer: Writer) -> None:
        """Flush ``writer`` at the end of this loop iteration."""
        self._dirty.append(writer)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for writer in dirty:
            try:
                writer.flush()
            except Exception:
                log.exception("flushing %s failed", writer.session.sid)


class Writer:
    """Writes one session's queue (see the module docstring) and performs the close the session
    asked for; :attr:`finished` resolves once the connection is closed or its peer is gone."""

    __slots__ = (
        "_direct",
        "_finished",
        "_first_byte",
        "_key",
        "_marked",
        "_stopped",
        "_task",
        "limit",
        "metrics",
        "scheduler",
        "send",
        "session",
        "stall",
    )

    def __init__(
        self,
        send: Send,
        session: Session,
        scheduler: FlushScheduler,
        limit: int,
        metrics: HubMetrics,
    ) -> None:
        self.send = send
        self.session = session
        self.scheduler = scheduler
        self.limit = limit
        self.metrics = metrics
        # Whether the connection is closed or its peer gone, and a future for who waits for
        # that (made when someone does).
        self._stopped = False
        self._finished: asyncio.Future[None] | None = None
        # A send to a peer that stopped reading never completes: past this, the hub aborts.
        self.stall = session.limits.write_timeout
        self._key = "bytes" if session.fmt.binary else "text"
        self._first_byte = _FIN_BINARY if session.fmt.binary else _FIN_TEXT
        self._direct = direct_protocol(send)
        self._marked = False
        self._task: asyncio.Task[None] | None = None
        session.queue.on_wake = self.wake

    @property
    def finished(self) -> asyncio.Future[None]:
        """Resolves once the connection is closed or its peer is gone."""
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_future()
            if self._stopped:
                self._finished.set_result(None)
        return self._finished

    def _message(self, frame: bytes | str) -> dict[str, Any]:
        """The ASGI message that sends ``frame`` (a text frame's payload as str, as ASGI wants)."""
        if self._key == "text" and isinstance(frame, bytes):
            return {"type": "websocket.send", "text": frame.decode()}
        return {"type": "websocket.send", self._key: frame}

    def wake(self) -> None:
        """Something was queued (or the queue closed): flush at the end of this iteration."""
        if not self._marked and self._task is None and not self._stopped:
            self._marked = True
            self.scheduler.add(self)

    def flush(self) -> None:
        """Send what is queued, synchronously while the transport takes it."""
        self._marked = False
        if self._task is not None or self._stopped:
            return
        queue = self.session.queue
        traffic = self.metrics.traffic
        while True:
            if queue.overflowed:
                self._task = asyncio.ensure_future(self._close())
                return
            parts = queue.take(self.limit)
            if not parts:
                if queue.closed:
                    self._task = asyncio.ensure_future(self._close())
                return
            frame = parts[0] if len(parts) == 1 else join_frame(self.session.fmt, parts)
            traffic.frames_out += 1
            traffic.messages_out += len(parts)
            direct = self._direct
            if direct is not None and direct.write_frame(
                ws_frame(cast(bytes, frame), self._first_byte)
            ):
                continue
            # ASGI's send is a coroutine function (uvicorn's is): drive it by hand.
            sending = cast(Coroutine[Any, Any, None], self.send(self._message(frame)))
            try:
                awaited = sending.send(None)
            except StopIteration:
                continue
            except _GONE:
                self._gone()
                return
            except Exception:
                log.exception("sending to %s failed", self.session.sid)
                self._gone()
                return
            # The transport is full: finish this send, and what follows, in a task.
            self._task = asyncio.ensure_future(self._drain(sending, awaited))
            return

    async def _drain(self, sending: Coroutine[Any, Any, None], awaited: Any) -> None:
        queue = self.session.queue
        traffic = self.metrics.traffic
        try:
            async with asyncio.timeout(self.stall):
                await _finish(sending, awaited)
            while not queue.overflowed:
                parts = queue.take(self.limit)
                if not parts:
                    if not queue.closed:
                        self._task = None  # idle again: the next put wakes a flush
                        return
                    break
                frame = parts[0] if len(parts) == 1 else join_frame(self.session.fmt, parts)
                traffic.frames_out += 1
                traffic.messages_out += len(parts)
                async with asyncio.timeout(self.stall):
                    await self.send(self._message(frame))
        except TimeoutError:  # before _GONE: TimeoutError is an OSError
            self.abort("a write made no progress")
            return
        except _GONE:
            self._gone()
            return
        await self._close()

    async def _close(self) -> None:
        session = self.session
        try:
            if session.close_code is not None:
                self.metrics.closes.labels(str(int(session.close_code))).inc()
                async with asyncio.timeout(self.stall):
                    await self.send(
                        {
                            "type": "websocket.close",
                            "code": int(session.close_code),
                            "reason": session.close_reason,
                        }
                    )
        except TimeoutError:  # before _GONE: TimeoutError is an OSError
            self.abort("the close could not be written")
        except _GONE:
            pass
        finally:
            self._gone()

    def abort(self, why: str) -> None:
        """Drop the connection at once, without a close handshake (the peer stopped reading, so
        nothing, a close frame included, would reach it): the transport is aborted, the read
        ends and the session is released."""
        log.info("aborting %s: %s", self.session.sid, why)
        self.metrics.aborts.inc()
        if self._direct is not None:
            self._direct.abort()
        self._gone()

    def _gone(self) -> None:
        self.session.queue.close()
        self._stopped = True
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def cancel(self) -> None:
        """Stop writing (the connection is being released)."""
        if self._task is not None:
            self._task.cancel()
        self._gone()

    async def wait_stopped(self) -> None:
        """Wait for a cancelled drain to end."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def _finish(coro: Coroutine[Any, Any, None], awaited: Any) -> None:
    """Run ``coro``, which already ran up to its first suspension (awaiting the future
    ``awaited``), to completion in the current task: the coroutine protocol a Task follows."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            if awaited is None:
                await asyncio.sleep(0)  # a bare yield: just give the loop a turn
            elif not awaited.done():
                waiter = loop.create_future()

                def wake(_: object, waiter: asyncio.Future[None] = waiter) -> None:
                    if not waiter.done():
                        waiter.set_result(None)

                awaited.add_done_callback(wake)
                await waiter
            else:
                awaited._asyncio_future_blocking = False
            try:
                awaited = coro.send(None)
            except StopIteration:
                return
    except BaseException:
        coro.close()
        raise
