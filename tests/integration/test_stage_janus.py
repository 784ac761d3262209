"""The stage of panels through Janus's VideoRoom (``hub serve --sfu janus+ws://...``): real hub
nodes on a real Redis only signal; Janus, in its own network namespace, forwards the media; the
speakers and viewers are aiortc peers of the test whose ICE stays on the namespace's veth
(``host_addresses_only``). Janus's admin API counts what the hubs hold there.

Janus is set up as an event would run it: rooms are created only with the VideoRoom's admin key,
which the hubs have as a setting, like the secret they create rooms with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.hub_process import HubProcess, free_port, mint
from support.janus import JanusServer
from support.redis_server import RedisServer
from support.rtc_media import host_addresses_only
from support.stage_member import StageMember, new_panel, stage_member
from support.system import require_janus, require_netns
from support.waiting import eventually

from livehub_client import HubClient, HubRequestError
from livehub_client.stage import StagePublisher
from signalling.janus_rules import server_index

from .conftest import StartHub, StartNodes, uid

pytestmark = pytest.mark.timeout(90)

MEDIA_T = 20.0
FRAMES = 5
ADMIN_KEY = "videoroom-admin-key-of-the-test"
ROOM_SECRET = "room-secret-of-the-test"
GONE = "the media server went away"


def janus_env(janus: JanusServer) -> dict[str, str]:
    """The settings of a hub whose SFU is ``janus``."""
    return {"HUB_SFU": janus.sfu_url, "HUB_SFU_ADMIN_KEY": ADMIN_KEY,
            "HUB_SFU_ROOM_SECRET": ROOM_SECRET}  # fmt: skip


def _janus() -> JanusServer:
    require_netns()
    return JanusServer(binary=require_janus(), room_admin_key=ADMIN_KEY)


@pytest.fixture(scope="module")
def janus() -> Iterator[JanusServer]:
    """The module's Janus: rooms need the admin key."""
    server = _janus()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def janus_nodes(
    redis_server: RedisServer, janus: JanusServer
) -> Iterator[tuple[HubProcess, HubProcess]]:
    """Two nodes on the run's Redis whose SFU is the module's Janus, shared by the module."""
    redis_server.start()
    redis_server.flush()
    nodes = [HubProcess(redis_url=redis_server.url, env=janus_env(janus)) for _ in range(2)]
    try:
        for node in nodes:
            node.start()
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()


def member(
    node: HubProcess, room: str, role: str = "attendee", **options: Any
) -> contextlib.AbstractAsyncContextManager[StageMember]:
    """A :func:`stage_member` of ``room`` on ``node``."""
    return stage_member(node.url, room, role, **options)


async def panel(node: HubProcess, room: str | None = None) -> str:
    """A new panel on ``node``."""
    return await new_panel(node.url, room)


def simulcast_offer(sdp: str) -> str:
    """aiortc's offer, as if its video were simulcast in three layers (``ssrc-group:SIM``):
    aiortc cannot simulcast, but Janus then treats the feed as simulcast (its first layer
    alone arrives) and reports the layer each subscriber is to get."""
    lines = sdp.split("\r\n")
    fid = next(line for line in lines if line.startswith("a=ssrc-group:FID "))
    ssrc = fid.split()[1]
    cname = next(line for line in lines if line.startswith(f"a=ssrc:{ssrc} cname:"))
    cname = cname.split("cname:", 1)[1]
    out = []
    for line in lines:
        out.append(line)
        if line == fid:
            out.append(f"a=ssrc-group:SIM {ssrc} 1111 2222")
            out += [f"a=ssrc:{layer} cname:{cname}" for layer in (1111, 2222)]
    return "\r\n".join(out)


class SimulcastPublisher(StagePublisher):
    """A publisher whose offers say its video is simulcast (:func:`simulcast_offer`)."""

    async def start(self) -> None:
        await self._drop_pc()
        self.answered.clear()
        pc = self.pc = self.make_pc()
        await pc.setLocalDescription(await pc.createOffer())
        await self._signal("offer", sdp=simulcast_offer(pc.localDescription.sdp))


async def readyz(node: HubProcess) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(f"{node.http}/readyz")


