"""Transitional: a broker that still answers the store's calls, by handing them to the node's
store, until the call-site script moves the features from ``node.broker`` to ``node.store``
(that script deletes this module and every line marked ``[store-split]``)."""

from __future__ import annotations

from hub.store import Store


class StoreCalls:
    """The :class:`~hub.store.Store` calls of a broker, each made on :attr:`store` (looked up
    at call time, so a test that replaces a method of the node's store sees every call)."""

    store: Store

    async def incr(self, key: str, amount: int = 1) -> int:
        """See :meth:`hub.store.Store.incr`."""
        return await self.store.incr(key, amount)

    async def get(self, key: str) -> bytes | None:
        """See :meth:`hub.store.Store.get`."""
        return await self.store.get(key)

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """See :meth:`hub.store.Store.put`."""
        await self.store.put(key, value, ttl=ttl)

    async def set_if_absent(
        self, key: str, value: bytes, *, ttl: float | None = None
    ) -> bytes | None:
        """See :meth:`hub.store.Store.set_if_absent`."""
        return await self.store.set_if_absent(key, value, ttl=ttl)

    async def delete(self, key: str) -> None:
        """See :meth:`hub.store.Store.delete`."""
        await self.store.delete(key)

    async def hash_set(
        self, key: str, field: str, value: bytes, *, only_if_absent: bool = False
    ) -> bool:
        """See :meth:`hub.store.Store.hash_set`."""
        return await self.store.hash_set(key, field, value, only_if_absent=only_if_absent)

    async def hash_get(self, key: str, field: str) -> bytes | None:
        """See :meth:`hub.store.Store.hash_get`."""
        return await self.store.hash_get(key, field)

    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        """See :meth:`hub.store.Store.hash_get_all`."""
        return await self.store.hash_get_all(key)

    async def hash_delete(self, key: str, field: str) -> bool:
        """See :meth:`hub.store.Store.hash_delete`."""
        return await self.store.hash_delete(key, field)

    async def log_append(self, key: str, score: int, item: bytes, *, max_len: int) -> None:
        """See :meth:`hub.store.Store.log_append`."""
        await self.store.log_append(key, score, item, max_len=max_len)

    async def log_range(self, key: str, before: int | None, limit: int) -> list[tuple[int, bytes]]:
        """See :meth:`hub.store.Store.log_range`."""
        return await self.store.log_range(key, before, limit)

    async def log_remove(self, key: str, score: int) -> bool:
        """See :meth:`hub.store.Store.log_remove`."""
        return await self.store.log_remove(key, score)

    async def index_put(
        self, key: str, member: str, score: int, value: bytes, *, max_len: int
    ) -> bool:
        """See :meth:`hub.store.Store.index_put`."""
        return await self.store.index_put(key, member, score, value, max_len=max_len)

    async def index_get(self, key: str, member: str) -> tuple[int, bytes] | None:
        """See :meth:`hub.store.Store.index_get`."""
        return await self.store.index_get(key, member)

    async def index_newest(self, key: str, limit: int) -> list[tuple[str, int, bytes]]:
        """See :meth:`hub.store.Store.index_newest`."""
        return await self.store.index_newest(key, limit)

    async def set_add(self, key: str, member: str) -> bool:
        """See :meth:`hub.store.Store.set_add`."""
        return await self.store.set_add(key, member)

    async def set_remove(self, key: str, member: str) -> bool:
        """See :meth:`hub.store.Store.set_remove`."""
        return await self.store.set_remove(key, member)

    async def set_members(self, key: str) -> set[str]:
        """See :meth:`hub.store.Store.set_members`."""
        return await self.store.set_members(key)

    async def set_contains(self, key: str, member: str) -> bool:
        """See :meth:`hub.store.Store.set_contains`."""
        return await self.store.set_contains(key, member)
