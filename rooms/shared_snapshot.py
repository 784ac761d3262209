"""The room-wide parts of join snapshots, run once for the joins that ask together.

A burst of joins (a session starting, a breakout round opening) makes hundreds of joins of one
room ask for the same room-wide parts (its notices, its questions, its stage) within a few
iterations of the event loop. Each part is a coroutine, a store read, a reply and a decode of
the room's state; run once per join they were a third of a join's cost on Redis. Here the joins
of one room and role that ask in one loop iteration share one run of every room-wide part: a
:class:`~hub.shared_read.FreshSharedRead`, which starts after the last of them asked, so each of
its reads sees everything acknowledged before any of them asked. A join asking once the run has
started waits for the next one.

A part that fails fails every sharer of its run (the first with its error, the others with a
copy). The parts' merged result is the same object for every sharer: read only. Once closed (the
node stopping), what was asked and not answered, and what is asked from then on, fails as
:class:`~hub.broker.BrokerUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from hub.auth import Role
from hub.feature import RoomInfo, RoomSnapshotPart
from hub.shared_read import FreshSharedRead


class SharedRoomSnapshots:
    """Runs ``parts`` (the room-wide snapshot parts, in registration order) once for every
    join of one room and role that asks in one loop iteration."""

    def __init__(self, parts: Sequence[RoomSnapshotPart]) -> None:
        self._parts = parts
        # Keyed by the room object (a frozen record: equal for one room while it is unchanged).
        self._runs: FreshSharedRead[tuple[RoomInfo, Role], Mapping[str, Any]] = FreshSharedRead(
            self._run
        )

    def get(self, room: RoomInfo, role: Role) -> asyncio.Future[Mapping[str, Any]]:
        """The merged room-wide parts of ``room`` as ``role`` sees them, from a run that starts
        after this call (shared with the other callers of this loop iteration). Read only."""
        if not self._parts:
            empty: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
            empty.set_result({})
            return empty
        return self._runs.get((room, role))

    async def _run(self, key: tuple[RoomInfo, Role]) -> Mapping[str, Any]:
        room, role = key
        merged: dict[str, Any] = {}
        # All at once, so that their reads go to the broker together; merged in order.
        for part in await asyncio.gather(*(part(room, role) for part in self._parts)):
            merged.update(part)
        return merged

    async def close(self) -> None:
        """Fail what was asked and not answered, and what is asked from now on, as
        :class:`~hub.broker.BrokerUnavailable`; cancel the runs under way and wait for them."""
        await self._runs.close()
