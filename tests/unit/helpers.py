"""Small helpers shared by the in-process unit tests: nodes on memory brokers, sessions built by
hand, and reading back what a session's outbound queue holds. No sockets anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from hub.app import Hub, build_hub
from hub.auth import Role
from hub.broker import BrokerSettings
from hub.codec import WireFormat, decode_frame
from hub.config import HubConfig, Limits
from hub.feature import Feature
from hub.memory import MemoryBackend, memory_node
from hub.session import Session
from rooms.directory import default_rooms

# The same unit as tests/conftest.py: every wait is bounded, scalable on slow machines.
TIMEOUT = 10.0 * float(os.environ.get("HUB_TEST_TIMEOUT_SCALE", "1"))

SECRET = "unit-test-secret-0123456789abcdef-0123456789"  # >= 32 bytes

# Periodic jobs (presence flush and refresh, the lobby's rooms feed) never fire during a test:
# tests call them directly.
QUIET = {"presence_interval": 3600.0, "presence_ttl": 3600.0, "rooms_interval": 3600.0}


def config(**changes: Any) -> HubConfig:
    """A hub config with a fixed secret and quiet periodic jobs; ``changes`` override."""
    return HubConfig(**{"secret": SECRET, **QUIET, **changes})


def compose(
    cfg: HubConfig, backend: MemoryBackend, node_id: str, extra: Sequence[Feature] = ()
) -> Hub:
    """The hub :func:`hub.app.build_hub` wires (with ``extra`` features), on a given memory
    backend, so several nodes can share one process."""
    return build_hub(cfg, memory_node(backend, node_id), extra)


@contextlib.asynccontextmanager
async def running(
    *node_ids: str, extra: Callable[[], Sequence[Feature]] = tuple, **changes: Any
) -> AsyncIterator[list[Hub]]:
    """Started hubs, one per node id, sharing one memory backend (the lobby exists); each node
    also installs the features ``extra()`` makes for it."""
    cfg = config(**changes)
    backend = MemoryBackend(
        BrokerSettings(history_size=cfg.history_size, presence_ttl=cfg.presence_ttl)
    )
    hubs = [compose(cfg, backend, node_id, extra()) for node_id in node_ids or ("n1",)]
    async with started(hubs):
        yield hubs


@contextlib.asynccontextmanager
async def started(hubs: list[Hub]) -> AsyncIterator[list[Hub]]:
    """``hubs`` started in order (the lobby exists), stopped in reverse order at the end."""
    running_ones: list[Hub] = []
    try:
        for hub in hubs:
            await hub.node.start()
            running_ones.append(hub)
        await hubs[0].rooms.directory.ensure(default_rooms())
        yield hubs
    finally:
        for hub in reversed(running_ones):
            await hub.node.stop()


def token(
    hub: Hub,
    user: str,
    role: Role | str = Role.ATTENDEE,
    *,
    name: str | None = None,
    rooms: dict[str, Role | str] | None = None,
) -> str:
    """A token the hub accepts, without expiry (so no expiry timer outlives the test)."""
    return hub.authority.mint(user=user, name=name or user, role=role, rooms=rooms, ttl=None)


def new_session(
    hub: Hub, fmt: WireFormat = WireFormat.JSON, limits: Limits | None = None
) -> Session:
    """A connection as the endpoint makes one: a fresh session registered on the node."""
    session = Session(hub.node.new_sid(), fmt, limits or hub.config.limits)
    hub.node.add_session(session)
    return session


def drain(session: Session) -> list[dict[str, Any]]:
    """Take and decode everything the session's queue holds, in order."""
    messages: list[dict[str, Any]] = []
    for data in session.queue.take(10**9):
        messages.extend(decode_frame(session.fmt, data))
    return messages


class Client:
    """One session driven by plain dispatcher calls: ``call`` returns the reply to a command and
    keeps every other message (events) for ``events``."""

    def __init__(self, hub: Hub, session: Session) -> None:
        self.hub = hub
        self.session = session
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    @property
    def sid(self) -> str:
        return self.session.sid

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Dispatch one command with a fresh id; returns its reply (``{"re", "ok"|"err"}``)."""
        self._next_id += 1
        command_id = self._next_id
        await self.hub.dispatcher.dispatch(self.session, {"id": command_id, "op": op, **fields})
        replies = []
        for message in drain(self.session):
            if message.get("re") == command_id:
                replies.append(message)
            else:
                self.events.append(message)
        assert len(replies) == 1, f"{op}: expected one reply, got {replies}"
        return replies[0]

    async def ok(self, op: str, **fields: Any) -> dict[str, Any]:
        """Dispatch a command that must succeed; returns its ``ok`` body."""
        reply = await self.call(op, **fields)
        assert "ok" in reply, f"{op} failed: {reply}"
        result: dict[str, Any] = reply["ok"]
        return result

    async def err(self, op: str, **fields: Any) -> str:
        """Dispatch a command that must fail; returns its error code."""
        reply = await self.call(op, **fields)
        assert "err" in reply, f"{op} should have failed: {reply}"
        code: str = reply["err"]["code"]
        return code

    def collect(self) -> list[dict[str, Any]]:
        """Every event received so far (queued ones included); clears the list."""
        self.events.extend(drain(self.session))
        events, self.events = self.events, []
        return events

    def stored(self) -> list[dict[str, Any]]:
        """The stored events (those with a seq) received so far; clears the event list."""
        return [event for event in self.collect() if "seq" in event]


async def connect(
    hub: Hub,
    user: str,
    role: Role | str = Role.ATTENDEE,
    *,
    rooms: dict[str, Role | str] | None = None,
    fmt: WireFormat = WireFormat.JSON,
) -> Client:
    """A session that said hello with a token for ``user``."""
    client = Client(hub, new_session(hub, fmt))
    await client.ok("hello", token=token(hub, user, role, rooms=rooms))
    return client


async def wait_for_queue(session: Session) -> None:
    """Wait (bounded) until the session's queue has something, closed or overflowed."""
    await asyncio.wait_for(session.queue.wait(), TIMEOUT)


async def next_event(
    client: Client, ev: str, within: float = TIMEOUT, **fields: Any
) -> dict[str, Any]:
    """The first event ``ev`` (with ``fields`` equal) the client got or gets within ``within``
    seconds; the events before it are dropped, the ones after it kept."""
    async with asyncio.timeout(within):
        while True:
            client.events.extend(drain(client.session))
            for index, event in enumerate(client.events):
                if event.get("ev") == ev and all(event.get(k) == v for k, v in fields.items()):
                    del client.events[: index + 1]
                    return event
            client.events.clear()
            if client.session.queue.closed:
                raise AssertionError(f"closed before {ev} {fields}")
            await client.session.queue.wait()


async def create_room(organizer: Client, room: str, kind: str) -> None:
    """Create ``room`` of ``kind`` (the caller must be an organizer)."""
    await organizer.ok("room.create", room=room, kind=kind, title=room)


async def queue_becomes(client: Client, users: list[str]) -> dict[str, Any]:
    """The first ``hands`` event showing ``users`` in that order (earlier ones are skipped)."""
    while True:
        event = await next_event(client, "hands")
        if [hand["user"] for hand in event["queue"]] == users:
            return event
