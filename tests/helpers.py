"""Test helpers: run the real collector as a process, read its topics back, drive the broker."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from producer import codec
from producer.ledger import DROP_REASONS

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "producer.cli"]


@dataclass
class Broker:
    bootstrap: str
    controllable: bool
    script: Path | None = None

    def stop(self) -> None:
        assert self.script is not None
        subprocess.run(["bash", str(self.script), "down"], check=True)

    def start(self) -> None:
        assert self.script is not None
        subprocess.run(["bash", str(self.script), "up"], check=True)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The broker is down inside the block, and up again after it, whatever happens."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@dataclass
class LoadPrograms:
    nothing: Path  # the cheapest program to exec
    execload: Path  # execload RATE SECONDS PROGRAM [ARG...]

    @classmethod
    def build(cls, src: Path, out: Path) -> LoadPrograms:
        nothing, execload = out / "nothing", out / "execload"
        subprocess.run(
            ["gcc", "-O2", "-nostdlib", "-static", "-o", str(nothing), str(src / "nothing.c")], check=True
        )
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(execload), str(src / "execload.c")], check=True)
        return cls(nothing, execload)

    def run(self, rate: int, seconds: float, *args: str, cpu: int | None = None) -> int:
        """Exec `nothing` at `rate`/s for `seconds`; returns the number of successful execs."""
        cmd = [str(self.execload), str(rate), str(seconds), str(self.nothing), *args]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        m = re.search(r"execs=(\d+)", out)
        assert m, out
        return int(m.group(1))

    def start(self, rate: int, seconds: float, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.execload), str(rate), str(seconds), str(self.nothing), *args],
            stdout=subprocess.PIPE,
            text=True,
        )


@dataclass
class CollectorRunner:
    """`ebpf-producer run` as a real child process with a config written for the test."""

    broker: Broker
    prefix: str
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    # Runs before the collector's command, e.g. setpriv to confine its capabilities.
    wrapper: list[str] = field(default_factory=list)
    # The collector itself: the checkout's by default, an installed `ebpf-producer` to test what users get.
    command: list[str] = field(default_factory=lambda: list(CLI))
    cwd: Path = ROOT
    log_path: Path = field(init=False)
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "collector.log"

    def write_config(self, overrides: dict[str, Any] | None = None) -> Path:
        cfg: dict[str, Any] = {
            "kafka": {"bootstrap_servers": self.broker.bootstrap, "topic_prefix": self.prefix},
            "metrics": {"listen": "127.0.0.1:0"},
            "accounting": {"interval_s": 2},
            "shutdown": {"timeout_s": 20},
        }
        _merge(cfg, overrides or {})
        self.config = cfg
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start(
        self,
        overrides: dict[str, Any] | None = None,
        *,
        duration: float | None = None,
        wait_readers: bool = True,
    ) -> None:
        path = self.write_config(overrides)
        cmd = [*self.wrapper, *self.command, "run", "--config", str(path)]
        if duration is not None:
            cmd += ["--duration", str(duration)]
        self._log = self.log_path.open("wb")
        # A session of its own, so a test can signal the whole process group like a terminal's Ctrl-C.
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.cwd, start_new_session=True
        )
        if wait_readers:
            self.wait_for_log("reader_started", count=len(self.reader_pids_expected()), timeout=60)

    def reader_pids_expected(self) -> list[int]:
        groups = self.config.get("readers", {}).get("cpu_groups")
        if groups:
            return list(range(len(groups)))
        count = self.config.get("readers", {}).get("count", "auto")
        ncpu = len(os.sched_getaffinity(0))
        return list(range(min(ncpu, 8) if count == "auto" else min(int(count), ncpu)))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self, event: str) -> list[dict[str, str]]:
        """Parse key=value log lines of one event name."""
        out = []
        for line in self.log().splitlines():
            if f"event='{event}'" in line:
                out.append({k: v.strip("'") for k, v in re.findall(r"(\w+)=('[^']*'|\S+)", line)})
        return out

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.log().count(needle) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"collector exited {self.proc.returncode} waiting for {needle}:\n{self.log()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {count}x {needle}:\n{self.log()}")

    def metrics_port(self) -> int:
        self.wait_for_log("metrics_listening")
        ev = self.log_events("metrics_listening")[-1]
        return int(ev["address"].rsplit(":", 1)[1])

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"collector still running after {timeout} s:\n{self.log()}") from None

    def stop(self, timeout: float = 60) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # readers exit on their own when the supervisor dies (PR_SET_PDEATHSIG)

    def final_ledger_from_log(self, event_type: str) -> dict[str, int]:
        """The ledger_final line of one event type (there is one per type)."""
        ev = [e for e in self.log_events("ledger_final") if e.get("event_type") == event_type]
        assert ev, f"no ledger_final line:\n{self.log()}"
        return {k: int(v) for k, v in ev[-1].items() if v.lstrip("-").isdigit()}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    schema: str
    value: dict[str, Any]
    raw: bytes = b""


def consume(
    bootstrap: str,
    topic: str,
    *,
    idle_s: float = 5.0,
    max_wait_s: float = 120.0,
    expect: int | None = None,
    conf: dict[str, Any] | None = None,
    by_id: Callable[[int], codec.Schema | None] | None = None,
) -> list[Message]:
    """Every message of `topic` from the beginning, decoded; stops after idle_s of silence
    (or once `expect` messages arrived when idle_s is 0).

    `conf`: more librdkafka settings (a secured broker's); `by_id`: schema ids of
    Confluent-framed messages. Partitions are assigned directly, not through a consumer
    group: a group's first join on a fresh broker can take longer than idle_s, and would
    end the read early.
    """
    schemas = codec.load_all()
    c = Consumer(
        {
            **(conf or {}),
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    md = c.list_topics(topic, timeout=30).topics[topic]
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
    out: list[Message] = []
    last = time.monotonic()
    end = last + max_wait_s
    try:
        while time.monotonic() < end:
            m = c.poll(0.5)
            if m is None:
                if time.monotonic() - last > idle_s and (expect is None or len(out) >= expect):
                    break
                continue
            if m.error():
                continue
            last = time.monotonic()
            schema, value = codec.decode(m.value(), schemas, by_id)
            out.append(
                Message(
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    m.key(),
                    {k: v for k, v in (m.headers() or [])},
                    schema.name,
                    value,
                    m.value(),
                )
            )
            if expect is not None and len(out) >= expect and idle_s == 0:
                break
    finally:
        c.close()
    return out


def consume_until(
    bootstrap: str, topic: str, match: Callable[[Message], bool], max_wait_s: float = 30.0
) -> Message | None:
    """The first message of `topic` (from the beginning) that `match`es, or None after max_wait_s."""
    schemas = codec.load_all()
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    md = c.list_topics(topic, timeout=30).topics[topic]
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
    end = time.monotonic() + max_wait_s
    try:
        while time.monotonic() < end:
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            schema, value = codec.decode(m.value(), schemas)
            msg = Message(
                m.topic(), m.partition(), m.offset(), m.key(), dict(m.headers() or []), schema.name, value
            )
            if match(msg):
                return msg
    finally:
        c.close()
    return None


def final_report(bootstrap: str, prefix: str, **kw: Any) -> dict[str, Any]:
    reports = [m.value for m in consume(bootstrap, f"{prefix}.drops", idle_s=3, **kw)]
    finals = [r for r in reports if r["final"]]
    assert finals, f"no final drop report among {len(reports)} reports"
    return finals[-1]


def balance(report: dict[str, Any], event_type: str = "process_exec") -> dict[str, int]:
    return next(b for b in report["balance"] if b["event_type"] == event_type)


def counter(report: dict[str, Any], reason: str, event_type: str = "process_exec", **match: Any) -> int:
    return sum(
        c["count"]
        for c in report["counters"]
        if c["event_type"] == event_type
        and c["reason"] == reason
        and all(c.get(k) == v for k, v in match.items())
    )


def assert_identity(report: dict[str, Any], event_type: str = "process_exec") -> dict[str, int]:
    """seen == delivered + dropped + in_flight, the drop reasons add up, and in_flight is 0 (final report)."""
    b = balance(report, event_type)
    drops = sum(counter(report, r, event_type) for r in DROP_REASONS)
    assert b["dropped"] == drops, (b, report["counters"])
    assert b["seen"] == counter(report, "seen", event_type), b
    assert b["delivered"] == counter(report, "delivered", event_type), b
    assert b["seen"] == b["delivered"] + b["dropped"] + b["in_flight"], b
    assert b["in_flight"] == 0, b
    return b


def seqs_by_cpu(messages: list[Message]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for m in messages:
        out.setdefault(m.value["cpu"], []).append(m.value["seq"])
    return out


CAP_BITS = {"BPF": 39, "PERFMON": 38, "IPC_LOCK": 14}


def cap_sets(pid: int) -> dict[str, int]:
    """CapInh, CapPrm, CapEff, CapBnd, CapAmb of a process, as bit masks."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: int(v, 16) for k, v in (ln.split(":\t") for ln in lines if ln.startswith("Cap"))}


def http_get(port: int, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_ready(port: int, timeout: float = 30.0) -> tuple[int, str]:
    """Poll /readyz as a kubelet's readiness probe would: the readers can start before the supervisor
    has heard from the broker, so a single early probe may rightly say 503."""
    end = time.monotonic() + timeout
    while True:
        status, body = http_get(port, "/readyz")
        if status == 200 or time.monotonic() >= end:
            return status, body
        time.sleep(0.2)


def iter_json_lines(text: str) -> Iterator[dict[str, Any]]:
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            yield json.loads(line)
