"""A Redis client that sends the commands of one event-loop iteration as one pipeline.

A burst of joins makes each node issue thousands of small commands within a few iterations of
its loop. Sent one by one, each costs a pooled connection, a ``send`` system call, a wait and
redis-py's per-command machinery, several times what Redis spends on it. Here every command
issued through the client (its methods, and scripts run with it) is queued; once the iteration
ends, the queue goes to Redis as one pipeline (not a transaction) on one pooled connection, and
each caller gets its own reply (or its own error) back.

Identical read-only commands queued in one iteration (the same room's ``HGETALL`` for every
join of a burst) are sent once, and each caller gets its own copy of the reply. That keeps
every caller's guarantee: each of them issued its read before the batch left, and the read
runs after that, so it sees everything acknowledged before any of them asked.

A failure of the pipeline itself (the connection, a timeout) fails every command of the batch,
as it would have failed each of them alone; an error reply fails only its own command. Commands
are never retried here (see :class:`~hub.redis.connection.RedisConnection`).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

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

_Queued = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class PipeliningRedis(Redis):
    """A :class:`redis.asyncio.Redis` whose commands go to Redis in one pipeline per event-loop
    iteration (see the module docstring). Transactions (``pipeline(transaction=True)``) and
    pub/sub are unchanged: they take a connection of their own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: list[_Queued] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Queue the command for this iteration's pipeline and return its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._queue is None:
            self._queue = []
            loop.call_soon(self._send_queued)
        self._queue.append((args, options, future))
        return await future

    def _send_queued(self) -> None:
        queued, self._queue = self._queue or [], None
        task = asyncio.get_running_loop().create_task(self._send(queued))
        # The loop keeps only weak references to tasks.
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, queued: list[_Queued]) -> None:
        commands: list[tuple[tuple[str | bytes, ...], Mapping[str, Any]]] = []
        slots: list[int] = []  # per queued command, its place in ``commands``
        sent: dict[Any, int] = {}
        for args, options, _ in queued:
            key = _read_key(args, options)
            slot = sent.get(key) if key is not None else None
            if slot is None:
                slot = len(commands)
                commands.append((args, options))
                if key is not None:
                    sent[key] = slot
            slots.append(slot)
        pipe = Pipeline(self.connection_pool, self.response_callbacks, False, None)
        pipe.command_stack = commands
        try:
            replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _, _, future in queued:
                future.cancel()
            raise
        except Exception as error:
            for _, _, future in queued:
                if not future.done():
                    future.set_exception(_own(error))
            return
        given: set[int] = set()
        for (_, _, future), slot in zip(queued, slots, strict=True):
            if future.done():  # its caller was cancelled
                continue
            reply = replies[slot]
            if slot in given:  # a read sent once for several callers: each gets its own
                if isinstance(reply, Exception):
                    reply = _own(reply)
                elif isinstance(reply, (dict, list, set)):
                    reply = copy.copy(reply)
            given.add(slot)
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


def _read_key(args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """What makes two queued reads the same, or None for a command that is not only a read."""
    name = args[0]
    if not isinstance(name, str) or name.upper() not in READ_ONLY:
        return None
    try:
        # redis-py adds the command's keys as a list (for its client-side cache): args hold them.
        key = (args, tuple(sorted(item for item in options.items() if item[0] != "keys")))
        hash(key)
    except TypeError:
        return None
    return key


def _own(error: Exception) -> Exception:
    """A copy of ``error`` for one caller: several callers raising one exception object would
    pile their tracebacks onto it."""
    try:
        own = copy.copy(error)
    except Exception:
        return error
    own.__traceback__ = None
    return own
