"""Signals cannot knock anyone off: what one user sends (across connections and nodes) and what
one session receives (whoever sends) are bounded, so a flood of offers ends in ``rate_limited``
replies to the flooder while its target stays connected and gets every signal that was
accepted."""

from __future__ import annotations

import asyncio
import contextlib

from support.hub_process import HubProcess
from support.recording import Member

from signalling.feature import RECEIVER_SIGNAL_BYTES, USER_SIGNAL_BYTES

from .conftest import StartHub, StartNodes, new_room, open_member, uid

SDP = "v=0\r\n" + "a=x\r\n" * 6500  # 32,505 characters: just under the 32 KiB an offer may hold
OFFERS_PER_CONNECTION = 20  # one connection's whole burst of offers


async def flood(
    sender: Member, room: str, to: str, offers: int = OFFERS_PER_CONNECTION
) -> tuple[int, int]:
    """Send ``offers`` offers to ``to`` in a row: (accepted, refused with rate_limited)."""
    accepted = refused = 0
    for _ in range(offers):
        reply = await sender.call("signal", room=room, to=to, type="offer", sdp=SDP)
        if "ok" in reply:
            accepted += 1
        else:
            assert reply["err"]["code"] == "rate_limited", reply
            refused += 1
    return accepted, refused


async def flood_from(
    senders: list[Member], room: str, receiver: Member, offers: int = OFFERS_PER_CONNECTION
) -> tuple[int, int]:
    """Every sender floods ``receiver`` at once: the totals of :func:`flood`."""
    to = receiver.hello["sid"]
    results = await asyncio.gather(*(flood(s, room, to, offers) for s in senders))
    return sum(a for a, _ in results), sum(r for _, r in results)


async def still_served(receiver: Member, room: str, accepted: int) -> None:
    """``receiver`` got every accepted offer and is still connected and answering."""
    await receiver.wait_events("signal", room, accepted)
    assert len(receiver.events("signal", room)) == accepted
    assert await receiver.request("ping") == {}
    assert receiver.close_code is None


def most_accepted(budget: int) -> int:
    """The most offers a budget of ``budget`` bytes a window lets through in a burst that may
    straddle two windows."""
    return 2 * (budget // len(SDP) + 1)


async def members(
    stack: contextlib.AsyncExitStack, nodes: list[HubProcess], user: str, count: int, room: str
) -> list[Member]:
    """``count`` connections of ``user`` in ``room``, spread over ``nodes`` in turn."""
    joined = []
    for i in range(count):
        member = await open_member(stack, nodes[i % len(nodes)], user)
        await member.join(room)
        joined.append(member)
    return joined


async def test_a_user_with_many_connections_cannot_flood_a_peer_off(
    start_hub: StartHub, stack: contextlib.AsyncExitStack
) -> None:
    hub = start_hub()
    room = await new_room(stack, hub, "workshop")
    receiver = await open_member(stack, hub, uid("ann"))
    await receiver.join(room)
    senders = await members(stack, [hub], uid("mal"), 14, room)
    # 14 x 20 offers of 32 KB: 9 MB, twice the receiver's whole outbound queue.
    accepted, refused = await flood_from(senders, room, receiver)
    assert accepted + refused == 14 * OFFERS_PER_CONNECTION
    assert accepted <= most_accepted(USER_SIGNAL_BYTES)
    await still_served(receiver, room, accepted)


async def test_a_users_signal_budget_is_one_across_nodes(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    room = await new_room(stack, a, "workshop")
    receiver = await open_member(stack, a, uid("ann"))
    await receiver.join(room)
    senders = await members(stack, [a, b], uid("mal"), 4, room)
    accepted, refused = await flood_from(senders, room, receiver)
    # Two nodes buy no more: per node, one user's budget alone would pass about twice as many.
    assert refused > 0
    assert accepted <= most_accepted(USER_SIGNAL_BYTES)
    await still_served(receiver, room, accepted)


async def test_a_receiver_takes_a_bounded_share_of_signals_whoever_sends(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    room = await new_room(stack, a, "workshop")
    receiver = await open_member(stack, b, uid("ann"))
    await receiver.join(room)
    # Twelve users, each within their own budget (ten offers: 325 KB), at the same receiver.
    senders = [(await members(stack, [(a, b)[i % 2]], uid(f"s{i}"), 1, room))[0] for i in range(12)]
    accepted, refused = await flood_from(senders, room, receiver, offers=10)
    assert refused > 0
    assert accepted <= most_accepted(RECEIVER_SIGNAL_BYTES)
    await still_served(receiver, room, accepted)
    # Others are not affected: a signal to someone else passes at once.
    other = await open_member(stack, a, uid("bob"))
    await other.join(room)
    candidate = {"candidate": "candidate:1 1 udp 1 192.0.2.1 9 typ host", "sdpMid": "0"}
    assert (
        await senders[0].request(
            "signal", room=room, to=other.hello["sid"], type="candidate", candidate=candidate
        )
        == {}
    )
