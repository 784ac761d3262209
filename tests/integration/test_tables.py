"""Lounge tables on two real ``hub serve`` nodes sharing one private Redis: people on both nodes
sit at one table at once and exactly its seats are taken; the lobby on one node sees who sits
down on the other; the event's close empties the tables."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from livehub_client import HubClient, HubRequestError
from livehub_client.tables import sit_at
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartNodes, uid
from tests.support.hub_process import mint

pytestmark = [pytest.mark.integration, pytest.mark.redis]

ROOMS_FILE = """
[[tables]]
id = "big"
title = "Big table"
topic = "Anything"
seats = 6

[[tables]]
id = "duo"
title = "Duo"
seats = 2
"""


@pytest.fixture
def node_env(tmp_path: Path) -> Mapping[str, str]:
    """Every node reads the same rooms file; people here sit in bursts."""
    path = tmp_path / "rooms.toml"
    path.write_text(ROOMS_FILE)
    return {
        "HUB_ROOMS": str(path),
        "HUB_LIMIT_CONNECTION_BURST": "100",
        "HUB_LIMIT_USER_BURST": "200",
    }


def client(url: str, user: str, role: str = "attendee") -> HubClient:
    return HubClient(url, token=mint(user, role), reconnect=False, request_timeout=TIMEOUT)


async def sit(person: HubClient, table: str) -> str:
    """``ok`` once seated and in the table's room, else the error code."""
    try:
        await sit_at(person, table)
    except HubRequestError as error:
        return error.code
    return "ok"


def occupants(event: dict[str, Any], table: str) -> set[str]:
    entry = next(entry for entry in event["tables"] if entry["id"] == table)
    return {person["user"] for person in entry["occupants"]}


async def test_sits_on_two_nodes_at_once_take_exactly_the_seats(start_nodes: StartNodes) -> None:
    a, b = await start_nodes(2)
    async with contextlib.AsyncExitStack() as stack:
        people = [
            await stack.enter_async_context(client((a, b)[i % 2].url, uid("p"))) for i in range(24)
        ]
        results = await asyncio.gather(*(sit(person, "big") for person in people))
        assert results.count("ok") == 6
        assert results.count("conflict") == 18
        watcher = await stack.enter_async_context(client(a.url, uid("w")))
        listed = (await watcher.join("main"))["snapshot"]["tables"]
        big = next(entry for entry in listed if entry["id"] == "big")
        seated = {people[i].user["id"] for i, result in enumerate(results) if result == "ok"}  # type: ignore[index]
        assert big["taken"] == 6
        assert {person["user"] for person in big["occupants"]} == seated
        # A seat frees when its holder leaves, whatever node: the next person takes it.
        leaver = next(p for p, r in zip(people, results, strict=True) if r == "ok")
        await leaver.leave("big")
        waiting = [p for p, r in zip(people, results, strict=True) if r == "conflict"]
        again = await asyncio.gather(*(sit(person, "big") for person in waiting[:6]))
        assert again.count("ok") == 1


async def test_the_lobby_sees_sitters_of_the_other_node_and_the_close_ends_the_tables(
    start_nodes: StartNodes,
) -> None:
    a, b = await start_nodes(2)
    async with contextlib.AsyncExitStack() as stack:
        watcher = await stack.enter_async_context(client(a.url, uid("w")))
        await watcher.join("main")
        ada_id = uid("ada")
        ada = await stack.enter_async_context(client(b.url, ada_id))
        assert await sit(ada, "duo") == "ok"
        await watcher.wait_for(
            lambda ev: ev.get("ev") == "tables" and occupants(ev, "duo") == {ada_id}, TIMEOUT
        )
        async with httpx.AsyncClient() as http:
            closed = await http.post(
                f"{a.http}/api/event/close",
                headers={"Authorization": f"Bearer {mint('org', 'organizer')}"},
            )
        assert closed.status_code == 200
        left = await ada.wait_for(lambda ev: ev.get("ev") == "table.left", TIMEOUT)
        assert left == {**left, "room": "duo", "reason": "closed"}
        await watcher.wait_for(
            lambda ev: ev.get("ev") == "tables" and occupants(ev, "duo") == set(), TIMEOUT
        )
        with pytest.raises(HubRequestError) as refused:
            await ada.request("table.sit", table="duo")
        assert refused.value.code == "closed"
