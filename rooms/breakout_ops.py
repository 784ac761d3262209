"""Breakouts: ``breakout.open``, ``breakout.broadcast`` and ``breakout.close``, the timer that
closes a timed round, and who may join a child room.

A parent has at most one open round, stored at ``breakout:{parent}`` (the first ``open`` to
store it wins). Its assignments are a hash ``bassign:{round}`` (user -> child), written before
the round is stored, so whoever sees the round sees its assignments. Closing (by a moderator or
by the timer, on whichever node gets there first) claims ``bclosed:{round}`` for a short while:
each child gets the stored event ``breakout.closed`` and then loses its members, the parent gets
``breakouts`` with no rooms, and the round is removed. A close that fails gives its claim back,
and the claim of a node that died while closing expires, so a later close or timer does it again
(children may then get ``breakout.closed`` twice; the parent is never left with a round nobody
can close). The warning before a timed round ends is claimed once (``bwarned:{round}``).

Every node that knows of a round (it opened it, follows its parent, or read it for a join)
checks its timer a few times a second. A round nobody knows of any more (its node stopped and no
one follows its rooms) closes when someone next joins its parent or a child.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from hub import fields
from hub.all_ended import all_ended
from hub.auth import Role
from hub.codec import EncodedEvent, pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import Entrant, FeatureContext, RoomInfo
from hub.session import Session
from hub.shared_read import FreshSharedRead
from rooms.breakouts import (
    Assign,
    BreakoutPlan,
    BreakoutRound,
    assign_random,
    may_enter_child,
    open_round,
    parse_breakout_open,
)
from rooms.model import Room, RoomKind, is_breakout_id
from rooms.wire import (
    Assignment,
    BreakoutAssignedEvent,
    BreakoutBroadcastReply,
    BreakoutClosedFields,
    BreakoutCloseReply,
    BreakoutEndingFields,
    BreakoutOpenReply,
    BreakoutsFields,
    BreakoutsPart,
    JoinReply,
    RoundSnapshot,
    RoundView,
)

if TYPE_CHECKING:
    from rooms.feature import RoomsFeature

log = logging.getLogger(__name__)

# How often a node checks the timers of the rounds it knows of (seconds).
TIMER_INTERVAL = 0.25
# How often a node checks that the breakout rooms its sessions are in still belong to a round.
SWEEP_INTERVAL = 5.0
# How long the once-only warning claim of a round outlives it (seconds).
CLAIM_TTL = 7 * 24 * 3600.0
# How long a close may take before another node may take it over (seconds).
CLOSE_CLAIM_TTL = 30.0
MAX_BROADCAST = 2000
PRESENCE_PAGE = 500


# A parent's open round (None: none is open) and whether a close of it is under way.
RoundState = tuple[BreakoutRound | None, bool]


class AssignedSignal(TypedDict):
    """What every node hears when a round opens with people assigned: it tells its own
    sessions of them (``breakout.assigned``), and with ``move`` moves them in first."""

    parent: str
    round: str
    move: bool


def round_key(parent: str) -> str:
    """The broker key of a parent's open round."""
    return f"breakout:{parent}"


def assignments_key(round_id: str) -> str:
    """The broker hash of a round's assignments (user -> child)."""
    return f"bassign:{round_id}"


def close_claim_key(round_id: str) -> str:
    """The broker key a node holds while it closes a round."""
    return f"bclosed:{round_id}"


