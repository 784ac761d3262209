"""The web app in Debian's Chromium: what it weighs, how fast it first renders, and how it holds
up in a busy panel.

    .venv/bin/python benchmarks/webapp.py [--members 1000] [--rate 20] [--duration 30] [--runs 10]

1. **Weight**: the bytes of the page's own JS and CSS as an attendee's browser received them
   (uncompressed), from the Resource Timing entries of one load; and of every JS and CSS file
   of the app, the staff's tools (loaded on demand) included.
2. **First render**: ``--runs`` fresh browser contexts each load ``/#token=…``; the time from
   navigation start until the lobby is on screen and the status says "Connected" (and the First
   Contentful Paint).
3. **Busy panel**: a load generator (this script with ``--loadgen``, its own process) fills a
   panel with ``--members`` - 2 members (msgpack clients that say hello, join and then only hold
   their connection) and a moderator who posts chat at ``--rate`` messages a second for
   ``--duration`` seconds. One attendee watches the panel's chat in Chromium. The page measures
   itself: frame intervals (``requestAnimationFrame``), long tasks (over 50 ms), the chat nodes
   in the DOM, and, for each message, the time from its sending to its node in the page.
   Then the People tab is opened: the rows it drew of the full member list.

The hub runs pinned to the first core, the load generator to the second; Chromium is not
pinned. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from common import format_table, log, pin_cpus, pinned, raise_nofile  # noqa: E402

from tests.browser.conftest import CHROMIUM_ARGS  # noqa: E402
from tests.support.hub_process import HubProcess, mint  # noqa: E402

PANEL = "bench-panel"
ROOMS_TOML = f'[[rooms]]\nid = "{PANEL}"\nkind = "panel"\ntitle = "Benchmark panel"\n'

# Installed in the page before the chat starts; read back when it ends.
MONITOR_JS = """() => {
  const m = (window.__bench = { frames: [], long: [], latency: [], maxNodes: 0, seen: 0 });
  let last = performance.now();
  const frame = (now) => {
    m.frames.push(now - last);
    last = now;
    const nodes = document.querySelectorAll('[role="log"] > li').length;
    if (nodes > m.maxNodes) m.maxNodes = nodes;
    if (!m.stopped) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) m.long.push(entry.duration);
  }).observe({ type: "longtask" });
  const log = document.querySelector('[role="log"]');
  new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    for (const record of records) {
      for (const node of record.addedNodes) {
        const match = /bench (\\d+) (\\d+)/.exec(node.textContent || "");
        if (match) {
          m.seen += 1;
          m.latency.push(now - Number(match[2]));
        }
      }
    }
  }).observe(log, { childList: true });
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- load generator ------------------------------------------------------------------------------


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    """Hold ``members`` idle joined connections, then post chat at ``rate`` for ``duration``."""
    from websockets.asyncio.client import connect

    from hub.codec import WireFormat, decode_frame, encode_message
    from livehub_client import HubClient

    idle: list[Any] = []
    semaphore = asyncio.Semaphore(50)

    async def member(i: int) -> None:
        async with semaphore:
            ws = await connect(
                args.url, subprotocols=["hub.v1.msgpack"], compression=None, max_size=None
            )  # type: ignore[list-item]
            await ws.send(
                encode_message(
                    WireFormat.MSGPACK,
                    {"id": 1, "op": "hello", "token": mint(f"idle-{i}", "attendee")},
                )
            )
            await ws.send(
                encode_message(WireFormat.MSGPACK, {"id": 2, "op": "join", "room": PANEL})
            )
            replies = 0
            while replies < 2:  # read until both replies came; afterwards the socket is left alone
                for message in decode_frame(WireFormat.MSGPACK, await ws.recv(decode=False)):
                    replies += 1 if "re" in message else 0
            idle.append(ws)

    started = time.monotonic()
    await asyncio.gather(*(member(i) for i in range(args.members)))
    log(f"{len(idle)} idle members joined in {time.monotonic() - started:.1f}s")
    chatter = HubClient(args.url, token=mint("bench-mod", "moderator", name="Bench moderator"))
    await chatter.connect()
    await chatter.join(PANEL)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    sent = 0
    begin = time.monotonic()
    total = int(args.rate * args.duration)
    for i in range(total):
        at = begin + i / args.rate
        await asyncio.sleep(max(0.0, at - time.monotonic()))  # the schedule, not synchronisation
        await chatter.request(
            "chat.send", room=PANEL, text=f"bench {i} {int(time.time() * 1000)} " + "x" * 60
        )
        sent += 1
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - begin}), flush=True)
    # The members stay until the browser has looked at the member list.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await chatter.close()
    for ws in idle:
        ws.transport.abort()  # they stopped reading long ago: no closing handshake to wait for
    return {"done": True}


