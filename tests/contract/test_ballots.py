"""The polls' ballot box (polls.ballots's documented guarantees), run against both
implementations: on memory stores sharing one backend and on Redis stores sharing one server.

Each node of a cluster has one ballot box on its store (``Node.ballots``), as a hub node has.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from polls.ballots import BallotResult

from .conftest import Cluster


async def test_ballot_accepts_replaces_and_moves_counts(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    assert await a.ballots.tally("p", 3) == ([0, 0, 0], 0)
    assert await a.ballots.ballot_of("p", "u1") is None

    first = await a.ballots.cast("p", "u1", [0], options=3, allow_change=True, closed_key="pc")
    assert first == BallotResult("accepted", None, [1, 0, 0], 1)
    second = await b.ballots.cast("p", "u2", [0], options=3, allow_change=True, closed_key="pc")
    assert second == BallotResult("accepted", None, [2, 0, 0], 2)
    changed = await b.ballots.cast("p", "u1", [2], options=3, allow_change=True, closed_key="pc")
    assert changed == BallotResult("accepted", [0], [1, 0, 1], 2)
    same = await a.ballots.cast("p", "u1", [2], options=3, allow_change=True, closed_key="pc")
    assert same == BallotResult("accepted", [2], [1, 0, 1], 2)

    assert await b.ballots.ballot_of("p", "u1") == [2]
    assert await a.ballots.tally("p", 3) == ([1, 0, 1], 2)
    # Polls are independent; a tally read of fewer options reads those options only.
    assert await a.ballots.tally("other", 3) == ([0, 0, 0], 0)
    assert await a.ballots.tally("p", 2) == ([1, 0], 2)


async def test_multi_choice_ballots_count_people_once_in_voters(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    r1 = await a.ballots.cast("m", "u1", [0, 2], options=4, allow_change=True, closed_key="mc")
    assert r1 == BallotResult("accepted", None, [1, 0, 1, 0], 1)
    r2 = await b.ballots.cast("m", "u2", [1, 2, 3], options=4, allow_change=True, closed_key="mc")
    assert r2 == BallotResult("accepted", None, [1, 1, 2, 1], 2)
    r3 = await b.ballots.cast("m", "u1", [3], options=4, allow_change=True, closed_key="mc")
    assert r3 == BallotResult("accepted", [0, 2], [0, 1, 1, 2], 2)
    assert await a.ballots.ballot_of("m", "u2") == [1, 2, 3]
    assert await a.ballots.tally("m", 4) == ([0, 1, 1, 2], 2)


async def test_ballot_conflicts_when_changes_are_not_allowed(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    first = await a.ballots.cast("e", "u1", [1], options=2, allow_change=False, closed_key="ec")
    assert first == BallotResult("accepted", None, [0, 1], 1)
    again = await b.ballots.cast("e", "u1", [0], options=2, allow_change=False, closed_key="ec")
    assert again == BallotResult("conflict", [1], [0, 1], 1)
    assert await a.ballots.ballot_of("e", "u1") == [1]


async def test_ballot_refused_once_the_closed_marker_is_set(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.ballots.cast("c", "u1", [0], options=2, allow_change=True, closed_key="c:closed")
    assert await b.store.set_if_absent("c:closed", b"1") is None

    late = await b.ballots.cast("c", "u2", [1], options=2, allow_change=True, closed_key="c:closed")
    assert late == BallotResult("closed", None, [1, 0], 1)
    change = await a.ballots.cast(
        "c", "u1", [1], options=2, allow_change=True, closed_key="c:closed"
    )
    assert change == BallotResult("closed", [0], [1, 0], 1)
    assert await a.ballots.ballot_of("c", "u2") is None
    assert await b.ballots.tally("c", 2) == ([1, 0], 1)


async def test_concurrent_ballots_of_one_user_on_two_nodes_count_once(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    options = 4
    choices = [[i % options] for i in range(40)]
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).ballots.cast(
                "race", "u", choice, options=options, allow_change=True, closed_key="race:c"
            )
            for i, choice in enumerate(choices)
        )
    )
    assert all(r.status == "accepted" and r.voters == 1 and sum(r.counts) == 1 for r in results)
    assert sum(r.previous is None for r in results) == 1
    final = await a.ballots.ballot_of("race", "u")
    assert final is not None
    counts, voters = await b.ballots.tally("race", options)
    assert voters == 1
    assert counts == [1 if [i] == final else 0 for i in range(options)]

    # Without changes allowed exactly one of many concurrent first ballots wins.
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).ballots.cast(
                "once", "u", choice, options=options, allow_change=False, closed_key="once:c"
            )
            for i, choice in enumerate(choices)
        )
    )
    statuses = [r.status for r in results]
    assert statuses.count("accepted") == 1
    assert set(statuses) <= {"accepted", "conflict"}
    winner = choices[statuses.index("accepted")]
    assert await a.ballots.ballot_of("once", "u") == winner
    assert await b.ballots.tally("once", options) == (
        [1 if [i] == winner else 0 for i in range(options)],
        1,
    )


async def test_concurrent_ballots_of_many_users_all_count(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).ballots.cast(
                "crowd", f"u{i}", [i % 3], options=3, allow_change=True, closed_key="crowd:c"
            )
            for i in range(30)
        )
    )
    assert all(r.status == "accepted" for r in results)
    assert await a.ballots.tally("crowd", 3) == ([10, 10, 10], 30)


async def test_a_burst_of_ballots_in_several_polls_counts_exactly(cluster: Cluster) -> None:
    # More ballots in one event-loop iteration than one batch holds, across polls and nodes,
    # with mixed rules: each ballot gets its own reply and the tallies come out exact.
    a, b = await cluster.node("a"), await cluster.node("b")
    options = 3
    await a.store.set_if_absent("shut:c", b"1")
    plan = [
        (poll, f"u{i}", [i % options], allow)
        for i in range(700)
        for poll, allow in (("open", True), ("strict", False), ("shut", True))
        if (i + len(poll)) % 3 != 0 or poll == "open"
    ]
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).ballots.cast(
                poll, user, choice, options=options, allow_change=allow, closed_key=f"{poll}:c"
            )
            for i, (poll, user, choice, allow) in enumerate(plan)
        )
    )
    expected: dict[str, list[int]] = {"open": [0] * options, "strict": [0] * options}
    for (poll, _, choice, _), result in zip(plan, results, strict=True):
        if poll == "shut":
            assert result.status == "closed"
        else:
            assert result.status == "accepted" and result.previous is None
            expected[poll][choice[0]] += 1
    for poll, counts in expected.items():
        assert await b.ballots.tally(poll, options) == (counts, sum(counts))
    assert await a.ballots.tally("shut", options) == ([0] * options, 0)


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_failing_ballot_fails_alone_in_its_batch(cluster: Cluster) -> None:
    # Ballots of one event-loop iteration share one script call; a ballot whose Redis calls
    # fail (here: its ballots key holds a string) gets its own error, the others their results.
    a = await cluster.node("a")
    assert await a.store.set_if_absent("ballot:broken:b", b"not a hash") is None
    outcomes = await asyncio.gather(
        a.ballots.cast("fine", "u1", [0], options=2, allow_change=True, closed_key="fine:c"),
        a.ballots.cast("broken", "u1", [0], options=2, allow_change=True, closed_key="b:c"),
        a.ballots.cast("fine", "u2", [1], options=2, allow_change=True, closed_key="fine:c"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], ResponseError) and "WRONGTYPE" in str(outcomes[1])
    assert [o.status for o in outcomes if not isinstance(o, BaseException)] == ["accepted"] * 2
    assert await a.ballots.tally("fine", 2) == ([1, 1], 2)
