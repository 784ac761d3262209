"""Reads shared by a burst of callers.

:class:`SharedRead` runs a read at most once at a time, and every call made while it is under way
gets that read's result (a burst of lobby joins costs a few reads of a list, not one each). It
suits reads whose callers accept a result read a little before they asked.

:class:`FreshSharedRead` is for callers that must see everything acknowledged before they asked
(a join's snapshot after its own presence entry, a join's check of a round that may just have
closed): the callers asking for one key in one loop iteration share one run, which starts in the
iteration after the last of them asked, so its reads see everything acknowledged before any of
them asked (the same reasoning as identical reads sharing one Redis command, see
:mod:`hub.redis.pipelining`). A caller asking once the run has started waits for the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from hub.broker import BrokerUnavailable
from hub.errors import own_copy

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


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


class FreshSharedRead(Generic[K, T]):
    """Runs ``read(key)`` once for every caller asking for ``key`` in one loop iteration,
    starting in the next one (see the module docstring).

    Each caller gets the run's result through a future of its own: one of them cancelled
    cancels nothing of the others. A read that fails fails every sharer of its run (the first
    with its error, the others with a copy each). The result is the same object for every
    sharer: read only. Once closed (the node stopping), what was asked and not answered, and
    what is asked from then on, fails as :class:`~hub.broker.BrokerUnavailable`.
    """

    def __init__(self, read: Callable[[K], Awaitable[T]]) -> None:
        self._read = read
        self._asking: dict[K, list[asyncio.Future[T]]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    def get(self, key: K) -> asyncio.Future[T]:
        """The result of a run of ``read(key)`` that starts after this call, shared with the
        other callers of this loop iteration."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._closed:
            future.set_exception(_stopping())
            return future
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = []
            loop.call_soon(self._start, key)
        asking.append(future)
        return future

    def _start(self, key: K) -> None:
        # Who asks from here on waits for a run that starts after they asked.
        waiters = self._asking.pop(key, None)
        if waiters is None:  # closed meanwhile: they were answered
            return
        task = asyncio.get_running_loop().create_task(self._run(key, waiters))
        # The loop keeps only weak references to tasks.
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, key: K, waiters: list[asyncio.Future[T]]) -> None:
        if all(waiter.done() for waiter in waiters):
            return  # every sharer went away
        try:
            result = await self._read(key)
        except Exception as error:
            _fail(waiters, error)
            return
        except BaseException:
            # Cancelled by close(): the sharers' own commands go on and answer "unavailable".
            _fail(waiters, _stopping())
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)

    async def close(self) -> None:
        """Fail what was asked and not answered, and what is asked from now on, as
        :class:`~hub.broker.BrokerUnavailable`; cancel the runs under way and wait for them."""
        self._closed = True
        for waiters in self._asking.values():
            _fail(waiters, _stopping())
        self._asking.clear()
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)


def _fail(waiters: list[asyncio.Future[T]], error: Exception) -> None:
    """Fail every waiter still waiting: the first with ``error`` itself (its traceback is the
    one logged), the others with a copy each."""
    first = True
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error if first else own_copy(error))
            first = False


def _stopping() -> BrokerUnavailable:
    return BrokerUnavailable("the node is stopping")
