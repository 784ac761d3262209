"""Fan-out benchmark: N subscribers in one room, one publisher of stored room events.

For each mode it starts the server pinned to one core, runs the load generator as a separate
process pinned to the other core, and prints one row per mode:

* ``memory``   -- ``hub serve`` on its in-process broker (one process);
* ``redis2``   -- ``hub serve --workers 2 --redis URL`` with a private redis-server
  (``redis1``, not run by default: the same with one worker);
* ``baseline`` -- ``benchmarks/baseline_server.py``, a plain ``websockets.broadcast`` server that
  speaks just enough of the protocol for the same load generator (the ceiling).

The load generator connects N subscribers (``hello`` as attendees, ``join`` the room) and one
publisher (an organizer, exempt from rate limits) that sends ``announce {room, text}`` with a
200-character text carrying its send time and a counter. Two phases, same connections:

1. fixed rate (``--rate``, default 50 msg/s): p50/p99 latency from send to each delivery;
2. flat out: the publisher keeps at most ``--window`` announces in flight end to end (sent but not
   yet received by every subscriber) and sends whenever the window opens; deliveries/s is
   counted at the subscribers over the steady part of the phase.

Every delivery is checked: lost = acknowledged announces a subscriber never received (a closed
connection loses the rest of its events), duplicated = the same counter received twice.

Usage::

    python benchmarks/fanout.py [--subscribers 1000] [--duration 10] [--rate 50]
                                [--modes memory,redis2,baseline] [--json]

See ``benchmarks/README.md`` for how to read the output. ``--loadgen`` (internal) runs the load
generator itself; it prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    add_loadgen_arguments,
    add_run_arguments,
    format_table,
    loadgen_main,
    log,
    parse_modes,
    pin_cpus,
    pinned,
    raise_nofile,
    report,
    run_loadgen,
    run_modes,
    start_output,
    start_redis,
)

from hub.codec import DecodeLimits, WireFormat, decode_frame, encode_message  # noqa: E402
from tests.support.hub_process import HubProcess, free_port, mint  # noqa: E402

MODES = ("memory", "redis2", "baseline")
EXTRA_MODES = ("redis1",)  # one worker on Redis: tells the broker's cost from the second worker's
ROOM = "main"  # the lobby every new hub has
TEXT_CHARS = 200
# A notice's text as msgpack encodes it: key "text", a str8 of TEXT_CHARS characters
# "<send time>:<counter>:xxx...". Once joined, subscribers only scan frames for it (``--decode
# fast``): decoding every delivery into a map would cost the load generator more than it costs
# the server to send it.
NOTICE_TEXT = re.compile(re.escape(b"\xa4text\xd9" + bytes([TEXT_CHARS])) + rb"[0-9.]+:([0-9]+):")
# The stored events that carry the publisher's text: announce -> notice, chat.send -> chat.
STORED_TEXT_EVENTS = ("notice", "chat")
READ_CHUNK = 32 * 1024  # room left for each socket read
ANNOUNCE_ID_BASE = 1000  # announce #i is sent with id ANNOUNCE_ID_BASE + i
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOL = "hub.v1.msgpack"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Server frames are trusted here, and coalesced ones hold many messages.
BIG = DecodeLimits(max_frame_bytes=2**24, max_container_items=2**16, max_messages_per_frame=2**16)

# Targets of this stage (for the hub modes).
TARGET_DELIVERIES = 100_000
TARGET_P99_MS = 25.0
TARGET_RSS_KB = 30.0


# ---------------------------------------------------------------------------------------------
# /proc helpers (no psutil)
# ---------------------------------------------------------------------------------------------


def proc_children(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc/*/stat."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            children.append(int(entry))
    return sorted(children)


def rss_kb(pids: list[int]) -> int:
    """Sum of VmRSS of ``pids`` in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    """Sum of user + system CPU time of ``pids`` in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def machine_busy() -> float:
    """CPU seconds every core spent busy since boot (/proc/stat), all processes together."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` percentile (0..100) of sorted ``values`` (nearest rank)."""
    if not values:
        return None
    rank = max(0, min(len(values) - 1, round(q / 100 * len(values) + 0.5) - 1))
    return values[rank]


# ---------------------------------------------------------------------------------------------
# Load generator: a minimal WebSocket client (the receive path must cost less than the server's)
# ---------------------------------------------------------------------------------------------


