"""The Redis broker (``redis://``): any number of hub nodes sharing one Redis.

The only module of the project that imports ``redis``. It implements :class:`hub.broker.Broker`
with the memory broker's semantics:

* ``publish`` is one Lua script: it assigns the room's next seq, appends the event to the room's
  stream (entry id ``<seq>-1``, so a seq range is an id range; trimmed exactly to
  ``history_size``, like the memory broker) and PUBLISHes the envelope on the room's channel,
  all atomically, so the order of a room is the order of its seqs.
* Each node has one pub/sub connection read by one listener task, the only caller of the
  handler. The listener tracks, per subscribed room (any topic but ``node:``/``user:`` ones), the
  epoch and the last seq it delivered, starting from the room's head read once
  Redis confirmed the subscription. An envelope that does not follow on (pub/sub loses
  messages when its connection breaks) makes it read the missing events from the stream and
  deliver them first; an unknown epoch (Redis came back empty) makes it call ``receive_epoch`` and
  deliver the new epoch from seq 1.
* The listener survives Redis restarts: it reconnects with capped, fully jittered exponential
  back-off, subscribes every topic again and catches every room up from its stream before
  :meth:`RedisBroker.ready` is True again. A probe published on the node's own channel proves the
  subscription still hears; one that stays silent for three probe intervals counts as a deaf
  connection, which is dropped and replaced.

Envelopes are built with string concatenation (by the publish script for stored events, so the
script can PUBLISH them itself): a kind byte, then length-prefixed fields ``<len>:<bytes>``, then
the body. Every envelope names its origin node. There is one delivery path: a node receives its
own messages through its subscription like every other node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.broker import (
    NODE_TOPIC_PREFIX,
    USER_TOPIC_PREFIX,
    BrokerHandler,
    BrokerSettings,
    BrokerUnavailable,
    History,
    StoredEvent,
    node_topic,
)

__all__ = ["UNAVAILABLE", "RedisBroker"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_STORED: Final = b"S"
_EPHEMERAL: Final = b"E"
_PROBE: Final = b"P"

#: Errors that mean "Redis cannot serve right now" (BusyLoadingError is a ConnectionError).
UNAVAILABLE: Final = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)

# How many stream entries one catch-up read fetches.
_CATCH_UP_PAGE: Final = 500
# First back-off step of the listener's reconnect loop (seconds).
_BACKOFF_BASE: Final = 0.05

# KEYS: room meta hash (epoch, seq), room stream.
# ARGV: epoch to start if none, origin, ts, body, history size, channel.
_PUBLISH_LUA: Final = """
local function field(s) return #s .. ':' .. s end
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
return {seq, epoch}
"""

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

# KEYS: expiry zset (sid -> expiry ms), lex zset (sid, score 0: paging by sid), info hash.
# ARGV: op, ttl ms, then per op: add sid info | remove sid... | refresh sid... | count | page
# after limit. Server time (TIME) keeps every node on one clock. Expired entries are purged
# first, so the structures only ever hold live entries when a result is computed.
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
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
  redis.call('ZADD', KEYS[2], 0, ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
elseif op == 'remove' then
  for i = 3, #ARGV do
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
  end
elseif op == 'refresh' then
  for i = 3, #ARGV do
    redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i])
  end
elseif op == 'page' then
  local sids = redis.call('ZRANGEBYLEX', KEYS[2], '(' .. ARGV[3], '+', 'LIMIT', 0, ARGV[4])
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
  return redis.call('HGET', KEYS[3], ARGV[3])
end
if op == 'add' or op == 'refresh' then
  -- every entry expires within ttl of its last write: let an abandoned room's keys go too
  for i = 1, 3 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ttl + 1000) end
  end
end
return redis.call('ZCARD', KEYS[1])
"""

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


class _Deaf(Exception):
    """The subscription stopped hearing its own probes."""


@dataclass(slots=True)
class _Room:
    """What the listener delivered of one subscribed room."""

    epoch: str
    last: int


@dataclass(eq=False, slots=True)
class _Session:
    """One pub/sub connection's lifetime."""

    conn: AbstractConnection
    # topic -> SUBSCRIBE/UNSUBSCRIBE commands sent on this connection and not yet confirmed
    inflight: dict[str, int] = field(default_factory=dict)
    last_heard: float = 0.0


