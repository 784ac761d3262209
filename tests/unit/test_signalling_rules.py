"""Signalling rules (signalling.rules) and ICE credentials (signalling.ice), no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.auth import Role
from hub.errors import HubError
from rooms.model import RoomKind
from signalling.ice import IceSettings, ice_servers, turn_credentials
from signalling.rules import (
    MAX_CANDIDATE,
    MAX_SDP,
    SIGNAL_OVERHEAD,
    Signal,
    SignalType,
    may_signal,
    parse_media,
    parse_sfu_signal,
    parse_signal,
)
from signalling.sfu import Leg

CANDIDATE = {"candidate": "candidate:1 1 UDP 2122252543 127.0.0.1 50000 typ host", "sdpMid": "0"}


def _code(fields: dict[str, Any]) -> str:
    with pytest.raises(HubError) as refused:
        parse_signal({"room": "ws", "to": "n1.abc", **fields})
    return refused.value.code


# -- signal fields --------------------------------------------------------------------------------


def test_offer_answer_candidate_and_bye_parse() -> None:
    offer = parse_signal({"room": "ws", "to": "n1.a", "type": "offer", "sdp": "v=0"})
    assert offer == Signal("ws", "n1.a", SignalType.OFFER, sdp="v=0")
    answer = parse_signal({"room": "ws", "to": "n1.a", "type": "answer", "sdp": "v=0"})
    assert answer.type is SignalType.ANSWER
    candidate = parse_signal({"room": "ws", "to": "n1.a", "type": "candidate", "candidate": {
        **CANDIDATE, "sdpMLineIndex": 0, "usernameFragment": "u", "extra": 1}})  # fmt: skip
    assert candidate.candidate == {**CANDIDATE, "sdpMLineIndex": 0, "usernameFragment": "u"}
    end = parse_signal({"room": "ws", "to": "n1.a", "type": "candidate", "candidate": {
        "candidate": ""}})  # fmt: skip
    assert end.candidate == {"candidate": "", "sdpMid": None, "sdpMLineIndex": None}
    bye = parse_signal({"room": "ws", "to": "n1.a", "type": "bye", "sdp": "ignored"})
    assert bye == Signal("ws", "n1.a", SignalType.BYE)


def test_the_event_carries_the_hubs_from_and_user_never_the_clients() -> None:
    signal = parse_signal(
        {"room": "ws", "to": "n1.a", "type": "offer", "sdp": "v=0", "from": "x", "user": "y"}
    )
    assert signal.event("n2.me", "me") == {
        "ev": "signal",
        "room": "ws",
        "from": "n2.me",
        "user": "me",
        "type": "offer",
        "sdp": "v=0",
    }


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "offer", "sdp": "v=0", "to": None}, "bad_request"),
        ({"type": "offer", "sdp": "v=0", "to": ""}, "bad_request"),
        ({"type": "offer", "sdp": "v=0", "to": "x" * 201}, "bad_request"),
        ({"type": "offer", "sdp": "v=0", "room": "Bad Room"}, "bad_request"),
        ({"type": "hello"}, "bad_request"),
        ({"type": None}, "bad_request"),
        ({"type": 1}, "bad_request"),
        ({"type": "subscribe"}, "bad_request"),
        ({"type": "offer"}, "bad_request"),
        ({"type": "offer", "sdp": ""}, "bad_request"),
        ({"type": "answer", "sdp": 5}, "bad_request"),
        ({"type": "offer", "sdp": "x" * (MAX_SDP + 1)}, "too_large"),
        ({"type": "candidate"}, "bad_request"),
        ({"type": "candidate", "candidate": "candidate:1 1 UDP 1 1.2.3.4 5 typ"}, "bad_request"),
        ({"type": "candidate", "candidate": {"sdpMid": "0"}}, "bad_request"),
        ({"type": "candidate", "candidate": {"candidate": "c" * (MAX_CANDIDATE + 1)}}, "too_large"),
        ({"type": "candidate", "candidate": {"candidate": "c", "sdpMid": 0}}, "bad_request"),
        ({"type": "candidate", "candidate": {"candidate": "", "sdpMLineIndex": -1}}, "bad_request"),
        ({"type": "candidate", "candidate": {"candidate": "", "sdpMLineIndex": True}}, "bad_request"),  # noqa: E501
        ({"type": "candidate", "candidate": {"candidate": "", "usernameFragment": 3}}, "bad_request"),  # noqa: E501
    ],
)  # fmt: skip
def test_bad_signal_fields_are_refused(fields: dict[str, Any], code: str) -> None:
    assert _code(fields) == code


@given(st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8)))
def test_parse_signal_never_fails_other_than_with_a_hub_error(fields: dict[str, Any]) -> None:
    try:
        parse_signal(fields)
    except HubError as error:
        assert error.code in {"bad_request", "too_large", "not_found"}


# -- who may offer --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [RoomKind.WORKSHOP, RoomKind.BREAKOUT])
@pytest.mark.parametrize("sender", list(Role))
@pytest.mark.parametrize("target", list(Role))
def test_in_workshops_and_breakouts_anyone_signals_anyone(
    kind: RoomKind, sender: Role, target: Role
) -> None:
    assert may_signal(kind, sender, target)


def test_in_panels_the_audience_signals_only_the_stage() -> None:
    assert may_signal(RoomKind.PANEL, Role.SPEAKER, Role.ATTENDEE)
    assert may_signal(RoomKind.PANEL, Role.MODERATOR, Role.ATTENDEE)
    assert may_signal(RoomKind.PANEL, Role.ORGANIZER, Role.ATTENDEE)
    assert may_signal(RoomKind.PANEL, Role.SPEAKER, Role.SPEAKER)
    assert not may_signal(RoomKind.PANEL, Role.ATTENDEE, Role.ATTENDEE)
    assert may_signal(RoomKind.PANEL, Role.ATTENDEE, Role.SPEAKER)  # to the stage
    assert not may_signal(RoomKind.LOBBY, Role.ORGANIZER, Role.ORGANIZER)


# -- media ----------------------------------------------------------------------------------------


def test_media_needs_three_booleans() -> None:
    state = {"audio": True, "video": False, "screen": False}
    assert parse_media({"room": "ws", **state}) == state
    for broken in (
        {**state, "audio": 1},
        {"video": True, "screen": True},
        {**state, "screen": None},
    ):
        with pytest.raises(HubError) as refused:
            parse_media(broken)
        assert refused.value.code == "bad_request"


# -- ICE ------------------------------------------------------------------------------------------


def test_turn_credentials_follow_the_turn_rest_scheme() -> None:
    username, credential = turn_credentials("s3cret", "alice", now=1_700_000_000.7, ttl=3600)
    assert username == "1700003600:alice"
    expected = hmac.new(b"s3cret", b"1700003600:alice", hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40), st.integers(60, 10**6))
def test_turn_credentials_recompute(secret: str, user: str, ttl: int) -> None:
    username, credential = turn_credentials(secret, user, now=1000.0, ttl=ttl)
    expiry, _, named = username.partition(":")
    assert (int(expiry), named) == (1000 + ttl, user)
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    assert credential == base64.b64encode(digest).decode()


def test_ice_servers_carry_stun_and_turn_but_never_the_secret() -> None:
    settings = IceSettings(
        stun_urls=("stun:stun.example.org:3478",),
        turn_urls=("turn:turn.example.org:3478", "turns:turn.example.org:5349"),
        turn_secret="very-secret-shared-with-coturn",
        ttl=600,
    )
    servers = ice_servers(settings, "bob", now=100.0)
    assert servers[0] == {"urls": ["stun:stun.example.org:3478"]}
    turn = servers[1]
    assert turn["urls"] == ["turn:turn.example.org:3478", "turns:turn.example.org:5349"]
    assert turn["username"] == "700:bob"
    assert "very-secret" not in repr(servers)
    assert ice_servers(IceSettings(turn_urls=("turn:x",)), "bob", 0.0) == []  # no secret
    assert ice_servers(IceSettings(), "bob", 0.0) == []


def test_a_signal_costs_its_texts_bytes_plus_the_overhead() -> None:
    offer = parse_signal({"room": "w", "to": "n.a", "type": "offer", "sdp": "v=0 \u00e9"})
    assert offer.cost() == SIGNAL_OVERHEAD + len("v=0 \u00e9".encode())
    candidate = parse_signal(
        {
            "room": "w",
            "to": "n.a",
            "type": "candidate",
            "candidate": {"candidate": "c", "sdpMid": "0", "usernameFragment": "uf"},
        }
    )
    assert candidate.cost() == SIGNAL_OVERHEAD + 4
    bye = parse_signal({"room": "w", "to": "n.a", "type": "bye"})
    assert bye.cost() == SIGNAL_OVERHEAD


# -- signals to the SFU ---------------------------------------------------------------------------


def _sfu(**fields: Any) -> Any:
    return parse_sfu_signal({"room": "panel", "to": "sfu", **fields})


def test_sfu_signals_name_their_leg() -> None:
    assert _sfu(type="offer", sdp="v=0").leg is Leg.PUBLISH
    assert _sfu(type="answer", sdp="v=0", leg="watch").leg is Leg.WATCH
    assert _sfu(type="subscribe").tracks is None
    assert _sfu(type="subscribe", tracks=["n.a", "n.b"]).tracks == {"n.a", "n.b"}
    assert _sfu(type="candidate", candidate=CANDIDATE).leg is None
    assert _sfu(type="candidate", candidate=CANDIDATE, leg="publish").leg is Leg.PUBLISH
    assert _sfu(type="bye").leg is None
    assert _sfu(type="bye", leg="watch").leg is Leg.WATCH


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "offer"},
        {"type": "offer", "sdp": "v=0", "leg": "watch"},
        {"type": "answer", "sdp": "v=0", "leg": "publish"},
        {"type": "bye", "leg": "both"},
        {"type": "subscribe", "tracks": "n.a"},
        {"type": "subscribe", "tracks": [""]},
        {"type": "subscribe", "tracks": ["n.a"] * 65},
        {"type": "candidate"},
        {"type": "hello"},
    ],
)
def test_bad_sfu_signals_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(HubError) as refused:
        _sfu(**fields)
    assert refused.value.code == "bad_request"


@given(st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8)))
def test_parse_sfu_signal_never_fails_other_than_with_a_hub_error(fields: dict[str, Any]) -> None:
    try:
        parse_sfu_signal(fields)
    except HubError as error:
        assert error.code in {"bad_request", "too_large"}
