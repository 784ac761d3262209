"""WebRTC signalling as pure rules: the fields of ``signal`` and ``media``, who may offer to whom,
and the events the hub sends. No I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hub import fields
from hub.auth import Role
from rooms.model import RoomKind
from signalling.sfu import Leg
from signalling.wire import IceCandidate, MediaState, SignalEvent

MAX_SDP: Final = 32 * 1024  # characters; a video offer with many candidates is a few KiB
MAX_CANDIDATE: Final = 1024
MAX_MID: Final = 64
MAX_UFRAG: Final = 256
SFU: Final = "sfu"
# What a signal costs against the byte budgets beyond its SDP or candidate text: the envelope,
# and the relay's work for it (a presence read, a publish), which a tiny signal costs too.
SIGNAL_OVERHEAD: Final = 256


class SignalType(enum.StrEnum):
    """The kinds of signal a client may relay to a peer."""

    OFFER = "offer"
    ANSWER = "answer"
    CANDIDATE = "candidate"
    BYE = "bye"
    SUBSCRIBE = "subscribe"  # to the SFU only


@dataclass(frozen=True, slots=True)
class Signal:
    """A validated ``signal`` command (``candidate`` as a browser's RTCIceCandidateInit)."""

    room: str
    to: str
    type: SignalType
    sdp: str | None = None
    candidate: IceCandidate | None = None

    def event(self, sender: str, user: str) -> SignalEvent:
        """The event the peer gets: ``from`` and ``user`` are the hub's, never the client's."""
        event: SignalEvent = {
            "ev": "signal",
            "room": self.room,
            "from": sender,
            "user": user,
            "type": self.type.value,
        }
        if self.sdp is not None:
            event["sdp"] = self.sdp
        if self.candidate is not None:
            event["candidate"] = self.candidate.copy()
        return event

    def cost(self) -> int:
        """What this signal counts against the byte budgets of its sender and its receiver:
        the UTF-8 bytes of its SDP or candidate texts, plus :data:`SIGNAL_OVERHEAD`."""
        size = SIGNAL_OVERHEAD
        if self.sdp is not None:
            size += len(self.sdp.encode())
        if self.candidate is not None:
            texts = (
                self.candidate["candidate"],
                self.candidate["sdpMid"] or "",
                self.candidate.get("usernameFragment", ""),
            )
            size += sum(len(text.encode()) for text in texts)
        return size


def parse_signal(cmd: Mapping[str, Any]) -> Signal:
    """Validate ``signal {room, to, type, sdp?, candidate?}``: ``sdp`` (offer and answer only,
    and required there) at most :data:`MAX_SDP` characters, ``candidate`` (candidate only, and
    required there) a map ``{candidate, sdpMid?, sdpMLineIndex?, usernameFragment?}``. Any other
    field is ignored (``from`` and ``user`` included). ``bad_request`` naming the field, or
    ``too_large``. Signals to the SFU are :func:`parse_sfu_signal`'s."""
    room = fields.room_id(cmd.get("room"))
    to = fields.session_id(cmd.get("to"), "to")
    kind = cmd.get("type")
    signal_type = fields.choice(kind, "type", SignalType)
    if signal_type is SignalType.SUBSCRIBE:
        raise fields.bad("type", 'subscribe goes to the SFU (to: "sfu")')
    if signal_type in (SignalType.OFFER, SignalType.ANSWER):
        sdp = fields.payload(cmd.get("sdp"), "sdp", MAX_SDP)
        return Signal(room, to, signal_type, sdp=sdp)
    if signal_type is SignalType.CANDIDATE:
        return Signal(room, to, signal_type, candidate=parse_candidate(cmd.get("candidate")))
    return Signal(room, to, signal_type)


def parse_candidate(value: object) -> IceCandidate:
    """A trickled ICE candidate: ``candidate`` a string (empty: end of candidates), ``sdpMid``
    a string or null, ``sdpMLineIndex`` 0..65535 or null, ``usernameFragment`` a string or
    null; other keys are dropped."""
    if not isinstance(value, Mapping):
        raise fields.bad("candidate", "must be a map with a candidate string")
    out: IceCandidate = {
        "candidate": fields.payload(
            value.get("candidate"), "candidate.candidate", MAX_CANDIDATE, empty=True
        ),
        "sdpMid": fields.optional_string(value.get("sdpMid"), "candidate.sdpMid", MAX_MID),
        "sdpMLineIndex": fields.optional_integer(
            value.get("sdpMLineIndex"), "candidate.sdpMLineIndex", 0, 65535
        ),
    }
    ufrag = fields.optional_string(
        value.get("usernameFragment"), "candidate.usernameFragment", MAX_UFRAG
    )
    if ufrag is not None:
        out["usernameFragment"] = ufrag
    return out


def may_signal(kind: RoomKind, sender: Role, target: Role) -> bool:
    """Who may signal whom: in workshops and breakouts anyone anyone; in panels the stage
    (speakers and above) anyone, the audience only the stage (an offer, or anything else: the
    audience never connects to each other); nowhere in the lobby, which has no media."""
    if kind is RoomKind.LOBBY:
        return False
    if kind is RoomKind.PANEL:
        return sender >= Role.SPEAKER or target >= Role.SPEAKER
    return True


def parse_media(cmd: Mapping[str, Any]) -> MediaState:
    """``media {room, audio, video, screen}``: each a boolean, all three required."""
    return {
        "audio": fields.boolean(cmd.get("audio"), "audio"),
        "video": fields.boolean(cmd.get("video"), "video"),
        "screen": fields.boolean(cmd.get("screen"), "screen"),
    }


NO_MEDIA: Final[MediaState] = {"audio": False, "video": False, "screen": False}


@dataclass(frozen=True, slots=True)
class SfuSignal:
    """A validated ``signal`` to the SFU: ``offer`` publishes, ``subscribe`` watches (``tracks``:
    the publishing sessions to watch, None for the whole stage), ``answer`` answers the SFU's
    offer, ``candidate`` and ``bye`` are about one ``leg`` (None: inferred, or both)."""

    room: str
    type: SignalType
    sdp: str | None = None
    candidate: IceCandidate | None = None
    leg: Leg | None = None
    tracks: frozenset[str] | None = None

    def cost(self) -> int:
        """What it counts against the sender's byte budget (as :meth:`Signal.cost`)."""
        return Signal(self.room, SFU, self.type, self.sdp, self.candidate).cost()


MAX_WATCHED: Final = 64


def parse_sfu_signal(cmd: Mapping[str, Any]) -> SfuSignal:
    """Validate ``signal {room, to: "sfu", type, sdp?, candidate?, leg?, tracks?}``: ``type``
    ``offer`` (publish; ``sdp``), ``answer`` (to the SFU's offer; ``sdp``), ``candidate``
    (``candidate``, ``leg``), ``bye`` (``leg``: absent for both) or ``subscribe`` (``tracks``:
    absent, or a list of at most :data:`MAX_WATCHED` session ids). ``leg`` is ``publish`` or
    ``watch``. ``bad_request`` naming the field."""
    room = fields.room_id(cmd.get("room"))
    signal_type = fields.choice(cmd.get("type"), "type", SignalType)
    raw_leg = cmd.get("leg")
    leg = None if raw_leg is None else fields.choice(raw_leg, "leg", Leg)
    if signal_type in (SignalType.OFFER, SignalType.ANSWER):
        sdp = fields.payload(cmd.get("sdp"), "sdp", MAX_SDP)
        implied = Leg.PUBLISH if signal_type is SignalType.OFFER else Leg.WATCH
        if leg not in (None, implied):
            raise fields.bad("leg", f"an {signal_type.value} to the SFU is on {implied.value}")
        return SfuSignal(room, signal_type, sdp=sdp, leg=implied)
    if signal_type is SignalType.CANDIDATE:
        candidate = parse_candidate(cmd.get("candidate"))
        return SfuSignal(room, signal_type, candidate=candidate, leg=leg)
    if signal_type is SignalType.SUBSCRIBE:
        raw = cmd.get("tracks")
        tracks = None
        if raw is not None:
            if not isinstance(raw, list) or len(raw) > MAX_WATCHED:
                raise fields.bad("tracks", f"must be a list of at most {MAX_WATCHED} sids")
            tracks = frozenset(fields.session_id(sid, f"tracks[{i}]") for i, sid in enumerate(raw))
        return SfuSignal(room, signal_type, leg=Leg.WATCH, tracks=tracks)
    return SfuSignal(room, signal_type, leg=leg)
