"""The broker contract (hub.broker's documented guarantees), run against every backend.

No test sleeps to synchronise: deliveries are awaited through the recorder; states nothing
notifies about (expiry) are polled with a deadline. A "barrier" proves a negative: a marker
published on a node's own topic after the publishes under test arrives after them (the memory
broker delivers synchronously; Redis delivers to one connection in execution order).
"""

from __future__ import annotations

import asyncio

from support.waiting import eventually

from hub.broker import StoredEvent, node_topic

from .conftest import Cluster, Node, barrier

# --- lifecycle ----------------------------------------------------------------------------------


async def test_ready_after_start_not_after_close(cluster: Cluster) -> None:
    a = await cluster.node("a")
    assert a.broker.ready()
    await a.broker.close()
    assert not a.broker.ready()
    await a.broker.close()  # idempotent


# --- stored streams -----------------------------------------------------------------------------


async def test_publish_assigns_seq_from_one_and_stores_history(cluster: Cluster) -> None:
    a = await cluster.node("a")
    published = [await a.broker.publish("r", f"e{i}".encode()) for i in range(1, 6)]

    assert [e.seq for e in published] == [1, 2, 3, 4, 5]
    assert len({e.epoch for e in published}) == 1
    assert all(e.room == "r" and e.origin == "a" for e in published)
    history = await a.broker.history("r", 0)
    assert history.events == published
    assert (history.epoch, history.last_seq, history.first_seq) == (published[0].epoch, 5, 1)
    assert history.reaches(0)


