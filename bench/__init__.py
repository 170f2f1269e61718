"""`python -m bench` (`make bench`): file_open through this collector, bpftrace | kcat and a naive BCC reader,
one after another on the same machine and the same local broker, at a sweep of offered rates.

Modes: sweep (every pipeline at every rate, plus the load untraced), idle (lone events through the
collector), sustained (the default collector at 50k/s for 60 s). docs/benchmarks.md describes the
method; the results go to docs/benchmarks/ (bench-results/ for --quick, so a quick run never
overwrites published figures).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from producer.errors import ConfigError, ProducerError
from tests.support import ROOT

from . import host, pipelines, report
from .broker import OwnBroker, Topics
from .load import Load
from .pod import bench_pod
from .results import Plan, write_all, write_json
from .runner import Bench, Measurement

MODES = ("sweep", "idle", "sustained")
RATES = (5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 0)
QUICK_RATES = (20_000, 0)


def parser() -> argparse.ArgumentParser:
    """The benchmark's own command line: it is a tool of the checkout, not of the installed product."""
    b = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--mode", default="all", help="sweep, idle, sustained, comma-separated, or all (default)")
    b.add_argument(
        "--pipelines",
        default=",".join(pipelines.PIPELINES),
        help=f"comma-separated subset of {','.join(pipelines.PIPELINES)} (default: all)",
    )
    b.add_argument("--rates", help="offered opens/s, comma-separated; 'max' = as fast as possible")
    b.add_argument("--seconds", type=float, help="load per paced rate (count = rate x seconds; default 10)")
    b.add_argument("--max-count", type=int, help="opens at the 'max' rate (default 500000)")
    b.add_argument("--repeats", type=int, help="runs per (pipeline, rate); medians are quoted (default 3)")
    b.add_argument("--idle-events", type=int, help="lone events per collector configuration (default 10)")
    b.add_argument("--sustained-rate", type=int, default=50_000, help="default 50000")
    b.add_argument("--sustained-seconds", type=float, help="default 60")
    b.add_argument("--tuned-config", help="YAML merged over the run's config for collector-tuned")
    b.add_argument("--bootstrap", help="use this broker instead of starting one of its own")
    b.add_argument(
        "--in-pod",
        action="store_true",
        help="run the load in a container of a real pod (the tests' containerd) with k8s attribution "
        "on; compare with --tuned-config setting k8s: {enabled: false} (docs/benchmarks.md)",
    )
    b.add_argument("--out", type=Path, help="default docs/benchmarks/ (bench-results/ with --quick)")
    b.add_argument(
        "--quick",
        action="store_true",
        help="check the instrument: rates 20000 and max, 3 s, 100000 opens at max, 1 repeat, "
        "3 lone events, 10 s sustained",
    )
    return b


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _plan(args: argparse.Namespace) -> Plan:
    q = args.quick
    modes = MODES if args.mode == "all" else tuple(_csv(args.mode))
    chosen = tuple(_csv(args.pipelines))
    for name, got, known in (("--mode", modes, MODES), ("--pipelines", chosen, pipelines.PIPELINES)):
        bad = [x for x in got if x not in known]
        if bad or not got:
            raise ConfigError(f"bench: {name}: {', '.join(bad) or 'empty'}; choose from {', '.join(known)}")
    try:
        rates = tuple(0 if r == "max" else int(r) for r in _csv(args.rates)) if args.rates else None
    except ValueError:
        raise ConfigError(f"bench: --rates: integers or 'max', got {args.rates!r}") from None
    rates = rates or (QUICK_RATES if q else RATES)
    tuned = pipelines.TUNED
    if args.tuned_config:
        tuned = yaml.safe_load(Path(args.tuned_config).read_text()) or {}
    plan = Plan(
        modes=modes,
        pipelines=chosen,
        rates=rates,
        seconds=args.seconds or (3.0 if q else 10.0),
        max_count=args.max_count or (100_000 if q else 500_000),
        repeats=args.repeats or (1 if q else 3),
        idle_events=args.idle_events or (3 if q else 10),
        sustained_rate=args.sustained_rate,
        sustained_seconds=args.sustained_seconds or (10.0 if q else 60.0),
        quick=q,
        out=args.out or ROOT / ("bench-results" if q else "docs/benchmarks"),
        bootstrap=args.bootstrap,
        tuned=tuned,
        tuned_config=args.tuned_config,
        in_pod=args.in_pod,
    )
    if any(r < 0 for r in plan.rates) or plan.seconds <= 0 or plan.repeats < 1 or plan.max_count < 1:
        raise ConfigError("bench: rates >= 0 ('max'), --seconds > 0, --repeats >= 1, --max-count >= 1")
    return plan


