"""The hub's rules about Janus (signalling.janus_rules): ``--sfu`` URLs, which server holds a
panel, what Janus's ``streams`` lists say, and each viewer's simulcast layers. No I/O."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from signalling.janus_rules import (
    HIGH,
    LOW,
    Update,
    appearance,
    carried_feeds,
    create_room,
    feeds_of,
    janus_urls,
    layer_changes,
    layers,
    missing_feed,
    published_kinds,
    server_index,
    update,
    watched_tracks,
)
from signalling.sfu import StageTrack, WatchedTrack


def test_sfu_urls_become_websocket_urls() -> None:
    assert janus_urls(["janus+ws://10.0.0.5:8188"]) == ("ws://10.0.0.5:8188",)
    assert janus_urls(["janus+wss://a.example/janus, janus+ws://b:8188", "janus+ws://[::1]:1"]) == (
        "wss://a.example/janus",
        "ws://b:8188",
        "ws://[::1]:1",
    )
    assert janus_urls([]) == () and janus_urls([" , "]) == ()


@pytest.mark.parametrize(
    "url",
    [
        "ws://a:8188",
        "janus://a:8188",
        "janus+http://a:8188",
        "janus+ws://",
        "janus+ws://:8188",
        "janus+ws://a:99999",
        "janus+ws://a:port",
        "janus+ws://a:8188/?x=1",
        "janus+ws://a:8188/#f",
        "janus+ws://[::1:8188",
        "janus+ws://a b:8188",
    ],
)
def test_what_is_not_a_janus_url_is_refused_by_name(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        janus_urls(["janus+ws://fine:8188", url])
    assert repr(url) in str(refused.value)


def test_a_panel_has_one_server_whoever_asks_and_panels_spread_over_all() -> None:
    # Stable across processes and runs (a digest, not Python's salted hash()): pinned.
    assert [server_index("panel-keynote", n) for n in (1, 2, 3, 4)] == [0, 0, 2, 2]
    counts = Counter(server_index(f"panel-{n}", 3) for n in range(3000))
    assert set(counts) == {0, 1, 2}
    assert all(800 < count < 1200 for count in counts.values())


def test_rooms_are_created_for_a_stage_with_the_hubs_secrets() -> None:
    body = create_room("panel-1", secret="s", admin_key="k")
    assert body["request"] == "create" and body["room"] == "panel-1"
    assert (body["videocodec"], body["publishers"]) == ("vp8", 16)
    assert body["fir_freq"] == 3  # what a viewer's layer switch may wait for
    assert (body["secret"], body["admin_key"]) == ("s", "k")
    bare = create_room("panel-1")
    assert "secret" not in bare and "admin_key" not in bare


def stream(mid: str, feed: str | None, kind: str = "video", **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "mid": mid, "active": feed is not None, **more}
    if feed is not None:
        out.update(feed_id=feed, feed_display=f"user-{feed}")
    return out


def test_an_offers_streams_say_which_mid_carries_whose_track() -> None:
    streams = [
        stream("0", "n.a"),
        stream("1", "n.a", "audio"),
        stream("2", None),  # a feed that left: inactive
        stream("3", "n.b"),
        stream("4", "n.c", "data"),
    ]
    assert watched_tracks(streams) == [
        WatchedTrack("0", "n.a", "user-n.a", "video"),
        WatchedTrack("1", "n.a", "user-n.a", "audio"),
        WatchedTrack("3", "n.b", "user-n.b", "video"),
    ]
    assert carried_feeds(streams) == ["n.a", "n.b"]


def test_a_publishers_kinds_are_its_enabled_media() -> None:
    streams = [
        {"type": "video", "mid": "0"},
        {"type": "audio", "mid": "1"},
        {"type": "video", "mid": "2", "disabled": True},
        {"type": "data", "mid": "3"},
    ]
    assert published_kinds(streams) == ["audio", "video"]
    assert published_kinds([{"type": "data"}]) == []


def track(sid: str, kind: str = "video") -> StageTrack:
    return StageTrack(sid, f"user-{sid}", kind)


def test_a_stage_change_is_one_update_of_feeds() -> None:
    assert feeds_of([track("a"), track("a", "audio"), track("b")]) == ["a", "b"]
    change = update(["a", "c"], ["a", "b"])
    assert change == Update(("c",), ("b",)) and change
    assert not update(["a"], ["a"])


def test_the_order_of_appearance_drops_who_left_and_appends_who_came() -> None:
    assert appearance([], ["b", "a"]) == ["b", "a"]
    assert appearance(["b", "a"], ["a", "c", "b"]) == ["b", "a", "c"]
    assert appearance(["b", "a", "c"], ["a", "c"]) == ["a", "c"]


def test_the_newest_speaker_is_watched_high_and_the_others_low() -> None:
    assert layers(["a"], [track("a")]) == {"a": HIGH}
    tracks = [track("a"), track("b"), track("c")]
    assert layers(["a", "c", "b"], tracks) == {"a": LOW, "c": LOW, "b": HIGH}
    # An audio-only speaker has no layers: the newest with video is high.
    tracks = [track("a"), track("b", "audio")]
    assert layers(["a", "b"], tracks) == {"a": HIGH}


def test_layers_move_only_the_video_streams_of_feeds_whose_layer_changes() -> None:
    streams = [stream("0", "a"), stream("1", "a", "audio"), stream("2", "b"), stream("3", None)]
    wanted = {"a": LOW, "b": HIGH}
    assert layer_changes(streams, wanted, {"a": HIGH, "b": HIGH}) == [
        {"mid": "0", "substream": LOW}
    ]
    assert layer_changes(streams, wanted, wanted) == []
    assert layer_changes(streams, wanted, {}) == [
        {"mid": "0", "substream": LOW},
        {"mid": "2", "substream": HIGH},
    ]


def test_a_missing_feed_is_read_from_janus_s_error() -> None:
    assert missing_feed("No such feed (n1.abc)") == "n1.abc"
    assert missing_feed("No such mid '1' in feed (n1.abc)") is None
    assert missing_feed("No such room (x)") is None
