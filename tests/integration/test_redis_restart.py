"""A Redis restarted from its append-only file mid-event costs nothing acknowledged.

Two real ``hub serve`` nodes share a private Redis that runs with ``appendonly yes`` and
``appendfsync always`` (every write on disk before its reply). Members on both nodes chat and
vote while a moderator has set a role and banned a troublemaker, an organizer has banned someone
from the event, questions were asked and hands raised. Redis is killed (SIGKILL: a crash, nothing
flushed at exit) in the middle of that traffic and started again from its AOF. Then every
acknowledged chat message, ballot, role, ban, question and hand is still there, and the members,
still connected, carry on: they get every stored event once, in seq order, and never ``reset``
(the rooms' epochs survived with their history).

No test sleeps to synchronise: each waits for a reply, an event or ``/readyz`` with a timeout;
the members' chat and vote loops are paced (a pace is not a wait for anything).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from livehub_client import HubRequestError
from rooms.dead_nodes import BEAT_TTL
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartNodes, open_member, uid
from tests.support.hub_process import HubProcess, mint
from tests.support.recording import Member, Msg
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.redis]

# Each member chats and votes at once (two loops on one connection), above a person's limits.
NODE_ENV = {
    "HUB_LIMIT_CONNECTION_RATE": "1000",
    "HUB_LIMIT_CONNECTION_BURST": "1000",
    "HUB_LIMIT_USER_RATE": "2000",
    "HUB_LIMIT_USER_BURST": "2000",
}
# Seconds between two ballots of one member, and between two messages (or two tries of one):
# about 20 ballots and 3 messages a second (a person may post 3 a second, burst 10).
VOTE_PACE = 0.05
CHAT_PACE = 0.3
OPTIONS = ["red", "green", "blue"]
# How long Redis stays away: the nodes' heartbeats expire meanwhile, yet nobody is swept.
OUTAGE = BEAT_TTL + 1.5


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """This test's own Redis: the append-only file on, fsynced before every reply."""
    with RedisServer(appendfsync="always") as server:
        yield server


@pytest.fixture
def node_env() -> Mapping[str, str]:
    return NODE_ENV


@dataclass
class Talker:
    """One member's chat and vote loops, and what the hub acknowledged of them."""

    member: Member
    room: str
    poll: str
    # key -> (id, seq) of each acknowledged message; the texts sent, by key.
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    # The choice of the last acknowledged ballot; a ballot sent after it whose reply was an
    # error (it may or may not have been cast).
    ballot: int | None = None
    unsure: int | None = None
    failures: int = 0
    acks_after_restart: int = 0
    restarted: bool = False
    stopping: bool = False

    async def chat(self) -> None:
        """Send messages one after another, each retried with its key until acknowledged, as a
        client's outbox does; stop after an acknowledged one once told to."""
        n = 0
        while not self.stopping:
            n += 1
            key = f"{self.member.hello['sid']}-{n}"
            self.texts[key] = text = f"{self.member.hello['user']['id']} says {n}"
            while True:
                reply = await self.member.call("chat.send", room=self.room, text=text, key=key)
                if "ok" in reply:
                    self.acked[key] = (reply["ok"]["id"], reply["ok"]["seq"])
                    self.acks_after_restart += self.restarted
                    break
                # Refused while Redis is away, or by the chat rate after many tries.
                assert reply["err"]["code"] in ("unavailable", "rate_limited"), reply
                self.failures += 1
                await asyncio.sleep(CHAT_PACE)  # the pace of the tries
            await asyncio.sleep(CHAT_PACE)  # the pace of the messages

    async def vote(self) -> None:
        """Vote again and again, a different option each time, until the first ballot that
        fails (Redis is gone); then stop, leaving the ballot box as the crash left it."""
        choice = 0
        while True:
            choice = (choice + 1) % len(OPTIONS)
            reply = await self.member.call(
                "poll.vote", room=self.room, poll=self.poll, choice=choice
            )
            if "err" in reply:
                assert reply["err"]["code"] == "unavailable", reply
                self.unsure = choice
                return
            self.ballot = choice
            await asyncio.sleep(VOTE_PACE)  # the pace of the ballots


