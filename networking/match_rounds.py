"""The match queue's rounds: one node at a time (the holder of a lease in the store) pairs the
people waiting, every :data:`ROUND_INTERVAL` seconds.

A round reads the queue (a store hash, see :mod:`networking.match_store`), leaves out the people
of nodes whose heartbeat is gone (their sessions are dead: the sweep of that node takes them out
of the queue), plans groups with the pure rules (:mod:`networking.matching`) and claims each
group with ``hash_take``: all its members leave the queue in one atomic step, or none does. So a
person is never in two groups even if two nodes ever run rounds at once (a lease that expired
under a slow holder), and someone who left meanwhile makes the claim fail while the others stay
queued for the next round. A claimed group's meeting is opened by
:class:`~networking.match_meeting_ops.Meetings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Final

from hub.node import Node
from networking import match_store as keys
from networking.match_meeting_ops import Meetings
from networking.match_store import QueueEntry
from networking.matching import plan_round
from rooms.dead_nodes import beat_key
from rooms.event_state import EventState

log = logging.getLogger(__name__)

ROUND_INTERVAL: Final = 0.25
# The matcher's lease (seconds): another node takes over this long after its holder stopped.
LEASE_TTL: Final = 3.0
# The users whose "met" sets the matcher keeps in memory (the oldest read go first beyond, and
# are read again when needed).
MET_CACHED: Final = 20_000


class Matcher:
    """This node's share of the rounds: it runs them while it holds the lease (see the module
    docstring)."""

    def __init__(self, node: Node, event: EventState, meetings: Meetings) -> None:
        self.node = node
        self.store = node.store
        self.event = event
        self.meetings = meetings
        self._met: OrderedDict[str, set[str]] = OrderedDict()
        self._holding = False
        #: Epoch seconds (tests replace it to step time).
        self.clock = time.time

    @property
    def holding(self) -> bool:
        """Whether this node held the lease at its last round."""
        return self._holding

    async def _hold_lease(self) -> bool:
        me = self.node.node_id.encode()
        holder = await self.store.set_if_absent(keys.LEASE, me, ttl=LEASE_TTL)
        if holder is None:
            if not self._holding:
                # Another node may have paired people since this one last ran rounds.
                self._met.clear()
            self._holding = True
        elif holder == me:
            await self.store.put(keys.LEASE, me, ttl=LEASE_TTL)
        else:
            self._holding = False
        return self._holding

    async def round(self) -> None:
        """One round, on the lease holder only: pair whoever can be paired now."""
        if self.event.is_closed or not await self._hold_lease():
            return
        raw = await self.store.hash_get_all(keys.QUEUE)
        await self.store.put(keys.SIZE, str(len(raw)).encode())
        if len(raw) < 2:
            return
        entries = sorted(
            (QueueEntry.unpack(user, value) for user, value in raw.items()),
            key=lambda entry: (entry.since, entry.user),
        )[: keys.MAX_QUEUE]
        alive = await self._alive_nodes({entry.node for entry in entries})
        ready = [entry for entry in entries if entry.node in alive]
        met = await self._met_of([entry.user for entry in ready])
        groups = plan_round([entry.waiting() for entry in ready], met, self.clock())
        by_user = {entry.user: entry for entry in ready}
        # One failed claim must not end the round while the others still run.
        claims = [self.claim([by_user[user] for user in group]) for group in groups]
        for failure in await asyncio.gather(*claims, return_exceptions=True):
            if isinstance(failure, Exception):
                log.warning("a claim failed: %r", failure)

    async def _alive_nodes(self, nodes: set[str]) -> set[str]:
        """The nodes among ``nodes`` whose heartbeat is there (their sessions may be paired;
        a dead node's wait for the sweep that removes them)."""
        alive = {self.node.node_id}
        for other in nodes - alive:
            if await self.store.get(beat_key(other)) is not None:
                alive.add(other)
        return alive

    async def _met_of(self, users: list[str]) -> dict[str, set[str]]:
        met: dict[str, set[str]] = {}
        for user in users:
            known = self._met.get(user)
            if known is None:
                known = await self.store.set_members(keys.met_key(user))
                self._met[user] = known
                while len(self._met) > MET_CACHED:
                    self._met.popitem(last=False)
            met[user] = known
        return met

    async def claim(self, group: list[QueueEntry]) -> None:
        """Take ``group`` out of the queue (all or none), check it again against the store,
        open its meeting and tell them. The checks after the take cover what this node's view
        may have missed: a member who joined a meeting between the take of another group and
        its meeting's opening (they came back to the queue in that gap), and pairs another
        matcher made while two nodes both thought they held the lease."""
        users = [entry.user for entry in group]
        if await self.store.hash_take(keys.QUEUE, users) is None:
            return  # someone left meanwhile: the others wait for the next round
        try:
            busy = {
                entry.user
                for entry in group
                if await self.meetings.running_meeting(entry.user) is not None
            }
            if busy or await self._met_before(group):
                # The busy ones are in a meeting already; the others wait for the next round.
                await self._requeue([entry for entry in group if entry.user not in busy])
                return
            meeting = await self.meetings.open(group)
            await self._record_met(group)
        except Exception:
            # Nobody was told: they wait for the next round as if nothing happened.
            log.exception("meeting of %s not opened: back to the queue", users)
            await self._requeue(group)
            return
        await self.meetings.announce(meeting)

    async def _met_before(self, group: list[QueueEntry]) -> bool:
        """Whether two members of ``group`` met already, as the store says (another matcher's
        pairs included); this node's memory learns what it finds."""
        found = False
        for a in group:
            for b in group:
                if a.user < b.user and await self.store.set_contains(keys.met_key(a.user), b.user):
                    self._met.setdefault(a.user, set()).add(b.user)
                    self._met.setdefault(b.user, set()).add(a.user)
                    found = True
        return found

    async def _requeue(self, group: list[QueueEntry]) -> None:
        """Put people back in the queue at their old place (unless they joined again)."""
        for entry in group:
            with contextlib.suppress(Exception):  # they press again if this fails
                await self.store.hash_set(keys.QUEUE, entry.user, entry.pack(), only_if_absent=True)

    async def _record_met(self, group: list[QueueEntry]) -> None:
        for a in group:
            for b in group:
                if a.user != b.user:
                    await self.store.set_add(keys.met_key(a.user), b.user)
                    self._met.setdefault(a.user, set()).add(b.user)
