"""The node's Redis client sends one event-loop iteration's commands as one pipeline: each
caller still gets its own reply or its own error, identical reads are sent once, and a lost
connection fails the whole batch without touching the next one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError
from support.redis_server import RedisServer

from hub.broker import BrokerUnavailable
from hub.redis.connection import RedisConnection
from hub.redis.pipelining import PipeliningRedis

pytestmark = pytest.mark.redis


class CountingPipelines:
    """Counts the pipelines sent and the commands in them (patched onto Pipeline.execute)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        execute = Pipeline.execute

        async def counted(pipe: Pipeline, raise_on_error: bool = True) -> list[object]:
            self.sizes.append(len(pipe.command_stack))
            return await execute(pipe, raise_on_error)

        monkeypatch.setattr(Pipeline, "execute", counted)


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


async def test_a_lost_connection_fails_its_batch_and_the_next_batch_runs(
    connection: RedisConnection, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = connection.redis
    await redis.set(connection.key("k"), "v")
    execute = Pipeline._execute_pipeline
    failing = True

    async def broken(
        pipe: Pipeline, conn: object, commands: object, raise_on_error: bool
    ) -> object:
        if failing:
            raise ConnectionError("connection reset (test)")
        return await execute(pipe, conn, commands, raise_on_error)  # type: ignore[arg-type]

    monkeypatch.setattr(Pipeline, "_execute_pipeline", broken)
    results = await asyncio.gather(
        *(connection.call(redis.get(connection.key("k"))) for _ in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, BrokerUnavailable) for r in results)
    failing = False
    assert await connection.call(redis.get(connection.key("k"))) == b"v"
