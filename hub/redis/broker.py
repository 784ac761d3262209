"""The Redis broker: one node's topics (through its :class:`~hub.redis.listener.Listener`), its
rooms' stored streams (:class:`~hub.redis.streams.RoomStreams`) and presence
(:class:`~hub.redis.presence.RedisPresence`), over the node's
:class:`~hub.redis.connection.RedisConnection`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping

from hub.broker import BrokerHandler, BrokerSettings, History, StoredEvent
from hub.redis import envelope
from hub.redis.connection import RedisConnection
from hub.redis.listener import Listener
from hub.redis.presence import RedisPresence
from hub.redis.streams import RoomStreams

log = logging.getLogger(__name__)

# Seconds each step of close() may take (see RedisBroker.close).
CLOSE_TIMEOUT = 5.0


class RedisBroker:
    """Implements :class:`hub.broker.Broker` with the memory broker's semantics, over
    ``connection`` (which it closes when it closes: the node's store shares it).

    Every coroutine raises :class:`~hub.broker.BrokerUnavailable` (chaining the Redis error)
    when Redis cannot be reached or does not answer within the connection's ``timeout``.
    """

    def __init__(
        self, connection: RedisConnection, node_id: str, settings: BrokerSettings | None = None
    ) -> None:
        self.node_id = node_id
        self.settings = settings or BrokerSettings()
        self.connection = connection
        self._streams = RoomStreams(connection, node_id, self.settings)
        self._presence = RedisPresence(connection, self.settings)
        #: The node's subscriptions and what delivers them.
        self.listener = Listener(connection, node_id, self.settings, self._streams.read)
        self.counters = self.listener.counters

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        """Connect, subscribe to this node's own topic and start delivering to ``handler``.

        Raises :class:`~hub.broker.BrokerUnavailable` (after closing again) when the node's
        subscription is not active within ``timeout`` seconds."""
        try:
            await self.listener.start(handler)
        except BaseException:
            await self.connection.close()
            raise

    async def close(self) -> None:
        """Stop delivering, end the listener and release every connection (the store's too).
        Idempotent. Each step is given :data:`CLOSE_TIMEOUT` seconds: a node that stops must
        not hang on a connection that does not end (seen, rarely, after Redis killed the
        subscriber's connection); what did not finish is logged and left behind."""
        for step, closing in (("subscriber", self.listener.close), ("pool", self.connection.close)):
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await closing()
            except TimeoutError:
                log.warning(
                    "broker %s: the %s did not close within %s s; left behind",
                    self.node_id,
                    step,
                    CLOSE_TIMEOUT,
                )

    async def persistence_warning(self) -> str | None:
        """A warning when the Redis server keeps nothing on disk (neither AOF nor snapshots):
        an empty restart then loses polls, ballots, roles, bans, hands, Q&A and rounds. None
        when it persists, or when it does not say (``CONFIG`` disabled, as on managed Redis)."""
        try:
            settings = await self.connection.call(
                self.connection.redis.config_get("appendonly")
            ) | await self.connection.call(self.connection.redis.config_get("save"))
        except Exception:
            return None
        appendonly = str(settings.get("appendonly", "")).lower()
        save = str(settings.get("save", "")).strip()
        if appendonly == "yes" or save:
            return None
        return (
            "Redis keeps nothing on disk (appendonly no, no save points): if it restarts, "
            "polls, ballots, roles, bans, hands, Q&A and breakouts are lost; run it with "
            "appendonly yes (docs/operators.md)"
        )

    def ready(self) -> bool:
        """True while connected, subscribed and caught up (False from a lost connection until
        the listener has re-subscribed and delivered what it missed)."""
        return self.listener.ready()

    # --- topics ------------------------------------------------------------------------------

    async def subscribe(self, topic: str) -> None:
        """Receive ``topic`` from now on (see :meth:`Listener.subscribe
        <hub.redis.listener.Listener.subscribe>`)."""
        await self.listener.subscribe(topic)

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (nothing more is delivered for it). Idempotent."""
        await self.listener.unsubscribe(topic)

    async def publish_ephemeral(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` to every node subscribed to ``topic`` (at most once, not stored)."""
        message = envelope.ephemeral(self.node_id, payload)
        await self.connection.call(
            self.connection.redis.publish(self.connection.channel(topic), message)
        )

    # --- stored room streams -----------------------------------------------------------------

    async def publish(self, room: str, body: bytes) -> StoredEvent:
        """Store ``body`` as the room's next event and fan it out, in one atomic script; returns
        once it is stored."""
        return await self._streams.publish(room, body)

    async def publish_once(
        self, room: str, body: bytes, key: str, *, ttl: float | None = None
    ) -> tuple[int, bool]:
        """:meth:`publish` unless ``key`` was published under already, in one atomic script
        (see :meth:`hub.broker.Broker.publish_once`)."""
        return await self._streams.publish_once(room, body, key, ttl)

    async def history(self, room: str, after: int, limit: int | None = None) -> History:
        """Stored events of ``room`` with seq > ``after`` (ascending, at most ``limit``)."""
        return await self._streams.read(room, after, -1 if limit is None else max(limit, 0))

    async def head(self, room: str) -> tuple[str, int]:
        """The room's ``(epoch, last_seq)``; starts an epoch if the room has none yet."""
        snapshot = await self._streams.read(room, 0, 0)
        return snapshot.epoch, snapshot.last_seq

    def position(self, room: str) -> tuple[str, int] | None:
        """See :meth:`hub.broker.Broker.position` (the listener's, :meth:`Listener.position
        <hub.redis.listener.Listener.position>`)."""
        return self.listener.position(room)

    # --- presence ----------------------------------------------------------------------------

    async def presence_add(
        self, room: str, sid: str, info: bytes, *, announce: bytes | None = None
    ) -> int:
        """Record ``sid`` as present for ``presence_ttl`` seconds; returns the live count. The
        announcement, if any, is published by the same script call."""
        return await self.presence_add_many(room, {sid: info}, announce=announce)

    async def presence_add_many(
        self, room: str, entries: Mapping[str, bytes], *, announce: bytes | None = None
    ) -> int:
        """:meth:`presence_add` of every entry (sid -> info), by one script call."""
        return await self._presence.add(room, entries, self._announcement(room, announce))

    async def presence_remove(
        self, room: str, sids: Collection[str], *, announce: bytes | None = None
    ) -> int:
        """Remove sessions from the room's presence; returns the live count after it (the
        announcement, if any, published by the same script call)."""
        return await self._presence.remove(room, sids, self._announcement(room, announce))

    def _announcement(self, room: str, payload: bytes | None) -> tuple[str, bytes] | None:
        """The channel and envelope :meth:`publish_ephemeral` would send ``payload`` with."""
        if payload is None:
            return None
        return self.connection.channel(room), envelope.ephemeral(self.node_id, payload)

    async def presence_refresh(self, room: str, sids: Collection[str]) -> list[str]:
        """Extend the live entries of ``sids`` by ``presence_ttl`` from now (expired ones stay
        gone); the sids that had none."""
        return await self._presence.refresh(room, sids)

    async def presence_count(self, room: str) -> int:
        """Live sessions present in ``room``."""
        return await self._presence.count(room)

    async def presence_get(self, room: str, sid: str) -> bytes | None:
        """The info of ``sid``'s live entry in ``room``, or None."""
        return await self._presence.get(room, sid)

    async def presence_page(self, room: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        """Live entries ``(sid, info)`` with sid > ``after``, ordered by sid, at most ``limit``."""
        return await self._presence.page(room, after, limit)
