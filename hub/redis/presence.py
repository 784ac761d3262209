"""Rooms' presence on Redis: per room, a sorted set of expiries ``p:<room>:exp``, a sorted set
for paging by sid ``p:<room>:lex`` and a hash of infos ``p:<room>:info``, under the connection's
prefix, all moved by one Lua script on the server's clock."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final, cast

from hub.broker import BrokerSettings
from hub.redis.connection import RedisConnection, ms

# KEYS: expiry zset (sid -> expiry ms), lex zset (sid, score 0: paging by sid), info hash.
# ARGV: op, ttl ms, a channel and a message to publish once an add or a remove is done (an empty
# channel: none), then per op: add sid info [sid info...] | remove sid... | refresh sid... |
# count | page after limit | get sid. Server time (TIME) keeps every node on one clock. Expired
# entries are purged first, so the structures only ever hold live entries when a result is
# computed.
_PRESENCE_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local ttl = tonumber(ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
for _, sid in ipairs(dead) do
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', KEYS[2], sid)
  redis.call('HDEL', KEYS[3], sid)
end
if op == 'add' then
  for i = 5, #ARGV, 2 do
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
    redis.call('ZADD', KEYS[2], 0, ARGV[i])
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
elseif op == 'remove' then
  for i = 5, #ARGV do
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
  end
elseif op == 'refresh' then
  local missing = {}
  for i = 5, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
    else
      missing[#missing + 1] = ARGV[i]
    end
  end
  for i = 1, 3 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ttl + 1000) end
  end
  return missing
elseif op == 'page' then
  local sids = redis.call('ZRANGEBYLEX', KEYS[2], '(' .. ARGV[5], '+', 'LIMIT', 0, ARGV[6])
  local out = {}
  for _, sid in ipairs(sids) do
    local info = redis.call('HGET', KEYS[3], sid)
    if info then
      out[#out + 1] = sid
      out[#out + 1] = info
    end
  end
  return out
elseif op == 'get' then
  return redis.call('HGET', KEYS[3], ARGV[5])
end
if op == 'add' or op == 'refresh' then
  -- every entry expires within ttl of its last write: let an abandoned room's keys go too
  for i = 1, 3 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ttl + 1000) end
  end
end
if ARGV[3] ~= '' and (op == 'add' or op == 'remove') then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return redis.call('ZCARD', KEYS[1])
"""


class RedisPresence:
    """Every room's presence entries, as one node reads and writes them (see
    :class:`hub.broker.Broker` for what each call promises)."""

    def __init__(self, connection: RedisConnection, settings: BrokerSettings) -> None:
        self._connection = connection
        self._settings = settings
        self._script = connection.redis.register_script(_PRESENCE_LUA)

    async def _run(
        self, room: str, op: str, *args: str | bytes, publish: tuple[str, bytes] | None = None
    ) -> Any:
        base = f"{self._connection.prefix}p:{room}"
        channel, message = publish if publish is not None else ("", b"")
        return await self._connection.call(
            self._script(
                keys=[f"{base}:exp", f"{base}:lex", f"{base}:info"],
                args=[op, ms(self._settings.presence_ttl), channel, message, *args],
            )
        )

    async def add(
        self,
        room: str,
        entries: Mapping[str, bytes],
        publish: tuple[str, bytes] | None = None,
    ) -> int:
        """Record each sid of ``entries`` (sid -> info) as present for ``presence_ttl``
        seconds; returns the live count. With ``publish`` (channel, message), the script
        publishes the message once it is done."""
        pairs = [item for sid, info in entries.items() for item in (sid, info)]
        return int(await self._run(room, "add", *pairs, publish=publish))

    async def remove(
        self, room: str, sids: Collection[str], publish: tuple[str, bytes] | None = None
    ) -> int:
        """Remove sessions from the room's presence; returns the live count after it (and
        publishes as :meth:`add` does)."""
        return int(await self._run(room, "remove", *sids, publish=publish))

    async def refresh(self, room: str, sids: Collection[str]) -> list[str]:
        """Extend the live entries of ``sids`` by ``presence_ttl`` from now (expired ones stay
        gone); returns the sids that had none."""
        if not sids:
            return []
        missing = await self._run(room, "refresh", *sids)
        return [sid.decode() if isinstance(sid, bytes) else str(sid) for sid in missing]

    async def count(self, room: str) -> int:
        """Live sessions present in ``room``."""
        return int(await self._run(room, "count"))

    async def get(self, room: str, sid: str) -> bytes | None:
        """The info of ``sid``'s live entry in ``room``, or None."""
        return cast("bytes | None", await self._run(room, "get", sid))

    async def page(self, room: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        """Live entries ``(sid, info)`` with sid > ``after``, ordered by sid, at most ``limit``."""
        if limit <= 0:
            return []
        flat = cast("list[bytes]", await self._run(room, "page", after, str(limit)))
        return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]