class Stats:
    """What every subscriber shares: per-announce delivery counts and running totals."""

    def __init__(self) -> None:
        self.counts: list[int] = []  # announce counter -> subscribers that received it
        self.completed = 0  # every announce below this reached every live subscriber
        self.live = 0  # subscribers joined and not closed
        self.delivered = 0
        self.dups = 0
        self.out_of_order = 0
        self.latency = array("d")
        self.sent_at = array("d")  # announce counter -> time.time() it was sent
        self.closes: Counter[str] = Counter()
        self.window = asyncio.Event()

    def advance(self) -> None:
        counts, live, done = self.counts, self.live, self.completed
        while done < len(counts) and counts[done] >= live:
            done += 1
        if done != self.completed:
            self.completed = done
            self.window.set()


C = TypeVar("C", bound="Conn")


class Conn(asyncio.BufferedProtocol):
    """One WebSocket client connection speaking ``hub.v1.msgpack``.

    Frames from the server are parsed here directly (server frames are never masked); their
    messages are decoded with ``hub.codec.decode_frame`` until the subscriber has joined, and
    from then on (``--decode fast``) only scanned for notices.
    """

    def __init__(self, stats: Stats, host: str, port: int, path: str) -> None:
        self.stats = stats
        self.host, self.port, self.path = host, port, path
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.handshake = bytearray()
        self.handshaking = True
        self.rbuf = bytearray(2 * READ_CHUNK)
        self.rview = memoryview(self.rbuf)
        self.rlen = 0  # bytes of a partial frame at the start of rbuf
        self.fragments: list[bytes] = []  # data frames of a message not finished yet
        self.decoded: list[dict[str, Any]] = []  # messages decoded from this read
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 1
        self.seen = bytearray()
        self.last = -1
        self.frames = 0
        self.messages = 0
        self.close_code: int | None = None
        self.subscriber = False  # counts towards Stats.live once joined
        self.fast = False  # scan frames for notices instead of decoding them (see NOTICE_TEXT)
        self.on_ack: Any = None  # the publisher's acknowledgement handler
        self.reader: RawReader | None = None  # reads this socket instead of the transport
        self.raw: socket.socket | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        )
        transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during handshake: {exc}"))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"closed with {self.close_code}"))
        if not self.lost.done():
            self.lost.set_result(None)
        if self.reader is not None:
            self.reader.remove(self)
        if self.subscriber:
            self.subscriber = False
            self.stats.live -= 1
            self.stats.closes[str(self.close_code)] += 1
            self.stats.advance()
            self.stats.window.set()

    def get_buffer(self, sizehint: int) -> memoryview:
        # Reads land after what is left of a partial frame: no allocation per read.
        if len(self.rbuf) - self.rlen < READ_CHUNK:
            bigger = bytearray(self.rlen + 2 * READ_CHUNK)
            bigger[: self.rlen] = self.rview[: self.rlen]
            self.rbuf, self.rview = bigger, memoryview(bigger)
        return self.rview[self.rlen :]

    def buffer_updated(self, nbytes: int) -> None:
        size = self.rlen + nbytes
        data = self.rbuf
        if self.handshaking:
            rest = self._handshake(bytes(self.rview[:size]))
            size = len(rest)
            data[:size] = rest
            if not size:
                self.rlen = 0
                return
        view = self.rview
        pos = 0
        frames = 0
        fast = self.fast
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            opcode = data[pos] & 0x0F
            if opcode < 3:  # continuation, text, binary
                if not fast:
                    self.fragments.append(bytes(view[start:end]))
                    if data[pos] & 0x80:  # FIN: the frame's messages are complete
                        payload = b"".join(self.fragments)
                        self.fragments = []
                        self.decoded.extend(decode_frame(WireFormat.MSGPACK, payload, BIG))
                frames += 1
            else:
                self._control(opcode, bytes(view[start:end]))
            pos = end
        if frames:
            self.frames += frames
            if fast:
                # Every complete frame at once: headers and control frames never match.
                notices = NOTICE_TEXT.findall(view[:pos])
                if notices:
                    self._notices(notices, time.time())
            else:
                self._messages(time.time())
        left = size - pos
        if left and pos:
            data[:left] = data[pos:size]
        self.rlen = left

    def read_raw(self) -> None:
        """Read what the socket holds (called by :class:`RawReader`)."""
        assert self.raw is not None
        try:
            count = self.raw.recv_into(self.get_buffer(-1))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            count = 0
        if count:
            self.buffer_updated(count)
        elif self.transport is not None:
            self.transport.close()  # end of stream: connection_lost follows

    # --- messages -----------------------------------------------------------------------------

    def _messages(self, now: float) -> None:
        """Full decoding (``hub.codec.decode_frame``): replies, events, everything."""
        notices = []
        decoded, self.decoded = self.decoded, []
        for msg in decoded:
            if msg.get("ev") in STORED_TEXT_EVENTS:
                notices.append(msg["text"].split(":", 2)[1])
            elif "re" in msg:
                self._reply(msg)
        if notices:
            self._notices(notices, now)

    def _notices(self, numbers: list[Any], now: float) -> None:
        """Account for received notices, given by counter (int, str or bytes digits)."""
        stats = self.stats
        counts = stats.counts
        count = len(numbers)
        self.messages += count
        if count == 1:
            self._notice(int(numbers[0]), now)
            return
        received = list(map(int, numbers))
        first = received[0]
        last = received[-1]
        if first == self.last + 1 and received == list(range(first, last + 1)):
            # The usual case: the next counters in order, so none was seen before.
            end = last + 1
            seen = self.seen
            if end > len(seen):
                seen.extend(bytes(end - len(seen) + 4096))
            seen[first:end] = b"\x01" * count
            self.last = last
            stats.delivered += count
            stats.latency.extend([now - sent for sent in stats.sent_at[first:end]])
            counts[first:end] = [c + 1 for c in counts[first:end]]
            if counts[first] >= stats.live and stats.completed >= first:
                stats.advance()
            return
        for i in received:
            self._notice(i, now)

    def _notice(self, i: int, now: float) -> None:
        stats = self.stats
        seen = self.seen
        if i >= len(seen):
            seen.extend(bytes(i - len(seen) + 4096))
        if seen[i]:
            stats.dups += 1
            return
        seen[i] = 1
        if i > self.last:
            self.last = i
        else:
            stats.out_of_order += 1
        stats.delivered += 1
        stats.latency.append(now - stats.sent_at[i])
        counts = stats.counts
        count = counts[i] + 1
        counts[i] = count
        if count >= stats.live and i == stats.completed:
            stats.advance()

    def _reply(self, msg: dict[str, Any]) -> None:
        rid = msg["re"]
        future = self.pending.pop(rid, None)
        if future is not None:
            if not future.done():
                future.set_result(msg)
        elif self.on_ack is not None and isinstance(rid, int):
            self.on_ack(rid, msg)

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x8:  # close
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if self.close_code is None:
                self.close_code = code
            self._send_frame(0x8, payload[:2])
            if self.transport is not None:
                self.transport.close()
        elif opcode == 0x9:  # ping
            self._send_frame(0xA, payload)

    def _handshake(self, data: bytes) -> bytes:
        self.handshake += data
        end = self.handshake.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head = bytes(self.handshake[:end]).decode("latin-1").split("\r\n")
        rest = bytes(self.handshake[end + 4 :])
        self.handshake = bytearray()
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1((self.key + WS_GUID).encode()).digest()).decode()
        if not head[0].startswith("HTTP/1.1 101") or headers.get("sec-websocket-accept") != accept:
            self.opened.set_exception(ConnectionError(f"handshake refused: {head[0]}"))
            assert self.transport is not None
            self.transport.close()
            return b""
        if headers.get("sec-websocket-protocol") != SUBPROTOCOL:
            self.opened.set_exception(ConnectionError("server did not accept hub.v1.msgpack"))
            assert self.transport is not None
            self.transport.close()
            return b""
        self.handshaking = False
        self.opened.set_result(None)
        return rest

    # --- sending ------------------------------------------------------------------------------

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        size = len(payload)
        if size < 126:
            header = bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        stream = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            size, "big"
        )
        transport.write(header + mask + masked)

    def send(self, message: dict[str, Any]) -> None:
        """Send one command in its own binary frame."""
        self._send_frame(0x2, cast(bytes, encode_message(WireFormat.MSGPACK, message)))

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command and return its reply's ``ok`` (raise on ``err``)."""
        rid = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        self.send({"id": rid, "op": op, **fields})
        reply = await asyncio.wait_for(future, 30.0)
        if "err" in reply:
            raise RuntimeError(f"{op} failed: {reply['err']}")
        ok: dict[str, Any] = reply["ok"]
        return ok

    async def close(self) -> None:
        """Close with 1000 and wait (briefly) for the server to answer."""
        if self.transport is None or self.transport.is_closing():
            return
        self._send_frame(0x8, (1000).to_bytes(2, "big"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), 2.0)
        self.transport.close()


