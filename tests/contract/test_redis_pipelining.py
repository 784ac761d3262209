"""The node's Redis client sends one event-loop iteration's commands as one pipeline: each
caller still gets its own reply or its own error, identical reads are sent once, a cancelled
caller's command is not sent, a connection lost part-way fails only the callers still waiting
(and is never reused), and closing answers what is under way and refuses what comes after."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import hiredis
import pytest
from redis._parsers.hiredis import _AsyncHiredisParser
from redis.asyncio.connection import AbstractConnection
from redis.client import EMPTY_RESPONSE
from redis.commands.core import AsyncScript
from redis.exceptions import BusyLoadingError, DataError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from support.redis_server import RedisServer
from support.waiting import eventually

from hub.broker import BrokerUnavailable
from hub.redis import pipelining
from hub.redis.connection import RedisConnection
from hub.redis.pipelining import MAX_BATCH, MAX_IN_FLIGHT, PipeliningRedis

pytestmark = pytest.mark.redis


# What redis-py sends on a connection as it opens it.
SETUP = {b"CLIENT", b"HELLO", b"AUTH", b"SELECT"}


class CountingPipelines:
    """Counts the pipelines sent and the commands in them (patched onto the connections'
    send_packed_command, which writes one pipeline: its commands are read back from the
    bytes). What a new connection sends of its own as it connects is not counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.sent = asyncio.Event()  # set with each pipeline counted
        send = AbstractConnection.send_packed_command

        async def counted(
            conn: AbstractConnection, command: Any, check_health: bool = True
        ) -> None:
            reader = hiredis.Reader()
            reader.feed(command if isinstance(command, bytes) else b"".join(command))
            count = 0
            while (sent := reader.gets()) is not False:
                count += sent[0].upper() not in SETUP
            if count:
                self.sizes.append(count)
                self.sent.set()
            await send(conn, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)


@pytest.fixture
async def connection(redis_server: RedisServer) -> AsyncIterator[RedisConnection]:
    conn = RedisConnection(redis_server.url, prefix=f"pipe-{uuid.uuid4().hex[:8]}:")
    try:
        yield conn
    finally:
        await conn.close()


