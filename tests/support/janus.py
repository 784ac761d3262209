"""A private Janus WebRTC server (Debian's ``janus``) for tests, inside its own network namespace.

Janus ignores the loopback interface for ICE, so :class:`JanusServer` runs it in a
:class:`~support.netns.NetNamespace` and keeps every bit of its traffic on that namespace's veth:
its WebSocket API (``janus-protocol``) and HTTP admin API listen on the namespace's address, and
ICE gathers that address only. Peers on the host reach it through the veth; a WebRTC peer of the
test process must gather the host end of the veth only (``with host_addresses_only(
server.peer_address)`` of :mod:`support.rtc_media`).

Its configuration is generated into a private directory: the VideoRoom plugin and the
WebSockets and HTTP (admin only) transports are loaded, nothing else. It does not depend on
pytest::

    with JanusServer() as janus:
        url = janus.ws_url                          # ws://10.213.x.y:8188
        assert janus.handle_count() == 0            # through the admin API
        janus.kill(); janus.start()                 # a crash and a fresh start, same URL
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from tests.support.netns import NetNamespace

__all__ = ["JanusError", "JanusServer", "find_janus_folders"]

WS_PORT = 8188
ADMIN_PORT = 7088
SUBPROTOCOL = "janus-protocol"
SESSION_NOT_FOUND = 458  # JANUS_ERROR_SESSION_NOT_FOUND
PLUGINS = ("libjanus_videoroom.so",)
TRANSPORTS = ("libjanus_websockets.so", "libjanus_http.so")
# Where distributions put Janus's modules (Debian: /usr/lib/<multiarch>/janus).
_MODULE_ROOTS = (
    "/usr/lib/*/janus",
    "/usr/lib/janus",
    "/usr/local/lib/janus",
    "/opt/janus/lib/janus",
)


class JanusError(RuntimeError):
    """The server could not be found, started, or asked something (``code``: Janus's error
    code, when it answered with one)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def find_janus_folders() -> Path:
    """The folder holding Janus's ``plugins``, ``transports``, ``events`` and ``loggers``
    folders (the one with the VideoRoom plugin)."""
    for pattern in _MODULE_ROOTS:
        for root in sorted(Path("/").glob(pattern.lstrip("/"))):
            if (root / "plugins" / PLUGINS[0]).is_file():
                return root
    raise JanusError(f"no Janus modules with {PLUGINS[0]} under {', '.join(_MODULE_ROOTS)}")


def _jcfg(value: object, indent: int = 0) -> str:
    """``value`` in Janus's libconfig syntax."""
    pad = "\t" * indent
    if isinstance(value, dict):
        lines = [f"{pad}\t{key} = {_jcfg(item, indent + 1)}\n" for key, item in value.items()]
        return "{\n" + "".join(lines) + pad + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _write_jcfg(path: Path, sections: dict[str, dict[str, object]]) -> None:
    path.write_text("".join(f"{name}: {_jcfg(body)}\n" for name, body in sections.items()))


def _disabled(folder: Path, keep: tuple[str, ...]) -> str:
    # Everything but `keep`: loading Debian's every plugin and transport is slow and opens ports.
    if not folder.is_dir():
        return ""
    names = sorted(p.name for p in folder.glob("*.so") if p.name not in keep)
    return ",".join(names)


