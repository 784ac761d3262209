"""The event's rooms, shared by every node through the broker (a hash of room records), with a
local cache: rooms are created rarely and never change kind."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hub.codec import pack, unpack
from hub.errors import HubError
from hub.store import Store
from rooms.model import LOBBY, Room, RoomKind, parse_room

ROOMS_KEY = "rooms"
# The keys a [[rooms]] entry of the rooms file may have.
ROOM_KEYS = frozenset({"id", "kind", "title", "capacity", "parent"})


class RoomDirectory:
    """Looks rooms up and creates them, the same on every node. Rooms are cached for good,
    except breakouts, whose titles change from round to round, and meetings, which end: those
    are read each time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, Room] = {}

    async def get(self, room_id: str) -> Room | None:
        """The room, or None if it does not exist."""
        room = self._cache.get(room_id)
        if room is None:
            record = await self.store.hash_get(ROOMS_KEY, room_id)
            if record is None:
                return None
            room = Room.from_record(unpack(record))
            # Breakouts change titles from round to round and meetings end: read each time.
            if room.kind not in (RoomKind.BREAKOUT, RoomKind.MEETING):
                self._cache[room_id] = room
        return room

    async def require(self, room_id: str) -> Room:
        """The room, or ``not_found``."""
        room = await self.get(room_id)
        if room is None:
            raise HubError("not_found", f"no room {room_id}")
        return room

    async def create(self, room: Room) -> bool:
        """Create ``room``; False if a room with its id exists already."""
        created = await self.store.hash_set(
            ROOMS_KEY, room.id, pack(room.to_record()), only_if_absent=True
        )
        if created and room.kind is not RoomKind.MEETING:
            self._cache[room.id] = room
        return created

    async def put_breakouts(self, rooms: Iterable[Room]) -> None:
        """Create or replace breakout rooms' records (a new round's titles for child ids), in
        one write."""
        await self.store.hash_set_many(
            ROOMS_KEY, {room.id: pack(room.to_record()) for room in rooms}
        )

    async def remove(self, room_id: str) -> None:
        """Take a room out of the directory on every node (a meeting that ended): its record
        goes, and this node forgets it; other nodes' caches may still name it, as rooms are
        never looked up again once cached, so removed rooms must refuse joins by other means
        (a meeting's join check does)."""
        await self.store.hash_delete(ROOMS_KEY, room_id)
        self._cache.pop(room_id, None)

    def cached(self, room_id: str) -> Room | None:
        """The room if this node has seen it (no read: breakouts are never cached)."""
        return self._cache.get(room_id)

    def known(self) -> list[Room]:
        """The rooms this node has seen (its cache), meetings aside: they end for good."""
        return [room for room in self._cache.values() if room.kind is not RoomKind.MEETING]

    async def all(self) -> list[Room]:
        """Every room, ordered by id."""
        records = await self.store.hash_get_all(ROOMS_KEY)
        rooms = [Room.from_record(unpack(record)) for record in records.values()]
        self._cache.update((room.id, room) for room in rooms if room.kind is not RoomKind.MEETING)
        return sorted(rooms, key=lambda room: room.id)

    async def ensure(self, rooms: list[Room]) -> None:
        """Create each room unless it exists (start-up: the lobby and the rooms file)."""
        for room in rooms:
            await self.create(room)


def default_rooms() -> list[Room]:
    """A new hub's rooms: the lobby ``main``."""
    return [Room(LOBBY, RoomKind.LOBBY, "Main hall")]


def load_rooms_file(path: str | Path) -> list[Room]:
    """The rooms a TOML file declares::

        [[rooms]]
        id = "panel-1"
        kind = "panel"
        title = "Opening panel"
        capacity = 1000        # optional
        parent = "..."         # optional

    Raises ValueError naming the entry that is wrong.
    """
    with open(path, "rb") as handle:
        document: dict[str, Any] = tomllib.load(handle)
    entries = document.get("rooms", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'rooms' must be an array of tables ([[rooms]])")
    rooms = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: rooms[{index}] must be a table")
        unknown = sorted(set(entry) - ROOM_KEYS)
        if unknown:
            # The usual cause: a top-level key (interests = [...]) written after a [[rooms]]
            # table, which TOML makes a key of that room.
            raise ValueError(
                f"{path}: rooms[{index}]: unknown key {unknown[0]!r} (keys of the whole event, "
                "such as interests, go before the first [[rooms]], [[tables]], [[polls]] or "
                "[[partnerships]])"
            )
        fields = {**entry, "room": entry.get("id")}
        try:
            rooms.append(parse_room(fields, allow_breakout=True))
        except HubError as error:
            raise ValueError(f"{path}: rooms[{index}]: {error.msg}") from None
    return rooms
