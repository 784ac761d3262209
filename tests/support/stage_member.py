"""A member of a panel for stage tests: a client with its stage links (publishing a synthetic
video track, watching and counting frames without bound), the events it got, and ways to wait
for them; and the panel itself.

    async with stage_member(node.url, room, "speaker") as speaker:
        await speaker.publisher.publish()
        await viewer.wait(lambda: viewer.stage() == speaker.on_stage(), "the speaker on stage")
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from livehub_client import HubClient
from livehub_client.stage import StagePublisher, StageViewer, run_stage
from support.hub_process import mint
from support.rtc_media import SyntheticVideoTrack
from support.waiting import eventually

MEDIA_T = 20.0  # connecting and the first frames, on a busy machine


@dataclass
class StageMember:
    """A client in a panel, its stage links, and what it saw."""

    client: HubClient
    room: str
    publisher: StagePublisher = field(init=False)
    viewer: StageViewer = field(init=False)
    events: list[dict[str, Any]] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)  # received track id -> frames
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

    def on_stage(self) -> list[dict[str, str]]:
        """This member's video as the stage event lists it."""
        return [{"sid": self.sid, "user": self.user, "kind": "video"}]

    def stages(self) -> list[list[dict[str, Any]]]:
        """The ``tracks`` of every ``stage`` event received, in order."""
        return [e["tracks"] for e in self.events if e.get("ev") == "stage"]

    def stage(self) -> list[dict[str, Any]] | None:
        """The last stage event's tracks (None before any)."""
        stages = self.stages()
        return stages[-1] if stages else None

    def offered(self) -> list[str]:
        """The sids whose tracks the SFU's last offer carries."""
        return [t["sid"] for t in self.viewer.tracks]

    def total(self) -> int:
        return sum(self.frames.values())

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
async def stage_member(
    url: str,
    room: str,
    role: str = "attendee",
    *,
    retry: bool = False,
    publisher: type[StagePublisher] = StagePublisher,
) -> AsyncIterator[StageMember]:
    """A member of ``room`` (a fresh user of ``role``) whose SFU signals a :func:`run_stage`
    task routes; its links, tasks and sources end with the block."""
    user = f"{role}-{secrets.token_hex(4)}"
    async with HubClient(url, token=mint(user, role)) as client:
        await client.request("join", room=room)
        joined = StageMember(client, room)
        joined.publisher = publisher(client, room, joined.publish_pc, retry=retry)
        joined.viewer = StageViewer(client, room, joined.watch_pc, retry=retry)
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


async def new_panel(url: str, room: str | None = None) -> str:
    """A panel created by an organizer (a fresh id unless ``room`` is given)."""
    room = room or f"panel-{secrets.token_hex(4)}"
    async with HubClient(url, token=mint(f"org-{secrets.token_hex(4)}", "organizer")) as org:
        await org.request("room.create", room=room, kind="panel", title="Panel")
    return room
