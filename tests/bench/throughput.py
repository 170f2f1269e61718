"""Collector throughput: readers.wakeup_events x offered exec rate, medians over repeats.

    .venv/bin/python -m tests.bench.throughput [--quick] [--repeats N] [--out DIR]

Each run starts the real collector (`producer.cli run --duration`) against a broker of
its own on 127.0.0.1:19092, drives `execload` at one rate, and reads the final ledger
from the log line `ledger_final` and from the final drop report on `<prefix>.drops`.
Writes throughput.md (median table), throughput.json (every run) and throughput.png.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from producer.ledger import DROP_REASONS
from tests.helpers import ROOT, Broker, CollectorRunner, LoadPrograms, final_report

# A broker of our own, so the test suite's broker on 9092 never sees this load.
KAFKA_ENV = {
    "EKP_KAFKA_PORT": "19092",
    "EKP_KAFKA_CONTROLLER_PORT": "19093",
    "EKP_KAFKA_RUN": "/tmp/ekp-bench-kafka",
}
BOOTSTRAP = "127.0.0.1:19092"
WAKEUPS = (1, 32)
RATES = (2000, 5000, 10000, 0)
QUICK_RATES = (2000, 0)
# --duration counts from about when the readers start; this much beyond the load leaves
# ~3 s for the tail to drain before the collector stops itself.
MARGIN_S = 3.5
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    wakeup_events: int
    rate: int  # offered execs/s; 0 = as fast as execload can
    repeat: int
    prefix: str
    status: str = "OK"
    execs: int = 0
    exec_failed: int = 0
    load_s: float = 0.0
    seen: int = 0
    delivered: int = 0
    dropped: int = 0
    in_flight: int = 0
    drops: dict[str, int] = field(default_factory=dict)  # per reason, from the final drop report
    cpu_total_s: float = 0.0  # the report's cpu_seconds: includes BCC's compile at start
    cpu_load_s: float = 0.0  # cpu_total_s minus what the collector had used when the load began

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    def execs_per_s(self) -> float | None:
        return self.execs / self.load_s if self.load_s else None

    def delivered_per_s(self) -> float | None:
        return self.delivered / self.load_s if self.load_s else None

    def drop_pct(self) -> float | None:
        return 100.0 * self.dropped / self.seen if self.seen else None

    def cpu_per_1k(self) -> float | None:
        return 1000.0 * self.cpu_load_s / self.seen if self.seen else None

    def row(self) -> dict[str, Any]:
        derived = {
            "execs_per_s": self.execs_per_s(),
            "delivered_per_s": self.delivered_per_s(),
            "drop_pct": self.drop_pct(),
            "cpu_s_per_1000_events": self.cpu_per_1k(),
        }
        return {**asdict(self), **derived}


def rate_label(rate: int) -> str:
    return "max" if rate == 0 else str(rate)


def kafka(action: str) -> None:
    env = {**os.environ, **KAFKA_ENV}
    subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), action], env=env, check=True)


def proc_cpu_s(pid: int, *, children: bool = False) -> float:
    """utime + stime (+ reaped children's) of a process, as the supervisor's own cpu_seconds counts it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0.0
    f = stat[stat.rfind(b")") + 2 :].split()
    ticks = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
    return ticks / CLK_TCK


def run_once(run: Run, load: LoadPrograms, load_s: float, workdir: Path) -> None:
    """Fill `run` in; the first broken expectation marks it FAILED, with the figures got so far."""
    runner = CollectorRunner(Broker(BOOTSTRAP, controllable=False), run.prefix, workdir)
    overrides = {"metrics": {"listen": ""}, "readers": {"wakeup_events": run.wakeup_events}}
    try:
        runner.start(overrides, duration=load_s + MARGIN_S)  # returns once every reader_started
        assert runner.proc is not None
        pids = [int(e["pid"]) for e in runner.log_events("reader_started")]
        cpu_before = proc_cpu_s(runner.proc.pid, children=True) + sum(proc_cpu_s(p) for p in pids)
        cmd = [str(load.execload), str(run.rate), str(load_s), str(load.nothing)]
        # execload exits 1 when any exec failed; that is a figure to report, not an error.
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        late = runner.proc.poll() is not None
        m = re.search(r"execs=(\d+) failed=(\d+) seconds=([\d.]+)", out)
        if m is None:
            raise AssertionError(f"execload printed {out!r}")
        run.execs, run.exec_failed, run.load_s = int(m[1]), int(m[2]), float(m[3])
        code = runner.wait(timeout=load_s + MARGIN_S + 60)
        ledger = runner.final_ledger_from_log()
    except AssertionError as e:
        run.status = failed(e)
        return
    finally:
        runner.kill()
    run.seen, run.delivered = ledger.get("seen", 0), ledger.get("delivered", 0)
    run.dropped, run.in_flight = ledger.get("dropped", 0), ledger.get("in_flight", 0)

    try:
        report = read_final_report(run.prefix)
    except AssertionError as e:
        run.status = failed(e)
        return
    for c in report["counters"]:
        if c["event_type"] == "process_exec" and c["reason"] not in ("seen", "delivered", "filtered"):
            run.drops[c["reason"]] = run.drops.get(c["reason"], 0) + c["count"]
    run.cpu_total_s = report["cpu_seconds"]
    run.cpu_load_s = run.cpu_total_s - cpu_before

    reasons_sum = sum(run.drops.get(r, 0) for r in DROP_REASONS)
    report_seen = next(b["seen"] for b in report["balance"] if b["event_type"] == "process_exec")
    problems = [
        f"exit code {code}" if code != 0 else "",
        "collector stopped before the load ended" if late else "",
        f"in_flight={run.in_flight}" if run.in_flight else "",
        f"seen {run.seen} != delivered + dropped {run.delivered + run.dropped}"
        if run.seen != run.delivered + run.dropped
        else "",
        f"drop reasons sum to {reasons_sum}, not dropped={run.dropped}" if reasons_sum != run.dropped else "",
        f"drop report seen={report_seen} != log seen={run.seen}" if report_seen != run.seen else "",
    ]
    if any(problems):
        run.status = "FAILED: " + "; ".join(p for p in problems if p)


def failed(e: AssertionError) -> str:
    # The helpers' messages append the whole collector log; its first line is the reason.
    return f"FAILED: {str(e).splitlines()[0][:120]}"


def read_final_report(prefix: str, attempts: int = 3) -> dict[str, Any]:
    # consume() gives up after 3 s without a message, and a freshly formatted broker can take
    # that long just to create __consumer_offsets for the first consumer group.
    for _ in range(attempts - 1):
        with contextlib.suppress(AssertionError):
            return final_report(BOOTSTRAP, prefix)
    return final_report(BOOTSTRAP, prefix)


def median(runs: Sequence[Run], key: Callable[[Run], float | None]) -> float | None:
    values = [v for v in (key(r) for r in runs if r.ok) if v is not None]
    return statistics.median(values) if values else None


def fmt(v: float | None, digits: int = 0) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def groups(runs: Sequence[Run], rates: Sequence[int]) -> list[tuple[int, int, list[Run]]]:
    return [(w, r, [x for x in runs if x.wakeup_events == w and x.rate == r]) for r in rates for w in WAKEUPS]


def median_table(runs: Sequence[Run], rates: Sequence[int]) -> str:
    lines = [
        "| wakeup_events | offered/s | runs OK | execs/s | seen | delivered | dropped | drop % "
        "| submit_failed | lost | queue_full | other drops | delivered/s | CPU s / 1000 ev |",
        "|---:|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w, r, rs in groups(runs, rates):
        ok = sum(x.ok for x in rs)
        cells = [
            str(w),
            rate_label(r),
            f"{ok}/{len(rs)}" + ("" if ok == len(rs) else " **FAILED**"),
            fmt(median(rs, Run.execs_per_s)),
            fmt(median(rs, lambda x: x.seen)),
            fmt(median(rs, lambda x: x.delivered)),
            fmt(median(rs, lambda x: x.dropped)),
            fmt(median(rs, Run.drop_pct), 2),
            fmt(median(rs, lambda x: x.drops.get("submit_failed", 0))),
            fmt(median(rs, lambda x: x.drops.get("lost", 0))),
            fmt(median(rs, lambda x: x.drops.get("queue_full", 0))),
            fmt(
                median(
                    rs, lambda x: x.dropped - x.drops.get("submit_failed", 0) - x.drops.get("queue_full", 0)
                )
            ),
            fmt(median(rs, Run.delivered_per_s)),
            fmt(median(rs, Run.cpu_per_1k), 3),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_table(runs: Sequence[Run], rates: Sequence[int]) -> str:
    lines = [
        "| offered/s | delivered/s w=1 | w=32 | 32/1 | drop % w=1 | w=32 | CPU s/1000 w=1 | w=32 | 32/1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rates:
        one, many = ([x for x in runs if x.rate == r and x.wakeup_events == w] for w in WAKEUPS)
        d1, d32 = median(one, Run.delivered_per_s), median(many, Run.delivered_per_s)
        c1, c32 = median(one, Run.cpu_per_1k), median(many, Run.cpu_per_1k)
        p1, p32 = median(one, Run.drop_pct), median(many, Run.drop_pct)
        cells = [rate_label(r), fmt(d1), fmt(d32), ratio(d32, d1), fmt(p1, 2), fmt(p32, 2)]
        cells += [fmt(c1, 3), fmt(c32, 3), ratio(c32, c1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(runs: Sequence[Run]) -> str:
    lines = [
        "| wakeup_events | offered/s | run | execs | seen | seen - execs | delivered | dropped "
        "| drops by reason | CPU s (load / total) | status |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|:---|---:|:---|",
    ]
    for x in runs:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(x.drops.items())) or "none"
        cells = [str(x.wakeup_events), rate_label(x.rate), str(x.repeat), str(x.execs), str(x.seen)]
        cells.append(str(x.seen - x.execs))
        cells += [str(x.delivered), str(x.dropped), reasons, f"{x.cpu_load_s:.2f} / {x.cpu_total_s:.2f}"]
        cells.append("OK" if x.ok else f"**{x.status}**")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pyplot() -> Any:
    """matplotlib.pyplot, installed into this interpreter's environment on first use; None if that fails."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        print("matplotlib is missing: pip install -q matplotlib", flush=True)
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=False)
        if pip.returncode != 0:
            return None
        importlib.invalidate_caches()
        try:
            matplotlib = importlib.import_module("matplotlib")
        except ImportError:
            return None
    matplotlib.use("Agg")  # no display on a build host
    return importlib.import_module("matplotlib.pyplot")


def plot(runs: Sequence[Run], rates: Sequence[int], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    # "max" is not a number on a rate axis, so the rates are evenly spaced categories.
    xs = range(len(rates))
    for w in WAKEUPS:
        by_rate = [[x for x in runs if x.rate == r and x.wakeup_events == w] for r in rates]
        delivered = [median(rs, Run.delivered_per_s) for rs in by_rate]
        drops = [median(rs, Run.drop_pct) for rs in by_rate]
        top.plot(xs, [float("nan") if v is None else v for v in delivered], marker="o", label=f"w={w}")
        bottom.plot(xs, [float("nan") if v is None else v for v in drops], marker="o", label=f"w={w}")
    top.set_ylabel("delivered events/s")
    top.set_title("Collector throughput by readers.wakeup_events (medians)")
    bottom.set_ylabel("dropped, % of seen")
    bottom.set_xlabel("offered exec rate (execs/s)")
    bottom.set_xticks(list(xs), [rate_label(r) for r in rates])
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(title="wakeup_events")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_results(
    runs: Sequence[Run], rates: Sequence[int], repeats: int, load_s: float, argv: Sequence[str], out: Path
) -> str:
    """Writes throughput.md, .json and (matplotlib permitting) .png into out; returns the median table."""
    machine = {
        "nproc": len(os.sched_getaffinity(0)),  # what nproc prints
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    table = median_table(runs, rates)
    failed_runs = [x for x in runs if not x.ok]
    md = [
        "# Collector throughput: readers.wakeup_events x offered exec rate",
        "",
        f"- Machine: {machine['nproc']} CPUs, kernel {machine['kernel']}, Python {machine['python']}",
        f"- Date: {machine['date']}",
        f"- Command: `{' '.join(['python -m tests.bench.throughput', *argv])}`",
        f"- Each cell is the **median of {repeats} run(s)** of {load_s:g} s of `execload` exec'ing "
        "`nothing`, on a noisy 2-core VM: absolute figures move from one invocation to the next. "
        "The meaningful number is the ratio of wakeup_events=32 to 1 within one invocation "
        "(its runs are interleaved back to back), shown in the second table.",
        "- `seen` counts every exec on the host, not only the load's (`seen - execs` in the last table "
        "shows how busy the rest of the host was); `CPU s / 1000 ev` is the collector's "
        "CPU (supervisor + readers) from the start of the load until it exited, per 1000 events seen "
        "(BCC's compile at start-up is left out; throughput.json has both).",
        "- A run is FAILED when seen != delivered + dropped, in_flight != 0, the drop reasons do not add "
        "up, or the collector did not exit cleanly; failed runs are left out of the medians and are "
        "listed below.",
        "",
        "## Medians",
        "",
        table,
        "",
        "## wakeup_events=32 against 1",
        "",
        ratio_table(runs, rates),
        "",
        "## Every run",
        "",
        runs_table(runs),
        "",
    ]
    if failed_runs:
        md += [
            f"{len(failed_runs)} run(s) FAILED; collector logs: failed-<prefix>.log beside this file.",
            "",
        ]
    (out / "throughput.md").write_text("\n".join(md))
    doc = {"machine": machine, "repeats": repeats, "load_s": load_s, "runs": [x.row() for x in runs]}
    (out / "throughput.json").write_text(json.dumps(doc, indent=2) + "\n")
    if not plot(runs, rates, out / "throughput.png"):
        print("note: matplotlib could not be imported or installed; wrote no throughput.png", flush=True)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.throughput", description="Collector throughput benchmark"
    )
    p.add_argument("--quick", action="store_true", help="1 repeat, rates 2000 and max, 3 s of load")
    p.add_argument("--repeats", type=int, help="runs per configuration (default 3, or 1 with --quick)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results", help="default: bench-results/")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    rates = QUICK_RATES if args.quick else RATES
    repeats = args.repeats or (1 if args.quick else 3)
    load_s = 3.0 if args.quick else 8.0
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    # Repeats outermost and both wakeups back to back, so a slow spell of the VM hits both alike.
    plan = [
        Run(w, r, k, f"bench-{stamp}-w{w}-r{rate_label(r)}-{k}")
        for k in range(1, repeats + 1)
        for r in rates
        for w in WAKEUPS
    ]
    with tempfile.TemporaryDirectory(prefix="ekp-bench-") as tmp:
        load = LoadPrograms.build(ROOT / "tests/load", Path(tmp))
        kafka("up")
        try:
            for i, run in enumerate(plan, 1):
                print(
                    f"[{i}/{len(plan)}] wakeup_events={run.wakeup_events} rate={rate_label(run.rate)} "
                    f"run {run.repeat}/{repeats} ...",
                    end=" ",
                    flush=True,
                )
                workdir = Path(tmp) / run.prefix
                workdir.mkdir()
                run_once(run, load, load_s, workdir)
                print(
                    f"execs={run.execs} seen={run.seen} delivered={run.delivered} dropped={run.dropped} "
                    f"cpu/1k={fmt(run.cpu_per_1k(), 3)} {run.status}",
                    flush=True,
                )
                if not run.ok and (workdir / "collector.log").exists():
                    shutil.copy(workdir / "collector.log", out / f"failed-{run.prefix}.log")
        finally:
            kafka("down")
    table = write_results(plan, rates, repeats, load_s, argv, out)
    print(f"\n{table}\n\nresults in {out}/ (throughput.md, throughput.json, throughput.png)")
    return 0 if all(x.ok for x in plan) else 1


if __name__ == "__main__":
    sys.exit(main())
