"""Real ``hub serve`` processes on free ports, for integration tests and benchmarks.

A process is ready when ``/readyz`` answers 200: the harness polls it with a deadline instead of
sleeping for a fixed time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

from hub.auth import TokenAuthority

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def mint(user: str, role: str = "attendee", name: str | None = None, **kwargs: object) -> str:
    """A token signed with :data:`TEST_SECRET`."""
    return TokenAuthority(TEST_SECRET).mint(
        user=user,
        name=name or user,
        role=role,
        **kwargs,  # type: ignore[arg-type]
    )


class HubProcess:
    """One ``hub serve`` process (``--workers N`` makes it a supervisor of N nodes)."""

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        port: int | None = None,
        workers: int = 1,
        secret: str | None = TEST_SECRET,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cpu: int | None = None,
    ) -> None:
        self.port = port or free_port()
        command = [sys.executable, "-m", "hub", "serve", "--port", str(self.port)]
        if workers != 1:
            command += ["--workers", str(workers)]
        if redis_url:
            command += ["--redis", redis_url]
        if secret:
            command += ["--secret", secret]
        command += list(args)
        if cpu is not None:
            command = ["taskset", "-c", str(cpu), *command]
        self.command = command
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a chatty process must never block on a full pipe.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the process

    @property
    def url(self) -> str:
        """The WebSocket URL of ``/ws``."""
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        """The base HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> HubProcess:
        """Start the process and wait until it is ready."""
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll ``/readyz`` until it answers 200, or fail with the process's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"hub exited with {self.process.returncode}: {self.stderr()}")
            if self.status("/readyz") == 200:
                return
            time.sleep(0.05)
        raise TimeoutError(f"hub on port {self.port} not ready after {timeout}s")

    def status(self, path: str) -> int | None:
        """The HTTP status of ``GET path``, or None when nothing answers."""
        try:
            with urllib.request.urlopen(self.http + path, timeout=2) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def stderr(self) -> str:
        """The last of what the process wrote to stderr."""
        return self.stderr_text()[-4000:]

    def stderr_text(self) -> str:
        """Everything the process wrote to stderr so far ("" once stopped)."""
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")
        except ValueError:  # closed after stop()
            return ""

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM (the process drains), then wait; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Stop the process whatever its state (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            self._stderr.close()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        with contextlib.suppress(Exception):
            self._stderr.close()

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
