"""Fixtures of the integration tier: real ``hub serve`` processes (memory mode, no Redis).

``hub`` is shared by a whole module: tests that use it keep out of each other's way with unique
users and rooms. ``start_hub`` starts a private hub with special flags or ``HUB_LIMIT_*``
settings, stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

from tests.support.hub_process import TEST_SECRET, HubProcess

# The module hub's limits: the fan-out test's moderator announces 100 notices in a burst, more
# than the default per-connection burst (60) allows a person.
SHARED_HUB_ENV = {"HUB_LIMIT_CONNECTION_BURST": "150", "HUB_LIMIT_USER_BURST": "300"}

StartHub = Callable[..., HubProcess]


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
