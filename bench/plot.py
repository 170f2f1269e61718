"""The sweep as a picture: delivered vs offered rate, loss %, CPU µs per event (medians)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .report import CPU_TARGET_US, median, rate_order, select
from .runner import Measurement

STYLE = {
    "collector": ("tab:blue", "o"),
    "collector-tuned": ("tab:cyan", "s"),
    "collector-native": ("tab:green", "D"),
    "collector-native-tuned": ("tab:olive", "P"),
    "bpftrace-kcat": ("tab:orange", "^"),
    "naive-bcc": ("tab:red", "v"),
}


def pyplot() -> Any:
    """matplotlib.pyplot with a file backend, or None when the bench extra is not installed."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def plot(
    ms: Sequence[Measurement], pipelines: Sequence[str], rates: Sequence[int], path: Path, title: str
) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, (top, mid, bottom) = plt.subplots(3, 1, figsize=(8, 10), sharex=True)
    lo, hi = math.inf, 0.0
    for p in pipelines:
        # x is what the load generated: for "max" that is the pipeline's own achieved rate
        points = []
        for r in sorted(rates, key=rate_order):
            runs = select(ms, "sweep", p, r)
            x = median(runs, lambda m: m.generated_rate)
            if x is None:
                continue
            points.append(
                (
                    x,
                    median(runs, lambda m: m.delivered_rate),
                    median(runs, lambda m: m.loss_pct),
                    median(runs, lambda m: m.cpu_us_per_event),
                )
            )
        if not points:
            continue
        color, marker = STYLE.get(p, ("black", "x"))
        xs = [pt[0] for pt in points]
        lo, hi = min(lo, *xs), max(hi, *xs)
        for ax, i in ((top, 1), (mid, 2), (bottom, 3)):
            ys = [float("nan") if pt[i] is None else pt[i] for pt in points]
            ax.plot(xs, ys, marker=marker, color=color, label=p)
    if hi:
        top.plot([lo, hi], [lo, hi], color="grey", linestyle=":", linewidth=1, label="delivered = offered")
    bottom.axhline(CPU_TARGET_US, color="grey", linestyle="--", linewidth=1, label="target")
    top.set_ylabel("delivered events/s")
    mid.set_ylabel("lost, % of generated")
    bottom.set_ylabel("pipeline CPU µs / delivered event")
    bottom.set_xlabel("offered file_open events/s (as generated; the last point is 'as fast as possible')")
    top.set_title(title)
    for ax in (top, mid, bottom):
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
    top.set_yscale("log")
    bottom.set_yscale("log")
    top.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
