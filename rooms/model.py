"""Rooms: ids, kinds and the facts a room carries, as pure data."""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from hub.errors import HubError

ROOM_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
BREAKOUT_SUFFIX = re.compile(r"\.b[0-9]+$")
LOBBY = "main"
MAX_TITLE = 200
MAX_CAPACITY = 100_000


class RoomKind(enum.StrEnum):
    """The kinds of room of the contract."""

    LOBBY = "lobby"
    PANEL = "panel"
    WORKSHOP = "workshop"
    BREAKOUT = "breakout"


def validate_room_id(value: object) -> str:
    """``value`` as a room id, or ``bad_request`` when it does not match the contract's pattern."""
    if not isinstance(value, str) or ROOM_ID.fullmatch(value) is None:
        raise HubError("bad_request", "room must match [a-z0-9][a-z0-9._-]{0,79}")
    return value


def joined_room(value: object, joined: Collection[str]) -> str:
    """``value`` as the id of a room among ``joined`` (a session's rooms): ``bad_request`` for
    a bad id, ``forbidden`` when the session has not joined it."""
    room = validate_room_id(value)
    if room not in joined:
        raise HubError("forbidden", f"join {room} first")
    return room


def is_breakout_id(room: str) -> bool:
    """True for ids ending in ``.b<number>``, which only breakouts may use."""
    return BREAKOUT_SUFFIX.search(room) is not None


@dataclass(frozen=True, slots=True)
class Room:
    """A room's declared facts; its live state (members, stream) lives elsewhere."""

    id: str
    kind: RoomKind
    title: str
    parent: str | None = None
    capacity: int | None = None

    @property
    def has_media(self) -> bool:
        """Rooms where people exchange audio and video (the lobby has none)."""
        return self.kind is not RoomKind.LOBBY

    def describe(self) -> dict[str, Any]:
        """The room as the contract shows it: ``{id, kind, title, parent}``."""
        return {"id": self.id, "kind": self.kind.value, "title": self.title, "parent": self.parent}

    def to_record(self) -> dict[str, Any]:
        """A plain map to store and share between nodes."""
        return {**self.describe(), "capacity": self.capacity}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Room:
        """The inverse of :meth:`to_record`."""
        return cls(
            id=record["id"],
            kind=RoomKind(record["kind"]),
            title=record["title"],
            parent=record.get("parent"),
            capacity=record.get("capacity"),
        )


def parse_room(fields: dict[str, Any], *, allow_breakout: bool = False) -> Room:
    """Validate ``room.create`` fields (``room, kind, title, parent?, capacity?``) into a Room.

    Raises ``bad_request`` naming the first field that is wrong.
    """
    room_id = validate_room_id(fields.get("room"))
    kind_value = fields.get("kind")
    try:
        kind = RoomKind(str(kind_value))
    except ValueError:
        raise HubError("bad_request", "kind must be lobby, panel, workshop or breakout") from None
    if is_breakout_id(room_id) and not allow_breakout:
        raise HubError("bad_request", "room ids ending in .b<number> are reserved for breakouts")
    title = fields.get("title", room_id)
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
        raise HubError("bad_request", f"title must be 1 to {MAX_TITLE} characters")
    parent = fields.get("parent")
    if parent is not None:
        parent = validate_room_id(parent)
    if kind is RoomKind.BREAKOUT and parent is None:
        raise HubError("bad_request", "a breakout needs a parent")
    capacity = fields.get("capacity")
    if capacity is not None and (
        not isinstance(capacity, int)
        or isinstance(capacity, bool)
        or not 1 <= capacity <= MAX_CAPACITY
    ):
        raise HubError("bad_request", f"capacity must be an integer from 1 to {MAX_CAPACITY}")
    return Room(room_id, kind, title.strip(), parent, capacity)


def clean_text(value: object, limit: int, field: str = "text") -> str:
    """``value`` trimmed, 1 to ``limit`` characters, without control characters other than
    newline; else ``bad_request`` (``too_large`` when only the length is wrong)."""
    if not isinstance(value, str):
        raise HubError("bad_request", f"{field} must be a string")
    text = value.strip()
    if not text:
        raise HubError("bad_request", f"{field} must not be empty")
    if len(text) > limit:
        raise HubError("too_large", f"{field} is longer than {limit} characters")
    if any(ch != "\n" and (ord(ch) < 32 or 127 <= ord(ch) < 160) for ch in text):
        raise HubError("bad_request", f"{field} must not contain control characters")
    return text
