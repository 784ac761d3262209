"""Rooms on a node: ``room.create``, ``join``, ``leave``, ``presence`` and ``announce`` (and
their HTTP API), presence events, and the join other features extend through room hooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub import fields
from hub.auth import Identity, Role, TokenAuthority
from hub.batching import KeyedBatches
from hub.coalesce import CoalescedEvent, Derived
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError, own_copy
from hub.feature import Entrant, FeatureContext, RoomHooks, RoomInfo
from hub.http_api import api, bearer, json_body, organizer
from hub.node import Node, Position
from hub.session import Session
from hub.wire import EmptyReply
from rooms.directory import RoomDirectory, default_rooms
from rooms.event_state import POLL_INTERVAL, EventClosed, EventState
from rooms.model import LOBBY, Room, RoomKind, parse_room
from rooms.presence import PresenceBatcher, PresenceDue
from rooms.roles import RoleBook, effective_role
from rooms.shared_snapshot import SharedRoomSnapshots
from rooms.wire import (
    AnnounceReply,
    EventClosedEvent,
    EventCloseReply,
    EventHello,
    JoinReply,
    NoticeEvent,
    NoticeFields,
    NoticesPart,
    PresenceChange,
    PresenceEntry,
    PresenceMember,
    PresenceReply,
    RoomCreateReply,
)

MAX_ANNOUNCE = 2000
EVENT_CLOSED_TEXT = "The event is over. Thank you for taking part!"
# Names EVENT_CLOSED_TEXT on the wire (a notice's and event.closed's `key`): clients with a
# catalogue show their own text for it, in their person's language.
EVENT_CLOSED_TEXT_KEY = "event.closed"
# The newest notices of a room the join snapshot carries (a log kept apart from the history).
NOTICES_KEPT = 20
PRESENCE_PAGE_DEFAULT = 100
PRESENCE_PAGE_MAX = 500

log = logging.getLogger(__name__)


def notices_key(room: str) -> str:
    """The broker log of a room's newest ``notice`` events (score: their seq)."""
    return f"notices:{room}"


