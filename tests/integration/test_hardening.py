"""What a hostile or broken client still gets from a real ``hub serve``: raw sockets that break
the rules the hub must hold against."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

from support.hub_process import HubProcess
from support.waiting import eventually

from .conftest import StartHub

TIMEOUT = 10.0


async def upgraded(hub: HubProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP connection to ``hub`` that completed the WebSocket upgrade (JSON)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: hub.v1.json\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def close_code(reader: asyncio.StreamReader) -> int:
    """The code of the close frame the hub sends next (unmasked, short)."""
    first, length = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    assert first & 0x0F == 0x8, f"expected a close frame, got opcode {first & 0x0F}"
    body = await reader.readexactly(length & 0x7F)
    code: int = struct.unpack("!H", body[:2])[0]
    return code


async def test_an_invalid_utf8_text_frame_closes_with_1007_and_logs_one_line(
    start_hub: StartHub,
) -> None:
    hub = start_hub()
    reader, writer = await upgraded(hub)
    try:
        writer.write(client_frame(0x1, b"\xff\xfe\xfd"))
        assert await close_code(reader) == 1007
    finally:
        writer.close()
    await eventually(lambda: "Invalid UTF-8" in hub.stderr(), what="the log line")
    assert "Traceback" not in hub.stderr()
