"""JanusSfu (signalling.janus_sfu) against a fake Janus VideoRoom on 127.0.0.1 that keeps the
books the real one keeps for a subscriber (its streams, whether its last offer was answered,
an offer it owes), so that orders of events a real Janus produces only by chance can be played
exactly: a publisher leaving while an offer is out, an update Janus postpones, a feed that is not
there. The real Janus is in tests/integration/test_stage_janus.py."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.hub_process import free_port
from support.waiting import eventually
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from hub.errors import HubError
from signalling.janus_sfu import GONE, JanusSettings, JanusSfu
from signalling.sfu import Leg, StageTrack, WatchedTrack

Message = dict[str, Any]
TIMEOUT = 5.0


@dataclass
class Handle:
    id: int
    kind: str = ""
    room: str = ""
    feed: str = ""  # a publisher's id
    streams: list[Message] = field(default_factory=list)  # a subscriber's
    answered: bool = True
    owes: bool = False  # an offer postponed until the answer
    requests: list[Message] = field(default_factory=list)


class FakeVideoRoom:
    """A Janus with the VideoRoom, as far as the hub uses it (string ids, autoupdate on)."""

    def __init__(self) -> None:
        self.ws: ServerConnection | None = None
        self.ids = itertools.count(100)
        self.handles: dict[int, Handle] = {}
        self.rooms: set[str] = set()
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def serve(self, ws: ServerConnection) -> None:
        self.ws = ws
        async for raw in ws:
            request = json.loads(raw)
            for message in self.answer(request):
                await ws.send(json.dumps(message))

    async def push(self, message: Message) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    def answer(self, request: Message) -> list[Message]:
        kind, transaction = request["janus"], request["transaction"]
        success = {"janus": "success", "transaction": transaction}
        if kind in ("create", "attach"):
            handle = Handle(next(self.ids))
            if kind == "attach":
                self.handles[handle.id] = handle
            return [{**success, "data": {"id": handle.id}}]
        if kind in ("keepalive", "trickle"):
            return [{"janus": "ack", "transaction": transaction}]
        if kind == "detach":
            self.leave(self.handles.pop(request["handle_id"]))
            return [success]
        if kind != "message":
            return [success]
        handle = self.handles[request["handle_id"]]
        handle.requests.append(request["body"])
        data, jsep = self.plugin(handle, request["body"])
        event: Message = {"janus": "event", "transaction": transaction, "sender": handle.id}
        event["plugindata"] = {"plugin": "janus.plugin.videoroom", "data": data}
        if jsep is not None:
            event["jsep"] = jsep
        return [{"janus": "ack", "transaction": transaction}, event]

    def publishers(self, room: str) -> dict[str, Handle]:
        return {h.feed: h for h in self.handles.values() if h.kind == "pub" and h.room == room}

    def plugin(self, handle: Handle, body: Message) -> tuple[Message, Message | None]:
        request = body["request"]
        if request == "create":
            if body["room"] in self.rooms:
                return {"error_code": 427, "error": "Room exists"}, None
            self.rooms.add(body["room"])
            return {"videoroom": "created"}, None
        if request == "join" and body["ptype"] == "publisher":
            handle.kind, handle.room, handle.feed = "pub", body["room"], body["id"]
            return {"videoroom": "joined"}, None
        if request == "publish":
            return {"configured": "ok", "streams": [{"type": "video", "mid": "0"}]}, {
                "type": "answer",
                "sdp": f"answer-{handle.feed}",
            }
        if request == "join":
            handle.kind, handle.room = "sub", body["room"]
            if body["room"] not in self.rooms:
                return {"error_code": 426, "error": "No such room"}, None
            missing = self.missing(handle.room, body["streams"])
            if missing:
                return missing, None
            self.add(handle, body["streams"])
            return self.offer(handle, "attached")
        if request == "start":
            handle.answered = True
            return {"started": "ok"}, None
        if request == "update":
            missing = self.missing(handle.room, body.get("subscribe", []))
            if missing:
                return missing, None
            for entry in body.get("unsubscribe", []):
                self.remove(handle, entry["feed"])
            self.add(handle, body.get("subscribe", []))
            if not handle.answered:
                handle.owes = True
                return {"videoroom": "updating"}, None
            return self.offer(handle, "updated")
        if request == "configure":
            return {"configured": "ok"}, None
        return {"error_code": 499, "error": f"unexpected {request}"}, None

    def missing(self, room: str, entries: Sequence[Message]) -> Message | None:
        for entry in entries:
            if entry["feed"] not in self.publishers(room):
                return {"error_code": 428, "error": f"No such feed ({entry['feed']})"}
        return None

    def add(self, handle: Handle, entries: Sequence[Message]) -> None:
        for entry in entries:  # as Janus: a feed asked for twice is carried twice
            stream = {"type": "video", "mid": str(len(handle.streams)), "active": True}
            stream.update(feed_id=entry["feed"], feed_display=f"user-{entry['feed']}")
            handle.streams.append(stream)

    def remove(self, handle: Handle, feed: str) -> None:
        for stream in handle.streams:
            if stream.get("feed_id") == feed:
                stream.clear()
                stream.update(type="video", mid=stream.get("mid", "?"), active=False)

    def offer(self, handle: Handle, what: str) -> tuple[Message, Message]:
        handle.answered = False
        streams = [dict(s) for s in handle.streams]
        return {"videoroom": what, "streams": streams}, {"type": "offer", "sdp": what}

    def leave(self, publisher: Handle) -> None:
        """A publisher's handle is gone: its subscribers lose its streams (and get a new offer,
        at once or once they answer)."""
        if publisher.kind != "pub":
            return
        for handle in list(self.handles.values()):
            if handle.kind == "sub" and any(
                s.get("feed_id") == publisher.feed for s in handle.streams
            ):
                self.remove(handle, publisher.feed)
                if handle.answered:
                    data, jsep = self.offer(handle, "autoupdated")
                    event = {"janus": "event", "sender": handle.id, "jsep": jsep}
                    event["plugindata"] = {"data": data}
                    task = asyncio.ensure_future(self.push(event))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                else:
                    handle.owes = True

    def owed_offer(self, handle: Handle) -> Message | None:
        """What Janus sends after a ``start``: the offer it owed, if it owed one."""
        if not handle.owes:
            return None
        handle.owes = False
        data, jsep = self.offer(handle, "owed")
        return {"janus": "event", "sender": handle.id, "jsep": jsep, "plugindata": {"data": data}}

    def subscriber(self) -> Handle:
        (handle,) = [h for h in self.handles.values() if h.kind == "sub"]
        return handle


class StartOwing(FakeVideoRoom):
    """Sends an owed offer right after the ``started`` event, as Janus does."""

    def answer(self, request: Message) -> list[Message]:
        messages = super().answer(request)
        if request["janus"] == "message" and request["body"]["request"] == "start":
            owed = self.owed_offer(self.handles[request["handle_id"]])
            if owed is not None:
                messages.append(owed)
        return messages


@dataclass
class Listener:
    offers: list[tuple[str, str, str, list[WatchedTrack]]] = field(default_factory=list)
    published: list[tuple[str, str, str, list[str]]] = field(default_factory=list)
    byes: list[tuple[str, str, Leg, str]] = field(default_factory=list)

    async def sfu_offer(
        self, room: str, sid: str, sdp: str, tracks: Sequence[WatchedTrack]
    ) -> None:
        self.offers.append((room, sid, sdp, list(tracks)))

    async def sfu_published(self, room: str, sid: str, user: str, kinds: Sequence[str]) -> None:
        self.published.append((room, sid, user, list(kinds)))

    async def sfu_bye(self, room: str, sid: str, leg: Leg, reason: str) -> None:
        self.byes.append((room, sid, leg, reason))

    def last_feeds(self) -> list[str]:
        return [t.sid for t in self.offers[-1][3]]


@pytest.fixture
async def janus() -> AsyncIterator[StartOwing]:
    fake = StartOwing()
    protocols = [Subprotocol("janus-protocol")]
    async with serve(fake.serve, "127.0.0.1", 0, subprotocols=protocols) as server:
        fake.port = next(iter(server.sockets)).getsockname()[1]
        yield fake


@pytest.fixture
async def sfu(janus: FakeVideoRoom) -> AsyncIterator[tuple[JanusSfu, Listener]]:
    listener = Listener()
    sfu = JanusSfu(JanusSettings((janus.url,), room_secret="s"))
    sfu.start(listener)
    await eventually(lambda: sfu.degraded() is None, TIMEOUT, "connected")
    yield sfu, listener
    await sfu.close()


def track(sid: str) -> StageTrack:
    return StageTrack(sid, f"user-{sid}", "video")


async def publish(janus: FakeVideoRoom, sfu: JanusSfu, listener: Listener, *sids: str) -> None:
    for sid in sids:
        assert await sfu.publish("p", sid, f"user-{sid}", "offer") == f"answer-{sid}"
        handle = janus.publishers("p")[sid]
        await janus.push({"janus": "webrtcup", "sender": handle.id})
    await eventually(lambda: len(listener.published) >= len(sids), TIMEOUT, "published")


async def test_a_speaker_is_announced_once_janus_has_its_connection_up(
    janus: FakeVideoRoom, sfu: tuple[JanusSfu, Listener]
) -> None:
    hub, listener = sfu
    await publish(janus, hub, listener, "a")
    assert listener.published == [("p", "a", "user-a", ["video"])]
    # A second speaker finds the room there: "Room exists" is success.
    await publish(janus, hub, listener, "b")
    assert janus.publishers("p")["a"].requests[0] == {
        "request": "create", "room": "p", "description": "p", "publishers": 16,
        "videocodec": "vp8", "audiocodec": "opus", "notify_joining": False, "fir_freq": 3,
        "secret": "s",
    }  # fmt: skip
    assert hub.legs("p", "a") == {Leg.PUBLISH}
    # Janus hangs up on a speaker: its leg ends with a bye.
    await janus.push({"janus": "hangup", "sender": janus.publishers("p")["b"].id})
    await eventually(lambda: bool(listener.byes), TIMEOUT, "a bye")
    assert listener.byes == [("p", "b", Leg.PUBLISH, "the connection failed")]
    assert hub.legs("p", "b") == set()


async def test_a_feed_janus_lacks_is_left_out_until_the_stage_changes(
    janus: FakeVideoRoom, sfu: tuple[JanusSfu, Listener]
) -> None:
    hub, listener = sfu
    await hub.subscribe("p", "v", [track("a")])  # no room yet: nothing to offer
    assert listener.offers == [] and hub.legs("p", "v") == {Leg.WATCH}
    await publish(janus, hub, listener, "a")
    await hub.watch("p", "v", [track("gone"), track("a")])  # "gone": a stale stage entry
    assert listener.offers[-1][3] == [WatchedTrack("0", "a", "user-a", "video")]
    with pytest.raises(HubError) as refused:
        await hub.answer("p", "nobody", "answer")
    assert refused.value.code == "not_found"
    await hub.answer("p", "v", "answer")
    with pytest.raises(HubError) as refused:
        await hub.answer("p", "v", "answer")
    assert refused.value.code == "conflict"


async def test_a_stage_change_while_an_offer_is_out_waits_and_adds_no_feed_twice(
    janus: FakeVideoRoom, sfu: tuple[JanusSfu, Listener]
) -> None:
    hub, listener = sfu
    await publish(janus, hub, listener, "a", "b")
    await hub.subscribe("p", "v", [track("a")])
    assert listener.last_feeds() == ["a"] and len(listener.offers) == 1
    # While the offer is out: a leaves Janus (Janus owes an offer), b comes on stage.
    await hub.hangup("p", "a", Leg.PUBLISH)
    await hub.watch("p", "v", [track("b")])
    assert len(listener.offers) == 1  # nothing asked of Janus while an offer is out
    # The answer: Janus sends what it owed, and the hub's update (b) is postponed.
    await hub.answer("p", "v", "answer")
    await eventually(lambda: len(listener.offers) == 2, TIMEOUT, "the owed offer")
    assert listener.last_feeds() == []
    await hub.answer("p", "v", "answer")
    await eventually(lambda: len(listener.offers) == 3, TIMEOUT, "the postponed offer")
    assert listener.last_feeds() == ["b"]
    await hub.answer("p", "v", "answer")
    feeds = [s.get("feed_id") for s in janus.subscriber().streams if s.get("active")]
    assert feeds == ["b"]  # once
    updates = [r for r in janus.subscriber().requests if r["request"] == "update"]
    assert updates == [{"request": "update", "subscribe": [{"feed": "b", "substream": 2}],
                        "unsubscribe": [{"feed": "a"}]}]  # fmt: skip


async def test_the_newest_speaker_is_moved_high_and_the_others_low(
    janus: FakeVideoRoom, sfu: tuple[JanusSfu, Listener]
) -> None:
    hub, listener = sfu
    await publish(janus, hub, listener, "a", "b", "c")
    await hub.subscribe("p", "v", [track("a"), track("b")])
    join = janus.subscriber().requests[0]
    assert join["streams"] == [{"feed": "a", "substream": 0}, {"feed": "b", "substream": 2}]
    await hub.answer("p", "v", "answer")
    await hub.watch("p", "v", [track("a"), track("b"), track("c")])
    requests = janus.subscriber().requests
    assert requests[-2] == {"request": "update", "subscribe": [{"feed": "c", "substream": 2}]}
    assert requests[-1] == {"request": "configure", "streams": [{"mid": "1", "substream": 0}]}


async def test_janus_going_away_ends_every_leg_and_it_comes_back(
    janus: FakeVideoRoom, sfu: tuple[JanusSfu, Listener]
) -> None:
    hub, listener = sfu
    await publish(janus, hub, listener, "a")
    await hub.subscribe("p", "v", [track("a")])
    assert janus.ws is not None
    janus.ws.transport.abort()
    await eventually(lambda: len(listener.byes) == 2, TIMEOUT, "byes")
    assert sorted(listener.byes) == [("p", "a", Leg.PUBLISH, GONE), ("p", "v", Leg.WATCH, GONE)]
    assert hub.legs("p", "a") == hub.legs("p", "v") == set()
    await eventually(lambda: hub.degraded() is None, TIMEOUT, "connected again")
    assert hub.losses == 1 and hub.servers() == [("janus 1/1", True)]
    assert hub.leg_counts() == {Leg.PUBLISH: 0, Leg.WATCH: 0}
    janus.rooms.clear()  # a restarted Janus has no rooms: the next publisher makes it again
    await publish(janus, hub, listener, "a")
    assert "p" in janus.rooms


async def test_while_janus_is_down_the_stage_is_unavailable() -> None:
    sfu = JanusSfu(JanusSettings((f"ws://127.0.0.1:{free_port()}",)))
    sfu.start(Listener())
    try:
        await eventually(lambda: "cannot connect" in (sfu.degraded() or ""), TIMEOUT, "down")
        assert sfu.degraded() == "janus 1/1: cannot connect: Connection refused"
        for attempt in (sfu.publish("p", "a", "u", "offer"), sfu.subscribe("p", "v", [])):
            with pytest.raises(HubError) as refused:
                await attempt
            assert refused.value.code == "unavailable"
    finally:
        await sfu.close()
