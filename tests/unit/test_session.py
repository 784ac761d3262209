"""One connection's state (hub.session), with plain calls: the state machine, holding events back
during a join, the slow-consumer rule and close requests."""

from __future__ import annotations

import itertools

import pytest

from hub.auth import Identity, Role
from hub.codec import EncodedEvent, WireFormat, decode_frame, encode_message
from hub.config import Limits
from hub.errors import CloseCode
from hub.session import IllegalTransition, Session, SessionState


def _identity(user: str = "u1", role: Role = Role.ATTENDEE) -> Identity:
    return Identity(
        user_id=user, name=user, role=role, rooms={"stage": Role.MODERATOR}, expires_at=None
    )


def _session(fmt: WireFormat = WireFormat.JSON, **limits: int) -> Session:
    return Session("n1.abc", fmt, Limits(**limits))


def _messages(session: Session) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for data in session.queue.take(10**9):
        out.extend(decode_frame(session.fmt, data))
    return out


def _event(n: int) -> EncodedEvent:
    return EncodedEvent({"ev": "chat", "room": "r", "seq": n})


# -- the state machine ---------------------------------------------------------------------------

LEGAL = {
    (SessionState.CONNECTED, SessionState.AUTHENTICATED),
    (SessionState.CONNECTED, SessionState.CLOSING),
    (SessionState.AUTHENTICATED, SessionState.CLOSING),
    (SessionState.CLOSING, SessionState.CLOSED),
}


def _at(state: SessionState) -> Session:
    """A session brought to ``state`` by legal moves."""
    session = _session()
    path = {
        SessionState.CONNECTED: [],
        SessionState.AUTHENTICATED: [SessionState.AUTHENTICATED],
        SessionState.CLOSING: [SessionState.CLOSING],
        SessionState.CLOSED: [SessionState.CLOSING, SessionState.CLOSED],
    }[state]
    for step in path:
        session.move(step)
    assert session.state is state
    return session


@pytest.mark.parametrize(
    ("start", "to"), list(itertools.product(SessionState, SessionState)), ids=str
)
def test_moves(start: SessionState, to: SessionState) -> None:
    session = _at(start)
    if (start, to) in LEGAL:
        session.move(to)
        assert session.state is to
    else:
        with pytest.raises(IllegalTransition) as caught:
            session.move(to)
        # The message names the session and both states; the state is unchanged.
        assert session.sid in str(caught.value)
        assert f"{start.value} -> {to.value}" in str(caught.value)
        assert session.state is start


def test_a_new_session_is_connected_and_anonymous() -> None:
    session = _session()
    assert session.state is SessionState.CONNECTED
    assert session.open
    assert session.identity is None
    assert session.user_id == ""
    assert session.role_in("stage") is Role.ATTENDEE
    assert session.close_code is None


def test_authenticate_moves_to_authenticated_and_keeps_the_identity() -> None:
    session = _session()
    session.authenticate(_identity())
    assert session.state is SessionState.AUTHENTICATED
    assert session.user_id == "u1"
    assert session.role_in("stage") is Role.MODERATOR
    assert session.role_in("other") is Role.ATTENDEE
    assert session.open


def test_authenticate_again_refreshes_the_identity() -> None:
    session = _session()
    session.authenticate(_identity())
    fresh = Identity("u1", "New name", Role.ATTENDEE, {}, expires_at=123.0)
    session.authenticate(fresh)
    assert session.state is SessionState.AUTHENTICATED
    assert session.identity is fresh


@pytest.mark.parametrize("state", [SessionState.CLOSING, SessionState.CLOSED])
def test_authenticate_is_refused_once_closing(state: SessionState) -> None:
    session = _at(state)
    with pytest.raises(IllegalTransition, match="cannot authenticate"):
        session.authenticate(_identity())
    assert session.identity is None
    assert session.state is state


@pytest.mark.parametrize("state", [SessionState.CLOSING, SessionState.CLOSED])
def test_closing_and_closed_are_not_open(state: SessionState) -> None:
    assert not _at(state).open


# -- close requests ------------------------------------------------------------------------------


def test_request_close_moves_to_closing_and_closes_the_queue() -> None:
    session = _session()
    session.send({"re": 1, "ok": {}})
    session.request_close(CloseCode.UNAUTHENTICATED, "no hello")
    assert session.state is SessionState.CLOSING
    assert session.close_code is CloseCode.UNAUTHENTICATED
    assert session.close_reason == "no hello"
    assert session.queue.closed
    # What was queued before the request is still written; nothing after it is.
    session.send({"re": 2, "ok": {}})
    session.deliver(_event(1))
    assert _messages(session) == [{"re": 1, "ok": {}}]