async def scrape(node: HubProcess) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"{node.http}/metrics")).text


async def sfu_state(node: HubProcess) -> str:
    return str((await readyz(node)).json().get("sfu"))


def layers_asked(janus: JanusServer, room: str) -> dict[str, int]:
    """Feed -> the simulcast substream Janus is to send of it, over the room's subscribers."""
    asked: dict[str, int] = {}
    for session in janus.sessions():
        for handle in janus.handles(session):
            info = janus.admin("handle_info", session, handle)["info"].get("plugin_specific", {})
            if info.get("type") != "subscriber" or info.get("room") != room:
                continue
            for stream in info.get("streams", []):
                if "simulcast" in stream and "feed_id" in stream:
                    asked[stream["feed_id"]] = stream["simulcast"]["substream-target"]
    return asked


async def no_handles_left(janus: JanusServer) -> None:
    async def none() -> bool:
        return await asyncio.to_thread(janus.handle_count) == 0

    await eventually(none, MEDIA_T, "no Janus handle left")


# --- tests ---------------------------------------------------------------------------------------


async def test_three_viewers_on_two_nodes_get_a_speakers_video(
    janus: JanusServer, janus_nodes: tuple[HubProcess, HubProcess]
) -> None:
    a, b = janus_nodes
    room = await panel(a)
    with host_addresses_only(janus.peer_address):
        async with (
            member(a, room, "speaker") as speaker,
            member(a, room) as first,
            member(b, room) as second,
            member(b, room) as third,
        ):
            viewers = [first, second, third]
            await speaker.publisher.publish()
            # Every node says the same: the speaker is on stage once Janus has it.
            for viewer in viewers:
                await viewer.wait(lambda v=viewer: v.stage() == speaker.on_stage(), "the stage")
            await asyncio.gather(*(viewer.viewer.subscribe() for viewer in viewers))
            for viewer in viewers:
                await viewer.wait(lambda v=viewer: v.offered() == [speaker.sid], "Janus's offer")
                await viewer.wait(lambda v=viewer: v.total() >= FRAMES, "the speaker's frames")
            # A late joiner sees the stage at once.
            async with HubClient(b.url, token=mint(uid("late"))) as late:
                joined = await late.request("join", room=room)
                assert joined["snapshot"]["tracks"] == speaker.on_stage()
                # The hello tells clients that this SFU takes simulcast.
                assert late.hello is not None
                assert late.hello["sfu"] == {"name": "janus", "simulcast": True}
            # Janus: one session per node, one handle per connection with it.
            assert len(await asyncio.to_thread(janus.sessions)) == 2
            assert await asyncio.to_thread(janus.handle_count) == 4
            for node in (a, b):
                response = await readyz(node)
                assert response.status_code == 200 and response.json()["sfu"] == "ok"
    await no_handles_left(janus)
    assert len(await asyncio.to_thread(janus.sessions)) == 2


async def test_four_speakers_in_one_connection_and_one_who_leaves(
    janus: JanusServer, janus_nodes: tuple[HubProcess, HubProcess]
) -> None:
    a, b = janus_nodes
    room = await panel(a)
    with host_addresses_only(janus.peer_address):
        async with (
            member(a, room, "speaker") as s1,
            member(b, room, "speaker") as s2,
            member(a, room, "moderator") as s3,
            member(b, room) as viewer,
        ):
            async with member(b, room, "speaker") as s4:
                speakers = [s1, s2, s3, s4]
                for speaker in speakers:
                    await speaker.publisher.publish()
                everyone = sorted(s.sid for s in speakers)

                def staged() -> list[str]:
                    return [t["sid"] for t in viewer.stage() or []]

                await viewer.wait(lambda: staged() == everyone, "four on stage")
                await viewer.viewer.subscribe()
                await viewer.wait(lambda: sorted(viewer.offered()) == everyone, "four offered")
                assert viewer.viewer.offers == 1  # one connection, one offer
                mids = {t["mid"] for t in viewer.viewer.tracks}
                assert len(mids) == 4
                await viewer.wait(
                    lambda: len([n for n in viewer.frames.values() if n >= FRAMES]) == 4,
                    "frames of all four",
                )
            # The fourth left: a new offer without it, and the stage event drops it.
            rest = sorted(s.sid for s in speakers[:3])
            await viewer.wait(lambda: sorted(viewer.offered()) == rest, "a new offer")
            await viewer.wait(lambda: staged() == rest, "the stage without the fourth")
            assert viewer.viewer.offers == 2
    await no_handles_left(janus)


