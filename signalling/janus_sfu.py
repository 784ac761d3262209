"""Janus's VideoRoom as the hub's SFU (``hub serve --sfu janus+ws://HOST:8188``), on one node.

Each node keeps one WebSocket connection and one Janus session per Janus server, and talks to
Janus only about its own sessions; the VideoRooms are what the nodes share. A panel's VideoRoom
(room id = panel id) lives on the server a hash of the panel id picks
(:func:`~signalling.janus_rules.server_index`), so several Janus servers share the panels; it is
created on demand by the first publisher, idempotently (``Room exists`` is success).

- A speaker publishes on a handle of its own that joins the room as a publisher whose Janus id
  is the hub sid and whose display is its user id. Its tracks join the stage
  (:meth:`SfuListener.sfu_published`) once Janus says its PeerConnection is up (``webrtcup``):
  until then a subscription to it would fail.
- A viewer watches on one subscriber handle (one PeerConnection) that takes every feed it is to
  watch; Janus offers, the hub relays the offer (``mid`` -> track from Janus's ``streams``) and
  sends the viewer's answer with ``start``. A stage change becomes one multistream ``update``
  (feeds to add and to drop) and a new offer; while an offer waits for its answer, the change
  waits too. Feeds Janus does not have (yet) are left out until the stage changes again.
- Simulcast: each viewer takes the speaker who appeared last on its stage high (substream 2),
  the others low (0), and moves the layers with ``configure`` when that changes.
- The connection to a server drops (Janus killed): every leg of this node on it ends with
  ``bye`` ("the media server went away"), its state is dropped, and the node reconnects in the
  background with back-off; the rooms are created again by the next publisher. While a server
  is down, :meth:`JanusSfu.degraded` says so and publishing or watching there is
  ``unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hub.errors import HubError
from signalling.janus_client import (
    VIDEOROOM,
    JanusClient,
    JanusError,
    JanusGone,
    JanusHandle,
    JanusSession,
    Message,
)
from signalling.janus_rules import (
    Update,
    appearance,
    carried_feeds,
    create_room,
    feeds_of,
    layer_changes,
    layers,
    missing_feed,
    published_kinds,
    server_index,
    update,
    watched_tracks,
)
from signalling.sfu import Leg, SfuListener, StageTrack, unavailable
from signalling.wire import IceCandidate

log = logging.getLogger(__name__)

GONE: Final = "the media server went away"
FAILED: Final = "the connection failed"
RECONNECT_FIRST: Final = 0.2
RECONNECT_CAP: Final = 5.0
# A connection that lived this long (seconds) was not a flapping one: back-off starts again.
STABLE: Final = 10.0
# How long a hang-up waits for Janus to detach a handle before leaving it to Janus's own
# cleanup (the session's end, at the latest).
DETACH_TIMEOUT: Final = 5.0
CLOSE_TIMEOUT: Final = 5.0

# VideoRoom error codes the hub acts on.
NO_SUCH_ROOM: Final = 426
ROOM_EXISTS: Final = 427
NO_SUCH_FEED: Final = 428
PUBLISHERS_FULL: Final = 432
# A client's SDP that Janus (464, 465, 469) or the VideoRoom (431, 437) refuses.
SDP_ERRORS: Final = frozenset({431, 437, 464, 465, 469})
TRICKLE_ERRORS: Final = frozenset({466})


@dataclass(frozen=True, slots=True)
class JanusSettings:
    """How a node uses its Janus servers: their WebSocket URLs (``ws://`` or ``wss://``), the
    Janus API secret (sent with every request, when Janus has one), the VideoRoom's admin key
    (to create rooms, when Janus asks one), the secret rooms are created with, and timings."""

    urls: tuple[str, ...]
    api_secret: str | None = None
    admin_key: str | None = None
    room_secret: str | None = None
    request_timeout: float = 10.0
    keepalive: float = 15.0


class _Server:
    """One Janus server as this node holds it: its connection and session while up, else why
    not."""

    def __init__(self, index: int, count: int, url: str) -> None:
        self.name = f"janus {index + 1}/{count}"
        self.url = url
        self.client: JanusClient | None = None
        self.session: JanusSession | None = None
        self.why: str | None = "connecting"
        # Rooms known to exist there (since this connection was made).
        self.rooms: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self.session is not None and self.client is not None and not self.client.closed


@dataclass(eq=False)
class _Publisher:
    """A speaker's handle: publishing in ``room`` as ``sid``."""

    server: _Server
    room: str
    sid: str
    user: str
    handle: JanusHandle | None = None
    kinds: list[str] = field(default_factory=list)
    published: bool = False
    pump: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Viewer:
    """A viewer's subscriber handle (None until there is something to watch), what it should
    carry, and where its negotiation stands."""

    server: _Server
    room: str
    sid: str
    wanted: list[StageTrack]
    # The feeds in the order they appeared on this viewer's stage (the last: its active speaker).
    order: list[str]
    handle: JanusHandle | None = None
    # Janus's streams as its last offer described them.
    streams: list[Message] = field(default_factory=list)
    # The substream asked of each feed.
    asked: dict[str, int] = field(default_factory=dict)
    # An offer went to the viewer and waits for its answer.
    offer_out: bool = False
    # Janus postponed an update: its offer will come on its own. Until an offer lists them, the
    # feeds that update added are ``pending`` (asking for them again would add them twice).
    offer_due: bool = False
    pending: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pump: asyncio.Task[None] | None = None


class JanusSfu:
    """The Janus VideoRoom SFU of one node (see the module docstring); implements
    :class:`signalling.sfu.Sfu`."""

    name = "janus"
    simulcast = True

    def __init__(self, settings: JanusSettings) -> None:
        if not settings.urls:
            raise ValueError("no Janus server")
        self.settings = settings
        count = len(settings.urls)
        self._servers = [_Server(i, count, url) for i, url in enumerate(settings.urls)]
        self._listener: SfuListener | None = None
        self._publishers: dict[tuple[str, str], _Publisher] = {}
        self._viewers: dict[tuple[str, str], _Viewer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        # Connections to a server that dropped (every leg on them ended), for /metrics.
        self.losses = 0

    # --- life cycle -----------------------------------------------------------------------------

    def start(self, listener: SfuListener) -> None:
        """Connect to every server in the background (and again whenever a connection drops)."""
        self._listener = listener
        for server in self._servers:
            server.task = asyncio.ensure_future(self._keep_connected(server))

    async def close(self) -> None:
        """Hang up every leg, destroy the sessions and close the connections (within
        :data:`CLOSE_TIMEOUT` seconds: a stalled Janus cleans up after the connection itself)."""
        self._closing = True
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                legs = set(self._viewers) | set(self._publishers)
                await asyncio.gather(*(self.hangup(room, sid, None) for room, sid in legs))
                for server in self._servers:
                    if server.session is not None:
                        with contextlib.suppress(JanusError, JanusGone):
                            await server.session.destroy()
        except TimeoutError:
            log.warning("janus: closing took over %s s; leaving the rest to Janus", CLOSE_TIMEOUT)
        for server in self._servers:
            if server.task is not None:
                server.task.cancel()
            if server.client is not None:
                await server.client.close()
        tasks = [s.task for s in self._servers if s.task is not None] + list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def servers(self) -> list[tuple[str, bool]]:
        """Each server's name (``janus 1/2``...) and whether this node is connected to it."""
        return [(server.name, server.up) for server in self._servers]

    def leg_counts(self) -> dict[Leg, int]:
        """How many connections this node's sessions have with Janus, by leg."""
        return {Leg.PUBLISH: len(self._publishers), Leg.WATCH: len(self._viewers)}

    def degraded(self) -> str | None:
        """None while every server is connected, else which are not and why."""
        down = [f"{s.name}: {s.why}" for s in self._servers if not s.up]
        return "; ".join(down) if down else None

    async def _keep_connected(self, server: _Server) -> None:
        """Connect to ``server``, and again whenever the connection drops, with a back-off
        that starts again once a connection has lived :data:`STABLE` seconds."""
        pause = RECONNECT_FIRST
        while not self._closing:
            connected_at = time.monotonic()
            why = await self._connect_once(server)
            if why is not None:
                self._down(server, why)
            if time.monotonic() - connected_at > STABLE:
                pause = RECONNECT_FIRST
            await asyncio.sleep(pause)  # the back-off between attempts
            pause = min(RECONNECT_CAP, pause * 2)

    async def _connect_once(self, server: _Server) -> str | None:
        """One connection to ``server`` until it drops (then its legs end): why it failed or
        dropped (None when the SFU is closing)."""
        try:
            client = await JanusClient.connect(
                server.url,
                api_secret=self.settings.api_secret,
                request_timeout=self.settings.request_timeout,
            )
        except JanusGone as error:
            return str(error)
        try:
            session = await client.create_session(self.settings.keepalive)
        except (JanusError, JanusGone, TimeoutError) as error:
            await client.close()
            return f"cannot create a session: {error or 'timed out'}"
        server.client, server.session, server.why = client, session, None
        log.info("janus: connected to %s (%s), session %s", server.name, server.url, session.id)
        why = await client.wait_closed()
        server.client = server.session = None
        server.rooms.clear()
        if self._closing:
            return None
        self._down(server, f"{why}; reconnecting")
        self.losses += 1
        await self._lost(server)
        return f"{why}; reconnecting"

    def _down(self, server: _Server, why: str) -> None:
        if why != server.why:
            log.warning("janus: %s (%s) is unavailable: %s", server.name, server.url, why)
        server.why = why

    async def _lost(self, server: _Server) -> None:
        """Every leg on a server whose connection dropped ends: its sessions and handles are
        gone with the connection."""
        legs: list[tuple[str, str, Leg]] = []
        for key, publisher in list(self._publishers.items()):
            if publisher.server is server:
                self._forget(self._publishers, key, publisher)
                legs.append((*key, Leg.PUBLISH))
        for key, viewer in list(self._viewers.items()):
            if viewer.server is server:
                self._forget(self._viewers, key, viewer)
                legs.append((*key, Leg.WATCH))
        for room, sid, leg in legs:
            await self._tell(self._listener, "sfu_bye", room, sid, leg, GONE)

    def _server(self, room: str) -> _Server:
        server = self._servers[server_index(room, len(self._servers))]
        if not server.up:
            raise unavailable("the media server is unavailable now: try again later")
        return server

    # --- publishing -----------------------------------------------------------------------------

    async def publish(self, room: str, sid: str, user: str, sdp: str) -> str:
        """Answer a speaker's offer (a second offer replaces the first connection); its tracks
        are announced once Janus says the connection is up."""
        await self.hangup(room, sid, Leg.PUBLISH)
        server = self._server(room)
        assert server.session is not None
        publisher = _Publisher(server, room, sid, user)
        key = (room, sid)
        self._publishers[key] = publisher
        try:
            handle = publisher.handle = await server.session.attach(VIDEOROOM)
            await self._ensure_room(server, room, handle)
            join = {"request": "join", "ptype": "publisher", "room": room, "id": sid}
            await handle.message({**join, "display": user})
            offer = {"type": "offer", "sdp": sdp}
            data, jsep = await handle.message({"request": "publish"}, jsep=offer)
        except (JanusError, JanusGone, TimeoutError) as error:
            self._drop(self._publishers, key, publisher)
            raise _refusal(error) from None
        except BaseException:
            self._drop(self._publishers, key, publisher)
            raise
        kinds = published_kinds(data.get("streams") or [])
        if self._publishers.get(key) is not publisher:
            self._drop(self._publishers, key, publisher)
            raise HubError("conflict", "the publishing connection was ended meanwhile")
        if jsep is None or not kinds:
            self._drop(self._publishers, key, publisher)
            raise HubError("bad_request", "sdp: the offer sends no audio or video")
        publisher.kinds = kinds
        publisher.pump = self._spawn(self._pump_publisher(publisher, handle))
        return str(jsep.get("sdp", ""))

    async def _ensure_room(self, server: _Server, room: str, handle: JanusHandle) -> None:
        if room in server.rooms:
            return
        body = create_room(
            room, secret=self.settings.room_secret, admin_key=self.settings.admin_key
        )
        try:
            await handle.message(body)
        except JanusError as error:
            if error.code != ROOM_EXISTS:
                log.error("janus: %s refused to create room %s: %s", server.name, room, error)
                raise
        server.rooms.add(room)

    async def _pump_publisher(self, publisher: _Publisher, handle: JanusHandle) -> None:
        """What Janus says of a publisher: up (its tracks join the stage), or ended."""
        key = (publisher.room, publisher.sid)
        with contextlib.suppress(JanusGone):
            while True:
                event = await handle.next_event()
                if self._publishers.get(key) is not publisher:
                    return
                if event.get("janus") == "webrtcup" and not publisher.published:
                    publisher.published = True
                    await self._tell(self._listener, "sfu_published", *key, publisher.user,
                                     publisher.kinds)  # fmt: skip
                elif _ended(event):
                    self._forget(self._publishers, key, publisher)
                    await self._tell(self._listener, "sfu_bye", *key, Leg.PUBLISH, FAILED)
                    return

    # --- watching -------------------------------------------------------------------------------

    async def subscribe(self, room: str, sid: str, tracks: Sequence[StageTrack]) -> None:
        """Start a viewer's connection (replacing one it had): Janus's offer follows, at once
        when something on ``tracks`` is in the room, else when the stage brings something."""
        await self.hangup(room, sid, Leg.WATCH)
        server = self._server(room)
        key = (room, sid)
        viewer = _Viewer(server, room, sid, list(tracks), feeds_of(tracks))
        self._viewers[key] = viewer
        try:
            async with viewer.lock:
                await self._sync(viewer)
        except (JanusError, JanusGone, TimeoutError) as error:
            self._drop(self._viewers, key, viewer)
            raise _refusal(error) from None
        except BaseException:
            self._drop(self._viewers, key, viewer)
            raise

    async def answer(self, room: str, sid: str, sdp: str) -> None:
        """Send the viewer's answer to Janus (``start``); a stage that changed meanwhile is
        negotiated next."""
        key = (room, sid)
        viewer = self._viewers.get(key)
        if viewer is None:
            raise HubError("not_found", "no offer from the SFU to answer: subscribe first")
        async with viewer.lock:
            if not viewer.offer_out or viewer.handle is None:
                raise HubError("conflict", "the SFU has no offer waiting for an answer")
            try:
                await viewer.handle.message({"request": "start"}, {"type": "answer", "sdp": sdp})
            except (JanusError, JanusGone, TimeoutError) as error:
                raise _refusal(error) from None
            viewer.offer_out = False
            await self._sync_or_end(viewer)

    async def watch(self, room: str, sid: str, tracks: Sequence[StageTrack]) -> None:
        """The viewer is to carry ``tracks`` now: an ``update`` (and Janus's new offer) when
        that changes the feeds it carries, new layers when it changes its active speaker."""
        viewer = self._viewers.get((room, sid))
        if viewer is None:
            return
        viewer.wanted = list(tracks)
        viewer.order = appearance(viewer.order, feeds_of(tracks))
        async with viewer.lock:
            await self._sync_or_end(viewer)

    async def _sync_or_end(self, viewer: _Viewer) -> None:
        try:
            await self._sync(viewer)
        except JanusGone:
            return  # the connection's end ends the leg
        except (JanusError, TimeoutError) as error:
            log.warning("janus: viewer %s in %s: %s", viewer.sid, viewer.room, error)
            key = (viewer.room, viewer.sid)
            if self._forget(self._viewers, key, viewer):
                await self._tell(self._listener, "sfu_bye", *key, Leg.WATCH, FAILED)

    async def _sync(self, viewer: _Viewer) -> None:
        """Bring the viewer's handle to what it should carry (its lock held)."""
        if not self._current(viewer):
            return
        if viewer.handle is None:
            if viewer.wanted:
                await self._join(viewer)
            return
        if not viewer.offer_out and not viewer.offer_due:
            wanted = feeds_of(viewer.wanted)
            viewer.pending &= set(wanted)  # a feed that left Janus left its subscribers too
            carried = carried_feeds(viewer.streams)
            change = update(wanted, carried + sorted(viewer.pending - set(carried)))
            if change:
                await self._update(viewer, change)
        await self._move_layers(viewer)

    def _stream(self, feed: str, wanted: dict[str, int]) -> Message:
        entry: Message = {"feed": feed}
        if feed in wanted:
            entry["substream"] = wanted[feed]
        return entry

    async def _join(self, viewer: _Viewer) -> None:
        server = viewer.server
        if server.session is None:  # its legs are ending with the connection
            raise JanusGone(server.why or "not connected")
        feeds = feeds_of(viewer.wanted)
        wanted = layers(viewer.order, viewer.wanted)
        handle = viewer.handle = await server.session.attach(VIDEOROOM)
        if not self._current(viewer):
            self._spawn(self._detach(handle))  # hung up while attaching
            return
        viewer.pump = self._spawn(self._pump_viewer(viewer, handle))
        while feeds:
            body = {"request": "join", "ptype": "subscriber", "room": viewer.room}
            streams = [self._stream(feed, wanted) for feed in feeds]
            try:
                data, jsep = await handle.message({**body, "streams": streams})
            except JanusError as error:
                if _drop_missing(error, feeds):
                    continue
                if error.code == NO_SUCH_ROOM:
                    break
                raise
            viewer.asked = {feed: wanted[feed] for feed in feeds if feed in wanted}
            await self._offered(viewer, data, jsep)
            return
        # Janus has none of it (yet): watch nothing until the stage changes.
        self._release(handle, viewer.pump)
        viewer.handle = viewer.pump = None

    async def _update(self, viewer: _Viewer, change: Update) -> None:
        assert viewer.handle is not None
        subscribe, unsubscribe = list(change.subscribe), list(change.unsubscribe)
        wanted = layers(viewer.order, viewer.wanted)
        while subscribe or unsubscribe:
            body: Message = {"request": "update"}
            if subscribe:
                body["subscribe"] = [self._stream(feed, wanted) for feed in subscribe]
            if unsubscribe:
                body["unsubscribe"] = [{"feed": feed} for feed in unsubscribe]
            try:
                data, jsep = await viewer.handle.message(body)
            except JanusError as error:
                if _drop_missing(error, subscribe):
                    continue
                raise
            viewer.asked.update({feed: wanted[feed] for feed in subscribe if feed in wanted})
            if jsep is not None:
                await self._offered(viewer, data, jsep)
            elif data.get("videoroom") == "updating":
                # Janus offers once its last offer is answered.
                viewer.offer_due = True
                viewer.pending.update(subscribe)
            return

    async def _move_layers(self, viewer: _Viewer) -> None:
        assert viewer.handle is not None
        wanted = layers(viewer.order, viewer.wanted)
        changes = layer_changes(viewer.streams, wanted, viewer.asked)
        if not changes:
            return
        await viewer.handle.message({"request": "configure", "streams": changes})
        carried = carried_feeds(viewer.streams)
        viewer.asked.update({feed: layer for feed, layer in wanted.items() if feed in carried})

    async def _offered(self, viewer: _Viewer, data: Message, jsep: Message | None) -> None:
        """Relay Janus's offer to the viewer, with which ``mid`` carries whose track."""
        if jsep is None or jsep.get("type") != "offer" or not self._current(viewer):
            return
        viewer.streams = list(data.get("streams") or [])
        viewer.offer_out, viewer.offer_due = True, False
        viewer.pending -= set(carried_feeds(viewer.streams))
        tracks = watched_tracks(viewer.streams)
        await self._tell(self._listener, "sfu_offer", viewer.room, viewer.sid,
                         str(jsep.get("sdp", "")), tracks)  # fmt: skip

    async def _pump_viewer(self, viewer: _Viewer, handle: JanusHandle) -> None:
        """What Janus says of a viewer on its own: a new offer (a feed it carried left), or
        the end of its connection."""
        key = (viewer.room, viewer.sid)
        with contextlib.suppress(JanusGone):
            while True:
                event = await handle.next_event()
                if self._viewers.get(key) is not viewer:
                    return
                if _ended(event):
                    self._forget(self._viewers, key, viewer)
                    await self._tell(self._listener, "sfu_bye", *key, Leg.WATCH, FAILED)
                    return
                jsep = event.get("jsep")
                if event.get("janus") == "event" and jsep is not None:
                    async with viewer.lock:
                        if self._viewers.get(key) is viewer:
                            await self._offered(viewer, _plugin_data(event), jsep)

    # --- both -----------------------------------------------------------------------------------

    async def candidate(self, room: str, sid: str, leg: Leg, candidate: IceCandidate) -> None:
        """Trickle a candidate to the leg's handle (an empty one: the end of candidates)."""
        holder = (self._publishers if leg is Leg.PUBLISH else self._viewers).get((room, sid))
        handle = holder.handle if holder is not None else None
        if handle is None:
            raise HubError("not_found", f"no {leg} connection with the SFU in {room}")
        line = candidate["candidate"]
        trickled: Message = {"completed": True}
        if line:
            trickled = {
                "candidate": line,
                "sdpMid": candidate["sdpMid"],
                "sdpMLineIndex": candidate["sdpMLineIndex"],
            }
        try:
            await handle.trickle(trickled)
        except (JanusError, JanusGone, TimeoutError) as error:
            raise _refusal(error, TRICKLE_ERRORS, "candidate") from None

    async def hangup(self, room: str, sid: str, leg: Leg | None) -> bool:
        """Detach the session's handle(s) in ``room``; whether it was publishing there."""
        key = (room, sid)
        published = False
        ending: list[Awaitable[None]] = []
        if leg in (None, Leg.WATCH):
            viewer = self._viewers.get(key)
            if viewer is not None and self._forget(self._viewers, key, viewer, detach=False):
                ending.append(self._detach(viewer.handle))
        if leg in (None, Leg.PUBLISH):
            publisher = self._publishers.get(key)
            if publisher is not None:
                published = publisher.published
                if self._forget(self._publishers, key, publisher, detach=False):
                    ending.append(self._detach(publisher.handle))
        await asyncio.gather(*ending)
        return published

    def legs(self, room: str, sid: str) -> set[Leg]:
        """The session's connections with Janus in ``room``."""
        legs = set()
        if (room, sid) in self._publishers:
            legs.add(Leg.PUBLISH)
        if (room, sid) in self._viewers:
            legs.add(Leg.WATCH)
        return legs

    # --- helpers --------------------------------------------------------------------------------

    def _forget(
        self,
        legs: dict[tuple[str, str], Any],
        key: tuple[str, str],
        leg: _Publisher | _Viewer,
        *,
        detach: bool = True,
    ) -> bool:
        """Drop ``leg`` if it is still the session's: stop reading its events and (``detach``)
        detach its handle in the background. Whether it was."""
        if legs.get(key) is not leg:
            return False
        del legs[key]
        if leg.pump is not None and leg.pump is not asyncio.current_task():
            leg.pump.cancel()
        if detach and leg.handle is not None:
            self._spawn(self._detach(leg.handle))
        return True

    def _current(self, viewer: _Viewer) -> bool:
        return self._viewers.get((viewer.room, viewer.sid)) is viewer

    def _drop(
        self, legs: dict[tuple[str, str], Any], key: tuple[str, str], leg: _Publisher | _Viewer
    ) -> None:
        """End a leg whose setup failed or was overtaken: forget it if it is still the
        session's; its handle is detached either way (a hang-up meanwhile may not have seen
        it)."""
        if not self._forget(legs, key, leg) and leg.handle is not None:
            self._spawn(self._detach(leg.handle))

    def _release(self, handle: JanusHandle, pump: asyncio.Task[None] | None) -> None:
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
        self._spawn(self._detach(handle))

    async def _detach(self, handle: JanusHandle | None) -> None:
        if handle is None or handle.ended:
            return
        try:
            await handle.detach()
        except (JanusError, JanusGone, TimeoutError) as error:
            log.info("janus: detaching handle %s: %s", handle.id, error)

    async def _tell(self, listener: SfuListener | None, what: str, *args: Any) -> None:
        """Call the listener's ``what``; its failure is logged (it is the hub's, not Janus's)."""
        if listener is None:
            return
        try:
            await getattr(listener, what)(*args)
        except Exception:
            log.exception("janus: the hub's %s failed", what)

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _plugin_data(event: Message) -> Message:
    data: Message = (event.get("plugindata") or {}).get("data") or {}
    return data


def _ended(event: Message) -> bool:
    """Whether Janus says a handle's PeerConnection or room is gone (``hangup``, ``detached``,
    the room destroyed)."""
    if event.get("janus") in ("hangup", "detached"):
        return True
    return event.get("janus") == "event" and _plugin_data(event).get("videoroom") == "destroyed"


def _drop_missing(error: JanusError, feeds: list[str]) -> bool:
    """For ``No such feed (X)``: drop X from ``feeds`` (to ask again without it)."""
    if error.code != NO_SUCH_FEED:
        return False
    missing = missing_feed(error.reason)
    if missing is None or missing not in feeds:
        return False
    feeds.remove(missing)
    return True


def _refusal(
    error: Exception, client_errors: frozenset[int] = SDP_ERRORS, field_name: str = "sdp"
) -> HubError:
    """The error a client gets when Janus failed a request of its: ``bad_request`` for what it
    sent that Janus refuses, ``unavailable`` for the rest (logged)."""
    if isinstance(error, JanusError):
        if error.code in client_errors:
            return HubError("bad_request", f"{field_name}: {error.reason}")
        if error.code == PUBLISHERS_FULL:
            return unavailable("the stage is full: no more may publish at once")
        log.warning("janus: %s", error)
        return unavailable(f"the media server refused (error {error.code})")
    if isinstance(error, TimeoutError):
        return unavailable("the media server did not answer in time")
    return unavailable(f"{GONE}: try again")
