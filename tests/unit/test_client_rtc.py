"""Tests of livehub_client.rtc with two real aiortc peers and no hub: each PeerLink talks to a tiny
fake client whose ``signal`` command drops the event the hub would deliver straight into the
other client's queue. ICE stays on 127.0.0.1 (``loopback_only``).

No test sleeps to synchronise: each waits for an event, a task or a future, with a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
)
from support.rtc_media import SyntheticVideoTrack, loopback_only

from livehub_client.connection import HubClosed, HubRequestError
from livehub_client.rtc import PeerLink, ice_candidate, run_signals, sdp_candidates

T = 5.0  # the timeout of every wait that is expected to succeed
MEDIA_T = 20.0  # connecting and receiving the video frames
ROOM = "work-1"

Event = dict[str, Any]


class FakeHub:
    """Routes ``signal`` commands between :class:`FakeClient` objects by ``to``, as the hub does."""

    def __init__(self) -> None:
        self.clients: dict[str, FakeClient] = {}

    def client(self, sid: str, user: str) -> FakeClient:
        client = self.clients[sid] = FakeClient(self, sid, user)
        return client


class FakeClient:
    """Duck-typed like HubClient for what livehub_client.rtc uses: ``request`` and ``events``. Every
    signal it sends is kept in ``sent``."""

    def __init__(self, hub: FakeHub, sid: str, user: str) -> None:
        self.hub = hub
        self.sid = sid
        self.user = user
        self.sent: list[Event] = []
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._closed = False

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        if self._closed:
            raise HubClosed(1000, "closed by the client")
        assert op == "signal", op
        self.sent.append(fields)
        peer = self.hub.clients.get(fields["to"])
        if peer is None:
            raise HubRequestError("not_found", "no such session in the room")
        event = {"ev": "signal", "room": fields["room"], "from": self.sid, "user": self.user}
        event.update({k: fields[k] for k in ("type", "sdp", "candidate") if k in fields})
        peer.push(event)
        return {}

    def push(self, event: Event) -> None:
        self._queue.put_nowait(event)

    async def next_event(self) -> Event:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)
            raise HubClosed(1000, "closed by the client")
        return event

    async def events(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.next_event()
            except HubClosed:
                return

    def close(self) -> None:
        """Events queued before still come out, then the iteration ends."""
        self._closed = True
        self._queue.put_nowait(None)


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


@pytest.fixture
def loopback() -> Iterator[None]:
    with loopback_only():
        yield


def resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


async def count_frames(track: MediaStreamTrack, n: int) -> int:
    for _ in range(n):
        await track.recv()
    return n


async def test_two_peers_connect_exchange_data_and_video_then_bye(
    loopback: None, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    hub = FakeHub()
    client_a, client_b = hub.client("sid-a", "ada"), hub.client("sid-b", "bob")
    video = SyntheticVideoTrack()
    pc_a = new_pc()
    pcs = [pc_a]
    tasks: list[asyncio.Task[Any]] = []
    channel_a = pc_a.createDataChannel("chat")
    pc_a.addTrack(video)
    a_open: asyncio.Future[None] = loop.create_future()
    a_got: asyncio.Future[str] = loop.create_future()
    b_channel: asyncio.Future[RTCDataChannel] = loop.create_future()
    b_got: asyncio.Future[str] = loop.create_future()
    b_frames: asyncio.Future[asyncio.Task[int]] = loop.create_future()
    offers_seen: list[Event] = []

    channel_a.on("open", lambda: resolve(a_open, None))
    channel_a.on("message", lambda message: resolve(a_got, message))

    def accept(event: Event) -> PeerLink:
        offers_seen.append(event)
        pc_b = new_pc()
        pcs.append(pc_b)

        @pc_b.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            channel.on("message", lambda message: resolve(b_got, message))
            resolve(b_channel, channel)

        @pc_b.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                task = loop.create_task(count_frames(track, 10))
                tasks.append(task)
                resolve(b_frames, task)

        return PeerLink(client_b, ROOM, event["from"], pc_b)

    link_a = PeerLink(client_a, ROOM, "sid-b", pc_a)
    links_a = {"sid-b": link_a}
    links_b: dict[str, PeerLink] = {}
    router_a = loop.create_task(run_signals(client_a, ROOM, links_a))
    router_b = loop.create_task(run_signals(client_b, ROOM, links_b, accept))
    tasks += [router_a, router_b]
    try:
        await link_a.offer()
        async with asyncio.timeout(MEDIA_T):
            await a_open
            channel_b = await b_channel
            channel_a.send("ping")
            assert await b_got == "ping"
            channel_b.send("pong")
            assert await a_got == "pong"
            assert await (await b_frames) == 10
        assert video.frames >= 10

        assert [e["user"] for e in offers_seen] == ["ada"]
        link_b = links_b["sid-a"]
        assert pc_a.connectionState == pcs[1].connectionState == "connected"
        sent_a = [s["type"] for s in client_a.sent]
        sent_b = [s["type"] for s in client_b.sent]
        # The SDP's candidates are also sent one by one: one per transport (video, data).
        assert sent_a == ["offer", "candidate", "candidate"]
        assert sent_b == ["answer", "candidate", "candidate"]
        candidates = [s["candidate"] for s in client_a.sent + client_b.sent if "candidate" in s]
        assert all(" 127.0.0.1 " in c["candidate"] for c in candidates)

        # A failing signal is logged and does not stop the routing: the bye after it still works.
        await client_a.request("signal", room=ROOM, to="sid-b", type="answer", sdp="v=0\r\n")
        await link_a.close()
        assert link_a.closed and pc_a.signalingState == "closed"
        client_b.close()
        async with asyncio.timeout(T):
            await router_b
        assert link_b.closed and link_b.pc.signalingState == "closed"
        assert links_b == {}
        assert client_b.sent[-1]["type"] == "candidate"  # a bye is not answered with a bye
        errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [(r.name, r.levelno) for r in errors] == [("livehub_client.rtc", logging.WARNING)]
        assert "'answer' from sid-a" in errors[0].getMessage()
    finally:
        client_a.close()
        client_b.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pc in pcs:
            await pc.close()
        video.stop()


async def test_an_offer_colliding_with_ours_is_ignored_with_its_candidates(loopback: None) -> None:
    hub = FakeHub()
    client_x = hub.client("sid-x", "xi")
    hub.client("sid-y", "yu")  # the peer must exist for the offer to be delivered
    pc_x, pc_y = new_pc(), new_pc()
    try:
        pc_x.createDataChannel("x")
        pc_y.createDataChannel("y")
        link_x = PeerLink(client_x, ROOM, "sid-y", pc_x)
        await link_x.offer()
        await pc_y.setLocalDescription(await pc_y.createOffer())
        offer_y = pc_y.localDescription.sdp
        [candidate_y] = sdp_candidates(offer_y)

        await link_x.handle({"ev": "signal", "from": "sid-y", "type": "offer", "sdp": offer_y})
        await link_x.handle({"ev": "signal", "from": "sid-y", "type": "candidate", **candidate_y})

        assert pc_x.signalingState == "have-local-offer"
        assert pc_x.remoteDescription is None
        assert [s["type"] for s in client_x.sent] == ["offer", "candidate"]
        assert not link_x.closed
    finally:
        await pc_x.close()
        await pc_y.close()


def test_sdp_candidates_carry_their_m_section() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "a=group:BUNDLE 0 1",
            "m=video 9 UDP/TLS/RTP/SAVPF 97",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
            "a=mid:0",
            "a=candidate:2 1 udp 1694498815 192.0.2.7 5001 typ srflx raddr 127.0.0.1 rport 5000",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "a=candidate:3 1 udp 2130706431 127.0.0.1 5002 typ host",
            "m=audio 9 UDP/TLS/RTP/SAVPF 0",
            "a=mid:audio",
            "",
        ]
    )
    assert sdp_candidates(sdp) == [
        {
            "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        },
        {
            "candidate": "candidate:2 1 udp 1694498815 192.0.2.7 5001 typ srflx raddr 127.0.0.1 "
            "rport 5000",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        },
        {
            "candidate": "candidate:3 1 udp 2130706431 127.0.0.1 5002 typ host",
            "sdpMid": None,
            "sdpMLineIndex": 1,
        },
    ]


def test_ice_candidate_reads_a_browser_candidate_init() -> None:
    candidate = ice_candidate(
        {
            "candidate": "candidate:1 1 UDP 2122252543 127.0.0.1 50000 typ host",
            "sdpMid": None,
            "sdpMLineIndex": 0,
        }
    )
    assert candidate is not None
    assert (candidate.ip, candidate.port, candidate.type) == ("127.0.0.1", 50000, "host")
    assert (candidate.sdpMid, candidate.sdpMLineIndex) == (None, 0)
    same = ice_candidate(
        {"candidate": "1 1 UDP 2122252543 127.0.0.1 50000 typ host", "sdpMid": "0"}
    )
    assert same is not None and (same.port, same.sdpMid) == (50000, "0")
    assert ice_candidate({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}) is None


async def test_run_signals_drops_what_no_link_wants() -> None:
    hub = FakeHub()
    client = hub.client("sid-a", "ada")
    accepted: list[Event] = []

    def refuse(event: Event) -> PeerLink | None:
        accepted.append(event)
        return None

    base = {"ev": "signal", "room": ROOM, "user": "bob"}
    client.push({**base, "from": "sid-b", "type": "candidate", "candidate": {"candidate": ""}})
    client.push({**base, "room": "other", "from": "sid-b", "type": "offer", "sdp": "v=0"})
    client.push({"ev": "chat", "room": ROOM, "from": "sid-b", "type": "offer"})
    client.push({**base, "from": "sid-c", "type": "offer", "sdp": "v=0"})
    client.close()
    links: dict[str, PeerLink] = {}
    async with asyncio.timeout(T):
        await run_signals(client, ROOM, links, refuse)
    assert [e["from"] for e in accepted] == ["sid-c"]
    assert links == {}


async def test_close_drops_an_undeliverable_bye_and_is_idempotent(loopback: None) -> None:
    hub = FakeHub()
    client = hub.client("sid-a", "ada")
    pc = new_pc()
    link = PeerLink(client, ROOM, "sid-gone", pc)
    await link.close()
    await link.close()
    assert link.closed and pc.signalingState == "closed"
    assert [s["type"] for s in client.sent] == ["bye"]
