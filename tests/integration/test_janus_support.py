"""The Janus test support works end to end, without the hub: a private Janus in a network
namespace (``janus``), its WebSocket API (``support.janus_ws``), its admin API, and aiortc peers
whose ICE stays on the namespace's veth (``host_addresses_only``).

One aiortc peer publishes a synthetic video track into a VideoRoom, a second one subscribes
(multistream ``streams``) and decodes frames; then everything is destroyed and the admin API
shows no session or handle left. No test sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
from collections.abc import Iterator

import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from av import VideoFrame

from tests.conftest import TIMEOUT
from tests.integration.conftest import uid
from tests.support.janus import JanusServer
from tests.support.janus_ws import VIDEOROOM, JanusWs, Message
from tests.support.netns import NetNamespace
from tests.support.rtc_media import SyntheticVideoTrack, host_addresses_only
from tests.support.system import require_janus, require_netns
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

FRAMES = 5


@pytest.fixture
def veth_only(janus: JanusServer) -> Iterator[None]:
    with host_addresses_only(janus.peer_address):
        yield


def _jsep(pc: RTCPeerConnection) -> Message:
    description = pc.localDescription
    return {"type": description.type, "sdp": description.sdp}


def _candidate_addresses(sdp: str) -> set[str]:
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def test_an_aiortc_peer_receives_another_ones_video_through_janus(
    janus: JanusServer, veth_only: None
) -> None:
    room, feed = uid("room"), uid("alice")
    video = SyntheticVideoTrack()
    pcs: list[RTCPeerConnection] = []
    async with await JanusWs.connect(janus.ws_url) as client:
        try:
            alice = await client.create_session()
            publisher = await client.attach(alice, VIDEOROOM)
            created, _ = await client.message(
                alice,
                publisher,
                {"request": "create", "room": room, "publishers": 4, "videocodec": "vp8"},
            )
            assert created == {"videoroom": "created", "room": room, "permanent": False}
            joined, _ = await client.message(
                alice,
                publisher,
                {"request": "join", "ptype": "publisher", "room": room, "id": feed},
            )
            assert joined["videoroom"] == "joined" and joined["id"] == feed

            pc_pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.append(pc_pub)
            pc_pub.addTransceiver(video, direction="sendonly")
            await pc_pub.setLocalDescription(await pc_pub.createOffer())
            assert _candidate_addresses(pc_pub.localDescription.sdp) == {janus.peer_address}
            configured, answer = await client.message(
                alice, publisher, {"request": "configure", "audio": False, "video": True},
                jsep=_jsep(pc_pub),
            )  # fmt: skip
            assert configured.get("configured") == "ok" and answer is not None
            assert _candidate_addresses(answer["sdp"]) == {janus.address}
            await pc_pub.setRemoteDescription(RTCSessionDescription(**answer))
            # aiortc puts every candidate in the SDP; this says there are no more to trickle.
            await client.trickle(alice, publisher, {"completed": True})
            # Until its PeerConnection is up, the publisher is no feed: subscribing fails (428).
            await client.wait_event(
                lambda e: e.get("janus") == "webrtcup" and e.get("sender") == publisher,
                TIMEOUT,
                "the publisher's webrtcup",
            )

            bob = await client.create_session()
            subscriber = await client.attach(bob, VIDEOROOM)
            subscribe = {"request": "join", "ptype": "subscriber", "room": room}
            attached, offer = await client.message(
                bob, subscriber, {**subscribe, "streams": [{"feed": feed}]}
            )
            assert attached["videoroom"] == "attached" and offer is not None
            assert _candidate_addresses(offer["sdp"]) == {janus.address}
            assert [s["feed_id"] for s in attached["streams"]] == [feed]

            pc_sub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.append(pc_sub)
            track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

            @pc_sub.on("track")
            def on_track(received: MediaStreamTrack) -> None:
                if received.kind == "video" and not track.done():
                    track.set_result(received)

            await pc_sub.setRemoteDescription(RTCSessionDescription(**offer))
            await pc_sub.setLocalDescription(await pc_sub.createAnswer())
            started, _ = await client.message(
                bob, subscriber, {"request": "start"}, jsep=_jsep(pc_sub)
            )
            assert started.get("started") == "ok"

            received = await asyncio.wait_for(track, TIMEOUT)
            for _ in range(FRAMES):
                frame = await asyncio.wait_for(received.recv(), TIMEOUT)
            assert isinstance(frame, VideoFrame)
            assert (frame.width, frame.height) == (video.width, video.height)

            # The admin API sees both sessions, one handle each.
            assert sorted(await asyncio.to_thread(janus.sessions)) == sorted([alice, bob])
            assert await asyncio.to_thread(janus.handles, alice) == [publisher]

            destroy = {"request": "destroy", "room": room}
            destroyed, _ = await client.message(alice, publisher, destroy)
            assert destroyed == {"videoroom": "destroyed", "room": room, "permanent": False}
            await client.detach(bob, subscriber)
            await client.detach(alice, publisher)
            await client.destroy_session(bob)
            await client.destroy_session(alice)
        finally:
            video.stop()
            for pc in pcs:
                await pc.close()

    async def nothing_left() -> bool:
        return await asyncio.to_thread(janus.sessions) == []

    await eventually(nothing_left, TIMEOUT, "no Janus session left")
    assert await asyncio.to_thread(janus.handle_count) == 0


def test_a_namespace_adds_its_own_veth_and_route_only_and_leaves_nothing() -> None:
    require_netns()
    before = _host_state()
    with NetNamespace() as ns:
        inside = ns.run(["ip", "-4", "-o", "addr", "show"]).stdout
        assert f"inet {ns.inner_address}/30" in inside
        assert "UP" in ns.run(["ip", "-o", "link", "show", "lo"]).stdout.split(">")[0]
        inner_routes = _routes(ns.run(["ip", "-4", "route", "show"]).stdout)
        assert inner_routes == {f"{_net(ns)} dev {ns.inner_link}"}
        routes, links = _host_state(ns.host_link)
        assert routes == before[0] | {f"{_net(ns)} dev {ns.host_link}"}
        assert links == before[1] | {ns.host_link}
        leftover = ns.popen(["sleep", "600"])
    leftover.wait(TIMEOUT)  # killed with the namespace
    assert _host_state(ns.host_link) == before
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert ns.name not in namespaces


@pytest.fixture
def own_janus() -> Iterator[JanusServer]:
    """A Janus of the test's own, for a test that kills it."""
    require_netns()
    with JanusServer(binary=require_janus()) as server:
        yield server


