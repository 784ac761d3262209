"""Soak benchmark: guests come and go for minutes; the hub's memory must level off.

A real ``hub serve`` (its in-process broker; ``--redis``: one worker on a private redis-server)
admits guests and runs ``--rooms`` panels. The load generator, a separate process, keeps
``--guests`` guests online for ``--minutes``. Each guest says ``hello {name}`` (a fresh guest
each time), joins a panel, chats every few seconds (some messages reply to one it saw), asks a
question now and then, votes for questions it saw, and leaves after about ``--session``
seconds; a NEW guest takes its place at once. An organizer moderates every panel: it keeps at
most 30 questions open (answering or dismissing the oldest), mutes someone for a few seconds now
and then, and holds the first panel in slow mode (2 s).

Every ``--sample`` seconds the load generator reads the RSS of the hub's processes (and of
redis-server) from ``/proc``. The table shows RSS over time; the verdict fits a line to the
samples of the last third of the run: memory levels off when that slope is at most
``--max-slope`` KiB a minute. So that the hub's caps are reached early in a run of minutes, it
keeps 500 chat messages per room (``--chat-history``) and stored events alike (``--history``),
and a guest's standing for direct messages lasts 60 s (``HUB_GUEST_TTL``; a guest stays at most
1.5 x ``--session`` seconds, less than that). Chat keys are kept a day by design: ``--keys``
sends one with every message, and then their count grows for the whole run.

Usage::

    python benchmarks/soak.py [--minutes 3] [--guests 300] [--rooms 4] [--session 10]
                              [--chat-every 5] [--ask-every 120] [--sample 5] [--redis] [--json]

``--loadgen`` (internal) runs the load generator itself; it prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shlex
import sys
import time
from collections import Counter, deque
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
    pin_cpus,
    pinned,
    raise_nofile,
    report,
    run_loadgen,
    run_modes,
    start_output,
    start_redis,
)
from fanout import all_server_pids, fmt, rss_kb, wait_quiet  # noqa: E402

from livehub_client import HubClient, HubClosed, HubRequestError  # noqa: E402
from tests.support.hub_process import HubProcess, mint  # noqa: E402

CHAT_HISTORY = 500
GUEST_TTL = 60
SLOWMODE = 2
OPEN_QUESTIONS = 30  # the organizer answers or dismisses the oldest beyond this
MUTE_SECONDS = 5
RECENT = 50  # message and question ids a guest remembers, to reply and vote


# ---------------------------------------------------------------------------------------------
# Load generator
# ---------------------------------------------------------------------------------------------


class Totals:
    """What every guest adds to: counts of what was done, errors by code, guests online."""

    def __init__(self) -> None:
        self.online = 0
        self.done: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.events = 0


class Panel:
    """What the load generator knows of a panel: recent message ids and its open questions
    (oldest first), as the organizer sees them."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.messages: deque[str] = deque(maxlen=RECENT)
        self.authors: deque[str] = deque(maxlen=RECENT)
        self.open: dict[str, None] = {}

    def seen(self, event: dict[str, Any]) -> None:
        ev = event.get("ev")
        if ev == "chat":
            self.messages.append(event["id"])
            self.authors.append(event["user"])
        elif ev == "qa":
            question = event["question"]
            if question["state"] == "open":
                self.open[question["id"]] = None
            else:
                self.open.pop(question["id"], None)


async def act(totals: Totals, client: HubClient, op: str, **fields: Any) -> dict[str, Any] | None:
    """One command; its error code is counted rather than raised."""
    try:
        result = await client.request(op, **fields)
    except HubRequestError as error:
        totals.errors[f"{op}: {error.code}"] += 1
        return None
    totals.done[op] += 1
    return result


async def drain(totals: Totals, client: HubClient, panel: Panel | None = None) -> None:
    """Read every event of ``client`` (the hub must never see it as a slow consumer)."""
    with contextlib.suppress(HubClosed):
        async for event in client.events():
            totals.events += 1
            if panel is not None:
                panel.seen(event)