# --- the browser side ----------------------------------------------------------------------------


def weight(page: Any) -> dict[str, int]:
    entries = page.evaluate(
        "performance.getEntriesByType('resource')"
        ".map(e => [e.name, e.initiatorType, e.decodedBodySize])"
    )
    js = sum(size for name, _, size in entries if name.endswith(".js"))
    css = sum(size for name, _, size in entries if name.endswith(".css"))
    files = sum(1 for name, _, _ in entries if name.endswith((".js", ".css")))
    return {"js": js, "css": css, "files": files}


def static_bytes() -> int:
    """The bytes of every JS and CSS file the hub serves for the app, loaded or not."""
    static = ROOT / "hub" / "static"
    return sum(path.stat().st_size for path in static.rglob("*") if path.suffix in (".js", ".css"))


def first_render(browser: Any, hub: HubProcess, runs: int) -> dict[str, Any]:
    times: list[float] = []
    paints: list[float] = []
    page_weight: dict[str, int] = {}
    for run in range(runs):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{hub.http}/#token={mint(f'first-{run}', 'attendee', name='First')}")
        shown = page.wait_for_function(
            """() => document.querySelector('[role=status]')?.textContent === 'Connected'
                 && document.querySelector('h1')?.textContent === 'Lobby'
                 && performance.now()"""
        ).json_value()
        times.append(float(shown))
        fcp = page.evaluate(
            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
        )
        if fcp is not None:
            paints.append(float(fcp))
        if run == 0:
            page_weight = weight(page)
        context.close()
    return {
        "first_render_ms": {"median": statistics.median(times), "max": max(times), "runs": runs},
        "fcp_ms": {"median": statistics.median(paints)} if paints else None,
        "weight": page_weight,
    }


