"""The stage as pure data and rules: who may set whose role and kick whom in a room, and the
queue of raised hands. No I/O: time is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hub import fields
from hub.auth import Role
from hub.errors import HubError
from rooms.wire import HandsEvent, HandView

ASSIGNABLE_ROLES: Final = (Role.ATTENDEE, Role.SPEAKER, Role.MODERATOR)

_ASSIGNABLE_LABELS: Final = tuple(role.label for role in ASSIGNABLE_ROLES)


# --- roles and kicks -----------------------------------------------------------------------------


def parse_assignable_role(value: object) -> Role:
    """``role.set``'s ``role`` field as a Role: ``"attendee"``, ``"speaker"`` or ``"moderator"``
    exactly, else ``bad_request`` (organizer is an event-wide role that only a token gives)."""
    return Role.parse(fields.choice(value, "role", _ASSIGNABLE_LABELS))


def check_role_change(caller: Role, target_now: Role, new: Role, *, self_change: bool) -> None:
    """Return when ``caller`` (their role in the room) may give the target, whose role in the
    room is ``target_now``, the role ``new``; raise ``forbidden`` otherwise.

    The rules, in this order: anyone may step down themselves (``new <= target_now``), other
    changes are for moderators and organizers; an organizer's role comes from their token and
    cannot be changed; nobody raises their own role; organizers may change anyone else's role,
    moderators that of attendees and speakers, up to moderator. A ``new`` role outside
    :data:`ASSIGNABLE_ROLES` that passes these rules is ``bad_request``.
    """
    stepping_down = self_change and new <= target_now
    if caller < Role.MODERATOR and not stepping_down:
        raise HubError("forbidden", "only moderators set roles")
    if target_now is Role.ORGANIZER:
        raise HubError("forbidden", "an organizer's role comes from their token")
    if self_change:
        if new > target_now:
            raise HubError("forbidden", "you may lower your own role, never raise it")
    elif caller is not Role.ORGANIZER:
        if target_now >= caller:
            raise HubError("forbidden", "only organizers change another moderator's role")
        if new > caller:
            raise HubError("forbidden", f"{caller.label}s cannot give the role {new.label}")
    # parse_assignable_role keeps organizer out already; this guards callers that skip it.
    if new not in ASSIGNABLE_ROLES:
        parse_assignable_role(new.label)


def check_kick(caller: Role, target: Role, *, self_kick: bool) -> None:
    """Return when ``caller`` may kick a user whose role in the room is ``target``; raise
    ``forbidden`` otherwise (``bad_request`` for kicking oneself).

    Only moderators and organizers kick; nobody kicks an organizer; a moderator kicks only
    attendees and speakers, an organizer anyone else.
    """
    if caller < Role.MODERATOR:
        raise HubError("forbidden", "only moderators kick")
    if self_kick:
        raise HubError("bad_request", "you cannot kick yourself")
    if target is Role.ORGANIZER:
        raise HubError("forbidden", "organizers cannot be kicked")
    if target >= caller and caller is not Role.ORGANIZER:
        raise HubError("forbidden", "only organizers kick moderators")


# --- hands ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hand:
    """A raised hand: ``user`` raised it at server time ``ts`` (unix seconds) from session
    ``sid``, under display name ``name``. The hand goes down when that session leaves."""

    user: str
    name: str
    ts: float
    sid: str

    def to_record(self) -> dict[str, Any]:
        """A plain map to store under the user's id: ``{name, ts, sid}``; :meth:`from_record`
        with the same user restores an equal Hand."""
        return {"name": self.name, "ts": self.ts, "sid": self.sid}

    @classmethod
    def from_record(cls, user: str, record: Mapping[str, Any]) -> Hand:
        """The inverse of :meth:`to_record` (raises KeyError or ValueError on a foreign map)."""
        return cls(
            user=user, name=str(record["name"]), ts=float(record["ts"]), sid=str(record["sid"])
        )

    def describe(self) -> HandView:
        """The hand as the contract shows it: ``{user, name, ts}``, ``ts`` rounded to
        milliseconds."""
        return {"user": self.user, "name": self.name, "ts": round(self.ts, 3)}


def hand_queue(hands: Iterable[Hand]) -> list[Hand]:
    """The hands in queue order, by ``(ts, user)``: the same order on every node whatever order
    storage returns them in."""
    # sid and name only break ties between hands that share (ts, user), which storage keyed by
    # user never holds; they keep the order total all the same.
    return sorted(hands, key=lambda hand: (hand.ts, hand.user, hand.sid, hand.name))


def hands_event(room: str, hands: Iterable[Hand]) -> HandsEvent:
    """The ``hands`` event for ``room``: ``{ev: "hands", room, queue: [{user, name, ts}]}``, the
    queue in :func:`hand_queue` order."""
    return {"ev": "hands", "room": room, "queue": [hand.describe() for hand in hand_queue(hands)]}
