"""Whether the event is over: organizers close it (``POST /api/event/close``), after which the
lobby's networking (directory, DMs, tables, meetings) refuses with ``closed``.

The close is one claim in the store (``set_if_absent``), so it happens once whoever asks and on
whatever node. Every node learns of it within a second (:meth:`EventState.poll`, a node timer)
and then runs the close hooks the features registered, on each node until each has succeeded once
(a failed hook runs again at the next poll); a hook must be safe to run on every node and again
(what it ends in the store, it ends with claims of its own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import NotRequired, TypedDict

from hub.codec import pack, unpack
from hub.errors import HubError
from hub.store import Store

EVENT_CLOSED_KEY = "event:closed"
# How often each node looks whether the event was closed elsewhere (seconds).
POLL_INTERVAL = 1.0

log = logging.getLogger(__name__)

CloseHook = Callable[["EventClosed"], Awaitable[None]]


class EventClosed(TypedDict):
    """The stored record of the close: when (epoch seconds), by whom, the notice's text, and
    the key of that text when it is the hub's own (``rooms.feature.EVENT_CLOSED_TEXT``)."""

    closed_at: float
    by: str
    text: str
    key: NotRequired[str]


class EventState:
    """This node's view of whether the event is over, and the hooks that end the features'
    live parts when it is."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.record: EventClosed | None = None
        self._hooks: list[CloseHook] = []
        # The hooks still to run (those that failed are tried again at the next poll).
        self._pending: list[CloseHook] = []

    @property
    def is_closed(self) -> bool:
        """Whether this node knows the event is over (at most :data:`POLL_INTERVAL` late)."""
        return self.record is not None

    def on_close(self, hook: CloseHook) -> None:
        """Await ``hook(record)`` once on this node when it learns the event is over."""
        self._hooks.append(hook)

    def require_open(self, what: str) -> None:
        """Pass while the event runs; ``closed`` (saying ``what`` is over) once it is closed."""
        if self.record is not None:
            raise HubError("closed", f"the event is over: {what} closed")

    async def close(self, by: str, text: str, key: str | None = None) -> tuple[EventClosed, bool]:
        """Close the event (once, whoever calls): the record, and whether this call closed it.
        ``key`` names ``text`` when the hub wrote it. This node's hooks have run once it
        returns, unless one failed (it is tried again at each :meth:`poll`); the other nodes'
        run within a second."""
        record: EventClosed = {"closed_at": round(time.time(), 3), "by": by, "text": text}
        if key is not None:
            record["key"] = key
        existing = await self.store.set_if_absent(EVENT_CLOSED_KEY, pack(record))
        if existing is not None:
            record = unpack(existing)
        await self._learn(record)
        return record, existing is None

    async def poll(self) -> None:
        """Look whether the event was closed (on any node); run the hooks once if so, and
        again those that failed."""
        if self.record is None:
            raw = await self.store.get(EVENT_CLOSED_KEY)
            if raw is not None:
                await self._learn(unpack(raw))
        elif self._pending:
            await self._run_pending()

    async def _learn(self, record: EventClosed) -> None:
        if self.record is not None:
            return
        self.record = record
        self._pending = list(self._hooks)
        await self._run_pending()

    async def _run_pending(self) -> None:
        assert self.record is not None
        pending, self._pending = self._pending, []
        for hook in pending:
            try:
                await hook(self.record)
            except Exception:
                log.exception("an event-close hook failed: tried again in a second")
                self._pending.append(hook)
