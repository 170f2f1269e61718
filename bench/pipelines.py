"""The pipelines the benchmark measures, each a set of processes behind one small interface.

- collector, collector-tuned: `ebpf-producer run` of this checkout (whatever `producer` is on
  the branch), with the built-in defaults or the throughput settings, file_open only, on the
  Python data plane (`readers.data_plane: python`, the reference the native plane is measured by).
- collector-native, collector-native-tuned: the same on the native data plane (producer/native),
  required (no fallback): with the defaults otherwise (the spool on), what `auto` runs.
- bpftrace-kcat: `bpftrace -B line -f json file_open.bt COMM | kcat -P`, the peer a user reaches for.
- naive-bcc: bench/peers/naive_bcc.py, a single-process BCC reader with default settings.
- untraced: no pipeline at all, for the workload's own cost.

Every pipeline filters in the kernel to the run's unique task name and writes to a topic of
the run's own; what it delivered is counted by reading that topic back, not by asking it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from producer.config import EVENT_TYPES
from producer.ledger.arena import DROP_REASONS
from producer.records import codec
from tests.support import ROOT
from tests.support.collector import CollectorRunner, merge
from tests.support.kafka import Broker

from .broker import Topics

# The benchmark runs from a checkout (it is not part of the installed product): its load and peer
# programs live beside it, and it measures whatever `producer` the checkout's virtualenv has.
HERE = Path(__file__).resolve().parent
BPFTRACE_PROGRAM = HERE / "peers" / "file_open.bt"
NAIVE_READER = HERE / "peers" / "naive_bcc.py"
NAIVE_SCHEMA = HERE / "peers" / "naive.avsc"

# The collector's best throughput settings found on the 2-core VM (docs/benchmarks.md says how they
# were picked; --tuned-config tries others): a 4 MiB ring per CPU rides out the reader's slower
# spells, and twice the records per wakeup halves the wakeups the traced workload pays for. A longer
# linger.ms bought nothing measurable and would hold a lone event back; max_latency_ms keeps its
# default for the same reason.
TUNED: dict[str, Any] = {"readers": {"perf_pages": 1024, "wakeup_events": 64}}


class PipelineError(Exception):
    """The pipeline did not start, or died during the run: the run is reported FAILED."""


@dataclass(frozen=True)
class Target:
    """What one run's load does, and where its events go."""

    comm: str  # the load's task name, unique to the run
    path: Path  # the file it opens
    prefix: str  # topic prefix of the run


@dataclass(frozen=True)
class Decoded:
    comm: str
    path: str
    kernel_ns: int
    clock: str  # "boot" (bpf_ktime_get_boot_ns) or "mono" (bpf_ktime_get_ns)


@dataclass(frozen=True)
class Lost:
    """A pipeline's in-stream notice of lost events (bpftrace's lost_events)."""

    count: int


