"""One real ``hub serve`` process in memory mode (no Redis), driven over the wire: hello and
guests, both wire formats, rooms and recovery, the HTTP API, every close code of the contract,
slow consumers and SIGTERM draining.

Most tests share the module's hub (unique users and rooms keep them apart); those that need
special flags or limits start a private one. No test sleeps to synchronise: each waits for a reply,
an event or a close with a timeout, and polls an HTTP endpoint only where no event exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import re
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from hub.codec import DecodeLimits, WireFormat, decode_frame, encode_message, join_frame
from livehub_client import HubClient, HubClosed, HubRequestError
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartHub
from tests.support.hub_process import TEST_SECRET, HubProcess, mint

pytestmark = pytest.mark.integration

Msg = dict[str, Any]
MSGPACK = WireFormat.MSGPACK
JSON = WireFormat.JSON
# Server frames may coalesce many messages: decode them far more loosely than the server does.
SERVER_FRAMES = DecodeLimits(
    max_frame_bytes=16 * 2**20, max_container_items=100_000, max_messages_per_frame=100_000
)


def uid(prefix: str) -> str:
    """A unique user or room id (room ids: lower case, digits, dashes)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def client(hub: HubProcess, user: str, role: str = "attendee", **kwargs: Any) -> HubClient:
    """A HubClient with a token for ``user``; it does not reconnect unless told to."""
    kwargs.setdefault("reconnect", False)
    kwargs.setdefault("request_timeout", TIMEOUT)
    return HubClient(hub.url, token=mint(user, role), **kwargs)


@contextlib.asynccontextmanager
async def organizer(hub: HubProcess) -> AsyncIterator[HubClient]:
    async with client(hub, uid("org"), "organizer") as org:
        yield org


async def new_room(org: HubClient, kind: str = "workshop") -> str:
    room = uid(kind)
    await org.request("room.create", room=room, kind=kind, title=f"Room {room}")
    return room


def is_notice(room: str) -> Callable[[Msg], bool]:
    return lambda ev: ev.get("ev") == "notice" and ev.get("room") == room


class Raw:
    """A bare WebSocket to the hub, for frames the HubClient would never send."""

    def __init__(self, ws: ClientConnection, fmt: WireFormat) -> None:
        self.ws = ws
        self.fmt = fmt
        self.seen: list[Msg] = []  # every message received, in order

    async def send(self, *messages: Msg) -> None:
        """Send ``messages`` in one frame."""
        parts = [encode_message(self.fmt, m) for m in messages]
        await self.ws.send(join_frame(self.fmt, parts))

    async def recv(self) -> list[Msg]:
        """The messages of the next frame."""
        async with asyncio.timeout(TIMEOUT):
            frame = await self.ws.recv()
        assert isinstance(frame, bytes if self.fmt.binary else str), "frame of the wrong type"
        messages = decode_frame(self.fmt, frame, SERVER_FRAMES)
        self.seen.extend(messages)
        return messages

    async def reply(self, command_id: int) -> Msg:
        """Read until the reply to ``command_id`` (events read meanwhile stay in ``seen``)."""
        while True:
            for message in await self.recv():
                if message.get("re") == command_id:
                    return message

    async def hello(self, token: str) -> Msg:
        await self.send({"id": 1, "op": "hello", "token": token})
        reply = await self.reply(1)
        assert "ok" in reply, reply
        ok: Msg = reply["ok"]
        return ok

    async def closed(self) -> tuple[int | None, str]:
        """Read until the hub closes the connection; its close code and reason."""
        try:
            while True:
                await self.recv()
        except ConnectionClosed as exc:
            if exc.rcvd is None:
                return None, ""
            return exc.rcvd.code, exc.rcvd.reason


@contextlib.asynccontextmanager
async def raw(
    hub: HubProcess, fmt: WireFormat = MSGPACK, subprotocols: list[str] | None = None, **kwargs: Any
) -> AsyncIterator[Raw]:
    offered = [fmt.value] if subprotocols is None else subprotocols
    async with connect(
        hub.url,
        subprotocols=[Subprotocol(p) for p in offered] or None,
        compression=None,
        open_timeout=TIMEOUT,
        max_size=None,
        **kwargs,
    ) as ws:
        yield Raw(ws, fmt)


async def metrics(hub: HubProcess, http: httpx.AsyncClient | None = None) -> str:
    """The text of ``/metrics`` (through ``http`` when given: polling reuses one client)."""
    if http is None:
        async with httpx.AsyncClient(base_url=hub.http, timeout=TIMEOUT) as http:
            response = await http.get("/metrics")
    else:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


