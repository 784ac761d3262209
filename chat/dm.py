"""Direct messages between two people anywhere in the event: ``dm.send``, ``dm.history`` and
``dm.conversations``.

A DM goes to every open session of its recipient on every node, as the event ``dm {id, from,
name, text, ts, n}``; ``n`` numbers the messages of one conversation (1, 2, 3 ...), whoever sent
them. Each conversation keeps its newest messages in the broker, so a person who reconnects reads
it back with ``dm.history``. Each user has an index of their conversations (a capped broker
index: the other user -> the last message's ``n`` and ``ts``, and the other's name as last seen
in a message they sent), updated for both sides at every ``dm.send``, which
``dm.conversations`` reads. Text is plain text, stored and sent as given (trimmed).

Who may be sent a DM: every user who said hello with a token of the event, for good (the event's
people are a list its organizers keep), and a guest while they are connected and for
``HubConfig.guest_ttl`` after that. Guests come and go by the thousand, each under a fresh id:
keeping each for good would grow the store by one per guest hello; so a guest's standing is a
key with that ttl, written at their hello, kept alive while a session of theirs is open and
written once more when one ends.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from chat.moderation import chat_limiter, check_rate
from chat.wire import (
    Conversation,
    DmConversationsReply,
    DmEvent,
    DmHistoryReply,
    DmSendReply,
)
from hub import fields
from hub.auth import Identity, Role
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import FeatureContext
from hub.node import Node
from hub.session import Session
from rooms.event_state import EventState

log = logging.getLogger(__name__)

# The store set of every user id that ever said hello with a token of the event (not a guest):
# direct messages go to known users only.
KNOWN_USERS: Final = "users"
# The longest time between two writes of a connected guest's standing (shorter when
# HubConfig.guest_ttl is short: a third of it).
GUEST_REFRESH: Final = 600.0

MAX_TEXT: Final = 2000
KEPT_PER_CONVERSATION: Final = 1000
HISTORY_DEFAULT: Final = 50
HISTORY_MAX: Final = 200
RESTORE_SPACING: Final = 5.0
# The conversations a user's index keeps (and dm.conversations lists).
CONVERSATIONS_KEPT: Final = 200


def conversation(a: str, b: str) -> str:
    """The one name of the conversation between users ``a`` and ``b``, whichever sends. The
    first id is length-prefixed: ids may contain any character, and no two pairs may share a
    name."""
    low, high = sorted((a, b))
    return f"{len(low)}:{low}|{high}"


def guest_key(user: str) -> str:
    """The store value that makes guest ``user`` known to ``dm.send`` while it lasts."""
    return f"dm:guest:{user}"


def counter_key(a: str, b: str) -> str:
    """The broker counter that numbers a conversation's messages."""
    return f"dm:n:{conversation(a, b)}"


def log_key(a: str, b: str) -> str:
    """The broker log of a conversation's messages (score: ``n``)."""
    return f"dm:{conversation(a, b)}"


def conversations_key(user: str) -> str:
    """The broker index of ``user``'s conversations (member: the other user; score: the last
    message's ``ts`` in milliseconds)."""
    return f"dm:c:{user}"


def conversation_entry(other: str, record: Mapping[str, Any]) -> Conversation:
    """One ``dm.conversations`` entry ``{with, name, n, ts}`` from an index record."""
    return {"with": other, "name": record.get("name"), "n": record["n"], "ts": record["ts"]}


