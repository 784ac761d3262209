"""Polls as pure data and rules: validation of ``poll.create`` and ``poll.vote`` fields, who may
vote and see a tally, and the tally throttle. No I/O: time is always passed in. The options'
own rules (texts and profiles) are :mod:`polls.options`.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Generic, TypeVar

from hub import fields
from polls.options import OptionProfile, parse_options
from polls.wire import PollMap, PollTallyEvent

MAX_QUESTION: Final = 300
MIN_DURATION: Final = 5
MAX_DURATION: Final = 7 * 24 * 3600


class Show(enum.StrEnum):
    """When people other than moderators see a poll's tally."""

    LIVE = "live"  # as the votes come in
    CLOSED = "closed"  # once the poll is closed
    NEVER = "never"  # moderators only


class PollState(enum.StrEnum):
    """A poll takes ballots while open; closing is final."""

    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll's facts; its ballots and tally live in the broker.

    ``multi`` is False (single choice: one option per ballot), True (any number of options) or an
    int ``n`` with ``2 <= n < len(options)`` (at most ``n`` options per ballot); :func:`parse_poll`
    normalises every other spelling to one of these. A closed poll keeps its final tally in
    ``counts`` and ``voters`` (None while open, and for polls closed before it was kept).
    ``profiles`` is parallel to ``options``, or empty when no option has a profile.
    """

    id: str
    room: str
    question: str
    options: tuple[str, ...]
    multi: bool | int
    anonymous: bool
    show: Show
    allow_change: bool
    guests: bool
    created_by: str
    opened_at: float
    closes_at: float | None
    state: PollState = PollState.OPEN
    closed_at: float | None = None
    counts: tuple[int, ...] | None = None
    voters: int | None = None
    profiles: tuple[OptionProfile, ...] = ()

    @property
    def is_multi(self) -> bool:
        """True when a ballot is a list of options rather than one option."""
        return self.multi is not False

    @property
    def max_choices(self) -> int:
        """The most options one ballot may pick (1 for single choice)."""
        if self.multi is False:
            return 1
        if self.multi is True:
            return len(self.options)
        return min(self.multi, len(self.options))

    def profile_of(self, index: int) -> OptionProfile:
        """The profile of option ``index`` (a blank one when the poll has none)."""
        return self.profiles[index] if self.profiles else OptionProfile()

    def describe(self) -> PollMap:
        """The poll as the contract shows it: ``{id, question, options, profiles?, multi,
        anonymous, show, allow_change, guests, state, closes_at?}`` (``profiles`` only when an
        option has one; ``closes_at`` only when the poll has a duration; ``allow_change`` and
        ``guests`` are this hub's additions, so that a ballot can say whether a vote may be
        changed and whether guests may vote)."""
        described: PollMap = {
            "id": self.id,
            "question": self.question,
            "options": list(self.options),
            "multi": self.multi,
            "anonymous": self.anonymous,
            "show": self.show.value,
            "allow_change": self.allow_change,
            "guests": self.guests,
            "state": self.state.value,
        }
        if self.profiles:
            described["profiles"] = [profile.describe() for profile in self.profiles]
        if self.closes_at is not None:
            described["closes_at"] = self.closes_at
        return described

    def to_record(self) -> dict[str, Any]:
        """Every field as a plain map (str, bool, int, float, None, lists) to store and share
        between nodes; :meth:`from_record` restores an equal Poll."""
        return {
            "id": self.id,
            "room": self.room,
            "question": self.question,
            "options": list(self.options),
            "multi": self.multi,
            "anonymous": self.anonymous,
            "show": self.show.value,
            "allow_change": self.allow_change,
            "guests": self.guests,
            "created_by": self.created_by,
            "opened_at": self.opened_at,
            "closes_at": self.closes_at,
            "state": self.state.value,
            "closed_at": self.closed_at,
            "counts": list(self.counts) if self.counts is not None else None,
            "voters": self.voters,
            "profiles": [profile.describe() for profile in self.profiles],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Poll:
        """The inverse of :meth:`to_record` (raises KeyError or ValueError on a foreign map)."""
        closes_at = record["closes_at"]
        closed_at = record.get("closed_at")
        counts = record.get("counts")
        voters = record.get("voters")
        profiles = record.get("profiles") or ()
        return cls(
            id=str(record["id"]),
            room=str(record["room"]),
            question=str(record["question"]),
            options=tuple(str(option) for option in record["options"]),
            multi=_record_multi(record["multi"]),
            anonymous=bool(record["anonymous"]),
            show=Show(record["show"]),
            allow_change=bool(record["allow_change"]),
            guests=bool(record["guests"]),
            created_by=str(record["created_by"]),
            opened_at=float(record["opened_at"]),
            closes_at=float(closes_at) if closes_at is not None else None,
            state=PollState(record.get("state", PollState.OPEN)),
            closed_at=float(closed_at) if closed_at is not None else None,
            counts=tuple(int(count) for count in counts) if counts is not None else None,
            voters=int(voters) if voters is not None else None,
            profiles=tuple(OptionProfile.from_map(profile) for profile in profiles),
        )

    def closed(self, at: float, counts: list[int] | None = None, voters: int | None = None) -> Poll:
        """A copy of this poll in state ``closed``, closed at ``at``, with its final tally when
        given."""
        return replace(
            self,
            state=PollState.CLOSED,
            closed_at=at,
            counts=tuple(counts) if counts is not None else None,
            voters=voters,
        )

    def due(self, now: float) -> bool:
        """True when the poll is open and its duration has run out at ``now``."""
        return self.state is PollState.OPEN and self.closes_at is not None and now >= self.closes_at


def _record_multi(value: object) -> bool | int:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    raise ValueError(f"multi must be a bool or an int, not {value!r}")


# --- poll.create ---------------------------------------------------------------------------------


def normalise_multi(value: object, option_count: int) -> bool | int:
    """``multi`` as a Poll holds it: False or 1 -> False (single choice); True, 0 or a number at
    least ``option_count`` -> True (any number); 2 .. option_count - 1 stays. ``bad_request`` for
    anything else (negative numbers, non-integers)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if not isinstance(value, int):
        raise fields.bad("multi", "must be true, false or the most options one ballot may pick")
    if value < 0:
        raise fields.bad("multi", "must not be negative")
    if value == 1:
        return False
    if value == 0 or value >= option_count:
        return True
    return value


