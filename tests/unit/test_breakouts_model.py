"""Breakout rules (rooms.breakouts): breakout.open validation, the random deal, rounds as stored,
their timers, and who may enter which child room."""

from __future__ import annotations

import collections
import itertools
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import HubError
from hub.fields import MAX_USER_ID, room_id
from rooms.breakouts import (
    MAX_ASSIGNMENTS,
    MAX_BREAKOUT_DURATION,
    MAX_BREAKOUT_TITLE,
    MAX_BREAKOUTS,
    MIN_BREAKOUT_DURATION,
    Assign,
    BreakoutPlan,
    BreakoutRound,
    assign_random,
    child_ids,
    may_enter_child,
    open_round,
    parse_breakout_open,
)

NOW = 1_000.0
PARENT = "workshop"


def plan(parent: str = PARENT, **fields: Any) -> BreakoutPlan:
    base: dict[str, Any] = {"count": 3, "assign": "random"}
    return parse_breakout_open(parent, {**base, **fields})


def bad(field: str, parent: str = PARENT, **fields: Any) -> None:
    with pytest.raises(HubError) as info:
        parse_breakout_open(parent, fields)
    assert info.value.code == "bad_request"
    assert info.value.msg.startswith(f"{field}: "), info.value.msg


# -- breakout.open: rooms -------------------------------------------------------------------------


def test_defaults_from_count() -> None:
    assert plan() == BreakoutPlan(
        parent=PARENT,
        titles=("Room 1", "Room 2", "Room 3"),
        assign=Assign.RANDOM,
        assignments={},
        duration=None,
        include_moderators=False,
        move=False,
    )
    assert plan().children == ("workshop.b1", "workshop.b2", "workshop.b3")


def test_every_field_given() -> None:
    got = plan(
        count=None,
        titles=[" Intro ", "Deep dive"],
        assign="manual",
        assignments={"u1": 2, "u2": "workshop.b1"},
        duration=600,
        moderators=True,
        move=True,
        room="ignored",
        op="breakout.open",
    )
    assert got.parent == PARENT
    assert got.titles == ("Intro", "Deep dive")
    assert got.children == ("workshop.b1", "workshop.b2")
    assert got.assign is Assign.MANUAL
    assert dict(got.assignments) == {"u1": "workshop.b2", "u2": "workshop.b1"}
    assert got.duration == 600.0 and isinstance(got.duration, float)
    assert got.include_moderators is True
    assert got.move is True


def test_null_fields_count_as_absent() -> None:
    assert plan(titles=None, assignments=None, duration=None, moderators=None, move=None) == plan()
    assert plan(count=None, titles=["a"]).titles == ("a",)


@pytest.mark.parametrize("count", [1, MAX_BREAKOUTS])
def test_count_bounds_accepted(count: int) -> None:
    got = plan(count=count)
    assert got.titles == tuple(f"Room {i}" for i in range(1, count + 1))
    assert got.children[-1] == f"{PARENT}.b{count}"


@pytest.mark.parametrize("count", [0, -1, MAX_BREAKOUTS + 1, True, False, 1.0, 2.5, "3", [3]])
def test_bad_count(count: object) -> None:
    bad("count", count=count, assign="random")


def test_count_or_titles_exactly_one() -> None:
    bad("count", assign="random")
    bad("count", count=None, titles=None, assign="random")
    bad("count", count=2, titles=["a", "b"], assign="random")


@pytest.mark.parametrize(
    "titles", [["x"], ["x" * MAX_BREAKOUT_TITLE], [f"t{i}" for i in range(MAX_BREAKOUTS)]]
)
def test_title_bounds_accepted(titles: list[str]) -> None:
    assert plan(count=None, titles=titles).titles == tuple(titles)


def test_titles_may_repeat_and_may_be_a_tuple() -> None:
    assert plan(count=None, titles=("Same", "Same")).titles == ("Same", "Same")


@pytest.mark.parametrize(
    "titles", ["ab", {"a": 1}, 3, [], [f"t{i}" for i in range(MAX_BREAKOUTS + 1)]]
)
def test_bad_title_lists(titles: object) -> None:
    bad("titles", titles=titles, assign="random")


@pytest.mark.parametrize(
    "title",
    ["", "   ", 3, None, ["a"], "x" * (MAX_BREAKOUT_TITLE + 1), "a\nb", "a\tb", "a\x00b", "\x85"],
)
def test_bad_titles_name_their_index(title: object) -> None:
    bad("titles[1]", titles=["ok", title], assign="random")


