"""The exec load generators (tests/load/*.c), built with gcc for the session."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


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
