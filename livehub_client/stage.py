"""Publishing to and watching a panel's stage through the hub's SFU (``signal {to: "sfu"}``),
with aiortc, for tests, bots and load generators::

    publisher = StagePublisher(client, "panel-1", make_pc)  # make_pc adds the tracks
    viewer = StageViewer(client, "panel-1", make_viewer_pc)  # make_viewer_pc sets on("track")
    router = asyncio.create_task(run_stage(client, "panel-1", publisher, viewer))
    await publisher.publish()
    await viewer.subscribe()
    ...
    await viewer.close(); await publisher.close()

Each keeps one ``RTCPeerConnection`` with the SFU and makes a new one when it (re)starts. A
``bye`` from the SFU (its connection failed, the media server went away) closes it and, with
``retry``, starts it again after a pause that doubles up to :data:`RETRY_CAP` seconds, until it
succeeds or :meth:`close` is called: a stage survives its media server's restart by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final

from aiortc import RTCPeerConnection, RTCSessionDescription

from livehub_client.connection import HubClosed, HubRequestError
from livehub_client.rtc import SignalClient, SignalSender

__all__ = ["RETRY_CAP", "StagePublisher", "StageViewer", "run_stage"]

log = logging.getLogger(__name__)

SFU: Final = "sfu"
RETRY_FIRST: Final = 0.5
RETRY_CAP: Final = 10.0

Event = dict[str, Any]
PcFactory = Callable[[], RTCPeerConnection]


class _StageLink:
    """What publishing and watching share: the connection, the retry after a ``bye``."""

    leg: str

    def __init__(
        self, client: SignalSender, room: str, make_pc: PcFactory, *, retry: bool = True
    ) -> None:
        self.client = client
        self.room = room
        self.make_pc = make_pc
        self.retry = retry
        self.pc: RTCPeerConnection | None = None
        self.byes: list[Event] = []
        self._closed = False
        self._retrying: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Make a fresh connection and start negotiating it with the SFU."""
        raise NotImplementedError

    async def handle(self, event: Event) -> None:
        """Apply one ``signal`` from the SFU on this link's leg."""
        raise NotImplementedError

    async def _ended(self, event: Event) -> None:
        self.byes.append(event)
        await self._drop_pc()
        if self.retry and not self._closed and self._retrying is None:
            self._retrying = asyncio.ensure_future(self._retry())

    async def _retry(self) -> None:
        pause = RETRY_FIRST
        try:
            while not self._closed:
                await asyncio.sleep(pause)  # a back-off, not synchronisation
                try:
                    await self.start()
                    return
                except (HubRequestError, TimeoutError) as error:
                    log.info("stage %s in %s: retrying after %r", self.leg, self.room, error)
                    await self._drop_pc()
                pause = min(RETRY_CAP, pause * 2)
        except HubClosed:
            return
        finally:
            self._retrying = None

    async def _drop_pc(self) -> None:
        pc, self.pc = self.pc, None
        if pc is not None:
            await pc.close()

    async def close(self) -> None:
        """Stop: send ``bye`` for this leg (if the client is still open) and close."""
        if self._closed:
            return
        self._closed = True
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        # A client that is not connected has no session, nor legs, with the SFU to end.
        if getattr(self.client, "connected", True):
            with contextlib.suppress(HubClosed, HubRequestError, TimeoutError):
                await self._signal("bye", leg=self.leg)
        await self._drop_pc()

    async def _signal(self, kind: str, **fields: Any) -> None:
        await self.client.request("signal", room=self.room, to=SFU, type=kind, **fields)


class StagePublisher(_StageLink):
    """A speaker's connection with the SFU: ``make_pc`` returns a connection with the tracks
    to publish added; :meth:`publish` offers them, the SFU's answer comes through
    :func:`run_stage`."""

    leg = "publish"

    def __init__(
        self, client: SignalSender, room: str, make_pc: PcFactory, *, retry: bool = True
    ) -> None:
        super().__init__(client, room, make_pc, retry=retry)
        self.answered = asyncio.Event()

    async def publish(self) -> None:
        """Offer this client's tracks to the SFU (the first time, or again)."""
        await self.start()

    async def start(self) -> None:
        """See :meth:`_StageLink.start`."""
        await self._drop_pc()
        self.answered.clear()
        pc = self.pc = self.make_pc()
        await pc.setLocalDescription(await pc.createOffer())
        await self._signal("offer", sdp=pc.localDescription.sdp)

    async def handle(self, event: Event) -> None:
        """``answer`` completes the connection; ``bye`` ends it (and retries)."""
        kind = event.get("type")
        if kind == "answer" and self.pc is not None:
            await self.pc.setRemoteDescription(RTCSessionDescription(event["sdp"], "answer"))
            self.answered.set()
        elif kind == "bye":
            await self._ended(event)


class StageViewer(_StageLink):
    """A viewer's connection with the SFU: ``make_pc`` returns an empty connection (with its
    ``track`` handler set); :meth:`subscribe` asks for the stage (``tracks``: the publishing
    sids to watch, None for all), and each offer of the SFU (the first, and one whenever the
    stage changes) is answered. ``tracks`` holds what the last offer carried (``{mid, sid,
    user, kind}`` each); ``offers`` counts them."""

    leg = "watch"

    def __init__(
        self,
        client: SignalSender,
        room: str,
        make_pc: PcFactory,
        *,
        tracks: list[str] | None = None,
        retry: bool = True,
    ) -> None:
        super().__init__(client, room, make_pc, retry=retry)
        self.wanted = tracks
        self.tracks: list[dict[str, Any]] = []
        self.offers = 0
        self.offered = asyncio.Event()

    async def subscribe(self) -> None:
        """Ask the SFU for the stage (the first time, or again)."""
        await self.start()

    async def start(self) -> None:
        """See :meth:`_StageLink.start`."""
        await self._drop_pc()
        self.pc = self.make_pc()
        fields: dict[str, Any] = {} if self.wanted is None else {"tracks": self.wanted}
        await self._signal("subscribe", **fields)

    async def handle(self, event: Event) -> None:
        """``offer`` is answered; ``bye`` ends the connection (and retries)."""
        kind = event.get("type")
        if kind == "offer" and self.pc is not None:
            pc = self.pc
            await pc.setRemoteDescription(RTCSessionDescription(event["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await self._signal("answer", sdp=pc.localDescription.sdp)
            self.tracks = list(event.get("tracks") or [])
            self.offers += 1
            self.offered.set()
        elif kind == "bye":
            await self._ended(event)


async def run_stage(
    client: SignalClient,
    room: str,
    publisher: StagePublisher | None = None,
    viewer: StageViewer | None = None,
    *,
    on_event: Callable[[Event], None] | None = None,
) -> None:
    """Route the SFU's ``signal`` events of ``room`` to ``publisher`` and ``viewer`` by their
    ``leg`` until the client is closed or the task is cancelled. This consumes the client's
    events: every event goes to ``on_event`` first when given (a ``stage`` event, say). A
    failure of one event is logged and the loop goes on."""
    links = {"publish": publisher, "watch": viewer}
    with contextlib.suppress(HubClosed):
        async for event in client.events():
            if on_event is not None:
                on_event(event)
            if event.get("ev") != "signal" or event.get("room") != room:
                continue
            if event.get("from") != SFU:
                continue
            link = links.get(str(event.get("leg")))
            if link is None:
                continue
            try:
                await link.handle(event)
            except Exception as exc:
                log.warning("stage signal %r in %s failed: %r", event.get("type"), room, exc)