async def guest(args: argparse.Namespace, totals: Totals, panels: list[Panel], n: int) -> None:
    """One guest's visit: hello, join, take part for about ``--session`` seconds, leave."""
    rng = random.Random(n)
    panel = panels[n % len(panels)]
    client = HubClient(args.url, name=f"Guest {n}", reconnect=False, request_timeout=30.0)
    await client.connect()
    totals.done["hello"] += 1
    totals.online += 1
    reader = asyncio.create_task(drain(totals, client))
    try:
        await client.join(panel.room)
        until = time.monotonic() + args.session * rng.uniform(0.5, 1.5)
        while (wait := min(rng.expovariate(1 / args.chat_every), until - time.monotonic())) > 0:
            await asyncio.sleep(wait)
            if time.monotonic() >= until:
                break
            fields: dict[str, Any] = {"room": panel.room, "text": f"message {n}.{rng.random():.6f}"}
            if panel.messages and rng.random() < 0.1:
                fields["reply_to"] = rng.choice(panel.messages)
            if args.keys:
                fields["key"] = f"{n}-{totals.done['chat.send']}-{rng.random():.6f}"
            await act(totals, client, "chat.send", **fields)
            if rng.random() < args.chat_every / args.ask_every:
                await act(totals, client, "qa.ask", room=panel.room, text=f"question {n}?")
            if panel.open and rng.random() < 0.3:
                question = rng.choice(list(panel.open))
                await act(totals, client, "qa.vote", room=panel.room, question=question)
        await act(totals, client, "leave", room=panel.room)
    except HubClosed as closed:
        totals.closes[str(closed.code)] += 1
    finally:
        totals.online -= 1
        await client.close()
        await reader


async def seat(args: argparse.Namespace, totals: Totals, panels: list[Panel], seat_no: int) -> None:
    """One place among ``--guests``: a new guest takes it as soon as the last one left."""
    visit = 0
    while time.monotonic() < args.stop_at:
        n = visit * args.guests + seat_no
        visit += 1
        try:
            await guest(args, totals, panels, n)
        except (OSError, TimeoutError, HubClosed, HubRequestError) as error:
            totals.errors[f"visit: {type(error).__name__}"] += 1
            await asyncio.sleep(1.0)  # the hub is struggling: do not hammer it


async def moderate(args: argparse.Namespace, totals: Totals, panels: list[Panel]) -> None:
    """The organizer: answers or dismisses the oldest open questions, mutes now and then."""
    org = HubClient(args.url, token=mint("soak-organizer", "organizer"), reconnect=False)
    await org.connect()
    rng = random.Random(0)
    readers = []
    try:
        for i, panel in enumerate(panels):
            await org.request("room.create", room=panel.room, kind="panel", title=panel.room)
            await org.join(panel.room)
            if i == 0:
                await org.request("room.slowmode", room=panel.room, seconds=SLOWMODE)
        readers.append(asyncio.create_task(route(totals, org, panels)))
        args.ready.set()
        while time.monotonic() < args.stop_at:
            await asyncio.sleep(1.0)
            for panel in panels:
                while len(panel.open) > OPEN_QUESTIONS:
                    question = next(iter(panel.open))
                    panel.open.pop(question)
                    op = "qa.answer" if rng.random() < 0.5 else "qa.dismiss"
                    await act(totals, org, op, room=panel.room, question=question)
                if panel.authors and rng.random() < 0.1:
                    user = rng.choice(panel.authors)
                    fields = {"room": panel.room, "user": user, "seconds": MUTE_SECONDS}
                    await act(totals, org, "chat.mute", **fields)
    finally:
        await org.close()
        for reader in readers:
            await reader


