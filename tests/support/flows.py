"""What the ledger scenarios drive through the collector: an event type, the load that makes it, a data plane.

- exec-python: process_exec from tests/load/execload.c, the default event types, the Python data plane;
- file_open-native: file_open from bench/openload.c (open/close of one file under a directory of the
  test's own, the only path the kernel lets through), that type with the processes stream (the shared ring
  reader 0 reads beside the engine), on the native data plane, with the spool (its engine spills to it).

A scenario asks its flow for the config to merge, the load to run, and a lone marked event.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from producer.records.catalog import STREAM_TYPES

from . import ROOT
from .collector import CollectorRunner, merge
from .kafka import Message
from .ledger import assert_identity, balance, counter
from .load import LoadPrograms


class Flow:
    name = ""
    event_type = ""
    plane = ""
    # how many of these events fill a perf ring as one process_exec record does (theirs are smaller)
    scale = 1

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config or {}

    def start_collector(self, collector: CollectorRunner, overrides: dict[str, Any] | None = None) -> None:
        """Start the collector with this flow's config under the scenario's, and check its data plane."""
        collector.start(merge(merge({"readers": {"data_plane": self.plane}}, self.config), overrides or {}))
        chosen = collector.log_events("data_plane")
        assert chosen and chosen[0]["active"] == self.plane, chosen

    def topic(self, prefix: str) -> str:
        return f"{prefix}.{self.event_type}"

    def counter(self, report: dict[str, Any], reason: str, **match: Any) -> int:
        return counter(report, reason, self.event_type, **match)

    def identity(self, report: dict[str, Any]) -> dict[str, int]:
        return assert_identity(report, self.event_type)

    def balance(self, report: dict[str, Any]) -> dict[str, int]:
        return balance(report, self.event_type)

    def run(self, rate: int, seconds: float, cpu: int | None = None) -> int:
        """Make events at `rate`/s for `seconds` (on one CPU if given); returns how many were made."""
        raise NotImplementedError

    def start(self, rate: int, seconds: float) -> subprocess.Popen[str]:
        """The same in the background; rate 0 = as fast as the load goes."""
        raise NotImplementedError

    def lone_event(self, marker: str) -> None:
        raise NotImplementedError

    def has_marker(self, m: Message, marker: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ExecFlow(Flow):
    name, event_type, plane = "exec-python", "process_exec", "python"

    def __init__(self, programs: LoadPrograms) -> None:
        super().__init__()
        self.programs = programs

    def run(self, rate: int, seconds: float, cpu: int | None = None) -> int:
        return self.programs.run(rate, seconds, cpu=cpu)

    def start(self, rate: int, seconds: float) -> subprocess.Popen[str]:
        return self.programs.start(rate, seconds)

    def lone_event(self, marker: str) -> None:
        subprocess.run(["/bin/true", marker], check=True)

    def has_marker(self, m: Message, marker: str) -> bool:
        return marker in m.value["argv"]


class OpenFlow(Flow):
    name, event_type, plane = "file_open-native", "file_open", "native"
    scale = 10
    # opens a second at rate 0 (as fast as it goes): a little above what the traced load reaches here
    MAX_RATE = 150_000

    def __init__(self, workdir: Path) -> None:
        # short: path prefixes are at most 63 bytes (bpf/events.h EKP_PREFIX_LEN)
        self.dir = Path(tempfile.mkdtemp(prefix="ekp-open-", dir="/tmp"))
        self.file = self.dir / "f"
        self.file.touch()
        self.comm = f"ekpo{uuid.uuid4().hex[:8]}"
        self.load = workdir / "openload"
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", str(self.load), str(ROOT / "bench/openload.c")], check=True
        )
        events: dict[str, Any] = {t: {"enabled": False} for t in STREAM_TYPES if t != "processes"}
        events["file_open"] = {"enabled": True, "path_prefixes": {"allow": [f"{self.dir}/"]}}
        super().__init__({"events": events})

    def _cmd(self, rate: int, seconds: float, cpu: int | None) -> list[str]:
        count = round((rate or self.MAX_RATE) * seconds)
        cmd = [str(self.load), self.comm, str(rate), str(count), str(self.file)]
        return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]

    def run(self, rate: int, seconds: float, cpu: int | None = None) -> int:
        out = subprocess.run(self._cmd(rate, seconds, cpu), check=True, capture_output=True, text=True).stdout
        m = re.search(r"opens=(\d+)", out)
        assert m, out
        return int(m.group(1))

    def start(self, rate: int, seconds: float) -> subprocess.Popen[str]:
        return subprocess.Popen(self._cmd(rate, seconds, None), stdout=subprocess.PIPE, text=True)

    def lone_event(self, marker: str) -> None:
        (self.dir / marker).write_text("")

    def has_marker(self, m: Message, marker: str) -> bool:
        return marker in m.value["path"]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)


FLOWS = ("exec-python", "file_open-native")


def make(name: str, programs: LoadPrograms, workdir: Path) -> Flow:
    if name == "exec-python":
        return ExecFlow(programs)
    if name == "file_open-native":
        return OpenFlow(workdir)
    raise ValueError(f"unknown flow {name!r}; known: {', '.join(FLOWS)}")