# --- hello and guests --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["organizer", "moderator", "attendee"])
async def test_hello_with_a_token_returns_the_contract_fields(hub: HubProcess, role: str) -> None:
    user = uid(role)
    token = mint(user, role, name=f"Ada {role}")
    async with HubClient(hub.url, token=token, reconnect=False) as first:
        hello = first.hello
        assert hello is not None
        assert set(hello) >= {"sid", "user", "node", "ice_servers", "limits"}
        assert hello["user"] == {"id": user, "name": f"Ada {role}", "role": role}
        assert isinstance(hello["node"], str) and hello["node"]
        assert isinstance(hello["sid"], str) and hello["sid"].startswith(hello["node"] + ".")
        assert isinstance(hello["ice_servers"], list)
        assert hello["limits"]["max_frame_bytes"] == 64 * 1024
        assert await first.request("ping") == {}
        # One user may hold several sessions at once, each with its own sid.
        async with HubClient(hub.url, token=token, reconnect=False) as second:
            assert second.sid != first.sid
            assert second.user == first.user
        # A second hello on the same connection is refused; the connection stays open.
        with pytest.raises(HubRequestError) as refused:
            await first.request("hello", token=token)
        assert refused.value.code == "conflict"
        assert await first.request("ping") == {}


@pytest.mark.parametrize("trial", [False, True], ids=["guests-flag", "trial-hub"])
async def test_guests_get_an_attendee_identity(start_hub: StartHub, trial: bool) -> None:
    # A trial hub (no --secret) admits guests by default; a hub with a secret needs --guests.
    process = start_hub(secret=None) if trial else start_hub(args=["--guests"])
    async with HubClient(process.url, name="Grace", reconnect=False) as guest:
        user = guest.user
        assert user is not None
        assert user["id"].startswith("guest-")
        assert user["name"] == "Grace"
        assert user["role"] == "attendee"
        async with HubClient(process.url, name="Grace", reconnect=False) as other:
            assert other.user is not None and other.user["id"] != user["id"]  # a fresh id each
        joined = await guest.join("main")
        assert joined["role"] == "attendee"


async def test_a_guest_comes_back_with_its_token_and_renews_it(
    start_hub: StartHub, hub: HubProcess
) -> None:
    env = {"HUB_GUEST_TTL": "600", "HUB_TOKEN_RENEW_MAX": "60"}
    process = start_hub(args=["--guests"], env=env)
    async with HubClient(process.url, name="Grace", reconnect=False) as guest:
        assert guest.hello is not None
        token, user = guest.hello["token"], guest.hello["user"]
        claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])
        assert (claims["sub"], claims["guest"], claims["exp"] - claims["iat"]) == (
            user["id"],
            True,
            600,
        )
    # A reload: the same guest, from its token.
    async with HubClient(process.url, token=token, reconnect=False) as again:
        assert again.hello is not None
        assert again.user == user and "token" not in again.hello
        renewed = await again.request("token.renew")
        claims = jwt.decode(renewed["token"], TEST_SECRET, algorithms=["HS256"])
        assert claims["guest"] is True and claims["exp"] == renewed["exp"]
        assert claims["exp"] - claims["iat"] == 600
        assert await again.refresh(renewed["token"]) == {}
        assert await again.request("ping") == {}
    # Signed in longer ago than HUB_TOKEN_RENEW_MAX: renewal is refused.
    long_ago = time.time() - 120
    old = mint(uid("old"), now=long_ago, ttl=3600, auth_time=long_ago)
    async with HubClient(process.url, token=old, reconnect=False) as stale:
        with pytest.raises(HubRequestError) as refused:
            await stale.request("token.renew")
        assert refused.value.code == "forbidden"
    # The module's hub admits no guests: the same secret, yet the guest's token is refused.
    async with raw(hub) as ws:
        await ws.send({"id": 1, "op": "hello", "token": token})
        assert (await ws.reply(1))["err"]["code"] == "unauthorized"
        assert (await ws.closed())[0] == 4001


async def refused_guest(process: HubProcess) -> None:
    async with raw(process) as ws:
        await ws.send({"id": 1, "op": "hello", "name": "Mallory"})
        reply = await ws.reply(1)
        assert reply["err"]["code"] == "unauthorized"
        code, _ = await ws.closed()
        assert code == 4001


async def test_guests_are_refused_by_a_hub_with_a_secret(hub: HubProcess) -> None:
    await refused_guest(hub)
    with pytest.raises(HubRequestError) as refused:
        await HubClient(hub.url, name="Mallory", reconnect=False).connect()
    assert refused.value.code == "unauthorized"


@pytest.mark.parametrize("trial", [False, True], ids=["secret", "trial-hub"])
async def test_no_guests_flag_refuses_guests(start_hub: StartHub, trial: bool) -> None:
    if trial:
        process = start_hub(args=["--no-guests"], secret=None)
    else:
        process = start_hub(args=["--no-guests"])
    await refused_guest(process)