async def test_janus_killed_comes_back_at_the_same_url_without_sessions(
    own_janus: JanusServer,
) -> None:
    janus = own_janus
    async with await JanusWs.connect(janus.ws_url) as client:
        await client.create_session()
        assert len(await asyncio.to_thread(janus.sessions)) == 1
        await asyncio.to_thread(janus.kill)
        with pytest.raises(ConnectionError):
            await client.create_session()
    await asyncio.to_thread(janus.start)
    assert (await asyncio.to_thread(janus.info))["janus"] == "server_info"
    assert await asyncio.to_thread(janus.sessions) == []


def _net(ns: NetNamespace) -> str:
    return str(ipaddress.ip_interface(f"{ns.host_address}/{ns.prefixlen}").network)


def _host_state(own: str = "") -> tuple[set[str], set[str]]:
    """The host's IPv4 routes (destination and device) and its link names, but those of other
    test namespaces (``lh...``) than ``own``: a concurrent run may add and remove its own."""
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}

    def ours(name: str) -> bool:
        return not name.startswith("lh") or name == own

    return (
        {route for route in _routes(routes) if ours(route.split()[-1])},
        {name for name in names if ours(name)},
    )


def _routes(listing: str) -> set[str]:
    """``ip route`` lines cut to destination and device ("10.0.0.0/30 dev x")."""
    return {" ".join(line.split()[:3]) for line in listing.splitlines()}