def busy_panel(browser: Any, hub: HubProcess, options: argparse.Namespace) -> dict[str, Any]:
    command = pinned(
        [
            sys.executable,
            __file__,
            "--loadgen",
            "--url",
            hub.url,
            "--members",
            str(options.members - 2),
            "--rate",
            str(options.rate),
            "--duration",
            str(options.duration),
        ],
        options.loadgen_cpu,
    )
    loader = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = json.loads(loader.stdout.readline() or "{}")  # type: ignore[union-attr]
        if not ready.get("ready"):
            raise RuntimeError("the load generator did not get ready")
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{hub.http}/#token={mint('watcher', 'attendee', name='Watcher')}")
        page.get_by_role("link", name="Benchmark panel").click()
        page.get_by_role("heading", level=1, name="Benchmark panel").wait_for()
        page.get_by_text(f"{options.members:,} people here").first.wait_for(timeout=30_000)
        page.evaluate(MONITOR_JS)
        loader.stdin.write("go\n")  # type: ignore[union-attr]
        loader.stdin.flush()  # type: ignore[union-attr]
        result = json.loads(loader.stdout.readline() or "{}")  # type: ignore[union-attr]
        sent = int(result.get("sent", 0))
        page.wait_for_function(f"() => window.__bench.seen >= {sent}", timeout=30_000)
        # The frames of the chat's own time only: stopped once the last message is on screen.
        measured = page.evaluate("() => { const m = window.__bench; m.stopped = true; return m; }")
        heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
        page.get_by_role("tab", name="People").click()
        rows_list = page.get_by_role("list", name="People in this room").get_by_role("listitem")
        rows_list.nth(9).wait_for()  # the first page is in and drawn
        rows = rows_list.count()
        loader.stdin.write("done\n")  # type: ignore[union-attr]
        loader.stdin.flush()  # type: ignore[union-attr]
        loader.wait(30)
        context.close()
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.wait(5)
    frames = measured["frames"][1:]
    return {
        "sent": sent,
        "seen": measured["seen"],
        "frame_ms": {
            "p50": percentile(frames, 0.5),
            "p99": percentile(frames, 0.99),
            "max": max(frames, default=0),
        },
        "frames_over_50ms": sum(1 for f in frames if f > 50),
        "frames": len(frames),
        "long_tasks": len(measured["long"]),
        "long_task_max_ms": max(measured["long"], default=0),
        "latency_ms": {
            "p50": percentile(measured["latency"], 0.5),
            "p99": percentile(measured["latency"], 0.99),
        },
        "max_chat_nodes": measured["maxNodes"],
        "people_rows": rows,
        "js_heap_mb": heap / 2**20 if heap else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.loadgen:
        result = asyncio.run(loadgen(options))
        print(json.dumps(result), flush=True)
        return 0
    from playwright.sync_api import sync_playwright

    pin_cpus(options)
    raise_nofile(options.members + 100)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rooms = Path(tmp) / "rooms.toml"
        rooms.write_text(ROOMS_TOML, encoding="utf-8")
        hub = HubProcess(
            args=["--rooms", str(rooms)],
            cpu=options.server_cpu,
            env={"HUB_MEDIA_ADDRESSES": "127.0.0.1"},  # the stage's media stays on loopback
        )
        with hub, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            first = first_render(browser, hub, options.runs)
            busy = busy_panel(browser, hub, options)
            browser.close()
    result = {
        "first": first,
        "busy": busy,
        "options": {k: v for k, v in vars(options).items() if k != "url"},
    }
    if options.json:
        print(json.dumps(result, indent=2))
        return 0
    w = first["weight"]
    print(
        format_table(
            [
                ["figure", "value"],
                ["page JS (uncompressed)", f"{w['js'] / 1024:.1f} KB"],
                ["page CSS (uncompressed)", f"{w['css'] / 1024:.1f} KB"],
                ["JS + CSS files", str(w["files"])],
                ["all the app's JS + CSS (staff tools too)", f"{static_bytes() / 1024:.1f} KB"],
                ["first render, median", f"{first['first_render_ms']['median']:.0f} ms"],
                [
                    "first render, max",
                    f"{first['first_render_ms']['max']:.0f} ms ({options.runs} runs)",
                ],
                [
                    "first contentful paint, median",
                    f"{first['fcp_ms']['median']:.0f} ms" if first["fcp_ms"] else "-",
                ],
            ]
        )
    )
    print()
    print(
        format_table(
            [
                ["busy panel", "value"],
                [
                    "members, chat rate",
                    f"{options.members}, {options.rate:g} msg/s for {options.duration:g} s",
                ],
                ["messages sent / on screen", f"{busy['sent']} / {busy['seen']}"],
                [
                    "send -> on screen p50 / p99",
                    f"{busy['latency_ms']['p50']:.0f} / {busy['latency_ms']['p99']:.0f} ms",
                ],
                [
                    "frame interval p50 / p99 / max",
                    "{p50:.1f} / {p99:.1f} / {max:.1f} ms".format(**busy["frame_ms"]),
                ],
                ["frames over 50 ms", f"{busy['frames_over_50ms']} of {busy['frames']}"],
                [
                    "long tasks (> 50 ms), longest",
                    f"{busy['long_tasks']}, {busy['long_task_max_ms']:.0f} ms",
                ],
                ["chat nodes in the DOM, at most", str(busy["max_chat_nodes"])],
                ["member rows drawn (of the list)", str(busy["people_rows"])],
                ["JS heap", f"{busy['js_heap_mb']:.1f} MB" if busy["js_heap_mb"] else "-"],
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
