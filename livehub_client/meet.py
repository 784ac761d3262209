""" "Meet someone" from Python: wait in the hub's match queue until it pairs you::

    match = await meet(client, interests=["python"])   # match.join, then match.found
    await client.request("join", room=match.room)
    ...
    await client.request("match.end", room=match.room)

The commands themselves are plain requests (``match.join``, ``match.leave``, ``match.extend``,
``match.end``, ``match.share``; see the protocol's "Meet someone"); this module adds the one
flow that needs waiting: joining the queue and being paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Match", "meet", "wait_for_match"]


class _Client(Protocol):
    async def request(self, op: str, **fields: Any) -> dict[str, Any]: ...

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]: ...  # noqa: ASYNC109


@dataclass(frozen=True, slots=True)
class Match:
    """A meeting the hub made: its room, the other members (``{user, name}``) and its end
    (epoch seconds)."""

    room: str
    others: list[dict[str, str]]
    ends_at: float


async def wait_for_match(client: _Client, timeout: float = 60.0) -> Match:  # noqa: ASYNC109
    """The next ``match.found`` the client gets, as a :class:`Match`; ``TimeoutError`` after
    ``timeout`` seconds. A ``match.left`` (the queue was emptied: the event is over) raises
    :class:`LookupError` with its reason."""
    event = await client.wait_for(lambda ev: ev.get("ev") in ("match.found", "match.left"), timeout)
    if event["ev"] == "match.left":
        raise LookupError(f"left the match queue: {event.get('reason')}")
    return Match(event["room"], list(event["with"]), event["ends_at"])


async def meet(
    client: _Client,
    interests: Sequence[str] = (),
    timeout: float = 60.0,  # noqa: ASYNC109
) -> Match:
    """Join the match queue (with ``interests``) and wait until the hub pairs the client (see
    :func:`wait_for_match`); the queue's errors raise as the client's request errors do."""
    await client.request("match.join", interests=list(interests))
    return await wait_for_match(client, timeout)
