"""The checks of ``hub doctor``, each a coroutine that talks to one part of a deployment and
returns its :class:`~hub.doctor.verdicts.Finding` (one per server for TURN, STUN and Janus).
They raise nothing for what they find wrong: an unreachable server is a ``fail`` finding. Each
bounds its own work to the ``within`` seconds it is given and prints nothing.

Like the composition root (hub/app.py), the doctor reads the features' settings as the hub
would use them: the TURN REST credentials (``signalling.ice``) and Janus's URLs and client
(``signalling.janus_rules``, ``signalling.janus_client``), so it checks exactly what the nodes
will do.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import resource
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin, Subprotocol

from hub.auth import TokenAuthority
from hub.codec import WireFormat, decode_trusted_frame, encode_message
from hub.doctor import stun, verdicts
from hub.doctor.target import Target
from hub.doctor.verdicts import Finding, Verdict
from hub.errors import DecodeError
from signalling.ice import turn_credentials
from signalling.janus_client import JanusClient, JanusError, JanusGone

#: The name the doctor's own session and TURN credentials carry.
DOCTOR_USER: Final = "hub-doctor"
USER_AGENT: Final = "livehub hub-doctor"
#: How long the token the doctor says hello with is valid.
TOKEN_TTL: Final = 60.0
#: Redis TIME is read this many times; the sample with the shortest round trip is kept.
CLOCK_SAMPLES: Final = 3


def _reason(error: BaseException) -> str:
    """An error as one short line (an OS error: its reason alone, "Connection refused")."""
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        return _reason(error.reason)
    if isinstance(error, ssl.SSLError):  # its errno is OpenSSL's, not the system's
        return f"TLS: {getattr(error, 'verify_message', None) or error.reason or error}"
    if isinstance(error, OSError) and error.errno:
        # A negative errno is getaddrinfo's (a name that does not resolve): its own words.
        return os.strerror(error.errno) if error.errno > 0 else str(error.strerror)
    text = str(error).strip()
    return text or type(error).__name__


# --- HTTP ----------------------------------------------------------------------------------------


def _get(url: str, within: float) -> tuple[int, bytes]:
    """``GET url``: its status and body, whatever the status (urllib, in a thread)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=within) as response:
            return int(response.status), bytes(response.read(65536))
    except urllib.error.HTTPError as error:
        with error:
            return error.code, bytes(error.read(65536))


async def readyz(target: Target, within: float) -> Finding:
    """``GET /readyz`` through the given URL (the proxy, if any): see
    :func:`~hub.doctor.verdicts.readiness`."""
    try:
        async with asyncio.timeout(within):
            status, body = await asyncio.to_thread(_get, target.readyz, within)
    except TimeoutError:
        return Finding("readyz", Verdict.FAIL, f"{target.readyz}: no answer in {within:g} s")
    except (OSError, ValueError, http.client.HTTPException) as error:
        return Finding("readyz", Verdict.FAIL, f"{target.readyz}: {_reason(error)}")
    document: dict[str, Any] | None = None
    try:
        messages = decode_trusted_frame(WireFormat.JSON, body) if body else []
        document = messages[0] if len(messages) == 1 else None
    except DecodeError:
        pass
    return verdicts.readiness(status, document)


# --- the WebSocket endpoint ----------------------------------------------------------------------


async def websocket(target: Target, secret: str | None, within: float) -> Finding:
    """The upgrade at ``/ws`` (offering ``hub.v1.json``, as browsers do) and the protocol's
    first exchange: ``hello`` with a token signed with ``secret`` (a token the deployment must
    accept), or without credentials when there is no usable secret (any reply shows the hub
    speaks). ``fail`` when the upgrade is refused, the connection drops, or the token is
    refused; ``warn`` when the answer names no subprotocol (browsers then drop it)."""
    token = _doctor_token(secret)
    hello: dict[str, Any] = {"id": 1, "op": "hello"}
    if token is not None:
        hello["token"] = token
    try:
        async with asyncio.timeout(within):
            ws = await _open(target.ws, None, within)
            try:
                started = time.monotonic()
                await ws.send(encode_message(WireFormat.JSON, hello))
                reply = await _reply(ws, 1)
                elapsed = time.monotonic() - started
                subprotocol = ws.subprotocol
            finally:
                await ws.close()
    except TimeoutError:
        return Finding("websocket", Verdict.FAIL, f"{target.ws}: no answer in {within:g} s")
    except InvalidStatus as error:
        status = error.response.status_code
        return Finding(
            "websocket",
            Verdict.FAIL,
            f"{target.ws}: upgrade refused with HTTP {status} (does the proxy pass Upgrade and "
            "Connection to /ws?)",
        )
    except ConnectionClosed as error:
        return Finding(
            "websocket", Verdict.FAIL, f"{target.ws}: closed before answering hello ({error})"
        )
    except (OSError, InvalidHandshake, DecodeError, ValueError) as error:
        return Finding("websocket", Verdict.FAIL, f"{target.ws}: {_reason(error)}")
    return _hello_verdict(target, reply, token is not None, subprotocol, elapsed)


