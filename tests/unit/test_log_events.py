"""The events the hub logs (hub.logs) of connections and refused commands, on the raw ASGI
interface of the endpoint (a hand-driven peer, tests/unit/test_endpoint.py's) against a node on
the memory broker: which lines, with which fields, and nothing a client wrote but its user id."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from helpers import TIMEOUT, Client, new_session, running, token
from test_endpoint import ADDRESS, Peer, serve

from hub import dispatch
from hub.config import Limits
from hub.endpoint import Endpoint
from hub.logs import JsonFormatter, LogEvent


def events(caplog: pytest.LogCaptureFixture) -> list[LogEvent]:
    return [r.msg for r in caplog.records if isinstance(r.msg, LogEvent)]


def fields(event: LogEvent) -> dict[str, Any]:
    return {"sid": event.sid, "user": event.user, **event.fields}


def replies(peer: Peer) -> list[dict[str, Any]]:
    """The replies the peer was sent, in order (a JSON frame may carry several messages, a line
    each, events among them)."""
    frames = [m["text"] for m in peer.sent if m["type"] == "websocket.send"]
    messages = [json.loads(line) for frame in frames for line in frame.splitlines()]
    return [message for message in messages if "re" in message]


def replied(peer: Peer, count: int) -> bool:
    return len(replies(peer)) >= count


async def test_a_connections_life_and_its_refused_commands_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hub")
    async with running() as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer()
        task = serve(hub, endpoint, peer)
        peer.command(id=1, op="hello", token=token(hub, "ann"))
        peer.command(id=2, op="ping")
        peer.command(id=3, op="room.create", room="r1", kind="panel", title="R1")
        peer.command(id=4, op="say.hello.to.everyone")
        peer.command(id=5, op=["not", "a", "string"])
        await peer.until(lambda: replied(peer, 5))
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 1001})
        await asyncio.wait_for(task, TIMEOUT)

    [opened, authenticated, forbidden, unknown, no_op, closed] = events(caplog)
    sid = opened.sid
    assert sid is not None and sid.startswith(hub.node.node_id + ".")
    assert {event.node for event in events(caplog)} == {hub.node.node_id}
    assert opened.name == "connection.open"
    assert fields(opened) == {"sid": sid, "user": None, "client": ADDRESS, "format": "json"}
    assert authenticated.name == "connection.auth"
    assert fields(authenticated) == {"sid": sid, "user": "ann", "role": "attendee", "guest": False}
    # The ping succeeded: nothing. Refused: by code and op, an op this hub does not know as
    # "unknown" (a client's words never reach the log).
    assert [(e.name, fields(e)) for e in (forbidden, unknown, no_op)] == [
        ("command.refused", {"sid": sid, "user": "ann", "code": "forbidden", "op": "room.create"}),
        ("command.refused", {"sid": sid, "user": "ann", "code": "bad_request", "op": "unknown"}),
        ("command.refused", {"sid": sid, "user": "ann", "code": "bad_request", "op": "unknown"}),
    ]
    assert closed.name == "connection.close"
    duration = closed.fields["duration_s"]
    assert isinstance(duration, float) and 0 <= duration < TIMEOUT
    assert fields(closed) == {
        "sid": sid,
        "user": "ann",
        "code": 1001,
        "reason": "client_closed",
        "by": "client",
        "duration_s": duration,
    }


async def test_a_close_the_hub_asked_for_is_the_hubs_with_its_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hub")
    async with running(limits=Limits(hello_timeout=0.01)) as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer()
        task = serve(hub, endpoint, peer)
        await peer.until(lambda: bool(peer.sent) and peer.sent[-1]["type"] == "websocket.close")
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 4001})  # its answer
        await asyncio.wait_for(task, TIMEOUT)
    [_, closed] = events(caplog)
    assert closed.user is None
    assert {k: closed.fields[k] for k in ("code", "reason", "by")} == {
        "code": 4001,
        "reason": "unauthenticated",
        "by": "hub",
    }


@pytest.mark.parametrize(
    ("code", "reason", "by"),
    [
        (1000, "client_closed", "client"),
        (1005, "connection_lost", "client"),
        (1006, "connection_lost", "client"),
        (1009, "too_big", "hub"),
        (1011, "ping_timeout", "hub"),
        (1012, "draining", "hub"),
    ],
)
async def test_a_close_the_reader_sees_is_named_by_its_code(
    caplog: pytest.LogCaptureFixture, code: int, reason: str, by: str
) -> None:
    caplog.set_level(logging.INFO, logger="hub")
    async with running() as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer()
        task = serve(hub, endpoint, peer)
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": code})
        await asyncio.wait_for(task, TIMEOUT)
    closed = events(caplog)[-1]
    assert closed.name == "connection.close"
    assert (closed.fields["code"], closed.fields["reason"], closed.fields["by"]) == (
        code,
        reason,
        by,
    )


async def test_a_connection_refused_before_accept_is_logged_with_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hub")
    async with running(origins=("https://event.example",)) as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer(origin=b"https://evil.example/?who=someone")
        await asyncio.wait_for(serve(hub, endpoint, peer), TIMEOUT)
    [refused] = events(caplog)
    assert refused.name == "connection.refused"
    assert (refused.node, refused.sid) == (hub.node.node_id, None)
    assert refused.fields == {"client": ADDRESS, "why": "origin"}


async def test_successful_commands_write_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async with running() as [hub]:
        client = Client(hub, new_session(hub))
        await client.ok("hello", token=token(hub, "ann"))
        caplog.set_level(logging.DEBUG)
        for _ in range(3):
            await client.ok("ping")
        await client.ok("join", room="main")
        assert caplog.records == []


async def test_with_info_off_a_refused_command_builds_no_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a log line was built")

    monkeypatch.setattr(dispatch, "log_event", fail)
    caplog.set_level(logging.WARNING, logger="hub")
    async with running() as [hub]:
        client = Client(hub, new_session(hub))
        await client.ok("hello", token=token(hub, "ann"))
        assert await client.err("nothing.here") == "bad_request"
        assert await client.err("room.create", room="r1", kind="panel", title="R1") == "forbidden"


async def test_no_token_and_no_message_text_reach_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    words = "the-words-nobody-logs"
    caplog.set_level(logging.DEBUG)
    async with running() as [hub]:
        endpoint = Endpoint(hub.node, hub.dispatcher)
        peer = Peer()
        task = serve(hub, endpoint, peer)
        secret = token(hub, "ann")
        peer.command(id=1, op="hello", token=secret)
        peer.command(id=2, op="join", room="main")
        peer.command(id=3, op="chat.send", room="main", text=words)
        peer.command(id=4, op="chat.send", room="elsewhere", text=words)  # refused
        peer.command(id=5, op=words, text=words)  # refused: unknown op
        await peer.until(lambda: replied(peer, 5))
        assert ["ok" in reply for reply in replies(peer)] == [True, True, True, False, False]
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, TIMEOUT)
        # A hello refused for its token, which the hub then closes.
        other = Peer()
        task = serve(hub, endpoint, other)
        other.command(id=1, op="hello", token=secret[:-2] + "xx")
        await other.until(lambda: bool(other.sent) and other.sent[-1]["type"] == "websocket.close")
        other.inbox.put_nowait({"type": "websocket.disconnect", "code": 4001})
        await asyncio.wait_for(task, TIMEOUT)
    assert [e.name for e in events(caplog)].count("command.refused") == 3
    formatter = JsonFormatter()
    written = "\n".join(
        [formatter.format(r) for r in caplog.records] + [r.getMessage() for r in caplog.records]
    )
    assert "ann" in written  # the user id is there
    assert words not in written
    assert not [part for part in (secret, *secret.split(".")[1:]) if part in written]
