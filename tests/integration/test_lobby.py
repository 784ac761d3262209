"""What the web app's lobby and rooms read on entry, across two real ``hub serve`` nodes sharing
the private Redis: the live rooms directory (``rooms`` events), the join snapshot's ``notices``
and ``closed_polls``, a panel's ``peers`` (its stage only), and ``dm.conversations``.

Members are recording sockets; every wait is for a reply or an event, with a timeout.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartNodes, open_member, uid
from tests.support.recording import Member, Msg
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.redis]

# Nodes check the rooms list often here, so a change shows within a fraction of a second.
FAST_ROOMS = {"HUB_ROOMS_INTERVAL": "0.2"}


async def latest_rooms(member: Member, condition: Any, what: str) -> list[Msg]:
    """Wait for a ``rooms`` event of the lobby whose list satisfies ``condition``; its list."""
    found: list[list[Msg]] = []

    def seen() -> bool:
        found.extend(e["rooms"] for e in member.events("rooms", "main") if condition(e["rooms"]))
        return bool(found)

    await member.wait_until(seen, what)
    return found[-1]


def entry(listed: list[Msg], room: str) -> Msg:
    return next(item for item in listed if item["id"] == room)


async def test_the_lobby_sees_rooms_fill_and_stages_change_on_the_other_node(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2, env=FAST_ROOMS)
    watcher = await open_member(stack, a, uid("watcher"))
    joined = await watcher.join("main")
    assert [item["id"] for item in joined["snapshot"]["rooms"]] == ["main"]

    org = await open_member(stack, b, uid("org"), "organizer")
    panel = uid("panel")
    await org.request("room.create", room=panel, kind="panel", title="Keynote")
    listed = await latest_rooms(watcher, lambda rooms: len(rooms) == 2, "the new panel")
    assert entry(listed, panel) == {
        "id": panel,
        "kind": "panel",
        "title": "Keynote",
        "parent": None,
        "members": 0,
        "in_breakouts": 0,
        "stage": [],
    }

    speaker = uid("spk")
    await org.request("role.set", room=panel, user=speaker, role="speaker")
    on_stage = await open_member(stack, b, speaker)
    await on_stage.join(panel)
    listed = await latest_rooms(
        watcher, lambda rooms: entry(rooms, panel)["members"] == 1, "a member in the panel"
    )
    assert entry(listed, panel)["stage"] == [{"user": speaker, "name": speaker}]
    # room.list on either node says the same.
    assert (await org.request("room.list"))["rooms"] == listed
    # A lobby member of the other node starts from the same list.
    late = await open_member(stack, b, uid("late"))
    snapshot_rooms = (await late.join("main"))["snapshot"]["rooms"]
    assert entry(snapshot_rooms, panel) == entry(listed, panel)


async def test_a_late_joiner_reads_the_notices_and_the_closed_election(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    org = await open_member(stack, a, uid("org"), "organizer")
    await org.join("main")
    seqs = [(await org.request("announce", room="main", text=f"n{i}"))["seq"] for i in range(22)]
    award = (
        await org.request(
            "poll.create",
            room="main",
            question="Talk of the year?",
            options=["x", "y"],
            show="closed",
            allow_change=False,
            guests=False,
        )
    )["poll"]
    assert (award["allow_change"], award["guests"]) == (False, False)
    for i, choice in enumerate([1, 1, 0]):
        voter = await open_member(stack, (a, b)[i % 2], uid("voter"))
        await voter.join("main")
        await voter.request("poll.vote", room="main", poll=award["id"], choice=choice)
    closed = (await org.request("poll.close", room="main", poll=award["id"]))["poll"]
    assert (closed["counts"], closed["voters"]) == ([1, 2], 3)

    late = await open_member(stack, b, uid("late"))
    snapshot = (await late.join("main"))["snapshot"]
    assert [notice["seq"] for notice in snapshot["notices"]] == seqs[-20:]
    assert snapshot["notices"][-1] == {
        "ev": "notice",
        "room": "main",
        "seq": seqs[-1],
        "text": "n21",
        "from": org.hello["user"]["id"],
    }
    assert snapshot["closed_polls"] == [closed]
    assert snapshot["polls"] == []


async def test_a_panels_audience_is_told_only_of_the_stage(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    org = await open_member(stack, a, uid("org"), "organizer")
    panel = uid("panel")
    await org.request("room.create", room=panel, kind="panel", title="Panel")
    speaker = uid("spk")
    await org.request("role.set", room=panel, user=speaker, role="speaker")
    on_stage = await open_member(stack, b, speaker)
    await on_stage.join(panel)
    stage_sid = on_stage.hello["sid"]
    audience = [await open_member(stack, (a, b)[i % 2], uid("aud")) for i in range(4)]
    for member in audience:
        peers = (await member.join(panel))["snapshot"]["peers"]
        assert [peer["sid"] for peer in peers] == [stage_sid]
        assert peers[0]["role"] == "speaker"
    # The speaker steps down: the next joiner is told of nobody.
    await on_stage.request("role.set", room=panel, user=speaker, role="attendee")
    await on_stage.wait_until(lambda: bool(on_stage.events("role", panel)), "the role event")
    late = await open_member(stack, a, uid("late"))

    async def no_peers() -> bool:
        return (await late.join(panel))["snapshot"]["peers"] == []

    # The stage index is updated by the speaker's node when the role event reaches it, which
    # nothing tells the joiner about: rejoin until it shows.
    await eventually(no_peers, within=TIMEOUT, what="an empty stage")


async def test_dm_conversations_on_both_nodes(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    ada_id, bob_id, cat_id = uid("ada"), uid("bob"), uid("cat")
    ada = await open_member(stack, a, ada_id)
    bob = await open_member(stack, b, bob_id)
    await open_member(stack, b, cat_id)
    first = await ada.request("dm.send", to=bob_id, text="hi")
    reply = await bob.request("dm.send", to=ada_id, text="hello")
    to_cat = await ada.request("dm.send", to=cat_id, text="hey")
    assert first["n"] == 1 and reply["n"] == 2
    assert (await ada.request("dm.conversations"))["conversations"] == [
        {"with": cat_id, "name": None, "n": 1, "ts": to_cat["ts"]},
        {"with": bob_id, "name": bob_id, "n": 2, "ts": reply["ts"]},
    ]
    assert (await bob.request("dm.conversations"))["conversations"] == [
        {"with": ada_id, "name": ada_id, "n": 2, "ts": reply["ts"]},
    ]
