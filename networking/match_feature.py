""" "Meet someone": the match queue and the meetings it makes, as one feature.

Commands: ``match.join {interests?}``, ``match.leave``, ``match.status`` (here: the queue),
``match.extend {room}``, ``match.end {room}``, ``match.share {room, card}`` (the meetings,
:mod:`networking.match_meeting_ops`). Events, to the user (all their sessions): ``match.found``,
``match.left``, ``match.ended``, ``match.member_left``, ``match.extend_requested``,
``match.extended``, ``match.cards`` (``docs/protocol.md``: Meet someone). The pairing rounds
are :mod:`networking.match_rounds`, their rules :mod:`networking.matching`, the store's keys
:mod:`networking.match_store`.

A person leaves the queue with ``match.leave``, when the session that joined ends, when its
node dies (the survivor that sweeps it removes its entries; rounds skip them meanwhile), or when
the event closes (then every running meeting ends too).

Bounds: the queue refuses ``match.join`` once it held :data:`~networking.match_store.MAX_QUEUE`
people at the last round (``conflict``), and a round looks at the oldest that many only; a
person has one entry. In memory, the matcher keeps the "met" sets of at most
:data:`~networking.match_rounds.MET_CACHED` users and the sweep the ends of at most
:data:`~networking.match_meeting_ops.ENDS_CACHED` meetings (the oldest go first, read again when
needed); each node runs one timer per meeting it made, until that meeting ends. In the store, a
meeting's keys go once its cards window is over; "met" sets last for the event (one per person
who met someone, as long as the meetings they had).
"""

from __future__ import annotations

import time
from typing import Any, Final

from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import FeatureContext, each_entrant
from hub.node import Node
from hub.session import Session
from hub.wire import EmptyReply
from networking import match_store as keys
from networking.match_meeting_ops import OUT_SIGNAL, Meetings
from networking.match_rounds import ROUND_INTERVAL, Matcher
from networking.match_store import QueueEntry
from networking.match_wire import (
    MatchJoinReply,
    MatchLeftEvent,
    MatchStatusReply,
    MeetingView,
)
from networking.matching import parse_interests
from rooms.event_state import EventClosed
from rooms.feature import RoomsFeature

# How often the lease holder looks for meetings whose time is up (seconds).
SWEEP_INTERVAL: Final = 1.0


