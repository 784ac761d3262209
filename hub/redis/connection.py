"""One node's pool of Redis connections, its error mapping and its key layout: the broker, the
store and feature-owned scripts (the polls' ballots) of a node share one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, cast

from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.broker import BrokerUnavailable
from hub.redis.pipelining import PipeliningRedis

_T = TypeVar("_T")

#: Errors that mean "Redis cannot serve right now" (BusyLoadingError is a ConnectionError).
UNAVAILABLE: Final = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


def ms(seconds: float) -> int:
    """``seconds`` as whole milliseconds, at least 1 (Redis expiries)."""
    return max(1, round(seconds * 1000))


class RedisConnection:
    """A pool of at most ``max_connections`` connections to the Redis at ``url`` and the names
    under ``prefix``: ``k:<key>`` (the store's keys, and those of feature-owned scripts),
    ``t:<topic>`` (channels), and what the broker and store add (see their docstrings).

    A command waits at most ``timeout`` seconds for its reply (the replies of one pipeline
    share that deadline) and as long for a pooled connection; a failed one is never retried (a
    publish whose reply was lost could be stored twice): :meth:`call` turns the failure into
    :class:`~hub.broker.BrokerUnavailable`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hub:",
        timeout: float = 3.0,
        connect_timeout: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self.prefix = prefix
        self.timeout = timeout
        options: dict[str, Any] = {
            "max_connections": max_connections,
            "timeout": timeout,
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(parse_url(url))
        # RESP2 everywhere: pub/sub replies are plain arrays the listener reads itself.
        options["protocol"] = 2
        self._pool = BlockingConnectionPool(**options)
        #: The client over the pool: the commands of one loop iteration go as one pipeline.
        # from_pool: the client owns the pool and closes it with itself.
        self.redis = cast("PipeliningRedis", PipeliningRedis.from_pool(self._pool))
        #: The names of every channel start with it.
        self.channel_prefix = f"{prefix}t:"
        self._close_callbacks: list[Callable[[], None]] = []
        self._closed = False

    def key(self, key: str) -> str:
        """The Redis key of the store's key ``key``."""
        return f"{self.prefix}k:{key}"

    def channel(self, topic: str) -> str:
        """The channel of ``topic``."""
        return self.channel_prefix + topic

    def dedicated(self) -> AbstractConnection:
        """A new connection with the pool's options that the pool never lends (the listener's
        pub/sub connection); the caller connects and disconnects it."""
        return self._pool.make_connection()  # type: ignore[no-untyped-call,no-any-return]

    async def call(self, awaitable: Awaitable[_T]) -> _T:
        """Await a Redis call, raising :class:`~hub.broker.BrokerUnavailable` (chaining the
        Redis error) when Redis cannot serve."""
        try:
            return await awaitable
        except UNAVAILABLE as exc:
            raise BrokerUnavailable(f"redis unavailable: {exc}") from exc

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the pool closes, before its connections go (what a user of the
        pool still has in flight is cancelled with it)."""
        self._close_callbacks.append(callback)

    async def close(self) -> None:
        """Run the close callbacks and release every pooled connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for callback in self._close_callbacks:
            callback()
        await self.redis.aclose()
