"""The stage of a room: ``role.set``, the hand queue (``hand.raise``, ``hand.lower``), ``kick``
and the event-wide ``ban``.

Hands live in the broker (``hands:{room}``: user -> the hand), so every node shows the same
queue, ordered by the server's time of each raise. A change is followed by a ``hands`` signal on
the room's topic; each node that follows the room then reads the queue and sends it to its
members. Signals arrive in publication order and a node reads again when one arrives during its
read, so the last ``hands`` event everyone gets shows the queue after the last change. A hand
whose session has no live presence entry in the room any more (its node died) is dropped when
the queue is read.

A kick reaches the user's sessions through the user's topic, wherever they are; a ban is a close
message on that topic, which may be lost, so every node also closes the sessions of banned users
every few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hub import fields
from hub.auth import Identity, Role
from hub.broker import user_topic
from hub.coalesce import CoalescedEvent, Derived, Mark
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import CloseCode, HubError
from hub.feature import Entrant, FeatureContext, RoomInfo
from hub.session import Session
from hub.shared_read import FreshSharedRead
from hub.wire import EmptyReply
from rooms.model import Room, RoomKind, is_breakout_id, joined_room
from rooms.roles import on_stage
from rooms.stage import (
    Hand,
    check_kick,
    check_role_change,
    hand_queue,
    hands_event,
    parse_assignable_role,
)
from rooms.wire import KickedEvent, RoleFields, RoleSetReply, StagePart

if TYPE_CHECKING:
    from rooms.feature import RoomsFeature

# How often a node closes the sessions of users banned from the event (seconds).
BAN_SWEEP_INTERVAL = 5.0
# The broker set of the users banned from the whole event (``ban``): their hello closes with 4003.
BANNED_USERS = "banned"


def hands_key(room: str) -> str:
    """The broker hash of a room's raised hands."""
    return f"hands:{room}"


def bans_key(room: str) -> str:
    """The broker set of the users banned from a room."""
    return f"bans:{room}"


def is_child_of(room: str, parent: str) -> bool:
    """True when ``room`` is a breakout child of ``parent`` (``{parent}.b<number>``)."""
    return is_breakout_id(room) and room.rpartition(".b")[0] == parent


