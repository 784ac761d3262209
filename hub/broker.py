"""The broker interface: how hub nodes share rooms' event streams, topics and presence.

A node hears other nodes (and itself) only through a :class:`Broker`; the features' shared
key-value state is the node's :class:`~hub.store.Store`. :func:`connect` makes both for a URL:
``memory://`` (in-process, one node per process unless several share one
:class:`~hub.memory.backend.MemoryBackend`, see :mod:`hub.memory`) and ``redis://`` (any number of
nodes on any number of hosts, see :mod:`hub.redis`).

Guarantees every implementation gives (checked by ``tests/contract/test_broker_contract.py``):

* ``publish`` assigns a room's next ``seq`` and appends the event to that room's history in one
  atomic step; it returns only once the event is stored.
* Stored events reach every subscribed node's handler in ``seq`` order, each exactly once and with
  no gap, for as long as the room's epoch lasts. A node that lost messages (a Redis blip) fills the
  gap from the history before going on; one room doing so holds back no other room.
* When a room's history is lost (Redis restarted empty) its epoch changes, ``seq`` starts again at
  1, and subscribed nodes are told through :meth:`BrokerHandler.receive_epoch` before any event of
  the new epoch.
* Ephemeral messages (``publish_ephemeral``) are delivered at most once, in publish order per
  publisher and topic; they may be lost.
* Every message is delivered to every subscribed node, the publishing node included: there is one
  delivery path, so nothing is delivered twice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from hub.store import Store


class BrokerUnavailable(Exception):
    """The broker or the store cannot serve right now (Redis down or unreachable); the command
    fails with ``unavailable`` and may be retried."""


NODE_TOPIC_PREFIX = "node:"
USER_TOPIC_PREFIX = "user:"
# The topic every node subscribes to from its start ("*" is no node id: those are hex).
EVERY_NODE_TOPIC = NODE_TOPIC_PREFIX + "*"


def node_topic(node_id: str) -> str:
    """The topic a node subscribes to for messages addressed to it (DMs, signals)."""
    return NODE_TOPIC_PREFIX + node_id


def user_topic(user_id: str) -> str:
    """The topic a node subscribes to while it holds a session of ``user_id``."""
    return USER_TOPIC_PREFIX + user_id


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored event of a room: ``body`` is the internally packed event without its seq."""

    room: str
    seq: int
    epoch: str
    body: bytes
    origin: str
    ts: float


@dataclass(frozen=True, slots=True)
class History:
    """A slice of a room's stored history.

    ``events`` are the stored events with seq > the requested ``after``, ascending, at most the
    requested limit. ``first_seq`` is the oldest seq still retained (``last_seq + 1`` when nothing
    is), so a caller can tell whether the history still reaches back far enough.
    """

    epoch: str
    last_seq: int
    first_seq: int
    events: list[StoredEvent]

    def reaches(self, after: int) -> bool:
        """True when every event with seq > ``after`` is still retained."""
        return self.first_seq <= after + 1


@dataclass(slots=True)
class BrokerCounters:
    """How often a broker's subscriber had to recover, as plain integers (cheap to bump, read
    when ``/metrics`` is scraped). They only grow; the memory broker's stay 0."""

    #: Times the subscriber connection was re-established after being lost.
    reconnects: int = 0
    #: Times the probe found the subscriber connection deaf (each led to a reconnect).
    deaf_detections: int = 0


class BrokerHandler(Protocol):
    """What a broker calls on the node that started it. Calls are made from the event loop and
    must not block; they never overlap."""

    def receive_event(self, event: StoredEvent) -> None:
        """A stored event of a subscribed room (ascending seq per room, no gap, no duplicate)."""

    def receive_message(self, topic: str, payload: bytes) -> None:
        """An ephemeral message on a subscribed topic (at most once)."""

    def receive_epoch(self, room: str, epoch: str) -> None:
        """A subscribed room's history was lost: seq restarts under ``epoch``."""


