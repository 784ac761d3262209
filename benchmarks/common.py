"""The runner shared by the benchmarks (``fanout.py``, ``votes.py``).

Everything here is about running a benchmark, not measuring it: CPU pinning, the header of the
output, the modes loop with its signal handling, the load generator process and its JSON
result, a private redis-server, and the report (JSON or a table with notes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any


def log(message: str) -> None:
    """A progress line of the load generator (on stderr: stdout carries its JSON result)."""
    print(f"  [loadgen] {message}", file=sys.stderr, flush=True)


def loadgen_main(
    loadgen: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    args: argparse.Namespace,
) -> int:
    """Run ``loadgen(args)`` within ``args.deadline`` and print its result as one JSON line."""
    try:
        result = asyncio.run(asyncio.wait_for(loadgen(args), args.deadline))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json``, ``--wait-quiet`` and ``--no-pin``."""
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each mode, wait up to this many seconds for other processes to go idle",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")


def add_loadgen_arguments(parser: argparse.ArgumentParser, url_flag: str) -> None:
    """The internal options of the load generator process (``url_flag``: its server URLs)."""
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(url_flag, help=argparse.SUPPRESS)
    parser.add_argument("--server-pids", default="", help=argparse.SUPPRESS)
    parser.add_argument("--redis-pids", default="", help=argparse.SUPPRESS)
    parser.add_argument("--settle", type=float, default=2.0, help=argparse.SUPPRESS)
    parser.add_argument("--drain-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--connect-concurrency", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=600.0, help=argparse.SUPPRESS)


def parse_modes(parser: argparse.ArgumentParser, text: str, allowed: Iterable[str]) -> list[str]:
    """The comma-separated ``text`` as a list of modes (a parser error for an unknown one)."""
    allowed = tuple(allowed)
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in allowed]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {', '.join(allowed)}")
    return modes


def pin_cpus(options: argparse.Namespace) -> list[int]:
    """Set ``options.server_cpu`` and ``options.loadgen_cpu`` (the first two usable cores, unless
    given, or None with ``--no-pin`` or a single core); returns the usable cores."""
    cpus = sorted(os.sched_getaffinity(0))
    if options.no_pin or len(cpus) < 2:
        options.server_cpu = options.loadgen_cpu = None
    else:
        server_cpu = getattr(options, "server_cpu", None)
        loadgen_cpu = getattr(options, "loadgen_cpu", None)
        options.server_cpu = cpus[0] if server_cpu is None else server_cpu
        options.loadgen_cpu = cpus[1] if loadgen_cpu is None else loadgen_cpu
    return cpus


def start_output(options: argparse.Namespace, argv: list[str] | None) -> tuple[Any, str]:
    """Where progress goes (stderr with ``--json``) and the invocation, printed there."""
    out = sys.stderr if options.json else sys.stdout
    invocation = shlex.join([sys.executable, *sys.argv]) if argv is None else str(argv)
    print(f"$ {invocation}", file=out)
    return out, invocation


def run_modes(
    modes: list[str],
    run_mode: Callable[[str, argparse.Namespace, Any], dict[str, Any]],
    options: argparse.Namespace,
    out: Any,
) -> list[dict[str, Any]] | None:
    """``run_mode`` for each mode, an error result for a mode that fails; None when a signal
    (SIGINT, SIGTERM, SIGHUP) interrupted the run, after every process was stopped."""
    results: list[dict[str, Any]] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for signum in previous:
        signal.signal(signum, interrupted)
    try:
        for mode in modes:
            print(f"[{mode}]", file=out, flush=True)
            try:
                results.append(run_mode(mode, options, out))
            except (Exception, subprocess.TimeoutExpired) as error:
                results.append({"mode": mode, "error": f"{type(error).__name__}: {error}"})
    except KeyboardInterrupt:
        print("interrupted: every process this run started was stopped", file=sys.stderr)
        return None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return results


def redis_pid(server: Any) -> int | None:
    """The pid of a RedisServer's process (its Popen, else found by port in /proc)."""
    process = getattr(server, "_process", None)
    if process is not None and getattr(process, "pid", None):
        return int(process.pid)
    needle = str(server.port)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        name = os.path.basename(argv[0].decode(errors="replace"))
        if ("redis" in name or "valkey" in name) and needle.encode() in argv:
            return int(entry)
    return None


def start_redis(
    stack: contextlib.ExitStack, cpu: int | None, *, appendfsync: str | None = None
) -> tuple[Any, list[int]]:
    """A private redis-server, closed with ``stack`` and pinned to ``cpu`` (if not None), with
    persistence off, or its append-only file on with ``appendfsync`` (``everysec``, ``always``);
    returns it and its pid (none if it was not found)."""
    from tests.support.redis_server import RedisServer

    redis = RedisServer(appendfsync=appendfsync)
    stack.callback(redis.close)
    pid = redis_pid(redis)
    if pid is None:
        return redis, []
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})
    return redis, [pid]


def raise_nofile(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """``command`` run by ``taskset`` on ``cpu`` (as is if ``cpu`` is None)."""
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


def run_loadgen(stack: contextlib.ExitStack, command: list[str], timeout: float) -> dict[str, Any]:
    """Run the load generator ``command`` (killed with ``stack`` if still running) and return
    the JSON object of its last line of output (an error result without one)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE)

    def kill_loadgen() -> None:
        if process.poll() is None:
            process.kill()
            process.wait(5)

    stack.callback(kill_loadgen)
    stdout, _ = process.communicate(timeout=timeout)
    lines = stdout.decode(errors="replace").strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        result = {"error": f"load generator printed no result (exit {process.returncode})"}
    return result


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first one the header) in columns: the first left-aligned, the rest right."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(
    invocation: str,
    options: argparse.Namespace,
    results: list[dict[str, Any]],
    table: Callable[[], str],
    notes: Callable[[], Iterable[str]],
) -> None:
    """Print the results: as JSON with ``--json``, else the table, the notes and the errors."""
    if options.json:
        print(
            json.dumps(
                {"invocation": invocation, "options": vars(options), "results": results}, indent=2
            )
        )
        return
    print()
    print(table())
    print()
    for line in notes():
        print(f"- {line}")
    for r in results:
        if "error" in r:
            print(f"- {r['mode']}: {r['error']}")
            if r.get("server_stderr"):
                print(r["server_stderr"])
