"""A transport for protocols driven by hand in unit tests: no socket, everything recorded."""

from __future__ import annotations

import asyncio

PEER = ("203.0.113.7", 40000)


class FakeTransport(asyncio.Transport):
    """Records what is written; ``changed`` is set at every write, close or abort."""

    def __init__(self) -> None:
        super().__init__({"peername": PEER, "sockname": ("127.0.0.1", 8000)})
        self.protocol: asyncio.BaseProtocol | None = None
        self.written = bytearray()
        self.closing = False
        self.aborted = False
        self.reading = True
        self.changed = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data
        self.changed.set()

    def close(self) -> None:
        self.closing = True
        self.changed.set()

    def abort(self) -> None:
        self.aborted = self.closing = True
        self.changed.set()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol
