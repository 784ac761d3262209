"""livehub's Python clients: :class:`HubClient`, an asyncio client of the hub's wire contract
(``docs/protocol.md``), and :class:`PeerLink`, an aiortc peer connection negotiated through it.

They are clients, not server code: the server never imports this package, and it may import only
the server's I/O-free wire modules (``hub.codec``, ``hub.errors``). aiortc loads only when one of
the names of :mod:`livehub_client.rtc` is first used, so that a process of plain clients (a
benchmark's hundreds, say) does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from livehub_client.connection import (
    FATAL_CLOSE_CODES,
    HubClient,
    HubClosed,
    HubRequestError,
    RoomPosition,
)

if TYPE_CHECKING:
    from livehub_client.rtc import (
        PeerLink,
        SignalClient,
        SignalSender,
        ice_candidate,
        run_signals,
        sdp_candidates,
    )

__all__ = [
    "FATAL_CLOSE_CODES",
    "HubClient",
    "HubClosed",
    "HubRequestError",
    "PeerLink",
    "RoomPosition",
    "SignalClient",
    "SignalSender",
    "ice_candidate",
    "run_signals",
    "sdp_candidates",
]

# livehub_client.rtc.__all__, which a test compares with this.
_RTC_NAMES: Final = frozenset(
    {"PeerLink", "SignalClient", "SignalSender", "ice_candidate", "run_signals", "sdp_candidates"}
)


def __getattr__(name: str) -> Any:
    """The names of :mod:`livehub_client.rtc`, imported (with aiortc) on first use."""
    if name in _RTC_NAMES:
        value = getattr(importlib.import_module("livehub_client.rtc"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
