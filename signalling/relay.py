"""The embedded SFU: an aiortc relay inside the node, for small audiences on one node.

Each speaker publishes on a peer connection whose tracks an aiortc ``MediaRelay`` hands to every
viewer's connection on this node. aiortc decodes what a speaker sends and encodes it again for
each viewer, so its cost grows with viewers times tracks: the relay refuses a viewer beyond the
capacity it was given (``unavailable``, naming Janus as the way up), measured in
``benchmarks/relay.py``. Tracks published on another node are not here: a viewer whose stage
is elsewhere gets ``unavailable`` too (a deployment of several nodes uses ``--sfu janus...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from hub.errors import HubError
from signalling.sfu import Leg, SfuListener, StageTrack, WatchedTrack, unavailable
from signalling.wire import IceCandidate

log = logging.getLogger(__name__)

# The streams (one track to one viewer) a node's relay encodes at once by default. Measured
# with benchmarks/relay.py: one core carries about 14 streams of 360p video, or of audio, at
# full rate (aiortc decodes, resamples and encodes audio in Python too), and the node's own
# work needs the rest.
DEFAULT_CAPACITY = 12
JANUS_HINT = "run the hub with --sfu janus+ws://HOST:8188 for larger audiences"


def offer_addresses(addresses: Sequence[str]) -> None:
    """Make this process's aiortc offer host candidates on ``addresses`` only (a server with
    several interfaces names its public one; tests keep media on loopback). aioice has no
    option for it: its address lookup is replaced, process-wide, and the relay is the only
    user of aiortc in a hub process."""
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


@dataclass(eq=False)
class _Publisher:
    """A speaker's connection: the tracks it sends, by kind."""

    pc: RTCPeerConnection
    user: str
    tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)
    # Its background work (the drains of its tracks, its announcement), ended with it.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass(eq=False)
class _Carried:
    """A stage track on a viewer's connection: its transceiver and the relay's copy."""

    transceiver: RTCRtpTransceiver
    copy: MediaStreamTrack
    track: StageTrack


@dataclass(eq=False)
class _Viewer:
    """A viewer's connection, what it carries, and what it should carry."""

    pc: RTCPeerConnection
    wanted: list[StageTrack]
    carried: dict[tuple[str, str], _Carried] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # A new stage came while an offer was out: offer again once it is answered.
    stale: bool = False


