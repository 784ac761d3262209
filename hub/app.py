"""The composition root: builds a node, its features and the Starlette application around them.

Only this module imports the feature packages.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from chat import install as install_chat
from hub.auth import Identity, Role, TokenAuthority, generate_secret
from hub.broker import Broker, BrokerSettings, BrokerUnavailable, connect
from hub.config import HubConfig
from hub.core_ops import SessionOps
from hub.dispatch import CommandRegistry, Dispatcher
from hub.endpoint import Endpoint
from hub.errors import HubError
from hub.metrics import CONTENT_TYPE_LATEST, HubMetrics
from hub.node import Node
from hub.store import Store
from hub.web import web_routes
from polls import install as install_polls
from polls.feature import PollsFeature, export_csv, export_map
from polls.model import Poll
from rooms.directory import default_rooms, load_rooms_file
from rooms.feature import RoomsFeature
from rooms.model import ROOM_ID, Room, clean_text
from rooms.roles import effective_role
from signalling.feature import SignallingFeature

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Hub:
    """A running node and everything wired to it."""

    config: HubConfig
    node: Node
    authority: TokenAuthority
    registry: CommandRegistry
    dispatcher: Dispatcher
    rooms: RoomsFeature
    polls: PollsFeature
    signalling: SignallingFeature


def event_rooms(config: HubConfig) -> list[Room]:
    """The rooms a new hub starts with: the lobby and those of ``--rooms FILE``; raises
    ValueError naming what is wrong in the file."""
    return default_rooms() + (load_rooms_file(config.rooms_file) if config.rooms_file else [])


def build_hub(config: HubConfig, shared: tuple[Broker, Store] | None = None) -> Hub:
    """Wire a node, its broker and store (made from the config unless given) and its features;
    nothing is started yet."""
    secret = config.secret or generate_secret()
    authority = TokenAuthority(secret)
    if shared is None:
        settings = BrokerSettings(
            history_size=config.history_size, presence_ttl=config.presence_ttl
        )
        shared = connect(config.broker_url, secrets.token_hex(4), settings)
    broker, store = shared
    node = Node(config, broker, store, HubMetrics(broker.counters))
    registry = CommandRegistry()
    rooms = RoomsFeature(node)
    rooms.install(registry)
    install_chat(node, registry, rooms)
    polls = install_polls(node, registry, rooms)
    signalling = SignallingFeature(node, rooms)
    signalling.install(registry)
    SessionOps(authority, guests=config.guests_allowed, ice_servers=signalling.ice_servers).install(
        registry
    )
    return Hub(
        config, node, authority, registry, Dispatcher(node, registry), rooms, polls, signalling
    )


class HubApp:
    """The ASGI application of one node: ``GET /ws`` goes straight to the endpoint, with no
    middleware on the per-frame path; everything else (HTTP, lifespan) to Starlette."""

    def __init__(self, hub: Hub, http: Starlette) -> None:
        self.hub = hub
        self.http = http
        self.endpoint = Endpoint(hub.node, hub.dispatcher)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await self.endpoint(scope, receive, send)
        else:
            await self.http(scope, receive, send)


def create_app(config: HubConfig, hub: Hub | None = None) -> HubApp:
    """The ASGI application of one node (see :class:`HubApp`)."""
    hub = hub or build_hub(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.node.start()
        await hub.rooms.directory.ensure(event_rooms(config))
        try:
            yield
        finally:
            await hub.node.stop()

    routes: list[BaseRoute] = [
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", _metrics),
        *web_routes(),
        Route("/api/hub", _about),
        Route("/api/rooms", _create_room, methods=["POST"]),
        Route("/api/rooms/{room}/announce", _announce, methods=["POST"]),
        # The CSV route first: a poll id never holds a dot, but "{poll}" alone would match.
        Route("/api/rooms/{room}/polls/{poll}.csv", _export_poll_csv),
        Route("/api/rooms/{room}/polls/{poll}", _export_poll),
    ]
    http = Starlette(routes=routes, lifespan=lifespan)
    http.state.hub = hub
    return HubApp(hub, http)


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def _healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "node": _hub(request).node.node_id})


async def _readyz(request: Request) -> Response:
    node = _hub(request).node
    ready = node.ready()
    return JSONResponse({"ready": ready, "node": node.node_id}, status_code=200 if ready else 503)


async def _metrics(request: Request) -> Response:
    return PlainTextResponse(
        _hub(request).node.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


@functools.cache
def _version() -> str:
    try:
        return metadata.version("livehub")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


async def _about(request: Request) -> Response:
    """What the web page needs to know of this hub before anyone signs in."""
    return JSONResponse({"guests": _hub(request).config.guests_allowed, "version": _version()})


# What the HTTP API answers while the broker cannot serve (Redis down), like the WebSocket ops.
_UNAVAILABLE = HubError("unavailable", "try again shortly")


def _error(error: HubError) -> Response:
    status = {
        "bad_request": 400,
        "unauthorized": 401,
        "forbidden": 403,
        "not_found": 404,
        "conflict": 409,
        "too_large": 413,
        "unavailable": 503,
    }.get(error.code, 500)
    return JSONResponse({"err": {"code": error.code, "msg": error.msg}}, status_code=status)


def _bearer(request: Request, needed: str) -> Identity:
    """The identity the request's bearer token names; ``unauthorized`` (saying ``needed``)
    without one, or when it is invalid or expired."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HubError("unauthorized", f"{needed} is needed")
    return _hub(request).authority.verify(token.strip())


