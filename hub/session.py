"""One connection's state, free of I/O: who it is, where it is, and what waits to be sent.

The connection pump (``hub/endpoint.py``) feeds decoded commands to the dispatcher and writes what
:attr:`Session.queue` holds; everything else about a connection lives here and is tested with
plain calls.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Mapping
from typing import Any

from hub.auth import Identity, Role
from hub.codec import EncodedEvent, WireFormat, encode_outgoing
from hub.config import Limits
from hub.errors import CloseCode
from hub.outbound import OutboundQueue
from hub.ratelimit import FloodGuard, TokenBucket


class SessionState(enum.Enum):
    """A connection's life: it must say hello before anything else, and never comes back from
    closing."""

    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    CLOSING = "closing"
    CLOSED = "closed"


_MOVES: dict[SessionState, frozenset[SessionState]] = {
    SessionState.CONNECTED: frozenset({SessionState.AUTHENTICATED, SessionState.CLOSING}),
    SessionState.AUTHENTICATED: frozenset({SessionState.CLOSING}),
    SessionState.CLOSING: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A session was asked to move between states the life cycle does not allow."""


class Session:
    """One WebSocket connection of one user.

    ``deliver`` and ``send`` never block: they put encoded messages on the bounded
    :class:`~hub.outbound.OutboundQueue`. When it overflows the session asks to be closed with
    4008 (slow consumer), and everything else it would have received is dropped.
    """

    __slots__ = (
        "address",
        "bucket",
        "close_code",
        "close_reason",
        "expiry",
        "flood",
        "fmt",
        "held",
        "holders",
        "identity",
        "limits",
        "on_authenticated",
        "on_close_request",
        "queue",
        "rooms",
        "sid",
        "state",
    )

    def __init__(
        self, sid: str, fmt: WireFormat, limits: Limits, address: str | None = None
    ) -> None:
        self.sid = sid
        self.fmt = fmt
        # The client's address where it counts towards per-address limits (None: loopback).
        self.address = address
        self.limits = limits
        self.state = SessionState.CONNECTED
        self.identity: Identity | None = None
        self.rooms: set[str] = set()
        self.queue = OutboundQueue(limits.queue_messages, limits.queue_bytes)
        self.bucket = TokenBucket(limits.connection_rate, limits.connection_burst)
        self.flood: FloodGuard | None = None  # made on the first rate_limited reply
        self.close_code: CloseCode | None = None
        self.close_reason = ""
        self.held: list[tuple[object, bytes]] | None = None
        # Who holds events back (a join's command, a move into a room): they are released when
        # the last of them lets go, so one cannot release what another still holds.
        self.holders: list[object] | None = None
        # Called with the session once, when it first becomes authenticated, its identity set
        # (the endpoint's count of connections not yet past hello, its hello deadline, its log).
        self.on_authenticated: Callable[[Session], object] | None = None
        # The timer that closes the session when its time is up: the endpoint's hello deadline
        # until hello, then its token's expiry (cancelled at close).
        self.expiry: asyncio.TimerHandle | None = None
        # Called with the session once, when a close is first requested (the pump starts its
        # grace period).
        self.on_close_request: Callable[[Session], object] | None = None

    def __repr__(self) -> str:
        user = self.identity.user_id if self.identity else "-"
        return f"<Session {self.sid} {user} {self.state.value}>"

    @property
    def user_id(self) -> str:
        """The authenticated user's id ("" before hello)."""
        return self.identity.user_id if self.identity else ""

    @property
    def rate_key(self) -> str:
        """Whose per-user budgets this session spends: its user's, except that the guests of
        one client address share one (a guest who reconnects as a new guest gets no new
        budget). "" before hello."""
        identity = self.identity
        if identity is None:
            return ""
        if identity.guest and self.address is not None:
            return f"guests@{self.address}"
        return identity.user_id

    @property
    def open(self) -> bool:
        """True until the session starts closing."""
        return self.state in (SessionState.CONNECTED, SessionState.AUTHENTICATED)

    def role_in(self, room: str) -> Role:
        """The user's role in ``room`` from their token (attendee before hello)."""
        return self.identity.role_in(room) if self.identity else Role.ATTENDEE

    def flooding(self, now: float) -> bool:
        """Count a ``rate_limited`` reply; True once the connection keeps flooding after them."""
        if self.flood is None:
            self.flood = FloodGuard(self.limits.flood_rejections, self.limits.flood_window)
        return self.flood.rejected(now)

    def move(self, to: SessionState) -> None:
        """Change state, refusing moves the life cycle does not allow."""
        if to not in _MOVES[self.state]:
            raise IllegalTransition(f"session {self.sid}: {self.state.value} -> {to.value}")
        self.state = to

    def authenticate(self, identity: Identity) -> None:
        """Become (or, on refresh, stay) the user ``identity`` names."""
        if self.state is SessionState.CONNECTED:
            self.move(SessionState.AUTHENTICATED)
            self.identity = identity  # before the hook, which may say who it is
            if self.on_authenticated is not None:
                self.on_authenticated(self)
        elif self.state is SessionState.AUTHENTICATED:
            self.identity = identity
        else:
            raise IllegalTransition(
                f"session {self.sid}: cannot authenticate while {self.state.value}"
            )

    def deliver(self, event: EncodedEvent) -> None:
        """Queue an event encoded once for all its recipients (held back while a join is being
        answered, see :meth:`hold`)."""
        data = event.for_format(self.fmt)
        held = self.held
        if held is not None:
            if len(held) < self.queue.max_messages:
                held.append((event.message.get("room"), data))
                return
            self.held = None
            self.queue.overflow()
            self.request_close(CloseCode.SLOW_CONSUMER, "outbound queue overflowed")
        elif not self.queue.put(data) and self.queue.overflowed:
            self.request_close(CloseCode.SLOW_CONSUMER, "outbound queue overflowed")

    def hold(self, owner: object) -> None:
        """Hold events back until every ``owner`` that holds them has called :meth:`release`: a
        join's reply must reach the client before the live events of the room it joined, and
        the reply is only queued once it is built. Owners are told apart by identity; holding
        twice with one owner is one hold."""
        if self.holders is None:
            self.holders = [owner]
            self.held = []
        elif not any(holder is owner for holder in self.holders):
            self.holders.append(owner)

    def release(self, owner: object) -> None:
        """Let go of ``owner``'s hold (nothing when it holds none); once nobody holds, queue
        what was held back, in order, after whatever was queued meanwhile."""
        holders = self.holders
        if holders is None:
            return
        # By identity: owners are whoever holds (a command's context, a room), not values.
        kept = [holder for holder in holders if holder is not owner]
        if len(kept) == len(holders):
            return
        if kept:
            self.holders = kept
            return
        self.holders = None
        held, self.held = self.held, None
        if held:
            for _, data in held:
                if not self.queue.put(data):
                    if self.queue.overflowed:
                        self.request_close(CloseCode.SLOW_CONSUMER, "outbound queue overflowed")
                    return

    def discard_held(self, room: str) -> None:
        """Drop the held-back events of ``room`` (a join of it failed: they are not owed)."""
        if self.held:
            self.held = [(of, data) for of, data in self.held if of != room]

    def send(self, message: Mapping[str, Any]) -> None:
        """Queue a message meant for this session only (a reply, a direct event)."""
        if not self.queue.put(encode_outgoing(self.fmt, message)) and self.queue.overflowed:
            self.request_close(CloseCode.SLOW_CONSUMER, "outbound queue overflowed")

    def request_close(self, code: CloseCode, reason: str) -> None:
        """Ask the pump to close the connection with ``code`` once what is queued is written
        (a slow consumer's backlog was already dropped). The first request wins."""
        if self.open:
            self.move(SessionState.CLOSING)
            if self.expiry is not None:
                self.expiry.cancel()
                self.expiry = None
            self.close_code = code
            self.close_reason = reason
            self.queue.close()
            if self.on_close_request is not None:
                self.on_close_request(self)