async def test_a_token_signed_with_another_secret_is_refused(hub: HubProcess) -> None:
    forged = mint("eve", "organizer").rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    async with raw(hub) as ws:
        await ws.send({"id": 1, "op": "hello", "token": forged})
        assert (await ws.reply(1))["err"]["code"] == "unauthorized"
        assert (await ws.closed())[0] == 4001


# --- wire formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "accepted", "fmt"),
    [
        (["hub.v1.msgpack"], "hub.v1.msgpack", MSGPACK),
        (["hub.v1.json"], "hub.v1.json", JSON),
        (["hub.v1.json", "hub.v1.msgpack"], "hub.v1.json", JSON),
        ([], None, MSGPACK),
        (["chat.v9"], None, MSGPACK),
    ],
    ids=["msgpack", "json", "json-first", "none", "unknown"],
)
async def test_wire_formats_and_several_commands_per_frame(
    hub: HubProcess, offered: list[str], accepted: str | None, fmt: WireFormat
) -> None:
    async with raw(hub, fmt, subprotocols=offered) as ws:
        assert ws.ws.subprotocol == accepted
        await ws.send(
            {"id": 1, "op": "hello", "token": mint(uid("fmt"))},
            {"id": 2, "op": "ping"},
            {"op": "ping"},  # no id: no reply
            {"id": 3, "op": "room.list"},
            {"id": 4, "op": "no.such.op"},
            {"id": 5, "op": "ping"},
        )
        replies: dict[int, Msg] = {}
        while len(replies) < 5:
            for message in await ws.recv():  # Raw.recv checks binary/text frames
                assert "re" in message, message
                replies[message["re"]] = message
        assert sorted(replies) == [1, 2, 3, 4, 5]
        assert replies[1]["ok"]["user"]["role"] == "attendee"
        assert replies[2]["ok"] == {} and replies[5]["ok"] == {}
        assert "main" in [room["id"] for room in replies[3]["ok"]["rooms"]]
        assert replies[4]["err"]["code"] == "bad_request"
        # Nothing answered the command without an id: the next reply is the next command's.
        await ws.send({"id": 6, "op": "ping"})
        assert await ws.recv() == [{"re": 6, "ok": {}}]


async def test_json_and_msgpack_clients_share_a_room(hub: HubProcess) -> None:
    async with (
        organizer(hub) as org,
        client(hub, uid("json"), fmt=JSON) as text_client,
        client(hub, uid("mp"), fmt=MSGPACK) as binary_client,
    ):
        room = await new_room(org)
        await text_client.join(room)
        await binary_client.join(room)
        sent = await org.request("announce", room=room, text="héllo, wörld ✓")
        for member in (text_client, binary_client):
            notice = await member.wait_for(is_notice(room), TIMEOUT)
            assert notice["seq"] == sent["seq"]
            assert notice["text"] == "héllo, wörld ✓"


async def test_bad_ids_get_a_reply_with_a_null_re(hub: HubProcess) -> None:
    async with raw(hub) as ws:
        await ws.hello(mint(uid("ids")))
        await ws.send({"id": -3, "op": "ping"}, {"id": "7", "op": "ping"}, {"id": 2, "op": "ping"})
        while len([m for m in ws.seen if "re" in m]) < 4:
            await ws.recv()
        replies = [m for m in ws.seen if "re" in m][1:]
        assert [r["re"] for r in replies] == [None, None, 2]
        assert replies[0]["err"]["code"] == replies[1]["err"]["code"] == "bad_request"


# --- rooms: join, announce, leave, recovery ----------------------------------------------------


async def test_twenty_members_see_a_hundred_notices_once_and_in_order(hub: HubProcess) -> None:
    members = [client(hub, uid("fan")) for _ in range(20)]
    moderator = client(hub, uid("mod"), "moderator")
    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(*(m.connect() for m in [*members, moderator]))
        for m in [*members, moderator]:
            stack.push_async_callback(m.close)
        joins = await asyncio.gather(*(m.join("main") for m in members))
        assert set(joins[0]) == {"room", "role", "seq", "epoch", "members", "snapshot"}
        assert joins[0]["role"] == "attendee"
        # The joins reach the hub in no set order: whichever entered last counts all twenty.
        assert max(j["members"] for j in joins) >= 20
        base = joins[0]["seq"]
        assert all(j["seq"] == base for j in joins)  # nothing else is announced in main
        assert all(j["room"]["kind"] == "lobby" for j in joins)
        seqs = []
        for i in range(100):
            seqs.append((await moderator.request("announce", room="main", text=f"n{i}"))["seq"])
        assert seqs == list(range(base + 1, base + 101))

        async def notices(member: HubClient) -> list[Msg]:
            return [await member.wait_for(is_notice("main"), TIMEOUT) for _ in range(100)]

        received = await asyncio.gather(*(notices(m) for m in members))
        assert moderator.user is not None
        for events in received:
            assert [e["seq"] for e in events] == seqs
            assert [e["text"] for e in events] == [f"n{i}" for i in range(100)]
            assert {e["from"] for e in events} == {moderator.user["id"]}
        # Exactly once: the next notice each member sees is the next one announced.
        last = await moderator.request("announce", room="main", text="last")
        for member in members:
            after = await member.wait_for(is_notice("main"), TIMEOUT)
            assert after["seq"] == last["seq"] == base + 101


