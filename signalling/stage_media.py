"""The stage of panels through the SFU, on one node: signals to ``"sfu"``, the stage's tracks,
and the ``stage`` event.

A speaker or moderator of a panel publishes with an offer to the SFU and gets its answer; the
tracks it publishes join the panel's stage (a store hash shared by every node), and a stored
``stage {room, tracks}`` event tells every member, and every node, what is on it. Anyone in the
panel subscribes: the SFU offers them the stage, they answer, and whenever a ``stage`` event
changes what they watch, their node asks the SFU to renegotiate. Leaving the room or the stage,
closing, or a role below speaker hangs up; the SFU's own ends reach the session as ``bye`` from
``"sfu"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hub.auth import Role
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import FeatureContext, RoomInfo
from hub.node import Node
from hub.session import Session
from hub.wire import EmptyReply
from rooms.feature import RoomsFeature
from rooms.model import RoomKind, joined_room
from signalling.rules import SFU, SfuSignal, SignalType
from signalling.sfu import Leg, Sfu, StageTrack, WatchedTrack
from signalling.wire import SignalEvent, StageTrackWire, TracksPart

log = logging.getLogger(__name__)

# A stage change is published, then read again: a concurrent change may have been published
# before it with an older list. At most this many rounds until the last event is the stage.
CONVERGE_ROUNDS = 3


def tracks_key(room: str) -> str:
    """The store hash of a panel's published tracks: sid -> {user, kinds}."""
    return f"sfu-stage:{room}"


def wire_tracks(tracks: Sequence[StageTrack]) -> list[StageTrackWire]:
    """Tracks as the ``stage`` event and the join snapshot carry them."""
    return [{"sid": t.sid, "user": t.user, "kind": t.kind} for t in tracks]


