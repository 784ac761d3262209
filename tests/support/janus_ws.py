"""A minimal asyncio client of the Janus WebSocket API, for tests that talk to Janus directly.

One :class:`JanusWs` is one WebSocket connection (subprotocol ``janus-protocol``); it may hold
several Janus sessions. Requests are matched to answers by ``transaction``; what Janus sends on
its own (``webrtcup``, ``media``, ``hangup``, plugin events without a transaction...) is kept
for :meth:`JanusWs.wait_event`. Keepalives are sent for every session it created::

    async with await JanusWs.connect(janus.ws_url) as client:
        session = await client.create_session()
        handle = await client.attach(session, VIDEOROOM)
        data, jsep = await client.message(session, handle, {"request": "join", ...})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

__all__ = ["VIDEOROOM", "JanusRequestError", "JanusWs", "Message"]

VIDEOROOM = "janus.plugin.videoroom"
Message = dict[str, Any]

# Janus answers these with "ack" alone; other requests end with "success", "error", or (plugin
# messages handled asynchronously) an "ack" first and then an "event" with the same transaction.
_ACK_ONLY = frozenset({"keepalive", "trickle"})


class JanusRequestError(RuntimeError):
    """Janus answered ``error``, or a plugin answered with ``error_code``."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code


class JanusWs:
    """One WebSocket connection to Janus. Use :meth:`connect`; :meth:`close` stops keepalives,
    fails pending requests and closes the socket (it does not destroy sessions: Janus does that
    itself when the connection closes, as ``reclaim_session_timeout`` is 0)."""

    def __init__(self, ws: ClientConnection, keepalive: float) -> None:
        self._ws = ws
        self._keepalive = keepalive
        self._pending: dict[str, tuple[str, asyncio.Future[Message]]] = {}
        self._events: list[Message] = []
        self._arrived = asyncio.Event()
        self._sessions: set[int] = set()
        self._reader = asyncio.create_task(self._read())
        self._pinger = asyncio.create_task(self._keep_alive())

    @classmethod
    async def connect(cls, url: str, keepalive: float = 25.0, within: float = 5.0) -> JanusWs:
        """Open a connection (within ``within`` seconds); a keepalive goes to each session
        every ``keepalive`` seconds (below Janus's ``session_timeout``)."""
        ws = await connect(
            url, subprotocols=[Subprotocol("janus-protocol")], open_timeout=within, max_size=None
        )
        return cls(ws, keepalive)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message: Message = json.loads(raw)
                pending = self._pending.get(str(message.get("transaction")))
                if pending is not None:
                    kind, future = pending
                    if message.get("janus") == "ack" and kind not in _ACK_ONLY:
                        continue  # the plugin's event with this transaction follows
                    del self._pending[str(message["transaction"])]
                    if not future.done():
                        future.set_result(message)
                    continue
                if message.get("janus") == "ack":
                    continue  # late: Janus may send a plugin's event before its ack
                self._events.append(message)
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            for _, future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("janus connection closed"))
            self._pending.clear()
            self._arrived.set()

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._keepalive)  # the keepalive period, not synchronisation
            for session in list(self._sessions):
                with contextlib.suppress(JanusRequestError, ConnectionError, TimeoutError):
                    await self.request({"janus": "keepalive", "session_id": session})

    async def request(self, message: Message, within: float = 10.0) -> Message:
        """Send ``message`` (a ``transaction`` is added) and return Janus's final answer to it;
        raise :class:`JanusRequestError` if it is ``error``, ``ConnectionError`` if the
        connection is or gets closed, ``TimeoutError`` after ``within`` seconds."""
        transaction = secrets.token_hex(8)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = (str(message["janus"]), future)
        try:
            try:
                await self._ws.send(json.dumps({**message, "transaction": transaction}))
            except ConnectionClosed as closed:
                raise ConnectionError("janus connection closed") from closed
            answer = await asyncio.wait_for(future, within)
        finally:
            self._pending.pop(transaction, None)
        if answer.get("janus") == "error":
            error = answer.get("error", {})
            raise JanusRequestError(error.get("code"), str(error.get("reason")))
        return answer

    async def create_session(self) -> int:
        """A new Janus session (kept alive until :meth:`destroy_session` or :meth:`close`)."""
        answer = await self.request({"janus": "create"})
        session = int(answer["data"]["id"])
        self._sessions.add(session)
        return session

    async def attach(self, session: int, plugin: str = VIDEOROOM) -> int:
        """A new handle of ``session`` on ``plugin``."""
        answer = await self.request({"janus": "attach", "session_id": session, "plugin": plugin})
        return int(answer["data"]["id"])

    async def message(
        self,
        session: int,
        handle: int,
        body: Message,
        jsep: Message | None = None,
        within: float = 10.0,
    ) -> tuple[Message, Message | None]:
        """Send a plugin request; return the plugin's data and the JSEP that came with it.
        Raise :class:`JanusRequestError` if the plugin answered with ``error_code``."""
        message: Message = {"janus": "message", "session_id": session, "handle_id": handle}
        message["body"] = body
        if jsep is not None:
            message["jsep"] = jsep
        answer = await self.request(message, within)
        data: Message = answer.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusRequestError(data["error_code"], str(data.get("error")))
        return data, answer.get("jsep")

    async def trickle(self, session: int, handle: int, candidate: Message) -> None:
        """Send one trickle candidate (``{"completed": true}`` ends them)."""
        await self.request(
            {"janus": "trickle", "session_id": session, "handle_id": handle, "candidate": candidate}
        )

    async def detach(self, session: int, handle: int) -> None:
        """Detach (destroy) a handle."""
        await self.request({"janus": "detach", "session_id": session, "handle_id": handle})

    async def destroy_session(self, session: int) -> None:
        """Destroy a session and every handle it still has."""
        self._sessions.discard(session)
        await self.request({"janus": "destroy", "session_id": session})

    async def wait_event(
        self, matches: Callable[[Message], bool], within: float = 10.0, what: str = "event"
    ) -> Message:
        """The first message Janus sent on its own (now or before) that ``matches``; it is
        taken out. Raise ``TimeoutError`` after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            for index, event in enumerate(self._events):
                if matches(event):
                    return self._events.pop(index)
            if self._reader.done():
                raise ConnectionError(f"janus connection closed before {what}")
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} from janus in {within}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def close(self) -> None:
        """Stop keepalives and close the connection."""
        self._pinger.cancel()
        await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pinger
        await self._reader

    async def __aenter__(self) -> JanusWs:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
