"""The Redis store: one node's view of the features' key families under the connection's
prefix: ``k:<key>`` holds a value, a counter, a hash, a set, a capped log (a sorted set by score)
or a capped index (the sorted set ``k:<key>`` with its values in the hash ``kv:<key>``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from hub.redis.connection import RedisConnection, ms

# KEYS: the index's zset (member -> score), its hash (member -> value).
# ARGV: member, score, value, max_len. Returns 1 when set, 0 when a higher score was there.
_INDEX_PUT_LUA: Final = """
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if old and tonumber(old) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then
  local dropped = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
  redis.call('HDEL', KEYS[2], unpack(dropped))
end
return 1
"""

# KEYS: the counter. ARGV: amount, window in ms. The expiry is set with the first add (and
# again should a key ever lack one), so a window never outlives its allowance.
_WINDOW_ADD_LUA: Final = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
"""

# KEYS: the hash. ARGV: the fields. Returns their values in order, or nil (and removes nothing)
# when one of them is missing.
_HASH_TAKE_LUA: Final = """
local values = redis.call('HMGET', KEYS[1], unpack(ARGV))
for i = 1, #ARGV do
  if not values[i] then return nil end
end
redis.call('HDEL', KEYS[1], unpack(ARGV))
return values
"""


class RedisStore:
    """Implements :class:`hub.store.Store` over ``connection`` (the pool of the node's Redis
    broker, which closes it). Every coroutine raises :class:`~hub.broker.BrokerUnavailable`
    (chaining the Redis error) when Redis cannot serve. Feature-owned scripts use
    :attr:`connection` (its client, its key layout and its close callbacks)."""

    def __init__(self, connection: RedisConnection) -> None:
        # The reads a join storm makes by the hundred queue their command directly
        # (``PipeliningRedis.submit``), without redis-py's method and coroutine around it.
        self.connection = connection
        self._redis = connection.redis
        self._key = connection.key
        self._call = connection.call
        self._index_put_script = self._redis.register_script(_INDEX_PUT_LUA)
        self._window_add_script = self._redis.register_script(_WINDOW_ADD_LUA)
        self._hash_take_script = self._redis.register_script(_HASH_TAKE_LUA)

    async def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` (missing = 0; an expiry is kept); returns the new value."""
        return int(await self._call(self._redis.incrby(self._key(key), amount)))

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""
        value: bytes | None = await self._call(self._redis.submit("GET", self._key(key)))
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One MGET of ``keys`` (no command for none)."""
        if not keys:
            return []
        values = await self._call(self._redis.submit("MGET", *[self._key(key) for key in keys]))
        return cast("list[bytes | None]", values)

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value``, expiring after ``ttl`` seconds when given."""
        px = ms(ttl) if ttl is not None else None
        await self._call(self._redis.set(self._key(key), value, px=px))

    async def set_if_absent(
        self, key: str, value: bytes, *, ttl: float | None = None
    ) -> bytes | None:
        """Store ``value`` only if ``key`` is empty (one atomic SET NX GET); returns None when
        stored, else the value already there."""
        px = ms(ttl) if ttl is not None else None
        existing = await self._call(
            self._redis.set(self._key(key), value, nx=True, get=True, px=px)
        )
        return cast("bytes | None", existing)

    async def delete(self, key: str) -> None:
        """Remove ``key`` (whatever it holds). Idempotent."""
        await self._call(self._redis.delete(self._key(key), self._index_values(key)))

    async def hash_set(
        self, key: str, field: str, value: bytes, *, only_if_absent: bool = False
    ) -> bool:
        """Set one field; False only when ``only_if_absent`` and the field existed."""
        if only_if_absent:
            return bool(await self._call(self._redis.hsetnx(self._key(key), field, value)))
        await self._call(self._redis.hset(self._key(key), field, value))
        return True

    async def hash_set_many(self, key: str, fields: Mapping[str, bytes]) -> None:
        """One HSET of every field."""
        if fields:
            mapping = dict(fields)
            await self._call(self._redis.hset(self._key(key), mapping=mapping))  # type: ignore[arg-type]

    async def hash_get(self, key: str, field: str) -> bytes | None:
        """One field of a hash, or None."""
        value: bytes | None = await self._call(self._redis.submit("HGET", self._key(key), field))
        return value

    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        """Every field of a hash (empty when missing)."""
        raw = await self._call(self._redis.submit("HGETALL", self._key(key)))
        fields: dict[bytes, bytes] = raw
        return {k.decode(): v for k, v in fields.items()}

    async def hash_delete(self, key: str, field: str) -> bool:
        """Remove one field; whether it existed."""
        return bool(await self._call(self._redis.hdel(self._key(key), field)))

    async def hash_take(self, key: str, fields: list[str]) -> dict[str, bytes] | None:
        """HMGET then HDEL in one script, only when every field is there."""
        if not fields:
            return None
        values = await self._call(self._hash_take_script(keys=[self._key(key)], args=fields))
        if values is None:
            return None
        return dict(zip(fields, cast("list[bytes]", values), strict=True))

    async def log_append(self, key: str, score: int, item: bytes, *, max_len: int) -> None:
        """ZADD under ``score`` (replacing what it held) and trim, in one transaction."""
        name = self._key(key)
        # The score leads the member, so equal items under two scores stay two members.
        member = b"%d:" % score + item
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(name, score, score)
        pipe.zadd(name, {member: score})
        pipe.zremrangebyrank(name, 0, -(max_len + 1))
        await self._call(pipe.execute())

    async def log_range(self, key: str, before: int | None, limit: int) -> list[tuple[int, bytes]]:
        """ZREVRANGEBYSCORE below ``before``, newest ``limit``, returned oldest first."""
        if limit <= 0:
            return []
        high = f"({before}" if before is not None else "+inf"
        raw = await self._call(
            self._redis.zrevrangebyscore(
                self._key(key), high, "-inf", start=0, num=limit, withscores=True
            )
        )
        items = []
        for member, score in reversed(cast("list[tuple[bytes, float]]", raw)):
            _, _, item = member.partition(b":")
            items.append((int(score), item))
        return items

    async def log_remove(self, key: str, score: int) -> bool:
        """ZREMRANGEBYSCORE of exactly ``score``."""
        removed = await self._call(self._redis.zremrangebyscore(self._key(key), score, score))
        return bool(removed)

    def _index_values(self, key: str) -> str:
        return f"{self.connection.prefix}kv:{key}"

    async def index_put(
        self, key: str, member: str, score: int, value: bytes, *, max_len: int
    ) -> bool:
        """One Lua script: compare with ZSCORE, ZADD and HSET, then trim both by rank."""
        keys = [self._key(key), self._index_values(key)]
        done = await self._call(
            self._index_put_script(keys=keys, args=[member, score, value, max_len])
        )
        return bool(done)

    async def index_get(self, key: str, member: str) -> tuple[int, bytes] | None:
        """ZSCORE and HGET in one transaction."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zscore(self._key(key), member)
        pipe.hget(self._index_values(key), member)
        score, value = cast("list[Any]", await self._call(pipe.execute()))
        if score is None or value is None:
            return None
        return int(score), cast(bytes, value)

    async def index_newest(self, key: str, limit: int) -> list[tuple[str, int, bytes]]:
        """ZREVRANGE of the newest ``limit``, then HMGET of their values."""
        if limit <= 0:
            return []
        ranked = cast(
            "list[tuple[bytes, float]]",
            await self._call(self._redis.zrevrange(self._key(key), 0, limit - 1, withscores=True)),
        )
        if not ranked:
            return []
        members = [member for member, _ in ranked]
        values = cast(
            "list[bytes | None]",
            await self._call(self._redis.hmget(self._index_values(key), members)),
        )
        return [
            (member.decode(), int(score), value)
            for (member, score), value in zip(ranked, values, strict=True)
            if value is not None
        ]

    async def index_remove(self, key: str, member: str) -> bool:
        """ZREM and HDEL in one transaction; whether ZREM removed the member."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(self._key(key), member)
        pipe.hdel(self._index_values(key), member)
        removed, _ = cast("list[Any]", await self._call(pipe.execute()))
        return bool(removed)

    async def set_add(self, key: str, member: str) -> bool:
        """Add ``member``; True if it was not there."""
        return bool(await self._call(self._redis.sadd(self._key(key), member)))

    async def set_add_counted(self, key: str, member: str) -> tuple[bool, int]:
        """SADD then SCARD in one transaction: whether it was added, and the size after it."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.sadd(self._key(key), member)
        pipe.scard(self._key(key))
        added, size = await self._call(pipe.execute())
        return bool(added), int(size)

    async def set_remove(self, key: str, member: str) -> bool:
        """Remove ``member``; True if it was there."""
        return bool(await self._call(self._redis.srem(self._key(key), member)))

    async def set_members(self, key: str) -> set[str]:
        """All members of a set."""
        raw = await self._call(self._redis.submit("SMEMBERS", self._key(key)))
        members: set[bytes] = raw
        return {m.decode() for m in members}

    async def set_contains(self, key: str, member: str) -> bool:
        """Whether ``member`` is in the set."""
        return bool(await self._call(self._redis.sismember(self._key(key), member)))

    async def set_size(self, key: str) -> int:
        """How many members the set has (0 when it does not exist)."""
        return int(await self._call(self._redis.scard(self._key(key))))

    async def window_add(self, key: str, amount: int, window: float) -> int:
        """INCRBY with the window's expiry set by the first add (one script); the total."""
        script = self._window_add_script(keys=[self._key(key)], args=[amount, ms(window)])
        return int(await self._call(script))