class BreakoutFeature:
    """Breakout rounds on one node (see the module docstring)."""

    def __init__(self, rooms: RoomsFeature, rng: random.Random | None = None) -> None:
        self.rooms = rooms
        self.node = rooms.node
        self.broker = rooms.node.broker
        self.store = rooms.node.store
        self.rng = rng or random.Random()
        # parent -> the open round this node knows of (for its timer)
        self.rounds: dict[str, BreakoutRound] = {}
        # rounds whose warning this node sent or saw claimed
        self._warned: set[str] = set()
        # parent -> its round's stored record and the round it decodes to (open rounds only)
        self._records: dict[str, tuple[bytes, BreakoutRound]] = {}
        # round id -> who goes where, read once per node: a round's assignments never change
        # once it is stored (every join of its burst checks its caller's, and its snapshot
        # shows it again)
        self._assignments: dict[str, asyncio.Future[dict[str, str]]] = {}
        # parent -> its open round and whether a close holds it, read once for the joins (their
        # checks, their snapshots) asking together: a round's burst asks hundreds of times
        self._round_states: FreshSharedRead[str, RoundState] = FreshSharedRead(
            self._read_round_state
        )

    def install(self, ctx: FeatureContext) -> None:
        """Register the breakout ops, the join check, the snapshot part and the timer."""
        ctx.command("breakout.open", self.open)
        ctx.command("breakout.broadcast", self.broadcast)
        ctx.command("breakout.close", self.close)
        ctx.on_join_check(self._check_children)
        ctx.on_snapshot(self._snapshot)
        ctx.on_stored("breakouts", self._round_event)
        ctx.on_signal("breakout.evict", self._evict)
        ctx.on_signal("breakout.assigned", self._assigned_signal)
        ctx.every(TIMER_INTERVAL, self.run_timers)
        ctx.every(SWEEP_INTERVAL, self.sweep_children)
        ctx.on_stop(self._round_states.close)

    # --- commands -----------------------------------------------------------------------------

    async def open(self, ctx: CommandContext, cmd: dict[str, Any]) -> BreakoutOpenReply:
        """Open a round of breakouts in a workshop or panel (its moderators): create the child
        rooms, assign people, store ``breakouts`` in the parent and tell each assigned user
        (``breakout.assigned``). ``conflict`` while a round is open. Replies ``{seq, rooms,
        assign, ends_at?, assignments}``."""
        parent = await self._managed_parent(ctx, cmd)
        if parent.kind not in (RoomKind.WORKSHOP, RoomKind.PANEL):
            raise HubError("bad_request", "breakouts open in workshops and panels only")
        plan = parse_breakout_open(parent.id, cmd)
        now = time.time()
        round_ = open_round(plan, secrets.token_hex(8), ctx.identity.user_id, now)
        assignments = await self._assign(plan)
        try:
            # Before the round: a join that sees the round must see who goes where. The write
            # has ended (even when this command is cancelled meanwhile) before the clean-up
            # below deletes what it wrote.
            key = assignments_key(round_.id)
            await all_ended(
                [
                    self.store.hash_set_many(
                        key, {user: child.encode() for user, child in assignments.items()}
                    )
                ]
            )
            stored = await self.store.set_if_absent(round_key(parent.id), pack(round_.to_record()))
            if stored is not None:
                raise HubError("conflict", f"breakouts are open in {parent.id} already")
            try:
                await all_ended(
                    [
                        self.rooms.directory.put_breakouts(
                            Room(child, RoomKind.BREAKOUT, title, parent.id)
                            for child, title in round_.rooms
                        )
                    ]
                )
                self._know(parent.id, round_)
                self._assignments[round_.id] = _resolved(assignments)
                seq = await self.node.publish_event(parent.id, "breakouts", round_.describe())
            except BaseException:
                self._forget(round_)
                await self.store.delete(round_key(parent.id))
                raise
        except BaseException:
            await self.store.delete(assignments_key(round_.id))
            raise
        if assignments:
            # One message for the whole round: each node tells its own sessions (see
            # _tell_assigned), where one message per person cost every node a decode each.
            told: AssignedSignal = {"parent": parent.id, "round": round_.id, "move": plan.move}
            await self.node.signal_every_node("breakout.assigned", told)
        return {"seq": seq, **round_.describe(), "assignments": assignments}

    async def broadcast(self, ctx: CommandContext, cmd: dict[str, Any]) -> BreakoutBroadcastReply:
        """Store a ``notice`` in every child room of the parent's open round (its moderators).
        Replies ``{rooms: {child: seq}}``."""
        parent = await self._managed_parent(ctx, cmd)
        text = fields.text(cmd.get("text"), "text", MAX_BROADCAST)
        round_ = await self._require_round(parent.id)
        seqs: dict[str, int] = {}
        for child in round_.children():
            seqs[child] = await self.rooms.post_notice(child, text, ctx.identity.user_id)
        return {"rooms": seqs}

    async def close(self, ctx: CommandContext, cmd: dict[str, Any]) -> BreakoutCloseReply:
        """Close the parent's open round now (its moderators): everyone goes back to the
        parent. ``not_found`` when none is open, ``closed`` when it closed meanwhile. Replies
        ``{seq}`` (the parent's ``breakouts`` event)."""
        parent = await self._managed_parent(ctx, cmd)
        round_ = await self._require_round(parent.id)
        seq = await self.close_round(round_)
        if seq is None:
            raise HubError("closed", f"the breakouts of {parent.id} closed already")
        return {"seq": seq}

    # --- rounds -------------------------------------------------------------------------------

    async def current(self, parent: str) -> BreakoutRound | None:
        """The parent's open round, read from the broker (and known to this node's timer from
        then on), or None."""
        data = await self.store.get(round_key(parent))
        round_ = self._decoded(parent, data) if data is not None else None
        self._know(parent, round_)
        return round_

    async def _read_round_state(self, parent: str) -> RoundState:
        known = self.rounds.get(parent)
        if known is not None:
            # The round this node knows of is most likely still the one: its record and its
            # close claim in one read (a move waits on this read twice: its checks, its
            # snapshots).
            data, claim = await self.store.get_many([round_key(parent), close_claim_key(known.id)])
            round_ = self._decoded(parent, data) if data is not None else None
            self._know(parent, round_)
            if round_ is None:
                return None, False
            if round_.id == known.id:
                return round_, claim is not None
        else:
            round_ = await self.current(parent)
            if round_ is None:
                return None, False
        return round_, await self.store.get(close_claim_key(round_.id)) is not None

    def _decoded(self, parent: str, data: bytes) -> BreakoutRound:
        # Every join of a round's burst reads the same record twice (its check, its snapshot):
        # decoded once per node while the record stays the same.
        decoded = self._records.get(parent)
        if decoded is None or decoded[0] != data:
            decoded = self._records[parent] = (data, BreakoutRound.from_record(unpack(data)))
        return decoded[1]

    async def close_round(self, round_: BreakoutRound) -> int | None:
        """Close ``round_`` if it is still the parent's open round and no other close is under
        way (on any node): ``breakout.closed`` in each child, then its members leave it;
        ``breakouts`` with no rooms in the parent. Returns the parent event's seq, or None when
        the round is gone or another node is closing it. When a step fails the close is undone
        enough for a retry to do it all again (the error propagates)."""
        if not await self._is_open(round_):
            self._forget(round_)
            return None
        claim = close_claim_key(round_.id)
        # Short-lived: if this node dies before the end, another one closes after it expires.
        if await self.store.set_if_absent(claim, b"1", ttl=CLOSE_CLAIM_TTL) is not None:
            return None
        try:
            for child in round_.children():
                closed: BreakoutClosedFields = {"parent": round_.parent}
                await self.node.publish_event(child, "breakout.closed", closed)
                # After the event on the same topic: members get it, then leave.
                await self.node.signal(child, "breakout.evict", {"room": child})
            over: BreakoutsFields = {"rooms": []}
            seq = await self.node.publish_event(round_.parent, "breakouts", over)
            if await self._is_open(round_):
                await self.store.delete(round_key(round_.parent))
            await self.store.delete(assignments_key(round_.id))
        except BaseException:
            await self.store.delete(claim)
            raise
        self._forget(round_)
        return seq

    async def _is_open(self, round_: BreakoutRound) -> bool:
        data = await self.store.get(round_key(round_.parent))
        return data is not None and unpack(data).get("id") == round_.id

    async def warn(self, round_: BreakoutRound) -> bool:
        """Store ``breakout.ending {parent, ends_at}`` in each child once per round (on any
        node); True for the node that did. A round without a duration has no end to warn of
        (False; the timers never ask)."""
        if round_.ends_at is None:
            return False
        claim = await self.store.set_if_absent(f"bwarned:{round_.id}", b"1", ttl=CLAIM_TTL)
        if claim is not None:
            return False
        ending: BreakoutEndingFields = {"parent": round_.parent, "ends_at": round_.ends_at}
        for child in round_.children():
            await self.node.publish_event(child, "breakout.ending", ending)
        return True

    async def run_timers(self, now: float | None = None) -> None:
        """Warn and close the rounds this node knows of whose time has come."""
        now = time.time() if now is None else now
        lead = self.node.config.breakout_warning
        for round_ in list(self.rounds.values()):
            if self.rounds.get(round_.parent) is not round_:
                continue  # forgotten while an earlier round was handled
            try:
                if round_.due(now):
                    await self.close_round(round_)
                elif round_.warning_due(now, lead) and round_.id not in self._warned:
                    self._warned.add(round_.id)
                    await self.warn(round_)
            except Exception:
                log.warning("breakout timer of %s failed", round_.parent, exc_info=True)
                self._warned.discard(round_.id)

    def _know(self, parent: str, round_: BreakoutRound | None) -> None:
        # The parent's round as last read; a round replaced or gone leaves _warned too.
        if round_ is None:
            self._records.pop(parent, None)
        known = self.rounds.get(parent)
        if known is not None and (round_ is None or known.id != round_.id):
            self._forget(known)
        if round_ is not None:
            self.rounds[parent] = round_

    def _forget(self, round_: BreakoutRound) -> None:
        if (known := self.rounds.get(round_.parent)) is not None and known.id == round_.id:
            del self.rounds[round_.parent]
        cached = self._records.get(round_.parent)
        if cached is not None and cached[1].id == round_.id:
            del self._records[round_.parent]
        self._warned.discard(round_.id)
        self._assignments.pop(round_.id, None)

    def _round_event(self, event: dict[str, Any]) -> None:
        parent = event["room"]
        if not event.get("rooms"):
            self._know(parent, None)
        else:
            self.node.spawn(self._learn(parent))

    async def _learn(self, parent: str) -> None:
        await self.current(parent)

    def _evict(self, data: Any) -> None:
        child = data["room"]
        for session in self.node.followers(child):
            self.node.spawn(self._leave(session, child))

    async def _leave(self, session: Session, child: str) -> None:
        await self.rooms.leave_room(session, child)

    async def sweep_children(self) -> None:
        """Take this node's sessions out of breakout rooms that no open round holds: the
        eviction message of a close may have been lost. One read per followed child."""
        for room_id in list(self.node.streams):
            if not is_breakout_id(room_id):
                continue
            room = await self.rooms.directory.get(room_id)
            parent = room.parent if room is not None else None
            round_ = await self.current(parent) if parent is not None else None
            if round_ is None or not round_.has_child(room_id):
                for session in self.node.followers(room_id):
                    await self.rooms.leave_room(session, room_id)

    # --- assignment ---------------------------------------------------------------------------

    async def _assign(self, plan: BreakoutPlan) -> dict[str, str]:
        if plan.assign is Assign.MANUAL:
            return dict(plan.assignments)
        if plan.assign is Assign.SELF:
            return {}
        if plan.include_moderators:
            users = await self._members(plan.parent)
        else:
            # The members and what ranks them, read together.
            users, ranks = await asyncio.gather(
                self._members(plan.parent), self.rooms.roles.ranks(plan.parent)
            )
            users = [user for user in users if ranks.role_of(user) < Role.MODERATOR]
        return assign_random(users, plan.children, self.rng)

    async def _members(self, room: str) -> list[str]:
        users: set[str] = set()
        after = ""
        while True:
            page = await self.broker.presence_page(room, after, PRESENCE_PAGE)
            users.update(str(unpack(info)["user"]) for _, info in page)
            if len(page) < PRESENCE_PAGE:
                return sorted(users)
            after = page[-1][0]

    # --- joins and snapshots ------------------------------------------------------------------

    async def _check_children(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[HubError | None]:
        """Who may enter a breakout room: while its round is open and not closing, its parent's
        moderators, and the others as the round assigns them (see :func:`may_enter_child`);
        the round, its assignments and the parent's roles read once for all ``entrants``."""
        if room.kind is not RoomKind.BREAKOUT or room.parent is None:
            return [None] * len(entrants)
        round_, closing = await self._round_states.get(room.parent)
        if round_ is None or not round_.has_child(room.id) or closing:
            return [
                HubError("closed", f"the breakouts of {room.parent} are closed") for _ in entrants
            ]
        assignments = await self._assignments_of(round_.id)
        parent_roles = await self.rooms.roles.session_roles(
            [entrant.ctx.session for entrant in entrants], room.parent
        )
        refusals: list[HubError | None] = []
        for entrant, parent_role in zip(entrants, parent_roles, strict=True):
            assigned = assignments.get(entrant.ctx.identity.user_id)
            allowed = may_enter_child(
                assign=round_.assign,
                assigned=assigned,
                child=room.id,
                moderator=parent_role >= Role.MODERATOR,
            )
            refusals.append(
                None if allowed else HubError("forbidden", f"you are assigned to {assigned}")
            )
        return refusals

    @staticmethod
    def _assigned_event(parent: str, child: str) -> BreakoutAssignedEvent:
        return {"ev": "breakout.assigned", "room": parent, "breakout": child}

    def _assigned_signal(self, data: Any) -> None:
        told = self._tell_assigned(str(data["parent"]), str(data["round"]), bool(data["move"]))
        self.node.spawn(told)

    async def _tell_assigned(self, parent: str, round_id: str, move: bool = False) -> None:
        """Send ``breakout.assigned`` to this node's sessions of every user assigned in round
        ``round_id`` of ``parent`` (each event encoded once per child room). With ``move``, the
        sessions in the parent are first put in their child, room by room (see
        :meth:`_move_in`). Without the assignments (the broker failing) nobody here is told:
        each still finds their room in the parent's join snapshot."""
        try:
            # Kept while this node follows the parent: the round's closing event there makes it
            # forget them (otherwise nothing would).
            table = await self._assignments_of(round_id, keep=parent in self.node.streams)
        except Exception:
            log.warning("the assignments of %s's round were not sent here", parent, exc_info=True)
            return
        events: dict[str, EncodedEvent] = {}
        moving: dict[str, list[Session]] = {}
        for user, child in table.items():
            sessions = self.node.users.get(user)
            if not sessions:
                continue
            for session in list(sessions.values()):
                if move and parent in session.rooms and child not in session.rooms:
                    moving.setdefault(child, []).append(session)
                    continue
                event = events.get(child)
                if event is None:
                    event = events[child] = EncodedEvent(self._assigned_event(parent, child))
                session.deliver(event)
        if not moving:
            return
        children = await self._children_of(parent, round_id)
        await asyncio.gather(
            *(self._move_in(parent, child, children.get(child), s) for child, s in moving.items())
        )

    async def _children_of(self, parent: str, round_id: str) -> dict[str, Room]:
        """The child rooms of round ``round_id`` of ``parent`` as its record names them (what
        opening it wrote to the directory), without a read of each; none when the round is no
        longer open or cannot be read."""
        round_ = self.rounds.get(parent)
        if round_ is None or round_.id != round_id:
            try:
                round_ = await self.current(parent)
            except Exception:
                log.warning("the round of %s was not read for its move", parent, exc_info=True)
                return {}
        if round_ is None or round_.id != round_id:
            return {}
        return {
            child: Room(child, RoomKind.BREAKOUT, title, parent) for child, title in round_.rooms
        }

    async def _move_in(
        self, parent: str, child: str, room: Room | None, sessions: list[Session]
    ) -> None:
        """Put ``sessions`` in ``child`` (``room``; None when its round is gone) together and
        send each ``breakout.assigned`` with its join reply; a session that could not enter (a
        join check refused it, the round closed, the broker failed) gets the plain event and
        may join itself."""
        entered: dict[str, JoinReply] = {}
        try:
            if room is not None:
                entered = await self.rooms.enter_together(room, sessions)
        except Exception:
            log.warning("the move into %s failed", child, exc_info=True)
        plain = EncodedEvent(self._assigned_event(parent, child))
        for session in sessions:
            reply = entered.get(session.sid)
            if reply is None:
                session.deliver(plain)
                continue
            moved: BreakoutAssignedEvent = {**self._assigned_event(parent, child), "joined": reply}
            session.send(moved)
            session.release(room)  # what enter_together held (a concurrent command's stays)

    async def _assigned(self, round_: BreakoutRound, user: str) -> str | None:
        """The child ``user`` is assigned to in ``round_``, or None."""
        return (await self._assignments_of(round_.id)).get(user)

    def _assignments_of(self, round_id: str, keep: bool = True) -> Awaitable[dict[str, str]]:
        """A round's assignments, read once per node (concurrent callers share the read; a
        failed read is tried again by the next caller). With ``keep`` false a new read is not
        kept for later callers."""
        reading = self._assignments.get(round_id)
        failed = (
            reading is not None
            and reading.done()
            and (reading.cancelled() or reading.exception() is not None)
        )
        if reading is None or failed:
            reading = asyncio.ensure_future(self._read_assignments(round_id))
            if keep:
                self._assignments[round_id] = reading
        return asyncio.shield(reading)

    async def _read_assignments(self, round_id: str) -> dict[str, str]:
        stored = await self.store.hash_get_all(assignments_key(round_id))
        return {user: child.decode() for user, child in stored.items()}

    async def _snapshot(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[BreakoutsPart | Exception]:
        """The join snapshot's ``breakouts`` in a workshop, a panel or a breakout: the open
        round of the room (of its parent, for a breakout) with each entrant's assignment, or
        None; nothing in the lobby."""
        if room.kind is RoomKind.LOBBY:
            return [{} for _ in entrants]
        parent = room.parent if room.kind is RoomKind.BREAKOUT else room.id
        round_ = (await self._round_states.get(parent))[0] if parent is not None else None
        if parent is None or round_ is None:
            return [{"breakouts": None} for _ in entrants]
        assignments = await self._assignments_of(round_.id)
        view = _shared_view(round_)
        parts: list[BreakoutsPart | Exception] = []
        for entrant in entrants:
            assigned = assignments.get(entrant.ctx.identity.user_id)
            mine: Assignment = {"assigned": assigned} if assigned is not None else {}
            described: RoundSnapshot = {**view, "parent": parent, **mine}
            parts.append({"breakouts": described})
        return parts

    # --- helpers ------------------------------------------------------------------------------

    async def _managed_parent(self, ctx: CommandContext, cmd: dict[str, Any]) -> Room:
        room = await self.rooms.directory.require(fields.room_id(cmd.get("room")))
        if await self.rooms.roles.current_role(ctx.session, room.id) < Role.MODERATOR:
            raise HubError("forbidden", f"only moderators run breakouts in {room.id}")
        return room

    async def _require_round(self, parent: str) -> BreakoutRound:
        round_ = await self.current(parent)
        if round_ is None:
            raise HubError("not_found", f"no breakouts are open in {parent}")
        return round_


def _resolved(assignments: dict[str, str]) -> asyncio.Future[dict[str, str]]:
    done: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    done.set_result(dict(assignments))
    return done


@functools.lru_cache(maxsize=64)
def _shared_view(round_: BreakoutRound) -> RoundView:
    """``round_.describe()``, made once for every join of a round's burst (each snapshot copies
    its top level; nothing changes the rest)."""
    return round_.describe()
