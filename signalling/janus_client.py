"""The hub's client of the Janus WebSocket API: the one module that talks to Janus.

One :class:`JanusClient` is one WebSocket connection (subprotocol ``janus-protocol``). It holds
Janus sessions (:class:`JanusSession`, each kept alive by a keepalive well below Janus's
``session_timeout``), and sessions hold plugin handles (:class:`JanusHandle`)::

    client = await JanusClient.connect("ws://10.0.0.5:8188")
    session = await client.create_session()
    handle = await session.attach(VIDEOROOM)
    data, jsep = await handle.message({"request": "join", ...})
    event = await handle.next_event()        # webrtcup, hangup, an unsolicited offer...
    reason = await client.wait_closed()      # Janus went away: every session and handle too

Requests are matched to answers by ``transaction``; a plugin request that Janus handles
asynchronously is answered with ``ack`` and then an ``event`` (in either order: the ``event``
resolves it, a late ``ack`` is dropped). ``trickle`` and ``keepalive`` get an ``ack`` only.
Errors of Janus itself (``{"janus": "error"}``) and of a plugin (``error_code`` in its data) are
both :class:`JanusError`. What Janus sends on its own is routed by ``sender`` to the handle's
bounded event queue.

When the connection closes or is lost, or a keepalive goes unanswered, the client is done:
pending requests and later ones raise :class:`JanusGone`, every handle's :meth:`next_event`
raises it, and :meth:`JanusClient.wait_closed` returns why. Janus destroys the sessions of a
closed connection itself; a caller that wants Janus again connects anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

__all__ = [
    "VIDEOROOM",
    "JanusClient",
    "JanusError",
    "JanusGone",
    "JanusHandle",
    "JanusSession",
    "Message",
]

log = logging.getLogger(__name__)

VIDEOROOM: Final = "janus.plugin.videoroom"
SUBPROTOCOL: Final = Subprotocol("janus-protocol")
Message = dict[str, Any]

# Janus answers these with "ack" alone; every other request ends with "success", "error" or
# (a plugin message handled asynchronously) an "event" that carries the request's transaction.
_ACK_ONLY: Final = frozenset({"keepalive", "trickle"})
# JANUS_ERROR_SESSION_NOT_FOUND: a keepalive that gets it finds its session expired.
SESSION_NOT_FOUND: Final = 458
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_KEEPALIVE: Final = 15.0
MAX_PENDING: Final = 1024
EVENT_QUEUE: Final = 64


class JanusError(Exception):
    """Janus, or one of its plugins (``plugin``), refused a request: its ``code`` (None when
    there is none) and ``reason``."""

    def __init__(self, code: int | None, reason: str, *, plugin: bool = False) -> None:
        super().__init__(f"janus {'plugin ' if plugin else ''}error {code}: {reason}")
        self.code = code
        self.reason = reason
        self.plugin = plugin


class JanusGone(ConnectionError):
    """The connection to Janus is closed or lost: every session and handle on it is gone."""


@dataclass(slots=True)
class _Pending:
    request: str
    future: asyncio.Future[Message]


class JanusClient:
    """One WebSocket connection to Janus (see the module docstring); made by :meth:`connect`.

    At most ``max_pending`` requests wait for an answer at once (one more raises
    :class:`JanusError` with no code); each waits ``request_timeout`` seconds unless told
    otherwise (then ``TimeoutError``). ``api_secret``, when Janus has one, goes with every
    request."""

    def __init__(
        self,
        ws: ClientConnection,
        *,
        api_secret: str | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
        max_pending: int = MAX_PENDING,
        event_queue: int = EVENT_QUEUE,
    ) -> None:
        self._ws = ws
        self._api_secret = api_secret
        self.request_timeout = request_timeout
        self._max_pending = max_pending
        self._event_queue = event_queue
        self._transactions = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._sessions: dict[int, JanusSession] = {}
        self._handles: dict[int, JanusHandle] = {}
        self._why: str | None = None
        self._gone = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        api_secret: str | None = None,
        open_timeout: float = 5.0,
        request_timeout: float = DEFAULT_TIMEOUT,
        max_pending: int = MAX_PENDING,
        event_queue: int = EVENT_QUEUE,
    ) -> JanusClient:
        """Open a connection to the Janus WebSocket API at ``url`` (``ws://`` or ``wss://``)
        within ``open_timeout`` seconds; :class:`JanusGone` if it cannot be opened."""
        try:
            ws = await connect(
                url,
                subprotocols=[SUBPROTOCOL],
                open_timeout=open_timeout,
                close_timeout=2.0,
                max_size=2**22,
                max_queue=64,
            )
        except OSError as error:
            raise JanusGone(f"cannot connect: {_reason(error)}") from None
        except (InvalidHandshake, TimeoutError) as error:
            raise JanusGone(f"cannot connect: {error or 'timed out'}") from None
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close()
            raise JanusGone(f"the server did not accept the {SUBPROTOCOL} subprotocol")
        return cls(
            ws,
            api_secret=api_secret,
            request_timeout=request_timeout,
            max_pending=max_pending,
            event_queue=event_queue,
        )

    # --- state --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection is done (closed, lost, or given up on)."""
        return self._gone.is_set()

    @property
    def why(self) -> str | None:
        """Why the connection is done (None while it is not)."""
        return self._why

    async def wait_closed(self) -> str:
        """Return once the connection is done, with why."""
        await self._gone.wait()
        return self._why or "closed"

    def abandon(self, why: str) -> None:
        """Give the connection up now (Janus stopped answering): everything on it is gone, and
        the socket is closed in the background."""
        self._end(why)
        self._spawn(self._ws.close())

    async def close(self) -> None:
        """Close the connection (sessions still open are destroyed by Janus itself)."""
        self._end("closed by the hub")
        await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- requests -----------------------------------------------------------------------------

    async def request(self, message: Message, *, within: float | None = None) -> Message:
        """Send ``message`` (a transaction is added, and the API secret) and return Janus's final
        answer to it. Raises :class:`JanusError` for an ``error`` answer, :class:`JanusGone` if
        the connection is or gets done, ``TimeoutError`` after ``within`` seconds (default: the
        client's ``request_timeout``)."""
        if self.closed:
            raise JanusGone(self._why or "closed")
        if len(self._pending) >= self._max_pending:
            raise JanusError(None, f"{self._max_pending} requests to Janus in flight already")
        transaction = str(next(self._transactions))
        kind = str(message["janus"])
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = _Pending(kind, future)
        outgoing = {**message, "transaction": transaction}
        if self._api_secret is not None:
            outgoing["apisecret"] = self._api_secret
        try:
            try:
                await self._ws.send(json.dumps(outgoing))
            except ConnectionClosed:
                self._end("the connection was lost")
                raise JanusGone(self._why or "closed") from None
            async with asyncio.timeout(self.request_timeout if within is None else within):
                answer = await future
        finally:
            self._pending.pop(transaction, None)
        if answer.get("janus") == "error":
            error = answer.get("error") or {}
            raise JanusError(error.get("code"), str(error.get("reason", "unknown")))
        return answer

    async def create_session(self, keepalive: float = DEFAULT_KEEPALIVE) -> JanusSession:
        """A new Janus session, kept alive every ``keepalive`` seconds until destroyed."""
        answer = await self.request({"janus": "create"})
        session = JanusSession(self, int(answer["data"]["id"]))
        self._sessions[session.id] = session
        session._keeper = self._spawn(self._keep_alive(session, keepalive))
        return session

    async def _keep_alive(self, session: JanusSession, interval: float) -> None:
        while not session.destroyed:
            await asyncio.sleep(interval)  # the keepalive period
            try:
                await self.request({"janus": "keepalive", "session_id": session.id})
            except JanusGone:
                return
            except JanusError as error:
                if error.code == SESSION_NOT_FOUND and not session.destroyed:
                    self.abandon(f"Janus session {session.id} expired")
                    return
            except TimeoutError:
                self.abandon("Janus did not answer a keepalive")
                return

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- what Janus sends ---------------------------------------------------------------------

    async def _read(self) -> None:
        why = "the connection was closed"
        try:
            async for raw in self._ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    log.warning("janus: a message that is not JSON: %.200r", raw)
                    continue
                if isinstance(message, dict):
                    self._route(message)
        except ConnectionClosed as closed:
            why = f"the connection was lost ({closed})"
        except Exception as error:  # a bug of ours must not leave requests waiting forever
            log.exception("janus: the reader failed")
            why = f"the reader failed ({error!r})"
        finally:
            self._end(why)

    def _route(self, message: Message) -> None:
        kind = message.get("janus")
        transaction = message.get("transaction")
        pending = self._pending.get(str(transaction)) if transaction is not None else None
        if pending is not None:
            if kind == "ack" and pending.request not in _ACK_ONLY:
                return  # the plugin's event with this transaction follows
            del self._pending[str(transaction)]
            if not pending.future.done():
                pending.future.set_result(message)
            return
        if kind == "ack":
            return  # late: Janus may send a plugin's event before its ack
        if kind == "timeout":
            session = self._sessions.get(message.get("session_id", -1))
            if session is not None and not session.destroyed:
                self.abandon(f"Janus session {session.id} timed out")
            return
        handle = self._handles.get(message.get("sender", -1))
        if handle is not None:
            handle._deliver(message)
        else:
            log.debug("janus: %s for no handle of ours", kind)

    def _end(self, why: str) -> None:
        if self._gone.is_set():
            return
        self._why = why
        self._gone.set()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(JanusGone(why))
        self._pending.clear()
        for session in self._sessions.values():
            session.destroyed = True
            if session._keeper is not None:
                session._keeper.cancel()
        self._sessions.clear()
        for handle in self._handles.values():
            handle._end(why)
        self._handles.clear()


class JanusSession:
    """A Janus session of a :class:`JanusClient` (made by :meth:`JanusClient.create_session`)."""

    def __init__(self, client: JanusClient, session_id: int) -> None:
        self.client = client
        self.id = session_id
        self.destroyed = False
        self._keeper: asyncio.Task[None] | None = None

    async def attach(self, plugin: str = VIDEOROOM) -> JanusHandle:
        """A new handle of this session on ``plugin``."""
        answer = await self.client.request(
            {"janus": "attach", "session_id": self.id, "plugin": plugin}
        )
        handle = JanusHandle(self, int(answer["data"]["id"]), self.client._event_queue)
        self.client._handles[handle.id] = handle
        return handle

    async def destroy(self) -> None:
        """Destroy the session and every handle it still has."""
        self.destroyed = True
        self.client._sessions.pop(self.id, None)
        if self._keeper is not None:
            self._keeper.cancel()
        for handle in [h for h in self.client._handles.values() if h.session is self]:
            handle._end("its session was destroyed")
            self.client._handles.pop(handle.id, None)
        await self.client.request({"janus": "destroy", "session_id": self.id})


class JanusHandle:
    """A plugin handle: plugin requests, trickled candidates, and the events Janus sends it on
    its own (a queue of at most ``queue_size``; the oldest is dropped, with a warning, when a
    reader falls that far behind)."""

    def __init__(self, session: JanusSession, handle_id: int, queue_size: int) -> None:
        self.session = session
        self.id = handle_id
        self._events: asyncio.Queue[Message | None] = asyncio.Queue(queue_size)
        self._why: str | None = None

    @property
    def client(self) -> JanusClient:
        """The connection this handle is on."""
        return self.session.client

    @property
    def ended(self) -> bool:
        """Whether the handle is detached (or being detached), or its connection done."""
        return self._why is not None

    def _ids(self) -> Message:
        return {"session_id": self.session.id, "handle_id": self.id}

    async def message(
        self, body: Message, jsep: Message | None = None, *, within: float | None = None
    ) -> tuple[Message, Message | None]:
        """Send a plugin request; return the plugin's data and the JSEP that came with it.
        Raises :class:`JanusError` (``plugin`` set) if the plugin answered with ``error_code``,
        and as :meth:`JanusClient.request` does."""
        message: Message = {"janus": "message", **self._ids(), "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        answer = await self.client.request(message, within=within)
        data = (answer.get("plugindata") or {}).get("data") or {}
        if "error_code" in data:
            raise JanusError(data["error_code"], str(data.get("error", "")), plugin=True)
        return data, answer.get("jsep")

    async def trickle(self, candidate: Message) -> None:
        """Trickle one ICE candidate (``{"candidate", "sdpMid", "sdpMLineIndex"}``), or
        ``{"completed": True}`` for the end of them."""
        await self.client.request({"janus": "trickle", **self._ids(), "candidate": candidate})

    async def detach(self) -> None:
        """Detach (destroy) the handle; its PeerConnection, if any, is closed by Janus."""
        self.client._handles.pop(self.id, None)
        self._end("detached")
        await self.client.request({"janus": "detach", **self._ids()})

    async def next_event(self) -> Message:
        """The next message Janus sent this handle on its own (``webrtcup``, ``media``,
        ``hangup``, a plugin ``event`` without a transaction...). Raises :class:`JanusGone`
        once the handle is detached or its connection done, after the events before that."""
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)  # for the next reader
            raise JanusGone(self._why or "closed")
        return event

    def _deliver(self, message: Message) -> None:
        if self._why is not None:
            return
        if self._events.full():
            dropped = self._events.get_nowait()
            log.warning("janus: handle %s dropped an event nobody read: %.200r", self.id, dropped)
        self._events.put_nowait(message)

    def _end(self, why: str) -> None:
        if self._why is not None:
            return
        self._why = why
        if self._events.full():
            self._events.get_nowait()
        self._events.put_nowait(None)


def _reason(error: OSError) -> str:
    """An OS error's reason, without the address it may name (the reason may reach clients)."""
    if isinstance(error, socket.gaierror):
        # A resolver error's number is not an errno (-2: "Name or service not known").
        return error.strerror or "the name does not resolve"
    return os.strerror(error.errno) if error.errno else type(error).__name__
