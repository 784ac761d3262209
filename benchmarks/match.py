"""Match-queue benchmark: a coffee break where N people press "Meet someone" within S seconds.

The figure: with 900 people pressing within ten seconds, everyone who can be paired is paired
within 5 s of the last press. For each mode it starts the server side pinned to one core and
runs the load generator as a separate process pinned to the other core:

* ``memory`` -- one ``hub serve`` on its in-process broker (every person on that node);
* ``redis2`` -- a private redis-server and TWO ``hub serve --redis URL`` processes (two nodes
  sharing the Redis); people alternate between them, so pairs span nodes.

The load generator connects N people (attendee tokens, ``hub.v1.json``, ``hello``), then each
sends ``match.join`` at a random time within ``--spread`` seconds (uniform, a fixed ``--seed``)
and waits for ``match.found``. It reports, from its own clock: the time from the last press
until the last ``match.found`` (``last->all``), time-to-pair p50/p99/max (a person's
``match.found`` minus their press), and exactness: every person paired once (no second
``match.found`` within a second after the last), every meeting's members agree on who is in
it, and nobody is in two meetings. With an odd N the last person makes a group of three after
the pairing rules' :data:`~networking.matching.TRIPLE_AFTER` seconds when they were in the queue
with the others in a pairing round; one who presses after everyone else was paired waits for
the next person, as the rules say, and the run reports them unpaired (an even N is always
exact).

Usage::

    python benchmarks/match.py [--people 900] [--spread 10] [--modes memory,redis2] [--json]

``--loadgen`` (internal) runs the load generator itself; it prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shlex
import sys
import time
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
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

from hub.codec import WireFormat, decode_frame  # noqa: E402
from tests.support.hub_process import HubProcess, mint  # noqa: E402

MODES = ("memory", "redis2")
# The figure to meet: seconds from the last press until everyone pairable is paired.
TARGET_S = 5.0
# How long after the last match.found a second one for anyone would still be noticed.
GRACE_S = 1.0


class Everyone:
    """Counts the people paired; :attr:`done` is set once all of them are."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = asyncio.Event()

    def paired_one(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set()


class Person:
    """One connection: presses at ``press_at`` (seconds after the start) and records its
    ``match.found`` events."""

    def __init__(self, user: str, url: str, press_at: float, everyone: Everyone) -> None:
        self.everyone = everyone
        self.user = user
        self.url = url
        self.press_at = press_at
        self.pressed: float | None = None
        self.found: list[tuple[float, dict[str, Any]]] = []
        self.ws: ClientConnection | None = None
        self.errors: list[str] = []

    async def open(self) -> None:
        self.ws = await connect(
            self.url, subprotocols=[Subprotocol(WireFormat.JSON.value)], max_size=None
        )
        await self.ws.send(json.dumps({"id": 1, "op": "hello", "token": mint(self.user)}))
        while True:
            for message in decode_frame(WireFormat.JSON, await self.ws.recv(decode=False)):
                if message.get("re") == 1:
                    if "err" in message:
                        raise RuntimeError(f"hello refused: {message['err']}")
                    return

    async def run(self, start: float) -> None:
        assert self.ws is not None
        await asyncio.sleep(max(0.0, start + self.press_at - time.monotonic()))
        self.pressed = time.monotonic()
        await self.ws.send(json.dumps({"id": 2, "op": "match.join"}))
        async for frame in self.ws:
            data = frame.encode() if isinstance(frame, str) else frame
            for message in decode_frame(WireFormat.JSON, data):
                if message.get("ev") == "match.found":
                    self.found.append((time.monotonic(), message))
                    if len(self.found) == 1:
                        self.everyone.paired_one()
                elif message.get("re") == 2 and "err" in message:
                    self.errors.append(str(message["err"]))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def check_exact(people: list[Person]) -> tuple[bool, list[str]]:
    """Whether everyone was paired once into meetings whose members agree; the problems."""
    problems: list[str] = []
    rooms: dict[str, set[str]] = {}
    for person in people:
        if len(person.found) != 1:
            problems.append(f"{person.user}: {len(person.found)} match.found")
            continue
        event = person.found[0][1]
        members = {person.user, *(other["user"] for other in event["with"])}
        if rooms.setdefault(event["room"], members) != members:
            problems.append(f"{event['room']}: members disagree")
    placed = [user for members in rooms.values() for user in members]
    if len(placed) != len(set(placed)):
        problems.append("someone is in two meetings")
    return not problems, problems[:10]


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile(args.people + 256)
    urls = args.urls.split(",")
    rng = random.Random(args.seed)
    tag = f"{rng.getrandbits(32):08x}"
    everyone = Everyone(args.people)
    people = [
        Person(f"p{i}-{tag}", urls[i % len(urls)], rng.uniform(0, args.spread), everyone)
        for i in range(args.people)
    ]
    gate = asyncio.Semaphore(args.connect_concurrency)

    async def opened(person: Person) -> None:
        async with gate:
            await person.open()

    log(f"connecting {len(people)} people to {len(urls)} node(s)")
    await asyncio.gather(*(opened(person) for person in people))
    log(f"pressing within {args.spread:g}s")
    start = time.monotonic()
    tasks = [asyncio.create_task(person.run(start)) for person in people]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(everyone.done.wait(), args.spread + 60.0)
    last_found_at = max((p.found[0][0] for p in people if p.found), default=None)
    await asyncio.sleep(GRACE_S)  # a second match.found would arrive here
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(
        *(p.ws.close() for p in people if p.ws is not None), return_exceptions=True
    )
    last_press = max(p.pressed for p in people if p.pressed is not None)
    waits = [p.found[0][0] - p.pressed for p in people if p.found and p.pressed is not None]
    exact, problems = check_exact(people)
    errors = [e for p in people for e in p.errors]

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "people": len(people),
        "nodes": len(urls),
        "paired": sum(1 for p in people if p.found),
        "last_to_all_s": None if last_found_at is None else round(last_found_at - last_press, 3),
        "p50_ms": ms(percentile(waits, 50)),
        "p99_ms": ms(percentile(waits, 99)),
        "max_ms": ms(max(waits, default=None)),
        "exact": exact,
        "problems": problems,
        "errors": errors[:10],
    }


