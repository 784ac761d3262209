"""The web app's stage through Janus: speakers in Chromium simulcast their camera to Janus (the
hello says the SFU takes it), the audience's pages play it, and each viewer gets the layer of
each speaker the hub chose for it (the newest speaker on its stage high, the others low).

Janus runs in a network namespace of its own (:class:`~support.janus.JanusServer`); Chromium
runs on the host, reaching the hub on loopback and Janus over the veth: Janus's only address is
the namespace end of the veth, whose /30 is the only route there, so no media leaves the
machine whatever interfaces Chromium gathers on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import WAIT_MS, People, Person, write_rooms
from tests.conftest import TIMEOUT
from tests.support.hub_process import HubProcess
from tests.support.janus import JanusServer
from tests.support.system import require_janus, require_netns
from tests.support.waiting import until

ADMIN_KEY = "videoroom-admin-key-of-the-test"
ROOM_SECRET = "room-secret-of-the-test"


@pytest.fixture(scope="module")
def janus() -> Iterator[JanusServer]:
    """The module's Janus: rooms need the admin key."""
    require_netns()
    server = JanusServer(binary=require_janus(), room_admin_key=ADMIN_KEY)
    try:
        # Chromium starts after the veth's addresses settled (NetNamespace.settled).
        until(server.namespace.settled, TIMEOUT, "the veth's addresses settled")
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def janus_hub(tmp_path_factory: pytest.TempPathFactory, janus: JanusServer) -> Iterator[HubProcess]:
    """A memory-mode hub (with a secret, admitting guests) whose SFU is the module's Janus."""
    rooms = write_rooms(Path(tmp_path_factory.mktemp("rooms")))
    env = {"HUB_SFU": janus.sfu_url, "HUB_SFU_ADMIN_KEY": ADMIN_KEY,
           "HUB_SFU_ROOM_SECRET": ROOM_SECRET}  # fmt: skip
    process = HubProcess(args=["--guests", "--rooms", str(rooms)], env=env)
    try:
        yield process.start()
    finally:
        process.stop()


def handles(janus: JanusServer) -> list[dict[str, Any]]:
    """The ``handle_info`` of every handle Janus holds now."""
    infos = []
    for session in janus.sessions():
        for handle in janus.handles(session):
            infos.append(janus.admin("handle_info", session, handle)["info"])
    return infos


def published_rids(janus: JanusServer, user: str) -> list[str] | None:
    """The rids of the video ``user`` publishes, as Janus received them (None: not simulcast,
    or not publishing)."""
    for info in handles(janus):
        if info.get("plugin_specific", {}).get("display") != user:
            continue
        for medium in (info.get("webrtc", {}).get("media") or {}).values():
            if medium.get("type") == "video" and "rid-simulcast" in medium:
                return list(medium["rid-simulcast"]["rid"])
    return None


def feed_of(janus: JanusServer, user: str) -> str | None:
    """The Janus feed id (the sid) of ``user``'s publisher handle."""
    for info in handles(janus):
        specific = info.get("plugin_specific", {})
        if specific.get("type") == "publisher" and specific.get("display") == user:
            return str(specific["id"])
    return None


def layers(janus: JanusServer) -> list[dict[str, tuple[int, int]]]:
    """For each subscriber handle: feed -> (the substream the hub asked for, the one Janus
    sends now) of each video it carries."""
    found = []
    for info in handles(janus):
        specific = info.get("plugin_specific", {})
        if specific.get("type") != "subscriber":
            continue
        found.append(
            {
                stream["feed_id"]: (
                    stream["simulcast"]["substream-target"],
                    stream["simulcast"]["substream"],
                )
                for stream in specific.get("streams", [])
                if stream.get("type") == "video" and "simulcast" in stream
            }
        )
    return found


def targets(janus: JanusServer) -> list[dict[str, int]]:
    """For each subscriber handle: feed -> the substream the hub asked for."""
    return [{feed: target for feed, (target, _) in each.items()} for each in layers(janus)]


def vic_layers(janus: JanusServer, *feeds: str) -> dict[str, tuple[int, int]]:
    """The layers of the one subscriber that carries all of ``feeds``."""
    (found,) = [each for each in layers(janus) if set(each) == set(feeds)]
    return found


def playing(viewer: Person, name: str) -> Any:
    """The element handle of the video of ``name``'s tile on ``viewer``'s stage, once it plays."""
    tile = viewer.page.get_by_role("region", name="Stage").get_by_role(
        "figure", name=re.compile(f"^{name}")
    )
    video = tile.locator("video")
    expect(video).to_be_visible(timeout=3 * WAIT_MS)
    handle = video.element_handle()
    viewer.page.wait_for_function("video => video.videoWidth > 0", arg=handle, timeout=3 * WAIT_MS)
    return handle


def plays_at(viewer: Person, video: Any, width: int) -> None:
    """Wait until ``video`` plays ``width`` pixels wide on ``viewer``'s page."""
    viewer.page.wait_for_function(
        "([video, width]) => video.videoWidth === width", arg=[video, width], timeout=3 * WAIT_MS
    )


def test_speakers_simulcast_and_each_viewer_gets_the_layers_the_hub_chose(
    janus_hub: HubProcess, janus: JanusServer, people: People
) -> None:
    _, (sam, tia, vic) = people.in_new_room(
        janus_hub, "panel", ("Sam", "speaker"), ("Tia", "speaker"), ("Vic", "attendee")
    )
    sam.page.get_by_role("button", name="Go live").click()
    sam_video = playing(vic, "Sam")
    # The hello said Janus takes simulcast: Sam's camera (640x360) goes in two layers, highest
    # first, and Janus receives both.
    until(lambda: published_rids(janus, sam.user) == ["h", "l"], TIMEOUT, "Sam's two layers")
    sam_feed = feed_of(janus, sam.user)
    assert sam_feed is not None
    # Alone on stage, Sam is every viewer's newest speaker: the hub asks for the highest
    # substream (2), and Janus sends the highest Sam has (1, the full 640x360).
    until(
        lambda: [each.get(sam_feed) for each in layers(janus)] == [(2, 1), (2, 1)],
        TIMEOUT,
        "Sam high for Tia and Vic",
    )
    plays_at(vic, sam_video, 640)

    tia.page.get_by_role("button", name="Go live").click()
    tia_video = playing(vic, "Tia")
    until(lambda: published_rids(janus, tia.user) == ["h", "l"], TIMEOUT, "Tia's two layers")
    tia_feed = feed_of(janus, tia.user)
    assert tia_feed is not None
    # Tia is now Vic's newest speaker: the hub asks for Tia high and Sam low. The speakers,
    # who each watch the other only, keep that one high.
    expected = sorted([{tia_feed: 2}, {sam_feed: 2}, {sam_feed: 0, tia_feed: 2}], key=str)
    until(
        lambda: sorted(targets(janus), key=str) == expected,
        TIMEOUT,
        f"the layers the hub asks for after Tia went live ({expected})",
    )
    # Janus sends Vic Tia's highest layer, the full 640x360.
    until(lambda: vic_layers(janus, sam_feed, tia_feed)[tia_feed] == (2, 1), TIMEOUT, "Tia high")
    plays_at(vic, tia_video, 640)
    # Janus moves Sam down to the low layer for Vic (320x180) at that layer's next keyframe,
    # which it asks Sam for every few seconds.
    until(lambda: vic_layers(janus, sam_feed, tia_feed)[sam_feed] == (0, 0), 4 * TIMEOUT, "Sam low")