async def test_attendees_cannot_announce(hub: HubProcess) -> None:
    async with client(hub, uid("att")) as attendee:
        await attendee.join("main")
        with pytest.raises(HubRequestError) as refused:
            await attendee.request("announce", room="main", text="hi all")
        assert refused.value.code == "forbidden"


async def test_join_since_returns_what_was_missed(hub: HubProcess) -> None:
    user = uid("back")
    async with organizer(hub) as org:
        room = await new_room(org)
        await org.request("announce", room=room, text="before")
        async with client(hub, user) as first:
            joined = await first.join(room)
        seq, epoch = joined["seq"], joined["epoch"]
        assert seq == 1 and isinstance(epoch, str)
        # Disconnected: five notices go by.
        for i in range(5):
            await org.request("announce", room=room, text=f"missed {i}")

        async with client(hub, user) as again:
            rejoined = await again.join(room, since=seq, epoch=epoch)
            assert rejoined["recovered"] is True
            assert rejoined["epoch"] == epoch
            assert rejoined["seq"] == seq + 5
            missed = rejoined["missed"]
            assert [e["seq"] for e in missed] == list(range(seq + 1, seq + 6))
            assert [e["text"] for e in missed] == [f"missed {i}" for i in range(5)]
            assert all(e["ev"] == "notice" and e["room"] == room for e in missed)
            # The client queues the missed events first, then live ones follow without a gap.
            live = await org.request("announce", room=room, text="live")
            seen = [(await again.wait_for(is_notice(room), TIMEOUT))["seq"] for _ in range(6)]
            assert seen == [*range(seq + 1, seq + 6), live["seq"]]

        async with client(hub, user) as stale:
            wrong = await stale.join(room, since=seq, epoch="not-the-epoch")
            assert wrong["recovered"] is False
            assert wrong["epoch"] == epoch
            assert "missed" in wrong

        async with client(hub, user) as ahead:
            future = await ahead.join(room, since=seq + 100, epoch=epoch)
            assert future["recovered"] is False


async def test_join_since_beyond_the_history_window(start_hub: StartHub) -> None:
    process = start_hub(args=["--history", "5"])
    async with organizer(process) as org:
        room = await new_room(org)
        for i in range(8):
            await org.request("announce", room=room, text=f"n{i}")
        async with client(process, uid("late")) as late:
            reply = await late.join(room, since=1)
            assert reply["recovered"] is False  # events 2 and 3 are gone
            assert reply["seq"] == 8
        async with client(process, uid("recent")) as recent:
            reply = await recent.join(room, since=3)
            assert reply["recovered"] is True
            assert [e["seq"] for e in reply["missed"]] == [4, 5, 6, 7, 8]


async def test_leave_stops_the_stream_and_presence_follows(hub: HubProcess) -> None:
    async with organizer(hub) as org, client(hub, uid("a")) as a, client(hub, uid("b")) as b:
        left_room, kept_room = await new_room(org), await new_room(org)
        await a.join(left_room)
        await a.join(kept_room)
        joined = await b.join(kept_room)
        assert joined["members"] == 2
        # a's own join may come in an earlier batch: wait for the one that lists b.
        presence = await a.wait_for(
            lambda ev: (
                ev["ev"] == "presence"
                and ev["room"] == kept_room
                and b.sid in [entry["sid"] for entry in ev.get("joined", [])]
            ),
            TIMEOUT,
        )
        assert presence["count"] == 2

        assert await a.leave(left_room) == {}
        with pytest.raises(HubRequestError) as again:
            await a.leave(left_room)
        assert again.value.code == "not_found"
        await org.request("announce", room=left_room, text="unseen")
        kept = await org.request("announce", room=kept_room, text="seen")
        # The first notice a sees is the one of the room it kept.
        notice = await a.wait_for(lambda ev: ev["ev"] == "notice", TIMEOUT)
        assert (notice["room"], notice["seq"]) == (kept_room, kept["seq"])

        await b.leave(kept_room)
        gone = await a.wait_for(
            lambda ev: ev["ev"] == "presence" and ev["room"] == kept_room and "left" in ev,
            TIMEOUT,
        )
        assert b.sid in [entry["sid"] for entry in gone["left"]]
        assert gone["count"] == 1


