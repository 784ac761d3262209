"""What a hostile or broken client still gets from a real ``hub serve``: raw sockets that break
the rules the hub must hold against."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable

import httpx
import pytest
from support.hub_process import HubProcess, mint
from support.raw_client import client_frame, close_code, command, handshake, upgraded
from support.redis_server import RedisServer
from support.waiting import eventually

from livehub_client import HubClient, HubRequestError

from .conftest import StartHub, StartNodes, open_member, uid

TIMEOUT = 10.0


async def test_an_invalid_utf8_text_frame_closes_with_1007_and_logs_one_line(
    start_hub: StartHub,
) -> None:
    hub = start_hub()
    reader, writer = await upgraded(hub)
    try:
        writer.write(client_frame(0x1, b"\xff\xfe\xfd"))
        assert await close_code(reader) == 1007
    finally:
        writer.close()
    await eventually(lambda: "Invalid UTF-8" in hub.stderr(), what="the log line")
    assert "Traceback" not in hub.stderr()


async def test_a_member_that_stops_reading_is_aborted_and_released(start_hub: StartHub) -> None:
    hub = start_hub(env={"HUB_LIMIT_WRITE_TIMEOUT": "2"})
    reader, writer = await upgraded(hub, receive_buffer=4096)
    try:
        await stop_reading_and_get_dropped(hub, reader, writer)
    finally:
        writer.close()
    assert "hub_connection_aborts_total 1.0" in await metrics_text(hub)


async def stop_reading_and_get_dropped(
    hub: HubProcess, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    hello = await command(reader, writer, id=1, op="hello", token=mint(uid("stuck")))
    stuck = hello["ok"]["sid"]
    assert "ok" in await command(reader, writer, id=2, op="join", room="main")
    # From here on the member reads nothing: a few MB of notices pile up towards it.
    async with HubClient(hub.url, token=mint(uid("org"), "organizer")) as org:
        await org.request("join", room="main")
        text = "\U0001f600" * 2000  # 8 KB a notice in UTF-8
        for _ in range(800):
            await org.request("announce", room="main", text=text)

        async def released() -> bool:
            page = await org.request("presence", room="main")
            return stuck not in [member["sid"] for member in page["members"]]

        await eventually(released, within=20.0, what="the stalled member leaving presence")
    # Aborted, not closed politely: the socket ends (reset, or EOF once its backlog is read).
    with contextlib.suppress(ConnectionResetError):
        while await asyncio.wait_for(reader.read(2**20), TIMEOUT):
            pass


async def test_a_member_that_stops_answering_pings_is_released(start_hub: StartHub) -> None:
    hub = start_hub(env={"HUB_PING_INTERVAL": "1", "HUB_PING_TIMEOUT": "1"})
    reader, writer = await upgraded(hub)
    try:
        hello = await command(reader, writer, id=1, op="hello", token=mint(uid("mute")))
        mute = hello["ok"]["sid"]
        assert "ok" in await command(reader, writer, id=2, op="join", room="main")
        # A raw socket never answers pings: nothing is queued for it, and it stays silent.
        async with HubClient(hub.url, token=mint(uid("org"), "organizer")) as org:

            async def released() -> bool:
                page = await org.request("presence", room="main")
                return mute not in [member["sid"] for member in page["members"]]

            await eventually(released, within=15.0, what="the silent member leaving presence")
    finally:
        writer.close()


async def metrics_text(hub: HubProcess) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{hub.http}/metrics")).text


async def test_without_origins_only_loopback_pages_may_connect(start_hub: StartHub) -> None:
    hub = start_hub()
    # A DNS-rebinding page: its own name resolves to this machine, so Host and Origin agree.
    rebound = f"rebind.example:{hub.port}"
    for host, origin, status in [
        (rebound, f"http://{rebound}", b"403"),
        (None, f"http://localhost:{hub.port}", b"101"),
        (None, f"http://127.0.0.1:{hub.port}", b"101"),
        (None, f"http://[::1]:{hub.port}", b"101"),
        (None, "null", b"403"),
    ]:
        _, writer, head = await handshake(hub, host=host, origin=origin)
        writer.close()
        assert head.startswith(b"HTTP/1.1 " + status), (origin, head)
    assert "warning: no --origin given" in hub.stderr()


async def test_a_redis_stall_shows_on_readyz_within_two_seconds(
    start_nodes: StartNodes, redis: RedisServer
) -> None:
    [node] = await start_nodes(1)
    async with httpx.AsyncClient(timeout=1.0) as http:

        async def ready() -> bool:
            return (await http.get(f"{node.http}/readyz")).status_code == 200

        await eventually(ready, what="the node ready")
        with redis.paused():
            stalled = time.monotonic()
            await eventually(lambda: _not(ready()), within=5.0, what="/readyz saying not ready")
            noticed = time.monotonic() - stalled
            assert noticed <= 2.0, f"a 5 s stall took {noticed:.2f} s to show"
            await asyncio.sleep(5.0 - noticed)  # the rest of the stall (not synchronisation)
        await eventually(ready, within=15.0, what="the node ready again")


async def _not(result: Awaitable[bool]) -> bool:
    return not await result


async def test_a_room_is_read_from_outside_only_by_who_may_join_it(start_hub: StartHub) -> None:
    hub = start_hub()
    room = uid("panel")
    async with (
        HubClient(hub.url, token=mint(uid("org"), "organizer")) as org,
        HubClient(hub.url, token=mint(uid("ann"))) as ann,
        HubClient(hub.url, token=mint(banned := uid("mal"))) as mal,
        HubClient(hub.url, token=mint(uid("eve"))) as eve,
    ):
        await org.request("room.create", room=room, kind="panel", title="Panel")
        await ann.request("join", room=room)
        await ann.request("chat.send", room=room, text="members only, once banned")
        await mal.request("join", room=room)
        await org.request("kick", room=room, user=banned, ban=True)
        for op in ("chat.history", "presence"):
            with pytest.raises(HubRequestError) as refused:
                await mal.request(op, room=room)
            assert refused.value.code == "forbidden"
            assert await eve.request(op, room=room)  # not in it, but free to join


async def test_sockets_that_never_send_a_whole_request_are_closed(start_hub: StartHub) -> None:
    hub = start_hub(env={"HUB_LIMIT_FIRST_REQUEST_TIMEOUT": "1"})
    silent = [await asyncio.open_connection("127.0.0.1", hub.port) for _ in range(10)]
    halves = [await asyncio.open_connection("127.0.0.1", hub.port) for _ in range(10)]
    for _, writer in halves:
        writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")  # and never the rest
    try:
        for reader, _ in silent + halves:
            # The hub ends each one (EOF, or a reset: it aborts); before, none ever ended.
            with contextlib.suppress(ConnectionResetError):
                await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        for _, writer in silent + halves:
            writer.close()
    # A whole request in time is served as before.
    _, writer, head = await handshake(hub)
    writer.close()
    assert head.startswith(b"HTTP/1.1 101")


async def test_connections_not_past_hello_are_capped_per_address(start_hub: StartHub) -> None:
    hub = start_hub(env={"HUB_LIMIT_PENDING_PER_ADDRESS": "3"})
    client = "203.0.113.7"  # behind the proxy; loopback clients themselves are not capped
    waiting = [await upgraded(hub, forwarded_for=client) for _ in range(3)]
    try:
        # A fourth that has not said hello yet: refused; from another address, or loopback: not.
        _, writer, head = await handshake(hub, forwarded_for=client)
        writer.close()
        assert head.startswith(b"HTTP/1.1 403"), head
        for other in (await upgraded(hub, forwarded_for="203.0.113.8"), await upgraded(hub)):
            other[1].close()
        reader, first = waiting[0]
        await command(reader, first, id=1, op="hello", token=mint(uid("ann")))
        # One said hello: its place is free again.
        reader, writer = await upgraded(hub, forwarded_for=client)
        writer.close()
    finally:
        for _, writer in waiting:
            writer.close()


def worker_pids(supervisor: HubProcess) -> set[int]:
    """The pids of a supervisor's worker processes."""
    assert supervisor.process is not None
    pid = supervisor.process.pid
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return {int(child) for child in children.read().split()}


