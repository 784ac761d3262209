"""Negotiating an aiortc peer connection with another session through the hub's ``signal``.

For tests and server-side bots: a :class:`PeerLink` drives one ``RTCPeerConnection`` against one
remote session of one room, and :func:`run_signals` routes a client's ``signal`` events to the
links::

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(track)
    link = PeerLink(client, "work-1", peer_sid, pc)
    links = {peer_sid: link}
    router = asyncio.create_task(run_signals(client, "work-1", links))
    await link.offer()
    ...
    await link.close()  # sends bye

aiortc gathers every candidate inside ``setLocalDescription`` and writes them into the SDP, so it
never trickles; the links still send each candidate as a ``candidate`` signal too, for a browser
on the other side that expects them. aiortc cannot roll back a local offer, so a link is always
the *impolite* peer of perfect negotiation: an offer that collides with its own is ignored, and
the other side (a browser, polite) must roll back and answer. Two links must therefore agree on
which of them offers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiortc import RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from livehub_client.connection import HubClosed, HubRequestError

if TYPE_CHECKING:
    from livehub_client.connection import HubClient

__all__ = [
    "PeerLink",
    "SignalClient",
    "SignalSender",
    "ice_candidate",
    "run_signals",
    "sdp_candidates",
]

log = logging.getLogger(__name__)

Event = dict[str, Any]

_CANDIDATE_PREFIX = "candidate:"


class SignalSender(Protocol):
    """What a :class:`PeerLink` needs of its client: :class:`~.connection.HubClient` is one."""

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command and return its reply's ``ok`` map."""
        ...


class SignalClient(SignalSender, Protocol):
    """What :func:`run_signals` needs of its client: :class:`~.connection.HubClient` is one."""

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """Iterate over the client's events until it is closed."""
        ...


if TYPE_CHECKING:

    def _hub_client_fits(client: HubClient) -> SignalClient:
        return client


def sdp_candidates(sdp: str) -> list[dict[str, Any]]:
    """Every ``a=candidate:`` line of ``sdp`` as a browser's ``RTCIceCandidateInit`` map:
    ``{"candidate": "candidate:...", "sdpMid": <its m-section's mid or None>, "sdpMLineIndex":
    <its m-section's index>}``, in the order of the SDP."""
    found: list[dict[str, Any]] = []
    index = -1
    section: list[str] = []
    mid: str | None = None

    def flush() -> None:
        found.extend({"candidate": c, "sdpMid": mid, "sdpMLineIndex": index} for c in section)

    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            flush()
            index, section, mid = index + 1, [], None
        elif index < 0:
            continue  # session-level lines carry no candidates
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        elif line.startswith("a=" + _CANDIDATE_PREFIX):
            section.append(line[len("a=") :])
    flush()
    return found


def ice_candidate(init: dict[str, Any]) -> RTCIceCandidate | None:
    """The aiortc candidate for a browser's ``RTCIceCandidateInit`` map, or None for the empty
    candidate a browser sends at the end of gathering."""
    text = init.get("candidate") or ""
    if text.startswith(_CANDIDATE_PREFIX):
        text = text[len(_CANDIDATE_PREFIX) :]
    if not text.strip():
        return None
    candidate = candidate_from_sdp(text)
    candidate.sdpMid = init.get("sdpMid")
    candidate.sdpMLineIndex = init.get("sdpMLineIndex")
    return candidate


