"""A small asyncio client for the hub's wire contract (docs: ``docs/protocol.md``).

It is the Python face of the hub, used by tests, benchmarks and bots::

    async with HubClient("ws://127.0.0.1:8000/ws", token=token) as client:
        await client.join("main")
        await client.request("chat.send", room="main", text="hello")
        event = await client.wait_for(lambda ev: ev["ev"] == "chat")

One client costs one reader task (plus the keepalive task of ``websockets``); benchmarks run
hundreds of them in one process, so the per-message path does no more than decode, dedup and queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Final, NamedTuple, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol

from hub.codec import DecodeLimits, WireFormat, decode_trusted_frame, encode_message
from hub.errors import DecodeError

__all__ = ["FATAL_CLOSE_CODES", "HubClient", "HubClosed", "HubRequestError", "RoomPosition"]

Event = dict[str, Any]

# Server frames can be big (snapshots, replays) and coalesced: far looser than the server's limits.
_SERVER_LIMITS: Final = DecodeLimits(
    max_frame_bytes=16 * 2**20, max_container_items=100_000, max_messages_per_frame=100_000
)

#: Close codes after which the client does not reconnect: auth, banned, undecodable, flooding.
FATAL_CLOSE_CODES: Final[frozenset[int]] = frozenset({4000, 4001, 4003, 4029})

#: Error codes of a ``hello`` reply that no retry can fix.
_FATAL_HELLO_ERRORS: Final = frozenset({"unauthorized", "forbidden"})

_ABNORMAL: Final = 1006  # no close frame was received (network error)
_UNDECODABLE: Final = 1007  # sent by the client when a server frame cannot be decoded
_NO_RECONNECT: Final = FATAL_CLOSE_CODES | {_UNDECODABLE}

# Pushed into the event queue once the client is closed for good, to wake a waiting consumer.
# Compared by identity; never handed to the caller.
_CLOSED: Final[Event] = {}


class HubRequestError(Exception):
    """A command got an error reply: ``code`` is one of the contract's error codes."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class HubClosed(Exception):
    """The connection is gone: ``code`` is the close code received (None if there was none).

    Pending requests get it when their connection drops (they may be retried once the client has
    reconnected); every call gets it once the client is closed for good.
    """

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"{code}: {reason}" if reason else str(code))
        self.code = code
        self.reason = reason


class RoomPosition(NamedTuple):
    """Where the client stands in a joined room: the last ``seq`` seen, and the room's ``epoch``."""

    seq: int
    epoch: Any


class _Room:
    __slots__ = ("epoch", "seq")

    def __init__(self, seq: int, epoch: Any) -> None:
        self.seq = seq
        self.epoch = epoch


class _Pending:
    """A command waiting for its reply. ``join`` is the room of a ``join`` (its reply is applied by
    the reader, in stream order); ``future`` is None for the joins sent by a reconnect."""

    __slots__ = ("future", "join")

    def __init__(self, future: asyncio.Future[Event] | None, join: str | None) -> None:
        self.future = future
        self.join = join


class _EventIterator:
    __slots__ = ("_client",)

    def __init__(self, client: HubClient) -> None:
        self._client = client

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._client.next_event()
        except HubClosed:
            if self._client._closed_by_user:
                raise StopAsyncIteration from None
            raise