class RawReader:
    """Reads the subscribers' sockets through one epoll that the asyncio loop watches.

    A joined subscriber's transport stops reading and this reader does ``recv_into`` on (a
    duplicate of) its socket instead: per frame that saves the loop's per-socket callback
    machinery, which costs more than the server's own per-frame work when every event arrives
    in its own frame. Writes (pongs, closes) still go through the transport.
    """

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.conns: dict[int, Conn] = {}
        asyncio.get_running_loop().add_reader(self.epoll.fileno(), self.ready)

    def add(self, conn: Conn) -> None:
        transport = conn.transport
        assert transport is not None
        transport.pause_reading()
        fd = transport.get_extra_info("socket").fileno()
        raw = socket.socket(fileno=os.dup(fd))
        raw.setblocking(False)
        conn.raw, conn.reader = raw, self
        self.conns[raw.fileno()] = conn
        self.epoll.register(raw.fileno(), select.EPOLLIN)

    def remove(self, conn: Conn) -> None:
        raw = conn.raw
        conn.raw = conn.reader = None
        if raw is not None:
            self.conns.pop(raw.fileno(), None)
            with contextlib.suppress(OSError):
                self.epoll.unregister(raw.fileno())
            raw.close()

    def ready(self) -> None:
        conns = self.conns
        for fd, _ in self.epoll.poll(0):
            conn = conns.get(fd)
            if conn is not None:
                conn.read_raw()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.epoll.fileno())
        for conn in list(self.conns.values()):
            self.remove(conn)
        self.epoll.close()


