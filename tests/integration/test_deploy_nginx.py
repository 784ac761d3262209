"""The shipped nginx configuration (``deploy/nginx/``) in front of real ``hub serve`` nodes.

nginx runs as a child of the test in a directory of its own: a generated top-level
``nginx.conf`` (pid, logs and temporary files in that directory, one worker, listening on
127.0.0.1 only) includes the shipped files laid out as an operator installs them on Debian:
``livehub-upstream.conf`` and ``livehub-http.conf`` beside it, ``snippets/livehub-locations.conf``
under it (nginx resolves a relative ``include`` against the main file's directory, which is
``/etc/nginx/`` there). The only changes to the shipped text: the lines marked ``# livehub:node``
become one ``server 127.0.0.1:PORT`` line per test node, with the shipped options, and the lines
marked ``# livehub:listen`` one ``listen 127.0.0.1:PORT``.

Checked: WebSockets through nginx reach both nodes and a chat message crosses from one to the
other; the app and ``/readyz`` go through, ``/metrics`` does not; a node stopped with SIGTERM
drains, and its client comes back through nginx on the other node, in its room with nothing
lost, nginx itself skipping the stopped node; the hub counts a client's own address against its
per-address limits, not nginx's, whatever ``X-Forwarded-For`` the client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from livehub_client import HubClient
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartHub, StartNodes, uid
from tests.support.hub_process import HubProcess, free_port, mint
from tests.support.system import require, require_nginx
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.redis]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"

# The lobby every new hub has: each test's Redis (or memory hub) is fresh.
ROOM = "main"


def with_marked_lines(text: str, marker: str, replace: Callable[[str], list[str]]) -> str:
    """``text`` with the lines that end in ``# livehub:<marker>`` replaced: the first by
    ``replace(first line)``, the others dropped. Fails when no line is marked."""
    tag = f"# livehub:{marker}"
    lines = text.splitlines()
    marked = [n for n, line in enumerate(lines) if line.rstrip().endswith(tag)]
    assert marked, f"no line of the shipped configuration is marked {tag!r}"
    out: list[str] = []
    for n, line in enumerate(lines):
        if n == marked[0]:
            out.extend(replace(line))
        elif n not in marked:
            out.append(line)
    return "\n".join(out) + "\n"


def indent_of(line: str) -> str:
    """The whitespace ``line`` starts with."""
    return line[: len(line) - len(line.lstrip())]


class Nginx:
    """nginx with the shipped configuration in ``directory``, listening on a free port of
    127.0.0.1, its upstream the ``nodes`` (ports of 127.0.0.1)."""

    def __init__(self, binary: str, directory: Path, nodes: Sequence[int]) -> None:
        self.binary = binary
        self.directory = directory
        self.nodes = list(nodes)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        """The base HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The WebSocket URL of ``/ws``."""
        return f"ws://127.0.0.1:{self.port}/ws"

    def write_config(self) -> Path:
        """Lay out the shipped files (two changed as the module says) and the top-level
        ``nginx.conf``; returns the latter."""
        d = self.directory
        (d / "snippets").mkdir(parents=True)
        shutil.copy(DEPLOY / "livehub-locations.conf", d / "snippets" / "livehub-locations.conf")

        def nodes(line: str) -> list[str]:
            return [re.sub(r"server\s+\S+", f"server 127.0.0.1:{n}", line) for n in self.nodes]

        def listen(line: str) -> list[str]:
            return [f"{indent_of(line)}listen 127.0.0.1:{self.port};"]

        upstream = (DEPLOY / "livehub-upstream.conf").read_text()
        (d / "livehub-upstream.conf").write_text(with_marked_lines(upstream, "node", nodes))
        site = (DEPLOY / "livehub-http.conf").read_text()
        (d / "livehub-http.conf").write_text(with_marked_lines(site, "listen", listen))
        # As root, nginx runs its workers as `nobody` unless told otherwise, and nobody may not
        # enter pytest's private temporary directory.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        config = d / "nginx.conf"
        config.write_text(
            f"{user}worker_processes 1;\n"
            f"pid {d}/nginx.pid;\n"
            f"error_log {d}/error.log;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {d}/access.log;\n"
            f"    client_body_temp_path {d}/client_body;\n"
            f"    proxy_temp_path {d}/proxy;\n"
            f"    fastcgi_temp_path {d}/fastcgi;\n"
            f"    uwsgi_temp_path {d}/uwsgi;\n"
            f"    scgi_temp_path {d}/scgi;\n"
            "    include livehub-upstream.conf;\n"
            "    include livehub-http.conf;\n"
            "}\n"
        )
        return config

    def command(self, *extra: str) -> list[str]:
        """The nginx command line for this directory, plus ``extra``."""
        d = self.directory
        # -e: the error log from the start, before the configuration names it (the compiled-in
        # /var/log/nginx/error.log may not be writable).
        return [self.binary, "-p", f"{d}/", "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log", *extra]

    async def start(self) -> Nginx:
        """Check the configuration (``nginx -t``), start nginx in the foreground and wait until
        its port accepts connections."""
        await asyncio.to_thread(self._launch)
        await eventually(self._accepting, TIMEOUT, f"nginx accepting on port {self.port}")
        return self

    def _launch(self) -> None:
        self.write_config()
        check = subprocess.run(self.command("-t"), capture_output=True, text=True, check=False)
        assert check.returncode == 0, f"nginx -t refused the configuration:\n{check.stderr}"
        with (self.directory / "stderr.log").open("wb") as output:
            self.process = subprocess.Popen(
                self.command("-g", "daemon off;"), stdout=output, stderr=output
            )

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"nginx exited with {self.process.returncode}: {self.log('error.log')}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT):
                return True
        except ConnectionRefusedError:
            return False

    def log(self, name: str) -> str:
        """One of nginx's logs in its directory (``error.log``, ``access.log``)."""
        path = self.directory / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop nginx (SIGTERM: a fast shutdown) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(TIMEOUT)


