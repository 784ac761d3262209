"""The composition root: builds a node, its features and the Starlette application around them.

Only this module imports the feature packages.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from chat.dm import DirectMessages
from chat.messages import ChatFeature
from chat.moderation import ModerationOps
from chat.qa import QaFeature
from hub.auth import TokenAuthority, generate_secret
from hub.broker import Broker, BrokerSettings, connect
from hub.config import HubConfig
from hub.core_ops import SessionOps
from hub.dispatch import CommandRegistry, Dispatcher
from hub.endpoint import Endpoint
from hub.feature import Feature, FeatureContext, install_all
from hub.metrics import CONTENT_TYPE_LATEST, HubMetrics, package_version
from hub.node import Node
from hub.store import Store
from hub.web import catalogue_languages, framing_origins, web_routes
from networking.match_feature import MatchFeature
from networking.profile_feature import ProfileFeature, event_interests
from networking.table_feature import TableFeature
from networking.tables import TableDef, load_tables_file
from polls.awards import Awards, load_awards_file
from polls.feature import PollsFeature
from rooms.breakout_ops import BreakoutFeature
from rooms.dead_nodes import DeadNodes
from rooms.directory import default_rooms, load_rooms_file
from rooms.directory_feed import DirectoryFeed
from rooms.feature import RoomsFeature
from rooms.model import Room
from rooms.stage_ops import StageFeature
from signalling.feature import SignallingFeature
from signalling.feature import sfu_servers as signalling_sfu_servers

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Hub:
    """A running node and everything wired to it: its features by name, for the HTTP routes
    they serve and for tests."""

    config: HubConfig
    node: Node
    authority: TokenAuthority
    registry: CommandRegistry
    dispatcher: Dispatcher
    routes: list[BaseRoute]
    features: list[Feature]
    rooms: RoomsFeature
    stage: StageFeature
    breakouts: BreakoutFeature
    directory_feed: DirectoryFeed
    polls: PollsFeature
    signalling: SignallingFeature


def event_rooms(config: HubConfig) -> list[Room]:
    """The rooms a new hub starts with: the lobby and those of ``--rooms FILE`` (its
    ``[[rooms]]`` and its lounge ``[[tables]]``); raises ValueError naming what is wrong in the
    file, its interests, declared polls and partnerships included."""
    event_interests(config)  # the file's interests too: hub serve refuses a wrong list at once
    rooms = default_rooms() + (load_rooms_file(config.rooms_file) if config.rooms_file else [])
    rooms += [table.room() for table in event_tables(config, rooms)]
    event_awards(config, rooms)  # and its [[polls]] and [[partnerships]]
    return rooms


def event_tables(config: HubConfig, rooms: Sequence[Room] = ()) -> list[TableDef]:
    """The lounge tables of ``--rooms FILE`` (none without one); ValueError as
    :func:`event_rooms`."""
    if not config.rooms_file:
        return []
    taken = [room.id for room in rooms or default_rooms() + load_rooms_file(config.rooms_file)]
    return load_tables_file(config.rooms_file, taken)


def event_awards(config: HubConfig, rooms: Sequence[Room] = ()) -> Awards:
    """The polls and partnerships of ``--rooms FILE`` (none without one), each declared poll in
    the lobby or one of the file's rooms (``rooms``, else the file's); ValueError as
    :func:`event_rooms`."""
    if not config.rooms_file:
        return Awards()
    if not rooms:
        declared = default_rooms() + load_rooms_file(config.rooms_file)
        rooms = declared + [table.room() for table in event_tables(config, declared)]
    return load_awards_file(config.rooms_file, [room.id for room in rooms])


def sfu_servers(config: HubConfig) -> tuple[str, ...]:
    """The WebSocket URLs of the Janus servers ``--sfu`` names (none: the embedded relay);
    raises ValueError naming the first that is not a ``janus+ws://`` or ``janus+wss://`` URL."""
    return signalling_sfu_servers(config)


def build_hub(
    config: HubConfig,
    shared: tuple[Broker, Store] | None = None,
    extra: Sequence[Feature] = (),
) -> Hub:
    """Wire a node, its broker and store (made from the config unless given) and its features,
    then ``extra`` features after them; nothing is started yet."""
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
    chat = ChatFeature(node, rooms)
    profiles = ProfileFeature(node, rooms)
    hub = Hub(
        config,
        node,
        authority,
        registry,
        Dispatcher(node, registry),
        [],
        [],
        rooms,
        StageFeature(rooms),
        BreakoutFeature(rooms),
        DirectoryFeed(rooms),
        PollsFeature(node, rooms, event_awards(config)),
        SignallingFeature(node, rooms),
    )
    # The features, in the order their hooks run: rooms before what extends a join.
    features: list[Feature] = [
        SessionOps(authority, guests=config.guests_allowed),
        rooms,
        hub.stage,
        hub.breakouts,
        hub.directory_feed,
        DeadNodes(rooms),
        chat,
        ModerationOps(node, rooms, chat.rules),
        DirectMessages(node, rooms.event, profiles.takes_messages),
        QaFeature(node, rooms),
        hub.polls,
        hub.signalling,
        profiles,
        TableFeature(node, rooms, event_tables(config)),
        MatchFeature(node, rooms),
        *extra,
    ]
    ctx = FeatureContext(node, authority, registry)
    install_all(features, ctx)
    hub.routes = ctx.routes
    hub.features = features
    return hub


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
        Route("/api/hub", _about),
        *hub.routes,
        # The sites allowed to connect are the event's own: they may frame the app too.
        *web_routes(framing_origins(config.origins)),
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
    body = {**node.readiness_report(), "ready": ready, "node": node.node_id}
    return JSONResponse(body, status_code=200 if ready else 503)


async def _metrics(request: Request) -> Response:
    return PlainTextResponse(
        _hub(request).node.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def _about(request: Request) -> Response:
    """What the web page needs to know of this hub before anyone signs in: whether it admits
    guests, its version, and the languages the app has a catalogue of."""
    return JSONResponse(
        {
            "guests": _hub(request).config.guests_allowed,
            "version": package_version(),
            "languages": list(catalogue_languages()),
        }
    )
