"""Where the match queue keeps its state in the shared :class:`~hub.store.Store`: the key names,
and the small reads and writes every node makes of the queue and the meetings.

* ``match:queue`` — a hash: user -> their packed entry ``{sid, node, name, interests, since}``
  (one entry per user). A group leaves it with one ``hash_take``: all its members or none.
* ``match:size`` — how many people waited at the matcher's last round (what ``match.join``
  compares with :data:`MAX_QUEUE`).
* ``match:matcher`` — the node that runs the rounds (a lease with a ttl, renewed by its holder).
* ``match:met:<user>`` — a set: the users ``user`` met in a meeting (never paired again).
* ``match:meetings`` — a hash: room -> the packed :class:`~networking.match_meeting.Meeting`,
  kept until :data:`~networking.match_meeting.CARDS_WINDOW` after its end.
* ``match:current`` — a hash: user -> the room of their running meeting.
* per meeting: ``match:extend:<room>`` (a set of who asked), ``match:extended:<room>`` (the
  claim of the one extension: the new end), ``match:ended:<room>`` (the claim of the end:
  ``{reason, by, at}``), ``match:gone:<room>`` (a set: who left a meeting of three),
  ``match:cards:<room>`` (a hash: user -> card) and ``match:cards-sent:<room>`` (the claim of
  the exchange).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from hub.codec import pack, unpack
from hub.store import Store
from networking.match_meeting import CARDS_WINDOW, Meeting
from networking.matching import Waiting

QUEUE: Final = "match:queue"
SIZE: Final = "match:size"
LEASE: Final = "match:matcher"
MEETINGS: Final = "match:meetings"
CURRENT: Final = "match:current"
# The most people the queue holds: match.join is refused with conflict beyond (as of the last
# round), and a round looks at the oldest this many only.
MAX_QUEUE: Final = 5000
# How long the end claim of a meeting lives: past the cards window, when the meeting goes.
ENDED_TTL: Final = CARDS_WINDOW + 300.0


def met_key(user: str) -> str:
    """The set of the users ``user`` met."""
    return f"match:met:{user}"


def extend_key(room: str) -> str:
    """The set of the members who asked to extend ``room``'s meeting."""
    return f"match:extend:{room}"


def extended_key(room: str) -> str:
    """The claim of ``room``'s one extension (its value: the new end)."""
    return f"match:extended:{room}"


def ended_key(room: str) -> str:
    """The claim of ``room``'s end (its value: ``{reason, by, at}``)."""
    return f"match:ended:{room}"


def gone_key(room: str) -> str:
    """The set of the members who left ``room``'s meeting of three early."""
    return f"match:gone:{room}"


def cards_key(room: str) -> str:
    """The hash of the cards ``room``'s members shared (user -> card)."""
    return f"match:cards:{room}"


def cards_sent_key(room: str) -> str:
    """The claim of ``room``'s card exchange."""
    return f"match:cards-sent:{room}"


def meeting_keys(room: str) -> list[str]:
    """Every key of one meeting (removed once its cards window is over)."""
    return [
        extend_key(room),
        extended_key(room),
        ended_key(room),
        gone_key(room),
        cards_key(room),
        cards_sent_key(room),
    ]


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One person's place in the queue: the session that joined (and its node), their name,
    interests and when they joined (epoch seconds)."""

    user: str
    sid: str
    node: str
    name: str
    interests: tuple[str, ...]
    since: float

    def pack(self) -> bytes:
        """The entry as the queue hash keeps it."""
        return pack(
            {
                "sid": self.sid,
                "node": self.node,
                "name": self.name,
                "interests": list(self.interests),
                "since": self.since,
            }
        )

    @classmethod
    def unpack(cls, user: str, raw: bytes) -> QueueEntry:
        """The inverse of :meth:`pack`."""
        record: dict[str, Any] = unpack(raw)
        return cls(
            user=user,
            sid=record["sid"],
            node=record["node"],
            name=record["name"],
            interests=tuple(record["interests"]),
            since=record["since"],
        )

    def waiting(self) -> Waiting:
        """The entry as the pairing rules see it."""
        return Waiting(self.user, self.since, frozenset(self.interests))


@dataclass(frozen=True, slots=True)
class Ended:
    """How a meeting ended: ``time``, ``left`` (``by`` ended it) or ``event_closed``, and when
    (epoch seconds)."""

    reason: str
    by: str | None
    at: float


async def read_meeting(store: Store, room: str) -> Meeting | None:
    """The meeting of ``room``, or None (none was made, or it is gone)."""
    raw = await store.hash_get(MEETINGS, room)
    return Meeting.from_record(unpack(raw)) if raw is not None else None


async def read_ended(store: Store, room: str) -> Ended | None:
    """How ``room``'s meeting ended, or None while it runs."""
    raw = await store.get(ended_key(room))
    if raw is None:
        return None
    record: dict[str, Any] = unpack(raw)
    return Ended(record["reason"], record.get("by"), record["at"])


async def claim_end(store: Store, meeting: Meeting, ended: Ended) -> Ended | None:
    """End ``meeting`` once: None when this call ended it, else the end already there. The
    claim outlives the meeting's latest possible end (planned, plus one extension) by
    :data:`ENDED_TTL`: a meeting ended early must stay ended until the sweep forgets it."""
    record = {"reason": ended.reason, "by": ended.by, "at": ended.at}
    latest_end = meeting.ends_at + meeting.length
    ttl = max(ENDED_TTL, latest_end - ended.at + ENDED_TTL)
    raw = await store.set_if_absent(ended_key(meeting.room), pack(record), ttl=ttl)
    if raw is None:
        return None
    earlier: dict[str, Any] = unpack(raw)
    return Ended(earlier["reason"], earlier.get("by"), earlier["at"])


async def current_end(store: Store, meeting: Meeting) -> float:
    """Where the meeting ends as it stands: its extension's end, else the planned one."""
    raw = await store.get(extended_key(meeting.room))
    return float(raw.decode()) if raw is not None else meeting.ends_at
