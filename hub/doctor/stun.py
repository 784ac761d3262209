"""STUN and TURN, spoken just far enough to learn whether a server answers (RFC 8489, 8656):
a STUN Binding request, or a TURN Allocate with TURN REST credentials whose allocation is
released at once. Over UDP (retransmitted, as STUN's rules ask), TCP or TLS.

The messages are aioice's (:mod:`aioice.stun`, which aiortc brings); callers bound every
exchange with a timeout of their own."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs

from aioice import stun
from aioice.turn import make_integrity_key

#: REQUESTED-TRANSPORT for a UDP relay (the protocol number, 17, in the first byte).
UDP_RELAY: Final = 17 << 24
#: First retransmission of a UDP request; each next one waits twice as long (RFC 8489 6.2.1).
FIRST_RETRANSMIT: Final = 0.25
_DEFAULT_PORTS: Final = {"stun": 3478, "turn": 3478, "stuns": 5349, "turns": 5349}
_HEADER: Final = 20
# Attributes a signed request gets anew.
_AUTH: Final = frozenset({"USERNAME", "REALM", "NONCE", "MESSAGE-INTEGRITY", "FINGERPRINT"})


class StunError(Exception):
    """A server answered with a STUN error: its ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IceUrl:
    """A ``stun:``/``stuns:``/``turn:``/``turns:`` URL (RFC 7064, 7065): where to send requests
    and how (``transport`` ``udp`` or ``tcp``; ``tls`` for ``stuns:`` and ``turns:``)."""

    url: str
    scheme: str
    host: str
    port: int
    transport: str
    tls: bool

    @property
    def is_turn(self) -> bool:
        """Whether this is a TURN server's URL (else a STUN server's)."""
        return self.scheme in ("turn", "turns")

    @classmethod
    def parse(cls, url: str) -> IceUrl:
        """Parse ``url``; ValueError when it is not one of the four schemes with a host, a
        valid port and a transport of ``udp`` or ``tcp`` (TLS runs over TCP)."""
        scheme, colon, rest = url.partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in _DEFAULT_PORTS:
            raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
        address, _, query = rest.partition("?")
        transport = parse_qs(query).get("transport", [""])[0].lower()
        tls = scheme in ("stuns", "turns")
        transport = transport or ("tcp" if tls else "udp")
        if transport not in ("udp", "tcp") or (tls and transport != "tcp"):
            raise ValueError(f"{url!r}: transport {transport} cannot be used")
        host, port = _host_port(address, _DEFAULT_PORTS[scheme])
        if not host:
            raise ValueError(f"{url!r} has no host")
        return cls(url, scheme, host, port, transport, tls)

    @property
    def where(self) -> str:
        """``udp 192.0.2.1:3478``: the transport and address requests go to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls' if self.tls else self.transport} {host}:{self.port}"


def _host_port(address: str, default: int) -> tuple[str, int]:
    if address.startswith("["):
        host, _, after = address[1:].partition("]")
        port = after[1:] if after.startswith(":") else ""
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not port:
        return host, default
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} has no valid port")
    return host, int(port)


class _Datagrams(asyncio.DatagramProtocol):
    """A UDP socket's datagrams and errors, for one exchange at a time."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # On a connected socket: the ICMP "port unreachable" of a server that is not there.
        self.received.put_nowait(exc)


class StunChannel:
    """One connection to a STUN or TURN server (:meth:`open`), over which :meth:`request` sends
    a request and returns its answer; :meth:`close` ends it."""

    def __init__(self, url: IceUrl) -> None:
        self.url = url
        self._udp: asyncio.DatagramTransport | None = None
        self._datagrams = _Datagrams()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    async def open(cls, url: IceUrl) -> StunChannel:
        """Connect to ``url``'s server (a UDP socket bound to it, or a TCP/TLS connection)."""
        channel = cls(url)
        loop = asyncio.get_running_loop()
        if url.transport == "udp":
            channel._udp, _ = await loop.create_datagram_endpoint(
                lambda: channel._datagrams, remote_addr=(url.host, url.port)
            )
        else:
            context = ssl.create_default_context() if url.tls else None
            channel._reader, channel._writer = await asyncio.open_connection(
                url.host, url.port, ssl=context
            )
        return channel

    async def request(self, message: stun.Message) -> stun.Message:
        """Send ``message`` and return the answer with its transaction id (success or error
        alike); over UDP, sent again after 0.25 s, 0.5 s more, and so on until answered. Raises
        OSError when the server cannot be reached (UDP: an ICMP error came back) or closes the
        connection (TCP), ValueError for an answer that is not STUN (TCP)."""
        data = bytes(message)
        if self._udp is not None:
            return await self._udp_request(data, message.transaction_id)
        assert self._writer is not None and self._reader is not None
        self._writer.write(data)
        await self._writer.drain()
        try:
            while True:
                header = await self._reader.readexactly(_HEADER)
                (length,) = struct.unpack("!H", header[2:4])
                answer = stun.parse_message(header + await self._reader.readexactly(length))
                if answer.transaction_id == message.transaction_id:
                    return answer
        except asyncio.IncompleteReadError:
            raise ConnectionError("the server closed the connection without answering") from None

    async def _udp_request(self, data: bytes, transaction_id: bytes) -> stun.Message:
        assert self._udp is not None
        wait = FIRST_RETRANSMIT
        while True:
            self._udp.sendto(data)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    while True:
                        received = await self._datagrams.received.get()
                        if isinstance(received, Exception):
                            raise received
                        with contextlib.suppress(ValueError):  # not STUN: not ours
                            answer = stun.parse_message(received)
                            if answer.transaction_id == transaction_id:
                                return answer
            wait *= 2

    def close(self) -> None:
        """End the connection (idempotent)."""
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()


