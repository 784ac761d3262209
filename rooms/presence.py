"""Presence batching: joins and leaves of a room go out at most once per interval, as one event.

Pure and clock-injected. The joined/left lists are sent only while the room is small; the count
always is. A session that joins and leaves inside one batch appears in neither list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rooms.wire import PresenceChange, PresenceEvent

SMALL_ROOM = 200


@dataclass(slots=True)
class _Pending:
    joined: dict[str, PresenceChange] = field(default_factory=dict)
    left: dict[str, PresenceChange] = field(default_factory=dict)
    changed: bool = False


@dataclass(frozen=True, slots=True)
class PresenceBatch:
    """One room's changes since its last batch."""

    room: str
    joined: list[PresenceChange]
    left: list[PresenceChange]

    def event(self, count: int, small_room: int = SMALL_ROOM) -> PresenceEvent:
        """The ``presence`` event for this batch, given the room's member count now."""
        event: PresenceEvent = {"ev": "presence", "room": self.room, "count": count}
        if count <= small_room:
            if self.joined:
                event["joined"] = self.joined
            if self.left:
                event["left"] = self.left
        return event


class PresenceBatcher:
    """Collects presence changes per room; :meth:`due` releases each room at most once per
    ``interval`` seconds. Bounded by the number of rooms with members: a room's pending lists
    stop growing at ``max_listed`` entries each (the count is still sent), since a room with more
    changes than that in one interval is too large for lists anyway."""

    def __init__(self, interval: float = 1.0, max_listed: int = SMALL_ROOM) -> None:
        self.interval = interval
        self.max_listed = max_listed
        self._pending: dict[str, _Pending] = {}
        self._last_sent: dict[str, float] = {}

    def joined(self, room: str, entry: PresenceChange) -> None:
        """A session (``entry["sid"]``) joined ``room``."""
        pending = self._pending.setdefault(room, _Pending())
        pending.changed = True
        sid = entry["sid"]
        if pending.left.pop(sid, None) is None and len(pending.joined) < self.max_listed:
            pending.joined[sid] = entry

    def left(self, room: str, entry: PresenceChange) -> None:
        """A session (``entry["sid"]``) left ``room``."""
        pending = self._pending.setdefault(room, _Pending())
        pending.changed = True
        sid = entry["sid"]
        if pending.joined.pop(sid, None) is None and len(pending.left) < self.max_listed:
            pending.left[sid] = entry

    def due(self, now: float) -> list[PresenceBatch]:
        """The batches to send now: rooms with changes whose last batch is ``interval`` old."""
        batches = []
        for room, pending in list(self._pending.items()):
            if now - self._last_sent.get(room, float("-inf")) < self.interval:
                continue
            del self._pending[room]
            if not pending.changed:
                continue
            self._last_sent[room] = now
            batches.append(
                PresenceBatch(room, list(pending.joined.values()), list(pending.left.values()))
            )
        # Forget rooms that have been quiet for a while, so the map stays bounded.
        for room in [r for r, t in self._last_sent.items() if now - t > 10 * self.interval]:
            if room not in self._pending:
                del self._last_sent[room]
        return batches

    def forget(self, room: str) -> None:
        """Drop everything about ``room`` (its last local member left)."""
        self._pending.pop(room, None)
        self._last_sent.pop(room, None)


class PresenceDue:
    """The :class:`~hub.coalesce.DuePolicy` of ``presence`` events: a room is due when its
    batcher releases a batch; the batch waits in :meth:`take` for the send that reads the count.
    A send that failed gives its batch back (:meth:`owe`), merged with what came meanwhile; a
    batch nobody took (the room has no members here any more) is dropped at the next release."""

    def __init__(self, batcher: PresenceBatcher) -> None:
        self.batcher = batcher
        self._waiting: dict[str, PresenceBatch] = {}
        self._handed: dict[str, PresenceBatch] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def owe(self, mark: tuple[str, ...], now: float) -> None:
        """Give back the batch of a room whose send failed."""
        batch = self._handed.pop(mark[0], None)
        if batch is not None:
            self._waiting[mark[0]] = _merged(batch, self._waiting.get(mark[0]))

    def due(self, now: float) -> list[tuple[str, ...]]:
        """The rooms with a batch to send now."""
        self._handed.clear()
        for batch in self.batcher.due(now):
            self._waiting[batch.room] = _merged(self._waiting.pop(batch.room, None), batch)
        self._handed, self._waiting = self._waiting, {}
        return [(room,) for room in self._handed]

    def take(self, room: str) -> PresenceBatch | None:
        """The batch handed out for ``room`` (once)."""
        return self._handed.pop(room, None)


def _merged(first: PresenceBatch | None, then: PresenceBatch | None) -> PresenceBatch:
    if first is None or then is None:
        batch = first or then
        assert batch is not None
        return batch
    return PresenceBatch(first.room, first.joined + then.joined, first.left + then.left)
