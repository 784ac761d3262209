"""WebRTC signalling between the sessions of a room: ``signal`` relay to one session on any node,
``media`` state, the join snapshot's ``peers`` (in a panel, only its stage), and ``bye`` when a
peer leaves or its role changes.

A signal goes from the sender's node to the node of the session it is for (the sid names it) as
an internal message; that node checks the session is still in the room, notes the two as peers
and queues the event. Each node knows the peers of its own sessions, so when one of them leaves
a room, or its role there changes, the node sends ``bye`` on its behalf to each peer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hub.auth import Identity, Role
from hub.broker import node_topic
from hub.codec import pack, unpack
from hub.config import HubConfig
from hub.dispatch import CommandContext, rate_limited
from hub.errors import HubError
from hub.feature import Entrant, FeatureContext, RoomInfo
from hub.node import Node
from hub.ratelimit import KeyedLimiter, TokenBucket
from hub.session import Session
from hub.shared_read import FreshSharedRead
from hub.wire import EmptyReply
from rooms.feature import RoomsFeature
from rooms.model import RoomKind, joined_room
from rooms.wire import PresenceEntry
from signalling.ice import IceSettings, ice_servers
from signalling.janus_rules import janus_urls
from signalling.janus_sfu import JanusSettings, JanusSfu
from signalling.rules import (
    NO_MEDIA,
    SFU,
    SignalType,
    may_signal,
    parse_media,
    parse_sfu_signal,
    parse_signal,
)
from signalling.sfu import Sfu
from signalling.sfu_metrics import JanusCollector
from signalling.stage_media import StageMedia
from signalling.wire import (
    IceServer,
    MediaEvent,
    MediaState,
    Peer,
    PeersPart,
    SfuInfo,
    SignalEvent,
    SignallingHelloPart,
)

# Signals per session: an ICE burst (an offer and a few dozen candidates to each of a handful of
# peers) passes; a flood is refused with rate_limited and, kept up, closed with 4029.
SIGNAL_RATE = 50.0
SIGNAL_BURST = 200.0
# Offers and answers (up to 32 KiB of SDP each) have a budget of their own, so that a burst of
# them stays far below a receiver's outbound queue (4 MiB) instead of closing it as slow.
SDP_RATE = 2.0
SDP_BURST = 20.0
# Per user on this node, across their connections: more connections buy no more than twice
# one connection's budget.
USER_SIGNAL_RATE = 2 * SIGNAL_RATE
USER_SIGNAL_BURST = 2 * SIGNAL_BURST
# Byte budgets in the store, shared by every node (Signal.cost bytes per SIGNAL_WINDOW seconds):
# what one user sends across all their connections, and what one session receives, whoever
# sends. An ICE burst to a workshop's twenty peers is about 200 KB; a receiver's outbound queue
# is 4 MiB, so a flood at the receiver's cap takes seconds of reading time to fill it.
SIGNAL_WINDOW = 1.0
USER_SIGNAL_BYTES = 512 * 1024
RECEIVER_SIGNAL_BYTES = 512 * 1024
# At most this many peers in a join snapshot (a panel's audience is for the SFU).
MAX_PEERS = 500


def media_key(room: str) -> str:
    """The broker hash of a room's media states (sid -> state)."""
    return f"media:{room}"


def stage_key(room: str) -> str:
    """The broker hash of a panel's sessions on stage (sid -> user id): those whose role in the
    panel is speaker or above, the only peers its join snapshot lists."""
    return f"stage:{room}"


def ice_settings(config: HubConfig) -> IceSettings:
    """The STUN and TURN settings of a hub's configuration."""
    return IceSettings(config.stun_urls, config.turn_urls, config.turn_secret, config.turn_ttl)