class StageMedia:
    """The node's side of the SFU (see the module docstring); the SFU's listener."""

    def __init__(
        self,
        node: Node,
        rooms: RoomsFeature,
        make_sfu: Callable[[], Sfu],
        *,
        at_start: bool = False,
    ) -> None:
        """``make_sfu`` is called when the node starts (``at_start``), or else when the stage is
        first used (the embedded relay loads aiortc, which a node that never sees a stage need
        not hold)."""
        self.node = node
        self.rooms = rooms
        self._make_sfu = make_sfu
        self._at_start = at_start
        self._sfu: Sfu | None = None
        # (room, sid of a viewer of this node) -> the publishers it asked for (None: all)
        self.viewers: dict[tuple[str, str], frozenset[str] | None] = {}

    def install(self, ctx: FeatureContext) -> None:
        """Hook the stage into the node: its event, leaves, closes, role changes, snapshots,
        the SFU's start, stop and readiness."""
        ctx.on_stored("stage", self._stage_event)
        ctx.on_stored("role", self._role_changed)
        ctx.on_leave(self._left)
        ctx.on_session_closed(self._closed)
        ctx.on_room_snapshot(self._snapshot)
        ctx.on_stop(self._stop)
        ctx.on_readiness(self._readiness)
        if self._at_start:
            ctx.on_start(self._start)
        self.rooms.on_node_swept(self._node_gone)

    @property
    def sfu(self) -> Sfu:
        """The node's SFU, made (and started) on first use."""
        if self._sfu is None:
            self._sfu = self._make_sfu()
            self._sfu.start(self)
        return self._sfu

    async def _start(self) -> None:
        self.sfu  # noqa: B018 -- made and started: it connects in the background

    def _readiness(self) -> dict[str, str]:
        """``sfu``: ``ok``, or ``degraded: <why>`` while the media server cannot serve (an SFU
        not made yet, the embedded relay's, is never degraded)."""
        why = self._sfu.degraded() if self._sfu is not None else None
        return {"sfu": "ok" if why is None else f"degraded: {why}"}

    async def _stop(self) -> None:
        if self._sfu is not None:
            await self._sfu.close()

    # --- signals to the SFU -------------------------------------------------------------------

    async def signal(self, ctx: CommandContext, signal: SfuSignal) -> EmptyReply:
        """Handle one signal to the SFU (its rules: docs/protocol.md, "The stage through the
        SFU")."""
        session = ctx.session
        room = await self._panel(signal.room, session)
        if signal.type is SignalType.OFFER:
            await self._publish(ctx, room, signal)
        elif signal.type is SignalType.SUBSCRIBE:
            self.viewers[(room.id, session.sid)] = signal.tracks
            try:
                await self.sfu.subscribe(
                    room.id, session.sid, await self._watched(room.id, session)
                )
            except HubError:
                self.viewers.pop((room.id, session.sid), None)
                raise
        elif signal.type is SignalType.ANSWER:
            await self.sfu.answer(room.id, session.sid, signal.sdp or "")
        elif signal.type is SignalType.CANDIDATE:
            assert signal.candidate is not None
            leg = self._leg_of(room.id, session.sid, signal.leg)
            await self.sfu.candidate(room.id, session.sid, leg, signal.candidate)
        else:
            await self._hangup(room.id, session.sid, signal.leg)
        return {}

    async def _panel(self, room_id: str, session: Session) -> RoomInfo:
        joined_room(room_id, session.rooms)
        room = await self.rooms.directory.require(room_id)
        if room.kind != RoomKind.PANEL:
            raise HubError("bad_request", f"{room.id} has no stage: the SFU serves panels")
        return room

    def _leg_of(self, room: str, sid: str, leg: Leg | None) -> Leg:
        if leg is not None:
            return leg
        legs = self.sfu.legs(room, sid)
        if len(legs) == 1:
            return next(iter(legs))
        if not legs:
            raise HubError("not_found", f"no connection with the SFU in {room}")
        raise HubError("bad_request", "leg: required while both publishing and watching")

    async def _publish(self, ctx: CommandContext, room: RoomInfo, signal: SfuSignal) -> None:
        session = ctx.session
        if await self.rooms.roles.current_role(session, room.id) < Role.SPEAKER:
            raise HubError("forbidden", "only the stage (speakers, moderators) may publish")
        answer = await self.sfu.publish(room.id, session.sid, session.user_id, signal.sdp or "")
        session.send(self._event(room.id, SignalType.ANSWER, Leg.PUBLISH, sdp=answer))

    async def _hangup(self, room: str, sid: str, leg: Leg | None) -> None:
        if leg in (None, Leg.WATCH):
            self.viewers.pop((room, sid), None)
        await self.sfu.hangup(room, sid, leg)
        if leg in (None, Leg.PUBLISH) and await self.node.store.hash_delete(tracks_key(room), sid):
            await self._publish_stage(room)

    # --- the stage ----------------------------------------------------------------------------

    async def stage(self, room: str) -> list[StageTrack]:
        """The panel's tracks now, ordered by session and kind."""
        entries = await self.node.store.hash_get_all(tracks_key(room))
        tracks = []
        for sid in sorted(entries):
            entry = unpack(entries[sid])
            for kind in sorted(entry.get("kinds", ())):
                tracks.append(StageTrack(sid, str(entry.get("user")), str(kind)))
        return tracks

    async def _publish_stage(self, room: str) -> None:
        tracks = await self.stage(room)
        for _ in range(CONVERGE_ROUNDS):
            await self.node.publish_event(room, "stage", {"tracks": wire_tracks(tracks)})
            latest = await self.stage(room)
            if latest == tracks:
                return
            tracks = latest

    async def _watched(self, room: str, session: Session) -> list[StageTrack]:
        return self._filter(room, session.sid, await self.stage(room))

    def _filter(self, room: str, sid: str, tracks: Sequence[StageTrack]) -> list[StageTrack]:
        wanted = self.viewers.get((room, sid))
        return [t for t in tracks if t.sid != sid and (wanted is None or t.sid in wanted)]

    def _stage_event(self, event: Mapping[str, Any]) -> None:
        room = event["room"]
        tracks = [StageTrack(t["sid"], t["user"], t["kind"]) for t in event.get("tracks", ())]
        for of, sid in [key for key in self.viewers if key[0] == room]:
            self.node.spawn(self._rewatch(of, sid, tracks))

    async def _rewatch(self, room: str, sid: str, tracks: Sequence[StageTrack]) -> None:
        if (room, sid) not in self.viewers:
            return
        try:
            await self.sfu.watch(room, sid, self._filter(room, sid, tracks))
        except HubError as error:
            await self.sfu_bye(room, sid, Leg.WATCH, error.msg)

    async def _snapshot(self, room: RoomInfo, role: Role) -> TracksPart:
        if room.kind != RoomKind.PANEL:
            return {}
        return {"tracks": wire_tracks(await self.stage(room.id))}

    # --- leaving ------------------------------------------------------------------------------

    async def _left(self, session: Session, room: str) -> None:
        if self._sfu is None:
            return
        if self.sfu.legs(room, session.sid) or (room, session.sid) in self.viewers:
            await self._hangup(room, session.sid, None)

    async def _closed(self, session: Session) -> None:
        for room, sid in [key for key in self.viewers if key[1] == session.sid]:
            await self._hangup(room, sid, None)

    async def _node_gone(self, dead: str, rooms: list[str]) -> None:
        """A dead node's publishers leave the stages they were on."""
        store = self.node.store
        for room in rooms:
            entries = await store.hash_get_all(tracks_key(room))
            gone = [sid for sid in entries if sid.startswith(f"{dead}.")]
            for sid in gone:
                await store.hash_delete(tracks_key(room), sid)
            if gone:
                await self._publish_stage(room)

    def _role_changed(self, event: Mapping[str, Any]) -> None:
        if self._sfu is None:
            return
        room, user = event["room"], event["user"]
        for session in self.node.users.get(user, {}).values():
            if Leg.PUBLISH in self.sfu.legs(room, session.sid):
                self.node.spawn(self._check_stage(session, room))

    async def _check_stage(self, session: Session, room: str) -> None:
        if self.rooms.roles.cached_role(session, room) >= Role.SPEAKER:
            return
        await self._hangup(room, session.sid, Leg.PUBLISH)
        session.send(self._event(room, SignalType.BYE, Leg.PUBLISH, reason="no longer on stage"))

    # --- what the SFU says --------------------------------------------------------------------

    async def sfu_offer(
        self, room: str, sid: str, sdp: str, tracks: Sequence[WatchedTrack]
    ) -> None:
        """Send the SFU's offer to the viewer, if it is still here."""
        session = self.node.sessions.get(sid)
        if session is None or room not in session.rooms:
            return
        watched = [{"mid": t.mid, "sid": t.sid, "user": t.user, "kind": t.kind} for t in tracks]
        event = self._event(room, SignalType.OFFER, Leg.WATCH, sdp=sdp)
        event["tracks"] = watched  # type: ignore[typeddict-item]
        session.send(event)

    async def sfu_published(self, room: str, sid: str, user: str, kinds: Sequence[str]) -> None:
        """Put the speaker's tracks on the stage, if it is still publishing there."""
        if Leg.PUBLISH not in self.sfu.legs(room, sid):
            return
        entry = pack({"user": user, "kinds": list(kinds)})
        await self.node.store.hash_set(tracks_key(room), sid, entry)
        if Leg.PUBLISH not in self.sfu.legs(room, sid):
            # It hung up while the entry was being written: its hang-up found nothing to take.
            await self.node.store.hash_delete(tracks_key(room), sid)
        await self._publish_stage(room)

    async def sfu_bye(self, room: str, sid: str, leg: Leg, reason: str) -> None:
        """A connection with the SFU ended: tell the session; a publisher leaves the stage."""
        if leg is Leg.WATCH:
            self.viewers.pop((room, sid), None)
        elif await self.node.store.hash_delete(tracks_key(room), sid):
            await self._publish_stage(room)
        session = self.node.sessions.get(sid)
        if session is not None and room in session.rooms:
            session.send(self._event(room, SignalType.BYE, leg, reason=reason))

    @staticmethod
    def _event(
        room: str, kind: SignalType, leg: Leg, *, sdp: str | None = None, reason: str | None = None
    ) -> SignalEvent:
        event: SignalEvent = {
            "ev": "signal",
            "room": room,
            "from": SFU,
            "user": SFU,
            "type": kind.value,
            "leg": leg.value,
        }
        if sdp is not None:
            event["sdp"] = sdp
        if reason is not None:
            event["reason"] = reason
        return event