def stored(member: Member, room: str) -> list[Msg]:
    """The stored events of ``room`` the member got (those with a seq), in arrival order."""
    return [m for m in member.messages if m.get("room") == room and "seq" in m and "ev" in m]


async def chat_history(member: Member, room: str) -> list[Msg]:
    """Every message ``chat.history`` holds, oldest first (paged by ``before``)."""
    messages: list[Msg] = []
    before: int | None = None
    while True:
        fields: dict[str, Any] = {"room": room, "limit": 200}
        if before is not None:
            fields["before"] = before
        page = (await member.request("chat.history", **fields))["messages"]
        messages[:0] = page
        if len(page) < 200:
            return messages
        before = page[0]["seq"]


async def wait_ready(http: httpx.AsyncClient, node: HubProcess, status: int) -> None:
    async def reached() -> bool:
        try:
            response = await http.get(f"{node.http}/readyz")
        except httpx.TransportError:
            return False
        return response.status_code == status

    await eventually(reached, TIMEOUT, f"/readyz {status} on port {node.port}", interval=0.05)


async def test_a_redis_killed_and_restarted_from_its_aof_loses_nothing_acknowledged(
    start_nodes: StartNodes,
    redis: RedisServer,
    stack: contextlib.AsyncExitStack,
    http: httpx.AsyncClient,
) -> None:
    a, b = await start_nodes(2)
    org = await open_member(stack, a, uid("org"), "organizer")
    room = uid("workshop")
    await org.request("room.create", room=room, kind="workshop", title="Keynote")
    org_at = (await org.join(room))["seq"]
    mod = await open_member(stack, b, uid("mod"), "moderator")
    mod_at = (await mod.join(room))["seq"]
    poll = (await org.request("poll.create", room=room, question="Colour?", options=OPTIONS))[
        "poll"
    ]["id"]
    election = await org.request(
        "poll.create", room=room, question="Best talk?", options=OPTIONS, allow_change=False
    )
    election_id = election["poll"]["id"]

    # Four members, two on each node, all in the room.
    members = [await open_member(stack, node, uid("m")) for node in (a, b, a, b)]
    members_at = [(await member.join(room))["seq"] for member in members]
    speaker, asker = members[0].hello["user"]["id"], members[1].hello["user"]["id"]
    # A role, a room ban, an event ban, questions (one with a vote), hands, election ballots.
    troll = await open_member(stack, a, uid("troll"))
    await troll.join(room)
    spammer = await open_member(stack, b, uid("spammer"))
    await mod.request("role.set", room=room, user=speaker, role="speaker")
    await mod.request("kick", room=room, user=troll.hello["user"]["id"], ban=True)
    await org.request("ban", user=spammer.hello["user"]["id"])
    assert await spammer.closed_with() == 4003
    questions = [
        (await members[i].request("qa.ask", room=room, text=f"Question {i}?"))["question"]["id"]
        for i in (1, 2)
    ]
    assert (await members[3].request("qa.vote", room=room, question=questions[0])) == {"votes": 1}
    for member in members[2:]:
        await member.request("hand.raise", room=room)
    for i, member in enumerate(members):
        await member.request("poll.vote", room=room, poll=election_id, choice=i % len(OPTIONS))
    # Someone leaves now and comes back after the restart, on the other node.
    away = await open_member(stack, b, uid("away"))
    left_at = await away.join(room)
    await away.close()

    # Everyone chats and votes; Redis dies in the middle of it and comes back from its AOF.
    talkers = [Talker(member, room, poll) for member in members]
    loops = [asyncio.create_task(job()) for t in talkers for job in (t.chat, t.vote)]
    try:
        await eventually(
            lambda: all(len(t.acked) >= 5 and t.ballot is not None for t in talkers),
            TIMEOUT,
            "messages and ballots acknowledged",
        )
        await asyncio.to_thread(redis.kill)
        await eventually(lambda: all(t.failures for t in talkers), TIMEOUT, "every chatter refused")
        for talker in talkers:
            talker.restarted = True
        # The outage itself: longer than a node's heartbeat lives (none can beat meanwhile).
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(redis.start)
        for node in (a, b):
            await wait_ready(http, node, 200)
        await eventually(
            lambda: all(t.acks_after_restart >= 5 for t in talkers),
            TIMEOUT,
            "messages acknowledged after the restart",
        )
        for talker in talkers:
            talker.stopping = True
        await asyncio.wait_for(asyncio.gather(*loops), TIMEOUT)
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    # Every acknowledged message is in the history once, with its seq; nothing else is.
    history = await chat_history(mod, room)
    acked = {ack for t in talkers for ack in t.acked.values()}
    assert sorted((m["id"], m["seq"]) for m in history) == sorted(acked)
    texts = {t.texts[key]: ack for t in talkers for key, ack in t.acked.items()}
    assert {m["text"]: (m["id"], m["seq"]) for m in history} == texts

    # Every ballot: each voter's is the last acknowledged one (or the one whose reply was lost).
    for talker in talkers:
        mine = (await talker.member.request("poll.get", room=room, poll=poll))["mine"]
        assert mine in (talker.ballot, talker.unsure), (mine, talker.ballot, talker.unsure)
        talker.ballot = mine
    view = await org.request("poll.get", room=room, poll=poll)
    expected = [sum(t.ballot == i for t in talkers) for i in range(len(OPTIONS))]
    assert (view["counts"], view["voters"]) == (expected, len(talkers))

    # The role, the bans, the questions (and the vote on one), the hands, the election.
    newcomer = await open_member(stack, a, uid("newcomer"))
    joined = await newcomer.join(room)
    assert joined["epoch"] == left_at["epoch"]
    assert joined["members"] == len(members) + 3  # the organizer, the moderator, the newcomer
    snapshot = joined["snapshot"]
    assert [s["user"] for s in snapshot["speakers"]] == [speaker]
    assert (await troll.error("join", room=room))[0] == "forbidden"
    with pytest.raises(HubRequestError) as refused:
        await Member.open(a.url, mint(spammer.hello["user"]["id"]), within=TIMEOUT)
    assert refused.value.code == "forbidden"
    assert {q["id"]: (q["user"], q["text"], q["votes"]) for q in snapshot["questions"]} == {
        questions[0]: (asker, "Question 1?", 1),
        questions[1]: (members[2].hello["user"]["id"], "Question 2?", 0),
    }
    assert (await members[3].error("qa.vote", room=room, question=questions[0]))[0] == "conflict"
    assert [h["user"] for h in snapshot["hands"]] == [m.hello["user"]["id"] for m in members[2:]]
    view = await org.request("poll.get", room=room, poll=election_id)
    assert (view["counts"], view["voters"]) == ([2, 1, 1], len(members))
    assert (await members[0].error("poll.vote", room=room, poll=election_id, choice=2))[
        0
    ] == "conflict"

    # Who was away comes back on the other node and recovers what it missed.
    back = await open_member(stack, a, away.hello["user"]["id"])
    rejoined = await back.join(room, since=left_at["seq"], epoch=left_at["epoch"])
    assert rejoined["recovered"] is True
    assert [e["seq"] for e in rejoined["missed"]] == list(
        range(left_at["seq"] + 1, rejoined["seq"] + 1)
    )

    # The members carry on: a ballot and a message each, seen by everyone; no reset ever.
    for talker in talkers:
        talker.ballot = ((talker.ballot or 0) + 1) % len(OPTIONS)
        await talker.member.request("poll.vote", room=room, poll=poll, choice=talker.ballot)
    closed = (await org.request("poll.close", room=room, poll=poll))["poll"]
    expected = [sum(t.ballot == i for t in talkers) for i in range(len(OPTIONS))]
    assert (closed["counts"], closed["voters"]) == (expected, len(talkers))
    last = max(
        [(await m.request("chat.send", room=room, text="still here"))["seq"] for m in members]
    )
    listeners = [org, mod, *members]
    for member in listeners:
        await member.wait_until(
            lambda m=member: any(e["seq"] == last for e in stored(m, room)),  # type: ignore[misc]
            f"seq {last}",
        )
        assert member.events("reset") == []
    for member, joined_at in zip(listeners, [org_at, mod_at, *members_at], strict=True):
        assert [e["seq"] for e in stored(member, room)] == list(range(joined_at + 1, last + 1))
