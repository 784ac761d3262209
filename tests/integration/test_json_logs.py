"""``hub serve --log-format json`` as a real process: every line it writes on stderr is one JSON
object, with the events of its connections and refused commands, and nothing a client wrote
(a token, a chat message) but user ids."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from livehub_client import HubRequestError
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartHub, uid
from tests.support.hub_process import mint
from tests.support.recording import Member
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SITE = "https://event.example"
COMMON = ["ts", "level", "logger", "event", "node", "sid", "user"]


async def connections(client: httpx.AsyncClient, url: str) -> float:
    """The node's ``hub_connections``."""
    text = (await client.get(url + "/metrics")).text
    [line] = [line for line in text.splitlines() if line.startswith("hub_connections ")]
    return float(line.split(" ")[1])


def by_event(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == name]


async def test_json_log_lines_of_a_connection_and_its_refused_commands(
    start_hub: StartHub, http: httpx.AsyncClient
) -> None:
    hub = start_hub(args=["--log-format", "json", "--origin", SITE])
    words = f"words-{uid('chat')}"
    ann, org = uid("ann"), uid("org")
    secret = mint(ann)
    organizer = await Member.open(hub.url, mint(org, "organizer"), within=TIMEOUT)
    member = await Member.open(hub.url, secret, within=TIMEOUT)
    try:
        room = uid("room")
        await organizer.request("room.create", room=room, kind="workshop", title=room)
        await member.join(room)
        await member.request("chat.send", room=room, text=words)
        code, _ = await member.error("chat.send", room=uid("elsewhere"), text=words)
        assert code == "forbidden"
        with pytest.raises(HubRequestError):
            await member.request(words, text=words)  # an op this hub does not know
    finally:
        await member.close()
        await organizer.close()
    with pytest.raises(InvalidStatus):  # a page from another site: refused before accept
        async with connect(hub.url, origin="https://elsewhere.example", open_timeout=TIMEOUT):
            pass
    node = member.node

    async def closed() -> bool:
        return await connections(http, hub.http) == 0

    await eventually(closed, within=TIMEOUT, what="both connections closed")
    assert hub.terminate() == 0
    text = hub.stderr_text()

    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert lines and all(list(line)[: len(COMMON)] == COMMON for line in lines)
    assert {line["node"] for line in lines} == {node}
    assert all(line["ts"].endswith("Z") for line in lines)
    [opened] = [line for line in by_event(lines, "connection.auth") if line["user"] == ann]
    sid = opened["sid"]
    assert opened["role"] == "attendee"
    [connected] = [line for line in by_event(lines, "connection.open") if line["sid"] == sid]
    assert (connected["client"], connected["format"]) == ("127.0.0.1", "msgpack")
    refused = [line for line in by_event(lines, "command.refused") if line["sid"] == sid]
    assert [(line["user"], line["code"], line["op"]) for line in refused] == [
        (ann, "forbidden", "chat.send"),
        (ann, "bad_request", "unknown"),
    ]
    [close] = [line for line in by_event(lines, "connection.close") if line["sid"] == sid]
    assert (close["user"], close["code"], close["reason"], close["by"]) == (
        ann,
        1000,
        "client_closed",
        "client",
    )
    assert close["duration_s"] > 0
    [refusal] = by_event(lines, "connection.refused")
    assert (refusal["client"], refusal["why"]) == ("127.0.0.1", "origin")
    # A client's words never reach the log: neither its token nor its messages.
    assert secret not in text and secret.split(".")[2] not in text
    assert words not in text
