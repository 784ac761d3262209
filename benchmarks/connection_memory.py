"""Where an idle, joined connection's memory goes, inside the hub's own process.

The hub runs in this process (the same app, uvicorn settings and protocols as ``hub serve``,
memory broker) under ``tracemalloc``; a child process opens the clients (``livehub_client``,
hello with a token, ``join`` of the lobby) in two waves: ``--warmup`` connections first (caches,
pools and first-time allocations settle), then ``--connections`` more. The difference between
a snapshot after each wave, divided by the second wave's size, is what one more idle joined
connection costs, attributed two ways:

- by the code that allocated it (the innermost frame: a library's file, or the hub's own);
- by the hub code that caused it (the innermost frame in the project: ``hub/session.py``...),
  or the library that did it on its own (uvicorn's protocol, websockets, asyncio).

This is what Python allocated; the process's RSS also holds the allocator's slack (and, under
tracing, tracemalloc's own records). ``--rss`` measures that instead: the same two waves against
a ``hub serve`` process (memory broker, no tracing), and the difference of its ``VmRSS`` (from
``/proc``) between them, per connection of the second wave.

    .venv/bin/python benchmarks/connection_memory.py --connections 1000
    .venv/bin/python benchmarks/connection_memory.py --connections 2000 --top 30 --json
    .venv/bin/python benchmarks/connection_memory.py --connections 1000 --rss
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from hub.app import build_hub, create_app  # noqa: E402
from hub.auth import TokenAuthority  # noqa: E402
from hub.config import HubConfig  # noqa: E402
from hub.server import HubServer, bind, uvicorn_config  # noqa: E402

SECRET = "connection-memory-benchmark-secret-0123456789"
PACKAGES = ("hub", "rooms", "chat", "polls", "signalling", "networking")
PROJECT = tuple(f"{ROOT}/{package}/" for package in PACKAGES)


def where(filename: str) -> str:
    """A short name for the file that allocated: the library's path, or the project's."""
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1]
    if "/lib/python3" in filename:
        return "stdlib:" + filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    if filename.startswith(str(ROOT) + "/"):
        return filename[len(str(ROOT)) + 1 :]
    return filename


def cause(traceback: tracemalloc.Traceback) -> str:
    """The innermost project frame of an allocation (``file:line``), else its library."""
    for frame in reversed(traceback):  # tracemalloc keeps the innermost frame last
        if frame.filename.startswith(PROJECT):
            return f"{where(frame.filename)}:{frame.lineno}"
    library = where(traceback[-1].filename).split("/", 1)[0]
    return f"(library) {library}"


# --- the clients' side (a child process) ---------------------------------------------------------


async def open_clients(url: str, count: int, room: str) -> None:
    from livehub_client import HubClient

    authority = TokenAuthority(SECRET)
    clients: list[Any] = []
    batch = 100
    for start in range(0, count, batch):
        made = [
            HubClient(url, token=authority.mint(user=f"m{n}", name=f"M {n}", role="attendee"))
            for n in range(start, min(count, start + batch))
        ]
        await asyncio.gather(*(client.connect() for client in made))
        await asyncio.gather(*(client.join(room) for client in made))
        clients.extend(made)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


# --- the hub's side -----------------------------------------------------------------------------


async def wave(url: str, count: int, room: str) -> asyncio.subprocess.Process:
    """A child process with ``count`` clients connected and joined (it holds them until its
    stdin is closed)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--clients", str(count), "--url", url, "--room", room,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    if (await child.stdout.readline()).strip() != b"ready":
        raise RuntimeError(f"the clients did not connect ({await child.wait()})")
    return child