@dataclass(frozen=True, slots=True)
class PollSpec:
    """A poll as asked for, before it opens: what ``poll.create`` or a ``[[polls]]`` entry of
    the rooms file says (``duration`` in seconds, None for none)."""

    question: str
    options: tuple[str, ...]
    profiles: tuple[OptionProfile, ...]
    multi: bool | int
    anonymous: bool
    show: Show
    allow_change: bool
    guests: bool
    duration: float | None

    def opened(self, *, poll_id: str, room: str, created_by: str, now: float) -> Poll:
        """The open poll ``poll_id`` of ``room`` this spec makes, opened at ``now`` by
        ``created_by`` (``closes_at = now + duration`` when it has one)."""
        return Poll(
            id=poll_id,
            room=room,
            question=self.question,
            options=self.options,
            multi=self.multi,
            anonymous=self.anonymous,
            show=self.show,
            allow_change=self.allow_change,
            guests=self.guests,
            created_by=created_by,
            opened_at=now,
            closes_at=now + self.duration if self.duration is not None else None,
            profiles=self.profiles,
        )


def parse_spec(cmd: Mapping[str, Any]) -> PollSpec:
    """Validate the fields of a poll to open.

    ``question``: a :func:`hub.fields.line` of at most :data:`MAX_QUESTION` characters.
    ``options``: 2 to 20 options, each a text or a map with a profile
    (:func:`polls.options.parse_options`), no two with the same text.
    ``multi`` (default false; see :func:`normalise_multi`), ``anonymous`` (true), ``show``
    (``live``), ``allow_change`` (true), ``guests`` (true);
    ``duration`` (optional): :data:`MIN_DURATION` to :data:`MAX_DURATION` seconds. A field
    given as null takes its default; other fields (the envelope's ``room``, ``op`` ...) are
    ignored. Raises ``bad_request`` whose message starts with the name of the first wrong field
    (``too_large`` for an option's description past its length).
    """
    if "question" not in cmd:
        raise fields.bad("question", "is required")
    question = fields.line(cmd["question"], "question", MAX_QUESTION)
    if "options" not in cmd:
        raise fields.bad("options", "is required")
    options, profiles = parse_options(cmd["options"])
    multi = normalise_multi(cmd.get("multi"), len(options))
    anonymous = fields.flag(cmd.get("anonymous"), "anonymous", True)
    show_value = cmd.get("show")
    show = Show.LIVE if show_value is None else fields.choice(show_value, "show", Show)
    duration = fields.optional_number(cmd.get("duration"), "duration", MIN_DURATION, MAX_DURATION)
    return PollSpec(
        question=question,
        options=options,
        profiles=profiles,
        multi=multi,
        anonymous=anonymous,
        show=show,
        allow_change=fields.flag(cmd.get("allow_change"), "allow_change", True),
        guests=fields.flag(cmd.get("guests"), "guests", True),
        duration=duration,
    )


def parse_poll(
    cmd: Mapping[str, Any], *, poll_id: str, room: str, created_by: str, now: float
) -> Poll:
    """Validate ``poll.create`` fields (:func:`parse_spec`) into an open Poll opened at
    ``now``."""
    return parse_spec(cmd).opened(poll_id=poll_id, room=room, created_by=created_by, now=now)


# --- poll.vote -----------------------------------------------------------------------------------


