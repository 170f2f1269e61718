"""Medians, noise, the targets of the issue, and the markdown that holds them.

A cell is the median of the OK runs of one (pipeline, rate); "±N%" after it is half the range of
those runs as a percentage of the median: the noise between repeats. Failed runs are left out of
every median and listed at the end.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .runner import Measurement

Key = Callable[[Measurement], float | int | None]

COLLECTORS = ("collector", "collector-tuned", "collector-native", "collector-native-tuned")
# The native data plane's own targets (issue 14): CPU per delivered event at NATIVE_CPU_RATE, and the
# loss-free rate with the defaults and tuned; the ratios against the Python plane and the peer are
# taken from the same run.
NATIVE_CPU_US = 2.0
NATIVE_CPU_RATE = 100_000
NATIVE_LOSS_FREE = {"collector-native": 200_000, "collector-native-tuned": 400_000}
# the collector's max loss-free rate must be this many times theirs
PEERS = {"bpftrace-kcat": 2.0, "naive-bcc": 3.0}
CPU_TARGET_US = 3.0
P99_TARGET_MS = 100.0
P99_TARGET_RATE = 20_000
IDLE_MARGIN_MS = 50.0
SUSTAINED_RATE = 50_000
SUSTAINED_SECONDS = 60.0


def rate_label(rate: int) -> str:
    return "max" if rate == 0 else f"{rate:,}"


def rate_order(rate: int) -> float:
    return math.inf if rate == 0 else rate


def values(runs: Sequence[Measurement], key: Key) -> list[float]:
    return [float(v) for v in (key(r) for r in runs if r.ok) if v is not None]


def median(runs: Sequence[Measurement], key: Key) -> float | None:
    v = values(runs, key)
    return statistics.median(v) if v else None


def spread_pct(runs: Sequence[Measurement], key: Key) -> float | None:
    v = values(runs, key)
    mid = statistics.median(v) if v else 0.0
    if len(v) < 2 or mid == 0:
        return None
    return 100.0 * (max(v) - min(v)) / 2 / abs(mid)


def fmt(v: float | None, digits: int = 0) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def cell(runs: Sequence[Measurement], key: Key, digits: int = 0) -> str:
    s = spread_pct(runs, key)
    noise = f" ±{s:.0f}%" if s is not None and s >= 0.5 else ""
    return fmt(median(runs, key), digits) + noise


def select(ms: Sequence[Measurement], mode: str, pipeline: str, rate: int | None = None) -> list[Measurement]:
    return [m for m in ms if m.mode == mode and m.pipeline == pipeline and (rate is None or m.rate == rate)]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# -- the sweep ------------------------------------------------------------------------------------


def sweep_table(ms: Sequence[Measurement], pipelines: Sequence[str], rates: Sequence[int]) -> str:
    header = [
        "pipeline",
        "offered/s",
        "runs OK",
        "generated/s",
        "delivered/s",
        "lost",
        "loss %",
        "CPU µs/event",
        "p50 ms",
        "p99 ms",
        "peak RSS MB",
        "load µs/open",
        "load slowdown",
    ]
    rows = []
    for r in sorted(rates, key=rate_order):
        base = median(select(ms, "sweep", "untraced", r), lambda m: m.load_us_per_op)
        for p in ("untraced", *pipelines):
            runs = select(ms, "sweep", p, r)
            if not runs:
                continue
            ok = sum(m.ok for m in runs)
            per_op = median(runs, lambda m: m.load_us_per_op)
            slow = "" if p == "untraced" or per_op is None or not base else f"x{per_op / base:.2f}"
            traced = p != "untraced"
            rows.append(
                [
                    p,
                    rate_label(r),
                    f"{ok}/{len(runs)}" + ("" if ok == len(runs) else " **FAILED**"),
                    cell(runs, lambda m: m.generated_rate),
                    cell(runs, lambda m: m.delivered_rate) if traced else "",
                    fmt(median(runs, lambda m: m.lost)) if traced else "",
                    fmt(median(runs, lambda m: m.loss_pct), 2) if traced else "",
                    cell(runs, lambda m: m.cpu_us_per_event, 2) if traced else "",
                    cell(runs, lambda m: m.lat_p50_ms, 1) if traced else "",
                    cell(runs, lambda m: m.lat_p99_ms, 1) if traced else "",
                    fmt(median(runs, lambda m: None if m.rss_kb is None else m.rss_kb / 1024))
                    if traced
                    else "",
                    cell(runs, lambda m: m.load_us_per_op, 2),
                    slow,
                ]
            )
    return table(header, rows, ["---", "---:", ":---", *["---:"] * 10])


def max_rate_table(ms: Sequence[Measurement], pipelines: Sequence[str]) -> str:
    base = median(select(ms, "sweep", "untraced", 0), lambda m: m.load_s)
    rows = []
    for p in ("untraced", *pipelines):
        runs = select(ms, "sweep", p, 0)
        wall = median(runs, lambda m: m.load_s)
        if wall is None:
            continue
        ratio = "" if p == "untraced" or not base else f"x{wall / base:.2f}"
        rows.append([p, fmt(median(runs, lambda m: m.generated)), cell(runs, lambda m: m.load_s, 3), ratio])
    return table(["pipeline", "opens", "wall s", "slowdown"], rows, ["---", "---:", "---:", "---:"])


# -- the targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossFree:
    """Where a pipeline stops being loss-free in the sweep."""

    rate: float  # generated/s at the highest offered rate where every run delivered everything; 0: none
    offered: int | None  # that offered rate
    ceiling: float | None  # generated/s at the lowest offered rate above it that lost; None: none did

    def text(self) -> str:
        got = f"{self.rate:,.0f}/s" if self.offered is not None else "none"
        above = f", lost at {self.ceiling:,.0f}/s" if self.ceiling is not None else ", no loss at any rate"
        return f"{got}{above}"


def loss_free(ms: Sequence[Measurement], pipeline: str, rates: Sequence[int]) -> LossFree:
    best: LossFree = LossFree(0.0, None, None)
    for r in sorted(rates, key=rate_order):
        runs = [m for m in select(ms, "sweep", pipeline, r) if m.ok]
        gen = median(runs, lambda m: m.generated_rate)
        if not runs or gen is None:
            continue
        if all(m.lost <= 0 for m in runs):
            if gen >= best.rate:
                best = LossFree(gen, r, None)
        elif best.ceiling is None:
            best = LossFree(best.rate, best.offered, gen)
    return best


def _bound(x: float) -> str:
    return "∞" if x == math.inf else f"{x:.1f}"


def _ratio_verdict(ours: LossFree, peer: LossFree, factor: float) -> tuple[str, str]:
    if peer.offered is None and peer.ceiling is None:
        return "no successful run of the peer", "NOT RUN"
    if ours.offered is None:
        return f"the collector lost events at every rate ({ours.text()})", "FAIL"
    # each true loss-free maximum lies between its highest loss-free rate and the next rate that
    # lost (unbounded when none did), so the ratio is known only within these bounds
    low = ours.rate / peer.ceiling if peer.ceiling is not None else 0.0
    high = ours.ceiling / peer.rate if ours.ceiling is not None and peer.rate > 0 else math.inf
    span = _bound(low) if low == high else f"{_bound(low)} to {_bound(high)}"
    text = f"{ours.text()} vs {peer.text()}: ratio {span}"
    if low >= factor:
        return text, "PASS"
    if high < factor:
        return text, "FAIL"
    return text + " (the sweep's rates do not decide it)", "INCONCLUSIVE"


def targets(
    ms: Sequence[Measurement],
    pipelines: Sequence[str],
    rates: Sequence[int],
    max_latency_ms: dict[str, int],
) -> list[list[str]]:
    """Rows of (target, pipeline, measured, verdict)."""
    rows: list[list[str]] = []
    ours = [p for p in COLLECTORS if p in pipelines]
    for c in ours:
        lf = loss_free(ms, c, rates)
        for peer, factor in PEERS.items():
            if peer not in pipelines:
                continue
            text, verdict = _ratio_verdict(lf, loss_free(ms, peer, rates), factor)
            rows.append([f"max loss-free rate ≥ {factor:g}x {peer}", c, text, verdict])
        cpu = (
            median(select(ms, "sweep", c, lf.offered), lambda m: m.cpu_us_per_event)
            if lf.offered is not None
            else None
        )
        verdict = "NOT RUN" if cpu is None else ("PASS" if cpu <= CPU_TARGET_US else "FAIL")
        at = f" at {rate_label(lf.offered)}/s" if lf.offered is not None else ""
        rows.append(
            [f"CPU per event at loss-free max ≤ {CPU_TARGET_US:g} µs", c, f"{fmt(cpu, 2)} µs{at}", verdict]
        )
        p99 = median(select(ms, "sweep", c, P99_TARGET_RATE), lambda m: m.lat_p99_ms)
        verdict = "NOT RUN" if p99 is None else ("PASS" if p99 <= P99_TARGET_MS else "FAIL")
        rows.append(
            [f"p99 latency at {P99_TARGET_RATE:,}/s ≤ {P99_TARGET_MS:g} ms", c, f"{fmt(p99, 1)} ms", verdict]
        )
        lone = [x for m in select(ms, "idle", c) if m.ok for x in m.latencies_ms]
        limit = max_latency_ms.get(c, 100) + IDLE_MARGIN_MS
        lone_lost = sum(m.lost for m in select(ms, "idle", c) if m.ok)
        if not select(ms, "idle", c):
            rows.append([f"lone event ≤ max_latency_ms + {IDLE_MARGIN_MS:g} ms", c, "—", "NOT RUN"])
        else:
            worst = max(lone) if lone else None
            verdict = "PASS" if worst is not None and worst <= limit and lone_lost == 0 else "FAIL"
            text = f"worst {fmt(worst, 1)} ms of {len(lone)} (limit {limit:g} ms)" + (
                f", {lone_lost} lost" if lone_lost else ""
            )
            rows.append([f"lone event ≤ max_latency_ms + {IDLE_MARGIN_MS:g} ms", c, text, verdict])
    rows += native_targets(ms, pipelines, rates)
    sustained = select(ms, "sustained", "collector")
    if sustained:
        ok = [m for m in sustained if m.ok]
        lost = [m.lost for m in ok]
        secs = median(ok, lambda m: m.load_s) or 0.0
        rate = median(ok, lambda m: m.generated_rate) or 0.0
        verdict = "PASS" if ok and len(ok) == len(sustained) and max(lost) <= 0 else "FAIL"
        text = f"lost {lost} of {[m.generated for m in ok]} at {fmt(rate)}/s for {fmt(secs)} s"
        if len(ok) < len(sustained):
            text += f"; {len(sustained) - len(ok)} run(s) FAILED"
        if verdict == "PASS" and (secs < SUSTAINED_SECONDS * 0.95 or rate < SUSTAINED_RATE * 0.95):
            verdict = "INCONCLUSIVE"  # loss-free, but not at the rate or for the time the target asks
            text += " (short of the target's rate or time)"
        target = f"zero loss at {SUSTAINED_RATE:,}/s for {SUSTAINED_SECONDS:g} s, default config"
        rows.append([target, "collector", text, verdict])
    return rows


def native_targets(
    ms: Sequence[Measurement], pipelines: Sequence[str], rates: Sequence[int]
) -> list[list[str]]:
    """The native plane's CPU at NATIVE_CPU_RATE (with its ratio to the Python plane's and the peer's in
    the same run) and its loss-free rate."""
    rows: list[list[str]] = []

    def cpu(p: str) -> float | None:
        return median(select(ms, "sweep", p, NATIVE_CPU_RATE), lambda m: m.cpu_us_per_event)

    for c, (python, floor) in (
        ("collector-native", ("collector", NATIVE_LOSS_FREE["collector-native"])),
        ("collector-native-tuned", ("collector-tuned", NATIVE_LOSS_FREE["collector-native-tuned"])),
    ):
        if c not in pipelines:
            continue
        ours = cpu(c)
        ratios = [
            f"x{ours / other:.2f} of {p}'s {other:.2f}"
            for p in (python, "bpftrace-kcat")
            if ours is not None and (other := cpu(p))
        ]
        text = f"{fmt(ours, 2)} µs" + (f" ({'; '.join(ratios)})" if ratios else "")
        verdict = "NOT RUN" if ours is None else ("PASS" if ours <= NATIVE_CPU_US else "FAIL")
        rows.append([f"CPU per event at {NATIVE_CPU_RATE:,}/s ≤ {NATIVE_CPU_US:g} µs", c, text, verdict])
        lf = loss_free(ms, c, rates)
        if lf.offered is None and lf.ceiling is None:
            verdict = "NOT RUN"
        elif lf.rate >= floor * 0.95:  # the load generator's paced rate falls a little short of the offer
            verdict = "PASS"
        elif lf.ceiling is None:  # no rate lost, and none high enough was offered
            verdict = "INCONCLUSIVE"
        else:
            verdict = "FAIL"
        rows.append([f"max loss-free rate ≥ {floor:,}/s", c, lf.text(), verdict])
    return rows


def targets_table(rows: list[list[str]]) -> str:
    return table(["target", "pipeline", "measured (medians)", "verdict"], rows, ["---", "---", "---", ":---"])


# -- the other modes and every run ----------------------------------------------------------------


def idle_table(ms: Sequence[Measurement]) -> str:
    rows = []
    for p in COLLECTORS:
        runs = [m for m in select(ms, "idle", p) if m.ok]
        lat = sorted(x for m in runs for x in m.latencies_ms)
        if not lat:
            continue
        shown = ", ".join(f"{x:.0f}" for x in lat)
        rows.append([p, str(len(lat)), fmt(statistics.median(lat), 1), fmt(lat[-1], 1), shown])
    return table(
        ["pipeline", "events", "median ms", "worst ms", "every event, ms"], rows, ["---", *["---:"] * 4]
    )


def runs_table(ms: Sequence[Measurement]) -> str:
    header = [
        "mode",
        "pipeline",
        "offered/s",
        "run",
        "generated",
        "delivered",
        "lost",
        "own word",
        "CPU s",
        "window s",
        "p99 ms",
        "broker CPU s",
        "other CPU (cores)",
        "steal s",
        "status",
    ]
    rows = []
    for m in ms:
        other = m.background_cpu_s / m.window_s if m.background_cpu_s is not None and m.window_s else None
        rows.append(
            [
                m.mode,
                m.pipeline,
                "lone" if m.mode == "idle" else rate_label(m.rate),
                str(m.repeat),
                str(m.generated),
                str(m.delivered) if m.pipeline != "untraced" else "",
                str(m.lost) if m.pipeline != "untraced" else "",
                m.self_reported or "",
                fmt(m.cpu_s, 2),
                fmt(m.window_s, 1),
                fmt(m.lat_p99_ms, 1),
                fmt(m.broker_cpu_s, 2),
                fmt(other, 2),
                fmt(m.steal_s, 2),
                "OK" if m.ok else f"**{m.status[:200]}**",
            ]
        )
    return table(header, rows, ["---", "---", "---:", "---:", *["---:"] * 3, "---", *["---:"] * 6, "---"])
