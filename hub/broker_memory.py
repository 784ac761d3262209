"""The in-process broker: the embedded default (``memory://``), one process, no Redis.

Several :class:`MemoryBroker` instances may share one :class:`MemoryBackend` to act as several
nodes in one process (tests do). Delivery is synchronous: ``publish`` hands the event to every
subscribed node's handler before it returns, so order per room is the order of ``publish`` calls.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from hub.broker import (
    BrokerHandler,
    BrokerSettings,
    History,
    StoredEvent,
    node_topic,
    presence_entries,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _RoomStream:
    epoch: str
    last_seq: int = 0
    events: collections.deque[StoredEvent] = field(default_factory=collections.deque)


class MemoryBackend:
    """The state shared by every memory broker of one process: streams, presence, keys, topics."""

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self.settings = settings or BrokerSettings()
        self.streams: dict[str, _RoomStream] = {}
        self.subscribers: dict[str, dict[str, BrokerHandler]] = {}
        # room -> sid -> (info, refreshed at, monotonic)
        self.presence: dict[str, dict[str, tuple[bytes, float]]] = {}
        self.values: dict[str, tuple[bytes, float | None]] = {}
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.sets: dict[str, set[str]] = {}
        self.logs: dict[str, dict[int, bytes]] = {}
        # key -> member -> (score, value)
        self.indexes: dict[str, dict[str, tuple[int, bytes]]] = {}
        #: What features keep here themselves, one entry per feature (the polls' ballots).
        self.shared: dict[str, object] = {}

    def stream(self, room: str) -> _RoomStream:
        stream = self.streams.get(room)
        if stream is None:
            stream = _RoomStream(epoch=uuid.uuid4().hex[:12])
            self.streams[room] = stream
        return stream

    def live_presence(self, room: str) -> dict[str, bytes]:
        entries = self.presence.get(room, {})
        horizon = time.monotonic() - self.settings.presence_ttl
        expired = [sid for sid, (_, at) in entries.items() if at < horizon]
        for sid in expired:
            del entries[sid]
        return {sid: info for sid, (info, _) in entries.items()}

    def value(self, key: str) -> bytes | None:
        item = self.values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self.values[key]
            return None
        return value


class MemoryBroker:
    """One node's view of a :class:`MemoryBackend`; implements :class:`hub.broker.Broker`."""

    def __init__(self, backend: MemoryBackend, node_id: str) -> None:
        self.backend = backend
        self.node_id = node_id
        self._handler: BrokerHandler | None = None
        self._topics: set[str] = set()

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        await self.subscribe(node_topic(self.node_id))

    async def close(self) -> None:
        for topic in list(self._topics):
            await self.unsubscribe(topic)
        self._handler = None

    def ready(self) -> bool:
        return self._handler is not None

    async def subscribe(self, topic: str) -> None:
        if self._handler is None:
            raise RuntimeError("broker not started")
        self.backend.subscribers.setdefault(topic, {})[self.node_id] = self._handler
        self._topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        subscribers = self.backend.subscribers.get(topic)
        if subscribers is not None:
            subscribers.pop(self.node_id, None)
            if not subscribers:
                del self.backend.subscribers[topic]
        self._topics.discard(topic)

    async def publish_ephemeral(self, topic: str, payload: bytes) -> None:
        for handler in list(self.backend.subscribers.get(topic, {}).values()):
            _call(handler.receive_message, topic, payload)

    async def publish(self, room: str, body: bytes) -> StoredEvent:
        stream = self.backend.stream(room)
        stream.last_seq += 1
        event = StoredEvent(room, stream.last_seq, stream.epoch, body, self.node_id, time.time())
        stream.events.append(event)
        if len(stream.events) > self.backend.settings.history_size:
            stream.events.popleft()
        for handler in list(self.backend.subscribers.get(room, {}).values()):
            _call(handler.receive_event, event)
        return event

    async def history(self, room: str, after: int, limit: int | None = None) -> History:
        stream = self.backend.stream(room)
        first = stream.events[0].seq if stream.events else stream.last_seq + 1
        start = max(after + 1, first) - first
        events = list(stream.events)[start:]
        if limit is not None:
            events = events[:limit]
        return History(stream.epoch, stream.last_seq, first, events)

    async def head(self, room: str) -> tuple[str, int]:
        stream = self.backend.stream(room)
        return stream.epoch, stream.last_seq

    async def presence_add(self, room: str, sid: str, info: bytes) -> int:
        self.backend.presence.setdefault(room, {})[sid] = (info, time.monotonic())
        return len(self.backend.live_presence(room))

    async def presence_remove(self, room: str, sids: Collection[str]) -> int:
        entries = self.backend.presence.get(room, {})
        for sid in sids:
            entries.pop(sid, None)
        return len(self.backend.live_presence(room))

    async def presence_refresh(self, room: str, sids: Collection[str]) -> None:
        entries = self.backend.presence.get(room, {})
        now = time.monotonic()
        for sid in sids:
            if sid in entries:
                entries[sid] = (entries[sid][0], now)

    async def presence_count(self, room: str) -> int:
        return len(self.backend.live_presence(room))

    async def presence_get(self, room: str, sid: str) -> bytes | None:
        entry = self.backend.presence.get(room, {}).get(sid)
        if entry is None or entry[1] < time.monotonic() - self.backend.settings.presence_ttl:
            return None
        return entry[0]

    async def presence_page(self, room: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        return presence_entries(self.backend.live_presence(room), after, limit)

    async def incr(self, key: str, amount: int = 1) -> int:
        current = self.backend.value(key)
        value = (int(current) if current is not None else 0) + amount
        expires = self.backend.values.get(key, (b"", None))[1]
        self.backend.values[key] = (str(value).encode(), expires)
        return value

    async def get(self, key: str) -> bytes | None:
        return self.backend.value(key)

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        expires = time.monotonic() + ttl if ttl is not None else None
        self.backend.values[key] = (value, expires)

    async def set_if_absent(
        self, key: str, value: bytes, *, ttl: float | None = None
    ) -> bytes | None:
        existing = self.backend.value(key)
        if existing is not None:
            return existing
        await self.put(key, value, ttl=ttl)
        return None

    async def delete(self, key: str) -> None:
        self.backend.values.pop(key, None)
        self.backend.hashes.pop(key, None)
        self.backend.sets.pop(key, None)
        self.backend.logs.pop(key, None)
        self.backend.indexes.pop(key, None)

    async def hash_set(
        self, key: str, field: str, value: bytes, *, only_if_absent: bool = False
    ) -> bool:
        fields = self.backend.hashes.setdefault(key, {})
        if only_if_absent and field in fields:
            return False
        fields[field] = value
        return True

    async def hash_get(self, key: str, field: str) -> bytes | None:
        return self.backend.hashes.get(key, {}).get(field)

    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        return dict(self.backend.hashes.get(key, {}))

    async def hash_delete(self, key: str, field: str) -> bool:
        return self.backend.hashes.get(key, {}).pop(field, None) is not None

    async def log_append(self, key: str, score: int, item: bytes, *, max_len: int) -> None:
        log = self.backend.logs.setdefault(key, {})
        log[score] = item
        if len(log) > max_len:
            for old in sorted(log)[: len(log) - max_len]:
                del log[old]

    async def log_range(self, key: str, before: int | None, limit: int) -> list[tuple[int, bytes]]:
        log = self.backend.logs.get(key, {})
        scores = sorted(s for s in log if before is None or s < before)
        return [(score, log[score]) for score in scores[-limit:]] if limit > 0 else []

    async def log_remove(self, key: str, score: int) -> bool:
        return self.backend.logs.get(key, {}).pop(score, None) is not None

    async def index_put(
        self, key: str, member: str, score: int, value: bytes, *, max_len: int
    ) -> bool:
        index = self.backend.indexes.setdefault(key, {})
        current = index.get(member)
        if current is not None and current[0] > score:
            return False
        index[member] = (score, value)
        if len(index) > max_len:
            lowest = sorted(index, key=lambda name: (index[name][0], name))
            for name in lowest[: len(index) - max_len]:
                del index[name]
        return True

    async def index_get(self, key: str, member: str) -> tuple[int, bytes] | None:
        return self.backend.indexes.get(key, {}).get(member)

    async def index_newest(self, key: str, limit: int) -> list[tuple[str, int, bytes]]:
        index = self.backend.indexes.get(key, {})
        ranked = sorted(index, key=lambda name: (index[name][0], name), reverse=True)
        return [(name, *index[name]) for name in ranked[: max(limit, 0)]]

    async def set_add(self, key: str, member: str) -> bool:
        members = self.backend.sets.setdefault(key, set())
        if member in members:
            return False
        members.add(member)
        return True

    async def set_remove(self, key: str, member: str) -> bool:
        members = self.backend.sets.get(key)
        if members is None or member not in members:
            return False
        members.discard(member)
        return True

    async def set_members(self, key: str) -> set[str]:
        return set(self.backend.sets.get(key, set()))

    async def set_contains(self, key: str, member: str) -> bool:
        return member in self.backend.sets.get(key, set())


def _call(method: object, *args: object) -> None:
    # A failing handler must not stop delivery to the other nodes nor fail the publisher.
    try:
        method(*args)  # type: ignore[operator]
    except Exception:
        log.exception("broker handler failed")