class HubClient:
    """A connection to the hub that survives restarts of the server.

    **Events.** Every message with ``"ev"`` goes to one bounded queue (``max_events``), read with
    :meth:`next_event`, :meth:`events` or :meth:`wait_for`. Overflow rule: when the queue is full
    the reader *waits* for room in it, so the client stops reading its socket; nothing is dropped
    by the client, and the server, seeing its own queue for this client overflow, eventually
    closes the connection as a slow consumer (4008), after which the client reconnects and
    recovers the stored events through ``join {since}``. Consume events (or make the queue
    large enough) to keep up.

    **Rooms.** For every joined room the client keeps the last ``seq`` it saw and the room's
    ``epoch``. A stored event with a ``seq`` at or below the last seen is a duplicate (replay and
    live events overlap) and is dropped. The ``missed`` events of a join reply are queued in order,
    before any later event. Event ``reset {room, epoch}`` (history lost) restarts the room at 0 and
    is passed on; ``kicked {room}`` forgets the room.

    **Reconnect.** When ``reconnect`` is true, a connection that ends for any reason other than
    :meth:`close` or close codes 4000, 4001, 4003 or 4029 is reopened after an exponential back-off
    with full jitter (at least the ``reconnect_in`` of a ``shutdown`` event); then ``hello`` is sent
    again and every room is joined again with ``since`` and ``epoch``. Requests pending when the
    connection drops fail with :class:`HubClosed`; requests made while reconnecting wait for the
    new connection (within ``request_timeout``). Once the rooms are joined again, the client queues
    the client-local event ``{"ev": "client.reconnected", "recovered": {room: bool}}`` (it never
    comes from the server). The first :meth:`connect` does not retry: it raises.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        name: str | None = None,
        fmt: WireFormat = WireFormat.MSGPACK,
        reconnect: bool = True,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        origin: str | None = None,
        max_events: int = 10_000,
        request_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._token = token
        self._name = name
        self._fmt = fmt
        self._reconnect = reconnect
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._origin = origin
        self._request_timeout = request_timeout
        self._events: asyncio.Queue[Event] = asyncio.Queue(max_events)
        self._rooms: dict[str, _Room] = {}
        self._pending: dict[int, _Pending] = {}
        self._last_id = 0
        self._ws: ClientConnection | None = None  # the current socket, in any state
        self._ready = False  # hello done on self._ws (and the rooms' joins sent)
        self._ready_event = asyncio.Event()  # set while ready, and once closed for good
        self._task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._final: tuple[int | None, str] | None = None  # closed for good: (code, reason)
        self._closed_by_user = False
        self._hello: Event | None = None
        self._close_code: int | None = None
        self._reconnects = 0
        self._attempt = 0
        self._shutdown_delay: float | None = None
        self._rejoins_left = 0
        self._recovered: dict[str, bool] = {}

    # -- properties -------------------------------------------------------------------------------

    @property
    def hello(self) -> Event | None:
        """The last ``hello`` reply (``sid``, ``user``, ``node``, ``ice_servers``, ``limits``)."""
        return self._hello

    @property
    def sid(self) -> str | None:
        """This connection's session id, from the last ``hello`` reply."""
        sid = self._hello.get("sid") if self._hello else None
        return sid if isinstance(sid, str) else None

    @property
    def user(self) -> dict[str, Any] | None:
        """``{id, name, role}`` from the last ``hello`` reply."""
        user = self._hello.get("user") if self._hello else None
        return user if isinstance(user, dict) else None

    @property
    def node(self) -> str | None:
        """The node that served the last ``hello``."""
        node = self._hello.get("node") if self._hello else None
        return node if isinstance(node, str) else None

    @property
    def close_code(self) -> int | None:
        """The close code of the last connection that ended (1006 when none was received)."""
        return self._close_code

    @property
    def connected(self) -> bool:
        """True while a connection is open and its ``hello`` succeeded."""
        return self._ready

    @property
    def reconnects(self) -> int:
        """How many times the client has reconnected successfully."""
        return self._reconnects

    @property
    def rooms(self) -> dict[str, RoomPosition]:
        """The joined rooms with the last ``seq`` seen and the ``epoch`` (a copy)."""
        return {room: RoomPosition(st.seq, st.epoch) for room, st in self._rooms.items()}

    # -- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> dict[str, Any]:
        """Open the socket and say ``hello``; return the reply's ``ok`` map.

        Raises :class:`HubRequestError` if ``hello`` gets an error reply, :class:`HubClosed` if the
        server closes the connection or refuses the handshake (HTTP status), ``OSError`` or
        ``TimeoutError`` if it cannot be reached. After a failure the client may connect again.
        """
        if self._final is not None:
            raise self._closed_error()
        if self._task is not None or self._ws is not None:
            raise RuntimeError("HubClient.connect() called twice")
        ws = await self._open()
        self._ws = ws
        try:
            ok = await self._handshake(ws)
        except BaseException:
            self._ws = None
            await _close_socket(ws)
            raise
        if self._final is not None:  # close() ran meanwhile
            self._ws = None
            await _close_socket(ws)
            raise self._closed_error()
        self._set_ready()
        self._task = asyncio.get_running_loop().create_task(
            self._run(ws), name=f"hub-client-reader {self._url}"
        )
        return ok

    async def close(self) -> None:
        """Close for good: no reconnect; pending and later calls raise :class:`HubClosed`.

        Events already queued can still be read. Idempotent, and safe to call concurrently.
        """
        if self._closer is None:
            self._closed_by_user = True
            self._closer = asyncio.get_running_loop().create_task(self._shut())
        await asyncio.shield(self._closer)

    async def _shut(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        ws, self._ws = self._ws, None
        if ws is not None:
            await _close_socket(ws)
            if ws.close_code is not None:
                self._close_code = ws.close_code
        self._finish(1000, "closed by the client")

    # -- commands ---------------------------------------------------------------------------------

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send ``{"id": n, "op": op, **fields}`` and return the reply's ``ok`` map.

        Raises :class:`HubRequestError` on an error reply, :class:`HubClosed` if the connection
        drops first, ``TimeoutError`` if no reply comes within ``request_timeout``. ``join``
        (here or through :meth:`join`) makes the client track the room.
        """
        n = self._next_id()
        data = encode_message(self._fmt, {"id": n, "op": op, **fields})
        room = fields.get("room") if op == "join" else None
        join = room if isinstance(room, str) else None
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        sent = False
        try:
            async with asyncio.timeout(self._request_timeout):
                ws = await self._wait_ready()
                self._pending[n] = _Pending(future, join)
                await self._send(ws, data)
                sent = True
                return await future
        finally:
            # A join that was sent stays registered until its reply (or the connection's end),
            # so that the reader still applies it if this caller gave up waiting.
            if not (sent and join is not None):
                self._pending.pop(n, None)
            if not sent and future.done() and not future.cancelled():
                future.exception()  # the connection dropped during the send: already raising

    async def send(self, op: str, **fields: Any) -> None:
        """Send a command without an id: the server sends no reply."""
        data = encode_message(self._fmt, {"op": op, **fields})
        async with asyncio.timeout(self._request_timeout):
            await self._send(await self._wait_ready(), data)

    async def join(self, room: str, **fields: Any) -> dict[str, Any]:
        """Join ``room`` (``since``/``epoch`` and other fields pass through); return the ``ok`` map.

        The reply's ``missed`` events are queued, in order, before any later event of the room.
        """
        return await self.request("join", room=room, **fields)

    async def leave(self, room: str) -> dict[str, Any]:
        """Leave ``room``; the client forgets it at once (no rejoin on reconnect)."""
        self._rooms.pop(room, None)
        return await self.request("leave", room=room)

    async def refresh(self, token: str) -> dict[str, Any]:
        """Swap in a fresh token (``refresh``); it is also the one used by later reconnects."""
        ok = await self.request("refresh", token=token)
        self._token = token
        return ok

    # -- events -----------------------------------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        """The next event; ``TimeoutError`` after ``timeout`` seconds, :class:`HubClosed` once the
        client is closed for good and every queued event has been read."""
        queue = self._events
        if queue.empty():
            if self._final is not None:
                raise self._closed_error()
            async with asyncio.timeout(timeout):
                event = await queue.get()
        else:
            event = queue.get_nowait()
        if event is _CLOSED:
            queue.put_nowait(_CLOSED)  # for the next consumer; nothing else is queued after it
            raise self._closed_error()
        return event

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """Iterate over events until the client is closed for good: the iteration ends after
        :meth:`close`, and raises :class:`HubClosed` when the server ended the session for good."""
        return _EventIterator(self)

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 -- the agreed interface
    ) -> dict[str, Any]:
        """Read events until one matches ``predicate`` (the others are dropped) and return it;
        ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next_event()
                if predicate(event):
                    return event

    # -- internals: connection --------------------------------------------------------------------

    def _next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _closed_error(self) -> HubClosed:
        code, reason = self._final or (None, "not connected")
        return HubClosed(code, reason)

    async def _open(self) -> ClientConnection:
        try:
            return await connect(
                self._url,
                subprotocols=[Subprotocol(self._fmt.value)],
                origin=Origin(self._origin) if self._origin is not None else None,
                compression=None,
                max_size=None,
                open_timeout=self._request_timeout,
            )
        except InvalidStatus as exc:
            raise HubClosed(None, f"handshake refused: HTTP {exc.response.status_code}") from exc

    async def _send(self, ws: ClientConnection, data: bytes | str) -> None:
        try:
            await ws.send(data)
        except ConnectionClosed as exc:
            raise HubClosed(*_close_info(exc)) from exc

    async def _wait_ready(self) -> ClientConnection:
        """The open, ready socket; waits while reconnecting. A command is never sent on a socket
        that is already closing: it waits for the next connection instead."""
        while True:
            if self._final is not None:
                raise self._closed_error()
            ws = self._ws
            if self._ready and ws is not None:
                if ws.state is State.OPEN:
                    return ws
                self._ready = False  # closing, and the reader has not handled it yet
                self._ready_event.clear()
            if self._task is None:
                raise HubClosed(None, "not connected")
            await self._ready_event.wait()

    def _set_ready(self) -> None:
        self._ready = True
        self._ready_event.set()

    async def _handshake(self, ws: ClientConnection) -> dict[str, Any]:
        """Say hello on a fresh socket, reading (and handling) frames until the reply."""
        n = self._next_id()
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[n] = _Pending(future, None)
        hello: dict[str, Any] = {"id": n, "op": "hello"}
        if self._token is not None:
            hello["token"] = self._token
        elif self._name is not None:
            hello["name"] = self._name
        try:
            async with asyncio.timeout(self._request_timeout):
                await self._send(ws, encode_message(self._fmt, hello))
                while not future.done():
                    try:
                        data = await ws.recv(decode=False)
                    except ConnectionClosed as exc:
                        self._close_code = _close_info(exc)[0]
                        raise HubClosed(*_close_info(exc)) from exc
                    await self._process(decode_trusted_frame(self._fmt, data, _SERVER_LIMITS))
        except DecodeError as exc:
            raise HubClosed(_UNDECODABLE, f"undecodable frame from the server: {exc}") from exc
        finally:
            self._pending.pop(n, None)
        ok = future.result()  # raises HubRequestError
        self._hello = ok
        return ok

    async def _run(self, ws: ClientConnection) -> None:
        """The reader task: pump frames, and reconnect when the connection ends."""
        code: int | None = None
        reason = "closed by the client"
        try:
            while True:
                code, reason = await self._pump(ws)
                self._disconnected(code, reason)
                if not self._reconnect or code in _NO_RECONNECT:
                    break
                ws = await self._reopen()
        except HubClosed as exc:  # refused for good while reconnecting
            code, reason = exc.code, exc.reason
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave callers hanging
            code, reason = None, f"client reader failed: {exc!r}"
            if self._ws is not None:
                await _close_socket(self._ws, 1011, "client error")
        finally:
            self._ready = False
            if not self._closed_by_user:
                self._finish(code, reason)

    async def _pump(self, ws: ClientConnection) -> tuple[int | None, str]:
        """Read frames until the connection ends; return its close code and reason."""
        fmt = self._fmt
        try:
            while True:
                data = await ws.recv(decode=False)
                await self._process(decode_trusted_frame(fmt, data, _SERVER_LIMITS))
        except ConnectionClosed as exc:
            return _close_info(exc)
        except DecodeError as exc:
            await _close_socket(ws, _UNDECODABLE, "undecodable frame")
            return _UNDECODABLE, f"undecodable frame from the server: {exc}"

    def _disconnected(self, code: int | None, reason: str) -> None:
        self._ready = False
        self._ready_event.clear()
        self._close_code = code
        self._ws = None
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(HubClosed(code, reason))

    def _finish(self, code: int | None, reason: str) -> None:
        if self._final is not None:
            return
        self._final = (code, reason)
        self._disconnected(code, reason)
        self._ready_event.set()  # wakes requests waiting for a connection: they raise HubClosed
        # If the queue is full no consumer is waiting; they see _final once they have drained it.
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(_CLOSED)

    def _backoff(self) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** min(self._attempt, 60))
        self._attempt += 1
        delay = random.uniform(0, ceiling)
        if self._shutdown_delay is not None:
            delay = max(delay, self._shutdown_delay)
            self._shutdown_delay = None
        return delay

    async def _reopen(self) -> ClientConnection:
        """Reconnect until it works (the new socket, ready); raise HubClosed if refused for good."""
        while True:
            await asyncio.sleep(self._backoff())
            try:
                ws = await self._open()
            except (OSError, TimeoutError, HubClosed, WebSocketException):
                continue
            self._ws = ws
            try:
                await self._handshake(ws)
            except (HubClosed, HubRequestError, OSError, TimeoutError) as exc:
                self._ws = None
                await _close_socket(ws)
                if isinstance(exc, HubClosed) and exc.code in _NO_RECONNECT:
                    raise
                if isinstance(exc, HubRequestError) and exc.code in _FATAL_HELLO_ERRORS:
                    raise HubClosed(ws.close_code, f"hello refused: {exc}") from exc
                continue
            self._attempt = 0
            self._reconnects += 1
            await self._rejoin(ws)
            self._set_ready()
            if not self._rooms:
                await self._push({"ev": "client.reconnected", "recovered": {}})
            return ws

    async def _rejoin(self, ws: ClientConnection) -> None:
        """Send ``join {since, epoch}`` for every room; the reader applies the replies."""
        self._recovered = {}
        self._rejoins_left = len(self._rooms)
        for room, st in list(self._rooms.items()):
            n = self._next_id()
            self._pending[n] = _Pending(None, room)
            cmd: dict[str, Any] = {"id": n, "op": "join", "room": room, "since": st.seq}
            if st.epoch is not None:
                cmd["epoch"] = st.epoch
            try:
                await self._send(ws, encode_message(self._fmt, cmd))
            except HubClosed:
                return  # the pump sees the close next

    # -- internals: inbound messages --------------------------------------------------------------

    async def _push(self, event: Event) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            await self._events.put(event)  # backpressure: stop reading until there is room

    async def _process(self, messages: list[Event]) -> None:
        """Handle the messages of one frame, in order."""
        rooms = self._rooms
        queue = self._events
        for msg in messages:
            re = msg.get("re")
            if re is None:
                ev = msg.get("ev")
                if ev is None:
                    continue  # neither reply nor event: not ours to handle
                room = msg.get("room")
                if room.__class__ is str:
                    st = rooms.get(room)
                    if st is not None:
                        seq = msg.get("seq")
                        if seq.__class__ is int:
                            if seq <= st.seq:
                                continue  # duplicate
                            st.seq = seq
                        elif ev == "reset":
                            st.seq = 0
                            st.epoch = msg.get("epoch")
                        elif ev == "kicked":
                            del rooms[room]
                elif ev == "shutdown":
                    delay = msg.get("reconnect_in")
                    if isinstance(delay, int | float):
                        self._shutdown_delay = float(delay)
                try:
                    queue.put_nowait(msg)
                except asyncio.QueueFull:
                    await queue.put(msg)  # backpressure: stop reading until there is room
                if ev == "breakout.assigned":
                    # The hub moved this session into its breakout: from here on that room is
                    # followed as after a join (its position, then any missed events).
                    joined, child = msg.get("joined"), msg.get("breakout")
                    if isinstance(joined, dict) and isinstance(child, str):
                        await self._joined(child, joined)
            else:
                entry = self._pending.pop(re, None)
                if entry is not None:
                    await self._reply(entry, msg)

    async def _reply(self, entry: _Pending, msg: Event) -> None:
        err = msg.get("err")
        future = entry.future
        if err is not None:
            if not isinstance(err, dict):
                err = {}
            error = HubRequestError(str(err.get("code", "internal")), str(err.get("msg", "")))
            if entry.join is not None and future is None:
                # A rejoin was refused (kicked and banned, room gone): forget the room.
                self._rooms.pop(entry.join, None)
                await self._rejoined(entry.join, False)
            if future is not None and not future.done():
                future.set_exception(error)
            return
        ok = msg.get("ok")
        if not isinstance(ok, dict):
            ok = {}
        if entry.join is not None:
            await self._joined(entry.join, ok)
            if future is None:
                await self._rejoined(entry.join, bool(ok.get("recovered")))
        if future is not None and not future.done():
            future.set_result(ok)

    async def _joined(self, room: str, ok: Event) -> None:
        """Apply a join reply: position in the room, then queue its ``missed`` events in order."""
        epoch = ok.get("epoch")
        st = self._rooms.get(room)
        if st is None:
            st = self._rooms[room] = _Room(0, epoch)
        elif st.epoch != epoch:
            st.seq = 0  # history was lost: seq started again
            st.epoch = epoch
        missed = ok.get("missed")
        if isinstance(missed, list):
            for event in missed:
                if not isinstance(event, dict):
                    continue
                seq = event.get("seq")
                if seq.__class__ is int:
                    if seq <= st.seq:
                        continue
                    st.seq = seq
                await self._push(event)
        seq = ok.get("seq")
        if seq.__class__ is int and seq > st.seq:
            st.seq = seq

    async def _rejoined(self, room: str, recovered: bool) -> None:
        self._recovered[room] = recovered
        self._rejoins_left -= 1
        if self._rejoins_left == 0:
            recovered_map, self._recovered = self._recovered, {}
            await self._push({"ev": "client.reconnected", "recovered": recovered_map})


def _close_info(exc: ConnectionClosed) -> tuple[int | None, str]:
    if exc.rcvd is not None:
        return exc.rcvd.code, exc.rcvd.reason
    return _ABNORMAL, str(exc)


async def _close_socket(ws: ClientConnection, code: int = 1000, reason: str = "") -> None:
    """Close ``ws`` promptly even if its reading is paused (a full buffer): discard what is still
    buffered while the closing handshake runs."""

    async def drain() -> None:
        try:
            while True:
                await ws.recv(decode=False)
        except (ConnectionClosed, RuntimeError):
            pass

    drainer = asyncio.get_running_loop().create_task(drain())
    try:
        await ws.close(code, reason)
    finally:
        drainer.cancel()
        await asyncio.wait([drainer])