async def test_one_iteration_is_one_pipeline_and_each_caller_gets_its_reply(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connection.redis
    assert isinstance(redis, PipeliningRedis)
    await redis.set(connection.key("a"), "1")
    pipelines = CountingPipelines(monkeypatch)
    results = await asyncio.gather(
        redis.incr(connection.key("n")),
        redis.incr(connection.key("n")),
        redis.get(connection.key("a")),
        redis.hset(connection.key("h"), mapping={"f": "v"}),
        redis.hgetall(connection.key("h")),
    )
    assert results == [1, 2, b"1", 1, {b"f": b"v"}]
    assert pipelines.sizes == [5]


async def test_identical_reads_go_once_and_each_caller_gets_its_own_copy(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connection.redis
    key = connection.key("room")
    await redis.hset(key, mapping={"a": "1", "b": "2"})
    pipelines = CountingPipelines(monkeypatch)
    first, second, third = await asyncio.gather(
        redis.hgetall(key), redis.hgetall(key), redis.hgetall(key)
    )
    assert pipelines.sizes == [1]
    assert first == second == third == {b"a": b"1", b"b": b"2"}
    first[b"c"] = b"3"  # one caller changing its reply changes nobody else's
    assert second == third == {b"a": b"1", b"b": b"2"}
    assert first is not second and second is not third


async def test_writes_are_never_merged(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connection.redis
    pipelines = CountingPipelines(monkeypatch)
    counts = await asyncio.gather(*(redis.incr(connection.key("w")) for _ in range(10)))
    assert sorted(counts) == list(range(1, 11))
    assert pipelines.sizes == [10]


async def test_an_error_reply_fails_only_its_own_command(connection: RedisConnection) -> None:
    redis = connection.redis
    await redis.set(connection.key("text"), "not a number")
    results = await asyncio.gather(
        redis.incr(connection.key("text")),
        redis.incr(connection.key("text")),
        redis.set(connection.key("other"), "x"),
        return_exceptions=True,
    )
    assert isinstance(results[0], ResponseError) and isinstance(results[1], ResponseError)
    assert results[0] is not results[1]  # each caller raises its own exception object
    assert results[2] is True
    assert await redis.get(connection.key("other")) == b"x"


async def test_a_script_not_loaded_yet_still_runs(connection: RedisConnection) -> None:
    redis = connection.redis
    await redis.script_flush()
    script: AsyncScript = redis.register_script("return redis.call('INCR', KEYS[1])")
    key = connection.key("scripted")
    assert sorted(await asyncio.gather(script([key]), script([key]), script([key]))) == [1, 2, 3]
    # Redis restarted or flushed: the script is loaded again.
    await redis.script_flush()
    assert await script([key]) == 4
    assert await script(keys=[key], args=["unused"]) == 5


async def test_a_cancelled_caller_leaves_the_others_their_replies(
    connection: RedisConnection,
) -> None:
    redis = connection.redis
    await redis.set(connection.key("c"), "v")
    cancelled = asyncio.ensure_future(redis.get(connection.key("c")))
    kept = asyncio.ensure_future(redis.get(connection.key("c")))
    await asyncio.sleep(0)  # both queued in this iteration's batch
    cancelled.cancel()
    assert await kept == b"v"
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_a_burst_beyond_the_batch_limit_goes_as_several_pipelines(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connection.redis
    pipelines = CountingPipelines(monkeypatch)
    total = 2 * MAX_BATCH + 76
    counts = await asyncio.gather(*(redis.incr(connection.key("many")) for _ in range(total)))
    assert sorted(counts) == list(range(1, total + 1))
    assert sorted(pipelines.sizes) == [76, MAX_BATCH, MAX_BATCH]


async def test_a_caller_cancelled_before_its_batch_leaves_is_not_sent(
    connection: RedisConnection,
) -> None:
    redis = connection.redis
    key = connection.key("not-sent")
    cancelled = asyncio.ensure_future(redis.incr(key))
    await asyncio.sleep(0)  # queued in this iteration's batch, which has not left yet
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await redis.get(key) is None


async def test_a_connection_lost_part_way_keeps_the_replies_read_and_is_not_reused(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replies are read from the parser's hiredis reader: the third is lost while it is shaped.
    shaped = PipeliningRedis._shaped
    read = 0

    def lost_at_the_third(
        self: PipeliningRedis, raw: object, name: object, options: Mapping[str, Any]
    ) -> object:
        nonlocal read
        read += 1
        if read == 3:
            raise RedisTimeoutError("timeout reading the reply (test)")
        return shaped(self, raw, name, options)

    monkeypatch.setattr(PipeliningRedis, "_shaped", lost_at_the_third)
    await _lost_part_way(connection)


async def test_a_socket_failing_under_the_reader_fails_the_rest_as_unavailable(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replies of a large batch need several reads: the second read fails as a reset socket.
    original = _AsyncHiredisParser.read_from_socket
    reads = 0

    async def reset_at_the_second(self: Any) -> bool:
        nonlocal reads
        reads += 1
        if reads == 2:
            raise ConnectionResetError(104, "reset (test)")
        return await original(self)  # type: ignore[no-any-return]

    redis = connection.redis
    base = connection.key(f"reset-{uuid.uuid4().hex[:8]}")
    value = b"x" * 100_000  # each reply longer than one 64 KiB read
    await asyncio.gather(*(redis.set(f"{base}:{n}", value) for n in range(3)))
    monkeypatch.setattr(_AsyncHiredisParser, "read_from_socket", reset_at_the_second)
    results = await asyncio.gather(
        *(connection.call(redis.get(f"{base}:{n}")) for n in range(3)), return_exceptions=True
    )
    monkeypatch.setattr(_AsyncHiredisParser, "read_from_socket", original)
    assert all(isinstance(r, BrokerUnavailable) for r in results)
    assert isinstance(results[0].__cause__, RedisConnectionError)  # type: ignore[union-attr]
    # The connection went: the next command reads its own reply.
    assert await connection.call(redis.get(f"{base}:0")) == value


def test_a_reply_is_shaped_as_parse_response_shapes_it() -> None:
    redis = PipeliningRedis(protocol=2)  # as the hub makes it (hub.redis.connection)
    lost = BusyLoadingError("LOADING Redis is loading the dataset in memory")
    with pytest.raises(BusyLoadingError):
        redis._shaped(lost, "GET", {})  # a reply that means the connection cannot serve
    with pytest.raises(BusyLoadingError):
        redis._shaped([lost, b"x"], "MGET", {})
    wrong = ResponseError("WRONGTYPE")
    assert redis._shaped(wrong, "GET", {}) is wrong  # an error reply fails its own caller
    assert redis._shaped(wrong, "GET", {EMPTY_RESPONSE: []}) == []
    # The callback gets the command's options but not redis-py's own.
    assert redis._shaped([b"m", b"1.5"], "ZRANGE", {"withscores": True, "keys": ["z"]}) == [
        (b"m", 1.5)
    ]
    assert redis._shaped(b"OK", "SET", {"keys": ["v"]}) is True
    assert redis._shaped(b"raw", "EVALSHA", {}) == b"raw"  # no callback: as read


async def test_read_through_parse_response_a_connection_lost_part_way_is_not_reused(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the parser has no hiredis reader to read from, replies go through parse_response.
    monkeypatch.setattr(pipelining, "_hiredis_parser", lambda connection: None)
    parse = PipeliningRedis.parse_response
    read = 0

    async def lost_at_the_third(
        self: PipeliningRedis, conn: object, name: object, **o: object
    ) -> object:
        nonlocal read
        read += 1
        if read == 3:
            raise RedisTimeoutError("timeout reading the reply (test)")
        return await parse(self, conn, name, **o)  # type: ignore[arg-type]

    monkeypatch.setattr(PipeliningRedis, "parse_response", lost_at_the_third)
    await _lost_part_way(connection)
    # And with parse_response intact, the replies are as redis-py gives them.
    monkeypatch.setattr(PipeliningRedis, "parse_response", parse)
    await _replies_as_redis_py_shapes_them(connection)


async def _lost_part_way(connection: RedisConnection) -> None:
    redis = connection.redis
    key = connection.key(f"part-way-{uuid.uuid4().hex[:8]}")
    results = await asyncio.gather(
        *(connection.call(redis.incr(key)) for _ in range(5)), return_exceptions=True
    )
    assert results[:2] == [1, 2]
    assert all(isinstance(r, BrokerUnavailable) for r in results[2:])
    # All five were sent and ran; the replies left unread went with the dropped connection, so
    # the next command reads its own reply.
    assert await connection.redis.get(key) == b"5"


async def test_batches_keep_one_connection_and_replace_it_once_the_server_closed_it(
    connection: RedisConnection, redis_server: RedisServer
) -> None:
    redis = connection.redis
    ids = [await redis.client_id() for _ in range(3)]
    assert len(set(ids)) == 1  # one connection, batch after batch
    other = RedisConnection(redis_server.url)
    try:
        await other.redis.execute_command("CLIENT", "KILL", "ID", ids[0])
    finally:
        await other.close()
    kept = redis._kept
    assert kept is not None
    reader = kept._reader
    # The loop has seen the server close it: the next batch takes a new one, and succeeds.
    await eventually(lambda: reader is None or reader.at_eof(), what="the close seen")
    assert await redis.client_id() not in ids


async def test_replies_are_shaped_as_redis_py_shapes_them(connection: RedisConnection) -> None:
    await _replies_as_redis_py_shapes_them(connection)


async def test_a_batch_whose_replies_span_several_socket_reads_answers_each_caller(
    connection: RedisConnection,
) -> None:
    redis = connection.redis
    base = connection.key(f"large-{uuid.uuid4().hex[:8]}")
    values = [bytes([65 + n]) * (100_000 + n) for n in range(6)]  # well past one 64 KiB read
    await asyncio.gather(*(redis.set(f"{base}:{n}", value) for n, value in enumerate(values)))
    replies = await asyncio.gather(
        *(redis.get(f"{base}:{n}") for n in range(len(values))), redis.get(f"{base}:none")
    )
    assert replies == [*values, None]


async def _replies_as_redis_py_shapes_them(connection: RedisConnection) -> None:
    redis = connection.redis
    base = connection.key(f"shapes-{uuid.uuid4().hex[:8]}")
    await redis.hset(f"{base}:h", mapping={"a": "1"})
    await redis.sadd(f"{base}:s", "x")
    replies = await asyncio.gather(
        redis.hgetall(f"{base}:h"),
        redis.sismember(f"{base}:s", "x"),
        redis.set(f"{base}:v", "1", nx=True),
        redis.set(f"{base}:v", "2", nx=True),
        redis.zadd(f"{base}:z", {"m": 1.5}),
        redis.zrange(f"{base}:z", 0, -1, withscores=True),
        redis.exists(f"{base}:h", f"{base}:missing"),
        redis.get(f"{base}:missing"),
        return_exceptions=True,
    )
    assert replies == [{b"a": b"1"}, 1, True, None, 1, [(b"m", 1.5)], 1, None]
    with pytest.raises(ResponseError):
        await redis.incr(f"{base}:h")  # WRONGTYPE: an error reply, the connection kept
    assert await redis.get(f"{base}:missing") is None


async def test_closing_answers_the_batch_under_way_and_refuses_what_comes_after(
    redis_server: RedisServer,
) -> None:
    conn = RedisConnection(redis_server.url, prefix=f"pipe-{uuid.uuid4().hex[:8]}:")
    redis = conn.redis
    pending = asyncio.ensure_future(redis.incr(conn.key("closing")))
    await asyncio.sleep(0)  # queued, not sent yet
    await conn.close()
    assert pending.done() and pending.result() == 1
    with pytest.raises(RedisConnectionError):
        await redis.get(conn.key("closing"))
    with pytest.raises(BrokerUnavailable):
        await conn.call(redis.get(conn.key("closing")))


async def test_closing_fails_a_batch_that_outlasts_the_grace_as_unavailable(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = RedisConnection(redis_server.url, prefix=f"pipe-{uuid.uuid4().hex[:8]}:")
    never = asyncio.Event()

    async def no_reply(self: PipeliningRedis, c: object, name: object, **o: object) -> object:
        await never.wait()
        raise AssertionError("unreachable")

    # Replies read through parse_response, which this test holds back.
    monkeypatch.setattr(pipelining, "_hiredis_parser", lambda connection: None)
    monkeypatch.setattr(PipeliningRedis, "parse_response", no_reply)
    monkeypatch.setattr("hub.redis.pipelining.CLOSE_GRACE", 0.05)
    pending = asyncio.ensure_future(conn.call(conn.redis.get(conn.key("stuck"))))
    await asyncio.sleep(0)
    await conn.close()
    # The caller sees Redis unavailable, not a cancellation of its own.
    with pytest.raises(BrokerUnavailable):
        await pending


async def test_replies_late_past_the_deadline_fail_as_unavailable_and_the_rest_is_kept(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = RedisConnection(redis_server.url, prefix=f"pipe-{uuid.uuid4().hex[:8]}:", timeout=0.2)
    parse = PipeliningRedis.parse_response
    read = 0
    never = asyncio.Event()

    async def stalls_at_the_second(
        self: PipeliningRedis, c: object, name: object, **o: object
    ) -> object:
        nonlocal read
        read += 1
        if read == 2:
            await never.wait()
        return await parse(self, c, name, **o)  # type: ignore[arg-type]

    try:
        key = conn.key("late")
        # Replies read through parse_response, which this test holds back.
        monkeypatch.setattr(pipelining, "_hiredis_parser", lambda connection: None)
        monkeypatch.setattr(PipeliningRedis, "parse_response", stalls_at_the_second)
        results = await asyncio.gather(
            *(conn.call(conn.redis.incr(key)) for _ in range(3)), return_exceptions=True
        )
        assert results[0] == 1
        assert all(isinstance(r, BrokerUnavailable) for r in results[1:])
        assert isinstance(results[1], BrokerUnavailable)
        assert isinstance(results[1].__cause__, RedisTimeoutError)
        monkeypatch.setattr(PipeliningRedis, "parse_response", parse)
        assert await conn.call(conn.redis.get(key)) == b"3"
    finally:
        await conn.close()


async def test_an_argument_redis_cannot_take_fails_only_its_command(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connection.redis
    pipelines = CountingPipelines(monkeypatch)
    results = await asyncio.gather(
        redis.set(connection.key("a"), "1"),
        redis.set(connection.key("b"), None),  # type: ignore[arg-type]
        redis.set(connection.key("c"), 2.5),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], DataError)
    assert pipelines.sizes == [2]
    assert await redis.mget(connection.key("a"), connection.key("c")) == [b"1", b"2.5"]


async def test_submitted_commands_are_futures_of_one_pipeline(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connection.redis
    assert isinstance(redis, PipeliningRedis)
    pipelines = CountingPipelines(monkeypatch)
    futures = [redis.submit("RPUSH", connection.key("list"), n) for n in range(100)]
    assert all(isinstance(future, asyncio.Future) for future in futures)
    assert await asyncio.gather(*futures) == list(range(1, 101))
    assert pipelines.sizes == [100]
    assert await redis.lrange(connection.key("list"), 0, 2) == [b"0", b"1", b"2"]


def first_batches_wait(monkeypatch: pytest.MonkeyPatch, answer: asyncio.Event) -> None:
    """Patch the reading of replies: the first reply of each of the first
    :data:`MAX_IN_FLIGHT` batches (one command each) waits until ``answer`` is set."""
    parse = PipeliningRedis.parse_response
    read = 0

    async def waiting(self: PipeliningRedis, c: object, name: object, **o: object) -> object:
        nonlocal read
        read += 1
        if read <= MAX_IN_FLIGHT:
            await answer.wait()
        return await parse(self, c, name, **o)  # type: ignore[arg-type]

    # Replies read through parse_response, which this test holds back.
    monkeypatch.setattr(pipelining, "_hiredis_parser", lambda connection: None)
    monkeypatch.setattr(PipeliningRedis, "parse_response", waiting)


async def test_what_is_issued_while_the_batches_under_way_are_unanswered_goes_as_one_batch(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connection.redis
    key = connection.key("in-flight")
    pipelines = CountingPipelines(monkeypatch)
    answer = asyncio.Event()
    first_batches_wait(monkeypatch, answer)
    under_way = []
    for n in range(MAX_IN_FLIGHT):
        under_way.append(redis.submit("INCR", key))
        await eventually(lambda n=n: len(pipelines.sizes) == n + 1, what=f"batch {n + 1} sent")
    later = [redis.submit("INCR", key)]
    for _ in range(5):  # loop iterations in which a batch would have left
        await asyncio.sleep(0)
    later.append(redis.submit("INCR", key))
    for _ in range(5):
        await asyncio.sleep(0)
    assert pipelines.sizes == [1] * MAX_IN_FLIGHT
    answer.set()
    async with asyncio.timeout(5):
        replies = await asyncio.gather(*under_way, *later)
    assert sorted(replies) == list(range(1, MAX_IN_FLIGHT + 3))
    assert pipelines.sizes == [1] * MAX_IN_FLIGHT + [2]


async def test_a_command_waiting_behind_unanswered_batches_fails_as_unavailable(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = RedisConnection(redis_server.url, prefix=f"pipe-{uuid.uuid4().hex[:8]}:", timeout=0.2)
    pipelines = CountingPipelines(monkeypatch)
    first_batches_wait(monkeypatch, asyncio.Event())  # never answered
    try:
        key = conn.key("behind")
        stuck = []
        for _ in range(MAX_IN_FLIGHT):
            pipelines.sent.clear()
            stuck.append(asyncio.ensure_future(conn.call(conn.redis.incr(key))))
            async with asyncio.timeout(5):
                await pipelines.sent.wait()  # its batch left: what comes next waits behind it
        behind = asyncio.ensure_future(conn.call(conn.redis.incr(key)))
        async with asyncio.timeout(5):
            outcomes = await asyncio.gather(*stuck, behind, return_exceptions=True)
        assert all(isinstance(outcome, BrokerUnavailable) for outcome in outcomes)
    finally:
        await conn.close()