async def test_publish_once_publishes_one_event_per_key_whoever_asks(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    for node in (a, b):
        await node.broker.subscribe("r")
    await a.broker.publish("r", b"before")
    first = await a.broker.publish_once("r", b"closed", "poll-1")
    again = await asyncio.gather(
        *(node.broker.publish_once("r", b"closed", "poll-1") for node in (a, b, a))
    )
    other = await b.broker.publish_once("r", b"closed too", "poll-2")
    assert first == (2, True)
    assert list(again) == [(2, False)] * 3
    assert other == (3, True)
    history = await a.broker.history("r", 0)
    assert [e.body for e in history.events] == [b"before", b"closed", b"closed too"]
    for node in (a, b):
        recorder = node.recorder
        await recorder.wait_for(lambda r=recorder: r.seqs("r") == [1, 2, 3])  # type: ignore[misc]


async def test_publish_once_may_publish_again_after_its_ttl(cluster: Cluster) -> None:
    a = await cluster.node("a")
    assert await a.broker.publish_once("r", b"x", "k", ttl=0.05) == (1, True)
    assert await a.broker.publish_once("r", b"x", "k", ttl=0.05) == (1, False)
    await eventually(
        lambda: _published_again(a, "r", "k"), within=5.0, what="the once key expiring"
    )


async def _published_again(node: Node, room: str, key: str) -> bool:
    _seq, published = await node.broker.publish_once(room, b"x", key, ttl=0.05)
    return published


async def test_history_after_and_limit(cluster: Cluster) -> None:
    a = await cluster.node("a")
    for i in range(1, 6):
        await a.broker.publish("r", f"e{i}".encode())

    assert [e.seq for e in (await a.broker.history("r", 3)).events] == [4, 5]
    assert [e.seq for e in (await a.broker.history("r", 0, limit=2)).events] == [1, 2]
    assert [e.seq for e in (await a.broker.history("r", 2, limit=2)).events] == [3, 4]
    assert (await a.broker.history("r", 0, limit=0)).events == []
    tail = await a.broker.history("r", 5)
    assert (tail.events, tail.last_seq, tail.first_seq) == ([], 5, 1)
    beyond = await a.broker.history("r", 99)
    assert beyond.events == [] and beyond.last_seq == 5


async def test_history_is_trimmed_to_history_size(cluster: Cluster) -> None:
    a = await cluster.node("a")
    size = cluster.settings.history_size
    total = 3 * size
    for i in range(1, total + 1):
        await a.broker.publish("r", f"e{i}".encode())

    history = await a.broker.history("r", 0)
    seqs = [e.seq for e in history.events]
    assert history.last_seq == total
    # At least history_size retained, bounded, and first_seq is the true oldest retained.
    assert 1 < history.first_seq <= total - size + 1
    assert seqs == list(range(history.first_seq, total + 1))
    assert [e.body for e in history.events] == [f"e{s}".encode() for s in seqs]
    assert not history.reaches(0)
    assert history.reaches(history.first_seq - 1)
    limited = await a.broker.history("r", 0, limit=2)
    assert [e.seq for e in limited.events] == [history.first_seq, history.first_seq + 1]
    assert limited.first_seq == history.first_seq
    assert [e.seq for e in (await a.broker.history("r", total - 2)).events] == [
        total - 1,
        total,
    ]


async def test_head_starts_an_epoch_that_stays(cluster: Cluster) -> None:
    a = await cluster.node("a")
    b = await cluster.node("b")

    epoch, last = await a.broker.head("fresh")
    assert epoch and last == 0
    assert await a.broker.head("fresh") == (epoch, 0)
    assert await b.broker.head("fresh") == (epoch, 0)
    empty = await b.broker.history("fresh", 0)
    assert (empty.epoch, empty.last_seq, empty.first_seq, empty.events) == (epoch, 0, 1, [])
    event = await b.broker.publish("fresh", b"x")
    assert (event.epoch, event.seq) == (epoch, 1)
    assert await a.broker.head("fresh") == (epoch, 1)


async def test_position_is_where_delivery_stands_once_subscribed(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await b.broker.publish("r", b"before")
    assert a.broker.position("r") is None  # not subscribed
    await a.broker.subscribe("r")
    epoch, last = await a.broker.head("r")
    assert a.broker.position("r") == (epoch, last) == (epoch, 1)
    await b.broker.publish("r", b"after")
    await a.recorder.wait_events("r", 1)
    # Each delivery moves it on: the handler has what came up to it, and only that.
    assert a.broker.position("r") == (epoch, 2)
    assert a.recorder.seqs("r") == [2]
    await a.broker.unsubscribe("r")
    assert a.broker.position("r") is None


async def test_rooms_number_independently(cluster: Cluster) -> None:
    a = await cluster.node("a")
    assert (await a.broker.publish("r1", b"x")).seq == 1
    assert (await a.broker.publish("r1", b"y")).seq == 2
    assert (await a.broker.publish("r2", b"z")).seq == 1
    assert (await a.broker.head("r1"))[1] == 2
    assert [e.body for e in (await a.broker.history("r2", 0)).events] == [b"z"]


# --- delivery -----------------------------------------------------------------------------------


async def test_events_reach_every_subscribed_node_in_order_once(cluster: Cluster) -> None:
    a, b, c = await cluster.node("a"), await cluster.node("b"), await cluster.node("c")
    await a.broker.subscribe("r")
    await b.broker.subscribe("r")

    published = [await a.broker.publish("r", f"e{i}".encode()) for i in range(1, 21)]

    for node in (a, b):  # the publisher included: one delivery path
        await node.recorder.wait_events("r", 20)
    await barrier(c, a, b, c)
    assert a.recorder.events == published
    assert b.recorder.events == published
    assert c.recorder.events == []
    assert a.recorder.epochs == b.recorder.epochs == []


async def test_concurrent_publishers_give_every_node_the_same_gapless_order(
    cluster: Cluster,
) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.broker.subscribe("r")
    await b.broker.subscribe("r")
    n = 30

    async def burst(node: Node) -> list[StoredEvent]:
        return [await node.broker.publish("r", f"{node.node_id}{i}".encode()) for i in range(n)]

    from_a, from_b = await asyncio.gather(burst(a), burst(b))

    for node in (a, b):
        await node.recorder.wait_events("r", 2 * n)
    assert a.recorder.seqs("r") == list(range(1, 2 * n + 1))
    assert a.recorder.events == b.recorder.events
    assert a.recorder.events == sorted([*from_a, *from_b], key=lambda e: e.seq)
    # Each publisher's events keep its publish order.
    for origin in ("a", "b"):
        assert [e.body for e in a.recorder.events if e.origin == origin] == [
            f"{origin}{i}".encode() for i in range(n)
        ]


async def test_no_delivery_after_unsubscribe(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.broker.subscribe("r")
    await b.broker.subscribe("r")
    await b.broker.publish("r", b"1")
    await a.recorder.wait_for(lambda: a.recorder.seqs("r") == [1], what="first event")

    await a.broker.unsubscribe("r")
    await a.broker.unsubscribe("r")  # idempotent
    await a.broker.unsubscribe("never-subscribed")
    await b.broker.publish("r", b"2")
    await b.broker.publish_ephemeral("r", b"ping")

    await barrier(b, a, b)
    assert a.recorder.seqs("r") == [1]
    assert a.recorder.payloads("r") == []
    assert b.recorder.seqs("r") == [1, 2]
    assert b.recorder.payloads("r") == [b"ping"]


async def test_subscribe_is_idempotent_and_resubscribe_resumes(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.broker.subscribe("r")
    await a.broker.subscribe("r")
    await b.broker.publish("r", b"1")
    await a.recorder.wait_for(lambda: a.recorder.seqs("r") == [1], what="first event")
    await a.broker.unsubscribe("r")
    await b.broker.publish("r", b"2")  # missed: a is not subscribed
    await a.broker.subscribe("r")
    await b.broker.publish("r", b"3")

    await a.recorder.wait_for(lambda: 3 in a.recorder.seqs("r"), what="third event")
    await barrier(b, a)
    assert a.recorder.seqs("r") == [1, 3]


async def test_handler_failure_does_not_stop_delivery(cluster: Cluster) -> None:
    a = await cluster.node("a")
    await a.broker.subscribe("r")
    a.recorder.fail_events = 1
    for i in range(3):
        await a.broker.publish("r", f"e{i}".encode())
    await a.recorder.wait_for(lambda: a.recorder.seqs("r") == [1, 2, 3], what="3 events")


# --- ephemeral messages -------------------------------------------------------------------------


async def test_ephemeral_messages_reach_subscribers_in_order_and_are_not_stored(
    cluster: Cluster,
) -> None:
    a, b, c = await cluster.node("a"), await cluster.node("b"), await cluster.node("c")
    await a.broker.subscribe("tally")
    await b.broker.subscribe("tally")
    payloads = [f"m{i}".encode() for i in range(10)]
    for payload in payloads:
        await c.broker.publish_ephemeral("tally", payload)

    for node in (a, b):
        await node.recorder.wait_payloads("tally", 10)
    await barrier(a, a, b, c)
    assert a.recorder.payloads("tally") == payloads
    assert b.recorder.payloads("tally") == payloads
    assert c.recorder.payloads("tally") == []
    assert a.recorder.events == []
    assert (await a.broker.head("tally"))[1] == 0


async def test_node_topic_targets_one_node(cluster: Cluster) -> None:
    a, b, c = await cluster.node("a"), await cluster.node("b"), await cluster.node("c")
    await a.broker.publish_ephemeral(node_topic("b"), b"for b")
    await b.recorder.wait_for(lambda: b.recorder.messages == [(node_topic("b"), b"for b")])
    await barrier(c, a, c)
    assert all(topic != node_topic("b") for topic, _ in a.recorder.messages)
    assert all(topic != node_topic("b") for topic, _ in c.recorder.messages)


# --- presence -----------------------------------------------------------------------------------


async def test_presence_add_remove_count_page(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.broker.presence_add("r", "s2", b"i2") == 1
    assert await b.broker.presence_add("r", "s1", b"i1") == 2
    assert await a.broker.presence_add("r", "s3", b"i3") == 3
    assert await b.broker.presence_add("r", "s3", b"i3b") == 3  # re-adding replaces
    assert await a.broker.presence_add("other", "s9", b"i9") == 1

    assert await b.broker.presence_count("r") == 3
    assert await a.broker.presence_page("r", "", 10) == [
        ("s1", b"i1"),
        ("s2", b"i2"),
        ("s3", b"i3b"),
    ]
    assert await a.broker.presence_page("r", "", 2) == [("s1", b"i1"), ("s2", b"i2")]
    assert await a.broker.presence_page("r", "s2", 2) == [("s3", b"i3b")]
    assert await a.broker.presence_page("r", "s3", 2) == []
    assert await a.broker.presence_page("r", "", 0) == []

    assert await b.broker.presence_remove("r", ["s1", "missing"]) == 2
    assert await a.broker.presence_remove("r", []) == 2
    assert await a.broker.presence_count("r") == 2
    assert await a.broker.presence_page("r", "", 10) == [("s2", b"i2"), ("s3", b"i3b")]
    assert await a.broker.presence_count("empty") == 0
    assert await a.broker.presence_page("empty", "", 10) == []
    assert await b.broker.presence_get("r", "s3") == b"i3b"
    assert await b.broker.presence_get("r", "s1") is None  # removed
    assert await b.broker.presence_get("other", "s3") is None  # another room


async def test_presence_add_many_records_every_entry_in_one_step(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await b.broker.subscribe("r")
    assert await a.broker.presence_add("r", "s0", b"i0") == 1
    entries = {"s1": b"i1", "s2": b"i2", "s0": b"i0b"}  # s0 again: replaced
    assert await a.broker.presence_add_many("r", entries, announce=b"three joined") == 3
    assert await b.broker.presence_page("r", "", 10) == [
        ("s0", b"i0b"),
        ("s1", b"i1"),
        ("s2", b"i2"),
    ]
    assert await a.broker.presence_add_many("r", {}) == 3
    await b.recorder.wait_payloads("r", 1)
    await barrier(a, b)
    assert b.recorder.payloads("r") == [b"three joined"]


async def test_presence_announcements_reach_the_room_topic_once_the_entry_changed(
    cluster: Cluster,
) -> None:
    a, b, c = await cluster.node("a"), await cluster.node("b"), await cluster.node("c")
    await a.broker.subscribe("r")
    await b.broker.subscribe("r")
    assert await c.broker.presence_add("r", "s1", b"i1", announce=b"s1 joined") == 1
    assert await c.broker.presence_add("r", "s2", b"i2") == 2  # no announcement
    assert await c.broker.presence_remove("r", ["s1"], announce=b"s1 left") == 1
    assert await c.broker.presence_remove("r", ["s2"]) == 0
    for node in (a, b):
        await node.recorder.wait_payloads("r", 2)
    await barrier(c, a, b, c)
    for node in (a, b):
        assert node.recorder.payloads("r") == [b"s1 joined", b"s1 left"]
    assert c.recorder.payloads("r") == []  # not subscribed


async def test_presence_entries_expire_unless_refreshed(cluster: Cluster) -> None:
    a = await cluster.node("a")
    assert await a.broker.presence_add("r", "keep", b"k") == 1
    assert await a.broker.presence_add("r", "drop", b"d") == 2
    # Refreshing never adds: it says which sids had no entry to refresh.
    assert await a.broker.presence_refresh("r", ["ghost", "keep"]) == ["ghost"]
    assert await a.broker.presence_count("r") == 2

    async def only_kept_left() -> bool:
        assert await a.broker.presence_refresh("r", ["keep"]) == []
        return await a.broker.presence_count("r") == 1

    await eventually(only_kept_left, what="unrefreshed entry expired")
    assert await a.broker.presence_refresh("r", ["drop", "keep"]) == ["drop"]
    assert await a.broker.presence_page("r", "", 10) == [("keep", b"k")]
    assert await a.broker.presence_get("r", "drop") is None
    assert await a.broker.presence_add("r", "drop", b"d2") == 2  # back after expiry
