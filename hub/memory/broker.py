"""The in-process broker: one node's view of a :class:`~hub.memory.backend.MemoryBackend`.

Delivery is synchronous: ``publish`` hands the event to every subscribed node's handler before it
returns, so order per room is the order of ``publish`` calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping

from hub.broker import (
    BrokerCounters,
    BrokerHandler,
    History,
    StoredEvent,
    node_topic,
    presence_entries,
)
from hub.memory.backend import MemoryBackend

log = logging.getLogger(__name__)


# The publish_once keys a room keeps (Redis keeps each for its ttl instead).
ONCE_KEPT = 10_000


class MemoryBroker:
    """One node's view of a :class:`MemoryBackend`; implements :class:`hub.broker.Broker`."""

    def __init__(self, backend: MemoryBackend, node_id: str) -> None:
        self.backend = backend
        self.node_id = node_id
        self.counters = BrokerCounters()
        self._handler: BrokerHandler | None = None
        self._topics: set[str] = set()

    async def start(self, handler: BrokerHandler) -> None:
        """See :meth:`hub.broker.Broker.start`."""
        first = self._handler is None
        self._handler = handler
        await self.subscribe(node_topic(self.node_id))
        if first:
            self.backend.start_sweeping()

    async def close(self) -> None:
        """See :meth:`hub.broker.Broker.close`."""
        for topic in list(self._topics):
            await self.unsubscribe(topic)
        if self._handler is not None:
            self._handler = None
            await self.backend.stop_sweeping()

    async def persistence_warning(self) -> str | None:
        """None: the in-process broker lives and dies with its one process, as a trial hub
        expects (see :meth:`hub.broker.Broker.persistence_warning`)."""
        return None

    def ready(self) -> bool:
        """See :meth:`hub.broker.Broker.ready`."""
        return self._handler is not None

    async def subscribe(self, topic: str) -> None:
        """See :meth:`hub.broker.Broker.subscribe`."""
        if self._handler is None:
            raise RuntimeError("broker not started")
        self.backend.subscribers.setdefault(topic, {})[self.node_id] = self._handler
        self._topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        """See :meth:`hub.broker.Broker.unsubscribe`."""
        subscribers = self.backend.subscribers.get(topic)
        if subscribers is not None:
            subscribers.pop(self.node_id, None)
            if not subscribers:
                del self.backend.subscribers[topic]
        self._topics.discard(topic)

    async def publish_ephemeral(self, topic: str, payload: bytes) -> None:
        """See :meth:`hub.broker.Broker.publish_ephemeral`."""
        for handler in list(self.backend.subscribers.get(topic, {}).values()):
            _call(handler.receive_message, topic, payload)

    async def publish(self, room: str, body: bytes) -> StoredEvent:
        """See :meth:`hub.broker.Broker.publish`."""
        stream = self.backend.stream(room)
        stream.last_seq += 1
        event = StoredEvent(room, stream.last_seq, stream.epoch, body, self.node_id, time.time())
        stream.events.append(event)
        if len(stream.events) > self.backend.settings.history_size:
            stream.events.popleft()
        for handler in list(self.backend.subscribers.get(room, {}).values()):
            _call(handler.receive_event, event)
        return event

    async def publish_once(
        self, room: str, body: bytes, key: str, *, ttl: float | None = None
    ) -> tuple[int, bool]:
        """See :meth:`hub.broker.Broker.publish_once`."""
        stream = self.backend.stream(room)
        prior = stream.once.get(key)
        if prior is not None and (prior[1] is None or prior[1] > self.backend.clock()):
            return prior[0], False
        event = await self.publish(room, body)
        self.backend.set_once(room, key, event.seq, ttl)
        if len(stream.once) > ONCE_KEPT:
            # The in-process broker serves one small event: the oldest keys go first.
            del stream.once[next(iter(stream.once))]
        return event.seq, True

    async def history(self, room: str, after: int, limit: int | None = None) -> History:
        """See :meth:`hub.broker.Broker.history`."""
        stream = self.backend.stream(room)
        first = stream.events[0].seq if stream.events else stream.last_seq + 1
        start = max(after + 1, first) - first
        events = list(stream.events)[start:]
        if limit is not None:
            events = events[:limit]
        return History(stream.epoch, stream.last_seq, first, events)

    async def head(self, room: str) -> tuple[str, int]:
        """See :meth:`hub.broker.Broker.head`."""
        stream = self.backend.stream(room)
        return stream.epoch, stream.last_seq

    def position(self, room: str) -> tuple[str, int] | None:
        """See :meth:`hub.broker.Broker.position`: delivery is synchronous, so the room's head
        once subscribed (a room with no stream yet gets one, as :meth:`head` does)."""
        if room not in self._topics:
            return None
        stream = self.backend.stream(room)
        return stream.epoch, stream.last_seq

    async def presence_add(
        self, room: str, sid: str, info: bytes, *, announce: bytes | None = None
    ) -> int:
        """See :meth:`hub.broker.Broker.presence_add`."""
        return await self.presence_add_many(room, {sid: info}, announce=announce)

    async def presence_add_many(
        self, room: str, entries: Mapping[str, bytes], *, announce: bytes | None = None
    ) -> int:
        """See :meth:`hub.broker.Broker.presence_add_many`."""
        for sid, info in entries.items():
            self.backend.touch_presence(room, sid, info)
        count = len(self.backend.expire_presence(room))
        if announce is not None:
            await self.publish_ephemeral(room, announce)
        return count

    async def presence_remove(
        self, room: str, sids: Collection[str], *, announce: bytes | None = None
    ) -> int:
        """See :meth:`hub.broker.Broker.presence_remove`."""
        entries = self.backend.presence.get(room, {})
        for sid in sids:
            entries.pop(sid, None)
        count = len(self.backend.expire_presence(room))
        if announce is not None:
            await self.publish_ephemeral(room, announce)
        return count

    async def presence_refresh(self, room: str, sids: Collection[str]) -> list[str]:
        """See :meth:`hub.broker.Broker.presence_refresh`."""
        entries = self.backend.expire_presence(room)  # expired entries go, as on Redis
        missing = []
        for sid in sids:
            if sid in entries:
                self.backend.touch_presence(room, sid, entries[sid][0])
            else:
                missing.append(sid)
        return missing

    async def presence_count(self, room: str) -> int:
        """See :meth:`hub.broker.Broker.presence_count`."""
        return len(self.backend.expire_presence(room))

    async def presence_get(self, room: str, sid: str) -> bytes | None:
        """See :meth:`hub.broker.Broker.presence_get`."""
        entry = self.backend.presence.get(room, {}).get(sid)
        if entry is None or entry[1] < self.backend.clock() - self.backend.settings.presence_ttl:
            return None
        return entry[0]

    async def presence_page(self, room: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        """See :meth:`hub.broker.Broker.presence_page`."""
        return presence_entries(self.backend.live_presence(room), after, limit)


def _call(method: object, *args: object) -> None:
    # A failing handler must not stop delivery to the other nodes nor fail the publisher.
    try:
        method(*args)  # type: ignore[operator]
    except Exception:
        log.exception("broker handler failed")
