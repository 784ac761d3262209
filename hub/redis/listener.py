"""The Redis broker's listener: one pub/sub connection per node, read by one task, which hands
what it hears to the node's handler.

It tracks, per subscribed room (any topic but ``node:``/``user:`` ones), the epoch and the last
seq it delivered, starting from the room's head read once Redis confirmed the subscription. An
envelope that does not follow on (pub/sub loses messages when its connection breaks) makes it
read the missing events from the stream and deliver them first; an unknown epoch (Redis came
back empty) makes it call ``receive_epoch`` and deliver the new epoch from seq 1.

The read loop itself never waits for Redis: a room that needs its stream read (the head at its
subscription, a gap, a reconnect) gets a task of its own for the read, and the events heard for
that room meanwhile wait in the room's queue, in arrival order, until the task has delivered what
the stream held and then settles them. Other rooms keep flowing; each room's events still reach
the handler in seq order, once, without a gap. Events heard before a read began are covered by
it: one of another epoch is stale, and one the stream no longer retains is delivered late rather
than never.

It survives Redis restarts: it reconnects with capped, fully jittered exponential back-off,
subscribes every topic again and catches every room up from its stream before :meth:`ready` is
True again. A probe published on the node's own channel proves the subscription still hears; one
that stays silent for three probe intervals counts as a deaf connection, which is dropped and
replaced. A read of a room that fails (Redis down) drops the connection the same way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from hub.broker import (
    NODE_TOPIC_PREFIX,
    USER_TOPIC_PREFIX,
    BrokerCounters,
    BrokerHandler,
    BrokerSettings,
    BrokerUnavailable,
    History,
    StoredEvent,
    node_topic,
)
from hub.redis import envelope
from hub.redis.connection import UNAVAILABLE, RedisConnection

log = logging.getLogger(__name__)

# How many stream entries one catch-up read fetches.
_CATCH_UP_PAGE: Final = 500
# First back-off step of the listener's reconnect loop (seconds).
_BACKOFF_BASE: Final = 0.05

#: Reads a room's stream: ``(room, after, count)`` -> up to ``count`` events after ``after``
#: (-1: all, 0: just the head), starting an epoch for a room that has none.
StreamReader = Callable[[str, int, int], Awaitable[History]]


class _Deaf(Exception):
    """The subscription stopped hearing its own probes."""


@dataclass(eq=False, slots=True)
class _Room:
    """What the listener delivered of one subscribed room, and what waits for a stream read."""

    # None until the head read that follows the subscription's confirmation.
    epoch: str | None = None
    last: int = 0
    # Events heard while a read of the room's stream is needed or under way, in arrival order,
    # each with its arrival number.
    waiting: collections.deque[tuple[int, StoredEvent]] = field(default_factory=collections.deque)
    # Events numbered below it were heard before the latest read of the stream began.
    covered: int = 0
    # The task reading the room's stream, while one does.
    task: asyncio.Task[None] | None = None


@dataclass(eq=False, slots=True)
class _Session:
    """One pub/sub connection's lifetime."""

    conn: AbstractConnection
    # Set with the error of a room's stream read that failed: the connection is then replaced.
    failure: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # topic -> SUBSCRIBE/UNSUBSCRIBE commands sent on this connection and not yet confirmed
    inflight: dict[str, int] = field(default_factory=dict)
    last_heard: float = 0.0


def _is_room(topic: str) -> bool:
    return not (topic.startswith(NODE_TOPIC_PREFIX) or topic.startswith(USER_TOPIC_PREFIX))


