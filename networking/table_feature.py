"""Lounge tables on a node: ``table.sit``, the seat a table room's join requires, the lobby's
live list of tables (the ``tables`` snapshot part and event) and the end of the tables when the
event closes.

Seats are exact on every node and broker. A table's seats are tokens in a store set
(:func:`seats_key`); ``table.sit`` adds a fresh token and counts the set in one atomic step
(``Store.set_add_counted``): a claim that finds more tokens than seats takes its token back and
is refused with ``conflict``, so however many people sit at once on however many nodes, at most
``seats`` claims succeed. Who holds a seat is a field of the table's holder hash
(:func:`holders_key`) named by the holding session; a release takes that field with
``Store.hash_take`` (one atomic step, so a seat is released once however many paths try) and
then removes its token.

A session holds at most one seat. A person holds at most one seat per table: when another
session of theirs sits down (or joins the table, as a reconnecting client does), the seat moves
to it and the older session is taken out of the table with ``table.left`` (``moved``); two
sessions of one person sitting at the same instant may each get a seat, both counted.

Seats are released when their session leaves the table room, closes, or (a seat never used)
:data:`SIT_GRACE` seconds after ``table.sit`` without a join; for the sessions of a dead node by
the survivor that sweeps it; and once the event closes, when everyone seated is taken out with
``table.left`` (``closed``). A periodic check on each node (:meth:`TableFeature.reconcile`)
completes releases a broker failure interrupted, and removes tokens nobody holds. A broker that
lost its data (Redis back empty) gets the seats of the tables' members back from their nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from hub import fields
from hub.auth import Role
from hub.broker import user_topic
from hub.coalesce import CoalescedEvent, Derived, Mark
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import Entrant, FeatureContext, RoomInfo, each_entrant
from hub.node import Node
from hub.session import Session
from hub.shared_read import SharedRead
from networking.table_wire import (
    TableEntry,
    TableLeftEvent,
    TableListReply,
    TablesEvent,
    TableSitReply,
    TablesPart,
)
from networking.tables import Holder, TableDef, occupants, ordered, orphans, seats_of
from rooms.event_state import EventClosed
from rooms.model import LOBBY, Room, RoomKind

if TYPE_CHECKING:
    from rooms.feature import RoomsFeature

log = logging.getLogger(__name__)

# How often the lobby's ``tables`` event may go out (seconds): changes are coalesced in between.
TABLES_INTERVAL: Final = 0.25
# How long a seat taken with table.sit waits for its session to join the table (seconds).
SIT_GRACE: Final = 15.0
# How often each node checks its sessions' seats against the store (seconds).
RECONCILE_INTERVAL: Final = 5.0
CLOSED_TEXT: Final = "The event is over: the lounge tables are closed."
MOVED_TEXT: Final = "You sat down at this table from another connection."


def seats_key(table: str) -> str:
    """The store set of a table's seat tokens (its size: the seats taken)."""
    return f"table-seats:{table}"


def holders_key(table: str) -> str:
    """The store hash of who holds a table's seats: holding sid -> :class:`Holder` record."""
    return f"table-holders:{table}"


