"""The stage of a panel through the embedded SFU of a real ``hub serve``: speakers publish with
aiortc, viewers subscribe and get frames, the ``stage`` event and the join snapshot say what is
on stage, and the relay refuses viewers beyond its capacity. Media stays on 127.0.0.1 (the
hub's ``HUB_MEDIA_ADDRESSES``, the test's :func:`loopback_only`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from support.hub_process import HubProcess, mint
from support.rtc_media import SyntheticVideoTrack, loopback_only
from support.waiting import eventually

from livehub_client import HubClient, HubRequestError
from livehub_client.stage import StagePublisher, StageViewer, run_stage

from .conftest import StartHub, StartNodes, uid

MEDIA_T = 20.0
MEDIA_ENV = {"HUB_MEDIA_ADDRESSES": "127.0.0.1"}


@pytest.fixture(autouse=True)
def _loopback() -> Iterator[None]:
    with loopback_only():
        yield


@dataclass
class Member:
    """A client in the panel with its stage links and what it saw."""

    client: HubClient
    room: str
    publisher: StagePublisher | None = None
    viewer: StageViewer | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)  # track id -> frames received
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    sources: list[MediaStreamTrack] = field(default_factory=list)

    @property
    def sid(self) -> str:
        assert self.client.hello is not None
        return str(self.client.hello["sid"])

    @property
    def user(self) -> str:
        assert self.client.hello is not None
        return str(self.client.hello["user"]["id"])

    def stages(self) -> list[list[dict[str, Any]]]:
        """The ``tracks`` of every ``stage`` event received, in order."""
        return [e["tracks"] for e in self.events if e.get("ev") == "stage"]

    def publish_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        source = SyntheticVideoTrack()
        self.sources.append(source)
        pc.addTrack(source)
        return pc

    def watch_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.ensure_future(self._consume(track)))

        return pc

    async def _consume(self, track: MediaStreamTrack) -> None:
        # Read every frame: aiortc queues them without bound otherwise.
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.id] = self.frames.get(track.id, 0) + 1

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Until ``condition`` holds (media and events arrive on their own tasks)."""
        await eventually(condition, within=MEDIA_T, what=what)


@contextlib.asynccontextmanager
async def member(hub: HubProcess, room: str, role: str = "attendee") -> AsyncIterator[Member]:
    """A member of ``room`` whose events a :func:`run_stage` task routes."""
    async with HubClient(hub.url, token=mint(uid(role), role)) as client:
        await client.request("join", room=room)
        joined = Member(client, room)
        joined.publisher = StagePublisher(client, room, joined.publish_pc, retry=False)
        joined.viewer = StageViewer(client, room, joined.watch_pc, retry=False)
        router = asyncio.ensure_future(
            run_stage(client, room, joined.publisher, joined.viewer, on_event=joined.events.append)
        )
        try:
            yield joined
        finally:
            for link in (joined.viewer, joined.publisher):
                await link.close()
            router.cancel()
            for task in joined.tasks:
                task.cancel()
            await asyncio.gather(router, *joined.tasks, return_exceptions=True)
            for source in joined.sources:
                source.stop()


async def panel(hub: HubProcess) -> str:
    room = uid("panel")
    async with HubClient(hub.url, token=mint(uid("org"), "organizer")) as org:
        await org.request("room.create", room=room, kind="panel", title="Panel")
    return room


async def test_viewers_get_a_speakers_video_and_the_stage_is_announced(
    start_hub: StartHub,
) -> None:
    hub = start_hub(env=MEDIA_ENV)
    room = await panel(hub)
    async with member(hub, room, "speaker") as speaker, member(hub, room) as viewer:
        assert speaker.publisher is not None and viewer.viewer is not None
        await speaker.publisher.publish()
        await viewer.wait(lambda: bool(viewer.stages()), "a stage event")
        assert viewer.stages()[-1] == [{"sid": speaker.sid, "user": speaker.user, "kind": "video"}]
        await viewer.viewer.subscribe()
        await viewer.wait(lambda: viewer.viewer.offers >= 1, "the SFU's offer")
        assert [t["sid"] for t in viewer.viewer.tracks] == [speaker.sid]
        await viewer.wait(lambda: sum(viewer.frames.values()) >= 5, "frames of the speaker")
        # A late joiner sees the stage in its join snapshot.
        async with HubClient(hub.url, token=mint(uid("late"))) as late:
            joined = await late.request("join", room=room)
            assert [t["sid"] for t in joined["snapshot"]["tracks"]] == [speaker.sid]


