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
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from hub import gc_policy, logs
from hub.app import Hub, build_hub, create_app
from hub.config import HubConfig
from hub.httpprotocol import DeadlineH11Protocol
from hub.wsprotocol import HubWebSocketProtocol

log = logging.getLogger(__name__)

DRAIN_GRACE = 5.0


def log_level() -> str:
    """uvicorn's log level, ``HUB_LOG_LEVEL`` (``warning`` by default)."""
    return os.environ.get("HUB_LOG_LEVEL", "warning")


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
    permessage-deflate off unless configured; the hub's WebSocket protocol (:mod:`hub.wsprotocol`:
    websockets' sans-I/O protocol, light per connection, with a window of inbound messages),
    uvicorn's h11 protocol with a deadline for the first request (:mod:`hub.httpprotocol`), and
    the logging of ``config.log_format`` (:func:`hub.logs.logging_config`)."""
    http = type(
        "HubH11Protocol",
        (DeadlineH11Protocol,),
        {"first_request_timeout": config.limits.first_request_timeout},
    )
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=http,
        ws=HubWebSocketProtocol,
        ws_max_size=config.limits.max_frame_bytes,
        ws_ping_interval=config.ping_interval,
        ws_ping_timeout=config.ping_timeout,
        ws_per_message_deflate=config.deflate,
        proxy_headers=True,
        forwarded_allow_ips=list(config.trusted_proxies),
        lifespan="on",
        # uvloop (a dependency) where it is installed, else asyncio's own loop.
        loop="auto",
        log_config=logs.logging_config(config.log_format, log_level()),
        log_level=log_level(),
        timeout_graceful_shutdown=int(DRAIN_GRACE),
    )


def serve_socket(config: HubConfig, sock: socket.socket) -> None:
    """Run one node on an already bound socket until SIGTERM/SIGINT."""
    logs.configure(config.log_format, log_level())
    hub = build_hub(config)
    logs.name_process_node(hub.node.node_id)
    app = create_app(config, hub)
    server = HubServer(uvicorn_config(config, app), hub)
    gc_policy.tune_for_serving()
    server.run(sockets=[sock])


def serve(config: HubConfig, argv_for_workers: Sequence[str]) -> int:
    """Serve on ``config.host:config.port`` with ``config.workers`` processes."""
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    print(f"hub: listening on http://{host}:{port} (node broker {config.broker_url})", flush=True)
    if config.workers <= 1:
        serve_socket(config, sock)
        return 0
    logs.configure(config.log_format, log_level())  # the supervisor's own lines
    return supervise(config.workers, sock, argv_for_workers)


# A worker that dies is started again after a pause that doubles with each death of its slot in
# a row (from RESTART_FIRST to RESTART_CAP seconds); one that lived RESTART_STABLE seconds starts
# its slot's series again.
RESTART_FIRST = 0.5
RESTART_CAP = 30.0
RESTART_STABLE = 60.0
# The file where the supervisor keeps its count of restarts, which every worker exposes on
# /metrics (hub.metrics reads it when scraped).
RESTARTS_ENV = "HUB_RESTARTS_FILE"


def supervise(workers: int, sock: socket.socket, argv: Sequence[str]) -> int:
    """Run ``workers`` child processes on the shared socket and keep them running: a worker
    that dies (killed, crashed) is logged with why and started again with back-off, counted in
    every worker's ``hub_worker_restarts_total``. SIGTERM/SIGINT are forwarded and end it once
    every worker exited; returns the highest exit code."""
    fd = sock.fileno()
    command = [sys.executable, "-m", "hub", "serve", *argv, "--workers", "1", "--fd", str(fd)]
    with tempfile.TemporaryDirectory(prefix="hub-supervisor-") as directory:
        restarts = Path(directory) / "restarts"
        restarts.write_text("0")
        env = {**os.environ, RESTARTS_ENV: str(restarts)}
        return _Supervisor(command, fd, env, restarts).run(workers)


class _Supervisor:
    """The worker slots of :func:`supervise`."""

    def __init__(self, command: list[str], fd: int, env: dict[str, str], restarts: Path) -> None:
        self.command = command
        self.fd = fd
        self.env = env
        self.restarts = restarts
        self.stopping = False
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.started_at: dict[int, float] = {}
        self.deaths: dict[int, int] = {}
        self.codes: list[int] = []
        self.count = 0

    def run(self, workers: int) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for slot in range(workers):
            self._start(slot)
        due: dict[int, float] = {}  # slot -> when to start it again
        while self.children or (due and not self.stopping):
            now = time.monotonic()
            for slot, child in list(self.children.items()):
                code = child.poll()
                if code is None:
                    continue
                del self.children[slot]
                self.codes.append(code)
                if self.stopping:
                    continue
                due[slot] = now + self._pause(slot, now)
                log.warning(
                    "hub: worker %d (pid %d) died (%s); starting it again in %.1f s",
                    slot,
                    child.pid,
                    _why(code),
                    due[slot] - now,
                )
            for slot, at in list(due.items()):
                if self.stopping:
                    due.clear()
                elif at <= now:
                    del due[slot]
                    self._start(slot)
                    self.count += 1
                    self.restarts.write_text(str(self.count))
            time.sleep(0.1)  # a supervisor's poll, not synchronisation
        return max(self.codes, default=0)

    def _start(self, slot: int) -> None:
        self.children[slot] = subprocess.Popen(self.command, pass_fds=(self.fd,), env=self.env)
        self.started_at[slot] = time.monotonic()

    def _pause(self, slot: int, now: float) -> float:
        if now - self.started_at.get(slot, now) >= RESTART_STABLE:
            self.deaths[slot] = 0
        deaths = self.deaths.get(slot, 0)
        self.deaths[slot] = deaths + 1
        return float(min(RESTART_CAP, RESTART_FIRST * 2**deaths))

    def _forward(self, signum: int, frame: object) -> None:
        self.stopping = True
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)


def _why(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
