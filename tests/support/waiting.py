"""Waiting for states that nothing notifies about, with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    within: float = 5.0,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` (sync or async) until it holds, for states nothing notifies about
    (expiry, readiness, a flag a library sets); fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached in {within}s")
        await asyncio.sleep(interval)  # the poll interval, not synchronisation


def until(
    condition: Callable[[], bool],
    within: float = 5.0,
    what: str = "condition",
    interval: float = 0.1,
) -> None:
    """:func:`eventually` for synchronous tests (Playwright's): poll ``condition`` until it
    holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached in {within}s")
        time.sleep(interval)  # the poll interval, not synchronisation
