"""The one way a feature plugs into a hub: an object with ``install(ctx)``.

A feature (chat, polls, the stage...) is built by the composition root (:mod:`hub.app`) with what
it needs, then installed once with a :class:`FeatureContext`. Everything a feature hooks into goes
through that context: its commands, the node's hooks (signals, stored events, closed sessions,
lost history, timers, start and stop, readiness reports), the room hooks the rooms feature runs
(join snapshot parts of the caller and of the room, join check, leave), hello hooks and HTTP
routes. Registration methods are named ``on_*`` (and ``command``, ``every``, ``route``); the
callbacks a broker makes on the node are named ``receive_*``.

A second handler for one command or one signal kind is refused with ValueError at install time,
so two features can never silently answer the same thing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.auth import Identity, Role, TokenAuthority
from hub.dispatch import CommandContext, CommandRegistry, Handler
from hub.errors import HubError
from hub.session import Session

if TYPE_CHECKING:
    from hub.node import Node


class RoomInfo(Protocol):
    """What room hooks may read of a room (the rooms feature passes its own room objects)."""

    @property
    def id(self) -> str:
        """The room id."""

    @property
    def kind(self) -> str:
        """``lobby``, ``panel``, ``workshop``, ``breakout``, ``meeting`` or ``table``."""

    @property
    def parent(self) -> str | None:
        """The room a breakout belongs to, else None."""

    @property
    def has_media(self) -> bool:
        """Whether people exchange audio and video there."""

    def __hash__(self) -> int:
        """Room objects are immutable values: equal ones stand for one room as it is now (the
        reads shared by joins are keyed by them)."""


# (room, role in it) -> a part of the join snapshot that depends on the room and the role only,
# never on who joins: the joins of one room and role asking together share one run of it (its
# result is read only)
RoomSnapshotPart = Callable[[RoomInfo, Role], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class Entrant:
    """A session asking to enter a room (a join, or a move into a breakout), with its role
    there."""

    ctx: CommandContext
    role: Role


# (room, its entrants) -> for each entrant in order, None to let it in or the HubError that
# refuses it. A join is a batch of one; a move checks a room's entrants together, so a check
# reads what it needs once for them all.
JoinCheck = Callable[[RoomInfo, Sequence[Entrant]], Awaitable[Sequence[HubError | None]]]
# (context, room, role in it) -> None, or raises the HubError that refuses the join: a check of
# one entrant at a time (see :func:`each_entrant`)
EntrantCheck = Callable[[CommandContext, RoomInfo, Role], Awaitable[None]]
# (room, the entrants a batch let in) -> for each in order, its part of the join snapshot (merged
# into ``snapshot``; each feature types its parts in its ``wire`` module), or the exception that
# fails that entrant's join. A join is a batch of one; a part reads what it needs once for them
# all. Raising fails every entrant's join.
SnapshotPart = Callable[
    [RoomInfo, Sequence[Entrant]], Awaitable[Sequence[Mapping[str, Any] | Exception]]
]
# (context, room, role in it) -> that entrant's part, or raises to fail its join: a part made
# for one entrant at a time (see :func:`each_entrant_part`)
EntrantPart = Callable[[CommandContext, RoomInfo, Role], Awaitable[Mapping[str, Any]]]
# (session, room id) -> None, after the session left the room (or was made to)
LeaveHook = Callable[[Session, str], Awaitable[None]]
# (context, the identity a hello proved) -> fields for the hello reply (or None); raising refuses
# the hello. Runs once the session is bound to its user, before it counts as authenticated.
HelloHook = Callable[[CommandContext, Identity], Awaitable[Mapping[str, Any] | None]]
# The data of an internal signal (see Node.signal) -> None; must not block.
SignalHandler = Callable[[Any], None]
# A stored event's wire form -> None; runs before the room's members get it, must not block.
# Decoded from the broker (any feature's event), so an open map.
StoredHook = Callable[[dict[str, Any]], None]
SessionHook = Callable[[Session], Awaitable[None]]
RoomHook = Callable[[str], Awaitable[None]]
Job = Callable[[], Awaitable[None]]
# () -> fields for the body of /readyz (each a component's state, e.g. {"sfu": "ok"}); must not
# block, and never changes whether the node is ready.
ReadinessReport = Callable[[], Mapping[str, str]]
HttpEndpoint = Callable[[Request], Awaitable[Response]]


def each_entrant(check: EntrantCheck) -> JoinCheck:
    """A :data:`JoinCheck` that runs ``check`` on each entrant in turn: for checks that concern
    rooms people enter one at a time (a meeting, a table), with nothing to share."""

    async def batch(room: RoomInfo, entrants: Sequence[Entrant]) -> list[HubError | None]:
        refusals: list[HubError | None] = []
        for entrant in entrants:
            try:
                await check(entrant.ctx, room, entrant.role)
            except HubError as refusal:
                refusals.append(refusal)
            else:
                refusals.append(None)
        return refusals

    return batch


def each_entrant_part(part: EntrantPart) -> SnapshotPart:
    """A :data:`SnapshotPart` that runs ``part`` for each entrant in turn: for parts that
    concern rooms people enter one at a time (a meeting, a table)."""

    async def batch(
        room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[Mapping[str, Any] | Exception]:
        parts: list[Mapping[str, Any] | Exception] = []
        for entrant in entrants:
            try:
                parts.append(await part(entrant.ctx, room, entrant.role))
            except Exception as error:
                parts.append(error)
        return parts

    return batch


class Feature(Protocol):
    """A part of the hub that plugs in through :meth:`install`."""

    def install(self, ctx: FeatureContext) -> None:
        """Register everything the feature answers and listens to; called once, before the
        node starts."""


@dataclass(slots=True)
class RoomHooks:
    """The hooks the rooms feature runs around a join and a leave, in registration order."""

    snapshot: list[SnapshotPart] = field(default_factory=list)
    room_snapshot: list[RoomSnapshotPart] = field(default_factory=list)
    join_checks: list[JoinCheck] = field(default_factory=list)
    leave: list[LeaveHook] = field(default_factory=list)


class FeatureContext:
    """What a feature's ``install`` gets: the node, the token authority and every place to plug
    in (see the module docstring)."""

    def __init__(self, node: Node, authority: TokenAuthority, registry: CommandRegistry) -> None:
        self.node = node
        self.config = node.config
        self.authority = authority
        self.registry = registry
        self.room_hooks = RoomHooks()
        self.hello_hooks: list[HelloHook] = []
        self.routes: list[BaseRoute] = []

    # --- commands -------------------------------------------------------------------------------

    def command(
        self, op: str, handler: Handler, *, before_hello: bool = False, own_rate_limit: bool = False
    ) -> None:
        """Answer ``op`` with ``handler`` (see :class:`hub.dispatch.Command`); ValueError if the
        op has a handler already."""
        self.registry.add(op, handler, before_hello=before_hello, own_rate_limit=own_rate_limit)

    # --- node hooks -----------------------------------------------------------------------------

    def on_signal(self, kind: str, handler: SignalHandler) -> None:
        """Call ``handler(data)`` for every internal signal of ``kind`` this node hears
        (:meth:`Node.signal`); ValueError if ``kind`` has a handler already."""
        self.node.add_signal_handler(kind, handler)

    def on_stored(self, ev: str, hook: StoredHook) -> None:
        """Call ``hook`` with every stored ``ev`` event of the rooms this node follows, in seq
        order, before their members get it."""
        self.node.add_stored_hook(ev, hook)

    def on_session_closed(self, hook: SessionHook) -> None:
        """Await ``hook(session)`` when a session of this node ends."""
        self.node.add_close_hook(hook)

    def on_history_lost(self, hook: RoomHook) -> None:
        """Await ``hook(room)`` in the background when a followed room's history was lost (the
        broker came back empty), to restore what this node still knows."""
        self.node.add_history_lost_hook(hook)

    def every(self, interval: float, job: Job) -> None:
        """Run ``job`` every ``interval`` seconds while the node runs; a failure is logged and
        does not stop later runs."""
        self.node.every(interval, job)

    def on_start(self, job: Job) -> None:
        """Await ``job`` once the node has started (its broker is connected); a failure is
        logged and does not stop the node."""
        self.node.add_start_hook(job)

    def on_stop(self, job: Job) -> None:
        """Await ``job`` when the node stops, before its broker is released."""
        self.node.add_stop_hook(job)

    def on_readiness(self, report: ReadinessReport) -> None:
        """Add ``report()``'s fields to every ``/readyz`` answer (a component that is degraded
        says so there; the node's readiness, and the status code, stay the node's own)."""
        self.node.add_readiness_report(report)

    # --- room hooks -----------------------------------------------------------------------------

    def on_snapshot(self, part: SnapshotPart) -> None:
        """Add a part to every join snapshot, given for the entrants of a batch together (see
        :data:`SnapshotPart`)."""
        self.room_hooks.snapshot.append(part)

    def on_room_snapshot(self, part: RoomSnapshotPart) -> None:
        """Add a part to every join snapshot that is the same for everyone of one role in the
        room (its notices, its questions): the joins of one room and role that ask in one loop
        iteration share one run of it, which starts after the last of them asked."""
        self.room_hooks.room_snapshot.append(part)

    def on_join_check(self, check: JoinCheck) -> None:
        """Run ``check`` before every join (a rejoin included) and every move into a room; it
        answers for each entrant (see :data:`JoinCheck`). Checks run in registration order, each
        on the entrants no earlier one refused."""
        self.room_hooks.join_checks.append(check)

    def on_leave(self, hook: LeaveHook) -> None:
        """Await ``hook(session, room)`` after a session left a room, whatever the reason."""
        self.room_hooks.leave.append(hook)

    # --- hello and HTTP -------------------------------------------------------------------------

    def on_hello(self, hook: HelloHook) -> None:
        """Await ``hook`` in every successful ``hello`` (see :data:`HelloHook`)."""
        self.hello_hooks.append(hook)

    def route(
        self, path: str, endpoint: HttpEndpoint, *, methods: Collection[str] = ("GET",)
    ) -> None:
        """Serve ``path`` (a Starlette path pattern) over HTTP; routes match in the order they
        were added."""
        self.routes.append(Route(path, endpoint, methods=list(methods)))


def install_all(features: Collection[Feature], ctx: FeatureContext) -> None:
    """Install ``features`` in order (a feature's hooks run in this order too)."""
    for feature in features:
        feature.install(ctx)
