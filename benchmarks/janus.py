"""What Janus (the VideoRoom behind ``hub serve --sfu``) costs per viewer, and what a panel needs.

Janus runs in a network namespace (``tests/support/janus.py``, as root, log level warnings) pinned
to the first core; one ``hub serve --sfu janus+ws://...`` (memory broker) and this process share
the second core. Here, S speakers publish synthetic video (640x360 by default, VP8 from aiortc,
without simulcast: aiortc cannot send it) to a panel's stage and V viewers subscribe to all of it
through the hub, every peer's ICE on the namespace's veth. For each (S, V) step:

- ``janus_cores``: Janus's CPU time (its threads' ``/proc/PID/task/*/schedstat``) over the
  measuring window, divided by the window: the cores it spends forwarding S x V streams (a
  stream: one track to one viewer);
- ``hub_ms_per_subscribe``: the hub's CPU time from the step's ``subscribe``s until every viewer
  has its first frame, per viewer (the hub only signals: this is what a viewer joining the
  stage costs it; ``hello`` and ``join`` come before and are not counted);
- ``first_frame_p50_ms``/``_p99_ms``: from ``subscribe`` to the viewer's first frame, and
  ``offer_ice_dtls_p50_ms`` the medians of the steps on the way (the SFU's offer received and
  applied, ICE connected, DTLS connected), which say where the time goes;
- ``janus_kb_per_viewer``: Janus's resident memory added by the step's viewers, per viewer;
- ``fps`` (per stream; 30 at full rate: lower means the load generator fell behind and the row
  says little of Janus) and ``kbps`` (per stream, what the viewers received).

A step's viewers subscribe all at once by default: a burst, where their own connection set-up
on the load generator's one core is most of what they wait for. ``--arrival-rate R`` makes them
arrive as an audience does, one by one at R a second on average (exponential gaps).

Viewers count frames without decoding them (aiortc's decoder is replaced), so the load
generator's core goes to receiving.

Extrapolation. Janus forwards packets without transcoding: its cost grows with the streams it
sends, at a given bitrate. For each S the steps' ``janus_cores`` are fitted with a line,
cores = fixed + per_stream x streams (least squares; one step: a line through zero), so
``streams/core`` = 1 / per_stream. A 4-speaker panel watched by 900 people is 4 x 900 = 3,600
video streams at 360p: the cores it needs are fixed + per_stream x 3,600, from the largest S
measured. Read it with its assumptions: packets per second drive the cost, so scale by the
bitrate browsers actually send (``kbps`` here is aiortc's) and by simulcast (thumbnails at a
low layer are fewer packets); audio adds a stream per speaker and viewer at ~50 packets/s; the
fit holds as far as the steps reach (the load generator's one core limits V here).

Browser speakers (``--browser``): the S speakers are pages of Debian's Chromium (Playwright,
fake camera at ``--width`` x ``--height``, 640x360 by default as the web app captures) that
publish their video through the hub as the web app does: with the simulcast layers of
``hub/static/app/sfu.js`` (``SIMULCAST``) when the hello says the SFU takes them, or one layer
with ``--single-layer``. The viewers stay aiortc, counting frames: each gets its newest speaker
(the last to come on stage) at the high layer and the S-1 others at the low one, as the hub
asks Janus. Chromium runs on the second core with the hub and the viewers.

    sudo .venv/bin/python benchmarks/janus.py                          # S = 1 and 4, V = 5..40
    sudo .venv/bin/python benchmarks/janus.py --browser --speakers 4 --viewers 10,20,40
    sudo .venv/bin/python benchmarks/janus.py --speakers 4 --viewers 10,20,40,80 --window 20
    sudo .venv/bin/python benchmarks/janus.py --browser --speakers 4 --viewers 20 --arrival-rate 15
    sudo .venv/bin/python benchmarks/janus.py --speakers 1 --viewers 2 --window 2 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection  # noqa: E402
from stage_viewers import (  # noqa: E402
    CountingDecoder,
    Viewer,
    cpu_seconds,
    no_decoding,
    percentile,
    rss_bytes,
)
from support.hub_process import HubProcess, mint  # noqa: E402
from support.janus import JanusServer  # noqa: E402
from support.rtc_media import SyntheticVideoTrack, host_addresses_only  # noqa: E402
from support.system import JANUS  # noqa: E402

from livehub_client import HubClient  # noqa: E402
from livehub_client.stage import StagePublisher, run_stage  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PANEL_SPEAKERS = 4
PANEL_VIEWERS = 900
FAKE_DEVICE = "--use-fake-device-for-media-stream"


# The synthetic video of the speakers (stopped after each S), and its size.
SOURCES: list[MediaStreamTrack] = []
SIZE = {"width": 640, "height": 360}


def hub_pc_factory() -> Any:
    """A speaker's connection factory: a new connection sending a new synthetic video."""

    def make_pc() -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        SOURCES.append(SyntheticVideoTrack(SIZE["width"], SIZE["height"]))
        pc.addTrack(SOURCES[-1])
        return pc

    return make_pc


