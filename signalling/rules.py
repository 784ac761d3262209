"""WebRTC signalling as pure rules: the fields of ``signal`` and ``media``, who may offer to whom,
and the events the hub sends. No I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hub import fields
from hub.auth import Role
from hub.errors import HubError
from rooms.model import RoomKind
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
    ``too_large``; ``not_found`` for the SFU, which this hub does not have yet."""
    room = fields.room_id(cmd.get("room"))
    to = fields.session_id(cmd.get("to"), "to")
    kind = cmd.get("type")
    if to == SFU:
        raise HubError("not_found", "this hub has no SFU yet: signal peers directly")
    signal_type = fields.choice(kind, "type", SignalType)
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
