"""Stage rules (rooms.stage): assignable roles, who may set whose role, who may kick whom, and
the hand queue."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.auth import Role
from hub.errors import HubError
from rooms.stage import (
    ASSIGNABLE_ROLES,
    Hand,
    check_kick,
    check_role_change,
    hand_queue,
    hands_event,
    parse_assignable_role,
)

ATT, SPK, MOD, ORG = Role.ATTENDEE, Role.SPEAKER, Role.MODERATOR, Role.ORGANIZER

# -- role.set's role ------------------------------------------------------------------------------


def test_assignable_roles() -> None:
    assert ASSIGNABLE_ROLES == (ATT, SPK, MOD)


@pytest.mark.parametrize(
    ("label", "role"), [("attendee", ATT), ("speaker", SPK), ("moderator", MOD)]
)
def test_parse_assignable_role(label: str, role: Role) -> None:
    assert parse_assignable_role(label) is role


@pytest.mark.parametrize(
    "value",
    [
        "organizer",
        "Moderator",
        "SPEAKER",
        " attendee",
        "",
        "admin",
        None,
        0,
        1,
        2,
        True,
        ["speaker"],
        {"role": "speaker"},
        Role.ORGANIZER,
    ],
)
def test_bad_assignable_roles(value: object) -> None:
    with pytest.raises(HubError) as info:
        parse_assignable_role(value)
    assert info.value.code == "bad_request"
    assert info.value.msg.startswith("role: ")


# -- role.set -------------------------------------------------------------------------------------


def role_change_allowed(caller: Role, target_now: Role, new: Role, self_change: bool) -> bool:
    """The rules of the brief, written out independently: anyone steps down, only moderators
    do anything else, organizers are never changed, nobody steps up."""
    if target_now is ORG:
        return False
    if self_change:
        return new <= target_now
    if caller < MOD:
        return False
    return caller is ORG or (target_now < caller and new <= caller)


@pytest.mark.parametrize(
    ("caller", "target_now", "new", "self_change"),
    [
        (caller, target_now, new, self_change)
        for caller, target_now, new in itertools.product(Role, Role, ASSIGNABLE_ROLES)
        for self_change in (False, True)
    ],
)
def test_role_change_matrix(caller: Role, target_now: Role, new: Role, self_change: bool) -> None:
    if role_change_allowed(caller, target_now, new, self_change):
        check_role_change(caller, target_now, new, self_change=self_change)
    else:
        with pytest.raises(HubError) as info:
            check_role_change(caller, target_now, new, self_change=self_change)
        assert info.value.code == "forbidden"


@pytest.mark.parametrize("caller", [ATT, SPK])
@pytest.mark.parametrize("target_now", list(Role))
def test_only_moderators_set_roles(caller: Role, target_now: Role) -> None:
    # Checked first, whatever the target: even an organizer target gives this message.
    with pytest.raises(HubError, match="only moderators set roles") as info:
        check_role_change(caller, target_now, ATT, self_change=False)
    assert info.value.code == "forbidden"


@pytest.mark.parametrize("caller", [MOD, ORG])
@pytest.mark.parametrize("self_change", [False, True])
def test_organizer_roles_come_from_tokens(caller: Role, self_change: bool) -> None:
    with pytest.raises(HubError, match="token") as info:
        check_role_change(caller, ORG, ATT, self_change=self_change)
    assert info.value.code == "forbidden"


def test_anyone_may_step_down_but_nobody_steps_up() -> None:
    check_role_change(MOD, MOD, ATT, self_change=True)
    check_role_change(MOD, MOD, SPK, self_change=True)
    check_role_change(MOD, MOD, MOD, self_change=True)
    check_role_change(SPK, SPK, ATT, self_change=True)  # not a moderator, but stepping down
    check_role_change(SPK, SPK, SPK, self_change=True)
    check_role_change(ATT, ATT, ATT, self_change=True)
    with pytest.raises(HubError, match="only moderators"):
        check_role_change(ATT, ATT, MOD, self_change=True)
    with pytest.raises(HubError, match="only moderators"):
        check_role_change(SPK, SPK, MOD, self_change=True)
    with pytest.raises(HubError, match="never raise") as info:
        check_role_change(MOD, SPK, MOD, self_change=True)
    assert info.value.code == "forbidden"


def test_moderators_manage_attendees_and_speakers() -> None:
    for target_now, new in itertools.product([ATT, SPK], [ATT, SPK, MOD]):
        check_role_change(MOD, target_now, new, self_change=False)


def test_only_organizers_change_another_moderator() -> None:
    for new in (ATT, SPK, MOD):
        with pytest.raises(HubError) as info:
            check_role_change(MOD, MOD, new, self_change=False)
        assert info.value.code == "forbidden"
        check_role_change(ORG, MOD, new, self_change=False)


def test_organizer_is_never_given() -> None:
    # parse_assignable_role refuses it; check_role_change refuses it even from an organizer.
    with pytest.raises(HubError) as info:
        check_role_change(ORG, SPK, ORG, self_change=False)
    assert info.value.code == "bad_request"
    with pytest.raises(HubError) as info:
        check_role_change(MOD, SPK, ORG, self_change=False)
    assert info.value.code == "forbidden"
    with pytest.raises(HubError) as info:
        check_role_change(MOD, MOD, ORG, self_change=True)
    assert info.value.code == "forbidden"


# -- kick -----------------------------------------------------------------------------------------


def kick_refusal(caller: Role, target: Role, self_kick: bool) -> str | None:
    """The error code the rules of the brief give, written out independently (None: allowed)."""
    if caller < MOD:
        return "forbidden"
    if self_kick:
        return "bad_request"
    if target is ORG or (target >= caller and caller is not ORG):
        return "forbidden"
    return None


@pytest.mark.parametrize(
    ("caller", "target", "self_kick"), list(itertools.product(Role, Role, (False, True)))
)
def test_kick_matrix(caller: Role, target: Role, self_kick: bool) -> None:
    code = kick_refusal(caller, target, self_kick)
    if code is None:
        check_kick(caller, target, self_kick=self_kick)
    else:
        with pytest.raises(HubError) as info:
            check_kick(caller, target, self_kick=self_kick)
        assert info.value.code == code


def test_kick_spelled_out() -> None:
    check_kick(MOD, ATT, self_kick=False)
    check_kick(MOD, SPK, self_kick=False)
    check_kick(ORG, MOD, self_kick=False)
    with pytest.raises(HubError, match="only moderators kick"):
        check_kick(SPK, ATT, self_kick=False)
    with pytest.raises(HubError, match="you cannot kick yourself") as info:
        check_kick(MOD, MOD, self_kick=True)
    assert info.value.code == "bad_request"
    with pytest.raises(HubError, match="organizers cannot be kicked"):
        check_kick(ORG, ORG, self_kick=False)
    with pytest.raises(HubError) as info:
        check_kick(MOD, MOD, self_kick=False)
    assert info.value.code == "forbidden"


# -- hands ----------------------------------------------------------------------------------------


def test_hand_record_and_describe() -> None:
    hand = Hand(user="u1", name="Ada", ts=1_700_000_000.123456, sid="s1")
    assert hand.to_record() == {"name": "Ada", "ts": 1_700_000_000.123456, "sid": "s1"}
    assert Hand.from_record("u1", hand.to_record()) == hand
    assert hand.describe() == {"user": "u1", "name": "Ada", "ts": 1_700_000_000.123}


def test_hand_from_record_accepts_integer_times() -> None:
    hand = Hand.from_record("u1", {"name": "Ada", "ts": 12, "sid": "s1"})
    assert hand.ts == 12.0 and isinstance(hand.ts, float)


def test_hand_from_a_foreign_record() -> None:
    with pytest.raises(KeyError):
        Hand.from_record("u1", {"name": "Ada", "sid": "s1"})
    with pytest.raises(ValueError):
        Hand.from_record("u1", {"name": "Ada", "ts": "soon", "sid": "s1"})


def test_hand_queue_orders_by_time_then_user() -> None:
    late = Hand("a", "A", 3.0, "s1")
    tie_b = Hand("b", "B", 2.0, "s2")
    tie_c = Hand("c", "C", 2.0, "s3")
    first = Hand("z", "Z", 1.0, "s4")
    assert hand_queue([late, tie_c, tie_b, first]) == [first, tie_b, tie_c, late]
    assert hand_queue([]) == []
    assert hand_queue(iter([late, first])) == [first, late]


def test_hands_event() -> None:
    hands = {Hand("u2", "Bo", 5.0004, "s2"), Hand("u1", "Ada", 4.5, "s1")}
    assert hands_event("panel", hands) == {
        "ev": "hands",
        "room": "panel",
        "queue": [
            {"user": "u1", "name": "Ada", "ts": 4.5},
            {"user": "u2", "name": "Bo", "ts": 5.0},
        ],
    }
    assert hands_event("panel", []) == {"ev": "hands", "room": "panel", "queue": []}


finite = st.floats(allow_nan=False, allow_infinity=False)
hands_strategy = st.builds(
    Hand, user=st.text(max_size=8), name=st.text(max_size=8), ts=finite, sid=st.text(max_size=8)
)


@given(hands_strategy)
def test_hand_record_round_trip(hand: Hand) -> None:
    record = hand.to_record()
    assert Hand.from_record(hand.user, record) == hand
    assert set(record) == {"name", "ts", "sid"}


@given(
    st.lists(
        st.builds(
            Hand,
            user=st.sampled_from(["a", "b", "c", "d"]),
            name=st.sampled_from(["A", "B"]),
            ts=st.sampled_from([1.0, 2.0, 2.5]) | finite,
            sid=st.sampled_from(["s1", "s2"]),
        ),
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_hand_queue_is_independent_of_input_order(hands: list[Hand], rng: random.Random) -> None:
    shuffled = list(hands)
    rng.shuffle(shuffled)
    queue = hand_queue(hands)
    assert hand_queue(shuffled) == queue
    assert hand_queue(reversed(hands)) == queue
    assert sorted(queue, key=lambda h: (h.ts, h.user)) == queue
    assert [h.describe() for h in queue] == hands_event("r", shuffled)["queue"]
