"""The h11 protocol's deadline for the first request, driven by hand over a fake transport."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import uvicorn
from transports import FakeTransport
from uvicorn.server import ServerState

from hub.httpprotocol import DeadlineH11Protocol
from hub.wsprotocol import HubWebSocketProtocol

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: hub.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def test_an_upgrade_lets_the_http_protocol_go_at_once() -> None:
    async def app(scope: object, receive: object, send: Any) -> None:
        await send({"type": "websocket.close"})

    config = uvicorn.Config(app, lifespan="off", log_config=None, ws=HubWebSocketProtocol)
    config.load()
    transport = FakeTransport()
    http = DeadlineH11Protocol(config, ServerState(), {})
    http.connection_made(transport)
    transport.set_protocol(http)
    gone = weakref.ref(http)
    http.data_received(UPGRADE)
    assert isinstance(transport.get_protocol(), HubWebSocketProtocol)
    del http
    gc.collect()
    # Nothing holds it any more, the deadline's timer included (it would for 10 s).
    assert gone() is None
    await asyncio.gather(*asyncio.all_tasks() - {asyncio.current_task()})
