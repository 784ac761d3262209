"""Profiles and the people directory on two ``hub serve`` nodes sharing a real Redis: what one
node publishes the other finds, and what is not listed or is hidden no node shows."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from livehub_client import HubClient, HubRequestError
from livehub_client.people import search_directory
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartNodes, uid
from tests.support.hub_process import HubProcess, mint

pytestmark = [pytest.mark.integration, pytest.mark.redis]

ROOMS = 'interests = ["AI", "Energy", "Climate"]\n'


async def person(
    stack: contextlib.AsyncExitStack, node: HubProcess, user: str, role: str = "attendee"
) -> HubClient:
    client = HubClient(node.url, token=mint(user, role), reconnect=False, request_timeout=TIMEOUT)
    await stack.enter_async_context(client)
    return client


async def test_a_profile_set_on_one_node_is_found_from_the_other(
    start_nodes: StartNodes, tmp_path: Path
) -> None:
    rooms = tmp_path / "rooms.toml"
    rooms.write_text(ROOMS, encoding="utf-8")
    a, b = await start_nodes(2, env={"HUB_ROOMS": str(rooms)})
    ada, quiet, reader = uid("ada"), uid("quiet"), uid("reader")
    async with contextlib.AsyncExitStack() as stack:
        on_a = await person(stack, a, ada)
        quiet_on_a = await person(stack, a, quiet)
        on_b = await person(stack, b, reader)
        mod_b = await person(stack, b, uid("mod"), "moderator")
        assert on_a.node != on_b.node
        assert (await on_b.request("profile.get"))["interests"] == ["AI", "Energy", "Climate"]

        await on_a.request(
            "profile.set", name="Ada", country="GB", interests=["Energy"], listed=True
        )
        await quiet_on_a.request("profile.set", name="Quiet", interests=["Energy"])
        found = [p async for p in search_directory(on_b, interest="Energy")]
        assert [(p["user"], p["name"], p["country"]) for p in found] == [(ada, "Ada", "GB")]
        assert (await on_b.request("profile.get", user=ada))["profile"]["interests"] == ["Energy"]
        with pytest.raises(HubRequestError) as refused:
            await on_b.request("profile.get", user=quiet)
        assert refused.value.code == "not_found"

        # Hidden on node B: node A (which has read no directory yet) shows it to nobody else.
        await mod_b.request("profile.hide", user=ada, hidden=True)
        other_on_a = await person(stack, a, uid("other"))
        assert [p async for p in search_directory(other_on_a)] == []
        assert (await on_a.request("profile.get"))["profile"]["hidden"] is True
