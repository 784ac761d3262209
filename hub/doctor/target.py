"""The deployment ``hub doctor`` examines: from the one URL an operator gives, the addresses of
its ``/readyz`` and its WebSocket endpoint ``/ws``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

_WS_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES: Final = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


@dataclass(frozen=True, slots=True)
class Target:
    """A deployment's addresses: ``base`` (``http(s)://host[:port][/prefix]``), its ``readyz``
    and its WebSocket URL ``ws`` (``wss://`` for ``https://``)."""

    base: str
    readyz: str
    ws: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """The target of ``https://event.example.org`` (or ``http://``, with a path prefix the
        proxy serves the hub under, if any) or of its WebSocket URL ``wss://.../ws``. Raises
        ValueError for anything else (no scheme of those four, no host, a bad port, a query
        or a fragment)."""
        if any(ch.isspace() or not ch.isprintable() for ch in url):
            raise ValueError("it holds whitespace or control characters")
        parts = urlsplit(url)  # ValueError for a broken [IPv6] host
        parts.port  # noqa: B018 -- ValueError for a port that is not one
        if parts.scheme not in _WS_SCHEMES or not parts.hostname:
            raise ValueError("it is not an http(s):// or ws(s):// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("it has a query or a fragment")
        path = parts.path.rstrip("/")
        if parts.scheme in ("ws", "wss") and path.endswith("/ws"):
            path = path[: -len("/ws")]
        http = _HTTP_SCHEMES[parts.scheme]
        ws = _WS_SCHEMES[parts.scheme]
        return cls(
            base=urlunsplit((http, parts.netloc, path, "", "")),
            readyz=urlunsplit((http, parts.netloc, f"{path}/readyz", "", "")),
            ws=urlunsplit((ws, parts.netloc, f"{path}/ws", "", "")),
        )
