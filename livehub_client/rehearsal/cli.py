"""``hub rehearse``: a dress rehearsal of an event against a running deployment."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.live import Live

from hub.gc_policy import tune_for_serving
from livehub_client.rehearsal.record import Recorder
from livehub_client.rehearsal.report import plot, print_results, progress, write_json
from livehub_client.rehearsal.scenario import Options, Rehearsal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hub rehearse``."""
    parser.add_argument("--url", required=True, help="the hub's WebSocket URL (ws://HOST:PORT/ws)")
    parser.add_argument("--nodes", help="more URLs, comma-separated: clients spread over all")
    parser.add_argument("--secret", help="the deployment's token secret (HUB_SECRET)")
    parser.add_argument("--attendees", type=int, default=900)
    parser.add_argument("--minutes", type=float, default=5.0, help="the whole run's length")
    parser.add_argument("--panels", type=int, default=3)
    parser.add_argument("--chat-rate", type=float, help="chat messages/s (default attendees/60)")
    parser.add_argument("--breakout-seconds", type=float, default=60.0)
    parser.add_argument("--vote-window", type=float, default=30.0)
    parser.add_argument("--connect-window", type=float, default=5.0)
    parser.add_argument(
        "--chaos", action="store_true", help="restart a node halfway (--restart-cmd)"
    )
    parser.add_argument("--restart-cmd", help="the shell command that restarts a node")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--plot", type=Path, help="draw latency over time to this PNG")
    parser.add_argument("--no-live", action="store_true", help="no live display")


def options_from(args: argparse.Namespace) -> Options | str:
    """The rehearsal's options, or what is wrong with the arguments."""
    secret = args.secret or os.environ.get("HUB_SECRET")
    if not secret:
        return "give --secret or set HUB_SECRET (the secret the deployment uses)"
    urls = [args.url, *(url.strip() for url in (args.nodes or "").split(",") if url.strip())]
    if any(not url.startswith(("ws://", "wss://")) for url in urls):
        return "--url and --nodes take ws:// or wss:// URLs"
    if args.chaos and not args.restart_cmd:
        return "--chaos needs --restart-cmd (how to restart a node)"
    if not 1 <= args.attendees <= 100_000 or not 1 <= args.panels <= 50:
        return "--attendees must be 1 to 100000, --panels 1 to 50"
    if args.minutes <= 0 or args.breakout_seconds < 1 or args.vote_window <= 0:
        return "--minutes and --vote-window must be positive, --breakout-seconds at least 1"
    return Options(
        urls=urls,
        secret=secret,
        attendees=args.attendees,
        minutes=args.minutes,
        panels=args.panels,
        chat_rate=args.chat_rate,
        breakout_seconds=args.breakout_seconds,
        vote_window=args.vote_window,
        connect_window=args.connect_window,
        chaos=args.chaos,
        restart_cmd=args.restart_cmd,
        seed=args.seed,
    )


async def rehearse(options: Options, recorder: Recorder, console: Console, live: bool) -> float:
    """Run the rehearsal with its live display; returns the elapsed seconds."""
    # Everyone's connection is held from then on, as a node holds its sessions: without the
    # node's collector settings each full collection walked them all, pauses of about 100 ms
    # that landed in the latencies being measured.
    rehearsal = Rehearsal(options, recorder, on_connected=tune_for_serving)
    task = asyncio.ensure_future(rehearsal.run())
    last_done, last_at = 0, time.monotonic()
    with contextlib.ExitStack() as stack:
        display = stack.enter_context(Live(console=console, auto_refresh=False)) if live else None
        phase = ""
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)  # the display's refresh
            now = time.monotonic()
            done = recorder.done_count()
            rate = (done - last_done) / max(1e-6, now - last_at)
            last_done, last_at = done, now
            if display is not None:
                display.update(progress(recorder, rehearsal.now(), rehearsal.connected(), rate))
                display.refresh()
            elif recorder.phase != phase:
                phase = recorder.phase
                console.print(f"{rehearsal.now():6.1f} s  {phase}")
    task.result()
    return rehearsal.now()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (as the nodes run), else None (asyncio's
    own). The rehearsal is one process playing 900 browsers: the time its loop takes to hand
    each frame to its client is latency it records as the hub's, so that time is kept low."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hub rehearse``; 0 when the verdict passes, 1 when it fails, 2 for bad
    arguments."""
    parser = argparse.ArgumentParser(prog="hub rehearse", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    options = options_from(args)
    if isinstance(options, str):
        print(f"hub rehearse: {options}", file=sys.stderr)
        return 2
    console = Console()
    recorder = Recorder(options.seed)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            elapsed = runner.run(
                rehearse(options, recorder, console, live=console.is_terminal and not args.no_live)
            )
    except RuntimeError as error:
        print(f"hub rehearse: {error}", file=sys.stderr)
        return 2
    summary = recorder.summary(elapsed)
    print_results(console, summary)
    if args.json is not None:
        write_json(args.json, summary)
    if args.plot is not None:
        plot(args.plot, recorder)
    return 0 if summary["verdict"]["pass"] else 1
