"""How a rehearsal shows its figures: the live progress line while it runs, the table and the
verdict at the end (Rich), the JSON file and the latency plot (Matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from livehub_client.rehearsal.record import P99_TARGET, Recorder


def progress(recorder: Recorder, elapsed: float, connected: int, rate: float) -> Table:
    """The live display: phase, time, people connected, operations a second, errors."""
    table = Table(title="hub rehearse", show_header=True, expand=False)
    for column in ("phase", "elapsed", "connected", "ops/s", "done", "errors"):
        table.add_column(column, justify="right")
    table.add_row(
        recorder.phase,
        f"{elapsed:.0f} s",
        str(connected),
        f"{rate:.0f}",
        str(recorder.done_count()),
        str(recorder.error_count()),
    )
    return table


def results_table(summary: dict[str, Any]) -> Table:
    """One row per operation: count, errors by code, p50/p95/p99/max latency, per second."""
    table = Table(title=f"Operations ({summary['elapsed_s']} s)")
    table.add_column("operation", no_wrap=True, min_width=14)
    for column in ("count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "per s"):
        table.add_column(column, justify="right")
    for name, op in summary["ops"].items():
        errors = ", ".join(f"{code} {n}" for code, n in op["errors"].items()) or "0"
        p99 = f"{op['p99_ms']:.1f}"
        if op["p99_ms"] > P99_TARGET * 1000:
            p99 = f"[red]{p99}[/red]"
        table.add_row(
            name,
            str(op["count"]),
            errors,
            f"{op['p50_ms']:.1f}",
            f"{op['p95_ms']:.1f}",
            p99,
            f"{op['max_ms']:.1f}",
            f"{op['per_s']:.1f}",
        )
    return table


def print_results(console: Console, summary: dict[str, Any]) -> None:
    """The table, the checks and the verdict line."""
    console.print(results_table(summary))
    checks = summary["checks"]
    if checks:
        console.print(
            "checks: " + ", ".join(f"{key} {value}" for key, value in sorted(checks.items()))
        )
    verdict = summary["verdict"]
    if verdict["pass"]:
        console.print("[bold green]verdict: PASS[/bold green] (no errors, nothing lost, "
                      f"election exact, every p99 under {P99_TARGET * 1000:.0f} ms)")  # fmt: skip
    else:
        console.print(f"[bold red]verdict: FAIL[/bold red]: {'; '.join(verdict['reasons'])}")


def write_json(path: Path, summary: dict[str, Any]) -> None:
    """The same figures as the table, for CI."""
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def plot(path: Path, recorder: Recorder) -> None:
    """Latency over time per operation (points), the phases shaded and named, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(12, 6))
    for index, (name, start, end) in enumerate(recorder.phases):
        stop = end if end is not None else start
        axes.axvspan(start, stop, color="0.92" if index % 2 else "0.85", zorder=0)
        # Short phases sit close together: their names are staggered.
        height = 1.0 - 0.04 * (index % 3)
        axes.text(start, height, f" {name}", transform=axes.get_xaxis_transform(), va="top", size=8)
    colours = pyplot.get_cmap("tab20").colors  # type: ignore[attr-defined]
    for number, (name, stats) in enumerate(sorted(recorder.ops.items())):
        if not stats.latencies:
            continue
        times = list(stats.times)
        latencies = [latency * 1000 for latency in stats.latencies]
        colour = colours[number % len(colours)]
        axes.scatter(times, latencies, s=2, label=name, alpha=0.6, color=colour)
    axes.axhline(P99_TARGET * 1000, color="red", linewidth=0.8, linestyle="--")
    axes.set_yscale("log")
    axes.set_xlabel("seconds since the start")
    axes.set_ylabel("latency (ms, log scale)")
    axes.set_title("hub rehearse: latency over time per operation")
    axes.legend(loc="upper right", fontsize=7, markerscale=4, ncols=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
