"""Fixtures of the broker and store contracts: a private Redis, clusters of nodes per backend, a
recorder.

A *cluster* is a set of nodes, each a broker and a store, sharing one state: memory brokers and
stores on one :class:`MemoryBackend`, or Redis brokers and stores on the private server under a
key prefix of their own. The same tests run against both (the ``cluster`` fixture is
parametrized).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from support.redis_server import RedisServer

from hub.broker import Broker, BrokerSettings, StoredEvent, node_topic
from hub.memory import MemoryBackend, memory_node
from hub.redis import redis_node
from hub.store import Store
from polls.ballots import BallotBox, ballot_box

BACKENDS = [pytest.param("memory"), pytest.param("redis", marks=pytest.mark.redis)]

# Small on purpose: trimming shows after a few events, presence expires quickly, the listener
# probes and reconnects fast.
CONTRACT_SETTINGS = BrokerSettings(
    history_size=8, presence_ttl=0.3, probe_interval=0.1, reconnect_cap=0.2
)


class Recorder:
    """A :class:`hub.broker.BrokerHandler` that records every call, in order, and lets a test
    wait (with a timeout) until a condition on what it recorded holds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[StoredEvent] = []
        self.messages: list[tuple[str, bytes]] = []
        self.epochs: list[tuple[str, str]] = []
        #: Every call in order: ("event", StoredEvent) | ("message", (topic, payload)) |
        #: ("epoch", (room, epoch)).
        self.calls: list[tuple[str, object]] = []
        #: How many of the next receive_event calls raise (after recording), to test isolation.
        self.fail_events = 0
        self._changed = asyncio.Event()

    def receive_event(self, event: StoredEvent) -> None:
        self.events.append(event)
        self._record("event", event)
        if self.fail_events:
            self.fail_events -= 1
            raise RuntimeError("handler failure (test)")

    def receive_message(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self._record("message", (topic, payload))

    def receive_epoch(self, room: str, epoch: str) -> None:
        self.epochs.append((room, epoch))
        self._record("epoch", (room, epoch))

    def _record(self, kind: str, item: object) -> None:
        self.calls.append((kind, item))
        self._changed.set()

    def room_events(self, room: str) -> list[StoredEvent]:
        """The events recorded for ``room``, in delivery order."""
        return [e for e in self.events if e.room == room]

    def seqs(self, room: str) -> list[int]:
        """The seqs recorded for ``room``, in delivery order."""
        return [e.seq for e in self.room_events(room)]

    def payloads(self, topic: str) -> list[bytes]:
        """The ephemeral payloads recorded for ``topic``, in delivery order."""
        return [p for t, p in self.messages if t == topic]

    async def wait_for(
        self, condition: Callable[[], bool], within: float = 5.0, what: str = "condition"
    ) -> None:
        """Return once ``condition()`` holds, re-checking after every recorded call; fail the
        test after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"{self.name}: {what} not reached in {within}s; calls: {self.calls!r}")

    async def wait_events(self, room: str, count: int, within: float = 5.0) -> None:
        """Wait until at least ``count`` events of ``room`` were delivered."""
        await self.wait_for(
            lambda: len(self.room_events(room)) >= count, within, f"{count} events of {room!r}"
        )

    async def wait_payloads(self, topic: str, count: int, within: float = 5.0) -> None:
        """Wait until at least ``count`` ephemeral messages of ``topic`` were delivered."""
        await self.wait_for(
            lambda: len(self.payloads(topic)) >= count, within, f"{count} messages of {topic!r}"
        )

    async def wait_payload(self, topic: str, payload: bytes, within: float = 5.0) -> None:
        """Wait until ``payload`` was delivered on ``topic``."""
        await self.wait_for(lambda: payload in self.payloads(topic), within, f"{payload!r}")


@dataclass(eq=False)
class Node:
    """One node of a cluster: its broker, the recorder the broker delivers to, its store."""

    broker: Broker
    recorder: Recorder
    store: Store

    @property
    def node_id(self) -> str:
        return self.broker.node_id

    @functools.cached_property
    def ballots(self) -> BallotBox:
        """The node's ballot box (one per node, as a hub node has)."""
        return ballot_box(self.store)


class Cluster:
    """Nodes of one backend sharing state; closes every node it made."""

    def __init__(
        self,
        backend: str,
        settings: BrokerSettings,
        server: RedisServer | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.server = server
        self.prefix = f"test{uuid.uuid4().hex[:8]}:"
        self._memory = MemoryBackend(settings)
        self._nodes: list[Node] = []

    def pair(
        self, node_id: str, *, url: str | None = None, timeout: float = 2.0
    ) -> tuple[Broker, Store]:
        """A new, unstarted broker of this cluster and its store (``url`` overrides the
        server's, for Redis)."""
        if self.backend == "memory":
            return memory_node(self._memory, node_id)
        assert self.server is not None
        return redis_node(
            url or self.server.url, node_id, self.settings, prefix=self.prefix, timeout=timeout
        )

    async def node(self, node_id: str | None = None, *, url: str | None = None) -> Node:
        """A started node (its broker delivers to a fresh :class:`Recorder`)."""
        node_id = node_id or f"n{len(self._nodes) + 1}"
        broker, store = self.pair(node_id, url=url)
        node = Node(broker, Recorder(node_id), store)
        self._nodes.append(node)
        await broker.start(node.recorder)
        return node

    async def close(self) -> None:
        for node in self._nodes:
            await node.broker.close()


async def barrier(publisher: Node, *nodes: Node) -> None:
    """Wait until everything ``publisher`` published before has reached ``nodes``."""
    for node in nodes:
        marker = uuid.uuid4().hex.encode()
        await publisher.broker.publish_ephemeral(node_topic(node.node_id), marker)
        await node.recorder.wait_payload(node_topic(node.node_id), marker)


ClusterFactory = Callable[[BrokerSettings], Awaitable[Cluster]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: "memory" or "redis"."""
    return str(request.param)


@pytest.fixture
async def make_cluster(
    backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[ClusterFactory]:
    """A factory of clusters of the parametrized backend, with the given settings."""
    server: RedisServer | None = None
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        assert server is not None
        server.start()  # a previous test may have stopped it
        server.flush()
    clusters: list[Cluster] = []

    async def make(settings: BrokerSettings = CONTRACT_SETTINGS) -> Cluster:
        cluster = Cluster(backend, settings, server)
        clusters.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            await cluster.close()


@pytest.fixture
async def cluster(make_cluster: ClusterFactory) -> Cluster:
    """A cluster of the parametrized backend with :data:`CONTRACT_SETTINGS`."""
    return await make_cluster(CONTRACT_SETTINGS)
