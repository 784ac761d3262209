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


class OptionProfileMap(TypedDict, total=False):
    """An option's profile: the keys it has among ``{description, organisation, country,
    image}`` (none for an option without one)."""

    description: str
    organisation: str
    country: str
    image: str


class PollMap(TypedDict):
    """The poll map, wherever a poll appears: ``{id, question, options, profiles?, multi,
    anonymous, show, allow_change, guests, state, closes_at?}`` (``profiles`` parallel to
    ``options``, only when an option has a profile) plus, where results may be shown,
    ``counts`` and ``voters``."""

    id: str
    question: str
    options: list[str]
    profiles: NotRequired[list[OptionProfileMap]]
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


class AwardPoll(TypedDict):
    """A poll the rooms file declares, as ``awards`` lists it: ``{id, question, options,
    profiles?, state}``, ``state`` ``declared`` (not opened yet), ``open`` or ``closed``."""

    id: str
    question: str
    options: list[str]
    profiles: NotRequired[list[OptionProfileMap]]
    state: str


class PartnershipMap(TypedDict):
    """A partnership of the year: ``{title, members, text?, link?}``."""

    title: str
    members: list[str]
    text: NotRequired[str]
    link: NotRequired[str]


class AwardsMap(TypedDict):
    """The join snapshot's ``awards``: ``{polls, partnerships}``."""

    polls: list[AwardPoll]
    partnerships: list[PartnershipMap]


class PollsPart(TypedDict):
    """The join snapshot parts ``polls`` (open, as ``poll.get`` shows each), ``closed_polls``
    (the newest closed, as their closing ``poll`` events carry them) and, in the lobby and in
    rooms the rooms file declares polls for, ``awards``."""

    polls: list[PollView]
    closed_polls: list[PollMap]
    awards: NotRequired[AwardsMap]


class ExportedPoll(PollMap):
    """The export's poll map, with when it opened and closed (unix seconds; null while open)."""

    opened_at: float
    closed_at: float | None


class OptionCount(OptionProfileMap):
    """One option's line in the export: ``{option, count}`` and the option's profile keys."""

    option: str
    count: int


class PollExport(TypedDict):
    """``GET /api/rooms/{room}/polls/{poll}`` -> ``{poll, counts, voters, options}``."""

    poll: ExportedPoll
    counts: list[int]
    voters: int
    options: list[OptionCount]
