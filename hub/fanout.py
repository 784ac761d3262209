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

    __slots__ = ("delivered", "epoch", "foreign", "known", "past", "room", "sessions", "waiting")

    def __init__(self, room: str) -> None:
        self.room = room
        self.sessions: dict[str, S] = {}
        # sid -> (position, epoch of the position, session)
        self.waiting: dict[str, tuple[int, str, S]] = {}
        self.delivered = 0
        self.epoch: str | None = None
        # The newest position of ``epoch`` read or fanned out here (positions only grow within
        # an epoch), and how many waiting sessions wait for another epoch.
        self.known = 0
        self.foreign = 0
        # Epochs fan-out has moved past (a few: epochs change only when history is lost).
        self.past: set[str] = set()

    def __len__(self) -> int:
        return len(self.sessions) + len(self.waiting)

    def __contains__(self, sid: object) -> bool:
        return sid in self.sessions or sid in self.waiting

    def behind(self, position: int, epoch: str) -> bool:
        """True when local fan-out already passed ``position`` of ``epoch`` (or that whole
        epoch): a join read at that position would miss events, so the caller must read again.
        Fan-out that ran before any session joined knows no epoch: past ``position`` it counts
        as passing it."""
        return (self.epoch in (epoch, None) and position < self.delivered) or epoch in self.past

    def known_position(self) -> tuple[int, str] | None:
        """A position a new session may join at without reading the room again: the newest
        one known here (fanned out, or read by a join), with its epoch. None when nothing is
        known yet, or while a join waits for an epoch fan-out has not reached (the room's
        history may have been lost: only a fresh read tells)."""
        if self.epoch is None or self.foreign:
            return None
        return self.known, self.epoch

    def add(self, sid: str, session: S, position: int, epoch: str) -> None:
        """Add a session that must receive the stored events after ``position``."""
        if self.epoch is None:
            self.epoch = epoch
        if self.epoch == epoch:
            self.known = max(self.known, position)
            if position <= self.delivered:
                self.sessions[sid] = session
                return
        else:
            self.foreign += 1
        self.waiting[sid] = (position, epoch, session)

    def remove(self, sid: str) -> S | None:
        """Remove a session; returns it, or None if it was not here."""
        session = self.sessions.pop(sid, None)
        if session is None:
            waiting = self.waiting.pop(sid, None)
            if waiting is None:
                return None
            if waiting[1] != self.epoch:
                self.foreign -= 1
            session = waiting[2]
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
        self.known = max(self.known, seq)
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
        self.known = 0
        self.foreign = 0
        told = list(self.sessions.values())
        for sid, (position, at, session) in list(self.waiting.items()):
            if at != epoch:
                del self.waiting[sid]
                self.sessions[sid] = session
                told.append(session)
            else:
                self.known = max(self.known, position)
        return told
