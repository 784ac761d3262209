"""Chat moderation: mutes, slow mode and the per-user chat rate.

The rules are pure functions of times in unix seconds; :class:`ChatRules` keeps their state in the
broker, so every node applies the same mute and slow mode. :class:`ModerationOps` registers the
moderator ops ``chat.mute`` and ``room.slowmode``; each change is a stored event of the room, so
every member on every node sees it in order.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

from chat.wire import ChatMutedFields, ChatMuteReply, ModerationPart, SlowmodeFields
from hub import fields
from hub.auth import Role
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import Entrant, FeatureContext, RoomInfo
from hub.node import Node
from hub.ratelimit import KeyedLimiter
from hub.store import Store
from hub.wire import EmptyReply
from rooms.feature import RoomsFeature

MAX_MUTE: Final = 86_400
MAX_SLOWMODE: Final = 3_600
# Messages (chat and DMs together) per user and node: a person typing fast, not a script.
CHAT_RATE: Final = 3.0
CHAT_BURST: Final = 10.0


def seconds_left(until: float, now: float) -> int:
    """Whole seconds from ``now`` to ``until``, rounded up; 0 once ``until`` has passed."""
    return max(0, math.ceil(until - now))


def mute_end(now: float, seconds: int) -> int:
    """The unix second at which a mute of ``seconds`` from ``now`` ends; 0 for no mute."""
    return math.ceil(now) + seconds if seconds > 0 else 0


def slow_wait(last_sent: float, interval: int, now: float) -> int:
    """Seconds a user who last posted at ``last_sent`` must still wait under slow mode of
    ``interval`` seconds (0: they may post now). The current interval counts, so shortening or
    ending slow mode takes effect at once."""
    return seconds_left(last_sent + interval, now) if interval > 0 else 0


def mute_key(room: str, user: str) -> str:
    """Where a user's mute in a room is kept (its end, unix seconds)."""
    return f"mute:{room}:{user}"


def slowmode_key(room: str) -> str:
    """Where a room's slow-mode interval is kept."""
    return f"slowmode:{room}"


def slot_key(room: str, user: str) -> str:
    """Where a user's last message under slow mode is kept (its time, unix seconds)."""
    return f"slow:{room}:{user}"


_limiters: weakref.WeakKeyDictionary[Node, KeyedLimiter] = weakref.WeakKeyDictionary()


def chat_limiter(node: Node) -> KeyedLimiter:
    """The node's per-user limiter of chat messages and DMs (one for both, apart from the
    command limits)."""
    limiter = _limiters.get(node)
    if limiter is None:
        limiter = _limiters[node] = KeyedLimiter(CHAT_RATE, CHAT_BURST)
    return limiter


def check_rate(limiter: KeyedLimiter, user: str, now: float) -> None:
    """Take one message from ``user``'s bucket, else ``rate_limited`` with the wait."""
    if not limiter.take(user, now):
        wait = max(1, math.ceil(limiter.retry_after(user, now)))
        raise HubError("rate_limited", f"too many messages: wait {wait} s", retry_in=wait)


