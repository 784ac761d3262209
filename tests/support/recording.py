"""A bare msgpack WebSocket client that records every message exactly as the hub sent it.

:class:`~livehub_client.HubClient` drops duplicates by seq, which would hide a doubled delivery; a
:class:`Member` keeps everything, read by a background task from connect to close, so a doubled
or reordered delivery shows. Its waits re-check a condition after every frame and fail (with an
:class:`AssertionError`) after the ``within`` seconds given to :meth:`Member.open`: no sleeping::

    member = await Member.open(hub.url, mint("ada"), within=10.0)
    await member.join("room-1")
    notices = await member.wait_events("notice", "room-1", 3)
    await member.close()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from hub.codec import DecodeLimits, WireFormat, decode_frame, encode_message
from livehub_client import HubRequestError

__all__ = ["MSGPACK", "SERVER_FRAMES", "Member", "Msg"]

Msg = dict[str, Any]
MSGPACK = WireFormat.MSGPACK
# Server frames may coalesce many messages: decode them far more loosely than the server does.
SERVER_FRAMES = DecodeLimits(
    max_frame_bytes=16 * 2**20, max_container_items=100_000, max_messages_per_frame=100_000
)


class Member:
    """A bare msgpack WebSocket that records every message it receives, as the hub sent it (no
    dedup, unlike HubClient), read by a background task from connect to close."""

    def __init__(self, ws: ClientConnection, within: float) -> None:
        self.ws = ws
        self.within = within
        self.messages: list[Msg] = []
        self.close_code: int | None = None
        self.closed = False
        self.hello: Msg = {}
        self._last_id = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str, *, within: float) -> Self:
        """Connect to ``url`` and say hello with ``token``; every wait gives up after ``within``
        seconds."""
        ws = await connect(
            url,
            subprotocols=[Subprotocol(MSGPACK.value)],
            compression=None,
            open_timeout=within,
            max_size=None,
        )
        member = cls(ws, within)
        try:
            member.hello = await member.request("hello", token=token)
        except BaseException:
            await member.close()
            raise
        return member

    @property
    def node(self) -> str:
        """The id of the node that answered the hello."""
        node: str = self.hello["node"]
        return node

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.ws.recv()
                self.messages.extend(decode_frame(MSGPACK, frame, SERVER_FRAMES))
                self._changed.set()
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None
        finally:
            self.closed = True
            self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Return once ``condition()`` holds, re-checked after every frame; fail after
        ``within`` seconds, or when the connection closes first."""
        try:
            async with asyncio.timeout(self.within):
                while not condition():
                    if self.closed:
                        raise AssertionError(f"{what}: closed ({self.close_code}) first")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{what} not reached in {self.within}s; last: {self.messages[-3:]!r}"
            ) from None

    async def call(self, op: str, **fields: Any) -> Msg:
        """Send a command; its reply as sent (``{"re", "ok"|"err"}``)."""
        self._last_id += 1
        n = self._last_id
        await self.ws.send(encode_message(MSGPACK, {"id": n, "op": op, **fields}))
        replies: list[Msg] = []

        def replied() -> bool:
            replies.extend(m for m in self.messages if m.get("re") == n)
            return bool(replies)

        await self.wait_until(replied, f"reply to {op}")
        return replies[0]

    async def request(self, op: str, **fields: Any) -> Msg:
        """Send a command and return the ``ok`` of its reply (HubRequestError on an error)."""
        reply = await self.call(op, **fields)
        if "err" in reply:
            raise HubRequestError(reply["err"]["code"], reply["err"]["msg"])
        ok: Msg = reply["ok"]
        return ok

    async def error(self, op: str, **fields: Any) -> tuple[str, str]:
        """Send a command that must fail; its (code, msg)."""
        try:
            ok = await self.request(op, **fields)
        except HubRequestError as refused:
            return refused.code, refused.msg
        raise AssertionError(f"{op} did not fail: {ok!r}")

    async def join(self, room: str, **fields: Any) -> Msg:
        return await self.request("join", room=room, **fields)

    def events(self, ev: str, room: str | None = None) -> list[Msg]:
        """The ``ev`` events received (of ``room`` when given), in arrival order."""
        return [
            m
            for m in self.messages
            if m.get("ev") == ev and (room is None or m.get("room") == room)
        ]

    async def wait_events(self, ev: str, room: str | None, count: int) -> list[Msg]:
        """Wait until at least ``count`` ``ev`` events (of ``room``) arrived; all of them."""
        await self.wait_until(lambda: len(self.events(ev, room)) >= count, f"{count} {ev}")
        return self.events(ev, room)

    async def closed_with(self) -> int | None:
        """Wait until the hub closed this connection; its close code."""
        try:
            async with asyncio.timeout(self.within):
                await asyncio.shield(self._reader)
        except TimeoutError:
            raise AssertionError("the connection was not closed") from None
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.within):
                await asyncio.shield(self._reader)
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