async def test_a_rooms_file_declares_the_events_rooms(
    start_hub: StartHub, tmp_path: pathlib.Path
) -> None:
    rooms_file = tmp_path / "rooms.toml"
    rooms_file.write_text(
        '[[rooms]]\nid = "panel-1"\nkind = "panel"\ntitle = "Opening panel"\ncapacity = 500\n'
        '[[rooms]]\nid = "panel-1.b1"\nkind = "breakout"\ntitle = "Group 1"\n'
        'parent = "panel-1"\n'
    )
    process = start_hub(args=["--rooms", str(rooms_file)])
    async with client(process, uid("a")) as member:
        listed = {room["id"]: room for room in (await member.request("room.list"))["rooms"]}
        assert set(listed) == {"main", "panel-1"}  # breakout rooms are not listed
        assert listed["panel-1"]["title"] == "Opening panel"
        assert listed["panel-1"]["in_breakouts"] == 0
        joined = await member.join("panel-1")
        assert joined["room"]["kind"] == "panel"


async def test_a_bad_rooms_file_stops_the_hub(tmp_path: pathlib.Path) -> None:
    rooms_file = tmp_path / "rooms.toml"
    rooms_file.write_text('[[rooms]]\nid = "Bad Id"\nkind = "panel"\n')
    process = HubProcess(args=["--rooms", str(rooms_file)])
    with pytest.raises(RuntimeError) as failed:
        process.start()
    process.stop()
    assert "rooms[0]: room: must be a room id" in str(failed.value)


async def test_join_errors(hub: HubProcess) -> None:
    async with client(hub, uid("j")) as member:
        for fields, code in [
            ({"room": "no-such-room"}, "not_found"),
            ({"room": "Not A Room!"}, "bad_request"),
            ({"room": "main", "since": -1}, "bad_request"),
            ({"room": "main", "since": 0, "epoch": 7}, "bad_request"),
        ]:
            with pytest.raises(HubRequestError) as refused:
                await member.request("join", **fields)
            assert refused.value.code == code, fields
        assert await member.request("ping") == {}


# --- HTTP ----------------------------------------------------------------------------------------


async def test_http_room_creation_and_announce(hub: HubProcess) -> None:
    org_user = uid("org")
    org = {"Authorization": f"Bearer {mint(org_user, 'organizer')}"}
    attendee = {"Authorization": f"Bearer {mint(uid('att'))}"}
    room = uid("http")
    body = {"room": room, "kind": "panel", "title": "Panel over HTTP"}
    async with httpx.AsyncClient(base_url=hub.http, timeout=TIMEOUT) as http:
        assert (await http.post("/api/rooms", json=body)).status_code == 401
        assert (await http.post("/api/rooms", json=body, headers=attendee)).status_code == 403
        bad_token = {"Authorization": "Bearer not-a-token"}
        assert (await http.post("/api/rooms", json=body, headers=bad_token)).status_code == 401
        created = await http.post("/api/rooms", json=body, headers=org)
        assert created.status_code == 201
        assert created.json() == {
            "room": {"id": room, "kind": "panel", "title": "Panel over HTTP", "parent": None}
        }
        duplicate = await http.post("/api/rooms", json=body, headers=org)
        assert duplicate.status_code == 409
        assert duplicate.json()["err"]["code"] == "conflict"
        wrong_kind = {**body, "room": uid("x"), "kind": "ballroom"}
        assert (await http.post("/api/rooms", json=wrong_kind, headers=org)).status_code == 400
        not_json = await http.post("/api/rooms", content=b"{nope", headers=org)
        assert not_json.status_code == 400

        async with client(hub, uid("member")) as member:
            joined = await member.join(room)
            assert joined["room"]["kind"] == "panel"
            url = f"/api/rooms/{room}/announce"
            assert (await http.post(url, json={"text": "hi"})).status_code == 401
            assert (await http.post(url, json={"text": "hi"}, headers=attendee)).status_code == 403
            empty = await http.post(url, json={"text": "  "}, headers=org)
            assert empty.status_code == 400
            announced = await http.post(url, json={"text": "doors open"}, headers=org)
            assert announced.status_code == 200
            assert announced.json() == {"seq": 1}
            notice = await member.wait_for(is_notice(room), TIMEOUT)
            assert notice["seq"] == 1
            assert notice["text"] == "doors open"
            assert notice["from"] == org_user
            listed = await member.request("room.list")
            mine = [r for r in listed["rooms"] if r["id"] == room]
            assert mine == [
                {**created.json()["room"], "members": 1, "in_breakouts": 0, "stage": []}
            ]
        nowhere = "/api/rooms/no-such-room/announce"
        missing = await http.post(nowhere, json={"text": "x"}, headers=org)
        assert missing.status_code == 404