class Listener:
    """Node ``node_id``'s subscriptions and the task that delivers what they hear to its
    handler (see the module docstring). ``read`` reads a room's stream."""

    def __init__(
        self,
        connection: RedisConnection,
        node_id: str,
        settings: BrokerSettings,
        read: StreamReader,
    ) -> None:
        self.node_id = node_id
        self.settings = settings
        #: Its reconnects and deaf connections.
        self.counters = BrokerCounters()
        self._connection = connection
        self._timeout = connection.timeout
        self._read = read
        self._channel_prefix = connection.channel_prefix
        self._node_topic = node_topic(node_id)
        self._probe_token = uuid.uuid4().hex.encode()

        self._handler: BrokerHandler | None = None
        self._closed = False
        self._ready = False
        self._listener: asyncio.Task[None] | None = None
        self._session: _Session | None = None
        self._write_lock = asyncio.Lock()
        # Topics this node wants; rooms among them with what was delivered; pending subscribes.
        self._topics: set[str] = set()
        self._rooms: dict[str, _Room] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}
        # Stored events heard so far (on any topic): numbers their arrivals.
        self._arrivals = 0
        # The rooms' stream reads under way.
        self._reads: set[asyncio.Task[None]] = set()
        # Topics subscribed in this loop iteration, sent together by the task that follows it.
        self._to_subscribe: list[str] = []
        self._subscribe_sends: set[asyncio.Task[None]] = set()

    async def start(self, handler: BrokerHandler) -> None:
        """Connect, subscribe to this node's own topic and start delivering to ``handler``.

        Raises :class:`~hub.broker.BrokerUnavailable` (after closing again) when the node's
        subscription is not active within the connection's ``timeout``."""
        if self._handler is not None or self._closed:
            raise RuntimeError("broker already started (or closed)")
        self._handler = handler
        self._listener = asyncio.create_task(self._listen(), name=f"broker-listener:{self.node_id}")
        try:
            await self.subscribe(self._node_topic)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop delivering and end the listener (and its connection). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ready = False
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await self._stop_reads()
        sends = list(self._subscribe_sends)
        for task in sends:
            task.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(None)
        self._pending.clear()
        self._topics.clear()
        self._rooms.clear()

    def ready(self) -> bool:
        """True while connected, subscribed, caught up and hearing (False from a lost or silent
        connection until the listener has re-subscribed and delivered what it missed)."""
        session = self._session
        heard = session.last_heard if session is not None else 0.0
        if heard and time.monotonic() - heard > 3 * self.settings.probe_interval:
            return False  # silent: the probe will find it deaf and reconnect
        return self._ready and not self._closed

    async def subscribe(self, topic: str) -> None:
        """Receive ``topic`` from now on; returns once Redis confirmed the subscription (and, for
        a room, the listener knows the room's head, so every later event is delivered).

        Waits at most ``timeout`` seconds (across a reconnect), then gives up the subscription
        and raises :class:`~hub.broker.BrokerUnavailable`."""
        if self._handler is None or self._closed:
            raise RuntimeError("broker not started")
        fut = self._pending.get(topic)
        if topic not in self._topics:
            self._topics.add(topic)
            fut = asyncio.get_running_loop().create_future()
            self._pending[topic] = fut
            if self._session is not None:
                self._subscribe_soon(topic)
        if fut is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._timeout)
        except TimeoutError:
            error = BrokerUnavailable(f"subscription to {topic!r} not confirmed")
            if self._pending.get(topic) is fut:
                # Fail every waiter of this subscription, then give it up.
                del self._pending[topic]
                fut.set_exception(BrokerUnavailable(str(error)))
                fut.exception()  # retrieved: the waiters each raise their own
                await self.unsubscribe(topic)
            raise error from None
        if self._closed:
            raise BrokerUnavailable("broker closed")

    def position(self, room: str) -> tuple[str, int] | None:
        """The ``(epoch, seq)`` of the last event of ``room`` delivered to the handler, once its
        subscription is confirmed and its head read (None before, or when not subscribed).
        Later deliveries continue from it, in order, whatever the connection goes through:
        a reconnect catches up from there, a lost history comes as a new epoch first."""
        if room not in self._topics or room in self._pending:
            return None
        state = self._rooms.get(room)
        if state is None or state.epoch is None:
            return None
        return state.epoch, state.last

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (nothing more is delivered for it). Idempotent."""
        if topic not in self._topics:
            return
        self._topics.discard(topic)
        self._rooms.pop(topic, None)
        fut = self._pending.pop(topic, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        session = self._session
        if session is not None:
            await self._send(session, "UNSUBSCRIBE", [topic])

    def _subscribe_soon(self, topic: str) -> None:
        """Send ``SUBSCRIBE`` for ``topic`` with the other topics subscribed in this loop
        iteration, as one command: a breakout round makes a node subscribe to dozens of rooms
        at once."""
        # Topics wait here only until the task started for the first of them runs.
        first = not self._to_subscribe
        self._to_subscribe.append(topic)
        if first:
            task = asyncio.get_running_loop().create_task(
                self._send_subscribes(), name=f"broker-subscribe:{self.node_id}"
            )
            # The loop keeps only weak references to tasks.
            self._subscribe_sends.add(task)
            task.add_done_callback(self._subscribe_sends.discard)

    async def _send_subscribes(self) -> None:
        # Topics subscribed from here on go with the next command, sent after this one (the
        # write lock keeps the order).
        topics, self._to_subscribe = list(dict.fromkeys(self._to_subscribe)), []
        session = self._session
        if session is None:
            return  # the next connection subscribes every wanted topic
        try:
            await self._send(session, "SUBSCRIBE", topics)
        except Exception:
            # Their subscribers time out and give up (BrokerUnavailable), as for a lost reply.
            log.exception("broker %s: SUBSCRIBE failed", self.node_id)

    async def _send(self, session: _Session, command: str, topics: Sequence[str]) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE on the session's connection for those of ``topics`` whose
        wanted state still matches (decided under the lock, so the wire order is the order of
        the latest decisions)."""
        async with self._write_lock:
            want = command == "SUBSCRIBE"
            chosen = [t for t in topics if (t in self._topics) == want]
            conn = session.conn
            # send_command would silently reconnect a closed connection, without subscriptions.
            if not chosen or self._session is not session or not conn.is_connected:
                return
            for topic in chosen:
                session.inflight[topic] = session.inflight.get(topic, 0) + 1
            try:
                await conn.send_command(
                    command, *(self._connection.channel(t) for t in chosen), check_health=False
                )
            except UNAVAILABLE as exc:
                # The connection is gone: the listener notices and subscribes everything anew.
                log.debug("broker %s: %s failed: %s", self.node_id, command, exc)

    async def _listen(self) -> None:
        """Keep one pub/sub session alive until cancelled, reconnecting with capped, fully
        jittered exponential back-off."""
        attempt = 0
        connected_before = False
        while True:
            # Not a pooled connection: it is owned by this loop and never lent to a command.
            conn: AbstractConnection = self._connection.dedicated()
            session: _Session | None = None
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                session = _Session(conn)
                self._session = session
                await self._setup(session)
                attempt = 0
                if connected_before:
                    self.counters.reconnects += 1
                connected_before = True
                await self._serve(session)
            except asyncio.CancelledError:
                raise
            except _Deaf:
                self.counters.deaf_detections += 1
                log.warning(
                    "broker %s: subscriber deaf (probe unheard); reconnecting", self.node_id
                )
            except (*UNAVAILABLE, BrokerUnavailable, TimeoutError) as exc:
                # Loud once per outage; each further failed attempt is routine until it ends.
                log.log(
                    logging.WARNING if attempt == 0 else logging.INFO,
                    "broker %s: subscriber lost (%s: %s); reconnecting",
                    self.node_id,
                    type(exc).__name__,
                    exc,
                )
            except Exception:
                log.exception("broker %s: subscriber failed; reconnecting", self.node_id)
            finally:
                self._ready = False
                self._session = None
                if session is not None and session.failure.done():
                    session.failure.exception()  # retrieved: _serve raised it, or it came late
                await self._stop_reads()
                await conn.disconnect(nowait=True)
            cap = min(self.settings.reconnect_cap, _BACKOFF_BASE * 2**attempt)
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(random.uniform(0, cap))

    async def _stop_reads(self) -> None:
        """End every room's stream read. Rooms whose head was never read are forgotten (the
        next session's confirmation of their subscription reads it); the others keep what
        waits, which their next read covers."""
        reads = list(self._reads)
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        for name, room in list(self._rooms.items()):
            room.task = None
            if room.epoch is None:
                del self._rooms[name]

    async def _setup(self, session: _Session) -> None:
        """Subscribe every wanted topic, wait for the confirmations, then have every room
        caught up from its stream: ready once all of them are."""
        await self._send(session, "SUBSCRIBE", sorted(self._topics))
        limit = max(self._timeout, 3 * self.settings.probe_interval)
        async with asyncio.timeout(limit):
            while any(session.inflight.values()):
                self._dispatch(session, await self._read_reply(session))
        session.last_heard = time.monotonic()
        catching_up: set[asyncio.Task[None]] = set()
        for name, room in self._rooms.items():
            if room.epoch is None:
                continue  # its head read is under way and catches nothing up
            if room.task is None:
                self._start_read(name, room, session)
            assert room.task is not None
            catching_up.add(room.task)
        if not catching_up:
            self._ready = True
            return

        def caught_up(task: asyncio.Task[None]) -> None:
            catching_up.discard(task)
            if not catching_up and self._session is session and not session.failure.done():
                self._ready = True

        for task in catching_up:
            task.add_done_callback(caught_up)

    async def _serve(self, session: _Session) -> None:
        """Read and dispatch until the connection fails, the probe finds it deaf or a room's
        stream read fails."""

        async def read_forever() -> None:
            while True:
                self._dispatch(session, await self._read_reply(session))

        reader = asyncio.create_task(read_forever())
        prober = asyncio.create_task(self._probe(session))
        try:
            done, _ = await asyncio.wait(
                {reader, prober, session.failure}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            reader.cancel()
            prober.cancel()
            await asyncio.gather(reader, prober, return_exceptions=True)
        for task in done:
            task.result()
        raise RedisConnectionError("subscriber stopped")

    async def _read_reply(self, session: _Session) -> Any:
        # No read timeout: an idle subscription is normal; the probe detects a dead one.
        return await session.conn.read_response(timeout=math.inf)

    async def _probe(self, session: _Session) -> None:
        interval = self.settings.probe_interval
        probe = envelope.probe(self.node_id, self._probe_token)
        channel = self._connection.channel(self._node_topic)
        while True:
            await asyncio.sleep(interval)
            if self._node_topic not in self._topics:
                # Nobody listens to the probe channel: no verdict possible (nor a false one).
                session.last_heard = time.monotonic()
                continue
            if time.monotonic() - session.last_heard > 3 * interval:
                raise _Deaf
            try:
                await asyncio.wait_for(self._connection.redis.publish(channel, probe), 2 * interval)
            except (*UNAVAILABLE, TimeoutError) as exc:
                # Unanswered probes end in _Deaf above; nothing else to do here.
                log.debug("broker %s: probe not sent: %r", self.node_id, exc)

    # --- the read loop: never awaits --------------------------------------------------------

    def _dispatch(self, session: _Session, reply: Any) -> None:
        session.last_heard = time.monotonic()
        if not isinstance(reply, list) or len(reply) < 3:
            return  # PONG and the like
        kind, channel = reply[0], reply[1]
        if not isinstance(channel, bytes):
            return
        name = channel.decode(errors="replace")
        if not name.startswith(self._channel_prefix):
            return
        topic = name[len(self._channel_prefix) :]
        if kind == b"message":
            self._on_message(topic, reply[2])
        elif kind in (b"subscribe", b"unsubscribe"):
            self._on_confirm(session, kind == b"subscribe", topic)

    def _on_confirm(self, session: _Session, subscribed: bool, topic: str) -> None:
        left = session.inflight.get(topic, 0) - 1
        if left > 0:
            session.inflight[topic] = left
            return
        session.inflight.pop(topic, None)
        if not subscribed or topic not in self._topics:
            return
        if _is_room(topic):
            room = self._rooms.get(topic)
            if room is None:
                # The room's head read after the confirmation is the baseline: everything later
                # reaches this connection, and what came between is a duplicate of the head.
                # That read resolves the subscription.
                room = self._rooms[topic] = _Room()
                self._start_read(topic, room, session)
                return
            if room.epoch is None:
                return  # its head read resolves the subscription
        self._resolve(topic)

    def _on_message(self, topic: str, data: bytes) -> None:
        if topic not in self._topics:
            return
        try:
            item = envelope.decode(topic, data)
        except ValueError:
            log.warning("broker %s: dropped a malformed envelope on %r", self.node_id, topic)
            return
        if isinstance(item, StoredEvent):
            self._on_stored(item)
        elif item is not None and self._handler is not None:
            # A probe (None) only proves the connection hears: last_heard is set for every reply.
            self._notify(self._handler.receive_message, topic, item)

    def _on_stored(self, event: StoredEvent) -> None:
        room = self._rooms.get(event.room)
        if room is None:
            if _is_room(event.room):
                return  # not confirmed yet: the head read at confirmation covers it
            # Stored events on a node/user topic: no baseline, start from the first one heard.
            room = self._rooms[event.room] = _Room(event.epoch, event.seq - 1)
        self._arrivals += 1
        arrival = self._arrivals
        if room.task is None and not room.waiting and self._settle(room, arrival, event):
            return
        # A gap (lost messages), another epoch, or a read under way: the stream decides.
        room.waiting.append((arrival, event))
        session = self._session
        if room.task is None and session is not None:
            self._start_read(event.room, room, session)

    def _settle(self, room: _Room, arrival: int, event: StoredEvent) -> bool:
        """Deliver or drop ``event`` where the room stands; False when only a read of the
        stream can tell (a gap, or another epoch, heard after the latest read began)."""
        if event.epoch == room.epoch:
            if event.seq <= room.last:
                return True  # already delivered (from the stream, or a duplicate)
            if event.seq == room.last + 1 or arrival < room.covered:
                # Next in order; or its predecessors were gone from the stream read after it
                # was heard (trimmed): late beats never.
                self._deliver(room, event)
                return True
            return False
        # Of another epoch than a read that began after it was heard: stale.
        return arrival < room.covered

    # --- the rooms' stream reads ------------------------------------------------------------

    def _start_read(self, name: str, room: _Room, session: _Session) -> None:
        task = asyncio.create_task(
            self._read_room(name, room, session), name=f"broker-read:{self.node_id}:{name}"
        )
        room.task = task
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read_room(self, name: str, room: _Room, session: _Session) -> None:
        """Read the room's stream (its head, or what the room missed), then settle what waits;
        again while something heard after that read still needs one."""
        try:
            while self._rooms.get(name) is room:
                if room.epoch is None:
                    await self._read_head(name, room)
                else:
                    await self._catch_up(name, room)
                if self._rooms.get(name) is not room or self._drain(room):
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, (*UNAVAILABLE, BrokerUnavailable)):
                log.exception("broker %s: reading room %r failed", self.node_id, name)
            if self._session is session and not session.failure.done():
                session.failure.set_exception(exc)
        finally:
            if room.task is asyncio.current_task():
                room.task = None

    def _drain(self, room: _Room) -> bool:
        """Settle the waiting events in arrival order; False (keeping the rest waiting) at the
        first one that needs another read."""
        waiting = room.waiting
        while waiting:
            arrival, event = waiting[0]
            if not self._settle(room, arrival, event):
                return False
            waiting.popleft()
        return True

    async def _read_head(self, name: str, room: _Room) -> None:
        """The subscription's baseline: the room's head, read after Redis confirmed it."""
        mark = self._arrivals
        snapshot = await self._read(name, 0, 0)
        if self._rooms.get(name) is not room:
            return  # unsubscribed meanwhile
        room.epoch, room.last, room.covered = snapshot.epoch, snapshot.last_seq, mark
        self._resolve(name)

    async def _catch_up(self, name: str, room: _Room) -> None:
        """Deliver every retained event of the room after the last delivered one, first telling
        the handler about a new epoch."""
        while True:
            mark = self._arrivals
            snapshot = await self._read(name, room.last, _CATCH_UP_PAGE)
            if self._rooms.get(name) is not room:
                return  # unsubscribed meanwhile
            if snapshot.epoch != room.epoch:
                room.epoch, room.last = snapshot.epoch, 0
                if self._handler is not None:
                    self._notify(self._handler.receive_epoch, name, snapshot.epoch)
                continue
            if snapshot.last_seq < room.last:
                # Same epoch, shorter history: a failover to a replica that lagged. Seqs up to
                # room.last will be reused and dropped here as duplicates; only a new epoch
                # (an operator flushing the room) can repair that.
                log.error(
                    "broker %s: room %r went back from seq %d to %d within epoch %s",
                    self.node_id,
                    name,
                    room.last,
                    snapshot.last_seq,
                    room.epoch,
                )
            if snapshot.events and snapshot.events[0].seq > room.last + 1:
                log.warning(
                    "broker %s: room %r lost seq %d..%d (trimmed before delivery)",
                    self.node_id,
                    name,
                    room.last + 1,
                    snapshot.events[0].seq - 1,
                )
            for event in snapshot.events:
                if event.seq > room.last:
                    self._deliver(room, event)
            if len(snapshot.events) < _CATCH_UP_PAGE or room.last >= snapshot.last_seq:
                room.covered = mark
                return

    def _resolve(self, topic: str) -> None:
        """The subscription to ``topic`` is active: its waiters return."""
        fut = self._pending.pop(topic, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _deliver(self, room: _Room, event: StoredEvent) -> None:
        room.last = event.seq
        if self._handler is not None:
            self._notify(self._handler.receive_event, event)

    def _notify(self, method: Callable[..., None], *args: Any) -> None:
        # A failing handler must not stop the listener nor lose later deliveries.
        try:
            method(*args)
        except Exception:
            log.exception("broker %s: handler failed", self.node_id)
