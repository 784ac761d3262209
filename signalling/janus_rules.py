"""What the hub decides about Janus without talking to it: the ``--sfu`` URLs, which server
holds a panel's VideoRoom, the room's settings, what Janus's ``streams`` lists say, and which
simulcast layer each viewer gets of each speaker. No I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from signalling.sfu import StageTrack, WatchedTrack

# `--sfu` schemes and the WebSocket scheme each stands for.
SCHEMES: Final = {"janus+ws": "ws", "janus+wss": "wss"}
# Janus's VideoRoom simulcast substreams: the lowest layer for thumbnails, the highest for the
# speaker a viewer watches big.
LOW: Final = 0
HIGH: Final = 2
# A panel's stage: speakers and moderators publishing at once, with room to spare.
PUBLISHERS: Final = 16
MEDIA_KINDS: Final = ("audio", "video")

_NO_SUCH_FEED = re.compile(r"No such feed \((.+)\)")

Stream = Mapping[str, Any]


def janus_urls(values: Iterable[str]) -> tuple[str, ...]:
    """The WebSocket URLs of the Janus servers ``--sfu`` names: each value is one
    ``janus+ws://HOST[:PORT][/PATH]`` or ``janus+wss://...`` URL, or several separated by
    commas; ``janus+`` is dropped. Raises ValueError naming the first URL that is not one."""
    urls = []
    for value in values:
        for word in value.split(","):
            url = word.strip()
            if url:
                urls.append(_ws_url(url))
    return tuple(urls)


def _ws_url(url: str) -> str:
    wrong = f"{url!r} is not a janus+ws:// or janus+wss:// URL with a host"
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError(wrong)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- ValueError for a port that is not one
    except ValueError:
        raise ValueError(wrong) from None
    if parts.scheme not in SCHEMES or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(wrong)
    return SCHEMES[parts.scheme] + url[len(parts.scheme) :]


def server_index(room: str, servers: int) -> int:
    """Which of ``servers`` Janus servers holds ``room``'s VideoRoom: a hash of the room id that
    every node (and every process) computes alike."""
    digest = hashlib.sha256(room.encode()).digest()
    return int.from_bytes(digest[:8], "big") % servers


# How often Janus asks each speaker for a keyframe (seconds): what a layer switch may wait.
FIR_SECONDS = 3


def create_room(
    room: str, *, secret: str | None = None, admin_key: str | None = None
) -> dict[str, Any]:
    """The VideoRoom ``create`` request for a panel: the room id is the panel id (string ids),
    VP8 video (which speakers may simulcast) and Opus audio, at most :data:`PUBLISHERS` on
    stage; ``secret`` guards the room's destruction and edits, ``admin_key`` is the one Janus
    asks of whoever creates rooms, when it asks one."""
    body: dict[str, Any] = {
        "request": "create",
        "room": room,
        "description": room,
        "publishers": PUBLISHERS,
        "videocodec": "vp8",
        "audiocodec": "opus",
        "notify_joining": False,
        # Janus switches a viewer's simulcast layer on a keyframe of the new layer; browsers
        # ignore most one-off requests, so Janus asks every speaker for one every few seconds.
        "fir_freq": FIR_SECONDS,
    }
    if secret is not None:
        body["secret"] = secret
    if admin_key is not None:
        body["admin_key"] = admin_key
    return body


def published_kinds(streams: Sequence[Stream]) -> list[str]:
    """The kinds a publisher's ``configured`` streams carry (audio, video), sorted."""
    return sorted(
        {
            str(s.get("type"))
            for s in streams
            if s.get("type") in MEDIA_KINDS and not s.get("disabled", False)
        }
    )


def _carries(stream: Stream) -> bool:
    return (
        bool(stream.get("active", True))
        and stream.get("feed_id") is not None
        and stream.get("type") in MEDIA_KINDS
    )


def watched_tracks(streams: Sequence[Stream]) -> list[WatchedTrack]:
    """The stage tracks a subscriber's offer carries, from the ``streams`` Janus sent with it:
    the active ones, each with its ``mid``, feed (the publishing sid) and feed display (its
    user)."""
    return [
        WatchedTrack(
            str(s.get("mid")),
            str(s["feed_id"]),
            str(s.get("feed_display") or ""),
            str(s.get("type")),
        )
        for s in streams
        if _carries(s)
    ]


def carried_feeds(streams: Sequence[Stream]) -> list[str]:
    """The feeds (publishing sids) a subscriber's ``streams`` carry, in order, once each."""
    return list(dict.fromkeys(str(s["feed_id"]) for s in streams if _carries(s)))


def feeds_of(tracks: Sequence[StageTrack]) -> list[str]:
    """The publishing sids of stage tracks, in order, once each."""
    return list(dict.fromkeys(t.sid for t in tracks))


@dataclass(frozen=True, slots=True)
class Update:
    """A subscriber's ``update``: the feeds to add and those to drop (either may be empty)."""

    subscribe: tuple[str, ...]
    unsubscribe: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.subscribe or self.unsubscribe)


def update(wanted: Sequence[str], carried: Sequence[str]) -> Update:
    """What turns the ``carried`` feeds into the ``wanted`` ones."""
    return Update(
        tuple(f for f in wanted if f not in carried), tuple(f for f in carried if f not in wanted)
    )


def appearance(order: Sequence[str], feeds: Sequence[str]) -> list[str]:
    """``order`` (feeds in the order they appeared) brought up to date with ``feeds``: those
    gone are dropped, new ones appended."""
    kept = [f for f in order if f in feeds]
    return kept + [f for f in feeds if f not in kept]


def layers(order: Sequence[str], tracks: Sequence[StageTrack]) -> dict[str, int]:
    """The simulcast substream a viewer gets of each feed with video: the speaker who appeared
    on its stage last (``order``: feeds by appearance) is its active speaker, watched high;
    the others are thumbnails, low. One speaker alone is high."""
    video = {t.sid for t in tracks if t.kind == "video"}
    ranked = [f for f in order if f in video]
    return {feed: HIGH if i == len(ranked) - 1 else LOW for i, feed in enumerate(ranked)}


def layer_changes(
    streams: Sequence[Stream], wanted: Mapping[str, int], asked: Mapping[str, int]
) -> list[dict[str, Any]]:
    """The subscriber ``configure`` entries (``{mid, substream}``) that move the video streams
    of ``streams`` to the ``wanted`` layer of their feed, for the feeds whose layer was
    ``asked`` otherwise."""
    changes = []
    for s in streams:
        feed = str(s.get("feed_id"))
        video = _carries(s) and s.get("type") == "video"
        if video and feed in wanted and asked.get(feed) != wanted[feed]:
            changes.append({"mid": str(s.get("mid")), "substream": wanted[feed]})
    return changes


def missing_feed(reason: str) -> str | None:
    """The feed a VideoRoom ``No such feed (X)`` error names, else None."""
    match = _NO_SUCH_FEED.search(reason)
    return match.group(1) if match else None