async def test_http_health_ready_metrics_and_page(hub: HubProcess) -> None:
    async with (
        httpx.AsyncClient(base_url=hub.http, timeout=TIMEOUT) as http,
        client(hub, uid("m")) as member,
    ):
        await member.join("main")
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["ok"] is True
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert ready.json()["node"] == member.node
        exposition = await http.get("/metrics")
        assert exposition.status_code == 200
        assert exposition.headers["content-type"].startswith("text/plain")
        text = exposition.text
        for name in ("hub_connections", "hub_rooms", "hub_frames_in", "hub_queue_overflows"):
            assert name in text
        assert sample(text, "hub_connections") >= 1
        assert sample(text, "hub_rooms") >= 1
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<html" in page.text.lower()


async def test_the_web_app_and_its_files(hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=TIMEOUT) as http:
        host = f"127.0.0.1:{hub.port}"
        for path, media_type in (("/", "text/html"), ("/static/app/main.js", "text/javascript")):
            response = await http.get(path)
            assert response.status_code == 200
            assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
            policy = response.headers["content-security-policy"]
            assert f"connect-src 'self' ws://{host} wss://{host};" in policy
            assert response.headers["cache-control"] == "no-cache"
            again = await http.get(path, headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304
        about = await http.get("/api/hub")
        assert about.json()["guests"] is False  # the module hub has a secret
        forged = await http.get("/", headers={"Host": "evil.example; script-src *"})
        assert "connect-src 'self'; " in forged.headers["content-security-policy"]

    # Sent as written: no client library normalises the dots away.
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/app/../../cli.py"):
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()
            await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 404 "), (path, answer[:200])
        assert b"import" not in answer


# --- close codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "frame"),
    [
        (MSGPACK, b"\xc1"),  # a byte msgpack never uses
        (MSGPACK, b"\x92\x01\x02"),  # an array, not a map
        (MSGPACK, "text on a msgpack connection"),
        (JSON, "this is not json"),
        (JSON, "[1, 2]"),
        (JSON, '{"id": 2, "op": "ping"} {"id": 3,'),  # the second message is cut short
    ],
    ids=["msgpack-garbage", "msgpack-array", "msgpack-text", "json-garbage", "json-array", "cut"],
)
async def test_an_undecodable_frame_closes_with_4000(
    hub: HubProcess, fmt: WireFormat, frame: bytes | str
) -> None:
    async with raw(hub, fmt) as ws:
        await ws.hello(mint(uid("junk")))
        await ws.ws.send(frame)
        code, _ = await ws.closed()
        assert code == 4000


async def test_undecodable_before_hello_closes_with_4000(hub: HubProcess) -> None:
    async with raw(hub) as ws:
        await ws.ws.send(b"\xc1")
        assert (await ws.closed())[0] == 4000


async def test_a_frame_over_64_kib_closes_with_1009(hub: HubProcess) -> None:
    async with raw(hub) as ws:
        await ws.hello(mint(uid("big")))

        def ping(command_id: int, size: int) -> bytes:
            """A ping padded to a frame of exactly ``size`` bytes."""
            pad = size
            while True:
                frame = encode_message(MSGPACK, {"id": command_id, "op": "ping", "pad": "x" * pad})
                assert isinstance(frame, bytes)
                if len(frame) == size:
                    return frame
                pad -= len(frame) - size

        # A frame of exactly 64 KiB is fine...
        await ws.ws.send(ping(2, 64 * 1024))
        assert await ws.reply(2) == {"re": 2, "ok": {}}
        # ...one byte more is not.
        await ws.ws.send(ping(3, 64 * 1024 + 1))
        code, _ = await ws.closed()
        assert code == 1009


async def test_no_hello_within_the_deadline_closes_with_4001(start_hub: StartHub) -> None:
    process = start_hub(env={"HUB_LIMIT_HELLO_TIMEOUT": "0.5"})
    async with client(process, uid("prompt")) as prompt:
        started = time.monotonic()
        async with raw(process) as silent:
            code, reason = await silent.closed()
        assert code == 4001
        assert "hello" in reason
        assert time.monotonic() - started >= 0.5
        # The deadline only concerns connections that never said hello.
        assert await prompt.request("ping") == {}


@pytest.mark.parametrize(
    "first",
    [{"id": 1, "op": "ping"}, {"id": 1, "op": "join", "room": "main"}, {"op": "ping"}],
    ids=["ping", "join", "without-id"],
)
async def test_a_first_command_other_than_hello_closes_with_4001(
    hub: HubProcess, first: Msg
) -> None:
    async with raw(hub) as ws:
        await ws.send(first)
        code, _ = await ws.closed()
        assert code == 4001
        replies = [m for m in ws.seen if "re" in m]
        if "id" in first:
            assert replies == [
                {"re": 1, "err": {"code": "unauthorized", "msg": replies[0]["err"]["msg"]}}
            ]
        else:
            assert replies == []


async def test_a_token_expired_at_hello_closes_with_4001(hub: HubProcess) -> None:
    expired = mint(uid("old"), ttl=60, now=time.time() - 3600)
    async with raw(hub) as ws:
        await ws.send({"id": 1, "op": "hello", "token": expired})
        assert (await ws.reply(1))["err"]["code"] == "unauthorized"
        assert (await ws.closed())[0] == 4001


