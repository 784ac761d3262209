"""A private coturn TURN server (Debian's ``turnserver``) for tests, on loopback.

:class:`TurnServer` writes a configuration of its own into a private directory (``use-auth-secret``
with a ``static-auth-secret``: the TURN REST credentials the hub hands its clients), listens on
a free port of 127.0.0.1 (UDP and TCP), relays on 127.0.0.1, and keeps its database, pid file
and log in that directory. It does not depend on pytest::

    with TurnServer(binary=require_turnserver()) as turn:
        url = turn.url          # turn:127.0.0.1:PORT
        secret = turn.secret
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from aioice import stun

__all__ = ["TurnServer", "TurnServerError"]


class TurnServerError(RuntimeError):
    """The private TURN server could not be started."""


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now (coturn listens on both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise TurnServerError("no port free for both UDP and TCP")


class TurnServer:
    """One private coturn on 127.0.0.1 (:attr:`url`, :attr:`secret`, :attr:`realm`).

    The constructor starts it and returns once it accepts TCP connections on its port and answers
    a STUN binding request over UDP (coturn opens the two listeners in turn: on a busy machine
    the UDP one came later); :meth:`close` stops it and removes its directory.
    """

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] = "/usr/bin/turnserver",
        secret: str | None = None,
        realm: str = "doctor.test",
        start_timeout: float = 10.0,
    ) -> None:
        self.binary = os.fspath(binary)
        self.secret = secret or secrets.token_urlsafe(24)
        self.realm = realm
        self.port = _free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="hub-coturn-"))
        self._log = self._dir / "turnserver.log"
        config = self._dir / "turnserver.conf"
        config.write_text(
            "\n".join(
                [
                    "listening-ip=127.0.0.1",
                    "relay-ip=127.0.0.1",
                    f"listening-port={self.port}",
                    "use-auth-secret",
                    f"static-auth-secret={self.secret}",
                    f"realm={realm}",
                    "no-tls",
                    "no-dtls",
                    "no-cli",
                    "no-multicast-peers",
                    "simple-log",
                    f"pidfile={self._dir / 'turnserver.pid'}",
                    f"userdb={self._dir / 'turndb'}",
                    "",
                ]
            )
        )
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(config), "--log-file", "stdout"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """The server's ``turn:`` URL (UDP)."""
        return f"turn:127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise TurnServerError(f"turnserver exited while starting:\n{self.log()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0 and self._answers_udp():
                    return
            if time.monotonic() > deadline:
                raise TurnServerError(f"turnserver not ready in {timeout} s:\n{self.log()}")
            time.sleep(0.01)  # poll interval, not synchronisation

    def _answers_udp(self) -> bool:
        """Whether the server answers a STUN binding request on its UDP port now."""
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(0.2)
            try:
                udp.connect(("127.0.0.1", self.port))
                udp.send(bytes(request))
                answer = udp.recv(2048)
            except OSError:  # refused (nothing listening yet) or no answer in time
                return False
        with contextlib.suppress(ValueError):
            return stun.parse_message(answer).transaction_id == request.transaction_id
        return False

    def log(self) -> str:
        """The server's output so far (for failure messages)."""
        try:
            return self._log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory. Idempotent."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)

    def __enter__(self) -> TurnServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
