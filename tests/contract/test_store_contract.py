"""The store contract (hub.store's documented guarantees), run against every backend: memory
stores sharing one backend, Redis stores sharing one server.

No test sleeps to synchronise: expiry is polled with a deadline.
"""

from __future__ import annotations

import asyncio

from support.waiting import eventually

from .conftest import Cluster


async def test_incr_get_put(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.get("c") is None
    assert await a.store.incr("c") == 1
    assert await b.store.incr("c", 5) == 6
    assert await a.store.incr("c", -2) == 4
    assert await b.store.get("c") == b"4"

    await a.store.put("v", b"one")
    assert await b.store.get("v") == b"one"
    await b.store.put("v", b"two")
    assert await a.store.get("v") == b"two"
    await a.store.put("n", b"10")
    assert await a.store.incr("n") == 11


async def test_get_many_reads_values_in_order(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.get_many([]) == []
    await a.store.put("x", b"1")
    await b.store.put("z", b"3", ttl=60)
    assert await b.store.get_many(["x", "y", "z", "x"]) == [b"1", None, b"3", b"1"]
    await a.store.hash_set("h", "f", b"v")
    assert await a.store.get_many(["h"]) == [None]  # a hash is no value


async def test_put_with_ttl_expires(cluster: Cluster) -> None:
    a = await cluster.node("a")
    await a.store.put("t", b"soon gone", ttl=0.2)
    await a.store.put("kept", b"stays")
    assert await a.store.get("t") == b"soon gone"

    async def gone() -> bool:
        return await a.store.get("t") is None

    await eventually(gone, what="ttl expiry")
    assert await a.store.get("kept") == b"stays"


async def test_set_if_absent_first_writer_wins_until_expiry(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.set_if_absent("idem", b"first", ttl=0.3) is None
    assert await b.store.set_if_absent("idem", b"second", ttl=0.3) == b"first"
    assert await a.store.get("idem") == b"first"

    results = await asyncio.gather(
        *(n.store.set_if_absent("race", n.node_id.encode()) for n in (a, b, a, b))
    )
    assert results.count(None) == 1
    winner = await a.store.get("race")
    assert winner in (b"a", b"b")
    assert all(r in (None, winner) for r in results)

    async def expired() -> bool:
        return await a.store.get("idem") is None

    await eventually(expired, what="idempotency key expiry")
    assert await b.store.set_if_absent("idem", b"third") is None
    assert await a.store.get("idem") == b"third"


async def test_delete(cluster: Cluster) -> None:
    a = await cluster.node("a")
    await a.store.put("v", b"x")
    await a.store.hash_set("h", "f", b"x")
    await a.store.set_add("s", "m")
    for key in ("v", "h", "s", "missing"):
        await a.store.delete(key)
    await a.store.delete("v")  # idempotent
    assert await a.store.get("v") is None
    assert await a.store.hash_get_all("h") == {}
    assert await a.store.set_members("s") == set()


async def test_hash_set_many_sets_every_field_at_once(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.store.hash_set("h", "f", b"old")
    await a.store.hash_set_many("h", {"f": b"1", "g": b"2"})
    await a.store.hash_set_many("h", {})  # nothing to set
    assert await b.store.hash_get_all("h") == {"f": b"1", "g": b"2"}


async def test_hash_operations(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.hash_get_all("h") == {}
    assert await a.store.hash_get("h", "f") is None
    assert await a.store.hash_set("h", "f", b"1") is True
    assert await b.store.hash_set("h", "f", b"2") is True  # overwrite
    assert await b.store.hash_set("h", "f", b"3", only_if_absent=True) is False
    assert await a.store.hash_get("h", "f") == b"2"
    assert await a.store.hash_set("h", "g", b"9", only_if_absent=True) is True
    assert await b.store.hash_get_all("h") == {"f": b"2", "g": b"9"}
    assert await a.store.hash_delete("h", "f") is True
    assert await a.store.hash_delete("h", "f") is False
    assert await b.store.hash_get_all("h") == {"g": b"9"}


async def test_hash_take_removes_all_fields_or_none(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.store.hash_set("q", "x", b"1")
    await a.store.hash_set("q", "y", b"2")
    await a.store.hash_set("q", "z", b"3")
    assert await b.store.hash_take("q", ["x", "missing"]) is None
    assert await a.store.hash_get_all("q") == {"x": b"1", "y": b"2", "z": b"3"}
    assert await b.store.hash_take("q", ["x", "y"]) == {"x": b"1", "y": b"2"}
    assert await a.store.hash_take("q", ["y", "z"]) is None  # y is gone: z stays
    assert await a.store.hash_get_all("q") == {"z": b"3"}
    assert await a.store.hash_take("q", []) is None


async def test_concurrent_takes_of_a_shared_field_succeed_once(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    for field in "pqr":
        await a.store.hash_set("queue", field, field.encode())
    results = await asyncio.gather(
        a.store.hash_take("queue", ["p", "q"]), b.store.hash_take("queue", ["q", "r"])
    )
    assert sum(result is not None for result in results) == 1
    assert len(await a.store.hash_get_all("queue")) == 1


async def test_set_operations(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.set_members("s") == set()
    assert await a.store.set_contains("s", "x") is False
    assert await a.store.set_add("s", "x") is True
    assert await b.store.set_add("s", "x") is False
    assert await b.store.set_add("s", "y") is True
    assert await a.store.set_members("s") == {"x", "y"}
    assert await b.store.set_contains("s", "y") is True
    assert await a.store.set_remove("s", "x") is True
    assert await a.store.set_remove("s", "x") is False
    assert await b.store.set_members("s") == {"y"}


async def test_set_sizes_and_counted_adds(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.set_size("v") == 0
    added = await asyncio.gather(
        *(node.store.set_add_counted("v", f"u{i}") for i, node in enumerate([a, b] * 10))
    )
    assert all(was_added for was_added, _ in added)
    assert sorted(size for _, size in added) == list(range(1, 21))  # each add its own count
    assert await b.store.set_add_counted("v", "u3") == (False, 20)
    assert await a.store.set_size("v") == 20


async def test_capped_log_operations(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.log_range("l", None, 10) == []
    for score in (3, 1, 2, 5, 4):
        await a.store.log_append("l", score, b"item-%d" % score, max_len=4)
    # The lowest score went beyond the cap; reads come oldest first.
    assert await b.store.log_range("l", None, 10) == [(s, b"item-%d" % s) for s in (2, 3, 4, 5)]
    assert await b.store.log_range("l", 5, 2) == [(3, b"item-3"), (4, b"item-4")]
    assert await b.store.log_range("l", 2, 10) == []
    assert await b.store.log_range("l", None, 0) == []
    # Equal items under two scores stay two; appending to a score replaces its item.
    await b.store.log_append("l", 6, b"item-5", max_len=4)
    await b.store.log_append("l", 6, b"same:colon", max_len=4)
    assert await a.store.log_range("l", None, 2) == [(5, b"item-5"), (6, b"same:colon")]
    assert await a.store.log_remove("l", 5) is True
    assert await a.store.log_remove("l", 5) is False
    assert [s for s, _ in await b.store.log_range("l", None, 10)] == [3, 4, 6]


async def test_capped_index_operations(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.index_newest("i", 10) == []
    assert await a.store.index_get("i", "x") is None
    for member, score in (("x", 30), ("y", 10), ("z", 20)):
        assert await a.store.index_put("i", member, score, member.encode(), max_len=3) is True
    assert await b.store.index_newest("i", 10) == [
        ("x", 30, b"x"),
        ("z", 20, b"z"),
        ("y", 10, b"y"),
    ]
    assert await b.store.index_newest("i", 2) == [("x", 30, b"x"), ("z", 20, b"z")]
    assert await b.store.index_newest("i", 0) == []
    # A member keeps one entry: a put replaces it, moving it by its score.
    assert await b.store.index_put("i", "y", 40, b"y2", max_len=3) is True
    assert await a.store.index_get("i", "y") == (40, b"y2")
    assert [m for m, _, _ in await a.store.index_newest("i", 10)] == ["y", "x", "z"]
    # A lower score than the member's does not go back in time; an equal one replaces.
    assert await a.store.index_put("i", "y", 35, b"older", max_len=3) is False
    assert await a.store.index_get("i", "y") == (40, b"y2")
    assert await a.store.index_put("i", "y", 40, b"y3", max_len=3) is True
    assert await b.store.index_get("i", "y") == (40, b"y3")
    # Beyond the cap the lowest scores go (ties: the lowest member), values included.
    await a.store.index_put("i", "w", 50, b"w", max_len=3)
    assert [m for m, _, _ in await b.store.index_newest("i", 10)] == ["w", "y", "x"]
    assert await b.store.index_get("i", "z") is None
    await a.store.index_put("i", "b", 30, b"b", max_len=3)
    await a.store.index_put("i", "a", 30, b"a", max_len=3)
    assert await b.store.index_newest("i", 10) == [
        ("w", 50, b"w"),
        ("y", 40, b"y3"),
        ("x", 30, b"x"),
    ]
    # Millisecond timestamps are exact scores.
    await a.store.index_put("j", "t", 1_750_000_000_123, b"t", max_len=1)
    assert await b.store.index_get("j", "t") == (1_750_000_000_123, b"t")
    await b.store.delete("i")
    assert await a.store.index_newest("i", 10) == []
    assert await a.store.index_get("i", "w") is None


async def test_window_counter_is_shared_and_starts_again_after_its_window(
    cluster: Cluster,
) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.window_add("w", 5, 0.3) == 5
    assert await b.store.window_add("w", 7, 0.3) == 12
    totals = await asyncio.gather(*(n.store.window_add("w", 1, 0.3) for n in (a, b, a, b)))
    assert sorted(totals) == [13, 14, 15, 16]

    async def restarted() -> bool:
        return await a.store.window_add("w", 1, 0.3) == 1

    # A later add starts a new window: the count it returns is its own again.
    await eventually(restarted, what="a new window")
    assert await a.store.window_add("long", 2, 60) == 2


async def test_index_remove(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.store.index_remove("i", "x") is False
    for member, score in (("x", 3), ("y", 2), ("z", 1)):
        await a.store.index_put("i", member, score, member.encode(), max_len=3)
    assert await b.store.index_remove("i", "y") is True
    assert await a.store.index_get("i", "y") is None
    assert await a.store.index_newest("i", 10) == [("x", 3, b"x"), ("z", 1, b"z")]
    # The cap counts what is left: a new entry drops nothing now.
    await a.store.index_put("i", "w", 4, b"w", max_len=3)
    assert [m for m, _, _ in await b.store.index_newest("i", 10)] == ["w", "x", "z"]
    # Of concurrent removes of one entry, exactly one finds it.
    results = await asyncio.gather(*(n.store.index_remove("i", "x") for n in (a, b, a, b)))
    assert sorted(results) == [False, False, False, True]
    # Put back after its removal, an entry starts afresh (a lower score than before is fine).
    await b.store.index_put("i", "x", 1, b"again", max_len=3)
    assert await a.store.index_get("i", "x") == (1, b"again")
    for member in ("w", "x", "z"):
        assert await a.store.index_remove("i", member) is True
    assert await b.store.index_newest("i", 10) == []
