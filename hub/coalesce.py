"""Coalesced derived events: one event that many changes share (a hand queue, a vote count, a
poll's tally, a presence batch).

A change on any node is *announced* on the room's topic; every node that hears it marks the key
*owed*, and a send reads the key's current state once from the broker and delivers it, encoded
once, to this node's members of the room. So a burst of changes costs each node one read and
each member one event, never one per change.

Promises of :class:`CoalescedEvent`:

* After the last change of a key, every node following its room sends one event read after that
  change (a change that arrives while its key is being read gets one more send).
* At most one read per key is in flight on a node.
* A send that fails (the broker is down) leaves its key owed for the next flush; other keys are
  still sent, and the first error is raised once they were.
* At most :data:`MAX_OWED` keys are owed on a node at once. Past that, a change is dropped and
  counted in :attr:`CoalescedEvent.dropped`: members then see it with the key's next change.
  Keys name rooms' polls, questions and queues, so reaching the bound means something is wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hub.codec import EncodedEvent
from hub.session import Session

if TYPE_CHECKING:
    from hub.feature import FeatureContext

log = logging.getLogger(__name__)

MAX_OWED = 10_000

# (room, ids...): the room comes first, the rest names what changed in it.
Mark = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Derived:
    """The event to send for a key, and who of the room's members may get it (everyone when
    ``to`` is None)."""

    event: Mapping[str, Any]
    to: Callable[[Session], bool] | None = None


Reader = Callable[[Mark], Awaitable[Derived | None]]


class DuePolicy(Protocol):
    """When owed keys go out: :meth:`owe` records a change, :meth:`due` takes the keys to send
    now (each counted as sent)."""

    def owe(self, mark: Mark, now: float) -> None:
        """``mark`` changed at ``now``."""

    def due(self, now: float) -> list[Mark]:
        """The keys to send now."""

    def __len__(self) -> int:
        """How many keys are owed."""


class EveryFlush:
    """The default policy: every owed key goes out at the next flush."""

    def __init__(self) -> None:
        self._owed: set[Mark] = set()

    def owe(self, mark: Mark, now: float) -> None:
        """``mark`` goes out at the next flush."""
        self._owed.add(mark)

    def due(self, now: float) -> list[Mark]:
        """Every owed key."""
        due = list(self._owed)
        self._owed.clear()
        return due

    def __len__(self) -> int:
        return len(self._owed)


class CoalescedEvent:
    """One kind of coalesced derived event on one node (see the module docstring).

    ``kind`` names the internal signal that carries announced changes between nodes (None for
    an event whose feature announces its changes itself). ``read(mark)`` returns what to send
    for a key, or None to send nothing. Owed keys go out
    at each :meth:`flush` (which also announces the changes made here): every ``interval``
    seconds when one is given, else when the feature calls it. With ``immediate``, each change
    is sent as soon as it is heard instead.
    """

    def __init__(
        self,
        ctx: FeatureContext,
        kind: str | None,
        read: Reader,
        *,
        interval: float | None = None,
        immediate: bool = False,
        policy: DuePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = ctx.node
        self.kind = kind
        self.read = read
        self.immediate = immediate
        self.policy: DuePolicy = policy if policy is not None else EveryFlush()
        self.clock = clock
        self.dropped = 0
        # Changes made here, to announce at the next flush (periodic mode).
        self._local: set[Mark] = set()
        # key -> whether it changed again while its send was under way
        self._in_flight: dict[Mark, bool] = {}
        if kind is not None:
            ctx.on_signal(kind, self._heard)
        if interval is not None:
            ctx.every(interval, self.flush)

    # --- changes ------------------------------------------------------------------------------

    def changed_here(self, mark: Mark) -> None:
        """A change made on this node: announced to the room's nodes at the next flush (use
        :meth:`announce` to tell them at once)."""
        if len(self._local) >= MAX_OWED:
            self.dropped += 1
            return
        self._local.add(mark)

    async def announce(self, mark: Mark) -> None:
        """Tell the room's nodes (this one included) that ``mark`` changed, now."""
        if self.kind is None:
            raise RuntimeError("an event without a signal kind is announced by its feature")
        await self.node.signal(mark[0], self.kind, list(mark))

    def changed(self, mark: Mark) -> None:
        """``mark`` changed (as heard from any node): owed on this node."""
        if self.immediate:
            self._send_soon(mark)
        elif len(self.policy) >= MAX_OWED:
            self.dropped += 1
        else:
            self.policy.owe(mark, self.clock())

    def _heard(self, data: Any) -> None:
        self.changed(tuple(str(part) for part in data))

    # --- sending ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Announce this node's changes, then send every owed key the policy says is due."""
        first: BaseException | None = None
        for mark in _take(self._local):
            try:
                await self.announce(mark)
            except Exception as error:
                self._local.add(mark)
                first = first or error
        for mark in self.policy.due(self.clock()):
            try:
                await self.send(mark)
            except Exception as error:
                self.policy.owe(mark, self.clock())
                first = first or error
        if first is not None:
            raise first

    async def send(self, mark: Mark) -> None:
        """Read ``mark``'s event and deliver it to this node's members of its room (nothing is
        read when it has none here). A key already being sent is sent once more after that."""
        if mark in self._in_flight:
            self._in_flight[mark] = True
            return
        self._in_flight[mark] = False
        try:
            while True:
                self._in_flight[mark] = False
                await self._send_once(mark)
                if not self._in_flight[mark]:
                    return
        finally:
            del self._in_flight[mark]

    async def _send_once(self, mark: Mark) -> None:
        if not self.node.followers(mark[0]):
            return
        derived = await self.read(mark)
        if derived is None:
            return
        encoded = EncodedEvent(derived.event)
        for session in self.node.followers(mark[0]):
            if derived.to is None or derived.to(session):
                session.deliver(encoded)

    def _send_soon(self, mark: Mark) -> None:
        if mark in self._in_flight:
            self._in_flight[mark] = True
            return
        self.node.spawn(self._send_logged(mark))

    async def _send_logged(self, mark: Mark) -> None:
        try:
            await self.send(mark)
        except Exception:
            log.warning("%s for %s not sent", self.kind, mark, exc_info=True)


def _take(marks: set[Mark]) -> Iterable[Mark]:
    taken = list(marks)
    marks.clear()
    return taken
