"""Fixtures of the integration tier: real ``hub serve`` processes.

``hub`` (memory mode, no Redis) is shared by a whole module: tests that use it keep out of each
other's way with unique users and rooms (:func:`uid`). ``start_hub`` starts a private hub with
special flags or ``HUB_LIMIT_*`` settings, stopped when the test ends.

Nodes sharing the run's private Redis (``redis_server`` of tests/conftest.py): ``start_nodes``
starts a test's own nodes on it, flushed first (``redis``); ``nodes`` is a pair shared by a
module. ``stack`` closes a test's clients before its nodes stop; ``http`` is an HTTP client.

``janus`` is a private Janus server in its own network namespace, shared by a module.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import TIMEOUT
from tests.support import recording
from tests.support.hub_process import TEST_SECRET, HubProcess, mint
from tests.support.janus import JanusServer
from tests.support.redis_server import RedisServer
from tests.support.system import require_janus, require_netns

# The module hub's limits: the fan-out test's moderator announces 100 notices in a burst, more
# than the default per-connection burst (60) allows a person.
SHARED_HUB_ENV = {"HUB_LIMIT_CONNECTION_BURST": "150", "HUB_LIMIT_USER_BURST": "300"}

StartHub = Callable[..., HubProcess]
StartNodes = Callable[..., Awaitable[list[HubProcess]]]


def uid(prefix: str) -> str:
    """A unique user or room id (room ids: lower case, digits, dashes)."""
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    """A memory-mode hub with a secret (guests refused), shared by the module."""
    process = HubProcess(env=SHARED_HUB_ENV)
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture
def start_hub() -> Iterator[StartHub]:
    """Start private hubs: ``start_hub(args=[...], env={...}, secret=...)``; all are stopped
    when the test ends."""
    started: list[HubProcess] = []

    def start(
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        secret: str | None = TEST_SECRET,
    ) -> HubProcess:
        process = HubProcess(args=args, env=env, secret=secret)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


# --- nodes sharing the private Redis -------------------------------------------------------------


def _start_all(processes: Sequence[HubProcess]) -> None:
    """Start hub processes in parallel (each returns once ready)."""
    with ThreadPoolExecutor(max(1, len(processes))) as pool:
        list(pool.map(HubProcess.start, processes))


def _stop_all(processes: Sequence[HubProcess]) -> None:
    """Stop hub processes in parallel, whatever their state."""
    with ThreadPoolExecutor(max(1, len(processes))) as pool:
        list(pool.map(HubProcess.stop, processes))


def _running_and_empty(server: RedisServer) -> RedisServer:
    server.start()  # a previous test may have stopped it
    server.flush()
    return server


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    """The run's private Redis, running and empty."""
    return _running_and_empty(redis_server)


@pytest.fixture
def node_env() -> Mapping[str, str]:
    """Settings of every node ``start_nodes`` starts (none here; a module may override this)."""
    return {}


@pytest.fixture
def start_nodes(redis: RedisServer, node_env: Mapping[str, str]) -> Iterator[StartNodes]:
    """``await start_nodes(n=2, env=..., envs=[...], workers=...)``: ``n`` hub processes on the
    test's Redis (``node_env``, then ``env``, then their own of ``envs``), started in parallel;
    all are stopped when the test ends."""
    started: list[HubProcess] = []

    async def start(
        count: int = 2,
        *,
        env: Mapping[str, str] | None = None,
        envs: list[Mapping[str, str]] | None = None,
        workers: int = 1,
    ) -> list[HubProcess]:
        processes = [
            HubProcess(
                redis_url=redis.url,
                workers=workers,
                env={**node_env, **(env or {}), **(envs[i] if envs else {})},
            )
            for i in range(count)
        ]
        started.extend(processes)
        await asyncio.to_thread(_start_all, processes)
        return processes

    yield start
    _stop_all(started)


@pytest.fixture(scope="module")
def nodes(redis_server: RedisServer) -> Iterator[tuple[HubProcess, HubProcess]]:
    """Two hub processes on the run's Redis (running and flushed first), with default limits,
    shared by the module."""
    _running_and_empty(redis_server)
    processes = [HubProcess(redis_url=redis_server.url) for _ in range(2)]
    try:
        _start_all(processes)
        yield processes[0], processes[1]
    finally:
        _stop_all(processes)


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    """Closes the test's clients and members when it ends (before the nodes stop)."""
    async with contextlib.AsyncExitStack() as exits:
        yield exits


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        yield client


async def open_member(
    stack: contextlib.AsyncExitStack,
    node: HubProcess,
    user: str,
    role: str = "attendee",
    *,
    kind: type[recording.Member] = recording.Member,
) -> recording.Member:
    """A recording member (of class ``kind``) said hello on ``node``; closed with ``stack``."""
    member = await kind.open(node.url, mint(user, role), within=TIMEOUT)
    stack.push_async_callback(member.close)
    return member


async def new_room(stack: contextlib.AsyncExitStack, node: HubProcess, kind: str) -> str:
    """A fresh room of ``kind`` (a unique id), created by an organizer on ``node``."""
    org = await open_member(stack, node, uid("org"), "organizer")
    room = uid(kind)
    await org.request("room.create", room=room, kind=kind, title=kind.title())
    return room


# --- Janus (an SFU) in a network namespace ----------------------------------------------------


@pytest.fixture(scope="module")
def janus() -> Iterator[JanusServer]:
    """A private Janus (VideoRoom, string ids) in its own network namespace, shared by the module;
    ends the test with one line where Janus or namespaces are missing (tests/support/system.py).
    WebRTC peers of the test gather ``janus.peer_address`` only (``host_addresses_only``). A test
    that kills or restarts Janus makes its own ``JanusServer`` instead."""
    require_netns()
    server = JanusServer(binary=require_janus())
    try:
        yield server
    finally:
        server.close()