async def open_conn(stats: Stats, url: str) -> Conn:
    """Connect and finish the WebSocket handshake."""
    return await open_as(Conn, stats, url)


async def open_as(kind: type[C], stats: Stats, url: str) -> C:
    """Connect a ``kind`` of :class:`Conn` and finish the WebSocket handshake."""
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: kind(stats, host, int(port), "/" + path), host, int(port)
    )
    await asyncio.wait_for(conn.opened, 30.0)
    return conn


class Publisher:
    """Sends ``announce`` #0, #1, ... and tracks their acknowledgements."""

    def __init__(self, conn: Conn, stats: Stats, room: str, op: str = "announce") -> None:
        self.conn = conn
        self.stats = stats
        self.room = room
        self.op = op
        self.sent = 0
        self.replied = 0
        self.acked = bytearray()
        self.errors: Counter[str] = Counter()
        conn.on_ack = self.on_ack

    def send_next(self) -> None:
        i = self.sent
        self.sent += 1
        now = time.time()
        self.stats.counts.append(0)
        self.stats.sent_at.append(now)
        self.acked.append(0)
        head = f"{now:.6f}:{i}:"
        text = head + "x" * (TEXT_CHARS - len(head))
        self.conn.send({"id": ANNOUNCE_ID_BASE + i, "op": self.op, "room": self.room, "text": text})

    def on_ack(self, rid: int, msg: dict[str, Any]) -> None:
        i = rid - ANNOUNCE_ID_BASE
        if not 0 <= i < self.sent:
            return
        self.replied += 1
        if "ok" in msg:
            self.acked[i] = 1
        else:
            self.errors[str(msg.get("err", {}).get("code"))] += 1


def sample(server_pids: list[int], redis_pids: list[int], delivered: int) -> dict[str, float]:
    return {
        "t": time.monotonic(),
        "delivered": delivered,
        "loadgen_cpu": time.process_time(),
        "server_cpu": cpu_seconds(server_pids),
        "redis_cpu": cpu_seconds(redis_pids),
        "machine_busy": machine_busy(),
    }


