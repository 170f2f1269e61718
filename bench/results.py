"""The files a benchmark leaves: bench.md (tables, targets, command, machine), bench.json (every
run) and bench.png (the sweep)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import report
from .host import describe
from .plot import plot
from .runner import Measurement


@dataclass(frozen=True)
class Plan:
    modes: tuple[str, ...]
    pipelines: tuple[str, ...]
    rates: tuple[int, ...]
    seconds: float
    max_count: int
    repeats: int
    idle_events: int
    sustained_rate: int
    sustained_seconds: float
    quick: bool
    out: Path
    bootstrap: str | None
    tuned: dict[str, Any]
    tuned_config: str | None
    in_pod: bool = False

    def command(self) -> str:
        """The command that reproduces this plan, every setting spelled out."""
        rates = ",".join(report.rate_label(r).replace(",", "") for r in self.rates)
        parts = [
            "python -m bench",
            f"--mode {','.join(self.modes)}",
            f"--pipelines {','.join(self.pipelines)}",
            f"--rates {rates}",
            f"--seconds {self.seconds:g}",
            f"--max-count {self.max_count}",
            f"--repeats {self.repeats}",
            f"--idle-events {self.idle_events}",
            f"--sustained-rate {self.sustained_rate}",
            f"--sustained-seconds {self.sustained_seconds:g}",
        ]
        if self.tuned_config:
            parts.append(f"--tuned-config {self.tuned_config}")
        if self.bootstrap:
            parts.append(f"--bootstrap {self.bootstrap}")
        if self.in_pod:
            parts.append("--in-pod")
        return " ".join(parts)


def write_json(path: Path, plan: Plan, machine: dict[str, Any], ms: Sequence[Measurement]) -> None:
    doc = {
        "command": plan.command(),
        "plan": {**asdict(plan), "out": str(plan.out)},
        "machine": machine,
        "measurements": [m.row() for m in ms],
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")


def write_all(
    plan: Plan, machine: dict[str, Any], ms: Sequence[Measurement], max_latency_ms: dict[str, int]
) -> tuple[str, str]:
    """Writes the three files; returns (targets table, sweep table) for the terminal."""
    out = plan.out
    write_json(out / "bench.json", plan, machine, ms)
    tgt = report.targets_table(report.targets(ms, plan.pipelines, plan.rates, max_latency_ms))
    sweep = report.sweep_table(ms, plan.pipelines, plan.rates)
    title = f"file_open, {machine['cpus']} CPUs, medians of {plan.repeats} run(s)"
    drew = "sweep" in plan.modes and plot(ms, plan.pipelines, plan.rates, out / "bench.png", title)
    quick = (
        "\n**A quick run** (`--quick`: short loads, one repeat): the figures show that the instrument "
        "works, they are not evidence for or against a target.\n"
        if plan.quick
        else ""
    )
    md = [
        "# file_open: the collector beside bpftrace | kcat and a naive BCC reader",
        quick,
        f"- Command: `{plan.command()}` (as root; `make bench` runs the full default plan)",
        f"- Machine: {describe(machine)}",
        f"- Code: {machine['code']}; date {machine['date']}",
        f"- Tuned collector settings (`collector-tuned`): `{json.dumps(plan.tuned)}`",
        "- How it measures, and what each column means: [docs/benchmarks.md](../benchmarks.md).",
        "",
        "## Targets",
        "",
        tgt,
        "",
    ]
    if "sweep" in plan.modes:
        md += [
            f"## Sweep: {plan.seconds:g} s per offered rate, {plan.max_count:,} opens at max, "
            f"medians of {plan.repeats} run(s)",
            "",
            "± is half the range between runs, as % of the median (the noise).",
            "",
            sweep,
            "",
            "![delivered, loss and CPU per event against the offered rate](bench.png)" if drew else "",
            "",
            f"### The workload at max rate: wall time for {plan.max_count:,} opens",
            "",
            report.max_rate_table(ms, plan.pipelines),
            "",
        ]
    if "idle" in plan.modes:
        md += [
            f"## Lone events on an idle system ({plan.idle_events} per collector configuration, "
            "each alone: latency from the kernel's timestamp to the broker's append)",
            "",
            report.idle_table(ms),
            "",
        ]
    md += ["## Every run", "", report.runs_table(ms), ""]
    failed = [m for m in ms if not m.ok]
    if failed:
        md += [
            f"{len(failed)} run(s) FAILED: their logs are beside this file (failed-<topic prefix>.log).",
            "",
        ]
    (out / "bench.md").write_text("\n".join(md))
    if not drew and "sweep" in plan.modes:
        print("note: no bench.png: matplotlib is missing (make bench-setup installs it)", flush=True)
    return tgt, sweep
