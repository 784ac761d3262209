"""The meetings the match queue makes: their rooms, their time, their end, and the contact cards
their members exchange.

A claimed group gets a room of kind ``meeting`` that only its members may join (a join check;
a meeting room made by hand with ``room.create`` has no meeting and nobody may join it), and
each member gets ``match.found``. A meeting ends at its time (a timer on the node that made it,
and the lease holder's :meth:`Meetings.sweep`, so it ends even if that node died), when a member
ends it, or when the event closes. The end is a claim (``set_if_absent``): it happens once,
whoever calls, and then every node takes its sessions out of the room (a signal on the room's
topic) and the room leaves the directory. An extension is a claim too, made once every member
still there asked; the cards are delivered once (a claim) when every member shared.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

from hub import fields
from hub.auth import Role
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import Entrant, RoomInfo
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
    MatchMemberLeftEvent,
    MatchPartner,
    MatchShareReply,
    MeetingPart,
    MeetingView,
)
from rooms.feature import RoomsFeature
from rooms.model import Room, RoomKind

# The ends of meetings the sweep keeps in memory (the oldest go first beyond, and are read
# again when needed).
ENDS_CACHED: Final = 5_000
# A meeting timer wakes at least this often (seconds), whatever the end.
TIMER_STEP: Final = 60.0
MEETING_TITLE: Final = "Meeting"
# The internal signal, on a meeting room's topic, that takes members out of it.
OUT_SIGNAL: Final = "match.out"


class Meetings:
    """The meetings of the match queue, as one node sees and runs them (see the module
    docstring)."""

    def __init__(self, node: Node, rooms: RoomsFeature) -> None:
        self.node = node
        self.store = node.store
        self.rooms = rooms
        self.length = node.config.meet_minutes * 60.0
        # The sweep's: room -> when its meeting ended (epoch seconds).
        self._ended: OrderedDict[str, float] = OrderedDict()
        #: Epoch seconds (tests replace it to step time).
        self.clock = time.time

    async def open(self, group: list[QueueEntry]) -> Meeting:
        """Make the room and the meeting of a claimed group, and mark its members as in it."""
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

    async def announce(self, meeting: Meeting) -> None:
        """Start the meeting's timer on this node and send each member ``match.found``."""
        self.node.spawn(self._timer(meeting))
        for user in meeting.users:
            found: MatchFoundEvent = {
                "ev": "match.found",
                "room": meeting.room,
                "with": meeting.others(user),
                "ends_at": meeting.ends_at,
                "minutes": round(meeting.length / 60, 2),
            }
            # A failure here is logged by the round; match.status shows the meeting anyway.
            await self.node.send_to_user(user, found)

    async def _meeting(self, room: str) -> Meeting | None:
        # Read each time, never cached: the record's presence is what says the meeting still
        # counts (the sweep removes it once its cards window is over).
        return await keys.read_meeting(self.store, room)

    async def running_meeting(self, user: str) -> Meeting | None:
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

    async def check_join(self, ctx: CommandContext, room: RoomInfo, role: Role) -> None:
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

    async def snapshot(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[MeetingPart | EmptyReply | Exception]:
        """In a meeting room, ``meeting`` as each entrant sees it; elsewhere nothing."""
        if room.kind != RoomKind.MEETING.value:
            return [{} for _ in entrants]
        meeting = await self._meeting(room.id)
        if meeting is None:
            return [{} for _ in entrants]
        parts: list[MeetingPart | EmptyReply | Exception] = []
        for entrant in entrants:
            part: MeetingPart = {"meeting": await self.view(meeting, entrant.ctx.identity.user_id)}
            parts.append(part)
        return parts

    async def view(self, meeting: Meeting, user: str) -> MeetingView:
        """``meeting`` as ``user`` sees it (``match.status``, the room's snapshot)."""
        ends_at = await keys.current_end(self.store, meeting)
        return {
            "room": meeting.room,
            "with": meeting.others(user),
            "ends_at": ends_at,
            "minutes": round(meeting.length / 60, 2),
            "extended": ends_at != meeting.ends_at,
        }

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
        await self.node.signal(room, OUT_SIGNAL, {"room": room, "users": [user]})

    async def finish(self, meeting: Meeting, ended: Ended) -> bool:
        """End ``meeting`` (once, whoever calls: a claim): its members get ``match.ended``, every
        node takes their sessions out of the room, and the room leaves the directory. Returns
        whether this call ended it."""
        room = meeting.room
        if await keys.claim_end(self.store, meeting, ended) is not None:
            return False
        event: MatchEndedEvent = {"ev": "match.ended", "room": room, "reason": ended.reason}
        if ended.by is not None:
            event["by"] = ended.by
        gone = await self.store.set_members(keys.gone_key(room))
        for user in meeting.users:
            if user not in gone or user == ended.by:
                await self.node.send_to_user(user, event)
        await self._close_out(meeting)
        return True

    async def _close_out(self, meeting: Meeting) -> None:
        """The steps after an end's claim, each safe to run again (the sweep runs them once more
        for every ended meeting it finds, should a failure have cut them short): members are no
        longer in it, every node takes their sessions out of the room, the room record goes
        (lobby listings; a join now finds no room or a closed meeting)."""
        room = meeting.room
        for user in meeting.users:
            await self._clear_current(user, room)
        await self.node.signal(room, OUT_SIGNAL, {"room": room, "users": None})
        await self.rooms.directory.remove(room)

    async def _clear_current(self, user: str, room: str) -> None:
        raw = await self.store.hash_get(keys.CURRENT, user)
        if raw is not None and raw.decode() == room:
            await self.store.hash_delete(keys.CURRENT, user)

    def out_signal(self, data: Any) -> None:
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
        """(On the lease holder.) End the meetings whose time is up (their node may be gone), and
        forget those whose cards window is over. A meeting before its planned end costs no
        read (an extension only moves the end later, and an early end is cleaned up well after
        the planned one); an end once read is kept in memory."""
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
                await self._close_out(meeting)  # once more: a failure may have cut it short
                ended_at = self._ended[room] = ended.at
                while len(self._ended) > ENDS_CACHED:
                    self._ended.popitem(last=False)
            if not cards_open(ended_at, now):
                for key in keys.meeting_keys(room):
                    await self.store.delete(key)
                await self.store.hash_delete(keys.MEETINGS, room)
                self._ended.pop(room, None)

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

    async def end_all(self, reason: str) -> None:
        """End every running meeting (the event closed)."""
        now = round(self.clock(), 3)
        for raw in (await self.store.hash_get_all(keys.MEETINGS)).values():
            await self.finish(Meeting.from_record(unpack(raw)), Ended(reason, None, now))