def _raise_for_error(answer: stun.Message) -> None:
    if answer.message_class == stun.Class.ERROR:
        code, reason = answer.attributes.get("ERROR-CODE", (0, "an error without a code"))
        raise StunError(code, reason)


async def binding(channel: StunChannel) -> tuple[str, int] | None:
    """A STUN Binding request: the address the server saw this machine at (None when it did
    not say). Raises :class:`StunError` for an error answer."""
    answer = await channel.request(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
    _raise_for_error(answer)
    mapped = answer.attributes.get("XOR-MAPPED-ADDRESS") or answer.attributes.get("MAPPED-ADDRESS")
    return (str(mapped[0]), int(mapped[1])) if mapped else None


@dataclass(frozen=True, slots=True)
class Allocation:
    """What a TURN server granted: the ``relayed`` address (None when it did not say) and
    whether it asked for credentials first (``authenticated``; a server that does not is an
    open relay)."""

    relayed: tuple[str, int] | None
    authenticated: bool


async def allocate_and_release(channel: StunChannel, username: str, password: str) -> Allocation:
    """A TURN Allocate for a UDP relay, answering the server's challenge (401 with a realm and
    a nonce) with ``username`` and ``password`` (long-term credentials: TURN REST ones here),
    then a Refresh with lifetime 0 that releases the allocation. Raises :class:`StunError` for
    an error answer (401 after the credentials were sent: they were refused)."""
    request = stun.Message(
        stun.Method.ALLOCATE, stun.Class.REQUEST, attributes={"REQUESTED-TRANSPORT": UDP_RELAY}
    )
    answer = await channel.request(request)
    if answer.message_class != stun.Class.ERROR:
        await channel.request(
            stun.Message(stun.Method.REFRESH, stun.Class.REQUEST, attributes={"LIFETIME": 0})
        )
        return Allocation(_address(answer.attributes.get("XOR-RELAYED-ADDRESS")), False)
    if answer.error_code != 401:
        _raise_for_error(answer)
    realm = str(answer.attributes.get("REALM", ""))
    nonce = bytes(answer.attributes.get("NONCE", b""))
    key = make_integrity_key(username, realm, password)
    for stale in (False, True):
        answer = await channel.request(_signed(request, username, realm, nonce, key))
        if answer.error_code == 438 and not stale:  # Stale Nonce: once more with the new one
            nonce = bytes(answer.attributes.get("NONCE", nonce))
            continue
        break
    _raise_for_error(answer)
    relayed = _address(answer.attributes.get("XOR-RELAYED-ADDRESS"))
    refresh = stun.Message(stun.Method.REFRESH, stun.Class.REQUEST, attributes={"LIFETIME": 0})
    await channel.request(_signed(refresh, username, realm, nonce, key))
    return Allocation(relayed, True)


def _signed(
    request: stun.Message, username: str, realm: str, nonce: bytes, key: bytes
) -> stun.Message:
    """A copy of ``request`` under a fresh transaction id, with long-term credentials."""
    signed = stun.Message(
        request.message_method,
        request.message_class,
        attributes={
            **{k: v for k, v in request.attributes.items() if k not in _AUTH},
            "USERNAME": username,
            "REALM": realm,
            "NONCE": nonce,
        },
    )
    signed.add_message_integrity(key)
    return signed


def _address(value: object) -> tuple[str, int] | None:
    """An address attribute as aioice parses it, ``(host, port)``; None when absent."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]), int(value[1])
    return None
