"""The bounded outbound queue of one connection, drained by its writer into coalesced frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class OutboundQueue:
    """Encoded messages waiting to be written to one connection, as the bytes that go on the
    wire (msgpack, or JSON in UTF-8), so that the byte bound is a bound on memory in both formats.

    Bounded by ``max_messages`` and ``max_bytes``. Overflow rule: a ``put`` that would pass either
    bound marks the queue *overflowed*, drops everything queued and refuses all later puts; the
    connection's writer then closes it with 4008 (slow consumer). The consumer is expected to
    reconnect and recover with ``join {since}``: nothing stored is lost, only this connection's
    backlog.
    """

    __slots__ = (
        "_bytes",
        "_items",
        "_waiter",
        "closed",
        "max_bytes",
        "max_messages",
        "on_overflow",
        "on_wake",
        "overflowed",
    )

    def __init__(self, max_messages: int = 4096, max_bytes: int = 4 * 2**20) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        # A list, not a deque: an idle connection's empty list costs 56 bytes, a deque ~600,
        # and the writer usually takes everything at once.
        self._items: list[bytes] = []
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.closed = False
        # Called once, when the queue overflows (the hub counts slow consumers with it).
        self.on_overflow: Callable[[], object] | None = None
        # The writer's hook: called when there is something new to write (or to close).
        self.on_wake: Callable[[], object] | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting."""
        return self._bytes

    def put(self, data: bytes) -> bool:
        """Queue one encoded message; False when the queue is closed or has overflowed."""
        if self.overflowed or self.closed:
            return False
        if len(self._items) >= self.max_messages or self._bytes + len(data) > self.max_bytes:
            self.overflow()
            return False
        self._items.append(data)
        self._bytes += len(data)
        self._wake()
        return True

    def overflow(self) -> None:
        """Apply the overflow rule now: drop the backlog and refuse later puts."""
        if not self.overflowed and self.on_overflow is not None:
            self.on_overflow()
        self.overflowed = True
        self._items.clear()
        self._bytes = 0
        self._wake()

    def close(self) -> None:
        """Refuse further puts and wake the writer so it can finish."""
        self.closed = True
        self._wake()

    def take(self, max_bytes: int) -> list[bytes]:
        """Remove and return queued messages, at least one if any, up to ``max_bytes`` in all."""
        items = self._items
        if self._bytes <= max_bytes:
            self._items = []
            self._bytes = 0
            return items
        size = 0
        count = 0
        for data in items:
            if count and size + len(data) > max_bytes:
                break
            size += len(data)
            count += 1
        taken = items[:count]
        del items[:count]
        self._bytes -= size
        return taken

    async def wait(self) -> None:
        """Return once there is something to take, or the queue closed or overflowed."""
        while not self._items and not self.overflowed and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.on_wake is not None:
            self.on_wake()
