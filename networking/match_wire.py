"""The wire shapes of the match queue (``docs/protocol.md``: Meet someone): the replies of its
ops and the events it sends to the people in it. None is stored in a room: every event goes to
a user (all their sessions)."""

# Annotations are evaluated here (no ``from __future__ import annotations``): on Python 3.11
# TypedDict reads ``NotRequired`` into ``__required_keys__`` only from evaluated ones.

from typing import Literal, NotRequired, TypedDict


class MatchPartner(TypedDict):
    """A member of a meeting: ``{user, name}``."""

    user: str
    name: str


class Card(TypedDict):
    """A contact card: ``{user, name, organisation?, email?, link?}``."""

    user: str
    name: str
    organisation: NotRequired[str]
    email: NotRequired[str]
    link: NotRequired[str]


class MatchJoinReply(TypedDict):
    """``match.join`` -> ``{interests, waiting}``: the interests as kept, and how many people
    were waiting at the matcher's last round."""

    interests: list[str]
    waiting: int


# ``with`` is a Python keyword: these two are declared in TypedDict's functional form.
MeetingView = TypedDict(
    "MeetingView",
    {
        "room": str,
        "with": list[MatchPartner],
        "ends_at": float,
        "minutes": float,
        "extended": bool,
    },
)
MeetingView.__doc__ = """A running meeting as ``match.status`` and a meeting room's snapshot
show it: ``{room, with, ends_at, minutes, extended}`` (``with``: the other members; ``minutes``:
the meeting's length, what an extension adds; ``extended``: whether it was extended)."""


class MeetingPart(TypedDict):
    """A meeting room's part of the ``join`` snapshot: ``{meeting: MeetingView}``."""

    meeting: MeetingView


class MatchStatusReply(TypedDict):
    """``match.status`` -> ``{queued, meeting}``: whether the caller waits in the queue, and
    their running meeting or null."""

    queued: bool
    meeting: MeetingView | None


class MatchExtendReply(TypedDict):
    """``match.extend`` -> ``{extended, ends_at}``: whether this request completed the
    extension (every member asked), and the meeting's end as it stands."""

    extended: bool
    ends_at: float


class MatchShareReply(TypedDict):
    """``match.share`` -> ``{exchanged}``: whether every member has shared now (then each got
    ``match.cards``)."""

    exchanged: bool


MatchFoundEvent = TypedDict(
    "MatchFoundEvent",
    {
        "ev": Literal["match.found"],
        "room": str,
        "with": list[MatchPartner],
        "ends_at": float,
        "minutes": float,
    },
)
MatchFoundEvent.__doc__ = """``match.found {room, with, ends_at, minutes}``: the hub paired the
user; ``with`` are the other members, ``ends_at`` the meeting's end (epoch seconds),
``minutes`` its length (what an extension adds)."""


class MatchLeftEvent(TypedDict):
    """``match.left {reason}``: the user is out of the queue without a meeting
    (``event_closed``)."""

    ev: Literal["match.left"]
    reason: str


class MatchEndedEvent(TypedDict):
    """``match.ended {room, reason, by?}``: the meeting is over for the user (``time``,
    ``left``: ``by`` ended it, ``event_closed``); cards may still be shared for a while."""

    ev: Literal["match.ended"]
    room: str
    reason: str
    by: NotRequired[str]


class MatchMemberLeftEvent(TypedDict):
    """``match.member_left {room, user}``: in a meeting of three, one member left; the two
    others go on."""

    ev: Literal["match.member_left"]
    room: str
    user: str


class MatchExtendRequestedEvent(TypedDict):
    """``match.extend_requested {room, by}``: a member asked to extend the meeting."""

    ev: Literal["match.extend_requested"]
    room: str
    by: str


class MatchExtendedEvent(TypedDict):
    """``match.extended {room, ends_at}``: every member asked; the meeting ends later."""

    ev: Literal["match.extended"]
    room: str
    ends_at: float


class MatchCardsEvent(TypedDict):
    """``match.cards {room, cards}``: every member shared; these are the others' cards."""

    ev: Literal["match.cards"]
    room: str
    cards: list[Card]