class Broker(Protocol):
    """Fan-out between hub nodes: topics, rooms' stored streams, presence. See the module
    docstring for the guarantees."""

    node_id: str
    counters: BrokerCounters

    async def start(self, handler: BrokerHandler) -> None:
        """Connect, subscribe to this node's own topic, and start delivering to ``handler``."""

    async def close(self) -> None:
        """Stop delivering and release connections (those the node's store shares too: close the
        broker last). Idempotent."""

    def ready(self) -> bool:
        """True while the broker can serve: connected, and its subscriber listening."""

    async def persistence_warning(self) -> str | None:
        """What an operator must hear at start about the shared state outliving a restart of
        the broker's server (None: nothing to say, or it cannot tell)."""

    # --- topics -----------------------------------------------------------------------------

    async def subscribe(self, topic: str) -> None:
        """Receive the topic's messages (and, for a room id, its stored events) from now on.
        Idempotent; returns once the subscription is active."""

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving the topic. Idempotent."""

    async def publish_ephemeral(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` to every node subscribed to ``topic``, at most once, not stored."""

    # --- stored room streams -----------------------------------------------------------------

    async def publish(self, room: str, body: bytes) -> StoredEvent:
        """Store ``body`` as the room's next event and fan it out; returns once it is stored."""

    async def publish_once(
        self, room: str, body: bytes, key: str, *, ttl: float | None = None
    ) -> tuple[int, bool]:
        """:meth:`publish` unless an event of ``room`` was published under ``key`` already (in
        the last ``ttl`` seconds when given), in one atomic step: returns the seq of the event
        published under ``key`` and whether this call published it. What makes a step that
        publishes safe to run again (a close, a retried send)."""

    async def history(self, room: str, after: int, limit: int | None = None) -> History:
        """Stored events of ``room`` with seq > ``after`` (ascending, at most ``limit``)."""

    async def head(self, room: str) -> tuple[str, int]:
        """The room's current ``(epoch, last_seq)``; starts an epoch if the room has none yet."""

    def position(self, room: str) -> tuple[str, int] | None:
        """The ``(epoch, seq)`` of the room's last stored event delivered to the handler, once
        the room's subscription is active (None before, and for a topic not subscribed). Read
        without I/O: every event delivered after this call has a later seq of that epoch, or
        follows a :meth:`BrokerHandler.receive_epoch`. A join that adds its session at once
        starts where the node's fan-out stands, without reading the room's head."""

    # --- presence ------------------------------------------------------------------------------

    async def presence_add(
        self, room: str, sid: str, info: bytes, *, announce: bytes | None = None
    ) -> int:
        """Record session ``sid`` as present in ``room``; returns the member count after it.
        With ``announce``, also :meth:`publish_ephemeral` it on the topic ``room`` once the
        entry is recorded, in the same step (a join's entry and its signal cost one call)."""

    async def presence_add_many(
        self, room: str, entries: Mapping[str, bytes], *, announce: bytes | None = None
    ) -> int:
        """:meth:`presence_add` of several sessions (sid -> info) in one step, with at most one
        announcement for them all; returns the member count after it."""

    async def presence_remove(
        self, room: str, sids: Collection[str], *, announce: bytes | None = None
    ) -> int:
        """Remove sessions from ``room``'s presence; returns the member count after it. With
        ``announce``, also publish it on the topic ``room`` once they are removed, in the same
        step (see :meth:`presence_add`)."""

    async def presence_refresh(self, room: str, sids: Collection[str]) -> list[str]:
        """Keep these sessions' entries alive: entries not refreshed for ``presence_ttl`` seconds
        (their node died) stop counting. Returns the sids that had no live entry to refresh
        (it expired while the broker could not be reached): refreshing never adds one."""

    async def presence_count(self, room: str) -> int:
        """Sessions present in ``room`` (live entries only)."""

    async def presence_get(self, room: str, sid: str) -> bytes | None:
        """The info of ``sid``'s live entry in ``room``, or None when it has none."""

    async def presence_page(self, room: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        """Live entries ``(sid, info)`` of ``room`` with sid > ``after``, ordered by sid, at most
        ``limit``."""


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Tuning shared by both implementations (of the broker; the store has none)."""

    history_size: int = 1000
    presence_ttl: float = 30.0
    # Redis only: how often the subscriber proves it still hears (a probe on its own channel);
    # three intervals of silence make it not ready and reconnect (a Redis stall shows on /readyz
    # within 2 s).
    probe_interval: float = 0.5
    reconnect_cap: float = 5.0


def connect(url: str, node_id: str, settings: BrokerSettings | None = None) -> tuple[Broker, Store]:
    """Node ``node_id``'s broker and store for ``url``: ``memory://`` (the default, in-process,
    on a backend of their own) or ``redis://``/``rediss://``/``unix://`` (sharing one connection
    pool; imported lazily, so the memory implementations need no Redis client). Nothing connects
    before :meth:`Broker.start`."""
    settings = settings or BrokerSettings()
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme in ("", "memory"):
        from hub.memory import MemoryBackend, memory_node

        return memory_node(MemoryBackend(settings), node_id)
    if scheme in ("redis", "rediss", "unix"):
        from hub.redis import redis_node

        return redis_node(url, node_id, settings)
    raise ValueError(f"unknown broker URL scheme {scheme!r}: use memory:// or redis://")


def presence_entries(
    entries: Mapping[str, bytes], after: str, limit: int
) -> list[tuple[str, bytes]]:
    """Page ``entries`` by sid: those with sid > ``after``, ordered, at most ``limit``."""
    return sorted((sid, info) for sid, info in entries.items() if sid > after)[:limit]
