"""Local stream followers (hub.fanout.StreamMembers): who receives which stored event, by
position, with plain calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from hub.fanout import StreamMembers

E1 = "epoch-1"
E2 = "epoch-2"


def _deliver(members: StreamMembers[str], seq: int) -> list[str]:
    return sorted(members.recipients(seq))


def test_a_member_at_the_delivered_position_receives_the_next_event() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    assert members.sessions == {"a": "A"}
    assert _deliver(members, 1) == ["A"]
    assert members.delivered == 1


def test_a_member_ahead_of_delivered_waits_until_its_position_is_passed() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    # b's join read seq 3 while events 1..3 were still in flight to this node.
    members.add("b", "B", 3, E1)
    assert "b" in members.waiting
    assert "b" in members
    assert len(members) == 2
    assert _deliver(members, 1) == ["A"]
    assert _deliver(members, 2) == ["A"]
    assert _deliver(members, 3) == ["A"]
    assert "b" in members.waiting
    assert _deliver(members, 4) == ["A", "B"]
    assert members.waiting == {}
    assert _deliver(members, 5) == ["A", "B"]


def test_a_member_joining_at_delivered_later_joins_at_once() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    for seq in (1, 2):
        members.recipients(seq)
    members.add("b", "B", 2, E1)
    assert members.waiting == {}
    assert _deliver(members, 3) == ["A", "B"]


def test_the_first_member_sets_the_epoch_and_starts_waiting_if_history_exists() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    assert members.epoch is None
    members.add("a", "A", 10, E1)  # the room has 10 stored events; none fanned out here yet
    assert members.epoch == E1
    assert "a" in members.waiting
    assert _deliver(members, 11) == ["A"]


def test_behind_says_when_a_read_position_was_passed_already() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    for seq in (1, 2, 3):
        members.recipients(seq)
    assert members.behind(2, E1)
    assert not members.behind(3, E1)
    assert not members.behind(4, E1)
    # A position of another epoch is never "behind" this one.
    assert not members.behind(0, E2)


def test_behind_is_false_for_a_new_stream() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    assert not members.behind(0, E1)
    assert not members.behind(5, E1)


def test_fan_out_before_any_member_counts_as_passing_a_read_position() -> None:
    # A join read the head at 4; the next event was fanned out (to nobody) before it was added.
    members: StreamMembers[str] = StreamMembers("r")
    members.recipients(5)
    assert members.behind(4, E1)
    assert not members.behind(5, E1)


def test_remove_takes_members_out_whether_waiting_or_not() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    members.add("b", "B", 5, E1)
    assert members.remove("b") == "B"
    assert members.remove("a") == "A"
    assert members.remove("a") is None
    assert members.remove("nobody") is None
    assert len(members) == 0
    assert not members
    assert _deliver(members, 1) == []


def test_all_includes_waiting_members() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    members.add("b", "B", 9, E1)
    assert sorted(members.all()) == ["A", "B"]


def test_reset_restarts_seq_and_releases_waiting_members() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    members.add("b", "B", 50, E1)
    for seq in (1, 2, 3):
        members.recipients(seq)
    members.reset(E2)
    assert members.epoch == E2
    assert members.delivered == 0
    assert members.waiting == {}
    assert _deliver(members, 1) == ["A", "B"]


def test_a_join_read_in_a_new_epoch_waits_for_the_reset() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    for seq in (1, 2, 3):
        members.recipients(seq)
    # b's join already saw the new epoch; this node has not heard of it yet.
    assert not members.behind(0, E2)
    members.add("b", "B", 0, E2)
    assert "b" in members.waiting
    members.reset(E2)
    assert _deliver(members, 1) == ["A", "B"]


def test_a_member_after_reset_joins_at_the_new_epoch_positions() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 0, E1)
    members.recipients(1)
    members.reset(E2)
    members.add("b", "B", 0, E2)
    assert members.waiting == {}
    assert members.behind(0, E2) is False
    assert _deliver(members, 1) == ["A", "B"]


def test_the_known_position_is_the_newest_read_or_fanned_out_here() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    assert members.known_position() is None
    members.add("a", "A", 10, E1)
    assert members.known_position() == (10, E1)
    members.add("b", "B", 7, E1)  # an older read does not move it back
    assert members.known_position() == (10, E1)
    for seq in range(1, 13):
        members.recipients(seq)
    assert members.known_position() == (12, E1)
    members.remove("a")
    members.remove("b")
    assert members.known_position() == (12, E1)


def test_no_known_position_while_a_join_waits_for_an_epoch_fan_out_has_not_reached() -> None:
    members: StreamMembers[str] = StreamMembers("r")
    members.add("a", "A", 3, E1)
    members.add("b", "B", 2, E2)
    assert members.known_position() is None
    members.remove("b")
    assert members.known_position() == (3, E1)
    members.add("c", "C", 4, E2)
    members.reset(E2)
    assert members.known_position() == (4, E2)


# -- the property --------------------------------------------------------------------------------


@dataclass
class _Follower:
    """A session as the test sees it: where it joined, and what it got."""

    position: int
    received: list[int] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(1, 3)),  # events stored, not yet fanned out
        st.tuples(st.just("deliver"), st.integers(1, 3)),  # fan out what is stored, in order
        st.tuples(st.just("join"), st.integers(0, 5), st.integers(0, 1000)),
        st.tuples(st.just("join_known"), st.integers(0, 5)),  # at the known position, unread
        st.tuples(st.just("leave"), st.integers(0, 5)),
    ),
    max_size=60,
)


@given(ops=_ops)
def test_each_member_receives_exactly_the_events_after_its_position_once_in_order(
    ops: list[tuple[object, ...]],
) -> None:
    """Joins read the room's head (anywhere between what this node fanned out and what is stored,
    as a join racing with fan-out does), deliveries ascend without gaps: every member receives
    exactly the seqs greater than its position delivered after it joined, each once, in order."""
    members: StreamMembers[_Follower] = StreamMembers("r")
    stored = 0
    followers: dict[str, _Follower] = {}
    finished: list[_Follower] = []  # those that left: they must get nothing more
    for op in ops:
        kind = op[0]
        if kind == "publish":
            stored += int(op[1])  # type: ignore[call-overload]
        elif kind == "deliver":
            for _ in range(int(op[1])):  # type: ignore[call-overload]
                if members.delivered >= stored:
                    break
                seq = members.delivered + 1
                for follower in followers.values():
                    if seq > follower.position:
                        follower.expected.append(seq)
                for follower in members.recipients(seq):
                    follower.received.append(seq)
        elif kind in ("join", "join_known"):
            sid = f"s{op[1]}"
            known = members.known_position() if kind == "join_known" else None
            if known is not None:
                # follow() of a room this node follows: no read, the position known here.
                position = known[0]
            else:
                # What a join reads: some head between the local fan-out and the store (follow()
                # reads again while behind() says it is behind, so never below `delivered`).
                low, high = members.delivered, stored
                position = low + int(op[-1]) % (high - low + 1)  # type: ignore[call-overload]
            assert not members.behind(position, E1)
            if sid in followers:  # a rejoin: follow() drops the old membership first
                members.remove(sid)
                finished.append(followers.pop(sid))
            follower = followers[sid] = _Follower(position)
            members.add(sid, follower, position, E1)
        else:
            sid = f"s{op[1]}"
            removed = members.remove(sid)
            assert removed is followers.pop(sid, None)
            if removed is not None:
                finished.append(removed)
        assert len(members) == len(followers)
    for follower in [*followers.values(), *finished]:
        assert follower.received == follower.expected
        assert all(seq > follower.position for seq in follower.received)
        assert follower.received == sorted(set(follower.received))
    for follower in followers.values():
        # No gap either: a member still there has every seq from its position to the last.
        assert follower.received == list(range(follower.position + 1, members.delivered + 1))
