"""Q&A on two real ``hub serve`` processes sharing one private Redis, driven over the wire.

Forty users, each with one session on each node, vote twice at once for the same question: the
count ends at exactly 40, every user's second vote gets ``conflict``, every member sees the
counts climb to a last ``qa.votes`` of 40, and a join on either node lists the question with 40
votes. Two moderators on two nodes close the question at the same time: exactly one succeeds.

Members are bare WebSockets that record every message as the hub sent it. No test sleeps to
synchronise: each waits for a reply or an event with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

import pytest

from tests.integration.conftest import StartNodes, uid
from tests.integration.conftest import open_member as shared_open_member
from tests.support import recording
from tests.support.hub_process import HubProcess

pytestmark = [pytest.mark.integration, pytest.mark.redis]

USERS = 40


class Member(recording.Member):
    """A :class:`~tests.support.recording.Member` that reads the Q&A vote counts."""

    def votes(self, room: str, question: str) -> list[int]:
        """The counts of the ``qa.votes`` events for ``question``, in arrival order."""
        return [e["votes"] for e in self.events("qa.votes", room) if e["question"] == question]


# --- helpers -------------------------------------------------------------------------------------


open_member = functools.partial(shared_open_member, kind=Member)


async def snapshot_questions(
    stack: contextlib.AsyncExitStack, node: HubProcess, room: str
) -> list[tuple[str, int, str]]:
    """``(id, votes, state)`` of the questions in the join snapshot of a new member on ``node``."""
    newcomer = await open_member(stack, node, uid("new"))
    joined = await newcomer.request("join", room=room)
    return [(q["id"], q["votes"], q["state"]) for q in joined["snapshot"]["questions"]]


# --- the test ------------------------------------------------------------------------------------


async def test_concurrent_double_votes_on_two_nodes_are_counted_exactly(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes()
    org = await open_member(stack, a, uid("org"), "organizer")
    room = uid("panel")
    await org.request("room.create", room=room, kind="panel", title="Panel")
    users = [uid("u") for _ in range(USERS)]
    on_a, on_b = await asyncio.gather(
        asyncio.gather(*(open_member(stack, a, user) for user in users)),
        asyncio.gather(*(open_member(stack, b, user) for user in users)),
    )
    members = [*on_a, *on_b]
    await asyncio.gather(*(m.request("join", room=room) for m in members))

    early = (await on_b[0].request("qa.ask", room=room, text="Asked first"))["question"]["id"]
    asked = await on_a[0].request("qa.ask", room=room, text="How does it scale?")
    question = asked["question"]["id"]
    for m in members:
        await m.wait_until(lambda m=m: len(m.events("qa", room)) == 2, "both questions")  # type: ignore[misc]
        assert [e["seq"] for e in m.events("qa", room)] == [1, asked["seq"]] == [1, 2]

    # Every user votes from both sessions at once: 80 votes in flight on two nodes.
    pairs = list(zip(on_a, on_b, strict=True))
    replies = await asyncio.gather(
        *(m.call("qa.vote", room=room, question=question) for pair in pairs for m in pair)
    )
    per_user = [replies[2 * i : 2 * i + 2] for i in range(USERS)]
    for pair in per_user:
        assert sorted("ok" if "ok" in r else r["err"]["code"] for r in pair) == ["conflict", "ok"]
    counts = sorted(r["ok"]["votes"] for r in replies if "ok" in r)
    assert counts == list(range(1, USERS + 1))  # each vote counted once, none lost

    # Each member sees the count climb (batched, never down) to a last qa.votes of exactly 40.
    for m in members:
        await m.wait_until(lambda m=m: USERS in m.votes(room, question), "qa.votes 40")  # type: ignore[misc]
    for m in members:
        seen = m.votes(room, question)
        assert seen == sorted(seen) and seen[-1] == USERS, seen
        assert len(seen) < USERS  # batched: fewer events than votes
        assert m.votes(room, early) == []

    expected = [(question, USERS, "open"), (early, 0, "open")]  # by votes, then ask order
    assert await snapshot_questions(stack, a, room) == expected
    assert await snapshot_questions(stack, b, room) == expected

    # Two moderators on two nodes close the question at the same time: one of them wins.
    mod_a = await open_member(stack, a, uid("mod"), "moderator")
    mod_b = await open_member(stack, b, uid("mod"), "moderator")
    closes = await asyncio.gather(
        mod_a.call("qa.answer", room=room, question=question),
        mod_b.call("qa.dismiss", room=room, question=question),
    )
    assert sorted("ok" if "ok" in r else r["err"]["code"] for r in closes) == ["closed", "ok"]
    winner = next(r["ok"] for r in closes if "ok" in r)
    closed = winner["question"]
    assert closed["state"] in ("answered", "dismissed") and closed["votes"] == USERS
    dismissed = await mod_a.request("qa.dismiss", room=room, question=early)
    assert dismissed["question"]["state"] == "dismissed"
    for m in members:
        await m.wait_until(lambda m=m: len(m.events("qa", room)) == 4, "the closing events")  # type: ignore[misc]
        assert [(e["seq"], e["question"]) for e in m.events("qa", room)[2:]] == [
            (winner["seq"], closed),
            (dismissed["seq"], dismissed["question"]),
        ]
    late = await on_b[1].call("qa.vote", room=room, question=question)
    assert late["err"]["code"] == "closed"
    assert await snapshot_questions(stack, a, room) == []
    assert await snapshot_questions(stack, b, room) == []
