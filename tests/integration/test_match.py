"""The match queue on two real ``hub serve`` nodes sharing a private Redis: people on both nodes
are paired exactly (nobody twice, nobody left while a partner waits), and a meeting runs across
them (the room, an extension, the end)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from livehub_client import HubClient, HubRequestError
from livehub_client.meet import Match, meet, wait_for_match
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartNodes, uid
from tests.support.hub_process import mint
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.redis]


async def open_clients(
    stack: contextlib.AsyncExitStack, urls: list[str], prefix: str
) -> list[HubClient]:
    clients = [
        HubClient(url, token=mint(uid(prefix)), reconnect=False, request_timeout=TIMEOUT)
        for url in urls
    ]
    await asyncio.gather(*(stack.enter_async_context(client) for client in clients))
    return clients


async def test_people_on_two_nodes_are_paired_exactly(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    clients = await open_clients(stack, [a.url, b.url] * 20, "p")
    matches = await asyncio.gather(*(meet(client, timeout=TIMEOUT) for client in clients))
    groups: dict[str, set[str]] = {}
    for client, match in zip(clients, matches, strict=True):
        me = client.user["id"]  # type: ignore[index]
        members = {me, *(other["user"] for other in match.others)}
        assert groups.setdefault(match.room, members) == members
    placed = [user for members in groups.values() for user in members]
    assert len(placed) == len(set(placed)) == 40
    assert len({client.node for client in clients}) == 2


async def test_a_meeting_across_nodes_extends_and_ends_for_both(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    ada, bob = await open_clients(stack, [a.url, b.url], "m")
    found: list[Match] = await asyncio.gather(meet(ada), meet(bob))
    room = found[0].room
    assert found[1].room == room
    await ada.request("join", room=room)
    await bob.request("join", room=room)
    outsider = (await open_clients(stack, [a.url], "o"))[0]
    with pytest.raises(HubRequestError) as refused:
        await outsider.request("join", room=room)
    assert refused.value.code == "forbidden"
    assert (await ada.request("match.extend", room=room))["extended"] is False
    await bob.wait_for(lambda ev: ev.get("ev") == "match.extend_requested", TIMEOUT)
    assert (await bob.request("match.extend", room=room))["extended"] is True
    await ada.wait_for(lambda ev: ev.get("ev") == "match.extended", TIMEOUT)
    await bob.request("match.end", room=room)
    for client in (ada, bob):
        ended = await client.wait_for(lambda ev: ev.get("ev") == "match.ended", TIMEOUT)
        assert ended["reason"] == "left"


async def test_a_killed_nodes_people_leave_the_queue_and_are_never_paired(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    ann, cat = await open_clients(stack, [a.url, a.url], "s")
    xav = HubClient(b.url, token=mint(uid("x")), reconnect=False, request_timeout=TIMEOUT)
    await xav.__aenter__()
    await xav.join("main")
    await xav.request("match.join")
    xav_id = xav.user["id"]  # type: ignore[index]
    assert b.process is not None
    b.process.kill()  # kill -9: the session never closes on b

    async def xav_is_gone() -> bool:
        page = await ann.request("presence", room="main")
        return all(member["user"] != xav_id for member in page["members"])

    await eventually(xav_is_gone, within=3 * TIMEOUT, what="the dead node swept", interval=0.5)
    await ann.request("match.join")
    await cat.request("match.join")
    match = await wait_for_match(ann, TIMEOUT)
    assert [other["user"] for other in match.others] == [cat.user["id"]]  # type: ignore[index]
    with contextlib.suppress(Exception):
        await xav.close()