class StageFeature:
    """Roles, hands, kicks and bans of one node."""

    def __init__(self, rooms: RoomsFeature) -> None:
        self.rooms = rooms
        self.node = rooms.node
        self.broker = rooms.node.broker
        self.store = rooms.node.store
        # (room, sid) of the hands this node's sessions raised: leaving lowers them.
        self._raised: dict[tuple[str, str], str] = {}
        # room -> the users banned from it, read once for the joins asking together (a burst of
        # joins checks each joiner against the same few names)
        self._banned: FreshSharedRead[str, frozenset[str]] = FreshSharedRead(self._read_banned)

    def install(self, ctx: FeatureContext) -> None:
        """Register the stage ops, the hooks and the join check and snapshot parts."""
        ctx.command("role.set", self.role_set)
        ctx.command("hand.raise", self.hand_raise)
        ctx.command("hand.lower", self.hand_lower)
        ctx.command("kick", self.kick)
        ctx.command("ban", self.ban)
        self.hands = CoalescedEvent(ctx, "hands", self._read_hands, immediate=True)
        ctx.on_signal("kick", self._kicked)
        ctx.on_join_check(self._check_not_banned)
        ctx.on_room_snapshot(self._snapshot)
        ctx.on_leave(self._left)
        ctx.on_hello(self._refuse_banned)
        ctx.every(BAN_SWEEP_INTERVAL, self.sweep_bans)
        ctx.on_stop(self._banned.close)

    # --- roles --------------------------------------------------------------------------------

    async def role_set(self, ctx: CommandContext, cmd: dict[str, Any]) -> RoleSetReply:
        """Store a user's role in a room (moderators, by the rules of :mod:`rooms.stage`) as
        the stored event ``role``; a new speaker or moderator leaves the hand queue. Replies
        ``{seq}``."""
        room = await self._room(cmd)
        user = fields.user_id(cmd.get("user"))
        new = parse_assignable_role(cmd.get("role"))
        caller = await self.rooms.roles.current_role(ctx.session, room.id)
        own = user == ctx.identity.user_id
        entry = await self.rooms.roles.entry(room.id, user)
        target_now = caller if own else await self.rooms.roles.current_role(user, room.id)
        check_role_change(caller, target_now, new, self_change=own)
        if entry is None:
            entry = await self.rooms.roles.seen_entry(room.id, user)
        name = entry.name if entry is not None else await self._name_of(room.id, user)
        await self.rooms.roles.store(room.id, user, new, name)
        changed: RoleFields = {"user": user, "role": new.label}
        seq = await self.node.publish_event(room.id, "role", changed)
        if new >= Role.SPEAKER:
            await self._lower(room.id, user)
        return {"seq": seq}

    async def _name_of(self, room: str, user: str) -> str:
        data = await self.store.hash_get(hands_key(room), user)
        if data is not None:
            return Hand.from_record(user, unpack(data)).name
        for session in self.node.users.get(user, {}).values():
            if session.identity is not None:
                return session.identity.name
        return user

    # --- hands --------------------------------------------------------------------------------

    async def hand_raise(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Raise the caller's hand in a room they are in; raising it again keeps its place."""
        room = joined_room(cmd.get("room"), ctx.session.rooms)
        identity = ctx.identity
        hand = Hand(identity.user_id, identity.name, time.time(), ctx.session.sid)
        raised = await self.store.hash_set(
            hands_key(room), hand.user, pack(hand.to_record()), only_if_absent=True
        )
        if raised:
            self._raised[(room, ctx.session.sid)] = hand.user
            await self._announce(room)
        return {}

    async def hand_lower(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Lower the caller's hand, or with ``user`` anyone's (moderators); ``not_found`` when
        that hand is not raised."""
        room = fields.room_id(cmd.get("room"))
        user = cmd.get("user")
        if user is None or user == ctx.identity.user_id:
            joined_room(room, ctx.session.rooms)
            user = ctx.identity.user_id
        else:
            user = fields.user_id(user)
            if await self.rooms.roles.current_role(ctx.session, room) < Role.MODERATOR:
                raise HubError("forbidden", "only moderators lower other people's hands")
        if not await self._lower(room, user):
            raise HubError("not_found", f"no raised hand of {user} in {room}")
        return {}

    async def read_hands(self, room: str) -> list[Hand]:
        """The room's hand queue, in order. Hands whose session has no live presence entry in
        the room are left out and lowered (then announced)."""
        raw = await self.store.hash_get_all(hands_key(room))
        hands = [Hand.from_record(user, unpack(data)) for user, data in raw.items()]
        present = await asyncio.gather(
            *(self.broker.presence_get(room, hand.sid) for hand in hands)
        )
        stale = [hand for hand, info in zip(hands, present, strict=True) if info is None]
        if stale:
            lowered = [await self._drop_stale(room, hand) for hand in stale]
            if any(lowered):
                await self._announce(room)
        return hand_queue(
            hand for hand, info in zip(hands, present, strict=True) if info is not None
        )

    async def _drop_stale(self, room: str, hand: Hand) -> bool:
        # Read again: the user may have raised a new hand from a live session meanwhile.
        data = await self.store.hash_get(hands_key(room), hand.user)
        if data is None or Hand.from_record(hand.user, unpack(data)).sid != hand.sid:
            return False
        return await self.store.hash_delete(hands_key(room), hand.user)

    async def _lower(self, room: str, user: str) -> bool:
        if not await self.store.hash_delete(hands_key(room), user):
            return False
        await self._announce(room)
        return True

    async def _announce(self, room: str) -> None:
        await self.hands.announce((room,))

    async def _read_hands(self, mark: Mark) -> Derived:
        room = mark[0]
        return Derived(hands_event(room, await self.read_hands(room)))

    async def _left(self, session: Session, room: str) -> None:
        user = self._raised.pop((room, session.sid), None)
        if user is None:
            return
        data = await self.store.hash_get(hands_key(room), user)
        if data is not None and Hand.from_record(user, unpack(data)).sid == session.sid:
            await self._lower(room, user)

    # --- kicks and bans -----------------------------------------------------------------------

    async def kick(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Every session of ``user`` leaves the room and its breakout children, on every node
        (``kicked`` for each room left); with ``ban`` they cannot join the room or its children
        again. Moderators, over people of a lower role."""
        room = await self._room(cmd)
        user = fields.user_id(cmd.get("user"))
        ban = fields.flag(cmd.get("ban"), "ban", False)
        caller = await self.rooms.roles.current_role(ctx.session, room.id)
        target = await self.rooms.roles.current_role(user, room.id)
        check_kick(caller, target, self_kick=user == ctx.identity.user_id)
        if ban:
            await self.store.set_add(bans_key(room.id), user)
        await self.store.hash_delete(hands_key(room.id), user)
        # The user's topic reaches each of their sessions, also one that is in a breakout child
        # on a node that does not follow the room itself.
        await self.node.signal(user_topic(user), "kick", {"room": room.id, "user": user})
        await self._announce(room.id)
        return {}

    def _kicked(self, data: Any) -> None:
        room, user = data["room"], data["user"]
        for session in list(self.node.users.get(user, {}).values()):
            for joined in sorted(session.rooms):
                if joined == room or is_child_of(joined, room):
                    kicked: KickedEvent = {"ev": "kicked", "room": joined}
                    session.send(kicked)
                    self.node.spawn(self._evict(session, joined))

    async def _evict(self, session: Session, room: str) -> None:
        await self.rooms.leave_room(session, room)

    async def ban(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Ban ``user`` from the whole event (organizers): every session of theirs, on every
        node, closes with 4003, and their ``hello`` is refused with 4003 from now on."""
        if ctx.identity.role < Role.ORGANIZER:
            raise HubError("forbidden", "only organizers ban people from the event")
        user = fields.user_id(cmd.get("user"))
        if user == ctx.identity.user_id:
            raise HubError("bad_request", "you cannot ban yourself")
        await self.store.set_add(BANNED_USERS, user)
        await self.node.close_user(user, CloseCode.BANNED, "banned from this event")
        return {}

    async def _refuse_banned(self, ctx: CommandContext, identity: Identity) -> None:
        # Run once the session is bound to its user: a ban stored later closes it through the
        # user's topic, a ban stored earlier is seen here.
        if await self.store.set_contains(BANNED_USERS, identity.user_id):
            raise HubError("forbidden", "banned from this event", close=CloseCode.BANNED)

    async def sweep_bans(self) -> None:
        """Close every session on this node of a user banned from the event, and take the
        sessions of users banned from a room out of it: the messages of ``ban`` and ``kick``
        may have been lost."""
        if not self.node.users:
            return
        banned = await self.store.set_members(BANNED_USERS)
        for user in banned.intersection(self.node.users):
            for session in list(self.node.users.get(user, {}).values()):
                session.request_close(CloseCode.BANNED, "banned from this event")
        # The same for room bans whose kick message was lost: one read per followed room.
        for room in list(self.node.streams):
            barred = await self.store.set_members(bans_key(room))
            if not barred:
                continue
            for session in self.node.followers(room):
                if (
                    session.user_id in barred
                    and self.rooms.roles.cached_role(session, room) < Role.MODERATOR
                ):
                    kicked: KickedEvent = {"ev": "kicked", "room": room}
                    session.send(kicked)
                    await self.rooms.leave_room(session, room)

    async def _check_not_banned(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[HubError | None]:
        """Refuses those banned from ``room`` (its moderators are exempt) and, in a breakout,
        from its parent (the parent's moderators are exempt, as there); each ban set is read
        once for all ``entrants``."""
        parent = room.parent if room.kind is RoomKind.BREAKOUT else None
        # The sets that count, asked together so that their reads go to the broker at once.
        asked = [room.id] if any(e.role < Role.MODERATOR for e in entrants) else []
        if parent is not None:
            asked.append(parent)
        barred = dict(zip(asked, await asyncio.gather(*map(self._banned.get, asked)), strict=True))
        refusals: list[HubError | None] = [None] * len(entrants)
        from_parent: list[int] = []
        for i, entrant in enumerate(entrants):
            user = entrant.ctx.identity.user_id
            if entrant.role < Role.MODERATOR and user in barred[room.id]:
                refusals[i] = HubError("forbidden", f"you were banned from {room.id}")
            elif parent is not None and user in barred[parent]:
                from_parent.append(i)
        if parent is not None and from_parent:
            parent_roles = await self.rooms.roles.session_roles(
                [entrants[i].ctx.session for i in from_parent], parent
            )
            for i, parent_role in zip(from_parent, parent_roles, strict=True):
                if parent_role < Role.MODERATOR:
                    refusals[i] = HubError("forbidden", f"you were banned from {parent}")
        return refusals

    async def _read_banned(self, room: str) -> frozenset[str]:
        return frozenset(await self.store.set_members(bans_key(room)))

    # --- snapshot -----------------------------------------------------------------------------

    async def _snapshot(self, room: RoomInfo, role: Role) -> StagePart:
        entries, hands = await asyncio.gather(
            self.rooms.roles.known_entries(room.id), self.read_hands(room.id)
        )
        return {
            "speakers": on_stage(entries),
            "moderators": [
                {"user": e.user, "name": e.name} for e in entries if e.role >= Role.MODERATOR
            ],
            "hands": [hand.describe() for hand in hands],
        }

    # --- helpers ------------------------------------------------------------------------------

    async def _room(self, cmd: dict[str, Any]) -> Room:
        return await self.rooms.directory.require(fields.room_id(cmd.get("room")))
