"""The wire shapes of the polls feature (``docs/protocol.md``: Polls and elections, Polls): the
poll map, the replies of its ops, the events it sends, its parts of the join snapshot and the
organizers' JSON export.

Stored events come in two shapes: ``...Fields``, what the feature publishes
(:meth:`hub.node.Node.publish_event`), and ``...Event``, what members get: those fields plus
``ev``, ``room`` and ``seq`` (:class:`hub.wire.StoredFields`).
"""

# Annotations are evaluated here (no ``from __future__ import annotations``): on Python 3.11
# TypedDict reads ``NotRequired`` into ``__required_keys__`` only from evaluated ones.

from typing import Literal, NotRequired, TypedDict

from hub.wire import StoredFields


class PollMap(TypedDict):
    """The poll map, wherever a poll appears: ``{id, question, options, multi, anonymous, show,
    allow_change, guests, state, closes_at?}`` plus, where results may be shown, ``counts``
    and ``voters``."""

    id: str
    question: str
    options: list[str]
    multi: bool | int
    anonymous: bool
    show: str
    allow_change: bool
    guests: bool
    state: str
    closes_at: NotRequired[float]
    counts: NotRequired[list[int]]
    voters: NotRequired[int | None]


class PollFields(TypedDict):
    """The fields of a stored ``poll``: ``{poll}``."""

    poll: PollMap


class PollEvent(PollFields, StoredFields):
    """``poll {room, seq, poll}`` (stored): a poll opened or closed."""

    ev: Literal["poll"]


class PollReply(TypedDict):
    """``poll.create`` and ``poll.close`` -> ``{poll, seq}``, as the stored ``poll`` carries
    them."""

    poll: PollMap
    seq: int


class VisibleTally(TypedDict):
    """``counts`` and ``voters`` where the caller may see them."""

    counts: NotRequired[list[int]]
    voters: NotRequired[int]


class PollView(VisibleTally):
    """``poll.get`` -> ``{poll, counts?, voters?, mine}`` (``mine``: the caller's ballot as
    sent, null before voting); also each of the snapshot's ``polls``."""

    poll: PollMap
    mine: int | list[int] | None


class PollTallyEvent(TypedDict):
    """``poll.tally {room, poll, counts, voters}`` (ephemeral, throttled)."""

    ev: Literal["poll.tally"]
    room: str
    poll: str
    counts: list[int]
    voters: int


class PollsPart(TypedDict):
    """The join snapshot parts ``polls`` (open, as ``poll.get`` shows each) and
    ``closed_polls`` (the newest closed, as their closing ``poll`` events carry them)."""

    polls: list[PollView]
    closed_polls: list[PollMap]


class ExportedPoll(PollMap):
    """The export's poll map, with when it opened and closed (unix seconds; null while open)."""

    opened_at: float
    closed_at: float | None


class OptionCount(TypedDict):
    """One option's line in the export: ``{option, count}``."""

    option: str
    count: int


class PollExport(TypedDict):
    """``GET /api/rooms/{room}/polls/{poll}`` -> ``{poll, counts, voters, options}``."""

    poll: ExportedPoll
    counts: list[int]
    voters: int
    options: list[OptionCount]
