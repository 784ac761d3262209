"""The in-process implementations (``memory://``): one process, no Redis.

A :class:`~hub.memory.backend.MemoryBackend` holds everything the nodes of a process share;
each node has a :class:`~hub.memory.broker.MemoryBroker` and a
:class:`~hub.memory.store.MemoryStore` on it (tests run several nodes on one backend).
"""

from __future__ import annotations

from hub.memory.backend import MemoryBackend
from hub.memory.broker import MemoryBroker
from hub.memory.store import MemoryStore

__all__ = ["MemoryBackend", "MemoryBroker", "MemoryStore", "memory_node"]


def memory_node(backend: MemoryBackend, node_id: str) -> tuple[MemoryBroker, MemoryStore]:
    """Node ``node_id``'s broker and store on ``backend``."""
    broker, store = MemoryBroker(backend, node_id), MemoryStore(backend)
    return broker, store
