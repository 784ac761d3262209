"""What only the Redis broker has to survive: lost pub/sub messages, a Redis that restarts empty
or is down, and a subscription that silently stops hearing.

Every test runs a private server (never the machine's Redis) and real brokers against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from support.redis_server import RedisServer
from support.waiting import eventually

from hub.broker import Broker, BrokerSettings, BrokerUnavailable, History
from hub.metrics import HubMetrics
from hub.redis import RedisBroker, redis_node
from hub.redis.envelope import split_fields

from .conftest import Cluster, ClusterFactory, Recorder, barrier

pytestmark = pytest.mark.redis

# Room for a whole burst in the stream, so a gap is always refillable.
RESILIENCE_SETTINGS = BrokerSettings(
    history_size=1000, presence_ttl=5.0, probe_interval=0.1, reconnect_cap=0.2
)


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    """These tests are about Redis only."""
    return str(request.param)


@pytest.fixture
async def cluster(make_cluster: ClusterFactory) -> Cluster:
    return await make_cluster(RESILIENCE_SETTINGS)


async def test_burst_survives_killed_pubsub_connection(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.broker.subscribe("r")
    total, kill_at = 300, 100

    for i in range(1, total + 1):
        await b.broker.publish("r", f"e{i}".encode())
        if i == kill_at:
            assert redis_server.kill_pubsub_clients() >= 2  # a's and b's subscribers

    await a.recorder.wait_events("r", total, within=10.0)
    assert a.recorder.seqs("r") == list(range(1, total + 1))
    assert [e.body for e in a.recorder.events] == [f"e{i}".encode() for i in range(1, total + 1)]
    assert a.broker.counters.reconnects >= 1
    await eventually(a.broker.ready, what="a ready again")
    assert a.recorder.epochs == []
    assert sample(a.broker, "hub_broker_reconnects_total") == a.broker.counters.reconnects


def sample(broker: Broker, name: str) -> float:
    """The value of the sample ``name`` in the ``/metrics`` text of a node on ``broker``."""
    for line in HubMetrics(broker.counters).render().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no sample {name}")


def drop_envelopes(
    monkeypatch: pytest.MonkeyPatch, broker: RedisBroker, room: str, seqs: set[int]
) -> list[int]:
    """Make the envelopes of ``room``'s events with these seqs vanish at the listener's door
    (once each) while the connection stays up; returns the seqs dropped so far."""
    listener = broker.listener
    deliver = listener._on_message
    dropped: list[int] = []

    def lossy(topic: str, data: bytes) -> None:
        if topic == room and data[:1] == b"S":
            seq = int(split_fields(data, 4)[0][1])
            if seq in seqs and seq not in dropped:
                dropped.append(seq)
                return
        deliver(topic, data)

    monkeypatch.setattr(listener, "_on_message", lossy)
    return dropped


# A slow probe keeps a loaded machine from reconnecting (which would catch up by another path).
QUIET_PROBE = BrokerSettings(history_size=1000, probe_interval=5.0, reconnect_cap=0.2)


async def test_lost_messages_are_filled_from_the_stream(
    make_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pub/sub loses messages only when its connection breaks, which the other tests cause for
    # real; here two envelopes vanish at the listener's door while the connection stays up, so
    # the seq-gap path (not the reconnect catch-up) must restore them.
    cluster = await make_cluster(QUIET_PROBE)
    a, b = await cluster.node("a"), await cluster.node("b")
    broker = a.broker
    assert isinstance(broker, RedisBroker)
    await broker.subscribe("r")
    dropped = drop_envelopes(monkeypatch, broker, "r", {3, 4})
    for i in range(1, 7):
        await b.broker.publish("r", f"e{i}".encode())

    await a.recorder.wait_events("r", 6)
    assert dropped == [3, 4]
    assert a.recorder.seqs("r") == [1, 2, 3, 4, 5, 6]
    assert broker.counters.reconnects == 0


@pytest.mark.parametrize("room", ["r", "event"])
async def test_a_room_follows_on_from_its_head_whatever_its_id(
    make_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch, room: str
) -> None:
    # The head read when Redis confirms a room's subscription is where the room follows on
    # from, so even the first event heard after it may be lost and is filled from the stream
    # (a topic that is not a room would start from the first event it hears). A room whose id
    # is ``event`` is a room like any other.
    cluster = await make_cluster(QUIET_PROBE)
    a, b = await cluster.node("a"), await cluster.node("b")
    broker = a.broker
    assert isinstance(broker, RedisBroker)
    await b.broker.publish(room, b"before")
    dropped = drop_envelopes(monkeypatch, broker, room, {2})
    await broker.subscribe(room)
    await b.broker.publish(room, b"lost")
    await b.broker.publish(room, b"heard")

    await a.recorder.wait_events(room, 2)
    assert dropped == [2]
    assert [e.body for e in a.recorder.room_events(room)] == [b"lost", b"heard"]
    assert a.recorder.seqs(room) == [2, 3]


class HeldReads:
    """Holds the listener's stream reads of one room until released, counting them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, broker: RedisBroker, room: str) -> None:
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.reads = 0
        listener = broker.listener
        read = listener._read

        async def held(name: str, after: int, count: int) -> History:
            if name == room:
                self.reads += 1
                self.started.set()
                await self.gate.wait()
            return await read(name, after, count)

        monkeypatch.setattr(listener, "_read", held)

    async def wait_started(self) -> None:
        await asyncio.wait_for(self.started.wait(), 5.0)


