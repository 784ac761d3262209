"""A Redis client that sends the commands of one event-loop iteration as one pipeline.

A burst of joins makes each node issue thousands of small commands within a few iterations of
its loop. Sent one by one, each costs a pooled connection, a ``send`` system call, a wait and
redis-py's per-command machinery, several times what Redis spends on it. Here every command
issued through the client (its methods, and scripts run with it) is queued; once the iteration
ends, the queue goes to Redis as one pipeline (not a transaction) on one connection (kept from
batch to batch while it stays open), and each caller gets its own reply (or its own error) back.

Identical read-only commands queued in one iteration (the same room's ``HGETALL`` for every
join of a burst) are sent once, and each caller gets its own copy of the reply. That keeps
every caller's guarantee: each of them issued its read before the batch left, and the read
runs after that, so it sees everything acknowledged before any of them asked.

The batch is written at once and its replies are read in order, each handed to its caller as
it arrives. When reading fails part-way (the connection drops, a reply times out), the callers
already answered keep their replies and only those still waiting get the error, with no claim
about whether Redis ran their commands (it may have: they were sent); the connection is then
dropped, never returned to the pool with replies still unread on it. An error reply fails only
its own command. A caller cancelled before its batch leaves is not sent at all. Commands are
never retried here (see :class:`~hub.redis.connection.RedisConnection`).

A batch holds at most :data:`MAX_BATCH` commands: a larger burst goes as several, each on a
pooled connection. At most :data:`MAX_IN_FLIGHT` batches are under way at once:
what is issued while they are unanswered waits and goes, as one batch, when one of them is
answered. A storm of joins then costs a few large batches rather than one small batch per loop
iteration (each batch costs a pooled connection, a ``send``, a wake-up for its replies: about
a hundred microseconds of the node's time, ten times a command's own); a quiet node, with no
batch under way, sends at the end of the iteration as before. A command waits at most the
connection's socket timeout from when it was issued, the time spent waiting for a batch to
leave included: a batch's replies share the deadline of its oldest command (the replies still
missing then fail as a :class:`redis.exceptions.TimeoutError`). Closing the
client sends what is queued, waits a bounded time for the batches under way to be answered, and
from then on refuses new commands with :class:`redis.exceptions.ConnectionError`.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.connection import PythonRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.errors import own_copy

#: The most commands one pipeline carries; a burst beyond it goes as several.
MAX_BATCH: Final = 512
#: Arguments longer than this go to redis-py's serializer as buffers of their own.
BUFFER_CUTOFF: Final = 6000
#: The most batches under way at once: what is issued meanwhile waits for one to be answered,
#: so that a burst goes in few large batches rather than one small batch per loop iteration.
#: One: Redis runs commands one at a time anyway, so a second batch under way would only wait
#: there (two measured 10% worse for a breakout storm's p99).
MAX_IN_FLIGHT: Final = 1
#: How long closing the client waits for the batches under way, in seconds.
CLOSE_GRACE: Final = 2.0

# Commands that only read: identical ones queued in one iteration are sent once.
READ_ONLY: Final = frozenset(
    {
        "EXISTS",
        "GET",
        "HEXISTS",
        "HGET",
        "HGETALL",
        "HLEN",
        "HMGET",
        "LRANGE",
        "MGET",
        "PTTL",
        "SCARD",
        "SISMEMBER",
        "SMEMBERS",
        "XRANGE",
        "XREVRANGE",
        "ZCARD",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZREVRANGE",
        "ZREVRANGEBYSCORE",
        "ZSCORE",
    }
)

# redis-py's hiredis parser and how it says a reply is incomplete: private names; without them,
# batches read through ``parse_response``.
redis_hiredis: Any
try:
    import redis._parsers.hiredis as redis_hiredis
except ImportError:  # pragma: no cover - another redis-py layout
    redis_hiredis = None
_NOT_ENOUGH_DATA: Final[object | None] = getattr(redis_hiredis, "NOT_ENOUGH_DATA", None)
_AsyncHiredisParser: Final[type] = getattr(redis_hiredis, "_AsyncHiredisParser", type(None))
# Options of a command that its response callback does not take (see ``parse_response``).
_NOT_CALLBACK_OPTIONS: Final = frozenset({"keys", EMPTY_RESPONSE, NEVER_DECODE})

# Not looked up yet (None means the command has no response callback).
_UNKNOWN: Final = object()
# What a response callback gives that is never awaitable (most replies): no ABC check for them.
_PLAIN: Final = frozenset({bytes, str, int, float, bool, list, dict, set, tuple, type(None)})

# A queued command: its arguments and options, its caller, and when it was issued (loop time).
_Queued = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]", float]


class PipeliningRedis(Redis):
    """A :class:`redis.asyncio.Redis` whose commands go to Redis in one pipeline per event-loop
    iteration (see the module docstring). Transactions (``pipeline(transaction=True)``) and
    pub/sub are unchanged: they take a connection of their own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: list[_Queued] = []
        self._flush_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()
        self._closed = False
        # The connection batches take in turn, kept between them (taking one from the pool and
        # giving it back cost a batch about a fifth of its own time); a batch that finds it in
        # use takes another from the pool.
        self._kept: Connection | None = None
        self._kept_busy = False
        self._callbacks: dict[Any, Any] = {}
        encoder = self.connection_pool.get_encoder()  # type: ignore[no-untyped-call]
        if (encoder.encoding, encoder.encoding_errors) != ("utf-8", "strict"):
            raise ValueError("PipeliningRedis packs strings as strict UTF-8")
        self._packer = PythonRespSerializer(BUFFER_CUTOFF, encoder.encode)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Queue the command for this iteration's pipeline and return its reply. Raises
        :class:`redis.exceptions.ConnectionError` once the client is closed, and
        :class:`redis.exceptions.DataError` for an argument Redis cannot take (that command is
        not sent; the others of its batch are)."""
        return await self.submit(*args, **options)

    def submit(self, *args: Any, **options: Any) -> asyncio.Future[Any]:
        """Queue the command for this iteration's pipeline; the future resolves to its reply
        (or fails with its error). What :meth:`execute_command` awaits: callers sending many
        commands at once (a publish to each of many users) await the futures together, with no
        coroutine or task for each. Raises the ConnectionError of a closed client at once."""
        if self._closed:
            raise RedisConnectionError("the redis client is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, options, future, loop.time()))
        if len(self._queue) >= MAX_BATCH and len(self._sending) < MAX_IN_FLIGHT:
            self._send_queued()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]
        """A Lua script run with ``EVALSHA`` on this client, loaded again when Redis lacks it
        (see :class:`PipelinedScript`)."""
        return PipelinedScript(self, script)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Send what is queued, wait up to :data:`CLOSE_GRACE` seconds for the batches under
        way (those still unanswered then fail with a ConnectionError), refuse new commands,
        then close as :class:`redis.asyncio.Redis` does. Idempotent."""
        if not self._closed:
            self._closed = True
            self._send_queued(everything=True)
            if self._sending:
                _, late = await asyncio.wait(set(self._sending), timeout=CLOSE_GRACE)
                for task in late:
                    task.cancel()
                if late:
                    await asyncio.wait(late)
        kept, self._kept = self._kept, None
        if kept is not None:
            await self.connection_pool.release(kept)
        await super().aclose(close_connection_pool)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._send_queued()

    def _send_queued(self, *, everything: bool = False) -> None:
        # Callers cancelled before their batch leaves are not sent.
        queued = [entry for entry in self._queue if not entry[2].done()]
        self._queue = []
        while queued and (everything or len(self._sending) < MAX_IN_FLIGHT):
            batch, queued = queued[:MAX_BATCH], queued[MAX_BATCH:]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            # The loop keeps only weak references to tasks.
            self._sending.add(task)
            task.add_done_callback(self._sent)
        # What the batches under way leave waiting goes when one of them is answered.
        self._queue = queued

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if self._queue and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _send(self, queued: list[_Queued]) -> None:
        commands: list[tuple[tuple[Any, ...], Mapping[str, Any]]] = []
        packed: list[bytes] = []
        waiting: list[list[asyncio.Future[Any]]] = []  # per command sent, its callers
        sent: dict[Any, int] = {}
        for args, options, future, _ in queued:
            key = _read_key(args, options)
            slot = sent.get(key) if key is not None else None
            if slot is None:
                try:
                    packed.append(_pack(args, self._packer))
                except Exception as error:  # an argument Redis cannot take: this caller's
                    future.set_exception(error)
                    continue
                slot = len(commands)
                commands.append((args, options))
                waiting.append([])
                if key is not None:
                    sent[key] = slot
            waiting[slot].append(future)
        answered = 0
        broken = False
        try:
            connection = await self._take_connection()
        except BaseException as error:
            _fail(waiting, error)
            if not isinstance(error, Exception):
                raise
            return
        reply_timeout = connection.socket_timeout
        # The batch's oldest command was issued first: it may have waited for batches under way.
        deadline = queued[0][3] + reply_timeout if reply_timeout is not None else None
        try:
            # One deadline for the batch's write and replies rather than a timer for each (a
            # tenth of a command's cost here): the connection has no timeout of its own meanwhile.
            connection.socket_timeout = None
            async with asyncio.timeout_at(deadline):
                await connection.send_packed_command(b"".join(packed))
                parser = _hiredis_parser(connection)
                while answered < len(commands):
                    command, command_options = commands[answered]
                    if parser is None:
                        try:
                            reply = await self.parse_response(
                                connection, command[0], **command_options
                            )
                        except ResponseError as error:
                            reply = error
                    else:
                        raw = parser._reader.gets()
                        if raw is _NOT_ENOUGH_DATA:
                            await parser.read_from_socket()
                            continue
                        reply = self._shaped(raw, command[0], command_options)
                        if reply.__class__ not in _PLAIN and inspect.isawaitable(reply):
                            reply = await reply
                    _answer(waiting[answered], reply)
                    answered += 1
        except BaseException as error:
            # Replies may still be on the socket: the connection must not serve anyone else.
            broken = True
            await connection.disconnect(nowait=True)
            if isinstance(error, TimeoutError):
                error = RedisTimeoutError(f"no reply from redis within {reply_timeout} s")
            elif isinstance(error, OSError):  # the socket failed under the hiredis reader
                error = RedisConnectionError(f"error reading from redis: {error}")
            _fail(waiting[answered:], error)
            if not isinstance(error, Exception):
                raise
        finally:
            connection.socket_timeout = reply_timeout
            await self._give_back(connection, broken)

    async def _take_connection(self) -> Connection:
        """The kept connection when it is free and still open (the peer has not closed it),
        else one from the pool (which becomes the kept one when there is none)."""
        kept = self._kept
        if kept is not None and not self._kept_busy:
            reader = getattr(kept, "_reader", None)
            if kept.is_connected and reader is not None and not reader.at_eof():
                self._kept_busy = True
                return kept
            self._kept = None
            await kept.disconnect(nowait=True)
            await self.connection_pool.release(kept)
        pool = self.connection_pool
        connection: Connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        if self._kept is None and not self._closed:
            self._kept, self._kept_busy = connection, True
        return connection

    async def _give_back(self, connection: Connection, broken: bool) -> None:
        """End a batch's use of ``connection``: the kept one stays kept unless ``broken``
        (disconnected: it goes back to the pool, which connects it again when asked); any
        other goes back to the pool."""
        if connection is self._kept:
            self._kept_busy = False
            if not broken and not self._closed:
                return
            self._kept = None
        await self.connection_pool.release(connection)

    def _shaped(self, raw: Any, name: Any, options: Mapping[str, Any]) -> Any:
        """A reply read by the reader of :func:`_hiredis_parser` as ``parse_response`` gives it: an
        error reply as its exception (raised when it means the connection is lost), anything
        else through the command's response callback."""
        if raw.__class__ is list:
            if raw and isinstance(raw[0], RedisConnectionError):
                raise raw[0]
        elif isinstance(raw, Exception):
            if isinstance(raw, RedisConnectionError):
                raise raw
            if isinstance(raw, ResponseError):
                return options.get(EMPTY_RESPONSE, raw)
        # The callbacks by the exact name commands are sent with: redis-py's own map is case
        # insensitive, a lookup of several calls for every reply.
        callback = self._callbacks.get(name, _UNKNOWN)
        if callback is _UNKNOWN:
            callback = self._callbacks[name] = self.response_callbacks.get(name)
        if callback is None:
            return raw
        if options:
            options = {
                key: value for key, value in options.items() if key not in _NOT_CALLBACK_OPTIONS
            }
        return callback(raw, **options)