def parse_choice(poll: Poll, choice: object) -> list[int]:
    """``poll.vote``'s ``choice`` as the ballot to store: for single choice an option index
    (``[i]``); for ``multi`` a non-empty list of distinct indexes, at most
    :attr:`Poll.max_choices` of them (sorted). ``bad_request`` for anything else."""
    last = len(poll.options) - 1
    if not poll.is_multi:
        return [fields.integer(choice, "choice", 0, last)]
    return fields.int_set(choice, "choice", 0, last, poll.max_choices)


def ballot_as_sent(poll: Poll, ballot: list[int] | None) -> int | list[int] | None:
    """A stored ballot the way the voter sends it (``mine`` of ``poll.get``): an index for
    single choice, a list for ``multi``, None before voting."""
    if ballot is None:
        return None
    if poll.is_multi:
        return list(ballot)
    return ballot[0] if ballot else None


# --- who may do what -----------------------------------------------------------------------------


def may_see_tally(poll: Poll, role_is_moderator: bool) -> bool:
    """Moderators always see counts; others per ``show``: ``live`` always, ``closed`` once the
    poll is closed, ``never`` not at all."""
    if role_is_moderator or poll.show is Show.LIVE:
        return True
    if poll.show is Show.CLOSED:
        return poll.state is PollState.CLOSED
    return False


def may_vote(poll: Poll, is_guest: bool) -> bool:
    """Signed-in users may vote; guests only where the poll lets them (``guests``). Whether the
    poll is still open is the broker's atomic check, not this one."""
    return poll.guests or not is_guest


def newest_closed(polls: Iterable[Poll], limit: int) -> list[Poll]:
    """The newest ``limit`` closed polls among ``polls``, oldest first (by closing time, then
    id)."""
    closed = sorted(
        (poll for poll in polls if poll.state is PollState.CLOSED),
        key=lambda poll: (poll.closed_at or 0.0, poll.id),
    )
    return closed[-limit:] if limit > 0 else []


def closed_view(poll: Poll, role_is_moderator: bool) -> PollMap:
    """A closed poll as the join snapshot's ``closed_polls`` shows it: the poll as its closing
    ``poll`` event carries it, with ``counts`` and ``voters`` where the viewer may see them
    (:func:`may_see_tally`) and the final tally is known."""
    view = poll.describe()
    if may_see_tally(poll, role_is_moderator) and poll.counts is not None:
        view["counts"] = list(poll.counts)
        view["voters"] = poll.voters
    return view


def tally_event(poll: Poll, counts: list[int], voters: int) -> PollTallyEvent:
    """The ``poll.tally`` event: ``{ev, room, poll, counts, voters}``."""
    return {
        "ev": "poll.tally",
        "room": poll.room,
        "poll": poll.id,
        "counts": list(counts),
        "voters": voters,
    }


K = TypeVar("K", bound=Hashable)

# --- the tally throttle --------------------------------------------------------------------------


@dataclass(slots=True)
class _Track:
    pending: bool = False
    # Release times still inside the last second (at most per_second of them).
    releases: collections.deque[float] = field(default_factory=collections.deque)


class TallyThrottle(Generic[K]):
    """Decides when to send each poll's tally: at most ``per_second`` releases of a poll in any
    one-second window, and always one release after the poll's last change.

    Pure and clock-injected: the caller reports changes with :meth:`owe` and asks
    :meth:`due` which polls to send now, passing a clock that never goes back. A change is
    released by the first :meth:`due` call at or after ``max(change time, the poll's
    per_second-th latest release + 1 s)``, at the latest by one at ``change time + 1 s``, so a
    caller that asks on a timer of period ``p`` sends each change within ``1 s + p``. Nothing is
    released without a change since the poll's previous release.
    """

    def __init__(self, per_second: int = 4) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        self.per_second = per_second
        self._polls: dict[K, _Track] = {}

    def __len__(self) -> int:
        return len(self._polls)

    def owe(self, poll_id: K, now: float) -> None:
        """``poll_id``'s tally changed at ``now``: a release is owed."""
        track = self._polls.get(poll_id)
        if track is None:
            track = self._polls[poll_id] = _Track()
        track.pending = True

    def due(self, now: float) -> list[K]:
        """The polls whose tally to send now (each counted as released at ``now``)."""
        released: list[K] = []
        for poll_id, track in list(self._polls.items()):
            self._expire(track, now)
            if track.pending and len(track.releases) < self.per_second:
                track.pending = False
                track.releases.append(now)
                released.append(poll_id)
            elif not track.pending and not track.releases:
                del self._polls[poll_id]
        return released

    def forget(self, poll_id: K) -> None:
        """Drop ``poll_id`` (a closed poll sends its final counts otherwise)."""
        self._polls.pop(poll_id, None)

    @staticmethod
    def _expire(track: _Track, now: float) -> None:
        # A release at r counts until r + 1 s; written as r + 1.0 <= now (not now - r >= 1.0),
        # so a call at exactly r + 1.0 finds the window open despite float rounding.
        while track.releases and track.releases[0] + 1.0 <= now:
            track.releases.popleft()