class Started:
    """A feature that only tells when the node has started (its lifespan ran)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def install(self, ctx: Any) -> None:
        async def started() -> None:
            self.event.set()

        ctx.on_start(started)


async def measure(options: argparse.Namespace) -> dict[str, Any]:
    config = HubConfig(secret=SECRET, host="127.0.0.1", port=0)
    started = Started()
    hub = build_hub(config, extra=[started])
    server = HubServer(uvicorn_config(config, create_app(config, hub)), hub)
    sock = bind("127.0.0.1", 0)  # listening already: connections wait in its backlog
    port = sock.getsockname()[1]
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    await asyncio.wait_for(started.event.wait(), 30)
    url = f"ws://127.0.0.1:{port}/ws"
    children = [await wave(url, options.warmup, options.room)]
    await asyncio.sleep(1)  # the presence batch and other timers of the first wave go out
    gc.collect()
    before = tracemalloc.take_snapshot()
    children.append(await wave(url, options.connections, options.room))
    await asyncio.sleep(1)
    gc.collect()
    after = tracemalloc.take_snapshot()
    for child in children:
        assert child.stdin is not None
        child.stdin.close()
        await asyncio.wait_for(child.wait(), 60)
    server.should_exit = True
    await serving

    n = options.connections
    stats = after.compare_to(before, "traceback")
    by_site: Counter[str] = Counter()
    by_cause: Counter[str] = Counter()
    for stat in stats:
        frame = stat.traceback[-1]
        by_site[f"{where(frame.filename)}:{frame.lineno}"] += stat.size_diff
        by_cause[cause(stat.traceback)] += stat.size_diff
    traced = sum(stat.size_diff for stat in stats)

    def top(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(size / n)) for name, size in counter.most_common(options.top)]

    return {
        "connections": n,
        "warmup": options.warmup,
        "traced_bytes_per_connection": round(traced / n),
        "by_allocation_site": top(by_site),
        "by_cause": top(by_cause),
    }


def vm_rss(pid: int) -> int:
    """The resident set of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def measure_rss(options: argparse.Namespace) -> dict[str, Any]:
    from tests.support.hub_process import HubProcess

    hub = HubProcess(secret=SECRET, env={"HUB_LOG_LEVEL": "warning"}).start()
    try:
        assert hub.process is not None
        pid = hub.process.pid
        children = [await wave(hub.url, options.warmup, options.room)]
        await asyncio.sleep(1)  # as measure(): the first wave's timers go out
        before = vm_rss(pid)
        children.append(await wave(hub.url, options.connections, options.room))
        await asyncio.sleep(1)
        after = vm_rss(pid)
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            await asyncio.wait_for(child.wait(), 60)
    finally:
        hub.stop()
    return {
        "connections": options.connections,
        "warmup": options.warmup,
        "rss_bytes_per_connection": round((after - before) / options.connections),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--room", default="main")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--frames", type=int, default=30, help="traceback depth kept")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rss", action="store_true", help="RSS of an untraced hub serve")
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)  # the child's role
    parser.add_argument("--url", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.clients is not None:
        asyncio.run(open_clients(options.url, options.clients, options.room))
        return 0
    os.environ.setdefault("HUB_LOG_LEVEL", "warning")
    if options.rss:
        measured = asyncio.run(measure_rss(options))
        if options.json:
            print(json.dumps(measured, indent=2))
        else:
            print(
                f"{measured['connections']} idle joined connections (after "
                f"{measured['warmup']}): {measured['rss_bytes_per_connection'] / 1024:.1f} KB "
                "of RSS per connection (hub serve, untraced)"
            )
        return 0
    tracemalloc.start(options.frames)
    result = asyncio.run(measure(options))
    if options.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['connections']} idle joined connections (after {result['warmup']}): "
        f"{result['traced_bytes_per_connection'] / 1024:.1f} KB allocated per connection"
    )
    for title, rows in (("by allocation site", result["by_allocation_site"]),
                        ("by the hub code that caused it", result["by_cause"])):  # fmt: skip
        print(f"\n{title} (bytes per connection)")
        for name, size in rows:
            print(f"  {size:>8,.0f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