class SignallingFeature:
    """Signalling on one node (see the module docstring)."""

    def __init__(self, node: Node, rooms: RoomsFeature, sfu: Sfu | None = None) -> None:
        self.node = node
        self.rooms = rooms
        config = node.config
        sfu = sfu or _janus(config)
        if isinstance(sfu, JanusSfu):
            node.metrics.registry.register(JanusCollector(sfu))
        self.stage_media = StageMedia(
            node,
            rooms,
            (lambda: sfu) if sfu else (lambda: _embedded_relay(config)),
            # A media server of its own is connected at start (readiness reports on it); the
            # embedded relay loads aiortc only once a stage is used.
            at_start=sfu is not None,
        )
        self.ice = ice_settings(node.config)
        # What the hello reply says of the SFU; the embedded relay (made on a stage's first use,
        # so as not to load aiortc before) takes no simulcast: it decodes one stream per speaker.
        self.sfu_info: SfuInfo = (
            {"name": sfu.name, "simulcast": sfu.simulcast}
            if sfu
            else {"name": "embedded", "simulcast": False}
        )
        # (room, sid of a session of this node) -> sids it exchanged signals with
        self.peers: dict[tuple[str, str], set[str]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._sdp_buckets: dict[str, TokenBucket] = {}
        self._users = KeyedLimiter(USER_SIGNAL_RATE, USER_SIGNAL_BURST)
        # A room's peers (a panel's stage), read once for the joins asking together.
        self._room_peers: FreshSharedRead[RoomInfo, list[Peer]] = FreshSharedRead(
            self._read_room_peers
        )
        self._stage_peers: FreshSharedRead[RoomInfo, list[Peer]] = FreshSharedRead(
            self._read_stage_peers
        )

    def install(self, ctx: FeatureContext) -> None:
        """Register ``signal`` (with its own rate limit) and ``media``, and the hooks."""
        ctx.command("signal", self.signal, own_rate_limit=True)
        ctx.command("media", self.media)
        ctx.on_signal("rtc.signal", self._deliver)
        ctx.on_stored("role", self._role_changed)
        ctx.on_session_closed(self._session_closed)
        ctx.on_history_lost(self._restore_stage)
        ctx.on_leave(self._left)
        ctx.on_snapshot(self._snapshot)
        ctx.on_stop(self._room_peers.close)
        ctx.on_stop(self._stage_peers.close)
        ctx.on_hello(self._hello)
        self.stage_media.install(ctx)

    async def _hello(self, ctx: CommandContext, identity: Identity) -> SignallingHelloPart:
        return {"ice_servers": self.ice_servers(identity), "sfu": self.sfu_info.copy()}

    def ice_servers(self, identity: Identity) -> list[IceServer]:
        """The ``ice_servers`` of a hello reply: no TURN for guests (anyone could get relay
        credentials from a hub that admits guests)."""
        settings = self.ice if not identity.guest else replace(self.ice, turn_urls=())
        return ice_servers(settings, identity.user_id, time.time())

    # --- signal -------------------------------------------------------------------------------

    async def signal(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Relay a signal to one session of the room, wherever it is connected. Both must be in
        the room (``forbidden`` for the sender, ``not_found`` for the peer, and then nothing is
        delivered); in panels :func:`signalling.rules.may_signal` decides who signals whom."""
        session = ctx.session
        self._check_rate(ctx, self._buckets, SIGNAL_RATE, SIGNAL_BURST, per_user=True)
        if cmd.get("to") == SFU:
            to_sfu = parse_sfu_signal(cmd)
            if to_sfu.sdp is not None:
                self._check_rate(ctx, self._sdp_buckets, SDP_RATE, SDP_BURST)
            await self._check_sender_bytes(ctx, to_sfu.cost())
            return await self.stage_media.signal(ctx, to_sfu)
        signal = parse_signal(cmd)
        if signal.sdp is not None:
            self._check_rate(ctx, self._sdp_buckets, SDP_RATE, SDP_BURST)
        joined_room(signal.room, session.rooms)
        if signal.to == session.sid:
            raise HubError("bad_request", "a session does not signal itself")
        room = await self.rooms.directory.require(signal.room)
        if not room.has_media:
            raise HubError("bad_request", f"{room.id} has no media")
        entry = await self.node.broker.presence_get(room.id, signal.to)
        if entry is None:
            raise HubError("not_found", f"session {signal.to} is not in {room.id}")
        if room.kind is RoomKind.PANEL:
            sender = await self.rooms.roles.current_role(session, room.id)
            target = self._role_of_entry(room, unpack(entry))
            if not may_signal(room.kind, sender, target):
                raise HubError("forbidden", "in a panel the audience signals only the stage")
        await self._check_sender_bytes(ctx, signal.cost())
        await self._check_receiver_bytes(ctx, signal.to, signal.cost())
        # The awaits above may have seen the sender leave (a kick, a closed breakout).
        if signal.room not in session.rooms or not session.open:
            raise HubError("forbidden", f"not in {signal.room} any more")
        event = signal.event(session.sid, ctx.identity.user_id)
        if signal.type is SignalType.BYE:
            self._drop_peer(room.id, session.sid, signal.to)
        else:
            self.peers.setdefault((room.id, session.sid), set()).add(signal.to)
        await self._relay(signal.to, event)
        return {}

    def _drop_peer(self, room: str, sid: str, peer: str) -> None:
        peers = self.peers.get((room, sid))
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self.peers[(room, sid)]

    def _check_rate(
        self,
        ctx: CommandContext,
        buckets: dict[str, TokenBucket],
        rate: float,
        burst: float,
        *,
        per_user: bool = False,
    ) -> None:
        identity = ctx.identity
        if identity.role is Role.ORGANIZER:
            return
        sid = ctx.session.sid
        bucket = buckets.get(sid)
        if bucket is None:
            bucket = buckets[sid] = TokenBucket(rate, burst)
        now = time.monotonic()
        if bucket.take(now) and (not per_user or self._users.take(ctx.session.rate_key, now)):
            return
        self.node.metrics.rate_limited.inc()
        raise rate_limited(ctx.session, now, "signals")

    async def _check_sender_bytes(self, ctx: CommandContext, cost: int) -> None:
        """Charge ``cost`` to the sender's byte budget (organizers have none): ``rate_limited``
        once it is spent for this window. Charged only for signals that passed every check
        but the receiver's budget."""
        if ctx.identity.role is Role.ORGANIZER:
            return
        sender = f"signals:from:{ctx.session.rate_key}"
        if await self.node.store.window_add(sender, cost, SIGNAL_WINDOW) > USER_SIGNAL_BYTES:
            self.node.metrics.rate_limited.inc()
            raise rate_limited(ctx.session, time.monotonic(), "signals from this user")

    async def _check_receiver_bytes(self, ctx: CommandContext, to: str, cost: int) -> None:
        """Charge ``cost`` to the receiver's byte budget, whoever sends: ``rate_limited`` once
        it is spent for this window, so nobody spends it with signals refused anyway."""
        received = await self.node.store.window_add(f"signals:to:{to}", cost, SIGNAL_WINDOW)
        if received > RECEIVER_SIGNAL_BYTES:
            self.node.metrics.rate_limited.inc()
            raise rate_limited(ctx.session, time.monotonic(), f"signals to {to}")

    def _role_of_entry(self, room: RoomInfo, entry: PresenceEntry) -> Role:
        try:
            joined_as = Role.parse(entry.get("role"))
        except ValueError:
            joined_as = Role.ATTENDEE
        return self.rooms.roles.cached_role(str(entry.get("user")), room.id, joined_as)

    async def _relay(self, to: str, event: SignalEvent) -> None:
        node = to.split(".", 1)[0]
        await self.node.signal(node_topic(node), "rtc.signal", {"to": to, "event": event})

    def _deliver(self, data: Any) -> None:
        to, event = data["to"], data["event"]
        session = self.node.sessions.get(to)
        room = event["room"]
        if session is None or room not in session.rooms:
            return  # it left meanwhile: the sender gets its bye
        if event["type"] == SignalType.BYE:
            self._drop_peer(room, to, event["from"])
        else:
            self.peers.setdefault((room, to), set()).add(event["from"])
        session.send(event)

    # --- bye ----------------------------------------------------------------------------------

    async def _left(self, session: Session, room: str) -> None:
        await self._bye_all(session, room)
        await self.node.store.hash_delete(media_key(room), session.sid)
        if self._is_panel(room):
            await self.node.store.hash_delete(stage_key(room), session.sid)

    async def _bye_all(self, session: Session, room: str) -> None:
        peers = self.peers.pop((room, session.sid), set())
        for peer in sorted(peers):
            bye: SignalEvent = {
                "ev": "signal",
                "room": room,
                "from": session.sid,
                "user": session.user_id,
                "type": SignalType.BYE.value,
            }
            await self._relay(peer, bye)

    def _role_changed(self, event: dict[str, Any]) -> None:
        room, user = event["room"], event["user"]
        panel = self._is_panel(room)
        for session in self.node.users.get(user, {}).values():
            if (room, session.sid) in self.peers:
                self.node.spawn(self._bye_all(session, room))
            if panel and room in session.rooms:
                self.node.spawn(self._place(session, room))

    # --- the stage of panels ------------------------------------------------------------------

    def _is_panel(self, room: str) -> bool:
        # Every room a session of this node joined is in the directory's cache (breakouts,
        # which are not, are never panels).
        known = self.rooms.directory.cached(room)
        return known is not None and known.kind is RoomKind.PANEL

    async def _place(self, session: Session, room: str) -> None:
        """Put a member of a panel on its stage index, or take it off, by its role there (as
        this node holds it: current, since the node follows the room)."""
        if self.rooms.roles.cached_role(session, room) >= Role.SPEAKER:
            await self.node.store.hash_set(stage_key(room), session.sid, session.user_id.encode())
        else:
            await self.node.store.hash_delete(stage_key(room), session.sid)

    async def _restore_stage(self, room: str) -> None:
        """The broker lost its data: put this node's members of a panel's stage back on it."""
        if not self._is_panel(room):
            return
        for session in self.node.followers(room):
            if self.rooms.roles.cached_role(session, room) >= Role.SPEAKER:
                await self._place(session, room)

    async def _session_closed(self, session: Session) -> None:
        self._buckets.pop(session.sid, None)
        self._sdp_buckets.pop(session.sid, None)
        # Normally emptied as it left each room; whatever a failed leave left behind goes too.
        for key in [key for key in self.peers if key[1] == session.sid]:
            del self.peers[key]

    # --- media --------------------------------------------------------------------------------

    async def media(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Publish the caller's media state in a room with media: event ``media {room, sid,
        user, audio, video, screen}`` to its members; the state joins the ``peers`` snapshot."""
        room = await self.rooms.directory.require(joined_room(cmd.get("room"), ctx.session.rooms))
        if not room.has_media:
            raise HubError("bad_request", f"{room.id} has no media")
        state = parse_media(cmd)
        await self.node.store.hash_set(media_key(room.id), ctx.session.sid, pack(state))
        event: MediaEvent = {
            "ev": "media",
            "room": room.id,
            "sid": ctx.session.sid,
            "user": ctx.identity.user_id,
            "name": ctx.identity.name,
            **state,
        }
        await self.node.broadcast(room.id, event)
        return {}

    async def _snapshot(
        self, room: RoomInfo, entrants: Sequence[Entrant]
    ) -> list[PeersPart | Exception]:
        """The join snapshot's ``peers``: the room's members with their media state (in a
        panel, only its stage), each entrant left out of its own. The room's list is read once
        for the joins asking together."""
        if not room.has_media:
            return [{} for _ in entrants]
        if room.kind is not RoomKind.PANEL:
            peers = await self._room_peers.get(room)
        else:
            speakers = {
                e.ctx.session.sid: e.ctx.session.user_id.encode()
                for e in entrants
                if e.role >= Role.SPEAKER
            }
            # On the index before the read: the other speakers' snapshots list the joiners.
            await self.node.store.hash_set_many(stage_key(room.id), speakers)
            peers = await self._stage_peers.get(room)
        return [
            {"peers": [peer for peer in peers if peer["sid"] != e.ctx.session.sid][:MAX_PEERS]}
            for e in entrants
        ]

    async def _read_room_peers(self, room: RoomInfo) -> list[Peer]:
        """Up to ``MAX_PEERS + 1`` members of a room with media (one more than a snapshot
        lists: the joiner is among them), with their media state."""
        members, media = await asyncio.gather(
            self.node.broker.presence_page(room.id, "", MAX_PEERS + 1),
            self.node.store.hash_get_all(media_key(room.id)),
        )
        if len(members) <= MAX_PEERS:
            # Every member is listed: states of sessions without a live entry (their node
            # died before they could leave) are dropped here, so the hash stays bounded.
            live = {sid for sid, _ in members}
            for sid in set(media) - live:
                await self.node.store.hash_delete(media_key(room.id), sid)
        peers: list[Peer] = []
        for sid, info in members:
            entry = unpack(info)
            state: MediaState = unpack(media[sid]) if sid in media else NO_MEDIA
            peers.append(
                {
                    "sid": sid,
                    "user": entry.get("user"),
                    "name": entry.get("name"),
                    "role": self._role_of_entry(room, entry).label,
                    "media": state.copy(),
                }
            )
        return peers

    async def _read_stage_peers(self, room: RoomInfo) -> list[Peer]:
        """A panel's stage (members whose role is speaker or above, up to ``MAX_PEERS + 1``),
        read from the stage index rather than the whole audience's presence; entries without
        a live presence entry (their node died) are dropped."""
        broker = self.node.broker
        store = self.node.store
        peers: list[Peer] = []
        for sid in sorted(await store.hash_get_all(stage_key(room.id))):
            info = await broker.presence_get(room.id, sid)
            if info is None:
                await store.hash_delete(stage_key(room.id), sid)
                await store.hash_delete(media_key(room.id), sid)
                continue
            entry = unpack(info)
            peer_role = self._role_of_entry(room, entry)
            if peer_role < Role.SPEAKER or len(peers) > MAX_PEERS:
                continue
            media = await store.hash_get(media_key(room.id), sid)
            state: MediaState = unpack(media) if media is not None else NO_MEDIA
            peers.append(
                {
                    "sid": sid,
                    "user": entry.get("user"),
                    "name": entry.get("name"),
                    "role": peer_role.label,
                    "media": state.copy(),
                }
            )
        return peers


def sfu_servers(config: HubConfig) -> tuple[str, ...]:
    """The WebSocket URLs of the Janus servers of ``--sfu`` (ValueError for one that is not a
    ``janus+ws://`` or ``janus+wss://`` URL); none: the embedded relay serves."""
    return janus_urls(config.sfu)


def _janus(config: HubConfig) -> Sfu | None:
    urls = sfu_servers(config)
    if not urls:
        return None
    settings = JanusSettings(
        urls,
        api_secret=config.sfu_api_secret,
        admin_key=config.sfu_admin_key,
        room_secret=config.sfu_room_secret,
    )
    return JanusSfu(settings)


def _embedded_relay(config: HubConfig) -> Sfu:
    # Loads aiortc: only once a stage is used.
    from signalling.relay import EmbeddedRelay, offer_addresses

    if config.media_addresses:
        offer_addresses(config.media_addresses)
    return EmbeddedRelay(config.relay_capacity)
