"""One read for a burst of callers: :class:`SharedRead` runs a read at most once at a time, and
every call made while it is under way gets that read's result (a burst of lobby joins costs a
few reads of a list, not one each)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedRead(Generic[T]):
    """Calls ``read()`` when no read is under way; callers meanwhile share its result (or its
    error). A caller that gives up does not cancel the read for the others."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._reading: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        """The result of the read under way, or of a new one."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
            self._reading.add_done_callback(self._done)
        return await asyncio.shield(self._reading)

    def _done(self, reading: asyncio.Future[T]) -> None:
        if self._reading is reading:
            self._reading = None
        if not reading.cancelled():
            reading.exception()  # retrieved here too: every caller may have gone meanwhile
