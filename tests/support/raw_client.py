"""A raw WebSocket client over a TCP socket, for tests that must break the rules a real client
keeps: never read, send half a request, claim an address through ``X-Forwarded-For``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

from support.hub_process import HubProcess

TIMEOUT = 10.0


async def upgraded(
    hub: HubProcess, receive_buffer: int | None = None, forwarded_for: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP connection to ``hub`` that completed the WebSocket upgrade (JSON), with a
    kernel receive buffer of ``receive_buffer`` bytes when given."""
    reader, writer, head = await handshake(
        hub, receive_buffer=receive_buffer, forwarded_for=forwarded_for
    )
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def handshake(
    hub: HubProcess,
    *,
    receive_buffer: int | None = None,
    host: str | None = None,
    origin: str | None = None,
    forwarded_for: str | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw TCP connection to ``hub`` that sent a WebSocket upgrade request (with ``Host`` and
    ``Origin`` as given) and read the response head."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", hub.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Origin: {origin}\r\n" if origin is not None else ""
    if forwarded_for is not None:  # as a proxy on this machine (which the hub trusts) says
        extra += f"X-Forwarded-For: {forwarded_for}\r\n"
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host or f'127.0.0.1:{hub.port}'}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hub.v1.json\r\n{extra}\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    return reader, writer, head


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payloads under 64 KiB)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        head = bytes([0x80 | opcode, 0x80 | len(payload)])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", len(payload))
    return head + mask + masked


async def server_messages(reader: asyncio.StreamReader) -> list[dict[str, Any]]:
    """The messages of the next (unmasked, text) frame the hub sends: one or several, one per
    line, as the hub coalesces what waits."""
    first, length = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    size = length & 0x7F
    if size == 126:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", await reader.readexactly(8))[0]
    payload = await asyncio.wait_for(reader.readexactly(size), TIMEOUT)
    assert first & 0x0F == 0x1, f"expected a text frame, got opcode {first & 0x0F}"
    return [json.loads(line) for line in payload.split(b"\n") if line]


async def command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, **fields: Any
) -> dict[str, Any]:
    """Send one JSON command and return its reply (events before it are skipped)."""
    writer.write(client_frame(0x1, json.dumps(fields).encode()))
    while True:
        for message in await server_messages(reader):
            if message.get("re") == fields["id"]:
                return message


async def close_code(reader: asyncio.StreamReader) -> int:
    """The code of the close frame the hub sends next (unmasked, short)."""
    first, length = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    assert first & 0x0F == 0x8, f"expected a close frame, got opcode {first & 0x0F}"
    body = await reader.readexactly(length & 0x7F)
    code: int = struct.unpack("!H", body[:2])[0]
    return code
