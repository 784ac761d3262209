"""The core's wire shapes (``docs/protocol.md``): the reply and error envelopes, the replies of
the session ops (``hello``, ``ping``, ``refresh``, ``token.renew``) and the events the core sends
itself (``reset``, ``shutdown``). Features keep theirs in a ``wire`` module of their own.

These are TypedDicts: at run time plain dicts, to mypy maps whose keys are checked, so a
misspelt field is a type error where the message is built. Commands stay ``dict[str, Any]``:
they come from clients, and :mod:`hub.fields` validates every field a handler reads.
"""

# Annotations are evaluated here (no ``from __future__ import annotations``): on Python 3.11
# TypedDict reads ``NotRequired`` into ``__required_keys__`` only from evaluated ones.

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from hub.errors import HubError


class ErrorBody(TypedDict):
    """What went wrong: one of the contract's error ``code``s, a message (in English: clients
    show their own text for the code), and for ``rate_limited`` where the hub knows it
    ``retry_in``, whole seconds until a retry may pass."""

    code: str
    msg: str
    retry_in: NotRequired[int]


def error_body(error: HubError) -> ErrorBody:
    """The ``err`` of a reply (or an HTTP answer) for ``error``."""
    body: ErrorBody = {"code": error.code, "msg": error.msg}
    if error.retry_in is not None:
        body["retry_in"] = error.retry_in
    return body


class OkReply(TypedDict):
    """The reply to a command that succeeded: ``{re, ok}``, ``ok`` the handler's map (the
    feature that answers the op types it)."""

    re: int
    ok: Mapping[str, Any]


class ErrorReply(TypedDict):
    """The reply to a command that failed: ``{re, err}``; ``re`` is null when the command's
    ``id`` was unusable."""

    re: int | None
    err: ErrorBody


class EmptyReply(TypedDict):
    """``{}``: the reply of every op that has nothing to say but that it succeeded (``ping``,
    ``refresh``, ``leave``, ``hand.raise``, ``kick``, ``poll.vote``, ``signal``...)."""


class HelloUser(TypedDict):
    """Who a session speaks for, in the ``hello`` reply: ``{id, name, role}``."""

    id: str
    name: str
    role: str


class PublicLimits(TypedDict):
    """The hello reply's ``limits``: the frame size and the per-connection command limit."""

    max_frame_bytes: int
    rate: float
    burst: float


class HelloReply(TypedDict):
    """The core's part of the ``hello`` reply: ``{sid, user, node, limits, token?}`` (``token``
    only for a guest: the token the hub signed for them). Hello hooks add their features'
    fields (``ice_servers`` and ``sfu``: :class:`signalling.wire.SignallingHelloPart`)."""

    sid: str
    user: HelloUser
    node: str
    limits: PublicLimits
    token: NotRequired[str]


class TokenRenewReply(TypedDict):
    """``token.renew`` -> ``{token, exp}``: a fresh token and its expiry (unix seconds)."""

    token: str
    exp: int


class ResetEvent(TypedDict):
    """``reset {room, epoch}``: the room's stored history was lost; join again."""

    ev: Literal["reset"]
    room: str
    epoch: str


class ShutdownEvent(TypedDict):
    """``shutdown {reconnect_in}``: the node is draining; reconnect after that many seconds."""

    ev: Literal["shutdown"]
    reconnect_in: float


class StoredFields(TypedDict):
    """What the core adds to every stored event of a room: the room and its ``seq``. A
    feature's stored event is its published fields plus these and its ``ev``."""

    room: str
    seq: int