async def test_a_speaker_who_leaves_is_taken_off_every_viewers_connection(
    start_hub: StartHub,
) -> None:
    hub = start_hub(env=MEDIA_ENV)
    room = await panel(hub)
    async with member(hub, room, "speaker") as first, member(hub, room) as viewer:
        assert first.publisher is not None and viewer.viewer is not None
        await first.publisher.publish()
        async with member(hub, room, "speaker") as second:
            assert second.publisher is not None
            await second.publisher.publish()
            await viewer.wait(lambda: len([[], *viewer.stages()][-1]) == 2, "two on stage")
            await viewer.viewer.subscribe()
            await viewer.wait(lambda: len(viewer.viewer.tracks) == 2, "both tracks offered")
            await viewer.wait(lambda: len(viewer.frames) == 2, "frames of both")
        # The second speaker left: a new offer carries the first alone.
        await viewer.wait(
            lambda: [t["sid"] for t in viewer.viewer.tracks] == [first.sid], "a new offer"
        )
        assert viewer.stages()[-1] == [{"sid": first.sid, "user": first.user, "kind": "video"}]


async def test_only_the_stage_publishes_and_only_in_panels(start_hub: StartHub) -> None:
    hub = start_hub(env=MEDIA_ENV)
    room = await panel(hub)
    async with member(hub, room) as attendee:
        with pytest.raises(HubRequestError) as refused:
            await attendee.client.request("signal", room=room, to="sfu", type="offer", sdp="v=0")
        assert refused.value.code == "forbidden"
    workshop = uid("workshop")
    async with HubClient(hub.url, token=mint(uid("org"), "organizer")) as org:
        await org.request("room.create", room=workshop, kind="workshop", title="Workshop")
        await org.request("join", room=workshop)
        with pytest.raises(HubRequestError) as refused:
            await org.request("signal", room=workshop, to="sfu", type="subscribe")
        assert refused.value.code == "bad_request"


async def test_the_relay_refuses_viewers_beyond_its_capacity(start_hub: StartHub) -> None:
    hub = start_hub(env={**MEDIA_ENV, "HUB_RELAY_CAPACITY": "1"})
    room = await panel(hub)
    async with (
        member(hub, room, "speaker") as speaker,
        member(hub, room) as first,
        member(hub, room) as second,
    ):
        assert speaker.publisher and first.viewer and second.viewer
        await speaker.publisher.publish()
        await first.wait(lambda: bool(first.stages()), "the stage")
        await first.viewer.subscribe()
        with pytest.raises(HubRequestError) as refused:
            await second.viewer.subscribe()
        assert refused.value.code == "unavailable"
        assert "--sfu janus" in refused.value.msg
        await first.wait(lambda: sum(first.frames.values()) >= 3, "the first viewer's frames")


async def test_a_dead_nodes_speakers_leave_the_stage(start_nodes: StartNodes) -> None:
    a, b = await start_nodes(2, env=MEDIA_ENV)
    room = await panel(a)
    async with member(a, room) as watcher, member(b, room, "speaker") as speaker:
        assert speaker.publisher is not None
        await speaker.publisher.publish()
        on_stage = [{"sid": speaker.sid, "user": speaker.user, "kind": "video"}]
        await watcher.wait(lambda: watcher.stages()[-1:] == [on_stage], "the speaker on stage")
        assert b.process is not None
        b.process.kill()  # kill -9: the speaker's node never takes it off the stage
        await watcher.wait(lambda: watcher.stages()[-1] == [], "the stage emptied")
