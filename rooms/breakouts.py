"""Breakout rounds as pure data and rules: validation of ``breakout.open`` fields, the random
deal of people to rooms, the round as stored and shared, and who may enter which child room.
No I/O: time and randomness are always passed in.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from hub import fields
from hub.errors import HubError
from rooms.wire import RoundView

MAX_BREAKOUTS: Final = 50
MAX_BREAKOUT_TITLE: Final = 80
MIN_BREAKOUT_DURATION: Final = 1  # seconds
MAX_BREAKOUT_DURATION: Final = 24 * 3600
MAX_ASSIGNMENTS: Final = 10_000


class Assign(enum.StrEnum):
    """How people are placed in the child rooms of a round."""

    RANDOM = "random"  # dealt evenly at random by the hub
    MANUAL = "manual"  # as the moderator's ``assignments`` say
    SELF = "self"  # everyone picks a room


def child_ids(parent: str, count: int) -> tuple[str, ...]:
    """The ids of ``count`` children of ``parent``: ``{parent}.b1`` ... ``{parent}.b{count}``."""
    return tuple(f"{parent}.b{number}" for number in range(1, count + 1))


@dataclass(frozen=True, slots=True)
class BreakoutPlan:
    """What ``breakout.open`` asked for, validated by :func:`parse_breakout_open`.

    ``titles`` holds one title per child, in child order. ``assignments`` (user id -> child id)
    is empty unless ``assign`` is MANUAL; it is copied into a read-only mapping on construction
    and takes no part in the hash. ``include_moderators`` asks a random deal to place the
    parent's moderators too; ``move``, that the hub moves assigned sessions into their rooms.
    """

    parent: str
    titles: tuple[str, ...]
    assign: Assign
    assignments: Mapping[str, str] = field(hash=False)
    duration: float | None
    include_moderators: bool
    move: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "assignments", MappingProxyType(dict(self.assignments)))

    @property
    def children(self) -> tuple[str, ...]:
        """The child room ids, ``({parent}.b1, {parent}.b2, ...)``, one per title."""
        return child_ids(self.parent, len(self.titles))


# --- breakout.open -------------------------------------------------------------------------------


def _titles(cmd: Mapping[str, Any]) -> tuple[str, ...]:
    count, titles = cmd.get("count"), cmd.get("titles")
    if (count is None) == (titles is None):
        raise fields.bad("count", "give either count or titles, exactly one of them")
    if count is not None:
        count = fields.integer(count, "count", 1, MAX_BREAKOUTS)
        return tuple(f"Room {number}" for number in range(1, count + 1))
    return tuple(
        fields.line(item, f"titles[{index}]", MAX_BREAKOUT_TITLE)
        for index, item in enumerate(fields.items(titles, "titles", 1, MAX_BREAKOUTS))
    )


def _check_children(parent: str, children: Sequence[str]) -> None:
    for child in children:
        try:
            fields.room_id(child)
        except HubError:
            raise fields.bad(
                "room", f"{parent!r} is too long to hold {len(children)} breakouts ({child!r})"
            ) from None


def _assignments(value: object, children: Sequence[str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise fields.bad("assignments", "must be a map of user id to breakout")
    if not value:
        raise fields.bad("assignments", "must assign at least one user")
    if len(value) > MAX_ASSIGNMENTS:
        raise fields.bad("assignments", f"must hold at most {MAX_ASSIGNMENTS} users")
    known = frozenset(children)
    normalised: dict[str, str] = {}
    for raw_user, target in value.items():
        user = fields.user_id(raw_user, "assignments")
        if isinstance(target, str) and target in known:
            normalised[user] = target
        elif (
            isinstance(target, int)
            and not isinstance(target, bool)
            and 1 <= target <= len(children)
        ):
            normalised[user] = children[target - 1]
        else:
            raise fields.bad(
                f"assignments[{user!r}]",
                f"must be a breakout number from 1 to {len(children)} or its id",
            )
    return normalised


def parse_breakout_open(parent: str, cmd: Mapping[str, Any]) -> BreakoutPlan:
    """Validate ``breakout.open`` fields into a plan for breakouts of ``parent`` (the caller
    validated the command's ``room`` into it; other fields such as ``op`` are ignored).

    Exactly one of ``count`` (an integer 1 to :data:`MAX_BREAKOUTS`; titles ``Room 1``,
    ``Room 2`` ...) and ``titles`` (a list of 1 to :data:`MAX_BREAKOUTS` strings, each a
    :func:`hub.fields.line` of at most :data:`MAX_BREAKOUT_TITLE` characters). The child ids
    must be valid room ids, so ``parent`` must be short enough to carry the ``.b<n>`` suffixes.
    ``assign``: ``random``, ``manual`` or ``self``. ``assignments``: with ``manual`` only, and
    then required: a non-empty map of at most :data:`MAX_ASSIGNMENTS` user ids
    (:func:`hub.fields.user_id`) to a child number (1 to N) or child id, normalised to child
    ids. ``duration`` (optional): :data:`MIN_BREAKOUT_DURATION` to
    :data:`MAX_BREAKOUT_DURATION` seconds. ``moderators`` (optional, default false): a random
    deal places moderators too. ``move`` (optional, default false): the hub puts each assigned
    session that is in the parent into its room. A field given as null counts as absent.
    Raises ``bad_request`` whose message starts with the name of the first wrong field.
    """
    titles = _titles(cmd)
    children = child_ids(parent, len(titles))
    _check_children(parent, children)
    if cmd.get("assign") is None:
        raise fields.bad("assign", "is required (random, manual or self)")
    assign = fields.choice(cmd["assign"], "assign", Assign)
    raw_assignments = cmd.get("assignments")
    assignments: dict[str, str] = {}
    if assign is Assign.MANUAL:
        if raw_assignments is None:
            raise fields.bad("assignments", "is required when assign is manual")
        assignments = _assignments(raw_assignments, children)
    elif raw_assignments is not None:
        raise fields.bad("assignments", "only go with assign manual")
    duration = fields.optional_number(
        cmd.get("duration"), "duration", MIN_BREAKOUT_DURATION, MAX_BREAKOUT_DURATION
    )
    moderators = fields.flag(cmd.get("moderators"), "moderators", False)
    move = fields.flag(cmd.get("move"), "move", False)
    return BreakoutPlan(
        parent=parent,
        titles=titles,
        assign=assign,
        assignments=assignments,
        duration=duration,
        include_moderators=moderators,
        move=move,
    )


def assign_random(
    users: Iterable[str], children: Sequence[str], rng: random.Random
) -> dict[str, str]:
    """Place every distinct user in exactly one of ``children``: room sizes differ by at most
    one. The same users (in any order) and the same ``rng`` state give the same placement.
    No users give ``{}``; users without children raise ValueError."""
    # Sorted first: callers hand in sets, whose order changes with the process's hash seed.
    distinct = sorted(set(users))
    if not distinct:
        return {}
    if not children:
        raise ValueError("cannot place users in no breakouts")
    rng.shuffle(distinct)
    return {user: children[index % len(children)] for index, user in enumerate(distinct)}


# --- rounds --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreakoutRound:
    """An open set of breakouts of one parent, as stored and shared between nodes.

    ``rooms`` holds ``(child id, title)`` pairs in child order; ``ends_at`` is None when the
    round has no duration and stays open until closed.
    """

    id: str
    parent: str
    rooms: tuple[tuple[str, str], ...]
    assign: Assign
    opened_by: str
    opened_at: float
    ends_at: float | None
    # The child ids as a set: a round's burst asks of each of its hundreds of joins whether
    # the room is one of them.
    _child_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_child_set", frozenset(child for child, _ in self.rooms))

    def describe(self) -> RoundView:
        """The round as events and snapshots show it: ``{rooms: [{id, title}], assign,
        ends_at?}`` (``ends_at`` only when the round has a duration)."""
        described: RoundView = {
            "rooms": [{"id": child, "title": title} for child, title in self.rooms],
            "assign": self.assign.value,
        }
        if self.ends_at is not None:
            described["ends_at"] = self.ends_at
        return described

    def to_record(self) -> dict[str, Any]:
        """Every field as a plain map (str, float, None, lists of maps) to store and share
        between nodes; :meth:`from_record` restores an equal round."""
        return {
            "id": self.id,
            "parent": self.parent,
            "rooms": [{"id": child, "title": title} for child, title in self.rooms],
            "assign": self.assign.value,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at,
            "ends_at": self.ends_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> BreakoutRound:
        """The inverse of :meth:`to_record` (raises KeyError or ValueError on a foreign map)."""
        ends_at = record["ends_at"]
        return cls(
            id=str(record["id"]),
            parent=str(record["parent"]),
            rooms=tuple((str(room["id"]), str(room["title"])) for room in record["rooms"]),
            assign=Assign(record["assign"]),
            opened_by=str(record["opened_by"]),
            opened_at=float(record["opened_at"]),
            ends_at=float(ends_at) if ends_at is not None else None,
        )

    def children(self) -> tuple[str, ...]:
        """The child room ids, in order."""
        return tuple(child for child, _ in self.rooms)

    def has_child(self, room: str) -> bool:
        """Whether ``room`` is one of the round's children."""
        return room in self._child_set

    def due(self, now: float) -> bool:
        """True when the round has a duration and it has run out at ``now``."""
        return self.ends_at is not None and now >= self.ends_at

    def warning_due(self, now: float, lead: float) -> bool:
        """True from ``lead`` seconds before the end on, for rounds longer than ``lead`` (a
        shorter round gets no warning: it would come as the round opens)."""
        if self.ends_at is None:
            return False
        warn_at = self.ends_at - lead
        return warn_at > self.opened_at and now >= warn_at


def open_round(plan: BreakoutPlan, round_id: str, opened_by: str, now: float) -> BreakoutRound:
    """The round ``plan`` opens at ``now``, as ``opened_by``; it ends at ``now + duration`` when
    the plan has a duration, else never by itself."""
    return BreakoutRound(
        id=round_id,
        parent=plan.parent,
        rooms=tuple(zip(plan.children, plan.titles, strict=True)),
        assign=plan.assign,
        opened_by=opened_by,
        opened_at=now,
        ends_at=now + plan.duration if plan.duration is not None else None,
    )


def may_enter_child(*, assign: Assign, assigned: str | None, child: str, moderator: bool) -> bool:
    """Whether someone may join ``child`` of an open round: moderators of the parent may join any
    child, and so may anyone when people pick their own room (SELF); otherwise people join their
    ``assigned`` child, or any child when they have no assignment (they came after the round
    opened)."""
    if moderator or assign is Assign.SELF or assigned is None:
        return True
    return assigned == child