class JanusServer:
    """One private Janus server in a network namespace (its own, or ``namespace`` if given, which
    the caller then closes).

    The constructor starts it and returns once its WebSocket API answers ``info``. Its WebSocket
    API is :attr:`ws_url` (subprotocol :data:`SUBPROTOCOL`), its admin API :attr:`admin_url`
    with :attr:`admin_secret`. VideoRoom room and participant ids are strings when
    ``string_ids`` (the default); rooms are created only with ``room_admin_key`` when one is
    given. A session without a request for ``session_timeout`` seconds is destroyed by Janus.
    :meth:`kill`, :meth:`stop`, :meth:`start` and :meth:`restart` are for fault tests; a start
    always comes back without sessions. :meth:`close` stops it and removes its directory (and
    its namespace when it made it).
    """

    def __init__(
        self,
        namespace: NetNamespace | None = None,
        *,
        binary: str | os.PathLike[str] = "janus",
        ws_port: int = WS_PORT,
        admin_port: int = ADMIN_PORT,
        session_timeout: int = 60,
        string_ids: bool = True,
        room_admin_key: str | None = None,
        debug_level: int = 4,
        start_timeout: float = 15.0,
        event_loops: int | None = None,
    ) -> None:
        found = shutil.which(os.fspath(binary))
        if found is None:
            raise JanusError(f"no {os.fspath(binary)!r} on PATH")
        self.binary = found
        self.modules = find_janus_folders()
        self.ws_port = ws_port
        self.admin_port = admin_port
        self.admin_secret = secrets.token_hex(16)
        self.session_timeout = session_timeout
        self.string_ids = string_ids
        self.room_admin_key = room_admin_key
        self.debug_level = debug_level
        self.start_timeout = start_timeout
        # Janus's threading: None, a thread per handle (its default); N, N shared event loops.
        self.event_loops = event_loops
        self._process: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="hub-janus-"))
        self._log = self._dir / "janus.log"
        self._owns_namespace = namespace is None
        try:
            self.namespace = namespace if namespace is not None else NetNamespace()
            self._configure()
            self.start()
        except BaseException:
            self.close()
            raise

    @property
    def address(self) -> str:
        """Janus's address: the namespace end of the veth."""
        return self.namespace.inner_address

    @property
    def peer_address(self) -> str:
        """The host end of the veth: the one address a WebRTC peer on the host may gather."""
        return self.namespace.host_address

    @property
    def ws_url(self) -> str:
        """The URL of the Janus WebSocket API (reachable from the host)."""
        return f"ws://{self.address}:{self.ws_port}"

    @property
    def sfu_url(self) -> str:
        """:attr:`ws_url` as ``hub serve --sfu`` takes it (``janus+ws://...``)."""
        return f"janus+{self.ws_url}"

    @property
    def admin_url(self) -> str:
        """The URL of the HTTP admin API (``POST`` JSON with ``admin_secret``)."""
        return f"http://{self.address}:{self.admin_port}/admin"

    @property
    def pid(self) -> int | None:
        """The Janus process's id while it runs (``ip netns exec`` execs in place: it is
        Janus's own), for benchmarks that read its CPU time and memory."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the Janus process is alive."""
        return self._process is not None and self._process.poll() is None

    def _configure(self) -> None:
        conf = self._dir / "conf"
        conf.mkdir()
        _write_jcfg(
            conf / "janus.jcfg",
            {
                "general": {
                    "configs_folder": str(conf),
                    "plugins_folder": str(self.modules / "plugins"),
                    "transports_folder": str(self.modules / "transports"),
                    "events_folder": str(self.modules / "events"),
                    "loggers_folder": str(self.modules / "loggers"),
                    "debug_level": self.debug_level,
                    "debug_timestamps": True,
                    "debug_colors": False,
                    "admin_secret": self.admin_secret,
                    "server_name": "livehub-test",
                    "session_timeout": self.session_timeout,
                    **({"event_loops": self.event_loops} if self.event_loops else {}),
                    "hide_dependencies": True,
                    # The address put in SDP; otherwise Janus probes for a "public" one.
                    "interface": self.address,
                },
                "media": {},
                "nat": {
                    "nice_debug": False,
                    # ICE on the veth only (loopback is never used by Janus anyway).
                    "ice_enforce_list": self.address,
                    # Resolving a browser's .local candidates would multicast; peer-reflexive
                    # candidates from its connectivity checks suffice.
                    "ignore_mdns": True,
                },
                "plugins": {"disable": _disabled(self.modules / "plugins", PLUGINS)},
                "transports": {"disable": _disabled(self.modules / "transports", TRANSPORTS)},
                "loggers": {"disable": _disabled(self.modules / "loggers", ())},
                "events": {"broadcast": False},
            },
        )
        _write_jcfg(
            conf / "janus.transport.websockets.jcfg",
            {
                "general": {
                    "json": "compact",
                    "ws": True,
                    "ws_port": self.ws_port,
                    "ws_ip": self.address,
                    "wss": False,
                    "ws_logging": "err,warn",
                },
                "admin": {"admin_ws": False, "admin_wss": False},
            },
        )
        _write_jcfg(
            conf / "janus.transport.http.jcfg",
            {
                "general": {"json": "compact", "http": False, "https": False},
                "admin": {
                    "admin_base_path": "/admin",
                    "admin_http": True,
                    "admin_port": self.admin_port,
                    "admin_ip": self.address,
                    "admin_https": False,
                },
            },
        )
        videoroom: dict[str, object] = {"string_ids": self.string_ids, "events": False}
        if self.room_admin_key is not None:
            videoroom["admin_key"] = self.room_admin_key
        _write_jcfg(conf / "janus.plugin.videoroom.jcfg", {"general": videoroom})

    def start(self) -> None:
        """Start Janus (if it is not running) and wait until its WebSocket API answers."""
        if self.running:
            return
        conf = self._dir / "conf"
        with open(self._log, "ab") as log:
            self._process = self.namespace.popen(
                [self.binary, "--config", str(conf / "janus.jcfg"), "--configs-folder", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if not self.running:
                raise JanusError(f"janus exited while starting:\n{self.log()}")
            with contextlib.suppress(OSError, WebSocketException, TimeoutError):
                if self.info().get("janus") == "server_info":
                    return
            if time.monotonic() > deadline:
                raise JanusError(f"janus not ready in {self.start_timeout}s:\n{self.log()}")
            time.sleep(0.05)  # poll interval, not synchronisation

    def info(self) -> dict[str, Any]:
        """Janus's answer to ``info`` over a new WebSocket connection."""
        with connect(self.ws_url, subprotocols=[SUBPROTOCOL], open_timeout=2) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"janus": "info", "transaction": "ready"}))
            answer: dict[str, Any] = json.loads(ws.recv(timeout=2))
            return answer

    def stop(self, timeout: float = 10.0) -> None:
        """End Janus gracefully (SIGTERM; SIGKILL after ``timeout``). Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._process = None

    def kill(self) -> None:
        """End Janus at once (SIGKILL), as in a crash: its sessions and handles are gone and its
        WebSocket connections are cut without a close frame. Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait(5)
        self._process = None

    def restart(self) -> None:
        """Stop and start again on the same address and ports, without sessions."""
        self.stop()
        self.start()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop Janus (SIGSTOP) for the block: connections stay open, nothing is answered; it
        continues (SIGCONT) after the block, whatever happens."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._process.send_signal(signal.SIGCONT)

    def admin(
        self,
        request: str,
        session_id: int | None = None,
        handle_id: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Send one admin API request (``list_sessions``, ``list_handles``, ``handle_info``...)
        and return Janus's answer; raise :class:`JanusError` on an ``error`` answer."""
        path = self.admin_url
        if session_id is not None:
            path += f"/{session_id}"
            if handle_id is not None:
                path += f"/{handle_id}"
        body = {
            "janus": request,
            "transaction": secrets.token_hex(6),
            "admin_secret": self.admin_secret,
            **fields,
        }
        post = urllib.request.Request(
            path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(post, timeout=5) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except (urllib.error.URLError, OSError) as error:
            raise JanusError(f"admin {request}: {error}") from error
        if answer.get("janus") != "success":
            error = answer.get("error") or {}
            raise JanusError(f"admin {request}: {error}", code=error.get("code"))
        return answer

    def sessions(self) -> list[int]:
        """The ids of the sessions Janus holds now."""
        return list(self.admin("list_sessions")["sessions"])

    def handles(self, session_id: int) -> list[int]:
        """The ids of the handles of one session (none if the session is gone meanwhile)."""
        try:
            return list(self.admin("list_handles", session_id)["handles"])
        except JanusError as error:
            if error.code == SESSION_NOT_FOUND:  # destroyed meanwhile
                return []
            raise

    def handle_count(self) -> int:
        """How many handles all sessions hold now."""
        return sum(len(self.handles(session)) for session in self.sessions())

    def log(self) -> str:
        """The last of Janus's log (for failure messages)."""
        try:
            return self._log.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def close(self) -> None:
        """Stop Janus and remove its directory (and its namespace when it made it)."""
        self.stop()
        if self._owns_namespace and hasattr(self, "namespace"):
            self.namespace.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> JanusServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
