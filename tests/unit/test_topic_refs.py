"""Broker subscriptions counted by local interest (hub.node.TopicRefs): subscribed on the first
holder, unsubscribed on the last, with a subscription under way waited for."""

from __future__ import annotations

import asyncio

from hub.memory.backend import MemoryBackend
from hub.memory.broker import MemoryBroker
from hub.node import TopicRefs


class _SlowBroker(MemoryBroker):
    """Records subscription changes; each waits until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__(MemoryBackend(), "n1")
        self.changes: list[tuple[str, str]] = []
        # Each change as it starts, for a test to wait for.
        self.started: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.gate.set()

    def _start(self, change: tuple[str, str]) -> None:
        self.changes.append(change)
        self.started.put_nowait(change)

    async def subscribe(self, topic: str) -> None:
        self._start(("subscribe", topic))
        await self.gate.wait()

    async def unsubscribe(self, topic: str) -> None:
        self._start(("unsubscribe", topic))
        await self.gate.wait()


async def test_the_first_holder_subscribes_and_the_last_unsubscribes() -> None:
    broker = _SlowBroker()
    refs = TopicRefs(broker)
    for _ in range(3):
        await refs.acquire("room")
    assert broker.changes == [("subscribe", "room")]
    for _ in range(2):
        await refs.release("room")
    assert "room" in refs
    await refs.release("room")
    assert "room" not in refs
    assert broker.changes == [("subscribe", "room"), ("unsubscribe", "room")]


async def test_a_holder_arriving_during_the_subscription_returns_once_it_is_done() -> None:
    broker = _SlowBroker()
    broker.gate.clear()
    refs = TopicRefs(broker)
    first = asyncio.create_task(refs.acquire("room"))
    second = asyncio.create_task(refs.acquire("room"))
    async with asyncio.timeout(5):
        assert await broker.started.get() == ("subscribe", "room")
    assert not second.done()
    broker.gate.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, second)
    assert broker.changes == [("subscribe", "room")]
    await refs.release("room")
    await refs.release("room")
    assert broker.changes == [("subscribe", "room"), ("unsubscribe", "room")]


async def test_a_holder_arriving_during_the_unsubscription_subscribes_again() -> None:
    broker = _SlowBroker()
    refs = TopicRefs(broker)
    await refs.acquire("room")
    broker.gate.clear()
    leaving = asyncio.create_task(refs.release("room"))
    async with asyncio.timeout(5):
        assert await broker.started.get() == ("subscribe", "room")
        assert await broker.started.get() == ("unsubscribe", "room")
    coming = asyncio.create_task(refs.acquire("room"))
    broker.gate.set()
    async with asyncio.timeout(5):
        await asyncio.gather(leaving, coming)
    assert broker.changes == [
        ("subscribe", "room"),
        ("unsubscribe", "room"),
        ("subscribe", "room"),
    ]
    assert "room" in refs


async def test_holders_waiting_for_a_subscription_all_go_on_when_it_ends() -> None:
    broker = _SlowBroker()
    broker.gate.clear()
    refs = TopicRefs(broker)
    first = asyncio.create_task(refs.acquire("room"))
    async with asyncio.timeout(5):
        assert await broker.started.get() == ("subscribe", "room")
    waiting = [asyncio.create_task(refs.acquire("room")) for _ in range(200)]
    await asyncio.sleep(0)  # each waiter reaches the subscription under way
    broker.gate.set()
    # A handful of loop iterations, not one per waiter (a lock handed from one to the next).
    for _ in range(10):
        await asyncio.sleep(0)
    assert first.done() and all(task.done() for task in waiting)
    assert broker.changes == [("subscribe", "room")]
    for _ in range(201):
        await refs.release("room")
    assert broker.changes == [("subscribe", "room"), ("unsubscribe", "room")]


async def test_a_failed_subscription_leaves_the_next_holder_to_subscribe_again() -> None:
    broker = _SlowBroker()
    refs = TopicRefs(broker)
    calls = 0
    real = broker.subscribe

    async def failing_once(topic: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("broker down")
        await real(topic)

    broker.subscribe = failing_once  # type: ignore[method-assign]
    try:
        await refs.acquire("room")
    except RuntimeError:
        pass
    else:
        raise AssertionError("the first subscription should have failed")
    assert "room" not in refs
    await refs.acquire("room")
    assert "room" in refs and calls == 2
