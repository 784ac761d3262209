"""A meeting the match queue made, as pure data, and the rules of what its members may do:
when it ends, whether an extension is due, and the contact cards they exchange."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hub import fields
from hub.errors import HubError
from networking.match_wire import Card, MatchPartner
from networking.profiles import MAX_ORGANISATION  # a card's organisation is a profile's

# How long after its end members may still share their cards (seconds).
CARDS_WINDOW: Final = 600.0
MAX_EMAIL: Final = 200
MAX_LINK: Final = 300
CARD_FIELDS: Final = ("name", "organisation", "email", "link")


@dataclass(frozen=True, slots=True)
class Meeting:
    """A meeting: its room, its members (oldest in the queue first), its planned end (epoch
    seconds) before any extension, and its length (seconds), which an extension adds once."""

    room: str
    members: tuple[MatchPartner, ...]
    ends_at: float
    length: float

    @property
    def users(self) -> list[str]:
        """The members' user ids."""
        return [member["user"] for member in self.members]

    def others(self, user: str) -> list[MatchPartner]:
        """The members but ``user``."""
        return [member for member in self.members if member["user"] != user]

    def is_member(self, user: str) -> bool:
        """Whether ``user`` is one of the members."""
        return user in self.users

    def to_record(self) -> dict[str, Any]:
        """A plain map to keep in the store."""
        return {
            "room": self.room,
            "members": list(self.members),
            "ends_at": self.ends_at,
            "length": self.length,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Meeting:
        """The inverse of :meth:`to_record`."""
        return cls(
            room=record["room"],
            members=tuple(record["members"]),
            ends_at=record["ends_at"],
            length=record["length"],
        )


def extended_end(meeting: Meeting) -> float:
    """Where an extension moves the end: one meeting length after the planned end."""
    return round(meeting.ends_at + meeting.length, 3)


def extension_due(asked: Collection[str], present: Collection[str]) -> bool:
    """Whether every member still in the meeting (``present``, not empty) asked to extend."""
    return bool(present) and set(present) <= set(asked)


def cards_open(ended_at: float | None, now: float) -> bool:
    """Whether cards may still be shared: during the meeting and :data:`CARDS_WINDOW` seconds
    after its end (``ended_at`` None: it runs)."""
    return ended_at is None or now <= ended_at + CARDS_WINDOW


def cards_for(user: str, cards: Mapping[str, Card], members: Collection[str]) -> list[Card] | None:
    """The cards ``user`` gets: every other member's, once every member shared (else None)."""
    if not set(members) <= set(cards):
        return None
    return [cards[member] for member in members if member != user]


def parse_card(value: object, user: str, default_name: str) -> Card:
    """A ``match.share``'s ``card``: a map of ``name`` (a display name; default: the sharer's
    own), and optionally ``organisation`` (a line of at most 100 characters), ``email`` (at
    most 200, with an ``@``) and ``link`` (at most 300, a :func:`hub.fields.url`), each a
    one-line text; other keys are ``bad_request``."""
    if not isinstance(value, dict):
        raise fields.bad("card", "must be a map")
    unknown = sorted(str(key) for key in value if key not in CARD_FIELDS)
    if unknown:
        raise fields.bad("card", f"unknown field {unknown[0]}")
    name = value.get("name")
    card: Card = {
        "user": user,
        "name": default_name if name is None else fields.display_name(name, "card.name"),
    }
    organisation = value.get("organisation")
    if organisation is not None:
        card["organisation"] = fields.line(organisation, "card.organisation", MAX_ORGANISATION)
    email = value.get("email")
    if email is not None:
        address = fields.line(email, "card.email", MAX_EMAIL)
        if "@" not in address or " " in address:
            raise fields.bad("card.email", "must be an email address")
        card["email"] = address
    link = value.get("link")
    if link is not None:
        card["link"] = fields.url(link, "card.link", MAX_LINK)
    return card


def require_member(meeting: Meeting | None, room: str, user: str) -> Meeting:
    """The meeting of ``room`` when ``user`` is one of its members: ``not_found`` when there is
    no such meeting (or it is gone), ``forbidden`` for anyone else."""
    if meeting is None:
        raise HubError("not_found", f"no meeting {room}")
    if not meeting.is_member(user):
        raise HubError("forbidden", f"not a member of meeting {room}")
    return meeting
