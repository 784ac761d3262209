"""The state that the memory brokers and stores of one process share."""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub.broker import BrokerSettings, StoredEvent

if TYPE_CHECKING:
    from hub.broker import BrokerHandler


@dataclass(slots=True)
class RoomStream:
    """One room's stored events: its epoch, its last seq, the retained events (oldest first)."""

    epoch: str
    last_seq: int = 0
    events: collections.deque[StoredEvent] = field(default_factory=collections.deque)
    # publish_once keys -> (seq, expires at, monotonic), oldest first; at most ONCE_KEPT.
    once: dict[str, tuple[int, float | None]] = field(default_factory=dict)


class MemoryBackend:
    """Everything the memory nodes of one process share: the brokers' streams, topics and
    presence, the stores' key families, and what features keep here themselves."""

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self.settings = settings or BrokerSettings()
        self.streams: dict[str, RoomStream] = {}
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

    def stream(self, room: str) -> RoomStream:
        """The room's stream, started under a new epoch if it has none."""
        stream = self.streams.get(room)
        if stream is None:
            stream = RoomStream(epoch=uuid.uuid4().hex[:12])
            self.streams[room] = stream
        return stream

    def live_presence(self, room: str) -> dict[str, bytes]:
        """The room's presence entries refreshed within ``presence_ttl`` (expired ones go)."""
        entries = self.presence.get(room, {})
        horizon = time.monotonic() - self.settings.presence_ttl
        expired = [sid for sid, (_, at) in entries.items() if at < horizon]
        for sid in expired:
            del entries[sid]
        return {sid: info for sid, (info, _) in entries.items()}

    def value(self, key: str) -> bytes | None:
        """The unexpired value at ``key``, or None (an expired one goes)."""
        item = self.values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self.values[key]
            return None
        return value