def test_parent_must_leave_room_for_the_suffix() -> None:
    longest = "p" * 77  # "{parent}.b9" is 80 characters
    assert plan(parent=longest, count=9).children[-1] == longest + ".b9"
    bad("room", parent=longest, count=10, assign="random")
    bad("room", parent="p" * 76 + "q", titles=["t"] * 10, assign="random")
    assert plan(parent="p" * 76, count=MAX_BREAKOUTS).children[-1] == "p" * 76 + ".b50"
    bad("room", parent="p" * 78, count=1, assign="random")
    bad("room", parent="p" * 80, count=1, assign="random")


@given(st.integers(min_value=1, max_value=80), st.integers(min_value=1, max_value=MAX_BREAKOUTS))
def test_children_are_valid_room_ids_exactly_when_accepted(length: int, count: int) -> None:
    parent = "r" * length
    if length + len(f".b{count}") <= 80:
        children = plan(parent=parent, count=count).children
        assert children == child_ids(parent, count)
        assert all(room_id(child) == child for child in children)
    else:
        bad("room", parent=parent, count=count, assign="random")


# -- breakout.open: assign, assignments, duration, moderators -------------------------------------


@pytest.mark.parametrize("assign", list(Assign))
def test_assign_values(assign: Assign) -> None:
    extra: dict[str, Any] = {"assignments": {"u": 1}} if assign is Assign.MANUAL else {}
    assert plan(assign=assign.value, **extra).assign is assign


@pytest.mark.parametrize("assign", [None, "", "RANDOM", "auto", 1, True, ["self"], {"self": 1}])
def test_bad_assign(assign: object) -> None:
    bad("assign", count=2, assign=assign)


def test_assign_is_required() -> None:
    bad("assign", count=2)


def test_manual_assignments_normalise_to_child_ids() -> None:
    got = plan(assign="manual", assignments={"a": 1, "b": 3, "c": "workshop.b2", "d": 3})
    assert dict(got.assignments) == {
        "a": "workshop.b1",
        "b": "workshop.b3",
        "c": "workshop.b2",
        "d": "workshop.b3",
    }


def test_assignments_are_read_only_and_plans_hashable() -> None:
    source = {"a": 1}
    got = plan(assign="manual", assignments=source)
    with pytest.raises(TypeError):
        got.assignments["b"] = "workshop.b1"  # type: ignore[index]
    source["b"] = 2
    assert dict(got.assignments) == {"a": "workshop.b1"}
    assert hash(got) == hash(plan(assign="manual", assignments={"a": 1}))
    built = BreakoutPlan(PARENT, ("t",), Assign.MANUAL, {"u": "workshop.b1"}, None, False)
    with pytest.raises(TypeError):
        built.assignments["v"] = "workshop.b1"  # type: ignore[index]


@pytest.mark.parametrize("assign", ["random", "self"])
@pytest.mark.parametrize("assignments", [{}, {"u": 1}, [], "x"])
def test_assignments_only_with_manual(assign: str, assignments: object) -> None:
    bad("assignments", count=2, assign=assign, assignments=assignments)


@pytest.mark.parametrize(
    "assignments",
    [
        None,
        {},
        [],
        [["u", 1]],
        "u=1",
        {1: 1},
        {"": 1},
        {"u" * (MAX_USER_ID + 1): 1},
        {("u",): 1},
    ],
)
def test_bad_assignments(assignments: object) -> None:
    fields: dict[str, Any] = {"count": 3, "assign": "manual"}
    if assignments is not None:
        fields["assignments"] = assignments
    bad("assignments", **fields)


def test_assignments_missing_with_manual() -> None:
    bad("assignments", count=3, assign="manual")


@pytest.mark.parametrize(
    "target",
    [0, 4, -1, True, False, 1.0, "1", "b1", "workshop.b4", "workshop.b0", "other.b1", None, [1]],
)
def test_bad_assignment_targets(target: object) -> None:
    bad("assignments['u2']", count=3, assign="manual", assignments={"u1": 1, "u2": target})


def test_user_ids_up_to_the_limit() -> None:
    user = "u" * MAX_USER_ID
    assert dict(plan(assign="manual", assignments={user: 1}).assignments) == {user: "workshop.b1"}


def test_assignment_count_limit() -> None:
    at_limit = {f"u{i}": i % 3 + 1 for i in range(MAX_ASSIGNMENTS)}
    assert len(plan(assign="manual", assignments=at_limit).assignments) == MAX_ASSIGNMENTS
    over = {**at_limit, "one-more": 1}
    bad("assignments", count=3, assign="manual", assignments=over)


