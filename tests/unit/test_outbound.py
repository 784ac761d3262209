"""The bounded outbound queue (hub.outbound): its bounds, the overflow rule, coalescing, waking."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from helpers import TIMEOUT
from hypothesis import given
from hypothesis import strategies as st

from hub.outbound import OutboundQueue

# -- bounds and the overflow rule ------------------------------------------------------------


def test_holds_up_to_max_messages_then_overflows() -> None:
    queue = OutboundQueue(max_messages=3, max_bytes=1000)
    assert [queue.put(f"m{i}") for i in range(3)] == [True, True, True]
    assert len(queue) == 3
    assert not queue.overflowed
    assert queue.put("m3") is False
    assert queue.overflowed


def test_byte_bound_is_inclusive() -> None:
    queue = OutboundQueue(max_messages=100, max_bytes=10)
    assert queue.put(b"12345")
    assert queue.put(b"67890")  # exactly max_bytes
    assert queue.queued_bytes == 10
    assert not queue.overflowed
    assert queue.put(b"x") is False
    assert queue.overflowed


def test_one_message_larger_than_max_bytes_overflows_an_empty_queue() -> None:
    queue = OutboundQueue(max_messages=100, max_bytes=10)
    assert queue.put("x" * 11) is False
    assert queue.overflowed


def test_overflow_drops_the_backlog_and_refuses_every_later_put() -> None:
    queue = OutboundQueue(max_messages=2, max_bytes=1000)
    queue.put("a")
    queue.put("b")
    assert not queue.put("c")
    assert len(queue) == 0
    assert queue.queued_bytes == 0
    assert queue.take(10**9) == []
    # Even a tiny message, with the queue empty, is refused from now on.
    assert not queue.put("d")
    assert len(queue) == 0
    assert queue.overflowed


def test_overflow_can_be_applied_by_hand() -> None:
    queue = OutboundQueue(max_messages=10, max_bytes=1000)
    queue.put("a")
    queue.overflow()
    assert queue.overflowed
    assert len(queue) == 0
    assert not queue.put("b")


def test_close_refuses_puts_but_keeps_what_is_queued() -> None:
    queue = OutboundQueue(max_messages=10, max_bytes=1000)
    queue.put("a")
    queue.close()
    assert queue.closed
    assert not queue.overflowed
    assert queue.put("b") is False
    assert not queue.overflowed  # a refusal after close is not an overflow
    assert queue.take(10**9) == ["a"]


def test_taking_frees_room_for_more() -> None:
    queue = OutboundQueue(max_messages=2, max_bytes=4)
    assert queue.put("ab") and queue.put("cd")
    assert queue.take(2) == ["ab"]
    assert queue.queued_bytes == 2
    assert queue.put("ef")
    assert queue.take(10**9) == ["cd", "ef"]
    assert queue.queued_bytes == 0
    assert not queue.overflowed


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=40), max_size=60),
    max_messages=st.integers(min_value=1, max_value=20),
    max_bytes=st.integers(min_value=1, max_value=200),
)
def test_bounds_are_never_passed(sizes: list[int], max_messages: int, max_bytes: int) -> None:
    queue = OutboundQueue(max_messages=max_messages, max_bytes=max_bytes)
    accepted: list[bytes] = []
    for i, size in enumerate(sizes):
        data = bytes([i % 256]) * size
        fits = len(accepted) < max_messages and sum(map(len, accepted)) + size <= max_bytes
        assert queue.put(data) is (fits and not queue.overflowed)
        if queue.overflowed:
            accepted.clear()
        elif fits:
            accepted.append(data)
        assert len(queue) <= max_messages
        assert queue.queued_bytes <= max_bytes
        assert queue.queued_bytes == sum(map(len, accepted))
    assert queue.take(10**9) == accepted


# -- take(): coalescing ------------------------------------------------------------------------


def test_take_returns_in_order_up_to_max_bytes() -> None:
    queue = OutboundQueue()
    for data in ("aaa", "bbb", "ccc", "ddd"):
        queue.put(data)
    assert queue.take(7) == ["aaa", "bbb"]  # a third would make 9
    assert queue.take(9) == ["ccc", "ddd"]  # exactly the limit is fine... and it was all
    assert queue.take(9) == []


def test_take_returns_at_least_one_message_even_over_the_limit() -> None:
    queue = OutboundQueue()
    queue.put("x" * 100)
    queue.put("y")
    assert queue.take(10) == ["x" * 100]
    assert queue.take(10) == ["y"]


def test_take_keeps_the_byte_count() -> None:
    queue = OutboundQueue()
    queue.put(b"12")
    queue.put(b"345")
    queue.take(2)
    assert queue.queued_bytes == 3
    assert len(queue) == 1


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=40),
    limit=st.integers(min_value=1, max_value=120),
)
def test_take_partitions_the_queue(sizes: list[int], limit: int) -> None:
    queue = OutboundQueue(max_messages=1000, max_bytes=10**6)
    items = [str(i % 10) * size for i, size in enumerate(sizes)]
    for item in items:
        assert queue.put(item)
    batches = []
    while len(queue):
        batch = queue.take(limit)
        assert batch, "take returns at least one message while any waits"
        assert len(batch) == 1 or sum(map(len, batch)) <= limit
        batches.append(batch)
    assert [item for batch in batches for item in batch] == items
    assert queue.queued_bytes == 0


# -- wait() --------------------------------------------------------------------------------------


async def test_wait_returns_at_once_when_something_is_queued() -> None:
    queue = OutboundQueue()
    queue.put("a")
    await asyncio.wait_for(queue.wait(), TIMEOUT)


class _Parked:
    """A ``queue.wait()`` driven by hand up to the point where it blocks: no scheduling, no
    sleeping, so the test knows exactly when it is parked and when it was woken."""

    def __init__(self, queue: OutboundQueue) -> None:
        self.coro = queue.wait()
        future = self.coro.send(None)  # runs up to `await self._waiter`
        assert isinstance(future, asyncio.Future)
        self.future: asyncio.Future[None] = future
        assert queue._waiter is self.future
        assert not self.future.done()

    def woken(self) -> bool:
        return self.future.done()

    def finish(self) -> None:
        """Resume the woken wait; it must return now."""
        with pytest.raises(StopIteration):
            self.coro.send(None)


@pytest.mark.parametrize(
    "action",
    [
        lambda q: q.put("a"),
        lambda q: q.close(),
        lambda q: q.overflow(),
        lambda q: [q.put("x" * 5) for _ in range(2)],  # the second put overflows (max 8 bytes)
    ],
    ids=["put", "close", "overflow", "put-overflow"],
)
async def test_wait_wakes_on(action: Callable[[OutboundQueue], object]) -> None:
    queue = OutboundQueue(max_messages=10, max_bytes=8)
    parked = _Parked(queue)
    action(queue)
    assert parked.woken()
    parked.finish()
    assert queue._waiter is None


async def test_after_close_puts_are_refused_and_wait_returns_at_once() -> None:
    queue = OutboundQueue()
    parked = _Parked(queue)
    queue.close()
    parked.finish()
    assert not queue.put("late")
    await asyncio.wait_for(queue.wait(), TIMEOUT)  # closed: returns at once


async def test_wait_returns_at_once_when_closed_or_overflowed() -> None:
    closed = OutboundQueue()
    closed.close()
    await asyncio.wait_for(closed.wait(), TIMEOUT)
    overflowed = OutboundQueue()
    overflowed.overflow()
    await asyncio.wait_for(overflowed.wait(), TIMEOUT)


async def test_a_wait_keeps_waiting_until_there_is_something() -> None:
    queue = OutboundQueue()
    parked = _Parked(queue)
    assert queue.take(10) == []  # taking from an empty queue wakes nobody
    assert not parked.woken()
    queue.put("a")
    parked.finish()


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    queue = OutboundQueue()
    parked = _Parked(queue)
    with pytest.raises(asyncio.CancelledError):
        parked.coro.throw(asyncio.CancelledError())
    assert queue._waiter is None
    # A later waiter, this time a real task, is still woken by a put.
    task = asyncio.create_task(queue.wait())
    asyncio.get_running_loop().call_soon(queue.put, "a")  # runs after the task has parked
    await asyncio.wait_for(task, TIMEOUT)


async def test_a_waiting_task_is_woken_by_a_put_from_another_task() -> None:
    queue = OutboundQueue()
    loop = asyncio.get_running_loop()
    waiter = asyncio.create_task(queue.wait())
    loop.call_soon(queue.put, "a")
    await asyncio.wait_for(waiter, TIMEOUT)
    assert queue.take(10) == ["a"]