class PipelinedScript(AsyncScript):
    """A script of a :class:`PipeliningRedis`: ``EVALSHA`` queued like any command, and when
    Redis answers ``NOSCRIPT`` (it restarted, or it was flushed) ``SCRIPT LOAD`` and once more.

    redis-py's own ``__call__`` first asks whether its client is a pipeline of either kind,
    checks that took 7 % of a node's time in a storm of joins (``isinstance`` against protocol
    classes); this client is neither, and a script's calls only ever go through it."""

    async def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        """Run the script with ``keys`` and ``args``; returns its reply."""
        target = self.registered_client if client is None else client
        keys_and_args = (*(keys or ()), *(args or ()))
        numkeys = len(keys) if keys else 0
        try:
            if isinstance(target, PipeliningRedis):
                # Queued straight onto the pipeline (no redis-py method or coroutine around it).
                return await target.submit("EVALSHA", self.sha, numkeys, *keys_and_args)
            return await target.evalsha(self.sha, numkeys, *keys_and_args)
        except NoScriptError:
            self.sha = await target.script_load(self.script)
            return await target.evalsha(self.sha, numkeys, *keys_and_args)


def _hiredis_parser(connection: Connection) -> Any:
    """``connection``'s redis-py hiredis parser, whose ``hiredis.Reader`` a batch reads its
    replies from one after another with no coroutine each (redis-py's ``parse_response`` is
    three levels of them and a host name per reply: a sixth of a command's cost here); or None
    where that cannot be done as redis-py would (another parser, decoded replies, RESP3 and its
    push frames, a RESP2 fallback, health checks to schedule): the batch then reads through
    ``parse_response``."""
    parser = getattr(connection, "_parser", None)
    if (
        _NOT_ENOUGH_DATA is None
        or not isinstance(parser, _AsyncHiredisParser)
        or getattr(parser, "_reader", None) is None
        or connection.encoder.decode_responses
        or str(getattr(connection, "protocol", 2)) != "2"
        or getattr(connection, "_resp2_fallback", False)
        or getattr(connection, "health_check_interval", 0)
    ):
        return None
    return parser


