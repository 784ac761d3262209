"""The wire shapes of the lounge tables (``docs/protocol.md``: Lounge tables): the reply of
``table.sit``, the lobby's ``tables`` snapshot part and event, and ``table.left``."""

# Annotations are evaluated here (no ``from __future__ import annotations``), as in rooms/wire.py.

from typing import Literal, TypedDict


class TableOccupant(TypedDict):
    """Someone seated at a table: ``{user, name}``."""

    user: str
    name: str


class TableEntry(TypedDict):
    """One table of the lobby's list: ``{id, title, topic, seats, taken, occupants}``;
    ``taken`` counts the seats held (``taken == seats``: the table is full)."""

    id: str
    title: str
    topic: str | None
    seats: int
    taken: int
    occupants: list[TableOccupant]


class TablesPart(TypedDict, total=False):
    """The lobby's join snapshot part: ``tables`` (other rooms' snapshots have none)."""

    tables: list[TableEntry]


class TableListReply(TypedDict):
    """``table.list`` -> ``{tables}``."""

    tables: list[TableEntry]


class TablesEvent(TypedDict):
    """``tables {room, tables}``: the lobby's list after a change (ephemeral, coalesced)."""

    ev: Literal["tables"]
    room: str
    tables: list[TableEntry]


class TableSitReply(TypedDict):
    """``table.sit`` -> ``{table, seats, taken}``: the caller holds a seat; join the room."""

    table: str
    seats: int
    taken: int


class TableLeftEvent(TypedDict):
    """``table.left {room, reason, text, key}``: the hub took this session out of a table
    (``closed``: the event is over; ``moved``: the seat went to another session of the same
    person). ``text`` is the hub's sentence, ``key`` names it (``table.closed``,
    ``table.moved``) for clients that show their own."""

    ev: Literal["table.left"]
    room: str
    reason: Literal["closed", "moved"]
    text: str
    key: str
