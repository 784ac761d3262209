"""The ballot box of the polls: every poll's ballots (one per user) and tally, shared by every
node, with one atomic step per ballot.

Two implementations, picked by :func:`ballot_box` for the node's store: on a memory store
(:mod:`polls.ballots_memory`, in the memory backend that the process's nodes share) and on a
Redis store (:mod:`polls.ballots_redis`, a Lua script under the store's keys). Guarantees both
give (checked by ``tests/contract/test_ballots.py``):

* :meth:`BallotBox.cast` reads the closed marker and the user's previous ballot, moves the tally
  from the previous ballot to the new one and stores it, in one atomic step: concurrent ballots
  of one user on several nodes count once, and nothing is counted once the marker is set.
* The tally counts every option of every stored ballot, and ``voters`` the people who voted
  (a multi-choice ballot counts its person once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.store import Store


@dataclass(frozen=True, slots=True)
class BallotResult:
    """What :meth:`BallotBox.cast` did: ``status`` is ``accepted``, ``conflict`` (a ballot exists
    and changes are not allowed) or ``closed`` (the poll's closed marker is set); ``previous`` is
    the user's ballot before this call; ``counts`` and ``voters`` are the tally after it."""

    status: str
    previous: list[int] | None
    counts: list[int]
    voters: int


class BallotBox(Protocol):
    """The ballots and tallies of every poll (see the module docstring for the guarantees)."""

    async def cast(
        self,
        poll: str,
        user: str,
        choice: Sequence[int],
        *,
        options: int,
        allow_change: bool,
        closed_key: str,
    ) -> BallotResult:
        """Cast ``user``'s ballot in ``poll`` in one atomic step: refuse it when the store key
        ``closed_key`` exists (``closed``) or when the user voted already and changes are not
        allowed (``conflict``); else replace the user's previous ballot and move the tally with
        it. ``choice`` holds distinct option indexes below ``options`` (validated by the
        caller). Raises :class:`~hub.broker.BrokerUnavailable` when the store cannot serve."""

    async def tally(self, poll: str, options: int) -> tuple[list[int], int]:
        """``(counts, voters)`` of ``poll``: one count per option (the first ``options``), and
        the people who voted."""

    async def ballot_of(self, poll: str, user: str) -> list[int] | None:
        """``user``'s ballot in ``poll`` (option indexes), or None."""


def ballot_box(store: Store) -> BallotBox:
    """The ballot box kept beside ``store``'s data, shared by every node whose store shares it
    (the Redis implementation is imported only for a Redis store)."""
    from hub.memory.store import MemoryStore

    if isinstance(store, MemoryStore):
        from polls.ballots_memory import MemoryBallotBox

        return MemoryBallotBox(store.backend)
    from hub.redis.store import RedisStore

    if isinstance(store, RedisStore):
        from polls.ballots_redis import RedisBallotBox

        return RedisBallotBox(store.connection)
    raise TypeError(f"no ballot box for {type(store).__name__}")


def encode_ballot(choice: Sequence[int]) -> str:
    """A ballot as stored: option indexes joined by commas (``"0,2"``)."""
    return ",".join(str(index) for index in choice)


def decode_ballot(stored: bytes) -> list[int]:
    """The inverse of :func:`encode_ballot`."""
    return [int(part) for part in stored.split(b",") if part]