async def test_a_worker_that_dies_is_started_again_and_counted(start_nodes: StartNodes) -> None:
    [supervisor] = await start_nodes(1, workers=2)
    await eventually(lambda: len(worker_pids(supervisor)) == 2, what="two workers")
    victim = min(worker_pids(supervisor))
    os.kill(victim, signal.SIGKILL)
    await eventually(
        lambda: len(worker_pids(supervisor)) == 2 and victim not in worker_pids(supervisor),
        within=15.0,
        what="the worker started again",
    )
    assert "died (killed by SIGKILL); starting it again" in supervisor.stderr()

    async def counted() -> bool:
        return "hub_worker_restarts_total 1.0" in await metrics_text(supervisor)

    await eventually(counted, within=15.0, what="the restart on /metrics")


async def test_a_killed_nodes_members_leave_the_survivors_lists_within_ten_seconds(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    room = uid("panel")
    org = await open_member(stack, a, uid("org"), "organizer")
    await org.request("room.create", room=room, kind="panel", title="Panel")
    ann = await open_member(stack, a, uid("ann"))
    await ann.join(room)
    doomed = [await open_member(stack, b, uid("bob")) for _ in range(3)]
    for member in doomed:
        await member.join(room)
    sids = {member.hello["sid"] for member in doomed}
    await ann.wait_until(
        lambda: any(e.get("count") == 4 for e in ann.events("presence", room)), "all four in"
    )
    assert b.process is not None
    b.process.kill()  # kill -9: no leave ever runs on b
    killed = time.monotonic()
    await ann.wait_until(
        lambda: (
            sids
            <= {entry["sid"] for e in ann.events("presence", room) for entry in e.get("left", [])}
        ),
        "the dead node's members left",
    )
    assert time.monotonic() - killed <= 10.0
    assert ann.events("presence", room)[-1]["count"] == 1
    page = await ann.request("presence", room=room)
    assert [member["sid"] for member in page["members"]] == [ann.hello["sid"]]


async def test_a_node_warns_at_start_when_redis_keeps_nothing_on_disk(
    start_nodes: StartNodes, redis: RedisServer
) -> None:
    [careless] = await start_nodes(1)
    await eventually(lambda: "Redis keeps nothing on disk" in careless.stderr(), what="a warning")
    client = redis.client()
    client.config_set("appendonly", "yes")
    try:
        [careful] = await start_nodes(1)  # ready: its start (and any warning) is behind it
        assert "Redis keeps nothing on disk" not in careful.stderr()
    finally:
        client.config_set("appendonly", "no")
        client.close()
