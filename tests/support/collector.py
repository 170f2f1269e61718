"""`ebpf-producer run` as a real child process with a config written for the run, and its key=value
log read back. The tests' collector and the benchmark's (bench/pipelines.py) are this one."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import yaml

from . import CLI, ROOT

# What a test's collector runs with unless the test says otherwise: metrics on a free port, drop
# reports every 2 s, and the default shutdown timeout spelled out.
TEST_DEFAULTS: dict[str, Any] = {
    "metrics": {"listen": "127.0.0.1:0"},
    "accounting": {"interval_s": 2},
    "shutdown": {"timeout_s": 20},
}

_KV = re.compile(r"(\w+)=('[^']*'|\S+)")


def log_events(text: str, event: str) -> list[dict[str, str]]:
    """The key=value log lines (producer/log.py's console format) of one event name, parsed."""
    return [
        {k: v.strip("'") for k, v in _KV.findall(line)}
        for line in text.splitlines()
        if f"event='{event}'" in line
    ]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, mappings merged key by key (neither is changed)."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class HasBootstrap(Protocol):
    @property
    def bootstrap(self) -> str: ...


@dataclass
class CollectorRunner:
    broker: HasBootstrap
    prefix: str
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    # Runs before the collector's command, e.g. setpriv to confine its capabilities.
    wrapper: list[str] = field(default_factory=list)
    # The collector itself: the checkout's by default, an installed `ebpf-producer` to test what users get.
    command: list[str] = field(default_factory=lambda: list(CLI))
    cwd: Path = ROOT
    defaults: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(TEST_DEFAULTS))
    log_path: Path = field(init=False)
    config: dict[str, Any] = field(default_factory=dict)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    _log_start: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "collector.log"
        self.spool_dir = self.workdir / "spool"

    def write_config(self, overrides: Mapping[str, Any] | None = None) -> Path:
        base = {
            "kafka": {"bootstrap_servers": self.broker.bootstrap, "topic_prefix": self.prefix},
            # the test's own: no other run's spool or ledger files can meet it
            "spool": {"dir": str(self.spool_dir)},
        }
        self.config = merge(merge(base, self.defaults), overrides or {})
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(self.config))
        return path

    def start(
        self,
        overrides: Mapping[str, Any] | None = None,
        *,
        duration: float | None = None,
        wait_readers: bool = True,
    ) -> None:
        path = self.write_config(overrides)
        cmd = [*self.wrapper, *self.command, "run", "--config", str(path)]
        if duration is not None:
            cmd += ["--duration", str(duration)]
        if self._log is not None:
            self._log.close()
        self._log = self.log_path.open("ab")  # a restart of the same runner appends to one log
        self._log_start = self._log.tell()  # where this run's lines begin (current_log)
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

    def current_log(self) -> str:
        """The lines of the latest start only (a restarted runner's log holds the earlier runs' too)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")

    def log_events(self, event: str) -> list[dict[str, str]]:
        return log_events(self.log(), event)

    def started(self) -> bool:
        """Every reader the supervisor announced is up."""
        started = self.log_events("collector_started")
        return bool(started) and len(self.log_events("reader_started")) >= int(started[0]["readers"])

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.current_log().count(needle) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"collector exited {self.proc.returncode} waiting for {needle}:\n{self.log()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {count}x {needle}:\n{self.log()}")

    def metrics_port(self) -> int:
        self.wait_for_log("metrics_listening")
        ev = log_events(self.current_log(), "metrics_listening")[-1]
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
        if self._log is not None:
            self._log.close()

    def final_ledger_from_log(self, event_type: str) -> dict[str, int]:
        """The ledger_final line of one event type (there is one per type)."""
        ev = [e for e in self.log_events("ledger_final") if e.get("event_type") == event_type]
        assert ev, f"no ledger_final line:\n{self.log()}"
        return {k: int(v) for k, v in ev[-1].items() if v.lstrip("-").isdigit()}


def run_cli(
    args: list[str],
    *,
    prefix: list[str] | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`ebpf-producer ARGS` of the checkout, run to its end (`prefix`: e.g. setpriv), output captured."""
    return subprocess.run(
        [*(prefix or []), *CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=check,
    )


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start prints, with nothing loaded before it."""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "bpf_compiled" not in p.stderr and "Traceback" not in p.stderr
    return lines[0]


def http_get(port: int, path: str) -> tuple[int, str]:
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