def _organizer(request: Request) -> str:
    """The organizer a bearer token names, else HubError."""
    identity = _bearer(request, "an organizer's bearer token")
    if identity.role < Role.ORGANIZER:
        raise HubError("forbidden", "only organizers may do this")
    return identity.user_id


async def _room_moderator(request: Request, room: str) -> None:
    """Passes a bearer token of a moderator (or more) of ``room``, judged as room commands
    judge it: the token's role there (the event role raised by a ``rooms`` claim), unless a
    role stored with ``role.set`` replaces it (an organizer stays one). ``unauthorized`` without
    a valid token, ``forbidden`` for anyone else."""
    identity = _bearer(request, "a moderator's bearer token")
    stored: Role | None = None
    # Not a room id: no role can be stored for it, and nothing to read.
    if identity.role_in(room) is not Role.ORGANIZER and ROOM_ID.fullmatch(room):
        entry = await _hub(request).rooms.roles.entry(room, identity.user_id)
        stored = entry.role if entry is not None else None
    if effective_role(identity, room, stored) < Role.MODERATOR:
        raise HubError("forbidden", "only moderators of the room may export its polls")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HubError("bad_request", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise HubError("bad_request", "the body must be a JSON object")
    return body


HttpHandler = Callable[[Request], Awaitable[Response]]


def _api(handler: HttpHandler) -> HttpHandler:
    """An HTTP API handler whose contract errors become ``{"err"}`` answers, like the ops'."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except HubError as error:
            return _error(error)
        except BrokerUnavailable:
            return _error(_UNAVAILABLE)

    return run


@_api
async def _create_room(request: Request) -> Response:
    _organizer(request)
    room = await _hub(request).rooms.create_room(await _json_body(request))
    return JSONResponse({"room": room.describe()}, status_code=201)


@_api
async def _announce(request: Request) -> Response:
    hub = _hub(request)
    user = _organizer(request)
    room = await hub.rooms.directory.require(request.path_params["room"])
    text = clean_text((await _json_body(request)).get("text"), 2000)
    return JSONResponse({"seq": await hub.rooms.post_notice(room.id, text, user)})


async def _poll_export(request: Request) -> tuple[Poll, list[int], int]:
    params = request.path_params
    await _room_moderator(request, params["room"])
    return await _hub(request).polls.export(params["room"], params["poll"])


@_api
async def _export_poll(request: Request) -> Response:
    return JSONResponse(export_map(*await _poll_export(request)))


@_api
async def _export_poll_csv(request: Request) -> Response:
    poll, counts, voters = await _poll_export(request)
    return Response(
        export_csv(poll, counts, voters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="poll-{poll.id}.csv"'},
    )