def cpu_shares(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """CPU used between samples ``a`` and ``b``, in cores, by the server, redis-server, the load
    generator and everything else on the machine."""
    span = max(1e-9, b["t"] - a["t"])
    shares = {k: (b[k] - a[k]) / span for k in ("server_cpu", "redis_cpu", "loadgen_cpu")}
    shares["other_cpu"] = (b["machine_busy"] - a["machine_busy"]) / span - sum(shares.values())
    return {k: round(v, 3) for k, v in shares.items()}


def all_server_pids(root_pids: list[int]) -> list[int]:
    """The given pids and their children (a ``--workers`` supervisor's workers)."""
    pids = []
    for pid in root_pids:
        pids.append(pid)
        pids.extend(proc_children(pid))
    return pids


async def wait_drained(pub: Publisher, stats: Stats, stall: float) -> bool:
    """Wait until every sent announce is answered and reached every live subscriber, as long
    as deliveries keep coming (gives up after ``stall`` seconds without progress)."""
    progress = (pub.replied, stats.delivered)
    last_progress = time.monotonic()
    while time.monotonic() - last_progress < stall:
        if pub.replied >= pub.sent and stats.completed >= pub.sent:
            return True
        await asyncio.sleep(0.02)
        now = (pub.replied, stats.delivered)
        if now != progress:
            progress, last_progress = now, time.monotonic()
    return False


def phase_loss(subs: list[Conn], acked: bytearray, first: int, end: int) -> tuple[int, int]:
    """(expected deliveries, lost deliveries) for announces ``first`` .. ``end - 1``."""
    mask = int.from_bytes(acked[first:end], "little")
    per_sub = mask.bit_count()  # acked bytes are 0 or 1
    lost = 0
    for sub in subs:
        got = (int.from_bytes(sub.seen[first:end], "little") & mask).bit_count()
        lost += per_sub - got
    return per_sub * len(subs), lost


def frame_ratio(subs: list[Conn], frames0: int, messages0: int) -> float | None:
    """Notices per data frame received since the counts were ``frames0`` and ``messages0``."""
    frames = sum(s.frames for s in subs) - frames0
    messages = sum(s.messages for s in subs) - messages0
    return round(messages / frames, 2) if frames else None


def latency_summary(values: array[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def ms(q: float) -> float | None:
        value = percentile(ordered, q)
        return None if value is None else round(value * 1000, 2)

    return {"p50_ms": ms(50), "p99_ms": ms(99), "max_ms": ms(100), "samples": len(ordered)}


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    """Run both phases against ``args.url``; returns the results."""
    # The shared epoll reads a duplicate of each socket: two descriptors a subscriber.
    nofile = raise_nofile(2 * args.subscribers + 256)
    if args.read == "epoll" and nofile < 2 * args.subscribers + 256:
        log(f"[loadgen] {nofile} descriptors are too few for the shared epoll (two a subscriber):"
            " reading through the transports (--read asyncio)")  # fmt: skip
        args.read = "asyncio"
    loop = asyncio.get_running_loop()
    stats = Stats()
    server_pids = all_server_pids([int(p) for p in args.server_pids.split(",") if p])
    redis_pids = [int(p) for p in args.redis_pids.split(",") if p]
    result: dict[str, Any] = {"server_pids": server_pids, "redis_pids": redis_pids}
    rss_before = rss_kb(server_pids)
    redis_before = rss_kb(redis_pids)

    subs: list[Conn] = []
    nodes: Counter[str] = Counter()
    gate = asyncio.Semaphore(args.connect_concurrency)
    reader = RawReader() if args.read == "epoll" else None
    started = time.monotonic()

    async def subscribe(index: int) -> None:
        async with gate:
            conn = await open_conn(stats, args.url)
            token = mint(f"sub-{index:05d}", "attendee")
            hello = await conn.request("hello", token=token)
            nodes[str(hello.get("node"))] += 1
            await conn.request("join", room=args.room)
            conn.fast = args.decode == "fast"
            if reader is not None:
                reader.add(conn)
            conn.subscriber = True
            stats.live += 1
            subs.append(conn)

    outcomes = await asyncio.gather(
        *(subscribe(i) for i in range(args.subscribers)), return_exceptions=True
    )
    failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    log(
        f"{len(subs)}/{args.subscribers} subscribers joined in "
        f"{time.monotonic() - started:.1f}s (nodes: {dict(nodes)})"
    )
    pub_conn = await open_conn(stats, args.url)
    await pub_conn.request("hello", token=mint("publisher", "organizer"))
    if args.op != "announce":
        await pub_conn.request("join", room=args.room)  # chat is for members
    pub = Publisher(pub_conn, stats, args.room, args.op)
    await asyncio.sleep(args.settle)  # presence batches go out; the server is idle again
    rss_after = rss_kb(server_pids)
    result.update(
        subscribers=args.subscribers,
        connected=len(subs),
        connect_failures=failures[:5],
        connect_failure_count=len(failures),
        nodes=dict(nodes),
        rss_before_kb=rss_before,
        rss_after_kb=rss_after,
        rss_per_conn_kb=round((rss_after - rss_before) / max(1, len(subs)), 2),
        redis_rss_delta_kb=rss_kb(redis_pids) - redis_before,
    )
    log(f"server RSS {rss_before} -> {rss_after} KiB ({result['rss_per_conn_kb']} KiB/conn)")

    # Phase 1: fixed rate.
    stats.latency = array("d")
    dups0, ooo0 = stats.dups, stats.out_of_order
    count = max(1, round(args.rate * args.duration))
    frames0 = sum(s.frames for s in subs)
    messages0 = sum(s.messages for s in subs)
    first = pub.sent
    begin = sample(server_pids, redis_pids, stats.delivered)
    t0 = loop.time() + 0.05
    for k in range(count):
        delay = t0 + k / args.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        pub.send_next()
    end_sample = sample(server_pids, redis_pids, stats.delivered)
    drained = await wait_drained(pub, stats, args.drain_timeout)
    expected, lost = phase_loss(subs, pub.acked, first, pub.sent)
    result["fixed"] = {
        "rate": args.rate,
        "sent": pub.sent - first,
        "acked": sum(pub.acked[first:]),
        "expected": expected,
        "lost": lost,
        "dups": stats.dups - dups0,
        "out_of_order": stats.out_of_order - ooo0,
        "drained": drained,
        "messages_per_frame": frame_ratio(subs, frames0, messages0),
        **cpu_shares(begin, end_sample),
        **latency_summary(stats.latency),
    }
    log(f"fixed {args.rate}/s: {result['fixed']}")

    # Phase 2: flat out, at most `window` announces in flight end to end.
    stats.latency = array("d")
    dups0, ooo0 = stats.dups, stats.out_of_order
    frames0 = sum(s.frames for s in subs)
    messages0 = sum(s.messages for s in subs)
    first = pub.sent
    samples: dict[str, dict[str, float]] = {}
    warmup = min(2.0, args.duration / 5)
    t0 = loop.time()
    t_end = t0 + args.duration
    loop.call_at(
        t0 + warmup,
        lambda: samples.setdefault("start", sample(server_pids, redis_pids, stats.delivered)),
    )
    window = args.window
    while loop.time() < t_end and stats.live > 0:
        if pub.sent - stats.completed >= window or pub.sent - pub.replied >= 4 * window:
            stats.window.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stats.window.wait(), max(0.001, t_end - loop.time()))
            continue
        pub.send_next()
        if pub.sent % 16 == 0:
            await asyncio.sleep(0)  # let replies and deliveries in between sends
    samples["end"] = sample(server_pids, redis_pids, stats.delivered)
    samples.setdefault("start", samples["end"])
    drained = await wait_drained(pub, stats, args.drain_timeout)
    expected, lost = phase_loss(subs, pub.acked, first, pub.sent)
    a, b = samples["start"], samples["end"]
    span = max(1e-9, b["t"] - a["t"])
    result["flat"] = {
        "window": window,
        "sent": pub.sent - first,
        "acked": sum(pub.acked[first:]),
        "expected": expected,
        "lost": lost,
        "dups": stats.dups - dups0,
        "out_of_order": stats.out_of_order - ooo0,
        "drained": drained,
        "measured_s": round(span, 2),
        "deliveries_per_s": round((b["delivered"] - a["delivered"]) / span),
        "events_per_s": round((b["delivered"] - a["delivered"]) / span / max(1, len(subs)), 1),
        "messages_per_frame": frame_ratio(subs, frames0, messages0),
        **cpu_shares(a, b),
        **latency_summary(stats.latency),
    }
    log(f"flat out: {result['flat']}")

    result["publisher_errors"] = dict(pub.errors)
    result["closes"] = dict(stats.closes)  # close codes seen by subscribers during the run
    result["publisher_close"] = pub_conn.close_code
    await asyncio.gather(*(c.close() for c in [*subs, pub_conn]), return_exceptions=True)
    if reader is not None:
        reader.close()
    return result


# ---------------------------------------------------------------------------------------------
# Orchestration: servers pinned to one core, the load generator to the other
# ---------------------------------------------------------------------------------------------


class Baseline:
    """``benchmarks/baseline_server.py`` in its own process."""

    def __init__(self, cpu: int | None) -> None:
        self.port = free_port()
        command = [
            sys.executable,
            str(ROOT / "benchmarks" / "baseline_server.py"),
            "--port",
            str(self.port),
        ]
        self.command = ["taskset", "-c", str(cpu), *command] if cpu is not None else command
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"baseline server exited with {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise TimeoutError("baseline server not listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def wait_workers(hub: HubProcess, workers: int, timeout: float = 20.0) -> set[str]:
    """Poll /healthz until ``workers`` distinct nodes have answered (all workers serve)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(seen) < workers:
        try:
            with urllib.request.urlopen(hub.http + "/healthz", timeout=2) as response:
                seen.add(json.loads(response.read())["node"])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            time.sleep(0.05)
    return seen


def other_load(seconds: float = 1.0) -> float:
    """Cores busy over ``seconds`` with processes other than this (idle) one."""
    busy, own = machine_busy(), time.process_time()
    time.sleep(seconds)
    return max(0.0, machine_busy() - busy - (time.process_time() - own)) / seconds


def wait_quiet(limit: float, out: Any) -> float:
    """Wait up to ``limit`` seconds for the machine to be idle (other load < 0.1 core)."""
    deadline = time.monotonic() + limit
    load = other_load()
    while load >= 0.1 and time.monotonic() < deadline:
        load = other_load()
    print(f"  machine load before start: {load:.2f} cores busy", file=out, flush=True)
    return load


def run_mode(mode: str, options: argparse.Namespace, out: Any) -> dict[str, Any]:
    """Start the server(s) of ``mode``, run the load generator against them, stop them."""
    with contextlib.ExitStack() as stack:
        setup: dict[str, Any] = {
            "mode": mode,
            "load_before": round(wait_quiet(options.wait_quiet, out), 2),
        }
        redis_pids: list[int] = []
        if mode == "baseline":
            base = Baseline(options.server_cpu)
            stack.callback(base.stop)
            base.start()
            assert base.process is not None
            url, pids, commands = base.url, [base.process.pid], [base.command]
        else:
            redis_url = None
            workers = 1
            if mode.startswith("redis"):
                redis, redis_pids = start_redis(stack, options.redis_cpu)
                redis_url = redis.url
                workers = int(mode[len("redis") :])
                setup["redis"] = {
                    "binary": str(redis.binary),
                    "cpu": "unpinned" if options.redis_cpu is None else options.redis_cpu,
                }
            hub = HubProcess(redis_url=redis_url, workers=workers, cpu=options.server_cpu)
            stack.callback(hub.stop)
            hub.start()
            if workers > 1:
                setup["nodes_up"] = sorted(wait_workers(hub, workers))
            assert hub.process is not None
            url, pids, commands = hub.url, [hub.process.pid], [hub.command]
        deadline = round(120 + options.subscribers / 50 + 4 * options.duration)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--loadgen",
            "--url",
            url,
            "--subscribers",
            str(options.subscribers),
            "--duration",
            str(options.duration),
            "--rate",
            str(options.rate),
            "--window",
            str(options.window),
            "--room",
            options.room,
            "--op",
            options.op,
            "--server-pids",
            ",".join(map(str, pids)),
            "--redis-pids",
            ",".join(map(str, redis_pids)),
            "--deadline",
            str(deadline),
            "--decode",
            options.decode,
            "--read",
            options.read,
        ]
        command = pinned(command, options.loadgen_cpu)
        commands.append(command)
        setup["commands"] = [shlex.join(c) for c in commands]
        for line in setup["commands"]:
            print(f"  $ {line}", file=out, flush=True)
        result = run_loadgen(stack, command, deadline + 15)
        if mode != "baseline" and "error" in result:
            result["server_stderr"] = hub.stderr()[-1500:]
        return {**setup, **result}


def fmt(value: Any, spec: str = "", none: str = "-") -> str:
    if value is None:
        return none
    return format(value, spec)


def table(results: list[dict[str, Any]], options: argparse.Namespace) -> str:
    base = next((r for r in results if r["mode"] == "baseline" and "error" not in r), None)
    rows = [
        (
            "mode",
            "deliv/s",
            "x base",
            "msg/frame",
            f"p50@{options.rate:g}/s",
            "p99",
            "lost",
            "dup",
            "RSS/conn",
            "x base",
            "srv cpu",
            "lg cpu",
            "other",
        )
    ]
    for r in results:
        if "error" in r:
            rows.append((r["mode"], "error: " + r["error"][:90], *[""] * 11))
            continue
        flat, fixed = r["flat"], r["fixed"]
        ratio = rss_ratio = None
        if base is not None and base["flat"]["deliveries_per_s"]:
            ratio = flat["deliveries_per_s"] / base["flat"]["deliveries_per_s"]
            if base["rss_per_conn_kb"] > 0:
                rss_ratio = r["rss_per_conn_kb"] / base["rss_per_conn_kb"]
        rows.append(
            (
                r["mode"],
                f"{flat['deliveries_per_s']:,}",
                fmt(ratio, ".2f"),
                fmt(flat["messages_per_frame"], ".1f"),
                fmt(fixed["p50_ms"], ".1f", "-") + " ms",
                fmt(fixed["p99_ms"], ".1f", "-") + " ms",
                f"{fixed['lost'] + flat['lost']:,}",
                f"{fixed['dups'] + flat['dups']:,}",
                f"{r['rss_per_conn_kb']:.1f} KB",
                fmt(rss_ratio, ".2f"),
                f"{flat['server_cpu'] + flat['redis_cpu']:.0%}",
                f"{flat['loadgen_cpu']:.0%}",
                f"{max(0.0, flat['other_cpu']):.0%}",
            )
        )
    return format_table(rows)


def notes(results: list[dict[str, Any]], options: argparse.Namespace) -> Iterator[str]:
    for r in results:
        if "error" in r:
            continue
        mode, flat, fixed = r["mode"], r["flat"], r["fixed"]
        detail = (
            f"{mode}: {r['connected']}/{r['subscribers']} joined"
            + (f" over nodes {r['nodes']}" if len(r.get("nodes", {})) > 1 else "")
            + f"; flat out {flat['sent']:,} announces (window {flat['window']}), "
            f"{flat['events_per_s']:,} events/s, p50 {fmt(flat['p50_ms'])} ms "
            f"p99 {fmt(flat['p99_ms'])} ms under load; fixed rate {fixed['sent']} announces, "
            f"max {fmt(fixed['max_ms'])} ms, {fmt(fixed['messages_per_frame'])} msg/frame, server "
            f"cpu {fixed['server_cpu'] + fixed['redis_cpu']:.0%}, load generator cpu "
            f"{fixed['loadgen_cpu']:.0%}; RSS {r['rss_before_kb']:,} -> "
            f"{r['rss_after_kb']:,} KiB"
        )
        if flat["redis_cpu"] or fixed["redis_cpu"]:
            detail += f"; redis-server cpu {flat['redis_cpu']:.0%} of the flat-out phase"
        yield detail
        if r.get("closes") or r.get("publisher_errors"):
            yield f"{mode}: closes {r.get('closes')}, publisher errors {r.get('publisher_errors')}"
        if not (flat["drained"] and fixed["drained"]):
            yield f"{mode}: deliveries stalled before every announce had reached every subscriber"
        if flat["out_of_order"] or fixed["out_of_order"]:
            yield f"{mode}: {flat['out_of_order'] + fixed['out_of_order']} out-of-order deliveries"
        if flat["loadgen_cpu"] > 0.9 and flat["server_cpu"] + flat["redis_cpu"] < 0.9:
            yield (
                f"{mode}: the load generator was the bottleneck (cpu {flat['loadgen_cpu']:.0%} vs "
                f"server {flat['server_cpu'] + flat['redis_cpu']:.0%}): deliveries/s is a floor"
            )
        if mode != "baseline":
            lost = flat["lost"] + fixed["lost"]
            checks = [
                ("no loss", lost == 0 and r["connected"] == r["subscribers"]),
                (
                    f">= {TARGET_DELIVERIES:,} deliveries/s",
                    flat["deliveries_per_s"] >= TARGET_DELIVERIES,
                ),
                (
                    f"p99 < {TARGET_P99_MS:g} ms at {options.rate:g}/s",
                    fixed["p99_ms"] is not None and fixed["p99_ms"] < TARGET_P99_MS,
                ),
                (f"< {TARGET_RSS_KB:g} KB RSS/conn", r["rss_per_conn_kb"] < TARGET_RSS_KB),
            ]
            yield f"{mode} targets: " + ", ".join(
                f"{name} {'ok' if passed else 'MISSED'}" for name, passed in checks
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="livehub fan-out benchmark")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=50.0, help="fixed-rate phase, msg/s")
    parser.add_argument("--window", type=int, default=200, help="flat out: announces in flight")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--room", default=ROOM)
    parser.add_argument(
        "--op",
        default="announce",
        choices=("announce", "chat.send"),
        help="what the publisher sends: stored notices, or chat messages",
    )
    add_run_arguments(parser)
    parser.add_argument("--server-cpu", type=int, help="core of the server (default: first)")
    parser.add_argument("--loadgen-cpu", type=int, help="core of the load generator (second)")
    parser.add_argument(
        "--redis-cpu", default="server", help="core of redis-server: a number, server or none"
    )
    parser.add_argument(
        "--decode",
        choices=("fast", "full"),
        default="fast",
        help="subscribers scan frames for notices (fast) or decode every message (full)",
    )
    parser.add_argument(
        "--read",
        choices=("epoll", "asyncio"),
        default="epoll",
        help="subscribers read through one shared epoll (epoll) or their transports (asyncio)",
    )
    add_loadgen_arguments(parser, "--url")  # internal: the load generator process
    options = parser.parse_args(argv)
    if options.loadgen:
        return loadgen_main(loadgen, options)

    modes = parse_modes(parser, options.modes, MODES + EXTRA_MODES)
    cpus = pin_cpus(options)
    redis_cpu = options.redis_cpu
    options.redis_cpu = (
        None
        if redis_cpu == "none"
        else options.server_cpu
        if redis_cpu == "server"
        else int(redis_cpu)
    )
    nofile = raise_nofile(options.subscribers + 256)

    out, invocation = start_output(options, argv)
    print(
        f"fan-out: {options.subscribers} subscribers in room {options.room!r}, {TEXT_CHARS}-char "
        f"announces; {options.duration:g}s at {options.rate:g} msg/s, then {options.duration:g}s "
        f"flat out (window {options.window}); server on cpu {fmt(options.server_cpu)}, load "
        f"generator on cpu {fmt(options.loadgen_cpu)}, redis-server on cpu "
        f"{fmt(options.redis_cpu, '', 'unpinned')} (of {len(cpus)}); RLIMIT_NOFILE {nofile}",
        file=out,
        flush=True,
    )

    results = run_modes(modes, run_mode, options, out)
    if results is None:
        return 130
    report(
        invocation,
        options,
        results,
        lambda: table(results, options),
        lambda: notes(results, options),
    )
    if options.json:
        return 0
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
