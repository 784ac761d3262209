"""Chat, moderation and direct messages on real ``hub serve`` processes, driven over the wire: one
node in memory mode (the integration tier's shared hub), and two nodes sharing the run's private
Redis (started once for this module; tests keep apart with unique users and rooms).

Members are bare msgpack sockets that record every message exactly as the hub sent it, so a
doubled or reordered delivery would show. No test sleeps to synchronise: each waits for a reply or
an event with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from hub.codec import WireFormat
from livehub_client import HubClient, HubRequestError
from tests.conftest import TIMEOUT
from tests.integration.conftest import uid
from tests.support.hub_process import HubProcess, mint
from tests.support.recording import Member, Msg

pytestmark = pytest.mark.integration


def chat_log(events: list[Msg]) -> list[tuple[int, str, str, str]]:
    return [(e["seq"], e["id"], e["user"], e["text"]) for e in events]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(
    params=["one-node", pytest.param("two-nodes", marks=pytest.mark.redis)],
)
def urls(request: pytest.FixtureRequest) -> list[str]:
    """The WebSocket URLs clients spread over: the shared memory-mode hub, or two Redis nodes."""
    if request.param == "one-node":
        hub: HubProcess = request.getfixturevalue("hub")
        return [hub.url]
    a, b = request.getfixturevalue("nodes")
    return [a.url, b.url]


StartMember = Callable[..., Any]


@pytest.fixture
def member(stack: contextlib.AsyncExitStack) -> StartMember:
    """``await member(url, user, role="attendee", room=None)``: an open member (in ``room``)."""

    async def start(url: str, user: str, role: str = "attendee", room: str | None = None) -> Member:
        opened = await Member.open(url, mint(user, role), within=TIMEOUT)
        stack.push_async_callback(opened.close)
        if room is not None:
            await opened.request("join", room=room)
        return opened

    return start


async def new_room(url: str, member: StartMember) -> str:
    org = await member(url, uid("org"), "organizer")
    room = uid("chat")
    await org.request("room.create", room=room, kind="workshop", title=room)
    return room


# --- one order for everyone ----------------------------------------------------------------------


async def test_thirty_clients_sending_at_once_all_see_one_order(
    urls: list[str], member: StartMember
) -> None:
    room = await new_room(urls[0], member)
    members: list[Member] = await asyncio.gather(
        *(member(urls[i % len(urls)], uid(f"p{i}"), room=room) for i in range(30))
    )
    assert len({m.hello["node"] for m in members}) == len(urls)  # 15 on each of two nodes

    async def talk(m: Member, i: int) -> list[tuple[Msg, str]]:
        texts = [f"{i}/{j}" for j in range(5)]
        acks = await asyncio.gather(
            *(m.request("chat.send", room=room, text=t, key=f"k{t}") for t in texts)
        )
        return list(zip(acks, texts, strict=True))

    sent = await asyncio.gather(*(talk(m, i) for i, m in enumerate(members)))
    expected = sorted(
        (ack["seq"], ack["id"], m.hello["user"]["id"], text)
        for m, pairs in zip(members, sent, strict=True)
        for ack, text in pairs
    )
    assert [seq for seq, *_ in expected] == list(range(1, 151))
    for m in members:
        assert chat_log(await m.wait_events("chat", room, 150)) == expected
    # Exactly once: the next message each member gets is the last one sent, nothing between.
    last = await members[0].request("chat.send", room=room, text="last")
    final = (last["seq"], last["id"], members[0].hello["user"]["id"], "last")
    for m in members:
        assert chat_log(await m.wait_events("chat", room, 151)) == [*expected, final]
    history = await members[-1].request("chat.history", room=room, limit=200)
    assert chat_log(history["messages"]) == [*expected, final]
    assert history["messages"][-1] == members[-1].events("chat", room)[-1]  # as sent live


# --- one node, JSON -------------------------------------------------------------------------------


async def test_chat_and_dms_over_json_on_one_node(hub: HubProcess) -> None:
    ada, bob = uid("ada"), uid("bob")

    def client(user: str, role: str = "attendee") -> HubClient:
        return HubClient(
            hub.url,
            token=mint(user, role),
            fmt=WireFormat.JSON,
            reconnect=False,
            request_timeout=TIMEOUT,
        )

    async with client(uid("org"), "organizer") as org, client(ada) as a, client(bob) as b:
        room = uid("chat")
        await org.request("room.create", room=room, kind="workshop", title=room)
        await a.join(room)
        await b.join(room)
        first = await a.request("chat.send", room=room, text="<script>x</script>")
        await b.request("chat.send", room=room, text="reply", reply_to=first["id"])
        seen = await b.wait_for(lambda e: e.get("ev") == "chat" and e["user"] == ada, TIMEOUT)
        assert seen["text"] == "<script>x</script>"  # plain text, as sent
        reply = await a.wait_for(lambda e: e.get("ev") == "chat" and e["user"] == bob, TIMEOUT)
        assert reply["reply_to"] == first["id"]
        deleted = await a.request("chat.delete", room=room, msg=first["id"])
        gone = await b.wait_for(lambda e: e.get("ev") == "chat.deleted", TIMEOUT)
        assert (gone["seq"], gone["msg"]) == (deleted["seq"], first["id"])
        history = await org.request("chat.history", room=room)
        assert [m["text"] for m in history["messages"]] == ["reply"]
        assert history["cap"] == 10_000
        sent = await a.request("dm.send", to=bob, text="psst")
        dm = await b.wait_for(lambda e: e.get("ev") == "dm", TIMEOUT)
        assert dm == {"ev": "dm", "from": ada, "name": ada, "text": "psst", **sent}
        with pytest.raises(HubRequestError) as refused:
            await a.request("dm.send", to=uid("nobody"), text="hi")
        assert refused.value.code == "not_found"


# --- two nodes sharing Redis ----------------------------------------------------------------------


@pytest.mark.redis
async def test_a_retry_with_the_same_key_on_another_node_posts_once(
    nodes: tuple[HubProcess, HubProcess], member: StartMember
) -> None:
    a, b = nodes
    room = await new_room(a.url, member)
    user = uid("ada")
    on_a = await member(a.url, user, room=room)
    on_b = await member(b.url, user, room=room)
    watchers = [await member(n.url, uid("w"), room=room) for n in nodes]
    first = await on_a.request("chat.send", room=room, text="once", key="k1")
    assert await on_b.request("chat.send", room=room, text="changed", key="k1") == first
    # Both nodes at once with a fresh key: one posts; the other gets its result or conflict.
    outcomes = await asyncio.gather(
        *(m.request("chat.send", room=room, text="race", key="k2") for m in (on_a, on_b)),
        return_exceptions=True,
    )
    results = [o for o in outcomes if isinstance(o, dict)]
    assert results, outcomes
    assert all(
        isinstance(o, dict) or (isinstance(o, HubRequestError) and o.code == "conflict")
        for o in outcomes
    ), outcomes
    assert await on_b.request("chat.send", room=room, text="race", key="k2") == results[0]
    last = await on_b.request("chat.send", room=room, text="last")
    for watcher in watchers:
        texts = [e["text"] for e in await watcher.wait_events("chat", room, 3)]
        assert texts == ["once", "race", "last"]
        assert [e["seq"] for e in watcher.events("chat", room)] == [
            first["seq"],
            results[0]["seq"],
            last["seq"],
        ]
    history = await watchers[0].request("chat.history", room=room)
    assert [m["text"] for m in history["messages"]] == ["once", "race", "last"]


@pytest.mark.redis
async def test_deletion_mute_and_slow_mode_are_seen_on_every_node(
    nodes: tuple[HubProcess, HubProcess], member: StartMember
) -> None:
    a, b = nodes
    room = await new_room(a.url, member)
    ada = uid("ada")
    mod = await member(a.url, uid("mod"), "moderator", room=room)
    ada_b = await member(b.url, ada, room=room)
    ada_a = await member(a.url, ada, room=room)
    watchers = [await member(n.url, uid("w"), room=room) for n in nodes]

    doomed = await ada_b.request("chat.send", room=room, text="to delete")
    kept = await ada_b.request("chat.send", room=room, text="kept")
    deleted = await mod.request("chat.delete", room=room, msg=doomed["id"])
    for watcher in watchers:
        [event] = await watcher.wait_events("chat.deleted", room, 1)
        assert event == {
            "ev": "chat.deleted",
            "room": room,
            "seq": deleted["seq"],
            "msg": doomed["id"],
        }
    history = await watchers[1].request("chat.history", room=room)
    assert [m["id"] for m in history["messages"]] == [kept["id"]]
    assert (await ada_a.error("chat.delete", room=room, msg=doomed["id"]))[0] == "not_found"

    muted = await mod.request("chat.mute", room=room, user=ada, seconds=120)
    for watcher in [*watchers, ada_a]:
        [event] = await watcher.wait_events("chat.muted", room, 1)
        assert (event["user"], event["until"]) == (ada, muted["until"])
    for session in (ada_a, ada_b):
        code, msg = await session.error("chat.send", room=room, text="hi")
        assert code == "forbidden" and msg.startswith("muted for ") and msg.endswith(" s more")
    assert (await ada_b.request("join", room=room))["snapshot"]["muted_until"] == muted["until"]
    assert await mod.request("chat.mute", room=room, user=ada, seconds=0) == {"until": 0}
    for watcher in watchers:
        await watcher.wait_events("chat.muted", room, 2)

    await mod.request("room.slowmode", room=room, seconds=600)
    for watcher in watchers:
        [event] = await watcher.wait_events("room.slowmode", room, 1)
        assert event["seconds"] == 600
    await ada_b.request("chat.send", room=room, text="one per interval")
    code, msg = await ada_a.error("chat.send", room=room, text="too soon")
    assert (code, msg) == ("rate_limited", "slow mode: wait 600 s")
    await mod.request("chat.send", room=room, text="moderators are exempt")
    await mod.request("room.slowmode", room=room, seconds=0)
    await ada_a.request("chat.send", room=room, text="free again")
    texts = [e["text"] for e in await watchers[0].wait_events("chat", room, 5)]
    assert texts == ["to delete", "kept", "one per interval", "moderators are exempt", "free again"]
    assert [e["text"] for e in await watchers[1].wait_events("chat", room, 5)] == texts


@pytest.mark.redis
async def test_dms_reach_every_session_on_both_nodes_and_come_back_after_reconnect(
    nodes: tuple[HubProcess, HubProcess], member: StartMember
) -> None:
    a, b = nodes
    ada, bob = uid("ada"), uid("bob")
    sender = await member(a.url, ada)
    bob_a = await member(a.url, bob)
    bob_b = await member(b.url, bob)
    assert bob_a.hello["node"] != bob_b.hello["node"]
    sent = await sender.request("dm.send", to=bob, text="hello bob")
    expected = {"ev": "dm", "from": ada, "name": ada, "text": "hello bob", **sent}
    for session in (bob_a, bob_b):
        assert await session.wait_events("dm", None, 1) == [expected]
    assert sent["n"] == 1
    assert await sender.error("dm.send", to=ada, text="me") == (
        "bad_request",
        "a direct message needs someone else",
    )

    # Bob goes offline on node B; two more DMs; he comes back on node A and reads them back.
    await bob_a.close()
    await bob_b.close()
    for text in ("are you there?", "ping"):
        await sender.request("dm.send", to=bob, text=text)
    back = await member(b.url, bob)
    history = await back.request("dm.history", **{"with": ada})
    assert [(m["n"], m["from"], m["text"]) for m in history["messages"]] == [
        (1, ada, "hello bob"),
        (2, ada, "are you there?"),
        (3, ada, "ping"),
    ]
    assert history["messages"][0] == expected
    answer = await back.request("dm.send", to=ada, text="here")
    [dm] = await sender.wait_events("dm", None, 1)
    assert (dm["from"], dm["text"], dm["n"]) == (bob, "here", 4) and answer["n"] == 4
    older = await sender.request("dm.history", before=4, limit=2, **{"with": bob})
    assert [m["n"] for m in older["messages"]] == [2, 3]