class TableFeature:
    """The lounge tables of one node (see the module docstring)."""

    def __init__(self, node: Node, rooms: RoomsFeature, tables: Sequence[TableDef] = ()) -> None:
        self.node = node
        self.rooms = rooms
        self.store = node.store
        self.tables = list(tables)
        self.defs = {table.id: table for table in self.tables}
        # This node's sessions that hold a seat: sid -> (table, monotonic time it was taken).
        # At most one entry per session (a session holds one seat), so bounded by the node's
        # connections; an entry goes when its seat is released or moved.
        self._held: dict[str, tuple[str, float]] = {}
        # Sessions with a table.sit under way (one at a time per session; bounded likewise).
        self._sitting: set[str] = set()
        # Seat tokens nobody held at the last check, (table, token): removed if still so at the
        # next one. At most the tokens of the tables' sets.
        self._orphans: set[tuple[str, str]] = set()
        # Seats of this node's sessions it has no record of, (table, sid, seat), seen at the last
        # check: released if still so at the next one. At most the tables' holders.
        self._unknown: set[tuple[str, str, str]] = set()
        # The read of the lobby's list under way, shared by every caller meanwhile.
        self._shared: SharedRead[list[TableEntry]] = SharedRead(self._read_listing)
        #: Seconds, monotonic (tests replace it to step time).
        self.clock = time.monotonic

    def install(self, ctx: FeatureContext) -> None:
        """Register ``table.sit``, the table rooms' join check, the lobby's snapshot part and
        event, the seat releases and the end of the tables at the event's close."""
        ctx.command("table.sit", self.sit)
        ctx.command("table.list", self.table_list)
        ctx.on_join_check(each_entrant(self._check_seated))
        ctx.on_snapshot(self._snapshot)
        ctx.on_leave(self._left)
        ctx.on_session_closed(self._session_closed)
        ctx.on_signal("table.moved", self._moved)
        ctx.on_start(self.ensure_rooms)
        ctx.on_history_lost(self.restore)
        ctx.every(RECONCILE_INTERVAL, self.reconcile)
        self.rooms.event.on_close(self._event_closed)
        self.rooms.on_node_swept(self._node_swept)
        self.feed = CoalescedEvent(ctx, "tables", self._read, interval=TABLES_INTERVAL)

    async def ensure_rooms(self) -> None:
        """Create the rooms of the declared tables unless they exist."""
        await self.rooms.directory.ensure([table.room() for table in self.tables])

    async def table_list(self, ctx: CommandContext, cmd: dict[str, Any]) -> TableListReply:
        """The lobby's list of tables, as its snapshot part has it (for a view that comes
        back to the lobby)."""
        return {"tables": await self.listing()}

    # --- sitting --------------------------------------------------------------------------------

    async def sit(self, ctx: CommandContext, cmd: dict[str, Any]) -> TableSitReply:
        """Take a seat at ``table`` (then join its room) -> ``{table, seats, taken}``.
        ``not_found`` for no such table, ``closed`` once the event is over, ``conflict`` when
        the table is full or the session is in another table's room."""
        table_id = fields.room_id(cmd.get("table"), "table")
        room = await self._table(table_id)
        self.rooms.event.require_open("the lounge tables are")
        session = ctx.session
        sid = session.sid
        seats = seats_of(room, self.defs.get(room.id))
        if sid in self._sitting:
            raise HubError("conflict", "a table.sit of this session is under way")
        self._sitting.add(sid)
        try:
            held = self._held.get(sid)
            if held is not None and held[0] == table_id:
                return await self._sit_reply(table_id, seats)
            if held is not None:
                if held[0] in session.rooms:
                    raise HubError("conflict", f"leave table {held[0]} first")
                await self.release(sid)  # a seat it never used
            if not await self._take_over(session, table_id):
                await self._claim(session, table_id, seats)
        finally:
            self._sitting.discard(sid)
        if sid not in self.node.sessions:
            # The connection ended while it sat down: its close hook found no seat to release.
            await self.release(sid)
        return await self._sit_reply(table_id, seats)

    async def _table(self, table_id: str) -> Room:
        room = await self.rooms.directory.get(table_id)
        if room is None or room.kind is not RoomKind.TABLE:
            raise HubError("not_found", f"no table {table_id}")
        return room

    async def _sit_reply(self, table_id: str, seats: int) -> TableSitReply:
        taken = await self.store.set_size(seats_key(table_id))
        return {"table": table_id, "seats": seats, "taken": min(taken, seats)}

    async def _claim(self, session: Session, table_id: str, seats: int) -> None:
        identity = session.identity
        assert identity is not None
        token = secrets.token_hex(8)
        _, size = await self.store.set_add_counted(seats_key(table_id), token)
        if size > seats:
            await self.store.set_remove(seats_key(table_id), token)
            raise HubError("conflict", f"table {table_id} is full")
        holder = Holder(token, identity.user_id, identity.name, round(time.time(), 3))
        # Known here before the store names it, so the check never takes it for a stale seat.
        self._held[session.sid] = (table_id, self.clock())
        try:
            await self.store.hash_set(holders_key(table_id), session.sid, pack(holder.to_record()))
        except BaseException:
            self._held.pop(session.sid, None)
            with contextlib.suppress(Exception):
                await self.store.set_remove(seats_key(table_id), token)
            raise
        self.feed.changed_here((LOBBY,))

    async def _take_over(self, session: Session, table_id: str) -> bool:
        """Move a seat the caller's user holds at ``table_id`` through another session to
        ``session`` (that session is then taken out of the table); whether one moved."""
        identity = session.identity
        assert identity is not None
        moved = False
        for sid, holder in (await self._holders(table_id)).items():
            if holder.user != identity.user_id or sid == session.sid:
                continue
            taken = await self.store.hash_take(holders_key(table_id), [sid])
            if taken is None:
                continue  # released meanwhile
            seat = Holder.from_record(unpack(taken[sid])).seat
            if moved:
                # A second seat of the same person (two sessions sat at once): freed.
                await self.store.set_remove(seats_key(table_id), seat)
            else:
                moved = True
                mine = Holder(seat, identity.user_id, identity.name, round(time.time(), 3))
                self._held[session.sid] = (table_id, self.clock())
                try:
                    await self.store.hash_set(
                        holders_key(table_id), session.sid, pack(mine.to_record())
                    )
                except BaseException:
                    self._held.pop(session.sid, None)
                    with contextlib.suppress(Exception):
                        await self.store.set_remove(seats_key(table_id), seat)
                    raise
            await self.node.signal(
                user_topic(identity.user_id), "table.moved", {"table": table_id, "sid": sid}
            )
        if moved:
            self.feed.changed_here((LOBBY,))
        return moved

    async def _check_seated(self, ctx: CommandContext, room: RoomInfo, role: Role) -> None:
        """A table room is for those holding a seat there: ``closed`` once the event is over,
        else ``forbidden`` without a seat (a seat the person holds through another session
        moves to this one)."""
        if room.kind != RoomKind.TABLE:
            return
        self.rooms.event.require_open("the lounge tables are")
        if ctx.session.sid in self._sitting:
            raise HubError("conflict", "a table.sit of this session is under way")
        sid = ctx.session.sid
        held = self._held.get(sid)
        if held is not None and held[0] == room.id:
            if await self.store.hash_get(holders_key(room.id), sid) is not None:
                return
            # Gone from the store (a broker that lost its data): no seat after all.
            if self._held.get(sid) == held:
                del self._held[sid]
            held = None
        if held is None and await self._take_over(ctx.session, room.id):
            return
        raise HubError("forbidden", f"take a seat first: table.sit {{table: {room.id}}}")

    # --- releasing ------------------------------------------------------------------------------

    async def release(self, sid: str) -> None:
        """Release the seat session ``sid`` of this node holds, if any (once, whoever else
        releases it meanwhile)."""
        held = self._held.pop(sid, None)
        if held is not None:
            await self._release_in_store(held[0], sid)

    async def _release_in_store(self, table_id: str, sid: str) -> bool:
        taken = await self.store.hash_take(holders_key(table_id), [sid])
        if taken is None:
            return False
        await self.store.set_remove(
            seats_key(table_id), Holder.from_record(unpack(taken[sid])).seat
        )
        self.feed.changed_here((LOBBY,))
        return True

    async def _left(self, session: Session, room_id: str) -> None:
        held = self._held.get(session.sid)
        if held is not None and held[0] == room_id:
            await self.release(session.sid)

    async def _session_closed(self, session: Session) -> None:
        await self.release(session.sid)

    def _moved(self, data: Any) -> None:
        table_id, sid = str(data["table"]), str(data["sid"])
        held = self._held.get(sid)
        if held is not None and held[0] == table_id:
            del self._held[sid]  # the seat is the other session's now: nothing to release
        session = self.node.sessions.get(sid)
        if session is not None and table_id in session.rooms:
            self.node.spawn(self._take_out(session, table_id, "moved", MOVED_TEXT))

    async def _take_out(
        self, session: Session, table_id: str, reason: Literal["closed", "moved"], text: str
    ) -> None:
        """Take ``session`` out of the table's room, then tell it so (told even when the
        broker failed to drop its presence: the node follows the room for it no more)."""
        left: TableLeftEvent = {
            "ev": "table.left",
            "room": table_id,
            "reason": reason,
            "text": text,
            "key": f"table.{reason}",
        }
        try:
            await self.rooms.leave_room(session, table_id)
        finally:
            session.send(left)

    async def _event_closed(self, record: EventClosed) -> None:
        """The event is over: everyone seated on this node is taken out of the tables (with
        ``table.left``), and every seat of this node's sessions released."""
        for room_id in list(self.node.streams):
            room = self.rooms.directory.cached(room_id)
            if room is None or room.kind is not RoomKind.TABLE:
                continue
            for session in self.node.followers(room_id):
                try:
                    await self._take_out(session, room_id, "closed", CLOSED_TEXT)
                except Exception:
                    log.warning("%s not taken out of %s", session.sid, room_id, exc_info=True)
        for sid in list(self._held):
            with contextlib.suppress(Exception):
                await self.release(sid)

    async def _node_swept(self, dead: str, rooms: list[str]) -> None:
        """The seats of a dead node's sessions are released (whether or not they had joined)."""
        prefix = f"{dead}."
        for room in await self._table_rooms():
            for sid in await self.store.hash_get_all(holders_key(room.id)):
                if sid.startswith(prefix):
                    await self._release_in_store(room.id, sid)

    async def reconcile(self) -> None:
        """Check this node's seats against the store: release those whose session is gone, that
        were never used within :data:`SIT_GRACE` (or all of them once the event is over), and
        those this node no longer knows of at two checks in a row (a release a broker failure
        cut short); take out sessions whose seat moved without them hearing it; remove seat
        tokens nobody held at two checks in a row."""
        me = f"{self.node.node_id}."
        now = self.clock()
        orphaned: set[tuple[str, str]] = set()
        unknown: set[tuple[str, str, str]] = set()
        for room in await self._table_rooms():
            table_id = room.id
            holders = await self._holders(table_id)
            for sid, holder in holders.items():
                if not sid.startswith(me):
                    continue
                held = self._held.get(sid)
                if self._stale(sid, table_id, now):
                    self._held.pop(sid, None)
                    await self._release_in_store(table_id, sid)
                elif held is None or held[0] != table_id:
                    # Seen twice with the same seat: no sit of this session is under way.
                    if (table_id, sid, holder.seat) in self._unknown:
                        await self._release_in_store(table_id, sid)
                    else:
                        unknown.add((table_id, sid, holder.seat))
            for sid, (held_at, since) in list(self._held.items()):
                if held_at == table_id and sid not in holders and now - since > SIT_GRACE:
                    self._moved({"table": table_id, "sid": sid})
            tokens = await self.store.set_members(seats_key(table_id))
            for token in orphans(tokens, holders.values()):
                if (table_id, token) in self._orphans:
                    await self.store.set_remove(seats_key(table_id), token)
                    self.feed.changed_here((LOBBY,))
                else:
                    orphaned.add((table_id, token))
        self._orphans = orphaned
        self._unknown = unknown

    def _stale(self, sid: str, table_id: str, now: float) -> bool:
        """Whether this node's session ``sid`` holds a seat at ``table_id`` it will not use:
        the session is gone, the event is over, or it never joined within the grace."""
        held = self._held.get(sid)
        session = self.node.sessions.get(sid)
        if session is None:
            return True
        if held is None or held[0] != table_id:
            return False  # judged by the two-check rule
        if self.rooms.event.is_closed:
            return True
        return table_id not in session.rooms and now - held[1] > SIT_GRACE

    async def restore(self, room_id: str) -> None:
        """The broker lost its data (Redis came back empty): put back the seats this node's
        sessions hold at table ``room_id`` (people seated before the loss were at most the
        seats, so the count stays exact once every node restored its own)."""
        room = await self.rooms.directory.get(room_id)
        if room is None or room.kind is not RoomKind.TABLE:
            return
        for sid, (table_id, _) in list(self._held.items()):
            session = self.node.sessions.get(sid)
            if table_id != room_id or session is None or session.identity is None:
                continue
            if await self.store.hash_get(holders_key(room_id), sid) is not None:
                continue
            token = secrets.token_hex(8)
            identity = session.identity
            holder = Holder(token, identity.user_id, identity.name, round(time.time(), 3))
            await self.store.set_add(seats_key(room_id), token)
            await self.store.hash_set(holders_key(room_id), sid, pack(holder.to_record()))
            self.feed.changed_here((LOBBY,))

    # --- the lobby's list -----------------------------------------------------------------------

    async def listing(self) -> list[TableEntry]:
        """Every table, the declared ones first in the file's order, with its seats taken and
        who sits there. Calls made while a read is under way share it: a burst of lobby joins
        costs a few reads of the tables, not one each."""
        return await self._shared()

    async def _read_listing(self) -> list[TableEntry]:
        rooms = await self._table_rooms()
        return list(await asyncio.gather(*(self._entry(room) for room in rooms)))

    async def _table_rooms(self) -> list[Room]:
        return ordered(await self.rooms.directory.all(), self.tables)

    async def _holders(self, table_id: str) -> dict[str, Holder]:
        raw = await self.store.hash_get_all(holders_key(table_id))
        return {sid: Holder.from_record(unpack(record)) for sid, record in raw.items()}

    async def _entry(self, room: Room) -> TableEntry:
        table = self.defs.get(room.id)
        seats = seats_of(room, table)
        holders, tokens = await asyncio.gather(
            self._holders(room.id), self.store.set_members(seats_key(room.id))
        )
        return {
            "id": room.id,
            "title": room.title,
            "topic": table.topic if table is not None else None,
            "seats": seats,
            "taken": min(len(tokens), seats),
            "occupants": [
                {"user": holder.user, "name": holder.name} for holder in occupants(holders, tokens)
            ],
        }

    async def _snapshot(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[TablesPart | Exception]:
        """In a lobby, ``tables`` (one read for all ``entrants``); at a table, nothing, or for
        an entrant whose seat went while the join was under way (unused past the grace, moved,
        the event's close) the error that fails their join and takes them back out."""
        if room.kind == RoomKind.TABLE:
            parts: list[TablesPart | Exception] = []
            for entrant in entrants:
                held = self._held.get(entrant.ctx.session.sid)
                if held is None or held[0] != room.id:
                    gone = f"your seat at {room.id} is gone: sit down again"
                    parts.append(HubError("forbidden", gone))
                else:
                    parts.append({})
            return parts
        if room.kind != RoomKind.LOBBY:
            return [{} for _ in entrants]
        listed = await self.listing()
        return [{"tables": listed} for _ in entrants]

    async def _read(self, mark: Mark) -> Derived:
        # A read of its own: one shared with a join may have started before the change.
        listed = await self._read_listing()
        event: TablesEvent = {"ev": "tables", "room": mark[0], "tables": listed}
        return Derived(event)
