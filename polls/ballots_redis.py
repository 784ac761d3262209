"""The ballot box on a Redis store: one Lua script casts a batch of ballots, each atomically,
over the store's connection and under its keys (a poll's ballots and counts are the store's
hashes ``ballot:<poll>:b`` and ``ballot:<poll>:c``; the closed marker is a store key)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final, cast

from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from hub.broker import BrokerUnavailable
from hub.codec import pack
from hub.redis.connection import UNAVAILABLE, RedisConnection
from polls.ballots import BallotResult, decode_ballot, encode_ballot

# Casts a batch of ballots, each atomically (the whole script is). ARGV[1] is the batch, packed
# as msgpack: an array of [closed marker key, ballots hash key (user -> "0,2"), counts hash key
# (index -> count), user, allow change (bool), options, the new ballot ("0,2")]. One packed
# argument instead of seven per ballot because encoding arguments one by one was most of the
# Redis client's cost per vote; the keys therefore come from ARGV, which a single Redis allows
# (this script is not meant for Redis Cluster). Returns one reply per ballot, {status, has
# previous (1 | 0), previous ballot, counts (options of them), voters} (a Lua nil cannot sit
# inside a reply array, hence the flag), or {"error", message} where that ballot's Redis calls
# failed; the others are unaffected.
_BALLOT_LUA: Final = """
local function cast(closed, ballots, tally, user, allow, options, ballot)
  local previous = redis.call('HGET', ballots, user)
  local status = 'accepted'
  if redis.call('EXISTS', closed) == 1 then
    status = 'closed'
  elseif previous and not allow then
    status = 'conflict'
  else
    if previous then
      for index in string.gmatch(previous, '%d+') do redis.call('HINCRBY', tally, index, -1) end
    end
    for index in string.gmatch(ballot, '%d+') do redis.call('HINCRBY', tally, index, 1) end
    redis.call('HSET', ballots, user, ballot)
  end
  local counts = {}
  local n = options
  if n > 0 then
    local fields = {}
    for i = 1, n do fields[i] = tostring(i - 1) end
    local raw = redis.call('HMGET', tally, unpack(fields))
    for i = 1, n do counts[i] = tonumber(raw[i] or '0') end
  end
  local has_previous = 0
  if previous then has_previous = 1 else previous = '' end
  return {status, has_previous, previous, counts, redis.call('HLEN', ballots)}
end
local replies = {}
for i, b in ipairs(cmsgpack.unpack(ARGV[1])) do
  local ok, reply = pcall(cast, b[1], b[2], b[3], b[4], b[5], b[6], b[7])
  if ok then
    replies[i] = reply
  elseif type(reply) == 'table' and reply.err then
    replies[i] = {'error', reply.err}
  else
    replies[i] = {'error', tostring(reply)}
  end
end
return replies
"""


class _BallotBatcher:
    """Casts the ballots asked for in the same event-loop iteration with one call of the batch
    script (at most ``limit`` per call, in call order): a crowd voting costs one command, one
    round trip and one pooled connection per iteration instead of one of each per ballot. The
    per-command cost of the Redis client, not Redis, is what bounded a node's votes/s."""

    def __init__(self, script: AsyncScript, limit: int = 256) -> None:
        self._script = script
        self._limit = limit
        self._batch: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, ballot: list[Any]) -> asyncio.Future[Any]:
        """The future of the script's reply for one ``ballot`` (an entry of its packed batch;
        its error, raised). A future, not a coroutine: one frame less on every vote's path."""
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._batch.append((ballot, reply))
        if len(self._batch) == 1:
            loop.call_soon(self._flush)
        return reply

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        for start in range(0, len(batch), self._limit):
            task = asyncio.ensure_future(self._send(batch[start : start + self._limit]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        packed = pack([ballot for ballot, _ in batch])
        try:
            replies = cast("list[Any]", await self._script(keys=[], args=[packed]))
        except BaseException as exc:
            for _, reply in batch:
                if not reply.done():
                    reply.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, reply), result in zip(batch, replies, strict=True):
            if reply.done():
                continue  # its caller gave up (cancelled)
            if result[0] == b"error":
                reply.set_exception(ResponseError(cast(bytes, result[1]).decode(errors="replace")))
            else:
                reply.set_result(result)

    def cancel(self) -> None:
        """Stop what is in flight (the connection is closing)."""
        for task in list(self._tasks):
            task.cancel()


class RedisBallotBox:
    """Implements :class:`polls.ballots.BallotBox` over a Redis store's ``connection``, under
    its keys; the batches in flight are cancelled when the connection closes. Every coroutine
    raises :class:`~hub.broker.BrokerUnavailable` (chaining the Redis error) when Redis cannot
    serve; a ballot whose own Redis calls fail raises that error alone in its batch."""

    def __init__(self, connection: RedisConnection) -> None:
        self._connection = connection
        self._ballots = _BallotBatcher(connection.redis.register_script(_BALLOT_LUA))
        connection.on_close(self._ballots.cancel)

    def _keys(self, poll: str) -> list[str]:
        return [self._connection.key(f"ballot:{poll}:b"), self._connection.key(f"ballot:{poll}:c")]

    async def cast(
        self,
        poll: str,
        user: str,
        choice: Sequence[int],
        *,
        options: int,
        allow_change: bool,
        closed_key: str,
    ) -> BallotResult:
        """Cast ``user``'s ballot atomically in Lua (batched with the other ballots of this
        event-loop iteration): check the closed marker and the previous ballot, move the counts
        from the previous ballot to the new one, store it, and read the tally."""
        ballot = [
            self._connection.key(closed_key),
            *self._keys(poll),
            user,
            allow_change,
            options,
            encode_ballot(choice),
        ]
        try:  # not through the store's call wrapper: one coroutine less per vote
            result = await self._ballots.call(ballot)
        except UNAVAILABLE as exc:
            raise BrokerUnavailable(f"redis unavailable: {exc}") from exc
        status, has_previous, previous, counts, voters = cast("list[Any]", result)
        return BallotResult(
            status=cast(bytes, status).decode(),
            previous=decode_ballot(previous) if has_previous else None,
            counts=[int(count) for count in counts],
            voters=int(voters),
        )

    async def tally(self, poll: str, options: int) -> tuple[list[int], int]:
        """HMGET of every option's count and HLEN of the ballots, in one transaction."""
        ballots, counts = self._keys(poll)
        pipe = self._connection.redis.pipeline(transaction=True)
        if options > 0:
            pipe.hmget(counts, [str(index) for index in range(options)])
        pipe.hlen(ballots)
        replies = cast("list[Any]", await self._connection.call(pipe.execute()))
        raw = cast("list[bytes | None]", replies[0]) if options > 0 else []
        return [int(count or 0) for count in raw], int(replies[-1])

    async def ballot_of(self, poll: str, user: str) -> list[int] | None:
        """``user``'s ballot (HGET of the ballots hash), or None."""
        stored = await self._connection.call(self._connection.redis.hget(self._keys(poll)[0], user))
        return decode_ballot(cast(bytes, stored)) if stored is not None else None
