"""The web app's files over HTTP: ``GET /`` is the page (``hub/static/index.html``) and
``GET /static/{path}`` any file under the package's ``hub/static`` folder; and the languages
the app has a catalogue of (``hub/static/app/text-<language>.js``).

Starlette's :class:`~starlette.staticfiles.StaticFiles` does the serving (ETag, 304 answers to
``If-None-Match``, HEAD, no path outside the folder). Every answer of these routes, errors and
304s included, carries the page's security headers (:func:`security_headers`): a strict
Content-Security-Policy and ``Cache-Control: no-cache``, so browsers revalidate with the ETag.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from importlib import resources

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.auth import LANGUAGE_TAG

# Pinned whatever the platform's mimetypes table says (some map .js to
# application/x-javascript): with nosniff a browser runs a module script only under a
# JavaScript type and applies a stylesheet only as text/css.
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}

# A catalogue's file: text-<language tag>.js, the tag as the lang claim takes it (hub.auth).
_CATALOGUE = re.compile(rf"text-({LANGUAGE_TAG.pattern})\.js")

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
_IPV6 = re.compile(r"[0-9a-f:.]+")
_PORT = re.compile(r"[0-9]{1,5}")


def web_host(host: str | None) -> str | None:
    """``host`` (a ``Host`` header) in lower case if it is a well-formed ``host[:port]``: a
    hostname (labels of letters, digits and inner dashes, at most 253 characters), a dotted-quad
    IPv4 address or a bracketed IPv6 address (no zone), with an optional port 1 to 65535;
    otherwise None. Whatever it returns is safe to put into a header value."""
    if not host:
        return None
    host = host.lower()
    if host.startswith("["):
        address, bracket, rest = host[1:].partition("]")
        if not bracket or _IPV6.fullmatch(address) is None or not _is_ipv6(address):
            return None
        port = rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port is None:
            return None
    else:
        name, colon, port_text = host.partition(":")
        port = port_text if colon else None
        if not _is_hostname(name):
            return None
    if port is not None and (_PORT.fullmatch(port) is None or not 1 <= int(port) <= 65535):
        return None
    return host


def _is_ipv6(address: str) -> bool:
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def _is_hostname(name: str) -> bool:
    if _DOTTED_NUMBERS.fullmatch(name):
        # All digits and dots: an IPv4 address or nothing (no top-level domain is numeric).
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return False
        return True
    return len(name) <= 253 and _HOSTNAME.fullmatch(name) is not None


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


def framing_origins(origins: Sequence[str]) -> tuple[str, ...]:
    """Of the origins allowed to connect (``--origin``), those that may frame the page: every
    ``http(s)://host[:port]``; not ``*``, so that a hub open to every site is not also
    framable by every site (clickjacking)."""
    return tuple(o.rstrip("/") for o in origins if _ORIGIN.fullmatch(o.rstrip("/")))


def content_security_policy(host: str | None, frame_ancestors: Sequence[str] = ()) -> str:
    """The page's Content-Security-Policy for a request whose ``Host`` header is ``host``: its
    own origin only, WebSockets to that host (``ws:`` and ``wss:``) when the header is
    well-formed (see :func:`web_host`), else ``connect-src 'self'`` alone. Images may also
    come from any ``https:`` or ``http:`` address: poll options' pictures, which organizers
    give as such addresses and the hub never fetches. The page may be framed only by the pages
    of ``frame_ancestors`` (origins such as ``https://event.example.org``), and by none when it
    is empty."""
    checked = web_host(host)
    connect = f"'self' ws://{checked} wss://{checked}" if checked else "'self'"
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data: blob: https: http:; media-src 'self' blob: mediastream:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {ancestors}"
    )


def security_headers(host: str | None, frame_ancestors: Sequence[str] = ()) -> dict[str, str]:
    """The headers every answer of the page and its files carries, for a request whose ``Host``
    header is ``host`` (see :func:`content_security_policy` for ``frame_ancestors``)."""
    return {
        "Content-Security-Policy": content_security_policy(host, frame_ancestors),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def languages_of(file_names: Iterable[str]) -> tuple[str, ...]:
    """The languages of the catalogues among ``file_names``, sorted: the tag of each
    ``text-<tag>.js`` (``text-de.js`` -> ``de``); other names are left out."""
    found = (_CATALOGUE.fullmatch(name) for name in file_names)
    return tuple(sorted(match.group(1) for match in found if match is not None))


@functools.cache
def catalogue_languages() -> tuple[str, ...]:
    """The languages of the web app's message catalogues, sorted: one per file
    ``hub/static/app/text-<tag>.js`` of the installed package (``("de", "en", "fr")``). Read
    once per process: a catalogue added is offered from the next start."""
    folder = resources.files("hub") / "static" / "app"
    return languages_of(entry.name for entry in folder.iterdir())


class SecureHeaders:
    """Wraps an ASGI app of the web app's routes: each of its HTTP answers gets
    :func:`security_headers` (replacing any of the same name), and an ``HTTPException`` it
    raises (404, 405) is answered here as plain text, with them too."""

    def __init__(self, app: ASGIApp, frame_ancestors: Sequence[str] = ()) -> None:
        self.app = app
        self.frame_ancestors = tuple(frame_ancestors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(Headers(scope=scope).get("host"), self.frame_ancestors)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except HTTPException as error:
            answer = PlainTextResponse(error.detail, error.status_code, headers=error.headers)
            await answer(scope, receive, send_secured)


class WebAppFiles(StaticFiles):
    """The package's ``hub/static`` folder, served by StaticFiles, with the media types of
    scripts, stylesheets and pages pinned (see ``_MEDIA_TYPES``)."""

    def __init__(self) -> None:
        super().__init__(packages=[("hub", "static")])

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """StaticFiles' answer for a file (a 304 where the client's ETag matches), with its
        pinned media type where it has one."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = _MEDIA_TYPES.get(os.path.splitext(full_path)[1].lower())
        if media_type is not None and "content-type" in response.headers:
            response.headers["Content-Type"] = media_type
        return response


class _Page:
    """``GET /``: the page, answered like any of the files (ETag, 304)."""

    def __init__(self, files: WebAppFiles) -> None:
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.files.get_response("index.html", scope)
        await response(scope, receive, send)


def web_routes(frame_ancestors: Sequence[str] = ()) -> list[BaseRoute]:
    """The routes of the web app: ``/`` (the page) and ``/static/{path}`` (its files, in
    subfolders too), each answer with :func:`security_headers`; pages of the origins
    ``frame_ancestors`` may frame the app (an event site embedding it), no other page may."""
    files = WebAppFiles()
    return [
        Route("/", SecureHeaders(_Page(files), frame_ancestors), methods=["GET", "HEAD"]),
        Mount("/static", app=SecureHeaders(files, frame_ancestors)),
    ]
