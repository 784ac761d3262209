"""Room chat: ``chat.send``, ``chat.history`` and ``chat.delete``, with the moderation ops of
:mod:`chat.moderation` installed alongside.

A message is a stored event of its room, ``chat {room, seq, id, user, name, text, ts,
reply_to?}``, so every member on every node sees it in seq order and recovers it with ``join
{since}``. Each one is also kept, exactly as sent, in the room's chat log, which outlasts the
core's recovery window: the newest ``HubConfig.chat_history`` messages of the room. Deleting a
message takes it out of the log. The ids that ``reply_to`` and ``chat.delete`` name are looked up
in an index capped like the log, so an id lives as long as its message stays in the log and no
longer. Text is plain text, stored and sent as given (trimmed).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any, Final, cast

from chat.moderation import ChatRules, chat_limiter, check_rate
from chat.wire import (
    ChatDeletedFields,
    ChatDeleteReply,
    ChatEvent,
    ChatFields,
    ChatHistoryReply,
    ChatSendReply,
)
from hub import fields
from hub.auth import Role
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import FeatureContext
from hub.node import Node
from rooms.feature import RoomsFeature
from rooms.model import joined_room

MAX_TEXT: Final = 2000
HISTORY_DEFAULT: Final = 50
HISTORY_MAX: Final = 200
# A key's first result is returned for a day; a claim whose sender vanished (a node that died
# mid-send) frees the key sooner, so the client's retry can post.
KEY_TTL: Final = 24 * 3600.0
CLAIM_TTL: Final = 30.0
_PENDING: Final = b""
# How many claims left behind a node remembers before it forgets the expired ones.
LEFT_KEPT: Final = 1000


def log_key(room: str) -> str:
    """The broker log of a room's chat messages (score: seq)."""
    return f"chat:{room}"


def ids_key(room: str) -> str:
    """The store's capped index of the messages in a room's chat log: id -> ``{seq, user}``
    under score seq, capped like the log, so the ids of trimmed messages go with them."""
    return f"chat:{room}:index"


def idempotency_key(room: str, user: str, key: str) -> str:
    """Where the first result of ``key`` is kept. The user id is length-prefixed: it may hold
    ``:``, and two users must never share a key."""
    return f"chat:key:{room}:{len(user)}:{user}:{key}"