class Pipeline:
    name = ""
    traced = True

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self._files: list[IO[bytes]] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def topic(self, t: Target) -> str:
        return f"{t.prefix}.events"

    def start(self, t: Target, bootstrap: str, workdir: Path) -> None:
        raise NotImplementedError

    def wait_started(self, timeout: float) -> None:
        """Until the pipeline says it is up, where it can say so (the runner then sends warm-up
        events through it until one reaches the topic)."""

    def stop(self, topics: Topics, t: Target) -> str:
        """Stop cleanly (the pipeline flushes what it holds); returns its own word on losses."""
        raise NotImplementedError

    def decode(self, value: bytes) -> Decoded | Lost | None:
        raise NotImplementedError

    def roots(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                # each process leads a session of its own, so this ends exactly what we started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in self._files:
            f.close()
        self._files.clear()

    # -- helpers --------------------------------------------------------------------------------

    def _spawn(self, cmd: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
        f = log.open("wb")
        self._files.append(f)
        self.logs.append(log)
        kw.setdefault("stdout", f)
        p = subprocess.Popen(cmd, stderr=f, cwd=ROOT, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def failure(self, what: str) -> PipelineError:
        lines = [ln for ln in self.log_text().splitlines() if ln.strip()]
        codes = [p.returncode for p in self.procs if p.poll() is not None]
        tail = " | ".join(lines[-3:])[-400:]
        return PipelineError(f"{self.name}: {what}{f' (exit {codes})' if codes else ''}: {tail}")

    def _wait_for(self, ready: Any, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if ready():
                return
            if not self.alive():
                raise self.failure(f"exited while {what}")
            time.sleep(0.2)
        raise self.failure(f"not ready after {timeout:g} s ({what})")

    def _wait_exit(self, p: subprocess.Popen[bytes], timeout: float) -> None:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self.failure(f"did not stop within {timeout:g} s") from None


class Untraced(Pipeline):
    name = "untraced"
    traced = False

    def start(self, t: Target, bootstrap: str, workdir: Path) -> None:
        pass

    def stop(self, topics: Topics, t: Target) -> str:
        return ""

    def decode(self, value: bytes) -> Decoded | Lost | None:
        return None


def collector_config(t: Target, bootstrap: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults, narrowed to the run's events: file_open only, the load's directory and comm."""
    events: dict[str, Any] = {n: {"enabled": False} for n in EVENT_TYPES}
    events["file_open"] = {"enabled": True, "path_prefixes": {"allow": [f"{t.path.parent}/"]}}
    base = {
        "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": t.prefix},
        "events": events,
        "filters": {"comm": {"allow": [t.comm]}},
        "metrics": {"listen": ""},  # no port to collide with another collector on this host
    }
    return merge(base, overrides)


class Collector(Pipeline):
    """The collector, run by the tests' own runner (tests/support/collector.py) with no test defaults."""

    def __init__(self, name: str, overrides: Mapping[str, Any]) -> None:
        super().__init__()
        self.name = name
        self.overrides = overrides
        self.config: dict[str, Any] = {}
        self.runners: list[CollectorRunner] = []
        self._schemas: dict[bytes, codec.Schema] | None = None

    def topic(self, t: Target) -> str:
        return f"{t.prefix}.file_open"

    @property
    def max_latency_ms(self) -> int:
        return int(self.config.get("readers", {}).get("max_latency_ms", 100))

    def start(self, t: Target, bootstrap: str, workdir: Path) -> None:
        runner = CollectorRunner(Broker(bootstrap, controllable=False), t.prefix, workdir, defaults={})
        runner.start(collector_config(t, bootstrap, self.overrides), wait_readers=False)
        assert runner.proc is not None
        self.config = runner.config
        self.runners.append(runner)
        self.procs.append(runner.proc)
        self.logs.append(runner.log_path)

    def wait_started(self, timeout: float) -> None:
        self._wait_for(self.runners[-1].started, timeout, "waiting for its readers")

    def kill(self) -> None:
        super().kill()
        for runner in self.runners:
            runner.kill()  # closes its log

    def stop(self, topics: Topics, t: Target) -> str:
        self.procs[0].send_signal(signal.SIGTERM)
        timeout = float(self.config.get("shutdown", {}).get("timeout_s", 20)) + 15
        self._wait_exit(self.procs[0], timeout)
        return self._ledger(topics, f"{t.prefix}.drops")

    def _ledger(self, topics: Topics, drops_topic: str) -> str:
        """The final drop report's file_open figures, as the collector itself publishes them."""
        schemas = self._codec()
        finals: list[dict[str, Any]] = []

        def each(value: bytes, _ts: int) -> None:
            _schema, rec = codec.decode(value, schemas)
            if rec.get("final"):
                finals.append(rec)

        topics.read(drops_topic, each, append_time=False)
        if not finals:
            return "no final drop report"
        rep = finals[-1]
        bal = next((b for b in rep["balance"] if b["event_type"] == "file_open"), None)
        if bal is None:
            return "no file_open in the final drop report"
        reasons: dict[str, int] = {}
        for c in rep["counters"]:
            if c["event_type"] == "file_open":
                reasons[c["reason"]] = reasons.get(c["reason"], 0) + c["count"]
        # "lost" is perf's own report of the submit_failed events: shown apart, never added
        detail = [f"{r}={reasons[r]}" for r in DROP_REASONS if reasons.get(r)]
        if reasons.get("lost"):
            detail.append(f"perf lost={reasons['lost']}")
        return f"seen={bal['seen']} dropped={bal['dropped']}" + (f" ({', '.join(detail)})" if detail else "")

    def _codec(self) -> dict[bytes, codec.Schema]:
        if self._schemas is None:
            self._schemas = codec.load_all()
        return self._schemas

    def decode(self, value: bytes) -> Decoded | Lost | None:
        schema, rec = codec.decode(value, self._codec())
        if schema.name != "file_open":
            return None
        return Decoded(rec["comm"], rec["path"], rec["boot_ns"], "boot")


class BpftraceKcat(Pipeline):
    name = "bpftrace-kcat"

    def start(self, t: Target, bootstrap: str, workdir: Path) -> None:
        bt = self._spawn(
            # -B line: as a user piping a live stream would; bpftrace otherwise holds its output in a
            # block buffer, which no consumer can wait for
            ["bpftrace", "-B", "line", "-f", "json", str(BPFTRACE_PROGRAM), t.comm],
            workdir / "bpftrace.log",
            stdout=subprocess.PIPE,
        )
        assert bt.stdout is not None
        self._spawn(
            ["kcat", "-P", "-b", bootstrap, "-t", self.topic(t)], workdir / "kcat.log", stdin=bt.stdout
        )
        bt.stdout.close()  # kcat holds the pipe's read end; bpftrace's exit is then kcat's EOF

    # No sign of life to wait for: bpftrace's "attached_probes" line goes down the pipe, and kcat
    # 1.7 reads its input 128 bytes at a time, so a short line waits there for the next ones.

    def stop(self, topics: Topics, t: Target) -> str:
        bt, kc = self.procs
        bt.send_signal(signal.SIGINT)
        self._wait_exit(bt, 30)
        self._wait_exit(kc, 60)  # kcat flushes its queue at EOF
        return ""

    def decode(self, value: bytes) -> Decoded | Lost | None:
        msg = json.loads(value)
        if msg.get("type") == "lost_events":
            return Lost(int(msg["data"]["events"]))
        if msg.get("type") != "printf":
            return None
        # "nsecs ret pid tid uid flags comm path\n" (file_open.bt)
        f = msg["data"].rstrip("\n").split(" ", 7)
        return Decoded(f[6], f[7], int(f[0]), "mono")


class NaiveBcc(Pipeline):
    name = "naive-bcc"

    def start(self, t: Target, bootstrap: str, workdir: Path) -> None:
        import fastavro

        self._schema = fastavro.parse_schema(json.loads(NAIVE_SCHEMA.read_text()))
        cmd = [sys.executable, str(NAIVE_READER), "--topic", self.topic(t), "--comm", t.comm]
        self._spawn([*cmd, "--bootstrap", bootstrap], workdir / "naive.log")

    def wait_started(self, timeout: float) -> None:
        self._wait_for(lambda: "ready" in self.log_text(), timeout, "compiling its BPF")

    def stop(self, topics: Topics, t: Target) -> str:
        self.procs[0].send_signal(signal.SIGTERM)
        self._wait_exit(self.procs[0], 60)
        m = re.search(r"lost=(\d+) unsent=(\d+)", self.log_text())
        return f"lost={m[1]} unsent={m[2]}" if m else "no lost= line"

    def decode(self, value: bytes) -> Decoded | Lost | None:
        import fastavro

        rec = cast(dict[str, Any], fastavro.schemaless_reader(io.BytesIO(value), self._schema, None))
        return Decoded(rec["comm"], rec["path"], rec["boot_ns"], "boot")


PIPELINES = (
    "collector",
    "collector-tuned",
    "collector-native",
    "collector-native-tuned",
    "bpftrace-kcat",
    "naive-bcc",
)
# The native data plane, required: a run that cannot have it fails rather than measure the Python one.
NATIVE: dict[str, Any] = {"readers": {"data_plane": "native"}}
# The Python data plane: `auto`, the default, runs the native one wherever it can.
PYTHON: dict[str, Any] = {"readers": {"data_plane": "python"}}


def make(name: str, tuned: Mapping[str, Any], common: Mapping[str, Any] | None = None) -> Pipeline:
    """`common`: config of both collectors (--in-pod: the runtime's socket); `tuned` goes over it."""
    if name == "collector":
        return Collector(name, merge(common or {}, PYTHON))
    if name == "collector-tuned":
        return Collector(name, merge(merge(common or {}, tuned), PYTHON))
    if name == "collector-native":
        return Collector(name, merge(common or {}, NATIVE))
    if name == "collector-native-tuned":
        return Collector(name, merge(merge(common or {}, tuned), NATIVE))
    if name == "bpftrace-kcat":
        return BpftraceKcat()
    if name == "naive-bcc":
        return NaiveBcc()
    if name == "untraced":
        return Untraced()
    raise ValueError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