async def joined(hub: HubProcess, user: str, role: str, room: str) -> HubClient:
    client = HubClient(hub.url, token=mint(user, role))
    await client.connect()
    await client.request("join", room=room)
    return client


async def until(condition: Any, within: float) -> bool:
    """Whether ``condition()`` came true within ``within`` seconds (polled: frames are counted,
    not signalled)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# A page at the hub's origin publishes its fake camera to the panel's stage as the web app's
# StageFeed does (hub/static/app/sfu.js), through livehub.js: video only, like the aiortc
# speakers, in the app's simulcast layers where the hello says the SFU takes them.
BROWSER_PUBLISH = """async ({token, room, width, height, single}) => {
  const { Hub } = await import("/static/livehub.js");
  const { SIMULCAST } = await import("/static/app/sfu.js");
  const hub = new Hub({ token });
  const hello = await hub.connect();
  await hub.join(room);
  const media = await navigator.mediaDevices.getUserMedia(
    { video: { width, height, frameRate: 30 } });
  const pc = new RTCPeerConnection({ iceServers: hello.ice_servers || [] });
  const layered = Boolean(hello.sfu?.simulcast) && !single;
  pc.addTransceiver(media.getVideoTracks()[0],
    { direction: "sendonly", ...(layered && { sendEncodings: SIMULCAST }) });
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate) return;
    const { candidate: line, sdpMid = null, sdpMLineIndex = null } = candidate.toJSON();
    hub.request("signal", { room, to: "sfu", type: "candidate", leg: "publish",
      candidate: { candidate: line, sdpMid, sdpMLineIndex } }).catch(() => {});
  };
  const answer = new Promise((resolve) => hub.on("signal", (ev) => {
    if (ev.from === "sfu" && ev.leg === "publish" && ev.type === "answer") resolve(ev.sdp);
  }));
  await pc.setLocalDescription();
  await hub.request("signal", { room, to: "sfu", type: "offer", sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: "answer", sdp: await answer });
  window.livehubStage = { hub, pc };
  return pc.getSenders()[0].getParameters().encodings.length;
}"""


async def browser_on_stage(
    options: argparse.Namespace, hub: HubProcess, room: str, speakers: int, browser: Any
) -> list[Any]:
    """``speakers`` Chromium pages publishing on ``room``'s stage (:data:`BROWSER_PUBLISH`),
    once the stage event lists them all, one after the other (the last is every viewer's
    newest speaker): their pages."""
    watcher = await joined(hub, "watcher", "attendee", room)
    stages: list[list[Any]] = []

    def seen(event: dict[str, Any]) -> None:
        if event.get("ev") == "stage":
            stages.append(event["tracks"])

    watching = asyncio.ensure_future(run_stage(watcher, room, on_event=seen))
    pages = []
    try:
        for n in range(speakers):
            page = await browser.new_page()
            pages.append(page)
            await page.goto(f"{hub.http}/static/livehub.js")
            layers = await page.evaluate(
                BROWSER_PUBLISH,
                {"token": mint(f"speaker-{n}", "speaker"), "room": room, "width": SIZE["width"],
                 "height": SIZE["height"], "single": options.single_layer},
            )  # fmt: skip
            if not await until(lambda n=n: bool(stages) and len(stages[-1]) == n + 1, 30):
                raise RuntimeError(f"speaker {n} did not reach the stage in 30 s")
            print(f"  speaker {n}: Chromium sends {layers} layer(s)", file=sys.stderr)
    finally:
        watching.cancel()
        await watcher.close()
    return pages


async def on_stage(hub: HubProcess, room: str, speakers: int) -> list[Any]:
    """``speakers`` publishers on ``room``'s stage, once the stage event lists them all: their
    (client, link, router) each."""
    watcher = await joined(hub, "watcher", "attendee", room)
    stages: list[list[Any]] = []

    def seen(event: dict[str, Any]) -> None:
        if event.get("ev") == "stage":
            stages.append(event["tracks"])

    watching = asyncio.ensure_future(run_stage(watcher, room, on_event=seen))
    publishers = []
    for n in range(speakers):
        client = await joined(hub, f"speaker-{n}", "speaker", room)
        link = StagePublisher(client, room, hub_pc_factory(), retry=False)
        router = asyncio.ensure_future(run_stage(client, room, publisher=link))
        await link.publish()
        publishers.append((client, link, router))
    try:
        if not await until(lambda: bool(stages) and len(stages[-1]) == speakers, 30):
            raise RuntimeError(f"the {speakers} speakers did not all reach the stage in 30 s")
    finally:
        watching.cancel()
        await watcher.close()
    return publishers


async def measure(
    options: argparse.Namespace, hub: HubProcess, hub_pid: int, janus_pid: int
) -> list[dict[str, Any]]:
    if not options.browser:
        return await _measure(options, hub, hub_pid, janus_pid, None)
    from playwright.async_api import async_playwright
    from support.system import CHROMIUM

    from tests.browser.conftest import CHROMIUM_ARGS

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # A camera's 30 frames a second (the fake one's default is 20), as the aiortc
            # speakers send.
            args=[
                "--use-fake-device-for-media-stream=fps=30" if arg == FAKE_DEVICE else arg
                for arg in CHROMIUM_ARGS
            ],
        )
        try:
            return await _measure(options, hub, hub_pid, janus_pid, browser)
        finally:
            await browser.close()


async def _measure(
    options: argparse.Namespace, hub: HubProcess, hub_pid: int, janus_pid: int, browser: Any
) -> list[dict[str, Any]]:
    rows = []
    for speakers in options.speakers:
        room = f"panel-{speakers}-{secrets.token_hex(3)}"
        async with HubClient(hub.url, token=mint("org", "organizer")) as org:
            await org.request("room.create", room=room, kind="panel", title="Bench")
        if browser is not None:
            pages = await browser_on_stage(options, hub, room, speakers, browser)
        else:
            publishers = await on_stage(hub, room, speakers)
        for count in options.viewers:
            rows.append(await step(options, hub, hub_pid, janus_pid, room, speakers, count))
        if browser is not None:
            for page in pages:
                await page.close()
            continue
        for client, link, router in publishers:
            await link.close()
            router.cancel()
            await client.close()
        for source in SOURCES:
            source.stop()
        SOURCES.clear()
    return rows


async def step(
    options: argparse.Namespace,
    hub: HubProcess,
    hub_pid: int,
    janus_pid: int,
    room: str,
    speakers: int,
    count: int,
) -> dict[str, Any]:
    janus_rss_before = rss_bytes(janus_pid)
    clients = await asyncio.gather(
        *(joined(hub, f"viewer-{speakers}-{n}", "attendee", room) for n in range(count))
    )
    viewers = [Viewer(client, room) for client in clients]
    hub_before = cpu_seconds(hub_pid)
    await asyncio.gather(*(v.subscribe() for v in viewers)) if not options.arrival_rate else (
        await arrive(viewers, options.arrival_rate, random.Random(count))
    )
    await until(lambda: all(v.first_frame is not None for v in viewers), 30)
    hub_per_subscribe = (cpu_seconds(hub_pid) - hub_before) / count
    await asyncio.sleep(options.settle)  # let Janus and the viewers reach their steady state
    frames_before = [v.frames for v in viewers]
    bytes_before = CountingDecoder.received_bytes
    janus_before, wall_before = cpu_seconds(janus_pid), time.monotonic()
    await asyncio.sleep(options.window)  # the measuring window
    wall = time.monotonic() - wall_before
    cores = (cpu_seconds(janus_pid) - janus_before) / wall
    received = CountingDecoder.received_bytes - bytes_before
    janus_rss_after = rss_bytes(janus_pid)
    streams = speakers * count
    fps = [(v.frames - b) / wall / speakers for v, b in zip(viewers, frames_before, strict=True)]
    first = [(v.first_frame - v.subscribed_at) * 1000 for v in viewers if v.first_frame is not None]
    phases = {
        phase: round(statistics.median(
            (v.phases[phase] - v.subscribed_at) * 1000 for v in viewers if phase in v.phases))
        for phase in ("signal", "offer", "ice", "dtls") if any(phase in v.phases for v in viewers)
    }  # fmt: skip
    for viewer in viewers:
        await viewer.close()
    row = {
        "speakers": speakers,
        "viewers": count,
        "streams": streams,
        "janus_cores": round(cores, 4),
        "streams_per_core": round(streams / cores) if cores > 0 else None,
        "hub_ms_per_subscribe": round(hub_per_subscribe * 1000, 2),
        "first_frame_p50_ms": round(statistics.median(first)) if first else None,
        "first_frame_p99_ms": round(percentile(first, 0.99)) if first else None,
        "missing_first_frames": count - len(first),
        "offer_ice_dtls_p50_ms": phases,
        "janus_kb_per_viewer": round((janus_rss_after - janus_rss_before) / count / 1024),
        "fps_mean": round(statistics.mean(fps), 1),
        "fps_min": round(min(fps), 1),
        "kbps": round(received * 8 / wall / streams / 1000),
    }
    print(
        "  S={speakers} V={viewers}: Janus {janus_cores} cores ({streams_per_core} streams/core), "
        "hub {hub_ms_per_subscribe} ms/subscribe, first frame p50 {first_frame_p50_ms} ms "
        "p99 {first_frame_p99_ms} ms (p50 offer/ICE/DTLS {offer_ice_dtls_p50_ms}), "
        "{janus_kb_per_viewer} KB/viewer, {fps_mean} fps "
        "(min {fps_min}), {kbps} kbps".format(**row),
        file=sys.stderr,
        flush=True,
    )
    return row


async def arrive(viewers: list[Viewer], rate: float, rng: random.Random) -> None:
    """Subscribe ``viewers`` one after the other as people arrive at a panel: at ``rate`` a
    second on average, at random (exponential gaps, a Poisson process). The gaps are the
    arrivals being modelled, not synchronisation."""
    for viewer in viewers:
        await asyncio.sleep(rng.expovariate(rate))
        await viewer.subscribe()


def fit(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """(fixed, per_stream) of the least-squares line cores = fixed + per_stream x streams; with
    one point, or streams all alike, a line through zero."""
    xs = [float(r["streams"]) for r in rows]
    ys = [float(r["janus_cores"]) for r in rows]
    if len(set(xs)) < 2:
        return 0.0, sum(ys) / sum(xs)
    mean_x, mean_y = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return max(0.0, mean_y - slope * mean_x), slope


def extrapolate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Streams per core for each S, and the cores a 4-speaker panel watched by 900 needs."""
    out: dict[str, Any] = {"per_speakers": {}}
    for speakers in sorted({r["speakers"] for r in rows}):
        fixed, per_stream = fit([r for r in rows if r["speakers"] == speakers])
        out["per_speakers"][speakers] = {
            "fixed_cores": round(fixed, 4),
            "streams_per_core": round(1 / per_stream) if per_stream > 0 else None,
        }
    biggest = max(r["speakers"] for r in rows)
    fixed, per_stream = fit([r for r in rows if r["speakers"] == biggest])
    streams = PANEL_SPEAKERS * PANEL_VIEWERS
    out["panel"] = {
        "speakers": PANEL_SPEAKERS,
        "viewers": PANEL_VIEWERS,
        "video_streams": streams,
        "fitted_on_speakers": biggest,
        "janus_cores": round(fixed + per_stream * streams, 2),
        "kbps_per_stream": round(statistics.mean(r["kbps"] for r in rows)),
    }
    return out


