"""The ``hub`` command: ``hub serve`` runs the hub, ``hub token`` mints a token, ``hub
rehearse`` plays a dress rehearsal against a running deployment."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from hub.auth import Role, TokenAuthority, generate_secret
from hub.config import from_environment


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="livehub: a real-time event hub")
    commands = parser.add_subparsers(dest="command", required=True)

    # Listed here for --help; main() hands its arguments to livehub_client.rehearsal.cli.
    commands.add_parser(
        "rehearse", help="play a conference in miniature against a deployment (--help)"
    )
    serve = commands.add_parser("serve", help="run the hub")
    serve.add_argument("--host", help="address to listen on (HUB_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PORT/HUB_PORT; default 8000; 0: any)")
    serve.add_argument("--workers", type=int, help="worker processes (WEB_CONCURRENCY)")
    serve.add_argument("--redis", help="Redis URL (REDIS_URL); without it: in-process broker")
    serve.add_argument("--secret", help="token secret, 32+ bytes (HUB_SECRET)")
    guests = serve.add_mutually_exclusive_group()
    guests.add_argument("--guests", dest="guests", action="store_true", default=None)
    guests.add_argument("--no-guests", dest="guests", action="store_false")
    serve.add_argument("--origin", action="append", help="allowed Origin (HUB_ORIGINS)")
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        help="proxy address whose X-Forwarded-For is believed (HUB_TRUSTED_PROXIES; 127.0.0.1)",
    )
    serve.add_argument("--rooms", help="TOML file declaring the event's rooms (HUB_ROOMS)")
    serve.add_argument("--history", type=int, help="stored events kept per room (HUB_HISTORY)")
    serve.add_argument(
        "--chat-history", type=int, help="chat messages kept per room (HUB_CHAT_HISTORY)"
    )
    serve.add_argument(
        "--meet-minutes",
        type=float,
        help="length of a match-queue meeting, 0.05 to 120 minutes (HUB_MEET_MINUTES; 5)",
    )
    serve.add_argument("--stun-url", action="append", help="STUN url for clients (HUB_STUN_URLS)")
    serve.add_argument("--turn-url", action="append", help="TURN url for clients (HUB_TURN_URLS)")
    serve.add_argument("--turn-secret", help="secret shared with the TURN server (HUB_TURN_SECRET)")
    serve.add_argument(
        "--turn-ttl", type=int, help="TURN credential lifetime, seconds (HUB_TURN_TTL; 86400)"
    )
    serve.add_argument(
        "--sfu",
        action="append",
        metavar="URL",
        help="Janus for panels' stages, janus+ws://HOST:8188 (HUB_SFU; several: repeat or "
        "comma-separate); default: the embedded relay",
    )
    serve.add_argument("--fd", type=int, help=argparse.SUPPRESS)

    token = commands.add_parser("token", help="print a token signed with the hub's secret")
    token.add_argument("--user", required=True)
    token.add_argument("--name", required=True)
    token.add_argument("--role", default="attendee", choices=[r.label for r in Role])
    token.add_argument("--room", action="append", default=[], help="ROOM=ROLE, repeatable")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds (0: no expiry)")
    token.add_argument("--secret", help="the hub's secret (HUB_SECRET)")
    token.add_argument(
        "--link", metavar="URL", help="print a sign-in link URL#token=... instead of the token"
    )
    return parser


def _serve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    try:
        environment = from_environment()
    except ValueError as error:
        print(f"hub: a HUB_* setting is not valid: {error}", file=sys.stderr)
        return 2
    config = environment.with_overrides(
        host=args.host,
        port=args.port,
        workers=args.workers,
        redis_url=args.redis,
        secret=args.secret,
        guests=args.guests,
        origins=tuple(args.origin) if args.origin else None,
        trusted_proxies=tuple(args.trusted_proxy) if args.trusted_proxy else None,
        rooms_file=args.rooms,
        history_size=args.history,
        chat_history=args.chat_history,
        stun_urls=tuple(args.stun_url) if args.stun_url else None,
        turn_urls=tuple(args.turn_url) if args.turn_url else None,
        turn_secret=args.turn_secret,
        turn_ttl=args.turn_ttl,
        sfu=tuple(args.sfu) if args.sfu else None,
        meet_minutes=args.meet_minutes,
    )
    if not 0.05 <= config.meet_minutes <= 120:
        print("hub: --meet-minutes must be 0.05 to 120", file=sys.stderr)
        return 2
    if config.turn_urls and not config.turn_secret:
        print("hub: --turn-url needs --turn-secret (TURN REST credentials)", file=sys.stderr)
        return 2
    if not 60 <= config.turn_ttl <= 7 * 24 * 3600:
        print("hub: --turn-ttl must be 60 to 604800 seconds", file=sys.stderr)
        return 2
    if config.workers > 1 and config.redis_url is None:
        print(
            "hub: --workers > 1 needs --redis (the memory broker is per process)", file=sys.stderr
        )
        return 2
    has_secret = config.secret is not None
    if config.secret is None:
        # Every worker must share the trial secret, so it is made once, here.
        secret = generate_secret()
        os.environ["HUB_SECRET"] = secret
        config = config.with_overrides(secret=secret, guests=config.guests_allowed)
        print(
            "hub: no --secret given: this is a trial hub and guests may join.\n"
            f"hub: mint tokens with: HUB_SECRET={secret} hub token --user ID --name NAME "
            "--role organizer",
            flush=True,
        )
    else:
        try:
            TokenAuthority(config.secret)
        except ValueError as error:
            print(f"hub: {error}", file=sys.stderr)
            return 2
    if not config.origins:
        # A trial hub on a laptop needs none; a hub with a secret serves an event and must.
        print(
            ("hub: warning: " if has_secret else "hub: ")
            + "no --origin given: browsers are accepted only from pages on this machine "
            "(localhost); give --origin https://your.site (HUB_ORIGINS) for the event's site",
            file=sys.stderr if has_secret else sys.stdout,
            flush=True,
        )
    from hub import server  # uvicorn and Starlette load only when serving
    from hub.app import event_rooms, sfu_servers

    try:
        event_rooms(config)
    except (OSError, ValueError) as error:
        print(f"hub: --rooms: {error}", file=sys.stderr)
        return 2
    try:
        sfu_servers(config)
    except ValueError as error:
        print(f"hub: --sfu: {error}", file=sys.stderr)
        return 2

    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        server.serve_socket(config, sock)
        return 0
    worker_argv = [a for a in argv if a not in ("serve",)]
    return server.serve(config, _strip_workers(worker_argv))


def _strip_workers(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return out


def sign_in_link(url: str, token: str) -> str:
    """``url`` with ``token`` in its fragment, ``URL#token=<token>`` (a fragment never reaches
    a server, nor its logs): any fragment ``url`` had is dropped, an empty path becomes ``/``.
    Raises ValueError unless ``url`` is an ``http://`` or ``https://`` URL with a host (and a
    valid port, if any), without whitespace or control characters."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError("it holds whitespace or control characters")
    parts = urlsplit(url)  # ValueError for a broken [IPv6] host
    parts.port  # noqa: B018 -- ValueError for a port that is not one
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("it has no http:// or https:// scheme and host")
    base = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
    return f"{base}#token={token}"


def _token(args: argparse.Namespace) -> int:
    secret = args.secret or os.environ.get("HUB_SECRET")
    if not secret:
        print("hub: give --secret or set HUB_SECRET (the secret `hub serve` uses)", file=sys.stderr)
        return 2
    rooms = {}
    for item in args.room:
        room, sep, role = item.partition("=")
        if not sep:
            print(f"hub: --room takes ROOM=ROLE, not {item!r}", file=sys.stderr)
            return 2
        rooms[room] = role
    try:
        token = TokenAuthority(secret).mint(
            user=args.user, name=args.name, role=args.role, rooms=rooms, ttl=args.ttl or None
        )
    except ValueError as error:
        print(f"hub: {error}", file=sys.stderr)
        return 2
    if args.link is not None:
        try:
            token = sign_in_link(args.link, token)
        except ValueError as error:
            print(
                f"hub: --link takes an http(s)://host/... URL, not {args.link!r}: {error}",
                file=sys.stderr,
            )
            return 2
    print(token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hub`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["rehearse"]:
        from livehub_client.rehearsal.cli import main as rehearse  # a client: loaded only here

        return rehearse(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args, argv)
    return _token(args)