def _hello_verdict(
    target: Target,
    reply: dict[str, Any],
    with_token: bool,
    subprotocol: str | None,
    elapsed: float,
) -> Finding:
    ms = f"{elapsed * 1000:.0f} ms"
    error = reply.get("err")
    if isinstance(error, dict):
        said = f"{error.get('code')}: {error.get('msg')}"
        if with_token and error.get("code") == "unauthorized":
            return Finding(
                "websocket",
                Verdict.FAIL,
                f"{target.ws}: the hub refused a token signed with this HUB_SECRET ({said}): "
                "the deployment has another secret, or a clock over a minute off",
            )
        if with_token:
            return Finding("websocket", Verdict.FAIL, f"{target.ws}: hello answered {said}")
        note = f"hello answered in {ms} ({said}); no usable secret here to try a token"
    else:
        ok = reply.get("ok")
        node = ok.get("node") if isinstance(ok, dict) else None
        note = f"hello with a token accepted by node {node} in {ms}"
    if subprotocol is None:
        return Finding(
            "websocket",
            Verdict.WARN,
            f"{target.ws}: {note}, but the upgrade's answer named no subprotocol: browsers "
            "drop such a connection (does the proxy pass Sec-WebSocket-Protocol?)",
        )
    return Finding("websocket", Verdict.OK, f"{target.ws} ({subprotocol}): {note}")


def _doctor_token(secret: str | None) -> str | None:
    """A short-lived attendee's token for the doctor's own hello (None without a secret the
    hub would take)."""
    if secret is None:
        return None
    try:
        return TokenAuthority(secret).mint(
            user=DOCTOR_USER, name="hub doctor", role="attendee", ttl=TOKEN_TTL
        )
    except ValueError:
        return None


async def _open(url: str, origin: str | None, within: float) -> ClientConnection:
    return await connect(
        url,
        origin=Origin(origin) if origin is not None else None,
        subprotocols=[Subprotocol(WireFormat.JSON.value)],
        user_agent_header=USER_AGENT,
        open_timeout=within,
        close_timeout=min(within, 2.0),
        compression=None,
    )


async def _reply(ws: ClientConnection, command_id: int) -> dict[str, Any]:
    """The reply to the command ``command_id`` (events before it are passed over)."""
    while True:
        for message in decode_trusted_frame(WireFormat.JSON, await ws.recv()):
            if message.get("re") == command_id:
                return message


async def origin(
    target: Target,
    foreign: str,
    origins: Sequence[str],
    has_secret: bool,
    within: float,
) -> Finding:
    """An upgrade with the ``foreign`` Origin must be refused; and which origins these
    settings allow: see :func:`~hub.doctor.verdicts.origin_policy`."""
    status: int | None
    try:
        async with asyncio.timeout(within):
            ws = await _open(target.ws, foreign, within)
            await ws.close()
        status = 101
    except InvalidStatus as error:
        status = error.response.status_code
    except (TimeoutError, OSError, InvalidHandshake, ValueError):
        status = None
    return verdicts.origin_policy(foreign, status, origins, has_secret)


# --- Redis ---------------------------------------------------------------------------------------


