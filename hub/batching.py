"""Work submitted for one key, done in batches.

A burst of joins makes a node take hundreds of requests for one room within a few iterations of
its event loop. Handled one by one, each pays for the room-wide steps (a presence write and its
announcement, the role and entry checks' reads) that one step could do for them all.
:class:`KeyedBatches` gathers what is submitted for a key and hands it to one run: a batch starts
in the loop iteration after its first item was submitted, and at most one batch per key runs at
a time, so what comes while a batch runs goes, together, in the next one (a quiet key is handled
at once; a busy one in few large batches).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hub.broker import BrokerUnavailable
from hub.errors import own_copy

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 -- an item
R = TypeVar("R")

log = logging.getLogger(__name__)

# (key, the batch's items) -> one outcome per item, in order: its result, or the exception its
# caller gets
BatchRun = Callable[[K, Sequence[I]], Awaitable[Sequence[R | BaseException]]]


@dataclass(slots=True)
class _Key(Generic[I, R]):
    """One key's items waiting for a batch, and whether one of its batches is under way."""

    waiting: list[tuple[I, asyncio.Future[R]]] = field(default_factory=list)
    running: bool = False


class KeyedBatches(Generic[K, I, R]):
    """Runs ``run(key, items)`` on the items submitted for ``key``, in batches (see the module
    docstring); each submitter gets its own item's outcome.

    An item whose submitter went away before its batch started is left out. One whose
    submitter went away while its batch ran is handed to ``abandoned(key, item, result)`` when it
    succeeded, for the caller to undo what it did. When ``run`` itself raises, every item of the
    batch fails (each with its own copy of the error). Once closed (the node stopping), what
    waits and what is submitted from then on fails as
    :class:`~hub.broker.BrokerUnavailable`, and the batches under way are cancelled."""

    def __init__(
        self,
        run: BatchRun[K, I, R],
        abandoned: Callable[[K, I, R], Awaitable[None]] | None = None,
    ) -> None:
        self._run = run
        self._abandoned = abandoned
        self._keys: dict[K, _Key[I, R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def submit(self, key: K, item: I) -> asyncio.Future[R]:
        """``item``'s outcome, from the next batch of ``key``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._closed:
            future.set_exception(_stopping())
            return future
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key()
        if not state.waiting and not state.running:
            loop.call_soon(self._start, key)
        state.waiting.append((item, future))
        return future

    def _start(self, key: K) -> None:
        state = self._keys.get(key)
        if state is None or state.running:
            return
        batch = [(item, future) for item, future in state.waiting if not future.done()]
        state.waiting = []
        if not batch:
            del self._keys[key]
            return
        state.running = True
        task = asyncio.get_running_loop().create_task(self._batch(key, state, batch))
        # The loop keeps only weak references to tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _batch(
        self, key: K, state: _Key[I, R], batch: list[tuple[I, asyncio.Future[R]]]
    ) -> None:
        try:
            try:
                outcomes = await self._run(key, [item for item, _ in batch])
            except Exception as error:
                outcomes = [error if n == 0 else own_copy(error) for n in range(len(batch))]
            except BaseException:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(_stopping())
                raise
            for (item, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    if not isinstance(outcome, BaseException) and self._abandoned is not None:
                        try:
                            await self._abandoned(key, item, outcome)
                        except Exception:
                            log.exception("undoing an abandoned item of %s failed", key)
                elif isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        finally:
            state.running = False
            if state.waiting and not self._closed:
                self._start(key)
            elif not state.waiting and self._keys.get(key) is state:
                del self._keys[key]

    async def close(self) -> None:
        """Fail what waits, and what is submitted from now on, as
        :class:`~hub.broker.BrokerUnavailable`; cancel the batches under way and wait for them."""
        self._closed = True
        for state in self._keys.values():
            for _, future in state.waiting:
                if not future.done():
                    future.set_exception(_stopping())
            state.waiting = []
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


def _stopping() -> BrokerUnavailable:
    return BrokerUnavailable("the node is stopping")
