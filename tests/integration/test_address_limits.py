"""Limits per client address: hello attempts, new guests, and the per-user budgets that guests of
one address share, with the address taken from ``X-Forwarded-For`` only where the proxy is
trusted. Loopback clients themselves (load generators, tests) are exempt, so each test speaks
as a proxy on this machine would for a client elsewhere."""

from __future__ import annotations

import asyncio
from typing import Any

from support.hub_process import HubProcess, mint
from support.raw_client import close_code, command, upgraded

from .conftest import StartHub, uid

CLIENT = "203.0.113.7"
NEIGHBOUR = "203.0.113.8"


async def hello(hub: HubProcess, address: str | None, **fields: Any) -> tuple[dict[str, Any], Any]:
    """Say hello on a new raw connection from ``address``: the reply, and the open connection."""
    reader, writer = await upgraded(hub, forwarded_for=address)
    reply = await command(reader, writer, id=1, op="hello", **fields)
    return reply, (reader, writer)


async def refused_and_closed(hub: HubProcess, address: str | None, **fields: Any) -> str:
    """A hello from ``address`` that gets ``rate_limited`` with its ``retry_in`` and then close
    1013 (try again later, which clients take as a reason to reconnect after a pause): the
    error's text."""
    reply, (reader, writer) = await hello(hub, address, **fields)
    try:
        assert reply["err"]["code"] == "rate_limited", reply
        assert reply["err"]["retry_in"] >= 1  # the wait, for clients that say it themselves
        assert await close_code(reader) == 1013
    finally:
        writer.close()
    return str(reply["err"]["msg"])


async def test_new_guests_are_limited_per_address(start_hub: StartHub) -> None:
    hub = start_hub(secret=None, env={"HUB_LIMIT_GUEST_BURST": "3", "HUB_LIMIT_GUEST_RATE": "0.01"})
    opened = []
    try:
        for n in range(3):
            reply, connection = await hello(hub, CLIENT, name=f"Guest {n}")
            assert "ok" in reply, reply
            opened.append(connection)
        assert "new guests" in await refused_and_closed(hub, CLIENT, name="Guest 4")
        # A guest coming back with its token is not new; nor is anyone from elsewhere.
        token = (await command(*opened[0], id=2, op="token.renew"))["ok"]["token"]
        for address, fields in [(CLIENT, {"token": token}), (NEIGHBOUR, {"name": "Other"})]:
            reply, connection = await hello(hub, address, **fields)
            assert "ok" in reply, reply
            opened.append(connection)
    finally:
        for _, writer in opened:
            writer.close()


async def test_hello_attempts_are_limited_per_address(start_hub: StartHub) -> None:
    hub = start_hub(env={"HUB_LIMIT_HELLO_BURST": "4", "HUB_LIMIT_HELLO_RATE": "0.01"})
    for _ in range(4):  # guessing tokens
        reply, (reader, writer) = await hello(hub, CLIENT, token="not-a-token")
        assert reply["err"]["code"] == "unauthorized"
        assert await close_code(reader) == 4001
        writer.close()
    # The fifth attempt from that address is refused before its token is even looked at.
    assert "hellos" in await refused_and_closed(hub, CLIENT, token=mint(uid("ann")))
    reply, (_, writer) = await hello(hub, NEIGHBOUR, token=mint(uid("ann")))
    writer.close()
    assert "ok" in reply


async def chat_until_refused(connection: Any, room: str, first_id: int) -> int:
    """Post until ``rate_limited``: how many were accepted."""
    for n in range(100):
        reply = await command(*connection, id=first_id + n, op="chat.send", room=room, text="hi")
        if "err" in reply:
            assert reply["err"]["code"] == "rate_limited", reply
            return n
    raise AssertionError("never refused")


async def test_guests_of_one_address_share_their_budgets(start_hub: StartHub) -> None:
    hub = start_hub(secret=None)
    opened = []

    async def guest(address: str) -> Any:
        reply, connection = await hello(hub, address, name="Guest")
        assert "ok" in reply, reply
        opened.append(connection)
        assert "ok" in await command(*connection, id=2, op="join", room="main")
        return connection

    try:
        spent = await chat_until_refused(await guest(CLIENT), "main", 10)
        assert spent >= 5
        # Coming back as a new guest buys no new budget; a guest elsewhere has their own.
        assert await chat_until_refused(await guest(CLIENT), "main", 10) == 0
        assert await chat_until_refused(await guest(NEIGHBOUR), "main", 10) >= 5
    finally:
        for _, writer in opened:
            writer.close()


async def test_forwarded_for_is_believed_only_from_trusted_proxies(start_hub: StartHub) -> None:
    # The proxy trusted is elsewhere: this machine's X-Forwarded-For is ignored, and its
    # connections are its own (loopback: exempt), whatever address they claim.
    hub = start_hub(
        secret=None,
        args=["--trusted-proxy", "192.0.2.1"],
        env={"HUB_LIMIT_GUEST_BURST": "1", "HUB_LIMIT_GUEST_RATE": "0.01"},
    )
    replies = await asyncio.gather(*(hello(hub, CLIENT, name=f"G{n}") for n in range(3)))
    for reply, (_, writer) in replies:
        writer.close()
        assert "ok" in reply, reply
