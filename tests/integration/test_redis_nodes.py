"""Several real ``hub serve`` processes sharing one private Redis, driven over the wire.

Each test starts its own nodes (``HubProcess(redis_url=...)``) on the module's Redis server,
flushed before every test: fan-out across nodes in one order, recovery with ``join {since}`` on
another node, a killed pub/sub connection mid-burst, a Redis restart (empty), a slow consumer,
SIGTERM draining behind a load balancer, and ``hub serve --workers 2``.

Room members are :class:`Member` sockets that record every message exactly as the hub sent it:
:class:`~livehub_client.HubClient` drops duplicates by seq, which would hide a doubled delivery.
No test sleeps to synchronise: each waits for a reply, an event or a close with a timeout, and
polls HTTP (``/readyz``, ``/metrics``) with a deadline only where no event exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from hub.codec import decode_frame, encode_message
from livehub_client import HubClient, HubRequestError
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartNodes, uid
from tests.support import recording
from tests.support.hub_process import HubProcess, mint
from tests.support.recording import MSGPACK, SERVER_FRAMES, Msg
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.redis]

# The moderators here announce hundreds of notices in a burst: far above a person's limits.
NODE_ENV = {
    "HUB_LIMIT_CONNECTION_RATE": "1000",
    "HUB_LIMIT_CONNECTION_BURST": "1000",
    "HUB_LIMIT_USER_RATE": "2000",
    "HUB_LIMIT_USER_BURST": "2000",
}


def is_notice(room: str) -> Callable[[Msg], bool]:
    return lambda ev: ev.get("ev") == "notice" and ev.get("room") == room


def hub_client(node: HubProcess | str, user: str, role: str = "attendee", **kw: Any) -> HubClient:
    """A HubClient for ``user`` on a node (or any ws URL); no reconnect unless told to."""
    url = node if isinstance(node, str) else node.url
    kw.setdefault("reconnect", False)
    kw.setdefault("request_timeout", TIMEOUT)
    return HubClient(url, token=mint(user, role), **kw)


async def create_room(org: HubClient, kind: str = "workshop") -> str:
    room = uid(kind)
    await org.request("room.create", room=room, kind=kind, title=f"Room {room}")
    return room


async def announce_many(mod: HubClient, room: str, texts: list[str]) -> list[int]:
    """Announce ``texts`` in one burst (all sent at once; the hub handles a connection's commands
    in order); returns the acknowledged seqs in the order of ``texts``."""
    acks = await asyncio.gather(*(mod.request("announce", room=room, text=t) for t in texts))
    return [ack["seq"] for ack in acks]


async def readyz(http: httpx.AsyncClient, node: HubProcess) -> tuple[int | None, str | None]:
    """``GET /readyz`` of ``node``: (status, node id), (None, None) when nothing answers. A new
    connection each time, so that the kernel may hand it to any worker of the port."""
    try:
        response = await http.get(f"{node.http}/readyz", headers={"Connection": "close"})
    except httpx.TransportError:
        return None, None
    return response.status_code, response.json().get("node")


async def wait_ready_status(http: httpx.AsyncClient, node: HubProcess, status: int) -> None:
    async def reached() -> bool:
        return (await readyz(http, node))[0] == status

    await eventually(reached, TIMEOUT, f"/readyz {status} on port {node.port}", interval=0.05)


async def metric(http: httpx.AsyncClient, node: HubProcess, name: str, labels: str = "") -> float:
    """The value of one sample of ``node``'s ``/metrics`` (0 when absent)."""
    response = await http.get(f"{node.http}/metrics")
    assert response.status_code == 200
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", response.text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


class Member(recording.Member):
    """A :class:`~tests.support.recording.Member` that reads the room's notices."""

    def notices(self, room: str) -> list[Msg]:
        return self.events("notice", room)

    async def wait_notices(self, room: str, count: int) -> list[Msg]:
        """Wait until at least ``count`` notices of ``room`` arrived; return all of them."""
        return await self.wait_events("notice", room, count)


def seq_text(notices: list[Msg]) -> list[tuple[int, str]]:
    return [(n["seq"], n["text"]) for n in notices]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def node_env() -> Mapping[str, str]:
    """Every node of this module gets :data:`NODE_ENV`."""
    return NODE_ENV


async def open_client(stack: contextlib.AsyncExitStack, client: HubClient) -> HubClient:
    return await stack.enter_async_context(client)