async def test_only_the_stage_publishes_and_a_viewer_watches_its_own_room_only(
    janus: JanusServer, janus_nodes: tuple[HubProcess, HubProcess]
) -> None:
    a, b = janus_nodes
    here, there = await panel(a), await panel(a)
    with host_addresses_only(janus.peer_address):
        async with (
            member(a, here, "speaker") as speaker,
            member(b, there, "speaker") as elsewhere,
            member(b, here) as viewer,
        ):
            with pytest.raises(HubRequestError) as refused:
                await viewer.client.request("signal", room=here, to="sfu", type="offer", sdp="v=0")
            assert refused.value.code == "forbidden"
            await speaker.publisher.publish()
            await elsewhere.publisher.publish()
            await viewer.wait(lambda: viewer.stage() == speaker.on_stage(), "the stage")
            await elsewhere.wait(lambda: elsewhere.stage() == elsewhere.on_stage(), "theirs")
            # Naming the other panel's speaker gets nothing of it.
            viewer.viewer.wanted = [elsewhere.sid, speaker.sid]
            await viewer.viewer.subscribe()
            await viewer.wait(lambda: viewer.viewer.offers >= 1, "Janus's offer")
            assert viewer.offered() == [speaker.sid]
            await viewer.wait(lambda: viewer.total() >= FRAMES, "frames of its own panel")
            # Nor does naming only them: nothing is offered, nothing held in Janus for it.
            with pytest.raises(HubRequestError) as refused:
                await viewer.client.request(
                    "signal", room=there, to="sfu", type="subscribe", tracks=[elsewhere.sid]
                )
            assert refused.value.code == "forbidden"  # not a member of the other panel
    await no_handles_left(janus)


async def test_each_viewer_takes_its_newest_speaker_high_and_the_others_low(
    janus: JanusServer, janus_nodes: tuple[HubProcess, HubProcess]
) -> None:
    a, b = janus_nodes
    room = await panel(a)
    simulcast = SimulcastPublisher
    with host_addresses_only(janus.peer_address):
        async with (
            member(a, room, "speaker", publisher=simulcast) as s1,
            member(b, room, "speaker", publisher=simulcast) as s2,
            member(b, room) as viewer,
        ):
            await s1.publisher.publish()
            await s2.publisher.publish()
            first, second = sorted([s1.sid, s2.sid])
            await viewer.wait(lambda: len(viewer.stage() or []) == 2, "two on stage")
            await viewer.viewer.subscribe()
            await viewer.wait(lambda: sorted(viewer.offered()) == [first, second], "an offer")

            async def asked(layers: dict[str, int]) -> bool:
                return await asyncio.to_thread(layers_asked, janus, room) == layers

            # Joining, the viewer takes the stage's last speaker as its active one.
            await eventually(lambda: asked({first: 0, second: 2}), MEDIA_T, "layers")
            async with member(a, room, "speaker", publisher=simulcast) as s3:
                await s3.publisher.publish()
                await viewer.wait(lambda: len(viewer.offered()) == 3, "three offered")
                # The newest speaker is watched high, the others drop to thumbnails.
                await eventually(lambda: asked({first: 0, second: 0, s3.sid: 2}), MEDIA_T, "new")
            await eventually(lambda: asked({first: 0, second: 2}), MEDIA_T, "back")
    await no_handles_left(janus)


