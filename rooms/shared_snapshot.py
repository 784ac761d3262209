"""The room-wide parts of join snapshots, run once for the joins that ask together.

A burst of joins (a session starting, a breakout round opening) makes hundreds of joins of one
room ask for the same room-wide parts (its notices, its questions, its stage) within a few
iterations of the event loop. Each part is a coroutine, a store read, a reply and a decode of
the room's state; run once per join they were a third of a join's cost on Redis. Here the joins
of one room and role that ask in one loop iteration share one run of every room-wide part.

That keeps every join's guarantee: the shared run starts in the iteration after the last of
them asked, so each of its reads sees everything acknowledged before any of them asked (the
same reasoning as identical reads sharing one Redis command, see :mod:`hub.redis.pipelining`).
A join asking once the run has started waits for the next one.

Each sharer gets the run's result through a future of its own: one of them cancelled (its
connection closed) cancels nothing of the others. A part that fails fails every sharer of its
run (the first with its error, the others with a copy). The parts' merged result is the same
object for every sharer: read only. Once closed (the node stopping), what was asked and not
answered, and what is asked from then on, fails as :class:`~hub.broker.BrokerUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from hub.auth import Role
from hub.broker import BrokerUnavailable
from hub.errors import own_copy
from hub.feature import RoomInfo, RoomSnapshotPart

_Key = tuple[str, Role]


class SharedRoomSnapshots:
    """Runs ``parts`` (the room-wide snapshot parts, in registration order) once for every
    join of one room and role that asks in one loop iteration."""

    def __init__(self, parts: Sequence[RoomSnapshotPart]) -> None:
        self._parts = parts
        self._asking: dict[_Key, list[asyncio.Future[Mapping[str, Any]]]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    def get(self, room: RoomInfo, role: Role) -> asyncio.Future[Mapping[str, Any]]:
        """The merged room-wide parts of ``room`` as ``role`` sees them, from a run that starts
        after this call (shared with the other callers of this loop iteration). Read only."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Mapping[str, Any]] = loop.create_future()
        if self._closed:
            future.set_exception(_stopping())
            return future
        if not self._parts:
            future.set_result({})
            return future
        key = (room.id, role)
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = []
            loop.call_soon(self._start, key, room)
        asking.append(future)
        return future

    def _start(self, key: _Key, room: RoomInfo) -> None:
        # Who asks from here on waits for a run that starts after they asked.
        waiters = self._asking.pop(key, None)
        if waiters is None:  # closed meanwhile: they were answered
            return
        task = asyncio.get_running_loop().create_task(self._run(room, key[1], waiters))
        # The loop keeps only weak references to tasks.
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(
        self, room: RoomInfo, role: Role, waiters: list[asyncio.Future[Mapping[str, Any]]]
    ) -> None:
        merged: dict[str, Any] = {}
        try:
            for part in self._parts:
                if all(waiter.done() for waiter in waiters):
                    return  # every sharer went away
                merged.update(await part(room, role))
        except Exception as error:
            _fail(waiters, error)
            return
        except BaseException:
            # Cancelled by close(): the sharers' own commands go on and answer "unavailable".
            _fail(waiters, _stopping())
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(merged)

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


def _fail(waiters: list[asyncio.Future[Mapping[str, Any]]], error: Exception) -> None:
    """Fail every waiter still waiting: the first with ``error`` itself (its traceback is the
    one logged), the others with a copy each."""
    first = True
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error if first else own_copy(error))
            first = False


def _stopping() -> BrokerUnavailable:
    return BrokerUnavailable("the node is stopping")