class RoomsFeature:
    """The rooms of one node. Other features extend a join through the room hooks of their
    :class:`~hub.feature.FeatureContext` (snapshot parts, join checks, leave hooks), which this
    feature runs."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.directory = RoomDirectory(node.store)
        self.batcher = PresenceBatcher(node.config.presence_interval)
        self.roles = RoleBook(node.store)
        self.event = EventState(node.store)
        self.hooks = RoomHooks()
        self.shared_snapshots = SharedRoomSnapshots(self.hooks.room_snapshot)
        # The joins of a room this node takes together, entered together.
        self._joins: KeyedBatches[str, Entering, JoinReply] = KeyedBatches(
            self._join_batch, self._abandoned_join
        )
        self.authority: TokenAuthority | None = None
        # Awaited with (dead node, rooms it had members in) once a survivor swept it.
        self.node_swept_hooks: list[Callable[[str, list[str]], Awaitable[None]]] = []

    def install(self, ctx: FeatureContext) -> None:
        """Register the room ops, their HTTP API, the presence jobs and the staff record."""
        self.hooks = ctx.room_hooks
        self.shared_snapshots = SharedRoomSnapshots(self.hooks.room_snapshot)
        ctx.on_stop(self._joins.close)
        ctx.on_stop(self.shared_snapshots.close)
        ctx.on_stop(self.roles.close)
        self.authority = ctx.authority
        ctx.command("room.create", self.room_create)
        ctx.command("join", self.join)
        ctx.command("leave", self.leave)
        ctx.command("presence", self.presence)
        ctx.command("announce", self.announce)
        ctx.route("/api/rooms", api(self._http_create_room), methods=["POST"])
        ctx.route("/api/rooms/{room}/announce", api(self._http_announce), methods=["POST"])
        ctx.route("/api/event/close", api(self._http_close_event), methods=["POST"])
        ctx.on_start(self.event.poll)
        ctx.every(POLL_INTERVAL, self.event.poll)
        ctx.on_hello(self._event_hello)
        self.event.on_close(self._tell_sessions)
        ctx.on_session_closed(self._session_closed)
        ctx.on_history_lost(self.restore)
        ctx.on_room_snapshot(self._notices)
        ctx.on_hello(self._record_staff)
        interval = self.node.config.presence_interval
        ctx.on_signal("presence", self._presence_signal)
        self.presence_due = PresenceDue(self.batcher)
        self.presence_events = CoalescedEvent(
            ctx, None, self._read_presence, interval=interval / 4, policy=self.presence_due
        )
        ctx.on_stored("role", self.roles.on_role_event)
        ctx.every(self.node.config.presence_ttl / 3, self.refresh_presence)

    async def _record_staff(self, ctx: CommandContext, identity: Identity) -> None:
        # What other nodes know of a moderator's rank while they are connected elsewhere.
        if identity.role >= Role.MODERATOR:
            await self.roles.record_staff(identity)

    # --- commands -----------------------------------------------------------------------------

    async def room_create(self, ctx: CommandContext, cmd: dict[str, Any]) -> RoomCreateReply:
        """Create a room (organizers)."""
        if ctx.identity.role < Role.ORGANIZER:
            raise HubError("forbidden", "only organizers create rooms")
        room = await self.create_room(cmd)
        return {"room": room.describe()}

    async def create_room(self, fields: dict[str, Any]) -> Room:
        """Validate and create a room (also used by ``POST /api/rooms``)."""
        room = parse_room(fields)
        if room.parent is not None and await self.directory.get(room.parent) is None:
            raise HubError("not_found", f"no parent room {room.parent}")
        if not await self.directory.create(room):
            raise HubError("conflict", f"room {room.id} exists already")
        return room

    async def join(self, ctx: CommandContext, cmd: dict[str, Any]) -> JoinReply:
        """Enter a room: its position, live state and, with ``since``, what was missed. The
        joins of a room a node takes together enter it together (see :meth:`_enter`)."""
        room_id = fields.room_id(cmd.get("room"))
        since = fields.optional_integer(cmd.get("since"), "since", 0, fields.MAX_SEQ)
        epoch = fields.cursor(cmd.get("epoch"), "epoch")
        return await self._joins.submit(room_id, Entering(ctx, since, epoch))

    async def _join_batch(
        self, room_id: str, entering: Sequence[Entering]
    ) -> list[JoinReply | BaseException]:
        """The joins of ``room_id`` taken together: in waves in which each session joins once
        (a session's second join of the batch is a rejoin, after its first)."""
        room = await self.directory.require(room_id)
        outcomes: list[JoinReply | BaseException | None] = [None] * len(entering)
        pending = list(range(len(entering)))
        while pending:
            seen: set[str] = set()
            wave: list[int] = []
            later: list[int] = []
            for i in pending:
                sid = entering[i].ctx.session.sid
                (later if sid in seen else wave).append(i)
                seen.add(sid)
            entered = await self._enter(room, [entering[i] for i in wave])
            for i, outcome in zip(wave, entered, strict=True):
                outcomes[i] = outcome
            pending = later
        return [outcome for outcome in outcomes if outcome is not None]

    async def _abandoned_join(self, room_id: str, entering: Entering, reply: JoinReply) -> None:
        # Its caller went away: the session does not stay in a room nobody told it it is in.
        session = entering.ctx.session
        if session.open and room_id in session.rooms:
            await self.leave_room(session, room_id)

    async def enter_together(self, room: Room, sessions: Sequence[Session]) -> dict[str, JoinReply]:
        """Put this node's ``sessions`` in ``room`` at once, as a ``join`` of each (without
        ``since``) would (see :meth:`_enter`). Sessions already in the room, not authenticated,
        or refused by a join check (a ban...) are left out, and so is any whose entry failed;
        rooms with a capacity take nobody this way (their joins count one by one).

        Returns sid -> the join reply of each session that entered. Each of them holds the
        room's live events back (:meth:`Session.hold`, with ``room`` as the owner) until the
        caller has sent it what it owes it and called ``session.release(room)``."""
        if room.capacity is not None:
            return {}
        waiting = [s for s in sessions if s.open and s.identity and room.id not in s.rooms]
        if not waiting:
            return {}
        entering = [Entering(CommandContext(self.node, s), owner=room) for s in waiting]
        outcomes = await self._enter(room, entering)
        return {
            session.sid: outcome
            for session, outcome in zip(waiting, outcomes, strict=True)
            if not isinstance(outcome, BaseException) and session.open
        }

    async def _enter(
        self, room: Room, entering: Sequence[Entering]
    ) -> list[JoinReply | BaseException]:
        """Put distinct sessions in ``room`` together, each as its own ``join`` would: their
        roles and every join check read once for them all, the room's capacity shared out in
        order, one presence write and one announcement of those new to the room, and the
        snapshots' room-wide parts read once. Returns for each its join reply, or the error its
        join gets (a refusal, a failed step: that session is not left in the room, and what was
        held back of the room for it is dropped).

        Each session entering holds the room's live events back from the moment it follows the
        room, with its ``owner`` (a join's command context, released by the dispatcher once
        its reply is queued; for a move, the caller releases it after a success, and this
        after a failure)."""
        sessions = [e.ctx.session for e in entering]
        outcomes: list[JoinReply | BaseException | None] = [None] * len(entering)
        rejoin = [room.id in session.rooms for session in sessions]
        roles = await self.roles.session_roles(sessions, room.id)
        entrants = [Entrant(e.ctx, role) for e, role in zip(entering, roles, strict=True)]
        for i, refusal in enumerate(await self._refusals(room, entrants)):
            outcomes[i] = refusal
        # A table's seats are its bound (claimed exactly by table.sit), not its presence count.
        if room.capacity is not None and room.kind is not RoomKind.TABLE:
            counted = [
                i
                for i, outcome in enumerate(outcomes)
                if outcome is None and not rejoin[i] and roles[i] < Role.MODERATOR
            ]
            if counted:
                free = room.capacity - await self.node.broker.presence_count(room.id)
                for i in counted[max(free, 0) :]:
                    outcomes[i] = HubError("conflict", f"room {room.id} is full")
        positions = await self._follow_all(room.id, entering, outcomes)
        followed = list(positions)
        entered_roles: dict[int, Role] = {}
        members = 0
        try:
            if followed:
                # Followed from here on: the room's role events keep the loaded roles current.
                await self.roles.load(room.id)
                await self.roles.record_many(room.id, [_identity(sessions[i]) for i in followed])
                entered_roles = {i: self.roles.cached_role(sessions[i], room.id) for i in followed}
                news = [_change(sessions[i]) for i in followed if not rejoin[i]]
                # The room's nodes hear of the new members in the same broker call.
                members = await self.node.broker.presence_add_many(
                    room.id,
                    {sessions[i].sid: self._entry(sessions[i], entered_roles[i]) for i in followed},
                    announce=self.node.signal_payload(
                        "presence", {"room": room.id, "joined": True, "entries": news}
                    )
                    if news
                    else None,
                )
        except BaseException as error:
            for n, i in enumerate(followed):
                await self._undo_entry(room.id, entering[i], rejoin[i])
                outcomes[i] = own_copy(error) if n and isinstance(error, Exception) else error
            if not isinstance(error, Exception):
                raise
            followed = []
        replies = await self._join_replies(
            room, [(entering[i].ctx, entered_roles[i], positions[i]) for i in followed], members
        )
        for i, result in zip(followed, replies, strict=True):
            if isinstance(result, BaseException):
                await self._undo_entry(room.id, entering[i], rejoin[i])
            outcomes[i] = result
        # A session that closed meanwhile was not in the room when its leave hooks ran.
        for i in followed:
            if not sessions[i].open:
                with contextlib.suppress(Exception):
                    await self.leave_room(sessions[i], room.id)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _follow_all(
        self,
        room_id: str,
        entering: Sequence[Entering],
        outcomes: list[JoinReply | BaseException | None],
    ) -> dict[int, Position]:
        """Make each entrant with no outcome yet follow the room (holding its live events back
        first): their positions by index; a failed follow becomes that entrant's outcome. Those
        with ``since`` read what they missed, together; the others follow in turn, since after
        the first the room's known position serves them without a read."""
        going = [i for i, outcome in enumerate(outcomes) if outcome is None]
        for i in going:
            entering[i].ctx.session.hold(entering[i].holder)
        recovering = [i for i in going if entering[i].since is not None]
        results: dict[int, Position | BaseException] = {}
        if len(recovering) > 1:
            read = await asyncio.gather(
                *(self._follow(room_id, entering[i]) for i in recovering), return_exceptions=True
            )
            results.update(zip(recovering, read, strict=True))
            going = [i for i in going if i not in results]
        for i in going:
            try:
                results[i] = await self._follow(room_id, entering[i])
            except Exception as error:
                results[i] = error
        positions: dict[int, Position] = {}
        for i, result in sorted(results.items()):
            if isinstance(result, BaseException):
                # A failed rejoin takes the session out of the room: the node may follow it no
                # more.
                self._forget_unfollowed(room_id)
                if entering[i].owner is not None:
                    entering[i].ctx.session.release(entering[i].owner)
                outcomes[i] = result
                if not isinstance(result, Exception):
                    raise result
            else:
                positions[i] = result
        return positions

    async def _follow(self, room_id: str, entering: Entering) -> Position:
        return await self.node.follow(entering.ctx.session, room_id, entering.since, entering.epoch)

    async def _undo_entry(self, room_id: str, entering: Entering, rejoin: bool) -> None:
        """An entry failed after its session followed the room: the session does not stay in
        it (a rejoin keeps its place), what was held back of the room for it is dropped, and a
        move's hold is let go."""
        session = entering.ctx.session
        if not rejoin:
            with contextlib.suppress(Exception):
                await self.leave_room(session, room_id)
            session.discard_held(room_id)
        if entering.owner is not None:
            session.release(entering.owner)

    async def _join_replies(
        self,
        room: Room,
        entered: Sequence[tuple[CommandContext, Role, Position]],
        members: int,
    ) -> list[JoinReply | Exception]:
        """The join replies of sessions that follow ``room`` (each from its position) and are
        counted among its ``members``: every feature's snapshot parts, typed in their wire
        modules and merged into an open map. The room-wide parts come from a run shared with
        the joins asking alongside; each feature's own part runs once for all of them, every
        part at once. A part that fails for a session fails its join (a part that fails as a
        whole, each of theirs)."""
        if not entered:
            return []
        entrants = [Entrant(ctx, role) for ctx, role, _ in entered]
        asked = {role: self.shared_snapshots.get(room, role) for _, role, _ in entered}
        answers = await asyncio.gather(
            *(part(room, entrants) for part in self.hooks.snapshot), return_exceptions=True
        )
        shared: dict[Role, Mapping[str, Any] | Exception] = {}
        for role, reading in asked.items():
            try:
                shared[role] = await reading
            except Exception as error:
                shared[role] = error
        replies: list[JoinReply | Exception] = []
        given: set[int] = set()  # failures handed out once already: the next get a copy
        described = room.describe()  # the same for each (read only)
        for n, (_, role, position) in enumerate(entered):
            room_wide = shared[role]
            failure = room_wide if isinstance(room_wide, Exception) else None
            snapshot: dict[str, Any] = {}
            if failure is None:
                snapshot.update(room_wide)  # type: ignore[arg-type]
                for answer in answers:
                    if isinstance(answer, BaseException):
                        if not isinstance(answer, Exception):
                            raise answer
                        failure = answer
                        break
                    own = answer[n]
                    if isinstance(own, Exception):
                        failure = own
                        break
                    snapshot.update(own)
            if failure is not None:
                replies.append(own_copy(failure) if id(failure) in given else failure)
                given.add(id(failure))
                continue
            reply: JoinReply = {
                "room": described,
                "role": role.label,
                "seq": position.seq,
                "epoch": position.epoch,
                "members": members,
                "snapshot": snapshot,
            }
            if position.missed is not None:
                reply["missed"] = position.missed
                reply["recovered"] = position.recovered
            replies.append(reply)
        return replies

    async def require_may_enter(self, ctx: CommandContext, room_id: str) -> Room:
        """The room, once the caller may join it: what reads a room from outside (its history,
        its members) asks the same as ``join`` does (the join checks: bans, breakout
        assignments...), capacity aside. ``not_found``, or the check's error (``forbidden``)."""
        room = await self.directory.require(room_id)
        if room_id not in ctx.session.rooms:
            role = await self.roles.current_role(ctx.session, room_id)
            await self._check_entry(ctx, room, role)
        return room

    async def _check_entry(self, ctx: CommandContext, room: Room, role: Role) -> None:
        """Every feature's join check (bans, breakout assignments...) on one entrant: the first
        to refuse raises its error."""
        refusal = (await self._refusals(room, [Entrant(ctx, role)]))[0]
        if refusal is not None:
            raise refusal

    async def _refusals(self, room: Room, entrants: Sequence[Entrant]) -> list[HubError | None]:
        """Every feature's join check on ``entrants``, in registration order, each on those no
        earlier one refused: for each entrant, the first refusal, or None when all let it in."""
        refusals: list[HubError | None] = [None] * len(entrants)
        for check in self.hooks.join_checks:
            asked = [i for i, refusal in enumerate(refusals) if refusal is None]
            if not asked:
                break
            answers = await check(room, [entrants[i] for i in asked])
            for i, answer in zip(asked, answers, strict=True):
                refusals[i] = answer
        return refusals

    async def leave(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Leave a room (``not_found`` if the session is not in it)."""
        room_id = fields.room_id(cmd.get("room"))
        if not await self.leave_room(ctx.session, room_id):
            raise HubError("not_found", f"not in room {room_id}")
        return {}

    async def leave_room(self, session: Session, room_id: str) -> bool:
        """Take ``session`` out of a room: its stream, its presence, its members' lists. The
        leave hooks run even when the broker fails to drop the presence entry (it then expires,
        and the error propagates)."""
        if not await self.node.unfollow(session, room_id):
            return False
        self._forget_unfollowed(room_id)
        try:
            delta = self._delta(session, room_id, False)
            # The other nodes hear of it through the room's topic, in the same broker call.
            await self.node.broker.presence_remove(
                room_id, [session.sid], announce=self.node.signal_payload("presence", delta)
            )
            # The node no longer follows the room if this was its last member: feed our own
            # batcher directly.
            if room_id not in self.node.streams:
                self._presence_signal(delta)
        except Exception:
            log.warning("presence of %s in %s not updated", session.sid, room_id, exc_info=True)
            raise
        finally:
            for hook in self.hooks.leave:
                try:
                    await hook(session, room_id)
                except Exception:
                    log.exception("leave hook failed for %s", room_id)
        return True

    def _forget_unfollowed(self, room_id: str) -> None:
        """Drop the roles this node holds of ``room_id`` once it follows the room no more
        (nothing keeps them current after that)."""
        if room_id not in self.node.streams:
            self.roles.forget(room_id)

    async def presence(self, ctx: CommandContext, cmd: dict[str, Any]) -> PresenceReply:
        """A page of a room's members, ordered by sid: ``{members, count, next?}``, for those
        who may join it (see :meth:`require_may_enter`)."""
        room_id = fields.room_id(cmd.get("room"))
        await self.require_may_enter(ctx, room_id)
        after = fields.cursor(cmd.get("after"), "after") or ""
        limit = (
            fields.optional_integer(cmd.get("limit"), "limit", 1, PRESENCE_PAGE_MAX)
            or PRESENCE_PAGE_DEFAULT
        )
        page = await self.node.broker.presence_page(room_id, after, limit + 1)
        members = [_member(sid, unpack(info)) for sid, info in page[:limit]]
        reply: PresenceReply = {
            "members": members,
            "count": await self.node.broker.presence_count(room_id),
        }
        if len(page) > limit:
            reply["next"] = members[-1]["sid"]
        return reply

    async def announce(self, ctx: CommandContext, cmd: dict[str, Any]) -> AnnounceReply:
        """Store a notice in a room (moderators)."""
        room_id = fields.room_id(cmd.get("room"))
        await self.directory.require(room_id)
        if await self.roles.current_role(ctx.session, room_id) < Role.MODERATOR:
            raise HubError("forbidden", "only moderators announce")
        text = fields.text(cmd.get("text"), "text", MAX_ANNOUNCE)
        return {"seq": await self.post_notice(room_id, text, ctx.identity.user_id)}

    async def post_notice(self, room_id: str, text: str, sender: str) -> int:
        """Store a ``notice`` event and keep it among the room's newest (the join snapshot's
        ``notices``); returns its seq (also used by the HTTP announce and breakout broadcasts).
        Once the event is stored the notice is posted: a failure to keep it only costs the
        snapshot a line, so it is logged, not raised."""
        published: NoticeFields = {"text": text, "from": sender}
        seq = await self.node.publish_event(room_id, "notice", published)
        event: NoticeEvent = {"ev": "notice", "room": room_id, "seq": seq, **published}
        try:
            await self.node.store.log_append(
                notices_key(room_id), seq, pack(event), max_len=NOTICES_KEPT
            )
        except Exception:
            log.warning("notice %s of %s left out of its snapshot log", seq, room_id, exc_info=True)
        return seq

    async def close_event(self, by: str, text: str | None = None) -> EventCloseReply:
        """Close the event (see :mod:`rooms.event_state`) and post its notice in the lobby,
        once however often this runs (a retry completes a close a failure interrupted). The
        notice is ``text``, or without one the hub's :data:`EVENT_CLOSED_TEXT` with its key."""
        if text is None:
            record, first = await self.event.close(by, EVENT_CLOSED_TEXT, EVENT_CLOSED_TEXT_KEY)
        else:
            record, first = await self.event.close(by, text)
        published: NoticeFields = {"text": record["text"], "from": record["by"]}
        if "key" in record:
            published["key"] = record["key"]
        seq, _ = await self.node.publish_event_once(LOBBY, "notice", published, "event-closed")
        event: NoticeEvent = {"ev": "notice", "room": LOBBY, "seq": seq, **published}
        await self.node.store.log_append(notices_key(LOBBY), seq, pack(event), max_len=NOTICES_KEPT)
        return {"closed_at": record["closed_at"], "closed": first}

    async def _tell_sessions(self, record: EventClosed) -> None:
        closed: EventClosedEvent = {
            "ev": "event.closed",
            "closed_at": record["closed_at"],
            "text": record["text"],
        }
        if "key" in record:
            closed["key"] = record["key"]
        for sessions in list(self.node.users.values()):
            for session in list(sessions.values()):
                session.send(closed)

    async def _event_hello(self, ctx: CommandContext, identity: Identity) -> dict[str, Any] | None:
        if self.event.record is None:
            return None
        event: EventHello = {"closed_at": self.event.record["closed_at"]}
        return {"event": event}

    async def _notices(self, room: RoomInfo, role: Role) -> NoticesPart:
        items = await self.node.store.log_range(notices_key(room.id), None, NOTICES_KEPT)
        return {"notices": [unpack(item) for _, item in items]}

    # --- HTTP API ---------------------------------------------------------------------------------

    def _authority(self) -> TokenAuthority:
        if self.authority is None:
            raise RuntimeError("the rooms feature is not installed")
        return self.authority

    async def _http_create_room(self, request: Request) -> Response:
        organizer(request, self._authority())
        room = await self.create_room(await json_body(request))
        created: RoomCreateReply = {"room": room.describe()}
        return JSONResponse(created, status_code=201)

    async def _http_announce(self, request: Request) -> Response:
        user = organizer(request, self._authority())
        room = await self.directory.require(request.path_params["room"])
        text = fields.text((await json_body(request)).get("text"), "text", MAX_ANNOUNCE)
        announced: AnnounceReply = {"seq": await self.post_notice(room.id, text, user)}
        return JSONResponse(announced)

    async def _http_close_event(self, request: Request) -> Response:
        user = organizer(request, self._authority())
        body = await json_body(request) if await request.body() else {}
        text = body.get("text")
        if text is not None:
            text = fields.text(text, "text", MAX_ANNOUNCE)
        return JSONResponse(await self.close_event(user, text))

    async def token_role(self, request: Request, room: str, needed: str) -> tuple[str, Role]:
        """The user id of the request's bearer token and its role in ``room``, judged as room
        commands judge it: the token's role there (the event role raised by a ``rooms`` claim),
        unless a role stored with ``role.set`` replaces it (an organizer stays one), read from
        the broker. ``unauthorized`` (saying ``needed`` is needed) without a valid token."""
        identity = bearer(request, self._authority(), needed)
        stored: Role | None = None
        # Not a room id: no role can be stored for it, and nothing to read.
        if identity.role_in(room) is not Role.ORGANIZER and fields.ROOM_ID.fullmatch(room):
            entry = await self.roles.entry(room, identity.user_id)
            stored = entry.role if entry is not None else None
        return identity.user_id, effective_role(identity, room, stored)

    async def require_moderator_token(self, request: Request, room: str, what: str) -> None:
        """Passes a bearer token of a moderator (or more) of ``room``, judged as
        :meth:`token_role` judges it. ``unauthorized`` without a valid token, ``forbidden``
        (saying "only moderators of the room may ``what``") for anyone else."""
        _, role = await self.token_role(request, room, "a moderator's bearer token")
        if role < Role.MODERATOR:
            raise HubError("forbidden", f"only moderators of the room may {what}")

    # --- presence -------------------------------------------------------------------------------

    @staticmethod
    def _entry(session: Session, role: Role) -> bytes:
        identity = session.identity
        assert identity is not None
        entry: PresenceEntry = {"user": identity.user_id, "name": identity.name, "role": role.label}
        return pack(entry)

    @staticmethod
    def _delta(session: Session, room_id: str, joined: bool) -> dict[str, Any]:
        return {"room": room_id, "joined": joined, "entry": _change(session)}

    def on_node_swept(self, hook: Callable[[str, list[str]], Awaitable[None]]) -> None:
        """Await ``hook(node, rooms)`` on the survivor that swept a dead node's sessions out
        of ``rooms`` (what features hold for those sessions goes too)."""
        self.node_swept_hooks.append(hook)

    async def announce_left(self, room_id: str, sid: str, user: str, name: str) -> None:
        """Tell ``room_id``'s nodes that session ``sid`` left (its presence entry is gone
        already): their members get it in the next ``presence`` batch."""
        entry: PresenceChange = {"sid": sid, "user": user, "name": name}
        await self.node.signal(
            room_id, "presence", {"room": room_id, "joined": False, "entry": entry}
        )

    def _presence_signal(self, data: Any) -> None:
        # One session's change (``entry``) or several sessions' (``entries``: a move).
        room = data["room"]
        for entry in data["entries"] if "entries" in data else [data["entry"]]:
            if data["joined"]:
                self.batcher.joined(room, entry)
            else:
                self.batcher.left(room, entry)

    async def flush_presence(self) -> None:
        """Send each room's due presence batch to this node's members of the room."""
        await self.presence_events.flush()

    async def _read_presence(self, mark: tuple[str, ...]) -> Derived | None:
        room = mark[0]
        count = await self.node.broker.presence_count(room)
        batch = self.presence_due.take(room)
        return Derived(batch.event(count)) if batch is not None else None

    async def refresh_presence(self) -> None:
        """Keep this node's presence entries alive in the broker; members whose entries expired
        meanwhile (the broker was out of reach for longer than their ttl) are put back, and
        their rooms told they are there again."""
        for room, members in list(self.node.streams.items()):
            sessions = {session.sid: session for session in members.all()}
            if not sessions:
                continue
            for sid in await self.node.broker.presence_refresh(room, list(sessions)):
                session = sessions[sid]
                if session.identity is None or room not in session.rooms:
                    continue
                entry = self._entry(session, self.roles.cached_role(session, room))
                announce = self.node.signal_payload("presence", self._delta(session, room, True))
                await self.node.broker.presence_add(room, sid, entry, announce=announce)

    async def restore(self, room_id: str) -> None:
        """The broker lost its data (Redis came back empty): put back the rooms this node knows
        and its members' presence in ``room_id``, which would otherwise stay lost."""
        await self.directory.ensure(default_rooms() + self.directory.known())
        for session in self.node.followers(room_id):
            if session.identity is not None:
                entry = self._entry(session, self.roles.cached_role(session, room_id))
                await self.node.broker.presence_add(room_id, session.sid, entry)

    async def _session_closed(self, session: Session) -> None:
        for room_id in list(session.rooms):
            # One room's failure (logged by leave_room) must not keep the session in the others.
            with contextlib.suppress(Exception):
                await self.leave_room(session, room_id)


@dataclass(frozen=True, slots=True)
class Entering:
    """A session entering a room: by ``join`` (``ctx`` is its command's, with the join's
    ``since`` and ``epoch``), or moved in by the hub (``owner``: what holds the room's live
    events back for it until it was told, the room)."""

    ctx: CommandContext
    since: int | None = None
    epoch: str | None = None
    owner: object | None = None

    @property
    def holder(self) -> object:
        """Who holds the session's events back while it enters: the owner, else the join's
        command context."""
        return self.owner if self.owner is not None else self.ctx


def _change(session: Session) -> PresenceChange:
    """What a presence signal says of ``session``."""
    identity = _identity(session)
    return {"sid": session.sid, "user": identity.user_id, "name": identity.name}


def _identity(session: Session) -> Identity:
    identity = session.identity
    assert identity is not None  # only authenticated sessions enter rooms
    return identity


def _member(sid: str, entry: PresenceEntry) -> PresenceMember:
    """A presence reply member: the broker's entry of ``sid``, with its sid first."""
    return {"sid": sid, **entry}