def run_mode(mode: str, options: argparse.Namespace, out: Any) -> dict[str, Any]:
    """Start the server side of ``mode``, run the load generator against it, stop everything."""
    with contextlib.ExitStack() as stack:
        redis_url: str | None = None
        nodes = 1
        if mode == "redis2":
            redis, _ = start_redis(stack, options.server_cpu)
            redis_url = redis.url
            nodes = 2
        hubs = []
        for _ in range(nodes):
            hub = HubProcess(redis_url=redis_url, cpu=options.server_cpu)
            stack.callback(hub.stop)
            hubs.append(hub)
        for hub in hubs:
            hub.start()
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--loadgen",
            "--urls",
            ",".join(hub.url for hub in hubs),
            "--people",
            str(options.people),
            "--spread",
            str(options.spread),
            "--seed",
            str(options.seed),
            "--deadline",
            str(round(120 + options.people / 20 + options.spread)),
        ]
        command = pinned(command, options.loadgen_cpu)
        print(f"  {shlex.join(command)}", file=out, flush=True)
        result = run_loadgen(stack, command, timeout=300 + options.spread)
        return {"mode": mode, **result}


def table(results: list[dict[str, Any]]) -> str:
    rows = [("mode", "people", "paired", "last->all s", "p50 ms", "p99 ms", "max ms", "exact")]
    for r in results:
        if "error" in r:
            continue
        rows.append(
            (
                r["mode"],
                str(r["people"]),
                str(r["paired"]),
                str(r["last_to_all_s"]),
                str(r["p50_ms"]),
                str(r["p99_ms"]),
                str(r["max_ms"]),
                "EXACT" if r["exact"] else "MISMATCH",
            )
        )
    return format_table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="livehub match-queue benchmark")
    parser.add_argument("--people", type=int, default=900)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds of presses")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES))
    add_run_arguments(parser)
    add_loadgen_arguments(parser, "--urls")  # internal: the load generator process
    options = parser.parse_args(argv)
    if options.loadgen:
        return loadgen_main(loadgen, options)
    modes = parse_modes(parser, options.modes, MODES)
    pin_cpus(options)
    raise_nofile(options.people + 256)
    out, invocation = start_output(options, argv)
    print(
        f"match: {options.people} people press within {options.spread:g}s (seed "
        f"{options.seed}); target: everyone paired within {TARGET_S:g}s of the last press",
        file=out,
    )
    results = run_modes(modes, run_mode, options, out)
    if results is None:
        return 130

    def notes() -> list[str]:
        return [
            "last->all: from the last press to the last match.found (load generator's clock)",
            "p50/p99/max: a person's match.found minus their press",
            *(
                f"{r['mode']}: {'; '.join(r['problems'] + r['errors'])}"
                for r in results
                if "error" not in r and (r["problems"] or r["errors"])
            ),
        ]

    report(invocation, options, results, lambda: table(results), notes)
    return 0 if all("error" not in r and r["exact"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
