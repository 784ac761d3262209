"""Error codes and close codes of the wire contract, and the exception that carries them.

Every failure a client can cause is a :class:`HubError` with one of the codes of the
:data:`ErrorCode` literal; the session turns it into an error reply and keeps the connection
open. Only the conditions in :class:`CloseCode` end a connection.
"""

from __future__ import annotations

import enum
from typing import Literal

ErrorCode = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "closed",
    "rate_limited",
    "too_large",
    "unavailable",
    "internal",
]


class CloseCode(enum.IntEnum):
    """WebSocket close codes the hub uses, exactly those of the contract."""

    NORMAL = 1000
    TOO_BIG = 1009
    DRAINING = 1012
    TRY_AGAIN = 1013
    UNDECODABLE = 4000
    UNAUTHENTICATED = 4001
    BANNED = 4003
    SLOW_CONSUMER = 4008
    FLOODING = 4029


class HubError(Exception):
    """A command failed: ``code`` (from the contract) and ``msg`` (for people) go to the client,
    and ``retry_in`` (whole seconds until a retry may pass) when the hub knows it. With
    ``close``, the connection is then closed with that code (after the error reply)."""

    def __init__(
        self,
        code: ErrorCode,
        msg: str,
        *,
        close: CloseCode | None = None,
        retry_in: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {msg}")
        self.code: ErrorCode = code
        self.msg = msg
        self.close = close
        self.retry_in = retry_in


class DecodeError(Exception):
    """The inbound stream cannot be decoded at all; the connection is closed with 4000."""


def own_copy(error: Exception) -> Exception:
    """A copy of ``error`` (without its traceback) for one of several callers failing with it:
    raising one exception object from several places would pile their tracebacks onto it. The
    error itself when it cannot be copied."""
    # Made without calling __init__ again (HubError's takes its code; another's may build its
    # message from its arguments): the same args, attributes, cause and context.
    try:
        own = type(error).__new__(type(error), *error.args)
        own.__dict__.update(vars(error))
    except Exception:
        return error
    own.__cause__ = error.__cause__
    own.__context__ = error.__context__
    own.__suppress_context__ = error.__suppress_context__
    return own
