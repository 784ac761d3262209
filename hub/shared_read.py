"""One read for a burst of callers.

:class:`SharedRead` runs a read at most once at a time, and every call made while it is under
way gets that read's result (a burst of lobby joins costs a few reads of a list, not one each):
for what may be a moment old. :class:`FreshReads` shares reads by key too, but only reads that
began after the caller asked: for what must include everything acknowledged before (a join's
snapshot of a room)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
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


class FreshReads(Generic[K, T]):
    """Reads by key for bursts of callers, each of whom gets a read that began after it asked.

    A caller that comes while no read of its key is under way starts one. Callers that come
    while one is under way wait for the next read, which starts as soon as that one ends and
    serves all of them: a burst of any size costs two reads of a key, and nobody gets what was
    read before they asked (so what was acknowledged before they asked is in it). Callers share
    the result object: copy it before changing it. A caller that gives up cancels nothing."""

    def __init__(self, read: Callable[[K], Awaitable[T]]) -> None:
        self._read = read
        # Per key under way: its read, and the next one's callers (None until one comes).
        self._under_way: dict[K, tuple[asyncio.Future[T], list[asyncio.Future[T]]]] = {}

    async def __call__(self, key: K) -> T:
        """The result of a read of ``key`` that began after this call."""
        under_way = self._under_way.get(key)
        if under_way is None:
            reading = self._start(key)
        else:
            waiting = under_way[1]
            if not waiting:
                waiting.append(asyncio.get_running_loop().create_future())
            reading = waiting[0]
        return await asyncio.shield(reading)

    def _start(self, key: K) -> asyncio.Future[T]:
        reading = asyncio.ensure_future(self._read(key))
        self._under_way[key] = (reading, [])
        reading.add_done_callback(functools.partial(self._finished, key))
        return reading

    def _finished(self, key: K, reading: asyncio.Future[T]) -> None:
        _, waiting = self._under_way.pop(key)
        _retrieve(reading)
        if waiting:
            self._start(key).add_done_callback(functools.partial(_pass_on, waiting[0]))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark the outcome as seen: every caller may have gone meanwhile."""
    if not future.cancelled():
        future.exception()


def _pass_on(target: asyncio.Future[T], source: asyncio.Future[T]) -> None:
    """Give ``target`` the outcome of ``source``."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
        target.add_done_callback(_retrieve)
    else:
        target.set_result(source.result())
