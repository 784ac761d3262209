"""Lounge tables as pure data: their definitions in the rooms file, the rooms they are, and the
lobby's view of who sits where. No I/O here but reading the rooms file.

The rooms file (``--rooms FILE``, the same TOML file as ``[[rooms]]``) declares tables::

    [[tables]]
    id = "table-1"          # a room id, unique among rooms and tables
    title = "Rust corner"   # required
    topic = "Async, FFI"    # optional
    seats = 4               # optional, 1 to MAX_SEATS, default DEFAULT_SEATS

Each table is a room of kind ``table`` (people talk there on video). A seat is a token in the
table's seat set in the store; who holds it is a field of the table's holder hash, named by the
holding session. The lobby's list of tables is built from both here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hub import fields
from hub.errors import HubError
from rooms.model import MAX_TITLE, Room, RoomKind, is_breakout_id

DEFAULT_SEATS: Final = 6
MAX_SEATS: Final = 12
MAX_TOPIC: Final = 200
# The most tables a rooms file may declare (every listing reads each table's seats).
MAX_TABLES: Final = 200


@dataclass(frozen=True, slots=True)
class TableDef:
    """A table as the rooms file declares it."""

    id: str
    title: str
    topic: str | None = None
    seats: int = DEFAULT_SEATS

    def room(self) -> Room:
        """The room of kind ``table`` people join once seated. It has no room capacity: the
        seats are the limit, claimed atomically (the rooms feature's capacity check counts
        presence, which a session moving its seat to a new connection briefly exceeds)."""
        return Room(self.id, RoomKind.TABLE, self.title)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a seat: the seat's token, the user and their name, and when they sat
    (epoch seconds)."""

    seat: str
    user: str
    name: str
    at: float

    def to_record(self) -> dict[str, Any]:
        """A plain map for the store."""
        return {"seat": self.seat, "user": self.user, "name": self.name, "at": self.at}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Holder:
        """The inverse of :meth:`to_record`."""
        return cls(str(record["seat"]), str(record["user"]), str(record["name"]), record["at"])


def parse_table(entry: object) -> TableDef:
    """One ``[[tables]]`` entry: ``id`` (a room id, not a breakout's), ``title`` (a line of at
    most :data:`~rooms.model.MAX_TITLE` characters), ``topic`` (optional, a line of at most
    :data:`MAX_TOPIC`), ``seats`` (optional, 1 to :data:`MAX_SEATS`, default
    :data:`DEFAULT_SEATS`). Raises ``bad_request`` naming the first wrong field."""
    if not isinstance(entry, dict):
        raise HubError("bad_request", "must be a table")
    unknown = sorted(set(entry) - {"id", "title", "topic", "seats"})
    if unknown:
        raise fields.bad(unknown[0], "is not a field of a table (id, title, topic, seats)")
    table_id = fields.room_id(entry.get("id"), "id")
    if is_breakout_id(table_id):
        raise fields.bad("id", "ids ending in .b<number> are reserved for breakouts")
    if "title" not in entry:
        raise fields.bad("title", "is required")
    title = fields.line(entry["title"], "title", MAX_TITLE)
    topic = entry.get("topic")
    topic = None if topic is None else fields.line(topic, "topic", MAX_TOPIC)
    seats = fields.integer(entry.get("seats", DEFAULT_SEATS), "seats", 1, MAX_SEATS)
    return TableDef(table_id, title, topic, seats)


def parse_tables(document: Mapping[str, Any], room_ids: Iterable[str] = ()) -> list[TableDef]:
    """The tables of a rooms file's parsed TOML, in the file's order. An id used twice, or by
    one of ``room_ids`` (the file's ``[[rooms]]`` and the lobby), is refused. Raises
    ValueError naming the entry that is wrong."""
    entries = document.get("tables", [])
    if not isinstance(entries, list):
        raise ValueError("'tables' must be an array of tables ([[tables]])")
    if len(entries) > MAX_TABLES:
        raise ValueError(f"at most {MAX_TABLES} tables")
    taken = set(room_ids)
    tables: list[TableDef] = []
    for index, entry in enumerate(entries):
        try:
            table = parse_table(entry)
        except HubError as error:
            raise ValueError(f"tables[{index}]: {error.msg}") from None
        if table.id in taken:
            raise ValueError(f"tables[{index}]: id {table.id} is used twice")
        taken.add(table.id)
        tables.append(table)
    return tables


def load_tables_file(path: str | Path, room_ids: Iterable[str] = ()) -> list[TableDef]:
    """The tables of the rooms file at ``path`` (see :func:`parse_tables`); ValueError (with
    the path) when one is wrong, OSError when the file cannot be read."""
    with open(path, "rb") as handle:
        document: dict[str, Any] = tomllib.load(handle)
    try:
        return parse_tables(document, room_ids)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def seats_of(room: Room, table: TableDef | None) -> int:
    """How many seats a table room has: its definition's, else (a table made with
    ``room.create``) its capacity, else :data:`DEFAULT_SEATS`."""
    if table is not None:
        return table.seats
    return room.capacity if room.capacity is not None else DEFAULT_SEATS


def occupants(holders: Mapping[str, Holder], tokens: Iterable[str]) -> list[Holder]:
    """Who sits at a table: the holders whose seat is among the set's ``tokens`` (a holder
    whose seat is not counted is not seated; a token nobody holds is a seat being claimed or
    handed over), one per user (the one who sat first), in the order they sat."""
    counted = set(tokens)
    seated: dict[str, Holder] = {}
    for holder in sorted(holders.values(), key=lambda h: (h.at, h.seat)):
        if holder.seat in counted and holder.user not in seated:
            seated[holder.user] = holder
    return list(seated.values())


def ordered(rooms: Sequence[Room], tables: Sequence[TableDef]) -> list[Room]:
    """The table rooms among ``rooms``: those the file declares in its order, then the others
    by id."""
    position = {table.id: index for index, table in enumerate(tables)}
    found = [room for room in rooms if room.kind is RoomKind.TABLE]
    return sorted(found, key=lambda room: (position.get(room.id, len(position)), room.id))


def orphans(tokens: Iterable[str], holders: Iterable[Holder]) -> set[str]:
    """The seat tokens no holder names (a claim or a hand-over under way, or one a failure cut
    short)."""
    held = {holder.seat for holder in holders}
    return {token for token in tokens if token not in held}
