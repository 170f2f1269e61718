"""One measurement: a pipeline started fresh, the load run against it, its topic read back.

The CPU window opens just before the load starts (so start-up work such as compiling BPF is left
out) and closes once the topic stops growing after the load (so the pipeline's catch-up is in),
before the pipeline is stopped (so the shutdown flush is left out).
"""

from __future__ import annotations

import math
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from . import procs
from .broker import Topics
from .load import Load
from .pipelines import Decoded, Lost, Pipeline, PipelineError, Target

READY_TIMEOUT_S = 180  # compiling BPF on a busy 2-core machine can take a while
DRAIN_IDLE_S = 3.0  # the topic not growing for this long after the load means the pipeline is done
DRAIN_CAP_S = 120.0
IDLE_GAP_S = 1.5  # between lone events: longer than max_latency_ms + linger, so each one is alone


@dataclass
class Measurement:
    mode: str  # sweep, sustained or idle
    pipeline: str
    rate: int  # offered opens/s; 0 = as fast as the load can
    repeat: int
    count: int  # opens asked of the load
    status: str = "OK"
    generated: int = 0  # opens that succeeded, each one event
    load_s: float = 0.0
    load_cpu_s: float = 0.0
    delivered: int = 0  # the run's events read back from the topic
    other_messages: int = 0  # anything else in the topic (bpftrace's own lines)
    self_reported: str = ""  # the pipeline's own word on its losses
    cpu_s: float | None = None  # the pipeline's processes over the window
    window_s: float = 0.0
    drain_s: float = 0.0
    rss_kb: int | None = None
    lat_p50_ms: float | None = None
    lat_p99_ms: float | None = None
    lat_max_ms: float | None = None
    latencies_ms: list[float] = field(default_factory=list)  # idle mode only: every event
    broker_cpu_s: float | None = None
    background_cpu_s: float | None = None  # everything else the machine ran in the window
    steal_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def lost(self) -> int:
        return self.generated - self.delivered

    @property
    def loss_pct(self) -> float | None:
        return 100.0 * self.lost / self.generated if self.generated else None

    @property
    def generated_rate(self) -> float | None:
        return self.generated / self.load_s if self.load_s else None

    @property
    def delivered_rate(self) -> float | None:
        return self.delivered / self.load_s if self.load_s else None

    @property
    def cpu_us_per_event(self) -> float | None:
        return 1e6 * self.cpu_s / self.delivered if self.cpu_s is not None and self.delivered else None

    @property
    def load_us_per_op(self) -> float | None:
        return 1e6 * self.load_cpu_s / self.generated if self.generated else None

    def row(self) -> dict[str, Any]:
        derived = {
            k: getattr(self, k)
            for k in (
                "lost",
                "loss_pct",
                "generated_rate",
                "delivered_rate",
                "cpu_us_per_event",
                "load_us_per_op",
            )
        }
        return {**asdict(self), **derived}


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