def _field(value: bytes) -> bytes:
    return str(len(value)).encode() + b":" + value


def _split_fields(data: bytes, count: int, pos: int = 1) -> tuple[list[bytes], bytes]:
    """Read ``count`` length-prefixed fields after the kind byte; returns them and the rest."""
    out: list[bytes] = []
    for _ in range(count):
        colon = data.index(b":", pos)
        size = data[pos:colon]
        if not size.isdigit():
            raise ValueError("bad field length")
        end = colon + 1 + int(size)
        if end > len(data):
            raise ValueError("truncated envelope")
        out.append(data[colon + 1 : end])
        pos = end
    return out, data[pos:]


def _new_epoch() -> str:
    return uuid.uuid4().hex[:12]


def _is_room(topic: str) -> bool:
    return not (topic.startswith(NODE_TOPIC_PREFIX) or topic.startswith(USER_TOPIC_PREFIX))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisBroker:
    """One node's connection to a shared Redis; implements :class:`hub.broker.Broker`.

    Every public coroutine raises :class:`~hub.broker.BrokerUnavailable` (chaining the Redis
    error) when Redis cannot be reached or does not answer within ``timeout`` seconds (also
    the longest a command waits for one of the ``max_connections`` pooled connections). Keys live
    under ``prefix``: ``r:<room>:meta|stream`` (epoch, seq, history), ``p:<room>:exp|lex|info``
    (presence), ``k:<key>`` (the generic key operations; a poll's ballots and counts are the
    hashes ``k:ballot:<poll>:b`` and ``k:ballot:<poll>:c``; an index is the sorted set
    ``k:<key>`` with its values in the hash ``kv:<key>``); channels are ``t:<topic>``.
    """

    def __init__(
        self,
        url: str,
        node_id: str,
        settings: BrokerSettings | None = None,
        *,
        prefix: str = "hub:",
        timeout: float = 3.0,
        connect_timeout: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self.node_id = node_id
        self.settings = settings or BrokerSettings()
        self.prefix = prefix
        #: Times the subscriber connection was re-established after being lost.
        self.reconnects = 0
        #: Times the probe found the subscriber connection deaf (each led to a reconnect).
        self.deaf_detections = 0
        self._timeout = timeout
        options: dict[str, Any] = {
            # Commands beyond max_connections queue for a connection (at most ``timeout``).
            "max_connections": max_connections,
            "timeout": timeout,
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            # A failed command surfaces at once as BrokerUnavailable: retrying a publish whose
            # reply was lost could store it twice, and the caller decides about retries.
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(parse_url(url))
        # RESP2 everywhere: pub/sub replies are plain arrays the listener reads itself.
        options["protocol"] = 2
        self._pool = BlockingConnectionPool(**options)
        #: The client over the node's pool (feature-owned scripts use it, e.g. the polls' ballots).
        self.redis: Redis = Redis.from_pool(self._pool)
        self._publish_script = self.redis.register_script(_PUBLISH_LUA)
        self._read_script = self.redis.register_script(_READ_LUA)
        self._presence_script = self.redis.register_script(_PRESENCE_LUA)
        self._index_put_script = self.redis.register_script(_INDEX_PUT_LUA)
        self._channel_prefix = f"{prefix}t:"
        self._node_topic = node_topic(node_id)
        self._probe_token = uuid.uuid4().hex.encode()

        self._handler: BrokerHandler | None = None
        self._closed = False
        self._ready = False
        self._listener: asyncio.Task[None] | None = None
        self._session: _Session | None = None
        self._write_lock = asyncio.Lock()
        # Topics this node wants; rooms among them with what was delivered; pending subscribes.
        self._topics: set[str] = set()
        self._rooms: dict[str, _Room] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._close_callbacks: list[Callable[[], None]] = []

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        """Connect, subscribe to this node's own topic and start delivering to ``handler``.

        Raises :class:`~hub.broker.BrokerUnavailable` (after closing again) when the node's
        subscription is not active within ``timeout`` seconds."""
        if self._handler is not None or self._closed:
            raise RuntimeError("broker already started (or closed)")
        self._handler = handler
        self._listener = asyncio.create_task(self._listen(), name=f"broker-listener:{self.node_id}")
        try:
            await self.subscribe(self._node_topic)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop delivering, end the listener and release every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ready = False
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(None)
        self._pending.clear()
        self._topics.clear()
        self._rooms.clear()
        for callback in self._close_callbacks:
            callback()
        await self.redis.aclose()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the broker closes, before its connections go (a feature's
        in-flight Redis work is cancelled with it)."""
        self._close_callbacks.append(callback)

    def ready(self) -> bool:
        """True while connected, subscribed and caught up (False from a lost connection until
        the listener has re-subscribed and delivered what it missed)."""
        return self._ready and not self._closed

    # --- topics ------------------------------------------------------------------------------

    def _channel(self, topic: str) -> str:
        return self._channel_prefix + topic

    async def subscribe(self, topic: str) -> None:
        """Receive ``topic`` from now on; returns once Redis confirmed the subscription (and, for
        a room, the listener knows the room's head, so every later event is delivered).

        Waits at most ``timeout`` seconds (across a reconnect), then gives up the subscription
        and raises :class:`~hub.broker.BrokerUnavailable`."""
        if self._handler is None or self._closed:
            raise RuntimeError("broker not started")
        fut = self._pending.get(topic)
        if topic not in self._topics:
            self._topics.add(topic)
            fut = asyncio.get_running_loop().create_future()
            self._pending[topic] = fut
            session = self._session
            if session is not None:
                await self._send(session, "SUBSCRIBE", [topic])
        if fut is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._timeout)
        except TimeoutError:
            error = BrokerUnavailable(f"subscription to {topic!r} not confirmed")
            if self._pending.get(topic) is fut:
                # Fail every waiter of this subscription, then give it up.
                del self._pending[topic]
                fut.set_exception(BrokerUnavailable(str(error)))
                fut.exception()  # retrieved: the waiters each raise their own
                await self.unsubscribe(topic)
            raise error from None
        if self._closed:
            raise BrokerUnavailable("broker closed")

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (nothing more is delivered for it). Idempotent."""
        if topic not in self._topics:
            return
        self._topics.discard(topic)
        self._rooms.pop(topic, None)
        fut = self._pending.pop(topic, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        session = self._session
        if session is not None:
            await self._send(session, "UNSUBSCRIBE", [topic])

    async def _send(self, session: _Session, command: str, topics: Sequence[str]) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE on the session's connection for those of ``topics`` whose
        wanted state still matches (decided under the lock, so the wire order is the order of
        the latest decisions)."""
        async with self._write_lock:
            want = command == "SUBSCRIBE"
            chosen = [t for t in topics if (t in self._topics) == want]
            conn = session.conn
            # send_command would silently reconnect a closed connection, without subscriptions.
            if not chosen or self._session is not session or not conn.is_connected:
                return
            for topic in chosen:
                session.inflight[topic] = session.inflight.get(topic, 0) + 1
            try:
                await conn.send_command(
                    command, *(self._channel(t) for t in chosen), check_health=False
                )
            except UNAVAILABLE as exc:
                # The connection is gone: the listener notices and subscribes everything anew.
                log.debug("broker %s: %s failed: %s", self.node_id, command, exc)

    async def publish_ephemeral(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` to every node subscribed to ``topic`` (at most once, not stored)."""
        envelope = _EPHEMERAL + _field(self.node_id.encode()) + payload
        await self.call(self.redis.publish(self._channel(topic), envelope))

    # --- stored room streams -----------------------------------------------------------------

    def _room_keys(self, room: str) -> list[str]:
        base = f"{self.prefix}r:{room}"
        return [f"{base}:meta", f"{base}:stream"]

    async def publish(self, room: str, body: bytes) -> StoredEvent:
        """Store ``body`` as the room's next event and fan it out, in one atomic script; returns
        once it is stored."""
        ts = time.time()
        result = await self.call(
            self._publish_script(
                keys=self._room_keys(room),
                args=[
                    _new_epoch(),
                    self.node_id,
                    repr(ts),
                    body,
                    max(0, self.settings.history_size),
                    self._channel(room),
                ],
            )
        )
        seq, epoch = cast("list[Any]", result)
        return StoredEvent(room, int(seq), epoch.decode(), body, self.node_id, ts)

    async def _read(self, room: str, after: int, count: int) -> History:
        """One consistent snapshot of the room: epoch, last seq, oldest retained seq and up to
        ``count`` events after ``after`` (-1: all)."""
        result = await self.call(
            self._read_script(
                keys=self._room_keys(room),
                args=[_new_epoch(), str(max(after, 0) + 1), "+", count],
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

    async def history(self, room: str, after: int, limit: int | None = None) -> History:
        """Stored events of ``room`` with seq > ``after`` (ascending, at most ``limit``)."""
        return await self._read(room, after, -1 if limit is None else max(limit, 0))

    async def head(self, room: str) -> tuple[str, int]:
        """The room's ``(epoch, last_seq)``; starts an epoch if the room has none yet."""
        snapshot = await self._read(room, 0, 0)
        return snapshot.epoch, snapshot.last_seq

    # --- presence ----------------------------------------------------------------------------

    async def _presence(self, room: str, op: str, *args: str | bytes) -> Any:
        base = f"{self.prefix}p:{room}"
        return await self.call(
            self._presence_script(
                keys=[f"{base}:exp", f"{base}:lex", f"{base}:info"],
                args=[op, _ms(self.settings.presence_ttl), *args],
            )
        )

    async def presence_add(self, room: str, sid: str, info: bytes) -> int:
        """Record ``sid`` as present for ``presence_ttl`` seconds; returns the live count."""
        return int(await self._presence(room, "add", sid, info))

    async def presence_remove(self, room: str, sids: Collection[str]) -> int:
        """Remove sessions from the room's presence; returns the live count after it."""
        return int(await self._presence(room, "remove", *sids))

    async def presence_refresh(self, room: str, sids: Collection[str]) -> None:
        """Extend the live entries of ``sids`` by ``presence_ttl`` from now (expired ones stay
        gone)."""
        if sids:
            await self._presence(room, "refresh", *sids)

    async def presence_count(self, room: str) -> int:
        """Live sessions present in ``room``."""
        return int(await self._presence(room, "count"))

    async def presence_get(self, room: str, sid: str) -> bytes | None:
        """The info of ``sid``'s live entry in ``room``, or None."""
        info = await self._presence(room, "get", sid)
        return cast("bytes | None", info)

    async def presence_page(self, room: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        """Live entries ``(sid, info)`` with sid > ``after``, ordered by sid, at most ``limit``."""
        if limit <= 0:
            return []
        flat = cast("list[bytes]", await self._presence(room, "page", after, str(limit)))
        return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]

    # --- small atomic key operations -----------------------------------------------------------

    def key(self, key: str) -> str:
        """The Redis key of the generic key ``key`` (feature-owned scripts share the layout)."""
        return f"{self.prefix}k:{key}"

    async def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` (missing = 0; an expiry is kept); returns the new value."""
        return int(await self.call(self.redis.incrby(self.key(key), amount)))

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""
        return cast("bytes | None", await self.call(self.redis.get(self.key(key))))

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value``, expiring after ``ttl`` seconds when given."""
        px = _ms(ttl) if ttl is not None else None
        await self.call(self.redis.set(self.key(key), value, px=px))

    async def set_if_absent(
        self, key: str, value: bytes, *, ttl: float | None = None
    ) -> bytes | None:
        """Store ``value`` only if ``key`` is empty (one atomic SET NX GET); returns None when
        stored, else the value already there."""
        px = _ms(ttl) if ttl is not None else None
        existing = await self.call(self.redis.set(self.key(key), value, nx=True, get=True, px=px))
        return cast("bytes | None", existing)

    async def delete(self, key: str) -> None:
        """Remove ``key`` (whatever it holds). Idempotent."""
        await self.call(self.redis.delete(self.key(key), self._index_values(key)))

    async def hash_set(
        self, key: str, field: str, value: bytes, *, only_if_absent: bool = False
    ) -> bool:
        """Set one field; False only when ``only_if_absent`` and the field existed."""
        if only_if_absent:
            return bool(await self.call(self.redis.hsetnx(self.key(key), field, value)))
        await self.call(self.redis.hset(self.key(key), field, value))
        return True

    async def hash_get(self, key: str, field: str) -> bytes | None:
        """One field of a hash, or None."""
        return cast("bytes | None", await self.call(self.redis.hget(self.key(key), field)))

    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        """Every field of a hash (empty when missing)."""
        raw = await self.call(self.redis.hgetall(self.key(key)))
        return {cast(bytes, k).decode(): cast(bytes, v) for k, v in raw.items()}

    async def hash_delete(self, key: str, field: str) -> bool:
        """Remove one field; whether it existed."""
        return bool(await self.call(self.redis.hdel(self.key(key), field)))

    async def log_append(self, key: str, score: int, item: bytes, *, max_len: int) -> None:
        """ZADD under ``score`` (replacing what it held) and trim, in one transaction."""
        name = self.key(key)
        # The score leads the member, so equal items under two scores stay two members.
        member = b"%d:" % score + item
        pipe = self.redis.pipeline(transaction=True)
        pipe.zremrangebyscore(name, score, score)
        pipe.zadd(name, {member: score})
        pipe.zremrangebyrank(name, 0, -(max_len + 1))
        await self.call(pipe.execute())

    async def log_range(self, key: str, before: int | None, limit: int) -> list[tuple[int, bytes]]:
        """ZREVRANGEBYSCORE below ``before``, newest ``limit``, returned oldest first."""
        if limit <= 0:
            return []
        high = f"({before}" if before is not None else "+inf"
        raw = await self.call(
            self.redis.zrevrangebyscore(
                self.key(key), high, "-inf", start=0, num=limit, withscores=True
            )
        )
        items = []
        for member, score in reversed(cast("list[tuple[bytes, float]]", raw)):
            _, _, item = member.partition(b":")
            items.append((int(score), item))
        return items

    async def log_remove(self, key: str, score: int) -> bool:
        """ZREMRANGEBYSCORE of exactly ``score``."""
        removed = await self.call(self.redis.zremrangebyscore(self.key(key), score, score))
        return bool(removed)

    def _index_values(self, key: str) -> str:
        return f"{self.prefix}kv:{key}"

    async def index_put(
        self, key: str, member: str, score: int, value: bytes, *, max_len: int
    ) -> bool:
        """One Lua script: compare with ZSCORE, ZADD and HSET, then trim both by rank."""
        keys = [self.key(key), self._index_values(key)]
        done = await self.call(
            self._index_put_script(keys=keys, args=[member, score, value, max_len])
        )
        return bool(done)

    async def index_get(self, key: str, member: str) -> tuple[int, bytes] | None:
        """ZSCORE and HGET in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zscore(self.key(key), member)
        pipe.hget(self._index_values(key), member)
        score, value = cast("list[Any]", await self.call(pipe.execute()))
        if score is None or value is None:
            return None
        return int(score), cast(bytes, value)

    async def index_newest(self, key: str, limit: int) -> list[tuple[str, int, bytes]]:
        """ZREVRANGE of the newest ``limit``, then HMGET of their values."""
        if limit <= 0:
            return []
        ranked = cast(
            "list[tuple[bytes, float]]",
            await self.call(self.redis.zrevrange(self.key(key), 0, limit - 1, withscores=True)),
        )
        if not ranked:
            return []
        members = [member for member, _ in ranked]
        values = cast(
            "list[bytes | None]",
            await self.call(self.redis.hmget(self._index_values(key), members)),
        )
        return [
            (member.decode(), int(score), value)
            for (member, score), value in zip(ranked, values, strict=True)
            if value is not None
        ]

    async def set_add(self, key: str, member: str) -> bool:
        """Add ``member``; True if it was not there."""
        return bool(await self.call(self.redis.sadd(self.key(key), member)))

    async def set_remove(self, key: str, member: str) -> bool:
        """Remove ``member``; True if it was there."""
        return bool(await self.call(self.redis.srem(self.key(key), member)))

    async def set_members(self, key: str) -> set[str]:
        """All members of a set."""
        raw = await self.call(self.redis.smembers(self.key(key)))
        return {cast(bytes, m).decode() for m in raw}

    async def set_contains(self, key: str, member: str) -> bool:
        """Whether ``member`` is in the set."""
        return bool(await self.call(self.redis.sismember(self.key(key), member)))

    async def call(self, awaitable: Awaitable[_T]) -> _T:
        """Await a Redis call, raising :class:`~hub.broker.BrokerUnavailable` (chaining the
        Redis error) when Redis cannot serve."""
        try:
            return await awaitable
        except UNAVAILABLE as exc:
            raise BrokerUnavailable(f"redis unavailable: {exc}") from exc

    # --- the listener ------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Keep one pub/sub session alive until cancelled, reconnecting with capped, fully
        jittered exponential back-off."""
        attempt = 0
        connected_before = False
        while True:
            # Not a pooled connection: it is owned by this loop and never lent to a command.
            conn: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                session = _Session(conn)
                self._session = session
                await self._setup(session)
                attempt = 0
                if connected_before:
                    self.reconnects += 1
                connected_before = True
                await self._serve(session)
            except asyncio.CancelledError:
                raise
            except _Deaf:
                self.deaf_detections += 1
                log.warning(
                    "broker %s: subscriber deaf (probe unheard); reconnecting", self.node_id
                )
            except (*UNAVAILABLE, BrokerUnavailable, TimeoutError) as exc:
                # Loud once per outage; each further failed attempt is routine until it ends.
                log.log(
                    logging.WARNING if attempt == 0 else logging.INFO,
                    "broker %s: subscriber lost (%s: %s); reconnecting",
                    self.node_id,
                    type(exc).__name__,
                    exc,
                )
            except Exception:
                log.exception("broker %s: subscriber failed; reconnecting", self.node_id)
            finally:
                self._ready = False
                self._session = None
                await conn.disconnect(nowait=True)
            cap = min(self.settings.reconnect_cap, _BACKOFF_BASE * 2**attempt)
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(random.uniform(0, cap))

    async def _setup(self, session: _Session) -> None:
        """Subscribe every wanted topic, wait for the confirmations, catch every room up."""
        await self._send(session, "SUBSCRIBE", sorted(self._topics))
        limit = max(self._timeout, 3 * self.settings.probe_interval)
        async with asyncio.timeout(limit):
            while any(session.inflight.values()):
                await self._dispatch(session, await self._read_reply(session))
        for room in list(self._rooms):
            await self._catch_up(room)
        session.last_heard = time.monotonic()
        self._ready = True

    async def _serve(self, session: _Session) -> None:
        """Read and dispatch until the connection fails or the probe finds it deaf."""

        async def read_forever() -> None:
            while True:
                await self._dispatch(session, await self._read_reply(session))

        reader = asyncio.create_task(read_forever())
        prober = asyncio.create_task(self._probe(session))
        try:
            done, _ = await asyncio.wait({reader, prober}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            prober.cancel()
            await asyncio.gather(reader, prober, return_exceptions=True)
        for task in done:
            task.result()
        raise RedisConnectionError("subscriber stopped")

    async def _read_reply(self, session: _Session) -> Any:
        # No read timeout: an idle subscription is normal; the probe detects a dead one.
        return await session.conn.read_response(timeout=math.inf)

    async def _probe(self, session: _Session) -> None:
        interval = self.settings.probe_interval
        envelope = _PROBE + _field(self.node_id.encode()) + self._probe_token
        channel = self._channel(self._node_topic)
        while True:
            await asyncio.sleep(interval)
            if self._node_topic not in self._topics:
                # Nobody listens to the probe channel: no verdict possible (nor a false one).
                session.last_heard = time.monotonic()
                continue
            if time.monotonic() - session.last_heard > 3 * interval:
                raise _Deaf
            try:
                await asyncio.wait_for(self.redis.publish(channel, envelope), 2 * interval)
            except (*UNAVAILABLE, TimeoutError) as exc:
                # Unanswered probes end in _Deaf above; nothing else to do here.
                log.debug("broker %s: probe not sent: %r", self.node_id, exc)

    async def _dispatch(self, session: _Session, reply: Any) -> None:
        session.last_heard = time.monotonic()
        if not isinstance(reply, list) or len(reply) < 3:
            return  # PONG and the like
        kind, channel = reply[0], reply[1]
        if not isinstance(channel, bytes):
            return
        name = channel.decode(errors="replace")
        if not name.startswith(self._channel_prefix):
            return
        topic = name[len(self._channel_prefix) :]
        if kind == b"message":
            await self._on_message(topic, reply[2])
        elif kind in (b"subscribe", b"unsubscribe"):
            await self._on_confirm(session, kind == b"subscribe", topic)

    async def _on_confirm(self, session: _Session, subscribed: bool, topic: str) -> None:
        left = session.inflight.get(topic, 0) - 1
        if left > 0:
            session.inflight[topic] = left
            return
        session.inflight.pop(topic, None)
        if not subscribed or topic not in self._topics:
            return
        if _is_room(topic) and topic not in self._rooms:
            # The room's head read after the confirmation is the baseline: everything later
            # reaches this connection, and what came between is a duplicate of the head.
            epoch, last = await self.head(topic)
            if topic in self._topics and not session.inflight.get(topic):
                self._rooms.setdefault(topic, _Room(epoch, last))
        fut = self._pending.pop(topic, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _on_message(self, topic: str, data: bytes) -> None:
        if topic not in self._topics:
            return
        kind = data[:1]
        if kind == _PROBE:
            return  # it only proves the connection hears (last_heard is set for every reply)
        try:
            if kind == _STORED:
                (epoch, seq, origin, ts), body = _split_fields(data, 4)
                event = StoredEvent(
                    topic, int(seq), epoch.decode(), body, origin.decode(), float(ts)
                )
            elif kind == _EPHEMERAL:
                _, payload = _split_fields(data, 1)
            else:
                raise ValueError(f"unknown envelope kind {kind!r}")
        except ValueError:
            log.warning("broker %s: dropped a malformed envelope on %r", self.node_id, topic)
            return
        if kind == _STORED:
            await self._on_stored(event)
        elif self._handler is not None:
            self._notify(self._handler.receive_message, topic, payload)

    async def _on_stored(self, event: StoredEvent) -> None:
        room = self._rooms.get(event.room)
        if room is None:
            if _is_room(event.room):
                return  # not confirmed yet: the head read at confirmation covers it
            # Stored events on a node/user topic: no baseline, start from the first one heard.
            room = self._rooms[event.room] = _Room(event.epoch, event.seq - 1)
        if event.epoch == room.epoch:
            if event.seq <= room.last:
                return  # already delivered (from the stream, or a duplicate)
            if event.seq == room.last + 1:
                self._deliver(room, event)
                return
        # A gap (lost messages) or another epoch: the stream is the truth.
        await self._catch_up(event.room)
        current = self._rooms.get(event.room) is room and event.epoch == room.epoch
        if current and event.seq > room.last:
            # Trimmed from the stream already: late beats never.
            self._deliver(room, event)

    async def _catch_up(self, name: str) -> None:
        """Deliver every retained event of the room after the last delivered one, first telling
        the handler about a new epoch."""
        room = self._rooms.get(name)
        while room is not None:
            snapshot = await self._read(name, room.last, _CATCH_UP_PAGE)
            if self._rooms.get(name) is not room:
                return  # unsubscribed meanwhile
            if snapshot.epoch != room.epoch:
                room.epoch, room.last = snapshot.epoch, 0
                if self._handler is not None:
                    self._notify(self._handler.receive_epoch, name, snapshot.epoch)
                continue
            if snapshot.last_seq < room.last:
                # Same epoch, shorter history: a failover to a replica that lagged. Seqs up to
                # room.last will be reused and dropped here as duplicates; only a new epoch
                # (an operator flushing the room) can repair that.
                log.error(
                    "broker %s: room %r went back from seq %d to %d within epoch %s",
                    self.node_id,
                    name,
                    room.last,
                    snapshot.last_seq,
                    room.epoch,
                )
            if snapshot.events and snapshot.events[0].seq > room.last + 1:
                log.warning(
                    "broker %s: room %r lost seq %d..%d (trimmed before delivery)",
                    self.node_id,
                    name,
                    room.last + 1,
                    snapshot.events[0].seq - 1,
                )
            for event in snapshot.events:
                if event.seq > room.last:
                    self._deliver(room, event)
            if len(snapshot.events) < _CATCH_UP_PAGE or room.last >= snapshot.last_seq:
                return

    def _deliver(self, room: _Room, event: StoredEvent) -> None:
        room.last = event.seq
        if self._handler is not None:
            self._notify(self._handler.receive_event, event)

    def _notify(self, method: Callable[..., None], *args: Any) -> None:
        # A failing handler must not stop the listener nor lose later deliveries.
        try:
            method(*args)
        except Exception:
            log.exception("broker %s: handler failed", self.node_id)
