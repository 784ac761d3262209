"""The hub's WebSocket protocol under uvicorn: a window of inbound messages, still bounded.

An in-process uvicorn server with a stub application that stops taking messages until told to,
and a real WebSocket client that keeps sending.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets

from hub.wsprotocol import INBOUND_WINDOW, HubWebSocketProtocol
from tests.conftest import TIMEOUT
from tests.support.hub_process import free_port
from tests.support.waiting import eventually

MESSAGES = 3000
# One message is a short text frame; what one socket read can complete past the window is far
# less than this many of them (asyncio reads 256 KiB at most, and the client sends slowly once
# the server stops reading).
BOUND = INBOUND_WINDOW + 64 * 1024 // 8


class StubApp:
    """Accepts one WebSocket, then takes messages only once ``go`` is set."""

    def __init__(self) -> None:
        self.protocol: HubWebSocketProtocol | None = None
        self.accepted = asyncio.Event()
        self.go = asyncio.Event()
        self.received: list[str] = []
        self.done = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.protocol = send.__self__
        self.accepted.set()
        await self.go.wait()
        while len(self.received) < MESSAGES:
            message = await receive()
            assert message["type"] == "websocket.receive"
            self.received.append(message["text"])
        self.done.set()
        await receive()  # the client's close


@pytest.fixture
async def server() -> AsyncIterator[tuple[StubApp, int]]:
    app = StubApp()
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=HubWebSocketProtocol,
        lifespan="off",
        log_level="warning",
    )
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve())
    await eventually(lambda: instance.started, TIMEOUT, "uvicorn started")
    yield app, port
    instance.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT)


async def test_a_busy_app_stops_reading_at_the_window_and_loses_nothing(
    server: tuple[StubApp, int],
) -> None:
    app, port = server
    async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
        await asyncio.wait_for(app.accepted.wait(), TIMEOUT)
        protocol = app.protocol
        assert isinstance(protocol, HubWebSocketProtocol)

        sender = asyncio.create_task(_send_all(ws))
        await eventually(lambda: protocol.reading_stopped, TIMEOUT, "reading stopped")
        waiting = protocol.waiting()
        assert INBOUND_WINDOW <= waiting <= BOUND

        app.go.set()
        await asyncio.wait_for(app.done.wait(), TIMEOUT)
        await asyncio.wait_for(sender, TIMEOUT)
        assert app.received == [f"m{i}" for i in range(MESSAGES)]
        assert not protocol.reading_stopped


async def _send_all(ws: websockets.ClientConnection) -> None:
    for i in range(MESSAGES):
        await ws.send(f"m{i}")
