"""Join storms: everyone joins at the same instant, as when a session starts or a round opens.

Issue 15's rehearsal fails on two bursts of joins: 900 people entering three panels at once,
and 900 people joining their breakout rooms the moment a round opens (the web app joins on
``breakout.assigned``). This benchmark measures those two bursts alone, in seconds rather than
the rehearsal's minutes. For each mode it starts the server side pinned to one core and runs
the load generator as a separate process pinned to the other:

* ``redis2``  -- a private redis-server and TWO ``hub serve --redis URL`` nodes; attendees are
  split evenly across them;
* ``memory``  -- one ``hub serve`` on its in-process broker.

The load generator connects N attendees (``hello``, ``join`` of the lobby) and one organizer
per node, who creates ``--panels`` panels. Then:

1. **panel storm**: every attendee sends ``join`` of panel ``i % panels`` in the same loop
   iteration; a join's latency runs from that send to its reply;
2. **breakout storm**: the organizer opens a round in each panel (``breakout.open``, rooms of
   ``--breakout-size``, ``assign: random``); every attendee joins its room as soon as its
   ``breakout.assigned`` arrives; a join's latency runs from the moment the event was read to
   the reply, and the round's span from ``breakout.open`` to the last reply. With ``--move``
   the rounds open with ``move`` (the web app's default): the hub moves everyone in, and a
   move's latency runs from its round's ``breakout.open`` to the ``breakout.assigned`` that
   carries the join (a stricter measure: it counts the open too).

Each storm reports p50/p95/p99/max, errors by code, its span (first send to last reply) and the
hub's CPU time per join. The load generator's client is the lean raw client of ``fanout.py``
(one process, every reply decoded): at 900 joins it is not the bottleneck.

Usage::

    python benchmarks/joins.py [--attendees 900] [--panels 3] [--breakout-size 10]
                               [--modes memory,redis2] [--move] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shlex
import sys
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    add_loadgen_arguments,
    add_run_arguments,
    format_table,
    loadgen_main,
    log,
    parse_modes,
    pin_cpus,
    pinned,
    raise_nofile,
    report,
    run_loadgen,
    run_modes,
    start_output,
    start_redis,
)
from fanout import (  # noqa: E402
    Conn,
    Stats,
    all_server_pids,
    cpu_seconds,
    fmt,
    open_as,
    percentile,
    wait_quiet,
)

from tests.support.hub_process import HubProcess, mint  # noqa: E402

MODES = ("memory", "redis2")
# The bound for every operation of the rehearsal.
TARGET_P99_MS = 250.0


class Attendee(Conn):
    """A raw client that hands every decoded event to ``on_event`` (nothing is scanned as a
    fan-out notice)."""

    def __init__(self, stats: Stats, host: str, port: int, path: str) -> None:
        super().__init__(stats, host, port, path)
        self.on_event: Any = None

    def _messages(self, now: float) -> None:
        decoded, self.decoded = self.decoded, []
        for msg in decoded:
            if "re" in msg:
                self._reply(msg)
            elif self.on_event is not None:
                self.on_event(msg)


async def open_attendee(url: str) -> Attendee:
    """Connect an :class:`Attendee` and finish the WebSocket handshake."""
    return await open_as(Attendee, Stats(), url)


class Storm:
    """The joins of one burst: latencies, errors and the span from first send to last reply."""

    def __init__(self) -> None:
        self.latency = array("d")
        self.errors: Counter[str] = Counter()
        self.first = math.inf
        self.last = 0.0

    async def join(self, conn: Attendee, room: str, since: float | None = None) -> None:
        """Join ``room`` and record it (latency from ``since``, else from the send)."""
        start = time.perf_counter() if since is None else since
        self.first = min(self.first, start)
        try:
            await conn.request("join", room=room)
        except Exception as error:
            text = str(error)
            code = text.split("'code': '", 1)[1].split("'", 1)[0] if "'code': '" in text else text
            self.errors[code[:60]] += 1
        else:
            self.latency.append(time.perf_counter() - start)
        self.last = max(self.last, time.perf_counter())

    def moved(self, start: float, end: float) -> None:
        """Record a move into a room: from ``start`` (its round's ``breakout.open`` sent) to
        ``end`` (its ``breakout.assigned`` with the join state read)."""
        self.first = min(self.first, start)
        self.latency.append(end - start)
        self.last = max(self.last, end)

    def summary(self, cpu: float, redis_cpu: float) -> dict[str, Any]:
        ordered = sorted(self.latency)

        def ms(q: float) -> float | None:
            value = percentile(ordered, q)
            return None if value is None else round(value * 1000, 1)

        count = len(ordered) + sum(self.errors.values())
        return {
            "joins": count,
            "ok": len(ordered),
            "errors": dict(self.errors),
            "p50_ms": ms(50),
            "p95_ms": ms(95),
            "p99_ms": ms(99),
            "max_ms": ms(100),
            "span_s": round(self.last - self.first, 3) if ordered else None,
            "hub_cpu_ms_per_join": round(cpu * 1000 / count, 3) if count else None,
            "redis_cpu_ms_per_join": round(redis_cpu * 1000 / count, 3) if count else None,
        }


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile(args.attendees + 256)
    urls = args.urls.split(",")
    server_pids = all_server_pids([int(p) for p in args.server_pids.split(",") if p])
    redis_pids = [int(p) for p in args.redis_pids.split(",") if p]
    result: dict[str, Any] = {"server_pids": server_pids, "redis_pids": redis_pids}

    def hub_cpu() -> tuple[float, float]:
        """CPU seconds so far of the hubs and Redis together, and of Redis alone."""
        redis = cpu_seconds(redis_pids)
        return cpu_seconds(server_pids) + redis, redis

    def spent(before: tuple[float, float]) -> tuple[float, float]:
        after = hub_cpu()
        return after[0] - before[0], after[1] - before[1]

    organizers = []
    for url in urls:
        conn = await open_attendee(url)
        await conn.request("hello", token=mint("organizer", "organizer"))
        organizers.append(conn)
    tag = f"{os.getpid()}-{random.randrange(10**6)}"
    panels = [f"joins-{tag}-p{n}" for n in range(args.panels)]
    for n, panel in enumerate(panels):
        await organizers[0].request("room.create", room=panel, kind="panel", title=f"Panel {n}")

    attendees: list[Attendee] = []
    nodes: Counter[str] = Counter()
    gate = asyncio.Semaphore(args.connect_concurrency)
    assigned: dict[Attendee, asyncio.Future[tuple[str, float, bool]]] = {}

    async def connect(index: int) -> None:
        async with gate:
            conn = await open_attendee(urls[index % len(urls)])
            hello = await conn.request("hello", token=mint(f"attendee-{index:05d}", "attendee"))
            nodes[str(hello.get("node"))] += 1
            await conn.request("join", room="main")
            attendees.append(conn)

    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(connect(i) for i in range(args.attendees)), return_exceptions=True
    )
    failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    log(
        f"{len(attendees)}/{args.attendees} attendees in the lobby in "
        f"{time.monotonic() - started:.1f}s (nodes: {dict(nodes)})"
    )
    result.update(
        attendees=args.attendees,
        connected=len(attendees),
        connect_failures=failures[:5],
        nodes=dict(nodes),
    )
    await asyncio.sleep(args.settle)  # the lobby's presence batches go out; the hubs are idle

    # 1. Everyone into a panel at the same instant.
    panel_storm = Storm()
    cpu0 = hub_cpu()
    await asyncio.gather(
        *(panel_storm.join(conn, panels[n % len(panels)]) for n, conn in enumerate(attendees))
    )
    result["panel"] = panel_storm.summary(*spent(cpu0))
    log(f"panel storm: {result['panel']}")
    await asyncio.sleep(args.settle)

    # 2. A breakout round in each panel: everyone joins its room when assigned.
    loop = asyncio.get_running_loop()
    for conn in attendees:
        future: asyncio.Future[tuple[str, float, bool]] = loop.create_future()
        assigned[conn] = future

        def on_event(
            msg: dict[str, Any], future: asyncio.Future[tuple[str, float, bool]] = future
        ) -> None:
            if msg.get("ev") == "breakout.assigned" and not future.done():
                future.set_result((str(msg["breakout"]), time.perf_counter(), "joined" in msg))

        conn.on_event = on_event
    breakout_storm = Storm()
    opened_at: dict[str, float] = {}

    async def take_part(conn: Attendee, panel: str) -> None:
        try:
            room, at, moved = await asyncio.wait_for(assigned[conn], 60.0)
        except TimeoutError:
            breakout_storm.errors["never assigned"] += 1
            return
        if moved:
            breakout_storm.moved(opened_at[panel], at)
        else:
            await breakout_storm.join(conn, room, since=at)

    members = Counter(n % len(panels) for n in range(len(attendees)))
    parts = [
        asyncio.ensure_future(take_part(conn, panels[n % len(panels)]))
        for n, conn in enumerate(attendees)
    ]
    cpu0 = hub_cpu()
    opened = time.perf_counter()
    for n, panel in enumerate(panels):
        count = max(1, math.ceil(members[n] / args.breakout_size))
        opened_at[panel] = time.perf_counter()
        await organizers[0].request(
            "breakout.open",
            room=panel,
            count=count,
            assign="random",
            duration=600,
            **({"move": True} if args.move else {}),
        )
    await asyncio.gather(*parts)
    result["breakout"] = breakout_storm.summary(*spent(cpu0))
    result["breakout"]["round_span_s"] = round(breakout_storm.last - opened, 3)
    log(f"breakout storm: {result['breakout']}")
    for panel in panels:
        with contextlib.suppress(Exception):
            await organizers[0].request("breakout.close", room=panel)
    for conn in [*organizers, *attendees]:
        with contextlib.suppress(Exception):
            await conn.close()
    return result


def run_mode(mode: str, options: argparse.Namespace, out: Any) -> dict[str, Any]:
    """Start the server side of ``mode``, run the load generator against it, stop everything."""
    with contextlib.ExitStack() as stack:
        setup: dict[str, Any] = {"mode": mode}
        if options.wait_quiet:
            setup["load_before"] = round(wait_quiet(options.wait_quiet, out), 2)
        redis_pids: list[int] = []
        redis_url: str | None = None
        nodes = 1
        if mode == "redis2":
            redis, redis_pids = start_redis(stack, options.server_cpu)
            redis_url = redis.url
            nodes = 2
        hubs = []
        for _ in range(nodes):
            hub = HubProcess(redis_url=redis_url, cpu=options.server_cpu)
            stack.callback(hub.stop)
            hubs.append(hub)
        for hub in hubs:
            hub.start()
        pids = [hub.process.pid for hub in hubs if hub.process is not None]
        deadline = round(180 + options.attendees / 20)
        command = pinned(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--loadgen",
                "--urls",
                ",".join(hub.url for hub in hubs),
                "--attendees",
                str(options.attendees),
                "--panels",
                str(options.panels),
                "--breakout-size",
                str(options.breakout_size),
                *(["--move"] if options.move else []),
                "--server-pids",
                ",".join(map(str, pids)),
                "--redis-pids",
                ",".join(map(str, redis_pids)),
                "--deadline",
                str(deadline),
            ],
            options.loadgen_cpu,
        )
        setup["commands"] = [shlex.join(c) for c in [*(hub.command for hub in hubs), command]]
        for line in setup["commands"]:
            print(f"  $ {line}", file=out, flush=True)
        result = run_loadgen(stack, command, deadline + 15)
        if "error" in result:
            result["server_stderr"] = "\n".join(hub.stderr()[-1500:] for hub in hubs)
        return {**setup, **result}


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        (
            "mode",
            "storm",
            "joins",
            "errors",
            "p50",
            "p95",
            "p99",
            "max",
            "span",
            "hub cpu/join",
            "redis",
        )
    ]
    for r in results:
        if "error" in r:
            rows.append((r["mode"], "error: " + r["error"][:90], *[""] * 9))
            continue
        for storm in ("panel", "breakout"):
            s = r[storm]
            rows.append(
                (
                    r["mode"],
                    storm,
                    f"{s['joins']:,}",
                    f"{sum(s['errors'].values()):,}",
                    fmt(s["p50_ms"], ",.1f") + " ms",
                    fmt(s["p95_ms"], ",.1f") + " ms",
                    fmt(s["p99_ms"], ",.1f") + " ms",
                    fmt(s["max_ms"], ",.1f") + " ms",
                    fmt(s["span_s"], ".2f") + " s",
                    fmt(s["hub_cpu_ms_per_join"], ".2f") + " ms",
                    fmt(s["redis_cpu_ms_per_join"], ".2f") + " ms",
                )
            )
    return format_table(rows)


def notes(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        if "error" in r:
            continue
        lines.append(
            f"{r['mode']}: {r['connected']}/{r['attendees']} attendees (nodes {r['nodes']}); "
            f"breakout round from breakout.open to the last join: "
            f"{r['breakout']['round_span_s']:.2f} s; errors "
            f"{r['panel']['errors'] or 'none'} / {r['breakout']['errors'] or 'none'}"
        )
        for storm in ("panel", "breakout"):
            p99 = r[storm]["p99_ms"]
            met = p99 is not None and p99 < TARGET_P99_MS and not r[storm]["errors"]
            lines.append(
                f"{r['mode']} {storm} storm (p99 < {TARGET_P99_MS:g} ms, no errors): "
                + ("ok" if met else "MISSED")
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="livehub join-storm benchmark")
    parser.add_argument("--attendees", type=int, default=900)
    parser.add_argument("--panels", type=int, default=3)
    parser.add_argument("--breakout-size", type=int, default=10)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--move",
        action="store_true",
        help="open the rounds with move: the hub moves everyone in (latency from the open)",
    )
    add_run_arguments(parser)
    add_loadgen_arguments(parser, "--urls")
    options = parser.parse_args(argv)
    if options.loadgen:
        return loadgen_main(loadgen, options)
    modes = parse_modes(parser, options.modes, MODES)
    cpus = pin_cpus(options)
    nofile = raise_nofile(options.attendees + 256)
    out, invocation = start_output(options, argv)
    print(
        f"joins: {options.attendees} attendees, {options.panels} panels, breakouts of "
        f"{options.breakout_size}; hubs and redis-server on cpu "
        f"{fmt(options.server_cpu, '', 'unpinned')}, load generator on cpu "
        f"{fmt(options.loadgen_cpu, '', 'unpinned')} (of {len(cpus)}); RLIMIT_NOFILE {nofile}",
        file=out,
        flush=True,
    )
    results = run_modes(modes, run_mode, options, out)
    if results is None:
        return 130
    report(invocation, options, results, lambda: table(results), lambda: notes(results))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