class DirectMessages:
    """``dm.send`` delivers to every session of a known user and keeps the message;
    ``dm.history`` pages one conversation of the caller. DMs to oneself are ``bad_request``,
    to a user who never said hello (or a guest gone for longer than ``guest_ttl``)
    ``not_found``; the per-user chat rate applies to senders below moderator."""

    def __init__(
        self,
        node: Node,
        event: EventState,
        takes_messages: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.node = node
        # Whether a user takes new conversations (their profile's ``contact``); the composition
        # root passes it in, as chat knows nothing of profiles.
        self.takes_messages = takes_messages
        # Once the event is over (the rooms feature's event state), sending is ``closed``.
        self.event = event
        self.limiter = chat_limiter(node)
        self._restored_at = -math.inf

    def install(self, ctx: FeatureContext) -> None:
        """Register ``dm.send`` and ``dm.history``."""
        ctx.command("dm.send", self.send)
        ctx.command("dm.history", self.history)
        ctx.command("dm.conversations", self.conversations)
        ctx.on_history_lost(self.restore_users)
        ctx.on_hello(self._know_user)
        ctx.on_session_closed(self._guest_left)
        ctx.every(min(GUEST_REFRESH, ctx.config.guest_ttl / 3), self.keep_guests_known)

    async def send(self, ctx: CommandContext, cmd: dict[str, Any]) -> DmSendReply:
        """Send ``text`` to user ``to`` -> ``{id, ts, n}``, acknowledged once kept (the
        recipient may be offline: they read it with ``dm.history``)."""
        to = fields.user_id(cmd.get("to"), "to")
        text = fields.text(cmd.get("text"), "text", MAX_TEXT)
        identity = ctx.identity
        if identity.role < Role.ORGANIZER:
            self.event.require_open("direct messages are")
        sender = identity.user_id
        if to == sender:
            raise HubError("bad_request", "a direct message needs someone else")
        store = self.node.store
        if not await self._known(to):
            raise HubError("not_found", f"no user {to}")
        if identity.role < Role.MODERATOR:
            await self._may_write(sender, to)
            check_rate(self.limiter, ctx.session.rate_key, time.monotonic())
        n = await store.incr(counter_key(sender, to))
        ts = round(time.time(), 3)
        event: DmEvent = {
            "ev": "dm",
            "id": secrets.token_hex(6),
            "from": sender,
            "name": identity.name,
            "text": text,
            "ts": ts,
            "n": n,
        }
        # Kept before it is delivered: whatever a recipient saw, dm.history has too.
        await store.log_append(log_key(sender, to), n, pack(event), max_len=KEPT_PER_CONVERSATION)
        await self._index(sender, identity.name, to, n, ts)
        await self.node.send_to_user(to, event)
        return {"id": event["id"], "ts": event["ts"], "n": n}

    async def _may_write(self, sender: str, to: str) -> None:
        """``forbidden`` when ``to`` takes no new conversations and has none with ``sender``
        (a conversation once started stays open both ways)."""
        if self.takes_messages is None or await self.takes_messages(to):
            return
        if await self.node.store.index_get(conversations_key(sender), to) is None:
            raise HubError("forbidden", f"{to} does not take messages from people they do not know")

    async def _index(self, sender: str, name: str, to: str, n: int, ts: float) -> None:
        """Note the message in both users' conversation indexes. The message is kept already:
        a failure here only leaves a conversation list behind until the next message, so it is
        logged, not raised."""
        store = self.node.store
        score = round(ts * 1000)
        try:
            await store.index_put(
                conversations_key(to),
                sender,
                score,
                pack({"name": name, "n": n, "ts": ts}),
                max_len=CONVERSATIONS_KEPT,
            )
            # The sender's entry keeps the recipient's name as last seen in their own message.
            mine = await store.index_get(conversations_key(sender), to)
            seen = unpack(mine[1]).get("name") if mine is not None else None
            await store.index_put(
                conversations_key(sender),
                to,
                score,
                pack({"name": seen, "n": n, "ts": ts}),
                max_len=CONVERSATIONS_KEPT,
            )
        except Exception:
            log.warning("conversations of %s and %s not updated", sender, to, exc_info=True)

    async def conversations(self, ctx: CommandContext, cmd: dict[str, Any]) -> DmConversationsReply:
        """``{conversations: [{with, name, n, ts}]}``: the caller's conversations, newest first
        (by the time of their last message), at most :data:`CONVERSATIONS_KEPT`."""
        entries = await self.node.store.index_newest(
            conversations_key(ctx.identity.user_id), CONVERSATIONS_KEPT
        )
        return {
            "conversations": [
                conversation_entry(other, unpack(value)) for other, _, value in entries
            ]
        }

    async def history(self, ctx: CommandContext, cmd: dict[str, Any]) -> DmHistoryReply:
        """``{messages}``: the caller's conversation with user ``with`` as delivered (``dm``
        events), those with ``n`` < ``before``, oldest first, at most ``limit`` (default 50, at
        most 200)."""
        other = fields.user_id(cmd.get("with"), "with")
        before = fields.optional_integer(cmd.get("before"), "before", 0, fields.MAX_SEQ)
        limit = (
            fields.optional_integer(cmd.get("limit"), "limit", 1, HISTORY_MAX) or HISTORY_DEFAULT
        )
        me = ctx.identity.user_id
        if other == me:
            raise HubError("bad_request", "a conversation needs someone else")
        items = await self.node.store.log_range(log_key(me, other), before, limit)
        return {"messages": [unpack(item) for _, item in items]}

    async def _known(self, user: str) -> bool:
        store = self.node.store
        return (
            await store.set_contains(KNOWN_USERS, user)
            or await store.get(guest_key(user)) is not None
        )

    async def _know_user(self, ctx: CommandContext, identity: Identity) -> None:
        # Known from now on, on every node: dm.send refuses unknown users.
        await self._know(identity.user_id, guest=identity.guest)

    async def _know(self, user: str, *, guest: bool) -> None:
        if guest:
            await self.node.store.put(guest_key(user), b"1", ttl=self.node.config.guest_ttl)
        else:
            await self.node.store.set_add(KNOWN_USERS, user)

    async def _guest_left(self, session: Session) -> None:
        # Known for guest_ttl from the end of their last session, not from the last refresh.
        identity = session.identity
        if identity is not None and identity.guest:
            await self._know(identity.user_id, guest=True)

    def _local_guests(self) -> list[str]:
        """The guests with a session on this node."""
        return [
            user
            for user, sessions in self.node.users.items()
            if any(s.identity is not None and s.identity.guest for s in sessions.values())
        ]

    async def keep_guests_known(self) -> None:
        """The periodic job: the guests connected to this node stay known for ``guest_ttl``
        from now."""
        for user in self._local_guests():
            await self._know(user, guest=True)

    async def restore_users(self, room: str) -> None:
        """The broker lost its data (the history-lost hook): the users connected to this node are
        known again. Runs at most once every 5 s, however many rooms report the loss."""
        # Every followed room reports the same loss at once: restore once for all of them.
        now = time.monotonic()
        if now - self._restored_at < RESTORE_SPACING:
            return
        self._restored_at = now
        guests = set(self._local_guests())
        for user in list(self.node.users):
            await self._know(user, guest=user in guests)
