"""Settings shared by every tier of the suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings
from support.redis_server import RedisServer

# One timeout unit for every wait in the tests, scalable on slow machines.
TIMEOUT = 10.0 * float(os.environ.get("HUB_TEST_TIMEOUT_SCALE", "1"))

settings.register_profile("hub", deadline=None, max_examples=200)
settings.load_profile("hub")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private Redis server for the whole run (never the machine's shared one), started on a
    free port; tests that need a clean one flush it."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()