async def test_a_session_whose_token_expires_is_closed_with_4001(hub: HubProcess) -> None:
    # exp is written in whole seconds: ttl=2 expires 1 to 2 s from now, never before the hello.
    now = time.time()
    user = uid("short")
    refreshed = HubClient(hub.url, token=mint(user, ttl=2, now=now), reconnect=False)
    expiring = HubClient(hub.url, token=mint(uid("short"), ttl=2, now=now), reconnect=False)
    async with refreshed, expiring:
        with pytest.raises(HubRequestError) as other_user:
            await refreshed.refresh(mint(uid("someone-else"), ttl=3600))
        assert other_user.value.code == "forbidden"
        await refreshed.refresh(mint(user, ttl=3600))
        with pytest.raises(HubClosed) as closed:
            await expiring.next_event(timeout=TIMEOUT)  # it is in no room: no event comes
        assert closed.value.code == 4001
        assert "expired" in closed.value.reason
        # Its old expiry passed too (checked first: its hello came first): the fresh token holds.
        assert await refreshed.request("ping") == {}


async def test_an_origin_not_allowed_is_refused_with_403(hub: HubProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub.url, origin=Origin("https://evil.example"), open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403
    # The hub's own origin is allowed by default.
    async with raw(hub, origin=Origin(hub.http)) as ws:
        await ws.hello(mint(uid("web")))
    # HubClient reports the refusal as HubClosed.
    with pytest.raises(HubClosed, match="403"):
        await client(hub, uid("evil"), origin="https://evil.example").connect()


async def test_configured_origins_replace_the_default(start_hub: StartHub) -> None:
    process = start_hub(args=["--origin", "https://conf.example"])
    async with raw(process, origin=Origin("https://conf.example")) as ws:
        await ws.hello(mint(uid("conf")))
    for origin in ("https://evil.example", process.http):
        with pytest.raises(InvalidStatus) as refused:
            await connect(process.url, origin=Origin(origin), open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 403


async def test_flooding_gets_rate_limited_then_4029(hub: HubProcess) -> None:
    before = sample(await metrics(hub), "hub_rate_limited_total")
    async with raw(hub) as ws:
        await ws.hello(mint(uid("flood")))
        with contextlib.suppress(ConnectionClosed):
            for batch in range(4):
                await ws.send(*({"id": 2 + batch * 100 + i, "op": "ping"} for i in range(100)))
        code, _ = await ws.closed()
    assert code == 4029
    replies = [m for m in ws.seen if "re" in m][1:]
    ok = [r for r in replies if "ok" in r]
    refused = [r for r in replies if "err" in r]
    assert len(ok) >= 150  # the shared hub's burst
    assert refused, "no rate_limited reply before the close"
    assert {r["err"]["code"] for r in refused} == {"rate_limited"}
    assert 20 <= len(refused) <= 21  # the flood guard trips on the 21st within 10 s
    assert replies.index(refused[0]) >= 150
    after = sample(await metrics(hub), "hub_rate_limited_total")
    assert after - before == 21


async def test_organizers_are_not_rate_limited(hub: HubProcess) -> None:
    async with raw(hub) as ws:
        await ws.hello(mint(uid("org"), "organizer"))
        for batch in range(4):
            await ws.send(*({"id": 2 + batch * 100 + i, "op": "ping"} for i in range(100)))
        reply = await ws.reply(401)
        assert reply == {"re": 401, "ok": {}}
        assert all("ok" in m for m in ws.seen)


# --- slow consumers ------------------------------------------------------------------------------


async def small_buffer_socket(process: HubProcess) -> socket.socket:
    """A connected socket with a tiny receive buffer: once nobody reads it, the hub's writes
    really block (TCP backpressure)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", process.port))
    return sock


async def announce_until_overflow(
    process: HubProcess, http: httpx.AsyncClient, org: HubClient, room: str, text: str
) -> int:
    """Announce in batches of 10 until some queue overflowed; returns how many were sent."""
    sent = 0
    while sample(await metrics(process, http), "hub_queue_overflows_total") == 0:
        assert sent < 5_000, "the hub never overflowed the slow consumer's queue"
        await asyncio.gather(*[org.request("announce", room=room, text=text) for _ in range(10)])
        sent += 10
    return sent


async def test_a_slow_consumer_is_closed_with_4008_and_others_keep_up(
    start_hub: StartHub,
) -> None:
    process = start_hub(
        env={"HUB_LIMIT_QUEUE_MESSAGES": "50", "HUB_LIMIT_QUEUE_BYTES": str(256 * 1024)}
    )
    # The most an announce may carry: 2000 characters, 4 bytes each in UTF-8 (~8 KB a notice),
    # so that the kernel's socket buffers (MBs) fill after a few hundred notices.
    text = "\N{GRINNING FACE}" * 2000
    async with (
        organizer(process) as org,
        client(process, uid("fast")) as fast,
        httpx.AsyncClient(base_url=process.http, timeout=TIMEOUT) as http,
    ):
        room = await new_room(org)
        base = (await fast.join(room))["seq"]
        # The slow client: a small receive buffer, and websockets stops reading the socket once
        # one frame waits unread; so the hub's writes really block (TCP backpressure).
        sock = await small_buffer_socket(process)
        async with raw(process, sock=sock, max_queue=1, ping_interval=None) as slow:
            await slow.hello(mint(uid("slow")))
            await slow.send({"id": 2, "op": "join", "room": room})
            assert "ok" in await slow.reply(2)
            # From now on nobody reads the slow socket.
            sent = await announce_until_overflow(process, http, org, room, text)
            for _ in range(10):  # the room goes on after the overflow
                await org.request("announce", room=room, text=text)
                sent += 1
            # The fast member got every event, in order, and is still connected.
            seqs = [(await fast.wait_for(is_notice(room), TIMEOUT))["seq"] for _ in range(sent)]
            assert seqs == list(range(base + 1, base + sent + 1))
            assert await fast.request("ping") == {}
            # The slow one reads again: a prefix of the stream, then the close.
            code, reason = await slow.closed()
            assert code == 4008, reason
            got = [m["seq"] for m in slow.seen if m.get("ev") == "notice"]
            assert got == list(range(base + 1, base + 1 + len(got)))
            assert len(got) < sent
    text_metrics = await metrics(process)
    assert sample(text_metrics, "hub_queue_overflows_total") == 1
    assert sample(text_metrics, "hub_closes_total", '{code="4008"}') == 1


async def test_a_consumer_that_never_reads_again_is_released_after_the_grace(
    start_hub: StartHub,
) -> None:
    process = start_hub(
        env={
            "HUB_LIMIT_QUEUE_MESSAGES": "50",
            "HUB_LIMIT_QUEUE_BYTES": str(256 * 1024),
            "HUB_LIMIT_CLOSE_GRACE": "1",
        }
    )
    text = "\N{GRINNING FACE}" * 2000
    async with (
        organizer(process) as org,
        httpx.AsyncClient(base_url=process.http, timeout=TIMEOUT) as http,
    ):
        room = await new_room(org)
        sock = await small_buffer_socket(process)
        async with raw(process, sock=sock, max_queue=1, ping_interval=None) as slow:
            await slow.hello(mint(uid("stuck")))
            await slow.send({"id": 2, "op": "join", "room": room})
            assert "ok" in await slow.reply(2)
            await announce_until_overflow(process, http, org, room, text)
            # The stuck socket never reads again: after the grace the hub lets go of the
            # session (its connection count and presence), though the socket itself is stuck.
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while sample(await metrics(process, http), "hub_connections") > 1:
                assert asyncio.get_running_loop().time() < deadline, "session never released"
                await asyncio.sleep(0.1)  # polling a metric: there is no event to wait for
            assert (await org.request("presence", room=room))["count"] == 0


# --- draining ------------------------------------------------------------------------------------


async def test_sigterm_drains_sessions_then_exits_0(start_hub: StartHub) -> None:
    process = start_hub()
    assert process.process is not None
    async with client(process, uid("drained")) as member, raw(process) as bare:
        await member.join("main")
        await bare.hello(mint(uid("bare")))
        process.process.send_signal(signal.SIGTERM)

        shutdown = await member.wait_for(lambda ev: ev["ev"] == "shutdown", TIMEOUT)
        assert 0 <= shutdown["reconnect_in"] <= 5
        with pytest.raises(HubClosed) as closed:
            await member.next_event(timeout=TIMEOUT)
        assert closed.value.code == 1012

        code, _ = await bare.closed()
        assert code == 1012
        events = [m for m in bare.seen if m.get("ev") == "shutdown"]
        assert len(events) == 1 and isinstance(events[0]["reconnect_in"], int | float)

        # A draining node accepts nobody.
        with pytest.raises((OSError, InvalidStatus)):
            await connect(process.url, open_timeout=TIMEOUT)
    exit_code = await asyncio.to_thread(process.process.wait, TIMEOUT)
    assert exit_code == 0, process.stderr()


async def test_the_chat_history_cap_is_configurable(start_hub: StartHub) -> None:
    process = start_hub(args=["--chat-history", "3"])
    async with organizer(process) as org, client(process, uid("mod"), "moderator") as mod:
        room = await new_room(org)
        await mod.join(room)
        for n in range(5):
            await mod.request("chat.send", room=room, text=f"message {n}")
        history = await mod.request("chat.history", room=room)
        assert [m["text"] for m in history["messages"]] == ["message 2", "message 3", "message 4"]
        assert history["cap"] == 3
