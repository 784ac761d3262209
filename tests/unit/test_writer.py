"""The writer: coalescing per loop iteration, the ASGI path that waits for the peer, the direct
frames, and the close it performs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import TIMEOUT
from websockets.frames import Frame, Opcode

from hub.codec import WireFormat, decode_frame
from hub.config import Limits
from hub.errors import CloseCode
from hub.metrics import HubMetrics
from hub.session import Session
from hub.writer import FlushScheduler, Writer, direct_protocol, ws_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("opcode", [Opcode.BINARY, Opcode.TEXT])
def test_frames_are_what_websockets_would_send(size: int, opcode: Opcode) -> None:
    payload = b"x" * size
    first = 0x80 | opcode.value
    assert ws_frame(payload, first) == Frame(opcode, payload).serialize(mask=False)


def test_a_plain_asgi_send_has_no_direct_path() -> None:
    async def send(message: Any) -> None:
        pass

    assert direct_protocol(send) is None


class FakeSend:
    """An ASGI send that records messages and, while ``gate`` is clear, makes senders wait (a
    peer that stopped reading)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent = asyncio.Event()

    async def __call__(self, message: Any) -> None:
        await self.gate.wait()
        self.messages.append(message)
        self.sent.set()

    def payloads(self, fmt: WireFormat) -> list[list[dict[str, Any]]]:
        key = "bytes" if fmt.binary else "text"
        return [decode_frame(fmt, m[key]) for m in self.messages if m["type"] == "websocket.send"]


def make(fmt: WireFormat = WireFormat.MSGPACK) -> tuple[Session, Writer, FakeSend]:
    send = FakeSend()

    session = Session("n.s", fmt, Limits())
    writer = Writer(send, session, FlushScheduler(), 64 * 1024, HubMetrics())
    return session, writer, send


async def next_turn() -> None:
    """Return once the flush scheduled by what was just queued has run: it is a loop callback,
    and callbacks run in the order they were scheduled."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    loop.call_soon(done.set_result, None)
    await asyncio.wait_for(done, TIMEOUT)


@pytest.mark.parametrize("fmt", list(WireFormat))
async def test_what_is_queued_in_one_iteration_shares_a_frame(fmt: WireFormat) -> None:
    session, _, send = make(fmt)
    for n in range(3):
        session.send({"ev": "x", "n": n})
    await next_turn()
    assert send.payloads(fmt) == [[{"ev": "x", "n": 0}, {"ev": "x", "n": 1}, {"ev": "x", "n": 2}]]


async def test_a_send_that_must_wait_continues_in_order_in_a_task() -> None:
    session, writer, send = make()
    send.gate.clear()
    session.send({"n": 1})
    await next_turn()  # the flush starts the send, which waits
    session.send({"n": 2})
    session.send({"n": 3})
    await next_turn()
    assert send.messages == []
    send.gate.set()
    while len(send.messages) < 2:
        send.sent.clear()
        await asyncio.wait_for(send.sent.wait(), TIMEOUT)
    assert send.payloads(WireFormat.MSGPACK) == [[{"n": 1}], [{"n": 2}, {"n": 3}]]
    assert not writer.finished.done()
    session.send({"n": 4})  # idle again: a put wakes a flush
    await next_turn()
    assert send.payloads(WireFormat.MSGPACK)[-1] == [{"n": 4}]


async def test_a_requested_close_follows_what_was_queued() -> None:
    session, writer, send = make()
    session.send({"n": 1})
    session.request_close(CloseCode.DRAINING, "node is draining")
    await asyncio.wait_for(writer.finished, TIMEOUT)
    assert [m["type"] for m in send.messages] == ["websocket.send", "websocket.close"]
    assert send.messages[-1]["code"] == 1012


async def test_an_overflow_closes_with_4008_without_the_backlog() -> None:
    session, writer, send = make()
    send.gate.clear()
    session.send({"n": 0})
    await next_turn()  # stuck in a send
    for n in range(session.queue.max_messages + 1):
        session.send({"n": n})
    assert session.close_code is CloseCode.SLOW_CONSUMER
    send.gate.set()
    await asyncio.wait_for(writer.finished, TIMEOUT)
    assert send.payloads(WireFormat.MSGPACK) == [[{"n": 0}]]
    assert send.messages[-1] == {
        "type": "websocket.close",
        "code": 4008,
        "reason": "outbound queue overflowed",
    }


async def test_cancel_stops_a_waiting_send_and_finishes() -> None:
    session, writer, send = make()
    send.gate.clear()
    session.send({"n": 1})
    await next_turn()
    writer.cancel()
    await writer.wait_stopped()
    assert writer.finished.done()
    assert send.messages == []
