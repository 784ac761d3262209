"""Votes benchmark: N voters changing their ballots in one live poll, exact final counts.

Issue 4's figure: votes/s accepted with exact final counts, 2 nodes + Redis, 1,000 voters
(target: 5,000 votes/s or more). For each mode it starts the server side pinned to one core,
runs the load generator as a separate process pinned to the other core, and prints one row:

* ``redis2``  -- a private redis-server and TWO ``hub serve --redis URL`` processes (two nodes,
  each its own process and port, sharing the Redis); voters are split evenly across them;
* ``memory``  -- one ``hub serve`` on its in-process broker (every voter on that node).

``--appendfsync off,everysec,always`` runs ``redis2`` once per policy: ``off`` is Redis with
persistence off (the row ``redis2``), ``everysec`` and ``always`` run it with ``appendonly yes``
and that ``appendfsync`` (the rows ``redis2+everysec``, ``redis2+always``): what an event's
durable Redis costs in acknowledged votes. The append-only file is written in the server's
temporary directory (``$TMPDIR``, else ``/tmp``): point ``TMPDIR`` at the disk to measure.

The load generator connects an organizer, who creates a workshop room (``room.create``) and a
poll in it (4 options, ``show: "live"``, ``allow_change: true``), and N voters (attendee tokens,
``hello``, ``join``). For ``--duration`` seconds (after ``--warmup``) every voter keeps voting,
picking a different option at random each time, with at most ``--window`` votes in flight and
at most ``--pace`` votes/s (the hub's per-connection command limit is 20/s, burst 60). The hub
handles a connection's commands one after another, so a voter's last accepted ballot is the
``ok`` reply with the highest command id. Then the voters stop, in-flight votes are answered,
and ``poll.get`` on every node (as the organizer, who always sees counts) must give exactly the
tally of every voter's last accepted choice, and ``voters`` the number of voters with at least
one ``ok``; each voter's ``mine`` is checked too. EXACT or MISMATCH is printed.

Usage::

    python benchmarks/votes.py [--voters 1000] [--duration 10] [--window 2] [--pace 15]
                               [--modes memory,redis2] [--appendfsync off,everysec,always]
                               [--raise-limits] [--json]

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
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The runner shared with the fan-out benchmark, and its lean raw WebSocket client and /proc
# helpers.
from common import (  # noqa: E402
    add_loadgen_arguments,
    add_run_arguments,
    format_table,
    loadgen_main,
    log,
    parse_modes,
    pin_cpus,
    pinned,
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
    cpu_shares,
    fmt,
    latency_summary,
    open_conn,
    raise_nofile,
    sample,
    wait_quiet,
)

from tests.support.hub_process import HubProcess, mint  # noqa: E402

MODES = ("memory", "redis2")
# Redis's persistence for the redis2 runs: off, or the append-only file with this appendfsync.
APPENDFSYNC = ("off", "everysec", "always")
OPTIONS = 4
TARGET_VOTES = 5_000
# Raised command limits for --raise-limits (the hub's defaults: 20/s burst 60 per connection,
# 40/s burst 120 per user on one node).
RAISED_LIMITS = {
    "HUB_LIMIT_CONNECTION_RATE": "10000",
    "HUB_LIMIT_CONNECTION_BURST": "10000",
    "HUB_LIMIT_USER_RATE": "10000",
    "HUB_LIMIT_USER_BURST": "10000",
}


# ---------------------------------------------------------------------------------------------
# Load generator
# ---------------------------------------------------------------------------------------------


class Run:
    """What every voter shares: the phase, counters and latencies."""

    def __init__(self) -> None:
        self.sending = False
        self.counting = False
        self.sent = 0
        self.accepted = 0  # ok replies, whole run
        self.counted = 0  # ok replies within the measured window
        self.errors: Counter[str] = Counter()
        self.latency = array("d")  # seconds, replies within the measured window


class Voter:
    """One voter: keeps at most ``window`` votes in flight, at most ``pace`` votes/s."""

    def __init__(
        self, conn: Conn, run: Run, room: str, poll: str, window: int, pace: float, rng: Any
    ) -> None:
        self.conn, self.run, self.room, self.poll = conn, run, room, poll
        self.window, self.interval, self.rng = window, 1.0 / pace, rng
        self.loop = asyncio.get_running_loop()
        self.inflight: dict[int, tuple[int, float]] = {}  # command id -> (choice, sent at)
        self.choice = -1  # the last choice sent
        self.last_ok_id = 0
        self.last_ok: int | None = None  # the choice of the last accepted ballot
        self.next_at = 0.0
        self.timer: asyncio.TimerHandle | None = None
        conn.on_ack = self.on_reply

    def pump(self) -> None:
        self.timer = None
        run = self.run
        while run.sending and len(self.inflight) < self.window:
            now = self.loop.time()
            if now < self.next_at:
                self.timer = self.loop.call_at(self.next_at, self.pump)
                return
            self.next_at = max(self.next_at, now) + self.interval
            choice = self.rng.randrange(OPTIONS - 1)
            if choice >= self.choice >= 0:
                choice += 1  # a different option from the last one sent
            self.choice = choice
            conn = self.conn
            rid = conn.next_id
            conn.next_id += 1
            self.inflight[rid] = (choice, time.perf_counter())
            conn.send(
                {
                    "id": rid,
                    "op": "poll.vote",
                    "room": self.room,
                    "poll": self.poll,
                    "choice": choice,
                }
            )
            run.sent += 1

    def on_reply(self, rid: int, msg: dict[str, Any]) -> None:
        sent = self.inflight.pop(rid, None)
        if sent is None:
            return
        run = self.run
        choice, at = sent
        if "ok" in msg:
            run.accepted += 1
            if rid > self.last_ok_id:  # commands of a connection run in order
                self.last_ok_id, self.last_ok = rid, choice
            if run.counting:
                run.counted += 1
                run.latency.append(time.perf_counter() - at)
        else:
            run.errors[str((msg.get("err") or {}).get("code"))] += 1
        if self.timer is None:
            self.pump()


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile(args.voters + 256)
    stats = Stats()
    urls = args.urls.split(",")
    server_pids = all_server_pids([int(p) for p in args.server_pids.split(",") if p])
    redis_pids = [int(p) for p in args.redis_pids.split(",") if p]
    result: dict[str, Any] = {"server_pids": server_pids, "redis_pids": redis_pids}

    # The organizer, one connection per node (for poll.get on each).
    organizers = []
    for url in urls:
        conn = await open_conn(stats, url)
        await conn.request("hello", token=mint("organizer", "organizer"))
        organizers.append(conn)
    room = f"votes-{os.getpid()}-{random.randrange(10**6)}"
    await organizers[0].request("room.create", room=room, kind="workshop", title="Votes bench")
    for conn in organizers:
        await conn.request("join", room=room)
    created = await organizers[0].request(
        "poll.create",
        room=room,
        question="Which one?",
        options=[f"option {i}" for i in range(OPTIONS)],
        show="live",
        allow_change=True,
    )
    poll = created["poll"]["id"]

    voters: list[Voter] = []
    nodes: Counter[str] = Counter()
    gate = asyncio.Semaphore(args.connect_concurrency)
    run = Run()
    started = time.monotonic()

    async def connect(index: int) -> None:
        async with gate:
            conn = await open_conn(stats, urls[index % len(urls)])
            hello = await conn.request("hello", token=mint(f"voter-{index:05d}", "attendee"))
            nodes[str(hello.get("node"))] += 1
            await conn.request("join", room=room)
            rng = random.Random(index)
            voters.append(Voter(conn, run, room, poll, args.window, args.pace, rng))

    outcomes = await asyncio.gather(
        *(connect(i) for i in range(args.voters)), return_exceptions=True
    )
    failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    log(
        f"{len(voters)}/{args.voters} voters joined {room} in {time.monotonic() - started:.1f}s "
        f"(nodes: {dict(nodes)}); poll {poll}"
    )
    await asyncio.sleep(args.settle)  # presence batches go out; the server is idle again
    result.update(
        voters=args.voters,
        connected=len(voters),
        connect_failures=failures[:5],
        connect_failure_count=len(failures),
        nodes=dict(nodes),
        room=room,
        poll=poll,
    )

    # Vote: warm-up, then the measured window, then stop and let in-flight votes finish.
    run.sending = True
    for voter in voters:
        voter.next_at = asyncio.get_running_loop().time() + random.random() / args.pace
        voter.timer = asyncio.get_running_loop().call_at(voter.next_at, voter.pump)
    await asyncio.sleep(args.warmup)
    run.counting = True
    counted0 = run.counted
    begin = sample(server_pids, redis_pids, 0)
    await asyncio.sleep(args.duration)
    end = sample(server_pids, redis_pids, 0)
    run.counting = False
    counted = run.counted - counted0
    run.sending = False
    for voter in voters:
        if voter.timer is not None:
            voter.timer.cancel()
            voter.timer = None
    for _ in range(round(args.drain_timeout / 0.02)):  # in-flight votes get their replies
        if not any(v.inflight for v in voters):
            break
        await asyncio.sleep(0.02)
    unanswered = sum(len(v.inflight) for v in voters)
    closed = sum(1 for v in voters if v.conn.close_code is not None)
    span = end["t"] - begin["t"]
    latency = latency_summary(run.latency)
    del latency["samples"]

    # The check: the broker's tally against every voter's last accepted choice.
    expected = [0] * OPTIONS
    for voter in voters:
        if voter.last_ok is not None:
            expected[voter.last_ok] += 1
    expected_voters = sum(1 for v in voters if v.last_ok is not None)
    views = []
    for conn in organizers:
        view = await conn.request("poll.get", room=room, poll=poll)
        views.append({"counts": view.get("counts"), "voters": view.get("voters")})

    async def mine(voter: Voter) -> bool:
        async with gate:
            view = await voter.conn.request("poll.get", room=room, poll=poll)
            return bool(view.get("mine") == voter.last_ok)

    live = [v for v in voters if v.conn.close_code is None]
    mine_ok = sum(await asyncio.gather(*(mine(v) for v in live)))
    exact = (
        unanswered == 0
        and all(v["counts"] == expected and v["voters"] == expected_voters for v in views)
        and mine_ok == len(voters)
    )
    result.update(
        window=args.window,
        pace=args.pace,
        span=round(span, 3),
        sent=run.sent,
        accepted=run.accepted,
        accepted_in_window=counted,
        votes_per_s=round(counted / span) if span > 0 else 0,
        errors=dict(run.errors),
        **latency,
        unanswered=unanswered,
        closed_connections=closed,
        expected={"counts": expected, "voters": expected_voters},
        got=views,
        mine_ok=mine_ok,
        exact=exact,
        **cpu_shares(begin, end),
    )
    for conn in [*organizers, *(v.conn for v in voters)]:
        with contextlib.suppress(Exception):
            await conn.close()
    return result


# ---------------------------------------------------------------------------------------------
# Orchestration: servers pinned to one core, the load generator to the other
# ---------------------------------------------------------------------------------------------


def runs(modes: list[str], appendfsync: list[str]) -> list[str]:
    """The runs of ``modes``: ``redis2`` once per persistence policy (``redis2+always`` ...)."""
    return [
        run
        for mode in modes
        for run in (
            [mode]
            if mode != "redis2"
            else [mode if fsync == "off" else f"{mode}+{fsync}" for fsync in appendfsync]
        )
    ]


def run_mode(mode: str, options: argparse.Namespace, out: Any) -> dict[str, Any]:
    """Start the server side of ``mode`` (a run of :func:`runs`), run the load generator
    against it, stop everything."""
    with contextlib.ExitStack() as stack:
        setup: dict[str, Any] = {"mode": mode}
        if options.wait_quiet:
            setup["load_before"] = round(wait_quiet(options.wait_quiet, out), 2)
        redis_pids: list[int] = []
        redis_url: str | None = None
        nodes = 1
        base, _, fsync = mode.partition("+")
        if base == "redis2":
            redis, redis_pids = start_redis(stack, options.server_cpu, appendfsync=fsync or None)
            redis_url = redis.url
            nodes = 2
            setup["redis"] = {
                "binary": str(redis.binary),
                "cpu": fmt(options.server_cpu),
                "appendfsync": fsync or "off",
                "dir": redis.directory,
            }
        env = RAISED_LIMITS if options.raise_limits else None
        hubs = []
        for _ in range(nodes):
            hub = HubProcess(redis_url=redis_url, cpu=options.server_cpu, env=env)
            stack.callback(hub.stop)
            hubs.append(hub)
        for hub in hubs:
            hub.start()
        pids = [hub.process.pid for hub in hubs if hub.process is not None]
        commands = [hub.command for hub in hubs]
        deadline = round(120 + options.voters / 50 + 4 * (options.duration + options.warmup))
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--loadgen",
            "--urls",
            ",".join(hub.url for hub in hubs),
            "--voters",
            str(options.voters),
            "--duration",
            str(options.duration),
            "--warmup",
            str(options.warmup),
            "--window",
            str(options.window),
            "--pace",
            str(options.pace),
            "--server-pids",
            ",".join(map(str, pids)),
            "--redis-pids",
            ",".join(map(str, redis_pids)),
            "--deadline",
            str(deadline),
        ]
        command = pinned(command, options.loadgen_cpu)
        commands.append(command)
        setup["commands"] = [shlex.join(c) for c in commands]
        if env:
            setup["hub_env"] = env
            print(f"  hub env: {' '.join(f'{k}={v}' for k, v in env.items())}", file=out)
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
            "nodes",
            "voters",
            "votes/s",
            "p50",
            "p99",
            "errors",
            "final counts",
            "hub cpu",
            "redis cpu",
            "lg cpu",
        )
    ]
    for r in results:
        if "error" in r:
            rows.append((r["mode"], "error: " + r["error"][:90], *[""] * 9))
            continue
        rows.append(
            (
                r["mode"],
                str(len(r["nodes"])),
                f"{r['connected']}/{r['voters']}",
                f"{r['votes_per_s']:,}",
                fmt(r["p50_ms"], ".1f") + " ms",
                fmt(r["p99_ms"], ".1f") + " ms",
                f"{sum(r['errors'].values()):,}",
                "EXACT" if r["exact"] else "MISMATCH",
                f"{r['server_cpu']:.0%}",
                f"{r['redis_cpu']:.0%}" if r["redis_pids"] else "-",
                f"{r['loadgen_cpu']:.0%}",
            )
        )
    return format_table(rows)


def notes(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        if "error" in r:
            continue
        mode = r["mode"]
        lines.append(
            f"{mode}: {r['accepted_in_window']:,} votes accepted in {r['span']:g}s "
            f"({r['accepted']:,} of {r['sent']:,} sent over the whole run, window {r['window']}, "
            f"pace <= {r['pace']:g}/s per voter); nodes {r['nodes']}; max {fmt(r['max_ms'])} ms; "
            f"errors {r['errors'] or 'none'}; unanswered {r['unanswered']}, closed "
            f"connections {r['closed_connections']}"
        )
        verdict = "EXACT" if r["exact"] else "MISMATCH"
        lines.append(
            f"{mode}: {verdict}: expected counts {r['expected']['counts']} voters "
            f"{r['expected']['voters']}; poll.get per node {r['got']}; 'mine' right for "
            f"{r['mine_ok']}/{r['connected']} voters"
        )
        if r["loadgen_cpu"] > 0.9:
            lines.append(
                f"{mode}: the load generator was near saturation (cpu {r['loadgen_cpu']:.0%}): "
                "votes/s may be a floor"
            )
        if mode.startswith("redis2"):
            met = r["votes_per_s"] >= TARGET_VOTES and r["exact"]
            lines.append(
                f"{mode} target (>= {TARGET_VOTES:,} votes/s, exact counts): "
                + ("ok" if met else "MISSED")
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="livehub votes benchmark")
    parser.add_argument("--voters", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--window", type=int, default=2, help="votes in flight per voter")
    parser.add_argument("--pace", type=float, default=15.0, help="max votes/s per voter")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--appendfsync",
        default="off",
        help="redis2 once per Redis persistence policy, comma-separated: off (no persistence), "
        "everysec, always (appendonly yes with that appendfsync)",
    )
    parser.add_argument(
        "--raise-limits", action="store_true", help="start the hubs with raised command limits"
    )
    add_run_arguments(parser)
    add_loadgen_arguments(parser, "--urls")  # internal: the load generator process
    options = parser.parse_args(argv)
    if options.window not in (1, 2):
        parser.error("--window is 1 or 2")
    if options.loadgen:
        return loadgen_main(loadgen, options)

    modes = runs(
        parse_modes(parser, options.modes, MODES),
        parse_modes(parser, options.appendfsync, APPENDFSYNC),
    )
    cpus = pin_cpus(options)
    nofile = raise_nofile(options.voters + 256)

    out, invocation = start_output(options, argv)
    limits = (
        "raised command limits (" + ", ".join(f"{k}={v}" for k, v in RAISED_LIMITS.items()) + ")"
        if options.raise_limits
        else "default command limits (20/s burst 60 per connection, 40/s per user per node)"
    )
    print(
        f"votes: {options.voters} voters, one workshop poll ({OPTIONS} options, live, changes "
        f"allowed); {options.warmup:g}s warm-up then {options.duration:g}s measured; window "
        f"{options.window}, pace <= {options.pace:g} votes/s per voter; {limits}; redis2 "
        f"persistence: {options.appendfsync}; hubs and "
        f"redis-server on cpu {fmt(options.server_cpu, '', 'unpinned')}, load generator on cpu "
        f"{fmt(options.loadgen_cpu, '', 'unpinned')} (of {len(cpus)}); RLIMIT_NOFILE {nofile}",
        file=out,
        flush=True,
    )

    results = run_modes(modes, run_mode, options, out)
    if results is None:
        return 130
    report(invocation, options, results, lambda: table(results), lambda: notes(results))
    ok = all("error" not in r and r["exact"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
