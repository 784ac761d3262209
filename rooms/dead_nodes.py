"""A node that died (``kill -9``, a lost host) leaves its rooms within seconds.

Its sessions never ran their leave: their presence entries would linger until their TTL ran out
(30 s) and nobody would ever be sent ``left`` for them. So every node keeps a heartbeat key
alive in the store (every :data:`BEAT_INTERVAL` s, for :data:`BEAT_TTL` s) and checks the
others' on the same timer. A node whose heartbeat expired is swept once, by whichever survivor
claims it first: its sessions' entries (their sids start with its id) leave every room's
presence, and the rooms' nodes are told as for any leave, so members get ``presence`` with the
new count and ``left``. A death shows within ``BEAT_TTL + BEAT_INTERVAL`` seconds, plus the
presence batch interval.

A heartbeat also expires while Redis is away (stopped, restarted from its append-only file):
then no node could beat, and every node would find every other one dead. So a missing heartbeat
counts only once this node has itself beaten without a break for :data:`BEAT_TTL` seconds: by
then every live node has beaten again too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from hub.auth import Identity
from hub.codec import unpack
from hub.dispatch import CommandContext
from hub.feature import FeatureContext

if TYPE_CHECKING:
    from rooms.feature import RoomsFeature

log = logging.getLogger(__name__)

BEAT_INTERVAL: Final = 1.0
BEAT_TTL: Final = 4.0
# The store set of the nodes that ever beat (a swept node leaves it).
NODES: Final = "nodes"
PAGE: Final = 500


def beat_key(node_id: str) -> str:
    """The store key a live node keeps alive."""
    return f"node-alive:{node_id}"


class DeadNodes:
    """Heartbeats of this node and the sweep of dead ones (see the module docstring)."""

    def __init__(self, rooms: RoomsFeature) -> None:
        self.rooms = rooms
        self.node = rooms.node
        self.beaten = False
        #: Seconds, monotonic (tests replace it to step time).
        self.clock: Callable[[], float] = time.monotonic
        # When this node's beats last succeeded, and since when they have without a break.
        self._last_beat: float | None = None
        self._steady_since: float | None = None

    def install(self, ctx: FeatureContext) -> None:
        """Beat and check on a timer, and beat before the first session's hello completes (a
        node that dies in its first second must be known to have lived)."""
        ctx.every(BEAT_INTERVAL, self.tick)
        ctx.on_hello(self._first_beat)

    async def _first_beat(self, ctx: CommandContext, identity: Identity) -> None:
        if not self.beaten:
            await self.beat()

    async def beat(self) -> None:
        """Keep this node's heartbeat alive for :data:`BEAT_TTL` seconds."""
        store = self.node.store
        me = self.node.node_id
        try:
            await store.put(beat_key(me), b"1", ttl=BEAT_TTL)
            await store.set_add(NODES, me)
        except BaseException:
            self._last_beat = None
            raise
        now = self.clock()
        if self._last_beat is None or now - self._last_beat > 2 * BEAT_INTERVAL:
            # The first beat, or one after a failed or late one: Redis may have been away in the
            # gap, long enough for a live node's heartbeat to run out before its next beat.
            self._steady_since = now
        self._last_beat = now
        self.beaten = True

    def steady(self) -> bool:
        """Whether this node has beaten without a break for :data:`BEAT_TTL` seconds: only then
        is another node's missing heartbeat a sign of its death (see the module docstring)."""
        since = self._steady_since
        return (
            self._last_beat is not None and since is not None and self.clock() - since >= BEAT_TTL
        )

    async def tick(self) -> None:
        """Beat, then sweep the nodes whose heartbeat expired (once this node is steady)."""
        await self.beat()
        if not self.steady():
            return
        store = self.node.store
        me = self.node.node_id
        for other in await store.set_members(NODES):
            if other == me or await store.get(beat_key(other)) is not None:
                continue
            # One survivor sweeps; a sweep that fails is taken over when its claim expires.
            if await store.set_if_absent(f"node-sweep:{other}", b"1", ttl=BEAT_TTL * 5) is None:
                await self.sweep(other)
                await store.set_remove(NODES, other)

    async def sweep(self, dead: str) -> int:
        """Take every session of node ``dead`` out of every room's presence, telling each room's
        nodes as a leave does; returns how many entries went."""
        prefix = f"{dead}."
        broker = self.node.broker
        swept = 0
        rooms: list[str] = []
        for room in await self.rooms.directory.all():
            after = ""
            gone: list[tuple[str, bytes]] = []
            while True:
                page = await broker.presence_page(room.id, after, PAGE)
                gone.extend((sid, info) for sid, info in page if sid.startswith(prefix))
                if len(page) < PAGE:
                    break
                after = page[-1][0]
            if not gone:
                continue
            await broker.presence_remove(room.id, [sid for sid, _ in gone])
            for sid, info in gone:
                entry = unpack(info)
                await self.rooms.announce_left(room.id, sid, entry["user"], entry["name"])
            swept += len(gone)
            rooms.append(room.id)
        log.warning("node %s is gone: %d presence entries swept", dead, swept)
        for hook in self.rooms.node_swept_hooks:
            try:
                await hook(dead, rooms)
            except Exception:
                log.exception("a hook after sweeping node %s failed", dead)
        return swept