def test_the_first_close_request_wins() -> None:
    session = _session()
    session.authenticate(_identity())
    session.request_close(CloseCode.FLOODING, "flooding")
    session.request_close(CloseCode.SLOW_CONSUMER, "slow")
    session.request_close(CloseCode.DRAINING, "draining")
    assert session.close_code is CloseCode.FLOODING
    assert session.close_reason == "flooding"
    assert session.state is SessionState.CLOSING


def test_a_close_request_after_closed_changes_nothing() -> None:
    session = _at(SessionState.CLOSED)
    session.request_close(CloseCode.BANNED, "banned")
    assert session.state is SessionState.CLOSED
    assert session.close_code is None


# -- send and deliver ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(WireFormat))
def test_send_and_deliver_queue_in_order_in_the_session_format(fmt: WireFormat) -> None:
    session = _session(fmt)
    event = _event(1)
    session.send({"re": 1, "ok": {"a": 1}})
    session.deliver(event)
    raw = session.queue.take(10**9)
    assert raw[1] is event.for_format(fmt)  # the shared encoding itself, not a copy
    assert isinstance(raw[0], bytes)  # both formats: the bytes that go on the wire
    session.queue.put(raw[0])
    session.queue.put(raw[1])
    assert _messages(session) == [{"re": 1, "ok": {"a": 1}}, dict(event.message)]


def test_deliver_overflow_closes_with_4008_and_drops_the_backlog() -> None:
    session = _session(queue_messages=3)
    session.authenticate(_identity())
    for n in range(3):
        session.deliver(_event(n))
    assert session.open
    session.deliver(_event(3))
    assert session.queue.overflowed
    assert session.state is SessionState.CLOSING
    assert session.close_code is CloseCode.SLOW_CONSUMER
    assert len(session.queue) == 0
    session.deliver(_event(4))
    assert len(session.queue) == 0


def test_deliver_overflow_by_bytes_closes_with_4008() -> None:
    big = EncodedEvent({"ev": "chat", "text": "x" * 100})
    session = _session(queue_bytes=250)
    session.deliver(big)
    session.deliver(big)
    assert session.open
    session.deliver(big)
    assert session.close_code is CloseCode.SLOW_CONSUMER


def test_send_overflow_closes_with_4008_too() -> None:
    session = _session(queue_messages=2)
    for n in range(3):
        session.send({"re": n + 1, "ok": {}})
    assert session.close_code is CloseCode.SLOW_CONSUMER


def test_an_overflow_after_another_close_request_keeps_the_first_code() -> None:
    session = _session(queue_messages=1)
    session.deliver(_event(1))
    session.request_close(CloseCode.DRAINING, "draining")
    session.deliver(_event(2))  # refused: the queue is closed, which is no overflow
    assert not session.queue.overflowed
    assert session.close_code is CloseCode.DRAINING


# -- hold and release ----------------------------------------------------------------------------


JOIN = object()  # what holds: a join's command context, say
MOVE = object()  # another holder: a move into a room


def test_events_held_during_a_join_come_after_its_reply() -> None:
    session = _session()
    session.deliver(_event(1))  # before the hold: queued at once
    session.hold(JOIN)
    session.deliver(_event(2))
    session.deliver(_event(3))
    assert len(session.queue) == 1
    session.send({"re": 7, "ok": {"seq": 1}})  # the join reply
    session.release(JOIN)
    assert session.held is None
    assert _messages(session) == [
        {"ev": "chat", "room": "r", "seq": 1},
        {"re": 7, "ok": {"seq": 1}},
        {"ev": "chat", "room": "r", "seq": 2},
        {"ev": "chat", "room": "r", "seq": 3},
    ]


def test_after_release_events_are_queued_at_once() -> None:
    session = _session()
    session.hold(JOIN)
    session.release(JOIN)
    session.deliver(_event(1))
    assert len(session.queue) == 1


def test_release_without_hold_does_nothing() -> None:
    session = _session()
    session.release(JOIN)
    assert len(session.queue) == 0
    assert session.held is None


