"""Running nodes: a uvicorn server that drains before it stops, and a supervisor for several
worker processes sharing one listening socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from hub.app import Hub, build_hub, create_app
from hub.config import HubConfig
from hub.httpprotocol import DeadlineH11Protocol
from hub.wsprotocol import WindowedWebSocketProtocol

log = logging.getLogger(__name__)

DRAIN_GRACE = 5.0


class HubServer(uvicorn.Server):
    """uvicorn's server, draining the node on SIGTERM: stop accepting, send every session
    ``shutdown {reconnect_in}``, close them with 1012, then shut down as uvicorn does."""

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        node = self.hub.node
        node.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.idle.wait(), DRAIN_GRACE)
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """As uvicorn's, minus its re-raising of the caught signal once shut down (which made a
        drained node die of SIGTERM, exit status -15): a node that drained exits 0."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(config: HubConfig, app: object) -> uvicorn.Config:
    """The uvicorn settings the contract needs: frame limit 64 KiB (1009 above), pings,
    permessage-deflate off unless configured; uvicorn's sans-I/O WebSocket protocol with a
    window of inbound messages (:mod:`hub.wsprotocol`), and its h11 protocol with a deadline for
    the first request (:mod:`hub.httpprotocol`)."""
    http = type(
        "HubH11Protocol",
        (DeadlineH11Protocol,),
        {"first_request_timeout": config.limits.first_request_timeout},
    )
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=http,
        ws=WindowedWebSocketProtocol,
        ws_max_size=config.limits.max_frame_bytes,
        ws_ping_interval=config.ping_interval,
        ws_ping_timeout=config.ping_timeout,
        ws_per_message_deflate=config.deflate,
        lifespan="on",
        log_level=os.environ.get("HUB_LOG_LEVEL", "warning"),
        timeout_graceful_shutdown=int(DRAIN_GRACE),
    )


def serve_socket(config: HubConfig, sock: socket.socket) -> None:
    """Run one node on an already bound socket until SIGTERM/SIGINT."""
    hub = build_hub(config)
    app = create_app(config, hub)
    server = HubServer(uvicorn_config(config, app), hub)
    server.run(sockets=[sock])


def serve(config: HubConfig, argv_for_workers: Sequence[str]) -> int:
    """Serve on ``config.host:config.port`` with ``config.workers`` processes."""
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    print(f"hub: listening on http://{host}:{port} (node broker {config.broker_url})", flush=True)
    if config.workers <= 1:
        serve_socket(config, sock)
        return 0
    return supervise(config.workers, sock, argv_for_workers)


def supervise(workers: int, sock: socket.socket, argv: Sequence[str]) -> int:
    """Run ``workers`` child processes on the shared socket; forward SIGTERM/SIGINT to them
    and wait for all of them."""
    fd = sock.fileno()
    command = [sys.executable, "-m", "hub", "serve", *argv, "--workers", "1", "--fd", str(fd)]
    children = [subprocess.Popen(command, pass_fds=(fd,)) for _ in range(workers)]

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)
