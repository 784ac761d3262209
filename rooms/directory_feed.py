"""The lobby's live directory: the event's rooms (breakouts aside: a parent shows how many are in
its breakouts) with their member counts and, for panels, who is on stage, kept current for the
members of lobby rooms without polling.

The list is what ``room.list`` answers. A lobby's join snapshot carries it as ``rooms``; after
that, each node that has members in a lobby room computes the list once every
``HubConfig.rooms_interval`` seconds and, when it differs from the list it last sent, sends the
event ``rooms {room: <lobby>, rooms}`` (encoded once per lobby) to its members there. The reads
per interval depend on the number of rooms (the room hash, one count per room, two role hashes
per panel), never on the number of members.

Lobby joins share reads: a join's snapshot takes the list being read for another join, if one
is under way, so a burst of arrivals costs a few reads of the list, not one each.

A join's snapshot may read another list than the node last sent; the next computation then
sends whatever it finds, so no member keeps a list the others have moved past for longer than an
interval or two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hub.codec import EncodedEvent
from hub.dispatch import CommandContext
from hub.feature import Entrant, FeatureContext, RoomInfo
from hub.session import Session
from hub.shared_read import SharedRead
from rooms.model import Room, RoomKind
from rooms.roles import on_stage
from rooms.wire import (
    PanelListEntry,
    ParentListEntry,
    RoomListEntry,
    RoomListReply,
    RoomsEvent,
    RoomsPart,
    UserEntry,
)

if TYPE_CHECKING:
    from rooms.feature import RoomsFeature

Listing = list[RoomListEntry]


def directory_entries(
    rooms: Sequence[Room],
    counts: Mapping[str, int],
    stages: Mapping[str, list[UserEntry]],
) -> Listing:
    """The ``room.list`` entries of ``rooms`` (in their order) but breakouts: ``{id, kind,
    title, parent, members}``; for panels and workshops also ``in_breakouts``, the counts of
    their breakout rooms summed (a round's rooms are for the people sent there: the list shows
    how many are away, not each room), and for panels ``stage: [{user, name}]`` (empty when
    ``stages`` has none for it). ``members`` is the room's count in ``counts`` (0 when
    absent)."""
    away: dict[str, int] = {}
    for room in rooms:
        if room.kind is RoomKind.BREAKOUT and room.parent is not None:
            away[room.parent] = away.get(room.parent, 0) + counts.get(room.id, 0)
    listed: Listing = []
    for room in rooms:
        members = counts.get(room.id, 0)
        if room.kind is RoomKind.BREAKOUT:
            continue
        if room.kind is RoomKind.PANEL:
            stage = list(stages.get(room.id, ()))
            panel: PanelListEntry = {
                **room.describe(),
                "members": members,
                "in_breakouts": away.get(room.id, 0),
                "stage": stage,
            }
            listed.append(panel)
        elif room.kind is RoomKind.WORKSHOP:
            workshop: ParentListEntry = {
                **room.describe(),
                "members": members,
                "in_breakouts": away.get(room.id, 0),
            }
            listed.append(workshop)
        else:
            entry: RoomListEntry = {**room.describe(), "members": members}
            listed.append(entry)
    return listed


def rooms_event(lobby: str, listed: Listing) -> RoomsEvent:
    """The ephemeral event for the members of ``lobby``: ``{ev: "rooms", room, rooms}``."""
    return {"ev": "rooms", "room": lobby, "rooms": listed}


class DirectoryFeed:
    """The rooms list of one node: what ``room.list`` and the lobby snapshot read, and the
    periodic ``rooms`` event to this node's lobby members (see the module docstring)."""

    def __init__(self, rooms: RoomsFeature) -> None:
        self.rooms = rooms
        self.node = rooms.node
        # The list this node last sent to its lobby members (None: send whatever comes next).
        self._sent: Listing | None = None
        # The read of the list under way, shared by every caller meanwhile.
        self._shared: SharedRead[Listing] = SharedRead(self._read)

    def install(self, ctx: FeatureContext) -> None:
        """Register ``room.list``, the lobby's snapshot part and the periodic check."""
        ctx.command("room.list", self.room_list)
        ctx.on_snapshot(self.snapshot)
        ctx.every(self.node.config.rooms_interval, self.tick)

    async def room_list(self, ctx: CommandContext, cmd: dict[str, Any]) -> RoomListReply:
        """Every room with its member count (and, for panels, who is on stage)."""
        return {"rooms": await self.listing()}

    async def listing(self) -> Listing:
        """Every room, ordered by id, with its member count and, for panels, its stage. Calls
        made while a read is under way share its result: a burst of lobby joins costs a few
        reads of the list, not one each."""
        return await self._shared()

    async def _read(self) -> Listing:
        # Meetings are private, and many at a coffee break: they are not listed.
        rooms = [r for r in await self.rooms.directory.all() if r.kind is not RoomKind.MEETING]
        broker = self.node.broker
        panels = [room for room in rooms if room.kind is RoomKind.PANEL]
        counts, entries = await asyncio.gather(
            asyncio.gather(*(broker.presence_count(room.id) for room in rooms)),
            asyncio.gather(*(self.rooms.roles.known_entries(room.id) for room in panels)),
        )
        return directory_entries(
            rooms,
            {room.id: count for room, count in zip(rooms, counts, strict=True)},
            {room.id: on_stage(found) for room, found in zip(panels, entries, strict=True)},
        )

    async def snapshot(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[RoomsPart | Exception]:
        """A lobby's join snapshot part: ``rooms``, the list as ``room.list`` shows it."""
        if room.kind is not RoomKind.LOBBY:
            return [{} for _ in entrants]
        listed = await self.listing()
        for entrant in entrants:
            if not self._others_than(entrant.ctx.session):
                self._sent = listed  # the only lobby member here: what it holds was sent
            elif listed != self._sent:
                # This member starts from a list the others were not sent: resend at the next
                # check.
                self._sent = None
        return [{"rooms": listed} for _ in entrants]

    def _others_than(self, session: Session) -> bool:
        """Whether this node has lobby members besides ``session`` (which follows its lobby)."""
        members = 0
        for lobby in self.local_lobbies():
            stream = self.node.streams.get(lobby)
            members += len(stream) if stream is not None else 0
        return members > 1

    def local_lobbies(self) -> list[str]:
        """The lobby rooms this node has members in."""
        lobbies = []
        for room_id in self.node.streams:
            room = self.rooms.directory.cached(room_id)
            if room is not None and room.kind is RoomKind.LOBBY:
                lobbies.append(room_id)
        return lobbies

    async def tick(self) -> None:
        """One check: when this node has lobby members, read the list once and, if it differs
        from the one last sent, send it to them (one encoding per lobby room)."""
        if not self.local_lobbies():
            self._sent = None
            return
        listed = await self.listing()
        if listed == self._sent:
            return
        self._sent = listed
        # Read again: members may have come or gone during the reads.
        for lobby in self.local_lobbies():
            event = EncodedEvent(rooms_event(lobby, listed))
            for session in self.node.followers(lobby):
                session.deliver(event)
