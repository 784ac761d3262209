""" "Meet someone": the match queue and the meetings it makes.

Commands: ``match.join {interests?}``, ``match.leave``, ``match.status``, ``match.extend
{room}``, ``match.end {room}``, ``match.share {room, card}``. Events (to the user, all their
sessions): ``match.found``, ``match.left``, ``match.ended``, ``match.member_left``,
``match.extend_requested``, ``match.extended``, ``match.cards`` (``docs/protocol.md``: Meet
someone).

How pairing stays exact across nodes: the queue is one store hash (user -> entry, see
:mod:`networking.match_store`). One node at a time holds the matcher's lease and runs a round
every :data:`ROUND_INTERVAL` seconds: it reads the queue, plans groups with the pure rules
(:mod:`networking.matching`) and claims each group with ``hash_take`` (all its members leave the
queue in one atomic step, or none does). So a person is never in two groups even if two nodes
ever run rounds at once (a lease that expired under a slow holder), and someone who left
meanwhile makes the claim fail while the others stay queued for the next round.

A claimed group gets a room of kind ``meeting`` that only its members may join (a join check;
a meeting room made by hand with ``room.create`` has no meeting and nobody may join it), and
each member gets ``match.found``. A meeting ends at its time (a timer on the node that made it,
and the lease holder's sweep, so it ends even if that node died), when a member ends it, or
when the event closes; the end is a claim (``set_if_absent``), so it happens once, and every
node then takes its sessions out of the room (a signal on the room's topic).

Bounds: the queue refuses ``match.join`` once it held :data:`~networking.match_store.MAX_QUEUE`
people at the last round (``conflict``), and a round looks at the oldest that many only; a
person has one entry. The matcher keeps the "met" sets of at most :data:`MET_CACHED` users in
memory (the oldest read go, and are read again when needed) and the sweep the ends of at most
:data:`MEETINGS_CACHED` meetings (likewise). In the store, a meeting's keys go once its cards
window is over; "met" sets last for the event (one per person who met someone, as long as the
meetings they had); each node runs one timer per meeting it made, until that meeting ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from typing import Any, Final

from hub import fields
from hub.auth import Role
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import FeatureContext, RoomInfo
from hub.node import Node
from hub.session import Session
from hub.wire import EmptyReply
from networking import match_store as keys
from networking.match_meeting import (
    Meeting,
    cards_for,
    cards_open,
    extended_end,
    extension_due,
    parse_card,
    require_member,
)
from networking.match_store import Ended, QueueEntry
from networking.match_wire import (
    Card,
    MatchCardsEvent,
    MatchEndedEvent,
    MatchExtendedEvent,
    MatchExtendReply,
    MatchExtendRequestedEvent,
    MatchFoundEvent,
    MatchJoinReply,
    MatchLeftEvent,
    MatchMemberLeftEvent,
    MatchPartner,
    MatchShareReply,
    MatchStatusReply,
    MeetingPart,
    MeetingView,
)
from networking.matching import parse_interests, plan_round
from rooms.dead_nodes import beat_key
from rooms.directory import ROOMS_KEY
from rooms.event_state import EventClosed
from rooms.feature import RoomsFeature
from rooms.model import Room, RoomKind

log = logging.getLogger(__name__)

ROUND_INTERVAL: Final = 0.25
# The matcher's lease (seconds): another node takes over this long after its holder stopped.
LEASE_TTL: Final = 3.0
# The meetings whose ends the lease holder checks, once a second.
SWEEP_INTERVAL: Final = 1.0
# The users whose "met" sets the matcher keeps in memory (the oldest read go first beyond).
MET_CACHED: Final = 20_000
# The ends of meetings the sweep keeps in memory (the oldest go first beyond).
MEETINGS_CACHED: Final = 5_000
# A meeting timer wakes at least this often (seconds), whatever the end.
TIMER_STEP: Final = 60.0
MEETING_TITLE: Final = "Meeting"
_OUT_SIGNAL: Final = "match.out"


class MatchFeature:
    """The match queue of one node (see the module docstring): its commands, its share of the
    matcher's work, and the meetings it made."""

    def __init__(self, node: Node, rooms: RoomsFeature) -> None:
        self.node = node
        self.rooms = rooms
        self.store = node.store
        self.length = node.config.meet_minutes * 60.0
        self._met: OrderedDict[str, set[str]] = OrderedDict()
        # The lease holder's sweep: room -> when its meeting ended (epoch seconds).
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._holding = False
        #: Epoch seconds (tests replace it to step time).
        self.clock = time.time

    def install(self, ctx: FeatureContext) -> None:
        """Register the ``match.*`` commands, the rounds, the meetings' join check and the hooks
        that take people out of the queue (a closed session, a dead node, the event's end)."""
        ctx.command("match.join", self.join)
        ctx.command("match.leave", self.leave)
        ctx.command("match.status", self.status)
        ctx.command("match.extend", self.extend)
        ctx.command("match.end", self.end)
        ctx.command("match.share", self.share)
        ctx.on_join_check(self._check_join)
        ctx.on_snapshot(self._snapshot)
        ctx.on_session_closed(self._session_closed)
        ctx.on_signal(_OUT_SIGNAL, self._out_signal)
        ctx.every(ROUND_INTERVAL, self.round)
        ctx.every(SWEEP_INTERVAL, self.sweep)
        self.rooms.on_node_swept(self._node_swept)
        self.rooms.event.on_close(self._event_closed)

    # --- the queue --------------------------------------------------------------------------

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
        if await self._running_meeting(user) is not None:
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
        meeting = await self._running_meeting(user)
        if meeting is not None:
            view = {
                "room": meeting.room,
                "with": meeting.others(user),
                "ends_at": await keys.current_end(self.store, meeting),
            }
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

    # --- the rounds -------------------------------------------------------------------------

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
        if self.rooms.event.is_closed or not await self._hold_lease():
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
        await asyncio.gather(*(self._claim([by_user[user] for user in group]) for group in groups))

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

    async def _claim(self, group: list[QueueEntry]) -> None:
        """Take ``group`` out of the queue (all or none), open its meeting and tell them."""
        users = [entry.user for entry in group]
        if await self.store.hash_take(keys.QUEUE, users) is None:
            return  # someone left meanwhile: the others wait for the next round
        try:
            meeting = await self._open_meeting(group)
        except Exception:
            # Nobody was told: they wait for the next round as if nothing happened.
            log.exception("meeting of %s not opened: back to the queue", users)
            for entry in group:
                await self.store.hash_set(keys.QUEUE, entry.user, entry.pack(), only_if_absent=True)
            return
        self.node.spawn(self._timer(meeting))
        for user in users:
            found: MatchFoundEvent = {
                "ev": "match.found",
                "room": meeting.room,
                "with": meeting.others(user),
                "ends_at": meeting.ends_at,
            }
            # A failure here is logged by the round; match.status shows the meeting anyway.
            await self.node.send_to_user(user, found)

    async def _open_meeting(self, group: list[QueueEntry]) -> Meeting:
        """Record who met whom, make the room and the meeting, mark its members as in it."""
        for a in group:
            for b in group:
                if a.user != b.user:
                    await self.store.set_add(keys.met_key(a.user), b.user)
                    self._met.setdefault(a.user, set()).add(b.user)
        while True:
            room = Room(f"meet-{secrets.token_hex(6)}", RoomKind.MEETING, MEETING_TITLE)
            if await self.rooms.directory.create(room):
                break
        members = tuple(MatchPartner(user=entry.user, name=entry.name) for entry in group)
        meeting = Meeting(room.id, members, round(self.clock() + self.length, 3), self.length)
        await self.store.hash_set(keys.MEETINGS, room.id, pack(meeting.to_record()))
        for entry in group:
            await self.store.hash_set(keys.CURRENT, entry.user, room.id.encode())
        return meeting

    # --- meetings ---------------------------------------------------------------------------

    async def _meeting(self, room: str) -> Meeting | None:
        # Read each time, never cached: the record's presence is what says the meeting still
        # counts (the sweep removes it once its cards window is over).
        return await keys.read_meeting(self.store, room)

    async def _running_meeting(self, user: str) -> Meeting | None:
        raw = await self.store.hash_get(keys.CURRENT, user)
        if raw is None:
            return None
        meeting = await self._meeting(raw.decode())
        if meeting is None or await keys.read_ended(self.store, meeting.room) is not None:
            return None
        return meeting

    async def _member_meeting(self, ctx: CommandContext, cmd: dict[str, Any]) -> Meeting:
        room = fields.room_id(cmd.get("room"))
        return require_member(await self._meeting(room), room, ctx.identity.user_id)

    async def _check_join(self, ctx: CommandContext, room: RoomInfo, role: Role) -> None:
        if room.kind != RoomKind.MEETING.value:
            return
        meeting = await self._meeting(room.id)
        if meeting is None:
            raise HubError("forbidden", "meeting rooms are the match queue's")
        require_member(meeting, room.id, ctx.identity.user_id)
        if await keys.read_ended(self.store, room.id) is not None:
            raise HubError("closed", "this meeting is over")
        if ctx.identity.user_id in await self.store.set_members(keys.gone_key(room.id)):
            raise HubError("closed", "you left this meeting")

    async def _snapshot(
        self, ctx: CommandContext, room: RoomInfo, role: Role
    ) -> MeetingPart | EmptyReply:
        if room.kind != RoomKind.MEETING.value:
            return {}
        meeting = await self._meeting(room.id)
        if meeting is None:
            return {}
        view: MeetingView = {
            "room": meeting.room,
            "with": meeting.others(ctx.identity.user_id),
            "ends_at": await keys.current_end(self.store, meeting),
        }
        return {"meeting": view}

    async def extend(self, ctx: CommandContext, cmd: dict[str, Any]) -> MatchExtendReply:
        """Ask to extend a meeting one is in: once every member still there asked, it ends one
        meeting length later (once: a second extension is ``conflict``). ``closed`` once it
        ended; ``not_found``/``forbidden`` for a meeting one is not in."""
        meeting = await self._member_meeting(ctx, cmd)
        user = ctx.identity.user_id
        room = meeting.room
        if await keys.read_ended(self.store, room) is not None:
            raise HubError("closed", "this meeting is over")
        gone = await self.store.set_members(keys.gone_key(room))
        if user in gone:
            raise HubError("closed", "you left this meeting")
        if await self.store.get(keys.extended_key(room)) is not None:
            raise HubError("conflict", "this meeting was extended once already")
        if await self.store.set_add(keys.extend_key(room), user):
            requested: MatchExtendRequestedEvent = {
                "ev": "match.extend_requested",
                "room": room,
                "by": user,
            }
            for other in meeting.others(user):
                await self.node.send_to_user(other["user"], requested)
        asked = await self.store.set_members(keys.extend_key(room))
        gone = await self.store.set_members(keys.gone_key(room))  # again: one may have left
        present = [member for member in meeting.users if member not in gone]
        if not extension_due(asked, present):
            return {"extended": False, "ends_at": meeting.ends_at}
        ends_at = extended_end(meeting)
        if await self.store.set_if_absent(keys.extended_key(room), str(ends_at).encode()):
            return {"extended": False, "ends_at": ends_at}  # the other member's request did it
        extended: MatchExtendedEvent = {"ev": "match.extended", "room": room, "ends_at": ends_at}
        for member in meeting.users:
            await self.node.send_to_user(member, extended)
        return {"extended": True, "ends_at": ends_at}

    async def end(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Leave a meeting early: for a pair it ends for both (``match.ended {reason: "left",
        by}``); in a meeting of three the others go on (``match.member_left``) until one is
        left. ``closed`` once it ended."""
        meeting = await self._member_meeting(ctx, cmd)
        user = ctx.identity.user_id
        room = meeting.room
        if await keys.read_ended(self.store, room) is not None:
            raise HubError("closed", "this meeting is over")
        added, gone = await self.store.set_add_counted(keys.gone_key(room), user)
        if not added:
            raise HubError("closed", "you left this meeting")
        if len(meeting.users) - gone >= 2:
            await self._let_go(meeting, user)
            return {}
        await self.finish(meeting, Ended("left", user, round(self.clock(), 3)))
        return {}

    async def _let_go(self, meeting: Meeting, user: str) -> None:
        """``user`` left a meeting that goes on: tell everyone, take them out of the room."""
        room = meeting.room
        ended: MatchEndedEvent = {"ev": "match.ended", "room": room, "reason": "left", "by": user}
        await self.node.send_to_user(user, ended)
        left: MatchMemberLeftEvent = {"ev": "match.member_left", "room": room, "user": user}
        for other in meeting.others(user):
            await self.node.send_to_user(other["user"], left)
        await self._clear_current(user, room)
        await self.node.signal(room, _OUT_SIGNAL, {"room": room, "users": [user]})

    async def finish(self, meeting: Meeting, ended: Ended) -> bool:
        """End ``meeting`` (once, whoever calls: a claim): its members get ``match.ended``, every
        node takes their sessions out of the room, and the room leaves the directory. Returns
        whether this call ended it."""
        room = meeting.room
        if await keys.claim_end(self.store, room, ended) is not None:
            return False
        event: MatchEndedEvent = {"ev": "match.ended", "room": room, "reason": ended.reason}
        if ended.by is not None:
            event["by"] = ended.by
        gone = await self.store.set_members(keys.gone_key(room))
        for user in meeting.users:
            if user not in gone or user == ended.by:
                await self.node.send_to_user(user, event)
            await self._clear_current(user, room)
        await self.node.signal(room, _OUT_SIGNAL, {"room": room, "users": None})
        # The room record goes (lobby listings); a join now finds no room or a closed meeting.
        await self.store.hash_delete(ROOMS_KEY, room)
        return True

    async def _clear_current(self, user: str, room: str) -> None:
        raw = await self.store.hash_get(keys.CURRENT, user)
        if raw is not None and raw.decode() == room:
            await self.store.hash_delete(keys.CURRENT, user)

    def _out_signal(self, data: Any) -> None:
        room, users = data["room"], data["users"]
        for session in self.node.followers(room):
            if users is None or session.user_id in users:
                self.node.spawn(self._take_out(session, room))

    async def _take_out(self, session: Session, room: str) -> None:
        await self.rooms.leave_room(session, room)

    async def _timer(self, meeting: Meeting) -> None:
        """End ``meeting`` at its end (its extension's, if any); the sweep is the backstop."""
        while await keys.read_ended(self.store, meeting.room) is None:
            left = await keys.current_end(self.store, meeting) - self.clock()
            if left <= 0:
                await self.finish(meeting, Ended("time", None, round(self.clock(), 3)))
                return
            await asyncio.sleep(min(left, TIMER_STEP))

    async def sweep(self) -> None:
        """On the lease holder: end the meetings whose time is up (their node may be gone), and
        forget those whose cards window is over. A meeting before its planned end costs no
        read (an extension only moves the end later, and an early end is cleaned up well after
        the planned one); an end once read is kept in memory."""
        if not self._holding:
            return
        now = self.clock()
        for room, raw in (await self.store.hash_get_all(keys.MEETINGS)).items():
            meeting = Meeting.from_record(unpack(raw))
            if meeting.ends_at > now:
                continue
            ended_at = self._ended.get(room)
            if ended_at is None:
                ended = await keys.read_ended(self.store, room)
                if ended is None:
                    if await keys.current_end(self.store, meeting) <= now:
                        await self.finish(meeting, Ended("time", None, round(now, 3)))
                    continue
                ended_at = self._ended[room] = ended.at
                while len(self._ended) > MEETINGS_CACHED:
                    self._ended.popitem(last=False)
            if not cards_open(ended_at, now):
                for key in keys.meeting_keys(room):
                    await self.store.delete(key)
                await self.store.hash_delete(keys.MEETINGS, room)
                self._ended.pop(room, None)

    # --- contact cards ----------------------------------------------------------------------

    async def share(self, ctx: CommandContext, cmd: dict[str, Any]) -> MatchShareReply:
        """Share one's contact card with the other members of a meeting (during it and for
        :data:`~networking.match_meeting.CARDS_WINDOW` after): nothing is delivered until every
        member shared; then each gets the others' cards in ``match.cards``. Sharing again before
        that replaces one's card; after it is ``conflict``; after the window ``closed``."""
        meeting = await self._member_meeting(ctx, cmd)
        identity = ctx.identity
        card = parse_card(cmd.get("card"), identity.user_id, identity.name)
        room = meeting.room
        ended = await keys.read_ended(self.store, room)
        if not cards_open(ended.at if ended is not None else None, self.clock()):
            raise HubError("closed", "cards may no longer be shared for this meeting")
        if await self.store.get(keys.cards_sent_key(room)) is not None:
            raise HubError("conflict", "the cards were exchanged already")
        await self.store.hash_set(keys.cards_key(room), identity.user_id, pack(card))
        raw = await self.store.hash_get_all(keys.cards_key(room))
        cards: dict[str, Card] = {user: unpack(value) for user, value in raw.items()}
        if cards_for(identity.user_id, cards, meeting.users) is None:
            return {"exchanged": False}
        if await self.store.set_if_absent(keys.cards_sent_key(room), b"1", ttl=keys.ENDED_TTL):
            return {"exchanged": True}  # another member's share delivered them
        for user in meeting.users:
            theirs = cards_for(user, cards, meeting.users) or []
            delivered: MatchCardsEvent = {"ev": "match.cards", "room": room, "cards": theirs}
            await self.node.send_to_user(user, delivered)
        return {"exchanged": True}

    # --- the event's end --------------------------------------------------------------------

    async def _event_closed(self, record: EventClosed) -> None:
        """Empty the queue and end every meeting (each removal and end is a claim: whichever
        node gets it tells the people concerned, once)."""
        left: MatchLeftEvent = {"ev": "match.left", "reason": "event_closed"}
        for user in await self.store.hash_get_all(keys.QUEUE):
            if await self.store.hash_delete(keys.QUEUE, user):
                await self.node.send_to_user(user, left)
        now = round(self.clock(), 3)
        for raw in (await self.store.hash_get_all(keys.MEETINGS)).values():
            meeting = Meeting.from_record(unpack(raw))
            await self.finish(meeting, Ended("event_closed", None, now))
