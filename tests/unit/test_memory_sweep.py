"""The memory backend takes expired state out of memory: values put with a ttl (idempotency keys,
slow-mode slots, mutes), publish_once keys with a ttl, presence entries of rooms nobody reads.

Time is a hand-stepped clock and the sweep is called directly; one test shows the started
brokers run it on their own (polled with a deadline, never slept on).
"""

from __future__ import annotations

from support.waiting import eventually

from hub.broker import BrokerSettings
from hub.memory import MemoryBackend, memory_node

SETTINGS = BrokerSettings(presence_ttl=30.0)


class Clock:
    """Monotonic seconds the test steps by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stepped() -> tuple[MemoryBackend, Clock]:
    clock = Clock()
    return MemoryBackend(SETTINGS, clock=clock), clock


async def test_expired_values_leave_memory_though_nobody_reads_them() -> None:
    backend, clock = stepped()
    _, store = memory_node(backend, "n1")
    await store.put("chat:key:main:3:ada:k1", b"result", ttl=86_400)
    await store.set_if_absent("slow:main:ada", b"1", ttl=5)
    await store.put("mute:main:bob", b"2", ttl=61)
    await store.put("kept", b"for good")
    assert backend.sweep() == 0

    clock.now += 5
    assert backend.sweep() == 1
    assert set(backend.values) == {"chat:key:main:3:ada:k1", "mute:main:bob", "kept"}
    clock.now += 86_400
    backend.sweep()
    assert set(backend.values) == {"kept"}
    assert backend.sizes()["expiries"] == 0


async def test_a_key_rewritten_before_it_expired_lives_to_its_new_expiry() -> None:
    backend, clock = stepped()
    _, store = memory_node(backend, "n1")
    await store.put("slot", b"1", ttl=10)
    clock.now += 5
    await store.put("slot", b"2", ttl=10)
    clock.now += 6  # past the first expiry, not the second
    backend.sweep()
    assert await store.get("slot") == b"2"
    clock.now += 5
    backend.sweep()
    assert "slot" not in backend.values
    # A key deleted, then written again without a ttl, is not taken by its old expiry.
    await store.put("again", b"1", ttl=1)
    await store.delete("again")
    await store.put("again", b"2")
    clock.now += 2
    backend.sweep()
    assert await store.get("again") == b"2"


async def test_the_expiry_queue_stays_near_what_is_live_however_often_a_key_is_rewritten() -> None:
    backend, _ = stepped()
    _, store = memory_node(backend, "n1")
    for i in range(20_000):
        await store.put("heartbeat", str(i).encode(), ttl=3600)
        if i % 1000 == 0:
            backend.sweep()
    backend.sweep()
    assert backend.sizes()["expiries"] <= 2 * len(backend.values) + 1024
    assert await store.get("heartbeat") == b"19999"


async def test_publish_once_keys_with_a_ttl_leave_memory_once_expired() -> None:
    backend, clock = stepped()
    broker, _ = memory_node(backend, "n1")
    assert await broker.publish_once("main", b"a", "chat:key:a", ttl=60) == (1, True)
    assert await broker.publish_once("main", b"b", "close:q1") == (2, True)  # no ttl: kept
    clock.now += 59
    backend.sweep()
    assert await broker.publish_once("main", b"a again", "chat:key:a", ttl=60) == (1, False)
    clock.now += 1
    backend.sweep()
    assert set(backend.streams["main"].once) == {"close:q1"}
    # Expired, the key publishes again.
    assert await broker.publish_once("main", b"a later", "chat:key:a", ttl=60) == (3, True)


async def test_presence_entries_not_refreshed_leave_rooms_nobody_reads() -> None:
    backend, clock = stepped()
    broker, _ = memory_node(backend, "n1")
    await broker.presence_add("quiet", "n9.s1", b"info")
    await broker.presence_add("busy", "n1.s2", b"info")
    clock.now += 20
    await broker.presence_refresh("busy", ["n1.s2"])
    clock.now += 11  # "quiet"'s entry is past the ttl, "busy"'s is not
    assert backend.sweep() == 1
    assert set(backend.presence) == {"busy"}
    assert await broker.presence_count("busy") == 1


async def test_emptied_hashes_sets_and_logs_are_gone_as_on_redis() -> None:
    backend, _ = stepped()
    _, store = memory_node(backend, "n1")
    await store.hash_set("h", "f", b"1")
    await store.set_add("s", "m")
    await store.log_append("l", 1, b"x", max_len=10)
    assert await store.hash_delete("h", "f")
    assert await store.set_remove("s", "m")
    assert await store.log_remove("l", 1)
    assert not backend.hashes and not backend.sets and not backend.logs
    assert not await store.hash_delete("h", "f")
    assert not await store.set_remove("s", "m")
    assert not await store.log_remove("l", 1)


async def test_started_brokers_sweep_on_their_own_until_the_last_one_closes() -> None:
    backend = MemoryBackend(SETTINGS, sweep_interval=0.05)
    first, store = memory_node(backend, "n1")
    second, _ = memory_node(backend, "n2")
    assert not backend.sweeping

    class Quiet:
        def receive_event(self, event: object) -> None: ...
        def receive_message(self, topic: str, payload: bytes) -> None: ...
        def receive_epoch(self, room: str, epoch: str) -> None: ...

    await first.start(Quiet())
    await second.start(Quiet())
    await store.put("soon", b"gone", ttl=0.1)
    await eventually(lambda: "soon" not in backend.values, what="the periodic sweep")
    await first.close()
    assert backend.sweeping
    await second.close()
    await second.close()  # idempotent
    assert not backend.sweeping