def _answer(callers: list[asyncio.Future[Any]], reply: Any) -> None:
    """Give ``reply`` to each caller still waiting: the first the reply itself, the others a
    copy of their own."""
    if len(callers) == 1:  # most commands
        future = callers[0]
        if not future.done():
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        return
    first = True
    for future in callers:
        if future.done():  # its caller was cancelled
            continue
        own = reply
        if not first:
            if isinstance(reply, Exception):
                own = own_copy(reply)
            elif isinstance(reply, (dict, list, set)):
                own = copy.copy(reply)
        first = False
        if isinstance(own, Exception):
            future.set_exception(own)
        else:
            future.set_result(own)


def _pack(args: tuple[Any, ...], fallback: PythonRespSerializer) -> bytes:
    """``args`` as the bytes of one Redis command. ``hiredis`` packs the arguments redis-py
    sends (str as UTF-8, bytes, int, float) in a tenth of the time redis-py's serializer takes
    around it; the rest (a command name of two words, buffers) and what neither takes (its
    :class:`redis.exceptions.DataError`) go through redis-py's own ``fallback``."""
    name = args[0]
    if not (isinstance(name, str) and " " in name):
        try:
            packed: bytes = hiredis.pack_command(args)
        except TypeError:
            pass
        else:
            return packed
    return b"".join(fallback.pack(*args))  # type: ignore[no-untyped-call]


def _fail(waiting: list[list[asyncio.Future[Any]]], error: BaseException) -> None:
    """Fail every caller still waiting in ``waiting`` with its own copy of ``error``; a
    cancelled batch (the client closing) fails them with a ConnectionError instead, so their
    callers see Redis unavailable rather than a cancellation of their own."""
    failure: Exception = (
        error if isinstance(error, Exception) else RedisConnectionError("the redis client closed")
    )
    for callers in waiting:
        for future in callers:
            if not future.done():
                future.set_exception(own_copy(failure))


def _read_key(args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """What makes two queued reads the same, or None for a command that is not only a read."""
    # redis-py and the hub name commands in capitals (another spelling only goes unshared).
    if args[0] not in READ_ONLY:
        return None
    # redis-py adds the command's keys as a list (for its client-side cache): args hold them.
    # Most reads carry no other option.
    if not options or (len(options) == 1 and "keys" in options):
        key: Any = args
    else:
        key = (args, tuple(sorted(item for item in options.items() if item[0] != "keys")))
    try:
        hash(key)
    except TypeError:
        return None
    return key
