"""The hub's settings: flags of ``hub serve``, each also read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

from hub.logs import LOG_FORMATS, LogFormat
from hub.wire import PublicLimits

_N = TypeVar("_N", int, float)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits, sent to clients in the hello reply where they concern them."""

    max_frame_bytes: int = 64 * 1024
    hello_timeout: float = 10.0
    # How long a connection asked to close may take to finish (flush, close handshake) before
    # the hub gives up on it and releases everything it held.
    close_grace: float = 10.0
    # How long one write may make no progress (the peer stopped reading) before the hub aborts
    # the connection: nothing more can reach it, and it must not hold its session forever.
    write_timeout: float = 15.0
    # How long a new connection may take to send its first request whole (the WebSocket
    # upgrade): sockets that send nothing, or half a header, must not hold descriptors.
    first_request_timeout: float = 10.0
    # Connections of one client address that may be open and not yet past hello (a flood of
    # sockets that never authenticate must not crowd out everyone else's).
    pending_per_address: int = 64
    # Per client address (loopback exempt): hello attempts, and guests made by hello {name}.
    # A venue's attendees may share one address, so hellos allow a reconnect storm of hundreds;
    # new guests are slower, since each one would otherwise be a fresh set of budgets.
    hello_rate: float = 50.0
    hello_burst: float = 300.0
    guest_rate: float = 1.0
    guest_burst: float = 30.0
    queue_messages: int = 4096
    queue_bytes: int = 4 * 2**20
    coalesce_bytes: int = 64 * 1024
    # Command rate limits, sized for people, not scripts; organizers are exempt.
    connection_rate: float = 20.0
    connection_burst: float = 60.0
    user_rate: float = 40.0
    user_burst: float = 120.0
    flood_rejections: int = 20
    flood_window: float = 10.0

    def public(self) -> PublicLimits:
        """The limits a client needs to know about."""
        return {
            "max_frame_bytes": self.max_frame_bytes,
            "rate": self.connection_rate,
            "burst": self.connection_burst,
        }


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Everything ``hub serve`` can be told. ``secret`` None means a trial hub with a generated
    secret; ``guests`` None means "decide from whether a secret was configured"."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    redis_url: str | None = None
    secret: str | None = None
    guests: bool | None = None
    origins: tuple[str, ...] = ()
    # Proxies whose X-Forwarded-For names the client (addresses or networks; "*" any). The
    # client address counts towards the per-address limits; loopback by default.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    rooms_file: str | None = None
    history_size: int = 1000
    # Chat messages kept per room for chat.history (beyond the recovery window above).
    chat_history: int = 10_000
    presence_interval: float = 1.0
    presence_ttl: float = 30.0
    drain_reconnect_max: float = 5.0
    # How long before a timed round of breakouts ends its rooms are warned.
    breakout_warning: float = 60.0
    # ICE servers for the hello reply: STUN urls, and TURN urls with TURN REST credentials made
    # with the secret shared with the TURN server, valid for turn_ttl seconds.
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl: int = 24 * 3600
    # The embedded SFU: the addresses it offers ICE candidates on (none: every interface but
    # loopback, as aiortc does), and the streams (a track to a viewer each) it encodes at once.
    media_addresses: tuple[str, ...] = ()
    relay_capacity: int = 12
    # Janus servers (janus+ws://HOST:PORT or janus+wss://...) instead of the embedded relay; the
    # Janus API secret, the VideoRoom's admin key for creating rooms (each when Janus has one),
    # and the secret rooms are created with.
    sfu: tuple[str, ...] = ()
    sfu_api_secret: str | None = None
    sfu_admin_key: str | None = None
    sfu_room_secret: str | None = None
    # How long the token a guest gets in its hello reply is valid (seconds).
    guest_ttl: int = 12 * 3600
    # token.renew refuses once the original sign-in is older than this (seconds).
    token_renew_max: int = 7 * 24 * 3600
    # How often each node with members in a lobby checks the rooms list for changes (seconds).
    rooms_interval: float = 2.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    # How long a meeting the match queue made lasts (minutes; an extension adds as much again).
    meet_minutes: float = 5.0
    deflate: bool = False
    # The lines on stderr: "text" (uvicorn's format and the hub's warnings, as always) or
    # "json" (one object per line, with the connections' and refused commands' events).
    log_format: LogFormat = "text"
    limits: Limits = field(default_factory=Limits)

    @property
    def broker_url(self) -> str:
        """The broker URL: Redis when configured, else the in-process memory broker."""
        return self.redis_url or "memory://"

    @property
    def guests_allowed(self) -> bool:
        """Guests are allowed by default only on a trial hub (no configured secret)."""
        return self.guests if self.guests is not None else self.secret is None

    def with_overrides(self, **changes: object) -> HubConfig:
        """A copy with ``changes`` applied (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def from_environment(env: Mapping[str, str] | None = None) -> HubConfig:
    """Settings from ``HUB_*``, ``PORT``, ``WEB_CONCURRENCY`` and ``REDIS_URL``
    (``HUB_BREAKOUT_WARNING``: seconds of warning before timed breakouts end; ``HUB_GUEST_TTL``,
    ``HUB_TOKEN_RENEW_MAX``, ``HUB_ROOMS_INTERVAL``, ``HUB_PING_INTERVAL``,
    ``HUB_PING_TIMEOUT``, ``HUB_MEET_MINUTES``: :class:`HubConfig`'s ``guest_ttl``,
    ``token_renew_max``, ``rooms_interval``, ``ping_interval``, ``ping_timeout`` and
    ``meet_minutes``; ``HUB_LOG_FORMAT``: ``text`` or ``json``; ``HUB_SFU``, a list, and
    ``HUB_SFU_API_SECRET``, ``HUB_SFU_ADMIN_KEY``, ``HUB_SFU_ROOM_SECRET``: the Janus
    settings). Raises ValueError for a value that is not valid."""
    env = os.environ if env is None else env
    config = HubConfig()
    port = env.get("HUB_PORT") or env.get("PORT")
    origins = env.get("HUB_ORIGINS")
    proxies = env.get("HUB_TRUSTED_PROXIES")
    media = env.get("HUB_MEDIA_ADDRESSES")
    relay_capacity = _bounded(env, "HUB_RELAY_CAPACITY", int, 0, 100_000)
    sfu = env.get("HUB_SFU")
    guests = env.get("HUB_GUESTS")
    history = env.get("HUB_HISTORY")
    drain = env.get("HUB_DRAIN_RECONNECT_MAX")
    chat_history = env.get("HUB_CHAT_HISTORY")
    breakout_warning = env.get("HUB_BREAKOUT_WARNING")
    stun = env.get("HUB_STUN_URLS")
    turn = env.get("HUB_TURN_URLS")
    turn_ttl = env.get("HUB_TURN_TTL")
    guest_ttl = _bounded(env, "HUB_GUEST_TTL", int, 60, 7 * 24 * 3600)
    renew_max = _bounded(env, "HUB_TOKEN_RENEW_MAX", int, 60, 366 * 24 * 3600)
    rooms_interval = _bounded(env, "HUB_ROOMS_INTERVAL", float, 0.1, 3600)
    ping_interval = _bounded(env, "HUB_PING_INTERVAL", float, 0.5, 3600)
    ping_timeout = _bounded(env, "HUB_PING_TIMEOUT", float, 0.5, 3600)
    meet_minutes = _bounded(env, "HUB_MEET_MINUTES", float, 0.05, 120)
    log_format = _log_format(env.get("HUB_LOG_FORMAT"))
    limits = _limits_from(env)
    return config.with_overrides(
        limits=limits,
        host=env.get("HUB_HOST") or None,
        port=int(port) if port else None,
        workers=int(env["WEB_CONCURRENCY"]) if env.get("WEB_CONCURRENCY") else None,
        redis_url=env.get("REDIS_URL") or None,
        secret=env.get("HUB_SECRET") or None,
        guests=_flag(guests) if guests else None,
        origins=_words(origins) if origins else None,
        trusted_proxies=_words(proxies) if proxies else None,
        media_addresses=_words(media) if media else None,
        relay_capacity=relay_capacity,
        sfu=_words(sfu) if sfu else None,
        sfu_api_secret=env.get("HUB_SFU_API_SECRET") or None,
        sfu_admin_key=env.get("HUB_SFU_ADMIN_KEY") or None,
        sfu_room_secret=env.get("HUB_SFU_ROOM_SECRET") or None,
        rooms_file=env.get("HUB_ROOMS") or None,
        history_size=int(history) if history else None,
        drain_reconnect_max=float(drain) if drain else None,
        chat_history=int(chat_history) if chat_history else None,
        breakout_warning=float(breakout_warning) if breakout_warning else None,
        stun_urls=_words(stun) if stun else None,
        turn_urls=_words(turn) if turn else None,
        turn_secret=env.get("HUB_TURN_SECRET") or None,
        turn_ttl=int(turn_ttl) if turn_ttl else None,
        guest_ttl=guest_ttl,
        token_renew_max=renew_max,
        rooms_interval=rooms_interval,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        meet_minutes=meet_minutes,
        log_format=log_format,
    )


def _log_format(raw: str | None) -> LogFormat | None:
    """``HUB_LOG_FORMAT`` (None when unset); ValueError naming it for another value."""
    if not raw:
        return None
    for name in LOG_FORMATS:
        if raw.strip().lower() == name:
            return name
    raise ValueError(f"HUB_LOG_FORMAT must be {' or '.join(LOG_FORMATS)}, not {raw!r}")


def _bounded(env: Mapping[str, str], name: str, kind: type[_N], low: _N, high: _N) -> _N | None:
    """A number setting within [low, high] (None when unset); ValueError naming it otherwise."""
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, not {raw}")
    return value


def _words(value: str) -> tuple[str, ...]:
    """A list setting: comma- or space-separated."""
    return tuple(word for word in value.replace(",", " ").split() if word)


def _limits_from(env: Mapping[str, str]) -> Limits | None:
    """``HUB_LIMIT_<FIELD>`` overrides any field of :class:`Limits` (tests use small queues and
    short deadlines; operators may tune them)."""
    changes: dict[str, float | int] = {}
    for item in fields(Limits):
        raw = env.get(f"HUB_LIMIT_{item.name.upper()}")
        if raw:
            kind = type(getattr(Limits(), item.name))
            changes[item.name] = kind(raw)
    return replace(Limits(), **changes) if changes else None  # type: ignore[arg-type]