async def route(totals: Totals, org: HubClient, panels: list[Panel]) -> None:
    """The organizer's events, each to its panel."""
    by_room = {panel.room: panel for panel in panels}
    with contextlib.suppress(HubClosed):
        async for event in org.events():
            totals.events += 1
            panel = by_room.get(event.get("room", ""))
            if panel is not None:
                panel.seen(event)


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak against ``args.url``; returns the samples and the totals."""
    raise_nofile(args.guests * 2 + 256)
    server_pids = all_server_pids([int(p) for p in args.server_pids.split(",") if p])
    redis_pids = [int(p) for p in args.redis_pids.split(",") if p]
    totals = Totals()
    tag = f"{os.getpid()}-{random.randrange(10**6)}"
    panels = [Panel(f"soak-{tag}-{i}") for i in range(args.rooms)]
    started = time.monotonic()
    args.stop_at = started + args.minutes * 60
    args.ready = asyncio.Event()
    samples: list[dict[str, Any]] = []

    def take_sample() -> None:
        samples.append(
            {
                "t": round(time.monotonic() - started, 1),
                "hub_kb": rss_kb(server_pids),
                "redis_kb": rss_kb(redis_pids),
                "online": totals.online,
                "hellos": totals.done["hello"],
                "messages": totals.done["chat.send"],
                "questions": totals.done["qa.ask"],
            }
        )

    take_sample()
    moderator = asyncio.create_task(moderate(args, totals, panels))
    ready = asyncio.create_task(args.ready.wait())
    await asyncio.wait([moderator, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        moderator.cancel()
        await moderator  # its error, if it failed before the panels were ready
        raise TimeoutError("the organizer did not get the panels ready in 30 s")
    seats = [asyncio.create_task(seat(args, totals, panels, i)) for i in range(args.guests)]
    while time.monotonic() < args.stop_at:
        await asyncio.sleep(max(0.0, min(args.sample, args.stop_at - time.monotonic())))
        take_sample()
        last = samples[-1]
        log(
            f"t={last['t']:.0f}s hub RSS {last['hub_kb'] / 1024:.1f} MiB, {last['online']} "
            f"online, {last['hellos']} hellos, {last['messages']} messages"
        )
    await asyncio.gather(*seats, moderator, return_exceptions=True)
    return {
        "server_pids": server_pids,
        "redis_pids": redis_pids,
        "samples": samples,
        "done": dict(totals.done),
        "errors": dict(totals.errors),
        "closes": dict(totals.closes),
        "events": totals.events,
    }


# ---------------------------------------------------------------------------------------------
# Orchestration and the verdict
# ---------------------------------------------------------------------------------------------


def slope_kb_per_minute(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of ``(seconds, KiB)`` points, in KiB a minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 60


def verdict(result: dict[str, Any], max_slope: float) -> dict[str, Any]:
    """The slope of the last third of the samples (hub, and redis-server when there is one),
    and whether the hub's memory levelled off."""
    samples = result["samples"]
    end = samples[-1]["t"] if samples else 0.0
    tail = [s for s in samples if s["t"] >= end * 2 / 3]
    hub = slope_kb_per_minute([(s["t"], s["hub_kb"]) for s in tail])
    redis = (
        slope_kb_per_minute([(s["t"], s["redis_kb"]) for s in tail])
        if result["redis_pids"]
        else None
    )
    return {
        "tail_samples": len(tail),
        "hub_slope_kb_min": None if hub is None else round(hub, 1),
        "redis_slope_kb_min": None if redis is None else round(redis, 1),
        "levels_off": hub is not None and hub <= max_slope,
    }


def run_mode(mode: str, options: argparse.Namespace, out: Any) -> dict[str, Any]:
    """Start the hub (and redis-server), run the load generator against it, stop everything."""
    with contextlib.ExitStack() as stack:
        setup: dict[str, Any] = {"mode": mode}
        if options.wait_quiet:
            setup["load_before"] = round(wait_quiet(options.wait_quiet, out), 2)
        redis_url: str | None = None
        redis_pids: list[int] = []
        if mode == "redis":
            redis, redis_pids = start_redis(stack, options.server_cpu)
            redis_url = redis.url
        env = {"HUB_GUEST_TTL": str(GUEST_TTL)}
        hub_args = [
            "--guests",
            "--chat-history",
            str(options.chat_history),
            "--history",
            str(options.chat_history),
        ]
        hub = HubProcess(redis_url=redis_url, args=hub_args, env=env, cpu=options.server_cpu)
        stack.callback(hub.stop)
        hub.start()
        assert hub.process is not None
        deadline = round(120 + options.minutes * 60 * 1.5)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--loadgen",
            "--url",
            hub.url,
            "--minutes",
            str(options.minutes),
            "--guests",
            str(options.guests),
            "--rooms",
            str(options.rooms),
            "--session",
            str(options.session),
            "--chat-every",
            str(options.chat_every),
            "--ask-every",
            str(options.ask_every),
            "--sample",
            str(options.sample),
            *(["--keys"] if options.keys else []),
            "--server-pids",
            str(hub.process.pid),
            "--redis-pids",
            ",".join(map(str, redis_pids)),
            "--deadline",
            str(deadline),
        ]
        command = pinned(command, options.loadgen_cpu)
        setup["hub_env"] = env
        setup["commands"] = [shlex.join(hub.command), shlex.join(command)]
        print(f"  hub env: {' '.join(f'{k}={v}' for k, v in env.items())}", file=out)
        for line in setup["commands"]:
            print(f"  $ {line}", file=out, flush=True)
        result = run_loadgen(stack, command, deadline + 15)
        if "error" in result:
            result["server_stderr"] = hub.stderr()[-1500:]
            return {**setup, **result}
        return {**setup, **result, **verdict(result, options.max_slope)}


