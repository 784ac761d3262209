"""Command dispatch: validate the envelope, enforce state and rate limits, run the handler for the
op, and queue exactly one reply for a command with an id (none for one without).

Each command's latency goes to ``hub_command_seconds{op}``; a refused one is counted by code
(``hub_errors``) and logged as ``command.refused`` where ``info`` is on (see :mod:`hub.logs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.auth import Identity, Role
from hub.broker import BrokerUnavailable
from hub.errors import CloseCode, HubError
from hub.logs import log_event
from hub.metrics import UNKNOWN_OP
from hub.session import Session, SessionState
from hub.wire import ErrorReply, OkReply, error_body

if TYPE_CHECKING:
    from hub.metrics import OpLatency
    from hub.node import Node

log = logging.getLogger(__name__)

MAX_ID = 2**53 - 1  # the largest id a JavaScript client can hold exactly


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a handler gets besides the command: the node it runs on and the calling session."""

    node: Node
    session: Session

    @property
    def identity(self) -> Identity:
        """The caller (commands other than ``hello`` only run once authenticated)."""
        identity = self.session.identity
        if identity is None:
            raise HubError("unauthorized", "say hello first")
        return identity


# (context, the command as the client sent it) -> the reply's ``ok`` map (None: ``{}``). Commands
# are open maps whose fields each handler validates (hub/fields.py); replies are the features'
# TypedDicts (their ``wire`` modules), which are Mappings.
Handler = Callable[[CommandContext, dict[str, Any]], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class Command:
    """One op: its handler, whether it may run before ``hello``, and whether it applies its own
    rate limit instead of the per-connection and per-user command limits."""

    op: str
    handler: Handler
    before_hello: bool = False
    own_rate_limit: bool = False


class CommandRegistry:
    """The ops this hub understands; features register theirs at start-up."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def add(
        self,
        op: str,
        handler: Handler,
        *,
        before_hello: bool = False,
        own_rate_limit: bool = False,
    ) -> None:
        """Register ``handler`` for ``op``; an op is registered once."""
        if op in self._commands:
            raise ValueError(f"op {op!r} is registered already")
        self._commands[op] = Command(op, handler, before_hello, own_rate_limit)

    def get(self, op: str) -> Command | None:
        """The command for ``op``, or None."""
        return self._commands.get(op)

    def __contains__(self, op: object) -> bool:
        return op in self._commands


class Dispatcher:
    """Runs decoded commands of one node's sessions (see the module docstring)."""

    def __init__(self, node: Node, registry: CommandRegistry) -> None:
        self.node = node
        self.registry = registry
        # The latency histogram of each registered op (an op a client makes up is "unknown":
        # it cannot grow this).
        self._latency: dict[str, OpLatency] = {}
        self._unknown_latency = node.metrics.command_latency.of(UNKNOWN_OP)

    async def dispatch(self, session: Session, message: dict[str, Any]) -> None:
        """Handle one command; the reply (if any) is queued on the session."""
        started = time.perf_counter()
        raw_id = message.get("id")
        has_id = "id" in message
        if has_id and not _valid_id(raw_id):
            # Nothing to match the reply to: it goes back with "re": null.
            self.node.metrics.errors.labels("bad_request").inc()
            if log.isEnabledFor(logging.INFO):
                self._log_refused(session, message.get("op"), "bad_request")
            unanswerable: ErrorReply = {
                "re": None,
                "err": {"code": "bad_request", "msg": "id must be a positive integer"},
            }
            session.send(unanswerable)
            if session.state is SessionState.CONNECTED:
                session.request_close(CloseCode.UNAUTHENTICATED, "no valid hello")
            return
        command_id: int | None = raw_id if has_id else None
        op = message.get("op")
        unavailable = False
        ctx = CommandContext(self.node, session)
        try:
            handler = self._handler(session, op)
            result = await handler(ctx, message)
        except HubError as error:
            self._reply_error(session, command_id, op, error)
            if error.close is not None:
                # After its reply: closing first would drop the reply this command is owed.
                session.request_close(error.close, error.msg)
        except BrokerUnavailable:
            unavailable = True
            log.warning("broker unavailable for %s", op)
            self._reply_error(session, command_id, op, HubError("unavailable", "try again shortly"))
        except Exception:
            log.exception("command %s failed", op)
            self._reply_error(session, command_id, op, HubError("internal", "internal error"))
        else:
            if command_id is not None:
                reply: OkReply = {"re": command_id, "ok": result if result is not None else {}}
                session.send(reply)
        finally:
            # A join holds the room's live events back (as `ctx`) until its reply is queued;
            # what others hold (a move into a room) stays held.
            session.release(ctx)
        latency = self._latency.get(op) if op.__class__ is str else None
        if latency is None:
            latency = self._latency_of(op)
        latency.observe(time.perf_counter() - started)
        # A hello that failed for want of the broker may be tried again (within the deadline).
        if session.state is SessionState.CONNECTED and not unavailable:
            session.request_close(CloseCode.UNAUTHENTICATED, "no valid hello")

    def _handler(self, session: Session, op: object) -> Handler:
        """The handler for ``op`` once the envelope, the session state and the rate limit allow
        it (a plain function, so that a command costs one coroutine less)."""
        if not isinstance(op, str):
            raise HubError("bad_request", "op must be a string")
        command = self.registry.get(op)
        if session.state is SessionState.CONNECTED:
            if command is None or not command.before_hello:
                raise HubError("unauthorized", "hello must be the first command")
        elif not session.open:
            raise HubError("closed", "the connection is closing")
        elif command is None or not command.own_rate_limit:
            self._check_rate(session)
        if command is None:
            raise HubError("bad_request", f"unknown op {op!r}")
        return command.handler

    def _check_rate(self, session: Session) -> None:
        identity = session.identity
        if identity is None or identity.role is Role.ORGANIZER:
            return
        now = time.monotonic()
        if session.bucket.take(now) and self.node.user_limiter.take(session.rate_key, now):
            return
        self.node.metrics.rate_limited.inc()
        raise rate_limited(session, now, "commands")

    def _latency_of(self, op: object) -> OpLatency:
        """The latency histogram of ``op``'s label (see :meth:`op_label`), kept for the next."""
        label = self.op_label(op)
        if label == UNKNOWN_OP:
            return self._unknown_latency
        latency = self._latency[label] = self.node.metrics.command_latency.of(label)
        return latency

    def op_label(self, op: object) -> str:
        """``op`` as metrics and logs name it: itself for an op of this hub, else ``unknown``
        (what a client sends must not grow a label set, nor reach the logs)."""
        return op if isinstance(op, str) and op in self.registry else UNKNOWN_OP

    def _reply_error(
        self, session: Session, command_id: int | None, op: object, error: HubError
    ) -> None:
        self.node.metrics.errors.labels(error.code).inc()
        if log.isEnabledFor(logging.INFO):
            self._log_refused(session, op, error.code)
        if command_id is not None:
            reply: ErrorReply = {"re": command_id, "err": error_body(error)}
            session.send(reply)

    def _log_refused(self, session: Session, op: object, code: str) -> None:
        log_event(
            log,
            "command.refused",
            node=self.node.node_id,
            sid=session.sid,
            user=session.user_id,
            code=code,
            op=self.op_label(op),
        )


def rate_limited(session: Session, now: float, what: str) -> HubError:
    """The error for a command refused by a rate limit of ``what``: it closes the session with
    4029 once the session keeps flooding (see :meth:`Session.flooding`)."""
    if session.flooding(now):
        return HubError(
            "rate_limited", "kept flooding after rate_limited", close=CloseCode.FLOODING
        )
    return HubError("rate_limited", f"too many {what}: slow down")


def _valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID
