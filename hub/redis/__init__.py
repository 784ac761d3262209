"""The Redis implementations (``redis://``): any number of hub nodes sharing one Redis.

The only package of the project that imports ``redis`` (besides feature-owned scripts such as
:mod:`polls.ballots_redis`, which run over a node's connection). Its modules, one job each:

* :mod:`~hub.redis.connection`: a node's connection pool, error mapping and key layout;
* :mod:`~hub.redis.broker`: the :class:`~hub.broker.Broker`, made of
  :mod:`~hub.redis.streams` (rooms' stored streams, a Lua publish and read),
  :mod:`~hub.redis.presence` (presence, a Lua script) and :mod:`~hub.redis.listener` (the pub/sub
  connection: reconnects, probes, per-room catch-up), with :mod:`~hub.redis.envelope` (what
  travels on the channels);
* :mod:`~hub.redis.store`: the :class:`~hub.store.Store`.

There is one delivery path: a node receives its own messages through its subscription like every
other node.
"""

from __future__ import annotations

from hub.broker import BrokerSettings
from hub.redis.broker import RedisBroker
from hub.redis.connection import RedisConnection
from hub.redis.store import RedisStore

__all__ = ["RedisBroker", "RedisStore", "redis_node"]


def redis_node(
    url: str,
    node_id: str,
    settings: BrokerSettings | None = None,
    *,
    prefix: str = "hub:",
    timeout: float = 3.0,
    connect_timeout: float = 2.0,
    max_connections: int = 64,
) -> tuple[RedisBroker, RedisStore]:
    """Node ``node_id``'s broker and store over one pool of at most ``max_connections``
    connections to the Redis at ``url``, under ``prefix`` (see
    :class:`~hub.redis.connection.RedisConnection`); closing the broker closes the pool."""
    connection = RedisConnection(
        url,
        prefix=prefix,
        timeout=timeout,
        connect_timeout=connect_timeout,
        max_connections=max_connections,
    )
    broker, store = RedisBroker(connection, node_id, settings), RedisStore(connection)
    return broker, store
