"""Rooms: ids, kinds and the facts a room carries, as pure data."""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from hub import fields
from hub.errors import HubError
from rooms.wire import RoomView

# Kept here for hub/app.py, which still imports it from this module.

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
    # A private video room of two or three people the match queue paired (networking).
    MEETING = "meeting"
    # A lounge table: a video room with a few seats anyone may take (networking).
    TABLE = "table"


def joined_room(value: object, joined: Collection[str]) -> str:
    """``value`` as the id of a room among ``joined`` (a session's rooms): ``bad_request`` for
    a bad id, ``forbidden`` when the session has not joined it."""
    room = fields.room_id(value)
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

    def describe(self) -> RoomView:
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


def parse_room(record: dict[str, Any], *, allow_breakout: bool = False) -> Room:
    """Validate ``room.create`` fields (``room, kind, title, parent?, capacity?``) into a Room:
    ``title`` (default: the id) a :func:`hub.fields.line` of at most :data:`MAX_TITLE`
    characters, ``capacity`` (optional) 1 to :data:`MAX_CAPACITY`.

    Raises ``bad_request`` naming the first field that is wrong.
    """
    room_id = fields.room_id(record.get("room"))
    kind = fields.choice(record.get("kind"), "kind", RoomKind)
    if is_breakout_id(room_id) and not allow_breakout:
        raise fields.bad("room", "ids ending in .b<number> are reserved for breakouts")
    title = fields.line(record.get("title", room_id), "title", MAX_TITLE)
    parent = record.get("parent")
    if parent is not None:
        parent = fields.room_id(parent, "parent")
    if kind is RoomKind.BREAKOUT and parent is None:
        raise fields.bad("parent", "a breakout needs a parent room")
    capacity = fields.optional_integer(record.get("capacity"), "capacity", 1, MAX_CAPACITY)
    return Room(room_id, kind, title, parent, capacity)