def pin_janus(pid: int, cpu: int) -> None:
    """Pin every thread Janus has now to ``cpu``; the threads it makes later inherit it."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True,
                   capture_output=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--speakers", default="1,4", help="speaker counts (1,4)")
    parser.add_argument("--viewers", default="5,10,20,40", help="viewer counts per step")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured a step")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--browser",
        action="store_true",
        help="speakers are Chromium pages, simulcasting as the web app does",
    )
    parser.add_argument(
        "--single-layer", action="store_true", help="with --browser: one layer, no simulcast"
    )
    parser.add_argument(
        "--event-loops",
        type=int,
        default=None,
        help="Janus's event_loops (default: its own, a thread per handle)",
    )
    parser.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        help="viewers subscribe one by one at this rate a second (Poisson); default: at once",
    )
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    options.speakers = [int(n) for n in options.speakers.split(",")]
    options.viewers = [int(n) for n in options.viewers.split(",")]
    SIZE.update(width=options.width, height=options.height)
    cpus = sorted(os.sched_getaffinity(0))
    pin = not options.no_pin and len(cpus) >= 2
    with JanusServer(binary=JANUS, debug_level=3, event_loops=options.event_loops) as janus:
        assert janus.pid is not None
        deadline = time.monotonic() + 10
        while options.browser and not janus.namespace.settled() and time.monotonic() < deadline:
            time.sleep(0.1)  # poll: Chromium must start once the veth's addresses are settled
        if pin:
            pin_janus(janus.pid, cpus[0])
        env = {"HUB_SFU": janus.sfu_url}
        hub = HubProcess(cpu=cpus[1] if pin else None, env=env)
        hub.start()
        try:
            assert hub.process is not None
            if pin:
                os.sched_setaffinity(0, {cpus[1]})
            print(f"$ {' '.join(hub.command)}  (env {env}); Janus pid {janus.pid}"
                  f"{f' on cpu {cpus[0]}' if pin else ''}", file=sys.stderr)  # fmt: skip
            no_decoding()
            with host_addresses_only(janus.peer_address):
                rows = asyncio.run(measure(options, hub, hub.process.pid, janus.pid))
        finally:
            hub.stop()
    summary = extrapolate(rows)
    if options.json:
        print(json.dumps({"rows": rows, "extrapolation": summary}, indent=2))
        return 0
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
    for speakers, fitted in summary["per_speakers"].items():
        print(f"S={speakers}: {fitted['streams_per_core']} streams per Janus core "
              f"(fixed {fitted['fixed_cores']} cores)")  # fmt: skip
    panel = summary["panel"]
    print(
        f"A {panel['speakers']}-speaker panel watched by {panel['viewers']}: "
        f"{panel['video_streams']} video streams at 360p, about {panel['janus_cores']} Janus "
        f"cores (fitted on S={panel['fitted_on_speakers']}, at {panel['kbps_per_stream']} kbps "
        "per stream; see the docstring for what scales it)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
