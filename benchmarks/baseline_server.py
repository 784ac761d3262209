"""The ceiling for ``benchmarks/fanout.py``: a plain ``websockets`` broadcast server.

It speaks just enough of the hub's wire contract (msgpack subprotocol, ``hello``, ``join``,
``announce``, ``ping``) for the same load generator to drive it, and does nothing else: no token
check, no history, no presence, no rate limits, no per-connection queue. ``announce`` encodes the
``notice`` event once and hands it to :func:`websockets.asyncio.server.broadcast`, which writes one
frame per member straight into each connection's transport (no coalescing, no backpressure).

Run it by hand with ``python benchmarks/baseline_server.py --port 8001``; ``fanout.py`` starts it
itself (``--modes baseline``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import signal
import sys
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.codec import DecodeLimits, WireFormat, decode_frame, encode_message
from hub.errors import DecodeError

MSGPACK = WireFormat.MSGPACK
LIMITS = DecodeLimits(max_frame_bytes=64 * 1024)


class Room:
    """The members of one room and its event counter."""

    __slots__ = ("members", "seq")

    def __init__(self) -> None:
        self.members: set[ServerConnection] = set()
        self.seq = 0


class BaselineHub:
    """All state of the baseline server: rooms by id."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.sids = itertools.count(1)

    async def handle(self, ws: ServerConnection) -> None:
        """Serve one connection: answer commands until it closes."""
        user: dict[str, Any] = {"id": "", "name": "", "role": "attendee"}
        joined: set[str] = set()
        try:
            async for data in ws:
                try:
                    commands = decode_frame(MSGPACK, data, LIMITS)
                except DecodeError:
                    await ws.close(4000, "undecodable")
                    return
                for cmd in commands:
                    reply = self.command(ws, cmd, user, joined)
                    if cmd.get("id") is not None:
                        await ws.send(encode_message(MSGPACK, {"re": cmd["id"], **reply}))
        finally:
            for room_id in joined:
                room = self.rooms.get(room_id)
                if room is not None:
                    room.members.discard(ws)

    def command(
        self, ws: ServerConnection, cmd: dict[str, Any], user: dict[str, Any], joined: set[str]
    ) -> dict[str, Any]:
        """Run one command; returns ``{"ok": ...}`` or ``{"err": ...}``."""
        op = cmd.get("op")
        if op == "hello":
            user.update(_claims(cmd.get("token")))
            return {"ok": {"sid": f"baseline.{next(self.sids)}", "user": user, "node": "baseline"}}
        if op == "ping":
            return {"ok": {}}
        room_id = cmd.get("room")
        if not isinstance(room_id, str):
            return {"err": {"code": "bad_request", "msg": "room must be a string"}}
        room = self.rooms.setdefault(room_id, Room())
        if op == "join":
            room.members.add(ws)
            joined.add(room_id)
            members = len(room.members)
            return {"ok": {"room": {"id": room_id}, "seq": room.seq, "members": members}}
        if op == "leave":
            room.members.discard(ws)
            joined.discard(room_id)
            return {"ok": {}}
        if op in ("announce", "chat.send"):
            room.seq += 1
            event = {
                "ev": "notice",
                "room": room_id,
                "seq": room.seq,
                "text": cmd.get("text", ""),
                "from": user["id"],
            }
            broadcast(room.members, encode_message(MSGPACK, event))
            return {"ok": {"seq": room.seq}}
        return {"err": {"code": "bad_request", "msg": f"unknown op {op!r}"}}


def _claims(token: object) -> dict[str, Any]:
    """The user a JWT names, read without checking its signature (this is only a baseline)."""
    try:
        assert isinstance(token, str)
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return {"id": claims["sub"], "name": claims.get("name", ""), "role": claims["role"]}
    except Exception:
        return {"id": "guest", "name": "guest", "role": "attendee"}


async def main(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    hub = BaselineHub()
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.cancel)
    async with serve(
        hub.handle,
        host,
        port,
        subprotocols=[MSGPACK.value],  # type: ignore[list-item]
        compression=None,
        max_size=LIMITS.max_frame_bytes,
        backlog=2048,
    ):
        print(f"baseline: listening on ws://{host}:{port}/ws", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    options = parser.parse_args()
    asyncio.run(main(options.host, options.port))
