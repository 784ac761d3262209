"""What the hub's HTTP API handlers share: bearer tokens, JSON bodies, and errors answered as
``{"err": {code, msg}}`` with the status that fits the code, like the ops' error replies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.auth import Identity, Role, TokenAuthority
from hub.broker import BrokerUnavailable
from hub.errors import HubError
from hub.wire import error_body

# What the HTTP API answers while the broker cannot serve (Redis down), like the WebSocket ops.
_UNAVAILABLE = HubError("unavailable", "try again shortly")

_STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "unavailable": 503,
}

HttpHandler = Callable[[Request], Awaitable[Response]]


def error_response(error: HubError) -> Response:
    """``{"err": {code, msg}}`` (and ``retry_in`` where the error has it) with the HTTP status
    of ``error.code`` (500 for others)."""
    return JSONResponse({"err": error_body(error)}, status_code=_STATUS.get(error.code, 500))


def api(handler: HttpHandler) -> HttpHandler:
    """``handler`` with its contract errors (HubError, broker unavailable) answered as
    :func:`error_response` does."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except HubError as error:
            return error_response(error)
        except BrokerUnavailable:
            return error_response(_UNAVAILABLE)

    return run


def bearer(request: Request, authority: TokenAuthority, needed: str) -> Identity:
    """The identity the request's bearer token names; ``unauthorized`` (saying ``needed``)
    without one, or when it is invalid or expired."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HubError("unauthorized", f"{needed} is needed")
    return authority.verify(token.strip())


def organizer(request: Request, authority: TokenAuthority) -> str:
    """The user id of the organizer the bearer token names; ``unauthorized`` without a valid
    token, ``forbidden`` for anyone else."""
    identity = bearer(request, authority, "an organizer's bearer token")
    if identity.role < Role.ORGANIZER:
        raise HubError("forbidden", "only organizers may do this")
    return identity.user_id


async def json_body(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, else ``bad_request``."""
    try:
        body = await request.json()
    except ValueError:
        raise HubError("bad_request", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise HubError("bad_request", "the body must be a JSON object")
    return body
