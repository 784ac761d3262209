"""The session ops every hub has: ``hello``, ``ping``, ``refresh`` and ``token.renew``."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from typing import Any, cast

from hub.auth import Identity, TokenAuthority, guest_identity
from hub.dispatch import CommandContext
from hub.errors import CloseCode, HubError
from hub.feature import FeatureContext, HelloHook
from hub.ratelimit import KeyedLimiter
from hub.session import Session, SessionState
from hub.wire import EmptyReply, HelloReply, TokenRenewReply


class SessionOps:
    """Authenticates sessions with the hub's tokens (or as guests, where allowed)."""

    def __init__(self, authority: TokenAuthority, *, guests: bool) -> None:
        self.authority = authority
        self.guests = guests
        self.hello_hooks: list[HelloHook] = []
        # Per client address, made at install from the node's limits.
        self.hello_attempts = KeyedLimiter(1.0, 1.0)
        self.new_guests = KeyedLimiter(1.0, 1.0)

    def install(self, ctx: FeatureContext) -> None:
        """Register ``hello``, ``ping``, ``refresh`` and ``token.renew``; ``hello`` runs the
        context's hello hooks (those added later included)."""
        ctx.command("hello", self.hello, before_hello=True)
        ctx.command("ping", self.ping)
        ctx.command("refresh", self.refresh)
        ctx.command("token.renew", self.renew)
        self.hello_hooks = ctx.hello_hooks
        limits = ctx.node.config.limits
        self.hello_attempts = KeyedLimiter(limits.hello_rate, limits.hello_burst)
        self.new_guests = KeyedLimiter(limits.guest_rate, limits.guest_burst)

    def identify(
        self, cmd: dict[str, Any], *, guest_ttl: float = 12 * 3600, now: float | None = None
    ) -> tuple[Identity, str | None]:
        """The identity a ``hello`` proves, with the token the hub made for it if any: a valid
        token (a guest's only where guests are allowed), or a guest's name where allowed, which
        gets a token of its own valid for ``guest_ttl`` seconds (the session holds that token
        from then on: it is the same guest as a later ``hello`` with it)."""
        now = time.time() if now is None else now
        token = cmd.get("token")
        if token is not None:
            identity = self.authority.verify(token, now=now)
            self._check_guest(identity)
            return identity, None
        if "name" in cmd:
            if not self.guests:
                raise HubError("unauthorized", "this hub does not admit guests: a token is needed")
            guest = self.authority.mint_identity(
                guest_identity(cmd["name"]), ttl=guest_ttl, now=now
            )
            return self.authority.verify(guest, now=now), guest
        raise HubError("unauthorized", "hello needs a token (or a name, where guests are allowed)")

    def _check_guest(self, identity: Identity) -> None:
        if identity.guest and not self.guests:
            raise HubError("unauthorized", "this hub does not admit guests: a token is needed")

    async def hello(self, ctx: CommandContext, cmd: dict[str, Any]) -> HelloReply:
        """Authenticate the session; returns the contract's hello reply."""
        session = ctx.session
        if session.state is not SessionState.CONNECTED:
            raise HubError("conflict", "hello was said already")
        self._check_address(ctx, self.hello_attempts, "hellos")
        now = time.time()
        identity, guest_token = self.identify(cmd, guest_ttl=ctx.node.config.guest_ttl, now=now)
        if identity.auth_time is None:
            # Signing in is saying hello with the token, not making it: a link mailed a week
            # before the event may still be renewed for HUB_TOKEN_RENEW_MAX from today.
            identity = dataclasses.replace(identity, auth_time=math.floor(now))
        if guest_token is not None:
            self._check_address(ctx, self.new_guests, "new guests")
        # Hooks run after the bind: what they read (a ban, say) is either seen here or, stored
        # later, reaches this session through the user's topic. A hello that failed in a hook
        # (broker unavailable) may be retried: binding again changes nothing.
        await ctx.node.bind_user(session, identity.user_id)
        core: HelloReply = {
            "sid": session.sid,
            "user": {"id": identity.user_id, "name": identity.name, "role": identity.role.label},
            "node": ctx.node.node_id,
            "limits": ctx.node.config.limits.public(),
        }
        # Open to the core: the hooks add their features' fields, which those features type.
        reply: dict[str, Any] = dict(core)
        for hook in self.hello_hooks:
            reply.update(await hook(ctx, identity) or {})
        if not session.open:
            raise HubError("closed", "the connection is closing")
        session.authenticate(identity)
        self._watch_expiry(session)
        if guest_token is not None:
            reply["token"] = guest_token
        # The core's keys are checked above; the rest are the hooks' (see HelloReply).
        return cast(HelloReply, reply)

    @staticmethod
    def _check_address(ctx: CommandContext, limiter: KeyedLimiter, what: str) -> None:
        """``rate_limited`` (then close 1013: try again later) once the caller's client address
        has spent ``limiter``'s budget; loopback clients have none to spend."""
        address = ctx.session.address
        if address is None:
            return
        now = time.monotonic()
        if not limiter.take(address, now):
            ctx.node.metrics.rate_limited.inc()
            wait = max(1, math.ceil(limiter.retry_after(address, now)))
            raise HubError(
                "rate_limited",
                f"too many {what} from this address: try again in {wait} s",
                close=CloseCode.TRY_AGAIN,
                retry_in=wait,
            )

    async def ping(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Answer ``{}``: a round trip through the hub."""
        return {}

    async def refresh(self, ctx: CommandContext, cmd: dict[str, Any]) -> EmptyReply:
        """Swap in a fresh token of the same user before the old one expires."""
        identity = self.authority.verify(cmd.get("token"))
        self._check_guest(identity)
        current = ctx.identity
        if identity.user_id != current.user_id or identity.guest != current.guest:
            raise HubError("forbidden", "a refreshed token must name the same user")
        ctx.session.authenticate(identity)
        self._watch_expiry(ctx.session)
        return {}

    async def renew(self, ctx: CommandContext, cmd: dict[str, Any]) -> TokenRenewReply:
        """``{token, exp}``: a fresh token for the session's own identity (see
        :meth:`TokenAuthority.renew`); ``forbidden`` once the original sign-in is older than
        ``token_renew_max``. The session keeps its token until the client sends ``refresh``."""
        token, exp = self.authority.renew(
            ctx.identity, now=time.time(), max_age=ctx.node.config.token_renew_max
        )
        return {"token": token, "exp": exp}

    @staticmethod
    def _watch_expiry(session: Session) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        expires_at = session.identity.expires_at if session.identity else None
        if expires_at is None:
            return

        def check() -> None:
            session.expiry = None
            identity = session.identity
            expiry = identity.expires_at if identity is not None else None
            if expiry is not None and expiry <= time.time():
                session.request_close(CloseCode.UNAUTHENTICATED, "token expired")

        delay = max(0.0, expires_at - time.time())
        session.expiry = asyncio.get_running_loop().call_later(delay + 0.01, check)