StartNginx = Callable[[Sequence[int]], Awaitable[Nginx]]


@pytest.fixture(scope="module", autouse=True)
def nginx_binary() -> str:
    """The nginx binary; the module's tests end with one line where there is none."""
    return require_nginx()


@pytest.fixture
async def start_nginx(nginx_binary: str, tmp_path: Path) -> AsyncIterator[StartNginx]:
    """``await start_nginx([port, ...])``: an :class:`Nginx` in front of those nodes, stopped
    when the test ends."""
    started: list[Nginx] = []

    async def start(nodes: Sequence[int]) -> Nginx:
        proxy = Nginx(nginx_binary, tmp_path / f"nginx-{len(started)}", nodes)
        started.append(proxy)
        return await proxy.start()

    yield start
    for proxy in started:
        proxy.stop()


async def open_client(
    stack: contextlib.AsyncExitStack, proxy: Nginx, user: str, **options: Any
) -> HubClient:
    """A :class:`HubClient` of ``user`` through ``proxy``, said hello; closed with ``stack``."""
    client = HubClient(proxy.url, token=mint(user), request_timeout=TIMEOUT, **options)
    return await stack.enter_async_context(client)


async def node_id(http: httpx.AsyncClient, node: HubProcess) -> str:
    """The id a node gives in ``hello`` replies, asked of it directly."""
    node_id: str = (await http.get(f"{node.http}/healthz")).json()["node"]
    return node_id


def is_chat(seq: int) -> Callable[[dict[str, Any]], bool]:
    """Whether an event is the chat message ``seq`` of :data:`ROOM`."""
    return lambda ev: ev.get("ev") == "chat" and ev.get("room") == ROOM and ev.get("seq") == seq


async def test_websockets_and_the_app_go_through_nginx_to_both_nodes(
    start_nodes: StartNodes,
    start_nginx: StartNginx,
    stack: contextlib.AsyncExitStack,
    http: httpx.AsyncClient,
) -> None:
    a, b = await start_nodes(2)
    proxy = await start_nginx([a.port, b.port])
    ids = {await node_id(http, a), await node_id(http, b)}
    ann = await open_client(stack, proxy, uid("ann"), reconnect=False)
    bob = await open_client(stack, proxy, uid("bob"), reconnect=False)
    # least_conn: the second WebSocket goes to the node that holds none.
    assert {ann.node, bob.node} == ids
    await ann.join(ROOM)
    await bob.join(ROOM)
    sent = await ann.request("chat.send", room=ROOM, text="from one node to the other")
    chat = await bob.wait_for(is_chat(sent["seq"]), TIMEOUT)
    assert chat["text"] == "from one node to the other"

    page = await http.get(f"{proxy.http}/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers  # the hub's headers come through
    ready = await http.get(f"{proxy.http}/readyz")
    assert ready.status_code == 200 and ready.json()["node"] in ids
    # Prometheus scrapes each node itself; through nginx /metrics is refused, however spelt.
    for path in ("/metrics", "/metrics/", "/%6Detrics", "//metrics?x=1"):
        refused = await http.get(f"{proxy.http}{path}")
        assert refused.status_code == 403, (path, refused.status_code)
    assert (await http.get(f"{a.http}/metrics")).status_code == 200


async def test_a_stopped_node_drains_and_its_client_comes_back_through_nginx_on_the_other(
    start_nodes: StartNodes,
    start_nginx: StartNginx,
    stack: contextlib.AsyncExitStack,
    http: httpx.AsyncClient,
) -> None:
    # A short reconnect hint keeps the test fast; its length is not what is tested.
    a, b = await start_nodes(2, env={"HUB_DRAIN_RECONNECT_MAX": "0.2"})
    proxy = await start_nginx([a.port, b.port])
    ids = {await node_id(http, a): a, await node_id(http, b): b}
    roamer = await open_client(stack, proxy, uid("roamer"), reconnect=True, backoff_base=0.05)
    stayer = await open_client(stack, proxy, uid("stayer"), reconnect=False)
    assert roamer.node is not None and stayer.node is not None and roamer.node != stayer.node
    gone, kept = ids[roamer.node], ids[stayer.node]
    await roamer.join(ROOM)
    await stayer.join(ROOM)
    first = await roamer.request("chat.send", room=ROOM, text="before")
    await stayer.wait_for(is_chat(first["seq"]), TIMEOUT)

    assert gone.process is not None
    gone.process.send_signal(signal.SIGTERM)
    shutdown = await roamer.wait_for(lambda ev: ev["ev"] == "shutdown", TIMEOUT)
    assert 0 <= shutdown["reconnect_in"] <= 0.2
    # Posted while the roamer is told to go and comes back.
    away = await stayer.request("chat.send", room=ROOM, text="while you were away")
    after: list[dict[str, Any]] = []
    while not after or after[-1]["ev"] != "client.reconnected":
        after.append(await roamer.next_event(TIMEOUT))
    assert after[-1]["recovered"] == {ROOM: True}
    assert [ev["text"] for ev in after if is_chat(away["seq"])(ev)] == ["while you were away"]
    assert roamer.close_code == 1012  # the drained node's close: going away, come back
    assert roamer.node == stayer.node and roamer.reconnects == 1
    back = await roamer.request("chat.send", room=ROOM, text="back")
    assert (await stayer.wait_for(is_chat(back["seq"]), TIMEOUT))["text"] == "back"
    assert await asyncio.to_thread(gone.process.wait, TIMEOUT) == 0, gone.stderr()

    # nginx tried the stopped node (least_conn: it held no connection), was refused and passed
    # the same request on: no WebSocket handshake ended in a 502 for the client to retry.
    assert "Connection refused) while connecting to upstream" in proxy.log("error.log")
    statuses = re.findall(r'"GET /ws HTTP/1\.1" (\d{3})', proxy.log("access.log"))
    assert statuses and set(statuses) == {"101"}, statuses
    ready = await http.get(f"{proxy.http}/readyz")
    assert ready.status_code == 200 and ids[ready.json()["node"]] is kept


def outside_address() -> str | None:
    """An address of this machine that is not loopback (the source it would reach other
    machines from), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # a UDP connect sends nothing: it picks a route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


async def upgrade(proxy: Nginx, source: str, forwarded_for: str | None = None) -> ClientConnection:
    """A WebSocket through ``proxy`` from the local address ``source`` that never says hello,
    sending ``forwarded_for`` as an X-Forwarded-For of its own; InvalidStatus when refused."""
    return await connect(
        proxy.url,
        local_addr=(source, 0),
        additional_headers={"X-Forwarded-For": forwarded_for} if forwarded_for else None,
        proxy=None,
        compression=None,
        open_timeout=TIMEOUT,
    )


async def refusal(proxy: Nginx, source: str, forwarded_for: str | None = None) -> int:
    """The HTTP status of an :func:`upgrade` that must be refused."""
    with pytest.raises(InvalidStatus) as refused:
        ws = await upgrade(proxy, source, forwarded_for)
        await ws.close()
    return refused.value.response.status_code


# What deploy/systemd/livehub.env sets for one host, and a hub that believes any proxy (as on a
# platform whose router is its only way in): uvicorn takes the last address not trusted, so only
# the latter would believe a spoof that nginx appended to instead of replacing.
@pytest.mark.parametrize("trusted", ["127.0.0.1", "*"])
async def test_the_hub_limits_the_clients_address_not_nginxs(
    start_hub: StartHub, start_nginx: StartNginx, stack: contextlib.AsyncExitStack, trusted: str
) -> None:
    # The hub exempts loopback clients from per-address limits, so the client must come from an
    # address of this machine that is not loopback (nginx still listens on 127.0.0.1 only).
    client = outside_address()
    require(
        "an address of this machine other than loopback",
        client is not None,
        "a network interface with an IPv4 address and a route",
    )
    assert client is not None
    hub = start_hub(args=["--trusted-proxy", trusted], env={"HUB_LIMIT_PENDING_PER_ADDRESS": "2"})
    proxy = await start_nginx([hub.port])
    for _ in range(2):  # connections of `client` not past hello: its whole allowance
        stack.push_async_callback((await upgrade(proxy, client)).close)
    # The third is refused by the hub: it sees `client` through nginx's X-Forwarded-For, not
    # nginx's own (exempt) 127.0.0.1, and not the address the client claims (nginx replaced it).
    assert await refusal(proxy, client) == 403
    assert await refusal(proxy, client, forwarded_for="203.0.113.9") == 403
    # Another client (loopback: exempt) is let in, even claiming to be the first.
    for forwarded_for in (None, client):
        stack.push_async_callback((await upgrade(proxy, "127.0.0.2", forwarded_for)).close)


async def test_the_hub_logs_the_clients_own_address_behind_nginx(
    start_hub: StartHub, start_nginx: StartNginx
) -> None:
    hub = start_hub(args=["--log-format", "json", "--trusted-proxy", "127.0.0.1"])
    proxy = await start_nginx([hub.port])
    for source, claimed in (("127.0.0.2", None), ("127.0.0.3", "203.0.113.9")):
        ws = await upgrade(proxy, source, claimed)
        await ws.close()
    assert hub.terminate() == 0
    lines = [json.loads(line) for line in hub.stderr_text().splitlines()]
    opened = [line["client"] for line in lines if line["event"] == "connection.open"]
    # Each as the client itself, never nginx's 127.0.0.1 nor what a client claims to be.
    assert opened == ["127.0.0.2", "127.0.0.3"], opened