@dataclass
class Bench:
    topics: Topics
    bootstrap: str
    load: Load
    workdir: Path
    broker_pid: int | None
    stamp: str
    failures: Path  # where a failed run's logs are kept (the work directory is temporary)
    runs: int = 0

    def measure(
        self, p: Pipeline, mode: str, rate: int, count: int, repeat: int, *, lone_events: int = 0
    ) -> Measurement:
        """One run; lone_events > 0 replaces the paced load by that many single opens, spaced apart."""
        self.runs += 1
        m = Measurement(mode, p.name, rate, repeat, lone_events or count)
        tag = uuid.uuid4().hex[:8]
        t = Target(
            comm=f"ekpb-{tag}", path=self.load.target, prefix=f"ekpbench-{self.stamp}-{self.runs}-{tag}"
        )
        workdir = self.workdir / t.prefix
        workdir.mkdir()
        topic = p.topic(t)
        try:
            if p.traced:
                self.topics.create(topic)
            p.start(t, self.bootstrap, workdir)
            p.wait_started(READY_TIMEOUT_S)
            if p.traced:
                self._warm_up(p, t, topic)
            clocks = self._window(p, m, t, topic, rate, count, lone_events)
            m.self_reported = p.stop(self.topics, t)
            if p.traced:
                self._read(p, m, t, topic, clocks, keep=bool(lone_events))
        except (PipelineError, RuntimeError, OSError, subprocess.SubprocessError, KafkaException) as e:
            # one broken run must not cost the rest of a long benchmark: it is reported FAILED
            m.status = f"FAILED: {type(e).__name__}: {e}"
            (self.failures / f"failed-{t.prefix}.log").write_text(f"{m.status}\n\n{p.log_text()}")
        finally:
            p.kill()
            if p.traced:
                try:
                    self.topics.delete([topic, f"{t.prefix}.drops"])
                except Exception as e:  # a topic left behind is a disk cost, not a wrong figure
                    print(f"note: could not delete topics of {t.prefix}: {e}", flush=True)
        return m

    def _warm_up(self, p: Pipeline, t: Target, topic: str) -> None:
        """Send a few events of another path through the pipeline until one reaches the topic, so
        that every pipeline is attached, connected and past its first-message costs before the
        clock starts. These events are not counted (their path is not the target's)."""
        end = time.monotonic() + READY_TIMEOUT_S
        while self.topics.end_offset(topic) == 0:
            if not p.alive():
                raise p.failure("exited while warming up")
            if time.monotonic() > end:
                raise p.failure(f"no warm-up event reached the topic in {READY_TIMEOUT_S} s")
            self.load.run(t.comm, 0, 3, self.load.warmup)
            time.sleep(0.3)

    def _window(
        self, p: Pipeline, m: Measurement, t: Target, topic: str, rate: int, count: int, lone: int
    ) -> procs.Clocks:
        roots = p.roots()
        clocks = procs.Clocks.measure()
        base = self.topics.end_offset(topic) if p.traced else 0
        u0, mt0, b0 = procs.usage(roots), procs.machine_time(), self._broker_cpu()
        t0 = time.monotonic()
        if lone:
            for _ in range(lone):
                time.sleep(IDLE_GAP_S)
                r = self.load.run(t.comm, 0, 1)
                m.generated += r.opens
                m.load_s += r.seconds
                m.load_cpu_s += r.cpu_s
            time.sleep(IDLE_GAP_S)
        else:
            r = self.load.run(t.comm, rate, count)
            m.generated, m.load_s, m.load_cpu_s = r.opens, r.seconds, r.cpu_s
        if not p.alive():
            raise p.failure("exited during the load")
        if p.traced:
            m.drain_s = self.topics.wait_drained(
                topic, base, m.generated, idle_s=DRAIN_IDLE_S, cap_s=DRAIN_CAP_S
            )
        u1, mt1, b1 = procs.usage(p.roots()), procs.machine_time(), self._broker_cpu()
        m.window_s = time.monotonic() - t0
        m.steal_s = mt1.steal_s - mt0.steal_s
        if p.traced:
            m.cpu_s = u1.cpu_s - u0.cpu_s
            m.rss_kb = u1.hwm_kb
        broker = None if b0 is None or b1 is None else b1 - b0
        m.broker_cpu_s = broker
        m.background_cpu_s = mt1.busy_s - mt0.busy_s - (m.cpu_s or 0.0) - m.load_cpu_s - (broker or 0.0)
        return clocks

    def _broker_cpu(self) -> float | None:
        return procs.process_cpu_s(self.broker_pid) if self.broker_pid else None

    def _read(
        self, p: Pipeline, m: Measurement, t: Target, topic: str, clocks: procs.Clocks, *, keep: bool
    ) -> None:
        path = str(t.path)
        lat: list[float] = []
        stream_lost = 0

        def each(value: bytes, append_ms: int) -> None:
            nonlocal stream_lost
            try:
                d = p.decode(value)
            except (ValueError, KeyError, IndexError, EOFError):
                d = None  # not one of the pipeline's records: counted as another message
            if isinstance(d, Decoded) and d.comm == t.comm and d.path == path:
                lat.append(append_ms - clocks.wall_ns(d.kernel_ns, d.clock) / 1e6)
            elif isinstance(d, Lost):
                stream_lost += d.count
                m.other_messages += 1
            else:
                m.other_messages += 1

        self.topics.read(topic, each)
        m.delivered = len(lat)
        if stream_lost:
            m.self_reported = f"{m.self_reported} lost_events={stream_lost}".strip()
        lat.sort()
        m.lat_p50_ms, m.lat_p99_ms = percentile(lat, 50), percentile(lat, 99)
        m.lat_max_ms = lat[-1] if lat else None
        if keep:
            m.latencies_ms = [round(x, 2) for x in lat]
