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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per reason tests were skipped (``needs Chromium ...: apt-get install chromium``)
    with how many it skipped, instead of pytest's line per test (``-r`` leaves ``s`` out)."""
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        counts[reason] = counts.get(reason, 0) + 1
    if not counts:
        return
    terminalreporter.write_sep("=", "skipped")
    for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.write_line(f"{count:4d} skipped: {reason}")
