"""The store interface: the small, atomic, shared state of the features (counters, values,
hashes, capped logs and indexes, sets), the same on every node.

A node reads and writes it through a :class:`Store` (``Node.store``), beside the :class:`Broker
<hub.broker.Broker>` that carries its events. :func:`hub.broker.connect` makes both for a URL:
``memory://`` (:class:`~hub.memory.store.MemoryStore`, shared by the nodes of one process that
share a :class:`~hub.memory.backend.MemoryBackend`) or ``redis://``
(:class:`~hub.redis.store.RedisStore`, over the pool of the node's Redis broker).

Guarantees every implementation gives (checked by ``tests/contract/test_store_contract.py``):

* Each call is one atomic step: no other call on any node sees half of it, and its result is
  the state right after it.
* A write is visible to every node's next read once the call returned.
* Keys of the families are separate names in one space: :meth:`Store.delete` removes a key
  whatever it holds; using one key for two families is the caller's mistake.
* Every call raises :class:`~hub.broker.BrokerUnavailable` when the store cannot serve (Redis
  down); the state is then as if the call was made or as if it was not.
* The data is not durable: a Redis restarted empty loses it, as it loses the rooms' history
  (nodes hear of it as a new epoch of their rooms, see :mod:`hub.broker`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class Store(Protocol):
    """Shared key-value state of the features. See the module docstring for the guarantees."""

    # --- values and counters -------------------------------------------------------------------

    async def incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to an integer counter (missing = 0); returns the new value."""

    async def get(self, key: str) -> bytes | None:
        """The value stored at ``key``, or None."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values stored at ``keys``, in order (None where there is none), in one read."""

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` at ``key``, expiring after ``ttl`` seconds when given."""

    async def set_if_absent(
        self, key: str, value: bytes, *, ttl: float | None = None
    ) -> bytes | None:
        """Store ``value`` only if ``key`` holds nothing; returns None when stored, else the value
        already there (an idempotency key: the first writer wins, later ones see its result)."""

    async def delete(self, key: str) -> None:
        """Remove ``key``, whatever family it holds. Idempotent."""

    # --- hashes --------------------------------------------------------------------------------

    async def hash_set(
        self, key: str, field: str, value: bytes, *, only_if_absent: bool = False
    ) -> bool:
        """Set one field of a hash; returns False only when ``only_if_absent`` and it existed."""

    async def hash_set_many(self, key: str, fields: Mapping[str, bytes]) -> None:
        """Set several fields of a hash in one atomic step (none when ``fields`` is empty)."""

    async def hash_get(self, key: str, field: str) -> bytes | None:
        """One field of a hash, or None."""

    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        """Every field of a hash."""

    async def hash_delete(self, key: str, field: str) -> bool:
        """Remove one field; returns whether it existed."""

    async def hash_take(self, key: str, fields: list[str]) -> dict[str, bytes] | None:
        """Remove ``fields`` of a hash only if every one of them is there, in one atomic step:
        their values, or None (and nothing removed) when one is missing. Of concurrent takes
        sharing a field, at most one succeeds (a queue that pairs people exactly)."""

    # --- capped logs ---------------------------------------------------------------------------

    async def log_append(self, key: str, score: int, item: bytes, *, max_len: int) -> None:
        """Add ``item`` under ``score`` (unique per log) to a capped log, atomically dropping the
        lowest scores beyond ``max_len`` (a room's chat history, a DM conversation)."""

    async def log_range(self, key: str, before: int | None, limit: int) -> list[tuple[int, bytes]]:
        """The newest ``limit`` items with score < ``before`` (any score when None), oldest
        first, as ``(score, item)``."""

    async def log_remove(self, key: str, score: int) -> bool:
        """Remove the item under ``score``; returns whether there was one."""

    # --- capped indexes ------------------------------------------------------------------------

    async def index_put(
        self, key: str, member: str, score: int, value: bytes, *, max_len: int
    ) -> bool:
        """Set ``member``'s entry of a capped index to ``(score, value)`` unless it holds a
        higher score already (then nothing changes and False is returned), and drop the
        lowest-scored entries beyond ``max_len`` (ties: the lowest member first), in one atomic
        step (a user's conversations, by the time of their latest message)."""

    async def index_get(self, key: str, member: str) -> tuple[int, bytes] | None:
        """``member``'s ``(score, value)`` in an index, or None."""

    async def index_newest(self, key: str, limit: int) -> list[tuple[str, int, bytes]]:
        """The ``limit`` highest-scored entries of an index as ``(member, score, value)``,
        highest first (ties: the highest member first)."""

    async def index_remove(self, key: str, member: str) -> bool:
        """Remove ``member``'s entry from an index; returns whether it had one (of concurrent
        removes of one entry, exactly one gets True)."""

    # --- sets ----------------------------------------------------------------------------------

    async def set_add(self, key: str, member: str) -> bool:
        """Add ``member`` to a set; returns True if it was not there."""

    async def set_add_counted(self, key: str, member: str) -> tuple[bool, int]:
        """Add ``member`` to a set and count it, in one atomic step: whether it was not there,
        and the set's size right after (so concurrent adds each see a different size)."""

    async def set_remove(self, key: str, member: str) -> bool:
        """Remove ``member`` from a set; returns True if it was there."""

    async def set_members(self, key: str) -> set[str]:
        """All members of a set."""

    async def set_contains(self, key: str, member: str) -> bool:
        """Whether ``member`` is in the set."""

    async def set_size(self, key: str) -> int:
        """How many members the set has (0 when it does not exist)."""

    # --- windowed counters ---------------------------------------------------------------------

    async def window_add(self, key: str, amount: int, window: float) -> int:
        """Add ``amount`` (> 0) to a counter that lives ``window`` seconds from its first add
        (then it is gone, and the next add starts a new window); returns the total within the
        current window, this add included. A budget shared by every node: compare the total
        with the window's allowance."""
