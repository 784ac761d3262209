"""The SFU behind ``signal {to: "sfu"}``: what the hub asks of a media server, and what it hears
back, whatever the server is (the embedded aiortc relay of :mod:`signalling.relay`, or Janus).

The hub owns the stage: which sessions publish which kinds of track in a panel (a store hash,
the ``stage`` event). An SFU owns the media: it answers a speaker's offer, makes the offer to a
viewer for the tracks the hub asks it to forward, renegotiates when the hub gives it a new
stage, and says when a peer connection it holds has gone (``bye`` to that session).

Each node has its own SFU object and talks to it only about its own sessions; a media server
shared by several nodes (Janus) holds the rooms they share. No I/O in this module.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.errors import HubError
from signalling.wire import IceCandidate


class Leg(enum.StrEnum):
    """Which of a session's peer connections with the SFU a signal is about: the one it
    publishes on, or the one it watches the stage on."""

    PUBLISH = "publish"
    WATCH = "watch"


@dataclass(frozen=True, slots=True)
class StageTrack:
    """One track on a panel's stage: the publishing session, its user, and ``audio`` or
    ``video``."""

    sid: str
    user: str
    kind: str


@dataclass(frozen=True, slots=True)
class WatchedTrack:
    """A stage track as one viewer's connection carries it: the ``mid`` of its transceiver."""

    mid: str
    sid: str
    user: str
    kind: str


class SfuListener(Protocol):
    """What an SFU tells the hub (the node's signalling), for sessions of this node."""

    async def sfu_offer(
        self, room: str, sid: str, sdp: str, tracks: Sequence[WatchedTrack]
    ) -> None:
        """Send a viewer the SFU's (new) offer for the tracks it now carries."""

    async def sfu_published(self, room: str, sid: str, user: str, kinds: Sequence[str]) -> None:
        """A speaker's tracks of ``kinds`` can be watched now (its connection is up): they join
        the stage."""

    async def sfu_bye(self, room: str, sid: str, leg: Leg, reason: str) -> None:
        """A peer connection of ``sid`` with the SFU has ended (failed, the server went away):
        tell the session, which may publish or subscribe again."""


class Sfu(Protocol):
    """A media server as one node sees it. Every method is about a session of this node;
    errors a client caused, or that it should hear of, are :class:`~hub.errors.HubError`
    (``unavailable`` when the server is down or full)."""

    name: str
    # Whether speakers may simulcast to it (layers it forwards one per viewer): the hello reply
    # tells clients, so that they offer simulcast only where it is taken.
    simulcast: bool

    def start(self, listener: SfuListener) -> None:
        """Begin: connect in the background (a server that is down is retried, and the hub
        serves meanwhile); ``listener`` hears of offers and ended connections."""

    async def close(self) -> None:
        """End every peer connection and session this node holds with the server."""

    def degraded(self) -> str | None:
        """None while the server can serve, else why not (``/readyz`` reports it)."""

    async def publish(self, room: str, sid: str, user: str, sdp: str) -> str:
        """Take a speaker's offer: the SFU's answer. Once its tracks can be watched, the SFU
        says so through :meth:`SfuListener.sfu_published` (after this returns)."""

    async def subscribe(self, room: str, sid: str, tracks: Sequence[StageTrack]) -> None:
        """Start (or restart) a viewer's connection for ``tracks``: the offer follows through
        :meth:`SfuListener.sfu_offer`."""

    async def answer(self, room: str, sid: str, sdp: str) -> None:
        """The viewer's answer to the SFU's last offer."""

    async def candidate(self, room: str, sid: str, leg: Leg, candidate: IceCandidate) -> None:
        """A trickled ICE candidate of one of the session's connections."""

    async def watch(self, room: str, sid: str, tracks: Sequence[StageTrack]) -> None:
        """A viewer's connection is to carry ``tracks`` now (the stage changed): a new offer
        follows through the listener when that changes what it carries."""

    async def hangup(self, room: str, sid: str, leg: Leg | None) -> bool:
        """End the session's connection(s) in ``room`` (``leg`` None: both); whether it
        published there (so the stage changed)."""

    def legs(self, room: str, sid: str) -> set[Leg]:
        """The connections ``sid`` has with the SFU in ``room``."""


def unavailable(why: str) -> HubError:
    """The error for an SFU that cannot serve now."""
    return HubError("unavailable", why)