async def open_members(
    stack: contextlib.AsyncExitStack, url: str, count: int, room: str | None = None
) -> list[Member]:
    members = await asyncio.gather(
        *(Member.open(url, mint(uid("m")), within=TIMEOUT) for _ in range(count))
    )
    for member in members:
        stack.push_async_callback(member.close)
    if room is not None:
        await asyncio.gather(*(m.join(room) for m in members))
    return list(members)


# --- fan-out across nodes ------------------------------------------------------------------------


async def test_two_nodes_deliver_every_event_once_in_one_order(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    org = await open_client(stack, hub_client(a, uid("org"), "organizer"))
    room = await create_room(org)
    members = await open_members(stack, a.url, 10) + await open_members(stack, b.url, 10)
    joins = await asyncio.gather(*(m.join(room) for m in members))
    assert {j["seq"] for j in joins} == {0}
    assert len({j["epoch"] for j in joins}) == 1  # one room, one epoch, whichever node
    assert len({m.node for m in members}) == 2
    mod_a = await open_client(stack, hub_client(a, uid("mod-a"), "moderator"))
    mod_b = await open_client(stack, hub_client(b, uid("mod-b"), "moderator"))
    assert mod_a.node != mod_b.node

    texts_a = [f"a{i}" for i in range(100)]
    texts_b = [f"b{i}" for i in range(100)]
    seqs_a, seqs_b = await asyncio.gather(
        announce_many(mod_a, room, texts_a), announce_many(mod_b, room, texts_b)
    )
    assert sorted(seqs_a + seqs_b) == list(range(1, 201))
    expected = sorted([*zip(seqs_a, texts_a, strict=True), *zip(seqs_b, texts_b, strict=True)])

    received = await asyncio.gather(*(m.wait_notices(room, 200) for m in members))
    for member, notices in zip(members, received, strict=True):
        assert seq_text(notices) == expected, member.node
        senders = {n["from"] for n in notices}
        assert senders == {mod_a.user["id"], mod_b.user["id"]}  # type: ignore[index]
    # Exactly once: the next notice each member gets is the next one announced, nothing between.
    last = await mod_b.request("announce", room=room, text="last")
    assert last["seq"] == 201
    for member in members:
        notices = await member.wait_notices(room, 201)
        assert seq_text(notices) == [*expected, (201, "last")]


# --- recovery with since, across nodes -----------------------------------------------------------


async def test_join_since_on_another_node_recovers_what_was_missed(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes(2)
    org = await open_client(stack, hub_client(a, uid("org"), "organizer"))
    mod_b = await open_client(stack, hub_client(b, uid("mod"), "moderator"))
    room = await create_room(org)
    user = uid("roamer")

    async with hub_client(a, user) as on_a:
        joined = await on_a.join(room)
        assert joined["seq"] == 0
        await announce_many(mod_b, room, ["one", "two", "three"])
        seen = [await on_a.wait_for(is_notice(room), TIMEOUT) for _ in range(3)]
        assert [e["seq"] for e in seen] == [1, 2, 3]
        assert await on_a.leave(room) == {}
        position = (3, joined["epoch"])
    # Gone from node A; five notices go by on node B.
    missed_texts = [f"missed {i}" for i in range(5)]
    assert await announce_many(mod_b, room, missed_texts) == [4, 5, 6, 7, 8]

    async with hub_client(b, user) as on_b:
        assert on_b.node == mod_b.node != org.node
        since, epoch = position
        rejoined = await on_b.join(room, since=since, epoch=epoch)
        assert rejoined["recovered"] is True
        assert rejoined["epoch"] == epoch
        assert rejoined["seq"] == 8
        missed = rejoined["missed"]
        assert [(e["ev"], e["room"], e["seq"], e["text"]) for e in missed] == [
            ("notice", room, 4 + i, text) for i, text in enumerate(missed_texts)
        ]
        assert {e["from"] for e in missed} == {mod_b.user["id"]}  # type: ignore[index]
        # The missed events come first, then live ones from either node without a gap.
        live = await org.request("announce", room=room, text="live from a")
        assert live["seq"] == 9
        seen = [await on_b.wait_for(is_notice(room), TIMEOUT) for _ in range(6)]
        assert [e["seq"] for e in seen] == [4, 5, 6, 7, 8, 9]
        assert on_b.rooms[room].seq == 9

    # A position of another epoch (or from the future) is not recovered: reload from the snapshot.
    async with hub_client(a, user) as stale:
        wrong = await stale.join(room, since=3, epoch="not-the-epoch")
        assert (wrong["recovered"], wrong["epoch"], wrong["seq"]) == (False, epoch, 9)


# --- a killed pub/sub connection ------------------------------------------------------------------


async def test_killed_pubsub_connections_lose_and_double_nothing(
    start_nodes: StartNodes,
    redis: RedisServer,
    stack: contextlib.AsyncExitStack,
    http: httpx.AsyncClient,
) -> None:
    a, b = await start_nodes(2)
    org = await open_client(stack, hub_client(a, uid("org"), "organizer"))
    room = await create_room(org)
    members = await open_members(stack, a.url, 5) + await open_members(stack, b.url, 5)
    await asyncio.gather(*(m.join(room) for m in members))
    mod_a = await open_client(stack, hub_client(a, uid("mod-a"), "moderator"))
    mod_b = await open_client(stack, hub_client(b, uid("mod-b"), "moderator"))
    killed: list[int] = []

    async def burst(mod: HubClient, tag: str, kill_after: int | None) -> list[tuple[int, str]]:
        """250 notices in batches of 25, killing every pub/sub connection after batch
        ``kill_after`` while the other moderator goes on."""
        out: list[tuple[int, str]] = []
        for batch in range(10):
            texts = [f"{tag}{batch * 25 + i}" for i in range(25)]
            out += zip(await announce_many(mod, room, texts), texts, strict=True)
            if batch == kill_after:
                killed.append(await asyncio.to_thread(redis.kill_pubsub_clients))
        return out

    sent_a, sent_b = await asyncio.gather(burst(mod_a, "a", 3), burst(mod_b, "b", None))
    assert killed and killed[0] >= 2, "both nodes' subscriber connections were killed"
    expected = sorted(sent_a + sent_b)
    assert [seq for seq, _ in expected] == list(range(1, 501))

    received = await asyncio.gather(*(m.wait_notices(room, 500) for m in members))
    for member, notices in zip(members, received, strict=True):
        assert seq_text(notices) == expected, member.node
    last = await mod_b.request("announce", room=room, text="last")
    assert last["seq"] == 501
    for member in members:
        assert seq_text(await member.wait_notices(room, 501)) == [*expected, (501, "last")]
    # Both subscribers are back (ready again) after the kill, and /metrics counts it.
    for node in (a, b):
        await wait_ready_status(http, node, 200)
        assert await metric(http, node, "hub_broker_reconnects_total") >= 1


# --- Redis restarted empty ------------------------------------------------------------------------


async def test_a_redis_restart_resets_rooms_and_delivery_resumes(
    start_nodes: StartNodes,
    redis: RedisServer,
    stack: contextlib.AsyncExitStack,
    http: httpx.AsyncClient,
) -> None:
    a, b = await start_nodes(2)
    org = await open_client(stack, hub_client(a, uid("org"), "organizer"))
    room = await create_room(org)
    other_room = await create_room(org)  # known to node A (it created it)
    mod_a = await open_client(stack, hub_client(a, uid("mod-a"), "moderator"))
    mod_b = await open_client(stack, hub_client(b, uid("mod-b"), "moderator"))
    # Rooms live in Redis: the room is looked up (and cached) on both nodes before the restart.
    members = await open_members(stack, a.url, 2) + await open_members(stack, b.url, 2)
    joins = await asyncio.gather(*(m.join(room) for m in members))
    old_epoch = joins[0]["epoch"]
    steady = await open_client(stack, hub_client(b, uid("steady")))  # stays connected
    await steady.join(room)
    # Joins B's room only after the restart (connected now: a hello needs Redis too).
    late = (await open_members(stack, b.url, 1))[0]
    user = uid("away")
    async with hub_client(b, user) as away:
        await away.join(room)
        assert await announce_many(mod_a, room, ["x1", "x2", "x3"]) == [1, 2, 3]
        seen = [(await away.wait_for(is_notice(room), TIMEOUT))["seq"] for _ in range(3)]
        assert seen == [1, 2, 3]
        position = away.rooms[room]
        assert position == (3, old_epoch)
    for member in members:
        await member.wait_notices(room, 3)

    await asyncio.to_thread(redis.stop)
    for node in (a, b):
        await wait_ready_status(http, node, 503)
    # Commands that need Redis answer `unavailable`; the nodes keep serving everything else.
    for mod in (mod_a, mod_b):
        with pytest.raises(HubRequestError) as refused:
            await mod.request("announce", room=room, text="lost")
        assert refused.value.code == "unavailable"
        assert await mod.request("ping") == {}
    with pytest.raises(HubRequestError) as refused:
        await org.request("room.list")
    assert refused.value.code == "unavailable"
    with pytest.raises(HubRequestError) as refused:
        await members[2].request("presence", room=room)
    assert refused.value.code == "unavailable"
    # A join needs a subscription: refused once it is not confirmed in time (3 s). Meanwhile the
    # nodes' subscribers keep retrying with a growing back-off.
    with pytest.raises(HubRequestError) as refused:
        await members[0].join(other_room)
    assert refused.value.code == "unavailable"
    assert await members[0].request("ping") == {}
    headers = {"Authorization": f"Bearer {mint(uid('org'), 'organizer')}"}
    response = await http.post(
        f"{b.http}/api/rooms/{room}/announce", json={"text": "lost"}, headers=headers
    )
    assert response.status_code == 503
    assert response.json()["err"]["code"] == "unavailable"
    for node in (a, b):
        assert node.process is not None and node.process.poll() is None, node.stderr()
        assert (await http.get(f"{node.http}/healthz")).status_code == 200

    await asyncio.to_thread(redis.start)  # the same port, empty
    # At once, most likely before the nodes' subscribers are back (they reconnect with back-off):
    # two notices of the new epoch, then a join on B that reads the room at seq 2 of it. Whenever
    # B's subscriber catches up, that member must get neither a reset nor seqs 1 and 2.
    assert await announce_many(mod_a, room, ["y1", "y2"]) == [1, 2]
    late_join = await late.join(room)
    new_epoch = late_join["epoch"]
    assert isinstance(new_epoch, str) and new_epoch != old_epoch
    assert late_join["seq"] == 2
    for node in (a, b):
        await wait_ready_status(http, node, 200)
    # Members still connected are told: reset {room, epoch}, the same new epoch on both nodes.
    for member in members:
        await member.wait_until(lambda m=member: bool(m.events("reset", room)), "reset")  # type: ignore[misc]
        assert [r["epoch"] for r in member.events("reset", room)] == [new_epoch]
    reset = await steady.wait_for(lambda ev: ev["ev"] == "reset", TIMEOUT)
    assert reset == {"ev": "reset", "room": room, "epoch": new_epoch}

    # A client that was away comes back: not recovered, the new epoch, seq from scratch.
    back = await open_client(stack, hub_client(a, user))
    rejoined = await back.join(room, since=position.seq, epoch=position.epoch)
    assert rejoined["recovered"] is False
    assert rejoined["epoch"] == new_epoch
    assert rejoined["seq"] == 2
    assert rejoined["missed"] == []

    # New events go on from there and reach everyone exactly once.
    assert await announce_many(mod_b, room, ["z1", "z2"]) == [3, 4]
    after = [(1, "y1"), (2, "y2"), (3, "z1"), (4, "z2")]
    for member in members:
        await member.wait_notices(room, 7)
        assert seq_text(member.notices(room)) == [(1, "x1"), (2, "x2"), (3, "x3"), *after]
        # The reset came between the old epoch's events and the new one's.
        order = [m["ev"] for m in member.messages if m.get("ev") in ("notice", "reset")]
        assert order == ["notice"] * 3 + ["reset"] + ["notice"] * 4
    assert seq_text(await late.wait_notices(room, 2)) == after[2:]
    assert late.events("reset", room) == []
    steady_seen = [await steady.wait_for(is_notice(room), TIMEOUT) for _ in range(4)]
    assert seq_text(steady_seen) == after
    back_seen = [await back.wait_for(is_notice(room), TIMEOUT) for _ in range(2)]
    assert seq_text(back_seen) == after[2:]
    # Exactly once: the next notice each gets is the next one announced.
    assert (await mod_a.request("announce", room=room, text="last"))["seq"] == 5
    for member in members:
        assert [n["seq"] for n in await member.wait_notices(room, 8)] == [1, 2, 3, 1, 2, 3, 4, 5]
    assert [n["seq"] for n in await late.wait_notices(room, 3)] == [3, 4, 5]
    for client in (steady, back):
        assert (await client.wait_for(is_notice(room), TIMEOUT))["seq"] == 5


# --- slow consumer --------------------------------------------------------------------------------


async def test_a_slow_consumer_is_closed_with_4008_and_both_nodes_keep_up(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack, http: httpx.AsyncClient
) -> None:
    # Node A has small outbound queues (its fast member still has slack for ~100 notices); B has
    # the defaults.
    small = {"HUB_LIMIT_QUEUE_MESSAGES": "100", "HUB_LIMIT_QUEUE_BYTES": str(1024 * 1024)}
    a, b = await start_nodes(2, envs=[small, {}])
    org = await open_client(stack, hub_client(b, uid("org"), "organizer"))
    mod = await open_client(stack, hub_client(b, uid("mod"), "moderator"))
    room = await create_room(org)
    fast = await open_members(stack, a.url, 2) + await open_members(stack, b.url, 2)
    await asyncio.gather(*(m.join(room) for m in fast))
    # The most an announce may carry: 2000 characters of 4 bytes in UTF-8 (~8 KB a notice), so the
    # kernel's socket buffers fill after a few hundred notices.
    text = "\N{GRINNING FACE}" * 2000

    # The slow member, on A: a small receive buffer, and websockets stops reading the socket once
    # one frame waits unread, so the hub's writes really block (TCP backpressure).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", a.port))
    slow = await connect(
        a.url,
        sock=sock,
        subprotocols=[Subprotocol(MSGPACK.value)],
        compression=None,
        max_queue=1,
        ping_interval=None,
        open_timeout=TIMEOUT,
        max_size=None,
    )
    stack.push_async_callback(slow.close)
    slow_seen: list[Msg] = []

    async def slow_reply(n: int) -> Msg:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for message in decode_frame(MSGPACK, await slow.recv(), SERVER_FRAMES):
                    slow_seen.append(message)
                    if message.get("re") == n:
                        return message

    await slow.send(encode_message(MSGPACK, {"id": 1, "op": "hello", "token": mint(uid("slow"))}))
    assert "ok" in await slow_reply(1)
    await slow.send(encode_message(MSGPACK, {"id": 2, "op": "join", "room": room}))
    assert "ok" in await slow_reply(2)
    # From now on nobody reads the slow socket.
    sent = 0
    while await metric(http, a, "hub_queue_overflows_total") == 0:
        assert sent < 5_000, "node A never overflowed the slow consumer's queue"
        await announce_many(mod, room, [text] * 10)
        sent += 10
    await announce_many(mod, room, [text] * 10)  # the room goes on after the overflow
    sent += 10

    # Every fast member, on either node, got every event once, in order, and is still connected.
    for member in fast:
        notices = await member.wait_notices(room, sent)
        assert [n["seq"] for n in notices] == list(range(1, sent + 1))
        assert await member.request("ping") == {}
    # The slow one reads again: a prefix of the stream, then the close.
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                slow_seen.extend(decode_frame(MSGPACK, await slow.recv(), SERVER_FRAMES))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == 4008, exc
    got = [m["seq"] for m in slow_seen if m.get("ev") == "notice"]
    assert got == list(range(1, len(got) + 1))
    assert len(got) < sent
    assert await metric(http, a, "hub_queue_overflows_total") == 1
    assert await metric(http, a, "hub_closes_total", '{code="4008"}') == 1
    assert await metric(http, b, "hub_queue_overflows_total") == 0


# --- draining -------------------------------------------------------------------------------------


class Balancer:
    """A TCP load balancer in front of the nodes: each new connection goes to port ``target``,
    and is refused (closed at once) while ``target`` is None or does not accept."""

    def __init__(self, target: int | None) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> Balancer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.target is None:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            except OSError:
                return
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        await self._server.wait_closed()


async def test_sigterm_drains_a_node_and_clients_recover_on_the_other(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack, http: httpx.AsyncClient
) -> None:
    a, b = await start_nodes(2)
    assert a.process is not None
    node_a = (await readyz(http, a))[1]
    org = await open_client(stack, hub_client(b, uid("org"), "organizer"))
    mod = await open_client(stack, hub_client(b, uid("mod"), "moderator"))
    room = await create_room(org)
    # Clients reach the hub through a balancer: node A for now.
    balancer = await Balancer(a.port).start()
    stack.push_async_callback(balancer.close)
    roamer = await open_client(
        stack, hub_client(balancer.url, uid("roamer"), reconnect=True, backoff_base=0.05)
    )
    assert roamer.node == node_a
    await roamer.join(room)
    bare = (await open_members(stack, a.url, 1, room))[0]  # what a client on A gets on the wire
    stayer = (await open_members(stack, b.url, 1, room))[0]  # a member of B, unaffected
    assert await announce_many(mod, room, ["n1", "n2"]) == [1, 2]
    assert [(await roamer.wait_for(is_notice(room), TIMEOUT))["seq"] for _ in range(2)] == [1, 2]

    a.process.send_signal(signal.SIGTERM)
    shutdown = await roamer.wait_for(lambda ev: ev["ev"] == "shutdown", TIMEOUT)
    assert 0 <= shutdown["reconnect_in"] <= 5
    assert await bare.closed_with() == 1012
    shutdowns = [m for m in bare.messages if m.get("ev") == "shutdown"]
    assert len(shutdowns) == 1 and 0 <= shutdowns[0]["reconnect_in"] <= 5
    # Node A stopped accepting before it told its clients: reconnects are refused until the
    # balancer sends them to node B. Meanwhile three notices go by (stored once acknowledged).
    assert await announce_many(mod, room, ["m3", "m4", "m5"]) == [3, 4, 5]
    balancer.target = b.port

    # The client reconnects by itself and rejoins with {since, epoch}: it gets exactly what it
    # missed (queued before its client.reconnected event), recovered.
    after: list[Msg] = []
    while not after or after[-1]["ev"] != "client.reconnected":
        after.append(await roamer.next_event(TIMEOUT))
    assert after[-1]["recovered"] == {room: True}
    assert seq_text([ev for ev in after if is_notice(room)(ev)]) == [
        (3, "m3"),
        (4, "m4"),
        (5, "m5"),
    ]
    assert roamer.close_code == 1012  # the last connection that ended: node A's
    assert roamer.node != node_a and roamer.node == mod.node
    live = await mod.request("announce", room=room, text="live")
    assert (await roamer.wait_for(is_notice(room), TIMEOUT))["seq"] == live["seq"] == 6
    # The member of node B saw everything once, and the drained node exited cleanly.
    assert [n["seq"] for n in await stayer.wait_notices(room, 6)] == [1, 2, 3, 4, 5, 6]
    assert await asyncio.to_thread(a.process.wait, TIMEOUT) == 0, a.stderr()
    assert (await readyz(http, a))[0] is None


# --- workers --------------------------------------------------------------------------------------


async def test_two_workers_on_one_port_share_rooms(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack, http: httpx.AsyncClient
) -> None:
    (hub,) = await start_nodes(1, workers=2)
    # Both workers answer /readyz on the one port (the kernel hands connections to either).
    ready: set[str] = set()

    async def both_ready() -> bool:
        status, node = await readyz(http, hub)
        if status == 200 and node is not None:
            ready.add(node)
        return len(ready) == 2

    await eventually(both_ready, TIMEOUT, "/readyz 200 from two workers", interval=0.05)

    org = await open_client(stack, hub_client(hub, uid("org"), "organizer"))
    room = await create_room(org)
    members: list[Member] = []
    while {m.node for m in members} != ready or len(members) < 12:
        assert len(members) < 60, f"every connection landed on {[m.node for m in members]}"
        members += await open_members(stack, hub.url, 4)
    assert {m.node for m in members} == ready
    await asyncio.gather(*(m.join(room) for m in members))
    mods = [await open_client(stack, hub_client(hub, uid("mod"), "moderator")) for _ in range(2)]
    batches = await asyncio.gather(
        *(announce_many(mod, room, [f"{i}-{j}" for j in range(25)]) for i, mod in enumerate(mods))
    )
    expected = sorted(
        pair
        for i, seqs in enumerate(batches)
        for pair in zip(seqs, [f"{i}-{j}" for j in range(25)], strict=True)
    )
    assert [seq for seq, _ in expected] == list(range(1, 51))
    for member in members:
        assert seq_text(await member.wait_notices(room, 50)) == expected
    last = await org.request("announce", room=room, text="last")
    for member in members:
        assert seq_text(await member.wait_notices(room, 51)) == [*expected, (51, "last")]
    assert last["seq"] == 51