def table(results: list[dict[str, Any]]) -> str:
    blocks = []
    for r in results:
        if "error" in r:
            blocks.append(f"{r['mode']}: error: {r['error'][:200]}")
            continue
        first = r["samples"][0]["hub_kb"]
        rows = [("t", "hub RSS", "since start", "redis RSS", "online", "hellos", "msgs", "asked")]
        for s in r["samples"]:
            rows.append(
                (
                    f"{s['t']:.0f} s",
                    f"{s['hub_kb'] / 1024:.1f} MiB",
                    f"{(s['hub_kb'] - first) / 1024:+.1f} MiB",
                    f"{s['redis_kb'] / 1024:.1f} MiB" if r["redis_pids"] else "-",
                    str(s["online"]),
                    f"{s['hellos']:,}",
                    f"{s['messages']:,}",
                    f"{s['questions']:,}",
                )
            )
        blocks.append(f"[{r['mode']}]\n" + format_table(rows))
    return "\n\n".join(blocks)


def notes(results: list[dict[str, Any]], options: argparse.Namespace) -> list[str]:
    lines = []
    for r in results:
        if "error" in r:
            continue
        mode = r["mode"]
        lines.append(
            f"{mode}: done {r['done']}; errors {r['errors'] or 'none'}; closes "
            f"{r['closes'] or 'none'}; {r['events']:,} events received"
        )
        redis = f", redis-server {fmt(r['redis_slope_kb_min'])} KiB/min" if r["redis_pids"] else ""
        lines.append(
            f"{mode}: last third ({r['tail_samples']} samples): hub RSS slope "
            f"{fmt(r['hub_slope_kb_min'])} KiB/min{redis}; memory "
            + (
                "LEVELS OFF"
                if r["levels_off"]
                else f"KEEPS GROWING (more than {options.max_slope:g} KiB/min)"
            )
        )
        if options.keys:
            lines.append(
                f"{mode}: every message carried a key, kept a day by design: their memory "
                "grows with the messages for the whole run"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="livehub soak benchmark")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--guests", type=int, default=300, help="guests online at once")
    parser.add_argument("--rooms", type=int, default=4, help="panels the guests spread over")
    parser.add_argument("--session", type=float, default=10.0, help="mean seconds of a visit")
    parser.add_argument("--chat-every", type=float, default=5.0, help="mean seconds per message")
    parser.add_argument("--ask-every", type=float, default=120.0, help="mean seconds per question")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--keys", action="store_true", help="send every message with a key")
    parser.add_argument("--chat-history", type=int, default=CHAT_HISTORY)
    parser.add_argument(
        "--max-slope", type=float, default=512.0, help="KiB/min the last third may grow"
    )
    parser.add_argument("--redis", action="store_true", help="the hub on a private redis-server")
    add_run_arguments(parser)
    add_loadgen_arguments(parser, "--url")  # internal: the load generator process
    options = parser.parse_args(argv)
    if options.session * 1.5 >= GUEST_TTL:
        parser.error(f"--session: a visit must end before the guest's token ({GUEST_TTL} s)")
    if options.loadgen:
        return loadgen_main(loadgen, options)

    cpus = pin_cpus(options)
    nofile = raise_nofile(options.guests * 2 + 256)
    out, invocation = start_output(options, argv)
    print(
        f"soak: {options.guests} guests online for {options.minutes:g} min over "
        f"{options.rooms} panels, visits of ~{options.session:g} s, a message every "
        f"~{options.chat_every:g} s{' (with keys)' if options.keys else ''}, a question every "
        f"~{options.ask_every:g} s; {options.chat_history} chat messages kept per room; RSS "
        f"every {options.sample:g} s; hub on cpu {fmt(options.server_cpu, '', 'unpinned')}, load "
        f"generator on cpu {fmt(options.loadgen_cpu, '', 'unpinned')} (of {len(cpus)}); "
        f"RLIMIT_NOFILE {nofile}",
        file=out,
        flush=True,
    )
    results = run_modes(["redis" if options.redis else "memory"], run_mode, options, out)
    if results is None:
        return 130
    report(invocation, options, results, lambda: table(results), lambda: notes(results, options))
    return 0 if all("error" not in r and r["levels_off"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