async def test_a_room_catching_up_holds_back_no_other_room(
    make_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gap in one room makes the listener read that room's stream; while the read is held,
    # another room's events keep reaching the handler, and the held room's later events wait
    # (in order, after what the read fills in) instead of jumping the gap.
    cluster = await make_cluster(QUIET_PROBE)
    a, b = await cluster.node("a"), await cluster.node("b")
    broker = a.broker
    assert isinstance(broker, RedisBroker)
    await broker.subscribe("slow")
    await broker.subscribe("fast")
    held = HeldReads(monkeypatch, broker, "slow")
    dropped = drop_envelopes(monkeypatch, broker, "slow", {2})
    for i in (1, 2, 3):
        await b.broker.publish("slow", f"s{i}".encode())
    await held.wait_started()  # seq 3 showed the gap

    for i in range(1, 6):
        await b.broker.publish("fast", f"f{i}".encode())
    await b.broker.publish("slow", b"s4")
    await a.recorder.wait_events("fast", 5)
    assert a.recorder.seqs("fast") == [1, 2, 3, 4, 5]
    assert a.recorder.seqs("slow") == [1]

    held.gate.set()
    await a.recorder.wait_events("slow", 4)
    assert dropped == [2]
    assert a.recorder.seqs("slow") == [1, 2, 3, 4]
    assert [e.body for e in a.recorder.room_events("slow")] == [b"s1", b"s2", b"s3", b"s4"]
    assert held.reads == 1
    assert broker.counters.reconnects == 0


async def test_a_subscription_waiting_for_its_head_holds_back_no_other_room(
    make_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The head read that follows a subscription's confirmation happens beside the read loop:
    # the subscribed rooms keep flowing meanwhile, and the new room follows on from its head
    # (an event published before that read is part of the head, heard or not).
    cluster = await make_cluster(QUIET_PROBE)
    a, b = await cluster.node("a"), await cluster.node("b")
    broker = a.broker
    assert isinstance(broker, RedisBroker)
    await broker.subscribe("fast")
    await b.broker.publish("new", b"before")
    held = HeldReads(monkeypatch, broker, "new")
    subscribing = asyncio.create_task(broker.subscribe("new"))
    await held.wait_started()

    await b.broker.publish("new", b"heard while the head is read")
    for i in range(1, 4):
        await b.broker.publish("fast", f"f{i}".encode())
    await a.recorder.wait_events("fast", 3)
    assert not subscribing.done()

    held.gate.set()
    await asyncio.wait_for(subscribing, 5.0)
    await b.broker.publish("new", b"after")
    await a.recorder.wait_events("new", 1)
    await barrier(b, a)
    assert [e.body for e in a.recorder.room_events("new")] == [b"after"]
    assert a.recorder.seqs("new") == [3]
    assert held.reads == 1


async def test_rooms_subscribed_together_cost_one_subscribe_command(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    rooms = [f"breakout-{i}" for i in range(12)]
    before = subscribe_commands(redis_server)
    await asyncio.gather(*(a.broker.subscribe(room) for room in rooms))
    assert subscribe_commands(redis_server) == before + 1
    # Each is active: its events arrive, in order.
    for room in rooms:
        await b.broker.publish(room, room.encode())
    await a.recorder.wait_for(
        lambda: sorted(e.room for e in a.recorder.events) == sorted(rooms), what="every room"
    )
    assert all(a.broker.position(room) is not None for room in rooms)


def subscribe_commands(redis_server: RedisServer) -> int:
    """How many SUBSCRIBE commands the server has run (whatever their channels)."""
    stats = redis_server.client().info("commandstats")
    return int(stats.get("cmdstat_subscribe", {}).get("calls", 0))


async def test_restart_empty_starts_a_new_epoch(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.broker.subscribe("r")
    for i in range(3):
        await b.broker.publish("r", f"old{i}".encode())
    await a.recorder.wait_events("r", 3)
    old_epoch = a.recorder.events[0].epoch

    try:
        await asyncio.to_thread(redis_server.stop)
        await eventually(lambda: not a.broker.ready(), what="a not ready while Redis is down")

        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await b.broker.publish("r", b"lost")
        with pytest.raises(BrokerUnavailable):
            await a.broker.history("r", 0)
        with pytest.raises(BrokerUnavailable):
            await a.store.get("k")
        with pytest.raises(BrokerUnavailable):  # a pipelined script call fails the same way
            await asyncio.gather(
                *(
                    a.ballots.cast("p", f"u{i}", [0], options=2, allow_change=True, closed_key="c")
                    for i in range(3)
                )
            )
        assert time.monotonic() - started < 2.0, "a dead Redis must fail fast"
        with pytest.raises(BrokerUnavailable):
            await a.broker.subscribe("r2")  # gives up after the broker's timeout
    finally:
        await asyncio.to_thread(redis_server.start)

    await eventually(a.broker.ready, what="a ready again")
    await a.recorder.wait_for(lambda: bool(a.recorder.epochs), what="receive_epoch")
    ((room, new_epoch),) = a.recorder.epochs
    assert room == "r" and new_epoch != old_epoch

    event = await b.broker.publish("r", b"new")
    assert (event.seq, event.epoch) == (1, new_epoch)
    await a.recorder.wait_events("r", 4)
    assert a.recorder.events[3] == event
    kinds = [kind for kind, _ in a.recorder.calls if kind != "message"]
    assert kinds == ["event", "event", "event", "epoch", "event"]
    # The failed subscription was given up, not left to activate on reconnect.
    await b.broker.publish("r2", b"not for a")
    await b.broker.publish_ephemeral("node:a", b"marker")
    await a.recorder.wait_payload("node:a", b"marker")
    assert a.recorder.room_events("r2") == []
    assert isinstance(a.broker, RedisBroker)
    assert a.broker.counters.reconnects >= 1


async def test_unreachable_redis_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    broker, _ = redis_node(f"redis://127.0.0.1:{port}/0", "lonely", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await broker.publish("r", b"x")
    with pytest.raises(BrokerUnavailable):
        await broker.start(Recorder("lonely"))
    assert not broker.ready()
    assert time.monotonic() - started < 3.0
    await broker.close()


class _Link:
    """One proxied connection; ``deaf`` drops what the server sends, keeping the socket up."""

    def __init__(self) -> None:
        self.subscriber = False
        self.deaf = False
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []


class DeafeningProxy:
    """A TCP proxy in front of Redis that can make the connections that subscribed silently deaf:
    Redis keeps the subscription and the socket stays open, but nothing reaches the client (a
    stuck middlebox or half-open connection), which only a probe can notice."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def deafen_subscribers(self) -> int:
        """Silence every current subscriber connection; returns how many."""
        links = [link for link in self._links if link.subscriber]
        for link in links:
            link.deaf = True
        return len(links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link()
        self._links.append(link)
        link.writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        link.writers.append(up_writer)

        async def upstream() -> None:
            while data := await reader.read(65536):
                if b"SUBSCRIBE" in data.upper():
                    link.subscriber = True
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if not link.deaf:
                    writer.write(data)
                    await writer.drain()

        link.tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._close_link(link)

    async def _close_link(self, link: _Link) -> None:
        for task in link.tasks:
            task.cancel()
        await asyncio.gather(*link.tasks, return_exceptions=True)
        for w in link.writers:
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for link in self._links:
                await self._close_link(link)
            await self._server.wait_closed()


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[DeafeningProxy]:
    proxy = DeafeningProxy(redis_server.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_probe_detects_and_repairs_a_deaf_subscription(
    cluster: Cluster, proxy: DeafeningProxy
) -> None:
    a = await cluster.node("a", url=proxy.url)
    b = await cluster.node("b")
    broker = a.broker
    assert isinstance(broker, RedisBroker)
    await broker.subscribe("r")
    await b.broker.publish("r", b"1")
    await a.recorder.wait_events("r", 1)

    assert proxy.deafen_subscribers() == 1
    await b.broker.publish("r", b"2")  # unheard by a: lost for pub/sub, kept in the stream
    await b.broker.publish("r", b"3")

    await a.recorder.wait_events("r", 3, within=5.0)
    assert broker.counters.deaf_detections >= 1
    assert broker.counters.reconnects >= 1
    assert sample(broker, "hub_broker_deaf_detections_total") == broker.counters.deaf_detections
    await b.broker.publish("r", b"4")
    await a.recorder.wait_events("r", 4)
    assert a.recorder.seqs("r") == [1, 2, 3, 4]
    assert broker.ready()
