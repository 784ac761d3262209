"""Which local sessions follow a room's stream, and from which seq each receives stored events.

Pure bookkeeping, no I/O. A session joins at a position (the room's seq when its join was read);
it must receive exactly the stored events after that position. Events still in flight at join time
(seq <= position) must not reach it, and nothing after it may be skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

S = TypeVar("S")


class StreamMembers(Generic[S]):
    """The local sessions of one room on this node, keyed by sid.

    ``delivered`` is the last seq fanned out here. A session that joined at a position ahead of
    ``delivered`` waits until the fan-out passes its position, then receives every later event.
    """

    __slots__ = ("delivered", "epoch", "room", "sessions", "waiting")

    def __init__(self, room: str) -> None:
        self.room = room
        self.sessions: dict[str, S] = {}
        self.waiting: dict[str, tuple[int, S]] = {}
        self.delivered = 0
        self.epoch: str | None = None

    def __len__(self) -> int:
        return len(self.sessions) + len(self.waiting)

    def __contains__(self, sid: object) -> bool:
        return sid in self.sessions or sid in self.waiting

    def behind(self, position: int, epoch: str) -> bool:
        """True when local fan-out already passed ``position`` of ``epoch``: a join read at that
        position would miss events, so the caller must read again."""
        return self.epoch == epoch and position < self.delivered

    def add(self, sid: str, session: S, position: int, epoch: str) -> None:
        """Add a session that must receive the stored events after ``position``."""
        if self.epoch is None:
            self.epoch = epoch
        if self.epoch == epoch and position <= self.delivered:
            self.sessions[sid] = session
        else:
            self.waiting[sid] = (position, session)

    def remove(self, sid: str) -> S | None:
        """Remove a session; returns it, or None if it was not here."""
        session = self.sessions.pop(sid, None)
        if session is None:
            waiting = self.waiting.pop(sid, None)
            session = waiting[1] if waiting is not None else None
        return session

    def all(self) -> Iterable[S]:
        """Every session of the room, waiting ones included (for ephemeral events)."""
        yield from self.sessions.values()
        for _, session in self.waiting.values():
            yield session

    def recipients(self, seq: int) -> Iterable[S]:
        """The sessions that must receive stored event ``seq`` (called once per seq, ascending)."""
        if self.waiting:
            ready = [sid for sid, (position, _) in self.waiting.items() if position < seq]
            for sid in ready:
                self.sessions[sid] = self.waiting.pop(sid)[1]
        self.delivered = seq
        return self.sessions.values()

    def reset(self, epoch: str) -> None:
        """The room's history was lost: seq restarts under ``epoch``; nobody waits any more for a
        position of the old epoch."""
        self.epoch = epoch
        self.delivered = 0
        for sid, (_, session) in list(self.waiting.items()):
            self.sessions[sid] = session
        self.waiting.clear()
