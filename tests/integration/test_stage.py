"""The stage and breakouts on two real ``hub serve`` processes sharing one private Redis, driven
over the wire: the hand queue in the same order everywhere, role changes checked on the other
node, kicks with a ban, the event-wide ban, and a round of 9 people in 3 breakouts closed by its
timer (after its warning), once.

No test sleeps to synchronise: each waits for a reply or an event with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartNodes, new_room, open_member, uid
from tests.support import recording
from tests.support.hub_process import mint

pytestmark = [pytest.mark.integration, pytest.mark.redis]


def queue_of(member: recording.Member, room: str) -> list[str]:
    """The users of the last ``hands`` event ``member`` got for ``room``."""
    events = member.events("hands", room)
    return [hand["user"] for hand in events[-1]["queue"]] if events else []


async def test_hands_roles_and_kicks_on_two_nodes(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes()
    room = await new_room(stack, a, "panel")
    mod = await open_member(stack, a, uid("mod"), "moderator")
    people = [await open_member(stack, node, uid("p")) for node in (b, a, b, a)]
    everyone = [mod, *people]
    await asyncio.gather(*(member.join(room) for member in everyone))
    users = [member.hello["user"]["id"] for member in people]

    # Hands raised one after another on alternating nodes: the same order for everyone.
    for member in people:
        await member.request("hand.raise", room=room)
    for member in everyone:
        await member.wait_until(lambda m=member: queue_of(m, room) == users, "the full queue")

    # Promoting someone (on the other node) takes them off the queue and is a stored event.
    promoted = people[1]
    ack = await mod.request("role.set", room=room, user=users[1], role="moderator")
    for member in everyone:
        role_events = await member.wait_events("role", room, 1)
        assert role_events[-1] == {
            "ev": "role",
            "room": room,
            "seq": ack["seq"],
            "user": users[1],
            "role": "moderator",
        }
        await member.wait_until(
            lambda m=member: queue_of(m, room) == [users[0], users[2], users[3]], "queue"
        )
    # Checked on the promoted user's node (a), learnt from Redis.
    await promoted.request("announce", room=room, text="I moderate now")
    code, _ = await people[0].error("announce", room=room, text="me too?")
    assert code == "forbidden"
    await promoted.request("hand.lower", room=room, user=users[0])
    leaving = people[2]
    await leaving.request("leave", room=room)
    for member in (mod, people[3]):
        await member.wait_until(lambda m=member: queue_of(m, room) == [users[3]], "queue")

    # A kick reaches the user's sessions on both nodes; with a ban, no way back.
    target = users[3]
    second = await open_member(stack, b, target)
    await second.join(room)
    await mod.request("kick", room=room, user=target, ban=True)
    for session in (people[3], second):
        assert (await session.wait_events("kicked", room, 1))[-1] == {"ev": "kicked", "room": room}
    for node, session in ((a, people[3]), (b, second)):
        code, _ = await session.error("join", room=room)
        assert code == "forbidden", node
    assert (await people[0].error("kick", room=room, user=users[1]))[0] == "forbidden"


async def test_an_event_wide_ban_closes_every_session_and_refuses_hello(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes()
    org = await open_member(stack, b, uid("org"), "organizer")
    bad = uid("bad")
    sessions = [await open_member(stack, node, bad) for node in (a, b)]
    await org.request("ban", user=bad)
    for session in sessions:
        assert await session.closed_with() == 4003
    for node in (a, b):
        with pytest.raises(recording.HubRequestError) as refused:
            await recording.Member.open(node.url, mint(bad), within=TIMEOUT)
        assert refused.value.code == "forbidden"


@pytest.fixture
def node_env() -> dict[str, str]:
    # A short warning before timed breakouts end, so the round fits in a test.
    return {"HUB_BREAKOUT_WARNING": "1.5"}


async def test_a_round_of_nine_people_in_three_breakouts_with_a_timer(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes()
    room = await new_room(stack, a, "workshop")
    mod = await open_member(stack, b, uid("mod"), "moderator")
    people = [await open_member(stack, (a, b)[i % 2], uid("p")) for i in range(9)]
    await asyncio.gather(*(member.join(room) for member in [mod, *people]))

    opened = await mod.request("breakout.open", room=room, count=3, assign="random", duration=4)
    children = [child["id"] for child in opened["rooms"]]
    assert children == [f"{room}.b1", f"{room}.b2", f"{room}.b3"]
    assignments = opened["assignments"]
    assert sorted(Counter(assignments.values()).values()) == [3, 3, 3]

    async def go(member: recording.Member) -> str:
        told = (await member.wait_events("breakout.assigned", room, 1))[-1]
        child: str = told["breakout"]
        assert child == assignments[member.hello["user"]["id"]]
        await member.join(child)
        return child

    homes = await asyncio.gather(*(go(member) for member in people))
    await mod.join(homes[0])  # moderators may join any child
    for member, child in zip(people, homes, strict=True):
        ending = (await member.wait_events("breakout.ending", child, 1))[-1]
        assert ending["ends_at"] == opened["ends_at"] and ending["parent"] == room
        closed = (await member.wait_events("breakout.closed", child, 1))[-1]
        assert closed["parent"] == room
        back = await member.wait_events("breakouts", room, 2)
        assert back[-1]["rooms"] == []
    # Once each, though both nodes ran the timer; and the children are closed to joins.
    for member, child in zip(people, homes, strict=True):
        assert len(member.events("breakout.ending", child)) == 1
        assert len(member.events("breakout.closed", child)) == 1
        assert len(member.events("breakouts", room)) == 2
    code, _ = await people[0].error("join", room=homes[0])
    assert code == "closed"