@pytest.mark.parametrize(
    "duration", [MIN_BREAKOUT_DURATION, MAX_BREAKOUT_DURATION, 1.5, 60, 900.25]
)
def test_duration_bounds_accepted(duration: float) -> None:
    got = plan(duration=duration)
    assert got.duration == duration and isinstance(got.duration, float)


@pytest.mark.parametrize(
    "duration",
    [
        0,
        0.999,
        -5,
        MAX_BREAKOUT_DURATION + 1,
        MAX_BREAKOUT_DURATION + 0.001,
        True,
        False,
        "60",
        [60],
        float("nan"),
        float("inf"),
    ],
)
def test_bad_duration(duration: object) -> None:
    bad("duration", count=2, assign="random", duration=duration)


@pytest.mark.parametrize("moderators", [True, False])
def test_moderators_flag(moderators: bool) -> None:
    assert plan(moderators=moderators).include_moderators is moderators


@pytest.mark.parametrize("moderators", [0, 1, "true", "yes", [True]])
def test_bad_moderators(moderators: object) -> None:
    bad("moderators", count=2, assign="random", moderators=moderators)


@pytest.mark.parametrize("move", [0, 1, "true", [True]])
def test_bad_move(move: object) -> None:
    bad("move", count=2, assign="random", move=move)


def test_the_first_wrong_field_is_named() -> None:
    wrong: dict[str, Any] = {
        "count": 0,
        "assign": "x",
        "assignments": 5,
        "duration": 0,
        "moderators": 1,
    }
    bad("count", **wrong)
    bad("assign", **(wrong | {"count": 2}))
    bad("assignments", **(wrong | {"count": 2, "assign": "random"}))
    bad("duration", **(wrong | {"count": 2, "assign": "random", "assignments": None}))
    bad(
        "moderators",
        **(wrong | {"count": 2, "assign": "random", "assignments": None, "duration": 5}),
    )
    bad("room", parent="p" * 80, count=2, assign="x")  # the children come before assign


# -- the random deal ------------------------------------------------------------------------------


def test_assign_random_small_cases() -> None:
    children = ("r.b1", "r.b2", "r.b3")
    assert assign_random([], children, random.Random(1)) == {}
    assert assign_random([], (), random.Random(1)) == {}
    placed = assign_random(["a", "b", "a", "c", "b"], children, random.Random(1))
    assert sorted(placed) == ["a", "b", "c"]
    assert sorted(placed.values()) == list(children)  # three people, three rooms: one each
    assert assign_random(["x"], ("only",), random.Random(7)) == {"x": "only"}
    with pytest.raises(ValueError):
        assign_random(["x"], (), random.Random(1))


def test_assign_random_is_deterministic_per_seed_and_input_order_free() -> None:
    users = [f"user{i}" for i in range(40)]
    children = child_ids("r", 6)
    first = assign_random(users, children, random.Random(42))
    assert assign_random(reversed(users), children, random.Random(42)) == first
    assert assign_random(set(users), children, random.Random(42)) == first
    others = [assign_random(users, children, random.Random(seed)) for seed in range(5)]
    assert any(other != first for other in others)  # the seed matters


@given(
    st.lists(st.text(max_size=6), max_size=300),
    st.integers(min_value=1, max_value=MAX_BREAKOUTS),
    st.integers(min_value=0, max_value=2**32),
)
def test_assign_random_places_everyone_once_in_balanced_rooms(
    users: list[str], count: int, seed: int
) -> None:
    children = child_ids("r", count)
    placed = assign_random(users, children, random.Random(seed))
    assert set(placed) == set(users)  # every distinct user, and a dict places each once
    assert set(placed.values()) <= set(children)
    sizes = collections.Counter(placed.values())
    counts = [sizes.get(child, 0) for child in children]
    assert max(counts) - min(counts) <= 1
    assert assign_random(list(reversed(users)), children, random.Random(seed)) == placed


# -- rounds ---------------------------------------------------------------------------------------


def test_open_round_without_duration() -> None:
    got = open_round(plan(count=2), "r1", "mod", NOW)
    assert got == BreakoutRound(
        id="r1",
        parent=PARENT,
        rooms=(("workshop.b1", "Room 1"), ("workshop.b2", "Room 2")),
        assign=Assign.RANDOM,
        opened_by="mod",
        opened_at=NOW,
        ends_at=None,
    )
    assert got.children() == ("workshop.b1", "workshop.b2")
    assert got.describe() == {
        "rooms": [
            {"id": "workshop.b1", "title": "Room 1"},
            {"id": "workshop.b2", "title": "Room 2"},
        ],
        "assign": "random",
    }
    assert not got.due(NOW + MAX_BREAKOUT_DURATION * 10)
    assert not got.warning_due(NOW + MAX_BREAKOUT_DURATION * 10, 30)


