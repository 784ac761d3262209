"""Media for WebRTC tests: a synthetic video track, and ICE kept on the loopback interface (or
on given addresses, such as the host end of a test namespace's veth).

Test peer connections are built as ``RTCPeerConnection(RTCConfiguration(iceServers=[]))``:
aiortc's default STUN server is unreachable here and would stall gathering for 5 s. Inside
:func:`loopback_only` they gather 127.0.0.1 only, so test media never touches a real interface::

    with loopback_only():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = SyntheticVideoTrack()
        pc.addTrack(track)
        ...
        await pc.close()
        track.stop()

With a peer (Janus) that ignores loopback, in a test network namespace, use
``host_addresses_only(janus.peer_address)`` instead (:mod:`support.janus`).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from unittest import mock

import aioice.ice
from aiortc.mediastreams import VideoStreamTrack
from av import VideoFrame

__all__ = ["SyntheticVideoTrack", "host_addresses_only", "loopback_only"]


class SyntheticVideoTrack(VideoStreamTrack):
    """A live video track of small ``yuv420p`` frames (160x120 by default) at aiortc's 30 fps:
    a grey gradient that shifts by one pixel a frame, so consecutive frames differ. Made without
    numpy. ``frames`` counts the frames handed out. Stop it with :meth:`stop`."""

    def __init__(self, width: int = 160, height: int = 120) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError("yuv420p needs positive, even dimensions")
        super().__init__()
        self.width = width
        self.height = height
        self.frames = 0

    async def recv(self) -> VideoFrame:
        """The next frame, paced by :meth:`next_timestamp` (which also sets ``pts``)."""
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        luma, *chroma = frame.planes
        # Rows are padded to line_size, which may exceed the width.
        row = bytes((x + self.frames) % 256 for x in range(self.width))
        luma.update((row + bytes(luma.line_size - self.width)) * self.height)
        for plane in chroma:
            plane.update(b"\x80" * plane.buffer_size)  # neutral chroma: grey
        frame.pts = pts
        frame.time_base = time_base
        self.frames += 1
        return frame


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While open, aioice gathers host candidates on 127.0.0.1 only (by default it skips loopback
    and offers every real interface's address). Patches ``aioice.ice.get_host_addresses``, which
    ``Connection.gather_candidates`` looks up at call time; no STUN or TURN server is implied:
    build peer connections with ``iceServers=[]``."""
    with mock.patch.object(aioice.ice, "get_host_addresses", _loopback_addresses):
        yield


@contextlib.contextmanager
def host_addresses_only(*addresses: str) -> Iterator[None]:
    """While open, aioice gathers host candidates on ``addresses`` only (each must be an address
    of this host; its sockets are bound to it, so checks and media leave through its interface).
    aiortc offers no interface filter of its own: this patches ``aioice.ice.get_host_addresses``
    like :func:`loopback_only`, for every peer connection that gathers inside the block
    (``setLocalDescription``). Build them with ``iceServers=[]``."""
    versions = {address: ipaddress.ip_address(address).version for address in addresses}

    def only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        wanted = {4: use_ipv4, 6: use_ipv6}
        return [address for address, version in versions.items() if wanted[version]]

    with mock.patch.object(aioice.ice, "get_host_addresses", only):
        yield
