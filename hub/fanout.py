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
    A position may be of an epoch this node has not heard of yet (its join read the room after
    Redis came back empty, before this node's subscriber caught up): it waits for that epoch.
    """

    __slots__ = ("delivered", "epoch", "past", "room", "sessions", "waiting")

    def __init__(self, room: str) -> None:
        self.room = room
        self.sessions: dict[str, S] = {}
        # sid -> (position, epoch of the position, session)
        self.waiting: dict[str, tuple[int, str, S]] = {}
        self.delivered = 0
        self.epoch: str | None = None
        # Epochs fan-out has moved past (a few: epochs change only when history is lost).
        self.past: set[str] = set()

    def __len__(self) -> int:
        return len(self.sessions) + len(self.waiting)

    def __contains__(self, sid: object) -> bool:
        return sid in self.sessions or sid in self.waiting

    def behind(self, position: int, epoch: str) -> bool:
        """True when local fan-out already passed ``position`` of ``epoch`` (or that whole
        epoch): a join read at that position would miss events, so the caller must read again."""
        return (self.epoch == epoch and position < self.delivered) or epoch in self.past

    def add(self, sid: str, session: S, position: int, epoch: str) -> None:
        """Add a session that must receive the stored events after ``position``."""
        if self.epoch is None:
            self.epoch = epoch
        if self.epoch == epoch and position <= self.delivered:
            self.sessions[sid] = session
        else:
            self.waiting[sid] = (position, epoch, session)

    def remove(self, sid: str) -> S | None:
        """Remove a session; returns it, or None if it was not here."""
        session = self.sessions.pop(sid, None)
        if session is None:
            waiting = self.waiting.pop(sid, None)
            session = waiting[2] if waiting is not None else None
        return session

    def all(self) -> Iterable[S]:
        """Every session of the room, waiting ones included (for ephemeral events)."""
        yield from self.sessions.values()
        for _, _, session in self.waiting.values():
            yield session

    def recipients(self, seq: int) -> Iterable[S]:
        """The sessions that must receive stored event ``seq`` (called once per seq, ascending)."""
        if self.waiting:
            epoch = self.epoch
            ready = [
                sid
                for sid, (position, at, _) in self.waiting.items()
                if position < seq and at == epoch
            ]
            for sid in ready:
                self.sessions[sid] = self.waiting.pop(sid)[2]
        self.delivered = seq
        return self.sessions.values()

    def reset(self, epoch: str) -> list[S]:
        """The room's history was lost: seq restarts under ``epoch``; nobody waits any more for a
        position of another epoch. Returns the sessions that followed another epoch (they must
        be told); those whose join already read ``epoch`` keep waiting for their position."""
        if self.epoch is not None and self.epoch != epoch:
            if len(self.past) >= 16:
                self.past.clear()
            self.past.add(self.epoch)
        self.past.discard(epoch)
        self.epoch = epoch
        self.delivered = 0
        told = list(self.sessions.values())
        for sid, (_, at, session) in list(self.waiting.items()):
            if at != epoch:
                del self.waiting[sid]
                self.sessions[sid] = session
                told.append(session)
        return told
