"""Polls and elections on a node: ``poll.create``, ``poll.open`` (a poll the rooms file
declares, :mod:`polls.awards`), ``poll.vote``, ``poll.close``, ``poll.get``, the batched
``poll.tally`` event, closing when the duration runs out, the ``polls``, ``closed_polls`` and
``awards`` parts of the join snapshot, the organizers' export and their HTTP open.

Shared state lives in the node's store, so every node sees the same polls and tallies:

* ``polls:{room}`` (hash): poll id -> the packed :class:`~polls.model.Poll` record (a closed
  poll's record keeps its final tally). A declared poll is opened by writing its record only
  if absent: of concurrent opens, on any nodes, exactly one writes it; its ``poll`` event is
  published once under the name ``poll:{room}:{id}:opened``, so an open that failed halfway
  is announced by the next attempt (which answers ``conflict``);
* ``poll:{room}:{id}``: the poll's ballots and tally in the :mod:`polls.ballots` box, moved
  atomically (one ballot per user whatever the sessions and nodes; who voted never leaves it);
* ``poll:{room}:{id}:closed``: the closed marker, holding the close time. Whoever sets it
  first (``set_if_absent``: a moderator's ``poll.close`` or a node's timer) decides when the poll
  closed, and the ballot box refuses ballots once it is set. The steps after it (the record with
  the final tally, the ``poll`` event published once under the marker's name) may run again, on
  any node: a close that failed halfway is completed by the next close, timer or refused ballot,
  and the poll closes exactly once across nodes.

Tallies go out in two steps from one periodic job per node (every :data:`TALLY_INTERVAL`): the
node that took ballots tells the room's nodes which polls changed (an internal signal), and each
node that heard of a change reads the tally from the ballot box, at most 4 times a second per poll
and always once after the last change (:class:`~polls.model.TallyThrottle`), and hands one
encoded ``poll.tally`` to those of its members of the room who may see it.

Timers: each node keeps a schedule of the open polls with a ``closes_at`` of the rooms it follows
(loaded whenever someone joins a room on this node, and from the signal a node sends when it
creates a poll); the same job tries to close those that are due. A vote that arrives after
``closes_at`` is ``closed`` by the server's clock even before the close is published, and closes
the poll.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub import fields
from hub.auth import Role
from hub.coalesce import CoalescedEvent, Derived
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import Entrant, FeatureContext, RoomInfo
from hub.http_api import api
from hub.node import Node
from hub.session import Session
from hub.shared_read import FreshSharedRead
from hub.wire import EmptyReply
from polls.awards import Awards, DeclaredPoll
from polls.ballots import ballot_box
from polls.export import export_csv, export_map
from polls.model import (
    Poll,
    PollState,
    TallyThrottle,
    ballot_as_sent,
    closed_view,
    may_see_tally,
    may_vote,
    newest_closed,
    parse_choice,
    parse_poll,
    tally_event,
)
from polls.wire import PollFields, PollReply, PollsPart, PollView, VisibleTally
from rooms.feature import RoomsFeature
from rooms.model import Room, RoomKind, joined_room

# How often a node sends its ballot changes and its members' tallies, and checks its timers.
# Read when the feature is installed.
TALLY_INTERVAL = 0.25
# The newest closed polls of a room the join snapshot carries.
CLOSED_KEPT = 10

_CHANGED: Final = "poll.changed"
_SCHEDULE: Final = "poll.schedule"

Mark = tuple[str, str]  # (room, poll id)


def _closed_at(marker: bytes, default: float) -> float:
    """The close time a closed marker holds (``default`` for a marker without one)."""
    try:
        value = unpack(marker)
    except Exception:
        return default
    at = value.get("at") if isinstance(value, dict) else None
    return float(at) if isinstance(at, int | float) else default


class PollsFeature:
    """Polls in rooms (any kind; in the lobby, organizers only create, open and close them,
    which is what elections are), and the polls and partnerships the rooms file declares
    (``awards``). See the module docstring for how state is shared between nodes."""

    def __init__(self, node: Node, rooms: RoomsFeature, awards: Awards | None = None) -> None:
        self.node = node
        self.rooms = rooms
        self.awards = awards or Awards()
        self.store = node.store
        self.ballots = ballot_box(node.store)
        # Unix seconds, as poll times are kept (tests move it).
        self.clock: Callable[[], float] = time.time
        # Monotonic seconds for the tally throttle (tests move it too).
        self.ticks: Callable[[], float] = time.monotonic
        # Open polls with a duration, of the rooms this node knows of: mark -> closes_at.
        self.timers: dict[Mark, float] = {}
        # Open polls as last read, for votes: a record changes only when its poll closes, and
        # the ballot itself refuses a closed poll atomically, so a stale entry is harmless and
        # saves a broker round trip per vote. Bounded by the polls organizers create.
        self._open: dict[Mark, Poll] = {}
        # A room's polls, oldest first, read once for the joins asking together.
        self._room_polls: FreshSharedRead[str, list[Poll]] = FreshSharedRead(self._read_polls)

    def install(self, ctx: FeatureContext) -> None:
        """Register the poll ops, the snapshot part, the signals and the periodic job."""
        ctx.command("poll.create", self.create)
        ctx.command("poll.open", self.open)
        ctx.command("poll.vote", self.vote)
        ctx.command("poll.close", self.close)
        ctx.command("poll.get", self.get)
        ctx.on_snapshot(self.snapshot)
        ctx.on_stop(self._room_polls.close)
        # Polls any node took ballots for, sent to this node's members as its throttle allows.
        self.tallies = CoalescedEvent(
            ctx, _CHANGED, self._read_tally, policy=TallyThrottle(), clock=lambda: self.ticks()
        )
        ctx.on_signal(_SCHEDULE, self._schedule_signal)
        ctx.every(TALLY_INTERVAL, self.tick)
        # The CSV route first: a poll id never holds a dot, but "{poll}" alone would match.
        ctx.route("/api/rooms/{room}/polls/{poll}.csv", api(self._http_export_csv))
        ctx.route("/api/rooms/{room}/polls/{poll}", api(self._http_export))
        ctx.route("/api/rooms/{room}/polls/{poll}/open", api(self._http_open), methods=["POST"])

    # --- commands -----------------------------------------------------------------------------

    async def create(self, ctx: CommandContext, cmd: dict[str, Any]) -> PollReply:
        """Open a poll (moderators of the room; in the lobby, organizers). It is stored, then
        announced with the stored event ``poll``. Replies ``{poll, seq}``."""
        room = await self._room_managed_by(ctx, cmd, "create polls")
        poll = parse_poll(
            cmd,
            poll_id=secrets.token_urlsafe(9),
            room=room.id,
            created_by=ctx.identity.user_id,
            now=self.clock(),
        )
        # Stored before it is announced, so whoever sees the event can vote at once.
        await self.store.hash_set(f"polls:{room.id}", poll.id, pack(poll.to_record()))
        return await self._announce_opened(poll, once=False)

    async def open(self, ctx: CommandContext, cmd: dict[str, Any]) -> PollReply:
        """Open the poll ``poll`` the rooms file declares for ``room`` (who may: as
        ``poll.create``), with exactly its declared fields and id (see :meth:`open_declared`).
        Replies ``{poll, seq}`` as ``poll.create`` does."""
        room = await self._room_managed_by(ctx, cmd, "open polls")
        declared = self.awards.declared(room.id, fields.item_id(cmd.get("poll"), "poll"))
        return await self.open_declared(declared, ctx.identity.user_id)

    async def open_declared(self, declared: DeclaredPoll, by: str) -> PollReply:
        """Open ``declared`` as opened by ``by`` now: store its record unless its room has a
        poll of that id already, then publish the stored event ``poll`` (once) and schedule its
        close. ``conflict`` when it was opened already (open or closed, by anyone on any node):
        of concurrent opens exactly one stores it and succeeds. Where the poll is open but its
        event may never have gone out (an open that failed halfway), the refused call publishes
        it first."""
        poll = declared.opened(by, self.clock())
        stored = await self.store.hash_set(
            f"polls:{poll.room}", poll.id, pack(poll.to_record()), only_if_absent=True
        )
        if not stored:
            current = await self._poll(poll.room, poll.id)
            if current.state is PollState.OPEN:
                await self._announce_opened(current, once=True)
            raise HubError("conflict", f"poll {poll.id} was opened already")
        return await self._announce_opened(poll, once=True)

    async def _announce_opened(self, poll: Poll, *, once: bool) -> PollReply:
        """Publish the stored event ``poll`` of an open poll (``once``: under its opened name,
        whoever calls) and schedule its close on the room's nodes; ``{poll, seq}``."""
        wire = poll.describe()
        opened: PollFields = {"poll": wire}
        if once:
            marker = self._ballots(poll.room, poll.id) + ":opened"
            seq, _ = await self.node.publish_event_once(poll.room, "poll", opened, marker)
        else:
            seq = await self.node.publish_event(poll.room, "poll", opened)
        if poll.closes_at is not None:
            self._schedule(poll.room, poll.id, poll.closes_at)
            await self.node.signal(poll.room, _SCHEDULE, [poll.room, poll.id, poll.closes_at])
        return {"poll": wire, "seq": seq}

    async def vote(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Cast the caller's ballot in an open poll of a room they are in: one per user across
        every session and node; again -> the ballot is replaced where changes are allowed, else
        ``conflict``. Closed (or its time is up by this server's clock) -> ``closed``; guests
        where the poll refuses them -> ``forbidden``. Replies ``{}``."""
        room = joined_room(cmd.get("room"), ctx.session.rooms)
        poll_id = cmd.get("poll")
        cached = self._open.get((room, poll_id)) if isinstance(poll_id, str) else None
        if cached is not None and not cached.due(self.clock()):
            poll = cached
        else:
            poll = await self.current(room, poll_id)
        if poll.state is not PollState.OPEN:
            self._open.pop((room, poll.id), None)
            raise HubError("closed", f"poll {poll.id} is closed")
        self._open[(room, poll.id)] = poll
        identity = ctx.identity
        if not may_vote(poll, identity.guest):
            raise HubError("forbidden", "guests may not vote in this poll")
        choice = parse_choice(poll, cmd.get("choice"))
        key = self._ballots(room, poll.id)
        result = await self.ballots.cast(
            key,
            identity.user_id,
            choice,
            options=len(poll.options),
            allow_change=poll.allow_change,
            closed_key=key + ":closed",
        )
        if result.status == "conflict":
            raise HubError("conflict", "you voted in this poll already")
        if result.status == "closed":
            self._open.pop((room, poll.id), None)
            # The record may still say open: a close that failed halfway. Complete it.
            self.node.spawn(self._complete_close(room, poll.id))
            raise HubError("closed", f"poll {poll.id} is closed")
        self.tallies.changed_here((room, poll.id))
        return {}

    async def close(self, ctx: CommandContext, cmd: dict[str, Any]) -> PollReply:
        """Close an open poll (moderators of the room; in the lobby, organizers). Of concurrent
        closes, on any nodes, and the poll's timer, exactly one wins; the others get
        ``closed``. Replies ``{poll, seq}`` as the stored event ``poll`` carries them."""
        room = await self._room_managed_by(ctx, cmd, "close polls")
        poll = await self.current(room.id, cmd.get("poll"))
        if poll.state is PollState.OPEN:
            closed = await self.close_poll(poll, self.clock())
        else:
            # Closed, but its event may not be out yet (a close that failed halfway).
            closed = await self._announce_closed(poll)
        if closed is None:
            raise HubError("closed", f"poll {poll.id} is closed")
        return closed

    async def get(self, ctx: CommandContext, cmd: dict[str, Any]) -> PollView:
        """A poll of a room the caller is in: ``{poll, counts?, voters?, mine}``, counts where
        the caller may see them, ``mine`` their ballot as they sent it (null before voting)."""
        room = joined_room(cmd.get("room"), ctx.session.rooms)
        poll = await self.current(room, cmd.get("poll"))
        return await self._view(poll, ctx.session, ctx.identity.user_id)

    # --- closing ------------------------------------------------------------------------------

    async def close_poll(self, poll: Poll, at: float) -> PollReply | None:
        """Close ``poll`` (closed at ``at``), or complete a close that was begun: claim its
        closed marker (from which the ballot box refuses ballots; a close begun earlier keeps
        its time), store the closed record with the final tally, and publish the stored event
        ``poll`` with ``state: "closed"`` (and, where results may be shown to everyone,
        ``counts`` and ``voters``) once. Every step may run again, on any node, so a close that
        failed halfway is completed by the next close, timer or refused ballot. Returns
        ``{poll, seq}`` to the call that published the event, None to the others."""
        self.timers.pop((poll.room, poll.id), None)
        marker = self._ballots(poll.room, poll.id) + ":closed"
        begun = await self.store.set_if_absent(marker, pack({"at": at}))
        if begun is not None:
            at = _closed_at(begun, at)
        # Final from the marker on; kept in the record, so closed_polls need no tally reads.
        counts, voters = await self.ballots.tally(
            self._ballots(poll.room, poll.id), len(poll.options)
        )
        closed = poll.closed(at, counts, voters)
        await self.store.hash_set(f"polls:{poll.room}", poll.id, pack(closed.to_record()))
        return await self._announce_closed(closed)

    async def _announce_closed(self, closed: Poll) -> PollReply | None:
        """Publish the stored event ``poll`` of a closed poll, once whoever calls: ``{poll,
        seq}`` to the call that published it, None to the others."""
        wire = closed_view(closed, False)
        marker = self._ballots(closed.room, closed.id) + ":closed"
        closed_fields: PollFields = {"poll": wire}
        seq, published = await self.node.publish_event_once(
            closed.room, "poll", closed_fields, marker
        )
        return {"poll": wire, "seq": seq} if published else None

    async def _complete_close(self, room: str, poll_id: str) -> None:
        poll = await self._poll(room, poll_id)
        if poll.state is PollState.OPEN:
            await self.close_poll(poll, self.clock())
        else:
            await self._announce_closed(poll)

    async def current(self, room: str, poll_id: object) -> Poll:
        """The poll as it stands by this server's clock: a poll whose time is up is closed
        first (by this node, unless another one did already). ``not_found`` if unknown."""
        poll = await self._poll(room, poll_id)
        if poll.state is PollState.OPEN and poll.due(self.clock()):
            assert poll.closes_at is not None
            await self.close_poll(poll, poll.closes_at)
            return poll.closed(poll.closes_at)
        return poll

    async def run_timers(self, now: float | None = None) -> None:
        """Try to close this node's scheduled polls whose time is up (by ``now``, unix seconds;
        this node's clock by default). A poll another node closed first is just dropped."""
        now = self.clock() if now is None else now
        for mark, closes_at in list(self.timers.items()):
            if closes_at > now:
                continue
            self.timers.pop(mark, None)
            record = await self.store.hash_get(f"polls:{mark[0]}", mark[1])
            if record is None:
                continue
            poll = Poll.from_record(unpack(record))
            if poll.state is PollState.OPEN:
                try:
                    await self.close_poll(poll, closes_at)
                except BaseException:
                    self.timers[mark] = closes_at  # try again on the next run
                    raise

    def _schedule(self, room: str, poll: str, closes_at: float) -> None:
        self.timers[(room, poll)] = closes_at

    def _schedule_signal(self, data: Any) -> None:
        room, poll, closes_at = data
        self._schedule(str(room), str(poll), float(closes_at))

    def _load_schedule(self, room: str, polls: list[Poll]) -> None:
        for poll in polls:
            if poll.state is PollState.OPEN and poll.closes_at is not None:
                self._schedule(room, poll.id, poll.closes_at)

    # --- snapshot -----------------------------------------------------------------------------

    async def snapshot(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[PollsPart | Exception]:
        """Each entrant's ``polls``: the room's open polls as ``poll.get`` shows each to them,
        oldest first; ``closed_polls``: its newest :data:`CLOSED_KEPT` closed polls, oldest
        first, each as its closing ``poll`` event carries it (counts for moderators too where
        only they see them); and in the lobby, or a room the rooms file declares polls for,
        ``awards`` (:meth:`polls.awards.Awards.view`). Also (re)loads the room's timers into
        this node's schedule. The room's polls are read once for the joins asking together."""
        polls = await self._room_polls.get(room.id)
        now = self.clock()
        open_polls = [p for p in polls if p.state is PollState.OPEN and not p.due(now)]
        closed = [await self._with_tally(poll) for poll in newest_closed(polls, CLOSED_KEPT)]
        awards = self.awards.view(room.id, polls, now) if self.awards.shown_in(room.id) else None

        async def views(entrant: Entrant) -> list[PollView]:
            session = entrant.ctx.session
            user = entrant.ctx.identity.user_id
            return [await self._view(poll, session, user) for poll in open_polls]

        # Each entrant's own view of an open poll reads their ballot: those reads go together.
        seen = await asyncio.gather(*map(views, entrants)) if open_polls else [[] for _ in entrants]
        parts: list[PollsPart | Exception] = []
        for entrant, mine in zip(entrants, seen, strict=True):
            moderator = self._moderates(entrant.ctx.session, room.id)
            part: PollsPart = {
                "polls": mine,
                "closed_polls": [closed_view(poll, moderator) for poll in closed],
            }
            if awards is not None:
                part["awards"] = awards
            parts.append(part)
        return parts

    async def _read_polls(self, room: str) -> list[Poll]:
        records = await self.store.hash_get_all(f"polls:{room}")
        polls = sorted(
            (Poll.from_record(unpack(record)) for record in records.values()),
            key=lambda poll: (poll.opened_at, poll.id),
        )
        self._load_schedule(room, polls)
        return polls

    async def _with_tally(self, poll: Poll) -> Poll:
        if poll.counts is not None or poll.closed_at is None:
            return poll
        # Closed before the final tally was kept in the record: read it (at most CLOSED_KEPT).
        counts, voters = await self.ballots.tally(
            self._ballots(poll.room, poll.id), len(poll.options)
        )
        return poll.closed(poll.closed_at, counts, voters)

    async def _view(self, poll: Poll, session: Session, user: str) -> PollView:
        key = self._ballots(poll.room, poll.id)
        described = poll.describe()
        tally: VisibleTally = {}
        if may_see_tally(poll, self._moderates(session, poll.room)):
            counts, voters = await self.ballots.tally(key, len(poll.options))
            tally = {"counts": counts, "voters": voters}
        mine = ballot_as_sent(poll, await self.ballots.ballot_of(key, user))
        return {"poll": described, **tally, "mine": mine}

    # --- export ---------------------------------------------------------------------------------

    async def export(self, room_id: str, poll_id: str) -> tuple[Poll, list[int], int]:
        """A poll with its counts and voters, for the organizers' export (``not_found`` for an
        unknown room or poll). Never who voted: the broker keeps that to itself."""
        room = fields.room_id(room_id)
        await self.rooms.directory.require(room)
        poll = await self.current(room, poll_id)
        counts, voters = await self.ballots.tally(self._ballots(room, poll.id), len(poll.options))
        return poll, counts, voters

    async def _http_export(self, request: Request) -> Response:
        return JSONResponse(export_map(*await self._http_exported(request)))

    async def _http_export_csv(self, request: Request) -> Response:
        poll, counts, voters = await self._http_exported(request)
        return Response(
            export_csv(poll, counts, voters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="poll-{poll.id}.csv"'},
        )

    async def _http_open(self, request: Request) -> Response:
        """``POST /api/rooms/{room}/polls/{poll}/open``: :meth:`open_declared` for a bearer
        token whose role in the room (as exports judge it) may open polls there (as
        ``poll.create``: organizers in the lobby, moderators elsewhere) -> 201 ``{poll,
        seq}``."""
        room_id, poll_id = request.path_params["room"], request.path_params["poll"]
        user, role = await self.rooms.token_role(
            request, room_id, "an organizer's or a moderator's bearer token"
        )
        room = await self.rooms.directory.require(fields.room_id(room_id))
        needed = self._needed_role(room)
        if role < needed:
            raise HubError("forbidden", f"only {needed.label}s open polls in {room.id}")
        declared = self.awards.declared(room.id, fields.item_id(poll_id, "poll"))
        return JSONResponse(await self.open_declared(declared, user), status_code=201)

    async def _http_exported(self, request: Request) -> tuple[Poll, list[int], int]:
        room, poll = request.path_params["room"], request.path_params["poll"]
        await self.rooms.require_moderator_token(request, room, "export its polls")
        return await self.export(room, poll)

    # --- batched tallies ----------------------------------------------------------------------

    async def tick(self) -> None:
        """One run of the periodic job: tallies (see :meth:`flush_tallies`), then timers."""
        await self.flush_tallies()
        await self.run_timers()

    async def flush_tallies(self) -> None:
        """Tell the room's nodes which polls this node took ballots for, then send
        ``poll.tally`` with the broker's tally to this node's members of each room where a poll
        changed and whose throttle is due (by :attr:`ticks`). What could not be sent (the
        broker failed) is kept for the next run."""
        await self.tallies.flush()

    async def _read_tally(self, mark: tuple[str, ...]) -> Derived | None:
        room, poll_id = mark
        record = await self.store.hash_get(f"polls:{room}", poll_id)
        if record is None:
            return None
        poll = Poll.from_record(unpack(record))
        everyone = may_see_tally(poll, False)
        if not everyone and not may_see_tally(poll, True):
            return None
        counts, voters = await self.ballots.tally(self._ballots(room, poll_id), len(poll.options))
        if everyone:
            return Derived(tally_event(poll, counts, voters))
        return Derived(
            tally_event(poll, counts, voters), to=lambda session: self._moderates(session, room)
        )

    # --- helpers ------------------------------------------------------------------------------

    async def _room_managed_by(self, ctx: CommandContext, cmd: dict[str, Any], what: str) -> Room:
        room = await self.rooms.directory.require(fields.room_id(cmd.get("room")))
        needed = self._needed_role(room)
        if await self.rooms.roles.current_role(ctx.session, room.id) < needed:
            raise HubError("forbidden", f"only {needed.label}s {what} in {room.id}")
        return room

    @staticmethod
    def _needed_role(room: Room) -> Role:
        """Who creates, opens and closes polls in ``room``: organizers in a lobby room,
        moderators elsewhere."""
        return Role.ORGANIZER if room.kind is RoomKind.LOBBY else Role.MODERATOR

    def _moderates(self, session: Session, room: str) -> bool:
        return self.rooms.roles.cached_role(session, room) >= Role.MODERATOR

    async def _poll(self, room: str, poll_id: object) -> Poll:
        poll_id = fields.item_id(poll_id, "poll")
        record = await self.store.hash_get(f"polls:{room}", poll_id)
        if record is None:
            raise HubError("not_found", f"no poll {poll_id} in {room}")
        return Poll.from_record(unpack(record))

    @staticmethod
    def _ballots(room: str, poll: str) -> str:
        return f"poll:{room}:{poll}"