class ChatRules:
    """Mutes and slow mode of every room, kept in the broker. ``clock`` gives unix seconds
    (tests replace it to step time; the broker's expiry only cleans up behind it)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def muted_until(self, room: str, user: str) -> int:
        """When ``user``'s mute in ``room`` ends (unix seconds); 0 when not muted."""
        raw = await self.store.get(mute_key(room, user))
        return self.live_until(raw) if raw is not None else 0

    def live_until(self, stored: bytes) -> int:
        """When a stored mute ends (unix seconds), or 0 once it has ended."""
        until: int = unpack(stored)
        return until if until > self.clock() else 0

    async def check_mute(self, room: str, user: str) -> None:
        """``forbidden`` with the time left while ``user`` is muted in ``room``."""
        until = await self.muted_until(room, user)
        if until:
            left = seconds_left(until, self.clock())
            raise HubError("forbidden", f"muted for {left} s more")

    async def mute(self, room: str, user: str, seconds: int) -> int:
        """Mute ``user`` in ``room`` for ``seconds`` (0 unmutes); returns when it ends (0)."""
        until = mute_end(self.clock(), seconds)
        if until:
            # A second over the mute: the rule reads `until`, the expiry only cleans up.
            await self.store.put(mute_key(room, user), pack(until), ttl=seconds + 1)
        else:
            await self.store.delete(mute_key(room, user))
        return until

    async def slowmode(self, room: str) -> int:
        """The room's slow-mode interval in seconds; 0 when off."""
        raw = await self.store.get(slowmode_key(room))
        return int(unpack(raw)) if raw is not None else 0

    async def set_slowmode(self, room: str, seconds: int) -> None:
        """Turn slow mode on with ``seconds`` between a user's messages, or off with 0."""
        if seconds:
            await self.store.put(slowmode_key(room), pack(seconds))
        else:
            await self.store.delete(slowmode_key(room))

    async def take_slot(self, room: str, user: str, interval: int) -> int:
        """Claim ``user``'s next message slot under slow mode of ``interval`` seconds; returns
        0 when claimed, else the seconds left to wait. The claim is one atomic set-if-absent, so
        two nodes cannot both grant it."""
        now = self.clock()
        key = slot_key(room, user)
        existing = await self.store.set_if_absent(key, pack(now), ttl=interval)
        if existing is None:
            return 0
        wait = slow_wait(float(unpack(existing)), interval, now)
        if wait:
            return wait
        # The interval passed by our clock before the broker expired the key (a shortened
        # interval, or a clock a hair ahead): the slot is free.
        await self.store.put(key, pack(now), ttl=interval)
        return 0

    async def release_slot(self, room: str, user: str) -> None:
        """Give back a slot whose message was not posted after all."""
        await self.store.delete(slot_key(room, user))


class ModerationOps:
    """``chat.mute`` and ``room.slowmode`` (moderators of the room), and the caller's part of
    the join snapshot: ``slowmode`` while it is on, ``muted_until`` while muted."""

    def __init__(self, node: Node, rooms: RoomsFeature, rules: ChatRules) -> None:
        self.node = node
        self.rooms = rooms
        self.rules = rules

    def install(self, ctx: FeatureContext) -> None:
        """Register the ops and the snapshot part."""
        ctx.command("chat.mute", self.mute)
        ctx.command("room.slowmode", self.slowmode)
        ctx.on_room_snapshot(self.room_snapshot)
        ctx.on_snapshot(self.snapshot)

    async def _moderated_room(self, ctx: CommandContext, cmd: dict[str, Any]) -> str:
        room = fields.room_id(cmd.get("room"))
        await self.rooms.directory.require(room)
        if await self.rooms.roles.current_role(ctx.session, room) < Role.MODERATOR:
            raise HubError("forbidden", f"moderator role needed in {room}")
        return room

    async def mute(self, ctx: CommandContext, cmd: dict[str, Any]) -> ChatMuteReply:
        """Mute a user in a room for ``seconds`` (0 unmutes) -> ``{until}``; stores the event
        ``chat.muted {room, seq, user, until}`` (``until`` 0 when unmuted)."""
        room = await self._moderated_room(ctx, cmd)
        user = fields.user_id(cmd.get("user"))
        seconds = fields.integer(cmd.get("seconds"), "seconds", 0, MAX_MUTE)
        until = await self.rules.mute(room, user, seconds)
        muted: ChatMutedFields = {"user": user, "until": until}
        await self.node.publish_event(room, "chat.muted", muted)
        return {"until": until}

    async def slowmode(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Set the room's slow mode (0 turns it off) -> ``{}``; stores the event
        ``room.slowmode {room, seq, seconds}``."""
        room = await self._moderated_room(ctx, cmd)
        seconds = fields.integer(cmd.get("seconds"), "seconds", 0, MAX_SLOWMODE)
        await self.rules.set_slowmode(room, seconds)
        slowmode: SlowmodeFields = {"seconds": seconds}
        await self.node.publish_event(room, "room.slowmode", slowmode)
        return {}

    async def room_snapshot(self, room: RoomInfo, role: Role) -> ModerationPart:
        """The room's part of the join snapshot: ``slowmode`` (seconds) while on."""
        slowmode = await self.rules.slowmode(room.id)
        return {"slowmode": slowmode} if slowmode else {}

    async def snapshot(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[ModerationPart | Exception]:
        """Each entrant's part of the join snapshot: ``muted_until`` while they are muted (the
        entrants' mutes read in one go)."""
        keys = [mute_key(room.id, entrant.ctx.identity.user_id) for entrant in entrants]
        parts: list[ModerationPart | Exception] = []
        for stored in await self.rules.store.get_many(keys):
            until = self.rules.live_until(stored) if stored is not None else 0
            parts.append({"muted_until": until} if until else {})
        return parts