class ChatFeature:
    """Chat in rooms. ``chat.send`` posts a message once per idempotency key, whatever the node;
    ``chat.history`` pages the room's log backwards; ``chat.delete`` removes a message for every
    member. Mutes, slow mode and the per-user chat rate apply to ``chat.send``."""

    def __init__(self, node: Node, rooms: RoomsFeature) -> None:
        self.node = node
        self.rooms = rooms
        self.rules = ChatRules(node.store)
        self.limiter = chat_limiter(node)
        # Claims that this node's attempts could not free -> when (monotonic seconds).
        self._left: dict[str, float] = {}

    def install(self, ctx: FeatureContext) -> None:
        """Register the chat ops (the moderation ops that share :attr:`rules` are
        :class:`chat.moderation.ModerationOps`)."""
        ctx.command("chat.send", self.send)
        ctx.command("chat.history", self.history)
        ctx.command("chat.delete", self.delete)

    # --- chat.send ------------------------------------------------------------------------------

    async def send(self, ctx: CommandContext, cmd: dict[str, Any]) -> ChatSendReply:
        """Post a message to a room the caller is in -> ``{id, seq}``, acknowledged once stored.

        With ``key``, a retry (on any node) returns the first ``{id, seq}`` and posts nothing;
        while the first attempt is still in flight a retry gets ``conflict``. The message is
        published once per key (``publish_event_once``), so even a retry after an attempt that
        stored the message and failed before recording its result posts nothing new. A failed
        attempt frees its key; one that could not (Redis failed under it) leaves its claim to the
        next attempt on this node (elsewhere the claim frees itself after :data:`CLAIM_TTL`).
        """
        room = fields.room_id(cmd.get("room"))
        text = fields.text(cmd.get("text"), "text", MAX_TEXT)
        reply_to = fields.optional_key(cmd.get("reply_to"), "reply_to")
        key = fields.optional_key(cmd.get("key"), "key")
        joined_room(room, ctx.session.rooms)
        identity = ctx.identity
        user = identity.user_id
        store = self.node.store
        claim = idempotency_key(room, user, key) if key is not None else None
        if claim is not None:
            earlier = await store.get(claim)
            if earlier is not None and not self._left_here(claim, earlier):
                return _earlier_result(earlier)
        moderator = await self.rooms.roles.current_role(ctx.session, room) >= Role.MODERATOR
        await self.rules.check_mute(room, user)
        if not moderator:
            check_rate(self.limiter, ctx.session.rate_key, time.monotonic())
        if reply_to is not None and await store.index_get(ids_key(room), reply_to) is None:
            raise HubError("not_found", f"no message {reply_to} in {room}")
        if claim is not None:
            try:
                earlier = await store.set_if_absent(claim, _PENDING, ttl=CLAIM_TTL)
            except Exception:
                self._leave(claim)  # its reply was lost: the claim may be set
                raise
            if earlier is not None and not self._take_over(claim, earlier):
                return _earlier_result(earlier)

        msg_id = secrets.token_hex(6)
        message: ChatFields = {
            "id": msg_id,
            "user": user,
            "name": identity.name,
            "text": text,
            "ts": round(time.time(), 3),
        }
        if reply_to is not None:
            message["reply_to"] = reply_to
        slotted = posted = False
        try:
            if not moderator:
                slotted = await self._take_slot(room, user)
            if claim is None:
                seq = await self.node.publish_event(room, "chat", message)
            else:
                seq, fresh = await self.node.publish_event_once(
                    room, "chat", message, claim, ttl=KEY_TTL
                )
                if not fresh:  # an earlier attempt stored it, then failed
                    message = await self._stored_message(room, seq, message)
                    msg_id = message["id"]
            posted = True
            # The log before the id: a delete racing with this send either finds no id
            # (not_found) or finds the message in the log; it never leaves a deleted message
            # behind in history.
            wire: ChatEvent = {"ev": "chat", "room": room, "seq": seq, **message}
            cap = self.node.config.chat_history
            await store.log_append(log_key(room), seq, pack(wire), max_len=cap)
            await store.index_put(
                ids_key(room), msg_id, seq, pack({"seq": seq, "user": user}), max_len=cap
            )
            result: ChatSendReply = {"id": msg_id, "seq": seq}
            if claim is not None:
                await store.put(claim, pack(result), ttl=KEY_TTL)
        except Exception:
            # Free the key so that a retry completes the send: the message is published once
            # per key, so the retry never posts it twice. (A cancelled send keeps its claim
            # until it expires.) The slow-mode slot is given back only if nothing was posted.
            if claim is not None:
                try:
                    await store.delete(claim)
                except Exception:
                    self._leave(claim)
            if slotted and not posted:
                with contextlib.suppress(Exception):
                    await self.rules.release_slot(room, user)
            raise
        return result

    def _leave(self, claim: str) -> None:
        """Remember a claim that an attempt of this node could not free (Redis failed under it):
        no attempt holds it any more, so the next one on this node may take it over instead of
        getting ``conflict`` until it expires."""
        now = time.monotonic()
        self._left[claim] = now
        if len(self._left) > LEFT_KEPT:
            self._left = {c: at for c, at in self._left.items() if now - at < CLAIM_TTL}

    def _left_here(self, claim: str, stored: bytes) -> bool:
        """Whether ``stored`` is a pending claim this node left behind (younger than
        :data:`CLAIM_TTL`: an older one expired, and what is pending now is another's)."""
        at = self._left.get(claim)
        return stored == _PENDING and at is not None and time.monotonic() - at < CLAIM_TTL

    def _take_over(self, claim: str, stored: bytes) -> bool:
        """Take a claim this node left behind over for the attempt at hand (once: a concurrent
        attempt on this node gets ``conflict``)."""
        if not self._left_here(claim, stored):
            return False
        del self._left[claim]
        return True

    async def _stored_message(self, room: str, seq: int, fallback: ChatFields) -> ChatFields:
        """The fields of the chat event stored at ``seq`` (an earlier attempt's), or
        ``fallback`` when history no longer holds it."""
        history = await self.node.broker.history(room, seq - 1, 1)
        for event in history.events:
            if event.seq == seq:
                body = unpack(event.body)
                body.pop("ev", None)
                return cast(ChatFields, body)  # what an earlier attempt stored, as above
        return fallback

    async def _take_slot(self, room: str, user: str) -> bool:
        """Claim the user's slow-mode slot when slow mode is on (``rate_limited`` if too soon);
        returns whether a slot was taken."""
        interval = await self.rules.slowmode(room)
        if not interval:
            return False
        wait = await self.rules.take_slot(room, user, interval)
        if wait:
            raise HubError("rate_limited", f"slow mode: wait {wait} s", retry_in=wait)
        return True

    # --- chat.history ---------------------------------------------------------------------------

    async def history(self, ctx: CommandContext, cmd: dict[str, Any]) -> ChatHistoryReply:
        """``{messages}``: the room's chat events (as sent live) with seq < ``before``, newest
        last, at most ``limit`` (default 50, at most 200); deleted ones are gone. Moderators also
        get ``cap``, the number of messages a room keeps."""
        room = fields.room_id(cmd.get("room"))
        before = fields.optional_integer(cmd.get("before"), "before", 0, fields.MAX_SEQ)
        limit = (
            fields.optional_integer(cmd.get("limit"), "limit", 1, HISTORY_MAX) or HISTORY_DEFAULT
        )
        await self.rooms.require_may_enter(ctx, room)
        items = await self.node.store.log_range(log_key(room), before, limit)
        reply: ChatHistoryReply = {"messages": [unpack(item) for _, item in items]}
        if await self.rooms.roles.current_role(ctx.session, room) >= Role.MODERATOR:
            reply["cap"] = self.node.config.chat_history
        return reply

    # --- chat.delete ----------------------------------------------------------------------------

    async def delete(self, ctx: CommandContext, cmd: dict[str, Any]) -> ChatDeleteReply:
        """Delete a message (its author, or a moderator of the room) -> ``{seq}`` of the stored
        event ``chat.deleted {room, seq, msg}``; ``not_found`` if unknown, deleted already or
        no longer in the room's chat log."""
        room = fields.room_id(cmd.get("room"))
        msg = fields.key(cmd.get("msg"), "msg")
        await self.rooms.directory.require(room)
        store = self.node.store
        entry = await store.index_get(ids_key(room), msg)
        if entry is None:
            raise HubError("not_found", f"no message {msg} in {room}")
        msg_seq, raw = entry
        info = unpack(raw)
        moderator = await self.rooms.roles.current_role(ctx.session, room) >= Role.MODERATOR
        if info["user"] != ctx.identity.user_id and not moderator:
            raise HubError("forbidden", "only its author or a moderator may delete a message")
        # Removing the id decides between concurrent deletes: one wins, the others not_found.
        if not await store.index_remove(ids_key(room), msg):
            raise HubError("not_found", f"no message {msg} in {room}")
        await store.log_remove(log_key(room), msg_seq)
        try:
            deleted: ChatDeletedFields = {"msg": msg}
            seq = await self.node.publish_event(room, "chat.deleted", deleted)
        except Exception:
            # Put the id back: a retry then finishes the delete and tells the members.
            with contextlib.suppress(Exception):
                await store.index_put(
                    ids_key(room), msg, msg_seq, raw, max_len=self.node.config.chat_history
                )
            raise
        return {"seq": seq}


def _earlier_result(stored: bytes) -> ChatSendReply:
    """The result of the first send with a key, or ``conflict`` while it is in flight."""
    if stored == _PENDING:
        raise HubError("conflict", "a message with this key is being sent; retry")
    result: ChatSendReply = unpack(stored)
    return {"id": result["id"], "seq": result["seq"]}