class MatchFeature:
    """The match queue of one node: its commands, its share of the rounds (:attr:`matcher`)
    and the meetings (:attr:`meetings`)."""

    def __init__(self, node: Node, rooms: RoomsFeature) -> None:
        self.node = node
        self.rooms = rooms
        self.store = node.store
        self.meetings = Meetings(node, rooms)
        self.matcher = Matcher(node, rooms.event, self.meetings)
        #: Epoch seconds (tests replace it to step time).
        self.clock = time.time

    def install(self, ctx: FeatureContext) -> None:
        """Register the ``match.*`` commands, the rounds and the sweep, the meetings' join check
        and snapshot part, and the hooks that take people out of the queue (a closed session,
        a dead node, the event's end)."""
        meetings = self.meetings
        ctx.command("match.join", self.join)
        ctx.command("match.leave", self.leave)
        ctx.command("match.status", self.status)
        ctx.command("match.extend", meetings.extend)
        ctx.command("match.end", meetings.end)
        ctx.command("match.share", meetings.share)
        ctx.on_join_check(each_entrant(meetings.check_join))
        ctx.on_snapshot(meetings.snapshot)
        ctx.on_signal(OUT_SIGNAL, meetings.out_signal)
        ctx.on_session_closed(self._session_closed)
        ctx.every(ROUND_INTERVAL, self.matcher.round)
        ctx.every(SWEEP_INTERVAL, self.sweep)
        self.rooms.on_node_swept(self._node_swept)
        self.rooms.event.on_close(self._event_closed)

    async def join(self, ctx: CommandContext, cmd: dict[str, Any]) -> MatchJoinReply:
        """Wait in the queue (``interests``: optional, see
        :func:`networking.matching.parse_interests`) -> ``{interests, waiting}``. ``closed``
        once the event is over; ``conflict`` while the user waits from another session, is in
        a running meeting, or the queue is full. Joining again from the same session changes
        nothing (the reply has the interests kept)."""
        interests = parse_interests(cmd.get("interests"))
        self.rooms.event.require_open("the match queue is")
        identity = ctx.identity
        user = identity.user_id
        if await self.meetings.running_meeting(user) is not None:
            raise HubError("conflict", "you are in a meeting already")
        raw_size = await self.store.get(keys.SIZE)
        waiting = int(raw_size) if raw_size is not None else 0
        if waiting >= keys.MAX_QUEUE:
            raise HubError("conflict", "the queue is full: try again in a minute")
        entry = QueueEntry(
            user=user,
            sid=ctx.session.sid,
            node=self.node.node_id,
            name=identity.name,
            interests=tuple(interests),
            since=round(self.clock(), 3),
        )
        if not await self.store.hash_set(keys.QUEUE, user, entry.pack(), only_if_absent=True):
            raw = await self.store.hash_get(keys.QUEUE, user)
            if raw is None:
                # Claimed for a group in between: the match.found is on its way.
                raise HubError("conflict", "you were just paired")
            earlier = QueueEntry.unpack(user, raw)
            if earlier.sid != ctx.session.sid:
                raise HubError("conflict", "you are waiting in the queue from another session")
            # The same session again (a retry): its place and interests stand. Rewriting the
            # entry could put back someone a round claimed meanwhile.
            return {"interests": list(earlier.interests), "waiting": waiting}
        return {"interests": interests, "waiting": waiting}

    async def leave(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Leave the queue (from any session of the user); ``not_found`` when not in it (never
        was, or paired meanwhile: then ``match.found`` is on its way)."""
        if not await self.store.hash_delete(keys.QUEUE, ctx.identity.user_id):
            raise HubError("not_found", "you are not waiting in the queue")
        return {}

    async def status(self, ctx: CommandContext, cmd: dict[str, Any]) -> MatchStatusReply:
        """``{queued, meeting}``: whether the user waits, and their running meeting (what a
        reloaded page needs to find its place again)."""
        user = ctx.identity.user_id
        queued = await self.store.hash_get(keys.QUEUE, user) is not None
        view: MeetingView | None = None
        meeting = await self.meetings.running_meeting(user)
        if meeting is not None:
            view = await self.meetings.view(meeting, user)
        return {"queued": queued, "meeting": view}

    async def _session_closed(self, session: Session) -> None:
        identity = session.identity
        if identity is None:
            return
        raw = await self.store.hash_get(keys.QUEUE, identity.user_id)
        if raw is not None and QueueEntry.unpack(identity.user_id, raw).sid == session.sid:
            await self.store.hash_delete(keys.QUEUE, identity.user_id)

    async def _node_swept(self, dead: str, rooms: list[str]) -> None:
        for user, raw in (await self.store.hash_get_all(keys.QUEUE)).items():
            if QueueEntry.unpack(user, raw).node == dead:
                await self.store.hash_delete(keys.QUEUE, user)

    async def sweep(self) -> None:
        """On the lease holder only: end the meetings whose time is up, forget the old ones."""
        if self.matcher.holding:
            await self.meetings.sweep()

    async def _event_closed(self, record: EventClosed) -> None:
        """Empty the queue and end every meeting (each removal and end is a claim: whichever
        node gets it tells the people concerned, once)."""
        left: MatchLeftEvent = {"ev": "match.left", "reason": "event_closed"}
        for user in await self.store.hash_get_all(keys.QUEUE):
            if await self.store.hash_delete(keys.QUEUE, user):
                await self.node.send_to_user(user, left)
        await self.meetings.end_all("event_closed")