async def test_panels_are_spread_over_the_janus_servers_by_their_id(
    janus: JanusServer, start_hub: StartHub
) -> None:
    down = f"janus+ws://127.0.0.1:{free_port()}"
    hub = start_hub(env={**janus_env(janus), "HUB_SFU": f"{janus.sfu_url},{down}"})
    response = await readyz(hub)
    assert response.status_code == 200
    assert response.json()["sfu"] == "degraded: janus 2/2: cannot connect: Connection refused"
    rooms: dict[int, str] = {}
    while len(rooms) < 2:
        room = uid("panel")
        rooms.setdefault(server_index(room, 2), room)
    live, dead = await panel(hub, rooms[0]), await panel(hub, rooms[1])
    with host_addresses_only(janus.peer_address):
        async with member(hub, live, "speaker") as speaker, member(hub, dead, "speaker") as other:
            await speaker.publisher.publish()
            await speaker.wait(lambda: speaker.stage() == speaker.on_stage(), "the stage")
            with pytest.raises(HubRequestError) as refused:
                await other.viewer.subscribe()
            assert refused.value.code == "unavailable"
    await no_handles_left(janus)


async def test_janus_down_at_start_leaves_the_hub_ready_and_the_stage_unavailable(
    start_hub: StartHub,
) -> None:
    hub = start_hub(env={"HUB_SFU": f"janus+ws://127.0.0.1:{free_port()}"})
    response = await readyz(hub)
    assert response.status_code == 200 and response.json()["ready"] is True
    assert response.json()["sfu"].startswith("degraded: janus 1/1: cannot connect")
    room = await panel(hub)
    async with HubClient(hub.url, token=mint(uid("speaker"), "speaker")) as client:
        await client.request("join", room=room)
        for kind, fields in (("subscribe", {}), ("offer", {"sdp": "v=0"})):
            with pytest.raises(HubRequestError) as refused:
                await client.request("signal", room=room, to="sfu", type=kind, **fields)
            assert refused.value.code == "unavailable"
        # Everything else serves.
        sent = await client.request("chat.send", room=room, text="still here")
        assert sent["seq"] >= 1


async def test_a_panel_survives_janus_killed_and_restarted_and_leaves_nothing_behind(
    start_nodes: StartNodes,
) -> None:
    with _janus() as janus:
        a, b = await start_nodes(2, env=janus_env(janus))
        room = await panel(a)
        with host_addresses_only(janus.peer_address):
            async with (
                member(a, room, "speaker", retry=True) as speaker,
                member(a, room, retry=True) as near,
                member(b, room, retry=True) as far,
            ):
                viewers = [near, far]
                await speaker.publisher.publish()
                for viewer in viewers:
                    await viewer.wait(lambda v=viewer: v.stage() == speaker.on_stage(), "stage")
                    await viewer.viewer.subscribe()
                    await viewer.wait(lambda v=viewer: v.total() >= FRAMES, "frames")

                await asyncio.to_thread(janus.kill)
                for link in (speaker.publisher, near.viewer, far.viewer):
                    await speaker.wait(lambda k=link: bool(k.byes), "a bye from the SFU")
                    bye = link.byes[0]
                    assert (bye["from"], bye["leg"], bye["reason"]) == ("sfu", link.leg, GONE)
                for node in (a, b):
                    assert (await sfu_state(node)).startswith("degraded: janus 1/1: ")
                before = {id(v): v.total() for v in viewers}

                await asyncio.to_thread(janus.start)
                # Nobody asks again: the clients' retries bring the stage back.
                for viewer in viewers:
                    await viewer.wait(
                        lambda v=viewer: v.total() >= before[id(v)] + FRAMES, "frames again"
                    )
                    assert viewer.stage() == speaker.on_stage()
                for node in (a, b):
                    assert await sfu_state(node) == "ok"
                    metrics = await scrape(node)
                    assert 'hub_sfu_up{server="janus 1/1"} 1.0' in metrics
                    assert "hub_sfu_connection_losses_total 1.0" in metrics
                assert 'hub_sfu_legs{leg="publish"} 1.0' in await scrape(a)
                assert 'hub_sfu_legs{leg="watch"} 1.0' in await scrape(b)
        await no_handles_left(janus)
        assert len(await asyncio.to_thread(janus.sessions)) == 2
        for node in (a, b):
            await asyncio.to_thread(node.stop)

        async def no_sessions() -> bool:
            return await asyncio.to_thread(janus.sessions) == []

        await eventually(no_sessions, MEDIA_T, "no Janus session left")
