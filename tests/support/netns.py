"""A throw-away network namespace joined to the host by a veth pair, for servers (Janus) that
ignore the loopback interface: test traffic then stays on the veth and never reaches a real
interface.

:class:`NetNamespace` creates a namespace ``livehub-<pid>-<token>`` and a veth pair
``lh<token>h`` (host side) / ``lh<token>n`` (namespace side) with the two addresses of a private
/30 that no host route or address overlaps. The namespace has ``lo`` up, the /30 and no other
route; the host gains only the /30 on its veth end. Everything is removed at the end, even on
failure, and leftovers of an earlier run whose process died are removed first. Needs root and
``ip`` (iproute2); it does not depend on pytest::

    with NetNamespace() as ns:
        process = ns.popen(["janus", ...])        # runs inside the namespace
        connect(f"ws://{ns.inner_address}:8188")  # from the host, through the veth
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["NetNamespace", "NetNamespaceError", "probe", "remove_leftovers"]

PREFIX = "livehub-"
# Where /30s are picked from: a corner of 10/8 unlikely to carry real routes; every pick is still
# checked against the host's addresses and routes.
POOL = ipaddress.IPv4Network("10.213.0.0/16")
# Serialises picking a /30 and sweeping leftovers between concurrent test runs on one machine.
LOCK_PATH = Path("/run/lock/livehub-netns.lock")

_NAMESPACE = re.compile(rf"^{PREFIX}(\d+)-([0-9a-f]{{6}})$")
_LINK = re.compile(r"^lh([0-9a-f]{6})[hn]$")


class NetNamespaceError(RuntimeError):
    """A namespace could not be made (or ``ip`` failed)."""


def _ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        ["ip", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if check and result.returncode != 0:
        raise NetNamespaceError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    # `ip netns list` prints "NAME" or "NAME (id: N)".
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _host_links() -> list[str]:
    names = []
    for line in _ip("-o", "link", "show").splitlines():
        # "6: lh3fa2c1h@if5: <...>"
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _kill_inside(namespace: str) -> None:
    for pid in _ip("netns", "pids", namespace, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _delete(namespace: str, host_link: str) -> None:
    # Deleting one end of a veth deletes both at once; `ip netns del` alone frees the pair only
    # when the kernel gets round to it, after processes left inside have gone.
    _ip("link", "del", host_link, check=False)
    _kill_inside(namespace)
    _ip("netns", "del", namespace, check=False)


def remove_leftovers() -> list[str]:
    """Remove the namespaces (and processes inside them) and veth ends that runs whose process
    is gone left behind; returns their names. Runs of live processes are left alone."""
    removed: list[str] = []
    with _locked():
        live_tokens: set[str] = set()
        for namespace in _namespaces():
            match = _NAMESPACE.match(namespace)
            if match is None:
                continue
            pid, token = int(match.group(1)), match.group(2)
            if _alive(pid):
                live_tokens.add(token)
                continue
            _delete(namespace, f"lh{token}h")
            removed.append(namespace)
        for link in _host_links():
            match = _LINK.match(link)
            # A namespace is made before its veth and removed after it: a veth end without a
            # live run's namespace is a leftover.
            if match is not None and match.group(1) not in live_tokens:
                _ip("link", "del", link, check=False)
                removed.append(link)
    return removed


def probe() -> str | None:
    """None if a namespace with a veth pair can be made here, else why not (``ip``'s error).
    The probe's veth is made inside its own namespace and never appears on the host."""
    name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
        _ip("-n", name, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
    except (NetNamespaceError, OSError) as error:
        return str(error)
    finally:
        with contextlib.suppress(OSError):
            _ip("netns", "del", name, check=False)
    return None


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in _ip("-4", "-o", "addr", "show").splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    for line in _ip("-4", "route", "show", "table", "all").splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("default", "broadcast", "local", "unreachable", "prohibit", "blackhole"):
            first = line.split()[1] if len(line.split()) > 1 else ""
        with contextlib.suppress(ValueError):
            network = ipaddress.ip_network(first, strict=False)
            if network.prefixlen > 0:
                used.append(network)
    return used


def _pick_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    subnets = list(POOL.subnets(new_prefix=30))
    for subnet in random.sample(subnets, min(len(subnets), 200)):
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise NetNamespaceError(f"no free /30 in {POOL}")


class NetNamespace:
    """A uniquely named network namespace and a veth pair to it, each end with its own address
    of a private /30 (:attr:`host_address` on the host, :attr:`inner_address` inside).

    The constructor builds it (after removing leftovers of dead runs); :meth:`close` (or leaving
    the ``with`` block) kills whatever still runs inside and removes the namespace and the veth.
    Nothing else of the host is touched: no route but the veth's own /30, no forwarding.
    """

    def __init__(self) -> None:
        remove_leftovers()
        token = secrets.token_hex(3)
        self.name = f"{PREFIX}{os.getpid()}-{token}"
        self.host_link = f"lh{token}h"
        self.inner_link = f"lh{token}n"
        self._closed = False
        with _locked():
            subnet = _pick_subnet()
            host, inner = list(subnet.hosts())
            self.host_address = str(host)
            self.inner_address = str(inner)
            self.prefixlen = subnet.prefixlen
            try:
                _ip("netns", "add", self.name)
                # The pair is made inside the namespace, and only the host end moved out: the
                # host never has both ends, and a failure leaves nothing on the host.
                _ip("-n", self.name, "link", "add", self.inner_link, "type", "veth",
                    "peer", "name", self.host_link, "netns", str(os.getpid()))  # fmt: skip
                _ip("-n", self.name, "addr", "add", f"{inner}/30", "dev", self.inner_link)
                _ip("-n", self.name, "link", "set", self.inner_link, "up")
                _ip("-n", self.name, "link", "set", "lo", "up")
                _ip("addr", "add", f"{host}/30", "dev", self.host_link)
                _ip("link", "set", self.host_link, "up")
            except BaseException:
                _delete(self.name, self.host_link)
                raise

    def settled(self) -> bool:
        """Whether the host end of the veth has all its addresses: none is still tentative (its
        IPv6 link-local one, until duplicate detection ends). A browser started before takes
        that address appearing for a network change and fails the page loads under way."""
        return not _ip("-6", "-o", "addr", "show", "dev", self.host_link, "tentative").strip()

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` prefixed so that they run inside the namespace (``ip netns exec``, which
        execs in place: the process of ``popen`` is the program itself)."""
        return ["ip", "netns", "exec", self.name, *args]

    def popen(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` inside the namespace (keyword arguments go to ``subprocess.Popen``;
        stdin defaults to ``/dev/null``). The caller waits for it; :meth:`close` kills it if it
        is still running."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.command(args), env=dict(env or os.environ), **kwargs)

    def run(self, args: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside the namespace to the end; its output is captured as text."""
        return subprocess.run(
            self.command(args),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )

    def close(self) -> None:
        """Kill what runs inside and remove the namespace and the veth. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with _locked():
            _delete(self.name, self.host_link)

    def __enter__(self) -> NetNamespace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