def test_open_round_with_duration() -> None:
    got = open_round(plan(count=None, titles=["A"], assign="self", duration=300), "r2", "m", NOW)
    assert got.ends_at == NOW + 300
    described = got.describe()
    assert described["ends_at"] == NOW + 300
    assert described["assign"] == "self" and type(described["assign"]) is str
    assert not got.due(NOW + 299.99)
    assert got.due(NOW + 300) and got.due(NOW + 301)


def test_warning_due() -> None:
    got = open_round(plan(duration=60), "r", "m", NOW)
    assert not got.warning_due(NOW, 10)
    assert not got.warning_due(NOW + 49.99, 10)
    assert got.warning_due(NOW + 50, 10) and got.warning_due(NOW + 70, 10)
    # No warning for rounds not longer than the lead.
    assert not got.warning_due(NOW + 60, 60)
    assert not got.warning_due(NOW + 100, 120)
    assert got.warning_due(NOW + 1, 59)


def test_record_keeps_every_field() -> None:
    got = open_round(plan(duration=60), "r", "m", NOW)
    record = got.to_record()
    assert record == {
        "id": "r",
        "parent": PARENT,
        "rooms": [
            {"id": "workshop.b1", "title": "Room 1"},
            {"id": "workshop.b2", "title": "Room 2"},
            {"id": "workshop.b3", "title": "Room 3"},
        ],
        "assign": "random",
        "opened_by": "m",
        "opened_at": NOW,
        "ends_at": NOW + 60,
    }
    assert BreakoutRound.from_record(record) == got


def test_record_from_integer_times_and_foreign_maps() -> None:
    record = open_round(plan(duration=60), "r", "m", NOW).to_record()
    restored = BreakoutRound.from_record(record | {"opened_at": 1000, "ends_at": 1060})
    assert (restored.opened_at, restored.ends_at) == (1000.0, 1060.0)
    assert isinstance(restored.opened_at, float) and isinstance(restored.ends_at, float)
    with pytest.raises(ValueError):
        BreakoutRound.from_record(record | {"assign": "lottery"})
    with pytest.raises(KeyError):
        BreakoutRound.from_record({k: v for k, v in record.items() if k != "parent"})


finite = st.floats(allow_nan=False, allow_infinity=False)
rounds_strategy = st.builds(
    BreakoutRound,
    id=st.text(max_size=10),
    parent=st.text(max_size=10),
    rooms=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=5).map(tuple),
    assign=st.sampled_from(Assign),
    opened_by=st.text(max_size=10),
    opened_at=finite,
    ends_at=st.none() | finite,
)


@given(rounds_strategy)
def test_round_record_round_trip(round_: BreakoutRound) -> None:
    record = round_.to_record()
    assert BreakoutRound.from_record(record) == round_
    assert all(type(v) in (str, float, list, type(None)) for v in record.values())
    assert round_.children() == tuple(child for child, _ in round_.rooms)


# -- who may enter a child ------------------------------------------------------------------------


def entry_allowed(assign: Assign, assigned: str | None, child: str, moderator: bool) -> bool:
    """The rule of the brief, written out independently."""
    return moderator or assign is Assign.SELF or assigned is None or assigned == child


@pytest.mark.parametrize(
    ("assign", "assigned", "child", "moderator"),
    list(itertools.product(Assign, [None, "p.b1", "p.b2"], ["p.b1", "p.b2"], [False, True])),
)
def test_may_enter_child_matrix(
    assign: Assign, assigned: str | None, child: str, moderator: bool
) -> None:
    allowed = may_enter_child(assign=assign, assigned=assigned, child=child, moderator=moderator)
    assert allowed is entry_allowed(assign, assigned, child, moderator)


def test_may_enter_child_spelled_out() -> None:
    assert may_enter_child(assign=Assign.RANDOM, assigned="p.b1", child="p.b1", moderator=False)
    assert not may_enter_child(assign=Assign.RANDOM, assigned="p.b1", child="p.b2", moderator=False)
    assert not may_enter_child(assign=Assign.MANUAL, assigned="p.b1", child="p.b2", moderator=False)
    assert may_enter_child(assign=Assign.MANUAL, assigned="p.b1", child="p.b2", moderator=True)
    assert may_enter_child(assign=Assign.SELF, assigned="p.b1", child="p.b2", moderator=False)
    assert may_enter_child(assign=Assign.MANUAL, assigned=None, child="p.b2", moderator=False)
