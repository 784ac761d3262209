"""Awaiting several calls that must all end, whatever happens to the one waiting for them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable


async def all_ended(calls: Iterable[Awaitable[object]]) -> None:
    """Run ``calls`` together and wait until every one has ended, even when the caller is
    cancelled meanwhile (the cancellation is raised after); then raise the first error (every
    call was tried)."""
    ended = asyncio.gather(*calls, return_exceptions=True)
    try:
        outcomes = await asyncio.shield(ended)
    except asyncio.CancelledError:
        await asyncio.wait([ended])
        raise
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
