"""The wire shapes of the signalling feature (``docs/protocol.md``: WebRTC signalling): the
``signal`` and ``media`` events, the join snapshot's ``peers`` and the hello reply's
``ice_servers`` and ``sfu``. Its ops (``signal``, ``media``) reply ``{}``
(:class:`hub.wire.EmptyReply`).
"""

# Annotations are evaluated here (no ``from __future__ import annotations``): on Python 3.11
# TypedDict reads ``NotRequired`` into ``__required_keys__`` only from evaluated ones.

from typing import Literal, NotRequired, TypedDict


class IceCandidate(TypedDict):
    """A trickled ICE candidate, as a browser's ``RTCIceCandidateInit`` (whose camelCase
    names it keeps)."""

    candidate: str
    sdpMid: str | None
    sdpMLineIndex: int | None
    usernameFragment: NotRequired[str]


class StageTrackWire(TypedDict):
    """A track on a panel's stage: ``{sid, user, kind}`` (``kind``: ``audio`` or ``video``)."""

    sid: str
    user: str
    kind: str


class WatchedTrackWire(StageTrackWire):
    """A stage track in the SFU's offer to a viewer: the ``mid`` that carries it."""

    mid: str


class StageEvent(TypedDict):
    """``stage {room, seq, tracks}`` (stored): what a panel's stage publishes through the SFU."""

    ev: Literal["stage"]
    room: str
    tracks: list[StageTrackWire]


class TracksPart(TypedDict):
    """The join snapshot part ``tracks`` (panels only): the stage's tracks now."""

    tracks: NotRequired[list[StageTrackWire]]


# ``from`` is a Python keyword: spelt the functional way.
SignalEvent = TypedDict(
    "SignalEvent",
    {
        "ev": Literal["signal"],
        "room": str,
        "from": str,
        "user": str,
        "type": str,
        "sdp": NotRequired[str],
        "candidate": NotRequired[IceCandidate],
        "leg": NotRequired[str],
        "tracks": NotRequired[list[WatchedTrackWire]],
        "reason": NotRequired[str],
    },
)
SignalEvent.__doc__ = """``signal {room, from, user, type, sdp?, candidate?}``: to one session
(``from``: the sender's sid, ``user`` its user id; both the hub's, never the client's). From the
SFU (``from`` and ``user`` ``"sfu"``) it also carries ``leg``, an offer ``tracks`` and a bye
``reason``."""


class MediaState(TypedDict):
    """A session's media in a room: ``{audio, video, screen}``."""

    audio: bool
    video: bool
    screen: bool


class MediaEvent(MediaState):
    """``media {room, sid, user, name, audio, video, screen}`` (ephemeral)."""

    ev: Literal["media"]
    room: str
    sid: str
    user: str
    name: str


class Peer(TypedDict):
    """One of the snapshot's ``peers``: ``{sid, user, name, role, media}``."""

    sid: str
    user: str
    name: str
    role: str
    media: MediaState


class PeersPart(TypedDict):
    """The join snapshot part ``peers`` (rooms with media only; in a panel, its stage)."""

    peers: NotRequired[list[Peer]]


class IceServer(TypedDict):
    """An ``ice_servers`` entry, as ``RTCPeerConnection`` takes it: ``{urls}`` for STUN,
    ``{urls, username, credential}`` for TURN."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


class SfuInfo(TypedDict):
    """The hello reply's ``sfu``: which SFU serves panels' stages (``janus`` or ``embedded``) and
    whether it takes simulcast from speakers (Janus does; the embedded relay does not)."""

    name: str
    simulcast: bool


class SignallingHelloPart(TypedDict):
    """The signalling feature's part of the hello reply (a hello hook's): ``ice_servers`` and
    ``sfu``."""

    ice_servers: list[IceServer]
    sfu: SfuInfo
