"""A hub node: this process's sessions, the local followers of each room's stream, and the broker
that links it to the other nodes.

Delivery has one path. Everything a node publishes (stored events, ephemeral room events, messages
for a session or a user, internal signals) goes through the broker and comes back to every
subscribed node, the publisher included, which hands it to its own sessions. So no event is ever
delivered twice, whichever node it started on.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.broker import EVERY_NODE_TOPIC, Broker, BrokerUnavailable, StoredEvent, user_topic
from hub.codec import EncodedEvent, pack, unpack
from hub.config import HubConfig
from hub.errors import CloseCode
from hub.fanout import StreamMembers
from hub.metrics import HubMetrics
from hub.ratelimit import KeyedLimiter
from hub.session import Session
from hub.store import Store
from hub.wire import ResetEvent, ShutdownEvent

log = logging.getLogger(__name__)

SignalHandler = Callable[[Any], None]
# A stored event as decoded from the broker: any feature's, so an open map.
StoredHook = Callable[[dict[str, Any]], None]
SessionHook = Callable[[Session], Awaitable[None]]
RoomHook = Callable[[str], Awaitable[None]]

# Envelope kinds of ephemeral broker messages.
_ROOM_EVENT = "e"
_TO_USER = "u"
_SIGNAL = "x"
_CLOSE_USER = "c"


@dataclass(frozen=True, slots=True)
class Position:
    """Where a session starts following a room: ``seq`` and ``epoch`` of its join, the stored
    events it ``missed`` since the position it asked for, and whether that recovery was whole."""

    epoch: str
    seq: int
    # Stored events of any feature, passed through as the broker holds them.
    missed: list[dict[str, Any]] | None
    recovered: bool | None


class TopicRefs:
    """Broker subscriptions counted by local interest: a topic is subscribed on its first local
    holder and unsubscribed on its last, one change at a time per topic. Holders that arrive
    while a change is under way wait for it together and go on at once when it ends (not one
    after another: the hundreds of joins of a burst that meet a room's first subscription)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._counts: dict[str, int] = {}
        # topic -> the change under way (resolved, whatever its outcome, when it ends)
        self._changes: dict[str, asyncio.Future[None]] = {}

    def __contains__(self, topic: object) -> bool:
        return topic in self._counts

    async def acquire(self, topic: str) -> None:
        """Count one more holder; subscribe if it is the first. Returns once subscribed."""
        while (change := self._changes.get(topic)) is not None:
            await asyncio.shield(change)
        count = self._counts.get(topic, 0)
        self._counts[topic] = count + 1
        if count:
            return
        try:
            await self._changing(topic, self._broker.subscribe(topic))
        except BaseException:
            left = self._counts.get(topic, 1) - 1
            if left > 0:
                self._counts[topic] = left
            else:
                self._counts.pop(topic, None)
            raise

    async def release(self, topic: str) -> None:
        """Count one holder less; unsubscribe when none is left."""
        while (change := self._changes.get(topic)) is not None:
            await asyncio.shield(change)
        count = self._counts.get(topic, 0) - 1
        if count > 0:
            self._counts[topic] = count
            return
        self._counts.pop(topic, None)
        await self._changing(topic, self._broker.unsubscribe(topic))

    async def _changing(self, topic: str, change: Awaitable[None]) -> None:
        # Marked under way before the first await, so that no other change of the topic starts.
        done = asyncio.get_running_loop().create_future()
        self._changes[topic] = done
        try:
            await change
        finally:
            del self._changes[topic]
            done.set_result(None)


class Node:
    """This process's share of the hub (see the module docstring)."""

    def __init__(
        self, config: HubConfig, broker: Broker, store: Store, metrics: HubMetrics | None = None
    ) -> None:
        self.config = config
        self.broker = broker
        self.store = store
        self.node_id = broker.node_id
        self.metrics = metrics or HubMetrics()
        self.metrics.watch_node(self.node_id, self.ready, broker.ready)
        self.sessions: dict[str, Session] = {}
        self.users: dict[str, dict[str, Session]] = {}
        self.streams: dict[str, StreamMembers[Session]] = {}
        self.topics = TopicRefs(broker)
        # room -> the head read of a join under way there while the node knows no position of
        # it yet (resolved when the read ends, however it ends): joins meeting it wait for it.
        self._head_reads: dict[str, asyncio.Future[None]] = {}
        limits = config.limits
        self.user_limiter = KeyedLimiter(limits.user_rate, limits.user_burst)
        self.draining = False
        self.idle = asyncio.Event()
        self.idle.set()
        self._signals: dict[str, SignalHandler] = {}
        self._stored_hooks: dict[str, list[StoredHook]] = {}
        self._close_hooks: list[SessionHook] = []
        self._start_hooks: list[Callable[[], Awaitable[None]]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._epoch_hooks: list[RoomHook] = []
        self._readiness_reports: list[Callable[[], Mapping[str, str]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._jobs: list[tuple[float, Callable[[], Awaitable[None]]]] = []

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the broker; the node serves from then on."""
        await self.broker.start(self)
        await self.topics.acquire(EVERY_NODE_TOPIC)
        warning = await self.broker.persistence_warning()
        if warning is not None:
            log.warning("hub: warning: %s", warning)
        for interval, job in self._jobs:
            self.spawn(self._repeat(interval, job))
        for hook in self._start_hooks:
            try:
                await hook()
            except Exception:
                log.exception("a start hook failed")

    async def stop(self) -> None:
        """Run the stop hooks, stop background work and release the broker."""
        for hook in self._stop_hooks:
            try:
                await hook()
            except Exception:
                log.exception("a stop hook failed")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.close()

    def ready(self) -> bool:
        """True while the node can serve (its broker is connected and listening)."""
        return not self.draining and self.broker.ready()

    def readiness_report(self) -> dict[str, str]:
        """What the features report of their components for ``/readyz`` (a failing report is
        logged and left out)."""
        fields: dict[str, str] = {}
        for report in self._readiness_reports:
            try:
                fields.update(report())
            except Exception:
                log.exception("a readiness report failed")
        return fields

    def every(self, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` every ``interval`` seconds from start until the node stops; failures are
        logged and do not stop later runs."""
        self._jobs.append((interval, job))

    @staticmethod
    async def _repeat(interval: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except BrokerUnavailable:
                # Every job fails each round while the broker is away: one line each, no trace.
                name = getattr(job, "__qualname__", job)
                log.warning("periodic job %s: broker unavailable", name)
            except Exception:
                log.exception("periodic job failed")

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run ``coro`` in the background, kept until done (cancelled when the node stops)."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # --- hooks (registered through hub.feature.FeatureContext) ------------------------------

    def add_signal_handler(self, kind: str, handler: SignalHandler) -> None:
        """Call ``handler(data)`` for internal signals of ``kind`` (see :meth:`signal`); a kind
        has one handler: a second is refused with ValueError."""
        if kind in self._signals:
            raise ValueError(f"signal {kind!r} has a handler already")
        self._signals[kind] = handler

    def add_stored_hook(self, ev: str, hook: StoredHook) -> None:
        """Call ``hook`` with every stored ``ev`` event (its wire form) of the rooms this node
        follows, in seq order, before its members get it (hooks of one ``ev`` in the order they
        were added)."""
        self._stored_hooks.setdefault(ev, []).append(hook)

    def add_start_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Await ``hook()`` once the node has started (failures are logged)."""
        self._start_hooks.append(hook)

    def add_stop_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Await ``hook()`` when the node stops, before the broker is released."""
        self._stop_hooks.append(hook)

    def add_readiness_report(self, report: Callable[[], Mapping[str, str]]) -> None:
        """Add ``report()``'s fields to :meth:`readiness_report`."""
        self._readiness_reports.append(report)

    def add_close_hook(self, hook: SessionHook) -> None:
        """Await ``hook(session)`` when a session ends (to leave rooms, lower hands...)."""
        self._close_hooks.append(hook)

    def add_history_lost_hook(self, hook: RoomHook) -> None:
        """Await ``hook(room)`` (in the background) when a followed room's epoch changes: the
        broker lost its data, and features restore what this node still knows."""
        self._epoch_hooks.append(hook)

    # --- sessions -----------------------------------------------------------------------------

    def new_sid(self) -> str:
        """A fresh session id; it starts with this node's id, so targeted delivery knows where
        the session lives without a lookup."""
        return f"{self.node_id}.{secrets.token_urlsafe(6)}"

    def add_session(self, session: Session) -> None:
        """Register a new connection."""
        self.sessions[session.sid] = session
        self.idle.clear()
        self.metrics.connections.set(len(self.sessions))

    async def bind_user(self, session: Session, user: str) -> None:
        """Index a session by ``user`` once this node hears the user's topic (each session holds
        one reference to it, so a failed or cancelled bind leaves nothing behind; binding it
        again, as a retried ``hello`` does, changes nothing)."""
        if session.sid in self.users.get(user, {}):
            return
        await self.topics.acquire(user_topic(user))
        self.users.setdefault(user, {})[session.sid] = session

    async def remove_session(self, session: Session) -> None:
        """Forget a connection that ended: run the close hooks, drop it from its user."""
        self.sessions.pop(session.sid, None)
        if not self.sessions:
            self.idle.set()
        self.metrics.connections.set(len(self.sessions))
        for hook in self._close_hooks:
            try:
                await hook(session)
            except Exception:
                log.exception("session close hook failed")
        for room in list(session.rooms):
            await self.unfollow(session, room)
        user = session.user_id
        sessions = self.users.get(user)
        if sessions is not None and sessions.pop(session.sid, None) is not None:
            if not sessions:
                del self.users[user]
            await self.topics.release(user_topic(user))

    # --- room streams -------------------------------------------------------------------------

    async def follow(
        self, session: Session, room: str, since: int | None = None, epoch: str | None = None
    ) -> Position:
        """Make ``session`` receive ``room``'s stored events from now on, exactly once each.

        With ``since``, also return the stored events after it (``missed``) and whether history
        still reached back that far within the same epoch (``recovered``).
        """
        if room in session.rooms:
            self._drop_follower(session, room)
        else:
            await self.topics.acquire(room)
        try:
            while True:
                members = self.streams.get(room)
                if members is None:
                    members = self.streams[room] = StreamMembers(room)
                    self.metrics.rooms.set(len(self.streams))
                # The room is followed here, fan-out uninterrupted: a position already read or
                # fanned out serves (local fan-out brings everything after it), unread. While
                # the broker is not ready the room's history may have been lost: read it.
                known = members.known_position() if since is None and self.broker.ready() else None
                if known is None and since is None and not members and members.epoch is None:
                    # The room's first member here: it starts where the broker's delivery of
                    # the room stands (everything delivered later is after it), unread.
                    delivered = self.broker.position(room) if self.broker.ready() else None
                    if delivered is not None:
                        known = delivered[1], delivered[0]
                if known is not None:
                    members.add(session.sid, session, known[0], known[1])
                    session.rooms.add(room)
                    self.metrics.traffic.joins += 1
                    return Position(known[1], known[0], None, None)
                reading = self._head_reads.get(room) if since is None else None
                if reading is not None:
                    # Another join is reading the room's head (the burst of joins that meets a
                    # room's first member here): the position it reads serves this one too.
                    await asyncio.shield(reading)
                    continue
                position = await self._read_head_once(room, since, epoch)
                # The room's last local member may have left during the read, dropping
                # ``members``: adding to it would follow nothing. Start over.
                if self.streams.get(room) is not members:
                    continue
                # A read can race with local fan-out (pub/sub and commands use different
                # connections); read again rather than miss what was fanned out meanwhile.
                if not members.behind(position.seq, position.epoch):
                    break
            members.add(session.sid, session, position.seq, position.epoch)
            session.rooms.add(room)
            self.metrics.traffic.joins += 1
            return position
        except BaseException:
            if room not in session.rooms:
                self._drop_if_empty(room)
                await self._release_room(room)
            raise

    async def _read_head_once(self, room: str, since: int | None, epoch: str | None) -> Position:
        """:meth:`_read_position`; a head read (no ``since``) is marked under way meanwhile so
        that the joins of the room that come during it wait for its position."""
        if since is not None:
            return await self._read_position(room, since, epoch)
        done = asyncio.get_running_loop().create_future()
        self._head_reads[room] = done
        try:
            return await self._read_position(room, since, epoch)
        finally:
            del self._head_reads[room]
            done.set_result(None)

    async def _read_position(self, room: str, since: int | None, epoch: str | None) -> Position:
        if since is None:
            current, seq = await self.broker.head(room)
            return Position(current, seq, None, None)
        history = await self.broker.history(room, since)
        if (epoch is not None and epoch != history.epoch) or since > history.last_seq:
            return Position(history.epoch, history.last_seq, [], False)
        missed = [self._wire(event) for event in history.events]
        return Position(history.epoch, history.last_seq, missed, history.reaches(since))

    async def unfollow(self, session: Session, room: str) -> bool:
        """Stop ``session`` following ``room``; returns whether it was following it."""
        if room not in session.rooms:
            return False
        self._drop_follower(session, room)
        await self._release_room(room)
        return True

    def _drop_follower(self, session: Session, room: str) -> None:
        session.rooms.discard(room)
        members = self.streams.get(room)
        if members is not None:
            members.remove(session.sid)
        self._drop_if_empty(room)

    def _drop_if_empty(self, room: str) -> None:
        members = self.streams.get(room)
        if members is not None and not members:
            del self.streams[room]
            self.metrics.rooms.set(len(self.streams))

    async def _release_room(self, room: str) -> None:
        try:
            await self.topics.release(room)
        except Exception:
            log.warning("could not unsubscribe from %s", room, exc_info=True)

    def followers(self, room: str) -> list[Session]:
        """This node's sessions in ``room``."""
        members = self.streams.get(room)
        return list(members.all()) if members is not None else []

    # --- publishing ---------------------------------------------------------------------------

    async def publish_event(self, room: str, ev: str, fields: Mapping[str, Any]) -> int:
        """Store an event of ``room`` and fan it out to every member on every node; returns its
        seq once stored."""
        stored = await self.broker.publish(room, pack({"ev": ev, **fields}))
        return stored.seq

    async def publish_event_once(
        self, room: str, ev: str, fields: Mapping[str, Any], key: str, *, ttl: float | None = None
    ) -> tuple[int, bool]:
        """:meth:`publish_event` unless an event of ``room`` was published under ``key`` already
        (see :meth:`Broker.publish_once`): returns that event's seq and whether this call
        published it. The last step of an operation that must happen once, so that anyone may
        run the operation again to complete it (see docs/architecture.md, "Once")."""
        return await self.broker.publish_once(room, pack({"ev": ev, **fields}), key, ttl=ttl)

    async def broadcast(self, room: str, message: Mapping[str, Any]) -> None:
        """Send an ephemeral event (no seq) to every member of ``room`` on every node."""
        await self.broker.publish_ephemeral(room, pack({"k": _ROOM_EVENT, "m": message}))

    async def send_to_user(self, user: str, message: Mapping[str, Any]) -> None:
        """Send a message to every session of ``user`` on every node (at most once each)."""
        await self.broker.publish_ephemeral(*_to_user(user, message))

    async def close_user(self, user: str, code: CloseCode, reason: str) -> None:
        """Close every session of ``user`` on every node with ``code``."""
        await self.broker.publish_ephemeral(
            user_topic(user), pack({"k": _CLOSE_USER, "to": user, "code": int(code), "r": reason})
        )

    async def signal(self, topic: str, kind: str, data: Any) -> None:
        """Send an internal signal to the nodes subscribed to ``topic`` (this one included); each
        calls the handler registered with :meth:`on_signal` for ``kind``."""
        await self.broker.publish_ephemeral(topic, self.signal_payload(kind, data))

    async def signal_every_node(self, kind: str, data: Any) -> None:
        """:meth:`signal` to every node of the hub (this one included): one broker message,
        however many nodes and sessions it concerns."""
        await self.broker.publish_ephemeral(EVERY_NODE_TOPIC, self.signal_payload(kind, data))

    @staticmethod
    def signal_payload(kind: str, data: Any) -> bytes:
        """The broker payload of :meth:`signal`'s message, for a broker call that publishes it
        along with its own step (``presence_add(..., announce=...)``)."""
        return pack({"k": _SIGNAL, "x": kind, "d": data})

    # --- broker handler -----------------------------------------------------------------------

    def receive_event(self, event: StoredEvent) -> None:
        """Fan a stored event out to this node's followers of its room, encoded once."""
        members = self.streams.get(event.room)
        if members is None:
            return
        wire = self._wire(event)
        for hook in self._stored_hooks.get(wire["ev"], ()):
            try:
                hook(wire)
            except Exception:
                log.exception("stored-event hook for %s failed", wire["ev"])
        encoded = EncodedEvent(wire)
        recipients = members.recipients(event.seq)
        for session in recipients:
            session.deliver(encoded)
        self.metrics.deliver_latency.observe(max(0.0, time.time() - event.ts))

    def receive_epoch(self, room: str, epoch: str) -> None:
        """A room's history was lost: followers are told to reload from a fresh join (not those
        whose join already read the new epoch: they are at their position in it)."""
        members = self.streams.get(room)
        if members is None:
            return
        reset: ResetEvent = {"ev": "reset", "room": room, "epoch": epoch}
        encoded = EncodedEvent(reset)
        for session in members.reset(epoch):
            session.deliver(encoded)
        for hook in self._epoch_hooks:
            self.spawn(hook(room))

    def receive_message(self, topic: str, payload: bytes) -> None:
        """Route an ephemeral broker message to the sessions or handler it is meant for."""
        try:
            envelope = unpack(payload)
            kind = envelope["k"]
        except Exception:
            log.warning("dropping undecodable broker message on %s", topic)
            return
        if kind == _ROOM_EVENT:
            members = self.streams.get(topic)
            if members is not None:
                encoded = EncodedEvent(envelope["m"])
                for session in members.all():
                    session.deliver(encoded)
        elif kind == _TO_USER:
            sessions = self.users.get(envelope["to"], {})
            if sessions:
                encoded = EncodedEvent(envelope["m"])
                for session in list(sessions.values()):
                    session.deliver(encoded)
        elif kind == _CLOSE_USER:
            code = CloseCode(envelope["code"])
            for session in list(self.users.get(envelope["to"], {}).values()):
                session.request_close(code, envelope["r"])
        elif kind == _SIGNAL:
            handler = self._signals.get(envelope["x"])
            if handler is not None:
                try:
                    handler(envelope["d"])
                except Exception:
                    log.exception("signal handler for %s failed", envelope["x"])

    @staticmethod
    def _wire(event: StoredEvent) -> dict[str, Any]:
        body: dict[str, Any] = unpack(event.body)
        ev = body.pop("ev")
        body.pop("room", None)
        return {"ev": ev, "room": event.room, "seq": event.seq, **body}

    # --- draining -----------------------------------------------------------------------------

    def drain(self) -> None:
        """Tell every session to reconnect elsewhere (a jittered delay each, so they do not all
        come back at once) and close it with 1012."""
        self.draining = True
        spread = self.config.drain_reconnect_max
        for session in list(self.sessions.values()):
            if session.open:
                reconnect_in = round(secrets.randbelow(1000) / 1000 * spread, 3)
                shutdown: ShutdownEvent = {"ev": "shutdown", "reconnect_in": reconnect_in}
                session.send(shutdown)
                session.request_close(CloseCode.DRAINING, "node is draining")


def _to_user(user: str, message: Mapping[str, Any]) -> tuple[str, bytes]:
    """The topic and the payload that carry ``message`` to every session of ``user``."""
    return user_topic(user), pack({"k": _TO_USER, "to": user, "m": message})