class EmbeddedRelay:
    """The in-process SFU (see the module docstring); implements :class:`signalling.sfu.Sfu`."""

    name = "embedded"
    simulcast = False

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._relay = MediaRelay()
        self._listener: SfuListener | None = None
        self._publishers: dict[tuple[str, str], _Publisher] = {}
        self._viewers: dict[tuple[str, str], _Viewer] = {}

    def start(self, listener: SfuListener) -> None:
        """Remember whom to tell about offers and ended connections."""
        self._listener = listener

    async def close(self) -> None:
        """Close every connection."""
        for room, sid in list(self._viewers) + list(self._publishers):
            await self.hangup(room, sid, None)

    def degraded(self) -> str | None:
        """Never: the relay is part of the node."""
        return None

    def load(self) -> int:
        """The streams the relay encodes now (a track to a viewer each)."""
        return sum(len(viewer.carried) for viewer in self._viewers.values())

    # --- publishing -----------------------------------------------------------------------------

    async def publish(self, room: str, sid: str, user: str, sdp: str) -> str:
        """Answer a speaker's offer (a second offer replaces the first connection); its tracks
        are published at once, after the answer is returned."""
        await self.hangup(room, sid, Leg.PUBLISH)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        publisher = _Publisher(pc, user)
        self._publishers[(room, sid)] = publisher

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind in ("audio", "video") and track.kind not in publisher.tracks:
                publisher.tracks[track.kind] = track
                # Nobody may watch yet, and aiortc queues what it receives without bound
                # until someone reads: one copy is always read, which keeps the source drained.
                copy = self._relay.subscribe(track, buffered=False)
                publisher.tasks.append(asyncio.ensure_future(_drain(copy)))

        self._watch_state(room, sid, Leg.PUBLISH, pc)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, RuntimeError) as error:
            await self.hangup(room, sid, Leg.PUBLISH)
            raise HubError("bad_request", f"sdp: {error}") from None
        if not publisher.tracks:
            await self.hangup(room, sid, Leg.PUBLISH)
            raise HubError("bad_request", "sdp: the offer sends no audio or video")
        if self._listener is not None:
            # Relayed from the first frame: watchable now, but announced after the answer.
            published = self._listener.sfu_published(room, sid, user, sorted(publisher.tracks))
            publisher.tasks.append(asyncio.ensure_future(published))
        return str(pc.localDescription.sdp)

    # --- watching -------------------------------------------------------------------------------

    async def subscribe(self, room: str, sid: str, tracks: Sequence[StageTrack]) -> None:
        """Start a viewer's connection (replacing one it had) and make it the offer."""
        missing = [t for t in tracks if self._source(room, t) is None]
        if missing:
            raise unavailable(f"the embedded relay serves one node: {JANUS_HINT}")
        await self.hangup(room, sid, Leg.WATCH)
        if self.load() + len(tracks) > self.capacity:
            raise unavailable(
                f"the embedded relay is at its capacity of {self.capacity} streams: {JANUS_HINT}"
            )
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer = self._viewers[(room, sid)] = _Viewer(pc, list(tracks))
        self._watch_state(room, sid, Leg.WATCH, pc)
        await self._offer(room, sid, viewer)

    async def answer(self, room: str, sid: str, sdp: str) -> None:
        """Apply a viewer's answer; a stage that changed meanwhile is offered next."""
        viewer = self._viewers.get((room, sid))
        if viewer is None:
            raise HubError("not_found", "no offer from the SFU to answer: subscribe first")
        async with viewer.lock:
            if viewer.pc.signalingState != "have-local-offer":
                raise HubError("conflict", "the SFU has no offer waiting for an answer")
            try:
                await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
            except (ValueError, RuntimeError) as error:
                raise HubError("bad_request", f"sdp: {error}") from None
            again, viewer.stale = viewer.stale, False
        if again:
            await self._offer(room, sid, viewer)

    async def watch(self, room: str, sid: str, tracks: Sequence[StageTrack]) -> None:
        """Offer the viewer ``tracks`` (those published on this node) if that is a change."""
        viewer = self._viewers.get((room, sid))
        here = [t for t in tracks if self._source(room, t) is not None]
        if viewer is not None and viewer.wanted != here:
            viewer.wanted = here
            await self._offer(room, sid, viewer)

    async def _offer(self, room: str, sid: str, viewer: _Viewer) -> None:
        async with viewer.lock:
            pc = viewer.pc
            if pc.signalingState != "stable":
                viewer.stale = True
                return
            self._carry(room, viewer)
            if not pc.getTransceivers():
                return  # nothing on stage yet: an offer without media is no offer
            await pc.setLocalDescription(await pc.createOffer())
            offered = [
                WatchedTrack(c.transceiver.mid or "", c.track.sid, c.track.user, c.track.kind)
                for c in viewer.carried.values()
            ]
            sdp = pc.localDescription.sdp
        if self._listener is not None:
            await self._listener.sfu_offer(room, sid, sdp, offered)

    def _carry(self, room: str, viewer: _Viewer) -> None:
        """Make the viewer's transceivers send what it wants: tracks that left stop (their
        transceivers stay, inactive: a sender whose source ended never sends again), new ones
        get transceivers of their own."""
        wanted = {(t.sid, t.kind): t for t in viewer.wanted}
        for key in [key for key in viewer.carried if key not in wanted]:
            carried = viewer.carried.pop(key)
            carried.transceiver.sender.replaceTrack(None)
            carried.transceiver.direction = "inactive"
            carried.copy.stop()
        for key, track in wanted.items():
            source = self._source(room, track)
            if key in viewer.carried or source is None:
                continue
            copy = self._relay.subscribe(source, buffered=False)
            transceiver = viewer.pc.addTransceiver(copy, direction="sendonly")
            viewer.carried[key] = _Carried(transceiver, copy, track)

    def _source(self, room: str, track: StageTrack) -> MediaStreamTrack | None:
        publisher = self._publishers.get((room, track.sid))
        return publisher.tracks.get(track.kind) if publisher is not None else None

    # --- both -----------------------------------------------------------------------------------

    async def candidate(self, room: str, sid: str, leg: Leg, candidate: IceCandidate) -> None:
        """Add a trickled candidate to the session's connection (an empty one ends them)."""
        pc = self._pc(room, sid, leg)
        if pc is None:
            raise HubError("not_found", f"no {leg} connection with the SFU in {room}")
        line = candidate["candidate"]
        if not line:
            return
        try:
            parsed = candidate_from_sdp(line.removeprefix("candidate:"))
        except (ValueError, IndexError):
            raise HubError("bad_request", "candidate.candidate: not an ICE candidate") from None
        parsed.sdpMid = candidate["sdpMid"]
        parsed.sdpMLineIndex = candidate["sdpMLineIndex"]
        await pc.addIceCandidate(parsed)

    async def hangup(self, room: str, sid: str, leg: Leg | None) -> bool:
        """Close the session's connection(s); whether it was publishing."""
        published = False
        if leg in (None, Leg.WATCH):
            viewer = self._viewers.pop((room, sid), None)
            if viewer is not None:
                for carried in viewer.carried.values():
                    carried.copy.stop()
                await viewer.pc.close()
        if leg in (None, Leg.PUBLISH):
            publisher = self._publishers.pop((room, sid), None)
            if publisher is not None:
                published = bool(publisher.tracks)
                for task in publisher.tasks:
                    task.cancel()
                await publisher.pc.close()
        return published

    def legs(self, room: str, sid: str) -> set[Leg]:
        """The session's connections with the relay in ``room``."""
        legs = set()
        if (room, sid) in self._publishers:
            legs.add(Leg.PUBLISH)
        if (room, sid) in self._viewers:
            legs.add(Leg.WATCH)
        return legs

    def _pc(self, room: str, sid: str, leg: Leg) -> RTCPeerConnection | None:
        holder = (self._publishers if leg is Leg.PUBLISH else self._viewers).get((room, sid))
        return holder.pc if holder is not None else None

    def _watch_state(self, room: str, sid: str, leg: Leg, pc: RTCPeerConnection) -> None:
        @pc.on("connectionstatechange")
        async def changed() -> None:
            if pc.connectionState != "failed" or self._pc(room, sid, leg) is not pc:
                return
            await self.hangup(room, sid, leg)
            if self._listener is not None:
                await self._listener.sfu_bye(room, sid, leg, "the connection failed")


async def _drain(track: MediaStreamTrack) -> None:
    """Read ``track`` until it ends, discarding what comes."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()
