"""The ballot box on a memory store: the ballots live in the memory backend that the process's
nodes share, so they share ballots as they share everything else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hub.memory.backend import MemoryBackend
from polls.ballots import BallotResult

# The entry of MemoryBackend.shared that holds the ballots.
_SHARED_KEY = "polls.ballots"


@dataclass(slots=True)
class _PollBallots:
    ballots: dict[str, list[int]] = field(default_factory=dict)
    # option index -> count
    counts: dict[int, int] = field(default_factory=dict)


class MemoryBallotBox:
    """Implements :class:`polls.ballots.BallotBox` in a :class:`~hub.memory.backend.MemoryBackend`.
    Each call runs without awaiting from its first read to its last write, which makes it atomic
    on the one event loop the memory backend serves."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        polls = backend.shared.setdefault(_SHARED_KEY, {})
        assert isinstance(polls, dict)
        self._polls: dict[str, _PollBallots] = polls

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
        """Cast ``user``'s ballot (see :meth:`polls.ballots.BallotBox.cast`)."""
        state = self._polls.setdefault(poll, _PollBallots())
        previous = state.ballots.get(user)
        if self.backend.value(closed_key) is not None:
            status = "closed"
        elif previous is not None and not allow_change:
            status = "conflict"
        else:
            status = "accepted"
            counts = state.counts
            for index in previous or ():
                counts[index] = counts.get(index, 0) - 1
            for index in choice:
                counts[index] = counts.get(index, 0) + 1
            state.ballots[user] = list(choice)
        tally, voters = self._tally(poll, options)
        return BallotResult(status, list(previous) if previous is not None else None, tally, voters)

    async def tally(self, poll: str, options: int) -> tuple[list[int], int]:
        """``(counts, voters)`` of ``poll``."""
        return self._tally(poll, options)

    async def ballot_of(self, poll: str, user: str) -> list[int] | None:
        """``user``'s ballot in ``poll``, or None."""
        state = self._polls.get(poll)
        ballot = state.ballots.get(user) if state is not None else None
        return list(ballot) if ballot is not None else None

    def _tally(self, poll: str, options: int) -> tuple[list[int], int]:
        state = self._polls.get(poll)
        if state is None:
            return [0] * max(options, 0), 0
        return [state.counts.get(index, 0) for index in range(options)], len(state.ballots)