def _schedule(plan: Plan) -> list[tuple[str, str, int, int, int]]:
    """(mode, pipeline, rate, count, repeat) in running order: each repeat passes over every
    rate and pipeline back to back, so a slow spell of the machine falls on all of them alike."""
    runs = []
    if "sweep" in plan.modes:
        for k in range(1, plan.repeats + 1):
            for r in plan.rates:
                count = plan.max_count if r == 0 else max(1, round(r * plan.seconds))
                runs += [("sweep", p, r, count, k) for p in ("untraced", *plan.pipelines)]
    if "idle" in plan.modes:
        runs += [("idle", p, 0, plan.idle_events, 1) for p in report.COLLECTORS if p in plan.pipelines]
    if "sustained" in plan.modes:
        count = round(plan.sustained_rate * plan.sustained_seconds)
        runs += [
            ("sustained", "collector", plan.sustained_rate, count, k) for k in range(1, plan.repeats + 1)
        ]
    return runs


def _progress(m: Measurement) -> str:
    if not m.ok:
        return m.status[:300]
    if m.pipeline == "untraced":
        return f"generated={m.generated} in {m.load_s:.2f} s, load {report.fmt(m.load_us_per_op, 2)} µs/open"
    if m.mode == "idle":
        lat = ", ".join(f"{x:.0f}" for x in m.latencies_ms)
        return f"generated={m.generated} delivered={m.delivered} latency ms: {lat} [{m.self_reported}]"
    return (
        f"generated={m.generated} delivered={m.delivered} lost={m.lost} "
        f"cpu={report.fmt(m.cpu_us_per_event, 2)} µs/ev p99={report.fmt(m.lat_p99_ms, 1)} ms "
        f"rss={report.fmt((m.rss_kb or 0) / 1024)} MB [{m.self_reported}]"
    )


def _interrupt(_sig: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parser().parse_args(argv))
    except ProducerError as e:
        print(f"bench: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    host.ensure_tools()
    # A SIGTERM (a timeout, a CI runner) unwinds like Ctrl-C: each pipeline runs in a session of its
    # own, so only the finally blocks on the way out stop it, and the broker this run started.
    signal.signal(signal.SIGTERM, _interrupt)
    plan.out.mkdir(parents=True, exist_ok=True)
    machine = host.machine()
    schedule = _schedule(plan)
    print(f"bench: {len(schedule)} runs; results in {plan.out}/\n  {plan.command()}", flush=True)
    broker = None if plan.bootstrap else OwnBroker.from_env()
    ms: list[Measurement] = []
    max_latency: dict[str, int] = {}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    with tempfile.TemporaryDirectory(prefix="ekp-bench-") as tmp, contextlib.ExitStack() as stack:
        load = Load.build(Path(tmp))
        common: dict[str, Any] = {}
        if plan.in_pod:
            pod = stack.enter_context(bench_pod(Path(tmp)))
            load = dataclasses.replace(load, cgroup=pod.cgroup)
            common = {"k8s": {"runtime_socket": str(pod.socket)}}
        if broker is not None:
            broker.up()
        topics = Topics(plan.bootstrap or (broker.bootstrap if broker else ""))
        try:
            pid = broker.pid() if broker else None
            bench = Bench(topics, topics.bootstrap, load, Path(tmp), pid, stamp, failures=plan.out)
            for i, (mode, name, rate, count, k) in enumerate(schedule, 1):
                p = pipelines.make(name, plan.tuned, common)
                what = f"{report.rate_label(rate)}/s" if mode != "idle" else f"{count} lone events"
                print(f"[{i}/{len(schedule)}] {mode} {name} {what} run {k} ...", end=" ", flush=True)
                t0 = time.monotonic()
                m = bench.measure(p, mode, rate, count, k, lone_events=count if mode == "idle" else 0)
                if isinstance(p, pipelines.Collector):
                    max_latency[name] = p.max_latency_ms
                ms.append(m)
                print(f"{_progress(m)} ({time.monotonic() - t0:.0f} s)", flush=True)
                write_json(plan.out / "bench.json", plan, machine, ms)  # a crash keeps what was measured
        finally:
            topics.close()
            if broker is not None:
                broker.down()
    targets, sweep = write_all(plan, machine, ms, max_latency)
    print(f"\n{targets}\n")
    if "sweep" in plan.modes:
        print(f"{sweep}\n")
    print(f"results: {plan.out}/bench.md, bench.json, bench.png")
    return 0 if all(m.ok for m in ms) else 1