def redis_address(url: str) -> str:
    """``url`` without its user name and password, to be shown."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured Redis"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def redis(url: str | None, within: float) -> list[Finding]:
    """Redis, as the nodes reach it: ``redis`` (PING, its version: see
    :func:`~hub.doctor.verdicts.redis_server`), ``persistence`` (``CONFIG GET``: see
    :func:`~hub.doctor.verdicts.redis_persistence`) and ``clock`` (``TIME`` against this
    machine's clock: see :func:`~hub.doctor.verdicts.clock_skew`). Without a URL: each skipped
    (the in-process broker)."""
    if url is None:
        why = "no REDIS_URL (--redis): the hub runs on its in-process broker, one worker"
        return [
            Finding("redis", Verdict.SKIP, why),
            Finding("persistence", Verdict.SKIP, "no Redis: nothing outlives a restart"),
            Finding("clock", Verdict.SKIP, "no Redis to compare this machine's clock with"),
        ]
    where = redis_address(url)
    unjudged = "not judged: Redis did not answer"
    try:
        client = Redis.from_url(
            url, socket_timeout=within, socket_connect_timeout=within, protocol=2
        )
    except ValueError as error:
        return [
            Finding("redis", Verdict.FAIL, f"REDIS_URL is not valid: {_reason(error)}"),
            Finding("persistence", Verdict.SKIP, unjudged),
            Finding("clock", Verdict.SKIP, unjudged),
        ]
    try:
        async with asyncio.timeout(within):
            await client.ping()
            info = await client.info("server")
            persistence = await _persistence(client)
            skew, uncertainty = await _clock(client)
    except TimeoutError:
        failed = f"{where}: no answer in {within:g} s"
    except (RedisError, OSError) as error:
        failed = f"{where}: {_reason(error)}"
    else:
        server = verdicts.redis_server(info)
        server = Finding(server.check, server.verdict, f"{where}: {server.detail}")
        return [server, persistence, verdicts.clock_skew(skew, uncertainty)]
    finally:
        await client.aclose()
    return [
        Finding("redis", Verdict.FAIL, failed),
        Finding("persistence", Verdict.SKIP, unjudged),
        Finding("clock", Verdict.SKIP, unjudged),
    ]


async def _persistence(client: Redis) -> Finding:
    values: dict[str, str] = {}
    try:
        for name in ("appendonly", "appendfsync", "save"):
            values.update({str(k): str(v) for k, v in (await client.config_get(name)).items()})
    except ResponseError as error:  # CONFIG renamed or refused: a managed service
        return verdicts.persistence_not_judged(_reason(error))
    return verdicts.redis_persistence(
        values.get("appendonly", ""), values.get("appendfsync", ""), values.get("save", "")
    )


async def _clock(client: Redis) -> tuple[float, float]:
    """(this machine's clock minus Redis's, half the round trip) of the best of a few reads."""
    best: tuple[float, float] | None = None
    for _ in range(CLOCK_SAMPLES):
        before = time.time()
        seconds, microseconds = await client.time()
        after = time.time()
        sample = ((before + after) / 2 - (seconds + microseconds / 1e6), (after - before) / 2)
        if best is None or sample[1] < best[1]:
            best = sample
    assert best is not None
    return best


# --- STUN and TURN -------------------------------------------------------------------------------


def ice_not_configured(turn_urls: Sequence[str], turn_secret: str | None) -> Finding | None:
    """The finding when TURN is not (fully) configured, else None: ``warn`` without TURN
    URLs, ``fail`` for URLs without the secret (``hub serve`` refuses to start so)."""
    if not turn_urls:
        return Finding(
            "turn",
            Verdict.WARN,
            "not configured (HUB_TURN_URLS, --turn-url): attendees behind strict NATs "
            "cannot get media",
        )
    if not turn_secret:
        return Finding(
            "turn",
            Verdict.FAIL,
            "HUB_TURN_URLS without HUB_TURN_SECRET: hub serve refuses to start so",
        )
    return None


async def turn(url: str, secret: str, within: float) -> Finding:
    """One TURN server: an Allocate with credentials made as the hub makes them for its
    clients (TURN REST, ``secret``), released at once. ``ok`` when granted, ``fail`` when the
    credentials are refused (another ``static-auth-secret``), it answers another error, or
    does not answer; ``warn`` when it allocates without asking for credentials."""
    try:
        where = stun.IceUrl.parse(url)
    except ValueError as error:
        return Finding("turn", Verdict.FAIL, str(error))
    username, password = turn_credentials(secret, DOCTOR_USER, time.time(), 600)
    try:
        async with asyncio.timeout(within):
            channel = await stun.StunChannel.open(where)
            try:
                allocation = await stun.allocate_and_release(channel, username, password)
            finally:
                channel.close()
    except TimeoutError:
        return Finding("turn", Verdict.FAIL, f"{url} ({where.where}): no answer in {within:g} s")
    except stun.StunError as error:
        if error.code == 401:
            return Finding(
                "turn",
                Verdict.FAIL,
                f"{url}: refused the hub's credentials (401 {error.reason}): HUB_TURN_SECRET "
                "is not the server's static-auth-secret",
            )
        return Finding("turn", Verdict.FAIL, f"{url}: answered {error}")
    except (OSError, ValueError) as error:
        return Finding("turn", Verdict.FAIL, f"{url} ({where.where}): {_reason(error)}")
    relay = (
        f" (relay {allocation.relayed[0]}:{allocation.relayed[1]})" if allocation.relayed else ""
    )
    if not allocation.authenticated:
        return Finding(
            "turn",
            Verdict.WARN,
            f"{url}: allocated{relay} without asking for credentials: an open relay anyone may "
            "use (coturn: use-auth-secret)",
        )
    return Finding(
        "turn",
        Verdict.OK,
        f"{url}: allocation with the hub's credentials granted{relay} and released",
    )


async def stun_server(url: str, within: float) -> Finding:
    """One STUN server (``HUB_STUN_URLS``): a Binding request must be answered."""
    try:
        where = stun.IceUrl.parse(url)
    except ValueError as error:
        return Finding("stun", Verdict.FAIL, str(error))
    try:
        async with asyncio.timeout(within):
            channel = await stun.StunChannel.open(where)
            try:
                mapped = await stun.binding(channel)
            finally:
                channel.close()
    except TimeoutError:
        return Finding("stun", Verdict.FAIL, f"{url} ({where.where}): no answer in {within:g} s")
    except (stun.StunError, OSError, ValueError) as error:
        return Finding("stun", Verdict.FAIL, f"{url} ({where.where}): {_reason(error)}")
    seen = f": sees this machine at {mapped[0]}:{mapped[1]}" if mapped else ""
    return Finding("stun", Verdict.OK, f"{url} answered a Binding request{seen}")


# --- Janus ---------------------------------------------------------------------------------------

VIDEOROOM: Final = "janus.plugin.videoroom"


async def sfu(url: str, api_secret: str | None, within: float) -> Finding:
    """One Janus server (its WebSocket URL): Janus's ``info`` request over ``janus-protocol``
    must be answered, with the VideoRoom plugin loaded (``ok`` with Janus's version)."""
    try:
        async with asyncio.timeout(within):
            client = await JanusClient.connect(
                url, api_secret=api_secret, open_timeout=within, request_timeout=within
            )
            try:
                info = await client.request({"janus": "info"})
            finally:
                await client.close()
    except TimeoutError:
        return Finding("sfu", Verdict.FAIL, f"{url}: no answer in {within:g} s")
    except (JanusGone, JanusError, OSError) as error:
        return Finding("sfu", Verdict.FAIL, f"{url}: {_reason(error)}")
    version = info.get("version_string") or info.get("version") or "?"
    plugins = info.get("plugins")
    if not isinstance(plugins, dict) or VIDEOROOM not in plugins:
        return Finding(
            "sfu", Verdict.FAIL, f"{url}: Janus {version} answers, but has no VideoRoom plugin"
        )
    return Finding("sfu", Verdict.OK, f"{url}: Janus {version}, VideoRoom loaded")


# --- this machine --------------------------------------------------------------------------------


def descriptors(expect: int | None) -> Finding:
    """This process's open-file limit (what ``hub serve`` started from the same environment
    gets) against the expected audience: see :func:`~hub.doctor.verdicts.fd_limit`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return verdicts.fd_limit(
        None if soft == resource.RLIM_INFINITY else soft,
        None if hard == resource.RLIM_INFINITY else hard,
        expect,
    )
