"""WebRTC signalling as pure rules: the fields of ``signal`` and ``media``, who may offer to whom,
and the events the hub sends. No I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hub.auth import Role
from hub.errors import HubError
from rooms.model import RoomKind, validate_room_id

MAX_SDP: Final = 32 * 1024  # characters; a video offer with many candidates is a few KiB
MAX_CANDIDATE: Final = 1024
MAX_MID: Final = 64
MAX_UFRAG: Final = 256
MAX_SID: Final = 200
SFU: Final = "sfu"


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
    candidate: Mapping[str, Any] | None = None

    def event(self, sender: str, user: str) -> dict[str, Any]:
        """The event the peer gets: ``from`` and ``user`` are the hub's, never the client's."""
        event: dict[str, Any] = {
            "ev": "signal",
            "room": self.room,
            "from": sender,
            "user": user,
            "type": self.type.value,
        }
        if self.sdp is not None:
            event["sdp"] = self.sdp
        if self.candidate is not None:
            event["candidate"] = dict(self.candidate)
        return event


def parse_signal(cmd: Mapping[str, Any]) -> Signal:
    """Validate ``signal {room, to, type, sdp?, candidate?}``: ``sdp`` (offer and answer only,
    and required there) at most :data:`MAX_SDP` characters, ``candidate`` (candidate only, and
    required there) a map ``{candidate, sdpMid?, sdpMLineIndex?, usernameFragment?}``. Any other
    field is ignored (``from`` and ``user`` included). ``bad_request`` naming the field, or
    ``too_large``; ``not_found`` for the SFU, which this hub does not have yet."""
    room = validate_room_id(cmd.get("room"))
    to = cmd.get("to")
    if not isinstance(to, str) or not to or len(to) > MAX_SID:
        raise HubError("bad_request", "to must be a session id")
    kind = cmd.get("type")
    if to == SFU:
        raise HubError("not_found", "this hub has no SFU yet: signal peers directly")
    try:
        signal_type = SignalType(kind) if isinstance(kind, str) else None
    except ValueError:
        signal_type = None
    if signal_type is None:
        raise HubError("bad_request", "type must be offer, answer, candidate or bye")
    sdp = cmd.get("sdp")
    candidate = cmd.get("candidate")
    if signal_type in (SignalType.OFFER, SignalType.ANSWER):
        if not isinstance(sdp, str) or not sdp:
            raise HubError("bad_request", f"sdp must be the {signal_type.value}'s SDP")
        if len(sdp) > MAX_SDP:
            raise HubError("too_large", f"sdp is longer than {MAX_SDP} characters")
        return Signal(room, to, signal_type, sdp=sdp)
    if signal_type is SignalType.CANDIDATE:
        return Signal(room, to, signal_type, candidate=parse_candidate(candidate))
    return Signal(room, to, signal_type)


def parse_candidate(value: object) -> dict[str, Any]:
    """A trickled ICE candidate: ``candidate`` a string (empty: end of candidates), ``sdpMid``
    a string or null, ``sdpMLineIndex`` 0..65535 or null, ``usernameFragment`` a string or
    null; other keys are dropped."""
    if not isinstance(value, Mapping):
        raise HubError("bad_request", "candidate must be a map with a candidate string")
    line = value.get("candidate")
    if not isinstance(line, str):
        raise HubError("bad_request", "candidate.candidate must be a string")
    if len(line) > MAX_CANDIDATE:
        raise HubError("too_large", f"candidate is longer than {MAX_CANDIDATE} characters")
    out: dict[str, Any] = {"candidate": line}
    mid = value.get("sdpMid")
    if mid is not None and (not isinstance(mid, str) or len(mid) > MAX_MID):
        raise HubError("bad_request", "candidate.sdpMid must be a short string or null")
    out["sdpMid"] = mid
    index = value.get("sdpMLineIndex")
    if index is not None and (
        not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 65535
    ):
        raise HubError("bad_request", "candidate.sdpMLineIndex must be 0..65535 or null")
    out["sdpMLineIndex"] = index
    ufrag = value.get("usernameFragment")
    if ufrag is not None:
        if not isinstance(ufrag, str) or len(ufrag) > MAX_UFRAG:
            raise HubError("bad_request", "candidate.usernameFragment must be a string or null")
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


def parse_media(cmd: Mapping[str, Any]) -> dict[str, bool]:
    """``media {room, audio, video, screen}``: each a boolean, all three required."""
    state: dict[str, bool] = {}
    for field in ("audio", "video", "screen"):
        value = cmd.get(field)
        if not isinstance(value, bool):
            raise HubError("bad_request", f"{field} must be true or false")
        state[field] = value
    return state


NO_MEDIA: Final = {"audio": False, "video": False, "screen": False}
