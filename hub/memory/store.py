"""The in-process store: one node's view of the key families of a
:class:`~hub.memory.backend.MemoryBackend`. Each call runs without awaiting, which makes it atomic
on the one event loop the backend serves. As on Redis, a hash, set, log or index whose last entry
goes is gone, and expired values leave memory at the backend's next sweep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hub.memory.backend import MemoryBackend


class MemoryStore:
    """Implements :class:`hub.store.Store` on ``backend`` (shared with the process's other
    nodes); features that keep state of their own there find it as :attr:`backend`."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend

    async def incr(self, key: str, amount: int = 1) -> int:
        """See :meth:`hub.store.Store.incr`."""
        current = self.backend.value(key)
        value = (int(current) if current is not None else 0) + amount
        # Redis keeps a counter's expiry: the expiry queued for it still holds.
        expires = self.backend.values.get(key, (b"", None))[1]
        self.backend.values[key] = (str(value).encode(), expires)
        return value

    async def get(self, key: str) -> bytes | None:
        """See :meth:`hub.store.Store.get`."""
        return self.backend.value(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """See :meth:`hub.store.Store.get_many`."""
        return [self.backend.value(key) for key in keys]

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """See :meth:`hub.store.Store.put`."""
        expires = self.backend.clock() + ttl if ttl is not None else None
        self.backend.set_value(key, value, expires)

    async def set_if_absent(
        self, key: str, value: bytes, *, ttl: float | None = None
    ) -> bytes | None:
        """See :meth:`hub.store.Store.set_if_absent`."""
        existing = self.backend.value(key)
        if existing is not None:
            return existing
        await self.put(key, value, ttl=ttl)
        return None

    async def delete(self, key: str) -> None:
        """See :meth:`hub.store.Store.delete`."""
        self.backend.values.pop(key, None)
        self.backend.hashes.pop(key, None)
        self.backend.sets.pop(key, None)
        self.backend.logs.pop(key, None)
        self.backend.indexes.pop(key, None)

    async def hash_set(
        self, key: str, field: str, value: bytes, *, only_if_absent: bool = False
    ) -> bool:
        """See :meth:`hub.store.Store.hash_set`."""
        fields = self.backend.hashes.setdefault(key, {})
        if only_if_absent and field in fields:
            return False
        fields[field] = value
        return True

    async def hash_set_many(self, key: str, fields: Mapping[str, bytes]) -> None:
        """See :meth:`hub.store.Store.hash_set_many`."""
        if fields:
            self.backend.hashes.setdefault(key, {}).update(fields)

    async def hash_get(self, key: str, field: str) -> bytes | None:
        """See :meth:`hub.store.Store.hash_get`."""
        return self.backend.hashes.get(key, {}).get(field)

    async def hash_get_all(self, key: str) -> dict[str, bytes]:
        """See :meth:`hub.store.Store.hash_get_all`."""
        return dict(self.backend.hashes.get(key, {}))

    async def hash_delete(self, key: str, field: str) -> bool:
        """See :meth:`hub.store.Store.hash_delete`."""
        fields = self.backend.hashes.get(key)
        if fields is None or fields.pop(field, None) is None:
            return False
        if not fields:
            del self.backend.hashes[key]
        return True

    async def hash_take(self, key: str, fields: list[str]) -> dict[str, bytes] | None:
        """See :meth:`hub.store.Store.hash_take`."""
        present = self.backend.hashes.get(key, {})
        if not fields or any(field not in present for field in fields):
            return None
        taken = {field: present.pop(field) for field in fields}
        if not present:
            del self.backend.hashes[key]
        return taken

    async def log_append(self, key: str, score: int, item: bytes, *, max_len: int) -> None:
        """See :meth:`hub.store.Store.log_append`."""
        log = self.backend.logs.setdefault(key, {})
        log[score] = item
        if len(log) > max_len:
            for old in sorted(log)[: len(log) - max_len]:
                del log[old]

    async def log_range(self, key: str, before: int | None, limit: int) -> list[tuple[int, bytes]]:
        """See :meth:`hub.store.Store.log_range`."""
        log = self.backend.logs.get(key, {})
        scores = sorted(s for s in log if before is None or s < before)
        return [(score, log[score]) for score in scores[-limit:]] if limit > 0 else []

    async def log_remove(self, key: str, score: int) -> bool:
        """See :meth:`hub.store.Store.log_remove`."""
        log = self.backend.logs.get(key)
        if log is None or log.pop(score, None) is None:
            return False
        if not log:
            del self.backend.logs[key]
        return True

    async def index_put(
        self, key: str, member: str, score: int, value: bytes, *, max_len: int
    ) -> bool:
        """See :meth:`hub.store.Store.index_put`."""
        index = self.backend.indexes.setdefault(key, {})
        current = index.get(member)
        if current is not None and current[0] > score:
            return False
        index[member] = (score, value)
        if len(index) > max_len:
            lowest = sorted(index, key=lambda name: (index[name][0], name))
            for name in lowest[: len(index) - max_len]:
                del index[name]
        return True

    async def index_get(self, key: str, member: str) -> tuple[int, bytes] | None:
        """See :meth:`hub.store.Store.index_get`."""
        return self.backend.indexes.get(key, {}).get(member)

    async def index_newest(self, key: str, limit: int) -> list[tuple[str, int, bytes]]:
        """See :meth:`hub.store.Store.index_newest`."""
        index = self.backend.indexes.get(key, {})
        ranked = sorted(index, key=lambda name: (index[name][0], name), reverse=True)
        return [(name, *index[name]) for name in ranked[: max(limit, 0)]]

    async def index_remove(self, key: str, member: str) -> bool:
        """See :meth:`hub.store.Store.index_remove`."""
        index = self.backend.indexes.get(key)
        if index is None or index.pop(member, None) is None:
            return False
        if not index:
            del self.backend.indexes[key]
        return True

    async def set_add(self, key: str, member: str) -> bool:
        """See :meth:`hub.store.Store.set_add`."""
        members = self.backend.sets.setdefault(key, set())
        if member in members:
            return False
        members.add(member)
        return True

    async def set_add_counted(self, key: str, member: str) -> tuple[bool, int]:
        """See :meth:`hub.store.Store.set_add_counted`."""
        added = await self.set_add(key, member)
        return added, len(self.backend.sets[key])

    async def set_remove(self, key: str, member: str) -> bool:
        """See :meth:`hub.store.Store.set_remove`."""
        members = self.backend.sets.get(key)
        if members is None or member not in members:
            return False
        members.discard(member)
        if not members:
            del self.backend.sets[key]
        return True

    async def set_members(self, key: str) -> set[str]:
        """See :meth:`hub.store.Store.set_members`."""
        return set(self.backend.sets.get(key, set()))

    async def set_contains(self, key: str, member: str) -> bool:
        """See :meth:`hub.store.Store.set_contains`."""
        return member in self.backend.sets.get(key, set())

    async def set_size(self, key: str) -> int:
        """See :meth:`hub.store.Store.set_size`."""
        return len(self.backend.sets.get(key, ()))

    async def window_add(self, key: str, amount: int, window: float) -> int:
        """See :meth:`hub.store.Store.window_add`."""
        current = self.backend.value(key)
        if current is None:
            await self.put(key, str(amount).encode(), ttl=window)
            return amount
        return await self.incr(key, amount)
