"""What the SFU benchmarks (``relay.py``, ``janus.py``) share: viewers that count frames
without decoding them, and a process's CPU time and memory from ``/proc``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import aiortc.rtcrtpreceiver
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from livehub_client import HubClient
from livehub_client.stage import StageViewer, run_stage

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class CountingDecoder:
    """Stands in for aiortc's decoders on the viewers' side: hands each encoded frame on as it
    is, counting its bytes, so a viewer counts frames without decoding them."""

    received_bytes = 0

    def decode(self, encoded: Any) -> list[Any]:
        CountingDecoder.received_bytes += len(encoded.data)
        return [encoded]


def no_decoding() -> None:
    """Make this process's aiortc receivers hand on encoded frames instead of decoding them."""
    aiortc.rtcrtpreceiver.get_decoder = lambda codec: CountingDecoder()  # type: ignore[assignment]


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid`` so far: the sum of its live threads' run times
    (``/proc/PID/task/*/schedstat``, in nanoseconds: the hub's few milliseconds per subscribe
    are below ``/proc/PID/stat``'s clock ticks), or ``stat``'s user plus system time."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                total += int((task / "schedstat").read_text().split()[0])
    except OSError:
        total = 0
    if total:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


class Viewer:
    """One viewer: its client, its stage link and the frames it counted."""

    def __init__(self, client: HubClient, room: str) -> None:
        self.client = client
        self.frames = 0
        self.first_frame: float | None = None
        self.subscribed_at = 0.0
        # When each step towards the first frame happened (monotonic seconds): the SFU's offer
        # applied, ICE connected, DTLS connected, the first video packet.
        self.phases: dict[str, float] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.link = StageViewer(client, room, self._pc, retry=False)
        self.router = asyncio.ensure_future(
            run_stage(client, room, viewer=self.link, on_event=self._seen)
        )

    def _seen(self, event: dict[str, Any]) -> None:
        if event.get("ev") == "signal" and event.get("type") == "offer":
            self.phases.setdefault("signal", time.monotonic())

    def _pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.phases.setdefault("offer", time.monotonic())
            self.readers.append(asyncio.ensure_future(self._read(track)))

        @pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            if pc.iceConnectionState == "completed":
                self.phases.setdefault("ice", time.monotonic())

        @pc.on("connectionstatechange")
        def on_connection() -> None:
            if pc.connectionState == "connected":
                self.phases.setdefault("dtls", time.monotonic())

        return pc

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if self.first_frame is None:
                    self.first_frame = time.monotonic()
                self.frames += 1

    async def subscribe(self) -> None:
        self.subscribed_at = time.monotonic()
        await self.link.subscribe()

    async def close(self) -> None:
        await self.link.close()
        for task in [self.router, *self.readers]:
            task.cancel()
        await asyncio.gather(self.router, *self.readers, return_exceptions=True)
        await self.client.close()
