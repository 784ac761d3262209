"""The state that the memory brokers and stores of one process share, and its sweep.

What expires (values put with a ttl, ``publish_once`` keys with one, presence entries no longer
refreshed) is taken out by :meth:`MemoryBackend.sweep`, which the started brokers run every
:data:`SWEEP_INTERVAL` seconds: memory holds what is live, not everything ever written, even
where nobody reads the key again (an idempotency key, a slow-mode slot, a mute).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub.broker import BrokerSettings, StoredEvent

if TYPE_CHECKING:
    from hub.broker import BrokerHandler

#: Seconds between two sweeps of expired state while a broker on the backend is started.
SWEEP_INTERVAL = 5.0
# The expiry queues are rebuilt from what is live when stale entries (keys rewritten or deleted
# before they expired) make them this much longer than it.
_STALE_SLACK = 1024


@dataclass(slots=True)
class RoomStream:
    """One room's stored events: its epoch, its last seq, the retained events (oldest first)."""

    epoch: str
    last_seq: int = 0
    events: collections.deque[StoredEvent] = field(default_factory=collections.deque)
    # publish_once keys -> (seq, expires at, on the backend's clock), oldest first; at most
    # ONCE_KEPT.
    once: dict[str, tuple[int, float | None]] = field(default_factory=dict)


class MemoryBackend:
    """Everything the memory nodes of one process share: the brokers' streams, topics and
    presence, the stores' key families, and what features keep here themselves.

    ``clock`` gives the monotonic seconds that every ttl and presence refresh is measured on
    (tests step it by hand). Expired state is invisible at once and gone from memory by the next
    :meth:`sweep`."""

    def __init__(
        self,
        settings: BrokerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.settings = settings or BrokerSettings()
        self.clock = clock
        self.sweep_interval = sweep_interval
        self.streams: dict[str, RoomStream] = {}
        self.subscribers: dict[str, dict[str, BrokerHandler]] = {}
        # room -> sid -> (info, refreshed at, on the clock)
        self.presence: dict[str, dict[str, tuple[bytes, float]]] = {}
        self.values: dict[str, tuple[bytes, float | None]] = {}
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.sets: dict[str, set[str]] = {}
        self.logs: dict[str, dict[int, bytes]] = {}
        # key -> member -> (score, value)
        self.indexes: dict[str, dict[str, tuple[int, bytes]]] = {}
        #: What features keep here themselves, one entry per feature (the polls' ballots).
        self.shared: dict[str, object] = {}
        # (expires at, key) of values and (expires at, room, key) of publish_once keys, soonest
        # first; an entry whose key was rewritten or deleted since is skipped when it comes due.
        self._value_expiry: list[tuple[float, str]] = []
        self._once_expiry: list[tuple[float, str, str]] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._sweeping_brokers = 0

    def stream(self, room: str) -> RoomStream:
        """The room's stream, started under a new epoch if it has none."""
        stream = self.streams.get(room)
        if stream is None:
            stream = RoomStream(epoch=uuid.uuid4().hex[:12])
            self.streams[room] = stream
        return stream

    def touch_presence(self, room: str, sid: str, info: bytes) -> None:
        """Add or refresh ``sid``'s entry: it moves to the end, so a room's entries stay in the
        order of their last refresh (what lets :meth:`expire_presence` stop at the first live
        one)."""
        entries = self.presence.setdefault(room, {})
        entries.pop(sid, None)
        entries[sid] = (info, self.clock())

    def expire_presence(self, room: str) -> dict[str, tuple[bytes, float]]:
        """The room's entries once those not refreshed within ``presence_ttl`` are gone: the
        oldest first, up to the first live one (a join costs no scan of the room)."""
        entries = self.presence.get(room, {})
        horizon = self.clock() - self.settings.presence_ttl
        while entries:
            sid, (_, at) = next(iter(entries.items()))
            if at >= horizon:
                break
            del entries[sid]
        return entries

    def live_presence(self, room: str) -> dict[str, bytes]:
        """The room's presence entries refreshed within ``presence_ttl`` (expired ones go)."""
        return {sid: info for sid, (info, _) in self.expire_presence(room).items()}

    def value(self, key: str) -> bytes | None:
        """The unexpired value at ``key``, or None (an expired one goes)."""
        item = self.values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self.clock():
            del self.values[key]
            return None
        return value

    def set_value(self, key: str, value: bytes, expires: float | None) -> None:
        """Store ``value`` at ``key`` until ``expires`` (on the clock; None: for good)."""
        self.values[key] = (value, expires)
        if expires is not None:
            heapq.heappush(self._value_expiry, (expires, key))

    def set_once(self, room: str, key: str, seq: int, ttl: float | None) -> None:
        """Record that ``room`` published ``seq`` under the publish_once ``key``, for ``ttl``
        seconds (None: until the room's cap pushes it out)."""
        stream = self.stream(room)
        expires = None if ttl is None else self.clock() + ttl
        stream.once.pop(key, None)
        stream.once[key] = (seq, expires)
        if expires is not None:
            heapq.heappush(self._once_expiry, (expires, room, key))

    # --- the sweep --------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Take out of memory everything expired by now: values and publish_once keys past their
        ttl, presence entries not refreshed within ``presence_ttl`` (and rooms left without
        any). Returns how many entries went. Costs what expired, plus one look at each presence
        entry."""
        now = self.clock()
        removed = 0
        values = self._value_expiry
        while values and values[0][0] <= now:
            _, key = heapq.heappop(values)
            item = self.values.get(key)
            if item is not None and item[1] is not None and item[1] <= now:
                del self.values[key]
                removed += 1
        once = self._once_expiry
        while once and once[0][0] <= now:
            _, room, key = heapq.heappop(once)
            stream = self.streams.get(room)
            if stream is None:
                continue
            prior = stream.once.get(key)
            if prior is not None and prior[1] is not None and prior[1] <= now:
                del stream.once[key]
                removed += 1
        for room in list(self.presence):
            before = len(self.presence[room])
            removed += before - len(self.expire_presence(room))
            if not self.presence[room]:
                del self.presence[room]
        self._compact()
        return removed

    def _compact(self) -> None:
        """Rebuild an expiry queue that stale entries made much longer than what is live."""
        if len(self._value_expiry) > 2 * len(self.values) + _STALE_SLACK:
            self._value_expiry = [
                (expires, key) for key, (_, expires) in self.values.items() if expires is not None
            ]
            heapq.heapify(self._value_expiry)
        live_once = sum(len(stream.once) for stream in self.streams.values())
        if len(self._once_expiry) > 2 * live_once + _STALE_SLACK:
            self._once_expiry = [
                (expires, room, key)
                for room, stream in self.streams.items()
                for key, (_, expires) in stream.once.items()
                if expires is not None
            ]
            heapq.heapify(self._once_expiry)

    def start_sweeping(self) -> None:
        """A broker on this backend started: sweep every ``sweep_interval`` seconds while any
        started broker is left (call from the event loop)."""
        self._sweeping_brokers += 1
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop_sweeping(self) -> None:
        """A broker on this backend closed: the sweeping stops with the last one."""
        self._sweeping_brokers = max(0, self._sweeping_brokers - 1)
        sweeper = self._sweeper
        if self._sweeping_brokers == 0 and sweeper is not None:
            self._sweeper = None
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    @property
    def sweeping(self) -> bool:
        """Whether the periodic sweep runs (a broker on the backend is started)."""
        return self._sweeper is not None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.sweep()

    def sizes(self) -> dict[str, int]:
        """How much each part of the backend holds, entry by entry (keys, fields, members,
        items, events, presence entries, publish_once keys, queued expiries): what a test or a
        benchmark counts to show memory stays bounded."""
        return {
            "values": len(self.values),
            "hashes": len(self.hashes),
            "hash_fields": sum(len(fields) for fields in self.hashes.values()),
            "sets": len(self.sets),
            "set_members": sum(len(members) for members in self.sets.values()),
            "logs": len(self.logs),
            "log_items": sum(len(log) for log in self.logs.values()),
            "indexes": len(self.indexes),
            "index_entries": sum(len(index) for index in self.indexes.values()),
            "streams": len(self.streams),
            "events": sum(len(stream.events) for stream in self.streams.values()),
            "once_keys": sum(len(stream.once) for stream in self.streams.values()),
            "presence": sum(len(entries) for entries in self.presence.values()),
            "subscribers": sum(len(nodes) for nodes in self.subscribers.values()),
            "expiries": len(self._value_expiry) + len(self._once_expiry),
        }
