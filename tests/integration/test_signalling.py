"""WebRTC signalling through two real ``hub serve`` processes sharing one private Redis: the hub's
``from`` replaces a forged one, a signal to a session outside the room is refused and delivered
nowhere, ``ice_servers`` carries TURN credentials and never the secret, and two real aiortc
peers, one on each node, negotiate through the hub and exchange a data-channel message and video
frames. Media stays on 127.0.0.1 (``loopback_only``).

No test sleeps to synchronise: each waits for a reply, an event or a future with a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCPeerConnection

from livehub_client import HubClient, PeerLink, run_signals
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartHub, StartNodes, new_room, open_member, uid
from tests.support.hub_process import mint
from tests.support.rtc_media import SyntheticVideoTrack, loopback_only

pytestmark = [pytest.mark.integration, pytest.mark.redis]

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
MEDIA_WITHIN = 20.0  # the bound for connecting and 10 video frames
FRAMES = 10


async def test_signals_are_relayed_with_the_hubs_from_and_only_inside_the_room(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes()
    room = await new_room(stack, a, "workshop")
    alice = await open_member(stack, a, uid("alice"))
    bob = await open_member(stack, b, uid("bob"))
    outsider = await open_member(stack, b, uid("out"))
    await alice.join(room)
    await bob.join(room)
    await outsider.join("main")

    await alice.request(
        "signal", room=room, to=bob.hello["sid"], type="offer", sdp=SDP,
        **{"from": outsider.hello["sid"], "user": "someone-else"},
    )  # fmt: skip
    [offer] = await bob.wait_events("signal", room, 1)
    assert offer == {
        "ev": "signal",
        "room": room,
        "from": alice.hello["sid"],
        "user": alice.hello["user"]["id"],
        "type": "offer",
        "sdp": SDP,
    }

    code, _ = await alice.error(
        "signal", room=room, to=outsider.hello["sid"], type="offer", sdp=SDP
    )
    assert code == "not_found"
    code, _ = await outsider.error("signal", room=room, to=alice.hello["sid"], type="bye")
    assert code == "forbidden"
    # Whatever was going to arrive has: a round trip on each connection after the refusals.
    await outsider.request("ping")
    await alice.request("ping")
    assert outsider.events("signal") == []
    assert alice.events("signal") == []


async def test_hello_carries_turn_credentials_never_the_secret(start_hub: StartHub) -> None:
    secret = "coturn-static-auth-secret-0123456789"
    hub = start_hub(
        args=["--stun-url", "stun:127.0.0.1:3478", "--turn-url", "turn:127.0.0.1:3478",
              "--turn-ttl", "600"],
        env={"HUB_TURN_SECRET": secret},
    )  # fmt: skip
    async with HubClient(hub.url, token=mint("tina"), reconnect=False) as client:
        hello = client.hello
        assert hello is not None
    stun, turn = hello["ice_servers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == ["turn:127.0.0.1:3478"]
    expiry, _, user = turn["username"].partition(":")
    assert user == "tina" and int(expiry) > 0
    digest = hmac.new(secret.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
    assert secret not in repr(hello)


@pytest.fixture
def loopback() -> Any:
    with loopback_only():
        yield


async def test_two_aiortc_peers_on_two_nodes_exchange_data_and_video(
    start_nodes: StartNodes, loopback: None
) -> None:
    a, b = await start_nodes()
    room = uid("ws")
    loop = asyncio.get_running_loop()
    pcs: list[RTCPeerConnection] = []
    tasks: list[asyncio.Task[Any]] = []
    video = SyntheticVideoTrack()
    async with contextlib.AsyncExitStack() as exits:
        org = await exits.enter_async_context(HubClient(a.url, token=mint("org", "organizer")))
        await org.request("room.create", room=room, kind="workshop", title="Video")
        ada = await exits.enter_async_context(HubClient(a.url, token=mint(uid("ada"))))
        bob = await exits.enter_async_context(HubClient(b.url, token=mint(uid("bob"))))
        assert ada.node != bob.node
        await ada.join(room)
        await bob.join(room)
        assert ada.sid is not None and bob.sid is not None

        pc_a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc_a)
        channel_a = pc_a.createDataChannel("chat")
        pc_a.addTrack(video)
        opened: asyncio.Future[None] = loop.create_future()
        channel_a.on("open", lambda: opened.done() or opened.set_result(None))
        got_b: asyncio.Future[str] = loop.create_future()
        frames: asyncio.Future[asyncio.Task[int]] = loop.create_future()

        def accept(event: dict[str, Any]) -> PeerLink:
            pc_b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.append(pc_b)

            @pc_b.on("datachannel")
            def on_channel(channel: RTCDataChannel) -> None:
                channel.on("message", lambda m: got_b.done() or got_b.set_result(m))

            @pc_b.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video" and not frames.done():
                    task = loop.create_task(_count_frames(track, FRAMES))
                    tasks.append(task)
                    frames.set_result(task)

            return PeerLink(bob, room, event["from"], pc_b)

        links_b: dict[str, PeerLink] = {}
        link_a = PeerLink(ada, room, bob.sid, pc_a)
        tasks.append(loop.create_task(run_signals(ada, room, {bob.sid: link_a})))
        tasks.append(loop.create_task(run_signals(bob, room, links_b, accept)))
        try:
            async with asyncio.timeout(MEDIA_WITHIN):
                await link_a.offer()
                await opened
                channel_a.send("hello over the hub")
                assert await got_b == "hello over the hub"
                assert await (await frames) == FRAMES
            assert pc_a.connectionState == "connected"
            assert links_b[ada.sid].pc.connectionState == "connected"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            video.stop()
            for pc in pcs:
                await pc.close()


async def _count_frames(track: MediaStreamTrack, count: int) -> int:
    received = 0
    while received < count:
        await asyncio.wait_for(track.recv(), TIMEOUT)
        received += 1
    return received
