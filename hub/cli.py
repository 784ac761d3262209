"""The ``hub`` command: ``hub serve`` runs the hub, ``hub token`` mints a token, ``hub
rehearse`` plays a dress rehearsal against a running deployment."""

from __future__ import annotations

import argparse
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from hub import logs
from hub.auth import Role, TokenAuthority, generate_secret, language_tag
from hub.config import from_environment
from hub.logs import LOG_FORMATS
from hub.registrants import RegistrantsError, parse_rooms, read_registrants, token_for
from hub.token_expiry import expiry_text, token_ttl


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="livehub: a real-time event hub")
    commands = parser.add_subparsers(dest="command", required=True)

    # Listed here for --help; main() hands its arguments to livehub_client.rehearsal.cli.
    commands.add_parser(
        "rehearse", help="play a conference in miniature against a deployment (--help)"
    )
    # Listed here for --help; main() hands its arguments to hub.doctor.cli.
    commands.add_parser("doctor", help="check a running deployment, a verdict per line (--help)")
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
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="stderr lines: text, or json, one object per line with connection and refused "
        "command events (HUB_LOG_FORMAT; text)",
    )
    serve.add_argument("--fd", type=int, help=argparse.SUPPRESS)

    token = commands.add_parser(
        "token", help="print a token signed with the hub's secret (--csv: a link per person)"
    )
    token.add_argument("--user", help="the user id (required without --csv)")
    token.add_argument("--name", help="the name people see (required without --csv)")
    token.add_argument(
        "--role",
        default="attendee",
        choices=[r.label for r in Role],
        help="the event role (with --csv: for rows without one)",
    )
    token.add_argument(
        "--room", action="append", default=[], help="ROOM=ROLE, repeatable (with --csv: everyone)"
    )
    token.add_argument(
        "--lang",
        metavar="TAG",
        help="the web app's language for this person: fr, de-AT... (with --csv: for rows "
        "without one)",
    )
    expiry = token.add_mutually_exclusive_group()
    expiry.add_argument(
        "--ttl",
        type=float,
        help="seconds the token lasts (0: no expiry; default 3600; --csv needs --ttl or --until)",
    )
    expiry.add_argument(
        "--until", metavar="TIME", help="when the token expires: 2026-12-10T18:00Z (with a zone)"
    )
    token.add_argument("--secret", help="the hub's secret (HUB_SECRET)")
    token.add_argument(
        "--link", metavar="URL", help="print a sign-in link URL#token=... instead of the token"
    )
    token.add_argument(
        "--csv",
        metavar="FILE",
        help="one link per person of FILE (registrants: columns user|id|email, name, optional "
        "role, rooms like panel-1=speaker;ws=moderator, lang): writes FILE's columns and 'link' as "
        "CSV; needs --link and --ttl or --until",
    )
    token.add_argument("--out", metavar="FILE", help="with --csv: write there, not to stdout")
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
        log_format=args.log_format,
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
        advice = (
            "no --origin given: browsers are accepted only from pages on this machine "
            "(localhost); give --origin https://your.site (HUB_ORIGINS) for the event's site"
        )
        if has_secret and config.log_format == "json":
            # stderr carries only JSON lines then, for the log collector.
            logs.configure("json")
            logging.getLogger("hub.cli").warning(advice)
        else:
            print(
                ("hub: warning: " if has_secret else "hub: ") + advice,
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


def _token_csv(
    args: argparse.Namespace, secret: str, rooms: dict[str, str], ttl: float | None, now: int
) -> int:
    """``hub token --csv FILE``: FILE's people with a sign-in link each, as CSV on stdout or in
    ``--out`` (made readable by its owner alone: it signs everyone in). Nothing is written
    unless every row is right; else each wrong line goes to stderr and the status is 2."""

    def refuse(message: str) -> int:
        print(f"hub: {message}", file=sys.stderr)
        return 2

    if args.user is not None or args.name is not None:
        return refuse("--csv takes everyone's user id and name from the file: drop --user, --name")
    if args.link is None:
        return refuse("--csv needs --link URL, the event's address (https://event.example.org/)")
    try:
        sign_in_link(args.link, "")
    except ValueError as error:
        return refuse(f"--link takes an http(s)://host/... URL, not {args.link!r}: {error}")
    try:
        everyone = parse_rooms(";".join(f"{room}={role}" for room, role in rooms.items()))
    except ValueError as error:
        return refuse(f"--room: {error}")
    try:
        lang = None if args.lang is None else language_tag(args.lang)
    except ValueError as error:
        return refuse(f"--lang: {error}")
    try:
        authority = TokenAuthority(secret)
        with open(args.csv, "rb") as source:
            data = source.read()
    except ValueError as error:
        return refuse(str(error))
    except OSError as error:
        return refuse(f"{args.csv}: {error.strerror or error}")
    try:
        people = read_registrants(data, role=Role.parse(args.role), rooms=everyone, lang=lang)
    except RegistrantsError as error:
        shown = 20  # enough to fix a file by; a wrong delimiter would make every line wrong
        for problem in error.problems[:shown]:
            print(f"hub: {args.csv} {problem}", file=sys.stderr)
        if len(error.problems) > shown:
            more = len(error.problems) - shown
            print(f"hub: {args.csv}: and {more} more wrong lines", file=sys.stderr)
        return 2
    tokens = [token_for(person, authority, ttl=ttl, now=now) for person in people.people]
    output = people.with_links([sign_in_link(args.link, token) for token in tokens]).encode()
    try:
        if args.out is None:
            sys.stdout.flush()
            sys.stdout.buffer.write(output)
            sys.stdout.buffer.flush()
        else:
            descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            # The mode above is only for a new file: an old one may be readable by others.
            os.fchmod(descriptor, 0o600)
            with open(descriptor, "wb") as sink:
                sink.write(output)
    except OSError as error:
        return refuse(f"{args.out or 'stdout'}: {error.strerror or error}")
    print(
        f"hub: {len(tokens)} sign-in links, expiring {expiry_text(ttl=ttl, now=now)}",
        file=sys.stderr,
    )
    return 0


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
    if args.out is not None and args.csv is None:
        print("hub: --out goes with --csv", file=sys.stderr)
        return 2
    if args.csv is not None and args.ttl is None and args.until is None:
        print(
            "hub: --csv needs --ttl SECONDS or --until TIME (2026-12-10T18:00Z): links mailed "
            "ahead must last until the event ends",
            file=sys.stderr,
        )
        return 2
    now = math.floor(time.time())  # whole seconds: --until's time is then the token's exp
    try:
        ttl = token_ttl(ttl=args.ttl, until=args.until, now=now, default=3600.0)
    except ValueError as error:
        print(f"hub: {error}", file=sys.stderr)
        return 2
    if args.csv is not None:
        return _token_csv(args, secret, rooms, ttl, now)
    if args.user is None or args.name is None:
        print("hub: token needs --user ID and --name NAME (or --csv FILE)", file=sys.stderr)
        return 2
    try:
        token = TokenAuthority(secret).mint(
            user=args.user,
            name=args.name,
            role=args.role,
            rooms=rooms,
            lang=args.lang,
            ttl=ttl,
            now=now,
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
    if argv[:1] == ["doctor"]:
        from hub.doctor.cli import main as doctor  # Rich and the checks: loaded only here

        return doctor(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args, argv)
    return _token(args)
