"""The match queue's pure rules: pairing (oldest first, shared interests, no repeats, the odd
one out), interests, meetings' extensions and contact cards. No sockets, no store."""

from __future__ import annotations

import random

import pytest

from hub.errors import HubError
from networking.match_meeting import (
    CARDS_WINDOW,
    Meeting,
    cards_for,
    cards_open,
    extended_end,
    extension_due,
    parse_card,
    require_member,
)
from networking.match_wire import Card
from networking.matching import (
    MAX_INTERESTS,
    TRIPLE_AFTER,
    Waiting,
    may_meet,
    parse_interests,
    plan_round,
)


def person(user: str, since: float, *interests: str) -> Waiting:
    return Waiting(user, since, frozenset(interests))


def test_two_people_are_paired_oldest_first() -> None:
    assert plan_round([person("b", 2.0), person("a", 1.0)], {}, 3.0) == [("a", "b")]


def test_one_person_waits() -> None:
    assert plan_round([person("a", 1.0)], {}, 100.0) == []


def test_the_oldest_are_served_first_without_interests() -> None:
    queue = [person(f"u{i}", float(i)) for i in range(6)]
    assert plan_round(queue, {}, 10.0) == [("u0", "u1"), ("u2", "u3"), ("u4", "u5")]


def test_shared_interests_are_preferred() -> None:
    queue = [
        person("a", 1.0, "python", "music"),
        person("b", 2.0, "hiking"),
        person("c", 3.0, "music"),
        person("d", 4.0, "python", "music"),
    ]
    assert plan_round(queue, {}, 10.0) == [("a", "d"), ("b", "c")]


def test_equal_interests_go_to_the_one_who_waited_longest() -> None:
    queue = [person("a", 1.0, "x"), person("b", 3.0, "x"), person("c", 2.0, "x"), person("d", 4.0)]
    assert plan_round(queue, {}, 5.0) == [("a", "c"), ("b", "d")]


def test_people_who_met_are_never_paired_again() -> None:
    queue = [person("a", 1.0), person("b", 2.0), person("c", 3.0), person("d", 4.0)]
    met = {"a": {"b"}, "c": {"d"}}
    assert plan_round(queue, met, 10.0) == [("a", "c"), ("b", "d")]
    # Either side's record counts.
    assert plan_round([person("a", 1.0), person("b", 2.0)], {"b": {"a"}}, 10.0) == []
    assert not may_meet("a", "a", {})


def test_someone_who_met_everyone_waits() -> None:
    queue = [person("a", 1.0), person("b", 2.0), person("c", 3.0)]
    assert plan_round(queue, {"a": {"b", "c"}}, 100.0) == [("b", "c")]


def test_the_odd_one_holds_the_last_pair_back_for_a_while() -> None:
    queue = [person("a", 1.0), person("b", 2.0), person("c", 3.0)]
    # c just came: a and b wait with c for a fourth person.
    assert plan_round(queue, {}, 3.0 + TRIPLE_AFTER / 2) == []
    # A fourth arrives: two pairs.
    fourth = [*queue, person("d", 4.0)]
    assert plan_round(fourth, {}, 4.1) == [("a", "b"), ("c", "d")]


def test_the_odd_one_makes_a_triple_after_waiting() -> None:
    queue = [person("a", 1.0), person("b", 2.0), person("c", 3.0)]
    assert plan_round(queue, {}, 3.0 + TRIPLE_AFTER) == [("a", "b", "c")]


def test_only_the_last_pair_the_odd_one_may_join_waits() -> None:
    queue = [person(f"u{i}", float(i)) for i in range(5)]
    # u4 met u2 and u3: it may only join u0 and u1, who wait with it; u2 and u3 go.
    met = {"u4": {"u2", "u3"}}
    assert plan_round(queue, met, 4.5) == [("u2", "u3")]
    assert plan_round(queue, met, 4.0 + TRIPLE_AFTER) == [("u0", "u1", "u4"), ("u2", "u3")]


def test_an_odd_one_who_met_every_pair_does_not_hold_anyone() -> None:
    queue = [person("a", 1.0), person("b", 2.0), person("c", 3.0)]
    assert plan_round(queue, {"c": {"a"}}, 3.1) == [("a", "b")]


