"""Rooms' stored event streams on Redis: a room's epoch and seq in the hash
``r:<room>:meta``, its retained events in the stream ``r:<room>:stream`` (entry id ``<seq>-1``, so
a seq range is an id range), both under the connection's prefix.

``publish`` is one Lua script: it assigns the room's next seq, appends the event (trimmed exactly
to ``history_size``, like the memory broker) and PUBLISHes its envelope on the room's channel,
all atomically, so the order of a room is the order of its seqs.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Final, cast

from hub.broker import BrokerSettings, History, StoredEvent
from hub.redis.connection import RedisConnection

# KEYS: room meta hash (epoch, seq), room stream.
# ARGV: epoch to start if none, origin, ts, body, history size, channel.
# Leaves seq and epoch set.
_PUBLISH_BODY: Final = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- a new epoch never inherits entries of a lost one
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local sseq = string.format('%d', seq)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], sseq .. '-1',
  'o', ARGV[2], 't', ARGV[3], 'b', ARGV[4])
redis.call('PUBLISH', ARGV[6],
  'S' .. field(epoch) .. field(sseq) .. field(ARGV[2]) .. field(ARGV[3]) .. ARGV[4])
"""
_FIELD: Final = "local function field(s) return #s .. ':' .. s end\n"
_PUBLISH_LUA: Final = _FIELD + _PUBLISH_BODY + "return {seq, epoch}\n"
# The same, once per key. KEYS[3]: the once key. ARGV[7]: its ttl in ms (0: none).
# Returns {seq, epoch or '', 1 if published now else 0}.
_PUBLISH_ONCE_LUA: Final = (
    _FIELD
    + """
local prior = redis.call('GET', KEYS[3])
if prior then return {tonumber(prior), '', 0} end
"""
    + _PUBLISH_BODY
    + """
if tonumber(ARGV[7]) > 0 then
  redis.call('SET', KEYS[3], sseq, 'PX', ARGV[7])
else
  redis.call('SET', KEYS[3], sseq)
end
return {seq, epoch, 1}
"""
)

# KEYS: room meta hash, room stream.
# ARGV: epoch to start if none, first id, last id, count (-1: all, 0: none).
# Returns {epoch, last seq, id of the oldest retained entry or '', entries}.
_READ_LUA: Final = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local last = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = ''
if #oldest > 0 then first = oldest[1][1] end
local count = tonumber(ARGV[4])
local entries = {}
if count < 0 then
  entries = redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[3])
elseif count > 0 then
  entries = redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[3], 'COUNT', count)
end
return {epoch, last, first, entries}
"""


def new_epoch() -> str:
    """A fresh epoch id."""
    return uuid.uuid4().hex[:12]


class RoomStreams:
    """The stored streams of every room, as one node publishes and reads them."""

    def __init__(self, connection: RedisConnection, node_id: str, settings: BrokerSettings) -> None:
        self._connection = connection
        self._node_id = node_id
        self._settings = settings
        self._publish_script = connection.redis.register_script(_PUBLISH_LUA)
        self._read_script = connection.redis.register_script(_READ_LUA)
        self._publish_once_script = connection.redis.register_script(_PUBLISH_ONCE_LUA)

    def _keys(self, room: str) -> list[str]:
        base = f"{self._connection.prefix}r:{room}"
        return [f"{base}:meta", f"{base}:stream"]

    async def publish(self, room: str, body: bytes) -> StoredEvent:
        """Store ``body`` as the room's next event and fan it out, in one atomic script; returns
        once it is stored."""
        ts = time.time()
        result = await self._connection.call(
            self._publish_script(
                keys=self._keys(room),
                args=[
                    new_epoch(),
                    self._node_id,
                    repr(ts),
                    body,
                    max(0, self._settings.history_size),
                    self._connection.channel(room),
                ],
            )
        )
        seq, epoch = cast("list[Any]", result)
        return StoredEvent(room, int(seq), epoch.decode(), body, self._node_id, ts)

    async def publish_once(
        self, room: str, body: bytes, key: str, ttl: float | None
    ) -> tuple[int, bool]:
        """:meth:`publish` unless ``key`` was published under already: the seq published under
        ``key``, and whether this call published it (see :meth:`hub.broker.Broker.publish_once`)."""
        result = await self._connection.call(
            self._publish_once_script(
                keys=[*self._keys(room), self._connection.key(f"once:{room}:{key}")],
                args=[
                    new_epoch(),
                    self._node_id,
                    repr(time.time()),
                    body,
                    max(0, self._settings.history_size),
                    self._connection.channel(room),
                    0 if ttl is None else max(1, round(ttl * 1000)),
                ],
            )
        )
        seq, _, published = cast("list[Any]", result)
        return int(seq), bool(published)

    async def read(self, room: str, after: int, count: int) -> History:
        """One consistent snapshot of the room: epoch (started if the room has none), last seq,
        oldest retained seq and up to ``count`` events after ``after`` (-1: all)."""
        result = await self._connection.call(
            self._read_script(
                keys=self._keys(room),
                args=[new_epoch(), str(max(after, 0) + 1), "+", count],
            )
        )
        epoch_raw, last_raw, first_id, entries = cast("list[Any]", result)
        epoch = cast(bytes, epoch_raw).decode()
        last = int(last_raw)
        first = int(first_id.split(b"-", 1)[0]) if first_id else last + 1
        events: list[StoredEvent] = []
        for entry_id, values in cast("list[list[Any]]", entries):
            data = dict(zip(values[::2], values[1::2], strict=True))
            events.append(
                StoredEvent(
                    room=room,
                    seq=int(entry_id.split(b"-", 1)[0]),
                    epoch=epoch,
                    body=data[b"b"],
                    origin=data[b"o"].decode(),
                    ts=float(data[b"t"]),
                )
            )
        return History(epoch, last, first, events)