class PeerLink:
    """One ``RTCPeerConnection`` negotiated with the session ``peer`` in ``room`` over ``signal``.

    The link owns ``pc``: :meth:`close` (or a ``bye`` from the peer) closes it. It sends only
    complete SDP (candidates included) and, after it, each candidate again as a ``candidate``
    signal. Errors of the hub (:class:`~.connection.HubRequestError`,
    :class:`~.connection.HubClosed`) and of aiortc propagate from :meth:`offer` and
    :meth:`handle`, except in :meth:`close`.
    """

    def __init__(self, client: SignalSender, room: str, peer: str, pc: RTCPeerConnection) -> None:
        self.client = client
        self.room = room
        self.peer = peer
        self.pc = pc
        self._closed = False
        self._making_offer = False
        # Set while the peer's last offer was ignored: its candidates are ignored with it.
        self._ignoring_offer = False

    @property
    def closed(self) -> bool:
        """True once the link or its peer connection has been closed."""
        return self._closed or self.pc.signalingState == "closed"

    async def offer(self) -> None:
        """Make an offer, apply it locally and send it to the peer, then its candidates; the
        answer comes back as a ``signal`` event for :meth:`handle`."""
        self._making_offer = True
        try:
            await self.pc.setLocalDescription(await self.pc.createOffer())
        finally:
            self._making_offer = False
        await self._send_description()

    async def handle(self, event: Event) -> None:
        """Apply one ``signal`` event from the peer: ``offer`` (answered, unless it collides with
        an offer of ours, when it is ignored), ``answer``, ``candidate`` (an empty one, the end of
        candidates, is ignored) or ``bye`` (closes the link without sending ``bye``). Other types
        are ignored, and so is everything once the link is closed."""
        if self.closed:
            return
        kind = event.get("type")
        if kind == "offer":
            if self._making_offer or self.pc.signalingState != "stable":
                self._ignoring_offer = True
                log.debug("ignoring an offer from %s in %s: ours is pending", self.peer, self.room)
                return
            self._ignoring_offer = False
            await self.pc.setRemoteDescription(RTCSessionDescription(event["sdp"], "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self._send_description()
        elif kind == "answer":
            self._ignoring_offer = False
            await self.pc.setRemoteDescription(RTCSessionDescription(event["sdp"], "answer"))
        elif kind == "candidate":
            # A candidate before any remote description has no transport to go to.
            if self._ignoring_offer or self.pc.remoteDescription is None:
                return
            candidate = ice_candidate(event.get("candidate") or {})
            if candidate is not None:
                await self.pc.addIceCandidate(candidate)
        elif kind == "bye":
            await self.close(send_bye=False)

    async def close(self, send_bye: bool = True) -> None:
        """Send ``bye`` to the peer (unless ``send_bye`` is false) and close the peer connection.

        A ``bye`` that cannot be delivered (client closed, peer gone) is dropped. Idempotent: only
        the first call sends ``bye``.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if send_bye:
                with contextlib.suppress(HubClosed, HubRequestError):
                    await self._signal("bye")
        finally:
            await self.pc.close()

    async def _send_description(self) -> None:
        description = self.pc.localDescription
        await self._signal(description.type, sdp=description.sdp)
        for candidate in sdp_candidates(description.sdp):
            await self._signal("candidate", candidate=candidate)

    async def _signal(self, kind: str, **fields: Any) -> None:
        await self.client.request("signal", room=self.room, to=self.peer, type=kind, **fields)


async def run_signals(
    client: SignalClient,
    room: str,
    links: dict[str, PeerLink],
    accept: Callable[[Event], PeerLink | None] | None = None,
) -> None:
    """Route the ``signal`` events of ``room`` to ``links`` (by the sender's sid) until the client
    is closed (by :meth:`~.connection.HubClient.close` or, for good, by the server) or the task
    is cancelled.

    This *consumes the client's event queue*: every other event is dropped, so nothing else may
    read the client's events meanwhile. An ``offer`` from a sid without a link goes to
    ``accept(event)``, which returns the link to store in ``links`` and hand the offer to (or None
    to refuse it); other signals from unknown sids are dropped. A link that is closed (after a
    ``bye``, say) is removed from ``links``, so a later offer from that sid is accepted afresh.
    Events are handled one at a time, in order; an exception from a link (or from ``accept``) is
    logged and the loop goes on. The links are not closed when it ends.
    """
    with contextlib.suppress(HubClosed):
        async for event in client.events():
            if event.get("ev") != "signal" or event.get("room") != room:
                continue
            sender = event.get("from")
            if not isinstance(sender, str):
                continue
            try:
                await _route(event, sender, links, accept)
            except Exception as exc:
                # One line: any member can send a malformed signal, up to 50 a second.
                log.warning(
                    "signal %r from %s in %s failed: %r", event.get("type"), sender, room, exc
                )
            link = links.get(sender)
            if link is not None and link.closed:
                del links[sender]


async def _route(
    event: Event,
    sender: str,
    links: dict[str, PeerLink],
    accept: Callable[[Event], PeerLink | None] | None,
) -> None:
    link = links.get(sender)
    if link is not None and link.closed:
        del links[sender]
        link = None
    if link is None:
        if accept is None or event.get("type") != "offer":
            return
        link = accept(event)
        if link is None:
            return
        links[sender] = link
    await link.handle(event)