@pytest.mark.parametrize("seed", range(20))
def test_a_round_never_puts_anyone_in_two_groups(seed: int) -> None:
    rng = random.Random(seed)
    topics = ["ai", "music", "python", "rust", "design"]
    queue = [
        person(f"u{i}", rng.random() * 10, *rng.sample(topics, rng.randint(0, 3)))
        for i in range(rng.randint(2, 120))
    ]
    users = [p.user for p in queue]
    met = {u: set(rng.sample(users, rng.randint(0, 5))) for u in users}
    groups = plan_round(queue, met, 20.0)
    placed = [user for group in groups for user in group]
    assert len(placed) == len(set(placed))
    for group in groups:
        assert 2 <= len(group) <= 3
        assert all(may_meet(a, b, met) for a in group for b in group if a != b)
    # Nobody is left waiting while a partner they may meet waits too (save the odd triple).
    left = [user for user in users if user not in placed]
    if len(left) > 1:
        pairs = [(a, b) for a in left for b in left if a < b and may_meet(a, b, met)]
        assert not pairs, pairs


def test_interests_are_normalised() -> None:
    assert parse_interests(None) == []
    assert parse_interests([" Python ", "python", "Music"]) == ["python", "music"]
    with pytest.raises(HubError) as error:
        parse_interests(["a"] * (MAX_INTERESTS + 1))
    assert error.value.code == "bad_request"
    for bad in ("python", [""], ["x" * 41], ["a\nb"], [3]):
        with pytest.raises(HubError):
            parse_interests(bad)


def _meeting() -> Meeting:
    members = ({"user": "a", "name": "A"}, {"user": "b", "name": "B"})
    return Meeting("meet-1", members, 1000.0, 300.0)


def test_a_meeting_round_trips_and_names_its_members() -> None:
    meeting = _meeting()
    assert Meeting.from_record(meeting.to_record()) == meeting
    assert meeting.others("a") == [{"user": "b", "name": "B"}]
    assert require_member(meeting, "meet-1", "a") is meeting
    with pytest.raises(HubError) as error:
        require_member(meeting, "meet-1", "c")
    assert error.value.code == "forbidden"
    with pytest.raises(HubError) as error:
        require_member(None, "meet-1", "a")
    assert error.value.code == "not_found"


def test_an_extension_needs_every_member_present() -> None:
    assert extended_end(_meeting()) == 1300.0
    assert not extension_due({"a"}, ["a", "b"])
    assert extension_due({"a", "b"}, ["a", "b"])
    assert extension_due({"a"}, ["a"])
    assert not extension_due(set(), [])


def test_cards_are_given_only_once_everyone_shared() -> None:
    a: Card = {"user": "a", "name": "A"}
    b: Card = {"user": "b", "name": "B", "email": "b@example.org"}
    assert cards_for("a", {"a": a}, ["a", "b"]) is None
    assert cards_for("a", {"a": a, "b": b}, ["a", "b"]) == [b]
    assert cards_for("b", {"a": a, "b": b}, ["a", "b"]) == [a]
    assert cards_open(None, 10**9)
    assert cards_open(100.0, 100.0 + CARDS_WINDOW)
    assert not cards_open(100.0, 100.1 + CARDS_WINDOW)


def test_a_card_is_checked_field_by_field() -> None:
    assert parse_card({}, "a", "Ann") == {"user": "a", "name": "Ann"}
    card = parse_card(
        {"name": " Ann B ", "organisation": "ACME", "email": "ann@acme.org", "link": "https://x.y"},
        "a",
        "Ann",
    )
    assert card == {
        "user": "a",
        "name": "Ann B",
        "organisation": "ACME",
        "email": "ann@acme.org",
        "link": "https://x.y",
    }
    for bad in (
        "card",
        {"phone": "1"},
        {"email": "no-at"},
        {"link": "javascript:alert(1)"},
        {"link": "https://me:secret@x.y"},
        {"link": "https://"},
        {"name": "a\u202eb"},
        {"organisation": "x" * 101},
        {"user": "someone-else"},
    ):
        with pytest.raises(HubError) as error:
            parse_card(bad, "a", "Ann")
        assert error.value.code == "bad_request"
