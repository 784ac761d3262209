"""What the embedded SFU (the aiortc relay inside a node) can carry: viewers per core.

One ``hub serve`` (memory broker, pinned to the first core, ``HUB_MEDIA_ADDRESSES=127.0.0.1``,
no relay capacity) and, in this process pinned to the second core, S speakers publishing
synthetic video (640x360 by default) to a panel's stage and V viewers subscribing to all of
it. For each (S, V) step the hub's CPU time over a measuring window gives the cores it used;
the viewers count the frames they get without decoding them (aiortc would otherwise decode on
the load generator's core), and time from ``subscribe`` to their first frame.

    .venv/bin/python benchmarks/relay.py                 # S = 1 and 4, V = 2, 4, 8, 16
    .venv/bin/python benchmarks/relay.py --speakers 1 --viewers 5,10,20 --json  # {"rows": [...]}
    .venv/bin/python benchmarks/relay.py --kind audio --speakers 4 --viewers 4,8,16

A row's ``streams/core`` is the streams the relay encoded (tracks x V) divided by the cores it
used, and ``fps`` the frames each viewer got per track and second (30 for video at full rate,
50 for audio): the relay's capacity (``HUB_RELAY_CAPACITY``, in video streams) stays below the
streams a core carries at full rate. ``--kind audio`` measures what an audio stream costs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection  # noqa: E402
from aiortc.mediastreams import AudioStreamTrack  # noqa: E402
from stage_viewers import Viewer, cpu_seconds, no_decoding, rss_bytes  # noqa: E402
from support.hub_process import HubProcess, mint  # noqa: E402
from support.rtc_media import SyntheticVideoTrack, loopback_only  # noqa: E402

from livehub_client import HubClient  # noqa: E402
from livehub_client.stage import StagePublisher, run_stage  # noqa: E402


def publisher_pc(options: argparse.Namespace, sources: list[MediaStreamTrack]) -> RTCPeerConnection:
    """A speaker's connection with its synthetic tracks (kept in ``sources`` to stop them)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if options.kind in ("video", "both"):
        sources.append(SyntheticVideoTrack(options.width, options.height))
        pc.addTrack(sources[-1])
    if options.kind in ("audio", "both"):
        sources.append(AudioStreamTrack())
        pc.addTrack(sources[-1])
    return pc


async def measure(options: argparse.Namespace, hub: HubProcess, pid: int) -> list[dict[str, Any]]:
    rows = []
    for speakers in options.speakers:
        room = f"panel-{speakers}"
        async with HubClient(hub.url, token=mint("org", "organizer")) as org:
            await org.request("room.create", room=room, kind="panel", title="Bench")
        sources: list[MediaStreamTrack] = []
        publishers = []
        for n in range(speakers):
            client = HubClient(hub.url, token=mint(f"speaker-{n}", "speaker"))
            await client.connect()
            await client.request("join", room=room)

            link = StagePublisher(
                client, room, functools.partial(publisher_pc, options, sources), retry=False
            )
            router = asyncio.ensure_future(run_stage(client, room, publisher=link))
            await link.publish()
            await asyncio.wait_for(link.answered.wait(), 20)
            publishers.append((client, link, router))
        for count in options.viewers:
            rows.append(await step(options, hub, pid, room, speakers, count))
        for client, link, router in publishers:
            await link.close()
            router.cancel()
            await client.close()
        for source in sources:
            source.stop()
    return rows


async def step(
    options: argparse.Namespace, hub: HubProcess, pid: int, room: str, speakers: int, count: int
) -> dict[str, Any]:
    rss_before = rss_bytes(pid)
    viewers = []
    for n in range(count):
        client = HubClient(hub.url, token=mint(f"viewer-{n}"))
        await client.connect()
        await client.request("join", room=room)
        viewers.append(Viewer(client, room))
    await asyncio.gather(*(v.subscribe() for v in viewers))
    deadline = time.monotonic() + 30
    while any(v.first_frame is None for v in viewers) and time.monotonic() < deadline:  # noqa: ASYNC110 -- frames are counted, not signalled
        await asyncio.sleep(0.05)
    await asyncio.sleep(options.settle)  # let the relay reach its steady state
    frames_before = [v.frames for v in viewers]
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(options.window)
    cores = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
    tracks = speakers * (2 if options.kind == "both" else 1)
    fps = [
        (v.frames - b) / options.window / tracks
        for v, b in zip(viewers, frames_before, strict=True)
    ]
    first = sorted(
        (v.first_frame - v.subscribed_at) * 1000 for v in viewers if v.first_frame is not None
    )
    rss_after = rss_bytes(pid)
    for viewer in viewers:
        await viewer.close()
    streams = tracks * count
    row = {
        "kind": options.kind,
        "speakers": speakers,
        "viewers": count,
        "streams": streams,
        "hub_cores": round(cores, 3),
        "streams_per_core": round(streams / cores, 1) if cores > 0 else None,
        "fps_mean": round(statistics.mean(fps), 1),
        "fps_min": round(min(fps), 1),
        "first_frame_p50_ms": round(statistics.median(first)) if first else None,
        "first_frame_max_ms": round(first[-1]) if first else None,
        "missing_first_frames": count - len(first),
        "rss_per_viewer_kb": round((rss_after - rss_before) / count / 1024),
    }
    print(
        "  {kind} S={speakers} V={viewers}: {hub_cores} cores, {streams_per_core} streams/core, "
        "{fps_mean} fps (min {fps_min}), first frame p50 {first_frame_p50_ms} ms "
        "(max {first_frame_max_ms}), {rss_per_viewer_kb} KB/viewer".format(**row),
        file=sys.stderr,
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", default="1,4", help="speaker counts (1,4)")
    parser.add_argument("--viewers", default="2,4,8,16", help="viewer counts per step")
    parser.add_argument("--kind", choices=("video", "audio", "both"), default="video")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured a step")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    options.speakers = [int(n) for n in options.speakers.split(",")]
    options.viewers = [int(n) for n in options.viewers.split(",")]
    cpus = sorted(os.sched_getaffinity(0))
    pin = not options.no_pin and len(cpus) >= 2
    env = {"HUB_MEDIA_ADDRESSES": "127.0.0.1", "HUB_RELAY_CAPACITY": "100000"}
    hub = HubProcess(cpu=cpus[0] if pin else None, env=env)
    hub.start()
    try:
        assert hub.process is not None
        if pin:
            os.sched_setaffinity(0, {cpus[1]})
        print(f"$ {' '.join(hub.command)}  (env {env})", file=sys.stderr)
        no_decoding()
        with loopback_only():
            rows = asyncio.run(measure(options, hub, hub.process.pid))
    finally:
        hub.stop()
    if options.json:
        print(json.dumps({"rows": rows}, indent=2))
    else:
        header = list(rows[0]) if rows else []
        print(" | ".join(header))
        for row in rows:
            print(" | ".join(str(row[k]) for k in header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
