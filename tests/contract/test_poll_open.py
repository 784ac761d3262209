"""Opening a declared poll happens once (polls.feature, ``poll.open``), on both backends: of two
opens of the same poll at the same moment on two nodes, exactly one succeeds and the other gets
``conflict``, and the room's history holds one ``poll`` event for it; whichever wins, members on
both nodes get that one event (members get each stored event once: the history's one event is
all they can get)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from unit.helpers import Client, config, connect, next_event, running, started

from hub.app import Hub, build_hub
from hub.broker import BrokerSettings
from hub.codec import unpack
from hub.redis import redis_node

BACKENDS = [pytest.param("memory"), pytest.param("redis", marks=pytest.mark.redis)]
LOBBY = "main"
DECLARED = [f"award-{i}" for i in range(8)]


def rooms_file(tmp_path: Path) -> str:
    """A rooms file declaring the lobby polls :data:`DECLARED`."""
    path = tmp_path / "rooms.toml"
    path.write_text(
        "".join(
            f'[[polls]]\nid = "{poll}"\nquestion = "Who?"\n'
            'options = ["Ada", { text = "Zoë", country = "DE" }]\n'
            'show = "closed"\nallow_change = false\n\n'
            for poll in DECLARED
        ),
        encoding="utf-8",
    )
    return str(path)


@contextlib.asynccontextmanager
async def redis_hubs(server: Any, path: str) -> AsyncIterator[list[Hub]]:
    """Two started hubs on the private Redis, under a key prefix of their own."""
    cfg = config(rooms_file=path)
    settings = BrokerSettings(history_size=cfg.history_size, presence_ttl=cfg.presence_ttl)
    prefix = f"open-{uuid.uuid4().hex[:8]}:"
    hubs = [
        build_hub(cfg, redis_node(server.url, node_id, settings, prefix=prefix))
        for node_id in ("n1", "n2")
    ]
    async with started(hubs):
        yield hubs


@pytest.fixture(params=BACKENDS)
async def hubs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Hub]]:
    """Two nodes sharing one backend, with the polls :data:`DECLARED` in the lobby."""
    path = rooms_file(tmp_path)
    if request.param == "memory":
        context = running("n1", "n2", rooms_file=path)
    else:
        context = redis_hubs(request.getfixturevalue("redis_server"), path)
    async with context as nodes:
        yield nodes


async def opened_seqs(hub: Hub, poll: str) -> list[int]:
    """The seqs of the lobby's stored ``poll`` events that open ``poll``, from its history."""
    history = await hub.node.broker.history(LOBBY, 0)
    opened = []
    for event in history.events:
        body = unpack(event.body)
        if body["ev"] == "poll" and body["poll"]["id"] == poll and body["poll"]["state"] == "open":
            opened.append(event.seq)
    return opened


async def lobby_member(hub: Hub, user: str) -> Client:
    client = await connect(hub, user)
    await client.ok("join", room=LOBBY)
    client.collect()
    return client


async def test_of_two_concurrent_opens_on_two_nodes_exactly_one_succeeds(
    hubs: list[Hub],
) -> None:
    a, b = hubs
    org_a, org_b = await connect(a, "org", "organizer"), await connect(b, "kim", "organizer")
    watchers = [await lobby_member(a, "ann"), await lobby_member(b, "bob")]
    for poll in DECLARED:
        replies = await asyncio.gather(
            org_a.call("poll.open", room=LOBBY, poll=poll),
            org_b.call("poll.open", room=LOBBY, poll=poll),
        )
        outcomes = sorted("ok" if "ok" in reply else reply["err"]["code"] for reply in replies)
        assert outcomes == ["conflict", "ok"], (poll, replies)
        [winner] = [reply["ok"] for reply in replies if "ok" in reply]
        assert winner["poll"]["id"] == poll
        assert winner["poll"]["profiles"] == [{}, {"country": "DE"}]
        assert await opened_seqs(a, poll) == [winner["seq"]]
        for watcher in watchers:
            assert await next_event(watcher, "poll") == {"ev": "poll", "room": LOBBY, **winner}
    # Every poll is open now, whichever node asks again.
    for org in (org_a, org_b):
        assert await org.err("poll.open", room=LOBBY, poll=DECLARED[0]) == "conflict"
    snapshot = (await (await connect(b, "late")).ok("join", room=LOBBY))["snapshot"]
    assert [poll["state"] for poll in snapshot["awards"]["polls"]] == ["open"] * len(DECLARED)