def test_hold_twice_keeps_what_was_held() -> None:
    session = _session()
    session.hold(JOIN)
    session.deliver(_event(1))
    session.hold(JOIN)
    session.deliver(_event(2))
    session.release(JOIN)
    assert [m["seq"] for m in _messages(session)] == [1, 2]


def test_holding_more_than_the_queue_bound_overflows() -> None:
    session = _session(queue_messages=3)
    session.hold(JOIN)
    for n in range(3):
        session.deliver(_event(n))
    assert session.open
    session.deliver(_event(3))
    assert session.close_code is CloseCode.SLOW_CONSUMER
    assert session.queue.overflowed
    assert session.held is None
    session.release(JOIN)
    assert len(session.queue) == 0


def test_release_that_passes_the_bound_overflows() -> None:
    # Three held events fit the held list, but not the queue next to the reply.
    session = _session(queue_messages=3)
    session.hold(JOIN)
    for n in range(3):
        session.deliver(_event(n))
    session.send({"re": 1, "ok": {}})
    session.release(JOIN)
    assert session.queue.overflowed
    assert session.close_code is CloseCode.SLOW_CONSUMER
    assert len(session.queue) == 0


def test_release_after_a_close_request_drops_the_held_events_quietly() -> None:
    session = _session()
    session.hold(JOIN)
    session.deliver(_event(1))
    session.request_close(CloseCode.UNAUTHENTICATED, "bad token")
    session.release(JOIN)
    assert len(session.queue) == 0
    assert session.close_code is CloseCode.UNAUTHENTICATED
    assert not session.queue.overflowed


def test_repr_names_the_user_and_state() -> None:
    session = _session()
    assert repr(session) == "<Session n1.abc - connected>"
    session.authenticate(_identity("alice"))
    assert repr(session) == "<Session n1.abc alice authenticated>"


def test_encode_message_matches_what_send_queues() -> None:
    session = _session(WireFormat.MSGPACK)
    message = {"ev": "dm", "text": "hé"}
    session.send(message)
    assert session.queue.take(10**9) == [encode_message(WireFormat.MSGPACK, message)]


@pytest.mark.parametrize("fmt", list(WireFormat))
def test_the_outbound_bound_counts_encoded_bytes_in_both_formats(fmt: WireFormat) -> None:
    # 4-byte characters: 1,000 of them are 4,000 bytes on the wire in either format, however
    # few characters (or str code points) they are.
    session = _session(fmt, queue_bytes=10_000)
    emoji = EncodedEvent({"ev": "chat", "room": "r", "seq": 1, "text": "\U0001f600" * 1000})
    assert len(emoji.for_format(fmt)) > 4000
    session.deliver(emoji)
    session.deliver(emoji)
    assert session.close_code is None
    session.deliver(emoji)  # past 10,000 bytes: the third is refused, the connection closes
    assert session.queue.overflowed
    assert session.close_code is CloseCode.SLOW_CONSUMER


def test_guests_of_one_address_spend_one_rate_key() -> None:
    guest = Identity("g-1", "Guest", Role.ATTENDEE, {}, expires_at=None, guest=True)

    def key(identity: Identity, address: str | None) -> str:
        session = Session("n.s", WireFormat.JSON, Limits(), address)
        session.authenticate(identity)
        return session.rate_key

    assert Session("n.s", WireFormat.JSON, Limits(), "203.0.113.7").rate_key == ""
    assert key(guest, "203.0.113.7") == "guests@203.0.113.7"
    assert key(guest, None) == "g-1"  # loopback: per user
    assert key(_identity("ann"), "203.0.113.7") == "ann"


def test_events_stay_held_until_every_holder_lets_go() -> None:
    # A move holds the session while one of its commands runs: the command's release must not
    # let the move's events through before the move has sent its own event.
    session = _session()
    session.hold(MOVE)
    session.hold(JOIN)
    session.deliver(_event(1))
    session.release(JOIN)
    assert len(session.queue) == 0 and session.held is not None
    session.send({"ev": "breakout.assigned", "room": "r"})
    session.release(MOVE)
    assert [m.get("seq") for m in _messages(session)] == [None, 1]
    assert session.held is None and session.holders is None


def test_a_release_by_someone_who_holds_nothing_does_nothing() -> None:
    session = _session()
    session.hold(MOVE)
    session.deliver(_event(1))
    session.release(JOIN)
    assert len(session.queue) == 0
    session.release(MOVE)
    assert len(session.queue) == 1
