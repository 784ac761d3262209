"""The stage of a panel through the embedded SFU of a real ``hub serve``: speakers publish with
aiortc, viewers subscribe and get frames, the ``stage`` event and the join snapshot say what is
on stage, and the relay refuses viewers beyond its capacity. Media stays on 127.0.0.1 (the
hub's ``HUB_MEDIA_ADDRESSES``, the test's :func:`loopback_only`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from support.hub_process import HubProcess, mint
from support.rtc_media import loopback_only
from support.stage_member import StageMember, new_panel, stage_member

from livehub_client import HubClient, HubRequestError

from .conftest import StartHub, StartNodes, uid

MEDIA_ENV = {"HUB_MEDIA_ADDRESSES": "127.0.0.1"}


@pytest.fixture(autouse=True)
def _loopback() -> Iterator[None]:
    with loopback_only():
        yield


def member(
    node: HubProcess, room: str, role: str = "attendee", **options: Any
) -> contextlib.AbstractAsyncContextManager[StageMember]:
    """A :func:`stage_member` of ``room`` on ``node``."""
    return stage_member(node.url, room, role, **options)


async def panel(node: HubProcess, room: str | None = None) -> str:
    """A new panel on ``node``."""
    return await new_panel(node.url, room)


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
